//! Notifications: people hear that a run failed, that an approval waits for
//! them, or that production was deployed, by webhook (a JSON POST signed with
//! HMAC-SHA256, like GitHub's `X-Hub-Signature-256`) or by e-mail over SMTP.
//!
//! Targets belong to a pipeline, or to a whole tenant. [`RunEvents`] listens
//! to devops' own `devops.run.*`/`devops.step.*` events (through the inbox,
//! so each event is looked at once) and writes one [`Notification`] row per
//! matching target in the same transaction; the [`Courier`] delivers the rows
//! and retries with backoff. The rows are the outbox of notifications: a
//! restart between the event and the delivery loses nothing, and a
//! notification is never written twice for the same event.
//!
//! When is production deployed? When a `deploy` step into the production
//! environment (or a step of a stage acting on production) succeeds; a run
//! of the production flow (a `v*` tag) whose pipeline has no such step counts
//! as deployed when it succeeds, so tag pipelines that deploy by other means
//! are covered too.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kernel::backoff::Backoff;
use kernel::caller::{Caller, Role};
use kernel::event::Event;
use kernel::inbox::Handler;
use kernel::settings::{Env, SettingError};
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::definition::{self, Environment, GitRef};
use crate::pipeline::Pipelines;

/// The subject filter of the events that may notify someone.
pub const SUBJECTS: &str = "devops.>";
/// Delivery attempts before a notification is given up (about a day with
/// the backoff below: a receiver down for a night still hears).
pub const MAX_ATTEMPTS: i32 = 20;
/// Retry waits: from 1 s doubling to two hours.
pub const BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(2 * 3600));
/// How long one delivery may take (a webhook answer, an SMTP dialogue).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the courier looks for due notifications. A poll rather than a
/// `LISTEN`: a listener would hold one of the service's few pooled
/// connections for good, and a second of delay is nothing to a person.
pub const POLL: Duration = Duration::from_secs(1);
/// Most targets per tenant: a bound on the fan-out of one event.
pub const MAX_TARGETS: i64 = 100;

/// `PAAS_SMTP_HOST`: the SMTP server e-mail notifications go through;
/// unset, e-mail targets are refused.
pub const SMTP_HOST: &str = "PAAS_SMTP_HOST";
/// `PAAS_SMTP_PORT`: its port (default [`SMTP_PORT_DEFAULT`]).
pub const SMTP_PORT: &str = "PAAS_SMTP_PORT";
/// 25: the relay port an internal mail server listens on.
pub const SMTP_PORT_DEFAULT: u16 = 25;
/// `PAAS_SMTP_FROM`: the sender address (default [`SMTP_FROM_DEFAULT`]).
pub const SMTP_FROM: &str = "PAAS_SMTP_FROM";
/// A sender that says what it is; operators set their own domain.
pub const SMTP_FROM_DEFAULT: &str = "paas@localhost";

/// Where e-mail goes out. Plain SMTP without authentication: the platform
/// hands mail to a relay inside its own network, which does the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Smtp {
    /// `host:port`; `None`: no e-mail.
    pub server: Option<String>,
    /// The sender address.
    pub from: String,
}

impl Smtp {
    /// Reads [`SMTP_HOST`], [`SMTP_PORT`] and [`SMTP_FROM`].
    ///
    /// # Errors
    /// A malformed port.
    pub fn from_env(env: &Env) -> Result<Self, SettingError> {
        let host = env.optional::<String>(SMTP_HOST)?.filter(|h| !h.is_empty());
        let port: u16 = env.or(SMTP_PORT, SMTP_PORT_DEFAULT)?;
        Ok(Self {
            server: host.map(|h| format!("{h}:{port}")),
            from: env.or(SMTP_FROM, SMTP_FROM_DEFAULT.to_string())?,
        })
    }
}

/// What a target is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occasion {
    /// A run failed.
    RunFailed,
    /// An approval step waits for people.
    ApprovalNeeded,
    /// Production was deployed.
    ProductionDeployed,
}

impl Occasion {
    /// All of them, as targets take them by default.
    pub const ALL: [Self; 3] = [Self::RunFailed, Self::ApprovalNeeded, Self::ProductionDeployed];

