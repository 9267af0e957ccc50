//! Tenants: the top of the hierarchy (platform -> tenant -> project ->
//! partition). A tenant's name is a DNS label because it prefixes the
//! namespaces of its partitions.

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::event::EventType;
use kernel::name::DnsLabel;
use kernel::outbox::{self, Outbox};
use kernel::page::Page;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use sqlx::PgPool;
use uuid::Uuid;

/// `tenancy.tenant.created`
pub const CREATED: EventType = EventType::new("tenancy", "tenant", "created");
/// `tenancy.tenant.updated`
pub const UPDATED: EventType = EventType::new("tenancy", "tenant", "updated");
/// `tenancy.tenant.deleted`
pub const DELETED: EventType = EventType::new("tenancy", "tenant", "deleted");

/// Whether a tenant may use the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// In use.
    Active,
    /// Its apps keep running, but it may not change anything.
    Suspended,
}

impl Status {
    /// The stored text.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    fn parse(stored: &str) -> Self {
        if stored == "suspended" {
            Self::Suspended
        } else {
            Self::Active
        }
    }
}

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Its id.
    pub id: Uuid,
    /// DNS label, unique.
    pub name: DnsLabel,
    /// Shown in the portal.
    pub display_name: String,
    /// The owner's e-mail.
    pub contact: String,
    /// Active or suspended.
    pub status: Status,
    /// Bumped on every update.
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A validated request for a new tenant.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// DNS label.
    pub name: DnsLabel,
    /// Defaults to the name.
    pub display_name: String,
    /// The owner's e-mail, optional.
    pub contact: String,
}

impl NewTenant {
    /// Validates raw input; every error names its field.
    ///
    /// # Errors
    /// A field is malformed.
    pub fn parse(name: &str, display_name: &str, contact: &str) -> Result<Self> {
        let name = DnsLabel::parse("name", name.trim())?;
        let display_name = display(display_name)?.unwrap_or_else(|| name.to_string());
        Ok(Self {
            name,
            display_name,
            contact: contact_email(contact)?,
        })
    }
}

/// A validated change to a tenant.
#[derive(Debug, Clone, Default)]
pub struct TenantChange {
    /// New display name.
    pub display_name: Option<String>,
    /// New contact.
    pub contact: Option<String>,
    /// New status (platform admins only).
    pub status: Option<Status>,
    /// Refuse the change unless the stored version is this one.
    pub expected_version: Option<i64>,
}

impl TenantChange {
    /// Validates raw input.
    ///
    /// # Errors
    /// A field is malformed.
    pub fn parse(
        display_name: Option<&str>,
        contact: Option<&str>,
        status: Option<Status>,
        expected_version: i64,
    ) -> Result<Self> {
        Ok(Self {
            display_name: match display_name {
                Some(d) => Some(display(d)?.ok_or_else(|| Error::invalid("display_name", "must not be empty"))?),
                None => None,
            },
            contact: contact.map(contact_email).transpose()?,
            status,
            expected_version: (expected_version != 0).then_some(expected_version),
        })
    }
}

fn display(raw: &str) -> Result<Option<String>> {
    let d = raw.trim();
    if d.chars().count() > 128 {
        return Err(Error::invalid("display_name", "must be at most 128 characters"));
    }
    Ok((!d.is_empty()).then(|| d.to_string()))
}

fn contact_email(raw: &str) -> Result<String> {
    let c = raw.trim();
    if c.is_empty() {
        return Ok(String::new());
    }
    let valid = c.len() <= 254
        && c.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !c.chars().any(char::is_whitespace);
    if valid {
        Ok(c.to_string())
    } else {
        Err(Error::invalid("contact", "must be an e-mail address"))
    }
}

