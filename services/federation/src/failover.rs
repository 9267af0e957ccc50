//! Failover (R3): moving a binding's replicas off a cluster that is lost, and
//! back once it returns, as persisted operations (`failovers`).
//!
//! Each binding has a DR tier, set beside its placement ([`crate::resilience`])
//! (`{"policy": {...}, "dr_tier": "auto-failover", "toleration_seconds": 10, "singleton": true}`):
//! - `manual` (the default, today's behaviour): nothing moves until an
//!   operator triggers a failover ([`trigger_failover`]);
//! - `auto-failover`: when a cluster of the binding has been out of Ready
//!   (NotReady or Unknown, since `clusters.not_ready_since`) longer than the
//!   binding's toleration, the binding is placed again by its own placement
//!   with that cluster excluded (the next affinity group or the healthy
//!   clusters within the policy);
//! - `active-active`: the same trigger, but the lost replicas are divided
//!   among the binding's surviving (Ready) clusters.
//!
//! An operation goes `pending` -> `placing` (the new assignment computed and
//! stored) -> `applied` (quota reserved in tenancy for every target whose
//! amounts change, as a failover reservation, then the targets written in one
//! transaction with the lost cluster's target marked removing; off a cluster
//! still Ready, a planned move, only once the new targets are available) ->
//! `available` (every new target applied and every workload available) or `failed` (with
//! the reason; the binding shows Degraded with it). Each step is a
//! conditional update of the row, and reservations use the operation's id in
//! their idempotency key, so a restart (or a new leader) resumes where the
//! last one stopped. The stale copies in the lost cluster are deleted by the
//! propagator when the cluster is reachable again.
//!
//! **Singleton fencing.** A binding marked `singleton` (one replica) must
//! never run twice: its new copy is written only once the old one is known
//! stopped or its lease has expired. A singleton's operation goes `pending`
//! -> `fencing` -> `placing`: the old target is set to 0 replicas (the
//! assignment before it kept as `previous`), and the reconciler applies
//! that to the old cluster itself, since the propagator leaves NotReady
//! clusters alone ([`crate::fencing`]); it then lists the binding's pods
//! there and goes on only when none remain ("confirmed stopped"). This is
//! how an operator moves a singleton off a reachable cluster, and how an
//! automatic failover leaves a cluster that is NotReady but still answers.
//! When the old cluster does not answer (or stops answering midway), the
//! lease rule decides: the copy counts as stopped once the cluster has been
//! out of Ready and out of contact (no successful probe,
//! `clusters.last_contact_at`) for the binding's toleration; pods cut off
//! from the control plane are assumed stopped by the cluster's own lease on
//! the application only after that time. A singleton's failback fences the
//! failover's copy the same way before the original assignment is written
//! (a singleton never has both).
//!
//! **Steps.** Every transition appends to the operation's `steps`
//! (`{name, at}`, oldest first): "opened", "fencing: ...", "placing: ...",
//! "applied", "available" or "failed: ..."; the step and the state change
//! are one conditional update, so a step is recorded once even when two
//! reconcilers race or one restarts midway.
//!
//! **Failback** ([`trigger_failback`] by an operator once the original
//! cluster is Ready, or automatically per [`crate::failback`]): first the assignment before the failover is added to
//! the current one (each cluster keeps the larger replica count), and only
//! when all of it is available are the failover-only replicas removed, so the
//! binding never passes through zero ready replicas.
//!
//! Every state an operation enters is announced as `federation.failover.changed`
//! in the same transaction (outbox).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::page::Page;
use kernel::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::binding::plan::Quota;
use crate::binding::reservation::Reservations;
use crate::binding::{self, Admission, Bindings};
use crate::credentials::Clients;
use crate::lease::{self, Lease};
use crate::placement::{self, Assignment, Demand, Placement, Resources};
use crate::resilience::{DrTier, Resilience};

/// Every state an operation enters (opened as `pending`).
pub const FAILOVER_CHANGED: kernel::event::EventType =
    kernel::event::EventType::new("federation", "failover", "changed");

/// Names the failover reconciler's lease.
pub const LEASE: &str = "binding-failover";
/// How long after a failed automatic failover the next attempt for the same
/// outage is made (quota may have been freed meanwhile).
pub const RETRY_FAILED_AFTER: Duration = Duration::from_secs(30);

/// One step of an operation and when it was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// What happened ("fencing: scaled to 0 in east", "placing: ...").
    pub name: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// `names` as steps taken now, to append to `failovers.steps`.
fn steps<I: IntoIterator<Item = String>>(names: I) -> sqlx::types::Json<Vec<Step>> {
    let at = Utc::now();
    sqlx::types::Json(names.into_iter().map(|name| Step { name, at }).collect())
}

/// How long the old cluster may take to answer one fencing call before the
/// round moves on (a blackholed cluster must not hold up other operations;
/// the next round asks again, and the lease rule ends the wait).
pub const FENCING_ANSWER: Duration = Duration::from_secs(3);

/// How the step that sets the old copy's target to 0 begins.
const SET_TO_ZERO: &str = "fencing: the copy in";

/// One persisted failover or failback.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Operation {
    /// Its id.
    pub id: Uuid,
    /// The binding.
    pub binding_id: Uuid,
    /// The binding's name.
    pub binding_name: String,
    /// The application whose service the binding is (its objects' `paas.io/app` label), or empty.
    pub application: String,
    /// The binding's tenant.
    pub tenant_id: Uuid,
    /// `failover` or `failback`.
    pub kind: String,
    /// `automatic` or `operator`.
    pub trigger: String,
    /// Failover: the lost cluster. Failback: the recovered cluster replicas return to.
    pub from_cluster: String,
    /// Clusters of the new assignment.
    pub to_clusters: Vec<String>,
    /// `awaiting-confirmation` (a singleton's automatic failback), `pending`, `fencing` (a singleton's old
    /// copy being stopped), `placing`, `applied`, `available` or `failed`.
    pub state: String,
    /// Why it failed or what it waits for.
    pub reason: String,
    /// What it did, with when, oldest first.
    pub steps: sqlx::types::Json<Vec<Step>>,
    /// When the cluster left Ready (failover) or the failback was asked.
    pub fault_detected_at: DateTime<Utc>,
    /// When the operation was created (the toleration passed).
    pub created_at: DateTime<Utc>,
    /// When the new assignment was written.
    pub replaced_at: Option<DateTime<Utc>>,
    /// When every new target was available.
    pub available_at: Option<DateTime<Utc>>,
    /// When it ended (available or failed).
    pub finished_at: Option<DateTime<Utc>>,
}

