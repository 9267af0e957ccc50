use federation::health::Status;
use paas_proto::v1 as pb;

use crate::helpers::{Fed, PROBES, Running, cluster};

#[tokio::test]
async fn credentials_are_stored_encrypted_and_the_cluster_is_reached_and_discovered_with_them() {
    let fed = Fed::start().await;
    let c = cluster("secretive").await;
    let token = "sekrit-bearer-token-0123456789";
    let registered = fed.register(&c, "dc1", token).await;
    assert!(registered.has_credentials);

    let stored: Vec<u8> =
        sqlx::query_scalar!(r#"SELECT credentials AS "credentials!" FROM clusters WHERE name = 'secretive'"#)
            .fetch_one(fed.pool())
            .await
            .unwrap();
    assert!(
        !stored.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token is stored in clear"
    );
    let opened = federation::credentials::open(&fed.key, "secretive", &stored).unwrap();
    assert_eq!(opened.token, token);

    let _monitor = Running::monitor(fed.monitor(PROBES));
    fed.until_status("secretive", "Ready").await;
    let found = kernel::testkit::eventually(std::time::Duration::from_secs(10), "discovery", || async {
        let c = federation::cluster::get(fed.pool(), "secretive").await.unwrap();
        c.discovery.discovered_at.is_some().then_some(c)
    })
    .await;
    assert_eq!(found.condition.status, Status::Ready);
    assert_eq!(found.discovery.kubernetes_version, "v1.35.0-kubesim");
    // kubesim's defaults: three nodes of 4 cpu, 16Gi and 110 pods.
    assert_eq!(found.discovery.nodes, 3);
    assert_eq!(found.discovery.capacity["cpu"], "12");
    assert_eq!(found.discovery.capacity["memory"], "48Gi");
    assert_eq!(found.discovery.allocatable["pods"], "330");
    assert_eq!(
        federation::cluster::get(fed.pool(), &registered.id.to_string())
            .await
            .unwrap()
            .name,
        "secretive"
    );
}

#[tokio::test]
async fn a_cluster_registered_from_its_kubeconfig_gets_server_and_token_from_the_current_context() {
    let fed = Fed::start().await;
    let c = cluster("from-kubeconfig").await;
    let kubeconfig = std::fs::read_to_string(c.kubeconfig_path()).unwrap();
    let registered = fed
        .register_request(pb::RegisterClusterRequest {
            name: "from-kubeconfig".into(),
            data_centre: "dc1".into(),
            kubeconfig,
            ..Default::default()
        })
        .await;
    assert_eq!(
        registered.api_endpoint.trim_end_matches('/'),
        c.url().trim_end_matches('/')
    );
    let stored: Vec<u8> =
        sqlx::query_scalar!(r#"SELECT credentials AS "credentials!" FROM clusters WHERE name = 'from-kubeconfig'"#)
            .fetch_one(fed.pool())
            .await
            .unwrap();
    let token = "kubesim-from-kubeconfig";
    assert!(!stored.windows(token.len()).any(|w| w == token.as_bytes()));
    assert_eq!(
        federation::credentials::open(&fed.key, "from-kubeconfig", &stored)
            .unwrap()
            .token,
        token
    );
    let _monitor = Running::monitor(fed.monitor(PROBES));
    fed.until_status("from-kubeconfig", "Ready").await;
}

#[tokio::test]
async fn credentials_sealed_under_another_key_make_the_cluster_notready_not_a_crash() {
    let fed = Fed::start().await;
    let c = cluster("rekeyed").await;
    fed.register(&c, "dc1", "some-token").await;
    let other =
        federation::credentials::Clients::new(fed.pool().clone(), federation::settings::SecretKey::new([9; 32]));
    let monitor = federation::health::Monitor::new(fed.outbox.clone(), other, PROBES);
    let _m = Running::monitor(monitor);
    assert_eq!(fed.until_status("rekeyed", "NotReady").await, "CredentialsUnusable");
}
