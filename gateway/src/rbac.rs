//! Who may call which route: one table, reviewed in one place. The gateway
//! checks what it can know from the caller alone (authenticated, platform
//! administrator, or at least some role in some tenant); each service then
//! checks the caller's role in the tenant that owns the resource, so a
//! missing row here fails closed and a wrong row here cannot leak data.

use kernel::caller::{Caller, Role};

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Anyone: the route is outside the guard (logging in).
    Public,
    /// Any authenticated caller (reads; services scope what it sees).
    Authenticated,
    /// At least this role in some tenant (writes; services check which).
    Role(Role),
    /// A platform administrator.
    PlatformAdmin,
}

use Permission::{Authenticated, PlatformAdmin};

/// Every API route and what it requires.
pub const RULES: &[(&str, &str, Permission)] = &[
    ("POST", "/api/v1/tenants", PlatformAdmin),
    ("GET", "/api/v1/tenants", Authenticated),
    ("GET", "/api/v1/tenants/{id}", Authenticated),
    ("PATCH", "/api/v1/tenants/{id}", Permission::Role(Role::TenantAdmin)),
    ("DELETE", "/api/v1/tenants/{id}", PlatformAdmin),
    ("POST", "/api/v1/clusters", PlatformAdmin),
    ("GET", "/api/v1/clusters", Authenticated),
    ("GET", "/api/v1/clusters/{id}", Authenticated),
    ("DELETE", "/api/v1/clusters/{id}", PlatformAdmin),
    ("PUT", "/api/v1/clusters/{id}/settings", PlatformAdmin),
    ("GET", "/api/v1/tenants/{id}/federation", Authenticated),
    ("GET", "/api/v1/datacenters", PlatformAdmin),
    (
        "POST",
        "/api/v1/tenants/{id}/bindings",
        Permission::Role(Role::Developer),
    ),
    ("GET", "/api/v1/tenants/{id}/bindings", Authenticated),
    ("GET", "/api/v1/bindings/{id}", Authenticated),
    ("PUT", "/api/v1/bindings/{id}", Permission::Role(Role::Developer)),
    ("DELETE", "/api/v1/bindings/{id}", Permission::Role(Role::Developer)),
    ("GET", "/api/v1/failovers", Authenticated),
    (
        "POST",
        "/api/v1/bindings/{id}/failover",
        Permission::Role(Role::Operator),
    ),
    (
        "POST",
        "/api/v1/bindings/{id}/failback",
        Permission::Role(Role::Operator),
    ),
    (
        "POST",
        "/api/v1/tenants/{id}/projects",
        Permission::Role(Role::TenantAdmin),
    ),
    ("GET", "/api/v1/tenants/{id}/projects", Authenticated),
    ("GET", "/api/v1/projects/{id}", Authenticated),
    ("DELETE", "/api/v1/projects/{id}", Permission::Role(Role::TenantAdmin)),
    (
        "POST",
        "/api/v1/projects/{id}/partitions",
        Permission::Role(Role::TenantAdmin),
    ),
    ("GET", "/api/v1/projects/{id}/partitions", Authenticated),
    ("GET", "/api/v1/partitions/{id}", Authenticated),
    ("DELETE", "/api/v1/partitions/{id}", Permission::Role(Role::TenantAdmin)),
    ("GET", "/api/v1/partitions/{id}/pull-secrets", Authenticated),
    (
        "PUT",
        "/api/v1/partitions/{id}/pull-secrets/{name}",
        Permission::Role(Role::TenantAdmin),
    ),
    (
        "DELETE",
        "/api/v1/partitions/{id}/pull-secrets/{name}",
        Permission::Role(Role::TenantAdmin),
    ),
    ("PUT", "/api/v1/tenants/{id}/quota", PlatformAdmin),
    (
        "PUT",
        "/api/v1/projects/{id}/quota",
        Permission::Role(Role::TenantAdmin),
    ),
    (
        "PUT",
        "/api/v1/partitions/{id}/quota",
        Permission::Role(Role::TenantAdmin),
    ),
    ("GET", "/api/v1/tenants/{id}/usage", Authenticated),
    ("GET", "/api/v1/tenants/{id}/usage/history", Authenticated),
    ("POST", "/api/v1/reservations", Permission::Role(Role::Operator)),
    ("GET", "/api/v1/reservations/{id}", Authenticated),
    (
        "POST",
        "/api/v1/reservations/{id}/commit",
        Permission::Role(Role::Operator),
    ),
    (
        "POST",
        "/api/v1/reservations/{id}/release",
        Permission::Role(Role::Operator),
    ),
    ("POST", "/api/v1/specs", PlatformAdmin),
    ("GET", "/api/v1/specs", Authenticated),
    (
        "POST",
        "/api/v1/tenants/{id}/requests",
        Permission::Role(Role::TenantAdmin),
    ),
    ("GET", "/api/v1/requests", Authenticated),
    ("GET", "/api/v1/requests/{id}", Authenticated),
    (
        "POST",
        "/api/v1/requests/{id}/{step}",
        Permission::Role(Role::TenantAdmin),
    ),
    (
        "POST",
        "/api/v1/tenants/{id}/members",
        Permission::Role(Role::TenantAdmin),
    ),
    ("GET", "/api/v1/tenants/{id}/members", Authenticated),
    ("DELETE", "/api/v1/members/{id}", Permission::Role(Role::TenantAdmin)),
    ("POST", "/api/v1/tokens", Permission::Role(Role::TenantAdmin)),
    ("GET", "/api/v1/tokens", Permission::Role(Role::TenantAdmin)),
    ("DELETE", "/api/v1/tokens/{id}", Permission::Role(Role::TenantAdmin)),
    ("GET", "/api/v1/audit", Permission::Role(Role::TenantAdmin)),
    ("POST", "/api/v1/templates", Permission::Role(Role::Developer)),
    ("GET", "/api/v1/templates", Authenticated),
    ("GET", "/api/v1/templates/{id}", Authenticated),
    ("DELETE", "/api/v1/templates/{id}", Permission::Role(Role::Developer)),
    (
        "POST",
        "/api/v1/templates/{id}/versions",
        Permission::Role(Role::Developer),
    ),
    (
        "POST",
        "/api/v1/tenants/{id}/templates/import",
        Permission::Role(Role::Developer),
    ),
    ("GET", "/api/v1/templates/{id}/versions", Authenticated),
    ("GET", "/api/v1/template-versions/{id}", Authenticated),
    (
        "PATCH",
        "/api/v1/template-versions/{id}",
        Permission::Role(Role::Developer),
    ),
    (
        "POST",
        "/api/v1/template-versions/{id}/publish",
        Permission::Role(Role::Developer),
    ),
    ("POST", "/api/v1/template-versions/{id}/render", Authenticated),
    (
        "POST",
        "/api/v1/tenants/{id}/applications",
        Permission::Role(Role::Developer),
    ),
    ("GET", "/api/v1/tenants/{id}/applications", Authenticated),
    ("GET", "/api/v1/applications/{id}", Authenticated),
    ("DELETE", "/api/v1/applications/{id}", Permission::Role(Role::Developer)),
    (
        "POST",
        "/api/v1/applications/{id}/releases",
        Permission::Role(Role::Developer),
    ),
    ("GET", "/api/v1/applications/{id}/releases", Authenticated),
    (
        "POST",
        "/api/v1/applications/{id}/rollback",
        Permission::Role(Role::Developer),
    ),
    (
        "POST",
        "/api/v1/applications/{id}/scale",
        Permission::Role(Role::Developer),
    ),
    ("GET", "/api/v1/applications/{id}/scale-events", Authenticated),
    (
        "POST",
        "/api/v1/releases/{id}/approve",
        Permission::Role(Role::TenantAdmin),
    ),
    ("GET", "/api/v1/applications/{id}/pods", Authenticated),
    ("GET", "/api/v1/applications/{id}/logs", Authenticated),
    (
        "POST",
        "/api/v1/applications/{id}/restart",
        Permission::Role(Role::Developer),
    ),
    (
        "POST",
        "/api/v1/applications/{id}/stop",
        Permission::Role(Role::Developer),
    ),
    (
        "POST",
        "/api/v1/applications/{id}/start",
        Permission::Role(Role::Developer),
    ),
    // The apps service asks more in production (tenant administrators; operators may abort).
    (
        "POST",
        "/api/v1/releases/{id}/confirm",
        Permission::Role(Role::Developer),
    ),
    (
        "POST",
        "/api/v1/releases/{id}/resume",
        Permission::Role(Role::Developer),
    ),
    (
        "POST",
        "/api/v1/releases/{id}/promote",
        Permission::Role(Role::Developer),
    ),
    ("POST", "/api/v1/releases/{id}/abort", Permission::Role(Role::Developer)),
    (
        "POST",
        "/api/v1/tenants/{id}/external-services",
        Permission::Role(Role::Developer),
    ),
    ("GET", "/api/v1/tenants/{id}/external-services", Authenticated),
    ("GET", "/api/v1/external-services/{id}", Authenticated),
    (
        "PUT",
        "/api/v1/external-services/{id}",
        Permission::Role(Role::Developer),
    ),
    (
        "DELETE",
        "/api/v1/external-services/{id}",
        Permission::Role(Role::Developer),
    ),
    ("POST", "/api/v1/login/local", Permission::Public),
    ("POST", "/api/v1/login/ldap", Permission::Public),
    ("GET", "/api/v1/login/oidc", Permission::Public),
    ("GET", "/api/v1/login/oidc/{provider}", Permission::Public),
    ("GET", "/api/v1/login/oidc/{provider}/callback", Permission::Public),
    ("POST", "/api/v1/logout", Authenticated),
    ("POST", "/api/v1/logout/everywhere", Authenticated),
    ("GET", "/api/v1/session", Authenticated),
];

