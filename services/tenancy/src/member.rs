//! Members: users and directory groups, and the roles they hold in tenants
//! and projects. Group memberships are replaced from the identity provider's
//! claims at every login ([`Members::sync_user`]), so access follows the
//! directory; [`Members::memberships`] resolves a user's roles (direct and
//! through groups, the highest per tenant) for the gateway to sign.
//!
//! A group is named with its source ([`group_subject`]): `ldap:<group DN>`
//! for the company directory, `oidc:<provider>:<group>` for an OpenID
//! Connect provider, so a group of one provider never grants the role of a
//! same-named group of another.

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Membership, Role};
use kernel::event::EventType;
use kernel::outbox::{self, Outbox};
use kernel::page::Page;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use uuid::Uuid;

/// `tenancy.member.added`
pub const ADDED: EventType = EventType::new("tenancy", "member", "added");
/// `tenancy.member.removed`
pub const REMOVED: EventType = EventType::new("tenancy", "member", "removed");

/// Whether a binding names a user or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One user, by subject.
    User,
    /// Every member of a directory group.
    Group,
}

impl Kind {
    /// Parses `user` or `group`; errors name `field`.
    ///
    /// # Errors
    /// Anything else.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        match raw {
            "user" => Ok(Self::User),
            "group" => Ok(Self::Group),
            _ => Err(Error::invalid(field, "must be user or group")),
        }
    }

    fn as_str(&self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
        }
    }
}

/// A role binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Its id.
    pub id: Uuid,
    /// The tenant.
    pub tenant_id: Uuid,
    /// The project, for a project-scoped role.
    pub project_id: Option<Uuid>,
    /// User or group.
    pub kind: Kind,
    /// The user's subject or the group's name.
    pub subject: String,
    /// The role.
    pub role: Role,
    /// Who granted it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

struct Row {
    id: Uuid,
    tenant_id: Uuid,
    project_id: Option<Uuid>,
    subject_kind: String,
    subject: String,
    role: String,
    created_by: String,
    created_at: DateTime<Utc>,
}

impl From<Row> for Binding {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            project_id: r.project_id,
            kind: if r.subject_kind == "group" {
                Kind::Group
            } else {
                Kind::User
            },
            subject: r.subject,
            role: Role::parse("role", &r.role).unwrap_or(Role::Viewer),
            created_by: r.created_by,
            created_at: r.created_at,
        }
    }
}

/// A validated grant.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The tenant.
    pub tenant: Uuid,
    /// A project of it, or the whole tenant.
    pub project: Option<Uuid>,
    /// User or group.
    pub kind: Kind,
    /// Subject or group name.
    pub subject: String,
    /// The role.
    pub role: Role,
}

impl Grant {
    /// Validates raw input; errors name the field.
    ///
    /// # Errors
    /// A field is malformed.
    pub fn parse(tenant: &str, project: &str, kind: &str, subject: &str, role: &str) -> Result<Self> {
        let kind = Kind::parse("kind", kind)?;
        let subject = subject.trim();
        if subject.is_empty() || subject.len() > 512 || subject.chars().any(char::is_control) {
            return Err(Error::invalid("subject", "must be 1-512 printable characters"));
        }
        let subject = match kind {
            Kind::Group => group_subject(subject)?,
            Kind::User => subject.to_string(),
        };
        Ok(Self {
            tenant: id::parse_id("tenant_id", tenant)?,
            project: id::parse_optional_id("project_id", project)?,
            kind,
            subject,
            role: Role::parse("role", role)?,
        })
    }
}

/// A group's subject, qualified by its source: `ldap:<group DN>` (the DN
/// normalized, [`kernel::dn::normalize`], so spellings of one DN such as
/// `OU=Groups, ...` bind the same group) or `oidc:<provider>:<group>`.
///
/// # Errors
/// An unqualified group, a malformed DN, a malformed provider name.
pub fn group_subject(raw: &str) -> Result<String> {
    let raw = raw.trim();
    if let Some(dn) = raw.strip_prefix("ldap:") {
        return kernel::dn::normalize(dn)
            .map(|dn| format!("ldap:{dn}"))
            .ok_or_else(|| Error::invalid("subject", "ldap: must be followed by the group's DN"));
    }
    if let Some((provider, group)) = raw.strip_prefix("oidc:").and_then(|rest| rest.split_once(':')) {
        let named = !provider.is_empty()
            && provider
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !named {
            return Err(Error::invalid(
                "subject",
                "oidc:<provider>:<group> needs the provider's name (lower-case letters, digits, -)",
            ));
        }
        if group.is_empty() {
            return Err(Error::invalid("subject", "oidc:<provider>:<group> needs the group"));
        }
        return Ok(raw.to_string());
    }
    Err(Error::invalid(
        "subject",
        "a group names its source: ldap:<group DN> or oidc:<provider>:<group>",
    ))
}

