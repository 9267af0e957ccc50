//! Retention (R7): one rule per repository — keep the last N tags, keep
//! released tags, delete manifests no tag points at after N days — applied on
//! a schedule and on demand, with a preview that answers exactly what a run
//! would delete now ([`plan`] is the one decision both use).
//!
//! **A run is a persisted operation.** It first stores what it decided to
//! delete (`planned`), then each deletion as it is done (`deleted`), under
//! a claim a live process keeps extending; a run whose process died (its
//! claim ran out) is picked up and finishes the rest. A deletion is
//! `DELETE /v2/<name>/manifests/<digest>` on the master registry with a
//! token the platform issues itself (subject `retention:<run>`, so the
//! registry's delete notification names the run in the audit log); the
//! catalog rows of that digest move to `deleted` with an
//! `images.tag.deleted` event each ([`Catalog::deleted`], which the
//! registry's own notification then finds done). Just before each deletion
//! the tags on that digest are read again, locked: a tag released meanwhile
//! (when the rule keeps released ones) or a tag the plan did not choose
//! that now points at it keeps the image, and the run reports it skipped.
//! The registry deletes by digest, so a digest is deleted only when every
//! tag on it is to go.
//!
//! **Garbage collection.** Deleting manifests frees no space until the
//! registry's `garbage-collect` sweeps unreferenced blobs, which is only
//! safe while nothing is written (an upload during the mark phase can lose
//! its blobs). A run that deleted something queues a collection of the master
//! registry (one at a time, after [`Settings::gc_delay`] so several runs
//! share one). It then *drains*: the platform stops granting push and delete
//! in its tokens and the `/v2/` proxy refuses writes ([`writes_frozen`]),
//! and it waits [`Settings::gc_drain`] (a token's lifetime) so tokens issued
//! before can no longer write; then it runs `<binary> garbage-collect
//! <config>` on this host (the registry's configuration path is set per
//! registry by a platform administrator; without one the collection is
//! recorded as skipped) and records the blobs it deleted, the bytes the
//! storage folder shrank by and the output's tail. Writes resume when it
//! ends, whichever way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::outbox::Outbox;
use kernel::page::Page;
use kernel::settings::{Env, SettingError};
use kernel::{Error, Result, id};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::access::{self, Action, RepositoryName, Scope};
use crate::catalog::Catalog;
use crate::lifecycle::State;
use crate::signing::{Signer, TOKEN_TTL_SECONDS};

/// How often each rule runs (default 24h).
pub const INTERVAL: &str = "PAAS_IMAGES_RETENTION_INTERVAL";
/// How often due rules, interrupted runs and queued collections are looked
/// for (default 30s).
pub const POLL: &str = "PAAS_IMAGES_RETENTION_POLL";
/// How long a queued collection waits for more deletions (default 5m).
pub const GC_DELAY: &str = "PAAS_IMAGES_GC_DELAY";
/// How long writes are refused before the collector starts (default: a
/// registry token's lifetime, so none issued before can still write).
pub const GC_DRAIN: &str = "PAAS_IMAGES_GC_DRAIN";
/// The registry binary whose `garbage-collect` is run (default
/// `docker-registry`, Debian's distribution registry, found on the PATH).
pub const REGISTRY_BINARY: &str = "PAAS_IMAGES_REGISTRY_BINARY";

/// Most tags a rule may keep by count.
const MAX_KEEP_LAST: i64 = 100_000;
/// Most days a rule may keep an untagged manifest.
const MAX_UNTAGGED_DAYS: i64 = 3650;
/// How long a claim on a run or collection lasts without being extended.
const CLAIM: Duration = Duration::from_secs(120);
/// How much of the collector's output a run keeps.
const OUTPUT_TAIL: usize = 4000;

/// Retention's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Between two scheduled runs of a rule.
    pub interval: Duration,
    /// Between two looks for due work.
    pub poll: Duration,
    /// How long a queued collection waits.
    pub gc_delay: Duration,
    /// How long writes are refused before collecting.
    pub gc_drain: Duration,
    /// The registry binary.
    pub registry_binary: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(24 * 3600),
            poll: Duration::from_secs(30),
            gc_delay: Duration::from_secs(300),
            gc_drain: Duration::from_secs(u64::try_from(TOKEN_TTL_SECONDS).unwrap_or(300)),
            registry_binary: "docker-registry".to_string(),
        }
    }
}

impl Settings {
    /// Reads [`INTERVAL`], [`POLL`], [`GC_DELAY`], [`GC_DRAIN`] and [`REGISTRY_BINARY`].
    ///
    /// # Errors
    /// A malformed value.
    pub fn from_env(env: &Env) -> Result<Self, SettingError> {
        let d = Self::default();
        Ok(Self {
            interval: env.or(INTERVAL, d.interval)?,
            poll: env.or(POLL, d.poll)?,
            gc_delay: env.or(GC_DELAY, d.gc_delay)?,
            gc_drain: env.or(GC_DRAIN, d.gc_drain)?,
            registry_binary: env.or(REGISTRY_BINARY, d.registry_binary)?,
        })
    }
}

/// What a rule keeps; what it does not keep goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Keep the N most recently pushed tags.
    pub keep_last: Option<u32>,
    /// Never delete a released tag.
    pub keep_released: bool,
    /// Delete manifests no tag points at once untagged this many days.
    pub untagged_days: Option<u32>,
}

