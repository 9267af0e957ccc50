//! The release driver: advances every deploying release, one step at a
//! time, with its state in the database so a restart resumes where it
//! stood. A step applies the current wave's services as federation bindings
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

use crate::application::{Application, Federation, FederationClient, Release, release_columns};
use crate::render::object_name;
use crate::strategy::{GrayBy, GrayPause, Strategy};
use crate::traffic::{self, GatewayRef, Layout, Route, Side};

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

/// Which objects of a slotted release a service's binding holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The new slot beside the old one, the old one serving.
    Rollout,
    /// The strategy's traffic step.
    Traffic(usize),
    /// Only the new slot, serving everything.
    Final,
    /// Only the old slot, serving everything (abort).
    Back,
}

/// The objects `service`'s binding holds in `view` of `release` (which
/// replaces `old`); `None`: the service has no binding then (a service the
/// old release did not have, on the way back).
///
/// # Errors
/// A layout that cannot be built (a stored release inconsistent with its strategy).
pub fn service_objects(
    release: &Release,
    old: Option<&Release>,
    service: &str,
    view: View,
    gateway: &GatewayRef,
) -> Result<Option<Value>> {
    let empty = Vec::new();
    let new_objects = release.objects.get(service).and_then(Value::as_array).unwrap_or(&empty);
    if release.strategy().gray() && view == View::Back {
        // A gray release returns to what the replaced release ran.
        return match old {
            Some(o) if o.objects.get(service).is_some() => service_objects(o, None, service, View::Final, gateway),
            _ => Ok(None),
        };
    }
    let Some(slot) = release.slot.as_deref() else {
        // An unslotted release rolls out beside the slot it replaces, then
        // holds what it rendered.
        // (A gray release runs its own objects wave by wave and returns to
        // the old ones on abort: no handover.)
        if let (View::Rollout, Some(o)) = (view, old)
            && !release.strategy().gray()
            && let Some(old_slot) = o.slot.as_deref().filter(|_| runs_in_slot(o))
            && let Some(objects) = o.objects.get(service).and_then(Value::as_array)
        {
            let side = Side {
                objects,
                slot: old_slot,
                adopted: false,
            };
            return Ok(Some(Value::Array(traffic::handover(
                new_objects,
                &side,
                o.strategy().routed(),
                gateway,
            )?)));
        }
        return Ok(Some(Value::Array(new_objects.clone())));
    };
    let strategy = release.strategy();
    let routed = strategy.routed();
    // An unslotted release returned to by an abort runs adopted in its slot.
    let new = Side {
        objects: new_objects,
        slot,
        adopted: !strategy.slotted(),
    };
    let old_slot = old.map(|o| o.slot.clone().unwrap_or_else(|| traffic::FIRST_SLOT.to_string()));
    let old_side = match (old, &old_slot) {
        (Some(o), Some(s)) => o.objects.get(service).and_then(Value::as_array).map(|objects| Side {
            objects,
            slot: s.as_str(),
            adopted: !o.strategy().slotted(),
        }),
        _ => None,
    };
    let only_new = Layout {
        old: None,
        new: Some(new),
        serving: slot,
        route: routed.then_some(Route::Serving),
        gateway,
    };
    let layout = match (view, old_side) {
        (View::Back, None) => return Ok(None),
        (View::Back, Some(o)) => Layout {
            old: Some(o),
            new: None,
            serving: o.slot,
            route: routed.then_some(Route::Serving),
            gateway,
        },
        (View::Final, _) | (_, None) => only_new,
        (View::Rollout, Some(o)) => Layout {
            old: Some(o),
            new: Some(new),
            serving: o.slot,
            route: routed.then_some(Route::Weighted(0)),
            gateway,
        },
        (View::Traffic(step), Some(o)) => {
            let (serving, route) = match &strategy {
                Strategy::BlueGreen => (slot, None),
                Strategy::Canary { steps, .. } => {
                    (o.slot, Some(Route::Weighted(steps.get(step).copied().unwrap_or(100))))
                }
                Strategy::AB { matches } => (o.slot, Some(Route::Match(matches.clone()))),
                Strategy::Shadow => (o.slot, Some(Route::Mirror)),
                Strategy::Recreate | Strategy::Rolling { .. } | Strategy::Gray { .. } => {
                    return Err(Error::internal("an unslotted strategy has no traffic steps"));
                }
            };
            Layout {
                old: Some(o),
                new: Some(new),
                serving,
                route,
                gateway,
            }
        }
    };
    Ok(Some(Value::Array(traffic::layout(&layout)?)))
}

/// Whether `release`'s workloads run renamed into its slot (`<name>-<slot>`):
/// a slotted release's do; an unslotted one's keep their names, adopted or not.
fn runs_in_slot(release: &Release) -> bool {
    release.slot.is_some() && release.strategy().slotted()
}

/// The percentage of requests the new version serves at `step` of `strategy`.
fn traffic_at(strategy: &Strategy, step: usize) -> i32 {
    match strategy {
        Strategy::BlueGreen => 100,
        Strategy::Canary { steps, .. } => steps.get(step).copied().unwrap_or(100) as i32,
        _ => 0,
    }
}

/// One wave of a gray release: a cluster, or a partition's clusters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GrayWave {
    /// The cluster name or partition id the wave is named by.
    pub name: String,
    /// The clusters it upgrades.
    pub clusters: Vec<String>,
}

/// The waves of a gray release: `targets` ((cluster, partition id) where
/// the application's bindings run, each cluster once) grouped by cluster or
/// partition, the ones `order` names first, in that order, then the rest in
/// the placement's order (an explicit placement's list, then by name).
///
/// # Errors
/// An `order` entry where nothing of the application runs (the message says which).
pub fn gray_waves(
    by: GrayBy,
    order: &[String],
    placement: &Value,
    targets: &[(String, String)],
) -> std::result::Result<Vec<GrayWave>, String> {
    let listed: Vec<&str> = placement["explicit"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["cluster"].as_str())
        .collect();
    let mut clusters: Vec<&(String, String)> = targets.iter().collect();
    clusters.sort_by_key(|(c, _)| (listed.iter().position(|l| l == c).unwrap_or(usize::MAX), c.clone()));
    let key = |t: &(String, String)| match by {
        GrayBy::Cluster => t.0.clone(),
        GrayBy::Partition => t.1.clone(),
    };
    let mut waves: Vec<GrayWave> = Vec::new();
    for name in order {
        if !clusters.iter().any(|t| key(t) == *name) {
            let what = if by == GrayBy::Cluster { "cluster" } else { "partition" };
            return Err(format!(
                "strategy.order names {what} {name}, where the application runs nothing"
            ));
        }
        waves.push(GrayWave {
            name: name.clone(),
            clusters: Vec::new(),
        });
    }
    for t in clusters {
        let name = key(t);
        match waves.iter_mut().find(|w| w.name == name) {
            Some(w) => w.clusters.push(t.0.clone()),
            None => waves.push(GrayWave {
                name,
                clusters: vec![t.0.clone()],
            }),
        }
    }
    Ok(waves)
}

