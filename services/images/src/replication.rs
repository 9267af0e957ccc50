//! Replication rules and runs: which of a tenant's repositories go to which
//! sub-registries (those of the data centres and clusters where the tenant
//! has partitions, never another's), and when: on push, on a schedule, or
//! by hand. Each trigger becomes a run, persisted with one item per
//! repository, tag and target registry, in the same transaction as what
//! caused it; [`crate::replicator`] executes runs. A run survives restarts:
//! a worker leases it, and a lapsed lease (a crash) lets another take it up,
//! skipping items already copied.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::event::EventType;
use kernel::name::DnsLabel;
use kernel::outbox::{self, Outbox};
use kernel::page::Page;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::registry::Registries;
use crate::tenancy::Tenancy;

/// `images.replication.created`: a rule was created.
pub const RULE_CREATED: EventType = EventType::new("images", "replication", "created");
/// `images.replication.updated`
pub const RULE_UPDATED: EventType = EventType::new("images", "replication", "updated");
/// `images.replication.deleted`
pub const RULE_DELETED: EventType = EventType::new("images", "replication", "deleted");
/// `images.replication.queued`: a run was created.
pub const RUN_QUEUED: EventType = EventType::new("images", "replication", "queued");
/// `images.replication.started`: a worker took a run up.
pub const RUN_STARTED: EventType = EventType::new("images", "replication", "started");
/// `images.replication.succeeded`: every item of a run is copied.
pub const RUN_SUCCEEDED: EventType = EventType::new("images", "replication", "succeeded");
/// `images.replication.failed`: a run gave up after its last attempt.
pub const RUN_FAILED: EventType = EventType::new("images", "replication", "failed");

/// Attempts of a run before it is given up: with backoff capped at
/// [`MAX_BACKOFF`], about an hour of a target being down.
pub const MAX_ATTEMPTS: i32 = 60;
/// The longest wait between two attempts of a run.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The shortest interval of an `every` schedule: more often is a push rule's job.
const MIN_INTERVAL: Duration = Duration::from_secs(10);

/// A glob over repository names (`<tenant>/<project>/<name>`): `*` matches
/// within one path segment, `**` across segments, anything else itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryPattern(String);