impl Policy {
    /// A policy from its raw fields; errors name the field.
    ///
    /// # Errors
    /// A number out of range, or a policy that would never delete anything.
    pub fn parse(keep_last: Option<i64>, keep_released: bool, untagged_days: Option<i64>) -> Result<Self> {
        let keep_last = match keep_last {
            None => None,
            Some(n) if (1..=MAX_KEEP_LAST).contains(&n) => u32::try_from(n).ok(),
            Some(_) => return Err(Error::invalid("keep_last", format!("must be 1 to {MAX_KEEP_LAST}"))),
        };
        let untagged_days = match untagged_days {
            None => None,
            Some(n) if (0..=MAX_UNTAGGED_DAYS).contains(&n) => u32::try_from(n).ok(),
            Some(_) => {
                return Err(Error::invalid(
                    "untagged_days",
                    format!("must be 0 to {MAX_UNTAGGED_DAYS}"),
                ));
            }
        };
        if keep_last.is_none() && untagged_days.is_none() {
            return Err(Error::invalid(
                "keep_last",
                "say how many tags to keep (keep_last) or after how many days untagged manifests go (untagged_days)",
            ));
        }
        Ok(Self {
            keep_last,
            keep_released,
            untagged_days,
        })
    }
}

/// A repository's rule as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its repository.
    pub repository_id: Uuid,
    /// The repository's tenant.
    pub tenant_id: Uuid,
    /// What it keeps.
    pub policy: Policy,
    /// When it runs next by schedule.
    pub next_run_at: DateTime<Utc>,
    /// Who set it last.
    pub updated_by: String,
    /// When.
    pub updated_at: DateTime<Utc>,
}

/// A tag the catalog holds (not deleted), as [`plan`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTag {
    /// The tag.
    pub name: String,
    /// Its manifest's digest.
    pub digest: String,
    /// Its lifecycle state.
    pub state: State,
    /// Its last push.
    pub pushed_at: DateTime<Utc>,
}

/// A manifest once pushed under a tag that no tag points at any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untagged {
    /// Its digest.
    pub digest: String,
    /// Since when no tag points at it.
    pub since: DateTime<Utc>,
}

/// One manifest a run deletes (or would).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Deletion {
    /// The manifest's digest (what the registry deletes).
    pub digest: String,
    /// The tags on it, all going (none for an untagged manifest).
    pub tags: Vec<String>,
    /// Why, in words.
    pub reason: String,
}

/// What `policy` deletes of a repository holding `tags` (not deleted) and
/// `untagged` manifests, at `now`; sorted by digest. Kept: the `keep_last`
/// most recently pushed tags (ties by name), released tags when
/// `keep_released`, and every tag on a digest a kept tag points at (the
/// registry deletes whole manifests).
///
/// Cosign signature tags (`sha256-<hex>.sig`) are not tags of their own
/// here: they take no place among the `keep_last` and are never chosen by
/// age; a signature goes with the image it signs, and only then (a
/// signature left behind would name an image that no longer exists).
pub fn plan(policy: &Policy, tags: &[LiveTag], untagged: &[Untagged], now: DateTime<Utc>) -> Vec<Deletion> {
    let (signatures, images): (Vec<&LiveTag>, Vec<&LiveTag>) = tags
        .iter()
        .partition(|t| crate::cosign::signed_digest(&t.name).is_some());
    let mut out = Vec::new();
    if let Some(keep) = policy.keep_last {
        let mut newest_first: Vec<&LiveTag> = images.clone();
        newest_first.sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at).then_with(|| a.name.cmp(&b.name)));
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        let (kept, beyond) = newest_first.split_at(keep.min(newest_first.len()));
        let released = |t: &LiveTag| policy.keep_released && t.state == State::Released;
        let kept_digests: BTreeSet<&str> = kept
            .iter()
            .chain(beyond.iter().filter(|t| released(t)))
            .map(|t| t.digest.as_str())
            .collect();
        let mut going: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for t in beyond.iter().filter(|t| !released(t)) {
            if !kept_digests.contains(t.digest.as_str()) {
                going.entry(t.digest.as_str()).or_default().push(t.name.clone());
            }
        }
        for (digest, mut names) in going {
            names.sort();
            out.push(Deletion {
                digest: digest.to_string(),
                tags: names,
                reason: format!("not among the {keep} most recently pushed tags"),
            });
        }
    }
    if let Some(days) = policy.untagged_days {
        // Signature manifests are tagged too: never untagged candidates.
        let live: BTreeSet<&str> = tags.iter().map(|t| t.digest.as_str()).collect();
        let cutoff = now - chrono::Duration::days(i64::from(days));
        for u in untagged
            .iter()
            .filter(|u| u.since <= cutoff && !live.contains(u.digest.as_str()))
        {
            if out.iter().all(|d| d.digest != u.digest) {
                out.push(Deletion {
                    digest: u.digest.clone(),
                    tags: Vec::new(),
                    reason: format!("untagged for more than {days} days"),
                });
            }
        }
    }
    let going: BTreeSet<String> = out.iter().map(|d| d.digest.clone()).collect();
    let mut with_images: BTreeMap<&str, (Vec<String>, String)> = BTreeMap::new();
    for s in &signatures {
        let Some(signed) = crate::cosign::signed_digest(&s.name) else {
            continue;
        };
        // A signature manifest shared with a kept image tag stays (never seen in practice).
        if !going.contains(&signed) || images.iter().any(|t| t.digest == s.digest) {
            continue;
        }
        let entry = with_images
            .entry(s.digest.as_str())
            .or_insert_with(|| (Vec::new(), format!("the signature of {signed}, which goes")));
        entry.0.push(s.name.clone());
    }
    for (digest, (mut names, reason)) in with_images {
        names.sort();
        out.push(Deletion {
            digest: digest.to_string(),
            tags: names,
            reason,
        });
    }
    out.sort();
    out
}

