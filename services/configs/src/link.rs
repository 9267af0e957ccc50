//! Shared links: the shared config sets an application's configuration is
//! built on (like Apollo's public namespaces), in order, lowest first. The
//! application's own sets override them.

use kernel::caller::{Caller, Role};
use kernel::name::DnsLabel;
use kernel::{Error, Result, id};
use sqlx::PgPool;
use uuid::Uuid;

/// An application's links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedLinks {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The application.
    pub application: String,
    /// Shared set names, lowest first.
    pub shared: Vec<String>,
}

/// Links in the configs schema.
#[derive(Clone)]
pub struct Links {
    pool: PgPool,
}

impl Links {
    /// Links stored in `pool`'s schema.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// An application's links (none when never set). Members of the tenant.
    ///
    /// # Errors
    /// Malformed input, or the tenant is not visible.
    pub async fn get(&self, caller: &Caller, tenant: &str, application: &str) -> Result<SharedLinks> {
        let tenant = id::parse_id("tenant_id", tenant)?;
        let application = DnsLabel::parse("application", application.trim())?;
        caller.require(tenant, Role::Viewer, "tenant", tenant)?;
        Ok(SharedLinks {
            tenant_id: tenant,
            application: application.to_string(),
            shared: self.of(tenant, application.as_str()).await?,
        })
    }

    /// The shared sets `application` links, lowest first.
    ///
    /// # Errors
    /// The database fails.
    pub async fn of(&self, tenant: Uuid, application: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar!(
            "SELECT shared FROM config_shared_links WHERE tenant_id = $1 AND application = $2 ORDER BY position",
            tenant,
            application
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Replaces an application's links. Developers of the tenant; each name
    /// must be a shared set of the tenant.
    ///
    /// # Errors
    /// Malformed input, a name that is not a shared set, or not allowed.
    pub async fn set(
        &self,
        caller: &Caller,
        tenant: &str,
        application: &str,
        shared: &[String],
    ) -> Result<SharedLinks> {
        let tenant = id::parse_id("tenant_id", tenant)?;
        let application = DnsLabel::parse("application", application.trim())?;
        caller.require(tenant, Role::Developer, "tenant", tenant)?;
        let mut names = Vec::with_capacity(shared.len());
        for (i, raw) in shared.iter().enumerate() {
            let name = DnsLabel::parse(&format!("shared[{i}]"), raw.trim())?;
            if names.contains(&name.to_string()) {
                return Err(Error::invalid(format!("shared[{i}]"), "is listed twice"));
            }
            let exists = sqlx::query_scalar!(
                "SELECT EXISTS (SELECT 1 FROM config_sets WHERE tenant_id = $1 AND application = $2 AND shared)",
                tenant,
                name.as_str()
            )
            .fetch_one(&self.pool)
            .await?;
            if exists != Some(true) {
                return Err(Error::invalid(
                    format!("shared[{i}]"),
                    format!("{name} is not a shared config set of the tenant"),
                ));
            }
            names.push(name.to_string());
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "DELETE FROM config_shared_links WHERE tenant_id = $1 AND application = $2",
            tenant,
            application.as_str()
        )
        .execute(&mut *tx)
        .await?;
        for (position, name) in names.iter().enumerate() {
            sqlx::query!(
                "INSERT INTO config_shared_links (tenant_id, application, position, shared) VALUES ($1, $2, $3, $4)",
                tenant,
                application.as_str(),
                i32::try_from(position).map_err(Error::internal)?,
                name
            )
            .execute(&mut *tx)
            .await?;
        }
        crate::config_set::layout_changed(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(SharedLinks {
            tenant_id: tenant,
            application: application.to_string(),
            shared: names,
        })
    }
}
