//! The tenants federation knows of, learned from `tenancy.tenant.*` events.
//! Partitions (namespaces in member clusters) are created only for these.

use chrono::{DateTime, Utc};
use kernel::caller::Caller;
use kernel::event::Event;
use kernel::inbox::Handler;
use kernel::{Error, Result};
use paas_proto::v1 as pb;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A tenant as federation knows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KnownTenant {
    /// The tenant's id in tenancy.
    pub tenant_id: Uuid,
    /// Its name (the prefix of its namespaces).
    pub name: String,
    /// When federation learned of it.
    pub learned_at: DateTime<Utc>,
    /// The event it was learned from.
    pub event_id: Uuid,
}

/// Reads what federation knows of a tenant the caller can see.
///
/// # Errors
/// Unknown or not visible to the caller (the same answer).
pub async fn get(pool: &PgPool, caller: &Caller, tenant: Uuid) -> Result<KnownTenant> {
    if !caller.can_see(tenant) {
        return Err(Error::not_found("tenant", tenant));
    }
    sqlx::query_as!(
        KnownTenant,
        "SELECT tenant_id, name, learned_at, event_id FROM known_tenants WHERE tenant_id = $1",
        tenant,
    )
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| Error::not_found("tenant", tenant))
}

/// Handles `tenancy.tenant.created` and `tenancy.tenant.deleted`.
pub struct TenantEvents;

impl Handler for TenantEvents {
    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<()> {
        match event.kind() {
            "tenancy.tenant.created" => {
                let created: pb::TenantCreated = event.payload()?;
                let tenant = kernel::id::parse_id("tenant_id", &created.tenant_id)?;
                sqlx::query!(
                    "INSERT INTO known_tenants (tenant_id, name, event_id) VALUES ($1, $2, $3)
                     ON CONFLICT (tenant_id) DO UPDATE SET name = EXCLUDED.name",
                    tenant,
                    &created.name,
                    event.id(),
                )
                .execute(&mut *tx)
                .await?;
                tracing::info!(tenant = %tenant, "tenant known to federation");
            }
            "tenancy.tenant.deleted" => {
                let deleted: pb::TenantDeleted = event.payload()?;
                let tenant = kernel::id::parse_id("tenant_id", &deleted.tenant_id)?;
                sqlx::query!("DELETE FROM known_tenants WHERE tenant_id = $1", tenant)
                    .execute(&mut *tx)
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }
}
