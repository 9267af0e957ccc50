//! The catalog: repositories and tags per tenant and project, with what the
//! registry says of each image, their lifecycle state, and each tenant's
//! storage quota. Pushes and deletions arrive from the registry's
//! notifications ([`crate::notification`]); lifecycle moves from the API.

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::event::EventType;
use kernel::outbox::{self, Outbox};
use kernel::page::Page;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::inspect::{ImageMetadata, ImagePlatform};
use crate::lifecycle::State;

/// `images.tag.pushed`
pub const TAG_PUSHED: EventType = EventType::new("images", "tag", "pushed");
/// `images.tag.deleted`
pub const TAG_DELETED: EventType = EventType::new("images", "tag", "deleted");
/// `images.lifecycle.changed`
pub const LIFECYCLE_CHANGED: EventType = EventType::new("images", "lifecycle", "changed");

/// A repository as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Repository {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Its project.
    pub project_id: Uuid,
    /// `<tenant>/<project>/<name>`.
    pub name: String,
    /// Tags not deleted.
    pub tag_count: i64,
    /// First push.
    pub created_at: DateTime<Utc>,
    /// Last push.
    pub updated_at: DateTime<Utc>,
}

/// A tag as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    /// Its id.
    pub id: Uuid,
    /// Its repository.
    pub repository_id: Uuid,
    /// The repository's name.
    pub repository: String,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// The tag.
    pub name: String,
    /// The image's metadata.
    pub meta: ImageMetadata,
    /// Its lifecycle state.
    pub state: State,
    /// Last push.
    pub pushed_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Search filters of a repository list.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Only this tenant.
    pub tenant: Option<Uuid>,
    /// Part of the name.
    pub query: String,
    /// `key` or `key=value` on one of its tags.
    pub label: String,
}

/// The catalog in the images schema.
#[derive(Clone)]
pub struct Catalog {
    outbox: Outbox,
}

