use kernel::Error;
use tenancy::partition::{LimitItem, LimitRange};
use tenancy::quota::{Level, TenantQuota};

use crate::helpers::{World, admin, ask, list};

#[tokio::test]
async fn projects_are_carved_from_the_tenant_and_partitions_from_the_project() {
    let w = World::new().await;
    let t = w.tenant("acme", &[("requests.cpu", "10")]).await;
    let web = w.project(&t, "web", &[("requests.cpu", "6")]).await;
    let api = w.project(&t, "api", &[]).await;
    let err = w
        .quotas
        .set_project(&admin(), api.id, &list(&[("requests.cpu", "5")]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "hard.requests.cpu: tenant acme has 10 of requests.cpu; its projects would hold 11"
    );
    w.quotas
        .set_project(&admin(), api.id, &list(&[("requests.cpu", "4")]))
        .await
        .unwrap();

    let part = w.partition(&web, "dc1-prod", &[("requests.cpu", "4")]).await;
    let other = w.partition(&web, "dc2-dr", &[]).await;
    let err = w
        .quotas
        .set_partition(&admin(), &other, &list(&[("requests.cpu", "3")]), LimitRange::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "hard.requests.cpu: project web has 6 of requests.cpu; its partitions would hold 7"
    );

    // A project cannot shrink below its partitions, a tenant below its projects.
    assert!(matches!(
        w.quotas
            .set_project(&admin(), web.id, &list(&[("requests.cpu", "3")]))
            .await,
        Err(Error::FailedPrecondition(_))
    ));
    let shrink = TenantQuota {
        hard: list(&[("requests.cpu", "9")]),
        ..Default::default()
    };
    assert!(matches!(
        w.quotas.set_tenant(&admin(), t.id, &shrink).await,
        Err(Error::FailedPrecondition(_))
    ));

    // Nor below what is in use.
    w.reservations
        .reserve(&admin(), &ask(part.id, &[("requests.cpu", "3")], "r"))
        .await
        .unwrap();
    let err = w
        .quotas
        .set_partition(&admin(), &part, &list(&[("requests.cpu", "2")]), LimitRange::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "partition acme-web in dc1-prod: cannot set requests.cpu to 2: 3 is in use"
    );
}

#[tokio::test]
async fn a_limit_is_carved_from_the_nearest_ancestor_that_sets_it() {
    let w = World::new().await;
    let t = w.tenant("acme", &[("pods", "40"), ("requests.cpu", "10")]).await;
    // web limits cpu but not pods: its partitions' pods come from the tenant.
    let web = w.project(&t, "web", &[("requests.cpu", "4")]).await;
    let api = w.project(&t, "api", &[("pods", "30")]).await;
    let part = w.partition(&web, "dc1-prod", &[]).await;
    let err = w
        .quotas
        .set_partition(&admin(), &part, &list(&[("pods", "1000")]), LimitRange::default())
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("hard.pods"), "{err}");
    assert_eq!(
        err.to_string(),
        "hard.pods: tenant acme has 40 of pods; what is carved from it would hold 1030 \
         (project web sets no pods limit, so the nearest level above that does is tenant acme)"
    );
    w.quotas
        .set_partition(&admin(), &part, &list(&[("pods", "10")]), LimitRange::default())
        .await
        .unwrap();
    let other = w.partition(&web, "dc2-dr", &[]).await;
    assert_eq!(
        w.quotas
            .set_partition(&admin(), &other, &list(&[("pods", "1")]), LimitRange::default())
            .await
            .unwrap_err()
            .field(),
        Some("hard.pods"),
        "30 + 10 + 1 > 40"
    );

    // The partitions carved through web count when a project or the tenant changes.
    assert_eq!(
        w.quotas
            .set_project(&admin(), api.id, &list(&[("pods", "31")]))
            .await
            .unwrap_err()
            .field(),
        Some("hard.pods")
    );
    let shrink = TenantQuota {
        hard: list(&[("pods", "39"), ("requests.cpu", "10")]),
        ..Default::default()
    };
    assert!(matches!(
        w.quotas.set_tenant(&admin(), t.id, &shrink).await,
        Err(Error::FailedPrecondition(_))
    ));
    // web may take over its partitions' pods within what the tenant has left.
    assert_eq!(
        w.quotas
            .set_project(&admin(), web.id, &list(&[("requests.cpu", "4"), ("pods", "11")]))
            .await
            .unwrap_err()
            .field(),
        Some("hard.pods")
    );
    w.quotas
        .set_project(&admin(), web.id, &list(&[("requests.cpu", "4"), ("pods", "10")]))
        .await
        .unwrap();

    // A project that stops limiting hands its partitions to the tenant.
    let api_part = w.partition(&api, "dc1-prod", &[("pods", "25")]).await;
    w.quotas.set_project(&admin(), api.id, &list(&[])).await.unwrap();
    let err = w
        .quotas
        .set_partition(&admin(), &api_part, &list(&[("pods", "31")]), LimitRange::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "hard.pods: tenant acme has 40 of pods; what is carved from it would hold 41 \
         (project api sets no pods limit, so the nearest level above that does is tenant acme)"
    );
}

