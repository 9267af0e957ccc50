//! Runners: processes (`paas runner`) that execute a tenant's steps. A tenant
//! developer creates one and gets its token once; the runner presents the
//! token on every call. Runners take only their tenant's steps, hold each on
//! a lease renewed by heartbeats, and report output and results, which are
//! accepted only for the attempt they were given (a step retried elsewhere
//! does not take a late answer from a runner thought dead).

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::name::DnsLabel;
use kernel::outbox::Outbox;
use kernel::page::Page;
use kernel::{Error, Result, id};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::conductor::{LEASE, Wake};
use crate::definition::{self, Action};
use crate::run::{self, announce};
use crate::step::LOG_LIMIT;

/// A runner as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Runner {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// DNS-label name, unique in the tenant.
    pub name: String,
    /// `active` or `draining` (finishes its steps, takes no new ones).
    pub state: String,
    /// Steps it runs at once (as it registered).
    pub concurrency: i32,
    /// Its sandbox (`bwrap` or `none`).
    pub sandbox: String,
    /// Its last call.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl Runner {
    /// Whether it called within a lease.
    pub fn online(&self) -> bool {
        self.last_seen_at
            .is_some_and(|t| Utc::now() - t < chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::MAX))
    }
}

/// A step handed to a runner.
#[derive(Debug, Clone)]
pub struct Job {
    /// The step.
    pub step_id: Uuid,
    /// Its attempt.
    pub attempt: i32,
    /// Its run.
    pub run_id: Uuid,
    /// The repository to fetch.
    pub repository: String,
    /// The ref built.
    pub git_ref: String,
    /// The commit built.
    pub commit: String,
    /// The run's version.
    pub version: String,
    /// The step's definition.
    pub step: definition::Step,
    /// The run's parameters.
    pub parameters: serde_json::Value,
}

/// A finished step as a runner reports it.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The last command's exit code (-1: none ran).
    pub exit_code: i32,
    /// Whether the step passed.
    pub succeeded: bool,
    /// Why it ended so.
    pub message: String,
    /// JUnit counts (test steps).
    pub tests: Option<(u32, u32, u32)>,
    /// Failed tests: (name, message).
    pub failures: Vec<(String, String)>,
    /// What a build-image step pushed (`registry/repository:version`).
    pub image: String,
    /// The pushed manifest's digest.
    pub image_digest: String,
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Runners in the devops schema.
#[derive(Clone)]
pub struct Runners {
    outbox: Outbox,
    wake: Wake,
}

impl Runners {
    /// Runners over the outbox's schema.
    pub fn new(outbox: Outbox, wake: Wake) -> Self {
        Self { outbox, wake }
    }

    /// Creates a runner; its token is returned here only. Developers of the tenant.
    ///
    /// # Errors
    /// Not allowed, or the name is taken.
    pub async fn create(&self, caller: &Caller, tenant: Uuid, name: &DnsLabel) -> Result<(Runner, String)> {
        caller.require(tenant, Role::Developer, "tenant", tenant)?;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = format!("paasr_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let runner = sqlx::query_as!(
            Runner,
            "INSERT INTO runners (id, tenant_id, name, token_sha256) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING
             RETURNING id, tenant_id, name, state, concurrency, sandbox, last_seen_at, created_at",
            id::new_id(),
            tenant,
            name.as_str(),
            hash(&token),
        )
        .fetch_optional(self.outbox.pool())
        .await?
        .ok_or_else(|| Error::Conflict(format!("the tenant already has a runner named {}", name.as_str())))?;
        Ok((runner, token))
    }