/// A retention run as stored.
#[derive(Debug, Clone)]
pub struct Run {
    /// Its id.
    pub id: Uuid,
    /// Its repository.
    pub repository_id: Uuid,
    /// The repository's tenant.
    pub tenant_id: Uuid,
    /// `schedule` or `manual`.
    pub trigger: String,
    /// `running`, `succeeded` or `failed`.
    pub state: String,
    /// Who started it (`retention` for the schedule).
    pub actor: String,
    /// The rule it applied.
    pub policy: Policy,
    /// What it decided to delete.
    pub planned: Vec<Deletion>,
    /// What it deleted.
    pub deleted: Vec<Deletion>,
    /// What it kept after all, and why.
    pub skipped: Vec<Deletion>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

struct RunRow {
    id: Uuid,
    repository_id: Uuid,
    tenant_id: Uuid,
    trigger: String,
    state: String,
    actor: String,
    rule: serde_json::Value,
    planned: serde_json::Value,
    deleted: serde_json::Value,
    skipped: serde_json::Value,
    error: Option<String>,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<RunRow> for Run {
    type Error = Error;

    fn try_from(r: RunRow) -> Result<Self> {
        let json = |v: serde_json::Value| serde_json::from_value(v).map_err(Error::internal);
        Ok(Self {
            id: r.id,
            repository_id: r.repository_id,
            tenant_id: r.tenant_id,
            trigger: r.trigger,
            state: r.state,
            actor: r.actor,
            policy: serde_json::from_value(r.rule).map_err(Error::internal)?,
            planned: json(r.planned)?,
            deleted: json(r.deleted)?,
            skipped: json(r.skipped)?,
            error: r.error,
            started_at: r.started_at,
            finished_at: r.finished_at,
        })
    }
}

/// A registry garbage collection as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcRun {
    /// Its id.
    pub id: Uuid,
    /// The registry collected.
    pub registry_id: Uuid,
    /// `retention` or `manual`.
    pub trigger: String,
    /// `pending`, `draining`, `collecting`, `succeeded`, `failed` or `skipped`.
    pub state: String,
    /// Blobs the collector deleted.
    pub blobs_deleted: i32,
    /// Bytes the registry's storage shrank by.
    pub freed_bytes: i64,
    /// The end of the collector's output.
    pub output: String,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Whether writes to the master registry are refused now: a collection of
/// it is draining or collecting.
///
/// # Errors
/// The database fails.
pub async fn writes_frozen(pool: &PgPool) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM gc_runs g JOIN registries r ON r.id = g.registry_id
                          WHERE r.master AND g.state IN ('draining', 'collecting')) AS "frozen!""#
    )
    .fetch_one(pool)
    .await?)
}

/// Retention over the images schema.
#[derive(Clone)]
pub struct Retention {
    outbox: Outbox,
    catalog: Catalog,
    signer: Arc<Signer>,
    http: reqwest::Client,
    settings: Settings,
}

impl Retention {
    /// Retention over `outbox`'s schema, deleting with tokens from `signer`.
    pub fn new(outbox: Outbox, signer: Arc<Signer>, settings: Settings) -> Self {
        Self {
            catalog: Catalog::new(outbox.clone()),
            outbox,
            signer,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            settings,
        }
    }

    fn pool(&self) -> &PgPool {
        self.outbox.pool()
    }

    /// The repository's name and tenant, for a caller who may see it.
    async fn repository(&self, caller: &Caller, repository: Uuid) -> Result<(String, Uuid)> {
        sqlx::query!("SELECT name, tenant_id FROM repositories WHERE id = $1", repository)
            .fetch_optional(self.pool())
            .await?
            .filter(|r| caller.can_see(r.tenant_id))
            .map(|r| (r.name, r.tenant_id))
            .ok_or_else(|| Error::not_found("repository", repository))
    }

    /// A repository's rule. Members of its tenant.
    ///
    /// # Errors
    /// No such repository the caller may see, or it has no rule.
    pub async fn rule(&self, caller: &Caller, repository: Uuid) -> Result<Rule> {
        let (_, tenant) = self.repository(caller, repository).await?;
        self.stored_rule(repository, tenant)
            .await?
            .ok_or_else(|| Error::not_found("retention rule", repository))
    }

