//! Events: the reasons and messages of the real scheduler, kubelet and
//! controllers, counted when they repeat, visible through core/v1 and
//! events.k8s.io/v1, in `kubectl describe`, and expiring after the TTL.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Event, Pod, ResourceQuota};
use k8s_openapi::api::events::v1::Event as EventV1;
use kernel::testkit::eventually;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use crate::helpers::{TestCluster, deployment, kubectl, spawn, spawn_with};

async fn events(t: &TestCluster, selector: &str) -> Vec<Event> {
    Api::<Event>::namespaced(t.client.clone(), "default")
        .list(&ListParams::default().fields(selector))
        .await
        .unwrap()
        .items
}

async fn event_with(t: &TestCluster, selector: &str, reason: &str) -> Event {
    eventually(Duration::from_secs(10), &format!("a {reason} event"), || async {
        events(t, selector)
            .await
            .into_iter()
            .find(|e| e.reason.as_deref() == Some(reason))
    })
    .await
}

/// A Deployment's rollout reports ScalingReplicaSet, SuccessfulCreate,
/// Scheduled and the kubelet's Pulling/Pulled/Created/Started, with the
/// real messages, sources and field paths.
#[tokio::test]
async fn a_rollout_reports_the_events_of_each_component() {
    let t = spawn().await;
    Api::<Deployment>::namespaced(t.client.clone(), "default")
        .create(&PostParams::default(), &deployment("web", 1, "nginx:1.27"))
        .await
        .unwrap();
    let scaled = event_with(
        &t,
        "involvedObject.kind=Deployment,involvedObject.name=web",
        "ScalingReplicaSet",
    )
    .await;
    let message = scaled.message.unwrap();
    assert!(
        message.starts_with("Scaled up replica set web-") && message.ends_with(" from 0 to 1"),
        "{message}"
    );
    assert_eq!(
        scaled.source.unwrap().component.as_deref(),
        Some("deployment-controller")
    );
    let created = event_with(&t, "involvedObject.kind=ReplicaSet", "SuccessfulCreate").await;
    let pod_name = created
        .message
        .unwrap()
        .strip_prefix("Created pod: ")
        .unwrap()
        .to_string();
    let pod = Api::<Pod>::namespaced(t.client.clone(), "default")
        .get(&pod_name)
        .await
        .unwrap();
    let on_pod = format!(
        "involvedObject.name={pod_name},involvedObject.uid={}",
        pod.metadata.uid.unwrap()
    );
    let scheduled = event_with(&t, &on_pod, "Scheduled").await;
    // Read again once scheduled: the first read may come before the node is set.
    let pod = Api::<Pod>::namespaced(t.client.clone(), "default")
        .get(&pod_name)
        .await
        .unwrap();
    assert_eq!(
        (scheduled.type_.as_deref(), scheduled.message.as_deref()),
        (
            Some("Normal"),
            Some(
                format!(
                    "Successfully assigned default/{pod_name} to {}",
                    pod.spec.unwrap().node_name.unwrap()
                )
                .as_str()
            )
        )
    );
    assert_eq!(
        scheduled.source.unwrap().component.as_deref(),
        Some("default-scheduler")
    );
    let started = event_with(&t, &on_pod, "Started").await;
    assert_eq!(started.message.as_deref(), Some("Started container app"));
    assert_eq!(
        started.involved_object.field_path.as_deref(),
        Some("spec.containers{app}")
    );
    assert_eq!(started.source.unwrap().component.as_deref(), Some("kubelet"));
    let reasons: Vec<String> = events(&t, &on_pod).await.into_iter().filter_map(|e| e.reason).collect();
    for reason in ["Pulling", "Pulled", "Created"] {
        assert!(reasons.iter().any(|r| r == reason), "{reason} in {reasons:?}");
    }
    let pulling = event_with(&t, &on_pod, "Pulling").await;
    assert_eq!(pulling.message.as_deref(), Some("Pulling image \"nginx:1.27\""));

    // The same events through events.k8s.io/v1.
    let v1 = Api::<EventV1>::namespaced(t.client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap();
    let seen = v1
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("Scheduled"))
        .expect("the Scheduled event in events.k8s.io/v1");
    assert_eq!(
        seen.regarding.as_ref().unwrap().name.as_deref(),
        Some(pod_name.as_str())
    );
    assert!(seen.note.as_deref().unwrap().starts_with("Successfully assigned"));
    assert_eq!(seen.reporting_controller.as_deref(), Some("default-scheduler"));
}

