//! Projects: a tenant's unit of work and of quota, holding partitions in any
//! number of clusters.

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::event::EventType;
use kernel::name::DnsLabel;
use kernel::outbox::{self, Outbox};
use kernel::page::Page;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

/// `tenancy.project.created`
pub const CREATED: EventType = EventType::new("tenancy", "project", "created");
/// `tenancy.project.deleted`
pub const DELETED: EventType = EventType::new("tenancy", "project", "deleted");

/// A project as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// DNS label, unique in the tenant.
    pub name: String,
    /// Shown in the portal.
    pub display_name: String,
    /// What it is for.
    pub description: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A validated new project.
#[derive(Debug, Clone)]
pub struct NewProject {
    name: DnsLabel,
    display_name: String,
    description: String,
}

impl NewProject {
    /// Validates raw input; errors name the field.
    ///
    /// # Errors
    /// A field is malformed.
    pub fn parse(name: &str, display_name: &str, description: &str) -> Result<Self> {
        let name = DnsLabel::parse("name", name.trim())?;
        let display_name = match display_name.trim() {
            "" => name.to_string(),
            d if d.chars().count() > 128 => {
                return Err(Error::invalid("display_name", "must be at most 128 characters"));
            }
            d => d.to_string(),
        };
        if description.chars().count() > 2048 {
            return Err(Error::invalid("description", "must be at most 2048 characters"));
        }
        Ok(Self {
            name,
            display_name,
            description: description.trim().to_string(),
        })
    }
}

/// Inserts and announces a project in the caller's transaction; `None` when
/// the tenant already has one of that name.
pub(crate) async fn insert(tx: &mut PgConnection, tenant: Uuid, new: &NewProject) -> Result<Option<Project>> {
    let project = sqlx::query_as!(
        Project,
        "INSERT INTO projects (id, tenant_id, name, display_name, description) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, name) DO NOTHING
         RETURNING id, tenant_id, name, display_name, description, created_at",
        id::new_id(),
        tenant,
        new.name.as_str(),
        new.display_name,
        new.description,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(project) = &project {
        let event = pb::ResourceChanged {
            id: project.id.to_string(),
            tenant_id: tenant.to_string(),
            name: project.name.clone(),
        };
        outbox::record(tx, CREATED, Some(tenant), &event).await?;
    }
    Ok(project)
}

/// Projects in the tenancy schema.
#[derive(Clone)]
pub struct Projects {
    outbox: Outbox,
}

impl Projects {
    /// Projects stored in the outbox's schema.
    pub fn new(outbox: Outbox) -> Self {
        Self { outbox }
    }

    /// Creates a project in a tenant. Tenant admins.
    ///
    /// # Errors
    /// Not allowed, no such tenant, or the name is taken in the tenant.
    pub async fn create(&self, caller: &Caller, tenant: Uuid, new: NewProject) -> Result<Project> {
        caller.require(tenant, Role::TenantAdmin, "tenant", tenant)?;
        let mut tx = self.outbox.pool().begin().await?;
        crate::tenant::require_exists(&mut *tx, tenant).await?;
        let project = insert(&mut tx, tenant, &new)
            .await?
            .ok_or_else(|| Error::Conflict(format!("the tenant already has a project named {}", new.name)))?;
        self.outbox.commit(tx).await?;
        Ok(project)
    }

    /// A project the caller can see.
    ///
    /// # Errors
    /// Not found or not visible (the same answer).
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Project> {
        let project = sqlx::query_as!(
            Project,
            "SELECT id, tenant_id, name, display_name, description, created_at FROM projects WHERE id = $1",
            id,
        )
        .fetch_optional(self.outbox.pool())
        .await?;
        project
            .filter(|p| caller.can_see(p.tenant_id))
            .ok_or_else(|| Error::not_found("project", id))
    }

    /// A page of a tenant's projects.
    ///
    /// # Errors
    /// The tenant is not visible to the caller.
    pub async fn list(
        &self,
        caller: &Caller,
        tenant: Uuid,
        page: Page,
        name_prefix: &str,
    ) -> Result<(Vec<Project>, String)> {
        crate::tenant::require_visible(self.outbox.pool(), caller, tenant).await?;
        let rows = sqlx::query_as!(
            Project,
            "SELECT id, tenant_id, name, display_name, description, created_at FROM projects
             WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) AND starts_with(name, $3)
             ORDER BY id LIMIT $4",
            tenant,
            page.after,
            name_prefix,
            page.fetch(),
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(page.finish(rows, |p| p.id))
    }

    /// Deletes a project that has no partitions left. Tenant admins.
    ///
    /// # Errors
    /// Not visible, not allowed, or it still has partitions.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let project = self.get(caller, id).await?;
        caller.require(project.tenant_id, Role::TenantAdmin, "project", id)?;
        let mut tx = self.outbox.pool().begin().await?;
        crate::quota::lock_tenant(&mut tx, project.tenant_id).await?;
        let partitions = sqlx::query_scalar!(
            r#"SELECT count(*) AS "count!" FROM partitions WHERE project_id = $1"#,
            id
        )
        .fetch_one(&mut *tx)
        .await?;
        if partitions > 0 {
            return Err(Error::FailedPrecondition(format!(
                "project {} still has {partitions} partition(s); delete them first",
                project.name
            )));
        }
        sqlx::query!("DELETE FROM quotas WHERE level = 'project' AND owner_id = $1", id)
            .execute(&mut *tx)
            .await?;
        sqlx::query!("DELETE FROM projects WHERE id = $1", id)
            .execute(&mut *tx)
            .await?;
        let event = pb::ResourceChanged {
            id: id.to_string(),
            tenant_id: project.tenant_id.to_string(),
            name: project.name,
        };
        outbox::record(&mut tx, DELETED, Some(project.tenant_id), &event).await?;
        self.outbox.commit(tx).await
    }
}
