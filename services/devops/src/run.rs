//! Runs: one execution of a pipeline for a commit. A run is queued when a
//! trigger fires, planned by the [`crate::conductor`] (commit, version, the
//! definition's stages and steps written out), then moved step by step; every
//! state lives in the database, so a devops restart picks the run up where
//! it was. Each change is announced as `devops.run.*`, `devops.stage.*` and
//! `devops.step.*` through the outbox.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::event::EventType;
use kernel::outbox::{self, Outbox};
use kernel::page::Page;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::definition::GitRef;
use crate::pipeline::Pipeline;

/// The most parameters a manual run takes.
pub const MAX_PARAMETERS: usize = 64;

/// A run's states.
pub const RUN_STATES: &[&str] = &["queued", "running", "succeeded", "failed", "cancelled"];

/// The `devops.<entity>.<state>` event type of a state change.
pub fn event_type(entity: &'static str, state: &str) -> EventType {
    let verb: &'static str = match state {
        "queued" => "queued",
        "running" => "started",
        "waiting" => "waiting",
        "succeeded" => "succeeded",
        "failed" => "failed",
        "cancelled" => "cancelled",
        "skipped" => "skipped",
        _ => "changed",
    };
    EventType::new("devops", entity, verb)
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Run {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Its pipeline.
    pub pipeline_id: Uuid,
    /// The application the pipeline delivers.
    pub application_id: Option<Uuid>,
    /// The pipeline's build number.
    pub number: i64,
    /// The full ref built.
    pub git_ref: String,
    /// The branch or tag name.
    pub branch: String,
    /// The commit built (empty until planned when the trigger named none).
    pub commit_sha: String,
    /// The semantic version of the build (set when planned).
    pub version: String,
    /// `webhook`, `manual`, `schedule` or `image`.
    pub trigger: String,
    /// Who or what started it.
    pub triggered_by: String,
    /// Parameters of a manual run.
    pub parameters: serde_json::Value,
    /// One of [`RUN_STATES`].
    pub state: String,
    /// Why it ended, when it failed or was cancelled.
    pub message: String,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it was planned.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A stage of a run.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Stage {
    /// Its id.
    pub id: Uuid,
    /// Its run.
    pub run_id: Uuid,
    /// Order in the run.
    pub position: i32,
    /// Its name.
    pub name: String,
    /// `pending`, `running`, `succeeded`, `failed`, `cancelled`, `skipped`.
    pub state: String,
}

/// A step of a run, without its log.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Step {
    /// Its id.
    pub id: Uuid,
    /// Its run.
    pub run_id: Uuid,
    /// Its stage.
    pub stage_id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Order in the stage.
    pub position: i32,
    /// Its name.
    pub name: String,
    /// Its kind (`run`, `test`, `approval`...).
    pub kind: String,
    /// The checked definition of the step.
    pub spec: serde_json::Value,
    /// `pending`, `queued`, `running`, `waiting`, `succeeded`, `failed`,
    /// `cancelled`, `skipped`.
    pub state: String,
    /// Attempts so far (a dead runner's step may be retried).
    pub attempt: i32,
    /// The runner executing it.
    pub runner_id: Option<Uuid>,
    /// The last command's exit code.
    pub exit_code: Option<i32>,
    /// Why it ended as it did.
    pub message: String,
    /// Characters of output ever written.
    pub log_length: i64,
    /// JUnit counts of a test step.
    pub tests_total: Option<i32>,
    /// Failed and errored tests.
    pub tests_failed: Option<i32>,
    /// Skipped tests.
    pub tests_skipped: Option<i32>,
    /// `[{"name", "message"}]` of failed tests.
    pub test_failures: serde_json::Value,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// What a build-image step pushed (`registry/repository:version`).
    pub image: String,
    /// The pushed manifest's digest.
    pub image_digest: String,
}

impl Step {
    /// Whether it will not change any more.
    pub fn finished(&self) -> bool {
        matches!(self.state.as_str(), "succeeded" | "failed" | "cancelled" | "skipped")
    }
}

/// One approver's decision.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Decision {
    /// The approver's subject.
    pub approver: String,
    /// `approved` or `rejected`.
    pub decision: String,
    /// Their comment.
    pub comment: String,
    /// When.
    pub decided_at: DateTime<Utc>,
}

/// A run's filters for lists.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// One tenant.
    pub tenant: Option<Uuid>,
    /// One pipeline.
    pub pipeline: Option<Uuid>,
    /// One application.
    pub application: Option<Uuid>,
    /// One branch or tag name.
    pub branch: Option<String>,
    /// One state.
    pub state: Option<String>,
}

