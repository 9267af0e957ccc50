//! The release driver: advances every deploying release, one step at a
//! time, with its state in the database so a restart resumes where it
//! stood. What a step does is decided by [`crate::rollout`] (pure
//! transitions, unit-tested there); the driver only looks at what a
//! transition asks to see, performs its effects (applies views of the
//! release to federation bindings, records progress, moves phases, fails,
//! succeeds) and schedules the release again.
//!
//! A step applies the current wave's services as federation bindings
//! (once per wave), then waits until each is Healthy before the next wave;
//! after the last wave the release has succeeded, the one before is
//! superseded, and services the new release no longer has are removed.
//!
//! A slotted release (blue-green, canary, A/B, shadow; see
//! [`crate::traffic`]) goes through phases after its waves, each written to
//! its row before it acts:
//!
//! - `rollout`: the waves apply the new slot beside the old one, which keeps
//!   serving (Service on the old slot, HTTPRoute 100/0);
//! - `traffic`: the strategy's step is applied and the driver waits until
//!   every service is Healthy: blue-green switches the Service to the new
//!   slot; canary weights the HTTPRoute by `steps[step]`, holds
//!   `pause_seconds` and goes on to the next step (or waits for a resume
//!   when `pause`); A/B matches requests; shadow mirrors them;
//! - `waiting`: for a confirm (blue-green), a resume (paused canary) or a
//!   promote (canary, A/B, shadow); the driver does nothing meanwhile;
//! - `finishing`: only the new slot remains and serves everything; once
//!   Healthy the release has succeeded;
//! - `aborting` (an abort, a rollback to the replaced release, or a step
//!   not Healthy within the deadline): the old slot serves everything again
//!   and the new slot is removed, applied at once whatever state the new
//!   slot is in; the release is `aborted` once every cluster has it.
//!
//! A step's objects are applied once (`applied` names the phase and step);
//! phase changes are conditional on the phase read, so an abort that lands
//! while a step is being applied wins and the next tick switches back.
//!
//! A gray release that replaces another (see [`crate::strategy`]) rolls out
//! in place, wave by wave, in phase `rollout` with `step` = the wave: the
//! waves are fixed first (`gray_waves`, from where the bindings run), then
//! each wave is applied once (`applied` = `gray-<step>`; every service's
//! binding gets the new objects with the later waves' clusters held), its
//! clusters gated Healthy within the deadline (else the release fails and
//! stops there), held `pause` seconds (`hold_until`) or moved to `waiting`
//! for a promote; after the last wave the release has succeeded. An abort
//! goes through `aborting` as above, applying the replaced release's
//! objects everywhere.
//!
//! Several apps replicas may run drivers: a release is claimed for a short
//! while (`claimed_until`) with `FOR UPDATE SKIP LOCKED`, so each step runs
//! once.

use std::sync::Arc;
use std::time::Duration;

use kernel::{Error, Result};
use paas_proto::v1 as pb;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::application::{Application, apply_service};
use crate::federation::{self, Federation, FederationClient};
use crate::release::{Release, View, service_objects};
use crate::rollout::{self, Effect, Found, Look, Moment, Observed, Phase, Record, Then};
use crate::traffic::{self, GatewayRef};

/// How the driver paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// How often a release waiting for its services is looked at again.
    pub poll: Duration,
    /// A release whose services are not all Healthy after this has failed.
    pub deadline: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(500),
            deadline: Duration::from_secs(600),
        }
    }
}

/// Drives releases.
pub struct Driver {
    pool: PgPool,
    federation: Federation,
    wake: Arc<Notify>,
    pacing: Pacing,
    gateway: GatewayRef,
}

enum Step {
    /// Look again after the poll interval.
    Wait,
    /// Look again at once (the next wave or phase).
    Next,
    /// Nothing to do until someone acts on the release.
    Idle,
    /// Done, one way or the other.
    Finished,
}

