use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{LimitRange, Node, Pod, ResourceQuota};
use kernel::testkit::eventually;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::helpers::{deployment, spawn, spawn_with, status_of};

fn condition(d: &Deployment, kind: &str) -> Option<(String, String)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A Deployment gets a ReplicaSet (pod-template-hash) whose pods are
/// scheduled and become Ready; status reports ready/available replicas and
/// Available + Progressing=NewReplicaSetAvailable, as `rollout status` reads.
#[tokio::test]
async fn a_deployment_becomes_available_with_ready_replicas() {
    let t = spawn().await;
    let deploys: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("web", 3, "nginx:1"))
        .await
        .unwrap();
    let done = eventually(Duration::from_secs(10), "deployment available", || async {
        let d = deploys.get("web").await.unwrap();
        (condition(&d, "Progressing") == Some(("True".into(), "NewReplicaSetAvailable".into()))).then_some(d)
    })
    .await;
    let status = done.status.unwrap();
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.available_replicas,
            status.updated_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3))
    );
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        condition(&deploys.get("web").await.unwrap(), "Available").unwrap().0,
        "True"
    );
    let sets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
    let rs = sets
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .remove(0);
    let hash = rs.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(rs.metadata.name.as_deref(), Some(format!("web-{hash}").as_str()));
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let list = pods
        .list(&ListParams::default().labels(&format!("pod-template-hash={hash}")))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 3);
    for p in &list.items {
        assert!(ready(p));
        assert_eq!(
            p.metadata.owner_references.as_ref().unwrap()[0].uid,
            rs.metadata.uid.clone().unwrap()
        );
        assert!(p.spec.as_ref().unwrap().node_name.is_some());
    }
    // Garbage collection: deleting the deployment removes its replicasets,
    // and its pods once their kubelets have stopped them (graceful termination).
    deploys.delete("web", &DeleteParams::default()).await.unwrap();
    assert!(sets.list(&ListParams::default()).await.unwrap().items.is_empty());
    eventually(Duration::from_secs(5), "the pods terminated", || async {
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
            .then_some(())
    })
    .await;
}

/// A pod whose requests fit no node stays Pending with
/// PodScheduled=False/Unschedulable, as the scheduler reports it.
#[tokio::test]
async fn a_pod_too_big_for_every_node_stays_pending_unschedulable() {
    let t = spawn_with(|mut c| {
        c.nodes = 2;
        c.node_cpu = "1".into();
        c
    })
    .await;
    let nodes: Api<Node> = Api::all(t.client.clone());
    assert_eq!(nodes.list(&ListParams::default()).await.unwrap().items.len(), 2);
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "huge" },
        "spec": { "containers": [{ "name": "app", "image": "x", "resources": { "requests": { "cpu": "1500m" } } }] },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let pending = eventually(Duration::from_secs(5), "unschedulable condition", || async {
        let p = pods.get("huge").await.unwrap();
        let status = p.status.clone()?;
        let c = status.conditions?.into_iter().find(|c| c.type_ == "PodScheduled")?;
        (c.status == "False").then_some((status.phase, c))
    })
    .await;
    assert_eq!(pending.0.as_deref(), Some("Pending"));
    assert_eq!(pending.1.reason.as_deref(), Some("Unschedulable"));
    assert!(
        pending
            .1
            .message
            .unwrap()
            .starts_with("0/2 nodes are available: 2 Insufficient cpu")
    );
}