/// A `LIKE` pattern matching names that contain `part` as typed: `%`, `_`
/// and `\` in it stand for themselves.
fn name_part_pattern(part: &str) -> String {
    let mut pattern = String::with_capacity(part.len() + 2);
    pattern.push('%');
    for c in part.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The select every tag read starts with (a macro, so queries stay literals).
macro_rules! select_tags {
    () => {
        "SELECT t.id, t.repository_id, r.name AS repository, t.tenant_id, t.name, t.digest, t.media_type, \
         t.size, t.platforms, t.created, t.labels, t.exposed_ports, t.entrypoint, t.cmd, t.\"user\", t.source, \
         t.revision, t.state, t.pushed_at, t.updated_at FROM tags t JOIN repositories r ON r.id = t.repository_id "
    };
}

#[derive(sqlx::FromRow)]
struct TagRow {
    id: Uuid,
    repository_id: Uuid,
    repository: String,
    tenant_id: Uuid,
    name: String,
    digest: String,
    media_type: String,
    size: i64,
    platforms: sqlx::types::Json<Vec<ImagePlatform>>,
    created: Option<DateTime<Utc>>,
    labels: sqlx::types::Json<std::collections::BTreeMap<String, String>>,
    exposed_ports: Vec<String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    user: String,
    source: String,
    revision: String,
    state: String,
    pushed_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<TagRow> for Tag {
    type Error = Error;

    fn try_from(r: TagRow) -> Result<Self> {
        Ok(Self {
            id: r.id,
            repository_id: r.repository_id,
            repository: r.repository,
            tenant_id: r.tenant_id,
            name: r.name,
            state: State::parse("state", &r.state).map_err(Error::internal)?,
            meta: ImageMetadata {
                digest: r.digest,
                media_type: r.media_type,
                size: r.size,
                platforms: r.platforms.0,
                created: r.created,
                labels: r.labels.0,
                exposed_ports: r.exposed_ports,
                entrypoint: r.entrypoint,
                cmd: r.cmd,
                user: r.user,
                source: r.source,
                revision: r.revision,
            },
            pushed_at: r.pushed_at,
            updated_at: r.updated_at,
        })
    }
}

fn changed(
    tenant: Uuid,
    repository: &str,
    tag: &str,
    digest: &str,
    state: State,
    previous: Option<State>,
) -> pb::TagChanged {
    pb::TagChanged {
        tenant_id: tenant.to_string(),
        repository: repository.to_string(),
        tag: tag.to_string(),
        digest: digest.to_string(),
        state: crate::grpc::state_to_pb(state) as i32,
        previous_state: previous.map_or(0, |p| crate::grpc::state_to_pb(p) as i32),
    }
}

impl Catalog {
    /// The catalog stored in the outbox's schema.
    pub fn new(outbox: Outbox) -> Self {
        Self { outbox }
    }

    /// Records a pushed tag in `tx`: its repository made if new, its metadata
    /// replaced; a tag pushed with another image starts its life again as
    /// `pushed` (the proxy keeps released ones from being overwritten).
    ///
    /// # Errors
    /// The database fails.
    pub async fn pushed(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        (tenant, project): (Uuid, Uuid),
        repository: &str,
        tag: &str,
        meta: &ImageMetadata,
    ) -> Result<()> {
        let repository_id = sqlx::query_scalar!(
            "INSERT INTO repositories (id, tenant_id, project_id, name) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET updated_at = now() RETURNING id",
            id::new_id(),
            tenant,
            project,
            repository,
        )
        .fetch_one(&mut **tx)
        .await?;
        let previous = sqlx::query!(
            "SELECT digest, state FROM tags WHERE repository_id = $1 AND name = $2 FOR UPDATE",
            repository_id,
            tag
        )
        .fetch_optional(&mut **tx)
        .await?;
        let state = match &previous {
            Some(p) if p.digest == meta.digest && p.state != "deleted" => State::parse("state", &p.state)?,
            _ => State::Pushed,
        };
        sqlx::query!(
            r#"INSERT INTO tags (id, repository_id, tenant_id, name, digest, media_type, size, platforms, created,
                 labels, exposed_ports, entrypoint, cmd, "user", source, revision, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             ON CONFLICT (repository_id, name) DO UPDATE SET digest = $5, media_type = $6, size = $7,
                 platforms = $8, created = $9, labels = $10, exposed_ports = $11, entrypoint = $12, cmd = $13,
                 "user" = $14, source = $15, revision = $16, state = $17, pushed_at = now(), updated_at = now()"#,
            id::new_id(),
            repository_id,
            tenant,
            tag,
            meta.digest,
            meta.media_type,
            meta.size,
            serde_json::to_value(&meta.platforms).map_err(Error::internal)?,
            meta.created,
            serde_json::to_value(&meta.labels).map_err(Error::internal)?,
            &meta.exposed_ports,
            &meta.entrypoint,
            &meta.cmd,
            meta.user,
            meta.source,
            meta.revision,
            state.as_str(),
        )
        .execute(&mut **tx)
        .await?;
        let prev_state = previous.and_then(|p| State::parse("state", &p.state).ok());
        outbox::record(
            tx,
            TAG_PUSHED,
            Some(tenant),
            &changed(tenant, repository, tag, &meta.digest, state, prev_state),
        )
        .await?;
        crate::scan::enqueue_on_push(tx, tenant, repository, &meta.digest).await?;
        Ok(())
    }

    /// Marks the tags of `repository` at `digest` deleted (the registry
    /// deletes manifests by digest), in `tx`.
    ///
    /// # Errors
    /// The database fails.
    pub async fn deleted(&self, tx: &mut Transaction<'_, Postgres>, repository: &str, digest: &str) -> Result<()> {
        let rows = sqlx::query!(
            r#"UPDATE tags t SET state = 'deleted', updated_at = now()
             FROM repositories r, (SELECT id, state FROM tags) old
             WHERE r.id = t.repository_id AND old.id = t.id AND r.name = $1 AND t.digest = $2
               AND t.state <> 'deleted'
             RETURNING t.tenant_id AS "tenant_id!", t.name AS "name!", old.state AS "old_state!""#,
            repository,
            digest
        )
        .fetch_all(&mut **tx)
        .await?;
        for r in rows {
            let previous = State::parse("state", &r.old_state).ok();
            let event = changed(r.tenant_id, repository, &r.name, digest, State::Deleted, previous);
            outbox::record(tx, TAG_DELETED, Some(r.tenant_id), &event).await?;
        }
        Ok(())
    }

    /// Counts a blob against its tenant's storage, once per digest, in `tx`.
    ///
    /// # Errors
    /// The database fails.
    pub async fn blob_stored(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        tenant: Uuid,
        digest: &str,
        size: i64,
    ) -> Result<()> {
        sqlx::query!(
            "INSERT INTO blobs (tenant_id, digest, size) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            tenant,
            digest,
            size
        )
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// A page of repositories the caller may see, in id order (the cursor is
    /// the last id), filtered by part of the name and by a label one of
    /// their tags carries.
    ///
    /// # Guarantees
    /// Each filter is answered by an index (labels from `repository_labels`
    /// in repository order, name parts by trigrams) and counts come from
    /// `repositories.tag_count`: a page costs the same with 100 tags or
    /// 100,000 (migration `20261210120000_catalog_search`).
    ///
    /// # Errors
    /// The caller may not see the tenant asked for.
    pub async fn repositories(
        &self,
        caller: &Caller,
        search: &Search,
        page: Page,
    ) -> Result<(Vec<Repository>, String)> {
        if let Some(t) = search.tenant
            && !caller.can_see(t)
        {
            return Err(Error::not_found("tenant", t));
        }
        let visible = caller.visible_tenants();
        let mut sql = sqlx::QueryBuilder::<Postgres>::new(
            "SELECT r.id, r.tenant_id, r.project_id, r.name, r.tag_count, r.created_at, r.updated_at FROM ",
        );
        // Pages follow the column the driving index is ordered by.
        let order = if search.label.is_empty() {
            sql.push("repositories r WHERE TRUE");
            "r.id"
        } else {
            let (key, value) = match search.label.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (search.label.as_str(), None),
            };
            sql.push("repository_labels l JOIN repositories r ON r.id = l.repository_id WHERE l.key = ")
                .push_bind(key.to_string());
            match value {
                Some(v) => sql.push(" AND l.value = ").push_bind(v.to_string()),
                None => sql.push(" AND l.value IS NULL"),
            };
            "l.repository_id"
        };
        if let Some(visible) = visible {
            sql.push(" AND r.tenant_id = ANY(").push_bind(visible).push(")");
        }
        if let Some(tenant) = search.tenant {
            sql.push(" AND r.tenant_id = ").push_bind(tenant);
        }
        if !search.query.is_empty() {
            sql.push(" AND r.name LIKE ")
                .push_bind(name_part_pattern(&search.query));
        }
        if let Some(after) = page.after {
            sql.push(format_args!(" AND {order} > ")).push_bind(after);
        }
        sql.push(format_args!(" ORDER BY {order} LIMIT "))
            .push_bind(page.fetch());
        // Planned for these values each time (an unnamed statement): a plan
        // cached for any values cannot tell a rare name part from a common one.
        let repos: Vec<Repository> = sql
            .build_query_as()
            .persistent(false)
            .fetch_all(self.outbox.pool())
            .await?;
        Ok(page.finish(repos, |r| r.id))
    }

    async fn repository_tenant(&self, caller: &Caller, repository: Uuid) -> Result<Uuid> {
        let tenant = sqlx::query_scalar!("SELECT tenant_id FROM repositories WHERE id = $1", repository)
            .fetch_optional(self.outbox.pool())
            .await?
            .filter(|t| caller.can_see(*t))
            .ok_or_else(|| Error::not_found("repository", repository))?;
        Ok(tenant)
    }

    /// A page of a repository's tags, without cosign's signature tags
    /// (`sha256-<hex>.sig`): their status is shown on the tag they sign.
    ///
    /// # Errors
    /// No such repository the caller may see.
    pub async fn tags(&self, caller: &Caller, repository: Uuid, page: Page) -> Result<(Vec<Tag>, String)> {
        let tenant = self.repository_tenant(caller, repository).await?;
        // `is_signature_tag`: migration 20261211400000_signature_tags.
        let sql = concat!(
            select_tags!(),
            "WHERE t.repository_id = $1 AND t.tenant_id = $2 AND ($3::uuid IS NULL OR t.id > $3) \
             AND NOT is_signature_tag(t.name) ORDER BY t.id LIMIT $4"
        );
        let rows: Vec<TagRow> = sqlx::query_as(sql)
            .bind(repository)
            .bind(tenant)
            .bind(page.after)
            .bind(page.fetch())
            .fetch_all(self.outbox.pool())
            .await?;
        let tags = rows.into_iter().map(Tag::try_from).collect::<Result<Vec<_>>>()?;
        Ok(page.finish(tags, |t| t.id))
    }

    /// One tag.
    ///
    /// # Errors
    /// No such tag the caller may see.
    pub async fn tag(&self, caller: &Caller, repository: Uuid, tag: &str) -> Result<Tag> {
        let tenant = self.repository_tenant(caller, repository).await?;
        let sql = concat!(
            select_tags!(),
            "WHERE t.repository_id = $1 AND t.tenant_id = $2 AND t.name = $3"
        );
        let row: Option<TagRow> = sqlx::query_as(sql)
            .bind(repository)
            .bind(tenant)
            .bind(tag)
            .fetch_optional(self.outbox.pool())
            .await?;
        row.ok_or_else(|| Error::not_found("tag", tag))?.try_into()
    }

    /// Moves a tag to `to`, checking the step and the caller's role for it.
    ///
    /// # Errors
    /// No such tag the caller may see, a role too low, or a move the
    /// lifecycle does not allow (naming both states).
    pub async fn move_tag(&self, caller: &Caller, repository: Uuid, tag: &str, to: State) -> Result<Tag> {
        let current = self.tag(caller, repository, tag).await?;
        caller.require(current.tenant_id, to.role_to_enter(), "tag", tag)?;
        current.state.check_move(to)?;
        let mut tx = self.outbox.pool().begin().await?;
        // Compare-and-set on the state read: a concurrent move makes this one fail.
        let moved = sqlx::query!(
            "UPDATE tags SET state = $3, updated_at = now() WHERE id = $1 AND state = $2 AND tenant_id = $4",
            current.id,
            current.state.as_str(),
            to.as_str(),
            current.tenant_id,
        )
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            return Err(Error::Conflict(
                "the tag's state changed meanwhile; read it again".to_string(),
            ));
        }
        let event = changed(
            current.tenant_id,
            &current.repository,
            tag,
            &current.meta.digest,
            to,
            Some(current.state),
        );
        outbox::record(&mut tx, LIFECYCLE_CHANGED, Some(current.tenant_id), &event).await?;
        self.outbox.commit(tx).await?;
        self.tag(caller, repository, tag).await
    }

    /// The state of `repository:tag`, if the catalog has it.
    ///
    /// # Errors
    /// The database fails.
    pub async fn state_of(&self, repository: &str, tag: &str) -> Result<Option<State>> {
        let state = sqlx::query_scalar!(
            "SELECT t.state FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE r.name = $1 AND t.name = $2",
            repository,
            tag
        )
        .fetch_optional(self.outbox.pool())
        .await?;
        state.map(|s| State::parse("state", &s)).transpose()
    }

    /// A tenant's storage limit (0: none) and use, in bytes.
    ///
    /// # Errors
    /// The database fails.
    pub async fn storage(&self, tenant: Uuid) -> Result<(i64, i64)> {
        let row = sqlx::query!(
            r#"SELECT (SELECT limit_bytes FROM storage_quotas WHERE tenant_id = $1) AS "limit",
                      (SELECT coalesce(sum(size), 0)::bigint FROM blobs WHERE tenant_id = $1) AS "used!""#,
            tenant
        )
        .fetch_one(self.outbox.pool())
        .await?;
        Ok((row.limit.unwrap_or(0), row.used))
    }

    /// Sets a tenant's storage limit (0: none). Platform administrators only.
    ///
    /// # Errors
    /// Not allowed, or a negative limit.
    pub async fn set_storage_limit(&self, caller: &Caller, tenant: Uuid, bytes: i64) -> Result<()> {
        caller.require_platform_admin()?;
        if bytes < 0 {
            return Err(Error::invalid("limit_bytes", "must be 0 (no limit) or more"));
        }
        sqlx::query!(
            "INSERT INTO storage_quotas (tenant_id, limit_bytes) VALUES ($1, $2)
             ON CONFLICT (tenant_id) DO UPDATE SET limit_bytes = $2",
            tenant,
            bytes
        )
        .execute(self.outbox.pool())
        .await?;
        Ok(())
    }

    /// What [`Catalog::storage`] says, for a caller who may see the tenant.
    ///
    /// # Errors
    /// The caller may not see the tenant.
    pub async fn storage_for(&self, caller: &Caller, tenant: Uuid) -> Result<(i64, i64)> {
        caller.require(tenant, Role::Viewer, "tenant", tenant)?;
        self.storage(tenant).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_part_matches_itself_wherever_it_stands() {
        assert_eq!(name_part_pattern("web"), "%web%");
        assert_eq!(name_part_pattern(""), "%%");
    }

    #[test]
    fn like_wildcards_in_a_name_part_stand_for_themselves() {
        assert_eq!(name_part_pattern("a_b%c\\d"), "%a\\_b\\%c\\\\d%");
    }
}
