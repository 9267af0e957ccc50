//! Propagation: brings member clusters to hold each binding's objects as
//! assigned. Level-triggered, like the partition reconciler: every poll the
//! holder of the `binding-propagator` lease picks the targets (binding x
//! cluster) that are behind their binding's generation, due for drift repair
//! (converged longer ago than the resync period) or still rolling out, and
//! works on each in its own task (at most `parallelism` at once, each
//! bounded by a timeout), so a slow or dead cluster never holds up the
//! others; a failing target is retried with jittered backoff (1 s doubling to 30 s).
//! Targets in clusters the health monitor has lost contact with wait; the
//! monitor resyncs them at once when the cluster returns.
//!
//! For one target: server-side apply of every object (namespace = the
//! partition's, replicas = the assignment's, labels `paas.io/managed-by=federation`
//! and `paas.io/binding=<id>`, default storage / ingress classes of the
//! cluster's settings filled in, field manager `paas-federation`, forced;
//! a class the cluster does not offer refuses the target before any write), then
//! objects of the binding's label that are no longer wanted are deleted;
//! the target's quota reservation is committed and the one it replaces
//! released. A target no longer assigned has every object with the label
//! deleted and its reservations released, then is forgotten (and the
//! binding with its last target, when deleted).
//!
//! Status: while the propagator holds its lease it also runs one watch per
//! Ready cluster ([`crate::watch`]) that records targets' status as their
//! workloads change. Where no watch is live (the cluster just returned, the
//! watch failing), status is polled as the fallback: after each apply,
//! every poll while a workload is not yet available, and every resync
//! period after, one GET per workload reads its replicas and conditions. A
//! target rolling out in a watched cluster that has had no record for
//! `watched_poll` is polled too (a watch whose request the client is still
//! retrying looks live without delivering anything).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::AtomicU64;
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

use crate::binding::{self, Admission, BINDING_LABEL, Kind, Object};
use crate::cluster_settings::{self, ClusterSettings};
use crate::credentials::Clients;
use crate::lease::{self, Lease};
use crate::partition::{FIELD_MANAGER, retry_delay};
use crate::status;
use crate::watch::{Generations, Watches};

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
    /// How long a target still rolling out in a cluster whose watch is live
    /// may go without a record before it is polled anyway: a watch can look
    /// live while its request is still being retried by the client.
    pub watched_poll: Duration,
    /// Targets worked on at once.
    pub parallelism: usize,
    /// The longest one target's work may take before it counts as failed.
    pub timeout: Duration,
}

impl From<&crate::Settings> for PropagateSettings {
    fn from(s: &crate::Settings) -> Self {
        Self {
            poll: s.reconcile_poll,
            resync: s.resync_period,
            watched_poll: s.watched_status_poll,
            lease_ttl: s.lease_ttl,
            parallelism: s.propagation_parallelism,
            timeout: s.propagation_timeout,
        }
    }
}

/// A target the propagator is to apply, remove or observe.
#[derive(Debug, Clone)]
struct Due {
    binding_id: Uuid,
    tenant_id: Uuid,
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
    watches: Watches,
    delivery: Option<Arc<kernel::seal::DeliveryKey>>,
    registry: Option<String>,
}

impl Propagator {
    /// A propagator over the federation schema in `pool`, committing and
    /// releasing quota through `admission`.
    pub fn new(pool: PgPool, clients: Clients, settings: PropagateSettings, admission: Arc<dyn Admission>) -> Self {
        let lease = Lease::new(pool.clone(), LEASE, lease::holder_id("bindings"), settings.lease_ttl);
        let slots = Arc::new(Semaphore::new(settings.parallelism.max(1)));
        let watches = Watches::new(pool.clone(), clients.clone());
        Self {
            pool,
            clients,
            settings,
            lease,
            admission,
            in_flight: Arc::default(),
            slots,
            watches,
            delivery: None,
            registry: None,
        }
    }

    /// Opens sealed Secret values ([`kernel::seal`]) with `key` when writing
    /// them into clusters; without one, a binding with sealed values fails
    /// its targets (and says why).
    #[must_use]
    pub fn with_delivery_key(mut self, key: kernel::seal::DeliveryKey) -> Self {
        self.delivery = Some(Arc::new(key));
        self
    }

    /// The platform registry (`host[:port]`) whose images clusters with a
    /// registry mirror pull from the mirror instead ([`crate::registry_mirror`]).
    #[must_use]
    pub fn with_platform_registry(mut self, server: Option<String>) -> Self {
        self.registry = server;
        self
    }