    /// The name the API and storage use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunFailed => "run.failed",
            Self::ApprovalNeeded => "approval.needed",
            Self::ProductionDeployed => "production.deployed",
        }
    }

    /// Parses a name; the error names `field`.
    ///
    /// # Errors
    /// An unknown name.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == raw)
            .ok_or_else(|| Error::invalid(field, "must be run.failed, approval.needed or production.deployed"))
    }

    fn subject(self) -> &'static str {
        match self {
            Self::RunFailed => "failed",
            Self::ApprovalNeeded => "waits for approval",
            Self::ProductionDeployed => "deployed to production",
        }
    }
}

/// Where a target delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A JSON POST to an `http(s)` URL.
    Webhook(url::Url),
    /// An e-mail to one address.
    Email(String),
}

/// A target as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTarget {
    /// Where.
    pub destination: Destination,
    /// On what (never empty).
    pub occasions: Vec<Occasion>,
}

impl NewTarget {
    /// Parses a request: `kind` `webhook` (with `url`) or `email` (with
    /// `address`); `events` empty means all of them.
    ///
    /// # Errors
    /// A bad field, named.
    pub fn parse(kind: &str, url: &str, address: &str, events: &[String]) -> Result<Self> {
        let destination = match kind {
            "webhook" => {
                let parsed = url::Url::parse(url.trim())
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                    .filter(|_| url.len() <= 2048)
                    .ok_or_else(|| Error::invalid("url", "must be an http(s) URL of at most 2048 characters"))?;
                Destination::Webhook(parsed)
            }
            "email" => Destination::Email(parse_address("address", address)?),
            _ => return Err(Error::invalid("kind", "must be webhook or email")),
        };
        let mut occasions = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let o = Occasion::parse(&format!("events[{i}]"), e)?;
            if !occasions.contains(&o) {
                occasions.push(o);
            }
        }
        if occasions.is_empty() {
            occasions = Occasion::ALL.to_vec();
        }
        Ok(Self { destination, occasions })
    }
}

/// An e-mail address as SMTP takes it: `local@domain`, nothing that could
/// break out of `RCPT TO:<...>` or a header.
fn parse_address(field: &str, raw: &str) -> Result<String> {
    let raw = raw.trim();
    let ok = raw.len() <= 254
        && raw.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && raw
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "@.!#$%&'*+/=?^_`{|}~-".contains(c))
        });
    if ok {
        Ok(raw.to_string())
    } else {
        Err(Error::invalid(field, "must be an e-mail address, local@domain"))
    }
}

/// A target as stored, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Target {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Its pipeline; `None`: every pipeline of the tenant.
    pub pipeline_id: Option<Uuid>,
    /// `webhook` or `email`.
    pub kind: String,
    /// A webhook's URL.
    pub url: String,
    /// An e-mail target's address.
    pub address: String,
    /// The occasions it hears of.
    pub events: Vec<String>,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// One notification and how its delivery goes.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Notification {
    /// Its id (also the webhook's `X-Paas-Delivery`).
    pub id: Uuid,
    /// Its target.
    pub target_id: Uuid,
    /// The run concerned.
    pub run_id: Uuid,
    /// The occasion.
    pub event: String,
    /// What is sent.
    pub payload: serde_json::Value,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts so far.
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Notification targets in the devops schema.
#[derive(Clone)]
pub struct Notifications {
    pool: PgPool,
    pipelines: Pipelines,
    email: bool,
}

impl Notifications {
    /// Targets in `pipelines`' schema; e-mail targets taken only when
    /// `email` (an SMTP server is configured).
    pub fn new(pool: PgPool, pipelines: Pipelines, email: bool) -> Self {
        Self { pool, pipelines, email }
    }

