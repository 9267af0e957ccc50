//! Binding status by watch: changes in a member cluster reach the binding
//! with the propagator's resync (and so its status polling of settled
//! targets) an hour away, and polling still converges when no watch runs.

use std::sync::Arc;
use std::time::Duration;

use federation::binding::{Bindings, Health};
use federation::propagation::PropagateSettings;
use kernel::caller::Caller;
use kernel::testkit::eventually;
use kubesim::Fault;
use serde_json::json;
use uuid::Uuid;

use crate::bindings::{CpuCap, app, fleet, health, propagator, propagator_with, request};
use crate::helpers::Fed;

/// The target's observed (ready, available) replicas of Deployment web.
async fn observed(fed: &Fed, binding: Uuid, cluster: &str) -> Option<(i32, i32)> {
    let (_, targets) = Bindings::new(fed.pool(), &CpuCap::default())
        .get(&Caller::platform_admin("t"), binding)
        .await
        .ok()?;
    let t = targets.into_iter().find(|t| t.cluster == cluster)?;
    let w = t.workloads.0.into_iter().find(|w| w.name == "web")?;
    Some((w.ready, w.available))
}

#[tokio::test]
async fn a_status_change_in_a_member_cluster_reaches_the_binding_through_the_watch_without_waiting_for_a_poll() {
    let fed = Fed::start().await;
    let (clusters, _m, _p) = fleet(&fed, &["wt1"]).await;
    let admission = Arc::new(CpuCap {
        cap_milli: 100_000,
        ..Default::default()
    });
    let (b, _) = Bindings::new(fed.pool(), &*admission)
        .apply(
            &Caller::platform_admin("t"),
            request(app("100m"), json!({"explicit": [{"cluster": "wt1"}]}), 3),
        )
        .await
        .unwrap();
    // Settled targets are re-observed by polling only every resync: an hour.
    let _prop = propagator(&fed, admission.clone(), Duration::from_secs(3600));
    eventually(Duration::from_secs(10), "Healthy", || async {
        (health(&fed, &admission, b.id).await.0 == Health::Healthy).then_some(())
    })
    .await;
    assert_eq!(observed(&fed, b.id, "wt1").await, Some((3, 3)));

    // Scaled by someone in the cluster (the kubesim controllers roll it
    // out, pods become ready one by one): the target is settled, so only
    // the watch can tell before the resync repairs it in an hour.
    let client = fed.clients.by_name("wt1").await.unwrap();
    let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> = kube::Api::namespaced(client, "acme-web");
    api.patch(
        "web",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"replicas": 5}})),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "5 ready observed", || async {
        (observed(&fed, b.id, "wt1").await == Some((5, 5))).then_some(())
    })
    .await;
    // Scaled in to 1: the status drops to 1 and the binding shows the
    // desired count the cluster now has.
    api.patch(
        "web",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "1 ready observed", || async {
        (observed(&fed, b.id, "wt1").await == Some((1, 1))).then_some(())
    })
    .await;
    // A watch restarted from scratch (the cluster briefly refuses watches)
    // records what changed meanwhile from its fresh list.
    clusters[0].faults().set(Fault::NoWatch);
    eventually(Duration::from_secs(10), "the open watches ended", || async {
        (clusters[0].store().open_watches() == 0).then_some(())
    })
    .await;
    api.patch(
        "web",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"replicas": 4}})),
    )
    .await
    .unwrap();
    clusters[0].faults().recover();
    eventually(
        Duration::from_secs(15),
        "4 ready observed after the restart",
        || async { (observed(&fed, b.id, "wt1").await == Some((4, 4))).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn status_still_converges_by_polling_when_the_cluster_refuses_watches() {
    let fed = Fed::start().await;
    let (clusters, _m, _p) = fleet(&fed, &["wp1"]).await;
    // Every watch request of the cluster is refused; plain GETs still work.
    clusters[0].faults().set(Fault::NoWatch);
    let admission = Arc::new(CpuCap {
        cap_milli: 100_000,
        ..Default::default()
    });
    let (b, _) = Bindings::new(fed.pool(), &*admission)
        .apply(
            &Caller::platform_admin("t"),
            request(app("100m"), json!({"explicit": [{"cluster": "wp1"}]}), 2),
        )
        .await
        .unwrap();
    // The client retries a refused watch request for a while, so the watch
    // may look live without delivering: status is polled when a target
    // rolling out has had no record for watched_poll.
    let settings = PropagateSettings {
        poll: Duration::from_millis(50),
        resync: Duration::from_secs(3600),
        watched_poll: Duration::from_millis(300),
        lease_ttl: Duration::from_secs(2),
        parallelism: 8,
        timeout: Duration::from_secs(3),
    };
    let _prop = propagator_with(&fed, admission.clone(), settings);
    eventually(Duration::from_secs(10), "Healthy by polling", || async {
        (health(&fed, &admission, b.id).await.0 == Health::Healthy).then_some(())
    })
    .await;
    assert_eq!(observed(&fed, b.id, "wp1").await, Some((2, 2)));
}
