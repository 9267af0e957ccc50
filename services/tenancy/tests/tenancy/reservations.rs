use std::sync::Arc;
use std::time::Duration;

use kernel::Error;
use kernel::caller::Role;
use tenancy::quota::TenantQuota;
use tenancy::reservation::{Request, State};

use crate::helpers::{World, admin, ask, list, member};

#[tokio::test]
async fn of_200_parallel_reservations_exactly_the_room_for_n_succeed() {
    let w = Arc::new(World::with_pool_size(32).await);
    let t = w.tenant("acme", &[("requests.cpu", "37")]).await;
    let p = w.project(&t, "web", &[]).await;
    let part = w.partition(&p, "dc1-prod", &[]).await;

    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let w = w.clone();
            tokio::spawn(async move {
                w.reservations
                    .reserve(&admin(), &ask(part.id, &[("requests.cpu", "1")], &format!("k{i}")))
                    .await
            })
        })
        .collect();
    let mut granted = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => granted += 1,
            Err(Error::ResourceExhausted(_)) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((granted, refused), (37, 163));
    assert_eq!(w.used("tenant", t.id, "requests.cpu").await, 37_000);
    assert_eq!(
        w.used("partition", part.id, "requests.cpu").await,
        w.held(part.id, "requests.cpu").await
    );
}

#[tokio::test]
async fn waiting_reservations_hold_no_connection_and_are_decided_together() {
    // Two connections for 100 callers of one tenant: waiting happens in the
    // admission line, not on the pool, so other queries still get through.
    let w = Arc::new(World::with_pool_size(2).await);
    let t = w.tenant("acme", &[("requests.cpu", "60")]).await;
    let p = w.project(&t, "web", &[]).await;
    let part = w.partition(&p, "dc1-prod", &[]).await;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let w = w.clone();
            tokio::spawn(async move {
                w.reservations
                    .reserve(&admin(), &ask(part.id, &[("requests.cpu", "500m")], &format!("k{i}")))
                    .await
            })
        })
        .collect();
    let probe: i32 = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        sqlx::query_scalar("SELECT 1").fetch_one(&w.pool),
    )
    .await
    .expect("a connection while reservations wait")
    .unwrap();
    assert_eq!(probe, 1);
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(w.used("tenant", t.id, "requests.cpu").await, 50_000);
    // Rows written by one transaction share its xmin.
    let (rows, transactions): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT xmin::text) FROM reservations WHERE tenant_id = $1")
            .bind(t.id)
            .fetch_one(&w.pool)
            .await
            .unwrap();
    assert_eq!(rows, 100);
    assert!(
        transactions < rows,
        "{rows} reservations in {transactions} transactions"
    );
}