impl RunFilter {
    /// Checks raw filters; errors name the field.
    ///
    /// # Errors
    /// A malformed id or an unknown state.
    pub fn parse(tenant: &str, pipeline: &str, application: &str, branch: &str, state: &str) -> Result<Self> {
        let state = match state {
            "" => None,
            s if RUN_STATES.contains(&s) => Some(s.to_string()),
            _ => {
                return Err(Error::invalid(
                    "state",
                    format!("must be one of {}", RUN_STATES.join(", ")),
                ));
            }
        };
        Ok(Self {
            tenant: id::parse_optional_id("tenant_id", tenant)?,
            pipeline: id::parse_optional_id("pipeline_id", pipeline)?,
            application: id::parse_optional_id("application_id", application)?,
            branch: (!branch.is_empty()).then(|| branch.to_string()),
            state,
        })
    }
}

/// What starts a run.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// `webhook`, `manual`, `schedule` or `image`.
    pub kind: &'static str,
    /// Who: a user, `webhook:<id>/<delivery>` or `schedule`.
    pub by: String,
    /// The ref.
    pub git_ref: GitRef,
    /// The commit, when the trigger knows it.
    pub commit: Option<String>,
    /// Parameters (manual runs).
    pub parameters: BTreeMap<String, String>,
}

/// Checks manual-run parameters: names like environment variables, bounded.
///
/// # Errors
/// Too many, a bad name or an oversized value, naming `parameters.<name>`.
pub fn parse_parameters(raw: BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    if raw.len() > MAX_PARAMETERS {
        return Err(Error::invalid(
            "parameters",
            format!("must hold at most {MAX_PARAMETERS}"),
        ));
    }
    for (k, v) in &raw {
        let mut chars = k.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && k.len() <= 128;
        if !ok {
            return Err(Error::invalid(format!("parameters.{k}"), "must be a variable name"));
        }
        if v.len() > 4096 || v.contains('\0') {
            return Err(Error::invalid(
                format!("parameters.{k}"),
                "must be at most 4096 bytes of text",
            ));
        }
    }
    Ok(raw)
}

/// Announces a run's, stage's or step's new state.
pub(crate) async fn announce(
    tx: &mut PgConnection,
    run: &Run,
    stage: Option<&str>,
    step: Option<&str>,
    state: &str,
) -> Result<()> {
    let entity = match (stage, step) {
        (_, Some(_)) => "step",
        (Some(_), None) => "stage",
        (None, None) => "run",
    };
    let event = pb::PipelineRunChanged {
        run_id: run.id.to_string(),
        tenant_id: run.tenant_id.to_string(),
        pipeline_id: run.pipeline_id.to_string(),
        stage: stage.unwrap_or_default().to_string(),
        step: step.unwrap_or_default().to_string(),
        state: state.to_string(),
        version: run.version.clone(),
        git_ref: run.git_ref.clone(),
    };
    outbox::record(tx, event_type(entity, state), Some(run.tenant_id), &event).await?;
    Ok(())
}

/// Queues a run of `pipeline` inside the caller's transaction, taking the
/// pipeline's next build number.
///
/// # Errors
/// The database fails.
pub(crate) async fn enqueue(tx: &mut PgConnection, pipeline: &Pipeline, trigger: Trigger) -> Result<Run> {
    let number = sqlx::query_scalar!(
        "UPDATE pipelines SET builds = builds + 1 WHERE id = $1 AND tenant_id = $2 RETURNING builds",
        pipeline.id,
        pipeline.tenant_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::not_found("pipeline", pipeline.id))?;
    let parameters = serde_json::to_value(&trigger.parameters).map_err(Error::internal)?;
    let run = sqlx::query_as!(
        Run,
        "INSERT INTO runs (id, tenant_id, pipeline_id, application_id, number, git_ref, branch, commit_sha,
                           trigger, triggered_by, parameters)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         RETURNING id, tenant_id, pipeline_id, application_id, number, git_ref, branch, commit_sha, version,
                   trigger, triggered_by, parameters, state, message, created_at, started_at, finished_at",
        id::new_id(),
        pipeline.tenant_id,
        pipeline.id,
        pipeline.application_id,
        number,
        trigger.git_ref.full(),
        trigger.git_ref.name(),
        trigger.commit.unwrap_or_default(),
        trigger.kind,
        trigger.by,
        parameters,
    )
    .fetch_one(&mut *tx)
    .await?;
    announce(tx, &run, None, None, "queued").await?;
    Ok(run)
}

/// Runs, stages and steps in the devops schema, as users see them.
#[derive(Clone)]
pub struct Runs {
    outbox: Outbox,
}

impl Runs {
    /// Runs stored in the outbox's schema.
    pub fn new(outbox: Outbox) -> Self {
        Self { outbox }
    }

    /// A run the caller can see.
    ///
    /// # Errors
    /// Not found or not visible (the same answer).
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Run> {
        load(self.outbox.pool(), id)
            .await?
            .filter(|r| caller.can_see(r.tenant_id))
            .ok_or_else(|| Error::not_found("run", id))
    }

    /// A run's stages and steps, in order.
    ///
    /// # Errors
    /// The database fails.
    pub async fn layout(&self, run: &Run) -> Result<Vec<(Stage, Vec<Step>)>> {
        layout(self.outbox.pool(), run).await
    }

