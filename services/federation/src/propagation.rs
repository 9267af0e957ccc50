//! Propagation: brings member clusters to hold each binding's objects as
//! assigned. Level-triggered, like the partition reconciler: every poll the
//! holder of the `binding-propagator` lease picks the targets (binding x
//! cluster) that are behind their binding's generation, due for drift repair
//! (converged longer ago than the resync period) or still rolling out, and
//! works on each in its own task (at most `parallelism` at once, each
//! bounded by a timeout), so a slow or dead cluster never holds up the
//! others; a failing target is retried with backoff (1 s doubling to 30 s).
//! Targets in clusters the health monitor has lost contact with wait; the
//! monitor resyncs them at once when the cluster returns.
//!
//! For one target: server-side apply of every object (namespace = the
//! partition's, replicas = the assignment's, labels `paas.io/managed-by=federation`
//! and `paas.io/binding=<id>`, field manager `paas-federation`, forced), then
//! objects of the binding's label that are no longer wanted are deleted;
//! the target's quota reservation is committed and the one it replaces
//! released. A target no longer assigned has every object with the label
//! deleted and its reservations released, then is forgotten (and the
//! binding with its last target, when deleted).
//!
//! Status is polled, not watched: after each apply, every poll while a
//! workload is not yet available, and every resync period after, one GET per
//! workload reads its replicas and conditions. (A watch per cluster would
//! have to follow the lease from replica to replica; polling keeps the
//! propagator stateless.)

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kernel::{Error, Result};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::core::DynamicObject;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::binding::{self, Admission, BINDING_LABEL, Kind, Object, WorkloadStatus};
use crate::credentials::Clients;
use crate::lease::{self, Lease};
use crate::partition::{FIELD_MANAGER, MAX_BACKOFF};

/// Names the propagator's lease.
pub const LEASE: &str = "binding-propagator";

/// How the propagator paces itself.
#[derive(Debug, Clone, Copy)]
pub struct PropagateSettings {
    /// How often it looks for due work.
    pub poll: Duration,
    /// How often converged targets are re-applied (drift repair) and re-observed.
    pub resync: Duration,
    /// Leadership without renewal.
    pub lease_ttl: Duration,
    /// Targets worked on at once.
    pub parallelism: usize,
    /// The longest one target's work may take before it counts as failed.
    pub timeout: Duration,
}

impl From<&crate::Settings> for PropagateSettings {
    fn from(s: &crate::Settings) -> Self {
        Self { poll: s.reconcile_poll, resync: s.resync_period, lease_ttl: s.lease_ttl, parallelism: s.propagation_parallelism, timeout: s.propagation_timeout }
    }
}

