//! Publishing rules per environment of a tenant. Four-eyes: the publisher of
//! a release must not be the last editor of its draft. It is on by default
//! for production (`production` or `prod`) and off elsewhere, until a tenant
//! administrator says otherwise.

use kernel::caller::{Caller, Role};
use kernel::name::DnsLabel;
use kernel::{Result, id};
use sqlx::PgPool;
use uuid::Uuid;

/// An environment's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentPolicy {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The environment.
    pub environment: String,
    /// Whether the publisher must differ from the last editor.
    pub four_eyes: bool,
}

/// Four-eyes when no rule is set: production environments only.
pub fn four_eyes_by_default(environment: &str) -> bool {
    matches!(environment, "production" | "prod")
}

/// Environment rules in the configs schema.
#[derive(Clone)]
pub struct EnvironmentPolicies {
    pool: PgPool,
}

impl EnvironmentPolicies {
    /// Rules stored in `pool`'s schema.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// An environment's rules (the default when none is set). Members of the tenant.
    ///
    /// # Errors
    /// Malformed input, or the tenant is not visible.
    pub async fn get(&self, caller: &Caller, tenant: &str, environment: &str) -> Result<EnvironmentPolicy> {
        let tenant = id::parse_id("tenant_id", tenant)?;
        let environment = DnsLabel::parse("environment", environment.trim())?;
        caller.require(tenant, Role::Viewer, "tenant", tenant)?;
        Ok(EnvironmentPolicy {
            tenant_id: tenant,
            environment: environment.to_string(),
            four_eyes: self.four_eyes(tenant, environment.as_str()).await?,
        })
    }

    /// Sets an environment's rules. Tenant administrators.
    ///
    /// # Errors
    /// Malformed input, or not allowed.
    pub async fn set(
        &self,
        caller: &Caller,
        tenant: &str,
        environment: &str,
        four_eyes: bool,
    ) -> Result<EnvironmentPolicy> {
        let tenant = id::parse_id("tenant_id", tenant)?;
        let environment = DnsLabel::parse("environment", environment.trim())?;
        caller.require(tenant, Role::TenantAdmin, "tenant", tenant)?;
        sqlx::query!(
            "INSERT INTO config_environments (tenant_id, environment, four_eyes) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, environment) DO UPDATE SET four_eyes = EXCLUDED.four_eyes",
            tenant,
            environment.as_str(),
            four_eyes
        )
        .execute(&self.pool)
        .await?;
        Ok(EnvironmentPolicy {
            tenant_id: tenant,
            environment: environment.to_string(),
            four_eyes,
        })
    }

    /// Whether publishing into `environment` of `tenant` needs four eyes.
    ///
    /// # Errors
    /// The database fails.
    pub async fn four_eyes(&self, tenant: Uuid, environment: &str) -> Result<bool> {
        let set = sqlx::query_scalar!(
            "SELECT four_eyes FROM config_environments WHERE tenant_id = $1 AND environment = $2",
            tenant,
            environment
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(set.unwrap_or_else(|| four_eyes_by_default(environment)))
    }

    /// Whether publishing a base-level set of `application` needs four eyes:
    /// it reaches every environment the application has, so it does when any
    /// of them does.
    ///
    /// # Errors
    /// The database fails.
    pub async fn four_eyes_for_base(&self, tenant: Uuid, application: &str) -> Result<bool> {
        let environments = sqlx::query_scalar!(
            "SELECT DISTINCT s.environment FROM config_sets s
             WHERE s.tenant_id = $1 AND s.environment <> ''
               AND (s.application = $2
                    OR s.application IN (SELECT l.application FROM config_shared_links l
                                         WHERE l.tenant_id = $1 AND l.shared = $2))",
            tenant,
            application
        )
        .fetch_all(&self.pool)
        .await?;
        for environment in environments {
            if self.four_eyes(tenant, &environment).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_needs_four_eyes_by_default() {
        assert!(four_eyes_by_default("production"));
        assert!(four_eyes_by_default("prod"));
        assert!(!four_eyes_by_default("qa"));
    }
}
