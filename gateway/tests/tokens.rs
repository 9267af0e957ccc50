//! API tokens are cached by each gateway; a revocation reaches every gateway
//! sharing the database at once.

use std::time::Duration;

use gateway::token::{NewToken, Tokens};
use kernel::caller::Caller;
use kernel::testkit::{TestPlatform, eventually};

#[tokio::test]
async fn a_token_revoked_in_one_gateway_is_refused_by_another_that_cached_it() {
    let t = TestPlatform::new().await;
    let pool = kernel::db::connect(&t.settings, gateway::SCHEMA).await.unwrap();
    kernel::db::migrate(&pool, &gateway::MIGRATIONS).await.unwrap();
    let (here, there) = (Tokens::new(pool.clone()), Tokens::new(pool.clone()));
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(there.clone().follow_revocations(stop.clone()));

    let admin = Caller::platform_admin("local:admin");
    let tenant = uuid::Uuid::now_v7();
    let (token, secret) = here
        .create(
            &admin,
            NewToken::parse("robot", &tenant.to_string(), "", "operator", None).unwrap(),
        )
        .await
        .unwrap();
    let (_, other_secret) = here
        .create(
            &admin,
            NewToken::parse("other", &tenant.to_string(), "", "viewer", None).unwrap(),
        )
        .await
        .unwrap();
    // The other gateway is listening (its LISTEN has run) before the revocation is announced.
    eventually(
        Duration::from_secs(10),
        "the other gateway listening for revocations",
        || async {
            let listening: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
             AND state = 'idle' AND query ILIKE 'LISTEN %gateway_token_revoked%'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            (listening > 0).then_some(())
        },
    )
    .await;
    for tokens in [&here, &there] {
        assert!(tokens.authenticate(&secret).await.unwrap().is_some());
        assert!(tokens.authenticate(&other_secret).await.unwrap().is_some());
    }

    here.revoke(&admin, token.id).await.unwrap();
    assert!(
        here.authenticate(&secret).await.unwrap().is_none(),
        "refused at once where it was revoked"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while there.authenticate(&secret).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other gateway still accepts the revoked token"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        there.authenticate(&other_secret).await.unwrap().is_some(),
        "only the revoked token is forgotten"
    );
    stop.cancel();
}