/// LimitRanger: a pod (or a Deployment's pod) that sets no memory gets the
/// namespace's LimitRange defaults before the quota's admission, so a
/// quota on `requests.memory` admits it instead of refusing it with
/// `must specify requests.memory`; a container's own values are kept.
#[tokio::test]
async fn limit_range_defaults_are_applied_to_a_pod_before_quota_admission() {
    let t = spawn().await;
    let ranges: Api<LimitRange> = Api::namespaced(t.client.clone(), "default");
    let range: LimitRange = serde_json::from_value(json!({
        "metadata": { "name": "defaults" },
        "spec": { "limits": [{ "type": "Container",
            "default": { "cpu": "500m", "memory": "256Mi" },
            "defaultRequest": { "cpu": "100m", "memory": "128Mi" } }] },
    }))
    .unwrap();
    ranges.create(&PostParams::default(), &range).await.unwrap();
    let quotas: Api<ResourceQuota> = Api::namespaced(t.client.clone(), "default");
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": { "name": "memory" },
        "spec": { "hard": { "requests.memory": "1Gi", "limits.memory": "2Gi" } },
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let bare: Pod = serde_json::from_value(json!({
        "metadata": { "name": "bare" },
        "spec": { "containers": [
            { "name": "app", "image": "nginx:1" },
            { "name": "own", "image": "nginx:1", "resources": { "limits": { "memory": "64Mi" } } },
        ] },
    }))
    .unwrap();
    let created = pods.create(&PostParams::default(), &bare).await.unwrap();
    let value = serde_json::to_value(&created).unwrap();
    let app = &value["spec"]["containers"][0]["resources"];
    assert_eq!(app["requests"]["memory"], "128Mi", "{value}");
    assert_eq!(app["limits"]["memory"], "256Mi", "{value}");
    assert_eq!(app["requests"]["cpu"], "100m", "{value}");
    // Its own limit stays, and its request follows that limit (not the default request).
    let own = &value["spec"]["containers"][1]["resources"];
    assert_eq!(own["limits"]["memory"], "64Mi", "{value}");
    assert_eq!(own["requests"]["memory"], "64Mi", "{value}");
    assert_eq!(value["status"]["qosClass"], "Burstable", "{value}");
    assert!(
        value["metadata"]["annotations"]["kubernetes.io/limit-ranger"]
            .as_str()
            .unwrap()
            .starts_with("LimitRanger plugin set: "),
        "{value}"
    );
    // A controller's pods are admitted the same way.
    let deploys: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let mut d = deployment("lean", 1, "nginx:1");
    d.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0].resources = None;
    deploys.create(&PostParams::default(), &d).await.unwrap();
    let pod = eventually(Duration::from_secs(10), "the lean pod", || async {
        pods.list(&ListParams::default().labels("app=lean"))
            .await
            .unwrap()
            .items
            .into_iter()
            .next()
    })
    .await;
    let requests = pod.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap()
        .requests
        .unwrap();
    assert_eq!(requests["memory"].0, "128Mi");
}

/// ResourceQuota: status.used tracks usage; a pod that would exceed
/// spec.hard is refused with 403 `exceeded quota`; controller-created pods
/// that are refused show as a ReplicaFailure condition.
#[tokio::test]
async fn a_quota_refuses_pods_beyond_its_hard_limits() {
    let t = spawn().await;
    let quotas: Api<ResourceQuota> = Api::namespaced(t.client.clone(), "default");
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": { "name": "compute" },
        "spec": { "hard": { "pods": "2", "requests.cpu": "1" } },
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    let deploys: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("web", 3, "nginx:1"))
        .await
        .unwrap();
    let failure = eventually(Duration::from_secs(10), "ReplicaFailure on the deployment", || async {
        let d = deploys.get("web").await.unwrap();
        d.status?.conditions?.into_iter().find(|c| c.type_ == "ReplicaFailure")
    })
    .await;
    assert_eq!(failure.reason.as_deref(), Some("FailedCreate"));
    let message = failure.message.unwrap();
    assert!(
        message.starts_with("pods \"web-"),
        "refusals name the generateName prefix: {message}"
    );
    assert!(
        message.contains("is forbidden: exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2"),
        "{message}"
    );
    let used = eventually(Duration::from_secs(5), "quota usage", || async {
        let q = quotas.get("compute").await.unwrap();
        let used = q.status?.used?;
        (used.get("pods").map(|q| q.0.as_str()) == Some("2")).then_some(used)
    })
    .await;
    assert_eq!(used["requests.cpu"].0, "200m");
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "extra" },
        "spec": { "containers": [{ "name": "app", "image": "x", "resources": { "requests": { "cpu": "100m" } } }] },
    }))
    .unwrap();
    let refused = status_of(pods.create(&PostParams::default(), &pod).await);
    assert_eq!((refused.code, refused.reason.as_str()), (403, "Forbidden"));
    assert!(
        refused
            .message
            .starts_with("pods \"extra\" is forbidden: exceeded quota: compute"),
        "{}",
        refused.message
    );
}