#[tokio::test]
async fn under_mixed_commit_release_and_expiry_usage_always_equals_what_is_held() {
    let w = Arc::new(World::with_pool_size(32).await);
    let t = w.tenant("acme", &[("requests.cpu", "20"), ("pods", "20")]).await;
    let p = w.project(&t, "web", &[("requests.cpu", "15")]).await;
    let a = w.partition(&p, "dc1-prod", &[("requests.cpu", "10")]).await;
    let b = w.partition(&p, "dc2-dr", &[]).await;
    // One that is sure to expire, whatever the storm below does.
    let doomed = Request::parse(
        b.id,
        list(&[("requests.cpu", "500m"), ("pods", "1")]),
        "doomed",
        1,
        false,
    )
    .unwrap();
    w.reservations.reserve(&admin(), &doomed).await.unwrap();

    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let w = w.clone();
            let part = if i % 2 == 0 { a.id } else { b.id };
            tokio::spawn(async move {
                // Every fifth lives 1 s and is left to expire.
                let ttl = if i % 5 == 0 { 1 } else { 0 };
                let request = Request::parse(
                    part,
                    list(&[("requests.cpu", "500m"), ("pods", "1")]),
                    &format!("k{i}"),
                    ttl,
                    false,
                )
                .unwrap();
                let Ok(r) = w.reservations.reserve(&admin(), &request).await else {
                    return;
                };
                match i % 5 {
                    0 => {}
                    1 | 2 => {
                        w.reservations.commit(&admin(), r.id).await.unwrap();
                    }
                    3 => {
                        w.reservations.release(&admin(), r.id).await.unwrap();
                    }
                    _ => {
                        w.reservations.commit(&admin(), r.id).await.unwrap();
                        w.reservations.release(&admin(), r.id).await.unwrap();
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    for (level, owner, hard) in [
        ("tenant", t.id, 20_000),
        ("project", p.id, 15_000),
        ("partition", a.id, 10_000),
    ] {
        let used = w.used(level, owner, "requests.cpu").await;
        assert!(used <= hard, "{level} over-committed: {used} > {hard}");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Overdue ones are expired by refusals along the way or by the sweep here.
    w.reservations.expire_due().await.unwrap();
    let (overdue, expired): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state = 'reserved' AND expires_at < now()), count(*) FILTER (WHERE state = 'expired') FROM reservations",
    )
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert_eq!(overdue, 0, "nothing overdue is still held");
    assert!(expired > 0, "the short-lived ones expired");
    for part in [a.id, b.id] {
        assert_eq!(
            w.used("partition", part, "requests.cpu").await,
            w.held(part, "requests.cpu").await
        );
        assert_eq!(w.used("partition", part, "pods").await, w.held(part, "pods").await);
    }
    let total = w.held(a.id, "requests.cpu").await + w.held(b.id, "requests.cpu").await;
    assert_eq!(w.used("tenant", t.id, "requests.cpu").await, total);
    assert_eq!(w.used("project", p.id, "requests.cpu").await, total);
}

#[tokio::test]
async fn a_refusal_names_the_level_resource_ask_and_what_is_left() {
    let w = World::new().await;
    let t = w
        .tenant("acme", &[("requests.cpu", "8"), ("requests.memory", "16Gi")])
        .await;
    let p = w.project(&t, "web", &[("requests.memory", "4Gi")]).await;
    let part = w.partition(&p, "dc1-prod", &[("requests.cpu", "2")]).await;

    w.reservations
        .reserve(&admin(), &ask(part.id, &[("requests.cpu", "1500m")], "a"))
        .await
        .unwrap();
    let err = w
        .reservations
        .reserve(&admin(), &ask(part.id, &[("requests.cpu", "1")], "b"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "partition acme-web in dc1-prod quota exceeded for requests.cpu: asked 1, 500m left of 2"
    );
    let err = w
        .reservations
        .reserve(&admin(), &ask(part.id, &[("requests.memory", "5Gi")], "c"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "project web quota exceeded for requests.memory: asked 5Gi, 4Gi left of 4Gi"
    );
    let err = w
        .reservations
        .reserve(&admin(), &ask(part.id, &[("requests.cpu", "500m"), ("pods", "1")], "d"))
        .await;
    assert!(err.is_ok(), "a resource no level limits is not refused");
}

#[tokio::test]
async fn a_repeated_key_returns_the_first_answer() {
    let w = World::new().await;
    let t = w.tenant("acme", &[("requests.cpu", "1")]).await;
    let p = w.project(&t, "web", &[]).await;
    let part = w.partition(&p, "dc1-prod", &[]).await;

    let first = w
        .reservations
        .reserve(&admin(), &ask(part.id, &[("requests.cpu", "1")], "deploy-1"))
        .await
        .unwrap();
    let again = w
        .reservations
        .reserve(&admin(), &ask(part.id, &[("requests.cpu", "1")], "deploy-1"))
        .await
        .unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(w.used("tenant", t.id, "requests.cpu").await, 1000, "held once");

    let refusal = w
        .reservations
        .reserve(&admin(), &ask(part.id, &[("requests.cpu", "1")], "deploy-2"))
        .await
        .unwrap_err()
        .to_string();
    w.reservations.release(&admin(), first.id).await.unwrap();
    let repeated = w
        .reservations
        .reserve(&admin(), &ask(part.id, &[("requests.cpu", "1")], "deploy-2"))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        refusal, repeated,
        "a refusal is the answer for that key even after room frees up"
    );

    let err = w
        .reservations
        .reserve(&admin(), &ask(part.id, &[("requests.cpu", "2")], "deploy-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
}

#[tokio::test]
async fn an_expired_reservation_frees_its_room_and_cannot_be_committed() {
    let w = World::new().await;
    let t = w.tenant("acme", &[("requests.cpu", "1")]).await;
    let p = w.project(&t, "web", &[]).await;
    let part = w.partition(&p, "dc1-prod", &[]).await;
    // Two seconds: long enough that a loaded machine still asks "next" in time.
    let short = Request::parse(part.id, list(&[("requests.cpu", "1")]), "short", 2, false).unwrap();
    let r = w.reservations.reserve(&admin(), &short).await.unwrap();
    assert!(
        w.reservations
            .reserve(&admin(), &ask(part.id, &[("requests.cpu", "1")], "next"))
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        w.reservations
            .reserve(&admin(), &ask(part.id, &[("requests.cpu", "1")], "later"))
            .await
            .is_ok()
    );
    assert!(matches!(
        w.reservations.commit(&admin(), r.id).await,
        Err(Error::FailedPrecondition(_))
    ));
    assert_eq!(w.reservations.get(&admin(), r.id).await.unwrap().state, State::Expired);
}

#[tokio::test]
async fn the_dr_reserve_is_kept_for_failover_and_splits_cap_a_cluster() {
    let w = World::new().await;
    let t = w.tenant("acme", &[]).await;
    let quota = TenantQuota {
        hard: list(&[("requests.cpu", "10")]),
        dr_reserve: list(&[("requests.cpu", "4")]),
        clusters: [("dc1-prod".to_string(), list(&[("requests.cpu", "3")]))].into(),
        ..Default::default()
    };
    w.quotas.set_tenant(&admin(), t.id, &quota).await.unwrap();
    let p = w.project(&t, "web", &[]).await;
    let dc1 = w.partition(&p, "dc1-prod", &[]).await;
    let dc2 = w.partition(&p, "dc2-dr", &[]).await;

    let err = w
        .reservations
        .reserve(&admin(), &ask(dc1.id, &[("requests.cpu", "4")], "a"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("tenant acme in cluster dc1-prod quota exceeded"),
        "{err}"
    );
    w.reservations
        .reserve(&admin(), &ask(dc2.id, &[("requests.cpu", "6")], "b"))
        .await
        .unwrap();
    let err = w
        .reservations
        .reserve(&admin(), &ask(dc2.id, &[("requests.cpu", "1")], "c"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("(4 kept for failover)"), "{err}");
    let failover = Request::parse(dc2.id, list(&[("requests.cpu", "4")]), "failover", 0, true).unwrap();
    w.reservations.reserve(&admin(), &failover).await.unwrap();
    assert_eq!(w.used("tenant", t.id, "requests.cpu").await, 10_000);
}

#[tokio::test]
async fn a_member_of_another_tenant_cannot_see_or_reserve_and_viewers_cannot_reserve() {
    let w = World::new().await;
    let a = w.tenant("alpha", &[("requests.cpu", "4")]).await;
    let b = w.tenant("beta", &[("requests.cpu", "4")]).await;
    let p = w.project(&a, "web", &[]).await;
    let part = w.partition(&p, "dc1-prod", &[]).await;
    let stranger = member(b.id, Role::TenantAdmin);
    assert!(matches!(
        w.reservations
            .reserve(&stranger, &ask(part.id, &[("requests.cpu", "1")], "x"))
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        w.partitions.get(&stranger, part.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        w.projects.get(&stranger, p.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        w.quotas.usage(&stranger, a.id).await,
        Err(Error::NotFound { .. })
    ));
    let viewer = member(a.id, Role::Viewer);
    assert!(matches!(
        w.reservations
            .reserve(&viewer, &ask(part.id, &[("requests.cpu", "1")], "y"))
            .await,
        Err(Error::PermissionDenied(_))
    ));
    let operator = member(a.id, Role::Operator);
    let r = w
        .reservations
        .reserve(&operator, &ask(part.id, &[("requests.cpu", "1")], "z"))
        .await
        .unwrap();
    assert!(matches!(
        w.reservations.get(&stranger, r.id).await,
        Err(Error::NotFound { .. })
    ));
}
