//! Who may call which route. Each route declares its [`Permission`] where it
//! is registered ([`crate::route`]); this module holds what they mean. The gateway
//! checks what it can know from the caller alone (authenticated, platform
//! administrator, or at least some role in some tenant); each service then
//! checks the caller's role in the tenant that owns the resource, so a
//! route without a rule fails closed and a wrong rule cannot leak data.

use std::sync::LazyLock;

use kernel::caller::{Caller, Role};

use crate::route::Rule;

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

/// Editing config drafts (R6): developers and above.
pub const CONFIG_EDIT: Permission = Permission::Role(Role::Developer);
/// Publishing and rolling back config releases: a right apart from editing,
/// operators and above (with four eyes where the environment asks for them).
pub const CONFIG_PUBLISH: Permission = Permission::Role(Role::Operator);

/// Every API route's rule, as the route declares it ([`crate::route`]).
static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| crate::api().rules().to_vec());

/// The rule for a route, if it has one.
pub fn rule(method: &str, path: &str) -> Option<Permission> {
    RULES
        .iter()
        .find(|r| r.method == method && r.path == path)
        .map(|r| r.permission)
}

/// The methods a route path is served with (empty for no such path).
pub fn methods(path: &str) -> Vec<&'static str> {
    RULES.iter().filter(|r| r.path == path).map(|r| r.method).collect()
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
            let rules = RULES.iter().filter(|r| r.method == method && r.path == path).count();
            assert_eq!(rules, 1, "{method} {path} needs exactly one access rule");
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
