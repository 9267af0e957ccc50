//! Envelope encryption against a real database: a master key rotation
//! re-seals the tenant data keys and leaves every sealed value as it was.

use configs::secret::{Keyring, MasterKey, Sealer};
use kernel::settings::Secret;
use kernel::testkit::TestPlatform;
use uuid::Uuid;

fn key(k: &str) -> MasterKey {
    MasterKey::from_secret(&Secret::new(k.repeat(32)))
}

#[tokio::test]
async fn rotating_the_master_key_rewraps_data_keys_only() {
    let t = TestPlatform::new().await;
    let pool = kernel::db::connect(&t.settings, configs::NAME).await.unwrap();
    kernel::db::migrate(&pool, &configs::MIGRATIONS).await.unwrap();
    let tenant = Uuid::now_v7();
    let old = Sealer::new(
        pool.clone(),
        Keyring {
            current: key("a"),
            previous: vec![],
        },
    );
    let sealed = old.seal(tenant, "db.properties", "password=hunter2").await.unwrap();
    let before: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM tenant_data_keys WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&pool)
        .await
        .unwrap();

    // Without the old key the data key no longer opens.
    let lost = Sealer::new(
        pool.clone(),
        Keyring {
            current: key("b"),
            previous: vec![],
        },
    );
    assert!(lost.open(tenant, "db.properties", &sealed).await.is_err());
    assert!(
        lost.rewrap().await.is_err(),
        "a data key whose master key is unknown is reported"
    );

    let rotated = Sealer::new(
        pool.clone(),
        Keyring {
            current: key("b"),
            previous: vec![key("a")],
        },
    );
    assert_eq!(rotated.rewrap().await.unwrap(), 1);
    assert_eq!(rotated.rewrap().await.unwrap(), 0, "nothing left to re-seal");
    let (master, after): (String, Vec<u8>) =
        sqlx::query_as("SELECT master_key_id, sealed FROM tenant_data_keys WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(master, key("b").id());
    assert_ne!(after, before);
    // The value sealed before the rotation opens with the new key alone.
    let fresh = Sealer::new(
        pool.clone(),
        Keyring {
            current: key("b"),
            previous: vec![],
        },
    );
    assert_eq!(
        fresh.open(tenant, "db.properties", &sealed).await.unwrap(),
        "password=hunter2"
    );
}