fn backoff(failures: i32) -> Duration {
    Duration::from_secs(1u64 << failures.clamp(0, 5)).min(MAX_BACKOFF)
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct Due {
    binding_id: Uuid,
    cluster: String,
    namespace: String,
    replicas: i32,
    removing: bool,
    generation: i64,
    applied_generation: i64,
    applied_kinds: sqlx::types::Json<Vec<String>>,
    failures: i32,
    reservation_id: Option<Uuid>,
    held_reservation_id: Option<Uuid>,
    objects: sqlx::types::Json<Value>,
    needs_apply: bool,
}

/// Writes bindings into member clusters.
#[derive(Clone)]
pub struct Propagator {
    pool: PgPool,
    clients: Clients,
    settings: PropagateSettings,
    lease: Lease,
    admission: Arc<dyn Admission>,
    in_flight: Arc<Mutex<HashSet<(Uuid, String)>>>,
    slots: Arc<Semaphore>,
}

impl Propagator {
    /// A propagator over the federation schema in `pool`, committing and
    /// releasing quota through `admission`.
    pub fn new(pool: PgPool, clients: Clients, settings: PropagateSettings, admission: Arc<dyn Admission>) -> Self {
        let lease = Lease::new(pool.clone(), LEASE, lease::holder_id("bindings"), settings.lease_ttl);
        let slots = Arc::new(Semaphore::new(settings.parallelism.max(1)));
        Self { pool, clients, settings, lease, admission, in_flight: Arc::default(), slots }
    }

    /// Propagates while it holds the lease, until `stop`.
    ///
    /// # Errors
    /// Never while running; returns `Ok` at shutdown.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        let mut leading: bool;
        loop {
            match self.lease.acquire().await {
                Ok(true) => {
                    leading = true;
                    if let Err(e) = self.start_due(&stop).await {
                        tracing::warn!(error = %e, "binding propagation failed; retrying");
                    }
                }
                Ok(false) => leading = false,
                Err(e) => {
                    leading = false;
                    tracing::warn!(error = %e, "binding propagator lease not renewed; standing by");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(self.settings.poll) => {}
            }
        }
        if leading && let Err(e) = self.lease.release().await {
            tracing::warn!(error = %e, "binding propagator lease not released; it will expire");
        }
        Ok(())
    }

    /// Starts a task for every due target not already being worked on.
    async fn start_due(&self, stop: &CancellationToken) -> Result<()> {
        let due: Vec<Due> = sqlx::query_as(
            "SELECT t.binding_id, t.cluster, t.namespace, t.replicas, t.removing, t.generation, t.applied_generation, t.applied_kinds, t.failures,
                    t.reservation_id, t.held_reservation_id, b.objects,
                    (t.removing OR t.applied_generation < t.generation OR t.synced_at <= now() - make_interval(secs => $1)) AS needs_apply
             FROM binding_targets t JOIN bindings b ON b.id = t.binding_id
             WHERE t.next_attempt_at <= now()
               AND (t.removing OR t.applied_generation < t.generation OR t.synced_at <= now() - make_interval(secs => $1)
                    OR NOT t.settled OR t.observed_at <= now() - make_interval(secs => $1))
               -- A cluster out of contact would only cost timeouts; its recovery resyncs it.
               AND NOT EXISTS (SELECT 1 FROM clusters c WHERE c.name = t.cluster
                               AND (c.condition = 'NotReady' OR (c.condition = 'Unknown' AND c.condition_reason = 'NoContact')))
             ORDER BY t.next_attempt_at LIMIT 1000",
        )
        .bind(self.settings.resync.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        for d in due {
            let key = (d.binding_id, d.cluster.clone());
            if !self.in_flight.lock().expect("not poisoned").insert(key.clone()) {
                continue;
            }
            let this = self.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let Ok(_slot) = this.slots.clone().acquire_owned().await else { return };
                let outcome = tokio::select! {
                    _ = stop.cancelled() => None,
                    r = tokio::time::timeout(this.settings.timeout, this.work(&d)) => Some(r.unwrap_or_else(|_| Err(Error::Unavailable(format!("cluster {}: no answer within {:?}", d.cluster, this.settings.timeout))))),
                };
                if let Some(Err(e)) = outcome {
                    tracing::warn!(binding = %d.binding_id, cluster = %d.cluster, error = %e, "binding not propagated; will retry");
                    let failed = sqlx::query(
                        "UPDATE binding_targets SET last_error = $3, failures = failures + 1, next_attempt_at = now() + make_interval(secs => $4)
                         WHERE binding_id = $1 AND cluster = $2",
                    )
                    .bind(d.binding_id)
                    .bind(&d.cluster)
                    .bind(e.to_string())
                    .bind(backoff(d.failures).as_secs_f64())
                    .execute(&this.pool)
                    .await;
                    if let Err(e) = failed {
                        tracing::warn!(error = %e, "failure not recorded");
                    }
                }
                this.in_flight.lock().expect("not poisoned").remove(&key);
            });
        }
        Ok(())
    }

    async fn work(&self, d: &Due) -> Result<()> {
        let client = self.clients.by_name(&d.cluster).await?;
        let objects: Vec<Object> = binding::parse_objects(&d.objects.0.to_string())?;
        let fail = |e: kube::Error| Error::Unavailable(format!("cluster {}: {e}", d.cluster));
        if d.removing {
            let kinds: BTreeSet<&'static Kind> = objects.iter().map(|o| o.kind).chain(d.applied_kinds.iter().filter_map(|k| Kind::from_key(k))).collect();
            prune(&client, &d.namespace, d.binding_id, &kinds, &BTreeSet::new()).await.map_err(fail)?;
            for r in [d.reservation_id, d.held_reservation_id].into_iter().flatten() {
                release(&*self.admission, r).await?;
            }
            let mut tx = self.pool.begin().await?;
            // Only if nothing reassigned it meanwhile.
            sqlx::query("DELETE FROM binding_targets WHERE binding_id = $1 AND cluster = $2 AND removing AND generation = $3")
                .bind(d.binding_id)
                .bind(&d.cluster)
                .bind(d.generation)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM bindings b WHERE id = $1 AND deleted AND NOT EXISTS (SELECT 1 FROM binding_targets t WHERE t.binding_id = b.id)")
                .bind(d.binding_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(());
        }
        if d.needs_apply {
            let params = PatchParams::apply(FIELD_MANAGER).force();
            let replicas = u32::try_from(d.replicas).unwrap_or(0);
            for o in &objects {
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &d.namespace, &o.kind.api_resource());
                api.patch(&o.name, &params, &Patch::Apply(o.for_cluster(d.binding_id, &d.namespace, replicas))).await.map_err(fail)?;
            }
            // Objects dropped from the binding since the last apply go (by label).
            let wanted: BTreeSet<(&str, &str)> = objects.iter().map(|o| (o.kind.kind, o.name.as_str())).collect();
            if d.applied_generation > 0 && d.applied_generation < d.generation {
                let kinds: BTreeSet<&'static Kind> = d.applied_kinds.iter().filter_map(|k| Kind::from_key(k)).collect();
                prune(&client, &d.namespace, d.binding_id, &kinds, &wanted).await.map_err(fail)?;
            }
            let kinds: Vec<String> = objects.iter().map(|o| o.kind.key()).collect::<BTreeSet<_>>().into_iter().collect();
            let mut held = d.held_reservation_id;
            let mut pending = d.reservation_id;
            if let Some(r) = pending {
                match self.admission.commit(r).await {
                    Ok(()) => {
                        if let Some(old) = held {
                            release(&*self.admission, old).await.unwrap_or_else(|e| tracing::warn!(reservation = %old, error = %e, "superseded reservation not released"));
                        }
                        held = Some(r);
                        pending = None;
                    }
                    // Applied either way; the next resync commits again.
                    Err(e) => tracing::warn!(reservation = %r, error = %e, "reservation not committed; will retry"),
                }
            }
            // The workloads observed so far describe the generation before:
            // until they are read again below, the target is not Healthy (a
            // reader in between would take the old rollout for the new one).
            sqlx::query(
                "UPDATE binding_targets SET applied_generation = $3, applied_kinds = $4, synced_at = now(), failures = 0, last_error = NULL, observed_at = NULL,
                        reservation_id = CASE WHEN reservation_id = $7 THEN $5 ELSE reservation_id END, held_reservation_id = $6, settled = false
                 WHERE binding_id = $1 AND cluster = $2",
            )
            .bind(d.binding_id)
            .bind(&d.cluster)
            .bind(d.generation)
            .bind(sqlx::types::Json(kinds))
            .bind(pending)
            .bind(held)
            .bind(d.reservation_id)
            .execute(&self.pool)
            .await?;
        }
        let mut workloads = Vec::new();
        for o in objects.iter().filter(|o| o.kind.workload || o.kind.kind == "DaemonSet") {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &d.namespace, &o.kind.api_resource());
            let found = api.get_opt(&o.name).await.map_err(fail)?;
            workloads.push(observe(o, found.as_ref()));
        }
        let settled = workloads.iter().all(WorkloadStatus::rolled_out);
        sqlx::query("UPDATE binding_targets SET workloads = $3, observed_at = now(), settled = $4 WHERE binding_id = $1 AND cluster = $2")
            .bind(d.binding_id)
            .bind(&d.cluster)
            .bind(sqlx::types::Json(workloads))
            .bind(settled)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Releases a reservation; one already released, expired or unknown is done.
async fn release(admission: &dyn Admission, r: Uuid) -> Result<()> {
    match admission.release(r).await {
        Ok(()) | Err(Error::NotFound { .. } | Error::FailedPrecondition(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes the binding's objects (by label) of `kinds` in `namespace` other
/// than `keep`; kinds the cluster does not serve have none.
async fn prune(client: &kube::Client, namespace: &str, binding: Uuid, kinds: &BTreeSet<&'static Kind>, keep: &BTreeSet<(&str, &str)>) -> std::result::Result<(), kube::Error> {
    let selector = format!("{BINDING_LABEL}={binding}");
    for kind in kinds {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &kind.api_resource());
        let listed = match api.list(&ListParams::default().labels(&selector)).await {
            Ok(l) => l,
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => return Err(e),
        };
        for o in listed.items {
            let name = o.metadata.name.unwrap_or_default();
            if keep.contains(&(kind.kind, name.as_str())) {
                continue;
            }
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// A workload's rollout from the object read back (absent: nothing yet).
fn observe(o: &Object, found: Option<&DynamicObject>) -> WorkloadStatus {
    let mut w = WorkloadStatus { kind: o.kind.kind.into(), name: o.name.clone(), ..Default::default() };
    let Some(found) = found else { return w };
    let int = |v: &Value| v.as_i64().unwrap_or(0) as i32;
    let status = &found.data["status"];
    let (desired, updated, ready, available) = if o.kind.kind == "DaemonSet" {
        (int(&status["desiredNumberScheduled"]), int(&status["updatedNumberScheduled"]), int(&status["numberReady"]), int(&status["numberAvailable"]))
    } else {
        let desired = found.data["spec"]["replicas"].as_i64().map_or(1, |r| r as i32);
        let available = if o.kind.kind == "StatefulSet" && status.get("availableReplicas").is_none() { &status["readyReplicas"] } else { &status["availableReplicas"] };
        (desired, int(&status["updatedReplicas"]), int(&status["readyReplicas"]), int(available))
    };
    if o.kind.kind == "Deployment" {
        w.outdated = (int(&status["replicas"]) - int(&status["updatedReplicas"])).max(0);
    }
    w.desired = desired;
    w.updated = updated;
    w.ready = ready;
    w.available = available;
    w.current = match (found.metadata.generation, status["observedGeneration"].as_i64()) {
        (Some(g), Some(seen)) => seen >= g,
        (None, _) => true,
        (Some(_), None) => false,
    };
    w.conditions = status["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                    (s("type"), s("status"), s("reason"), s("message"))
                })
                .collect()
        })
        .unwrap_or_default();
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_deployment_rollout_is_read_from_its_status_and_generation() {
        let o = &binding::parse_objects(&json!([{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}}]).to_string()).unwrap()[0];
        let found: DynamicObject = serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 3},
            "status": {"observedGeneration": 1, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2,
                       "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "m"}]}}))
        .unwrap();
        let w = observe(o, Some(&found));
        assert_eq!((w.desired, w.updated, w.ready, w.available, w.current), (3, 3, 2, 2, false));
        assert_eq!(w.conditions[0].0, "Available");
        assert_eq!(observe(o, None).available, 0);
    }

    /// A surge pod at the new template is counted as updated while the old
    /// pod keeps the Deployment available: not rolled out until the old pod
    /// is gone (`kubectl rollout status`: "old replicas are pending termination").
    #[test]
    fn a_rollout_with_an_old_pod_left_is_not_complete() {
        let o = &binding::parse_objects(&json!([{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1}}]).to_string()).unwrap()[0];
        let status = |replicas: i64| -> DynamicObject {
            serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 1},
                "status": {"observedGeneration": 2, "replicas": replicas, "updatedReplicas": 1, "readyReplicas": replicas, "availableReplicas": 1}}))
            .unwrap()
        };
        let surging = observe(o, Some(&status(2)));
        assert_eq!((surging.outdated, surging.rolled_out()), (1, false));
        assert!(observe(o, Some(&status(1))).rolled_out());
    }
}
