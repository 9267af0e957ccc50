//! Fencing (R3): a singleton's copy in a cluster that still answers its API
//! is stopped there before its new copy is written anywhere else. The
//! failover reconciler ([`crate::failover`]) sets the old target to 0
//! replicas and, because the propagator leaves NotReady clusters alone,
//! applies that to the old cluster itself ([`scale_to_zero`]); it then counts
//! the binding's pods there ([`pods_left`]) and takes the copy as stopped
//! only when none remain, terminating ones included. What this module does
//! not decide: when to give up on a cluster that stops answering (the
//! toleration/lease rule in [`crate::failover`]).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::core::DynamicObject;
use serde_json::Value;
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