/// A quota refusal is reported on the ReplicaSet as FailedCreate with the
/// quota's message, counted as it repeats; an unschedulable pod gets
/// FailedScheduling.
#[tokio::test]
async fn refusals_are_warnings_with_the_real_messages_and_repeat_as_a_count() {
    let t = spawn_with(|mut c| {
        c.node_cpu = "1".into();
        c
    })
    .await;
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": { "name": "small" }, "spec": { "hard": { "pods": "1" } },
    }))
    .unwrap();
    Api::<ResourceQuota>::namespaced(t.client.clone(), "default")
        .create(&PostParams::default(), &quota)
        .await
        .unwrap();
    Api::<Deployment>::namespaced(t.client.clone(), "default")
        .create(&PostParams::default(), &deployment("api", 2, "nginx:1"))
        .await
        .unwrap();
    let refused = eventually(Duration::from_secs(10), "a repeated FailedCreate", || async {
        events(&t, "involvedObject.kind=ReplicaSet,reason=FailedCreate")
            .await
            .into_iter()
            .find(|e| e.count.unwrap_or(0) >= 2)
    })
    .await;
    assert_eq!(refused.type_.as_deref(), Some("Warning"));
    let message = refused.message.unwrap();
    assert!(
        message.starts_with("Error creating: pods \"api-")
            && message
                .contains("is forbidden: exceeded quota: small, requested: pods=1, used: pods=1, limited: pods=1"),
        "{message}"
    );
    assert!(refused.last_timestamp.unwrap().0 >= refused.first_timestamp.unwrap().0);

    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "kube-system");
    let huge: Pod = serde_json::from_value(json!({
        "metadata": { "name": "huge" },
        "spec": { "containers": [{ "name": "app", "image": "x:1", "resources": { "requests": { "cpu": "2" } } }] },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &huge).await.unwrap();
    let failed = eventually(Duration::from_secs(10), "FailedScheduling", || async {
        Api::<Event>::namespaced(t.client.clone(), "kube-system")
            .list(&ListParams::default().fields("involvedObject.name=huge,reason=FailedScheduling"))
            .await
            .unwrap()
            .items
            .pop()
    })
    .await;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert!(
        failed
            .message
            .unwrap()
            .starts_with("0/3 nodes are available: 3 Insufficient cpu."),
        "the scheduler's message"
    );
}

/// Events older than the cluster's event TTL are deleted, as the API
/// server's `--event-ttl` expires them.
#[tokio::test]
async fn events_expire_after_the_event_ttl() {
    let t = spawn_with(|mut c| {
        c.event_ttl = Duration::from_secs(2);
        c
    })
    .await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "short-lived" },
        "spec": { "containers": [{ "name": "app", "image": "nginx:1" }] },
    }))
    .unwrap();
    Api::<Pod>::namespaced(t.client.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    event_with(&t, "involvedObject.name=short-lived", "Scheduled").await;
    eventually(Duration::from_secs(10), "the pod's events expired", || async {
        events(&t, "involvedObject.name=short-lived")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    let v1 = Api::<EventV1>::namespaced(t.client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        v1.items
            .iter()
            .all(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) != Some("short-lived")),
        "expired in both views"
    );
}

/// `kubectl describe pod` lists the pod's events and `kubectl get events`
/// lists the namespace's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_describe_and_get_events_show_them() {
    let t = spawn().await;
    let cache = std::env::temp_dir().join(format!("kubesim-kubectl-events-{}", t.cluster.addr().port()));
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "described" },
        "spec": { "containers": [{ "name": "app", "image": "nginx:1" }] },
    }))
    .unwrap();
    Api::<Pod>::namespaced(t.client.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    event_with(&t, "involvedObject.name=described", "Started").await;
    let out = kubectl(&t.cluster, &cache, &["describe", "pod", "described"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "describe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events_section = text.split("Events:").nth(1).unwrap_or_default();
    for needle in [
        "Scheduled",
        "Successfully assigned default/described",
        "Started container app",
        "kubelet",
    ] {
        assert!(events_section.contains(needle), "{needle} in {text}");
    }
    let out = kubectl(&t.cluster, &cache, &["get", "events", "-o", "name"], None);
    assert!(
        out.status.success(),
        "get events: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("event/described."));
    let _ = std::fs::remove_dir_all(cache);
}

/// An HPA whose target runs fewer replicas than `minReplicas` scales it up
/// with SuccessfulRescale; without a metrics API it reports
/// ScalingActive=False/FailedGetResourceMetric, as on a cluster without
/// metrics-server.
#[tokio::test]
async fn an_autoscaler_enforces_its_minimum_and_reports_the_rescale() {
    let t = spawn().await;
    let deploys: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("scaled", 1, "nginx:1"))
        .await
        .unwrap();
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": { "name": "scaled" },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "scaled" },
            "minReplicas": 3, "maxReplicas": 5,
            "metrics": [{
                "type": "Resource",
                "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 80 } },
            }],
        },
    }))
    .unwrap();
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(t.client.clone(), "default");
    hpas.create(&PostParams::default(), &hpa).await.unwrap();
    let rescale = event_with(&t, "involvedObject.kind=HorizontalPodAutoscaler", "SuccessfulRescale").await;
    assert_eq!(
        rescale.message.as_deref(),
        Some("New size: 3; reason: Current number of replicas below Spec.MinReplicas")
    );
    assert_eq!(deploys.get("scaled").await.unwrap().spec.unwrap().replicas, Some(3));
    let status = eventually(Duration::from_secs(10), "hpa status", || async {
        let s = hpas.get("scaled").await.unwrap().status?;
        (s.current_replicas == Some(3)).then_some(s)
    })
    .await;
    assert_eq!(status.desired_replicas, 3);
    assert!(status.last_scale_time.is_some());
    let active = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "ScalingActive")
        .unwrap();
    assert_eq!(
        (active.status.as_str(), active.reason.as_deref()),
        ("False", Some("FailedGetResourceMetric"))
    );
}
