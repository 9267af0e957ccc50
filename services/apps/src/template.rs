//! Templates: the application blueprints tenants deploy. A template with no
//! tenant is a platform-wide catalog entry, which only platform administrators
//! publish and every caller can read.

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::event::EventType;
use kernel::name::DnsLabel;
use kernel::outbox::{self, Outbox};
use kernel::page::Page;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use uuid::Uuid;

/// `apps.template.created`
pub const CREATED: EventType = EventType::new("apps", "template", "created");
/// `apps.template.deleted`
pub const DELETED: EventType = EventType::new("apps", "template", "deleted");

/// A template as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Template {
    /// Its id.
    pub id: Uuid,
    /// Its tenant; `None` for the platform catalog.
    pub tenant_id: Option<Uuid>,
    /// DNS label, unique in its tenant (or in the catalog).
    pub name: String,
    /// What it deploys.
    pub description: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// The longest description, in characters: a paragraph for the catalog page,
/// not a manual.
pub const MAX_DESCRIPTION: usize = 1024;

/// A validated new template.
#[derive(Debug, Clone)]
pub struct NewTemplate {
    tenant: Option<Uuid>,
    name: DnsLabel,
    description: String,
}

impl NewTemplate {
    /// Validates raw input; errors name the field. An empty tenant means the
    /// platform catalog.
    ///
    /// # Errors
    /// A field is malformed.
    pub fn parse(tenant_id: &str, name: &str, description: &str) -> Result<Self> {
        let tenant = match tenant_id.trim() {
            "" => None,
            t => Some(id::parse_id("tenant_id", t)?),
        };
        let description = description.trim();
        if description.chars().count() > MAX_DESCRIPTION {
            return Err(Error::invalid(
                "description",
                format!("must be at most {MAX_DESCRIPTION} characters"),
            ));
        }
        Ok(Self {
            tenant,
            name: DnsLabel::parse("name", name.trim())?,
            description: description.to_string(),
        })
    }
}

impl NewTemplate {
    /// Its tenant (`None`: the catalog).
    pub fn tenant(&self) -> Option<Uuid> {
        self.tenant
    }
}

/// Who may write a template: developers of its tenant, or platform
/// administrators for the catalog.
pub(crate) fn require_writer(
    caller: &Caller,
    tenant: Option<Uuid>,
    kind: &'static str,
    id: impl ToString,
) -> Result<()> {
    match tenant {
        Some(t) => caller.require(t, Role::Developer, kind, id),
        None => caller.require_platform_admin(),
    }
}

/// Templates in the apps schema.
#[derive(Clone)]
pub struct Templates {
    outbox: Outbox,
}

impl Templates {
    /// Templates stored in the outbox's schema.
    pub fn new(outbox: Outbox) -> Self {
        Self { outbox }
    }

    /// Creates a template.
    ///
    /// # Errors
    /// Not allowed, or the name is taken in its tenant or the catalog.
    pub async fn create(&self, caller: &Caller, new: NewTemplate) -> Result<Template> {
        require_writer(caller, new.tenant, "tenant", new.tenant.unwrap_or_default())?;
        let mut tx = self.outbox.pool().begin().await?;
        let template = sqlx::query_as!(
            Template,
            "INSERT INTO templates (id, tenant_id, name, description) VALUES ($1, $2, $3, $4) ON CONFLICT
             DO NOTHING RETURNING id, tenant_id, name, description, created_at",
            id::new_id(),
            new.tenant,
            new.name.as_str(),
            new.description,
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::Conflict(format!("a template named {} already exists there", new.name)))?;
        let event = pb::ResourceChanged {
            id: template.id.to_string(),
            tenant_id: template.tenant_id.map(|t| t.to_string()).unwrap_or_default(),
            name: template.name.clone(),
        };
        outbox::record(&mut tx, CREATED, template.tenant_id, &event).await?;
        self.outbox.commit(tx).await?;
        Ok(template)
    }