/// The workload kinds whose replicas a scale sets.
const WORKLOADS: [&str; 2] = ["Deployment", "StatefulSet"];

/// Applies one service of `release` as its federation binding; `replicas`
/// overrides the spec's (scaling). Records the binding's id on the
/// application.
///
/// # Errors
/// Federation refuses (quota, placement: the message says why) or is unreachable.
pub async fn apply_service(
    federation: &mut FederationClient,
    app: &Application,
    release: &Release,
    service: &str,
    objects: &Value,
    replicas: Option<u32>,
) -> Result<pb::Binding> {
    apply_service_holding(federation, app, release, service, objects, replicas, &[]).await
}

/// As [`apply_service`], with the clusters in `hold` keeping the objects
/// they run (a gray release's later waves).
///
/// # Errors
/// As [`apply_service`].
pub async fn apply_service_holding(
    federation: &mut FederationClient,
    app: &Application,
    release: &Release,
    service: &str,
    objects: &Value,
    replicas: Option<u32>,
    hold: &[String],
) -> Result<pb::Binding> {
    let mut objects = objects.clone();
    if let Some(n) = replicas
        && let Some(list) = objects.as_array_mut()
    {
        for o in list.iter_mut().filter(|o| {
            WORKLOADS.contains(&o["kind"].as_str().unwrap_or_default()) && o["spec"].get("replicas").is_some()
        }) {
            o["spec"]["replicas"] = json!(n);
        }
    }
    let request = pb::ApplyBindingRequest {
        tenant_id: app.tenant_id.to_string(),
        project_id: app.project_id.map(|p| p.to_string()).unwrap_or_default(),
        name: object_name(&app.name, service)?,
        objects_json: objects.to_string(),
        placement_json: release.placement.to_string(),
        replicas: replicas.unwrap_or(0),
        hold: hold.to_vec(),
    };
    federation
        .apply_binding(request)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| match s.code() {
            tonic::Code::InvalidArgument => Error::invalid(format!("placement ({service})"), s.message()),
            tonic::Code::ResourceExhausted => Error::ResourceExhausted(s.message().to_string()),
            tonic::Code::FailedPrecondition | tonic::Code::NotFound | tonic::Code::PermissionDenied => {
                Error::FailedPrecondition(s.message().to_string())
            }
            _ => Error::Unavailable(format!("federation: {}", s.message())),
        })
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