    async fn stored_rule(&self, repository: Uuid, tenant: Uuid) -> Result<Option<Rule>> {
        let row = sqlx::query!(
            "SELECT repository_id, tenant_id, keep_last, keep_released, untagged_days, next_run_at, updated_by,
                    updated_at
             FROM retention_rules WHERE repository_id = $1 AND tenant_id = $2",
            repository,
            tenant
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| Rule {
            repository_id: r.repository_id,
            tenant_id: r.tenant_id,
            policy: Policy {
                keep_last: r.keep_last.and_then(|n| u32::try_from(n).ok()),
                keep_released: r.keep_released,
                untagged_days: r.untagged_days.and_then(|n| u32::try_from(n).ok()),
            },
            next_run_at: r.next_run_at,
            updated_by: r.updated_by,
            updated_at: r.updated_at,
        }))
    }

    /// Sets a repository's rule; its first scheduled run is one interval
    /// away (preview it meanwhile). Tenant administrators (who may delete
    /// images).
    ///
    /// # Errors
    /// No such repository the caller may see, or a role too low.
    pub async fn put_rule(&self, caller: &Caller, repository: Uuid, policy: Policy) -> Result<Rule> {
        let (_, tenant) = self.repository(caller, repository).await?;
        caller.require(tenant, Role::TenantAdmin, "repository", repository)?;
        sqlx::query!(
            "INSERT INTO retention_rules (repository_id, tenant_id, keep_last, keep_released, untagged_days,
                                          next_run_at, updated_by)
             VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7)
             ON CONFLICT (repository_id) DO UPDATE SET keep_last = $3, keep_released = $4, untagged_days = $5,
                 updated_by = $7, updated_at = now()",
            repository,
            tenant,
            policy.keep_last.and_then(|n| i32::try_from(n).ok()),
            policy.keep_released,
            policy.untagged_days.and_then(|n| i32::try_from(n).ok()),
            self.settings.interval.as_secs_f64(),
            caller.subject,
        )
        .execute(self.pool())
        .await?;
        self.rule(caller, repository).await
    }

    /// Removes a repository's rule (its runs stay). Tenant administrators.
    ///
    /// # Errors
    /// No such repository or rule the caller may see, or a role too low.
    pub async fn delete_rule(&self, caller: &Caller, repository: Uuid) -> Result<()> {
        let (_, tenant) = self.repository(caller, repository).await?;
        caller.require(tenant, Role::TenantAdmin, "repository", repository)?;
        let gone = sqlx::query!(
            "DELETE FROM retention_rules WHERE repository_id = $1 AND tenant_id = $2",
            repository,
            tenant
        )
        .execute(self.pool())
        .await?;
        if gone.rows_affected() == 0 {
            return Err(Error::not_found("retention rule", repository));
        }
        Ok(())
    }

    /// What a run of the repository's rule would delete now. Members of
    /// its tenant.
    ///
    /// # Errors
    /// No such repository the caller may see, or it has no rule.
    pub async fn preview(&self, caller: &Caller, repository: Uuid) -> Result<Vec<Deletion>> {
        let rule = self.rule(caller, repository).await?;
        let (name, _) = self.repository(caller, repository).await?;
        self.decide(&name, rule.repository_id, &rule.policy).await
    }

    async fn decide(&self, name: &str, repository: Uuid, policy: &Policy) -> Result<Vec<Deletion>> {
        let tags = sqlx::query!(
            "SELECT name, digest, state, pushed_at FROM tags WHERE repository_id = $1 AND state <> 'deleted'",
            repository
        )
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(|t| {
            Ok(LiveTag {
                state: State::parse("state", &t.state).map_err(Error::internal)?,
                name: t.name,
                digest: t.digest,
                pushed_at: t.pushed_at,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        // A manifest pushed under a tag that has since been pushed with
        // another image, not deleted since and no tag's now: untagged from
        // the moment the last of its tags moved on. (Manifests pushed by
        // digest only, such as an index's children, are never candidates.)
        let untagged = sqlx::query!(
            r#"WITH pushed AS (
                   SELECT tag, digest, max(at) AS at FROM registry_events
                   WHERE repository = $1 AND action = 'push' AND tag <> '' GROUP BY tag, digest)
               SELECT p.digest AS "digest!", max(n.moved_at) AS "since!"
               FROM pushed p CROSS JOIN LATERAL (
                   SELECT min(e.at) AS moved_at FROM registry_events e
                   WHERE e.repository = $1 AND e.action = 'push' AND e.tag = p.tag AND e.digest <> p.digest
                     AND e.at > p.at) n
               WHERE n.moved_at IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = $2 AND t.digest = p.digest
                                   AND t.state <> 'deleted')
                 AND NOT EXISTS (SELECT 1 FROM registry_events d WHERE d.repository = $1 AND d.action = 'delete'
                                   AND d.digest = p.digest AND d.at >= p.at)
               GROUP BY p.digest"#,
            name,
            repository
        )
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(|u| Untagged {
            digest: u.digest,
            since: u.since,
        })
        .collect::<Vec<_>>();
        Ok(plan(policy, &tags, &untagged, Utc::now()))
    }

    /// Runs the repository's rule now and answers the finished run.
    /// Tenant administrators.
    ///
    /// # Errors
    /// No such repository or rule the caller may see, a role too low, or a
    /// garbage collection holds the registry (try again after it).
    pub async fn run_now(&self, caller: &Caller, repository: Uuid) -> Result<Run> {
        let rule = self.rule(caller, repository).await?;
        caller.require(rule.tenant_id, Role::TenantAdmin, "repository", repository)?;
        if writes_frozen(self.pool()).await? {
            return Err(Error::FailedPrecondition(
                "the registry's garbage collection is under way: run retention after it".into(),
            ));
        }
        let run = self.start(&rule, "manual", &caller.subject).await?;
        self.carry_out(run).await?;
        self.run(caller, run).await
    }

    /// Records a new run of `rule` with what it will delete, claimed.
    async fn start(&self, rule: &Rule, trigger: &str, actor: &str) -> Result<Uuid> {
        let name = sqlx::query_scalar!("SELECT name FROM repositories WHERE id = $1", rule.repository_id)
            .fetch_one(self.pool())
            .await?;
        let planned = self.decide(&name, rule.repository_id, &rule.policy).await?;
        let id = id::new_id();
        sqlx::query!(
            "INSERT INTO retention_runs (id, repository_id, tenant_id, trigger, state, actor, rule, planned,
                                         claimed_until)
             VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, now() + make_interval(secs => $8))",
            id,
            rule.repository_id,
            rule.tenant_id,
            trigger,
            actor,
            serde_json::to_value(rule.policy).map_err(Error::internal)?,
            serde_json::to_value(&planned).map_err(Error::internal)?,
            CLAIM.as_secs_f64(),
        )
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    /// Deletes what run `id` planned and has not deleted yet, then ends it;
    /// a failure ends it failed (what was deleted stays recorded).
    async fn carry_out(&self, id: Uuid) -> Result<()> {
        let outcome = self.delete_planned(id).await;
        let error = outcome.as_ref().err().map(ToString::to_string);
        let deleted_any = sqlx::query_scalar!(
            r#"UPDATE retention_runs SET state = $2, error = $3, finished_at = now(), claimed_until = NULL
               WHERE id = $1 RETURNING jsonb_array_length(deleted) > 0 AS "deleted_any!""#,
            id,
            if error.is_some() { "failed" } else { "succeeded" },
            error,
        )
        .fetch_one(self.pool())
        .await?;
        if deleted_any {
            // One collection of the master queued (or the one queued kept).
            sqlx::query!(
                "INSERT INTO gc_runs (id, registry_id, trigger, state, not_before)
                 SELECT $1, id, 'retention', 'pending', now() + make_interval(secs => $2)
                 FROM registries WHERE master
                 ON CONFLICT DO NOTHING",
                id::new_id(),
                self.settings.gc_delay.as_secs_f64(),
            )
            .execute(self.pool())
            .await?;
        }
        if let Err(e) = &outcome {
            tracing::warn!(run = %id, error = %e, "retention run failed");
        }
        Ok(())
    }

    async fn delete_planned(&self, id: Uuid) -> Result<()> {
        let run = sqlx::query!(
            "SELECT r.planned, r.deleted, r.skipped, r.rule, p.name FROM retention_runs r
             JOIN repositories p ON p.id = r.repository_id WHERE r.id = $1",
            id
        )
        .fetch_one(self.pool())
        .await?;
        let planned: Vec<Deletion> = serde_json::from_value(run.planned).map_err(Error::internal)?;
        let policy: Policy = serde_json::from_value(run.rule).map_err(Error::internal)?;
        let done: Vec<Deletion> = serde_json::from_value(run.deleted).map_err(Error::internal)?;
        let skipped: Vec<Deletion> = serde_json::from_value(run.skipped).map_err(Error::internal)?;
        let upstream = sqlx::query_scalar!("SELECT url FROM registries WHERE master")
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| Error::Unavailable("no master registry is registered".into()))?;
        let scope = Scope {
            repository: RepositoryName::parse("repository", &run.name)?,
            actions: [Action::Pull, Action::Delete].into(),
        };
        let (token, _) = self.signer.issue(
            &format!("retention:{id}"),
            vec![access::grant(&scope, &[Action::Pull, Action::Delete].into())],
        )?;
        for d in planned
            .iter()
            .filter(|d| !done.iter().chain(&skipped).any(|x| x.digest == d.digest))
        {
            self.delete_one(id, &run.name, &policy, d, &upstream, &token).await?;
        }
        Ok(())
    }

    /// Deletes one manifest unless its tags changed against the plan: read
    /// locked, deleted at the registry, moved to `deleted` and recorded in
    /// one transaction.
    async fn delete_one(
        &self,
        run: Uuid,
        repository: &str,
        policy: &Policy,
        d: &Deletion,
        upstream: &str,
        token: &str,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let on_it = sqlx::query!(
            "SELECT t.name, t.state FROM tags t JOIN repositories r ON r.id = t.repository_id
             WHERE r.name = $1 AND t.digest = $2 AND t.state <> 'deleted' FOR UPDATE OF t",
            repository,
            d.digest
        )
        .fetch_all(&mut *tx)
        .await?;
        let why_kept = on_it.iter().find_map(|t| {
            if policy.keep_released && t.state == State::Released.as_str() {
                Some(format!("kept: {} was released meanwhile", t.name))
            } else if !d.tags.contains(&t.name) {
                Some(format!("kept: {} points at it now", t.name))
            } else {
                None
            }
        });
        if let Some(reason) = why_kept {
            let skipped = Deletion { reason, ..d.clone() };
            sqlx::query!(
                "UPDATE retention_runs SET skipped = skipped || $2::jsonb,
                        claimed_until = now() + make_interval(secs => $3)
                 WHERE id = $1",
                run,
                serde_json::json!([skipped]),
                CLAIM.as_secs_f64(),
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(());
        }
        let url = format!("{upstream}/v2/{repository}/manifests/{}", d.digest);
        let response = self
            .http
            .delete(&url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("the registry did not answer a delete: {e}")))?;
        let status = response.status();
        // 404: already gone (a run resumed after the registry deleted it).
        if !(status.is_success() || status == reqwest::StatusCode::NOT_FOUND) {
            let body = response.text().await.unwrap_or_default();
            return Err(Error::Unavailable(format!(
                "the registry refused to delete {repository}@{}: {status} {}",
                d.digest,
                body.chars().take(300).collect::<String>()
            )));
        }
        self.catalog.deleted(&mut tx, repository, &d.digest).await?;
        sqlx::query!(
            "UPDATE retention_runs SET deleted = deleted || $2::jsonb,
                    claimed_until = now() + make_interval(secs => $3)
             WHERE id = $1",
            run,
            serde_json::json!([d]),
            CLAIM.as_secs_f64(),
        )
        .execute(&mut *tx)
        .await?;
        self.outbox.commit(tx).await?;
        tracing::info!(run = %run, repository, digest = %d.digest, "retention deleted a manifest");
        Ok(())
    }

    /// One run. Members of its tenant.
    ///
    /// # Errors
    /// No such run the caller may see.
    pub async fn run(&self, caller: &Caller, id: Uuid) -> Result<Run> {
        let row = sqlx::query_as!(
            RunRow,
            "SELECT id, repository_id, tenant_id, trigger, state, actor, rule, planned, deleted, skipped, error,
                    started_at, finished_at
             FROM retention_runs WHERE id = $1",
            id
        )
        .fetch_optional(self.pool())
        .await?
        .filter(|r| caller.can_see(r.tenant_id))
        .ok_or_else(|| Error::not_found("retention run", id))?;
        row.try_into()
    }

    /// A page of a repository's runs, newest first. Members of its tenant.
    ///
    /// # Errors
    /// No such repository the caller may see.
    pub async fn runs(&self, caller: &Caller, repository: Uuid, page: Page) -> Result<(Vec<Run>, String)> {
        let (_, tenant) = self.repository(caller, repository).await?;
        let rows = sqlx::query_as!(
            RunRow,
            "SELECT id, repository_id, tenant_id, trigger, state, actor, rule, planned, deleted, skipped, error,
                    started_at, finished_at
             FROM retention_runs
             WHERE repository_id = $1 AND tenant_id = $2 AND ($3::uuid IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
            repository,
            tenant,
            page.after,
            page.fetch(),
        )
        .fetch_all(self.pool())
        .await?;
        let runs = rows.into_iter().map(Run::try_from).collect::<Result<Vec<_>>>()?;
        Ok(page.finish(runs, |r| r.id))
    }

    /// Sets where this host finds registry `id`'s configuration for garbage
    /// collection (empty: the platform does not collect it). Platform
    /// administrators.
    ///
    /// # Errors
    /// Not allowed, a relative path, or no such registry.
    pub async fn set_gc_config(&self, caller: &Caller, registry: Uuid, path: &str) -> Result<()> {
        caller.require_platform_admin()?;
        let path = path.trim();
        if !path.is_empty() && (!Path::new(path).is_absolute() || path.chars().any(char::is_control)) {
            return Err(Error::invalid(
                "config",
                "must be an absolute path on the images service's host",
            ));
        }
        let set = sqlx::query!("UPDATE registries SET gc_config = $2 WHERE id = $1", registry, path)
            .execute(self.pool())
            .await?;
        if set.rows_affected() == 0 {
            return Err(Error::not_found("registry", registry));
        }
        Ok(())
    }

    /// Queues a collection of registry `id` now (or answers the one queued
    /// or under way). Platform administrators.
    ///
    /// # Errors
    /// Not allowed, or no such registry.
    pub async fn collect(&self, caller: &Caller, registry: Uuid) -> Result<GcRun> {
        caller.require_platform_admin()?;
        let exists = sqlx::query_scalar!("SELECT id FROM registries WHERE id = $1", registry)
            .fetch_optional(self.pool())
            .await?;
        if exists.is_none() {
            return Err(Error::not_found("registry", registry));
        }
        sqlx::query!(
            "INSERT INTO gc_runs (id, registry_id, trigger, state) VALUES ($1, $2, 'manual', 'pending')
             ON CONFLICT DO NOTHING",
            id::new_id(),
            registry
        )
        .execute(self.pool())
        .await?;
        let open = sqlx::query_as!(
            GcRun,
            "SELECT id, registry_id, trigger, state, blobs_deleted, freed_bytes, output, error, created_at, finished_at
             FROM gc_runs WHERE registry_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
            registry
        )
        .fetch_one(self.pool())
        .await?;
        Ok(open)
    }

    /// A page of a registry's collections, newest first. Platform
    /// administrators.
    ///
    /// # Errors
    /// Not allowed.
    pub async fn gc_runs(&self, caller: &Caller, registry: Uuid, page: Page) -> Result<(Vec<GcRun>, String)> {
        caller.require_platform_admin()?;
        let rows = sqlx::query_as!(
            GcRun,
            "SELECT id, registry_id, trigger, state, blobs_deleted, freed_bytes, output, error, created_at, finished_at
             FROM gc_runs WHERE registry_id = $1 AND ($2::uuid IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3",
            registry,
            page.after,
            page.fetch(),
        )
        .fetch_all(self.pool())
        .await?;
        Ok(page.finish(rows, |g| g.id))
    }

    /// Runs due rules, resumes interrupted runs and moves collections
    /// along until `stop`.
    ///
    /// # Errors
    /// Never while running; `Ok` at shutdown.
    pub async fn run_scheduler(self, stop: CancellationToken) -> Result<()> {
        loop {
            if let Err(e) = self.turn().await {
                tracing::warn!(error = %e, "retention turn failed; retrying");
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.settings.poll) => {}
            }
        }
    }

    /// One look for due work.
    ///
    /// # Errors
    /// The database fails.
    pub async fn turn(&self) -> Result<()> {
        self.collections().await?;
        if writes_frozen(self.pool()).await? {
            return Ok(());
        }
        // Interrupted runs first: their process's claim ran out.
        let interrupted = sqlx::query_scalar!(
            "UPDATE retention_runs SET claimed_until = now() + make_interval(secs => $1)
             WHERE id IN (SELECT id FROM retention_runs WHERE state = 'running' AND claimed_until < now()
                          LIMIT 10 FOR UPDATE SKIP LOCKED)
             RETURNING id",
            CLAIM.as_secs_f64(),
        )
        .fetch_all(self.pool())
        .await?;
        for id in interrupted {
            tracing::info!(run = %id, "resuming an interrupted retention run");
            self.carry_out(id).await?;
        }
        let due = sqlx::query!(
            "UPDATE retention_rules SET next_run_at = now() + make_interval(secs => $1)
             WHERE repository_id IN (SELECT repository_id FROM retention_rules WHERE next_run_at <= now()
                                     ORDER BY next_run_at LIMIT 10 FOR UPDATE SKIP LOCKED)
             RETURNING repository_id, tenant_id",
            self.settings.interval.as_secs_f64(),
        )
        .fetch_all(self.pool())
        .await?;
        for r in due {
            if let Some(rule) = self.stored_rule(r.repository_id, r.tenant_id).await? {
                let run = self.start(&rule, "schedule", "retention").await?;
                self.carry_out(run).await?;
            }
        }
        Ok(())
    }

    /// Moves each open collection one step: pending -> draining (or
    /// skipped without a configuration), draining -> collecting once
    /// earlier tokens ran out, collecting -> its result.
    async fn collections(&self) -> Result<()> {
        let claimed = sqlx::query!(
            r#"UPDATE gc_runs g SET claimed_until = now() + make_interval(secs => $1)
             FROM registries r
             WHERE r.id = g.registry_id AND g.id IN (
                 SELECT id FROM gc_runs WHERE state IN ('pending', 'draining', 'collecting')
                   AND not_before <= now() AND (claimed_until IS NULL OR claimed_until < now())
                 FOR UPDATE SKIP LOCKED)
             RETURNING g.id AS "id!", g.state AS "state!", g.writes_from, r.gc_config AS "gc_config!""#,
            CLAIM.as_secs_f64(),
        )
        .fetch_all(self.pool())
        .await?;
        for g in claimed {
            match g.state.as_str() {
                "pending" if g.gc_config.is_empty() => {
                    let why = "no configuration of this registry is known to the images service: set one to collect it";
                    self.end_gc(g.id, "skipped", 0, 0, "", Some(why)).await?;
                }
                "pending" => {
                    sqlx::query!(
                        "UPDATE gc_runs SET state = 'draining', writes_from = now() + make_interval(secs => $2),
                                claimed_until = NULL WHERE id = $1",
                        g.id,
                        self.settings.gc_drain.as_secs_f64(),
                    )
                    .execute(self.pool())
                    .await?;
                }
                // A collector interrupted by a restart runs again: marking and
                // sweeping again is harmless.
                "draining" | "collecting" if g.writes_from.is_some_and(|w| w <= Utc::now()) => {
                    sqlx::query!("UPDATE gc_runs SET state = 'collecting' WHERE id = $1", g.id)
                        .execute(self.pool())
                        .await?;
                    self.garbage_collect(g.id, &g.gc_config).await?;
                }
                _ => {
                    sqlx::query!("UPDATE gc_runs SET claimed_until = NULL WHERE id = $1", g.id)
                        .execute(self.pool())
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn garbage_collect(&self, id: Uuid, config: &str) -> Result<()> {
        let root = storage_root(Path::new(config));
        let before = root.as_deref().map(folder_size);
        let (binary, config_path) = (self.settings.registry_binary.clone(), config.to_string());
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new(binary)
                .arg("garbage-collect")
                .arg(config_path)
                .stdin(std::process::Stdio::null())
                .output()
        })
        .await
        .map_err(Error::internal)?;
        let after = root.as_deref().map(folder_size);
        let freed = match (before, after) {
            (Some(b), Some(a)) => b.saturating_sub(a),
            _ => 0,
        };
        match output {
            Ok(out) => {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                let blobs = i32::try_from(collected_blobs(&text)).unwrap_or(i32::MAX);
                let end = tail(&text, OUTPUT_TAIL);
                if out.status.success() {
                    let freed = i64::try_from(freed).unwrap_or(i64::MAX);
                    self.end_gc(id, "succeeded", blobs, freed, &end, None).await
                } else {
                    let why = format!("the collector exited with {}", out.status);
                    self.end_gc(id, "failed", blobs, 0, &end, Some(&why)).await
                }
            }
            Err(e) => {
                let why = format!("could not run {}: {e}", self.settings.registry_binary);
                self.end_gc(id, "failed", 0, 0, "", Some(&why)).await
            }
        }
    }

    async fn end_gc(
        &self,
        id: Uuid,
        state: &str,
        blobs: i32,
        freed: i64,
        output: &str,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query!(
            "UPDATE gc_runs SET state = $2, blobs_deleted = $3, freed_bytes = $4, output = $5, error = $6,
                    finished_at = now(), claimed_until = NULL
             WHERE id = $1",
            id,
            state,
            blobs,
            freed,
            output,
            error,
        )
        .execute(self.pool())
        .await?;
        tracing::info!(gc = %id, state, blobs, freed, "registry garbage collection ended");
        Ok(())
    }
}

/// The storage folder a registry configuration names
/// (`storage.filesystem.rootdirectory`), if it is readable here.
fn storage_root(config: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(config).ok()?;
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) {
        return json["storage"]["filesystem"]["rootdirectory"]
            .as_str()
            .map(PathBuf::from);
    }
    // YAML: the one key is enough, and it is unique in a registry configuration.
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("rootdirectory:"))
        .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\''))
        .find(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Bytes of every file under `dir`.
fn folder_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => folder_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// How many blobs the collector's output says it deleted.
fn collected_blobs(output: &str) -> usize {
    output
        .lines()
        .filter(|l| l.contains("blob eligible for deletion"))
        .count()
}

/// The last `max` bytes of `text` (on a character boundary).
fn tail(text: &str, max: usize) -> String {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minutes * 60, 0).unwrap()
    }

    fn tag(name: &str, digest: &str, state: State, minute: i64) -> LiveTag {
        LiveTag {
            name: name.into(),
            digest: digest.into(),
            state,
            pushed_at: at(minute),
        }
    }

    fn policy(keep_last: Option<u32>, keep_released: bool, untagged_days: Option<u32>) -> Policy {
        Policy {
            keep_last,
            keep_released,
            untagged_days,
        }
    }

    #[test]
    fn the_newest_are_kept_and_a_released_tag_never_goes_when_the_rule_says_so() {
        let tags = [
            tag("1.0", "sha256:a", State::Released, 1),
            tag("1.1", "sha256:b", State::Pushed, 2),
            tag("1.2", "sha256:c", State::Tested, 3),
            tag("1.3", "sha256:d", State::Pushed, 4),
        ];
        let got = plan(&policy(Some(2), true, None), &tags, &[], at(10));
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].digest.as_str(), got[0].tags.clone()),
            ("sha256:b", vec!["1.1".to_string()])
        );
        let got = plan(&policy(Some(2), false, None), &tags, &[], at(10));
        let digests: Vec<&str> = got.iter().map(|d| d.digest.as_str()).collect();
        assert_eq!(digests, ["sha256:a", "sha256:b"]);
    }

    #[test]
    fn a_digest_a_kept_tag_shares_is_not_deleted() {
        let tags = [
            tag("old", "sha256:a", State::Pushed, 1),
            tag("also-old", "sha256:b", State::Pushed, 2),
            tag("latest", "sha256:a", State::Pushed, 3),
            tag("stale", "sha256:b", State::Pushed, 0),
        ];
        let got = plan(&policy(Some(1), true, None), &tags, &[], at(10));
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].digest, "sha256:b");
        assert_eq!(got[0].tags, vec!["also-old".to_string(), "stale".to_string()]);
        // A released tag on a digest keeps its other tags too.
        let tags = [
            tag("v1", "sha256:a", State::Released, 1),
            tag("v1-rc", "sha256:a", State::Pushed, 0),
            tag("v2", "sha256:c", State::Pushed, 5),
        ];
        assert!(plan(&policy(Some(1), true, None), &tags, &[], at(10)).is_empty());
    }

    #[test]
    fn untagged_manifests_go_after_their_days_unless_a_tag_points_at_them_again() {
        let tags = [tag("latest", "sha256:c", State::Pushed, 0)];
        let untagged = [
            Untagged {
                digest: "sha256:old".into(),
                since: at(-3 * 24 * 60),
            },
            Untagged {
                digest: "sha256:new".into(),
                since: at(-60),
            },
            Untagged {
                digest: "sha256:c".into(),
                since: at(-10 * 24 * 60),
            },
        ];
        let got = plan(&policy(None, true, Some(2)), &tags, &untagged, at(0));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].digest, "sha256:old");
        assert!(got[0].tags.is_empty());
        let now = plan(&policy(None, true, Some(0)), &tags, &untagged, at(0));
        assert_eq!(now.len(), 2);
    }

    fn signature_of(digest_hex: char) -> String {
        format!("sha256-{}.sig", digest_hex.to_string().repeat(64))
    }

    fn digest(hex: char) -> String {
        format!("sha256:{}", hex.to_string().repeat(64))
    }

    #[test]
    fn signature_tags_take_no_place_among_the_kept_and_go_only_with_their_image() {
        let (a, b, c) = (digest('a'), digest('b'), digest('c'));
        let tags = [
            tag("1.0", &a, State::Pushed, 1),
            tag("1.1", &b, State::Pushed, 2),
            tag("1.2", &c, State::Pushed, 3),
            // Signed after the newest push: by age they would be the newest "tags".
            tag(&signature_of('a'), "sha256:siga", State::Pushed, 10),
            tag(&signature_of('b'), "sha256:sigb", State::Pushed, 11),
            tag(&signature_of('c'), "sha256:sigc", State::Pushed, 12),
        ];
        let got = plan(&policy(Some(2), false, None), &tags, &[], at(20));
        let gone: Vec<(&str, Vec<String>)> = got.iter().map(|d| (d.digest.as_str(), d.tags.clone())).collect();
        assert_eq!(
            gone,
            [
                (a.as_str(), vec!["1.0".to_string()]),
                ("sha256:siga", vec![signature_of('a')]),
            ],
            "{got:?}"
        );
        assert!(got[1].reason.contains(&a), "{}", got[1].reason);
        // Nothing of an image's own goes: its signature stays too.
        assert!(plan(&policy(Some(3), false, None), &tags, &[], at(20)).is_empty());
        // An untagged image that goes takes its signature with it.
        let untagged = [Untagged {
            digest: digest('d'),
            since: at(-3 * 24 * 60),
        }];
        let tags = [
            tag("1.2", &c, State::Pushed, 3),
            tag(&signature_of('d'), "sha256:sigd", State::Pushed, 4),
        ];
        let got = plan(&policy(None, true, Some(1)), &tags, &untagged, at(0));
        let digests: Vec<&str> = got.iter().map(|d| d.digest.as_str()).collect();
        assert_eq!(digests, [digest('d').as_str(), "sha256:sigd"]);
    }

    #[test]
    fn a_rule_that_deletes_nothing_or_out_of_range_is_refused_naming_the_field() {
        assert_eq!(Policy::parse(None, true, None).unwrap_err().field(), Some("keep_last"));
        assert_eq!(
            Policy::parse(Some(0), true, None).unwrap_err().field(),
            Some("keep_last")
        );
        assert_eq!(
            Policy::parse(Some(3), true, Some(-1)).unwrap_err().field(),
            Some("untagged_days")
        );
        assert_eq!(
            Policy::parse(Some(3), false, Some(7)).unwrap(),
            policy(Some(3), false, Some(7))
        );
    }

    #[test]
    fn the_collectors_output_is_counted_and_its_storage_found() {
        let out = "repo\nshop: marking manifest sha256:a\nblob eligible for deletion: sha256:b\n\
                   blob eligible for deletion: sha256:c\nDeleting blob: /docker/registry/v2/blobs/sha256/b\n";
        assert_eq!(collected_blobs(out), 2);
        assert_eq!(tail("héllo", 4), "llo");
        let dir = std::env::temp_dir().join(format!("paas-retention-{}", Uuid::now_v7()));
        std::fs::create_dir_all(dir.join("data/x")).unwrap();
        std::fs::write(dir.join("data/x/blob"), [0u8; 100]).unwrap();
        let json = dir.join("config.yml");
        std::fs::write(
            &json,
            serde_json::json!({"storage": {"filesystem": {"rootdirectory": dir.join("data")}}}).to_string(),
        )
        .unwrap();
        assert_eq!(storage_root(&json), Some(dir.join("data")));
        assert_eq!(folder_size(&dir.join("data")), 100);
        let yaml = dir.join("config2.yml");
        std::fs::write(&yaml, "storage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n").unwrap();
        assert_eq!(storage_root(&yaml), Some(PathBuf::from("/var/lib/registry")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