/// The rule for a route, if it has one.
pub fn rule(method: &str, path: &str) -> Option<Permission> {
    RULES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, perm)| *perm)
}

impl Permission {
    /// Whether `caller` meets it.
    pub fn allows(&self, caller: &Caller) -> bool {
        match self {
            Self::Public | Self::Authenticated => true,
            Self::PlatformAdmin => caller.platform_admin,
            Self::Role(min) => caller.platform_admin || caller.memberships.iter().any(|m| m.role >= *min),
        }
    }
}

#[cfg(test)]
mod tests {
    use kernel::caller::Membership;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn every_route_has_exactly_one_rule() {
        for (method, path) in crate::route_table() {
            let rules = RULES.iter().filter(|(m, p, _)| *m == method && *p == path).count();
            assert_eq!(rules, 1, "{method} {path} needs exactly one row in rbac::RULES");
        }
        assert_eq!(
            RULES.len(),
            crate::route_table().len(),
            "a rule names a route the OpenAPI document does not have"
        );
    }

    #[test]
    fn roles_meet_rules_as_expected() {
        let viewer = Caller::user(
            "v",
            vec![Membership {
                tenant: Uuid::now_v7(),
                role: Role::Viewer,
            }],
        );
        let operator = Caller::user(
            "o",
            vec![Membership {
                tenant: Uuid::now_v7(),
                role: Role::Operator,
            }],
        );
        assert!(Permission::Authenticated.allows(&viewer));
        assert!(!Permission::Role(Role::Operator).allows(&viewer));
        assert!(Permission::Role(Role::Operator).allows(&operator));
        assert!(!Permission::PlatformAdmin.allows(&operator));
        assert!(Permission::PlatformAdmin.allows(&Caller::platform_admin("p")));
    }
}
