//! Image triggers: rules per application (a repository, a semver range like
//! `^1.2` or a glob like `release-*`, and the template parameter that takes
//! the tag). When images announces a pushed tag (`images.tag.pushed`) that
//! matches (for production, once released), the tag is recorded once per trigger ([`TagEvents`], in the
//! inbox transaction, so a redelivered event or the same tag pushed again
//! records nothing new), and [`Firer`] makes the release: deploying at once
//! outside production, awaiting a tenant administrator's approval in
//! production (the usual approval flow).

use std::time::Duration;

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::event::Event;
use kernel::inbox::Handler;
use kernel::page::Page;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::application::Applications;

/// The subject filter of the events handled here (tags pushed and moved).
pub const SUBJECTS: &str = "images.>";

/// How often due firings are looked for, and how long a firing that found
/// a release in progress waits before trying again.
pub const POLL: Duration = Duration::from_secs(1);
/// Firings given up after this many attempts (a release kept in progress).
const ATTEMPTS: i32 = 600;

/// Which tags a trigger takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagPattern {
    /// A semver range (`^1.2`, `~1.2.3`, `>=1.0, <2`); tags read as
    /// versions, a leading `v` and missing minor or patch allowed.
    Semver(semver::VersionReq),
    /// A glob: `*` any run of characters, `?` one.
    Glob(String),
}

impl TagPattern {
    /// Parses a pattern: a glob when it has `*` or `?`, else a semver range.
    ///
    /// # Errors
    /// Neither (names `field`).
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 128 {
            return Err(Error::invalid(
                field,
                "must be a semver range or a glob of 1-128 characters",
            ));
        }
        if raw.contains(['*', '?']) {
            if raw.chars().any(|c| !(c.is_ascii_alphanumeric() || "._-*?".contains(c))) {
                return Err(Error::invalid(field, "a glob may hold tag characters, * and ? only"));
            }
            return Ok(Self::Glob(raw.to_string()));
        }
        semver::VersionReq::parse(raw)
            .map(Self::Semver)
            .map_err(|e| Error::invalid(field, format!("not a semver range ({e}) nor a glob (no * or ?)")))
    }

    /// Whether `tag` matches.
    pub fn matches(&self, tag: &str) -> bool {
        match self {
            Self::Semver(req) => version(tag).is_some_and(|v| req.matches(&v)),
            Self::Glob(glob) => glob_matches(glob.as_bytes(), tag.as_bytes()),
        }
    }

    /// The pattern as written back.
    pub fn as_string(&self) -> String {
        match self {
            Self::Semver(req) => req.to_string(),
            Self::Glob(glob) => glob.clone(),
        }
    }
}

/// A tag read as a version: `v1.2` is 1.2.0; pre-releases kept.
fn version(tag: &str) -> Option<semver::Version> {
    let tag = tag.strip_prefix('v').unwrap_or(tag);
    let (core, rest) = match tag.find(['-', '+']) {
        Some(i) => tag.split_at(i),
        None => (tag, ""),
    };
    let parts = core.split('.').count();
    let padded = match parts {
        1 => format!("{core}.0.0{rest}"),
        2 => format!("{core}.0{rest}"),
        _ => tag.to_string(),
    };
    semver::Version::parse(&padded).ok()
}

fn glob_matches(glob: &[u8], text: &[u8]) -> bool {
    match (glob.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob_matches(&glob[1..], text) || (!text.is_empty() && glob_matches(glob, &text[1..])),
        (Some(b'?'), Some(_)) => glob_matches(&glob[1..], &text[1..]),
        (Some(g), Some(t)) if g == t => glob_matches(&glob[1..], &text[1..]),
        _ => false,
    }
}

/// A trigger as stored, with its newest firings.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// Its id.
    pub id: Uuid,
    /// The application's tenant.
    pub tenant_id: Uuid,
    /// The application released.
    pub application_id: Uuid,
    /// `<tenant>/<project>/<name>`.
    pub repository: String,
    /// The tags taken.
    pub tags: String,
    /// The parameter given the tag.
    pub parameter: String,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// The newest ten tags it took.
    pub firings: Vec<Firing>,
}