/// What the driver saw of a set of bindings.
enum Observed {
    Healthy,
    Waiting(String),
    Gone(String),
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
        Ok(sqlx::query_as(concat!(
            "UPDATE releases SET claimed_until = now() + interval '30 seconds', started_at = coalesce(started_at, now()),
                    phase_started_at = coalesce(phase_started_at, now())
             WHERE id IN (SELECT id FROM releases WHERE state = 'deploying' AND next_check_at <= now()
                          AND (claimed_until IS NULL OR claimed_until < now()) ORDER BY next_check_at LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING ",
            release_columns!()
        ))
        .bind(n as i64)
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
        sqlx::query(
            "UPDATE releases SET claimed_until = NULL,
                    next_check_at = CASE WHEN phase = $3 AND step = $4 THEN now() + make_interval(secs => $2) ELSE now() END
             WHERE id = $1",
        )
        .bind(id)
        .bind(delay.as_secs_f64())
        .bind(phase)
        .bind(at)
        .execute(&self.pool)
        .await?;
        if matches!(step, Step::Next) {
            self.wake.notify_one();
        }
        Ok(())
    }

    async fn application(&self, release: &Release) -> Result<Application> {
        Ok(sqlx::query_as(
            "SELECT id, tenant_id, project_id, name, environment, state, current_release, replicas, bindings, created_by, created_at, updated_at
             FROM applications WHERE id = $1 AND tenant_id = $2",
        )
        .bind(release.application_id)
        .bind(release.tenant_id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The release `release` replaces, if any.
    async fn replaced(&self, release: &Release) -> Result<Option<Release>> {
        let Some(n) = release.replaces else { return Ok(None) };
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            release_columns!(),
            " FROM releases WHERE application_id = $1 AND number = $2"
        ))
        .bind(release.application_id)
        .bind(n)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn fail(&self, release: &Release, message: &str) -> Result<Step> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE releases SET state = 'failed', message = $2, finished_at = now() WHERE id = $1 AND state = 'deploying'")
            .bind(release.id)
            .bind(message)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE applications SET state = 'failed', updated_at = now() WHERE id = $1")
            .bind(release.application_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Step::Finished)
    }

    fn overdue(&self, since: Option<chrono::DateTime<chrono::Utc>>) -> bool {
        since.is_some_and(|s| {
            chrono::Utc::now() - s > chrono::Duration::from_std(self.pacing.deadline).unwrap_or_default()
        })
    }

    /// Moves `release` from phase `from` to `to` (and `step`), with `message`;
    /// false when something else (an abort) moved it first.
    async fn enter(&self, release: &Release, from: &str, to: &str, step: i32, message: &str) -> Result<bool> {
        let moved = sqlx::query(
            "UPDATE releases SET phase = $3, step = $4, message = $5, hold_until = NULL, phase_started_at = now()
             WHERE id = $1 AND phase = $2 AND step = $6 AND state = 'deploying'",
        )
        .bind(release.id)
        .bind(from)
        .bind(to)
        .bind(step)
        .bind(message)
        .bind(release.step)
        .execute(&self.pool)
        .await?;
        Ok(moved.rows_affected() == 1)
    }

    async fn step(&self, release: Release) -> Result<Step> {
        let app = self.application(&release).await?;
        let mut federation = self.federation.client();
        let old = self.replaced(&release).await?;
        match release.phase.as_str() {
            "rollout" => match &old {
                Some(old) if release.strategy().gray() => self.gray(release, &app, old, &mut federation).await,
                _ => self.rollout(release, &app, old.as_ref(), &mut federation).await,
            },
            "traffic" => self.traffic(release, &app, old.as_ref(), &mut federation).await,
            "finishing" => self.finishing(release, &app, old.as_ref(), &mut federation).await,
            "aborting" => self.aborting(release, &app, old.as_ref(), &mut federation).await,
            _ => Ok(Step::Idle),
        }
    }

    async fn rollout(
        &self,
        release: Release,
        app: &Application,
        old: Option<&Release>,
        federation: &mut FederationClient,
    ) -> Result<Step> {
        let waves = release.waves();
        if release.slot.is_some()
            && release.applied_wave < 0
            && let Some(o) = old.filter(|o| o.slot.is_none())
            && let Some(step) = self.adopt(&release, app, o, federation).await?
        {
            return Ok(step);
        }
        let Some(wave) = waves.get(release.wave as usize) else {
            if release.slot.is_some() && old.is_some() {
                let message = "every service runs in both slots; moving traffic";
                return Ok(if self.enter(&release, "rollout", "traffic", 0, message).await? {
                    Step::Next
                } else {
                    Step::Wait
                });
            }
            if let Some(o) = old.filter(|o| release.slot.is_none() && runs_in_slot(o)) {
                return self.hand_over(&release, app, o, federation).await;
            }
            return self.succeed(&release, app, federation).await;
        };
        if self.overdue(release.started_at) {
            return self
                .fail(
                    &release,
                    &format!("not every service was Healthy within {:?}", self.pacing.deadline),
                )
                .await;
        }
        let mut bindings: serde_json::Map<String, Value> = app.bindings.as_object().cloned().unwrap_or_default();
        if release.applied_wave < release.wave {
            for service in wave {
                let objects = service_objects(&release, old, service, View::Rollout, &self.gateway)?
                    .unwrap_or(Value::Array(Vec::new()));
                let replicas = app.replicas.get(service).and_then(Value::as_u64).map(|n| n as u32);
                let binding = match apply_service(federation, app, &release, service, &objects, replicas).await {
                    Ok(b) => b,
                    Err(Error::Unavailable(m)) => return Err(Error::Unavailable(m)),
                    Err(e) => return self.fail(&release, &format!("{service}: {e}")).await,
                };
                bindings.insert(service.clone(), json!(binding.id));
            }
            let mut tx = self.pool.begin().await?;
            sqlx::query("UPDATE applications SET bindings = $2, updated_at = now() WHERE id = $1")
                .bind(app.id)
                .bind(Value::Object(bindings.clone()))
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE releases SET applied_wave = wave, message = $2 WHERE id = $1 AND phase = 'rollout'")
                .bind(release.id)
                .bind(format!("waiting for {} to be Healthy", wave.join(", ")))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        match self.observe(federation, &bindings, wave).await? {
            Observed::Healthy => {}
            Observed::Waiting(_) => return Ok(Step::Wait),
            Observed::Gone(m) => return self.fail(&release, &m).await,
        }
        sqlx::query("UPDATE releases SET wave = wave + 1 WHERE id = $1 AND state = 'deploying' AND phase = 'rollout'")
            .bind(release.id)
            .execute(&self.pool)
            .await?;
        Ok(Step::Next)
    }

    /// Before a slotted release first runs beside the unslotted `old`,
    /// `old`'s Deployments are adopted as the first slot: their pods roll to
    /// carry the slot label while the Service still selects them without
    /// it, so the Service can then select the slot without a moment with no
    /// ready pod (renaming them would prune the running pods). `None` once
    /// every adopted service is Healthy.
    async fn adopt(
        &self,
        release: &Release,
        app: &Application,
        old: &Release,
        federation: &mut FederationClient,
    ) -> Result<Option<Step>> {
        let bindings: serde_json::Map<String, Value> = app.bindings.as_object().cloned().unwrap_or_default();
        let services: Vec<String> = release
            .objects
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .filter(|s| old.objects.get(s.as_str()).is_some() && bindings.contains_key(s.as_str()))
            .cloned()
            .collect();
        if self.overdue(release.started_at) {
            return Ok(Some(
                self.fail(
                    release,
                    &format!(
                        "the running version's pods did not take slot {} within {:?}",
                        traffic::FIRST_SLOT,
                        self.pacing.deadline
                    ),
                )
                .await?,
            ));
        }
        if release.applied != "adopt" {
            for service in &services {
                let objects = old
                    .objects
                    .get(service)
                    .and_then(Value::as_array)
                    .map(|o| traffic::adopt(o, traffic::FIRST_SLOT))
                    .unwrap_or_default();
                let replicas = app.replicas.get(service).and_then(Value::as_u64).map(|n| n as u32);
                match apply_service(federation, app, old, service, &Value::Array(objects), replicas).await {
                    Ok(_) => {}
                    Err(Error::Unavailable(m)) => return Err(Error::Unavailable(m)),
                    Err(e) => return Ok(Some(self.fail(release, &format!("{service}: {e}")).await?)),
                }
            }
            sqlx::query("UPDATE releases SET applied = 'adopt', message = $2 WHERE id = $1 AND state = 'deploying' AND phase = 'rollout'")
                .bind(release.id)
                .bind(format!("release {}'s pods take slot {}", old.number, traffic::FIRST_SLOT))
                .execute(&self.pool)
                .await?;
            return Ok(Some(Step::Wait));
        }
        match self.observe(federation, &bindings, &services).await? {
            Observed::Healthy => Ok(None),
            Observed::Waiting(_) => Ok(Some(Step::Wait)),
            Observed::Gone(m) => Ok(Some(self.fail(release, &m).await?)),
        }
    }

    /// An unslotted release whose every wave is Healthy beside the slot it
    /// replaces: the slot goes (what the release rendered is applied), then
    /// the release has succeeded.
    async fn hand_over(
        &self,
        release: &Release,
        app: &Application,
        old: &Release,
        federation: &mut FederationClient,
    ) -> Result<Step> {
        if release.applied != "handed-over" {
            if let Err(message) = self
                .apply_view(release, app, Some(old), View::Final, federation)
                .await?
            {
                return self
                    .fail(
                        release,
                        &format!("removing release {}'s slot was refused: {message}", old.number),
                    )
                    .await;
            }
            sqlx::query("UPDATE releases SET applied = 'handed-over', message = $2 WHERE id = $1 AND state = 'deploying' AND phase = 'rollout'")
                .bind(release.id)
                .bind(format!("removing release {}'s slot", old.number))
                .execute(&self.pool)
                .await?;
            return Ok(Step::Wait);
        }
        match self.all_healthy(release, app, federation).await? {
            Observed::Healthy => self.succeed(release, app, federation).await,
            Observed::Waiting(_) if !self.overdue(release.started_at) => Ok(Step::Wait),
            Observed::Waiting(why) => {
                self.fail(
                    release,
                    &format!(
                        "not Healthy within {:?} after release {}'s slot was removed ({why})",
                        self.pacing.deadline, old.number
                    ),
                )
                .await
            }
            Observed::Gone(m) => self.fail(release, &m).await,
        }
    }

    /// Whether each of `services`' bindings is Healthy.
    async fn observe(
        &self,
        federation: &mut FederationClient,
        bindings: &serde_json::Map<String, Value>,
        services: &[String],
    ) -> Result<Observed> {
        for service in services {
            let Some(id) = bindings.get(service).and_then(Value::as_str) else {
                return Ok(Observed::Waiting(format!("{service} has no binding yet")));
            };
            let binding = match federation
                .get_binding(pb::GetBindingRequest { id: id.to_string() })
                .await
            {
                Ok(b) => b.into_inner(),
                Err(s) if s.code() == tonic::Code::NotFound => {
                    return Ok(Observed::Gone(format!("{service}: its binding disappeared")));
                }
                Err(s) => return Err(Error::Unavailable(format!("federation: {}", s.message()))),
            };
            if binding.health != "Healthy" {
                return Ok(Observed::Waiting(format!("{service}: {}", binding.health_reason)));
            }
        }
        Ok(Observed::Healthy)
    }

    /// Applies `view` of `release` to each of its services' bindings; a
    /// service without objects in the view loses its binding. `Err(message)`
    /// when federation refuses.
    async fn apply_view(
        &self,
        release: &Release,
        app: &Application,
        old: Option<&Release>,
        view: View,
        federation: &mut FederationClient,
    ) -> Result<std::result::Result<(), String>> {
        let mut bindings: serde_json::Map<String, Value> = app.bindings.as_object().cloned().unwrap_or_default();
        let services: Vec<String> = release
            .objects
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for service in services {
            match service_objects(release, old, &service, view, &self.gateway)? {
                Some(objects) => {
                    let replicas = app.replicas.get(&service).and_then(Value::as_u64).map(|n| n as u32);
                    match apply_service(federation, app, release, &service, &objects, replicas).await {
                        Ok(b) => {
                            bindings.insert(service.clone(), json!(b.id));
                        }
                        Err(Error::Unavailable(m)) => return Err(Error::Unavailable(m)),
                        Err(e) => return Ok(Err(format!("{service}: {e}"))),
                    }
                }
                None => {
                    if let Some(id) = bindings.get(&service).and_then(Value::as_str) {
                        crate::application::delete_binding(federation, id).await?;
                    }
                    bindings.remove(&service);
                }
            }
        }
        sqlx::query("UPDATE applications SET bindings = $2, updated_at = now() WHERE id = $1")
            .bind(app.id)
            .bind(Value::Object(bindings))
            .execute(&self.pool)
            .await?;
        Ok(Ok(()))
    }

    /// Applies `view` once for `key` (phase and step); `Some(step)` when it
    /// did something now (health is looked at on the next tick).
    async fn apply_once(
        &self,
        release: &Release,
        app: &Application,
        old: Option<&Release>,
        view: View,
        key: &str,
        federation: &mut FederationClient,
    ) -> Result<Option<Step>> {
        if release.applied == key {
            return Ok(None);
        }
        let traffic = match view {
            View::Traffic(step) => traffic_at(&release.strategy(), step),
            View::Rollout | View::Back => 0,
            View::Final => 100,
        };
        if let Err(message) = self.apply_view(release, app, old, view, federation).await? {
            return Ok(Some(
                self.to_aborting(
                    release,
                    &format!(
                        "federation refused a step ({message}); returning to release {}",
                        release.replaces.unwrap_or(0)
                    ),
                )
                .await?,
            ));
        }
        sqlx::query("UPDATE releases SET applied = $2, traffic = $3 WHERE id = $1 AND phase = $4 AND step = $5 AND state = 'deploying'")
            .bind(release.id)
            .bind(key)
            .bind(traffic)
            .bind(&release.phase)
            .bind(release.step)
            .execute(&self.pool)
            .await?;
        Ok(Some(Step::Wait))
    }

    async fn to_aborting(&self, release: &Release, message: &str) -> Result<Step> {
        sqlx::query("UPDATE releases SET phase = 'aborting', message = $2, phase_started_at = now() WHERE id = $1 AND state = 'deploying' AND phase <> 'aborting'")
            .bind(release.id)
            .bind(message)
            .execute(&self.pool)
            .await?;
        Ok(Step::Next)
    }

    async fn all_healthy(
        &self,
        release: &Release,
        app: &Application,
        federation: &mut FederationClient,
    ) -> Result<Observed> {
        let bindings: serde_json::Map<String, Value> = app.bindings.as_object().cloned().unwrap_or_default();
        let services: Vec<String> = release
            .objects
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        self.observe(federation, &bindings, &services).await
    }

    async fn traffic(
        &self,
        release: Release,
        app: &Application,
        old: Option<&Release>,
        federation: &mut FederationClient,
    ) -> Result<Step> {
        let strategy = release.strategy();
        let step = release.step as usize;
        if let Strategy::Canary { steps, .. } = &strategy
            && step >= steps.len()
        {
            return Ok(
                if self
                    .enter(
                        &release,
                        "traffic",
                        "finishing",
                        release.step,
                        "every step passed; the canary becomes the stable version",
                    )
                    .await?
                {
                    Step::Next
                } else {
                    Step::Wait
                },
            );
        }
        let percent = traffic_at(&strategy, step);
        if let Some(s) = self
            .apply_once(
                &release,
                app,
                old,
                View::Traffic(step),
                &format!("traffic-{step}"),
                federation,
            )
            .await?
        {
            return Ok(s);
        }
        let back = release.replaces.unwrap_or(0);
        match self.all_healthy(&release, app, federation).await? {
            Observed::Healthy => {}
            Observed::Waiting(why) => {
                if self.overdue(release.phase_started_at) {
                    return self
                        .to_aborting(
                            &release,
                            &format!(
                                "not Healthy within {:?} ({why}); returning to release {back}",
                                self.pacing.deadline
                            ),
                        )
                        .await;
                }
                return Ok(Step::Wait);
            }
            Observed::Gone(m) => {
                return self
                    .to_aborting(&release, &format!("{m}; returning to release {back}"))
                    .await;
            }
        }
        let slot = release.slot.clone().unwrap_or_default();
        match &strategy {
            Strategy::BlueGreen => {
                self.wait_for_person(
                    &release,
                    &format!(
                        "{slot} serves; confirm to remove the old slot, or abort to switch back to release {back}"
                    ),
                )
                .await
            }
            Strategy::AB { .. } => {
                self.wait_for_person(
                    &release,
                    &format!("matching requests go to {slot}; promote it, or abort to return to release {back}"),
                )
                .await
            }
            Strategy::Shadow => {
                self.wait_for_person(
                    &release,
                    &format!("requests are mirrored to {slot}; promote it, or abort to return to release {back}"),
                )
                .await
            }
            Strategy::Canary {
                steps,
                pause_seconds,
                pause,
            } => {
                if step + 1 >= steps.len() {
                    let message = "every step passed; the canary becomes the stable version";
                    return Ok(
                        if self
                            .enter(&release, "traffic", "finishing", release.step, message)
                            .await?
                        {
                            Step::Next
                        } else {
                            Step::Wait
                        },
                    );
                }
                if *pause {
                    return self
                        .wait_for_person(
                            &release,
                            &format!("paused at {percent}% on {slot}; resume, promote or abort"),
                        )
                        .await;
                }
                if *pause_seconds > 0 {
                    let Some(until) = release.hold_until else {
                        sqlx::query("UPDATE releases SET hold_until = now() + make_interval(secs => $2), message = $3 WHERE id = $1 AND phase = 'traffic' AND step = $4")
                            .bind(release.id)
                            .bind(f64::from(*pause_seconds))
                            .bind(format!("{percent}% on {slot}; holding {pause_seconds}s"))
                            .bind(release.step)
                            .execute(&self.pool)
                            .await?;
                        return Ok(Step::Wait);
                    };
                    if until > chrono::Utc::now() {
                        return Ok(Step::Wait);
                    }
                }
                let message = format!("{percent}% on {slot} was Healthy; next step");
                Ok(
                    if self
                        .enter(&release, "traffic", "traffic", release.step + 1, &message)
                        .await?
                    {
                        Step::Next
                    } else {
                        Step::Wait
                    },
                )
            }
            Strategy::Recreate | Strategy::Rolling { .. } | Strategy::Gray { .. } => {
                self.fail(&release, "an unslotted release has no traffic phase").await
            }
        }
    }

    /// Where the application's bindings run now: (cluster, partition id),
    /// each cluster once, for the gray waves.
    async fn placed_targets(
        &self,
        app: &Application,
        services: &[String],
        federation: &mut FederationClient,
    ) -> Result<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = Vec::new();
        for service in services {
            let Some(id) = app.bindings.get(service).and_then(Value::as_str) else {
                continue;
            };
            let binding = match federation
                .get_binding(pb::GetBindingRequest { id: id.to_string() })
                .await
            {
                Ok(b) => b.into_inner(),
                Err(s) if s.code() == tonic::Code::NotFound => continue,
                Err(s) => return Err(Error::Unavailable(format!("federation: {}", s.message()))),
            };
            for t in binding.targets.into_iter().filter(|t| !t.removing) {
                if !out.iter().any(|(c, _)| *c == t.cluster) {
                    out.push((t.cluster, t.partition_id));
                }
            }
        }
        Ok(out)
    }

    /// Whether every target of `services`' bindings in `clusters` is Healthy.
    async fn observe_clusters(
        &self,
        federation: &mut FederationClient,
        bindings: &serde_json::Map<String, Value>,
        services: &[String],
        clusters: &[String],
    ) -> Result<Observed> {
        for service in services {
            let Some(id) = bindings.get(service).and_then(Value::as_str) else {
                return Ok(Observed::Waiting(format!("{service} has no binding yet")));
            };
            let binding = match federation
                .get_binding(pb::GetBindingRequest { id: id.to_string() })
                .await
            {
                Ok(b) => b.into_inner(),
                Err(s) if s.code() == tonic::Code::NotFound => {
                    return Ok(Observed::Gone(format!("{service}: its binding disappeared")));
                }
                Err(s) => return Err(Error::Unavailable(format!("federation: {}", s.message()))),
            };
            if let Some(t) = binding
                .targets
                .iter()
                .find(|t| !t.removing && clusters.contains(&t.cluster) && t.health != "Healthy")
            {
                return Ok(Observed::Waiting(format!("{service}: {}", t.health_reason)));
            }
        }
        Ok(Observed::Healthy)
    }

    /// One tick of a gray release replacing `old`: fix the waves, apply the
    /// current one (later waves held), gate it, pause, go on.
    async fn gray(
        &self,
        release: Release,
        app: &Application,
        old: &Release,
        federation: &mut FederationClient,
    ) -> Result<Step> {
        let Strategy::Gray {
            by,
            order,
            pause,
            deadline_seconds,
        } = release.strategy()
        else {
            return self.fail(&release, "not a gray release").await;
        };
        let services: Vec<String> = release.waves().into_iter().flatten().collect();
        let Some(waves) = release.gray_waves() else {
            let mut known: Vec<String> = services.clone();
            known.extend(old.objects.as_object().into_iter().flat_map(|m| m.keys().cloned()));
            let targets = self.placed_targets(app, &known, federation).await?;
            let waves = match gray_waves(by, &order, &release.placement, &targets) {
                Ok(w) if w.is_empty() => {
                    return self
                        .fail(
                            &release,
                            "the application runs in no cluster; nothing to roll out wave by wave",
                        )
                        .await;
                }
                Ok(w) => w,
                Err(m) => return self.fail(&release, &m).await,
            };
            let names: Vec<&str> = waves.iter().map(|w| w.name.as_str()).collect();
            sqlx::query("UPDATE releases SET gray_waves = $2, message = $3 WHERE id = $1 AND gray_waves IS NULL AND phase = 'rollout'")
                .bind(release.id)
                .bind(json!(waves))
                .bind(format!("{} waves: {}", waves.len(), names.join(", ")))
                .execute(&self.pool)
                .await?;
            return Ok(Step::Next);
        };
        let k = release.step as usize;
        let Some(wave) = waves.get(k) else {
            return self.succeed(&release, app, federation).await;
        };
        let n = waves.len();
        let later: Vec<String> = waves[k + 1..]
            .iter()
            .flat_map(|w| w.clusters.iter().cloned())
            .filter(|c| !wave.clusters.contains(c))
            .collect();
        let mut bindings: serde_json::Map<String, Value> = app.bindings.as_object().cloned().unwrap_or_default();
        let key = format!("gray-{k}");
        if release.applied != key {
            for service in &services {
                let objects = release
                    .objects
                    .get(service)
                    .cloned()
                    .unwrap_or(Value::Array(Vec::new()));
                let replicas = app.replicas.get(service).and_then(Value::as_u64).map(|n| n as u32);
                let binding =
                    match apply_service_holding(federation, app, &release, service, &objects, replicas, &later).await {
                        Ok(b) => b,
                        Err(Error::Unavailable(m)) => return Err(Error::Unavailable(m)),
                        Err(e) => {
                            return self
                                .fail(
                                    &release,
                                    &format!("wave {} of {n} ({}): {service}: {e}", k + 1, wave.name),
                                )
                                .await;
                        }
                    };
                bindings.insert(service.clone(), json!(binding.id));
            }
            let mut tx = self.pool.begin().await?;
            sqlx::query("UPDATE applications SET bindings = $2, updated_at = now() WHERE id = $1")
                .bind(app.id)
                .bind(Value::Object(bindings))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE releases SET applied = $2, message = $3, phase_started_at = now(), hold_until = NULL
                 WHERE id = $1 AND state = 'deploying' AND phase = 'rollout' AND step = $4",
            )
            .bind(release.id)
            .bind(&key)
            .bind(format!(
                "wave {} of {n} ({}): waiting for {} to be Available",
                k + 1,
                wave.name,
                wave.clusters.join(", ")
            ))
            .bind(release.step)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Step::Wait);
        }
        let deadline = deadline_seconds.map_or(self.pacing.deadline, |s| Duration::from_secs(u64::from(s)));
        match self
            .observe_clusters(federation, &bindings, &services, &wave.clusters)
            .await?
        {
            Observed::Healthy => {}
            Observed::Waiting(why) => {
                let overdue = release
                    .phase_started_at
                    .is_some_and(|s| chrono::Utc::now() - s > chrono::Duration::from_std(deadline).unwrap_or_default());
                if !overdue {
                    return Ok(Step::Wait);
                }
                let kept = if later.is_empty() {
                    String::new()
                } else {
                    format!("; {} keep release {}", later.join(", "), old.number)
                };
                return self
                    .fail(
                        &release,
                        &format!(
                            "wave {} of {n} ({}) was not Available within {deadline:?} ({why}){kept}",
                            k + 1,
                            wave.name
                        ),
                    )
                    .await;
            }
            Observed::Gone(m) => return self.fail(&release, &m).await,
        }
        let Some(next) = waves.get(k + 1) else {
            return self.succeed(&release, app, federation).await;
        };
        match pause {
            GrayPause::Manual => {
                let message = format!(
                    "wave {} of {n} ({}) runs release {}; promote to go on to {}, or abort to return to release {}",
                    k + 1,
                    wave.name,
                    release.number,
                    next.name,
                    old.number
                );
                return Ok(
                    if self
                        .enter(&release, "rollout", "waiting", release.step, &message)
                        .await?
                    {
                        Step::Idle
                    } else {
                        Step::Wait
                    },
                );
            }
            GrayPause::Seconds(seconds) if seconds > 0 => {
                let Some(until) = release.hold_until else {
                    sqlx::query("UPDATE releases SET hold_until = now() + make_interval(secs => $2), message = $3 WHERE id = $1 AND phase = 'rollout' AND step = $4")
                        .bind(release.id)
                        .bind(f64::from(seconds))
                        .bind(format!("wave {} of {n} ({}) is Available; holding {seconds}s before {}", k + 1, wave.name, next.name))
                        .bind(release.step)
                        .execute(&self.pool)
                        .await?;
                    return Ok(Step::Wait);
                };
                if until > chrono::Utc::now() {
                    return Ok(Step::Wait);
                }
            }
            GrayPause::Seconds(_) => {}
        }
        let message = format!(
            "wave {} of {n} ({}) was Available; next {}",
            k + 1,
            wave.name,
            next.name
        );
        Ok(
            if self
                .enter(&release, "rollout", "rollout", release.step + 1, &message)
                .await?
            {
                Step::Next
            } else {
                Step::Wait
            },
        )
    }

