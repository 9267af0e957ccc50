//! What starts runs: webhook endpoints (verified, deduplicated by delivery
//! id, every refusal recorded), manual runs with parameters, and the
//! schedules of a definition (see [`crate::conductor`]). A trigger only
//! queues the run and answers; planning and execution happen behind it, so a
//! Git server gets its answer well within its delivery timeout.

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::outbox::Outbox;
use kernel::{Error, Result, id};
use rand::RngCore;
use uuid::Uuid;

use crate::conductor::Wake;
use crate::definition::{Definition, GitRef};
use crate::pipeline::{Pipeline, Pipelines};
use crate::run::{self, Run, Trigger};
use crate::webhook::{self, Change, Format};

/// The largest delivery body taken: Git servers cap pushes' payloads well
/// below this (GitHub at 25 MB, but real pushes are a few KB).
pub const MAX_BODY: usize = 1024 * 1024;

/// A webhook endpoint as stored (without its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its id (part of its URL).
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// The pipeline it starts.
    pub pipeline_id: Uuid,
    /// `gitlab` or `github`.
    pub format: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A run was queued.
    Queued(Uuid),
    /// The delivery id was seen before; its run (if any) is not started again.
    Duplicate(Option<Uuid>),
    /// Nothing for a pipeline to do (a ping, a deleted branch).
    Ignored(String),
}

/// Triggers in the devops schema.
#[derive(Clone)]
pub struct Triggers {
    outbox: Outbox,
    pipelines: Pipelines,
    wake: Wake,
}

