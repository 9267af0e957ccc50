use kernel::Error;
use kernel::caller::Role;
use paas_proto::v1 as pb;
use tenancy::quota::Level;
use tenancy::resource_request::{Form, ResourceRequests, State, Step};

use crate::helpers::{World, admin, list, member};

fn form(spec: &str, project: &str, count: i32) -> Form {
    Form::parse(&pb::ResourceRequestForm {
        project_name: project.into(),
        applicant: "Jane Doe".into(),
        phone: "+49 30 1234".into(),
        email: "jane@acme.example".into(),
        application: "billing-api".into(),
        base_services: vec!["MySQL".into()],
        purpose: "billing".into(),
        server_type: "application-host".into(),
        oracle_needed: false,
        storage: "500Gi".into(),
        bandwidth: "100Mbps".into(),
        data_centre: "dc1".into(),
        spec_id: spec.into(),
        count,
        remarks: String::new(),
        dr_reserve: false,
    })
    .unwrap()
}

#[tokio::test]
async fn a_request_goes_from_draft_to_provisioned_raising_quota_and_creating_partitions() {
    let w = World::new().await;
    let requests = ResourceRequests::new(kernel::outbox::Outbox::new(w.pool.clone()));
    let t = w.tenant("acme", &[("requests.cpu", "4")]).await;
    let spec = requests
        .publish_spec(
            &admin(),
            "small",
            "2 CPU / 4 GiB",
            list(&[("requests.cpu", "2"), ("requests.memory", "4Gi")]),
        )
        .await
        .unwrap();
    let tenant_admin = member(t.id, Role::TenantAdmin);

    let r = requests
        .file(&tenant_admin, t.id, form(&spec.id.to_string(), "billing", 3))
        .await
        .unwrap();
    assert_eq!(r.state, State::Draft);
    let err = requests.step(&admin(), r.id, Step::Approve, "", &[]).await.unwrap_err();
    assert_eq!(err.to_string(), "a draft request cannot be approved");

    requests.step(&tenant_admin, r.id, Step::Submit, "", &[]).await.unwrap();
    assert!(
        matches!(
            requests.step(&tenant_admin, r.id, Step::Approve, "", &[]).await,
            Err(Error::PermissionDenied(_))
        ),
        "tenants do not approve their own"
    );
    let no_reason = requests.step(&admin(), r.id, Step::Reject, " ", &[]).await.unwrap_err();
    assert_eq!(no_reason.field(), Some("reason"));
    requests.step(&admin(), r.id, Step::Approve, "", &[]).await.unwrap();
    assert!(
        matches!(
            requests.step(&admin(), r.id, Step::Approve, "", &[]).await,
            Err(Error::FailedPrecondition(_))
        ),
        "approve twice"
    );

    let done = requests
        .step(
            &admin(),
            r.id,
            Step::Provision,
            "",
            &[("dc1-prod".into(), "dc1".into()), ("dc1-dr".into(), "dc1".into())],
        )
        .await
        .unwrap();
    assert_eq!(done.state, State::Provisioned);
    let steps: Vec<(&str, &str)> = done
        .steps
        .iter()
        .map(|s| (s.to_state.as_str(), s.actor.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("draft", "test:TenantAdmin"),
            ("submitted", "test:TenantAdmin"),
            ("approved", "test:admin"),
            ("provisioned", "test:admin")
        ]
    );

    let usage = w.quotas.usage(&admin(), t.id).await.unwrap();
    let hard = |level: Level, resource: &str| {
        usage
            .iter()
            .filter(|u| u.scope.level == level)
            .flat_map(|u| &u.lines)
            .find(|l| l.resource.as_str() == resource)
            .and_then(|l| l.hard)
            .map(|h| h.to_string())
    };
    assert_eq!(hard(Level::Tenant, "requests.cpu").as_deref(), Some("10"), "4 + 3 x 2");
    assert_eq!(hard(Level::Tenant, "requests.memory").as_deref(), Some("12Gi"));
    assert_eq!(
        hard(Level::Project, "requests.cpu").as_deref(),
        Some("6"),
        "the new project gets what was provisioned"
    );
    let (projects, _) = w
        .projects
        .list(&admin(), t.id, kernel::page::Page::parse(0, "").unwrap(), "billing")
        .await
        .unwrap();
    let (partitions, _) = w
        .partitions
        .list(&admin(), projects[0].id, "", kernel::page::Page::parse(0, "").unwrap())
        .await
        .unwrap();
    let mut clusters: Vec<&str> = partitions.iter().map(|p| p.cluster.as_str()).collect();
    clusters.sort();
    assert_eq!(clusters, ["dc1-dr", "dc1-prod"]);
    assert!(partitions.iter().all(|p| p.namespace == "acme-billing"));
    // 3 units over 2 clusters: the first named takes the odd one.
    let partition_cpu = |cluster: &str| {
        let id = partitions.iter().find(|p| p.cluster == cluster).unwrap().id;
        usage
            .iter()
            .find(|u| u.scope.level == Level::Partition && u.scope.owner == id)
            .and_then(|u| u.lines.iter().find(|l| l.resource.as_str() == "requests.cpu"))
            .and_then(|l| l.hard)
            .map(|h| h.to_string())
    };
    assert_eq!(partition_cpu("dc1-prod").as_deref(), Some("4"));
    assert_eq!(partition_cpu("dc1-dr").as_deref(), Some("2"));
    assert!(
        partitions
            .iter()
            .all(|p| p.limit_range.container.default.get("cpu").map(String::as_str) == Some("500m")),
        "the default LimitRange"
    );

    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE subject = 'tenancy.resource_request.changed'")
            .fetch_one(&w.pool)
            .await
            .unwrap();
    assert_eq!(events, 4);
    assert!(matches!(
        requests.step(&admin(), r.id, Step::Provision, "", &[]).await,
        Err(Error::FailedPrecondition(_))
    ));
}