    /// Adds a target to a pipeline (developers of its tenant) or to a whole
    /// tenant (its administrators). A webhook's signing secret is returned
    /// here only.
    ///
    /// # Errors
    /// Not visible, not allowed, e-mail without an SMTP server, too many
    /// targets.
    pub async fn create(
        &self,
        caller: &Caller,
        tenant: Option<Uuid>,
        pipeline: Option<Uuid>,
        new: NewTarget,
    ) -> Result<(Target, String)> {
        let (tenant, pipeline) = match (tenant, pipeline) {
            (_, Some(p)) => {
                let p = self.pipelines.get(caller, p).await?;
                if tenant.is_some_and(|t| t != p.tenant_id) {
                    return Err(Error::invalid("tenant_id", "is not the pipeline's tenant"));
                }
                caller.require(p.tenant_id, Role::Developer, "pipeline", p.id)?;
                (p.tenant_id, Some(p.id))
            }
            (Some(t), None) => {
                caller.require(t, Role::TenantAdmin, "tenant", t)?;
                (t, None)
            }
            (None, None) => return Err(Error::invalid("pipeline_id", "a pipeline or a tenant is required")),
        };
        if matches!(new.destination, Destination::Email(_)) && !self.email {
            return Err(Error::FailedPrecondition(format!(
                "e-mail notifications need an SMTP server ({SMTP_HOST})"
            )));
        }
        let mut tx = self.pool.begin().await?;
        // Serialises creations per tenant, so the bound below holds.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 18))")
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM notification_targets WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await?;
        if count >= MAX_TARGETS {
            return Err(Error::ResourceExhausted(format!(
                "a tenant has at most {MAX_TARGETS} notification targets"
            )));
        }
        let (kind, url, address, secret) = match &new.destination {
            Destination::Webhook(u) => ("webhook", u.to_string(), String::new(), crate::trigger::secret()),
            Destination::Email(a) => ("email", String::new(), a.clone(), String::new()),
        };
        let events: Vec<&str> = new.occasions.iter().map(|o| o.as_str()).collect();
        let target = sqlx::query_as::<_, Target>(
            "INSERT INTO notification_targets (id, tenant_id, pipeline_id, kind, url, secret, address, events, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id, tenant_id, pipeline_id, kind, url, address, events, created_by, created_at"
        )
        .bind(id::new_id())
        .bind(tenant)
        .bind(pipeline)
        .bind(kind)
        .bind(url)
        .bind(&secret)
        .bind(address)
        .bind(&events)
        .bind(&caller.subject)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((target, secret))
    }

