//! Environments of a pipeline and where they live. Each environment (dev,
//! qa, staging, production) names one application of the tenant in the
//! definition (`environments.<env>.application`); the application's
//! placement puts it in the tenant's partitions and clusters, so an
//! environment is exactly as isolated as its application. dev, qa and
//! staging applications are apps' `test` environment; production ones are
//! apps' `production`, with its approval and admission rules.
//!
//! A `feature-*` branch gets an environment of its own: on the branch's
//! first deploy to dev the conductor makes an application
//! `<dev application>-<feature>` in the dev application's project, from
//! the same template version, parameters, placement and strategy, and
//! records it here ([`BranchEnvironment`]). A webhook saying the branch was
//! deleted (or merged) marks it for removal ([`retire`]); the conductor then
//! deletes the application ([`crate::deployment::Delivery::remove_retired`]).

use kernel::{Result, id};
use sqlx::PgConnection;
use uuid::Uuid;

/// The longest application name (a DNS label).
const MAX_NAME: usize = 63;

/// A branch's own environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchEnvironment {
    /// Its id.
    pub id: Uuid,
    /// The application made for it.
    pub application_id: Uuid,
    /// The application's name.
    pub application: String,
}

/// The name of the application of `feature`'s environment, made from the
/// dev application's `base` name: lower-case, other characters as `-`,
/// at most a DNS label long.
pub fn branch_application(base: &str, feature: &str) -> String {
    let feature: String = feature
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("{base}-{}", feature.trim_matches('-'));
    if name.len() > MAX_NAME {
        name.truncate(MAX_NAME);
    }
    let trimmed = name.trim_end_matches('-').to_string();
    // Runs of '-' are fine in a DNS label; an empty feature part is not.
    if trimmed.len() <= base.len() {
        format!("{base}-branch")
    } else {
        trimmed
    }
}

/// The live environment of `branch`, if it has one.
///
/// # Errors
/// The database fails.
pub async fn of_branch(
    conn: &mut PgConnection,
    tenant: Uuid,
    pipeline: Uuid,
    branch: &str,
) -> Result<Option<BranchEnvironment>> {
    let row = sqlx::query_as!(
        BranchEnvironment,
        "SELECT id, application_id, application FROM branch_environments
         WHERE tenant_id = $1 AND pipeline_id = $2 AND branch = $3 AND state = 'active'",
        tenant,
        pipeline,
        branch
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row)
}

/// Records the environment made for `branch`; the one already there when
/// another pass recorded it first.
///
/// # Errors
/// The database fails.
pub async fn record(
    conn: &mut PgConnection,
    tenant: Uuid,
    pipeline: Uuid,
    branch: &str,
    application_id: Uuid,
    application: &str,
) -> Result<BranchEnvironment> {
    sqlx::query!(
        "INSERT INTO branch_environments (id, tenant_id, pipeline_id, branch, application_id, application)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (pipeline_id, branch) WHERE state <> 'removed' DO NOTHING",
        id::new_id(),
        tenant,
        pipeline,
        branch,
        application_id,
        application,
    )
    .execute(&mut *conn)
    .await?;
    let live = sqlx::query_as!(
        BranchEnvironment,
        "SELECT id, application_id, application FROM branch_environments
         WHERE tenant_id = $1 AND pipeline_id = $2 AND branch = $3 AND state <> 'removed'",
        tenant,
        pipeline,
        branch
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(live)
}

/// Marks the environment of a deleted or merged branch for removal; the
/// conductor deletes its application. Returns whether there was one.
///
/// # Errors
/// The database fails.
pub async fn retire(conn: &mut PgConnection, tenant: Uuid, pipeline: Uuid, branch: &str, why: &str) -> Result<bool> {
    let marked = sqlx::query!(
        "UPDATE branch_environments SET state = 'removing', message = $4
         WHERE tenant_id = $1 AND pipeline_id = $2 AND branch = $3 AND state = 'active'",
        tenant,
        pipeline,
        branch,
        why
    )
    .execute(&mut *conn)
    .await?;
    Ok(marked.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_branch_application_is_a_dns_label_named_after_the_feature() {
        assert_eq!(branch_application("calc-dev", "login"), "calc-dev-login");
        assert_eq!(
            branch_application("calc-dev", "Login_Form.v2"),
            "calc-dev-login-form-v2"
        );
        let long = branch_application("calc-dev", &"x".repeat(100));
        assert_eq!(long.len(), 63);
        assert!(long.starts_with("calc-dev-x"));
        assert_eq!(branch_application("calc-dev", "___"), "calc-dev-branch");
        let edge = branch_application(&"a".repeat(61), "b-c");
        assert!(edge.len() <= 63 && !edge.ends_with('-'), "{edge}");
    }
}
