//! Failover against kubesim clusters: automatic failover within the
//! toleration plus detection, manual failover only when triggered, failback
//! without a zero-ready moment, singleton fencing (confirmed stopped in a
//! reachable cluster, the lease under a partition, a restart between the
//! two halves), a quota refusal reported on the binding, and a restart in
//! the middle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use federation::binding::{Bindings, Health};
use federation::failover::{self, FailoverSettings, Operation, Reconciler};
use kernel::caller::Caller;
use kernel::page::Page;
use kernel::testkit::eventually;
use kubesim::{Fault, RunningCluster};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::bindings::{CpuCap, app, fleet, health, propagator, replicas, request};
use crate::helpers::{Fed, Running};

/// The propagation timeout matches the test propagator's (3 s).
const SETTINGS: FailoverSettings = FailoverSettings {
    poll: Duration::from_millis(50),
    lease_ttl: Duration::from_secs(2),
    failback_stabilisation: Duration::from_secs(3600),
    failback_parallelism: 16,
    propagation_timeout: Duration::from_secs(3),
    failback_window: None,
};

fn reconciler(fed: &Fed, admission: Arc<CpuCap>) -> Running {
    Running::failover(Reconciler::new(
        fed.pool().clone(),
        fed.clients.clone(),
        admission,
        SETTINGS,
    ))
}

