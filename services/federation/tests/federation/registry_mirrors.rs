//! Member clusters pull from their data centre's sub-registry: a binding
//! whose image is pinned by digest in the platform registry reaches two
//! clusters in two data centres naming each one's registry mirror (same
//! digest) with the pull secrets that log in there, and a third cluster
//! without a mirror keeps the platform registry's address.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use federation::binding::Bindings;
use federation::cluster_settings::ClusterSettings;
use federation::propagation::Propagator;
use federation::pull_secret::{self, NewPullSecret};
use federation::settings::Registry;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kernel::caller::Caller;
use kernel::testkit::eventually;
use kube::api::Api;
use paas_proto::v1 as pb;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::bindings::{CpuCap, partition, request, settings};
use crate::helpers::{Fed, PROBES, Running, cluster};

const PLATFORM: &str = "registry.paas.example:5000";
const DIGEST: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

fn objects() -> String {
    json!([
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [
                                   {"name": "web", "image": format!("{PLATFORM}/acme/shop/web@{DIGEST}"),
                                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                                   {"name": "proxy", "image": "docker.io/envoyproxy/envoy:v1.30"}]}}}}
    ])
    .to_string()
}

async fn set_mirror(fed: &Fed, cluster: &str, mirror: &str) {
    let parsed = ClusterSettings::parse(
        "",
        Some(pb::ClusterSettings {
            registry_mirror: mirror.into(),
            ..Default::default()
        }),
    )
    .unwrap();
    federation::cluster::set_settings(fed.pool(), &Caller::platform_admin("t"), cluster, &parsed)
        .await
        .unwrap();
}

/// The logins (server -> user) of a dockerconfigjson Secret, if it exists.
async fn logins(secrets: &Api<Secret>, name: &str) -> Option<Vec<(String, String)>> {
    let s = secrets.get_opt(name).await.ok()??;
    let config: Value = serde_json::from_slice(&s.data?.get(".dockerconfigjson")?.0).ok()?;
    let mut logins: Vec<(String, String)> = config["auths"]
        .as_object()?
        .iter()
        .map(|(server, l)| (server.clone(), l["username"].as_str().unwrap_or_default().to_string()))
        .collect();
    logins.sort();
    Some(logins)
}

/// The pod template's images and pull secret names of `web` in `cluster`.
async fn pod_template(fed: &Fed, cluster: &str) -> Option<(Vec<String>, Vec<String>)> {
    let api: Api<Deployment> = Api::namespaced(fed.clients.by_name(cluster).await.ok()?, "acme-web");
    let spec = api.get_opt("web").await.ok()??.spec?.template.spec?;
    let images = spec.containers.into_iter().filter_map(|c| c.image).collect();
    let secrets = spec
        .image_pull_secrets
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.name)
        .collect();
    Some((images, secrets))
}

