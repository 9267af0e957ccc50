//! Fencing (R3): a singleton's copy in a cluster that still answers its API
//! is stopped there before its new copy is written anywhere else. The
//! failover reconciler ([`crate::failover`]) sets the old target to 0
//! replicas and, because the propagator leaves NotReady clusters alone,
//! applies that to the old cluster itself ([`scale_to_zero`]); it then counts
//! the binding's pods there ([`pods_left`]) and takes the copy as stopped
//! only when none remain, terminating ones included. What this module does
//! not decide: when to give up on a cluster that stops answering (the
//! toleration/lease rule in [`crate::failover`]).
//!
//! **A returning cluster.** A copy cut off by a partition (or a data centre
//! down) keeps running as long as its pods do; once the lease rule let its
//! replacement start elsewhere, two copies exist until the cut-off one is
//! stopped. The health monitor ([`crate::health`]) therefore fences before it
//! counts a returning cluster Ready (Ready is what placement, the
//! propagator and failback act on), in three steps, each its own function so
//! that a member-side agent (which stops its copies itself when it loses
//! contact, a separate piece of work) plugs in without changing the order:
//! 1. [`stale_copies`]: the singleton copies the control plane no longer
//!    wants in that cluster (their target is being removed or is at 0);
//! 2. [`stop_stale`]: each is scaled to 0 there, on the very first
//!    successful contact (a copy an agent already stopped is simply at 0);
//! 3. [`Returning::confirmed`]: the cluster is counted Ready only once none
//!    of their pods remain; until then it stays out of Ready with the reason
//!    [`FENCING_REASON`], and the next probe asks again.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::core::DynamicObject;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::binding::Object;
use crate::partition::FIELD_MANAGER;

/// Applies every replicated workload of the binding (Deployments,
/// StatefulSets) in `namespace` with 0 replicas, as the propagator would
/// apply a target of 0 (same field manager, whole objects, so the
/// propagator's later applies agree with it). A workload not there yet is
/// created at 0, which keeps a late apply of the old target from starting it.
///
/// # Errors
/// The cluster does not answer or refuses.
pub async fn scale_to_zero(
    client: &kube::Client,
    binding: Uuid,
    objects: &[Object],
    namespace: &str,
) -> Result<(), kube::Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for o in objects.iter().filter(|o| o.kind.workload) {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &o.kind.api_resource());
        api.patch(&o.name, &params, &Patch::Apply(o.for_cluster(binding, namespace, 0)))
            .await?;
    }
    Ok(())
}

/// The pods of the binding's workloads (by their selectors) in `namespace`,
/// in any phase, terminating ones included: a copy is stopped only at none.
///
/// # Errors
/// The cluster does not answer or refuses.
pub async fn pods_left(client: &kube::Client, objects: &Value, namespace: &str) -> Result<usize, kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut names = BTreeSet::new();
    for (_, selector) in crate::pod::selectors(objects) {
        for pod in api.list(&ListParams::default().labels(&selector)).await?.items {
            names.insert(pod.metadata.name.unwrap_or_default());
        }
    }
    Ok(names.len())
}

/// The condition reason of a cluster that answers again but still runs a
/// stale singleton copy (not Ready until it is stopped).
pub const FENCING_REASON: &str = "FencingStaleCopies";

/// A singleton's copy that the control plane no longer wants in a cluster.
#[derive(Debug, Clone)]
pub struct StaleCopy {
    /// The binding.
    pub binding_id: Uuid,
    /// Its tenant namespace in the cluster.
    pub namespace: String,
    /// The binding's objects (as stored).
    pub objects: Value,
}

/// Step 1: the singleton copies in `cluster` whose target is being removed
/// or set to 0 (moved away by a failover, or being stopped by one).
///
/// # Errors
/// The database fails.
pub async fn stale_copies(pool: &PgPool, cluster: &str) -> kernel::Result<Vec<StaleCopy>> {
    Ok(sqlx::query_as!(
        StaleCopy,
        r#"SELECT b.id AS binding_id, t.namespace, b.objects AS "objects: Value"
           FROM binding_targets t JOIN bindings b ON b.id = t.binding_id
           WHERE t.cluster = $1 AND b.singleton AND (t.removing OR t.replicas = 0)
           ORDER BY b.id"#,
        cluster,
    )
    .fetch_all(pool)
    .await?)
}

/// What fencing found in a returning cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Returning {
    /// Copies scaled to 0 in this contact.
    pub stopped: usize,
    /// Pods of the stale copies still there (terminating ones included).
    pub pods_left: usize,
}

impl Returning {
    /// Step 3: whether the cluster may be counted Ready (no stale pod left).
    pub fn confirmed(&self) -> bool {
        self.pods_left == 0
    }
}

/// Step 2: scales every stale copy's workloads to 0 in the returning
/// cluster (only those still there: a workload already deleted is not
/// created again) and counts the pods left, each call within `answer`.
///
/// # Errors
/// The cluster does not answer within `answer`, or refuses.
pub async fn stop_stale(client: &kube::Client, copies: &[StaleCopy], answer: Duration) -> Result<Returning, String> {
    let mut out = Returning::default();
    for copy in copies {
        let objects = crate::binding::parse_objects(&copy.objects.to_string()).map_err(|e| e.to_string())?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for o in objects.iter().filter(|o| o.kind.workload) {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &copy.namespace, &o.kind.api_resource());
            let there = tokio::time::timeout(answer, api.get_opt(&o.name))
                .await
                .map_err(|_| format!("no answer within {answer:?}"))?
                .map_err(|e| e.to_string())?;
            let Some(there) = there else { continue };
            if there.data["spec"]["replicas"].as_i64() != Some(0) {
                tokio::time::timeout(
                    answer,
                    api.patch(
                        &o.name,
                        &params,
                        &Patch::Apply(o.for_cluster(copy.binding_id, &copy.namespace, 0)),
                    ),
                )
                .await
                .map_err(|_| format!("no answer within {answer:?}"))?
                .map_err(|e| e.to_string())?;
                out.stopped += 1;
            }
        }
        out.pods_left += tokio::time::timeout(answer, pods_left(client, &copy.objects, &copy.namespace))
            .await
            .map_err(|_| format!("no answer within {answer:?}"))?
            .map_err(|e| e.to_string())?;
    }
    Ok(out)
}
