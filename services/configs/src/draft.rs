//! Drafts: the items a config set's next release will hold. Developers of the
//! tenant edit them; every edit names the draft version it read, so two people
//! editing at once cannot overwrite each other unseen (the second gets a
//! conflict and reloads). Secret items are sealed before they are stored.

use kernel::caller::{Caller, Role};
use kernel::{Error, Result};
use sqlx::PgPool;
use uuid::Uuid;

use crate::config_set::ConfigSets;
use crate::format::{self, Format};
use crate::item::{ItemView, StoredItem, view_all};
use crate::secret::Sealer;

/// A draft as shown.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Its config set.
    pub config_set_id: Uuid,
    /// The version the next edit must name.
    pub version: i64,
    /// Who edited it last since the latest release; `None` when it is that release.
    pub last_editor: Option<String>,
    /// Its items, secret ones masked.
    pub items: Vec<ItemView>,
}

/// A validated item edit.
#[derive(Debug, Clone)]
pub struct NewItem {
    name: String,
    format: Format,
    secret: bool,
    content: String,
}

impl NewItem {
    /// Validates an item: its name, format, and that the content parses.
    ///
    /// # Errors
    /// The first bad field; a content error names the item and the line.
    pub fn parse(name: &str, format: &str, content: String, secret: bool) -> Result<Self> {
        format::validate_item_name(name)?;
        let format = Format::parse(format, name)?;
        format.validate(name, &content)?;
        Ok(Self {
            name: name.to_string(),
            format,
            secret,
            content,
        })
    }
}

/// Drafts in the configs schema.
#[derive(Clone)]
pub struct Drafts {
    pool: PgPool,
    sets: ConfigSets,
    sealer: Sealer,
}

/// Refuses an edit made on a stale read of the draft.
fn check_version(current: i64, read: i64) -> Result<()> {
    if current == read {
        Ok(())
    } else {
        Err(Error::Conflict(format!(
            "the draft changed since it was read (it is at version {current}, the edit names {read}): reload it and edit again"
        )))
    }
}

impl Drafts {
    /// Drafts of `sets`, sealing secrets with `sealer`.
    pub fn new(pool: PgPool, sets: ConfigSets, sealer: Sealer) -> Self {
        Self { pool, sets, sealer }
    }

    /// A set's draft. Members of its tenant.
    ///
    /// # Errors
    /// The set is not visible.
    pub async fn get(&self, caller: &Caller, set_id: Uuid) -> Result<Draft> {
        let set = self.sets.get(caller, set_id).await?;
        self.load(set.tenant_id, set_id).await
    }

    async fn load(&self, tenant: Uuid, set_id: Uuid) -> Result<Draft> {
        let head = sqlx::query!(
            "SELECT draft_version, last_editor FROM config_sets WHERE id = $1 AND tenant_id = $2",
            set_id,
            tenant
        )
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::not_found("config set", set_id))?;
        let items = sqlx::query_as!(
            StoredItem,
            "SELECT name, format, secret, content, sealed FROM config_draft_items
             WHERE config_set_id = $1 ORDER BY name",
            set_id
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(Draft {
            config_set_id: set_id,
            version: head.draft_version,
            last_editor: head.last_editor,
            items: view_all(&self.sealer, tenant, &items).await?,
        })
    }

    /// Adds or replaces an item. Developers of the tenant, on the version they read.
    ///
    /// # Errors
    /// Not allowed, or the draft moved on since `version` (conflict).
    pub async fn put_item(&self, caller: &Caller, set_id: Uuid, version: i64, item: NewItem) -> Result<Draft> {
        let set = self.sets.get(caller, set_id).await?;
        caller.require(set.tenant_id, Role::Developer, "config set", set_id)?;
        let (content, sealed) = if item.secret {
            (
                None,
                Some(self.sealer.seal(set.tenant_id, &item.name, &item.content).await?),
            )
        } else {
            (Some(item.content), None)
        };
        let mut tx = self.pool.begin().await?;
        let current = lock_version(&mut tx, set.tenant_id, set_id).await?;
        check_version(current, version)?;
        sqlx::query!(
            "INSERT INTO config_draft_items (config_set_id, name, format, secret, content, sealed)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (config_set_id, name) DO UPDATE
             SET format = EXCLUDED.format, secret = EXCLUDED.secret, content = EXCLUDED.content, sealed = EXCLUDED.sealed",
            set_id,
            item.name,
            item.format.as_str(),
            item.secret,
            content,
            sealed,
        )
        .execute(&mut *tx)
        .await?;
        bump(&mut tx, set_id, &caller.subject).await?;
        tx.commit().await?;
        self.load(set.tenant_id, set_id).await
    }

    /// Removes an item. Developers of the tenant, on the version they read.
    ///
    /// # Errors
    /// Not allowed, no such item, or the draft moved on since `version`.
    pub async fn delete_item(&self, caller: &Caller, set_id: Uuid, version: i64, name: &str) -> Result<Draft> {
        let set = self.sets.get(caller, set_id).await?;
        caller.require(set.tenant_id, Role::Developer, "config set", set_id)?;
        let mut tx = self.pool.begin().await?;
        let current = lock_version(&mut tx, set.tenant_id, set_id).await?;
        check_version(current, version)?;
        let gone = sqlx::query!(
            "DELETE FROM config_draft_items WHERE config_set_id = $1 AND name = $2",
            set_id,
            name
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if gone == 0 {
            return Err(Error::not_found("config item", name));
        }
        bump(&mut tx, set_id, &caller.subject).await?;
        tx.commit().await?;
        self.load(set.tenant_id, set_id).await
    }
}

/// Locks the set's row (edits and publishes of one set go one at a time) and
/// reads its draft version.
pub(crate) async fn lock_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tenant: Uuid,
    set_id: Uuid,
) -> Result<i64> {
    sqlx::query_scalar!(
        "SELECT draft_version FROM config_sets WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
        set_id,
        tenant
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| Error::not_found("config set", set_id))
}

async fn bump(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, set_id: Uuid, editor: &str) -> Result<()> {
    sqlx::query!(
        "UPDATE config_sets SET draft_version = draft_version + 1, last_editor = $2 WHERE id = $1",
        set_id,
        editor
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_version_is_a_conflict() {
        assert!(check_version(3, 3).is_ok());
        assert!(matches!(check_version(4, 3), Err(Error::Conflict(_))));
    }

    #[test]
    fn an_item_is_validated_as_its_format() {
        assert!(NewItem::parse("app.yaml", "", "a: 1\n".into(), false).is_ok());
        let err = NewItem::parse("app.yaml", "", "a: [\n".into(), false).unwrap_err();
        assert_eq!(err.field(), Some("items.app.yaml.content"));
        assert_eq!(
            NewItem::parse("a/b", "text", String::new(), false).unwrap_err().field(),
            Some("name")
        );
    }
}
