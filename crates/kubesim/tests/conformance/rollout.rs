//! What release strategies rely on: paused Deployments,
//! `progressDeadlineSeconds`, `minReadySeconds`, graceful termination with
//! preStop hooks, and `logs -f` following a container as it writes.

use std::time::Duration;

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::api::core::v1::Pod;
use kernel::testkit::eventually;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::helpers::{deployment, kubectl, spawn};

fn progressing(d: &Deployment) -> Option<(String, String, String)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Progressing")
        .map(|c| {
            (
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

/// A rollout that makes no progress for `progressDeadlineSeconds` gets
/// Progressing=False/ProgressDeadlineExceeded, and `kubectl rollout status`
/// fails on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_rollout_exceeds_its_progress_deadline() {
    let t = spawn().await;
    let deploys: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let mut d = deployment("stuck", 1, "nginx:1");
    let spec = d.spec.as_mut().unwrap();
    spec.progress_deadline_seconds = Some(1);
    spec.template.spec.as_mut().unwrap().containers[0].resources =
        Some(serde_json::from_value(json!({ "requests": { "cpu": "64" } })).unwrap());
    deploys.create(&PostParams::default(), &d).await.unwrap();
    let (status, reason, message) = eventually(Duration::from_secs(10), "deadline exceeded", || async {
        progressing(&deploys.get("stuck").await.unwrap()).filter(|c| c.0 == "False")
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ProgressDeadlineExceeded")
    );
    assert!(
        message.starts_with("ReplicaSet \"stuck-") && message.ends_with("\" has timed out progressing."),
        "{message}"
    );
    let cache = std::env::temp_dir().join(format!("kubesim-kubectl-stuck-{}", t.cluster.addr().port()));
    let out = kubectl(
        &t.cluster,
        &cache,
        &["rollout", "status", "deploy/stuck", "--timeout=20s"],
        None,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exceeded its progress deadline"), "{stderr}");
    let _ = std::fs::remove_dir_all(cache);
}

/// A paused Deployment reports Progressing=Unknown/DeploymentPaused and
/// starts no rollout for a new template; resumed, it rolls out.
#[tokio::test]
async fn a_paused_deployment_rolls_out_only_once_resumed() {
    let t = spawn().await;
    let deploys: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("web", 1, "nginx:1"))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "rolled out", || async {
        progressing(&deploys.get("web").await.unwrap()).filter(|c| c.1 == "NewReplicaSetAvailable")
    })
    .await;
    let patch = |body: serde_json::Value| {
        let deploys = deploys.clone();
        async move {
            deploys
                .patch("web", &PatchParams::default(), &Patch::Merge(body))
                .await
                .unwrap()
        }
    };
    patch(json!({ "spec": { "paused": true } })).await;
    let changed =
        patch(json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": "nginx:2" }] } } } }))
            .await;
    let generation = changed.metadata.generation;
    let (status, _, message) = eventually(Duration::from_secs(10), "paused and observed", || async {
        let d = deploys.get("web").await.unwrap();
        let observed = d.status.as_ref()?.observed_generation == generation;
        progressing(&d).filter(|c| observed && c.1 == "DeploymentPaused")
    })
    .await;
    assert_eq!((status.as_str(), message.as_str()), ("Unknown", "Deployment is paused"));
    assert_eq!(
        sets.list(&ListParams::default()).await.unwrap().items.len(),
        1,
        "no new ReplicaSet while paused"
    );

    patch(json!({ "spec": { "paused": false } })).await;
    eventually(Duration::from_secs(10), "the new template rolled out", || async {
        let d = deploys.get("web").await.unwrap();
        let s = d.status.clone()?;
        let done = progressing(&d).is_some_and(|c| c.1 == "NewReplicaSetAvailable")
            && s.updated_replicas == Some(1)
            && s.available_replicas == Some(1);
        (done && sets.list(&ListParams::default()).await.unwrap().items.len() == 2).then_some(())
    })
    .await;
}

/// A paused Deployment caught mid-rollout and then scaled shares the new
/// replicas (plus maxSurge) among its ReplicaSets in proportion to their
/// sizes, as the Deployment controller does: 3 old + 2 new of a 4-replica
/// Deployment (max 5) become 6 + 4 when it is scaled to 8 (max 10).
#[tokio::test]
async fn a_paused_deployment_scales_its_replica_sets_proportionally() {
    let t = spawn().await;
    let deploys: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("web", 4, "nginx:1"))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "rolled out", || async {
        progressing(&deploys.get("web").await.unwrap()).filter(|c| c.1 == "NewReplicaSetAvailable")
    })
    .await;
    // A new template whose pods never schedule: the rollout stalls at 3 old
    // (maxUnavailable 1) and 2 new (maxSurge 1) pods.
    let stuck = json!({ "spec": { "template": { "spec": { "containers": [{
        "name": "app", "image": "nginx:2", "resources": { "requests": { "cpu": "64" } },
    }] } } } });
    deploys
        .patch("web", &PatchParams::default(), &Patch::Strategic(stuck))
        .await
        .unwrap();
    let sizes = || async {
        let mut by_image: Vec<(String, i32)> = sets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|rs| {
                let spec = rs.spec.unwrap();
                let image = spec.template.unwrap().spec.unwrap().containers[0]
                    .image
                    .clone()
                    .unwrap();
                (image, spec.replicas.unwrap_or(0))
            })
            .collect();
        by_image.sort();
        by_image
    };
    let stalled = vec![("nginx:1".to_string(), 3), ("nginx:2".to_string(), 2)];
    eventually(Duration::from_secs(10), "the rollout stalls at 3 + 2", || async {
        (sizes().await == stalled).then_some(())
    })
    .await;
    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "paused": true } })),
        )
        .await
        .unwrap();
    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 8 } })),
        )
        .await
        .unwrap();
    let scaled = vec![("nginx:1".to_string(), 6), ("nginx:2".to_string(), 4)];
    eventually(Duration::from_secs(10), "scaled proportionally to 6 + 4", || async {
        (sizes().await == scaled).then_some(())
    })
    .await;
    for rs in sets.list(&ListParams::default()).await.unwrap().items {
        let annotations = rs.metadata.annotations.unwrap();
        assert_eq!(annotations["deployment.kubernetes.io/desired-replicas"], "8");
        assert_eq!(annotations["deployment.kubernetes.io/max-replicas"], "10");
    }
}