    /// The targets of a pipeline (with its tenant's), of a tenant, or (with
    /// neither) every target the caller can see.
    ///
    /// # Errors
    /// Not visible.
    pub async fn list(&self, caller: &Caller, tenant: Option<Uuid>, pipeline: Option<Uuid>) -> Result<Vec<Target>> {
        let (tenants, pipeline, every_pipeline) = match (tenant, pipeline) {
            (_, Some(p)) => {
                let p = self.pipelines.get(caller, p).await?;
                (Some(vec![p.tenant_id]), Some(p.id), false)
            }
            (Some(t), None) if caller.can_see(t) => (Some(vec![t]), None, false),
            (Some(t), None) => return Err(Error::not_found("tenant", t)),
            (None, None) => (caller.visible_tenants(), None, true),
        };
        Ok(sqlx::query_as::<_, Target>(
            "SELECT id, tenant_id, pipeline_id, kind, url, address, events, created_by, created_at FROM notification_targets
             WHERE ($1::uuid[] IS NULL OR tenant_id = ANY($1))
               AND ($3 OR pipeline_id IS NULL OR pipeline_id = $2) ORDER BY id"
        )
        .bind(tenants)
        .bind(pipeline)
        .bind(every_pipeline)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn visible(&self, caller: &Caller, id: Uuid) -> Result<Target> {
        sqlx::query_as::<_, Target>(
            "SELECT id, tenant_id, pipeline_id, kind, url, address, events, created_by, created_at FROM notification_targets
             WHERE id = $1 AND ($2::uuid[] IS NULL OR tenant_id = ANY($2))"
        )
        .bind(id)
        .bind(caller.visible_tenants())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::not_found("notification target", id))
    }

    /// Removes a target (its pending notifications with it).
    ///
    /// # Errors
    /// Not visible, not allowed.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let target = self.visible(caller, id).await?;
        let role = if target.pipeline_id.is_some() {
            Role::Developer
        } else {
            Role::TenantAdmin
        };
        caller.require(target.tenant_id, role, "notification target", id)?;
        sqlx::query("DELETE FROM notification_targets WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(target.tenant_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A target's newest notifications (at most 50), to see what was sent
    /// and why a delivery failed.
    ///
    /// # Errors
    /// Not visible.
    pub async fn sent(&self, caller: &Caller, target: Uuid) -> Result<Vec<Notification>> {
        let target = self.visible(caller, target).await?;
        Ok(sqlx::query_as::<_, Notification>(
            "SELECT id, target_id, run_id, event, payload, state, attempts, last_error, created_at, delivered_at
             FROM notifications WHERE target_id = $1 AND tenant_id = $2 ORDER BY created_at DESC, id DESC LIMIT 50",
        )
        .bind(target.id)
        .bind(target.tenant_id)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Writes the notifications devops' run events call for, in the inbox
/// transaction (once per event).
pub struct RunEvents;

#[derive(sqlx::FromRow)]
struct RunRow {
    pipeline_id: Uuid,
    pipeline: String,
    number: i64,
    git_ref: String,
    commit_sha: String,
    version: String,
    message: String,
    definition: Option<serde_json::Value>,
}

#[derive(sqlx::FromRow)]
struct StepRow {
    kind: String,
    spec: serde_json::Value,
    message: String,
}

impl Handler for RunEvents {
    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<()> {
        let Some(verb) = event.kind().strip_prefix("devops.") else {
            return Ok(());
        };
        if !matches!(verb, "run.failed" | "run.succeeded" | "step.waiting" | "step.succeeded") {
            return Ok(());
        }
        let changed: pb::PipelineRunChanged = event.payload()?;
        let (Ok(run_id), Ok(tenant)) = (changed.run_id.parse::<Uuid>(), changed.tenant_id.parse::<Uuid>()) else {
            return Err(Error::invalid("run_id", "not a run's event"));
        };
        let Some(run) = sqlx::query_as::<_, RunRow>(
            "SELECT r.pipeline_id, p.name AS pipeline, r.number, r.git_ref, r.commit_sha, r.version, r.message,
                    r.definition
             FROM runs r JOIN pipelines p ON p.id = r.pipeline_id AND p.tenant_id = r.tenant_id
             WHERE r.id = $1 AND r.tenant_id = $2",
        )
        .bind(run_id)
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?
        else {
            // The pipeline was deleted since: nobody to tell.
            return Ok(());
        };
        let step = if verb.starts_with("step.") {
            sqlx::query_as::<_, StepRow>(
                "SELECT s.kind, s.spec, s.message FROM steps s JOIN stages g ON g.id = s.stage_id
                 WHERE s.run_id = $1 AND s.tenant_id = $2 AND g.name = $3 AND s.name = $4",
            )
            .bind(run_id)
            .bind(tenant)
            .bind(&changed.stage)
            .bind(&changed.step)
            .fetch_optional(&mut *tx)
            .await?
        } else {
            None
        };
        let stage_environment = |stage: &str| -> Option<Environment> {
            let def: definition::Definition = serde_json::from_value(run.definition.clone()?).ok()?;
            def.stages.into_iter().find(|s| s.name == stage)?.environment
        };
        let occasion = match (verb, &step) {
            ("run.failed", _) => Some(Occasion::RunFailed),
            ("step.waiting", Some(s)) if s.kind == "approval" => Some(Occasion::ApprovalNeeded),
            ("step.succeeded", Some(s)) => {
                let target = deploys_to(&s.spec);
                let production = target == Some(Environment::Production)
                    || (s.kind == "deploy"
                        && target.is_none()
                        && stage_environment(&changed.stage) == Some(Environment::Production));
                production.then_some(Occasion::ProductionDeployed)
            }
            ("run.succeeded", _) => {
                let production_flow =
                    GitRef::parse("git_ref", &run.git_ref).is_ok_and(|r| r.flow() == definition::Flow::Production);
                let deploy_step = run.definition.as_ref().is_some_and(has_production_deploy);
                (production_flow && !deploy_step).then_some(Occasion::ProductionDeployed)
            }
            _ => None,
        };
        let Some(occasion) = occasion else {
            return Ok(());
        };
        let payload = json!({
            "event": occasion.as_str(),
            "tenant_id": tenant,
            "pipeline_id": run.pipeline_id,
            "pipeline": run.pipeline,
            "run_id": run_id,
            "run_number": run.number,
            "git_ref": run.git_ref,
            "commit": run.commit_sha,
            "version": run.version,
            "stage": changed.stage,
            "step": changed.step,
            "message": step.as_ref().map_or(run.message.clone(), |s| s.message.clone()),
            "time": Utc::now().to_rfc3339(),
        });
        let written = sqlx::query(
            "INSERT INTO notifications (id, tenant_id, target_id, run_id, event, cause, payload)
             SELECT gen_random_uuid(), t.tenant_id, t.id, $3, $4, $5, $6 FROM notification_targets t
             WHERE t.tenant_id = $1 AND (t.pipeline_id IS NULL OR t.pipeline_id = $2) AND $4 = ANY(t.events)
             ON CONFLICT (target_id, cause, event) DO NOTHING",
        )
        .bind(tenant)
        .bind(run.pipeline_id)
        .bind(run_id)
        .bind(occasion.as_str())
        .bind(event.id())
        .bind(&payload)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if written > 0 {
            tracing::debug!(run = %run_id, occasion = occasion.as_str(), written, "notifications written");
        }
        Ok(())
    }
}

/// The environment a step deploys to, if it is a deploy step.
fn deploys_to(spec: &serde_json::Value) -> Option<Environment> {
    let step: definition::Step = serde_json::from_value(spec.clone()).ok()?;
    match step.action {
        definition::Action::Deploy { environment } => Some(environment),
        _ => None,
    }
}

/// Whether a planned definition deploys to production in a step of its own.
fn has_production_deploy(definition: &serde_json::Value) -> bool {
    serde_json::from_value::<definition::Definition>(definition.clone()).is_ok_and(|d| {
        d.stages.iter().any(|s| {
            s.steps.iter().any(|step| match step.action {
                definition::Action::Deploy { environment } => {
                    environment == Environment::Production || (s.environment == Some(Environment::Production))
                }
                _ => false,
            })
        })
    })
}

/// Delivers pending notifications, retrying failures with [`BACKOFF`].
#[derive(Clone)]
pub struct Courier {
    pool: PgPool,
    smtp: Smtp,
    http: reqwest::Client,
}

#[derive(sqlx::FromRow)]
struct Due {
    id: Uuid,
    event: String,
    payload: serde_json::Value,
    attempts: i32,
    kind: String,
    url: String,
    secret: String,
    address: String,
}

impl Courier {
    /// A courier over `pool`, mailing through `smtp`.
    ///
    /// # Errors
    /// The HTTP client cannot be built (no TLS roots).
    pub fn new(pool: PgPool, smtp: Smtp) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(Error::internal)?;
        Ok(Self { pool, smtp, http })
    }

    /// Delivers until `stop`, looking every [`POLL`].
    ///
    /// # Errors
    /// Never: failures are logged and retried.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        loop {
            if let Err(e) = self.deliver_due().await {
                tracing::warn!(error = %e, "notifications: delivery pass failed; retrying");
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Delivers every due notification, a few at once.
    ///
    /// # Errors
    /// The database fails.
    pub async fn deliver_due(&self) -> Result<()> {
        loop {
            // Claimed by moving the next attempt past the delivery timeout:
            // another replica skips it meanwhile, and a crash retries it.
            let due = sqlx::query_as::<_, Due>(
                "UPDATE notifications n SET attempts = n.attempts + 1,
                        next_attempt_at = now() + make_interval(secs => $1)
                 FROM notification_targets t
                 WHERE t.id = n.target_id AND n.id IN (
                     SELECT id FROM notifications WHERE state = 'pending' AND next_attempt_at <= now()
                     ORDER BY next_attempt_at LIMIT 8 FOR UPDATE SKIP LOCKED)
                 RETURNING n.id, n.event, n.payload, n.attempts, t.kind, t.url, t.secret, t.address",
            )
            .bind(DELIVERY_TIMEOUT.as_secs_f64() * 2.0)
            .fetch_all(&self.pool)
            .await?;
            if due.is_empty() {
                return Ok(());
            }
            let results = futures::future::join_all(due.iter().map(|d| self.deliver(d))).await;
            for (d, result) in due.iter().zip(results) {
                self.record(d, result).await?;
            }
        }
    }

    async fn deliver(&self, due: &Due) -> Result<(), String> {
        let body = serde_json::to_vec(&due.payload).map_err(|e| e.to_string())?;
        match due.kind.as_str() {
            "webhook" => {
                let answer = self
                    .http
                    .post(&due.url)
                    .header("content-type", "application/json")
                    .header("user-agent", "paas-devops")
                    .header("x-paas-event", &due.event)
                    .header("x-paas-delivery", due.id.to_string())
                    .header("x-paas-signature-256", crate::webhook::sign(&due.secret, &body))
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| format!("POST {}: {e}", due.url))?;
                if answer.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("POST {} answered {}", due.url, answer.status()))
                }
            }
            "email" => {
                let server = self
                    .smtp
                    .server
                    .as_deref()
                    .ok_or_else(|| format!("no SMTP server ({SMTP_HOST}) is configured"))?;
                let mail = Mail::about(due, &self.smtp.from);
                tokio::time::timeout(DELIVERY_TIMEOUT, send_mail(server, &mail))
                    .await
                    .map_err(|_| format!("SMTP {server}: no answer within {DELIVERY_TIMEOUT:?}"))?
            }
            other => Err(format!("unknown target kind {other}")),
        }
    }

    async fn record(&self, due: &Due, result: Result<(), String>) -> Result<()> {
        match result {
            Ok(()) => {
                sqlx::query(
                    "UPDATE notifications SET state = 'delivered', delivered_at = now(), last_error = '' WHERE id = $1",
                )
                .bind(due.id)
                .execute(&self.pool)
                .await?;
            }
            Err(why) => {
                let give_up = due.attempts >= MAX_ATTEMPTS;
                tracing::warn!(notification = %due.id, attempt = due.attempts, give_up, error = %why, "notification not delivered");
                let wait = BACKOFF.delay(u32::try_from(due.attempts - 1).unwrap_or(0));
                sqlx::query(
                    "UPDATE notifications SET state = CASE WHEN $2 THEN 'failed' ELSE 'pending' END,
                            last_error = $3, next_attempt_at = now() + make_interval(secs => $4)
                     WHERE id = $1",
                )
                .bind(due.id)
                .bind(give_up)
                .bind(why)
                .bind(wait.as_secs_f64())
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }
}

/// A plain-text e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The sender.
    pub from: String,
    /// The recipient.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The text.
    pub body: String,
}

impl Mail {
    fn about(due: &Due, from: &str) -> Self {
        let p = &due.payload;
        let field = |k: &str| match &p[k] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        let occasion = Occasion::parse("event", &due.event).unwrap_or(Occasion::RunFailed);
        let subject = format!(
            "[paas] {} #{} ({}) {}",
            field("pipeline"),
            field("run_number"),
            field("version"),
            occasion.subject()
        );
        let mut body = format!(
            "Pipeline {} run #{} {}.\n\nref:     {}\ncommit:  {}\nversion: {}\nrun:     {}\n",
            field("pipeline"),
            field("run_number"),
            occasion.subject(),
            field("git_ref"),
            field("commit"),
            field("version"),
            field("run_id"),
        );
        if !field("step").is_empty() {
            body.push_str(&format!("step:    {}/{}\n", field("stage"), field("step")));
        }
        if !field("message").is_empty() {
            body.push_str(&format!("\n{}\n", field("message")));
        }
        Self {
            from: from.to_string(),
            to: due.address.clone(),
            subject,
            body,
        }
    }

    /// The message as sent in SMTP's DATA: CRLF lines, dot-stuffed, headers
    /// stripped of line breaks.
    pub fn to_data(&self, id: &str) -> String {
        let clean = |s: &str| s.replace(['\r', '\n'], " ");
        let mut data = format!(
            "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{id}@paas>\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
            clean(&self.from),
            clean(&self.to),
            clean(&self.subject),
            Utc::now().to_rfc2822(),
        );
        for line in self.body.lines() {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        data
    }
}

/// One SMTP conversation.
struct Dialogue<'a> {
    server: &'a str,
    read: BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl Dialogue<'_> {
    /// Reads one reply (`250-...` lines continue it, `250 ...` ends it) and
    /// checks its code.
    async fn expect(&mut self, code: &str) -> Result<(), String> {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            let n = self
                .read
                .read_line(&mut line)
                .await
                .map_err(|e| format!("SMTP {}: {e}", self.server))?;
            if n == 0 {
                return Err(format!("SMTP {}: connection closed after {reply:?}", self.server));
            }
            reply.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                break;
            }
        }
        if reply.starts_with(code) {
            Ok(())
        } else {
            Err(format!(
                "SMTP {}: expected {code}, got {}",
                self.server,
                reply.trim_end()
            ))
        }
    }

    async fn say(&mut self, text: &str, code: &str) -> Result<(), String> {
        self.write
            .write_all(text.as_bytes())
            .await
            .map_err(|e| format!("SMTP {}: {e}", self.server))?;
        self.expect(code).await
    }
}

/// Sends one mail over plain SMTP (RFC 5321: EHLO, MAIL, RCPT, DATA, QUIT).
///
/// # Errors
/// The server cannot be reached or refuses a command (the reply is quoted).
pub async fn send_mail(server: &str, mail: &Mail) -> Result<(), String> {
    let stream = TcpStream::connect(server)
        .await
        .map_err(|e| format!("SMTP {server}: {e}"))?;
    let (read, write) = stream.into_split();
    let mut smtp = Dialogue {
        server,
        read: BufReader::new(read),
        write,
    };
    smtp.expect("220").await?;
    smtp.say("EHLO paas\r\n", "250").await?;
    smtp.say(&format!("MAIL FROM:<{}>\r\n", mail.from), "250").await?;
    smtp.say(&format!("RCPT TO:<{}>\r\n", mail.to), "250").await?;
    smtp.say("DATA\r\n", "354").await?;
    let id = Uuid::now_v7().to_string();
    smtp.say(&format!("{}.\r\n", mail.to_data(&id)), "250").await?;
    // The mail is accepted; a lost goodbye changes nothing.
    let _ = smtp.say("QUIT\r\n", "221").await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_bad_fields_are_named() {
        let t = NewTarget::parse("webhook", "https://hooks.example.com/x", "", &[]).unwrap();
        assert_eq!(t.occasions, Occasion::ALL.to_vec());
        let t = NewTarget::parse(
            "email",
            "",
            "ops@example.com",
            &["run.failed".into(), "run.failed".into()],
        )
        .unwrap();
        assert_eq!(t.destination, Destination::Email("ops@example.com".into()));
        assert_eq!(t.occasions, [Occasion::RunFailed]);
        let field = |r: Result<NewTarget>| r.unwrap_err().field().map(str::to_string);
        assert_eq!(field(NewTarget::parse("pager", "", "", &[])).as_deref(), Some("kind"));
        assert_eq!(
            field(NewTarget::parse("webhook", "ftp://x", "", &[])).as_deref(),
            Some("url")
        );
        assert_eq!(
            field(NewTarget::parse("email", "", "a@b>\r\nRCPT TO:<c@d", &[])).as_deref(),
            Some("address")
        );
        assert_eq!(
            field(NewTarget::parse("email", "", "nobody", &[])).as_deref(),
            Some("address")
        );
        assert_eq!(
            field(NewTarget::parse("email", "", "a@b.c", &["run.started".into()])).as_deref(),
            Some("events[0]")
        );
    }

    #[test]
    fn mail_data_is_dot_stuffed_and_headers_stay_on_one_line() {
        let mail = Mail {
            from: "paas@localhost".into(),
            to: "ops@example.com".into(),
            subject: "two\r\nBcc: evil@example.com".into(),
            body: "first\n.hidden\nlast".into(),
        };
        let data = mail.to_data("1");
        assert!(data.contains("Subject: two  Bcc: evil@example.com\r\n"), "{data}");
        assert!(data.contains("\r\n..hidden\r\n"), "{data}");
        assert!(data.ends_with("last\r\n"));
    }

    #[test]
    fn production_deploys_are_read_from_the_plan() {
        let yaml = concat!(
            "environments:\n  production: {application: shop}\n",
            "stages:\n",
            "  - name: build\n    steps:\n      - name: compile\n        kind: run\n        commands: [make]\n",
            "  - name: production\n    environment: production\n    steps:\n      - name: ship\n        kind: deploy\n",
        );
        let def = definition::Definition::parse("definition", yaml).unwrap();
        assert!(has_production_deploy(&serde_json::to_value(&def).unwrap()));
        let ship = serde_json::to_value(&def.stages[1].steps[0]).unwrap();
        assert_eq!(deploys_to(&ship), Some(Environment::Production));
        let compile = serde_json::to_value(&def.stages[0].steps[0]).unwrap();
        assert_eq!(deploys_to(&compile), None);
        let build_only =
            definition::Definition::parse("definition", &yaml[..yaml.find("  - name: production").unwrap()]).unwrap();
        assert!(!has_production_deploy(&serde_json::to_value(&build_only).unwrap()));
    }
}