/// Primary group dc0 (the first cluster), backup dc1.
fn primary_then_backup(extra: Value) -> Value {
    let mut p = json!({"policy": {"groups": [{"data_centres": ["dc0"]}, {"data_centres": ["dc1"]}]}});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

async fn operations(fed: &Fed, binding: Uuid) -> Vec<Operation> {
    failover::list(
        fed.pool(),
        &Caller::platform_admin("t"),
        Some(binding),
        Page {
            limit: 100,
            after: None,
        },
    )
    .await
    .unwrap()
    .0
}

async fn until_state(fed: &Fed, binding: Uuid, state: &str, within: Duration) -> Operation {
    eventually(within, &format!("an operation {state}"), || async {
        operations(fed, binding)
            .await
            .into_iter()
            .rev()
            .find(|o| o.state == state)
    })
    .await
}

/// Ready replicas of Deployment acme-web/web in the cluster's own store
/// (readable whatever fault the cluster's API has).
fn ready_in(c: &RunningCluster) -> i64 {
    c.store()
        .get(kubesim::resource::DEPLOYMENTS, "acme-web", "web")
        .map_or(0, |d| d["status"]["readyReplicas"].as_i64().unwrap_or(0))
}

fn present_in(c: &RunningCluster) -> bool {
    c.store().get(kubesim::resource::DEPLOYMENTS, "acme-web", "web").is_ok()
}

async fn healthy(fed: &Fed, admission: &CpuCap, id: Uuid) {
    eventually(Duration::from_secs(10), "Healthy", || async {
        (health(fed, admission, id).await.0 == Health::Healthy).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_auto_failover_binding_is_available_in_the_backup_dc_within_toleration_plus_detection_and_its_stale_copy_goes_on_return()
 {
    let fed = Fed::start().await;
    let (clusters, _m, _p) = fleet(&fed, &["af1", "af2"]).await;
    let admission = Arc::new(CpuCap {
        cap_milli: 100_000,
        ..Default::default()
    });
    let (b, _) = Bindings::new(fed.pool(), &*admission)
        .apply(
            &Caller::platform_admin("t"),
            request(
                app("100m"),
                primary_then_backup(json!({"dr_tier": "auto-failover", "toleration_seconds": 1})),
                2,
            ),
        )
        .await
        .unwrap();
    let _prop = propagator(&fed, admission.clone(), Duration::from_secs(3600));
    let _fail = reconciler(&fed, admission.clone());
    healthy(&fed, &admission, b.id).await;
    assert_eq!(
        (replicas(&fed, "af1").await, replicas(&fed, "af2").await),
        (Some(2), None)
    );

    let fault = Instant::now();
    clusters[0].faults().set(Fault::Down);
    let op = until_state(&fed, b.id, "available", Duration::from_secs(15)).await;
    let rto = fault.elapsed();
    assert_eq!(
        (op.kind.as_str(), op.trigger.as_str(), op.from_cluster.as_str()),
        ("failover", "automatic", "af1")
    );
    assert_eq!(op.to_clusters, vec!["af2".to_string()]);
    assert!(ready_in(&clusters[1]) == 2, "2 ready replicas in af2");
    // How fast is the failover benchmark's question (benches/failover.rs
    // prints it against the target); a bound here only measured how loaded
    // the machine was. The order of the steps is this test's.
    eprintln!("available in af2 {rto:?} after the fault");
    let (detected, replaced, available) = (op.fault_detected_at, op.replaced_at.unwrap(), op.available_at.unwrap());
    assert!(
        op.created_at - detected >= chrono::Duration::milliseconds(1000),
        "not before the toleration"
    );
    assert!(detected <= replaced && replaced <= available);
    let events: Vec<paas_proto::v1::FailoverChanged> = fed.events("federation.failover.changed").await;
    let states: Vec<&str> = events
        .iter()
        .filter(|e| e.id == op.id.to_string())
        .map(|e| e.state.as_str())
        .collect();
    assert_eq!(states, ["pending", "placing", "applied", "available"]);

    clusters[0].faults().recover();
    fed.until_status("af1", "Ready").await;
    eventually(Duration::from_secs(10), "the stale copy in af1 removed", || async {
        (!present_in(&clusters[0])).then_some(())
    })
    .await;
    healthy(&fed, &admission, b.id).await;
}

#[tokio::test]
async fn a_manual_binding_stays_put_until_an_operator_triggers_failover_and_fails_back_without_a_zero_ready_moment() {
    let fed = Fed::start().await;
    let (clusters, _m, _p) = fleet(&fed, &["mf1", "mf2"]).await;
    let admission = Arc::new(CpuCap {
        cap_milli: 100_000,
        ..Default::default()
    });
    let (b, _) = Bindings::new(fed.pool(), &*admission)
        .apply(
            &Caller::platform_admin("t"),
            request(app("100m"), primary_then_backup(json!({"toleration_seconds": 0.5})), 3),
        )
        .await
        .unwrap();
    let _prop = propagator(&fed, admission.clone(), Duration::from_secs(3600));
    let fail = reconciler(&fed, admission.clone());
    healthy(&fed, &admission, b.id).await;

    clusters[0].faults().set(Fault::Down);
    fed.until_status("mf1", "NotReady").await;
    // Out of Ready for three tolerations (by the database's clock, which the
    // reconciler reads), and a whole reconciler turn since: an auto tier
    // would have failed over by now; this one has not moved.
    eventually(
        Duration::from_secs(10),
        "mf1 out of Ready for three tolerations",
        || async {
            sqlx::query_scalar!(
                r#"SELECT now() - not_ready_since >= interval '1.5 s' AS "past!" FROM clusters WHERE name = 'mf1'"#
            )
            .fetch_one(fed.pool())
            .await
            .unwrap()
            .then_some(())
        },
    )
    .await;
    fail.looked("a failover turn after the toleration").await;
    assert!(operations(&fed, b.id).await.is_empty());
    assert!(!present_in(&clusters[1]));

    // Only an operator (or above) may trigger.
    let viewer = Caller::user(
        "v",
        vec![kernel::caller::Membership {
            tenant: crate::bindings::TENANT,
            role: kernel::caller::Role::Developer,
        }],
    );
    assert!(matches!(
        failover::trigger_failover(fed.pool(), &viewer, b.id, None).await,
        Err(kernel::Error::PermissionDenied(_))
    ));
    let op = failover::trigger_failover(fed.pool(), &Caller::platform_admin("ops"), b.id, None)
        .await
        .unwrap();
    assert_eq!((op.trigger.as_str(), op.from_cluster.as_str()), ("operator", "mf1"));
    until_state(&fed, b.id, "available", Duration::from_secs(10)).await;
    assert_eq!(ready_in(&clusters[1]), 3);

    // Failback: refused while mf1 is down, then adds mf1 before removing mf2.
    assert!(matches!(
        failover::trigger_failback(fed.pool(), &Caller::platform_admin("ops"), b.id).await,
        Err(kernel::Error::FailedPrecondition(_))
    ));
    clusters[0].faults().recover();
    fed.until_status("mf1", "Ready").await;
    eventually(Duration::from_secs(10), "stale copy removed from mf1", || async {
        (!present_in(&clusters[0])).then_some(())
    })
    .await;

    // Sample both clusters' Deployments (their own stores) while the failback runs.
    let back = failover::trigger_failback(fed.pool(), &Caller::platform_admin("ops"), b.id)
        .await
        .unwrap();
    assert_eq!((back.kind.as_str(), back.from_cluster.as_str()), ("failback", "mf1"));
    let done = async {
        until_state(&fed, b.id, "available", Duration::from_secs(10)).await;
        eventually(
            Duration::from_secs(10),
            "the failover copy removed from mf2",
            || async { (!present_in(&clusters[1])).then_some(()) },
        )
        .await;
    };
    tokio::pin!(done);
    let mut samples = Vec::new();
    loop {
        samples.push(ready_in(&clusters[0]) + ready_in(&clusters[1]));
        tokio::select! {
            _ = &mut done => break,
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
    assert!(samples.len() > 20, "{} samples", samples.len());
    assert!(
        samples.iter().all(|r| *r > 0),
        "a moment with no ready replica: {samples:?}"
    );
    assert!(samples.contains(&6), "both copies ran at once");
    assert_eq!((ready_in(&clusters[0]), replicas(&fed, "mf1").await), (3, Some(3)));
    healthy(&fed, &admission, b.id).await;
}

#[tokio::test]
async fn a_singleton_cut_off_by_a_partition_gets_no_second_copy_before_its_cluster_has_been_out_of_contact_for_the_toleration()
 {
    let fed = Fed::start().await;
    let (clusters, _m, _p) = fleet(&fed, &["sf1", "sf2"]).await;
    let admission = Arc::new(CpuCap {
        cap_milli: 100_000,
        ..Default::default()
    });
    let bindings = Bindings::new(fed.pool(), &*admission);
    let placement =
        primary_then_backup(json!({"dr_tier": "auto-failover", "toleration_seconds": 2, "singleton": true}));
    let two = bindings
        .apply(&Caller::platform_admin("t"), request(app("100m"), placement.clone(), 2))
        .await
        .unwrap_err();
    assert_eq!(two.field(), Some("placement.singleton"));
    let (b, _) = bindings
        .apply(&Caller::platform_admin("t"), request(app("100m"), placement, 1))
        .await
        .unwrap();
    let _prop = propagator(&fed, admission.clone(), Duration::from_secs(3600));
    let _fail = reconciler(&fed, admission.clone());
    healthy(&fed, &admission, b.id).await;

    clusters[0].faults().set(Fault::Partition);
    fed.until_status("sf1", "NotReady").await;
    // An operator in a hurry: the failover is accepted; sf1 cannot be asked
    // to stop the copy, so it waits for the lease.
    failover::trigger_failover(fed.pool(), &Caller::platform_admin("ops"), b.id, None)
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "the fencing wait recorded", || async {
        operations(&fed, b.id)
            .await
            .into_iter()
            .find(|o| o.state == "fencing" && o.reason.starts_with("fencing: sf1 does not answer"))
    })
    .await;
    // Watch sf2 for the second copy; the first keeps running behind the partition.
    // The last moment sf2 was seen without the copy bounds its creation from below.
    let started = Instant::now();
    let mut absent_at = chrono::Utc::now();
    loop {
        let now = chrono::Utc::now();
        if present_in(&clusters[1]) {
            break;
        }
        absent_at = now;
        assert!(started.elapsed() < Duration::from_secs(10), "no copy in sf2");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(ready_in(&clusters[0]), 1, "the cut-off copy still runs in sf1");
    let contact: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar!(r#"SELECT last_contact_at AS "last_contact_at!" FROM clusters WHERE name = 'sf1'"#)
            .fetch_one(fed.pool())
            .await
            .unwrap();
    assert!(
        absent_at - contact >= chrono::Duration::seconds(2),
        "second copy {:?} after the last contact",
        absent_at - contact
    );
    let op = until_state(&fed, b.id, "available", Duration::from_secs(10)).await;
    assert_eq!(ready_in(&clusters[1]), 1);
    let names = step_names(&op);
    assert!(
        !names.iter().any(|n| n.starts_with("fencing: scaled to 0")),
        "sf1 never answered: {names:?}"
    );
    assert_in_order(
        &op,
        &[
            "opened by an operator",
            "fencing: the copy in sf1 set to 0 replicas",
            "fencing: sf1 out of contact since",
            "placing: 1 in sf2",
            "applied",
            "available in sf2",
        ],
    );
}

fn step_names(op: &Operation) -> Vec<String> {
    op.steps.0.iter().map(|s| s.name.clone()).collect()
}

/// The operation's steps are exactly `prefixes` (each step starts with
/// its prefix), in that order, with times that never go back.
fn assert_in_order(op: &Operation, prefixes: &[&str]) {
    let names = step_names(op);
    assert_eq!(names.len(), prefixes.len(), "{names:#?}");
    for (n, p) in names.iter().zip(prefixes) {
        assert!(n.starts_with(p), "step {n:?} where {p:?} was expected: {names:#?}");
    }
    assert!(
        op.steps.0.windows(2).all(|w| w[0].at <= w[1].at),
        "steps out of time order: {:#?}",
        op.steps.0
    );
}

/// Pods of Deployment web (selector app=web) in acme-web, in the
/// cluster's own store: any phase, terminating ones included.
fn pods_in(c: &RunningCluster) -> usize {
    c.store()
        .all(kubesim::resource::PODS)
        .iter()
        .filter(|p| p["metadata"]["namespace"] == "acme-web" && p["metadata"]["labels"]["app"] == "web")
        .count()
}

/// Samples both clusters' pods every 5 ms until `done`; panics at the
/// first moment with more than one pod of the binding across them.
async fn never_two_copies<T>(
    a: &RunningCluster,
    b: &RunningCluster,
    done: impl std::future::Future<Output = T>,
) -> (T, usize) {
    tokio::pin!(done);
    let mut samples = 0;
    loop {
        let (in_a, in_b) = (pods_in(a), pods_in(b));
        assert!(
            in_a + in_b <= 1,
            "two copies at once: {in_a} pod(s) in {}, {in_b} in {}",
            a.name(),
            b.name()
        );
        samples += 1;
        tokio::select! {
            out = &mut done => return (out, samples),
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
}

#[tokio::test]
async fn a_singleton_moved_off_a_reachable_cluster_is_stopped_there_before_it_starts_elsewhere_and_comes_back_the_same_way()
 {
    let fed = Fed::start().await;
    let (clusters, _m, _p) = fleet(&fed, &["sr1", "sr2"]).await;
    let admission = Arc::new(CpuCap {
        cap_milli: 100_000,
        ..Default::default()
    });
    let (b, _) = Bindings::new(fed.pool(), &*admission)
        .apply(
            &Caller::platform_admin("t"),
            request(
                app("100m"),
                primary_then_backup(json!({"singleton": true, "toleration_seconds": 2})),
                1,
            ),
        )
        .await
        .unwrap();
    let _prop = propagator(&fed, admission.clone(), Duration::from_secs(3600));
    let _fail = reconciler(&fed, admission.clone());
    healthy(&fed, &admission, b.id).await;
    assert_eq!((pods_in(&clusters[0]), pods_in(&clusters[1])), (1, 0));

    // sr1 is Ready: an operator's planned move of the singleton.
    let asked = failover::trigger_failover(fed.pool(), &Caller::platform_admin("ops"), b.id, Some("sr1"))
        .await
        .unwrap();
    assert_eq!(asked.state, "pending");
    let (op, samples) = never_two_copies(&clusters[0], &clusters[1], async {
        let op = until_state(&fed, b.id, "available", Duration::from_secs(20)).await;
        eventually(
            Duration::from_secs(10),
            "the old copy's objects removed from sr1",
            || async { (!present_in(&clusters[0])).then_some(()) },
        )
        .await;
        op
    })
    .await;
    assert!(samples > 20, "{samples} samples");
    assert_eq!(
        (ready_in(&clusters[1]), pods_in(&clusters[0])),
        (1, 0),
        "available in sr2 only"
    );
    assert_eq!(op.to_clusters, vec!["sr2".to_string()]);
    assert_in_order(
        &op,
        &[
            "opened by an operator: failover off sr1",
            "fencing: the copy in sr1 set to 0 replicas",
            "fencing: scaled to 0 in sr1",
            "fencing: confirmed stopped in sr1",
            "placing: 1 in sr2",
            "applied",
            "available in sr2",
        ],
    );
    // Confirmed no sooner than an apply of the old replicas could still land.
    let at = |p: &str| op.steps.0.iter().find(|s| s.name.starts_with(p)).unwrap().at;
    assert!(
        at("fencing: confirmed") - at("fencing: the copy in")
            >= chrono::Duration::from_std(SETTINGS.propagation_timeout).unwrap()
    );
    let events: Vec<paas_proto::v1::FailoverChanged> = fed.events("federation.failover.changed").await;
    let states: Vec<&str> = events
        .iter()
        .filter(|e| e.id == op.id.to_string())
        .map(|e| e.state.as_str())
        .collect();
    assert_eq!(states, ["pending", "fencing", "placing", "applied", "available"]);
    healthy(&fed, &admission, b.id).await;

    // The failback of a singleton fences the failover's copy the same way.
    let back = failover::trigger_failback(fed.pool(), &Caller::platform_admin("ops"), b.id)
        .await
        .unwrap();
    let (back, _) = never_two_copies(&clusters[0], &clusters[1], async {
        let back = eventually(Duration::from_secs(20), "the failback available", || async {
            operations(&fed, b.id)
                .await
                .into_iter()
                .find(|o| o.id == back.id && o.state == "available")
        })
        .await;
        eventually(
            Duration::from_secs(10),
            "the failover copy's objects removed from sr2",
            || async {
                clusters[1]
                    .store()
                    .get(kubesim::resource::DEPLOYMENTS, "acme-web", "web")
                    .is_err()
                    .then_some(())
            },
        )
        .await;
        back
    })
    .await;
    assert_in_order(
        &back,
        &[
            "opened by an operator: failback onto sr1",
            "fencing: the copy in sr2 set to 0 replicas",
            "fencing: scaled to 0 in sr2",
            "fencing: confirmed stopped in sr2",
            "placing: 1 in sr1",
            "applied",
            "available in sr1",
        ],
    );
    assert_eq!((ready_in(&clusters[0]), pods_in(&clusters[1])), (1, 0));
}

#[tokio::test]
async fn a_reconciler_restarted_between_scaling_a_singleton_to_0_and_confirming_it_stopped_finishes_the_move_once() {
    let fed = Fed::start().await;
    let (clusters, _m, _p) = fleet(&fed, &["sx1", "sx2"]).await;
    let admission = Arc::new(CpuCap {
        cap_milli: 100_000,
        ..Default::default()
    });
    let (b, _) = Bindings::new(fed.pool(), &*admission)
        .apply(
            &Caller::platform_admin("t"),
            request(app("100m"), primary_then_backup(json!({"singleton": true})), 1),
        )
        .await
        .unwrap();
    let _prop = propagator(&fed, admission.clone(), Duration::from_secs(3600));
    healthy(&fed, &admission, b.id).await;
    // A finalizer keeps the old pod terminating (still there) after the scale to 0.
    let pod = clusters[0]
        .store()
        .all(kubesim::resource::PODS)
        .iter()
        .find(|p| p["metadata"]["namespace"] == "acme-web")
        .unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    // kubesim's error is a Kubernetes Status document; boxing it in a test
    // closure would buy nothing.
    #[expect(clippy::result_large_err, reason = "kubesim's modify takes its own Result")]
    let finalizers = |list: Value| {
        clusters[0]
            .store()
            .modify(
                kubesim::resource::PODS,
                "acme-web",
                &pod,
                &kubesim::WriteOptions::by("test"),
                |p| {
                    let mut p = p.clone();
                    p["metadata"]["finalizers"] = list.clone();
                    Ok(p)
                },
            )
            .unwrap();
    };
    finalizers(json!(["test/hold"]));

    let first = reconciler(&fed, admission.clone());
    let op = failover::trigger_failover(fed.pool(), &Caller::platform_admin("ops"), b.id, Some("sx1"))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "scaled to 0 and waiting for the pod",
        || async {
            operations(&fed, b.id).await.into_iter().find(|o| {
                o.state == "fencing"
                    && step_names(o).iter().any(|n| n == "fencing: scaled to 0 in sx1")
                    && o.reason.contains("waiting for 1 pod(s)")
            })
        },
    )
    .await;
    first.stop().await;
    let terminating = clusters[0]
        .store()
        .get(kubesim::resource::PODS, "acme-web", &pod)
        .unwrap();
    assert!(
        terminating["metadata"]["deletionTimestamp"].is_string(),
        "the old pod is being stopped"
    );
    assert_eq!(
        pods_in(&clusters[1]),
        0,
        "nothing started in sx2 before the confirmation"
    );

    // The pod goes while no reconciler runs; the next one confirms and finishes.
    finalizers(json!([]));
    let _second = reconciler(&fed, admission.clone());
    let (done, _) = never_two_copies(
        &clusters[0],
        &clusters[1],
        until_state(&fed, b.id, "available", Duration::from_secs(20)),
    )
    .await;
    assert_eq!(done.id, op.id);
    assert_eq!(operations(&fed, b.id).await.len(), 1, "resumed, not started again");
    assert_in_order(
        &done,
        &[
            "opened by an operator: failover off sx1",
            "fencing: the copy in sx1 set to 0 replicas",
            "fencing: scaled to 0 in sx1",
            "fencing: confirmed stopped in sx1",
            "placing: 1 in sx2",
            "applied",
            "available in sx2",
        ],
    );
    eventually(Duration::from_secs(10), "running in sx2", || async {
        (ready_in(&clusters[1]) == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_failover_refused_by_quota_applies_nothing_and_leaves_the_binding_degraded_with_the_reason() {
    let fed = Fed::start().await;
    let (clusters, _m, _p) = fleet(&fed, &["qf1", "qf2"]).await;
    // Room for the 2 x 500m running in qf1, not for a second copy while qf1's is held.
    let admission = Arc::new(CpuCap {
        cap_milli: 1500,
        ..Default::default()
    });
    let (b, _) = Bindings::new(fed.pool(), &*admission)
        .apply(
            &Caller::platform_admin("t"),
            request(
                app("500m"),
                primary_then_backup(json!({"dr_tier": "auto-failover", "toleration_seconds": 0.5})),
                2,
            ),
        )
        .await
        .unwrap();
    let prop = propagator(&fed, admission.clone(), Duration::from_secs(3600));
    let _fail = reconciler(&fed, admission.clone());
    healthy(&fed, &admission, b.id).await;

    clusters[0].faults().set(Fault::Down);
    let op = until_state(&fed, b.id, "failed", Duration::from_secs(10)).await;
    assert!(op.reason.contains("quota refused in cluster qf2"), "{}", op.reason);
    let (h, reason) = health(&fed, &admission, b.id).await;
    assert_eq!(h, Health::Degraded);
    assert!(reason.contains("quota refused"), "{reason}");
    // Nothing written for qf2, and the propagator has looked since.
    let targets = sqlx::query_scalar!("SELECT cluster FROM binding_targets WHERE binding_id = $1", b.id)
        .fetch_all(fed.pool())
        .await
        .unwrap();
    assert_eq!(targets, ["qf1"]);
    prop.looked("a propagation turn after the refusal").await;
    assert!(!present_in(&clusters[1]), "nothing applied in qf2");
    assert_eq!(admission.held.lock().unwrap().len(), 1, "only qf1's reservation held");
}

#[tokio::test]
async fn a_failover_interrupted_by_a_restart_is_finished_by_the_next_reconciler() {
    let fed = Fed::start().await;
    let (clusters, _m, _p) = fleet(&fed, &["rf1", "rf2"]).await;
    let admission = Arc::new(CpuCap {
        cap_milli: 100_000,
        ..Default::default()
    });
    let (b, _) = Bindings::new(fed.pool(), &*admission)
        .apply(
            &Caller::platform_admin("t"),
            request(
                app("100m"),
                primary_then_backup(json!({"dr_tier": "auto-failover", "toleration_seconds": 0.5})),
                2,
            ),
        )
        .await
        .unwrap();
    let prop = propagator(&fed, admission.clone(), Duration::from_secs(3600));
    healthy(&fed, &admission, b.id).await;
    // Without a propagator the failover cannot complete: it stops at applied.
    prop.stop().await;
    let first = reconciler(&fed, admission.clone());
    clusters[0].faults().set(Fault::Down);
    until_state(&fed, b.id, "applied", Duration::from_secs(10)).await;
    first.stop().await;
    assert!(!present_in(&clusters[1]));

    let _prop = propagator(&fed, admission.clone(), Duration::from_secs(3600));
    let _second = reconciler(&fed, admission.clone());
    let op = until_state(&fed, b.id, "available", Duration::from_secs(10)).await;
    assert_eq!(ready_in(&clusters[1]), 2);
    assert_eq!(
        operations(&fed, b.id).await.len(),
        1,
        "resumed, not started again: {op:?}"
    );
}

#[tokio::test]
async fn a_planned_failover_off_a_reachable_cluster_removes_the_old_copy_only_once_the_new_one_is_available() {
    let fed = Fed::start().await;
    let (clusters, _m, _p) = fleet(&fed, &["pf1", "pf2"]).await;
    let admission = Arc::new(CpuCap {
        cap_milli: 100_000,
        ..Default::default()
    });
    let (b, _) = Bindings::new(fed.pool(), &*admission)
        .apply(
            &Caller::platform_admin("t"),
            request(app("100m"), primary_then_backup(json!({})), 2),
        )
        .await
        .unwrap();
    let _prop = propagator(&fed, admission.clone(), Duration::from_secs(3600));
    let _fail = reconciler(&fed, admission.clone());
    healthy(&fed, &admission, b.id).await;
    // With every cluster Ready the operator must say which one.
    assert!(matches!(
        failover::trigger_failover(fed.pool(), &Caller::platform_admin("ops"), b.id, None).await,
        Err(kernel::Error::FailedPrecondition(_))
    ));
    failover::trigger_failover(fed.pool(), &Caller::platform_admin("ops"), b.id, Some("pf1"))
        .await
        .unwrap();
    let done = async {
        until_state(&fed, b.id, "available", Duration::from_secs(10)).await;
        eventually(Duration::from_secs(10), "the old copy removed from pf1", || async {
            (!present_in(&clusters[0])).then_some(())
        })
        .await;
    };
    tokio::pin!(done);
    let mut samples = Vec::new();
    loop {
        samples.push(ready_in(&clusters[0]) + ready_in(&clusters[1]));
        tokio::select! {
            _ = &mut done => break,
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
    assert!(
        samples.len() > 20 && samples.iter().all(|r| *r > 0),
        "a moment with no ready replica: {samples:?}"
    );
    assert_eq!(ready_in(&clusters[1]), 2);
}

#[tokio::test]
async fn automatic_failbacks_wait_for_the_stabilisation_period_and_go_by_priority_one_at_a_time() {
    let fed = Fed::start().await;
    let (clusters, _m, _p) = fleet(&fed, &["ab1", "ab2"]).await;
    let admission = Arc::new(CpuCap {
        cap_milli: 100_000,
        ..Default::default()
    });
    let bindings = Bindings::new(fed.pool(), &*admission);
    let named = |name: &str, extra: Value| {
        // Objects of their own name, so the bindings share the namespace.
        let mut r = request(
            app("100m").replace("\"web\"", &format!("\"{name}\"")),
            primary_then_backup(extra),
            1,
        );
        r.name = kernel::name::DnsLabel::parse("name", name).unwrap();
        r
    };
    let caller = Caller::platform_admin("t");
    let (low, _) = bindings
        .apply(
            &caller,
            named(
                "low",
                json!({"dr_tier": "auto-failover", "toleration_seconds": 0.5, "priority": 1}),
            ),
        )
        .await
        .unwrap();
    let (high, _) = bindings
        .apply(
            &caller,
            named(
                "high",
                json!({"dr_tier": "auto-failover", "toleration_seconds": 0.5, "priority": 10}),
            ),
        )
        .await
        .unwrap();
    let (kept, _) = bindings
        .apply(
            &caller,
            named(
                "kept",
                json!({"dr_tier": "auto-failover", "toleration_seconds": 0.5, "failback": "manual"}),
            ),
        )
        .await
        .unwrap();
    let _prop = propagator(&fed, admission.clone(), Duration::from_secs(3600));
    let settings = FailoverSettings {
        failback_stabilisation: Duration::from_secs(1),
        failback_parallelism: 1,
        ..SETTINGS
    };
    let fail = Running::failover(Reconciler::new(
        fed.pool().clone(),
        fed.clients.clone(),
        admission.clone(),
        settings,
    ));
    for b in [&low, &high, &kept] {
        healthy(&fed, &admission, b.id).await;
    }

    clusters[0].faults().set(Fault::Down);
    for b in [&low, &high, &kept] {
        until_state(&fed, b.id, "available", Duration::from_secs(15)).await;
    }
    clusters[0].faults().recover();
    fed.until_status("ab1", "Ready").await;
    let back = |id: Uuid| {
        let fed = &fed;
        async move {
            eventually(Duration::from_secs(20), "an automatic failback available", || async {
                operations(fed, id)
                    .await
                    .into_iter()
                    .find(|o| o.kind == "failback" && o.state == "available")
            })
            .await
        }
    };
    let (h, l) = (back(high.id).await, back(low.id).await);
    assert_eq!((h.trigger.as_str(), h.from_cluster.as_str()), ("automatic", "ab1"));
    let ready_since: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar!("SELECT last_transition_at FROM clusters WHERE name = 'ab1'")
            .fetch_one(fed.pool())
            .await
            .unwrap();
    assert!(
        h.created_at - ready_since >= chrono::Duration::seconds(1),
        "not before the stabilisation period"
    );
    // One at a time, the higher priority first.
    assert!(
        l.created_at >= h.finished_at.unwrap(),
        "low opened {} before high finished {:?}",
        l.created_at,
        h.finished_at
    );
    let ready = |c: &RunningCluster, name: &str| {
        c.store()
            .get(kubesim::resource::DEPLOYMENTS, "acme-web", name)
            .map_or(0, |d| d["status"]["readyReplicas"].as_i64().unwrap_or(0))
    };
    let present =
        |c: &RunningCluster, name: &str| c.store().get(kubesim::resource::DEPLOYMENTS, "acme-web", name).is_ok();
    eventually(Duration::from_secs(10), "both back in ab1 only", || async {
        (ready(&clusters[0], "high") == 1
            && ready(&clusters[0], "low") == 1
            && !present(&clusters[1], "high")
            && !present(&clusters[1], "low"))
        .then_some(())
    })
    .await;
    // A binding whose failback is manual stays where the failover put it:
    // a turn after the others' failbacks ended (none open to wait behind)
    // would have opened its own were it automatic.
    fail.looked("a failover turn after both failbacks").await;
    assert!(operations(&fed, kept.id).await.iter().all(|o| o.kind == "failover"));
    let kept_targets = sqlx::query_scalar!(
        "SELECT cluster FROM binding_targets WHERE binding_id = $1 AND NOT removing",
        kept.id
    )
    .fetch_all(fed.pool())
    .await
    .unwrap();
    assert_eq!(kept_targets, ["ab2"]);
    assert_eq!((ready(&clusters[1], "kept"), present(&clusters[0], "kept")), (1, false));
}

/// Fails two singletons over (one whose failback needs confirmation, the
/// default, one whose needs none) and lets their cluster return, with the
/// reconciler's maintenance window `window`; their failbacks as opened.
async fn singleton_failbacks(window: Option<federation::maintenance::MaintenanceWindow>) -> (Operation, Operation) {
    let fed = Fed::start().await;
    let (clusters, _m, _p) = fleet(&fed, &["sw1", "sw2"]).await;
    let admission = Arc::new(CpuCap {
        cap_milli: 100_000,
        ..Default::default()
    });
    let bindings = Bindings::new(fed.pool(), &*admission);
    let named = |name: &str, extra: Value| {
        let mut r = request(
            app("100m").replace("\"web\"", &format!("\"{name}\"")),
            primary_then_backup(extra),
            1,
        );
        r.name = kernel::name::DnsLabel::parse("name", name).unwrap();
        r
    };
    let caller = Caller::platform_admin("t");
    let singleton = json!({"dr_tier": "auto-failover", "toleration_seconds": 0.5, "singleton": true});
    let (confirmed, _) = bindings
        .apply(&caller, named("confirmed", singleton.clone()))
        .await
        .unwrap();
    let mut free = singleton;
    free["failback_confirmation"] = json!("none");
    let (free, _) = bindings.apply(&caller, named("free", free)).await.unwrap();
    let _prop = propagator(&fed, admission.clone(), Duration::from_secs(3600));
    let _fail = Running::failover(Reconciler::new(
        fed.pool().clone(),
        fed.clients.clone(),
        admission.clone(),
        FailoverSettings {
            failback_stabilisation: Duration::from_secs(1),
            failback_window: window,
            ..SETTINGS
        },
    ));
    for b in [&confirmed, &free] {
        healthy(&fed, &admission, b.id).await;
    }
    clusters[0].faults().set(Fault::Down);
    for b in [&confirmed, &free] {
        until_state(&fed, b.id, "available", Duration::from_secs(20)).await;
    }
    clusters[0].faults().recover();
    fed.until_status("sw1", "Ready").await;
    let failback = |id: Uuid| {
        let fed = &fed;
        async move {
            eventually(Duration::from_secs(20), "an automatic failback", || async {
                operations(fed, id).await.into_iter().find(|o| o.kind == "failback")
            })
            .await
        }
    };
    let (c, f) = (failback(confirmed.id).await, failback(free.id).await);
    // The one that needs no confirmation completes (the gap is planned, not waited on).
    until_state(&fed, free.id, "available", Duration::from_secs(20)).await;
    (c, f)
}

/// The step of a singleton's failback that reports its expected gap.
fn planned_step(op: &Operation) -> String {
    op.steps
        .iter()
        .map(|s| s.name.clone())
        .find(|n| n.contains("expected gap"))
        .unwrap_or_else(|| panic!("no expected gap in {:?}", op.steps))
}

#[tokio::test]
async fn a_singleton_failback_waits_for_confirmation_only_when_its_binding_requires_it() {
    let (confirmed, free) = singleton_failbacks(None).await;
    assert_eq!(confirmed.state, "awaiting-confirmation");
    assert!(
        confirmed.reason.starts_with("awaiting confirmation"),
        "{}",
        confirmed.reason
    );
    assert!(confirmed.reason.contains("expected gap about"), "{}", confirmed.reason);
    assert_ne!(free.state, "awaiting-confirmation");
    // The reason is cleared as the move goes on; the step keeps the expected gap.
    let planned = planned_step(&free);
    assert!(planned.starts_with("planned move (no confirmation"), "{planned}");
    assert!(
        planned.contains("expected gap about"),
        "the gap is still reported: {planned}"
    );
    assert!(!planned.contains("/confirm"), "{planned}");
}

#[tokio::test]
async fn a_singleton_failback_needing_confirmation_goes_on_inside_the_maintenance_window() {
    // A daily window from an hour ago to an hour from now (past midnight if it must).
    let now = chrono::Utc::now();
    let hm = |t: chrono::DateTime<chrono::Utc>| t.format("%H:%M").to_string();
    let window = federation::maintenance::MaintenanceWindow::parse(&format!(
        "daily {}-{} UTC",
        hm(now - chrono::Duration::hours(1)),
        hm(now + chrono::Duration::hours(1))
    ))
    .unwrap();
    assert!(window.contains(now));
    let (confirmed, _) = singleton_failbacks(Some(window)).await;
    assert_ne!(confirmed.state, "awaiting-confirmation");
    let planned = planned_step(&confirmed);
    assert!(
        planned.starts_with("planned move inside the maintenance window"),
        "{planned}"
    );
    assert!(planned.contains("expected gap about"), "{planned}");
}
