//! Image pull secrets of partitions against kubesim: the platform
//! registry's and a tenant's written and listed by the default
//! ServiceAccount, drift repaired, a removed credential's Secret deleted.

use std::time::Duration;

use base64::Engine;
use federation::pull_secret::{self, NewPullSecret};
use federation::settings::Registry;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kernel::caller::{Caller, Membership, Role};
use kernel::testkit::eventually;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use paas_proto::v1 as pb;
use prost::Message;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Fed, Running, cluster};

const TENANT: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0042);

async fn partition(fed: &Fed, cluster: &str) -> Uuid {
    let id = Uuid::now_v7();
    let p = pb::PartitionChanged {
        partition_id: id.to_string(),
        tenant_id: TENANT.to_string(),
        cluster: cluster.into(),
        namespace: "acme-pull".into(),
        network_policy: "allow-all-ingress".into(),
        ..Default::default()
    };
    sqlx::query!(
        "INSERT INTO partitions (partition_id, tenant_id, cluster, namespace, desired) VALUES ($1, $2, $3, $4, $5)",
        id,
        TENANT,
        cluster,
        &p.namespace,
        p.encode_to_vec(),
    )
    .execute(fed.pool())
    .await
    .unwrap();
    id
}

fn credential(partition: Uuid, name: &str, password: &str) -> NewPullSecret {
    NewPullSecret::parse(pb::PutPullSecretRequest {
        partition_id: partition.to_string(),
        name: name.into(),
        server: "harbor.acme.example".into(),
        username: "robot".into(),
        password: password.into(),
    })
    .unwrap()
}

/// The password the Secret holds for `server`, if it exists.
async fn password_in(secrets: &Api<Secret>, name: &str, server: &str) -> Option<String> {
    let s = secrets.get_opt(name).await.ok()??;
    let config: Value = serde_json::from_slice(&s.data?.get(".dockerconfigjson")?.0).ok()?;
    config["auths"][server]["password"].as_str().map(str::to_string)
}

async fn pull_secret_names(accounts: &Api<ServiceAccount>) -> Option<Vec<String>> {
    let sa = accounts.get_opt("default").await.ok()??;
    Some(
        sa.image_pull_secrets
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.name)
            .collect(),
    )
}

#[tokio::test]
async fn pull_secrets_are_written_listed_by_the_default_account_repaired_and_removed() {
    let fed = Fed::start().await;
    let c = cluster("pulls").await;
    fed.register(&c, "dc1", "").await;
    let partition = partition(&fed, "pulls").await;
    let registry = Registry {
        server: "registry.paas.example".into(),
        username: "platform".into(),
        password: kernel::settings::Secret::new("platform-pw"),
    };
    let reconciler = fed
        .reconciler(Duration::from_millis(300))
        .with_platform_registry(Some(registry));
    let _reconciler = Running::reconciler(reconciler);
    let admin = Caller::user(
        "admin",
        vec![Membership {
            tenant: TENANT,
            role: Role::TenantAdmin,
        }],
    );
    pull_secret::put(fed.pool(), &fed.key, &admin, credential(partition, "harbor", "s3cret"))
        .await
        .unwrap();

    let client = fed.clients.by_name("pulls").await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "acme-pull");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "acme-pull");
    eventually(Duration::from_secs(10), "both pull secrets listed", || async {
        (pull_secret_names(&accounts).await? == ["paas-registry", "paas-pull-harbor"]).then_some(())
    })
    .await;
    assert_eq!(
        password_in(&secrets, "paas-registry", "registry.paas.example")
            .await
            .as_deref(),
        Some("platform-pw")
    );
    assert_eq!(
        password_in(&secrets, "paas-pull-harbor", "harbor.acme.example")
            .await
            .as_deref(),
        Some("s3cret")
    );
    assert_eq!(
        secrets.get("paas-pull-harbor").await.unwrap().type_.as_deref(),
        Some("kubernetes.io/dockerconfigjson")
    );
    // At rest the password is sealed.
    let stored: Vec<u8> = sqlx::query_scalar!("SELECT password FROM pull_secrets WHERE partition_id = $1", partition)
        .fetch_one(fed.pool())
        .await
        .unwrap();
    assert!(!stored.windows(6).any(|w| w == b"s3cret"));
    // Listing never shows it (the type has no password at all) and a viewer may list.
    let viewer = Caller::user(
        "v",
        vec![Membership {
            tenant: TENANT,
            role: Role::Viewer,
        }],
    );
    let listed = pull_secret::list(fed.pool(), &viewer, partition).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|p| (p.name.as_str(), p.username.as_str()))
            .collect::<Vec<_>>(),
        [("harbor", "robot")]
    );
    assert!(!format!("{listed:?}").contains("s3cret"));
    // A viewer may not add, another tenant does not even see the partition.
    assert!(matches!(
        pull_secret::put(fed.pool(), &fed.key, &viewer, credential(partition, "x", "y")).await,
        Err(kernel::Error::PermissionDenied(_))
    ));
    let stranger = Caller::user(
        "s",
        vec![Membership {
            tenant: Uuid::now_v7(),
            role: Role::TenantAdmin,
        }],
    );
    assert!(matches!(
        pull_secret::list(fed.pool(), &stranger, partition).await,
        Err(kernel::Error::NotFound { .. })
    ));

    // Drift: the tenant secret is edited, the platform one deleted, the account's list emptied.
    let tampered =
        json!({"data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(r#"{"auths":{}}"#)}});
    secrets
        .patch("paas-pull-harbor", &PatchParams::default(), &Patch::Merge(&tampered))
        .await
        .unwrap();
    secrets.delete("paas-registry", &DeleteParams::default()).await.unwrap();
    accounts
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(&json!({"imagePullSecrets": []})),
        )
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the drift repaired", || async {
        let repaired = password_in(&secrets, "paas-pull-harbor", "harbor.acme.example")
            .await
            .as_deref()
            == Some("s3cret")
            && password_in(&secrets, "paas-registry", "registry.paas.example")
                .await
                .as_deref()
                == Some("platform-pw")
            && pull_secret_names(&accounts).await?.len() == 2;
        repaired.then_some(())
    })
    .await;

    // A changed password reaches the cluster; a removed credential's Secret goes.
    pull_secret::put(fed.pool(), &fed.key, &admin, credential(partition, "harbor", "rotated"))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the password rotated", || async {
        (password_in(&secrets, "paas-pull-harbor", "harbor.acme.example")
            .await
            .as_deref()
            == Some("rotated"))
        .then_some(())
    })
    .await;
    pull_secret::delete(fed.pool(), &admin, partition, "harbor")
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the removed secret deleted", || async {
        (secrets.get_opt("paas-pull-harbor").await.ok()?.is_none()
            && pull_secret_names(&accounts).await? == ["paas-registry"])
        .then_some(())
    })
    .await;
    assert!(matches!(
        pull_secret::delete(fed.pool(), &admin, partition, "harbor").await,
        Err(kernel::Error::NotFound { .. })
    ));
}
