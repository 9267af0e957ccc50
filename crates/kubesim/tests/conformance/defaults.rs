//! Defaults and status as the API server and its controllers set them:
//! Secrets, StatefulSet update strategy, `status: {}` on create, Namespaces
//! without a generation, StorageClasses and PersistentVolumeClaims binding.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Namespace, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use kernel::testkit::eventually;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use crate::helpers::{deployment, kubectl, spawn};

/// `stringData` is merged into `data` as base64 and dropped; `type`
/// defaults to Opaque.
#[tokio::test]
async fn secret_string_data_is_merged_into_data_and_the_type_defaults() {
    let t = spawn().await;
    let secrets: Api<Secret> = Api::namespaced(t.client.clone(), "default");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "creds" },
        "data": { "user": "YWRtaW4=", "token": "b2xk" },
        "stringData": { "token": "s3cret" },
    }))
    .unwrap();
    let created = secrets.create(&PostParams::default(), &secret).await.unwrap();
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert!(created.string_data.is_none());
    let data = secrets.get("creds").await.unwrap().data.unwrap();
    assert_eq!(data["user"].0, b"admin");
    assert_eq!(data["token"].0, b"s3cret", "stringData wins over data");
}

/// Objects with a status subresource are answered with `status: {}` on
/// create; Namespaces carry no `metadata.generation`.
#[tokio::test]
async fn created_objects_carry_an_empty_status_and_namespaces_no_generation() {
    let t = spawn().await;
    let created = Api::<Deployment>::namespaced(t.client.clone(), "default")
        .create(&PostParams::default(), &deployment("fresh", 0, "nginx:1"))
        .await
        .unwrap();
    assert_eq!(serde_json::to_value(&created).unwrap()["status"], json!({}));
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": "team-a" } })).unwrap();
    let ns = Api::<Namespace>::all(t.client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert_eq!(ns.metadata.generation, None);
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
    let default = Api::<Namespace>::all(t.client.clone()).get("default").await.unwrap();
    assert_eq!(default.metadata.generation, None);
}

const STATEFULSET: &str = "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  replicas: 2
  serviceName: db
  selector:
    matchLabels:
      app: db
  template:
    metadata:
      labels:
        app: db
    spec:
      containers:
      - name: db
        image: postgres:17
";

/// A StatefulSet's updateStrategy defaults to RollingUpdate (partition 0),
/// so `kubectl rollout status sts` follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_defaults_to_rolling_update_and_rollout_status_follows_it() {
    let t = spawn().await;
    let cache = std::env::temp_dir().join(format!("kubesim-kubectl-sts-{}", t.cluster.addr().port()));
    let out = kubectl(&t.cluster, &cache, &["apply", "-f", "-"], Some(STATEFULSET));
    assert!(out.status.success(), "apply: {}", String::from_utf8_lossy(&out.stderr));
    let sts = Api::<StatefulSet>::namespaced(t.client.clone(), "default")
        .get("db")
        .await
        .unwrap();
    let spec = sts.spec.unwrap();
    let strategy = spec.update_strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    assert_eq!(strategy.rolling_update.unwrap().partition, Some(0));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("OrderedReady"));
    let out = kubectl(
        &t.cluster,
        &cache,
        &["rollout", "status", "sts/db", "--timeout=30s"],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rollout status: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("roll out complete") || stdout.contains("rolling update complete"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(cache);
}

fn claim(name: &str, class: Option<&str>) -> PersistentVolumeClaim {
    let mut spec = json!({ "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } });
    if let Some(c) = class {
        spec["storageClassName"] = json!(c);
    }
    serde_json::from_value(json!({ "metadata": { "name": name }, "spec": spec })).unwrap()
}

/// The cluster has one default StorageClass; a claim without a class gets
/// it and binds at once to a provisioned volume; a WaitForFirstConsumer
/// claim waits (with the real event) until a pod using it is scheduled;
/// deleting a claim deletes its volume (reclaimPolicy Delete).
#[tokio::test]
async fn claims_bind_to_provisioned_volumes_by_binding_mode() {
    let t = spawn().await;
    let classes: Api<StorageClass> = Api::all(t.client.clone());
    let defaults: Vec<StorageClass> = classes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|c| {
            c.metadata.annotations.as_ref().is_some_and(|a| {
                a.get("storageclass.kubernetes.io/is-default-class").map(String::as_str) == Some("true")
            })
        })
        .collect();
    assert_eq!(defaults.len(), 1, "one default StorageClass per cluster");
    let standard = defaults[0].metadata.name.clone().unwrap();

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(t.client.clone(), "default");
    let created = claims
        .create(&PostParams::default(), &claim("data", None))
        .await
        .unwrap();
    assert_eq!(
        created.spec.unwrap().storage_class_name.as_deref(),
        Some(standard.as_str())
    );
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));
    let bound = eventually(Duration::from_secs(10), "claim bound", || async {
        let c = claims.get("data").await.unwrap();
        (c.status.as_ref()?.phase.as_deref() == Some("Bound")).then_some(c)
    })
    .await;
    let volume = bound.spec.unwrap().volume_name.unwrap();
    assert_eq!(volume, format!("pvc-{}", bound.metadata.uid.unwrap()));
    assert_eq!(bound.status.unwrap().capacity.unwrap()["storage"].0, "1Gi");
    let volumes: Api<PersistentVolume> = Api::all(t.client.clone());
    let pv = volumes.get(&volume).await.unwrap();
    assert_eq!(pv.status.unwrap().phase.as_deref(), Some("Bound"));
    let spec = pv.spec.unwrap();
    assert_eq!(spec.claim_ref.unwrap().name.as_deref(), Some("data"));
    assert_eq!(spec.persistent_volume_reclaim_policy.as_deref(), Some("Delete"));

    let lazy: StorageClass = serde_json::from_value(json!({
        "metadata": { "name": "local" }, "provisioner": "kubesim.io/host-path",
        "volumeBindingMode": "WaitForFirstConsumer",
    }))
    .unwrap();
    classes.create(&PostParams::default(), &lazy).await.unwrap();
    claims
        .create(&PostParams::default(), &claim("scratch", Some("local")))
        .await
        .unwrap();
    let waiting = eventually(Duration::from_secs(10), "WaitForFirstConsumer event", || async {
        Api::<Event>::namespaced(t.client.clone(), "default")
            .list(&ListParams::default().fields("involvedObject.name=scratch,reason=WaitForFirstConsumer"))
            .await
            .unwrap()
            .items
            .pop()
    })
    .await;
    assert_eq!(
        waiting.message.as_deref(),
        Some("waiting for first consumer to be created before binding")
    );
    assert_eq!(
        claims.get("scratch").await.unwrap().status.unwrap().phase.as_deref(),
        Some("Pending")
    );
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "consumer" },
        "spec": {
            "containers": [{ "name": "app", "image": "nginx:1" }],
            "volumes": [{ "name": "scratch", "persistentVolumeClaim": { "claimName": "scratch" } }],
        },
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let bound = eventually(Duration::from_secs(10), "scratch bound", || async {
        let c = claims.get("scratch").await.unwrap();
        (c.status.as_ref()?.phase.as_deref() == Some("Bound")).then_some(c)
    })
    .await;
    let node = pods.get("consumer").await.unwrap().spec.unwrap().node_name.unwrap();
    assert_eq!(
        bound.metadata.annotations.unwrap()["volume.kubernetes.io/selected-node"],
        node
    );

    claims.delete("data", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(10), "the released volume deleted", || async {
        volumes.get_opt(&volume).await.unwrap().is_none().then_some(())
    })
    .await;
}