/// With `minReadySeconds` a ready pod only counts as available after that long.
#[tokio::test]
async fn min_ready_seconds_delays_availability() {
    let t = spawn().await;
    let deploys: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let mut d = deployment("slowstart", 1, "nginx:1");
    d.spec.as_mut().unwrap().min_ready_seconds = Some(2);
    deploys.create(&PostParams::default(), &d).await.unwrap();
    let first_ready = eventually(Duration::from_secs(10), "ready", || async {
        let s = deploys.get("slowstart").await.unwrap().status?;
        (s.ready_replicas == Some(1)).then_some(s)
    })
    .await;
    assert_ne!(first_ready.available_replicas, Some(1), "ready is not yet available");
    eventually(Duration::from_secs(10), "available", || async {
        let s = deploys.get("slowstart").await.unwrap().status?;
        (s.available_replicas == Some(1)).then_some(())
    })
    .await;
}

/// `logs -f` of a Job's pod streams its lines and ends when the container
/// terminates; following a server container, new lines keep arriving.
#[tokio::test]
async fn following_a_log_streams_new_lines_until_the_container_ends() {
    let t = spawn().await;
    let job: Job = serde_json::from_value(json!({
        "metadata": { "name": "steps" },
        "spec": { "template": {
            "metadata": { "annotations": { "kubesim.io/run-seconds": "1.5" } },
            "spec": { "restartPolicy": "Never", "containers": [{
                "name": "run", "image": "busybox:1.36", "command": ["sh", "-c", "echo one; echo two"],
            }] },
        } },
    }))
    .unwrap();
    Api::<Job>::namespaced(t.client.clone(), "default")
        .create(&PostParams::default(), &job)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let name = eventually(Duration::from_secs(10), "the job's pod running", || async {
        let list = pods
            .list(&ListParams::default().labels("job-name=steps"))
            .await
            .unwrap();
        let p = list.items.into_iter().next()?;
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then(|| p.metadata.name.unwrap())
    })
    .await;
    let follow = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let lines: Vec<String> = tokio::time::timeout(
        Duration::from_secs(10),
        pods.log_stream(&name, &follow).await.unwrap().lines().try_collect(),
    )
    .await
    .expect("the stream ends when the container terminates")
    .unwrap();
    assert_eq!(lines, ["one", "two"]);
    assert_eq!(
        pods.get(&name).await.unwrap().status.unwrap().phase.as_deref(),
        Some("Succeeded")
    );

    let server: Pod = serde_json::from_value(json!({
        "metadata": { "name": "server" },
        "spec": { "containers": [{ "name": "app", "image": "nginx:1" }] },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &server).await.unwrap();
    eventually(Duration::from_secs(10), "server running", || async {
        let p = pods.get("server").await.unwrap();
        (p.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    let tail = LogParams {
        follow: true,
        tail_lines: Some(1),
        ..LogParams::default()
    };
    let mut stream = pods.log_stream("server", &tail).await.unwrap().lines();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .expect("a new line within seconds")
            .unwrap()
            .unwrap();
        seen.push(line);
    }
    assert!(seen[0].ends_with("simulated log line 20"), "{seen:?}");
    assert!(seen[2].ends_with("simulated log line 22"), "{seen:?}");
}

/// A deleted running pod is marked (deletionTimestamp, its
/// terminationGracePeriodSeconds) and stays while its preStop hook runs;
/// the kubelet reports Killing and then removes it. A preStop longer than
/// the grace period is cut short by it; grace period 0 removes at once.
#[tokio::test]
async fn pods_terminate_gracefully_after_their_pre_stop_hook() {
    let t = spawn().await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let pod = |name: &str, grace: i64, hook_seconds: i64| -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": {
                "terminationGracePeriodSeconds": grace,
                "containers": [{
                    "name": "app", "image": "nginx:1",
                    "lifecycle": { "preStop": { "exec": {
                        "command": ["sh", "-c", format!("sleep {hook_seconds}")],
                    } } },
                }],
            },
        }))
        .unwrap()
    };
    for p in [pod("drains", 30, 1), pod("capped", 1, 60), pod("forced", 30, 60)] {
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    for name in ["drains", "capped", "forced"] {
        eventually(Duration::from_secs(10), "running", || async {
            let p = pods.get(name).await.unwrap();
            (p.status?.phase.as_deref() == Some("Running")).then_some(())
        })
        .await;
    }
    let started = std::time::Instant::now();
    let marked = pods
        .delete("drains", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("marked, not gone");
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
    assert!(marked.metadata.deletion_timestamp.is_some());
    pods.delete("capped", &DeleteParams::default()).await.unwrap();
    let forced = pods
        .delete(
            "forced",
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            },
        )
        .await
        .unwrap();
    assert!(
        forced.is_right() || pods.get_opt("forced").await.unwrap().is_none(),
        "grace 0 deletes at once"
    );

    let killing = eventually(Duration::from_secs(5), "Killing", || async {
        Api::<Event>::namespaced(t.client.clone(), "default")
            .list(&ListParams::default().fields("involvedObject.name=drains,reason=Killing"))
            .await
            .unwrap()
            .items
            .pop()
    })
    .await;
    assert_eq!(killing.message.as_deref(), Some("Stopping container app"));
    assert!(
        pods.get_opt("drains").await.unwrap().is_some(),
        "still terminating during preStop"
    );
    for name in ["drains", "capped"] {
        eventually(Duration::from_secs(10), "removed", || async {
            pods.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the hook and the grace period were waited for"
    );
}
