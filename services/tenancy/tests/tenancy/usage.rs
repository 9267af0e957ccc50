use chrono::{Duration, Utc};
use kernel::Error;
use kernel::caller::{Caller, Role};
use tenancy::resource::Resource;
use tenancy::usage::UsageHistory;

use crate::helpers::{World, admin, ask, list, member};

#[tokio::test]
async fn reported_usage_is_kept_newest_first_and_history_records_levels_and_reports() {
    let w = World::new().await;
    let usage = UsageHistory::new(w.pool.clone());
    let t = w.tenant("acme", &[("requests.cpu", "8")]).await;
    let p = w.project(&t, "web", &[]).await;
    let part = w.partition(&p, "dc1-prod", &[]).await;
    w.reservations
        .reserve(&admin(), &ask(part.id, &[("requests.cpu", "2")], "r"))
        .await
        .unwrap();

    let federation = Caller::service("federation");
    let now = Utc::now();
    usage
        .report(
            &federation,
            part.id,
            &list(&[("requests.cpu", "1500m"), ("pods", "3")]),
            now,
        )
        .await
        .unwrap();
    // A late report from before is ignored for the current value.
    usage
        .report(
            &federation,
            part.id,
            &list(&[("requests.cpu", "100m")]),
            now - Duration::seconds(30),
        )
        .await
        .unwrap();
    let observed = usage.observed(&admin(), t.id).await.unwrap();
    assert_eq!(
        observed.partitions[&part.id]
            .to_strings()
            .get("requests.cpu")
            .map(String::as_str),
        Some("1500m")
    );
    assert_eq!(observed.clusters[&part.cluster], observed.partitions[&part.id]);
    assert_eq!(observed.data_centres[&part.data_centre], observed.partitions[&part.id]);

    assert!(usage.snapshot().await.unwrap() > 0);
    let points = usage
        .history(
            &admin(),
            t.id,
            Some(Resource::RequestsCpu),
            now - Duration::minutes(5),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(
        points
            .iter()
            .any(|p| p.level == "tenant" && p.hard == Some(8000) && p.used == Some(2000)),
        "{points:?}"
    );
    assert_eq!(
        points
            .iter()
            .filter(|p| p.level == "partition" && p.observed.is_some())
            .count(),
        2,
        "both reports are history"
    );

    assert!(matches!(
        usage
            .report(&member(t.id, Role::TenantAdmin), part.id, &list(&[("pods", "1")]), now)
            .await,
        Err(Error::PermissionDenied(_))
    ));
    let stranger = member(uuid::Uuid::now_v7(), Role::TenantAdmin);
    assert!(matches!(
        usage
            .history(&stranger, t.id, None, now - Duration::minutes(5), Utc::now())
            .await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        usage
            .history(&admin(), t.id, None, Utc::now(), now - Duration::minutes(5))
            .await
            .unwrap_err()
            .field(),
        Some("since")
    );
}