/// A tag a trigger took.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Firing {
    /// The tag.
    pub tag: String,
    /// Its digest when pushed.
    pub digest: String,
    /// pending, released, failed.
    pub state: String,
    /// The release made.
    pub release_id: Option<Uuid>,
    /// Why it failed, or what it waits for.
    pub message: String,
    /// When it matched.
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct TriggerRow {
    id: Uuid,
    tenant_id: Uuid,
    application_id: Uuid,
    repository: String,
    tags: String,
    parameter: String,
    created_by: String,
    created_at: DateTime<Utc>,
}

/// What a trigger is made of.
#[derive(Debug, Clone)]
pub struct NewTrigger {
    /// The repository watched.
    pub repository: String,
    /// Its tags taken.
    pub tags: TagPattern,
    /// The template parameter given the tag.
    pub parameter: String,
}

impl NewTrigger {
    /// Parses a request.
    ///
    /// # Errors
    /// A bad field, named.
    pub fn parse(repository: &str, tags: &str, parameter: &str) -> Result<Self> {
        let repository = repository.trim();
        let segments: Vec<&str> = repository.split('/').collect();
        if segments.len() != 3
            || segments.iter().any(|s| {
                s.is_empty()
                    || !s
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            })
        {
            return Err(Error::invalid(
                "repository",
                "must be a platform repository, <tenant>/<project>/<name>",
            ));
        }
        let parameter = parameter.trim();
        if parameter.is_empty()
            || parameter.len() > 63
            || !parameter.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(Error::invalid(
                "parameter",
                "must name a template parameter (letters, digits, _)",
            ));
        }
        Ok(Self {
            repository: repository.to_string(),
            tags: TagPattern::parse("tags", tags)?,
            parameter: parameter.to_string(),
        })
    }
}

/// Image triggers in the apps schema.
#[derive(Clone)]
pub struct Triggers {
    pool: PgPool,
    applications: Applications,
}

impl Triggers {
    /// Triggers in `pool`, releasing through `applications`.
    pub fn new(pool: PgPool, applications: Applications) -> Self {
        Self { pool, applications }
    }

    async fn with_firings(&self, row: TriggerRow) -> Result<Trigger> {
        let firings = sqlx::query_as::<_, Firing>(
            "SELECT tag, digest, state, release_id, message, created_at FROM image_trigger_firings
             WHERE trigger_id = $1 AND tenant_id = $2 ORDER BY created_at DESC LIMIT 10",
        )
        .bind(row.id)
        .bind(row.tenant_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Trigger {
            id: row.id,
            tenant_id: row.tenant_id,
            application_id: row.application_id,
            repository: row.repository,
            tags: row.tags,
            parameter: row.parameter,
            created_by: row.created_by,
            created_at: row.created_at,
            firings,
        })
    }

    /// Makes a trigger on `application`: developers outside production,
    /// tenant administrators in it (like releasing there).
    ///
    /// # Errors
    /// The application not visible, a role too low.
    pub async fn create(&self, caller: &Caller, application: Uuid, new: NewTrigger) -> Result<Trigger> {
        let app = self.applications.get(caller, application).await?;
        let role = if app.environment == "production" {
            Role::TenantAdmin
        } else {
            Role::Developer
        };
        caller.require(app.tenant_id, role, "application", app.id)?;
        let row = sqlx::query_as::<_, TriggerRow>(
            "INSERT INTO image_triggers (id, tenant_id, application_id, repository, tags, parameter, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING id, tenant_id, application_id, repository, tags, parameter, created_by, created_at",
        )
        .bind(id::new_id())
        .bind(app.tenant_id)
        .bind(app.id)
        .bind(&new.repository)
        .bind(new.tags.as_string())
        .bind(&new.parameter)
        .bind(&caller.subject)
        .fetch_one(&self.pool)
        .await?;
        self.with_firings(row).await
    }