/// Rolling update with maxSurge=1/maxUnavailable=1 on 4 replicas: never more
/// than 5 pods, never fewer than 3 ready, and the rollout completes.
#[tokio::test]
async fn a_rolling_update_respects_max_surge_and_max_unavailable() {
    let t = spawn_with(|mut c| {
        c.ready_delay = Duration::from_millis(150);
        c
    })
    .await;
    let deploys: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let mut d = deployment("web", 4, "nginx:1");
    d.spec.as_mut().unwrap().strategy = Some(
        serde_json::from_value(json!({
            "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 1, "maxUnavailable": 1 },
        }))
        .unwrap(),
    );
    deploys.create(&PostParams::default(), &d).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    eventually(Duration::from_secs(10), "4 ready", || async {
        let list = pods.list(&ListParams::default()).await.unwrap();
        (list.items.iter().filter(|p| ready(p)).count() == 4).then_some(())
    })
    .await;
    deploys
        .patch("web", &PatchParams::default(), &Patch::Strategic(json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": "nginx:2" }] } } } })))
        .await
        .unwrap();
    let (mut min_ready, mut max_pods) = (usize::MAX, 0);
    let start = std::time::Instant::now();
    loop {
        let list = pods.list(&ListParams::default()).await.unwrap();
        min_ready = min_ready.min(list.items.iter().filter(|p| ready(p)).count());
        max_pods = max_pods.max(list.items.len());
        let d = deploys.get("web").await.unwrap();
        let s = d.status.clone().unwrap();
        if s.observed_generation == Some(2)
            && s.updated_replicas == Some(4)
            && s.available_replicas == Some(4)
            && s.replicas == Some(4)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "rollout did not finish: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(min_ready >= 3, "ready dropped to {min_ready}");
    assert!(max_pods <= 5, "surged to {max_pods} pods");
    let images: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.spec.unwrap().containers[0].image.clone().unwrap())
        .collect();
    assert_eq!(images, vec!["nginx:2"; 4]);
}

/// StatefulSet pods are named `<name>-<ordinal>`; a DaemonSet runs one pod
/// per node; pod logs honour tailLines.
#[tokio::test]
async fn statefulsets_get_ordinal_pods_daemonsets_one_per_node_and_logs_tail() {
    let t = spawn().await;
    let template = json!({
        "selector": { "matchLabels": { "app": "db" } },
        "template": { "metadata": { "labels": { "app": "db" } }, "spec": { "containers": [{ "name": "db", "image": "pg" }] } },
    });
    let mut sts_spec = template.clone();
    sts_spec["replicas"] = json!(3);
    sts_spec["serviceName"] = json!("db");
    let sts: StatefulSet = serde_json::from_value(json!({ "metadata": { "name": "db" }, "spec": sts_spec })).unwrap();
    Api::<StatefulSet>::namespaced(t.client.clone(), "default")
        .create(&PostParams::default(), &sts)
        .await
        .unwrap();
    let mut ds_spec = template.clone();
    ds_spec["selector"]["matchLabels"]["app"] = json!("agent");
    ds_spec["template"]["metadata"]["labels"]["app"] = json!("agent");
    let ds: DaemonSet = serde_json::from_value(json!({ "metadata": { "name": "agent" }, "spec": ds_spec })).unwrap();
    let daemonsets: Api<DaemonSet> = Api::namespaced(t.client.clone(), "default");
    daemonsets.create(&PostParams::default(), &ds).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    eventually(Duration::from_secs(10), "statefulset pods ready", || async {
        let mut names: Vec<String> = pods
            .list(&ListParams::default().labels("app=db"))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(ready)
            .filter_map(|p| p.metadata.name)
            .collect();
        names.sort();
        (names == ["db-0", "db-1", "db-2"]).then_some(())
    })
    .await;
    let status = eventually(Duration::from_secs(10), "daemonset ready", || async {
        let s = daemonsets.get("agent").await.unwrap().status?;
        (s.number_ready == 3).then_some(s)
    })
    .await;
    assert_eq!(status.desired_number_scheduled, 3);
    let logs = pods
        .logs(
            "db-0",
            &LogParams {
                tail_lines: Some(3),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(logs.lines().count(), 3);
    assert!(logs.contains("db-0/db"));
}

/// A pod taken out of its ReplicaSet (relabelled out of the selector and
/// its ownerReferences removed, the way a pod is pulled out for debugging)
/// is no longer counted: the ReplicaSet starts a replacement and leaves the
/// orphan running.
#[tokio::test]
async fn a_pod_released_by_its_replicaset_is_replaced_and_left_alone() {
    let t = spawn().await;
    let deploys: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("web", 2, "nginx:1"))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let running = eventually(Duration::from_secs(10), "two pods", || async {
        let l = pods.list(&ListParams::default()).await.unwrap();
        (l.items.len() == 2).then_some(l.items)
    })
    .await;
    let released = running[0].metadata.name.clone().unwrap();
    pods.patch(
        &released,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"ownerReferences": null, "labels": {"app": "debug"}}})),
    )
    .await
    .unwrap();
    let owned = eventually(Duration::from_secs(10), "a replacement beside the orphan", || async {
        let l = pods.list(&ListParams::default()).await.unwrap();
        let owned: Vec<Pod> = l
            .items
            .into_iter()
            .filter(|p| p.metadata.owner_references.as_ref().is_some_and(|r| !r.is_empty()))
            .collect();
        (owned.len() == 2).then_some(owned)
    })
    .await;
    assert!(
        owned
            .iter()
            .all(|p| p.metadata.name.as_deref() != Some(released.as_str()))
    );
    assert!(pods.get(&released).await.is_ok(), "the orphan is not deleted");
}

