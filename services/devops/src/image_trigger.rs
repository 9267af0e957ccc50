//! Image triggers: a pipeline runs when the image catalog announces a pushed
//! tag (`images.tag.pushed`, through images' outbox) whose repository and
//! tag match the trigger's globs, e.g. a base image `acme/base/*` tagged
//! `1.*` rebuilding the applications built on it. The run builds the
//! trigger's ref and gets the image as parameters (`IMAGE_REPOSITORY`,
//! `IMAGE_TAG`, `IMAGE_DIGEST`).
//!
//! Each event is taken once per trigger, keyed by the event's id
//! (`image_trigger_firings`), in the inbox transaction: a redelivered or
//! republished event starts nothing more. Only triggers of the event's
//! tenant are looked at.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::event::Event;
use kernel::inbox::Handler;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::definition::GitRef;
use crate::pipeline::{Pipeline, Pipelines};
use crate::run::{self, Trigger};

/// The subject filter of the events handled here.
pub const SUBJECTS: &str = "images.tag.pushed";
/// `images.tag.pushed`
const PUSHED: &str = "images.tag.pushed";
/// Most triggers per pipeline.
pub const MAX_PER_PIPELINE: i64 = 20;

/// A glob over repository names or tags: `*` any run of characters, `?` one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    /// Parses a glob of 1-255 characters of image names and tags (letters,
    /// digits, `._-/:`) and wildcards.
    ///
    /// # Errors
    /// Anything else, naming `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let raw = raw.trim();
        let ok = !raw.is_empty()
            && raw.len() <= 255
            && raw.chars().all(|c| c.is_ascii_alphanumeric() || "._-/:*?".contains(c));
        if ok {
            Ok(Self(raw.to_string()))
        } else {
            Err(Error::invalid(
                field,
                "must be 1-255 characters of names and tags, with * and ? as wildcards",
            ))
        }
    }

    /// Whether `text` matches the whole glob.
    pub fn matches(&self, text: &str) -> bool {
        glob_matches(self.0.as_bytes(), text.as_bytes())
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Iterative wildcard matching (no backtracking blow-up on `*a*a*a*b`).
fn glob_matches(glob: &[u8], text: &[u8]) -> bool {
    let (mut g, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match glob.get(g) {
            Some(b'*') => {
                star = Some((g, t));
                g += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                g += 1;
                t += 1;
            }
            _ => match star {
                Some((sg, st)) => {
                    g = sg + 1;
                    t = st + 1;
                    star = Some((sg, st + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|&c| c == b'*')
}

/// A trigger as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImageTrigger {
    /// Repositories taken (`acme/base/*`).
    pub repository: Glob,
    /// Tags taken (`*`, `1.*`).
    pub tags: Glob,
    /// What the run builds.
    pub git_ref: GitRef,
}

impl NewImageTrigger {
    /// Parses a request; `tags` empty takes every tag, `git_ref` empty builds `main`.
    ///
    /// # Errors
    /// A bad field, named.
    pub fn parse(repository: &str, tags: &str, git_ref: &str) -> Result<Self> {
        Ok(Self {
            repository: Glob::parse("repository", repository)?,
            tags: Glob::parse("tags", if tags.trim().is_empty() { "*" } else { tags })?,
            // Named as the API names it (`ref`).
            git_ref: GitRef::parse(
                "ref",
                if git_ref.trim().is_empty() {
                    "main"
                } else {
                    git_ref.trim()
                },
            )?,
        })
    }
}

/// A trigger as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ImageTrigger {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// The pipeline it runs.
    pub pipeline_id: Uuid,
    /// Repository glob.
    pub repository: String,
    /// Tag glob.
    pub tags: String,
    /// The full ref built.
    pub git_ref: String,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Image triggers in the devops schema.
#[derive(Clone)]
pub struct ImageTriggers {
    pool: PgPool,
    pipelines: Pipelines,
}

impl ImageTriggers {
    /// Triggers in `pipelines`' schema.
    pub fn new(pool: PgPool, pipelines: Pipelines) -> Self {
        Self { pool, pipelines }
    }

    /// Adds a trigger to a pipeline. Developers of its tenant.
    ///
    /// # Errors
    /// Not visible, not allowed, too many.
    pub async fn create(&self, caller: &Caller, pipeline: Uuid, new: NewImageTrigger) -> Result<ImageTrigger> {
        let p = self.pipelines.get(caller, pipeline).await?;
        caller.require(p.tenant_id, Role::Developer, "pipeline", p.id)?;
        let mut tx = self.pool.begin().await?;
        // The pipeline's row lock serialises creations, so the bound holds.
        sqlx::query("SELECT id FROM pipelines WHERE id = $1 AND tenant_id = $2 FOR UPDATE")
            .bind(p.id)
            .bind(p.tenant_id)
            .execute(&mut *tx)
            .await?;
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM image_triggers WHERE pipeline_id = $1 AND tenant_id = $2")
                .bind(p.id)
                .bind(p.tenant_id)
                .fetch_one(&mut *tx)
                .await?;
        if count >= MAX_PER_PIPELINE {
            return Err(Error::ResourceExhausted(format!(
                "a pipeline has at most {MAX_PER_PIPELINE} image triggers"
            )));
        }
        let trigger = sqlx::query_as::<_, ImageTrigger>(
            "INSERT INTO image_triggers (id, tenant_id, pipeline_id, repository, tags, git_ref, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, tenant_id, pipeline_id, repository, tags, git_ref, created_by, created_at"
        )
        .bind(id::new_id())
        .bind(p.tenant_id)
        .bind(p.id)
        .bind(new.repository.as_str())
        .bind(new.tags.as_str())
        .bind(new.git_ref.full())
        .bind(&caller.subject)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(trigger)
    }

    /// A pipeline's triggers.
    ///
    /// # Errors
    /// Not visible.
    pub async fn list(&self, caller: &Caller, pipeline: Uuid) -> Result<Vec<ImageTrigger>> {
        let p = self.pipelines.get(caller, pipeline).await?;
        Ok(sqlx::query_as::<_, ImageTrigger>(
            "SELECT id, tenant_id, pipeline_id, repository, tags, git_ref, created_by, created_at FROM image_triggers
             WHERE pipeline_id = $1 AND tenant_id = $2 ORDER BY id",
        )
        .bind(p.id)
        .bind(p.tenant_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Removes a trigger. Developers of its tenant.
    ///
    /// # Errors
    /// Not visible, not allowed.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let tenant: Uuid = sqlx::query_scalar(
            "SELECT tenant_id FROM image_triggers WHERE id = $1 AND ($2::uuid[] IS NULL OR tenant_id = ANY($2))",
        )
        .bind(id)
        .bind(caller.visible_tenants())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::not_found("image trigger", id))?;
        caller.require(tenant, Role::Developer, "image trigger", id)?;
        sqlx::query("DELETE FROM image_triggers WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Queues the runs of the triggers a pushed tag matches, once per event.
/// The conductor finds them on its next tick.
pub struct TagPushes;

impl Handler for TagPushes {
    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<()> {
        if event.kind() != PUSHED {
            return Ok(());
        }
        let Some(tenant) = event.tenant() else {
            return Ok(());
        };
        let pushed: pb::TagChanged = event.payload()?;
        let triggers = sqlx::query_as::<_, ImageTrigger>(
            "SELECT id, tenant_id, pipeline_id, repository, tags, git_ref, created_by, created_at FROM image_triggers
             WHERE tenant_id = $1 ORDER BY id",
        )
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await?;
        for trigger in triggers {
            // Stored globs were checked when made; one that no longer parses matches nothing.
            let (Ok(repository), Ok(tags)) = (
                Glob::parse("repository", &trigger.repository),
                Glob::parse("tags", &trigger.tags),
            ) else {
                continue;
            };
            if !repository.matches(&pushed.repository) || !tags.matches(&pushed.tag) {
                continue;
            }
            let Ok(git_ref) = GitRef::parse("git_ref", &trigger.git_ref) else {
                continue;
            };
            let fresh = sqlx::query_scalar::<_, Uuid>(
                "INSERT INTO image_trigger_firings (trigger_id, event_id, tenant_id, run_id, repository, tag, digest)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING run_id",
            )
            .bind(trigger.id)
            .bind(event.id())
            .bind(tenant)
            .bind(Uuid::nil())
            .bind(&pushed.repository)
            .bind(&pushed.tag)
            .bind(&pushed.digest)
            .fetch_optional(&mut *tx)
            .await?;
            if fresh.is_none() {
                continue;
            }
            let pipeline = sqlx::query_as::<_, Pipeline>(
                "SELECT id, tenant_id, name, repository, created_at, application_id, definition, definition_source, builds
                 FROM pipelines WHERE id = $1 AND tenant_id = $2",
            )
            .bind(trigger.pipeline_id)
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await?;
            let parameters = BTreeMap::from([
                ("IMAGE_REPOSITORY".to_string(), pushed.repository.clone()),
                ("IMAGE_TAG".to_string(), pushed.tag.clone()),
                ("IMAGE_DIGEST".to_string(), pushed.digest.clone()),
            ]);
            let run = run::enqueue(
                tx,
                &pipeline,
                Trigger {
                    kind: "image",
                    by: format!("image:{}:{}", pushed.repository, pushed.tag),
                    git_ref,
                    commit: None,
                    parameters,
                },
            )
            .await?;
            sqlx::query("UPDATE image_trigger_firings SET run_id = $3 WHERE trigger_id = $1 AND event_id = $2")
                .bind(trigger.id)
                .bind(event.id())
                .bind(run.id)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        let g = Glob::parse("repository", "acme/base/*").unwrap();
        assert!(g.matches("acme/base/debian") && g.matches("acme/base/"));
        assert!(!g.matches("acme/shop/web") && !g.matches("xacme/base/debian"));
        let g = Glob::parse("tags", "1.?.*").unwrap();
        assert!(g.matches("1.2.3") && g.matches("1.2."));
        assert!(!g.matches("1.22.3") && !g.matches("2.2.3"));
        assert!(Glob::parse("tags", "*").unwrap().matches(""));
        let g = Glob::parse("tags", "*a*a*a*a*b").unwrap();
        assert!(!g.matches(&"a".repeat(200)));
    }

    #[test]
    fn bad_triggers_are_refused_naming_the_field() {
        let field = |r: Result<NewImageTrigger>| r.unwrap_err().field().map(str::to_string);
        assert_eq!(
            field(NewImageTrigger::parse("", "*", "")).as_deref(),
            Some("repository")
        );
        assert_eq!(
            field(NewImageTrigger::parse("acme/base/*", "a b", "")).as_deref(),
            Some("tags")
        );
        assert_eq!(
            field(NewImageTrigger::parse("acme/base/*", "*", "bad..ref")).as_deref(),
            Some("ref")
        );
        let t = NewImageTrigger::parse("acme/base/*", "", "").unwrap();
        assert_eq!(
            (t.tags.as_str(), t.git_ref.full()),
            ("*", "refs/heads/main".to_string())
        );
    }
}
