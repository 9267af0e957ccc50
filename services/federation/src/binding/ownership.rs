//! Who may change a binding. A binding an application made (its objects
//! carry the apps service's `paas.io/app` label) is changed only through that
//! application: otherwise a direct edit would side-step the release's
//! approval and history, and the next release or scale would silently undo
//! it. The one exception is a platform administrator in break-glass mode,
//! giving a reason, which the gateway audits as its own action.

use kernel::caller::{Caller, Role};
use kernel::{Error, Result};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// The subject of the apps service, the owner of application bindings.
const APPS: &str = "service:apps";
/// The label the apps service puts on every object of an application.
const APP_LABEL: &str = "paas.io/app";

/// The application whose binding this is, from its objects' labels.
pub fn owning_application(objects: &Value) -> Option<&str> {
    objects
        .as_array()?
        .iter()
        .find_map(|o| o["metadata"]["labels"][APP_LABEL].as_str())
}

/// Refuses a change to binding `name` (objects `objects`, tenant `tenant`)
/// by anyone but its owner, unless a platform administrator breaks glass
/// with a reason.
///
/// # Errors
/// [`Error::Conflict`] naming the application and the routes to use;
/// [`Error::PermissionDenied`] for break-glass by someone else than a
/// platform administrator.
pub fn check(caller: &Caller, name: &str, objects: &Value, break_glass: &str) -> Result<()> {
    let Some(app) = owning_application(objects) else {
        return Ok(());
    };
    if caller.subject == APPS {
        return Ok(());
    }
    let reason = break_glass.trim();
    if !reason.is_empty() {
        caller.require_platform_admin()?;
        tracing::warn!(binding = name, application = app, subject = %caller.subject, reason,
            "break-glass change to an application's binding");
        return Ok(());
    }
    Err(Error::Conflict(format!(
        "binding {name} belongs to application {app}: change it through the application \
         (POST /api/v1/applications/{{id}}/scale, /releases or /rollback); a platform administrator \
         may override with /api/v1/bindings/{{id}}/break-glass and a reason"
    )))
}

/// Refuses an apply to `tenant`'s binding `name` (when it exists) by anyone
/// but its owner; see [`check`]. The caller's access to the tenant is
/// checked first, so a refusal tells nothing to one who has none.
///
/// # Errors
/// As [`check`]; the caller may not write in the tenant; the database fails.
pub async fn check_apply(pool: &PgPool, caller: &Caller, tenant: Uuid, name: &str, break_glass: &str) -> Result<()> {
    caller.require(tenant, Role::Developer, "tenant", tenant)?;
    // Bindings are looked up by tenant as every query here is.
    let objects = sqlx::query_scalar!(
        "SELECT objects FROM bindings WHERE tenant_id = $1 AND name = $2 AND NOT deleted",
        tenant,
        name
    )
    .fetch_optional(pool)
    .await?;
    objects.map_or(Ok(()), |objects| check(caller, name, &objects, break_glass))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_applications_binding_is_changed_by_the_application_or_by_breaking_glass() {
        let owned =
            json!([{"kind": "Deployment", "metadata": {"name": "shop-web", "labels": {"paas.io/app": "shop"}}}]);
        let plain = json!([{"kind": "Deployment", "metadata": {"name": "shop"}}]);
        let admin = Caller::platform_admin("local:admin");
        let operator = Caller::user("ldap:op", vec![]);
        assert_eq!(owning_application(&owned), Some("shop"));
        assert!(check(&operator, "shop", &plain, "").is_ok());
        assert!(check(&Caller::service("apps"), "shop-web", &owned, "").is_ok());
        let refused = check(&admin, "shop-web", &owned, "  ").unwrap_err();
        assert!(
            matches!(&refused, Error::Conflict(m) if m.contains("application shop") && m.contains("/scale")),
            "{refused}"
        );
        assert!(check(&admin, "shop-web", &owned, "INC-42: dc1 hotfix").is_ok());
        assert!(matches!(
            check(&operator, "shop-web", &owned, "INC-42"),
            Err(Error::PermissionDenied(_))
        ));
    }
}