    async fn wait_for_person(&self, release: &Release, message: &str) -> Result<Step> {
        Ok(
            if self.enter(release, "traffic", "waiting", release.step, message).await? {
                Step::Idle
            } else {
                Step::Wait
            },
        )
    }

    async fn finishing(
        &self,
        release: Release,
        app: &Application,
        old: Option<&Release>,
        federation: &mut FederationClient,
    ) -> Result<Step> {
        if let Some(s) = self
            .apply_once(&release, app, old, View::Final, "finishing", federation)
            .await?
        {
            return Ok(s);
        }
        match self.all_healthy(&release, app, federation).await? {
            Observed::Healthy => self.succeed(&release, app, federation).await,
            Observed::Waiting(_) if !self.overdue(release.phase_started_at) => Ok(Step::Wait),
            Observed::Waiting(why) => {
                self.fail(
                    &release,
                    &format!(
                        "not Healthy within {:?} after the old slot was removed ({why})",
                        self.pacing.deadline
                    ),
                )
                .await
            }
            Observed::Gone(m) => self.fail(&release, &m).await,
        }
    }

    /// Returns to the replaced release at once: its slot serves everything
    /// and the new slot goes, whatever state the new slot is in (a gray
    /// release: every cluster gets the replaced release's objects, unheld). The
    /// release is `aborted` once every cluster has the switch back (the old
    /// slot was running all along, so that is quick).
    async fn aborting(
        &self,
        release: Release,
        app: &Application,
        old: Option<&Release>,
        federation: &mut FederationClient,
    ) -> Result<Step> {
        let Some(old) = old else {
            return self
                .fail(&release, "aborted, but there is no earlier release to return to")
                .await;
        };
        // Aborted before any of the new version was applied: the running
        // version is as it was (at most its pods were taking their slot, its
        // Service selecting them either way), so nothing is switched back.
        let untouched = release.applied_wave < 0 && !release.applied.starts_with("gray");
        if release.applied != "aborting" && !untouched {
            if let Err(message) = self
                .apply_view(&release, app, Some(old), View::Back, federation)
                .await?
            {
                return self
                    .fail(
                        &release,
                        &format!("returning to release {} was refused: {message}", old.number),
                    )
                    .await;
            }
            sqlx::query("UPDATE releases SET applied = 'aborting', traffic = 0 WHERE id = $1 AND state = 'deploying' AND phase = 'aborting'").bind(release.id).execute(&self.pool).await?;
            return Ok(Step::Wait);
        }
        let bindings: serde_json::Map<String, Value> = app.bindings.as_object().cloned().unwrap_or_default();
        let services: Vec<String> = release
            .objects
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .filter(|s| old.objects.get(s.as_str()).is_some())
            .cloned()
            .collect();
        match self.observe(federation, &bindings, &services).await? {
            Observed::Healthy => {}
            Observed::Waiting(_) if !self.overdue(release.phase_started_at) => return Ok(Step::Wait),
            Observed::Waiting(why) => {
                return self
                    .fail(
                        &release,
                        &format!(
                            "returning to release {} did not settle within {:?} ({why})",
                            old.number, self.pacing.deadline
                        ),
                    )
                    .await;
            }
            Observed::Gone(m) => return self.fail(&release, &m).await,
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE releases SET state = 'aborted', phase = 'done', finished_at = now() WHERE id = $1 AND state = 'deploying' AND phase = 'aborting'")
            .bind(release.id)
            .execute(&mut *tx)
            .await?;
        // An unslotted release a slotted one returned to now runs (adopted)
        // in the first slot; a gray release returned to it as it ran.
        if release.slot.is_some() && !untouched {
            sqlx::query("UPDATE releases SET slot = coalesce(slot, $2) WHERE id = $1")
                .bind(old.id)
                .bind(traffic::FIRST_SLOT)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE applications SET state = 'running', updated_at = now() WHERE id = $1")
            .bind(app.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Step::Finished)
    }

    async fn succeed(&self, release: &Release, app: &Application, federation: &mut FederationClient) -> Result<Step> {
        // Services an earlier release had and this one has not are removed.
        let mut bindings: serde_json::Map<String, Value> = app.bindings.as_object().cloned().unwrap_or_default();
        let gone: Vec<String> = bindings
            .keys()
            .filter(|s| release.objects.get(s.as_str()).is_none())
            .cloned()
            .collect();
        for service in gone {
            if let Some(id) = bindings.get(&service).and_then(Value::as_str) {
                crate::application::delete_binding(federation, id).await?;
            }
            bindings.remove(&service);
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE releases SET state = 'superseded' WHERE application_id = $1 AND state = 'succeeded' AND number < $2")
            .bind(app.id)
            .bind(release.number)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE releases SET state = 'succeeded', phase = 'done', traffic = 100, message = '', finished_at = now() WHERE id = $1 AND state = 'deploying'")
            .bind(release.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE applications SET state = 'running', current_release = $2, bindings = $3, updated_at = now() WHERE id = $1")
            .bind(app.id)
            .bind(release.number)
            .bind(Value::Object(bindings))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Step::Finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(number: i32, slot: Option<&str>, strategy: Value, image: &str) -> Release {
        let labels = json!({"paas.io/app": "shop", "paas.io/service": "web"});
        let objects = json!({"web": [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop-web", "labels": labels}, "spec": {"selector": labels, "ports": [{"port": 80}]}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop-web", "labels": labels},
             "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": image}]}}}}
        ]});
        let now = chrono::Utc::now();
        Release {
            id: uuid::Uuid::nil(),
            application_id: uuid::Uuid::nil(),
            tenant_id: uuid::Uuid::nil(),
            number,
            template_version_id: uuid::Uuid::nil(),
            parameters: json!({}),
            placement: json!({}),
            strategy,
            objects,
            waves: json!([["web"]]),
            state: "deploying".into(),
            wave: 0,
            applied_wave: -1,
            message: String::new(),
            rollback_of: None,
            created_by: "test".into(),
            approved_by: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            slot: slot.map(str::to_string),
            replaces: None,
            phase: "rollout".into(),
            step: 0,
            applied: String::new(),
            traffic: 0,
            hold_until: None,
            phase_started_at: None,
            gray_waves: None,
        }
    }

    fn summary(objects: Option<Value>) -> Vec<String> {
        let mut out: Vec<String> = objects
            .expect("objects")
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let slot = o["spec"]["selector"]["paas.io/slot"]
                    .as_str()
                    .or(o["spec"]["template"]["metadata"]["labels"]["paas.io/slot"].as_str())
                    .unwrap_or("-");
                let weights: Vec<String> = o["spec"]["rules"][0]["backendRefs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|b| format!("{}={}", b["name"].as_str().unwrap(), b["weight"]))
                    .collect();
                format!(
                    "{} {} {slot}{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap(),
                    if weights.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", weights.join(","))
                    }
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn each_phase_of_a_canary_holds_the_objects_it_promises() {
        let gateway = GatewayRef::default();
        let old = release(1, None, json!({"type": "rolling"}), "web:1");
        let new = release(2, Some("green"), json!({"type": "canary", "steps": [10, 100]}), "web:2");
        let view = |v| summary(service_objects(&new, Some(&old), "web", v, &gateway).unwrap());
        assert_eq!(
            view(View::Rollout),
            [
                "Deployment shop-web blue",
                "Deployment shop-web-green green",
                "HTTPRoute shop-web - shop-web-blue=100,shop-web-green=0",
                "Service shop-web blue",
                "Service shop-web-blue blue",
                "Service shop-web-green green"
            ],
            "an unslotted release replaced runs adopted in blue (its Deployment keeps its name); the new one waits at 0%"
        );
        assert!(
            view(View::Traffic(0)).contains(&"HTTPRoute shop-web - shop-web-blue=90,shop-web-green=10".to_string())
        );
        assert_eq!(
            view(View::Final),
            [
                "Deployment shop-web-green green",
                "HTTPRoute shop-web - shop-web-green=100",
                "Service shop-web green",
                "Service shop-web-green green"
            ]
        );
        assert_eq!(
            view(View::Back),
            [
                "Deployment shop-web blue",
                "HTTPRoute shop-web - shop-web-blue=100",
                "Service shop-web blue",
                "Service shop-web-blue blue"
            ]
        );
        assert_eq!(traffic_at(&new.strategy(), 0), 10);
    }

    #[test]
    fn blue_green_switches_the_service_and_an_unslotted_release_keeps_its_objects() {
        let gateway = GatewayRef::default();
        let old = release(1, Some("blue"), json!({"type": "blue-green"}), "web:1");
        let new = release(2, Some("green"), json!({"type": "blue-green"}), "web:2");
        let view = |v| summary(service_objects(&new, Some(&old), "web", v, &gateway).unwrap());
        assert_eq!(
            view(View::Rollout),
            [
                "Deployment shop-web-blue blue",
                "Deployment shop-web-green green",
                "Service shop-web blue"
            ]
        );
        assert_eq!(
            view(View::Traffic(0)),
            [
                "Deployment shop-web-blue blue",
                "Deployment shop-web-green green",
                "Service shop-web green"
            ]
        );
        assert_eq!(
            view(View::Back),
            ["Deployment shop-web-blue blue", "Service shop-web blue"]
        );
        assert_eq!(
            service_objects(&new, Some(&old), "cache", View::Back, &gateway).unwrap(),
            None,
            "a service the old release lacked has no binding on the way back"
        );
        let rolling = release(3, None, json!({"type": "rolling"}), "web:3");
        assert_eq!(
            summary(service_objects(&rolling, Some(&new), "web", View::Rollout, &gateway).unwrap()),
            [
                "Deployment shop-web -",
                "Deployment shop-web-green green",
                "Service shop-web -"
            ],
            "an unslotted release rolls out beside the slot it replaces, its Service selecting both"
        );
        assert_eq!(
            service_objects(&rolling, Some(&new), "web", View::Final, &gateway)
                .unwrap()
                .unwrap(),
            rolling.objects["web"],
            "then it holds what it rendered"
        );
        let after_rolling = release(4, None, json!({"type": "recreate"}), "web:4");
        assert_eq!(
            service_objects(&after_rolling, Some(&rolling), "web", View::Rollout, &gateway)
                .unwrap()
                .unwrap(),
            after_rolling.objects["web"],
            "one Deployment, rolled in place"
        );
    }

    #[test]
    fn gray_waves_follow_the_order_given_then_the_placement() {
        let targets = [
            ("dc1".to_string(), "p1".to_string()),
            ("dc2".to_string(), "p2".to_string()),
            ("dc3".to_string(), "p1".to_string()),
        ];
        let explicit = json!({"explicit": [{"cluster": "dc3"}, {"cluster": "dc1"}, {"cluster": "dc2"}]});
        let names = |w: Vec<GrayWave>| {
            w.into_iter()
                .map(|w| format!("{}:{}", w.name, w.clusters.join("+")))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(gray_waves(GrayBy::Cluster, &[], &explicit, &targets).unwrap()),
            ["dc3:dc3", "dc1:dc1", "dc2:dc2"],
            "an explicit placement's order"
        );
        assert_eq!(
            names(gray_waves(GrayBy::Cluster, &["dc2".into()], &json!({"policy": {}}), &targets).unwrap()),
            ["dc2:dc2", "dc1:dc1", "dc3:dc3"],
            "named first, the rest by name"
        );
        assert_eq!(
            names(gray_waves(GrayBy::Partition, &[], &explicit, &targets).unwrap()),
            ["p1:dc3+dc1", "p2:dc2"],
            "a partition's clusters go together"
        );
        assert_eq!(
            names(gray_waves(GrayBy::Partition, &["p2".into()], &explicit, &targets).unwrap()),
            ["p2:dc2", "p1:dc3+dc1"]
        );
        let e = gray_waves(GrayBy::Cluster, &["dc9".into()], &explicit, &targets).unwrap_err();
        assert!(e.contains("dc9"), "{e}");
    }

    #[test]
    fn a_gray_release_applies_its_own_objects_and_returns_to_what_the_replaced_release_ran() {
        let gateway = GatewayRef::default();
        let old = release(1, Some("blue"), json!({"type": "blue-green"}), "web:1");
        let new = release(2, None, json!({"type": "gray", "pause": "manual"}), "web:2");
        assert_eq!(
            service_objects(&new, Some(&old), "web", View::Rollout, &gateway)
                .unwrap()
                .unwrap(),
            new.objects["web"]
        );
        assert_eq!(
            summary(service_objects(&new, Some(&old), "web", View::Back, &gateway).unwrap()),
            ["Deployment shop-web-blue blue", "Service shop-web blue"],
            "back to the slot the old release served from"
        );
        assert_eq!(
            service_objects(&new, Some(&old), "cache", View::Back, &gateway).unwrap(),
            None
        );
        let rolling = release(1, None, json!({"type": "rolling"}), "web:1");
        assert_eq!(
            service_objects(&new, Some(&rolling), "web", View::Back, &gateway)
                .unwrap()
                .unwrap(),
            rolling.objects["web"]
        );
    }
}