    /// The pull secrets of the tenant's partition `namespace` in `cluster`
    /// that log in to the platform registry (and so to its mirror): the
    /// platform's, then the tenant's own for that registry, by name.
    async fn mirror_secrets(
        &self,
        tenant: Uuid,
        cluster: &str,
        namespace: &str,
        platform: &str,
    ) -> Result<Vec<String>> {
        let own = sqlx::query_scalar!(
            "SELECT s.name FROM pull_secrets s JOIN partitions p ON p.partition_id = s.partition_id
             WHERE p.tenant_id = $1 AND p.cluster = $2 AND p.namespace = $3 AND NOT p.deleted
               AND s.tenant_id = $1 AND s.server = $4
             ORDER BY s.name",
            tenant,
            cluster,
            namespace,
            platform,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(std::iter::once(crate::pull_secret::PLATFORM_SECRET.to_string())
            .chain(own.iter().map(|n| crate::pull_secret::secret_name(n)))
            .collect())
    }

    /// Counts the propagator's completed turns ([`Lease::turns`]): one that
    /// started after a change has started the work it makes due.
    pub fn turns(&self) -> Arc<AtomicU64> {
        self.lease.turns()
    }

    /// Propagates (and watches the Ready clusters' status) while it holds
    /// the lease, until `stop`.
    ///
    /// # Errors
    /// Never while running; returns `Ok` at shutdown.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        let round = || async {
            if let Err(e) = self.watches.follow(&stop).await {
                tracing::warn!(error = %e, "status watches not updated; retrying");
            }
            self.start_due(&stop).await
        };
        self.lease
            .lead("binding propagation", self.settings.poll, &stop, round, || {
                self.watches.stop_all();
            })
            .await;
        Ok(())
    }

    /// Starts a task for every due target not already being worked on; a
    /// target due only for observation waits for nothing when its cluster's
    /// watch is live (the watch records it).
    async fn start_due(&self, stop: &CancellationToken) -> Result<()> {
        let due = sqlx::query_as!(
            Due,
            r#"SELECT t.binding_id, b.tenant_id, t.cluster, t.namespace, t.replicas, t.removing, t.generation, t.applied_generation,
                      t.applied_kinds AS "applied_kinds: _", t.failures, t.reservation_id, t.held_reservation_id,
                      -- A target held at an earlier revision runs that revision's objects.
                      COALESCE(r.objects, b.objects) AS "objects!: _",
                      (t.removing OR t.applied_generation < t.generation
                       OR t.synced_at <= now() - make_interval(secs => $1)) AS "needs_apply!"
               FROM binding_targets t JOIN bindings b ON b.id = t.binding_id
                    LEFT JOIN binding_revisions r ON r.binding_id = t.binding_id AND r.revision = t.objects_revision
               WHERE t.next_attempt_at <= now()
                 AND (t.removing OR t.applied_generation < t.generation
                      OR t.synced_at <= now() - make_interval(secs => $1)
                      OR (NOT (t.cluster = ANY($2))
                          AND (NOT t.settled OR t.observed_at <= now() - make_interval(secs => $1)))
                      OR (NOT t.settled AND coalesce(t.observed_at, t.synced_at) <= now() - make_interval(secs => $3)))
                 -- A cluster out of contact would only cost timeouts; its recovery resyncs it.
                 -- One that answers again is left to fencing until it is Ready (crate::fencing).
                 AND NOT EXISTS (SELECT 1 FROM clusters c WHERE c.name = t.cluster
                                 AND (c.condition = 'NotReady'
                                      OR (c.condition = 'Unknown' AND c.condition_reason = 'NoContact')
                                      OR (c.condition <> 'Ready' AND c.condition_reason = 'FencingStaleCopies')))
               ORDER BY t.next_attempt_at LIMIT 1000"#,
            self.settings.resync.as_secs_f64(),
            &self.watches.live_clusters(),
            self.settings.watched_poll.as_secs_f64(),
        )
        .fetch_all(&self.pool)
        .await?;
        let clusters: Vec<String> = due
            .iter()
            .map(|d| d.cluster.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let settings: HashMap<String, Arc<ClusterSettings>> = cluster_settings::of_clusters(&self.pool, &clusters)
            .await?
            .into_iter()
            .map(|(name, s)| (name, Arc::new(s)))
            .collect();
        for d in due {
            let Some(cluster) = settings.get(&d.cluster).cloned() else {
                continue;
            };
            let key = (d.binding_id, d.cluster.clone());
            if !self.in_flight.lock().expect("not poisoned").insert(key.clone()) {
                continue;
            }
            let this = self.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let Ok(_slot) = this.slots.clone().acquire_owned().await else {
                    return;
                };
                let outcome = tokio::select! {
                    _ = stop.cancelled() => None,
                    r = tokio::time::timeout(this.settings.timeout, this.work(&d, &cluster)) => Some(r.unwrap_or_else(|_| Err(Error::Unavailable(format!("cluster {}: no answer within {:?}", d.cluster, this.settings.timeout))))),
                };
                if let Some(Err(e)) = outcome {
                    tracing::warn!(binding = %d.binding_id, cluster = %d.cluster, error = %e, "binding not propagated; will retry");
                    let failed = sqlx::query!(
                        "UPDATE binding_targets SET last_error = $3, failures = failures + 1,
                                next_attempt_at = now() + make_interval(secs => $4)
                         WHERE binding_id = $1 AND cluster = $2",
                        d.binding_id,
                        &d.cluster,
                        e.to_string(),
                        retry_delay(d.failures).as_secs_f64(),
                    )
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

    async fn work(&self, d: &Due, cluster: &ClusterSettings) -> Result<()> {
        let client = self.clients.by_name(&d.cluster).await?;
        let objects: Vec<Object> = binding::parse_objects(&d.objects.0.to_string())?;
        let fail = |e: kube::Error| Error::Unavailable(format!("cluster {}: {e}", d.cluster));
        if d.removing {
            let kinds: BTreeSet<&'static Kind> = objects
                .iter()
                .map(|o| o.kind)
                .chain(d.applied_kinds.iter().filter_map(|k| Kind::from_key(k)))
                .collect();
            prune(&client, &d.namespace, d.binding_id, &kinds, &BTreeSet::new())
                .await
                .map_err(fail)?;
            for r in [d.reservation_id, d.held_reservation_id].into_iter().flatten() {
                release(&*self.admission, r).await?;
            }
            let mut tx = self.pool.begin().await?;
            // Only if nothing reassigned it meanwhile.
            sqlx::query!(
                "DELETE FROM binding_targets WHERE binding_id = $1 AND cluster = $2 AND removing AND generation = $3",
                d.binding_id,
                &d.cluster,
                d.generation,
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query!(
                "DELETE FROM bindings b WHERE id = $1 AND deleted
                   AND NOT EXISTS (SELECT 1 FROM binding_targets t WHERE t.binding_id = b.id)",
                d.binding_id,
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(());
        }
        let mut generations = Generations::new();
        let mut answered = Vec::new();
        if d.needs_apply {
            let params = PatchParams::apply(FIELD_MANAGER).force();
            let replicas = u32::try_from(d.replicas).unwrap_or(0);
            let bodies = objects
                .iter()
                .map(|o| {
                    o.for_target(
                        d.binding_id,
                        &d.namespace,
                        replicas,
                        &d.cluster,
                        d.tenant_id,
                        self.delivery.as_deref(),
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            // Default classes filled in, or the whole target refused before anything is written.
            let mut bodies = cluster.fit_all(&d.cluster, bodies)?;
            if let (Some(platform), Some(mirror)) = (&self.registry, &cluster.registry_mirror) {
                let secrets = self
                    .mirror_secrets(d.tenant_id, &d.cluster, &d.namespace, platform)
                    .await?;
                for body in &mut bodies {
                    crate::registry_mirror::pull_from_mirror(body, platform, mirror, &secrets);
                }
            }
            for (o, body) in objects.iter().zip(&bodies) {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), &d.namespace, &o.kind.api_resource());
                let applied = api.patch(&o.name, &params, &Patch::Apply(body)).await.map_err(fail)?;
                if status::observed(o.kind) {
                    if let Some(g) = applied.metadata.generation {
                        generations.insert((o.kind.kind.to_string(), o.name.clone()), g);
                    }
                    // What the apply answered is the first observation: no GET needed.
                    answered.push(status::observe(o, Some(&applied)));
                }
            }
            // Objects dropped from the binding since the last apply go (by label).
            let wanted: BTreeSet<(&str, &str)> = objects.iter().map(|o| (o.kind.kind, o.name.as_str())).collect();
            if d.applied_generation > 0 && d.applied_generation < d.generation {
                let kinds: BTreeSet<&'static Kind> = d.applied_kinds.iter().filter_map(|k| Kind::from_key(k)).collect();
                prune(&client, &d.namespace, d.binding_id, &kinds, &wanted)
                    .await
                    .map_err(fail)?;
            }
            let kinds: Vec<String> = objects
                .iter()
                .map(|o| o.kind.key())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
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
            sqlx::query!(
                "UPDATE binding_targets SET applied_generation = $3, applied_kinds = $4, synced_at = now(),
                        failures = 0, last_error = NULL, observed_at = NULL,
                        reservation_id = CASE WHEN reservation_id = $7 THEN $5 ELSE reservation_id END,
                        held_reservation_id = $6, settled = false
                 WHERE binding_id = $1 AND cluster = $2",
                d.binding_id,
                &d.cluster,
                d.generation,
                sqlx::types::Json(kinds) as _,
                pending,
                held,
                d.reservation_id,
            )
            .execute(&self.pool)
            .await?;
        }
        // A live watch records the target once it has seen this apply.
        if d.needs_apply && self.watches.applied(&d.cluster, d.binding_id, generations) {
            return Ok(());
        }
        if d.needs_apply {
            return status::record(&self.pool, d.binding_id, &d.cluster, answered).await;
        }
        let mut workloads = Vec::new();
        for o in objects.iter().filter(|o| status::observed(o.kind)) {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &d.namespace, &o.kind.api_resource());
            let found = api.get_opt(&o.name).await.map_err(fail)?;
            workloads.push(status::observe(o, found.as_ref()));
        }
        status::record(&self.pool, d.binding_id, &d.cluster, workloads).await
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
async fn prune(
    client: &kube::Client,
    namespace: &str,
    binding: Uuid,
    kinds: &BTreeSet<&'static Kind>,
    keep: &BTreeSet<(&str, &str)>,
) -> std::result::Result<(), kube::Error> {
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
