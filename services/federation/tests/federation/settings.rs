//! Cluster settings against kubesim: default classes filled in by the
//! propagator, a class a cluster does not offer refused before any write,
//! and a settings change converging the refused target.

use std::sync::Arc;
use std::time::Duration;

use federation::binding::Bindings;
use federation::cluster_settings::ClusterSettings;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::networking::v1::Ingress;
use kernel::caller::Caller;
use kernel::testkit::eventually;
use kube::api::Api;
use paas_proto::v1 as pb;
use serde_json::json;

use crate::bindings::{CpuCap, fleet, propagator, request};
use crate::helpers::Fed;

fn classes(storage: &[&str], default_storage: &str, ingress: &[&str], default_ingress: &str) -> pb::ClusterSettings {
    let list = |l: &[&str]| l.iter().map(std::string::ToString::to_string).collect();
    pb::ClusterSettings {
        storage_classes: list(storage),
        default_storage_class: default_storage.into(),
        ingress_classes: list(ingress),
        default_ingress_class: default_ingress.into(),
        node_port_first: 31000,
        node_port_last: 31999,
        ..Default::default()
    }
}

async fn set(fed: &Fed, cluster: &str, s: pb::ClusterSettings) {
    let parsed = ClusterSettings::parse("", Some(s)).unwrap();
    federation::cluster::set_settings(fed.pool(), &Caller::platform_admin("t"), cluster, &parsed)
        .await
        .unwrap();
}

fn storage_objects(pvc_class: Option<&str>) -> String {
    let mut pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    if let Some(c) = pvc_class {
        pvc["spec"]["storageClassName"] = json!(c);
    }
    json!([
        pvc,
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
         "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                  "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "postgres"}]}},
                  "volumeClaimTemplates": [{"metadata": {"name": "pgdata"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
         "spec": {"rules": [{"host": "shop.example", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "db", "port": {"number": 5432}}}}]}}]}}
    ])
    .to_string()
}

#[tokio::test]
async fn objects_without_classes_get_each_clusters_own_defaults() {
    let fed = Fed::start().await;
    let (_clusters, _m, _p) = fleet(&fed, &["sa", "sb"]).await;
    set(&fed, "sa", classes(&["fast", "slow"], "fast", &["nginx"], "nginx")).await;
    set(
        &fed,
        "sb",
        classes(&["ceph"], "ceph", &["traefik", "internal"], "traefik"),
    )
    .await;
    let cluster = federation::cluster::get(fed.pool(), "sa").await.unwrap();
    assert_eq!(cluster.settings.node_ports.to_string(), "31000-31999");
    let admission = Arc::new(CpuCap {
        cap_milli: 100_000,
        ..Default::default()
    });
    let _prop = propagator(&fed, admission.clone(), Duration::from_secs(3600));
    let placement = json!({"explicit": [{"cluster": "sa", "replicas": 1}, {"cluster": "sb", "replicas": 1}]});
    Bindings::new(fed.pool(), &*admission)
        .apply(
            &Caller::platform_admin("t"),
            request(storage_objects(None), placement, 2),
        )
        .await
        .unwrap();

    for (cluster, storage, ingress) in [("sa", "fast", "nginx"), ("sb", "ceph", "traefik")] {
        let client = fed.clients.by_name(cluster).await.unwrap();
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "acme-web");
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "acme-web");
        let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "acme-web");
        let pvc = eventually(Duration::from_secs(10), &format!("the claim in {cluster}"), || async {
            pvcs.get_opt("data").await.ok()?
        })
        .await;
        assert_eq!(
            pvc.spec.unwrap().storage_class_name.as_deref(),
            Some(storage),
            "{cluster}"
        );
        let sts = sets.get("db").await.unwrap();
        let template = &sts.spec.unwrap().volume_claim_templates.unwrap()[0];
        assert_eq!(
            template.spec.as_ref().unwrap().storage_class_name.as_deref(),
            Some(storage),
            "{cluster}"
        );
        let ing = ingresses.get("web").await.unwrap();
        assert_eq!(
            ing.spec.unwrap().ingress_class_name.as_deref(),
            Some(ingress),
            "{cluster}"
        );
    }
}