    /// The template named `name` in `tenant` (`None`: the catalog), if any.
    ///
    /// # Errors
    /// The database fails.
    pub(crate) async fn named(&self, tenant: Option<Uuid>, name: &str) -> Result<Option<Template>> {
        Ok(sqlx::query_as!(
            Template,
            "SELECT id, tenant_id, name, description, created_at
             FROM templates WHERE tenant_id IS NOT DISTINCT FROM $1 AND name = $2",
            tenant,
            name,
        )
        .fetch_optional(self.outbox.pool())
        .await?)
    }

    /// A template the caller can see (its tenant's, or the catalog's).
    ///
    /// # Errors
    /// Not found or not visible (the same answer).
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Template> {
        let template = sqlx::query_as!(
            Template,
            "SELECT id, tenant_id, name, description, created_at FROM templates WHERE id = $1",
            id,
        )
        .fetch_optional(self.outbox.pool())
        .await?;
        template
            .filter(|t| t.tenant_id.is_none_or(|tenant| caller.can_see(tenant)))
            .ok_or_else(|| Error::not_found("template", id))
    }

    /// A page of the templates the caller can see: the catalog and its
    /// tenants', optionally of one tenant only.
    ///
    /// # Errors
    /// The tenant filter is malformed.
    pub async fn list(&self, caller: &Caller, page: Page, tenant: Option<Uuid>) -> Result<(Vec<Template>, String)> {
        let visible = caller.visible_tenants();
        let rows = sqlx::query_as!(
            Template,
            "SELECT id, tenant_id, name, description, created_at
             FROM templates
             WHERE ($1::uuid IS NULL OR id > $1)
               AND (tenant_id IS NULL OR $2::uuid[] IS NULL OR tenant_id = ANY($2))
               AND ($3::uuid IS NULL OR tenant_id = $3)
             ORDER BY id LIMIT $4",
            page.after,
            visible.as_deref(),
            tenant,
            page.fetch(),
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(page.finish(rows, |t| t.id))
    }

    /// Deletes a template.
    ///
    /// # Errors
    /// Not visible, not allowed, or already gone.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let template = self.get(caller, id).await?;
        require_writer(caller, template.tenant_id, "template", id)?;
        let mut tx = self.outbox.pool().begin().await?;
        if sqlx::query!("DELETE FROM templates WHERE id = $1", id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 0
        {
            return Err(Error::not_found("template", id));
        }
        let event = pb::ResourceChanged {
            id: id.to_string(),
            tenant_id: template.tenant_id.map(|t| t.to_string()).unwrap_or_default(),
            name: template.name,
        };
        outbox::record(&mut tx, DELETED, template.tenant_id, &event).await?;
        self.outbox.commit(tx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_field_is_named() {
        assert!(NewTemplate::parse("", "mysql", "").is_ok());
        assert_eq!(
            NewTemplate::parse("x", "mysql", "").unwrap_err().field(),
            Some("tenant_id")
        );
        assert_eq!(NewTemplate::parse("", "My SQL", "").unwrap_err().field(), Some("name"));
        assert_eq!(NewTemplate::parse("", "", "").unwrap_err().field(), Some("name"));
        assert_eq!(
            NewTemplate::parse("", "mysql", &"d".repeat(MAX_DESCRIPTION + 1))
                .unwrap_err()
                .field(),
            Some("description")
        );
        assert!(NewTemplate::parse("", "mysql", &format!(" {} ", "d".repeat(MAX_DESCRIPTION))).is_ok());
    }

    #[test]
    fn only_platform_admins_write_the_catalog() {
        let t = Uuid::now_v7();
        let dev = Caller::user(
            "d",
            vec![kernel::caller::Membership {
                tenant: t,
                role: Role::Developer,
            }],
        );
        assert!(require_writer(&dev, Some(t), "template", "x").is_ok());
        assert!(require_writer(&dev, None, "template", "x").is_err());
        assert!(require_writer(&Caller::platform_admin("p"), None, "template", "x").is_ok());
        let viewer = Caller::user(
            "v",
            vec![kernel::caller::Membership {
                tenant: t,
                role: Role::Viewer,
            }],
        );
        assert!(require_writer(&viewer, Some(t), "template", "x").is_err());
    }
}