    /// A page of the runners the caller can see.
    ///
    /// # Errors
    /// The database fails.
    pub async fn list(&self, caller: &Caller, page: Page, tenant: Option<Uuid>) -> Result<(Vec<Runner>, String)> {
        let visible = caller.visible_tenants();
        let rows = sqlx::query_as!(
            Runner,
            "SELECT id, tenant_id, name, state, concurrency, sandbox, last_seen_at, created_at FROM runners
             WHERE ($1::uuid IS NULL OR id > $1) AND ($2::uuid[] IS NULL OR tenant_id = ANY($2))
               AND ($3::uuid IS NULL OR tenant_id = $3) ORDER BY id LIMIT $4",
            page.after,
            visible.as_deref(),
            tenant,
            page.fetch(),
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(page.finish(rows, |r| r.id))
    }

    /// Drains a runner: it finishes what it runs and takes nothing new.
    ///
    /// # Errors
    /// Not visible or not allowed.
    pub async fn drain(&self, caller: &Caller, id: Uuid) -> Result<Runner> {
        let tenant = sqlx::query_scalar!("SELECT tenant_id FROM runners WHERE id = $1", id)
            .fetch_optional(self.outbox.pool())
            .await?
            .filter(|t| caller.can_see(*t))
            .ok_or_else(|| Error::not_found("runner", id))?;
        caller.require(tenant, Role::Developer, "runner", id)?;
        sqlx::query_as!(
            Runner,
            "UPDATE runners SET state = 'draining' WHERE id = $1 AND tenant_id = $2
             RETURNING id, tenant_id, name, state, concurrency, sandbox, last_seen_at, created_at",
            id,
            tenant
        )
        .fetch_optional(self.outbox.pool())
        .await?
        .ok_or_else(|| Error::not_found("runner", id))
    }

    /// The runner a token belongs to.
    ///
    /// # Errors
    /// Unauthenticated for an unknown token.
    pub async fn authenticate(&self, token: &str) -> Result<Runner> {
        sqlx::query_as!(
            Runner,
            "UPDATE runners SET last_seen_at = now() WHERE token_sha256 = $1
             RETURNING id, tenant_id, name, state, concurrency, sandbox, last_seen_at, created_at",
            hash(token)
        )
        .fetch_optional(self.outbox.pool())
        .await?
        .ok_or_else(|| Error::Unauthenticated("unknown runner token".into()))
    }

    /// Records what the runner says of itself.
    ///
    /// # Errors
    /// The database fails.
    pub async fn register(&self, runner: &Runner, concurrency: u32, sandbox: &str) -> Result<Runner> {
        let concurrency = i32::try_from(concurrency.clamp(1, 256)).unwrap_or(1);
        let sandbox: String = sandbox.chars().take(32).collect();
        Ok(sqlx::query_as!(
            Runner,
            "UPDATE runners SET concurrency = $2, sandbox = $3, last_seen_at = now() WHERE id = $1
             RETURNING id, tenant_id, name, state, concurrency, sandbox, last_seen_at, created_at",
            runner.id,
            concurrency,
            sandbox
        )
        .fetch_one(self.outbox.pool())
        .await?)
    }

    /// Hands the runner queued steps of its tenant, up to its free capacity.
    ///
    /// # Errors
    /// The database fails.
    pub async fn claim(&self, runner: Uuid) -> Result<Vec<Job>> {
        let mut tx = self.outbox.pool().begin().await?;
        let me = sqlx::query!(
            "SELECT tenant_id, state, concurrency,
                    (SELECT count(*) FROM steps WHERE runner_id = runners.id AND state = 'running') AS busy
             FROM runners WHERE id = $1 FOR UPDATE",
            runner
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::Unauthenticated("the runner was deleted".into()))?;
        let free = i64::from(me.concurrency) - me.busy.unwrap_or(0);
        if me.state != "active" || free <= 0 {
            return Ok(Vec::new());
        }
        let lease = LEASE.as_secs_f64();
        let rows = sqlx::query!(
            "UPDATE steps SET state = 'running', runner_id = $2, started_at = now(),
                    lease_until = now() + make_interval(secs => $4)
             WHERE id IN (SELECT s.id FROM steps s JOIN runs r ON r.id = s.run_id
                          WHERE s.tenant_id = $1 AND s.state = 'queued' AND r.state = 'running'
                          ORDER BY s.queued_at FOR UPDATE OF s SKIP LOCKED LIMIT $3)
             RETURNING id, run_id, attempt, spec, name,
                       (SELECT name FROM stages WHERE stages.id = steps.stage_id) AS stage",
            me.tenant_id,
            runner,
            free,
            lease,
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(run) = run::load(&mut *tx, row.run_id).await? else {
                continue;
            };
            let repository = sqlx::query_scalar!(
                "SELECT repository FROM pipelines WHERE id = $1 AND tenant_id = $2",
                run.pipeline_id,
                run.tenant_id
            )
            .fetch_one(&mut *tx)
            .await?;
            announce(&mut tx, &run, row.stage.as_deref(), Some(&row.name), "running").await?;
            jobs.push(Job {
                step_id: row.id,
                attempt: row.attempt,
                run_id: run.id,
                repository,
                git_ref: run.git_ref,
                commit: run.commit_sha,
                version: run.version,
                step: serde_json::from_value(row.spec).map_err(Error::internal)?,
                parameters: run.parameters,
            });
        }
        self.outbox.commit(tx).await?;
        Ok(jobs)
    }

    /// Renews the leases of the runner's steps; returns the asked steps the
    /// runner should stop (cancelled, or no longer its own).
    ///
    /// # Errors
    /// The database fails.
    pub async fn heartbeat(&self, runner: Uuid, steps: &[Uuid]) -> Result<Vec<Uuid>> {
        let lease = LEASE.as_secs_f64();
        let kept = sqlx::query_scalar!(
            "UPDATE steps SET lease_until = now() + make_interval(secs => $3)
             WHERE runner_id = $1 AND state = 'running' AND id = ANY($2) RETURNING id",
            runner,
            steps,
            lease
        )
        .fetch_all(self.outbox.pool())
        .await?;
        sqlx::query!("UPDATE runners SET last_seen_at = now() WHERE id = $1", runner)
            .execute(self.outbox.pool())
            .await?;
        Ok(steps.iter().filter(|s| !kept.contains(s)).copied().collect())
    }

    /// Appends output to the step's log, keeping the tail. Returns whether the
    /// runner should stop the step.
    ///
    /// # Errors
    /// The database fails.
    pub async fn append(&self, runner: Uuid, step: Uuid, attempt: i32, text: &str) -> Result<bool> {
        let added = i64::try_from(text.chars().count()).unwrap_or(i64::MAX);
        let lease = LEASE.as_secs_f64();
        let kept = sqlx::query_scalar!(
            "UPDATE steps SET log = right(log || $4, $5::int), log_length = log_length + $6,
                    lease_until = now() + make_interval(secs => $7)
             WHERE id = $1 AND runner_id = $2 AND attempt = $3 AND state = 'running' RETURNING id",
            step,
            runner,
            attempt,
            text,
            i32::try_from(LOG_LIMIT).unwrap_or(i32::MAX),
            added,
            lease,
        )
        .fetch_optional(self.outbox.pool())
        .await?;
        Ok(kept.is_none())
    }

    /// Records a step's end, if the runner still holds that attempt.
    ///
    /// # Errors
    /// The database fails.
    pub async fn finish(&self, runner: Uuid, step: Uuid, attempt: i32, outcome: Outcome) -> Result<()> {
        let mut tx = self.outbox.pool().begin().await?;
        let failures: Vec<serde_json::Value> = outcome
            .failures
            .iter()
            .take(100)
            .map(|(n, m)| serde_json::json!({"name": n, "message": m}))
            .collect();
        let (total, failed, skipped) = match outcome.tests {
            Some((t, f, s)) => (Some(t), Some(f), Some(s)),
            None => (None, None, None),
        };
        let to_i32 = |v: Option<u32>| v.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        let state = if outcome.succeeded { "succeeded" } else { "failed" };
        let message: String = outcome.message.chars().take(4096).collect();
        let row = sqlx::query!(
            "UPDATE steps SET state = $4, exit_code = $5, message = $6, tests_total = $7, tests_failed = $8,
                    tests_skipped = $9, test_failures = $10, finished_at = now(), lease_until = NULL,
                    image = $11, image_digest = $12
             WHERE id = $1 AND runner_id = $2 AND attempt = $3 AND state = 'running'
             RETURNING run_id, name, (SELECT name FROM stages WHERE stages.id = steps.stage_id) AS stage",
            step,
            runner,
            attempt,
            state,
            outcome.exit_code,
            message,
            to_i32(total),
            to_i32(failed),
            to_i32(skipped),
            serde_json::Value::Array(failures),
            outcome.image.chars().take(512).collect::<String>(),
            outcome.image_digest.chars().take(128).collect::<String>(),
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(());
        };
        if let Some(run) = run::load(&mut *tx, row.run_id).await? {
            announce(&mut tx, &run, row.stage.as_deref(), Some(&row.name), state).await?;
        }
        self.outbox.commit(tx).await?;
        // The run moves on now, and the freed slot takes the next queued step.
        self.wake.run(row.run_id);
        self.wake.dispatch.notify_waiters();
        Ok(())
    }
}

/// The commands and reports a job runs (run and test steps).
pub fn commands_of(step: &definition::Step) -> (Vec<String>, Vec<String>) {
    match &step.action {
        Action::Run { commands } => (commands.clone(), Vec::new()),
        Action::Test { commands, reports } => (commands.clone(), reports.clone()),
        _ => (Vec::new(), Vec::new()),
    }
}