/// How long an idle release (waiting for a person) is left alone; an action
/// on it makes it due at once.
const IDLE: Duration = Duration::from_secs(3600);
/// Logs a step that could not be recorded (it is retried when its claim lapses).
fn stepped(done: std::result::Result<Result<()>, tokio::task::JoinError>) {
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "release step not recorded"),
        Err(e) => tracing::warn!(error = %e, "release step stopped"),
    }
}

/// Releases stepped at once by one driver: they wait on federation, not on
/// the CPU.
const IN_FLIGHT: usize = 64;

/// Most rounds of look, apply and look again in one tick of a release.
const ROUNDS: usize = 8;

impl Driver {
    /// A driver over the apps schema in `pool`; HTTPRoutes attach to `gateway`.
    pub fn new(pool: PgPool, federation: Federation, wake: Arc<Notify>, pacing: Pacing, gateway: GatewayRef) -> Self {
        Self {
            pool,
            federation,
            wake,
            pacing,
            gateway,
        }
    }

    /// Runs until `stop`: releases are stepped as they fall due, up to
    /// [`IN_FLIGHT`] at once, each on its own (a slow federation call
    /// holds up only its release, not a batch).
    ///
    /// # Errors
    /// Never: failures are recorded on releases or retried.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        let this = Arc::new(self);
        let mut running = tokio::task::JoinSet::new();
        while !stop.is_cancelled() {
            let room = IN_FLIGHT - running.len();
            let claimed = if room == 0 {
                0
            } else {
                match this.claim(room).await {
                    Ok(due) => {
                        let n = due.len();
                        for release in due {
                            let driver = this.clone();
                            running.spawn(async move { driver.advance(release).await });
                        }
                        n
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "releases not claimed; retrying");
                        0
                    }
                }
            };
            // All the room taken: more may be due.
            if claimed > 0 && claimed == room {
                if let Some(done) = running.join_next().await {
                    stepped(done);
                }
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                Some(done) = running.join_next(), if !running.is_empty() => stepped(done),
                () = this.wake.notified() => {}
                () = tokio::time::sleep(this.pacing.poll) => {}
            }
        }
        // Steps under way finish (each is a short federation call and an update).
        while running.join_next().await.is_some() {}
        Ok(())
    }

    /// Claims up to `n` due releases for a while.
    async fn claim(&self, n: usize) -> Result<Vec<Release>> {
        Ok(sqlx::query_as!(
            Release,
            "UPDATE releases SET claimed_until = now() + interval '30 seconds', started_at = coalesce(started_at, now()),
                    phase_started_at = coalesce(phase_started_at, now())
             WHERE id IN (SELECT id FROM releases WHERE state = 'deploying' AND next_check_at <= now()
                          AND (claimed_until IS NULL OR claimed_until < now())
                          ORDER BY next_check_at LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING id, application_id, tenant_id, number, template_version_id, parameters, placement, strategy,
                    objects, waves, state, wave, applied_wave, message, rollback_of, created_by, approved_by,
                    created_at, started_at, finished_at, slot, replaces, phase, step, applied, traffic,
                    hold_until, phase_started_at, gray_waves",
            n as i64,
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Steps a claimed release once and says when to look at it again.
    async fn advance(&self, release: Release) -> Result<()> {
        let (id, phase, at) = (release.id, release.phase.clone(), release.step);
        let step = match self.step(release).await {
            Ok(step) => step,
            Err(e) => {
                tracing::warn!(error = %e, release = %id, "release step failed; retrying");
                Step::Wait
            }
        };
        let delay = match step {
            Step::Next => Duration::ZERO,
            Step::Idle => IDLE,
            Step::Wait | Step::Finished => self.pacing.poll,
        };
        // A release whose phase moved meanwhile (by this step or by an
        // action on it) is looked at again at once.
        sqlx::query!(
            "UPDATE releases SET claimed_until = NULL,
                    next_check_at = CASE WHEN phase = $3 AND step = $4 THEN now() + make_interval(secs => $2) ELSE now() END
             WHERE id = $1",
            id,
            delay.as_secs_f64(),
            phase,
            at,
        )
        .execute(&self.pool)
        .await?;
        if matches!(step, Step::Next) {
            self.wake.notify_one();
        }
        Ok(())
    }

    async fn application(&self, release: &Release) -> Result<Application> {
        Ok(sqlx::query_as!(
            Application,
            "SELECT id, tenant_id, project_id, name, environment, state, current_release, replicas, bindings,
                    created_by, created_at, updated_at
             FROM applications WHERE id = $1 AND tenant_id = $2",
            release.application_id,
            release.tenant_id,
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// The release `release` replaces, if any.
    async fn replaced(&self, release: &Release) -> Result<Option<Release>> {
        let Some(n) = release.replaces else { return Ok(None) };
        Ok(sqlx::query_as!(
            Release,
            "SELECT id, application_id, tenant_id, number, template_version_id, parameters, placement, strategy,
                    objects, waves, state, wave, applied_wave, message, rollback_of, created_by, approved_by,
                    created_at, started_at, finished_at, slot, replaces, phase, step, applied, traffic,
                    hold_until, phase_started_at, gray_waves
             FROM releases WHERE application_id = $1 AND tenant_id = $2 AND number = $3",
            release.application_id,
            release.tenant_id,
            n,
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Steps a release: asks [`rollout::step`] what to do, looks at what it
    /// asks to see, performs its effects, until it says when to look again.
    async fn step(&self, mut release: Release) -> Result<Step> {
        let app = self.application(&release).await?;
        let old = self.replaced(&release).await?;
        let bindings = app.bindings.as_object().cloned().unwrap_or_default();
        let mut run = Run {
            release: &mut release,
            saved: bindings.clone(),
            bindings,
            app: &app,
            old: old.as_ref(),
            federation: self.federation.client(),
            unsaved: false,
        };
        let mut observed = Observed::new();
        // A tick is at most a look, an apply and a look after it; the bound
        // keeps a transition that kept asking from holding the claim.
        for _ in 0..ROUNDS {
            let bound: Vec<String> = run.bindings.keys().cloned().collect();
            let moment = Moment {
                release: run.release,
                old: run.old,
                bound: &bound,
                now: chrono::Utc::now(),
                deadline: self.pacing.deadline,
            };
            let transition = rollout::step(&moment, &observed);
            if let Then::Look(look) = transition.then {
                let found = Self::observe(&look, &mut run).await?;
                observed = observed.saw(look, found);
                continue;
            }
            match self.perform(&mut run, &transition.effects).await? {
                Performed::Refused(why) => {
                    // As before: what went out of a refused apply is not recorded.
                    run.bindings.clone_from(&run.saved);
                    run.unsaved = false;
                    observed = observed.refused(why);
                    continue;
                }
                Performed::Lost => return Ok(Step::Wait),
                Performed::Done => {}
            }
            let step = match transition.then {
                Then::Look(_) | Then::Again => None,
                Then::Poll => Some(Step::Wait),
                Then::Next => Some(Step::Next),
                Then::Idle => Some(Step::Idle),
                Then::Done => Some(Step::Finished),
            };
            match step {
                Some(step) => return Ok(step),
                // What was seen before the effects no longer holds.
                None => observed = Observed::new(),
            }
        }
        Ok(Step::Wait)
    }

    /// Looks at what a transition asks to see.
    async fn observe(look: &Look, run: &mut Run<'_>) -> Result<Found> {
        let (federation, bindings) = (&mut run.federation, &run.bindings);
        match look {
            Look::Health(services) => health(federation, bindings, services, None).await,
            Look::HealthIn { services, clusters } => health(federation, bindings, services, Some(clusters)).await,
            Look::Placement(services) => Ok(Found::Placed(placed_targets(federation, bindings, services).await?)),
        }
    }

    /// Performs `effects` in order; stops at a refused apply or a move that
    /// lost to something else.
    async fn perform(&self, run: &mut Run<'_>, effects: &[Effect]) -> Result<Performed> {
        for effect in effects {
            match effect {
                Effect::Adopt(services) => {
                    let Some(old) = run.old else { continue };
                    for service in services {
                        let objects = old
                            .objects
                            .get(service)
                            .and_then(Value::as_array)
                            .map(|o| traffic::adopt(o, traffic::FIRST_SLOT))
                            .unwrap_or_default();
                        let replicas = replicas(run.app, service);
                        let applied = apply_service(
                            &mut run.federation,
                            &self.pool,
                            run.app,
                            old,
                            service,
                            &Value::Array(objects),
                            replicas,
                            &[],
                        )
                        .await;
                        if let Err(why) = refusal(service, applied)? {
                            return Ok(Performed::Refused(why));
                        }
                    }
                }
                Effect::Apply { services, view, hold } => {
                    if let Some(why) = self.apply(run, services, *view, hold).await? {
                        return Ok(Performed::Refused(why));
                    }
                }
                Effect::Record(record) => {
                    self.record(run, record).await?;
                    record.apply_to(run.release, chrono::Utc::now());
                }
                Effect::Enter { phase, step, message } => {
                    if !self.enter(run.release, *phase, *step, message).await? {
                        return Ok(Performed::Lost);
                    }
                }
                Effect::Abort(message) => self.abort(run.release, message).await?,
                Effect::Fail(message) => self.fail(run.release, message).await?,
                Effect::Succeed { unbind } => self.succeed(run, unbind).await?,
                Effect::Aborted { adopted } => self.aborted(run, *adopted).await?,
            }
        }
        if run.unsaved {
            self.save_bindings(&self.pool, run).await?;
            run.saved();
        }
        Ok(Performed::Done)
    }

    /// Applies `view` of the release to `services`' bindings (the clusters
    /// in `hold` keep what they run); a service without objects in the view
    /// loses its binding. `Some(why)` when federation refuses.
    async fn apply(
        &self,
        run: &mut Run<'_>,
        services: &[String],
        view: View,
        hold: &[String],
    ) -> Result<Option<String>> {
        for service in services {
            match service_objects(run.release, run.old, service, view, &self.gateway)? {
                Some(objects) => {
                    let replicas = replicas(run.app, service);
                    let applied = apply_service(
                        &mut run.federation,
                        &self.pool,
                        run.app,
                        run.release,
                        service,
                        &objects,
                        replicas,
                        hold,
                    )
                    .await;
                    match refusal(service, applied)? {
                        Ok(binding) => {
                            run.bindings.insert(service.clone(), json!(binding.id));
                        }
                        Err(why) => return Ok(Some(why)),
                    }
                }
                None => {
                    if let Some(id) = run.bindings.get(service).and_then(Value::as_str) {
                        federation::delete_binding(&mut run.federation, id).await?;
                    }
                    run.bindings.remove(service);
                }
            }
            run.unsaved = true;
        }
        Ok(None)
    }

    async fn save_bindings<'e>(&self, db: impl sqlx::PgExecutor<'e>, run: &Run<'_>) -> Result<()> {
        sqlx::query!(
            "UPDATE applications SET bindings = $3, updated_at = now() WHERE id = $1 AND tenant_id = $2",
            run.app.id,
            run.app.tenant_id,
            Value::Object(run.bindings.clone()),
        )
        .execute(db)
        .await?;
        Ok(())
    }

    /// Writes `record` down, with the bindings applied before it.
    async fn record(&self, run: &mut Run<'_>, record: &Record) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if run.unsaved {
            self.save_bindings(&mut *tx, run).await?;
            run.saved();
        }
        let release = &*run.release;
        // Each arm is its own checked statement (and its own type), so each executes itself.
        match record {
            Record::WaveApplied { message } => {
                sqlx::query!(
                    "UPDATE releases SET applied_wave = wave, message = $2 WHERE id = $1 AND phase = 'rollout'",
                    release.id,
                    message,
                )
                .execute(&mut *tx)
                .await?
            }
            Record::WaveHealthy => {
                sqlx::query!(
                    "UPDATE releases SET wave = wave + 1 WHERE id = $1 AND state = 'deploying' AND phase = 'rollout'",
                    release.id,
                )
                .execute(&mut *tx)
                .await?
            }
            Record::Applied { key, traffic, message } => {
                sqlx::query!(
                    "UPDATE releases SET applied = $2, traffic = coalesce($3, traffic), message = coalesce($4, message)
                 WHERE id = $1 AND phase = $5 AND step = $6 AND state = 'deploying'",
                    release.id,
                    key,
                    *traffic,
                    message.as_deref(),
                    release.phase,
                    release.step,
                )
                .execute(&mut *tx)
                .await?
            }
            Record::WaveOut { key, message } => {
                sqlx::query!(
                    "UPDATE releases SET applied = $2, message = $3, phase_started_at = now(), hold_until = NULL
                 WHERE id = $1 AND state = 'deploying' AND phase = 'rollout' AND step = $4",
                    release.id,
                    key,
                    message,
                    release.step,
                )
                .execute(&mut *tx)
                .await?
            }
            Record::Hold { seconds, message } => {
                sqlx::query!(
                    "UPDATE releases SET hold_until = now() + make_interval(secs => $2), message = $3 WHERE id = $1
                 AND phase = $4 AND step = $5",
                    release.id,
                    f64::from(*seconds),
                    message,
                    release.phase,
                    release.step,
                )
                .execute(&mut *tx)
                .await?
            }
            Record::Waves { waves, message } => {
                sqlx::query!(
                    "UPDATE releases SET gray_waves = $2, message = $3 WHERE id = $1 AND gray_waves IS NULL
                 AND phase = 'rollout'",
                    release.id,
                    json!(waves),
                    message,
                )
                .execute(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        Ok(())
    }

    /// Moves `release` from the phase and step read to `to` at `step`, with
    /// `message`; false when something else (an abort) moved it first.
    async fn enter(&self, release: &Release, to: Phase, step: i32, message: &str) -> Result<bool> {
        let moved = sqlx::query!(
            "UPDATE releases SET phase = $3, step = $4, message = $5, hold_until = NULL, phase_started_at = now()
             WHERE id = $1 AND phase = $2 AND step = $6 AND state = 'deploying'",
            release.id,
            release.phase,
            to.as_str(),
            step,
            message,
            release.step,
        )
        .execute(&self.pool)
        .await?;
        Ok(moved.rows_affected() == 1)
    }

    async fn abort(&self, release: &Release, message: &str) -> Result<()> {
        sqlx::query!(
            "UPDATE releases SET phase = 'aborting', message = $2, phase_started_at = now() WHERE id = $1
                     AND state = 'deploying' AND phase <> 'aborting'",
            release.id,
            message,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn fail(&self, release: &Release, message: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "UPDATE releases SET state = 'failed', message = $2, finished_at = now() WHERE id = $1
                     AND state = 'deploying'",
            release.id,
            message,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE applications SET state = 'failed', updated_at = now() WHERE id = $1 AND tenant_id = $2",
            release.application_id,
            release.tenant_id,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The release is back on the one it replaces.
    async fn aborted(&self, run: &mut Run<'_>, adopted: bool) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "UPDATE releases SET state = 'aborted', phase = 'done', finished_at = now() WHERE id = $1
                     AND state = 'deploying' AND phase = 'aborting'",
            run.release.id,
        )
        .execute(&mut *tx)
        .await?;
        // An unslotted release a slotted one returned to now runs (adopted)
        // in the first slot; a gray release returned to it as it ran.
        if adopted && let Some(old) = run.old {
            sqlx::query!(
                "UPDATE releases SET slot = coalesce(slot, $2) WHERE id = $1",
                old.id,
                traffic::FIRST_SLOT,
            )
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query!(
            "UPDATE applications SET state = 'running', updated_at = now() WHERE id = $1 AND tenant_id = $2",
            run.app.id,
            run.app.tenant_id,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The release succeeded; the bindings of the services in `unbind` go.
    async fn succeed(&self, run: &mut Run<'_>, unbind: &[String]) -> Result<()> {
        for service in unbind {
            if let Some(id) = run.bindings.get(service).and_then(Value::as_str) {
                federation::delete_binding(&mut run.federation, id).await?;
            }
            run.bindings.remove(service);
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "UPDATE releases SET state = 'superseded' WHERE application_id = $1 AND tenant_id = $2
                     AND state = 'succeeded' AND number < $3",
            run.app.id,
            run.app.tenant_id,
            run.release.number,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE releases SET state = 'succeeded', phase = 'done', traffic = 100, message = '',
                     finished_at = now() WHERE id = $1 AND state = 'deploying'",
            run.release.id,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE applications SET state = 'running', current_release = $3, bindings = $4, updated_at = now()
             WHERE id = $1 AND tenant_id = $2",
            run.app.id,
            run.app.tenant_id,
            run.release.number,
            Value::Object(run.bindings.clone()),
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        run.saved();
        Ok(())
    }
}

/// What one tick of a release works on.
struct Run<'a> {
    release: &'a mut Release,
    app: &'a Application,
    /// The application's bindings (service -> binding id), as applied in this tick.
    bindings: serde_json::Map<String, Value>,
    old: Option<&'a Release>,
    federation: FederationClient,
    /// The bindings as last written to the application.
    saved: serde_json::Map<String, Value>,
    /// Bindings applied but not yet written to the application.
    unsaved: bool,
}

impl Run<'_> {
    /// The bindings are written down.
    fn saved(&mut self) {
        self.saved.clone_from(&self.bindings);
        self.unsaved = false;
    }
}

/// How performing a transition's effects went.
enum Performed {
    /// Every effect was performed.
    Done,
    /// Federation refused an apply: why.
    Refused(String),
    /// A move lost to something else (an abort).
    Lost,
}

/// The replicas scaling set for `service`, if any.
fn replicas(app: &Application, service: &str) -> Option<u32> {
    app.replicas
        .get(service)
        .and_then(Value::as_u64)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// An apply's outcome: federation unreachable is an error (the step is
/// retried); a refusal is `Err(why)`, naming the service.
fn refusal(service: &str, applied: Result<pb::Binding>) -> Result<std::result::Result<pb::Binding, String>> {
    match applied {
        Ok(b) => Ok(Ok(b)),
        Err(Error::Unavailable(m)) => Err(Error::Unavailable(m)),
        Err(e) => Ok(Err(format!("{service}: {e}"))),
    }
}

/// Whether each of `services`' bindings is Healthy (only its targets in
/// `clusters`, when given).
async fn health(
    federation: &mut FederationClient,
    bindings: &serde_json::Map<String, Value>,
    services: &[String],
    clusters: Option<&[String]>,
) -> Result<Found> {
    for service in services {
        let Some(id) = bindings.get(service).and_then(Value::as_str) else {
            return Ok(Found::Waiting(format!("{service} has no binding yet")));
        };
        let Some(binding) = federation::binding(federation, id).await? else {
            return Ok(Found::Gone(format!("{service}: its binding disappeared")));
        };
        match clusters {
            None if binding.health != "Healthy" => {
                return Ok(Found::Waiting(format!("{service}: {}", binding.health_reason)));
            }
            None => {}
            Some(clusters) => {
                if let Some(t) = binding
                    .targets
                    .iter()
                    .find(|t| !t.removing && clusters.contains(&t.cluster) && t.health != "Healthy")
                {
                    return Ok(Found::Waiting(format!("{service}: {}", t.health_reason)));
                }
            }
        }
    }
    Ok(Found::Healthy)
}

/// Where the application's bindings run now: (cluster, partition id),
/// each cluster once, for the gray waves.
async fn placed_targets(
    federation: &mut FederationClient,
    bindings: &serde_json::Map<String, Value>,
    services: &[String],
) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for service in services {
        let Some(id) = bindings.get(service).and_then(Value::as_str) else {
            continue;
        };
        let Some(binding) = federation::binding(federation, id).await? else {
            continue;
        };
        for t in binding.targets.into_iter().filter(|t| !t.removing) {
            if !out.iter().any(|(c, _)| *c == t.cluster) {
                out.push((t.cluster, t.partition_id));
            }
        }
    }
    Ok(out)
}
