//! What a registry token grants: scopes as the Docker token specification
//! writes them (`repository:<name>:pull,push`), repository names as the
//! platform lays them out (`<tenant>/<project>/<name>`), and the rule that
//! turns a subject's roles into the actions it gets.

use std::collections::BTreeSet;

use kernel::caller::{Caller, Role};
use kernel::{Error, Result};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An action on a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Read manifests and blobs.
    Pull,
    /// Write them.
    Push,
    /// Delete manifests.
    Delete,
}

impl Action {
    /// The name the registry uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Push => "push",
            Self::Delete => "delete",
        }
    }

    fn parse(raw: &str) -> Option<Vec<Self>> {
        Some(match raw {
            "pull" => vec![Self::Pull],
            "push" => vec![Self::Push],
            "delete" => vec![Self::Delete],
            "*" => vec![Self::Pull, Self::Push, Self::Delete],
            _ => return None,
        })
    }
}

/// A repository name: `<tenant>/<project>/<name>[/<more>]`, each component as
/// the distribution specification allows (lowercase alphanumerics joined by
/// `.`, `_`, `__` or dashes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepositoryName(String);

impl RepositoryName {
    /// Validates a name; the error names `field`.
    ///
    /// # Errors
    /// Fewer than three components, or a malformed one.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let parts: Vec<&str> = raw.split('/').collect();
        if parts.len() < 3 {
            return Err(Error::invalid(field, "must be <tenant>/<project>/<name>"));
        }
        if raw.len() > 255 || !parts.iter().all(|p| component_ok(p)) {
            return Err(Error::invalid(
                field,
                "components are lowercase letters and digits joined by '.', '_', '__' or '-'",
            ));
        }
        Ok(Self(raw.to_string()))
    }

    /// The tenant's name.
    pub fn tenant(&self) -> &str {
        self.0.split('/').next().unwrap_or_default()
    }

    /// The project's name.
    pub fn project(&self) -> &str {
        self.0.split('/').nth(1).unwrap_or_default()
    }

    /// The whole name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn component_ok(p: &str) -> bool {
    let b = p.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &p[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

/// One requested scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The repository.
    pub repository: RepositoryName,
    /// What the client asks to do there.
    pub actions: BTreeSet<Action>,
}

impl Scope {
    /// Parses `repository:<name>:<actions>`; other resource types (the
    /// registry's catalog) are `None`: the platform grants none of them.
    ///
    /// # Errors
    /// A malformed repository scope names `scope`.
    pub fn parse(raw: &str) -> Result<Option<Self>> {
        let Some(rest) = raw.strip_prefix("repository:") else {
            return Ok(None);
        };
        let (name, actions) = rest
            .rsplit_once(':')
            .ok_or_else(|| Error::invalid("scope", "must be repository:<name>:<actions>"))?;
        let mut set = BTreeSet::new();
        for a in actions.split(',').filter(|a| !a.is_empty()) {
            set.extend(Action::parse(a).ok_or_else(|| Error::invalid("scope", format!("unknown action {a}")))?);
        }
        Ok(Some(Self {
            repository: RepositoryName::parse("scope", name)?,
            actions: set,
        }))
    }
}

/// A granted access entry, as the token's `access` claim carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Always `repository`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository.
    pub name: String,
    /// The actions granted.
    pub actions: Vec<String>,
}

/// Who asks for a token.
#[derive(Debug, Clone)]
pub enum Subject {
    /// A person or API token, with its tenant roles.
    Caller(Caller),
    /// A robot account of one project.
    Robot {
        /// Its name, the token's subject.
        name: String,
        /// Its tenant.
        tenant: Uuid,
        /// Its project.
        project: Uuid,
        /// What it may do there.
        actions: BTreeSet<Action>,
    },
}

impl Subject {
    /// The token's `sub`.
    pub fn name(&self) -> &str {
        match self {
            Self::Caller(c) => &c.subject,
            Self::Robot { name, .. } => name,
        }
    }