/// The failover reconciler's pace.
#[derive(Debug, Clone, Copy)]
pub struct FailoverSettings {
    /// How often it looks for lost clusters and advances operations.
    pub poll: Duration,
    /// Leadership without renewal.
    pub lease_ttl: Duration,
    /// How long a recovered cluster stays Ready before automatic failbacks onto it.
    pub failback_stabilisation: Duration,
    /// Automatic failbacks open at once.
    pub failback_parallelism: usize,
    /// The propagator's limit on one target's apply: fencing confirms a
    /// copy stopped no sooner than this after its target was set to 0, so
    /// an apply of the old replicas already under way cannot start it again.
    pub propagation_timeout: Duration,
    /// When a singleton's failback needing confirmation goes on without it.
    pub failback_window: Option<crate::maintenance::MaintenanceWindow>,
}

impl From<&crate::Settings> for FailoverSettings {
    fn from(s: &crate::Settings) -> Self {
        Self {
            poll: s.reconcile_poll,
            lease_ttl: s.lease_ttl,
            failback_stabilisation: s.failback_stabilisation,
            failback_parallelism: s.failback_parallelism,
            propagation_timeout: s.propagation_timeout,
            failback_window: s.failback_window,
        }
    }
}

/// Starts failovers of auto tiers and advances every open operation, on the
/// holder of the [`LEASE`].
#[derive(Clone)]
pub struct Reconciler {
    pool: PgPool,
    clients: Clients,
    admission: Arc<dyn Admission>,
    settings: FailoverSettings,
    lease: Lease,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct BindingRow {
    id: Uuid,
    tenant_id: Uuid,
    project_id: Option<Uuid>,
    placement: sqlx::types::Json<Value>,
    replicas: i32,
    replica_cpu_milli: i64,
    replica_memory_milli: i64,
    objects: sqlx::types::Json<Value>,
    dr_tier: String,
    toleration_ms: i64,
    singleton: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct LiveTarget {
    cluster: String,
    partition_id: Uuid,
    namespace: String,
    replicas: i32,
    amounts: sqlx::types::Json<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct OpRow {
    id: Uuid,
    binding_id: Uuid,
    kind: String,
    trigger: String,
    from_cluster: String,
    state: String,
    previous: sqlx::types::Json<Vec<Assignment>>,
    to_targets: sqlx::types::Json<Vec<Assignment>>,
    steps: sqlx::types::Json<Vec<Step>>,
}

impl Reconciler {
    /// Over the federation schema in `pool`, reserving through `admission`,
    /// fencing singletons through `clients`.
    pub fn new(pool: PgPool, clients: Clients, admission: Arc<dyn Admission>, settings: FailoverSettings) -> Self {
        let lease = Lease::new(pool.clone(), LEASE, lease::holder_id("failover"), settings.lease_ttl);
        Self {
            pool,
            clients,
            admission,
            settings,
            lease,
        }
    }

    /// Counts the reconciler's completed turns ([`Lease::turns`]): one that
    /// started after a change has had the chance to act on it.
    pub fn turns(&self) -> Arc<AtomicU64> {
        self.lease.turns()
    }

    /// Runs while it holds the lease, until `stop`.
    ///
    /// # Errors
    /// Never while running; returns `Ok` at shutdown.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        self.lease
            .lead("failover round", self.settings.poll, &stop, || self.round(), || {})
            .await;
        Ok(())
    }

    /// One pass: detect, then advance every open operation.
    ///
    /// # Errors
    /// The database fails.
    pub async fn round(&self) -> Result<()> {
        self.detect().await?;
        let open = sqlx::query_as!(
            OpRow,
            r#"SELECT id, binding_id, kind, trigger, from_cluster, state, previous AS "previous: _",
                      to_targets AS "to_targets: _", steps AS "steps: _"
               FROM failovers WHERE state NOT IN ('available', 'failed') ORDER BY created_at"#,
        )
        .fetch_all(&self.pool)
        .await?;
        // Operations of different bindings are independent: advance them together (bounded).
        let results: Vec<(Uuid, Result<()>)> = futures::StreamExt::collect(futures::StreamExt::buffer_unordered(
            futures::stream::iter(
                open.into_iter()
                    .map(|op| async move { (op.id, self.advance(&op).await) }),
            ),
            64,
        ))
        .await;
        for (id, r) in results {
            if let Err(e) = r {
                tracing::warn!(operation = %id, error = %e, "failover step failed; retrying");
            }
        }
        Ok(())
    }

    /// Opens a failover for every auto tier binding with a live target in a
    /// cluster out of Ready longer than the binding's toleration, and the
    /// automatic failbacks that are due ([`crate::failback`]).
    async fn detect(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let opened = sqlx::query_scalar!(
            "INSERT INTO failovers (id, binding_id, tenant_id, kind, trigger, from_cluster, fault_detected_at, steps)
             SELECT DISTINCT ON (b.id) gen_random_uuid(), b.id, b.tenant_id, 'failover', 'automatic', t.cluster,
                    c.not_ready_since,
                    jsonb_build_array(jsonb_build_object(
                        'name', 'opened: ' || t.cluster || ' out of Ready longer than the toleration', 'at', now()))
             FROM bindings b JOIN binding_targets t ON t.binding_id = b.id AND NOT t.removing
                  JOIN clusters c ON c.name = t.cluster
             WHERE NOT b.deleted AND b.dr_tier IN ('auto-failover', 'active-active')
               AND c.condition <> 'Ready'
               AND c.not_ready_since <= now() - make_interval(secs => b.toleration_ms / 1000.0)
               AND NOT EXISTS (SELECT 1 FROM failovers f
                               WHERE f.binding_id = b.id AND f.state NOT IN ('available', 'failed'))
               AND NOT EXISTS (SELECT 1 FROM failovers f
                               WHERE f.binding_id = b.id AND f.from_cluster = t.cluster AND f.kind = 'failover'
                                 AND f.state = 'failed' AND f.finished_at > now() - make_interval(secs => $1))
             ORDER BY b.id, t.cluster
             ON CONFLICT DO NOTHING RETURNING id",
            RETRY_FAILED_AFTER.as_secs_f64(),
        )
        .fetch_all(&mut *tx)
        .await?;
        let back = crate::failback::open_due(
            &mut tx,
            self.settings.failback_stabilisation,
            self.settings.failback_parallelism,
            RETRY_FAILED_AFTER,
            self.settings.propagation_timeout,
            self.settings
                .failback_window
                .as_ref()
                .is_some_and(|w| w.contains(chrono::Utc::now())),
        )
        .await?;
        for id in opened.into_iter().chain(back) {
            announce(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn binding(&self, id: Uuid) -> Result<Option<BindingRow>> {
        Ok(sqlx::query_as!(
            BindingRow,
            r#"SELECT id, tenant_id, project_id, placement AS "placement: _", replicas, replica_cpu_milli,
                      replica_memory_milli, objects AS "objects: _", dr_tier, toleration_ms, singleton
               FROM bindings WHERE id = $1 AND NOT deleted"#,
            id,
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn live_targets(&self, binding: Uuid) -> Result<Vec<LiveTarget>> {
        Ok(sqlx::query_as!(
            LiveTarget,
            r#"SELECT cluster, partition_id, namespace, replicas, amounts AS "amounts: _" FROM binding_targets
               WHERE binding_id = $1 AND NOT removing ORDER BY cluster"#,
            binding,
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn fail(&self, op: &OpRow, reason: &str) -> Result<()> {
        self.end(op, reason, true).await
    }

    /// Ends the operation as failed; with `degrade`, the binding shows the reason as Degraded.
    async fn end(&self, op: &OpRow, reason: &str, degrade: bool) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let step = steps([format!("{}: {reason}", if degrade { "failed" } else { "ended" })]);
        let done = sqlx::query!(
            "UPDATE failovers SET state = 'failed', reason = $3, finished_at = now(), updated_at = now(),
             steps = steps || $4 WHERE id = $1 AND state = $2",
            op.id,
            &op.state,
            reason,
            step as _,
        )
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            announce(&mut tx, op.id).await?;
        }
        if done.rows_affected() == 1 && degrade {
            sqlx::query!(
                "UPDATE bindings SET failover_error = $2 WHERE id = $1",
                op.binding_id,
                format!("{} from {} failed: {reason}", op.kind, op.from_cluster),
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Takes the operation as far as it can go now: a step that succeeds
    /// is followed at once by the next (read back from its row), so a
    /// failover is written within one round rather than one step per poll.
    async fn advance(&self, op: &OpRow) -> Result<()> {
        let Some(b) = self.binding(op.binding_id).await? else {
            return self.fail(op, "the binding was deleted").await;
        };
        let mut op = op.clone();
        loop {
            match op.state.as_str() {
                "pending" => self.place(&op, &b).await?,
                "fencing" => self.fence(&op, &b).await?,
                "placing" => self.apply(&op, &b).await?,
                "applied" => self.settle(&op, &b).await?,
                _ => return Ok(()),
            }
            let next = sqlx::query_as!(
                OpRow,
                r#"SELECT id, binding_id, kind, trigger, from_cluster, state, previous AS "previous: _",
                          to_targets AS "to_targets: _", steps AS "steps: _"
                   FROM failovers WHERE id = $1"#,
                op.id,
            )
            .fetch_optional(&self.pool)
            .await?;
            match next {
                Some(next) if next.state != op.state => op = next,
                _ => return Ok(()),
            }
        }
    }

    /// pending -> placing: computes (and stores) the new assignment; for a
    /// singleton pending -> fencing first ([`Self::begin_fencing`]).
    async fn place(&self, op: &OpRow, b: &BindingRow) -> Result<()> {
        let resilience = Resilience::from_stored(&b.dr_tier, b.toleration_ms, b.singleton);
        let live = self.live_targets(b.id).await?;
        let current: Vec<Assignment> = live.iter().map(as_assignment).collect();
        if op.kind == "failback" {
            let condition = sqlx::query_scalar!("SELECT condition FROM clusters WHERE name = $1", &op.from_cluster)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or_else(|| "Deregistered".into());
            if condition != "Ready" {
                return self
                    .fail(op, &format!("cluster {} is {condition}", op.from_cluster))
                    .await;
            }
            if resilience.singleton {
                return self.begin_fencing(op, b, resilience, &live).await;
            }
            // As many replicas as run now, not as before the failover: a
            // scale during the outage is kept ([`resize`]). Stored as the
            // operation's `previous`, the assignment it settles on.
            let running: u32 = current.iter().map(|a| a.replicas).sum();
            let back = if running == 0 {
                op.previous.0.clone()
            } else {
                resize(&op.previous.0, running)
            };
            return self.placing(op, &back, &union(&current, &back), Vec::new()).await;
        }
        if !live.iter().any(|t| t.cluster == op.from_cluster) {
            return self
                .fail(op, &format!("the binding has no replicas in {}", op.from_cluster))
                .await;
        }
        if resilience.singleton {
            return self.begin_fencing(op, b, resilience, &live).await;
        }
        match self.replace(b, resilience.tier, &op.from_cluster, &live).await? {
            Ok(to) => self.placing(op, &current, &to, Vec::new()).await,
            Err(reason) => self.fail(op, &reason).await,
        }
    }

    /// Stores the new assignment `to` (and `previous`, what a failback
    /// restores): the operation's state -> placing, with `done` and the
    /// placing step recorded.
    async fn placing(
        &self,
        op: &OpRow,
        previous: &[Assignment],
        to: &[Assignment],
        mut done: Vec<String>,
    ) -> Result<()> {
        let clusters: Vec<String> = to.iter().map(|a| a.cluster.clone()).collect();
        done.push(format!(
            "placing: {}",
            to.iter()
                .map(|a| format!("{} in {}", a.replicas, a.cluster))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let mut tx = self.pool.begin().await?;
        let placing = sqlx::query!(
            "UPDATE failovers SET state = 'placing', previous = $2, to_targets = $3, to_clusters = $4, reason = '',
                    updated_at = now(), steps = steps || $6
             WHERE id = $1 AND state = $5",
            op.id,
            sqlx::types::Json(previous) as _,
            sqlx::types::Json(to) as _,
            &clusters,
            &op.state,
            steps(done) as _,
        )
        .execute(&mut *tx)
        .await?;
        if placing.rows_affected() == 1 {
            announce(&mut tx, op.id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The singleton's copy the operation stops before placing: a
    /// failover's in the cluster it leaves (as it was before fencing), a
    /// failback's where the failover put it.
    fn copy_to_stop(op: &OpRow, live: &[LiveTarget]) -> Option<Assignment> {
        if op.kind == "failback" {
            let back: Vec<&str> = op.previous.0.iter().map(|a| a.cluster.as_str()).collect();
            return live
                .iter()
                .find(|t| !back.contains(&t.cluster.as_str()))
                .map(as_assignment);
        }
        op.previous
            .0
            .iter()
            .find(|a| a.cluster == op.from_cluster)
            .cloned()
            .or_else(|| live.iter().find(|t| t.cluster == op.from_cluster).map(as_assignment))
    }

    /// Whether `cluster` is Ready, and whether its copy counts as stopped by
    /// the lease rule (out of Ready and out of contact for `toleration`; a
    /// cluster no longer registered cannot run anything we placed), with
    /// its last contact.
    async fn lease_rule(&self, cluster: &str, toleration: Duration) -> Result<(bool, bool, Option<DateTime<Utc>>)> {
        let row = sqlx::query!(
            r#"SELECT last_contact_at, condition = 'Ready' AS "ready!",
                      condition <> 'Ready'
                        AND (last_contact_at IS NULL OR last_contact_at <= now() - make_interval(secs => $2))
                        AS "expired!"
               FROM clusters WHERE name = $1"#,
            cluster,
            toleration.as_secs_f64(),
        )
        .fetch_optional(&self.pool)
        .await?;
        // A cluster no longer registered: not Ready, its lease long expired, never in contact.
        Ok(row.map_or((false, true, None), |r| (r.ready, r.expired, r.last_contact_at)))
    }

    /// pending -> fencing for a singleton: the old copy's target set to 0
    /// replicas (a new generation, so the propagator agrees when it gets
    /// there) and the assignment before it kept as `previous`. An automatic
    /// failover whose cluster is Ready again ends instead (nothing is
    /// wrong any more); a copy whose lease has already expired needs no
    /// stopping, so the operation places at once.
    async fn begin_fencing(
        &self,
        op: &OpRow,
        b: &BindingRow,
        resilience: Resilience,
        live: &[LiveTarget],
    ) -> Result<()> {
        let Some(old) = Self::copy_to_stop(op, live) else {
            // A failback with nothing outside the earlier assignment: nothing runs twice.
            return self.placing(op, &op.previous.0, &op.previous.0, Vec::new()).await;
        };
        let (ready, expired, contact) = self.lease_rule(&old.cluster, resilience.toleration).await?;
        if op.kind == "failover" && op.trigger == "automatic" && ready {
            return self
                .end(
                    op,
                    &format!(
                        "{} is Ready again; an automatic failover of a singleton is not carried out",
                        op.from_cluster
                    ),
                    false,
                )
                .await;
        }
        if expired {
            let lease = format!(
                "fencing: {} out of contact since {}, longer than the toleration: its copy counts as stopped (lease expired)",
                old.cluster,
                since(contact)
            );
            return self.place_fenced(op, b, resilience, lease).await;
        }
        let previous = if op.kind == "failover" {
            live.iter().map(as_assignment).collect()
        } else {
            op.previous.0.clone()
        };
        let mut tx = self.pool.begin().await?;
        let fencing = sqlx::query!(
            "UPDATE failovers SET state = 'fencing', previous = $2, reason = '', updated_at = now(),
                    steps = steps || $3
             WHERE id = $1 AND state = 'pending'",
            op.id,
            sqlx::types::Json(&previous) as _,
            steps([format!("{SET_TO_ZERO} {} set to 0 replicas", old.cluster)]) as _,
        )
        .execute(&mut *tx)
        .await?;
        if fencing.rows_affected() == 0 {
            return Ok(());
        }
        announce(&mut tx, op.id).await?;
        let generation = next_generation(&mut tx, b.id).await?;
        sqlx::query!(
            "UPDATE binding_targets SET replicas = 0, generation = $3, next_attempt_at = now(), failures = 0
             WHERE binding_id = $1 AND cluster = $2 AND NOT removing",
            b.id,
            &old.cluster,
            generation,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// fencing -> placing once the old copy is known stopped: the old
    /// cluster confirms no pod of the binding remains after it was scaled
    /// to 0, or (it does not answer) the lease rule says so. Until then the
    /// reason says what it waits for.
    async fn fence(&self, op: &OpRow, b: &BindingRow) -> Result<()> {
        let resilience = Resilience::from_stored(&b.dr_tier, b.toleration_ms, b.singleton);
        let live = self.live_targets(b.id).await?;
        let Some(old) = Self::copy_to_stop(op, &live) else {
            return self
                .place_fenced(op, b, resilience, "fencing: no copy left to stop".into())
                .await;
        };
        let (_, expired, contact) = self.lease_rule(&old.cluster, resilience.toleration).await?;
        if expired {
            let lease = format!(
                "fencing: {} out of contact since {}, longer than the toleration: its copy counts as stopped (lease expired)",
                old.cluster,
                since(contact)
            );
            return self.place_fenced(op, b, resilience, lease).await;
        }
        let waiting_for_lease = |e: &dyn std::fmt::Display| {
            format!(
                "fencing: {} does not answer ({e}); waiting for it to confirm the copy stopped, or until it has been out of contact for {:?} (last contact {})",
                old.cluster,
                resilience.toleration,
                since(contact)
            )
        };
        let objects = binding::parse_objects(&b.objects.0.to_string())?;
        let stopped = tokio::time::timeout(FENCING_ANSWER, async {
            let client = self.clients.by_name(&old.cluster).await.map_err(|e| e.to_string())?;
            crate::fencing::scale_to_zero(&client, b.id, &objects, &old.namespace)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(client)
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {FENCING_ANSWER:?}")));
        let client = match stopped {
            Ok(c) => c,
            Err(e) => return self.waiting(op, &waiting_for_lease(&e)).await,
        };
        // Recorded once, the first time the old cluster accepted the 0.
        let scaled = format!("fencing: scaled to 0 in {}", old.cluster);
        sqlx::query!(
            "UPDATE failovers SET steps = steps || $3, updated_at = now() WHERE id = $1 AND state = 'fencing'
               AND NOT jsonb_path_exists(steps, '$[*] ? (@.name == $n)', jsonb_build_object('n', $2::text))",
            op.id,
            &scaled,
            steps([scaled.clone()]) as _,
        )
        .execute(&self.pool)
        .await?;
        let left = tokio::time::timeout(
            FENCING_ANSWER,
            crate::fencing::pods_left(&client, &b.objects.0, &old.namespace),
        )
        .await
        .map_err(|_| format!("no answer within {FENCING_ANSWER:?}"))
        .and_then(|r| r.map_err(|e| e.to_string()));
        match left {
            Err(e) => self.waiting(op, &waiting_for_lease(&e)).await,
            Ok(0) if Utc::now() < self.confirmable_from(op) => {
                let from = self
                    .confirmable_from(op)
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                self.waiting(op, &format!("fencing: no pod of the binding left in {}; confirmed at {from}, when no apply of the old replicas can still be under way", old.cluster)).await
            }
            Ok(0) => {
                self.place_fenced(
                    op,
                    b,
                    resilience,
                    format!(
                        "fencing: confirmed stopped in {} (no pod of the binding left)",
                        old.cluster
                    ),
                )
                .await
            }
            Ok(n) => {
                self.waiting(
                    op,
                    &format!(
                        "fencing: waiting for {n} pod(s) of the binding in {} to stop",
                        old.cluster
                    ),
                )
                .await
            }
        }
    }

    /// When the old copy may be confirmed stopped: the propagation timeout
    /// after its target was set to 0 (an apply of the old target that
    /// started before that is over by then).
    fn confirmable_from(&self, op: &OpRow) -> DateTime<Utc> {
        let set = op
            .steps
            .0
            .iter()
            .rev()
            .find(|s| s.name.starts_with(SET_TO_ZERO))
            .map_or_else(Utc::now, |s| s.at);
        set + chrono::Duration::from_std(self.settings.propagation_timeout).unwrap_or_default()
    }

    /// Records what a waiting operation waits for (only when it changed).
    async fn waiting(&self, op: &OpRow, reason: &str) -> Result<()> {
        sqlx::query!(
            "UPDATE failovers SET reason = $3, updated_at = now() WHERE id = $1 AND state = $2 AND reason <> $3",
            op.id,
            &op.state,
            reason,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The singleton's old copy is stopped (`why`): its new assignment, as
    /// it would have been placed before fencing set the old target to 0.
    async fn place_fenced(&self, op: &OpRow, b: &BindingRow, resilience: Resilience, why: String) -> Result<()> {
        if op.kind == "failback" {
            // Back to the earlier assignment alone: the failover's copy is stopped, not kept beside it.
            return self.placing(op, &op.previous.0, &op.previous.0, vec![why]).await;
        }
        let mut live = self.live_targets(b.id).await?;
        let previous: Vec<Assignment> = if op.state == "fencing" {
            op.previous.0.clone()
        } else {
            live.iter().map(as_assignment).collect()
        };
        if let Some(before) = previous.iter().find(|a| a.cluster == op.from_cluster) {
            for t in live.iter_mut().filter(|t| t.cluster == op.from_cluster) {
                t.replicas = before.replicas as i32;
            }
        }
        match self.replace(b, resilience.tier, &op.from_cluster, &live).await? {
            Ok(to) => self.placing(op, &previous, &to, vec![why]).await,
            Err(reason) => self.fail(op, &reason).await,
        }
    }

    /// The assignment without `lost`: the binding's placement again with
    /// `lost` excluded, or (active-active, or an explicit placement) the lost
    /// replicas divided among the surviving Ready clusters. `Err` is why not.
    async fn replace(
        &self,
        b: &BindingRow,
        tier: DrTier,
        lost: &str,
        live: &[LiveTarget],
    ) -> Result<std::result::Result<Vec<Assignment>, String>> {
        let mut placement_value = b.placement.0.clone();
        Resilience::split(&mut placement_value)?;
        let placement: Placement =
            serde_json::from_value(placement_value).map_err(|e| Error::invalid("placement", e.to_string()))?;
        if tier == DrTier::ActiveActive || matches!(placement, Placement::Explicit(_)) {
            let ready = sqlx::query_scalar!("SELECT name FROM clusters WHERE condition = 'Ready'")
                .fetch_all(&self.pool)
                .await?;
            let lost_replicas = live
                .iter()
                .find(|t| t.cluster == lost)
                .map_or(0, |t| t.replicas.max(0) as u32);
            let survivors: Vec<Assignment> = live
                .iter()
                .filter(|t| t.cluster != lost && ready.contains(&t.cluster))
                .map(as_assignment)
                .collect();
            return Ok(divide_among_survivors(survivors, lost_replicas)
                .ok_or_else(|| format!("no surviving Ready cluster holds the binding besides {lost}")));
        }
        let candidates: Vec<placement::Candidate> = Bindings::new(&self.pool, &*self.admission)
            .candidates(b.tenant_id, Some(b.id))
            .await?
            .into_iter()
            .filter(|c| c.name != lost)
            .collect();
        let per = Resources {
            cpu_milli: b.replica_cpu_milli,
            memory_milli: b.replica_memory_milli,
        };
        let demand = Demand {
            replicas: b.replicas.max(0) as u32,
            per_replica: per,
            project: b.project_id,
        };
        Ok(placement::place(&placement, &demand, &candidates).map_err(|e| format!("no placement without {lost}: {e}")))
    }

    /// placing -> applied: reserves quota for each target whose amounts
    /// change (refusal: failed, nothing written), then writes the targets.
    async fn apply(&self, op: &OpRow, b: &BindingRow) -> Result<()> {
        let to = &op.to_targets.0;
        let objects = binding::parse_objects(&b.objects.0.to_string())?;
        let requests = binding::per_replica(&objects)?;
        let live = self.live_targets(b.id).await?;
        let mut reservations = Reservations::new(&*self.admission);
        for a in to {
            let held = live
                .iter()
                .find(|t| t.cluster == a.cluster && t.partition_id == a.partition_id)
                .map(|t| &t.amounts.0);
            let key = format!("{}:{}:{}", op.kind, op.id, a.cluster);
            let Some(quota) = Quota::needed(a, requests, held, key) else {
                continue;
            };
            let reserved = if op.kind == "failover" {
                reservations.reserve_for_failover(&quota).await
            } else {
                reservations.reserve(&quota).await
            };
            if let Err(e) = reserved {
                reservations.release().await;
                return match e {
                    Error::ResourceExhausted(m) => {
                        self.fail(op, &format!("quota refused in cluster {}: {m}", a.cluster))
                            .await
                    }
                    other => Err(other),
                };
            }
        }
        // Kept from here on, even if writing the targets fails: a retry reserves
        // under the same keys, which tenancy answers with the same reservations.
        let reserved = reservations.keep();
        let mut tx = self.pool.begin().await?;
        let still = sqlx::query!(
            "UPDATE failovers SET state = 'applied', replaced_at = now(), updated_at = now(), steps = steps || $2
             WHERE id = $1 AND state = 'placing'",
            op.id,
            steps(["applied: quota reserved and the new targets written".to_string()]) as _,
        )
        .execute(&mut *tx)
        .await?;
        if still.rows_affected() == 0 {
            return Ok(());
        }
        announce(&mut tx, op.id).await?;
        let generation = next_generation(&mut tx, b.id).await?;
        // Off a lost cluster the old copies go at once (they cannot be reached,
        // and a singleton is fenced by now); off a reachable one (a planned
        // move) only once the new ones are available, as in a failback.
        let from_ready = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM clusters WHERE name = $1 AND condition = 'Ready') AS "ready!""#,
            &op.from_cluster,
        )
        .fetch_one(&mut *tx)
        .await?;
        if op.kind == "failover" && !from_ready {
            let keep: Vec<String> = to.iter().map(|a| a.cluster.clone()).collect();
            remove_others(&mut tx, b.id, generation, &keep).await?;
        }
        binding::write_targets(&mut tx, b.id, generation, to, &reserved).await?;
        tx.commit().await?;
        Ok(())
    }

    /// applied -> available once every new target runs; a failback then
    /// removes what only the failover had placed.
    async fn settle(&self, op: &OpRow, b: &BindingRow) -> Result<()> {
        let to = &op.to_targets.0;
        let clusters: Vec<String> = to.iter().map(|a| a.cluster.clone()).collect();
        let ready = sqlx::query_scalar!(
            r#"SELECT COUNT(*) = cardinality($2::text[]) AS "ready!" FROM binding_targets
               WHERE binding_id = $1 AND cluster = ANY($2) AND NOT removing AND applied_generation >= generation
                 AND settled"#,
            b.id,
            &clusters,
        )
        .fetch_one(&self.pool)
        .await?;
        if !ready {
            return Ok(());
        }
        let mut reservations = Reservations::new(&*self.admission);
        // A failback's final assignment: the one before the failover at the
        // replicas running when it was placed ([`resize`]).
        let back = &op.previous.0;
        if op.kind == "failback" {
            // Back to the assignment before the failover: lowered targets need their smaller amounts reserved.
            let objects = binding::parse_objects(&b.objects.0.to_string())?;
            let requests = binding::per_replica(&objects)?;
            let live = self.live_targets(b.id).await?;
            for a in back {
                let held = live
                    .iter()
                    .find(|t| t.cluster == a.cluster && t.partition_id == a.partition_id)
                    .map(|t| &t.amounts.0);
                let key = format!("failback-final:{}:{}", op.id, a.cluster);
                let Some(quota) = Quota::needed(a, requests, held, key) else {
                    continue;
                };
                if let Err(e) = reservations.reserve(&quota).await {
                    reservations.release().await;
                    return Err(e);
                }
            }
        }
        // Kept from here on, even if writing the targets fails: a retry reserves
        // under the same keys, which tenancy answers with the same reservations.
        let reserved = reservations.keep();
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query!(
            "UPDATE failovers SET state = 'available', available_at = now(), finished_at = now(), updated_at = now(),
             steps = steps || $2 WHERE id = $1 AND state = 'applied'",
            op.id,
            steps([format!("available in {}", clusters.join(", "))]) as _,
        )
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(());
        }
        announce(&mut tx, op.id).await?;
        let generation = next_generation(&mut tx, b.id).await?;
        let last = if op.kind == "failback" { back } else { to };
        let keep: Vec<String> = last.iter().map(|a| a.cluster.clone()).collect();
        remove_others(&mut tx, b.id, generation, &keep).await?;
        if op.kind == "failback" {
            binding::write_targets(&mut tx, b.id, generation, back, &reserved).await?;
        }
        sqlx::query!("UPDATE bindings SET failover_error = NULL WHERE id = $1", b.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Moves binding `id` to its next generation (its targets are about to
/// change) and returns it, in `tx`.
async fn next_generation(tx: &mut sqlx::PgConnection, id: Uuid) -> Result<i64> {
    Ok(sqlx::query_scalar!(
        "UPDATE bindings SET generation = generation + 1, updated_at = now() WHERE id = $1 RETURNING generation",
        id,
    )
    .fetch_one(&mut *tx)
    .await?)
}

/// Operation `id` as it stands, with its binding's name and application
/// (an operation goes with its binding: the rows cascade).
async fn read(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<Option<Operation>> {
    Ok(sqlx::query_as!(
        Operation,
        r#"SELECT f.id, f.binding_id, b.name AS binding_name,
                  COALESCE(b.objects #>> '{0,metadata,labels,paas.io/app}', '') AS "application!",
                  f.tenant_id, f.kind, f.trigger, f.from_cluster, f.to_clusters, f.state, f.reason,
                  f.steps AS "steps: _", f.fault_detected_at, f.created_at, f.replaced_at, f.available_at, f.finished_at
           FROM failovers f JOIN bindings b ON b.id = f.binding_id WHERE f.id = $1"#,
        id,
    )
    .fetch_optional(conn)
    .await?)
}

/// Records the operation's current row as a [`FAILOVER_CHANGED`] event, in `tx`.
async fn announce(tx: &mut sqlx::PgConnection, id: Uuid) -> Result<()> {
    if let Some(op) = read(tx, id).await? {
        record(tx, op).await?;
    }
    Ok(())
}

/// [`announce`] for an operation written in `tx` just now, which it returns.
async fn announced(tx: &mut sqlx::PgConnection, id: Uuid) -> Result<Operation> {
    let op = read(tx, id).await?.ok_or_else(|| Error::not_found("failover", id))?;
    record(tx, op.clone()).await?;
    Ok(op)
}

/// Records `op` as a [`FAILOVER_CHANGED`] event, in `tx`.
async fn record(tx: &mut sqlx::PgConnection, op: Operation) -> Result<()> {
    let id = op.id;
    let event = paas_proto::v1::FailoverChanged {
        id: id.to_string(),
        binding_id: op.binding_id.to_string(),
        kind: op.kind,
        trigger: op.trigger,
        from_cluster: op.from_cluster,
        to_clusters: op.to_clusters,
        state: op.state,
        reason: op.reason,
        steps: op
            .steps
            .0
            .iter()
            .map(|s| paas_proto::v1::failover_changed::Step {
                name: s.name.clone(),
                at: kernel::grpc::timestamp(s.at),
            })
            .collect(),
    };
    kernel::outbox::record(tx, FAILOVER_CHANGED, Some(op.tenant_id), &event).await?;
    Ok(())
}

/// A last contact as the reasons give it.
fn since(contact: Option<DateTime<Utc>>) -> String {
    contact.map_or_else(
        || "never".to_string(),
        |c| c.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

fn as_assignment(t: &LiveTarget) -> Assignment {
    Assignment {
        cluster: t.cluster.clone(),
        partition_id: t.partition_id,
        namespace: t.namespace.clone(),
        replicas: t.replicas.max(0) as u32,
    }
}

/// Adds `lost` replicas to `survivors` as evenly as possible (the first by
/// name take the remainder); `None` when there is none.
pub fn divide_among_survivors(mut survivors: Vec<Assignment>, lost: u32) -> Option<Vec<Assignment>> {
    if survivors.is_empty() {
        return None;
    }
    survivors.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    let n = survivors.len() as u32;
    for (i, s) in survivors.iter_mut().enumerate() {
        s.replicas += lost / n + u32::from((i as u32) < lost % n);
    }
    Some(survivors)
}

/// `assignment` with its replicas brought to `total` in proportion (the
/// largest remainders, then the first by name, take the rest): what a
/// failback restores when the binding was scaled after the failover.
/// Unchanged when it already sums to `total` or is empty.
pub fn resize(assignment: &[Assignment], total: u32) -> Vec<Assignment> {
    let sum: u32 = assignment.iter().map(|a| a.replicas).sum();
    if sum == total || assignment.is_empty() {
        return assignment.to_vec();
    }
    let mut out: Vec<Assignment> = assignment.to_vec();
    out.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    if sum == 0 {
        // No proportion to keep: every cluster of the assignment gets its share.
        return divide_among_survivors(
            out.into_iter().map(|a| Assignment { replicas: 0, ..a }).collect(),
            total,
        )
        .unwrap_or_default();
    }
    let shares: Vec<(u64, u64)> = out
        .iter()
        .map(|a| {
            let exact = u64::from(a.replicas) * u64::from(total);
            (exact / u64::from(sum), exact % u64::from(sum))
        })
        .collect();
    let mut left = u64::from(total) - shares.iter().map(|s| s.0).sum::<u64>();
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by(|&i, &j| shares[j].1.cmp(&shares[i].1).then(i.cmp(&j)));
    for (i, a) in out.iter_mut().enumerate() {
        a.replicas = u32::try_from(shares[i].0).unwrap_or(u32::MAX);
    }
    for i in order {
        if left == 0 {
            break;
        }
        out[i].replicas += 1;
        left -= 1;
    }
    out
}

/// Both assignments at once: every cluster of either, with the larger
/// replica count (the first phase of a failback).
pub fn union(current: &[Assignment], previous: &[Assignment]) -> Vec<Assignment> {
    let mut out: BTreeMap<String, Assignment> = current.iter().map(|a| (a.cluster.clone(), a.clone())).collect();
    for p in previous {
        out.entry(p.cluster.clone())
            .and_modify(|a| a.replicas = a.replicas.max(p.replicas))
            .or_insert_with(|| p.clone());
    }
    out.into_values().collect()
}

async fn remove_others(tx: &mut sqlx::PgConnection, binding: Uuid, generation: i64, keep: &[String]) -> Result<()> {
    sqlx::query!(
        "UPDATE binding_targets SET removing = true, generation = $2, next_attempt_at = now(), failures = 0
         WHERE binding_id = $1 AND NOT removing AND NOT (cluster = ANY($3))",
        binding,
        generation,
        keep,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The tenant of binding `id`, which the caller may fail over.
async fn visible_binding(pool: &PgPool, caller: &Caller, id: Uuid) -> Result<Uuid> {
    let tenant = sqlx::query_scalar!("SELECT tenant_id FROM bindings WHERE id = $1 AND NOT deleted", id)
        .fetch_optional(pool)
        .await?;
    let tenant = tenant
        .filter(|t| caller.can_see(*t))
        .ok_or_else(|| Error::not_found("binding", id))?;
    caller.require(tenant, Role::Operator, "binding", id)?;
    Ok(tenant)
}

#[allow(clippy::too_many_arguments)]
async fn open(
    pool: &PgPool,
    id: Uuid,
    binding: Uuid,
    tenant: Uuid,
    kind: &str,
    from: &str,
    previous: &[Assignment],
    detected: Option<DateTime<Utc>>,
) -> Result<Operation> {
    let mut tx = pool.begin().await?;
    let direction = if kind == "failback" { "onto" } else { "off" };
    let opened = sqlx::query_scalar!(
        "INSERT INTO failovers (id, binding_id, tenant_id, kind, trigger, from_cluster, previous, fault_detected_at,
                                steps)
         VALUES ($1, $2, $3, $4, 'operator', $5, $6, COALESCE($7, now()), $8) ON CONFLICT DO NOTHING
         RETURNING id",
        id,
        binding,
        tenant,
        kind,
        from,
        sqlx::types::Json(previous) as _,
        detected,
        steps([format!("opened by an operator: {kind} {direction} {from}")]) as _,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| {
        Error::Conflict(format!(
            "binding {binding} already has a failover or failback in progress"
        ))
    })?;
    let op = announced(&mut tx, opened).await?;
    tx.commit().await?;
    Ok(op)
}

/// A live target's cluster and its condition.
#[derive(sqlx::FromRow)]
struct TargetCluster {
    cluster: String,
    /// `Deregistered` when the cluster is gone.
    condition: String,
    not_ready_since: Option<DateTime<Utc>>,
}

/// The last operation that ended available.
#[derive(sqlx::FromRow)]
struct Finished {
    kind: String,
    from_cluster: String,
    previous: sqlx::types::Json<Vec<Assignment>>,
}

/// An operator's failover of `binding` off `from` (default: its first
/// cluster out of Ready). The reconciler carries it out; a singleton's copy
/// in `from` is stopped (or its lease expires) before the new one is written.
///
/// # Errors
/// NotFound (binding or cluster), PermissionDenied below operator,
/// FailedPrecondition (nothing to move), Conflict (an operation is open).
pub async fn trigger_failover(pool: &PgPool, caller: &Caller, binding: Uuid, from: Option<&str>) -> Result<Operation> {
    let tenant = visible_binding(pool, caller, binding).await?;
    let live = sqlx::query_as!(
        TargetCluster,
        r#"SELECT t.cluster, COALESCE(c.condition, 'Deregistered') AS "condition!",
                  c.not_ready_since AS "not_ready_since?"
           FROM binding_targets t LEFT JOIN clusters c ON c.name = t.cluster
           WHERE t.binding_id = $1 AND NOT t.removing ORDER BY t.cluster"#,
        binding,
    )
    .fetch_all(pool)
    .await?;
    let chosen = match from {
        Some(name) => live
            .iter()
            .find(|t| t.cluster == name)
            .ok_or_else(|| Error::invalid("from_cluster", format!("the binding has no replicas in {name}")))?,
        None => live.iter().find(|t| t.condition != "Ready").ok_or_else(|| {
            Error::FailedPrecondition("every cluster of the binding is Ready; name from_cluster".into())
        })?,
    };
    open(
        pool,
        kernel::id::new_id(),
        binding,
        tenant,
        "failover",
        &chosen.cluster,
        &[],
        chosen.not_ready_since,
    )
    .await
}

/// An operator's failback of `binding` onto the cluster its last completed
/// failover left, restoring the assignment before it (additions first).
///
/// # Errors
/// NotFound, PermissionDenied below operator, FailedPrecondition (no
/// completed failover, or the cluster is not Ready), Conflict (one is open).
pub async fn trigger_failback(pool: &PgPool, caller: &Caller, binding: Uuid) -> Result<Operation> {
    let tenant = visible_binding(pool, caller, binding).await?;
    let last = sqlx::query_as!(
        Finished,
        r#"SELECT kind, from_cluster, previous AS "previous: _" FROM failovers
           WHERE binding_id = $1 AND state = 'available' ORDER BY created_at DESC LIMIT 1"#,
        binding,
    )
    .fetch_optional(pool)
    .await?;
    let Some(Finished {
        from_cluster: cluster,
        previous,
        ..
    }) = last.filter(|l| l.kind == "failover")
    else {
        return Err(Error::FailedPrecondition(
            "the binding has no completed failover to undo".into(),
        ));
    };
    let condition = sqlx::query_scalar!("SELECT condition FROM clusters WHERE name = $1", &cluster)
        .fetch_optional(pool)
        .await?;
    if condition.as_deref() != Some("Ready") {
        return Err(Error::FailedPrecondition(format!(
            "cluster {cluster} is {}; fail back once it is Ready",
            condition.as_deref().unwrap_or("deregistered")
        )));
    }
    open(
        pool,
        kernel::id::new_id(),
        binding,
        tenant,
        "failback",
        &cluster,
        &previous.0,
        None,
    )
    .await
}

/// An operator's confirmation of a failback awaiting it (a singleton's,
/// [`crate::failback`]): it goes on from `pending`.
///
/// # Errors
/// NotFound, PermissionDenied below operator, Conflict (not awaiting confirmation).
pub async fn confirm(pool: &PgPool, caller: &Caller, id: Uuid) -> Result<Operation> {
    let tenant = sqlx::query_scalar!("SELECT tenant_id FROM failovers WHERE id = $1", id)
        .fetch_optional(pool)
        .await?
        .filter(|t| caller.can_see(*t))
        .ok_or_else(|| Error::not_found("failover", id))?;
    caller.require(tenant, Role::Operator, "failover", id)?;
    let mut tx = pool.begin().await?;
    let confirmed = sqlx::query_scalar!(
        "UPDATE failovers SET state = 'pending', reason = '', updated_at = now(), steps = steps || $2
         WHERE id = $1 AND state = 'awaiting-confirmation' RETURNING id",
        id,
        steps([format!("confirmed by {}", caller.subject)]) as _,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::Conflict(format!("failover {id} is not awaiting confirmation")))?;
    let op = announced(&mut tx, confirmed).await?;
    tx.commit().await?;
    Ok(op)
}

/// A page of operations in id order: every one for a platform
/// administrator, else those of the caller's tenants' bindings.
///
/// # Errors
/// The database fails.
pub async fn list(
    pool: &PgPool,
    caller: &Caller,
    binding: Option<Uuid>,
    page: Page,
) -> Result<(Vec<Operation>, String)> {
    let tenants = caller.visible_tenants();
    let rows = sqlx::query_as!(
        Operation,
        r#"SELECT f.id, f.binding_id, b.name AS binding_name,
                  COALESCE(b.objects #>> '{0,metadata,labels,paas.io/app}', '') AS "application!",
                  f.tenant_id, f.kind, f.trigger, f.from_cluster, f.to_clusters, f.state, f.reason,
                  f.steps AS "steps: _", f.fault_detected_at, f.created_at, f.replaced_at, f.available_at, f.finished_at
           FROM failovers f JOIN bindings b ON b.id = f.binding_id
           WHERE ($1::uuid[] IS NULL OR f.tenant_id = ANY($1)) AND ($2::uuid IS NULL OR f.binding_id = $2)
             AND ($3::uuid IS NULL OR f.id > $3)
           ORDER BY f.id LIMIT $4"#,
        tenants.as_deref(),
        binding,
        page.after,
        page.fetch(),
    )
    .fetch_all(pool)
    .await?;
    Ok(page.finish(rows, |o| o.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(cluster: &str, replicas: u32) -> Assignment {
        Assignment {
            cluster: cluster.into(),
            partition_id: Uuid::nil(),
            namespace: "ns".into(),
            replicas,
        }
    }

    #[test]
    fn lost_replicas_are_spread_over_the_survivors_and_failback_adds_before_it_removes() {
        let d = divide_among_survivors(vec![a("c", 1), a("b", 1)], 3).unwrap();
        assert_eq!(
            d.iter().map(|x| (x.cluster.as_str(), x.replicas)).collect::<Vec<_>>(),
            vec![("b", 3), ("c", 2)]
        );
        assert!(divide_among_survivors(vec![], 3).is_none());
        let u = union(&[a("b", 4)], &[a("a", 2), a("b", 2)]);
        let r = |v: &[Assignment], n| {
            resize(v, n)
                .iter()
                .map(|x| (x.cluster.clone(), x.replicas))
                .collect::<Vec<_>>()
        };
        // Scaled from 6 to 7 while dc1 was lost: failback restores 7, not 6.
        assert_eq!(
            r(&[a("dc1", 4), a("dc2", 2)], 7),
            vec![("dc1".into(), 5), ("dc2".into(), 2)]
        );
        assert_eq!(
            r(&[a("dc1", 4), a("dc2", 2)], 3),
            vec![("dc1".into(), 2), ("dc2".into(), 1)]
        );
        assert_eq!(r(&[a("dc1", 1)], 1), vec![("dc1".into(), 1)]);
        assert_eq!(r(&[a("a", 0), a("b", 0)], 3), vec![("a".into(), 2), ("b".into(), 1)]);
        assert_eq!(
            u.iter().map(|x| (x.cluster.as_str(), x.replicas)).collect::<Vec<_>>(),
            vec![("a", 2), ("b", 4)]
        );
    }
}