pub(crate) fn secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Triggers {
    /// Triggers over the outbox's schema, waking the conductor on new runs.
    pub fn new(outbox: Outbox, wake: Wake) -> Self {
        Self {
            pipelines: Pipelines::new(outbox.clone()),
            outbox,
            wake,
        }
    }

    /// Creates a webhook endpoint for a pipeline; the secret is returned here
    /// only. Developers of the tenant.
    ///
    /// # Errors
    /// Not visible or not allowed.
    pub async fn create_webhook(&self, caller: &Caller, pipeline: Uuid, format: Format) -> Result<(Webhook, String)> {
        let p = self.pipelines.get(caller, pipeline).await?;
        caller.require(p.tenant_id, Role::Developer, "pipeline", pipeline)?;
        let secret = secret();
        let row = sqlx::query!(
            "INSERT INTO webhooks (id, tenant_id, pipeline_id, format, secret) VALUES ($1, $2, $3, $4, $5)
             RETURNING id, tenant_id, pipeline_id, format, created_at",
            id::new_id(),
            p.tenant_id,
            p.id,
            format.as_str(),
            secret,
        )
        .fetch_one(self.outbox.pool())
        .await?;
        let hook = Webhook {
            id: row.id,
            tenant_id: row.tenant_id,
            pipeline_id: row.pipeline_id,
            format: row.format,
            created_at: row.created_at,
        };
        Ok((hook, secret))
    }

    /// A pipeline's webhook endpoints.
    ///
    /// # Errors
    /// Not visible.
    pub async fn webhooks(&self, caller: &Caller, pipeline: Uuid) -> Result<Vec<Webhook>> {
        let p = self.pipelines.get(caller, pipeline).await?;
        let rows = sqlx::query!(
            "SELECT id, tenant_id, pipeline_id, format, created_at FROM webhooks
             WHERE pipeline_id = $1 AND tenant_id = $2 ORDER BY id",
            p.id,
            p.tenant_id
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Webhook {
                id: r.id,
                tenant_id: r.tenant_id,
                pipeline_id: r.pipeline_id,
                format: r.format,
                created_at: r.created_at,
            })
            .collect())
    }

    /// Takes a delivery as the Git server sent it. The hook's id and secret
    /// are the credentials; the caller is the gateway.
    ///
    /// # Errors
    /// Unknown hook (not found); a bad or missing signature (unauthenticated,
    /// and recorded); a malformed body (invalid, naming the field).
    pub async fn deliver(&self, hook: Uuid, headers: &[(&str, &str)], body: &[u8]) -> Result<Outcome> {
        if body.len() > MAX_BODY {
            return Err(Error::invalid("body", format!("must be at most {MAX_BODY} bytes")));
        }
        let row = sqlx::query!(
            "SELECT w.tenant_id, w.format, w.secret, w.pipeline_id FROM webhooks w WHERE w.id = $1",
            hook
        )
        .fetch_optional(self.outbox.pool())
        .await?
        .ok_or_else(|| Error::not_found("webhook", hook))?;
        let format = Format::parse("format", &row.format)?;
        let claimed_id = headers
            .iter()
            .find(|(k, _)| {
                ["x-gitlab-event-uuid", "x-github-delivery", "x-gitea-delivery"]
                    .iter()
                    .any(|h| k.eq_ignore_ascii_case(h))
            })
            .map(|(_, v)| v.chars().take(128).collect::<String>())
            .unwrap_or_default();
        if let Err(refusal) = webhook::verify(format, &row.secret, headers, body) {
            sqlx::query!(
                "INSERT INTO deliveries (id, tenant_id, webhook_id, delivery_id, event, outcome, reason)
                 VALUES ($1, $2, $3, $4, '', 'refused', $5)",
                id::new_id(),
                row.tenant_id,
                hook,
                claimed_id,
                refusal.to_string(),
            )
            .execute(self.outbox.pool())
            .await?;
            tracing::warn!(webhook = %hook, reason = %refusal, "webhook delivery refused");
            return Err(Error::Unauthenticated(refusal.to_string()));
        }
        let delivery = webhook::read(format, headers, body)?;
        let mut tx = self.outbox.pool().begin().await?;
        let (outcome, reason) = match &delivery.change {
            Change::Push { .. } => ("queued", String::new()),
            Change::Deleted { git_ref } => ("ignored", format!("{} was deleted", git_ref.full())),
            Change::Merged { git_ref } => ("ignored", format!("{} was merged", git_ref.full())),
            Change::Ignored(what) => ("ignored", format!("{what} starts no run")),
        };
        let inserted = sqlx::query_scalar!(
            "INSERT INTO deliveries (id, tenant_id, webhook_id, delivery_id, event, outcome, reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (webhook_id, delivery_id) WHERE outcome <> 'refused' DO NOTHING RETURNING id",
            id::new_id(),
            row.tenant_id,
            hook,
            delivery.id,
            delivery.event,
            outcome,
            reason,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(delivery_row) = inserted else {
            let earlier = sqlx::query_scalar!(
                "SELECT run_id FROM deliveries WHERE webhook_id = $1 AND delivery_id = $2 AND outcome <> 'refused'",
                hook,
                delivery.id
            )
            .fetch_optional(&mut *tx)
            .await?
            .flatten();
            return Ok(Outcome::Duplicate(earlier));
        };
        if let Change::Deleted { git_ref } | Change::Merged { git_ref } = &delivery.change
            && matches!(git_ref.flow(), crate::definition::Flow::Feature(_))
        {
            // The branch's own environment goes with it (the conductor deletes its application).
            crate::environment::retire(&mut tx, row.tenant_id, row.pipeline_id, git_ref.name(), &reason).await?;
            self.wake.conductor.notify_one();
        }
        let Change::Push { git_ref, commit } = delivery.change else {
            tx.commit().await?;
            return Ok(Outcome::Ignored(reason));
        };
        let pipeline = pipeline_row(&mut tx, row.pipeline_id, row.tenant_id).await?;
        let trigger = Trigger {
            kind: "webhook",
            by: format!("webhook:{hook}"),
            git_ref,
            commit: Some(commit),
            parameters: Default::default(),
        };
        let run = run::enqueue(&mut tx, &pipeline, trigger).await?;
        sqlx::query!("UPDATE deliveries SET run_id = $2 WHERE id = $1", delivery_row, run.id)
            .execute(&mut *tx)
            .await?;
        self.outbox.commit(tx).await?;
        self.wake.run(run.id);
        Ok(Outcome::Queued(run.id))
    }

    /// Starts a run by hand. Developers of the tenant.
    ///
    /// # Errors
    /// Not visible, not allowed, or bad parameters.
    pub async fn start(
        &self,
        caller: &Caller,
        pipeline: Uuid,
        git_ref: GitRef,
        commit: Option<String>,
        parameters: std::collections::BTreeMap<String, String>,
    ) -> Result<Run> {
        let p = self.pipelines.get(caller, pipeline).await?;
        caller.require(p.tenant_id, Role::Developer, "pipeline", pipeline)?;
        let parameters = run::parse_parameters(parameters)?;
        let mut tx = self.outbox.pool().begin().await?;
        let trigger = Trigger {
            kind: "manual",
            by: caller.subject.clone(),
            git_ref,
            commit,
            parameters,
        };
        let run = run::enqueue(&mut tx, &p, trigger).await?;
        self.outbox.commit(tx).await?;
        self.wake.run(run.id);
        Ok(run)
    }

    /// Keeps a pipeline's next scheduled run in step with its definition.
    ///
    /// # Errors
    /// The database fails.
    pub async fn reschedule(&self, pipeline: &Pipeline) -> Result<()> {
        let next = pipeline
            .definition
            .as_deref()
            .and_then(|d| Definition::parse("definition", d).ok())
            .as_ref()
            .and_then(crate::conductor::next_schedule);
        sqlx::query!(
            "UPDATE pipelines SET next_schedule_at = $3 WHERE id = $1 AND tenant_id = $2",
            pipeline.id,
            pipeline.tenant_id,
            next
        )
        .execute(self.outbox.pool())
        .await?;
        Ok(())
    }
}

/// A commit id as a manual run names it: 40 or 64 hex digits.
///
/// # Errors
/// Anything else, naming `commit`.
pub fn parse_commit(raw: &str) -> Result<Option<String>> {
    if raw.is_empty() {
        return Ok(None);
    }
    let ok = (raw.len() == 40 || raw.len() == 64) && raw.chars().all(|c| c.is_ascii_hexdigit());
    if ok {
        Ok(Some(raw.to_ascii_lowercase()))
    } else {
        Err(Error::invalid("commit", "must be a full Git commit id"))
    }
}

async fn pipeline_row(tx: &mut sqlx::PgConnection, id: Uuid, tenant: Uuid) -> Result<Pipeline> {
    sqlx::query_as!(
        Pipeline,
        "SELECT id, tenant_id, name, repository, created_at, application_id, definition, definition_source, builds
         FROM pipelines WHERE id = $1 AND tenant_id = $2",
        id,
        tenant
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::not_found("pipeline", id))
}