    /// The actions this subject may take on a repository of `tenant`/`project`.
    pub fn allowed(&self, tenant: Uuid, project: Uuid) -> BTreeSet<Action> {
        match self {
            Self::Caller(c) if c.platform_admin => [Action::Pull, Action::Push, Action::Delete].into(),
            Self::Caller(c) => match c.role_in(tenant) {
                None => BTreeSet::new(),
                Some(role) => by_role(role),
            },
            Self::Robot {
                tenant: t,
                project: p,
                actions,
                ..
            } if *t == tenant && *p == project => actions.clone(),
            Self::Robot { .. } => BTreeSet::new(),
        }
    }
}

/// Tenant roles to actions: viewers pull, developers (who push code and
/// images) and operators push too, tenant administrators also delete.
pub fn by_role(role: Role) -> BTreeSet<Action> {
    match role {
        Role::Viewer => [Action::Pull].into(),
        Role::Developer | Role::Operator => [Action::Pull, Action::Push].into(),
        Role::TenantAdmin => [Action::Pull, Action::Push, Action::Delete].into(),
    }
}

/// What is granted of `scope` when `allowed` is permitted.
pub fn grant(scope: &Scope, allowed: &BTreeSet<Action>) -> Grant {
    Grant {
        kind: "repository".to_string(),
        name: scope.repository.as_str().to_string(),
        actions: scope
            .actions
            .intersection(allowed)
            .map(|a| a.as_str().to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use kernel::caller::Membership;

    use super::*;

    #[test]
    fn repository_names_need_tenant_project_and_name() {
        assert!(RepositoryName::parse("n", "acme/shop/web").is_ok());
        assert!(RepositoryName::parse("n", "acme/shop/web/api-v2.1").is_ok());
        assert!(RepositoryName::parse("n", "acme/shop").is_err());
        assert!(RepositoryName::parse("n", "Acme/shop/web").is_err());
        assert!(RepositoryName::parse("n", "acme/shop/-web").is_err());
        assert!(RepositoryName::parse("n", "acme//web").is_err());
        assert!(RepositoryName::parse("n", "acme/shop/w..eb").is_err());
    }

    #[test]
    fn scopes_parse_as_the_token_specification_writes_them() {
        let s = Scope::parse("repository:acme/shop/web:pull,push").unwrap().unwrap();
        assert_eq!(s.repository.tenant(), "acme");
        assert_eq!(s.repository.project(), "shop");
        assert_eq!(s.actions, [Action::Pull, Action::Push].into());
        assert_eq!(Scope::parse("registry:catalog:*").unwrap(), None);
        assert!(Scope::parse("repository:acme/shop/web:fly").is_err());
        assert!(Scope::parse("repository:web").is_err());
    }

    #[test]
    fn roles_grant_pull_push_and_delete_in_their_own_tenant_only() {
        let (t, p, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let viewer = Subject::Caller(Caller::user(
            "v",
            vec![Membership {
                tenant: t,
                role: Role::Viewer,
            }],
        ));
        assert_eq!(viewer.allowed(t, p), [Action::Pull].into());
        assert!(viewer.allowed(other, p).is_empty());
        let robot = Subject::Robot {
            name: "robot$acme+shop+ci".into(),
            tenant: t,
            project: p,
            actions: [Action::Pull, Action::Push].into(),
        };
        assert_eq!(robot.allowed(t, p), [Action::Pull, Action::Push].into());
        assert!(robot.allowed(t, Uuid::now_v7()).is_empty());
        let scope = Scope::parse("repository:acme/shop/web:pull,push,delete")
            .unwrap()
            .unwrap();
        assert_eq!(grant(&scope, &robot.allowed(t, p)).actions, vec!["pull", "push"]);
        assert_eq!(by_role(Role::TenantAdmin).len(), 3);
    }
}