    /// A page of an application's triggers.
    ///
    /// # Errors
    /// The application not visible.
    pub async fn list(&self, caller: &Caller, application: Uuid, page: Page) -> Result<(Vec<Trigger>, String)> {
        let app = self.applications.get(caller, application).await?;
        let rows = sqlx::query_as::<_, TriggerRow>(
            "SELECT id, tenant_id, application_id, repository, tags, parameter, created_by, created_at
             FROM image_triggers WHERE application_id = $1 AND tenant_id = $2 AND ($3::uuid IS NULL OR id > $3)
             ORDER BY id LIMIT $4",
        )
        .bind(app.id)
        .bind(app.tenant_id)
        .bind(page.after)
        .bind(page.fetch())
        .fetch_all(&self.pool)
        .await?;
        let (rows, next) = page.finish(rows, |r| r.id);
        let mut triggers = Vec::with_capacity(rows.len());
        for row in rows {
            triggers.push(self.with_firings(row).await?);
        }
        Ok((triggers, next))
    }

    /// Deletes a trigger (its firings with it; releases made stay).
    ///
    /// # Errors
    /// Not visible, a role too low.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let visible = caller.visible_tenants();
        let found = sqlx::query_as::<_, (Uuid, Uuid)>(
            "SELECT tenant_id, application_id FROM image_triggers WHERE id = $1 AND ($2::uuid[] IS NULL OR tenant_id = ANY($2))",
        )
        .bind(id)
        .bind(visible.as_deref())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::not_found("image trigger", id))?;
        let app = self.applications.get(caller, found.1).await?;
        let role = if app.environment == "production" {
            Role::TenantAdmin
        } else {
            Role::Developer
        };
        caller.require(found.0, role, "image trigger", id)?;
        sqlx::query("DELETE FROM image_triggers WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(found.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Records each tag matching a trigger of the tag's tenant, once per
/// trigger and tag: when pushed for applications outside production, when
/// released (`images.lifecycle.changed`) for production ones, whose
/// admission takes released images only.
pub struct TagEvents;

/// `images.tag.pushed`
const PUSHED: &str = "images.tag.pushed";
/// `images.lifecycle.changed`
const LIFECYCLE_CHANGED: &str = "images.lifecycle.changed";

impl Handler for TagEvents {
    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<()> {
        let released = match event.kind() {
            PUSHED => false,
            LIFECYCLE_CHANGED => true,
            _ => return Ok(()),
        };
        let Some(tenant) = event.tenant() else {
            return Ok(());
        };
        let changed: pb::TagChanged = event.payload()?;
        if released && changed.state != pb::TagState::Released as i32 {
            return Ok(());
        }
        let triggers = sqlx::query_as::<_, (Uuid, Uuid, String, String)>(
            "SELECT t.id, t.application_id, t.tags, a.environment FROM image_triggers t
             JOIN applications a ON a.id = t.application_id AND a.tenant_id = t.tenant_id
             WHERE t.tenant_id = $1 AND t.repository = $2",
        )
        .bind(tenant)
        .bind(&changed.repository)
        .fetch_all(&mut *tx)
        .await?;
        for (trigger, application, tags, environment) in triggers {
            if (environment == "production") != released {
                continue;
            }
            // Stored patterns parsed when made; one that no longer parses matches nothing.
            let Ok(pattern) = TagPattern::parse("tags", &tags) else {
                continue;
            };
            if !pattern.matches(&changed.tag) {
                continue;
            }
            sqlx::query(
                "INSERT INTO image_trigger_firings (trigger_id, tag, digest, tenant_id, application_id)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (trigger_id, tag) DO NOTHING",
            )
            .bind(trigger)
            .bind(&changed.tag)
            .bind(&changed.digest)
            .bind(tenant)
            .bind(application)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}

/// Makes the releases of pending firings.
pub struct Firer {
    pool: PgPool,
    applications: Applications,
}

#[derive(sqlx::FromRow)]
struct Due {
    trigger_id: Uuid,
    tag: String,
    application_id: Uuid,
    parameter: String,
    attempts: i32,
}

impl Firer {
    /// A firer over `pool`, releasing through `applications`.
    pub fn new(pool: PgPool, applications: Applications) -> Self {
        Self { pool, applications }
    }

    /// Fires due firings every [`POLL`] until `stop`.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        loop {
            if let Err(e) = self.fire_due().await {
                tracing::warn!(error = %e, "image triggers: firing failed; trying again");
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Claims and fires the due firings, one at a time.
    ///
    /// # Errors
    /// The database fails.
    pub async fn fire_due(&self) -> Result<()> {
        loop {
            // Claimed by pushing its next attempt out: another replica skips it meanwhile.
            let due = sqlx::query_as::<_, Due>(
                "UPDATE image_trigger_firings f SET attempts = attempts + 1, next_attempt_at = now() + interval '5 seconds'
                 FROM image_triggers t
                 WHERE t.id = f.trigger_id AND (f.trigger_id, f.tag) = (
                     SELECT trigger_id, tag FROM image_trigger_firings
                     WHERE state = 'pending' AND next_attempt_at <= now()
                     ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING f.trigger_id, f.tag, f.application_id, t.parameter, f.attempts",
            )
            .fetch_optional(&self.pool)
            .await?;
            let Some(due) = due else { return Ok(()) };
            self.fire(due).await?;
        }
    }

    async fn fire(&self, due: Due) -> Result<()> {
        let caller = Caller::service(crate::NAME);
        let (parameter, tag) = (due.parameter.clone(), due.tag.clone());
        let made = self
            .applications
            .release(
                &caller,
                due.application_id,
                move |mut b| {
                    b.parameters.insert(parameter, Value::String(tag));
                    Ok(b)
                },
                None,
            )
            .await;
        let (state, release, message, retry) = match made {
            Ok(r) => ("released", Some(r.id), String::new(), false),
            // A release in progress: this one waits its turn.
            Err(Error::FailedPrecondition(m)) if due.attempts < ATTEMPTS => ("pending", None, m, true),
            Err(Error::Unavailable(m)) if due.attempts < ATTEMPTS => ("pending", None, m, true),
            Err(e @ Error::Internal(_)) => return Err(e),
            Err(e) => ("failed", None, e.to_string(), false),
        };
        sqlx::query(
            "UPDATE image_trigger_firings SET state = $3, release_id = $4, message = $5,
                    next_attempt_at = CASE WHEN $6 THEN now() + interval '1 second' ELSE next_attempt_at END,
                    updated_at = now()
             WHERE trigger_id = $1 AND tag = $2",
        )
        .bind(due.trigger_id)
        .bind(&due.tag)
        .bind(state)
        .bind(release)
        .bind(message)
        .bind(retry)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_ranges_read_tags_as_versions() {
        let p = TagPattern::parse("tags", "^1.2").unwrap();
        assert!(p.matches("1.2.0") && p.matches("v1.3") && p.matches("1.9.9"));
        assert!(!p.matches("2.0.0") && !p.matches("1.1.9") && !p.matches("latest"));
        let p = TagPattern::parse("tags", ">=1.0, <1.5").unwrap();
        assert!(p.matches("1.4") && !p.matches("1.5"));
    }

    #[test]
    fn globs_match_whole_tags() {
        let p = TagPattern::parse("tags", "release-*").unwrap();
        assert!(p.matches("release-2026.12") && p.matches("release-"));
        assert!(!p.matches("pre-release-1"));
        let p = TagPattern::parse("tags", "1.?.0").unwrap();
        assert!(p.matches("1.4.0") && !p.matches("1.14.0"));
    }

    #[test]
    fn bad_triggers_are_refused_naming_the_field() {
        let field = |r: Result<NewTrigger>| r.unwrap_err().field().map(str::to_string);
        assert_eq!(
            field(NewTrigger::parse("web", "^1", "tag")).as_deref(),
            Some("repository")
        );
        assert_eq!(
            field(NewTrigger::parse("a/b/c", "not a range", "tag")).as_deref(),
            Some("tags")
        );
        assert_eq!(
            field(NewTrigger::parse("a/b/c", "^1", "")).as_deref(),
            Some("parameter")
        );
        assert!(NewTrigger::parse("acme/shop/web", "^1.2", "tag").is_ok());
    }
}