#[tokio::test]
async fn usage_reports_hard_and_used_at_every_level() {
    let w = World::new().await;
    let t = w
        .tenant("acme", &[("requests.cpu", "10"), ("requests.memory", "8Gi")])
        .await;
    let p = w.project(&t, "web", &[("requests.cpu", "4")]).await;
    let part = w.partition(&p, "dc1-prod", &[]).await;
    w.reservations
        .reserve(
            &admin(),
            &ask(part.id, &[("requests.cpu", "1500m"), ("requests.memory", "1Gi")], "r"),
        )
        .await
        .unwrap();
    let usage = w.quotas.usage(&admin(), t.id).await.unwrap();
    let line = |level: Level, resource: &str| {
        usage
            .iter()
            .filter(|u| u.scope.level == level)
            .flat_map(|u| &u.lines)
            .find(|l| l.resource.as_str() == resource)
            .cloned()
            .unwrap()
    };
    let cpu = line(Level::Tenant, "requests.cpu");
    assert_eq!(
        (cpu.hard.unwrap().to_string(), cpu.used.to_string()),
        ("10".into(), "1500m".into())
    );
    assert_eq!(line(Level::Project, "requests.cpu").used.to_string(), "1500m");
    assert_eq!(line(Level::Partition, "requests.memory").hard, None);
    assert_eq!(line(Level::Cluster, "requests.cpu").used.to_string(), "1500m");
}

#[tokio::test]
async fn a_partition_quota_and_limit_range_are_announced_for_federation() {
    let w = World::new().await;
    let t = w.tenant("acme", &[("requests.cpu", "10")]).await;
    let p = w.project(&t, "web", &[]).await;
    let part = w.partition(&p, "dc1-prod", &[]).await;
    let lr = LimitRange::parse(LimitRange {
        container: LimitItem {
            default: [("cpu".to_string(), "0.5".to_string())].into(),
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    w.quotas
        .set_partition(&admin(), &part, &list(&[("requests.cpu", "2"), ("gpu", "1")]), lr)
        .await
        .unwrap();
    let envelope: Vec<u8> = sqlx::query_scalar(
        "SELECT envelope FROM outbox WHERE subject = 'tenancy.partition.updated' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(&w.pool)
    .await
    .unwrap();
    let event = kernel::event::Event::decode(&envelope).unwrap();
    let changed: paas_proto::v1::PartitionChanged = event.payload().unwrap();
    assert_eq!(changed.namespace, "acme-web");
    assert_eq!(changed.hard.get("requests.cpu").map(String::as_str), Some("2"));
    assert_eq!(
        changed.hard.get("requests.nvidia.com/gpu").map(String::as_str),
        Some("1")
    );
    assert!(
        changed.limit_range_json.contains("\"500m\""),
        "{}",
        changed.limit_range_json
    );
    assert_eq!(
        w.partitions
            .get(&admin(), part.id)
            .await
            .unwrap()
            .limit_range
            .container
            .default["cpu"],
        "500m"
    );
}

#[tokio::test]
async fn a_project_with_partitions_and_a_partition_with_reservations_are_not_deleted() {
    let w = World::new().await;
    let t = w.tenant("acme", &[("requests.cpu", "10")]).await;
    let p = w.project(&t, "web", &[]).await;
    let part = w.partition(&p, "dc1-prod", &[]).await;
    let r = w
        .reservations
        .reserve(&admin(), &ask(part.id, &[("requests.cpu", "1")], "r"))
        .await
        .unwrap();
    assert!(matches!(
        w.projects.delete(&admin(), p.id).await,
        Err(Error::FailedPrecondition(_))
    ));
    assert!(matches!(
        w.partitions.delete(&admin(), part.id).await,
        Err(Error::FailedPrecondition(_))
    ));
    w.reservations.release(&admin(), r.id).await.unwrap();
    w.partitions.delete(&admin(), part.id).await.unwrap();
    w.projects.delete(&admin(), p.id).await.unwrap();
}