#[tokio::test]
async fn each_cluster_pulls_the_pinned_image_from_its_data_centres_mirror_with_its_pull_secrets() {
    let fed = Fed::start().await;
    // ma and mb in two data centres with a sub-registry each; mc without one.
    let mut clusters = Vec::new();
    for (name, dc) in [("ma", "dc-a"), ("mb", "dc-b"), ("mc", "dc-c")] {
        let c = cluster(name).await;
        fed.register(&c, dc, "").await;
        partition(&fed, name).await;
        clusters.push(c);
    }
    set_mirror(&fed, "ma", "registry.dc-a.example:5000").await;
    set_mirror(&fed, "mb", "registry.dc-b.example").await;
    assert_eq!(
        federation::cluster::get(fed.pool(), "ma")
            .await
            .unwrap()
            .settings
            .registry_mirror
            .as_deref(),
        Some("registry.dc-a.example:5000")
    );
    // The tenant's robot credential for the platform registry, in ma's partition (sealed at rest).
    let in_ma: Uuid = sqlx::query_scalar!("SELECT partition_id FROM partitions WHERE cluster = 'ma'")
        .fetch_one(fed.pool())
        .await
        .unwrap();
    pull_secret::put(
        fed.pool(),
        &fed.key,
        &Caller::platform_admin("t"),
        NewPullSecret::parse(pb::PutPullSecretRequest {
            partition_id: in_ma.to_string(),
            name: "robot".into(),
            server: PLATFORM.into(),
            username: "robot$acme+ci".into(),
            password: "robot-secret".into(),
        })
        .unwrap(),
    )
    .await
    .unwrap();
    let stored: Vec<u8> = sqlx::query_scalar!("SELECT password FROM pull_secrets WHERE partition_id = $1", in_ma)
        .fetch_one(fed.pool())
        .await
        .unwrap();
    assert!(!stored.windows(12).any(|w| w == b"robot-secret"));

    let registry = Registry {
        server: PLATFORM.into(),
        username: "platform".into(),
        password: kernel::settings::Secret::new("platform-pw"),
    };
    let _monitor = Running::monitor(fed.monitor(PROBES));
    let _partitions = Running::reconciler(
        fed.reconciler(Duration::from_millis(300))
            .with_platform_registry(Some(registry)),
    );
    for c in ["ma", "mb", "mc"] {
        fed.until_status(c, "Ready").await;
    }
    let admission = Arc::new(CpuCap {
        cap_milli: 100_000,
        ..Default::default()
    });
    let _propagator = Running::propagator(
        Propagator::new(
            fed.pool().clone(),
            fed.clients.clone(),
            settings(Duration::from_secs(3600)),
            admission.clone(),
        )
        .with_platform_registry(Some(PLATFORM.to_string())),
    );
    let placement = json!({"explicit": [
        {"cluster": "ma", "replicas": 1}, {"cluster": "mb", "replicas": 1}, {"cluster": "mc", "replicas": 1}]});
    Bindings::new(fed.pool(), &*admission)
        .apply(&Caller::platform_admin("t"), request(objects(), placement, 3))
        .await
        .unwrap();

    let envoy = "docker.io/envoyproxy/envoy:v1.30".to_string();
    let expected = [
        (
            "ma",
            format!("registry.dc-a.example:5000/acme/shop/web@{DIGEST}"),
            vec!["paas-registry", "paas-pull-robot"],
        ),
        (
            "mb",
            format!("registry.dc-b.example/acme/shop/web@{DIGEST}"),
            vec!["paas-registry"],
        ),
        ("mc", format!("{PLATFORM}/acme/shop/web@{DIGEST}"), vec![]),
    ];
    for (cluster, image, secrets) in expected {
        let (images, named) = eventually(Duration::from_secs(15), &format!("web in {cluster}"), || {
            pod_template(&fed, cluster)
        })
        .await;
        assert_eq!(images, [image, envoy.clone()], "{cluster}");
        assert_eq!(named, secrets, "{cluster}");
    }

    // The Secrets log in to the platform registry and, where there is one, the cluster's mirror.
    let login = |server: &str, user: &str| (server.to_string(), user.to_string());
    for (cluster, secret, want) in [
        (
            "ma",
            "paas-registry",
            vec![
                login(PLATFORM, "platform"),
                login("registry.dc-a.example:5000", "platform"),
            ],
        ),
        (
            "ma",
            "paas-pull-robot",
            vec![
                login(PLATFORM, "robot$acme+ci"),
                login("registry.dc-a.example:5000", "robot$acme+ci"),
            ],
        ),
        (
            "mb",
            "paas-registry",
            vec![login(PLATFORM, "platform"), login("registry.dc-b.example", "platform")],
        ),
        ("mc", "paas-registry", vec![login(PLATFORM, "platform")]),
    ] {
        let secrets: Api<Secret> = Api::namespaced(fed.clients.by_name(cluster).await.unwrap(), "acme-web");
        let mut want = want;
        want.sort();
        eventually(Duration::from_secs(15), &format!("{secret} in {cluster}"), || async {
            (logins(&secrets, secret).await? == want).then_some(())
        })
        .await;
    }
    let robot = Api::<Secret>::namespaced(fed.clients.by_name("ma").await.unwrap(), "acme-web")
        .get("paas-pull-robot")
        .await
        .unwrap();
    let config = &robot.data.unwrap()[".dockerconfigjson"].0;
    let config: Value = serde_json::from_slice(config).unwrap();
    let auth = config["auths"]["registry.dc-a.example:5000"]["auth"].as_str().unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD.decode(auth).unwrap(),
        b"robot$acme+ci:robot-secret"
    );

    // Unsetting mb's mirror brings it back to the platform registry.
    set_mirror(&fed, "mb", "").await;
    eventually(Duration::from_secs(15), "mb back on the platform registry", || async {
        let (images, _) = pod_template(&fed, "mb").await?;
        (images[0] == format!("{PLATFORM}/acme/shop/web@{DIGEST}")).then_some(())
    })
    .await;
}