impl RepositoryPattern {
    /// Validates a raw pattern; errors name `field`.
    ///
    /// # Errors
    /// Empty, too long, or characters a repository name cannot hold.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 255 {
            return Err(Error::invalid(field, "must be 1 to 255 characters"));
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/*".contains(c))
        {
            return Err(Error::invalid(
                field,
                "may hold lower-case letters, digits, '.', '_', '-', '/' and the wildcards '*' and '**'",
            ));
        }
        Ok(Self(raw.to_string()))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p {
        [] => s.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        [b'*', rest @ ..] => {
            let segment = s.iter().position(|&c| c == b'/').unwrap_or(s.len());
            (0..=segment).any(|i| glob(rest, &s[i..]))
        }
        [c, rest @ ..] => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// When a rule runs besides on push: never, at a fixed interval, or by cron.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Only on push and by hand.
    Never,
    /// `every 30s`, `every 5m`, `every 2h`.
    Every(Duration),
    /// Five cron fields or a nickname (`@hourly`), in UTC.
    Cron(Box<croner::Cron>),
}

impl Schedule {
    /// Parses the API's form; errors name `field`.
    ///
    /// # Errors
    /// Neither empty, `every <n><s|m|h>` nor a cron expression.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(Self::Never);
        }
        if let Some(every) = raw.strip_prefix("every ") {
            let every = every.trim();
            let (n, unit) = every.split_at(every.len().saturating_sub(1));
            let n: u64 = n
                .parse()
                .map_err(|_| Error::invalid(field, "must be `every <n>s`, `every <n>m` or `every <n>h`"))?;
            let seconds = match unit {
                "s" => n,
                "m" => n.saturating_mul(60),
                "h" => n.saturating_mul(3600),
                _ => return Err(Error::invalid(field, "the interval's unit must be s, m or h")),
            };
            let interval = Duration::from_secs(seconds);
            if interval < MIN_INTERVAL {
                return Err(Error::invalid(field, "the interval must be at least 10s"));
            }
            return Ok(Self::Every(interval));
        }
        use croner::parser::{CronParser, Seconds};
        let fields = raw.split_whitespace().count();
        if !raw.starts_with('@') && fields != 5 {
            return Err(Error::invalid(
                field,
                format!("a cron schedule has 5 fields, found {fields}"),
            ));
        }
        CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(raw)
            .map(|c| Self::Cron(Box::new(c)))
            .map_err(|e| Error::invalid(field, e.to_string()))
    }

    /// The first time after `now` it is due, if ever.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Never => None,
            Self::Every(d) => chrono::Duration::from_std(*d).ok().map(|d| now + d),
            Self::Cron(c) => c.find_next_occurrence(&now, false).ok(),
        }
    }
}

/// A validated rule, new or replacing a rule's settings.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    repositories: RepositoryPattern,
    registry_ids: Vec<Uuid>,
    on_push: bool,
    schedule_raw: String,
    schedule: Schedule,
    enabled: bool,
}

impl RuleSpec {
    /// Validates raw input; errors name the field.
    ///
    /// # Errors
    /// A field is malformed, or no target registry is named.
    pub fn parse(
        repositories: &str,
        registry_ids: &[String],
        on_push: bool,
        schedule: &str,
        enabled: bool,
    ) -> Result<Self> {
        if registry_ids.is_empty() {
            return Err(Error::invalid("registry_ids", "must name at least one registry"));
        }
        if registry_ids.len() > 32 {
            return Err(Error::invalid("registry_ids", "at most 32 registries"));
        }
        let mut ids = Vec::new();
        for raw in registry_ids {
            let id = Uuid::parse_str(raw.trim())
                .map_err(|_| Error::invalid("registry_ids", format!("{raw} is not an id")))?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(Self {
            repositories: RepositoryPattern::parse("repositories", repositories)?,
            registry_ids: ids,
            on_push,
            schedule_raw: schedule.trim().to_string(),
            schedule: Schedule::parse("schedule", schedule)?,
            enabled,
        })
    }
}

/// How a rule is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleStatus {
    /// Its latest run.
    pub last_run_id: Option<Uuid>,
    /// That run's state.
    pub last_run_state: String,
    /// When a run of it last succeeded.
    pub last_succeeded_at: Option<DateTime<Utc>>,
    /// Items of unfinished runs not yet copied.
    pub pending_items: i64,
    /// Age of its oldest unfinished run: how far the targets lag behind.
    pub lag_seconds: i64,
    /// When its schedule next runs it.
    pub next_scheduled_at: Option<DateTime<Utc>>,
}

/// A rule as stored, with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// DNS label, unique in the tenant.
    pub name: String,
    /// The repository glob.
    pub repositories: String,
    /// Target registries.
    pub registry_ids: Vec<Uuid>,
    /// Runs on each push of a matching repository.
    pub on_push: bool,
    /// The schedule as written.
    pub schedule: String,
    /// Whether it runs at all.
    pub enabled: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// How it is doing.
    pub status: RuleStatus,
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    repositories: String,
    registry_ids: Vec<Uuid>,
    on_push: bool,
    schedule: String,
    enabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    next_run_at: Option<DateTime<Utc>>,
    last_run_id: Option<Uuid>,
    last_run_state: Option<String>,
    last_succeeded_at: Option<DateTime<Utc>>,
    pending_items: i64,
    lag_seconds: Option<i64>,
}

impl From<RuleRow> for Rule {
    fn from(r: RuleRow) -> Self {
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            name: r.name,
            repositories: r.repositories,
            registry_ids: r.registry_ids,
            on_push: r.on_push,
            schedule: r.schedule,
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
            status: RuleStatus {
                last_run_id: r.last_run_id,
                last_run_state: r.last_run_state.unwrap_or_default(),
                last_succeeded_at: r.last_succeeded_at,
                pending_items: r.pending_items,
                lag_seconds: r.lag_seconds.unwrap_or(0).max(0),
                next_scheduled_at: r.next_run_at,
            },
        }
    }
}

/// Every rule read selects its status beside it (a macro, so queries stay literals).
macro_rules! select_rules {
    () => {
        "SELECT ru.id, ru.tenant_id, ru.name, ru.repositories, ru.registry_ids, ru.on_push, ru.schedule, \
         ru.enabled, ru.created_at, ru.updated_at, ru.next_run_at, \
         (SELECT id FROM replication_runs WHERE rule_id = ru.id ORDER BY created_at DESC, id DESC LIMIT 1) \
           AS last_run_id, \
         (SELECT state FROM replication_runs WHERE rule_id = ru.id ORDER BY created_at DESC, id DESC LIMIT 1) \
           AS last_run_state, \
         (SELECT max(finished_at) FROM replication_runs WHERE rule_id = ru.id AND state = 'succeeded') \
           AS last_succeeded_at, \
         (SELECT count(*) FROM replication_items i JOIN replication_runs x ON x.id = i.run_id \
           WHERE x.rule_id = ru.id AND x.state IN ('queued', 'running') AND i.state <> 'copied') AS pending_items, \
         (SELECT extract(epoch FROM now() - min(created_at))::bigint FROM replication_runs \
           WHERE rule_id = ru.id AND state IN ('queued', 'running')) AS lag_seconds \
         FROM replication_rules ru "
    };
}

/// One item of a run: a tag to copy to one registry.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Item {
    /// Its id.
    pub id: Uuid,
    /// The target registry.
    pub registry_id: Uuid,
    /// The repository (the same name at source and target).
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The image's digest at the source when the run was made.
    pub digest: String,
    /// pending, copied, failed.
    pub state: String,
    /// Bytes streamed for it.
    pub bytes: i64,
    /// Why it failed last.
    pub error: String,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Run {
    /// Its id.
    pub id: Uuid,
    /// Its rule.
    pub rule_id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// push, schedule, manual.
    pub trigger: String,
    /// queued, running, succeeded, failed.
    pub state: String,
    /// Attempts so far.
    pub attempts: i32,
    /// Items.
    pub items_total: i64,
    /// Items copied.
    pub items_copied: i64,
    /// Items failed at the last attempt.
    pub items_failed: i64,
    /// Bytes streamed.
    pub bytes: i64,
    /// Why it failed, or what it last met.
    pub message: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// First taken up.
    pub started_at: Option<DateTime<Utc>>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
}

macro_rules! select_runs {
    () => {
        "SELECT x.id, x.rule_id, x.tenant_id, x.trigger, x.state, x.attempts, \
         (SELECT count(*) FROM replication_items WHERE run_id = x.id) AS items_total, \
         (SELECT count(*) FROM replication_items WHERE run_id = x.id AND state = 'copied') AS items_copied, \
         (SELECT count(*) FROM replication_items WHERE run_id = x.id AND state = 'failed') AS items_failed, \
         (SELECT coalesce(sum(bytes), 0)::bigint FROM replication_items WHERE run_id = x.id) AS bytes, \
         x.message, x.created_at, x.started_at, x.finished_at FROM replication_runs x "
    };
}

/// What triggered a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A push of a matching tag.
    Push,
    /// The rule's schedule.
    Schedule,
    /// A person, through the API.
    Manual,
}

impl Trigger {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Schedule => "schedule",
            Self::Manual => "manual",
        }
    }
}

/// A tag to replicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The repository.
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// Its digest.
    pub digest: String,
}

/// Rules and runs in the images schema.
#[derive(Clone)]
pub struct Replications {
    outbox: Outbox,
    registries: Registries,
    tenancy: Tenancy,
}

fn event(id: Uuid, tenant: Uuid, name: &str) -> pb::ResourceChanged {
    pb::ResourceChanged {
        id: id.to_string(),
        tenant_id: tenant.to_string(),
        name: name.to_string(),
    }
}

impl Replications {
    /// Rules and runs stored in the outbox's schema; `tenancy` says where tenants have partitions.
    pub fn new(outbox: Outbox, registries: Registries, tenancy: Tenancy) -> Self {
        Self {
            outbox,
            registries,
            tenancy,
        }
    }

    /// The schema's pool.
    pub fn pool(&self) -> &sqlx::PgPool {
        self.outbox.pool()
    }

    /// Checks that every target is a sub-registry of a data centre or cluster
    /// where `tenant` has a partition.
    async fn check_targets(&self, tenant: Uuid, ids: &[Uuid]) -> Result<()> {
        let placements = self.registries.placements(ids).await?;
        let tenant_placements = self.tenancy.placements(tenant).await?;
        for id in ids {
            let Some(p) = placements.get(id) else {
                return Err(Error::invalid("registry_ids", format!("no registry {id}")));
            };
            if !p.is_placed() {
                return Err(Error::invalid(
                    "registry_ids",
                    format!("registry {id} belongs to no data centre or cluster"),
                ));
            }
            let here = (!p.data_centre.is_empty() && tenant_placements.data_centres.contains(&p.data_centre))
                || (!p.cluster.is_empty() && tenant_placements.clusters.contains(&p.cluster));
            if !here {
                let place = if p.data_centre.is_empty() {
                    format!("cluster {}", p.cluster)
                } else {
                    format!("data centre {}", p.data_centre)
                };
                return Err(Error::invalid(
                    "registry_ids",
                    format!("registry {id} is in {place}, where the tenant has no partition"),
                ));
            }
        }
        Ok(())
    }

    /// Creates a rule of `tenant`. Tenant administrators.
    ///
    /// # Errors
    /// Not allowed, a target outside the tenant's data centres (naming
    /// `registry_ids`), or the name is taken.
    pub async fn create(&self, caller: &Caller, tenant: Uuid, name: &str, spec: RuleSpec) -> Result<Rule> {
        caller.require(tenant, Role::TenantAdmin, "tenant", tenant)?;
        let name = DnsLabel::parse("name", name.trim())?;
        self.check_targets(tenant, &spec.registry_ids).await?;
        let id = id::new_id();
        let mut tx = self.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO replication_rules (id, tenant_id, name, repositories, registry_ids, on_push, schedule,
               next_run_at, enabled)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id, name) DO NOTHING",
        )
        .bind(id)
        .bind(tenant)
        .bind(name.as_str())
        .bind(spec.repositories.as_str())
        .bind(&spec.registry_ids)
        .bind(spec.on_push)
        .bind(&spec.schedule_raw)
        .bind(spec.schedule.next_after(Utc::now()))
        .bind(spec.enabled)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(Error::Conflict(format!(
                "the tenant has a replication rule named {name}"
            )));
        }
        outbox::record(&mut tx, RULE_CREATED, Some(tenant), &event(id, tenant, name.as_str())).await?;
        self.outbox.commit(tx).await?;
        self.get(caller, id).await
    }

    async fn read(&self, id: Uuid) -> Result<Option<Rule>> {
        let row: Option<RuleRow> = sqlx::query_as(concat!(select_rules!(), "WHERE ru.id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(Rule::from))
    }

    /// One rule with its status.
    ///
    /// # Errors
    /// No such rule the caller may see.
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Rule> {
        self.read(id)
            .await?
            .filter(|r| caller.can_see(r.tenant_id))
            .ok_or_else(|| Error::not_found("replication rule", id))
    }

    /// A page of a tenant's rules.
    ///
    /// # Errors
    /// The caller may not see the tenant.
    pub async fn list(&self, caller: &Caller, tenant: Uuid, page: Page) -> Result<(Vec<Rule>, String)> {
        caller.require(tenant, Role::Viewer, "tenant", tenant)?;
        let rows: Vec<RuleRow> = sqlx::query_as(concat!(
            select_rules!(),
            "WHERE ru.tenant_id = $1 AND ($2::uuid IS NULL OR ru.id > $2) ORDER BY ru.id LIMIT $3"
        ))
        .bind(tenant)
        .bind(page.after)
        .bind(page.fetch())
        .fetch_all(self.pool())
        .await?;
        Ok(page.finish(rows.into_iter().map(Rule::from).collect(), |r| r.id))
    }

    /// Replaces a rule's settings. Tenant administrators.
    ///
    /// # Errors
    /// No such rule, not allowed, or a target outside the tenant's data centres.
    pub async fn update(&self, caller: &Caller, id: Uuid, spec: RuleSpec) -> Result<Rule> {
        let rule = self.get(caller, id).await?;
        caller.require(rule.tenant_id, Role::TenantAdmin, "replication rule", id)?;
        self.check_targets(rule.tenant_id, &spec.registry_ids).await?;
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE replication_rules SET repositories = $3, registry_ids = $4, on_push = $5, schedule = $6,
               next_run_at = $7, enabled = $8, updated_at = now()
             WHERE id = $1 AND tenant_id = $2",
        )
        .bind(id)
        .bind(rule.tenant_id)
        .bind(spec.repositories.as_str())
        .bind(&spec.registry_ids)
        .bind(spec.on_push)
        .bind(&spec.schedule_raw)
        .bind(spec.schedule.next_after(Utc::now()))
        .bind(spec.enabled)
        .execute(&mut *tx)
        .await?;
        outbox::record(
            &mut tx,
            RULE_UPDATED,
            Some(rule.tenant_id),
            &event(id, rule.tenant_id, &rule.name),
        )
        .await?;
        self.outbox.commit(tx).await?;
        self.get(caller, id).await
    }

    /// Deletes a rule and its runs. Tenant administrators.
    ///
    /// # Errors
    /// No such rule, or not allowed.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let rule = self.get(caller, id).await?;
        caller.require(rule.tenant_id, Role::TenantAdmin, "replication rule", id)?;
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM replication_rules WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(rule.tenant_id)
            .execute(&mut *tx)
            .await?;
        outbox::record(
            &mut tx,
            RULE_DELETED,
            Some(rule.tenant_id),
            &event(id, rule.tenant_id, &rule.name),
        )
        .await?;
        self.outbox.commit(tx).await
    }

    /// The tenant's current tags the rule's pattern matches.
    async fn matching_images(&self, rule: &Rule) -> Result<Vec<Image>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT r.name, t.name, t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id
             WHERE r.tenant_id = $1 AND t.tenant_id = $1 AND t.state <> 'deleted' ORDER BY r.name, t.name",
        )
        .bind(rule.tenant_id)
        .fetch_all(self.pool())
        .await?;
        let pattern = RepositoryPattern(rule.repositories.clone());
        Ok(rows
            .into_iter()
            .filter(|(r, _, _)| pattern.matches(r))
            .map(|(repository, tag, digest)| Image {
                repository,
                tag,
                digest,
            })
            .collect())
    }

    /// Queues a run of `rule` for `images` in `tx`; returns its id.
    async fn enqueue(
        tx: &mut Transaction<'_, Postgres>,
        rule: (Uuid, Uuid, &str, &[Uuid]),
        trigger: Trigger,
        images: &[Image],
    ) -> Result<Uuid> {
        let (rule_id, tenant, name, targets) = rule;
        let run = id::new_id();
        sqlx::query("INSERT INTO replication_runs (id, rule_id, tenant_id, trigger) VALUES ($1, $2, $3, $4)")
            .bind(run)
            .bind(rule_id)
            .bind(tenant)
            .bind(trigger.as_str())
            .execute(&mut **tx)
            .await?;
        for target in targets {
            for image in images {
                sqlx::query(
                    "INSERT INTO replication_items (id, run_id, registry_id, repository, tag, digest)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(id::new_id())
                .bind(run)
                .bind(target)
                .bind(&image.repository)
                .bind(&image.tag)
                .bind(&image.digest)
                .execute(&mut **tx)
                .await?;
            }
        }
        outbox::record(tx, RUN_QUEUED, Some(tenant), &event(run, tenant, name)).await?;
        Ok(run)
    }

    /// Runs a rule now, for every current tag it matches. Developers and above.
    ///
    /// # Errors
    /// No such rule the caller may see, or a role too low.
    pub async fn trigger(&self, caller: &Caller, rule_id: Uuid) -> Result<Run> {
        let rule = self.get(caller, rule_id).await?;
        caller.require(rule.tenant_id, Role::Developer, "replication rule", rule_id)?;
        let images = self.matching_images(&rule).await?;
        let mut tx = self.pool().begin().await?;
        let run = Self::enqueue(
            &mut tx,
            (
                rule.id,
                rule.tenant_id,
                rule.name.as_str(),
                rule.registry_ids.as_slice(),
            ),
            Trigger::Manual,
            &images,
        )
        .await?;
        self.outbox.commit(tx).await?;
        self.run(caller, run).await.map(|(r, _)| r)
    }

    /// Queues runs, in `tx`, of the tenant's push rules that match a pushed
    /// tag; returns how many.
    ///
    /// # Errors
    /// The database fails.
    pub async fn pushed(&self, tx: &mut Transaction<'_, Postgres>, tenant: Uuid, image: &Image) -> Result<usize> {
        let rules: Vec<(Uuid, String, String, Vec<Uuid>)> = sqlx::query_as(
            "SELECT id, name, repositories, registry_ids FROM replication_rules
             WHERE tenant_id = $1 AND enabled AND on_push",
        )
        .bind(tenant)
        .fetch_all(&mut **tx)
        .await?;
        let mut queued = 0;
        for (id, name, pattern, targets) in rules {
            if RepositoryPattern(pattern).matches(&image.repository) {
                Self::enqueue(
                    tx,
                    (id, tenant, name.as_str(), targets.as_slice()),
                    Trigger::Push,
                    std::slice::from_ref(image),
                )
                .await?;
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// Queues a run of every rule whose schedule is due; returns how many.
    ///
    /// # Errors
    /// The database fails.
    pub async fn schedule_due(&self) -> Result<usize> {
        let mut tx = self.pool().begin().await?;
        let due: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT id, schedule FROM replication_rules WHERE enabled AND next_run_at <= now()
             ORDER BY next_run_at LIMIT 100 FOR UPDATE SKIP LOCKED",
        )
        .fetch_all(&mut *tx)
        .await?;
        for (id, schedule) in &due {
            let Some(rule) = self.read(*id).await? else { continue };
            let images = self.matching_images(&rule).await?;
            Self::enqueue(
                &mut tx,
                (
                    rule.id,
                    rule.tenant_id,
                    rule.name.as_str(),
                    rule.registry_ids.as_slice(),
                ),
                Trigger::Schedule,
                &images,
            )
            .await?;
            // A schedule that no longer parses (it was valid when stored) stops.
            let next = Schedule::parse("schedule", schedule)
                .ok()
                .and_then(|s| s.next_after(Utc::now()));
            sqlx::query("UPDATE replication_rules SET next_run_at = $2 WHERE id = $1")
                .bind(id)
                .bind(next)
                .execute(&mut *tx)
                .await?;
        }
        self.outbox.commit(tx).await?;
        Ok(due.len())
    }

    /// A page of a rule's runs, newest first.
    ///
    /// # Errors
    /// No such rule the caller may see.
    pub async fn runs(&self, caller: &Caller, rule_id: Uuid, page: Page) -> Result<(Vec<Run>, String)> {
        let rule = self.get(caller, rule_id).await?;
        // Run ids are UUIDv7: descending id order is newest first, and the cursor follows it.
        let rows: Vec<Run> = sqlx::query_as(concat!(
            select_runs!(),
            "WHERE x.rule_id = $1 AND x.tenant_id = $2 AND ($3::uuid IS NULL OR x.id < $3) ORDER BY x.id DESC LIMIT $4"
        ))
        .bind(rule_id)
        .bind(rule.tenant_id)
        .bind(page.after)
        .bind(page.fetch())
        .fetch_all(self.pool())
        .await?;
        Ok(page.finish(rows, |r| r.id))
    }

    /// One run with its items.
    ///
    /// # Errors
    /// No such run the caller may see.
    pub async fn run(&self, caller: &Caller, id: Uuid) -> Result<(Run, Vec<Item>)> {
        let run: Run = sqlx::query_as(concat!(select_runs!(), "WHERE x.id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .filter(|r: &Run| caller.can_see(r.tenant_id))
            .ok_or_else(|| Error::not_found("replication run", id))?;
        let items = self.items(id).await?;
        Ok((run, items))
    }

    /// A run's items.
    ///
    /// # Errors
    /// The database fails.
    pub async fn items(&self, run: Uuid) -> Result<Vec<Item>> {
        Ok(sqlx::query_as(
            "SELECT id, registry_id, repository, tag, digest, state, bytes, error FROM replication_items
             WHERE run_id = $1 ORDER BY repository, tag, registry_id",
        )
        .bind(run)
        .fetch_all(self.pool())
        .await?)
    }

    /// Leases the oldest run that is due (queued, or running with a lapsed
    /// lease) for `lease`; its failed items go back to pending.
    ///
    /// # Errors
    /// The database fails.
    pub async fn claim(&self, lease: Duration) -> Result<Option<Run>> {
        let lease = chrono::Duration::from_std(lease).map_err(Error::internal)?;
        let mut tx = self.pool().begin().await?;
        let claimed: Option<(Uuid, Uuid, bool)> = sqlx::query_as(
            "UPDATE replication_runs SET state = 'running', attempts = attempts + 1, lease_until = now() + $1,
               started_at = coalesce(started_at, now())
             WHERE id = (SELECT id FROM replication_runs
                         WHERE (state = 'queued' AND not_before <= now())
                            OR (state = 'running' AND lease_until < now())
                         ORDER BY not_before, id LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING id, tenant_id, attempts = 1",
        )
        .bind(lease)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((id, tenant, first)) = claimed else {
            return Ok(None);
        };
        sqlx::query("UPDATE replication_items SET state = 'pending' WHERE run_id = $1 AND state = 'failed'")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if first {
            let name = Self::rule_name(&mut tx, id).await?;
            outbox::record(&mut tx, RUN_STARTED, Some(tenant), &event(id, tenant, &name)).await?;
        }
        self.outbox.commit(tx).await?;
        let run: Run = sqlx::query_as(concat!(select_runs!(), "WHERE x.id = $1"))
            .bind(id)
            .fetch_one(self.pool())
            .await?;
        Ok(Some(run))
    }

    async fn rule_name(tx: &mut Transaction<'_, Postgres>, run: Uuid) -> Result<String> {
        Ok(sqlx::query_scalar(
            "SELECT ru.name FROM replication_rules ru JOIN replication_runs x ON x.rule_id = ru.id WHERE x.id = $1",
        )
        .bind(run)
        .fetch_optional(&mut **tx)
        .await?
        .unwrap_or_default())
    }

    /// Extends the lease of a run being worked on.
    ///
    /// # Errors
    /// The database fails.
    pub async fn renew(&self, run: Uuid, lease: Duration) -> Result<()> {
        let lease = chrono::Duration::from_std(lease).map_err(Error::internal)?;
        sqlx::query("UPDATE replication_runs SET lease_until = now() + $2 WHERE id = $1 AND state = 'running'")
            .bind(run)
            .bind(lease)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records an item copied, with the bytes streamed for it.
    ///
    /// # Errors
    /// The database fails.
    pub async fn copied(&self, item: Uuid, bytes: i64) -> Result<()> {
        sqlx::query(
            "UPDATE replication_items SET state = 'copied', bytes = $2, error = '', updated_at = now() WHERE id = $1",
        )
        .bind(item)
        .bind(bytes)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records an item failed, and why.
    ///
    /// # Errors
    /// The database fails.
    pub async fn item_failed(&self, item: Uuid, error: &str) -> Result<()> {
        sqlx::query("UPDATE replication_items SET state = 'failed', error = $2, updated_at = now() WHERE id = $1")
            .bind(item)
            .bind(error.chars().take(1000).collect::<String>())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Ends an attempt of a run: succeeded when every item is copied;
    /// otherwise queued again after a backoff, or failed after
    /// [`MAX_ATTEMPTS`]. Returns the run's state.
    ///
    /// # Errors
    /// The database fails.
    pub async fn finish_attempt(&self, run: &Run) -> Result<String> {
        let mut tx = self.pool().begin().await?;
        let (left, first_error): (i64, Option<String>) = sqlx::query_as(
            "SELECT count(*), min(error) FILTER (WHERE error <> '') FROM replication_items
             WHERE run_id = $1 AND state <> 'copied'",
        )
        .bind(run.id)
        .fetch_one(&mut *tx)
        .await?;
        let name = Self::rule_name(&mut tx, run.id).await?;
        let state = if left == 0 {
            sqlx::query(
                "UPDATE replication_runs SET state = 'succeeded', finished_at = now(), lease_until = NULL, message = ''
                 WHERE id = $1",
            )
            .bind(run.id)
            .execute(&mut *tx)
            .await?;
            outbox::record(
                &mut tx,
                RUN_SUCCEEDED,
                Some(run.tenant_id),
                &event(run.id, run.tenant_id, &name),
            )
            .await?;
            "succeeded"
        } else {
            let message = format!("{left} item(s) not copied: {}", first_error.unwrap_or_default());
            let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM replication_runs WHERE id = $1")
                .bind(run.id)
                .fetch_one(&mut *tx)
                .await?;
            if attempts >= MAX_ATTEMPTS {
                sqlx::query(
                    "UPDATE replication_runs SET state = 'failed', finished_at = now(), lease_until = NULL,
                       message = $2 WHERE id = $1",
                )
                .bind(run.id)
                .bind(&message)
                .execute(&mut *tx)
                .await?;
                outbox::record(
                    &mut tx,
                    RUN_FAILED,
                    Some(run.tenant_id),
                    &event(run.id, run.tenant_id, &name),
                )
                .await?;
                "failed"
            } else {
                let backoff = retry_after(attempts);
                sqlx::query(
                    "UPDATE replication_runs SET state = 'queued', lease_until = NULL, message = $2,
                       not_before = now() + $3 WHERE id = $1",
                )
                .bind(run.id)
                .bind(&message)
                .bind(chrono::Duration::from_std(backoff).map_err(Error::internal)?)
                .execute(&mut *tx)
                .await?;
                "queued"
            }
        };
        self.outbox.commit(tx).await?;
        Ok(state.to_string())
    }

    /// Where the registry holds each of `digests` for `tenant`, if in some repository.
    ///
    /// # Errors
    /// The database fails.
    pub async fn blob_locations(
        &self,
        registry: Uuid,
        tenant: Uuid,
        digests: &[String],
    ) -> Result<HashMap<String, String>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT digest, repository FROM replicated_blobs
             WHERE registry_id = $1 AND tenant_id = $2 AND digest = ANY($3)",
        )
        .bind(registry)
        .bind(tenant)
        .bind(digests)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Remembers that the registry holds `digests` of `tenant` in `repository`.
    ///
    /// # Errors
    /// The database fails.
    pub async fn blobs_held(&self, registry: Uuid, tenant: Uuid, repository: &str, digests: &[String]) -> Result<()> {
        sqlx::query(
            "INSERT INTO replicated_blobs (registry_id, tenant_id, digest, repository)
             SELECT $1, $2, d, $3 FROM unnest($4::text[]) AS d ON CONFLICT DO NOTHING",
        )
        .bind(registry)
        .bind(tenant)
        .bind(repository)
        .bind(digests)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// The wait before attempt `attempts + 1`: 1 s doubling, at most [`MAX_BACKOFF`].
pub fn retry_after(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.clamp(1, 16) - 1).unwrap_or(0);
    Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_star_stays_in_its_segment_and_a_double_one_does_not() {
        let p = RepositoryPattern::parse("repositories", "acme/shop/*").unwrap();
        assert!(p.matches("acme/shop/web"));
        assert!(!p.matches("acme/shop/web/api"));
        assert!(!p.matches("acme/ops/web"));
        let p = RepositoryPattern::parse("repositories", "acme/**").unwrap();
        assert!(p.matches("acme/shop/web/api"));
        assert!(!p.matches("other/shop/web"));
        let p = RepositoryPattern::parse("repositories", "acme/*/web-*").unwrap();
        assert!(p.matches("acme/shop/web-1"));
        assert!(!p.matches("acme/shop/api-1"));
        assert_eq!(
            RepositoryPattern::parse("repositories", "Acme/*").unwrap_err().field(),
            Some("repositories")
        );
        assert_eq!(
            RepositoryPattern::parse("repositories", " ").unwrap_err().field(),
            Some("repositories")
        );
    }

    #[test]
    fn schedules_are_intervals_or_cron_and_say_when_they_are_next_due() {
        let now = "2026-12-07T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert!(Schedule::parse("schedule", "").unwrap().next_after(now).is_none());
        let every = Schedule::parse("schedule", "every 5m").unwrap();
        assert_eq!(every.next_after(now).unwrap(), now + chrono::Duration::minutes(5));
        let cron = Schedule::parse("schedule", "30 * * * *").unwrap();
        assert_eq!(
            cron.next_after(now).unwrap(),
            "2026-12-07T10:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        for bad in ["every 1s", "every 5d", "every m", "* * *", "61 * * * *"] {
            assert_eq!(
                Schedule::parse("schedule", bad).unwrap_err().field(),
                Some("schedule"),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_rule_names_each_bad_field() {
        let id = Uuid::nil().to_string();
        assert!(RuleSpec::parse("acme/**", std::slice::from_ref(&id), true, "", true).is_ok());
        assert_eq!(
            RuleSpec::parse("acme/**", &[], true, "", true).unwrap_err().field(),
            Some("registry_ids")
        );
        assert_eq!(
            RuleSpec::parse("acme/**", &["x".to_string()], true, "", true)
                .unwrap_err()
                .field(),
            Some("registry_ids")
        );
        assert_eq!(
            RuleSpec::parse("acme/**", &[id], true, "every 1s", true)
                .unwrap_err()
                .field(),
            Some("schedule")
        );
    }

    #[test]
    fn retries_back_off_to_a_minute() {
        assert_eq!(retry_after(1), Duration::from_secs(1));
        assert_eq!(retry_after(3), Duration::from_secs(4));
        assert_eq!(retry_after(40), MAX_BACKOFF);
    }
}