#[tokio::test]
async fn a_class_the_cluster_does_not_offer_is_refused_before_any_write_and_converges_once_offered() {
    let fed = Fed::start().await;
    let (_clusters, _m, _p) = fleet(&fed, &["sc"]).await;
    set(&fed, "sc", classes(&["fast"], "fast", &["nginx"], "nginx")).await;
    let admission = Arc::new(CpuCap {
        cap_milli: 100_000,
        ..Default::default()
    });
    let _prop = propagator(&fed, admission.clone(), Duration::from_secs(3600));
    let (b, _) = Bindings::new(fed.pool(), &*admission)
        .apply(
            &Caller::platform_admin("t"),
            request(
                storage_objects(Some("gold")),
                json!({"explicit": [{"cluster": "sc"}]}),
                1,
            ),
        )
        .await
        .unwrap();

    let reason = eventually(Duration::from_secs(10), "the target refused", || async {
        let (_, targets) = Bindings::new(fed.pool(), &*admission)
            .get(&Caller::platform_admin("t"), b.id)
            .await
            .ok()?;
        targets[0].last_error.clone()
    })
    .await;
    assert!(
        reason.contains("PersistentVolumeClaim data") && reason.contains("gold") && reason.contains("cluster sc"),
        "{reason}"
    );
    // Nothing of the binding was written, not even the objects before the claim.
    let client = fed.clients.by_name("sc").await.unwrap();
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "acme-web");
    assert!(sets.get_opt("db").await.unwrap().is_none());
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "acme-web");
    assert!(pvcs.get_opt("data").await.unwrap().is_none());

    // The administrator adds the class: the target converges without waiting for its backoff.
    set(&fed, "sc", classes(&["fast", "gold"], "fast", &["nginx"], "nginx")).await;
    let pvc = eventually(Duration::from_secs(10), "the claim written", || async {
        pvcs.get_opt("data").await.ok()?
    })
    .await;
    assert_eq!(pvc.spec.unwrap().storage_class_name.as_deref(), Some("gold"));
    // The target is recorded as applied just after its last object is written.
    eventually(Duration::from_secs(10), "the refusal cleared", || async {
        let (_, targets) = Bindings::new(fed.pool(), &*admission)
            .get(&Caller::platform_admin("t"), b.id)
            .await
            .ok()?;
        targets[0].last_error.is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn settings_given_at_registration_are_stored_and_bad_ones_name_their_field() {
    let fed = Fed::start().await;
    let c = crate::helpers::cluster("registered-with-settings").await;
    let registered = fed
        .register_request(pb::RegisterClusterRequest {
            name: c.name().to_string(),
            api_endpoint: c.url(),
            data_centre: "dc1".into(),
            settings: Some(classes(&["fast"], "fast", &[], "")),
            ..Default::default()
        })
        .await;
    assert_eq!(registered.settings.storage.default.as_deref(), Some("fast"));
    assert_eq!(
        federation::cluster::get(fed.pool(), c.name()).await.unwrap().settings,
        registered.settings
    );

    let bad = federation::cluster::NewCluster::parse(pb::RegisterClusterRequest {
        name: "bad".into(),
        api_endpoint: "http://127.0.0.1:1".into(),
        data_centre: "dc1".into(),
        settings: Some(pb::ClusterSettings {
            node_port_first: 32000,
            node_port_last: 100,
            ..Default::default()
        }),
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        matches!(bad, kernel::Error::InvalidArgument { ref field, .. } if field == "settings.node_port_range.first"),
        "{bad:?}"
    );
    // Only platform administrators change settings.
    let tenant_admin = Caller::user(
        "u",
        vec![kernel::caller::Membership {
            tenant: crate::bindings::TENANT,
            role: kernel::caller::Role::TenantAdmin,
        }],
    );
    let denied = federation::cluster::set_settings(fed.pool(), &tenant_admin, c.name(), &ClusterSettings::default())
        .await
        .unwrap_err();
    assert!(matches!(denied, kernel::Error::PermissionDenied(_)), "{denied:?}");
    assert_eq!(
        federation::cluster::get(fed.pool(), c.name()).await.unwrap().settings,
        registered.settings
    );
}