/// Members in the tenancy schema.
#[derive(Clone)]
pub struct Members {
    outbox: Outbox,
}

impl Members {
    /// Members stored in the outbox's schema.
    pub fn new(outbox: Outbox) -> Self {
        Self { outbox }
    }

    /// Grants a role. Tenant admins of the tenant.
    ///
    /// # Errors
    /// Not allowed, no such tenant, the project is not the tenant's, or the binding exists.
    pub async fn add(&self, caller: &Caller, grant: Grant) -> Result<Binding> {
        caller.require(grant.tenant, Role::TenantAdmin, "tenant", grant.tenant)?;
        let mut tx = self.outbox.pool().begin().await?;
        crate::tenant::require_exists(&mut *tx, grant.tenant).await?;
        if let Some(project) = grant.project {
            let owner = sqlx::query_scalar!("SELECT tenant_id FROM projects WHERE id = $1", project)
                .fetch_optional(&mut *tx)
                .await?;
            if owner != Some(grant.tenant) {
                return Err(Error::invalid("project_id", "is not a project of this tenant"));
            }
        }
        let row = sqlx::query_as!(
            Row,
            "INSERT INTO role_bindings (id, tenant_id, project_id, subject_kind, subject, role, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT DO NOTHING
             RETURNING id, tenant_id, project_id, subject_kind, subject, role, created_by, created_at",
            id::new_id(),
            grant.tenant,
            grant.project,
            grant.kind.as_str(),
            grant.subject,
            grant.role.as_str(),
            caller.subject,
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            Error::Conflict(format!(
                "{} {} already holds a role there; remove it first",
                grant.kind.as_str(),
                grant.subject
            ))
        })?;
        let binding = Binding::from(row);
        let event = pb::ResourceChanged {
            id: binding.id.to_string(),
            tenant_id: binding.tenant_id.to_string(),
            name: format!("{}:{}={}", grant.kind.as_str(), binding.subject, binding.role.as_str()),
        };
        outbox::record(&mut tx, ADDED, Some(binding.tenant_id), &event).await?;
        self.outbox.commit(tx).await?;
        Ok(binding)
    }

    /// Removes a binding. Tenant admins of its tenant.
    ///
    /// # Errors
    /// Not visible or not allowed.
    pub async fn remove(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let mut tx = self.outbox.pool().begin().await?;
        let row = sqlx::query_as!(
            Row,
            "SELECT id, tenant_id, project_id, subject_kind, subject, role, created_by, created_at
             FROM role_bindings WHERE id = $1",
            id,
        )
        .fetch_optional(&mut *tx)
        .await?
        .filter(|r| caller.can_see(r.tenant_id))
        .ok_or_else(|| Error::not_found("member", id))?;
        caller.require(row.tenant_id, Role::TenantAdmin, "member", id)?;
        sqlx::query!("DELETE FROM role_bindings WHERE id = $1", id)
            .execute(&mut *tx)
            .await?;
        let event = pb::ResourceChanged {
            id: id.to_string(),
            tenant_id: row.tenant_id.to_string(),
            name: format!("{}:{}", row.subject_kind, row.subject),
        };
        outbox::record(&mut tx, REMOVED, Some(row.tenant_id), &event).await?;
        self.outbox.commit(tx).await
    }

    /// A page of a tenant's bindings (tenant-wide and per project), optionally
    /// of one kind or one project.
    ///
    /// # Errors
    /// The tenant is not visible to the caller.
    pub async fn list(
        &self,
        caller: &Caller,
        tenant: Uuid,
        page: Page,
        kind: Option<Kind>,
        project: Option<Uuid>,
    ) -> Result<(Vec<Binding>, String)> {
        crate::tenant::require_visible(self.outbox.pool(), caller, tenant).await?;
        let rows = sqlx::query_as!(
            Row,
            "SELECT id, tenant_id, project_id, subject_kind, subject, role, created_by, created_at
             FROM role_bindings
             WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) AND ($3::text IS NULL OR subject_kind = $3)
               AND ($4::uuid IS NULL OR project_id = $4)
             ORDER BY id LIMIT $5",
            tenant,
            page.after,
            kind.map(|k| k.as_str()),
            project,
            page.fetch(),
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(page.finish(rows.into_iter().map(Binding::from).collect(), |b| b.id))
    }

    /// Records a login: the user's profile and, replacing what was there, the
    /// groups the identity provider says it is in. Platform services only
    /// (the gateway, at login).
    ///
    /// # Errors
    /// Not a platform service or administrator.
    pub async fn sync_user(
        &self,
        caller: &Caller,
        subject: &str,
        display_name: &str,
        email: &str,
        groups: &[String],
    ) -> Result<()> {
        caller.require_platform_admin()?;
        if subject.trim().is_empty() {
            return Err(Error::invalid("subject", "is required"));
        }
        // Groups as bindings store them ([`group_subject`]); one the login
        // sent unqualified could never match a binding.
        let groups: Vec<String> = groups.iter().filter_map(|g| group_subject(g).ok()).collect();
        let mut tx = self.outbox.pool().begin().await?;
        sqlx::query!(
            "INSERT INTO users (subject, display_name, email, last_login_at) VALUES ($1, $2, $3, now())
             ON CONFLICT (subject) DO UPDATE
             SET display_name = EXCLUDED.display_name, email = EXCLUDED.email, last_login_at = now()",
            subject,
            display_name,
            email,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!("DELETE FROM group_members WHERE subject = $1", subject)
            .execute(&mut *tx)
            .await?;
        sqlx::query!(
            "INSERT INTO group_members (group_name, subject) SELECT DISTINCT g, $1 FROM unnest($2::text[]) AS g",
            subject,
            &groups,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenants a user belongs to and its highest role in each, directly
    /// or through its groups. A project-scoped role makes the user a viewer
    /// of the tenant (it can see the tenant its project is in), and so does
    /// any role in a suspended tenant (read-only until it is reactivated).
    ///
    /// # Errors
    /// Not a platform service or administrator, or the user itself.
    pub async fn memberships(&self, caller: &Caller, subject: &str) -> Result<Vec<Membership>> {
        if !caller.platform_admin && caller.subject != subject {
            return Err(Error::PermissionDenied(
                "only the user itself or the platform may resolve memberships".into(),
            ));
        }
        // `oidc:*:<group>`: a binding made before groups named their
        // provider, kept as it was (any provider's group of that name).
        let rows = sqlx::query!(
            "SELECT b.tenant_id, b.project_id, b.role, t.status FROM role_bindings b
             JOIN tenants t ON t.id = b.tenant_id
             WHERE (b.subject_kind = 'user' AND b.subject = $1)
                OR (b.subject_kind = 'group' AND b.subject IN (
                    SELECT group_name FROM group_members WHERE subject = $1
                    UNION ALL
                    SELECT regexp_replace(group_name, '^oidc:[^:]*:', 'oidc:*:') FROM group_members
                    WHERE subject = $1 AND group_name LIKE 'oidc:%'))",
            subject,
        )
        .fetch_all(self.outbox.pool())
        .await?;
        let mut best: std::collections::BTreeMap<Uuid, Role> = std::collections::BTreeMap::new();
        for row in rows {
            // A suspended tenant is read-only for its members.
            let role = if row.project_id.is_some() || row.status == "suspended" {
                Role::Viewer
            } else {
                Role::parse("role", &row.role).unwrap_or(Role::Viewer)
            };
            let entry = best.entry(row.tenant_id).or_insert(role);
            *entry = (*entry).max(role);
        }
        Ok(best
            .into_iter()
            .map(|(tenant, role)| Membership { tenant, role })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_names_each_bad_field() {
        let t = Uuid::now_v7().to_string();
        assert!(Grant::parse(&t, "", "group", "ldap:cn=ops,ou=groups", "operator").is_ok());
        assert!(Grant::parse(&t, "", "group", "oidc:corp:ops", "operator").is_ok());
        for unqualified in [
            "cn=ops,ou=groups",
            "ops",
            "oidc:ops",
            "oidc::ops",
            "oidc:*:ops",
            "ldap:ops",
            "oidc:corp:",
        ] {
            assert_eq!(
                Grant::parse(&t, "", "group", unqualified, "operator")
                    .unwrap_err()
                    .field(),
                Some("subject"),
                "{unqualified}"
            );
        }
        assert_eq!(
            Grant::parse(&t, "", "group", "ldap:CN=Ops, OU=Groups", "operator")
                .unwrap()
                .subject,
            "ldap:cn=ops,ou=groups"
        );
        assert_eq!(
            Grant::parse(&t, "", "team", "x", "operator").unwrap_err().field(),
            Some("kind")
        );
        assert_eq!(
            Grant::parse(&t, "", "user", "", "operator").unwrap_err().field(),
            Some("subject")
        );
        assert_eq!(
            Grant::parse(&t, "", "user", "x", "owner").unwrap_err().field(),
            Some("role")
        );
        assert_eq!(
            Grant::parse(&t, "nope", "user", "x", "viewer").unwrap_err().field(),
            Some("project_id")
        );
    }
}