    /// A page of the runs the caller can see, newest first.
    ///
    /// # Errors
    /// The database fails.
    pub async fn list(&self, caller: &Caller, page: Page, filter: RunFilter) -> Result<(Vec<Run>, String)> {
        let visible = caller.visible_tenants();
        let rows = sqlx::query_as!(
            Run,
            "SELECT id, tenant_id, pipeline_id, application_id, number, git_ref, branch, commit_sha, version,
                    trigger, triggered_by, parameters, state, message, created_at, started_at, finished_at
             FROM runs
             WHERE ($1::uuid IS NULL OR id < $1) AND ($2::uuid[] IS NULL OR tenant_id = ANY($2))
               AND ($3::uuid IS NULL OR tenant_id = $3) AND ($4::uuid IS NULL OR pipeline_id = $4)
               AND ($5::uuid IS NULL OR application_id = $5) AND ($6::text IS NULL OR branch = $6)
               AND ($7::text IS NULL OR state = $7)
             ORDER BY id DESC LIMIT $8",
            page.after,
            visible.as_deref(),
            filter.tenant,
            filter.pipeline,
            filter.application,
            filter.branch,
            filter.state,
            page.fetch(),
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(page.finish(rows, |r| r.id))
    }

    /// Cancels a run that has not ended: waiting and queued steps end at once,
    /// running ones when their runner hears of it. Developers of the tenant.
    ///
    /// # Errors
    /// Not visible, not allowed, or the run already ended.
    pub async fn cancel(&self, caller: &Caller, id: Uuid) -> Result<Run> {
        let run = self.get(caller, id).await?;
        caller.require(run.tenant_id, Role::Developer, "run", id)?;
        let mut tx = self.outbox.pool().begin().await?;
        let run = sqlx::query_as!(
            Run,
            "UPDATE runs SET state = 'cancelled', finished_at = now(), message = $3
             WHERE id = $1 AND tenant_id = $2 AND state IN ('queued', 'running')
             RETURNING id, tenant_id, pipeline_id, application_id, number, git_ref, branch, commit_sha, version,
                       trigger, triggered_by, parameters, state, message, created_at, started_at, finished_at",
            id,
            run.tenant_id,
            format!("cancelled by {}", caller.subject),
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::FailedPrecondition(format!("run {id} has already ended")))?;
        sqlx::query!(
            "UPDATE steps SET state = CASE WHEN state IN ('pending') THEN 'skipped' ELSE 'cancelled' END,
                              finished_at = now(), lease_until = NULL
             WHERE run_id = $1 AND tenant_id = $2 AND state IN ('pending', 'queued', 'running', 'waiting')",
            id,
            run.tenant_id
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE stages SET state = CASE WHEN state = 'pending' THEN 'skipped' ELSE 'cancelled' END,
                               finished_at = now()
             WHERE run_id = $1 AND tenant_id = $2 AND state IN ('pending', 'running')",
            id,
            run.tenant_id
        )
        .execute(&mut *tx)
        .await?;
        announce(&mut tx, &run, None, None, "cancelled").await?;
        self.outbox.commit(tx).await?;
        Ok(run)
    }
}

/// A run by id, whoever asks (the conductor and runners). Inside a
/// transaction, read it through the transaction: a second connection per
/// open transaction runs a shared pool dry when many are open at once.
pub(crate) async fn load<'e>(conn: impl sqlx::PgExecutor<'e>, id: Uuid) -> Result<Option<Run>> {
    Ok(sqlx::query_as!(
        Run,
        "SELECT id, tenant_id, pipeline_id, application_id, number, git_ref, branch, commit_sha, version,
                trigger, triggered_by, parameters, state, message, created_at, started_at, finished_at
         FROM runs WHERE id = $1",
        id
    )
    .fetch_optional(conn)
    .await?)
}

/// A run's stages and steps, in order.
pub(crate) async fn layout(pool: &sqlx::PgPool, run: &Run) -> Result<Vec<(Stage, Vec<Step>)>> {
    let stages = sqlx::query_as!(
        Stage,
        "SELECT id, run_id, position, name, state FROM stages WHERE run_id = $1 AND tenant_id = $2 ORDER BY position",
        run.id,
        run.tenant_id
    )
    .fetch_all(pool)
    .await?;
    let mut steps = steps_of(pool, run).await?;
    Ok(stages
        .into_iter()
        .map(|stage| {
            let mine: Vec<Step> = steps.extract_if(.., |s| s.stage_id == stage.id).collect();
            (stage, mine)
        })
        .collect())
}

async fn steps_of(pool: &sqlx::PgPool, run: &Run) -> Result<Vec<Step>> {
    Ok(sqlx::query_as!(
        Step,
        "SELECT id, run_id, stage_id, tenant_id, position, name, kind, spec, state, attempt, runner_id, exit_code,
                message, log_length, tests_total, tests_failed, tests_skipped, test_failures, started_at, finished_at,
                image, image_digest
         FROM steps WHERE run_id = $1 AND tenant_id = $2 ORDER BY position",
        run.id,
        run.tenant_id
    )
    .fetch_all(pool)
    .await?)
}