struct Row {
    id: Uuid,
    name: String,
    display_name: String,
    contact: String,
    status: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for Tenant {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            name: DnsLabel::parse("name", &r.name).expect("stored names are valid"),
            display_name: r.display_name,
            contact: r.contact,
            status: Status::parse(&r.status),
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Tenants in the `tenancy` schema.
#[derive(Clone)]
pub struct Tenants {
    outbox: Outbox,
}

impl Tenants {
    /// Tenants stored in the outbox's schema.
    pub fn new(outbox: Outbox) -> Self {
        Self { outbox }
    }

    fn pool(&self) -> &PgPool {
        self.outbox.pool()
    }

    /// Creates a tenant and announces it. Platform administrators only.
    ///
    /// # Errors
    /// Not an administrator, or the name is taken.
    pub async fn create(&self, caller: &Caller, new: NewTenant) -> Result<Tenant> {
        caller.require_platform_admin()?;
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query_as!(
            Row,
            "INSERT INTO tenants (id, name, display_name, contact) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING
             RETURNING id, name, display_name, contact, status, version, created_at, updated_at",
            id::new_id(),
            new.name.as_str(),
            new.display_name,
            new.contact,
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::Conflict(format!("a tenant named {} already exists", new.name)))?;
        let tenant = Tenant::from(row);
        let event = pb::TenantCreated {
            tenant_id: tenant.id.to_string(),
            name: tenant.name.to_string(),
            display_name: tenant.display_name.clone(),
        };
        outbox::record(&mut tx, CREATED, Some(tenant.id), &event).await?;
        self.outbox.commit(tx).await?;
        tracing::info!(tenant = %tenant.id, name = %tenant.name, "tenant created");
        Ok(tenant)
    }

    /// A tenant the caller can see.
    ///
    /// # Errors
    /// Not found, or not visible to the caller (the same answer).
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Tenant> {
        if !caller.can_see(id) {
            return Err(Error::not_found("tenant", id));
        }
        let row = sqlx::query_as!(
            Row,
            "SELECT id, name, display_name, contact, status, version, created_at, updated_at
             FROM tenants WHERE id = $1",
            id,
        )
        .fetch_optional(self.pool())
        .await?;
        row.map(Tenant::from).ok_or_else(|| Error::not_found("tenant", id))
    }

    /// A page of the tenants the caller can see, optionally filtered.
    ///
    /// # Errors
    /// The database fails.
    pub async fn list(
        &self,
        caller: &Caller,
        page: Page,
        name_prefix: &str,
        status: Option<Status>,
    ) -> Result<(Vec<Tenant>, String)> {
        let visible = caller.visible_tenants();
        let rows = sqlx::query_as!(
            Row,
            "SELECT id, name, display_name, contact, status, version, created_at, updated_at
             FROM tenants
             WHERE ($1::uuid IS NULL OR id > $1)
               AND ($2::uuid[] IS NULL OR id = ANY($2))
               AND name LIKE $3 || '%'
               AND ($4::text IS NULL OR status = $4)
             ORDER BY id LIMIT $5",
            page.after,
            visible.as_deref(),
            like_escape(name_prefix),
            status.map(|s| s.as_str()),
            page.fetch(),
        )
        .fetch_all(self.pool())
        .await?;
        Ok(page.finish(rows.into_iter().map(Tenant::from).collect(), |t| t.id))
    }

    /// Changes a tenant. Tenant admins may change its display name and contact;
    /// only platform administrators may suspend or reactivate it.
    ///
    /// # Errors
    /// Not visible, not allowed, or the version is stale.
    pub async fn update(&self, caller: &Caller, id: Uuid, change: TenantChange) -> Result<Tenant> {
        caller.require(id, Role::TenantAdmin, "tenant", id)?;
        if change.status.is_some() {
            caller.require_platform_admin()?;
        }
        let mut tx = self.pool().begin().await?;
        let current = sqlx::query_as!(
            Row,
            "SELECT id, name, display_name, contact, status, version, created_at, updated_at
             FROM tenants WHERE id = $1 FOR UPDATE",
            id,
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::not_found("tenant", id))?;
        if let Some(expected) = change.expected_version
            && expected != current.version
        {
            return Err(Error::Conflict(format!(
                "tenant {id} is at version {}, not {expected}",
                current.version
            )));
        }
        let row = sqlx::query_as!(
            Row,
            "UPDATE tenants SET display_name = COALESCE($2, display_name), contact = COALESCE($3, contact),
                    status = COALESCE($4, status), version = version + 1, updated_at = now()
             WHERE id = $1
             RETURNING id, name, display_name, contact, status, version, created_at, updated_at",
            id,
            change.display_name,
            change.contact,
            change.status.map(|s| s.as_str()),
        )
        .fetch_one(&mut *tx)
        .await?;
        let tenant = Tenant::from(row);
        let event = pb::TenantUpdated {
            tenant_id: id.to_string(),
            display_name: tenant.display_name.clone(),
            status: tenant.status.as_str().into(),
        };
        outbox::record(&mut tx, UPDATED, Some(id), &event).await?;
        self.outbox.commit(tx).await?;
        Ok(tenant)
    }

    /// Deletes a tenant. Platform administrators only.
    ///
    /// # Errors
    /// Not an administrator, or no such tenant.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<()> {
        caller.require_platform_admin()?;
        let mut tx = self.pool().begin().await?;
        let gone = sqlx::query!("DELETE FROM tenants WHERE id = $1", id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone == 0 {
            return Err(Error::not_found("tenant", id));
        }
        outbox::record(
            &mut tx,
            DELETED,
            Some(id),
            &pb::TenantDeleted {
                tenant_id: id.to_string(),
            },
        )
        .await?;
        self.outbox.commit(tx).await?;
        Ok(())
    }
}

/// Fails unless tenant `id` exists: nothing is made under a tenant that
/// does not exist, and the children of one are a 404, not an empty list.
///
/// # Errors
/// No such tenant, or the database fails.
pub async fn require_exists(db: impl sqlx::PgExecutor<'_>, id: Uuid) -> Result<()> {
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1) AS "exists!""#,
        id
    )
    .fetch_one(db)
    .await?;
    if exists {
        Ok(())
    } else {
        Err(Error::not_found("tenant", id))
    }
}

/// Fails unless tenant `id` exists and the caller can see it (the same
/// 404 either way).
///
/// # Errors
/// Not visible, no such tenant, or the database fails.
pub async fn require_visible(db: impl sqlx::PgExecutor<'_>, caller: &Caller, id: Uuid) -> Result<()> {
    if !caller.can_see(id) {
        return Err(Error::not_found("tenant", id));
    }
    require_exists(db, id).await
}

/// Escapes LIKE wildcards so a filter matches text literally.
fn like_escape(raw: &str) -> String {
    raw.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_tenant_defaults_its_display_name_to_its_name() {
        let t = NewTenant::parse("acme", "  ", "").unwrap();
        assert_eq!(t.display_name, "acme");
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(NewTenant::parse("Acme", "", "").unwrap_err().field(), Some("name"));
        assert_eq!(
            NewTenant::parse("acme", &"x".repeat(129), "").unwrap_err().field(),
            Some("display_name")
        );
        assert_eq!(
            NewTenant::parse("acme", "", "not-mail").unwrap_err().field(),
            Some("contact")
        );
        assert_eq!(
            TenantChange::parse(Some(" "), None, None, 0).unwrap_err().field(),
            Some("display_name")
        );
    }

    #[test]
    fn like_filters_match_literally() {
        assert_eq!(like_escape("a_b%"), "a\\_b\\%");
    }
}
