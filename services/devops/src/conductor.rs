//! The conductor moves runs forward. It is level-triggered: whatever it does
//! to a run starts from what the database says (plan a queued run, queue a
//! step for runners, open or close an approval gate, end a stage or a run).
//!
//! Work arrives two ways. A run somebody just changed (a webhook queued it, a
//! runner finished its step) is *touched* through [`Wake::run`] and attended
//! to at once, alone: planning does not wait for a pass, and no pass walks
//! every run to find the one that moved. A periodic pass ([`TICK`]) does what
//! no event announces (start scheduled runs, fail steps whose runner stopped
//! renewing its lease, drive the deploy, security-scan and promote steps it
//! executes itself through [`crate::deployment`], time approvals out) and
//! touches the runs that need the conductor: queued ones, and running ones
//! with no step queued or running (a run whose step is with a runner waits
//! for the runner, whose answer touches it). That resync is what makes a
//! restart, a lost wake-up or another replica's event harmless. Nothing lives
//! only in memory, so a devops restart mid-run resumes from the last
//! committed state; several devops replicas share the work by locking rows
//! with `SKIP LOCKED`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use kernel::outbox::Outbox;
use kernel::{Error, Result};
use sqlx::PgConnection;
use tokio::sync::{Notify, OnceCell, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::definition::{self, Action, Definition, GitRef};
use crate::deployment::Delivery;
use crate::pipeline::Pipeline;
use crate::run::{self, Run, Trigger, announce};
use crate::source;
use crate::step::approval_outcome;

/// How often the conductor's pass runs even when nobody woke it: approvals
/// time out, leases expire and deploys progress without any event here.
pub const TICK: Duration = Duration::from_millis(500);
/// How long a runner's claim on a step lasts without a heartbeat. Runners
/// beat every [`HEARTBEAT`]; three missed beats and the step is the
/// pipeline's to retry or fail.
pub const LEASE: Duration = Duration::from_secs(15);
/// How often runners renew their leases.
pub const HEARTBEAT: Duration = Duration::from_secs(3);
/// Runs attended to at once (planning talks to the Git server; the rest is a
/// few statements each, on a pool shared with the API).
pub const PARALLEL: usize = 16;
/// Runs the periodic pass touches at most (the oldest first); the next pass
/// takes the rest.
const RESYNC_BATCH: i64 = 512;
/// How long a repository's tag list is kept for plans that may share it.
const TAGS_KEPT: Duration = Duration::from_secs(60);

/// Wakes the conductor and the job dispatchers when something changed.
#[derive(Clone)]
pub struct Wake {
    /// The conductor's bell: run a pass now.
    pub conductor: Arc<Notify>,
    /// Job streams' bell: a step was queued or a slot freed.
    pub dispatch: Arc<Notify>,
    touched: mpsc::UnboundedSender<Touch>,
    /// The receiving end, until the conductor takes it.
    inbox: Arc<Mutex<Option<mpsc::UnboundedReceiver<Touch>>>>,
}

impl Default for Wake {
    fn default() -> Self {
        let (touched, inbox) = mpsc::unbounded_channel();
        Self {
            conductor: Arc::default(),
            dispatch: Arc::default(),
            touched,
            inbox: Arc::new(Mutex::new(Some(inbox))),
        }
    }
}

impl Wake {
    /// Tells the conductor that `run` changed (call after the commit): it
    /// plans or advances it at once.
    pub fn run(&self, run: Uuid) {
        // Fails only once the conductor stopped; the next one's pass finds the run.
        let _ = self.touched.send(Touch { run, changed: true });
    }
}

/// Which runs are being attended to, which wait their turn (oldest touch
/// first), and which changed while attended to (attended to again after,
/// so no change slips between a read and a commit).
#[derive(Default)]
struct Attendance {
    busy: HashSet<Uuid>,
    again: HashMap<Uuid, Instant>,
    waiting: VecDeque<(Uuid, Instant)>,
    waiting_ids: HashSet<Uuid>,
    // Dropped on stop: an attendance cut short rolls its transaction back,
    // and the next conductor finds the run as it was.
    work: JoinSet<()>,
    tasks: HashMap<tokio::task::Id, Uuid>,
}

impl Attendance {
    /// Notes a touch of `run`: it waits its turn, or, when it is being
    /// attended to and `changed`, is attended to again after.
    fn touched(&mut self, run: Uuid, changed: bool, now: Instant) {
        if self.busy.contains(&run) {
            // The pass finding a run being attended to adds nothing.
            if changed {
                self.again.entry(run).or_insert(now);
            }
        } else if self.waiting_ids.insert(run) {
            self.waiting.push_back((run, now));
        }
    }

    /// Starts attending to waiting runs while fewer than `limit` are.
    fn start<F, A>(&mut self, limit: usize, attend: F)
    where
        F: Fn(Uuid, Instant) -> A,
        A: Future<Output = ()> + Send + 'static,
    {
        while self.busy.len() < limit
            && let Some((run, since)) = self.waiting.pop_front()
        {
            self.waiting_ids.remove(&run);
            self.busy.insert(run);
            let task = self.work.spawn(attend(run, since));
            self.tasks.insert(task.id(), run);
        }
    }

    /// Waits for an attendance to end, however it ended: one that panicked
    /// frees its run too (else the run would stay busy, and stranded, until
    /// the process restarts). `None` when none is under way.
    async fn finished(&mut self) -> Option<Uuid> {
        let done = self.work.join_next_with_id().await?;
        let task = match &done {
            Ok((task, ())) => *task,
            Err(e) => e.id(),
        };
        let run = self.tasks.remove(&task)?;
        if let Err(e) = done {
            tracing::error!(run = %run, error = %e, "attending to a run panicked; the next pass retries");
        }
        self.busy.remove(&run);
        if let Some(since) = self.again.remove(&run)
            && self.waiting_ids.insert(run)
        {
            self.waiting.push_front((run, since));
        }
        Some(run)
    }
}

/// A run to attend to.
struct Touch {
    run: Uuid,
    /// Something changed it (else the pass merely found it): a change while
    /// the run is being attended to means attending to it again.
    changed: bool,
}

/// Tag lists read or being read, per repository. A plan may take a read that
/// started after its run was known here: that answer is as fresh as one it
/// would ask for itself, so a burst of pushes to one repository costs one
/// `git ls-remote` per read in flight, not one per run.
#[derive(Clone, Default)]
struct TagReads(Arc<Mutex<HashMap<String, TagRead>>>);

struct TagRead {
    started: Instant,
    answer: Arc<OnceCell<Result<Vec<String>, String>>>,
}

impl TagReads {
    async fn tags(&self, repository: &str, since: Instant) -> Result<Vec<String>, String> {
        let answer = {
            let mut reads = self.0.lock().expect("the tag reads are never poisoned");
            match reads.get(repository) {
                Some(read) if read.started >= since => read.answer.clone(),
                _ => {
                    reads.retain(|_, r| r.started.elapsed() < TAGS_KEPT);
                    let answer = Arc::new(OnceCell::new());
                    let read = TagRead {
                        started: Instant::now(),
                        answer: answer.clone(),
                    };
                    reads.insert(repository.to_string(), read);
                    answer
                }
            }
        };
        answer
            .get_or_init(|| async { source::tags(repository).await.map_err(|e| e.to_string()) })
            .await
            .clone()
    }
}

/// Moves runs forward.
#[derive(Clone)]
pub struct Conductor {
    outbox: Outbox,
    wake: Wake,
    delivery: Option<Delivery>,
    tags: TagReads,
}

impl Conductor {
    /// A conductor over the outbox's schema.
    pub fn new(outbox: Outbox, wake: Wake) -> Self {
        Self {
            outbox,
            wake,
            delivery: None,
            tags: TagReads::default(),
        }
    }

    /// This conductor executing deploy, security-scan and promote steps with
    /// `delivery` (without one, those steps wait for a conductor that has one).
    pub fn with_delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = Some(delivery);
        self
    }

    /// Attends to touched runs as they come and runs passes (at once when
    /// woken, and every [`TICK`]) until `stop`.
    ///
    /// # Errors
    /// Never: a failed pass or run is logged and retried.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        let inbox = self.wake.inbox.lock().expect("the wake is never poisoned").take();
        let passes = self.clone().passes(stop.clone());
        match inbox {
            Some(inbox) => {
                tokio::join!(passes, self.attend_touched(inbox, stop));
            }
            // Another conductor of this process attends to touched runs.
            None => passes.await,
        }
        Ok(())
    }

    async fn passes(self, stop: CancellationToken) {
        loop {
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "conductor pass failed; retrying");
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.wake.conductor.notified() => {}
                () = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// Attends to each touched run at once, [`PARALLEL`] at a time, oldest
    /// touch first. A run changed while it is attended to is attended to
    /// again after, so no change slips between a read and a commit.
    async fn attend_touched(&self, mut inbox: mpsc::UnboundedReceiver<Touch>, stop: CancellationToken) {
        let mut attendance = Attendance::default();
        loop {
            attendance.start(PARALLEL, |id, since| {
                let me = self.clone();
                async move {
                    if let Err(e) = me.attend(id, since).await {
                        tracing::warn!(run = %id, error = %e, "attending to a run failed; the next pass retries");
                    }
                }
            });
            tokio::select! {
                () = stop.cancelled() => return,
                touched = inbox.recv() => {
                    let Some(Touch { run, changed }) = touched else { return };
                    attendance.touched(run, changed, Instant::now());
                }
                Some(_) = attendance.finished() => {}
            }
        }
    }

    /// Plans the run if it is queued, then moves it as far as it goes.
    /// `since`: when the run was touched (a plan may share a tag list read
    /// from then on).
    async fn attend(&self, id: Uuid, since: Instant) -> Result<()> {
        let state = sqlx::query_scalar!("SELECT state FROM runs WHERE id = $1", id)
            .fetch_optional(self.outbox.pool())
            .await?;
        let movable = match state.as_deref() {
            Some("queued") => self.plan(id, since).await?,
            Some("running") => true,
            _ => false,
        };
        if movable {
            self.advance(id).await?;
        }
        Ok(())
    }

    /// What no event announces, then a resync: touches the runs that need
    /// the conductor.
    ///
    /// # Errors
    /// The database fails.
    pub async fn pass(&self) -> Result<()> {
        self.start_schedules().await?;
        self.reap_lost_steps().await?;
        if let Some(delivery) = &self.delivery {
            // A service that does not answer must not stop runs elsewhere.
            if let Err(e) = delivery.remove_retired().await {
                tracing::warn!(error = %e, "removing retired branch environments failed; retrying");
            }
            delivery.drive().await?;
        }
        // Runs whose step is with a runner wait for its answer (which touches
        // them) or for its lease to run out (reaped above): they are left out,
        // so a pass costs the runs that can move, not all that are running.
        let due: Vec<Uuid> = sqlx::query_scalar!(
            "SELECT r.id FROM runs r
             WHERE r.state = 'queued'
                OR (r.state = 'running'
                    AND NOT EXISTS (SELECT 1 FROM steps s WHERE s.run_id = r.id AND s.state IN ('queued', 'running')))
             ORDER BY r.state = 'running', r.created_at LIMIT $1",
            RESYNC_BATCH
        )
        .fetch_all(self.outbox.pool())
        .await?;
        for run in due {
            let _ = self.wake.touched.send(Touch { run, changed: false });
        }
        Ok(())
    }

    /// Starts the runs of schedules that are due.
    async fn start_schedules(&self) -> Result<()> {
        let mut tx = self.outbox.pool().begin().await?;
        let due = sqlx::query_as!(
            Pipeline,
            "SELECT id, tenant_id, name, repository, created_at, application_id, definition, definition_source, builds
             FROM pipelines WHERE next_schedule_at <= now() FOR UPDATE SKIP LOCKED LIMIT 16"
        )
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            return Ok(());
        }
        let mut started = Vec::new();
        for pipeline in due {
            let def = pipeline
                .definition
                .as_deref()
                .and_then(|d| Definition::parse("definition", d).ok());
            let next = def.as_ref().and_then(next_schedule);
            sqlx::query!(
                "UPDATE pipelines SET next_schedule_at = $2 WHERE id = $1",
                pipeline.id,
                next
            )
            .execute(&mut *tx)
            .await?;
            if let Some(def) = def {
                let trigger = Trigger {
                    kind: "schedule",
                    by: "schedule".into(),
                    git_ref: GitRef::Branch(def.schedule_branch.clone()),
                    commit: None,
                    parameters: Default::default(),
                };
                started.push(run::enqueue(&mut tx, &pipeline, trigger).await?.id);
            }
        }
        self.outbox.commit(tx).await?;
        for id in started {
            self.wake.run(id);
        }
        Ok(())
    }

    /// Plans a queued run: commit, version, definition, stages and steps.
    /// Returns whether this call moved it to running (or failed it).
    async fn plan(&self, id: Uuid, since: Instant) -> Result<bool> {
        let Some(run) = run::load(self.outbox.pool(), id).await? else {
            return Ok(false);
        };
        let pipeline = sqlx::query_as!(
            Pipeline,
            "SELECT id, tenant_id, name, repository, created_at, application_id, definition, definition_source, builds
             FROM pipelines WHERE id = $1 AND tenant_id = $2",
            run.pipeline_id,
            run.tenant_id
        )
        .fetch_optional(self.outbox.pool())
        .await?;
        let planned = match pipeline {
            Some(p) => prepare(&p, &run, &self.tags, since).await,
            None => Err("the pipeline was deleted".to_string()),
        };
        let mut tx = self.outbox.pool().begin().await?;
        let locked = sqlx::query_scalar!(
            "SELECT id FROM runs WHERE id = $1 AND state = 'queued' FOR UPDATE SKIP LOCKED",
            id
        )
        .fetch_optional(&mut *tx)
        .await?;
        if locked.is_none() {
            return Ok(false);
        }
        match planned {
            Ok(plan) => {
                let run = sqlx::query_as!(
                    Run,
                    "UPDATE runs SET state = 'running', started_at = now(), commit_sha = $2, version = $3,
                                     definition = $4
                     WHERE id = $1
                     RETURNING id, tenant_id, pipeline_id, application_id, number, git_ref, branch, commit_sha,
                               version, trigger, triggered_by, parameters, state, message, created_at, started_at,
                               finished_at",
                    id,
                    plan.commit,
                    plan.version,
                    serde_json::to_value(&plan.definition).map_err(Error::internal)?,
                )
                .fetch_one(&mut *tx)
                .await?;
                let git_ref = GitRef::parse("git_ref", &run.git_ref)?;
                for (i, stage) in plan.definition.stages_for(&git_ref).enumerate() {
                    let stage_id = kernel::id::new_id();
                    sqlx::query!(
                        "INSERT INTO stages (id, run_id, tenant_id, position, name) VALUES ($1, $2, $3, $4, $5)",
                        stage_id,
                        run.id,
                        run.tenant_id,
                        i32::try_from(i).unwrap_or(i32::MAX),
                        stage.name,
                    )
                    .execute(&mut *tx)
                    .await?;
                    for (j, step) in stage.steps.iter().enumerate() {
                        sqlx::query!(
                            "INSERT INTO steps (id, run_id, stage_id, tenant_id, position, name, kind, spec)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                            kernel::id::new_id(),
                            run.id,
                            stage_id,
                            run.tenant_id,
                            i32::try_from(j).unwrap_or(i32::MAX),
                            step.name,
                            step.action.kind(),
                            serde_json::to_value(step).map_err(Error::internal)?,
                        )
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                announce(&mut tx, &run, None, None, "running").await?;
            }
            Err(why) => {
                finish_run(&mut tx, id, "failed", &format!("cannot plan the run: {why}")).await?;
            }
        }
        self.outbox.commit(tx).await?;
        Ok(true)
    }

    /// Steps whose runner stopped renewing the lease: retried while the step
    /// allows, else failed.
    async fn reap_lost_steps(&self) -> Result<()> {
        let mut tx = self.outbox.pool().begin().await?;
        let lost = sqlx::query!(
            "SELECT s.id, s.name, s.spec, s.attempt, s.runner_id, r.id AS run_id, g.name AS stage
             FROM steps s JOIN runs r ON r.id = s.run_id JOIN stages g ON g.id = s.stage_id
             WHERE s.state = 'running' AND s.lease_until < now()
             FOR UPDATE OF s SKIP LOCKED LIMIT 64"
        )
        .fetch_all(&mut *tx)
        .await?;
        if lost.is_empty() {
            return Ok(());
        }
        let mut touched = Vec::new();
        for step in lost {
            let retries = serde_json::from_value::<definition::Step>(step.spec).map_or(0, |s| s.retries);
            let retry = u32::try_from(step.attempt).unwrap_or(u32::MAX) <= retries;
            let who = step.runner_id.map(|r| r.to_string()).unwrap_or_default();
            let note = format!(
                "\n[paas] runner {who} stopped answering during attempt {}\n",
                step.attempt
            );
            let state = if retry { "queued" } else { "failed" };
            sqlx::query!(
                "UPDATE steps SET state = $2, runner_id = NULL, lease_until = NULL,
                        attempt = attempt + CASE WHEN $2 = 'queued' THEN 1 ELSE 0 END,
                        queued_at = CASE WHEN $2 = 'queued' THEN now() ELSE queued_at END,
                        finished_at = CASE WHEN $2 = 'failed' THEN now() ELSE NULL END,
                        message = $3, log = right(log || $4, $5::int), log_length = log_length + $6
                 WHERE id = $1",
                step.id,
                state,
                if retry {
                    format!("runner {who} was lost; retrying")
                } else {
                    format!("runner {who} was lost and the step allows no more retries")
                },
                note,
                i32::try_from(crate::step::LOG_LIMIT).unwrap_or(i32::MAX),
                i64::try_from(note.chars().count()).unwrap_or(0),
            )
            .execute(&mut *tx)
            .await?;
            if let Some(run) = run::load(&mut *tx, step.run_id).await? {
                announce(&mut tx, &run, Some(&step.stage), Some(&step.name), state).await?;
            }
            touched.push(step.run_id);
        }
        self.outbox.commit(tx).await?;
        for id in touched {
            self.wake.run(id);
        }
        self.wake.dispatch.notify_waiters();
        Ok(())
    }

    /// Moves one running run as far as it goes now.
    async fn advance(&self, id: Uuid) -> Result<()> {
        let mut tx = self.outbox.pool().begin().await?;
        let locked = sqlx::query_scalar!(
            "SELECT id FROM runs WHERE id = $1 AND state = 'running' FOR UPDATE SKIP LOCKED",
            id
        )
        .fetch_optional(&mut *tx)
        .await?;
        if locked.is_none() {
            return Ok(());
        }
        let Some(run) = run::load(&mut *tx, id).await? else {
            return Ok(());
        };
        let mut queued = false;
        // Each round makes one change; a run has fewer than
        // MAX_STAGES * (MAX_STEPS + 1) + 1 changes to make.
        for _ in 0..(definition::MAX_STAGES * (definition::MAX_STEPS + 2)) {
            match step_forward(&mut tx, &run).await? {
                Moved::Again => {}
                Moved::Queued => queued = true,
                Moved::Wait => break,
            }
        }
        self.outbox.commit(tx).await?;
        if queued {
            self.wake.dispatch.notify_waiters();
        }
        Ok(())
    }
}

/// What one round of [`step_forward`] did.
enum Moved {
    /// Changed something; look again.
    Again,
    /// Queued a step for runners; look again.
    Queued,
    /// Nothing to do until something happens.
    Wait,
}

/// The next scheduled time of any of the definition's schedules.
pub(crate) fn next_schedule(def: &Definition) -> Option<chrono::DateTime<Utc>> {
    let now = Utc::now();
    def.schedules
        .iter()
        .filter_map(|s| definition::parse_schedule("schedules", s).ok())
        .filter_map(|c| c.find_next_occurrence(&now, false).ok())
        .min()
}

/// A run's plan: what planning learnt from the repository.
struct Plan {
    commit: String,
    version: String,
    definition: Definition,
}

async fn prepare(pipeline: &Pipeline, run: &Run, tags: &TagReads, since: Instant) -> Result<Plan, String> {
    let git_ref = GitRef::parse("git_ref", &run.git_ref).map_err(|e| e.to_string())?;
    let commit = if run.commit_sha.is_empty() {
        source::resolve(&pipeline.repository, &git_ref)
            .await
            .map_err(|e| e.to_string())?
    } else {
        run.commit_sha.clone()
    };
    let tags = tags.tags(&pipeline.repository, since).await?;
    let latest = definition::latest_version_tag(tags.iter().map(String::as_str));
    let version = definition::build_version(latest, &git_ref, u64::try_from(run.number).unwrap_or(0));
    let from_repository = pipeline.definition_source == "repository" || pipeline.definition.is_none();
    let text = if from_repository {
        source::definition_at(&pipeline.repository, &git_ref, &commit)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{} is missing at commit {commit}", definition::REPOSITORY_FILE))?
    } else {
        pipeline.definition.clone().unwrap_or_default()
    };
    let field = if from_repository {
        definition::REPOSITORY_FILE
    } else {
        "definition"
    };
    let definition = Definition::parse(field, &text).map_err(|e| e.to_string())?;
    Ok(Plan {
        commit,
        version,
        definition,
    })
}

async fn finish_run(tx: &mut PgConnection, id: Uuid, state: &str, message: &str) -> Result<()> {
    let run = sqlx::query_as!(
        Run,
        "UPDATE runs SET state = $2, message = $3, finished_at = now() WHERE id = $1
         RETURNING id, tenant_id, pipeline_id, application_id, number, git_ref, branch, commit_sha, version,
                   trigger, triggered_by, parameters, state, message, created_at, started_at, finished_at",
        id,
        state,
        message,
    )
    .fetch_one(&mut *tx)
    .await?;
    announce(tx, &run, None, None, state).await
}

/// One change to a running run, or [`Moved::Wait`].
async fn step_forward(tx: &mut PgConnection, run: &Run) -> Result<Moved> {
    let stages = sqlx::query!(
        "SELECT id, name, state FROM stages WHERE run_id = $1 AND tenant_id = $2 ORDER BY position",
        run.id,
        run.tenant_id
    )
    .fetch_all(&mut *tx)
    .await?;
    let Some(stage) = stages
        .iter()
        .find(|s| !matches!(s.state.as_str(), "succeeded" | "skipped"))
    else {
        let message = if stages.is_empty() {
            format!("no stage runs for {}", run.git_ref)
        } else {
            String::new()
        };
        finish_run(tx, run.id, "succeeded", &message).await?;
        return Ok(Moved::Wait);
    };
    if stage.state == "pending" {
        sqlx::query!(
            "UPDATE stages SET state = 'running', started_at = now() WHERE id = $1",
            stage.id
        )
        .execute(&mut *tx)
        .await?;
        announce(tx, run, Some(&stage.name), None, "running").await?;
        return Ok(Moved::Again);
    }
    let steps = sqlx::query!(
        "SELECT id, name, kind, spec, state, message, started_at FROM steps
         WHERE stage_id = $1 AND tenant_id = $2 ORDER BY position",
        stage.id,
        run.tenant_id
    )
    .fetch_all(&mut *tx)
    .await?;
    let Some(step) = steps
        .iter()
        .find(|s| !matches!(s.state.as_str(), "succeeded" | "skipped"))
    else {
        sqlx::query!(
            "UPDATE stages SET state = 'succeeded', finished_at = now() WHERE id = $1",
            stage.id
        )
        .execute(&mut *tx)
        .await?;
        announce(tx, run, Some(&stage.name), None, "succeeded").await?;
        return Ok(Moved::Again);
    };
    match step.state.as_str() {
        "failed" | "cancelled" => {
            sqlx::query!(
                "UPDATE steps SET state = 'skipped' WHERE run_id = $1 AND tenant_id = $2 AND state = 'pending'",
                run.id,
                run.tenant_id
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query!(
                "UPDATE stages SET state = 'failed', finished_at = now() WHERE id = $1",
                stage.id
            )
            .execute(&mut *tx)
            .await?;
            announce(tx, run, Some(&stage.name), None, "failed").await?;
            let skipped = sqlx::query_scalar!(
                "UPDATE stages SET state = 'skipped' WHERE run_id = $1 AND tenant_id = $2 AND state = 'pending'
                 RETURNING name",
                run.id,
                run.tenant_id
            )
            .fetch_all(&mut *tx)
            .await?;
            for name in skipped {
                announce(tx, run, Some(&name), None, "skipped").await?;
            }
            let why = format!("step {}/{} failed: {}", stage.name, step.name, step.message);
            finish_run(tx, run.id, "failed", &why).await?;
            Ok(Moved::Wait)
        }
        "pending" => {
            let def: definition::Step = serde_json::from_value(step.spec.clone()).map_err(Error::internal)?;
            let (state, message, moved) = match &def.action {
                Action::Run { .. } | Action::Test { .. } | Action::BuildImage { .. } => {
                    ("queued", String::new(), Moved::Queued)
                }
                Action::Approval(a) => (
                    "waiting",
                    format!("waiting for {} approval(s)", a.required),
                    Moved::Again,
                ),
                // Executed here, by [`Delivery::drive`], from the next pass on.
                Action::Deploy { .. } | Action::SecurityScan { .. } | Action::Promote { .. } => {
                    ("running", String::new(), Moved::Again)
                }
            };
            if state == "queued" {
                sqlx::query!(
                    "UPDATE steps SET state = 'queued', attempt = attempt + 1, queued_at = now() WHERE id = $1",
                    step.id
                )
                .execute(&mut *tx)
                .await?;
            } else {
                set_step(tx, step.id, state, &message).await?;
            }
            announce(tx, run, Some(&stage.name), Some(&step.name), state).await?;
            Ok(moved)
        }
        "waiting" => {
            let def: definition::Step = serde_json::from_value(step.spec.clone()).map_err(Error::internal)?;
            let Action::Approval(approval) = &def.action else {
                return Ok(Moved::Wait);
            };
            let decisions: Vec<(String, String, String)> = sqlx::query!(
                "SELECT approver, decision, comment FROM approvals WHERE step_id = $1 ORDER BY decided_at",
                step.id
            )
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|d| (d.approver, d.decision, d.comment))
            .collect();
            let started = step.started_at.unwrap_or_else(Utc::now);
            match approval_outcome(approval, def.timeout, &decisions, started, Utc::now()) {
                None => Ok(Moved::Wait),
                Some((passed, message)) => {
                    let state = if passed { "succeeded" } else { "failed" };
                    set_step(tx, step.id, state, &message).await?;
                    announce(tx, run, Some(&stage.name), Some(&step.name), state).await?;
                    Ok(Moved::Again)
                }
            }
        }
        _ => Ok(Moved::Wait),
    }
}

/// Sets a step's state and message, stamping when it started or ended.
pub(crate) async fn set_step(tx: &mut PgConnection, id: Uuid, state: &str, message: &str) -> Result<()> {
    sqlx::query!(
        "UPDATE steps SET state = $2, message = $3,
                started_at = CASE WHEN $2 IN ('waiting', 'running') THEN now() ELSE started_at END,
                finished_at = CASE WHEN $2 IN ('succeeded', 'failed', 'skipped') THEN now() ELSE NULL END
         WHERE id = $1",
        id,
        state,
        message
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_attendance_frees_its_run_and_a_change_meanwhile_is_attended_to_again() {
        let (calm, panicking) = (Uuid::now_v7(), Uuid::now_v7());
        let mut attendance = Attendance::default();
        let now = Instant::now();
        attendance.touched(calm, true, now);
        attendance.touched(panicking, true, now);
        attendance.touched(calm, true, now);
        assert_eq!(
            attendance.waiting.len(),
            2,
            "a run waits once however often it is touched"
        );
        let (release, released) = tokio::sync::watch::channel(false);
        attendance.start(PARALLEL, |run, _| {
            let mut released = released.clone();
            async move {
                released.wait_for(|go| *go).await.unwrap();
                assert_ne!(run, panicking, "attending to this run panics");
            }
        });
        assert_eq!(attendance.busy.len(), 2);
        // Changed while attended to: attended to again once this attendance ends.
        attendance.touched(panicking, true, now);
        release.send(true).unwrap();
        let mut ended = vec![
            attendance.finished().await.unwrap(),
            attendance.finished().await.unwrap(),
        ];
        ended.sort();
        let mut both = vec![calm, panicking];
        both.sort();
        assert_eq!(ended, both, "the panicked attendance ended as the other did");
        assert!(attendance.busy.is_empty(), "no run stays busy");
        assert_eq!(attendance.waiting, VecDeque::from([(panicking, now)]));
        assert_eq!(attendance.finished().await, None);
    }
}