#[tokio::test]
async fn a_rejection_keeps_its_reason_and_strangers_see_nothing() {
    let w = World::new().await;
    let requests = ResourceRequests::new(kernel::outbox::Outbox::new(w.pool.clone()));
    let t = w.tenant("acme", &[]).await;
    let other = w.tenant("beta", &[]).await;
    let spec = requests
        .publish_spec(&admin(), "small", "", list(&[("requests.cpu", "2")]))
        .await
        .unwrap();
    assert!(matches!(
        requests
            .publish_spec(&member(t.id, Role::TenantAdmin), "mine", "", list(&[("pods", "1")]))
            .await,
        Err(Error::PermissionDenied(_))
    ));
    let r = requests
        .file(&admin(), t.id, form(&spec.id.to_string(), "web", 1))
        .await
        .unwrap();
    requests.step(&admin(), r.id, Step::Submit, "", &[]).await.unwrap();
    let rejected = requests
        .step(&admin(), r.id, Step::Reject, "no capacity in dc1 this quarter", &[])
        .await
        .unwrap();
    assert_eq!(rejected.state, State::Rejected);
    assert_eq!(rejected.steps.last().unwrap().reason, "no capacity in dc1 this quarter");
    assert!(matches!(
        requests.get(&member(other.id, Role::TenantAdmin), r.id).await,
        Err(Error::NotFound { .. })
    ));
    let (seen, _) = requests
        .list(
            &member(other.id, Role::TenantAdmin),
            kernel::page::Page::parse(0, "").unwrap(),
            None,
            None,
        )
        .await
        .unwrap();
    assert!(seen.is_empty());
    let err = requests
        .file(
            &member(t.id, Role::Operator),
            t.id,
            form(&spec.id.to_string(), "web", 1),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::PermissionDenied(_)),
        "operators do not file requests"
    );
}