/// A `restartPolicy: Always` container whose simulated run fails
/// (`kubesim.io/exit-code`) crash-loops as on a real node: terminated with
/// its exit code, waiting in CrashLoopBackOff (pod not Ready, a BackOff
/// warning, `kubectl get` shows the reason), restarted after 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_container_under_restart_policy_always_crash_loops() {
    let t = spawn().await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "crashy", "annotations": {
            "kubesim.io/exit-code": "2", "kubesim.io/run-seconds": "0.2",
        } },
        "spec": { "containers": [{ "name": "app", "image": "busybox:1.36" }] },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let container = |p: &Pod| p.status.as_ref()?.container_statuses.as_ref()?.first().cloned();
    let crashed = eventually(Duration::from_secs(10), "CrashLoopBackOff", || async {
        let p = pods.get("crashy").await.unwrap();
        let cs = container(&p)?;
        let waiting = cs.state.as_ref()?.waiting.as_ref()?;
        (waiting.reason.as_deref() == Some("CrashLoopBackOff")).then_some((p, cs))
    })
    .await;
    let (p, cs) = crashed;
    assert_eq!(cs.restart_count, 1);
    assert!(!cs.ready);
    let last = cs.last_state.unwrap().terminated.unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (2, Some("Error")));
    let message = cs.state.unwrap().waiting.unwrap().message.unwrap();
    assert!(
        message.starts_with("back-off 10s restarting failed container=app pod=crashy_default("),
        "{message}"
    );
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
    assert!(!ready(&p), "a crash-looping pod is not Ready");

    let cache = t.cluster.kubeconfig_path().with_file_name("kubectl-cache");
    let out = crate::helpers::kubectl(&t.cluster, &cache, &["get", "pod", "crashy"], None);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("CrashLoopBackOff"), "{table}");

    let events = Api::<k8s_openapi::api::core::v1::Event>::namespaced(t.client.clone(), "default")
        .list(&ListParams::default().fields("involvedObject.name=crashy,reason=BackOff"))
        .await
        .unwrap();
    assert_eq!(events.items[0].type_.as_deref(), Some("Warning"));
    assert!(
        events.items[0]
            .message
            .as_deref()
            .unwrap()
            .starts_with("Back-off restarting failed container app in pod crashy_default("),
        "{:?}",
        events.items[0].message
    );

    // After the 10 s back-off it runs again, and fails again.
    eventually(Duration::from_secs(20), "the second crash", || async {
        let cs = container(&pods.get("crashy").await.unwrap())?;
        (cs.restart_count == 2).then_some(())
    })
    .await;
}
