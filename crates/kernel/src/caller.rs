//! The caller of a service call. The gateway authenticates a person or robot,
//! then signs a short-lived [`Caller`] token that rides in gRPC metadata; every
//! service verifies it and scopes its queries by the caller's tenants, so a bug
//! in the gateway alone cannot leak another tenant's data.
//!
//! Token format: `base64url(json claims) "." base64url(HMAC-SHA256(key, first part))`.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::settings::Secret;
use crate::{Error, Result};

/// Metadata key carrying the signed caller token.
pub const CALLER_METADATA: &str = "paas-caller";

/// How long a signed caller token is valid: long enough for one request and
/// its retries, short enough that a leaked token is soon useless.
pub const TOKEN_TTL: Duration = Duration::from_secs(60);

/// A role within a tenant or project, from least to most privileged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads only.
    Viewer,
    /// Pushes code and images, runs pipelines into dev/QA.
    Developer,
    /// Deploys, scales and operates apps.
    Operator,
    /// Manages the tenant: members, quotas, approvals.
    TenantAdmin,
}

impl Role {
    /// The name the API and storage use (`tenant-admin`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Developer => "developer",
            Self::Operator => "operator",
            Self::TenantAdmin => "tenant-admin",
        }
    }

    /// Parses a role name; the error names `field`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for anything but the four names.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        match raw {
            "viewer" => Ok(Self::Viewer),
            "developer" => Ok(Self::Developer),
            "operator" => Ok(Self::Operator),
            "tenant-admin" => Ok(Self::TenantAdmin),
            _ => Err(Error::invalid(
                field,
                "must be viewer, developer, operator or tenant-admin",
            )),
        }
    }
}

/// One tenant the caller belongs to, with its role there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The tenant.
    pub tenant: Uuid,
    /// The caller's role in it.
    pub role: Role,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// Stable subject id (`ldap:jdoe`, `oidc:<issuer>#<sub>`, `service:federation`).
    pub subject: String,
    /// Platform-wide administrator.
    #[serde(default)]
    pub platform_admin: bool,
    /// Tenants the caller belongs to.
    #[serde(default)]
    pub memberships: Vec<Membership>,
    /// The gateway's request id, for logs across services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    #[serde(default)]
    pub exp: i64,
}

impl Caller {
    /// A person or robot with the given memberships.
    pub fn user(subject: impl Into<String>, memberships: Vec<Membership>) -> Self {
        Self {
            subject: subject.into(),
            platform_admin: false,
            memberships,
            request_id: None,
            exp: 0,
        }
    }

    /// A platform administrator.
    pub fn platform_admin(subject: impl Into<String>) -> Self {
        Self {
            platform_admin: true,
            ..Self::user(subject, vec![])
        }
    }

    /// A platform service calling another on its own behalf (event handlers,
    /// reconcilers); it has platform-wide reach.
    pub fn service(name: &str) -> Self {
        Self::platform_admin(format!("service:{name}"))
    }

    /// The caller's role in a tenant, if any.
    pub fn role_in(&self, tenant: Uuid) -> Option<Role> {
        self.memberships
            .iter()
            .filter(|m| m.tenant == tenant)
            .map(|m| m.role)
            .max()
    }

    /// Whether the caller may see the tenant's resources at all.
    pub fn can_see(&self, tenant: Uuid) -> bool {
        self.platform_admin || self.role_in(tenant).is_some()
    }

    /// Requires at least `role` in `tenant` (platform admins pass).
    ///
    /// # Errors
    /// [`Error::NotFound`] naming `kind`/`id` when the caller cannot see the
    /// tenant at all (so its existence is not revealed);
    /// [`Error::PermissionDenied`] when it can see it but its role is too low.
    pub fn require(&self, tenant: Uuid, role: Role, kind: &'static str, id: impl ToString) -> Result<()> {
        if self.platform_admin {
            return Ok(());
        }
        match self.role_in(tenant) {
            None => Err(Error::not_found(kind, id)),
            Some(r) if r >= role => Ok(()),
            Some(r) => Err(Error::PermissionDenied(format!(
                "this needs the {} role (or higher) in tenant {tenant}; the caller is {} there",
                role.as_str(),
                r.as_str()
            ))),
        }
    }

    /// Requires a platform administrator.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] otherwise.
    pub fn require_platform_admin(&self) -> Result<()> {
        if self.platform_admin {
            Ok(())
        } else {
            Err(Error::PermissionDenied("platform administrators only".into()))
        }
    }

    /// The tenants a list may show: `None` means every tenant (platform admin).
    pub fn visible_tenants(&self) -> Option<Vec<Uuid>> {
        (!self.platform_admin).then(|| self.memberships.iter().map(|m| m.tenant).collect())
    }
}

/// Signs and verifies caller tokens with the platform's shared key.
#[derive(Clone)]
pub struct CallerKey {
    key: Secret,
}

impl CallerKey {
    /// A key from the platform settings.
    pub fn new(key: Secret) -> Self {
        Self { key }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(self.key.expose().as_bytes()).expect("HMAC takes keys of any length")
    }

    /// Signs `caller`, valid for [`TOKEN_TTL`] from now.
    pub fn sign(&self, caller: &Caller) -> String {
        let mut claims = caller.clone();
        claims.exp = chrono::Utc::now().timestamp() + TOKEN_TTL.as_secs() as i64;
        let body = B64.encode(serde_json::to_vec(&claims).expect("caller serialises"));
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        let sig = B64.encode(mac.finalize().into_bytes());
        format!("{body}.{sig}")
    }

    /// Verifies a token and returns its caller.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] when the token is malformed, forged or expired.
    pub fn verify(&self, token: &str) -> Result<Caller> {
        let bad = |why: &str| Error::Unauthenticated(format!("caller token {why}"));
        let (body, sig) = token.split_once('.').ok_or_else(|| bad("is malformed"))?;
        let sig = B64.decode(sig).map_err(|_| bad("is malformed"))?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&sig).map_err(|_| bad("has a bad signature"))?;
        let json = B64.decode(body).map_err(|_| bad("is malformed"))?;
        let caller: Caller = serde_json::from_slice(&json).map_err(|_| bad("is malformed"))?;
        if caller.exp < chrono::Utc::now().timestamp() {
            return Err(bad("has expired"));
        }
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> CallerKey {
        CallerKey::new(Secret::new(k.repeat(32)))
    }

    #[test]
    fn a_signed_caller_verifies_with_the_same_key() {
        let t = Uuid::now_v7();
        let caller = Caller::user(
            "ldap:jdoe",
            vec![Membership {
                tenant: t,
                role: Role::Operator,
            }],
        );
        let back = key("a").verify(&key("a").sign(&caller)).unwrap();
        assert_eq!(back.subject, "ldap:jdoe");
        assert_eq!(back.role_in(t), Some(Role::Operator));
    }

    #[test]
    fn a_token_from_another_key_is_refused() {
        let token = key("a").sign(&Caller::platform_admin("x"));
        assert!(matches!(key("b").verify(&token), Err(Error::Unauthenticated(_))));
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let token = key("a").sign(&Caller::user("u", vec![]));
        let (_, sig) = token.split_once('.').unwrap();
        let forged_body = B64.encode(br#"{"subject":"u","platform_admin":true,"exp":99999999999}"#);
        assert!(key("a").verify(&format!("{forged_body}.{sig}")).is_err());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let k = key("a");
        let mut claims = Caller::user("u", vec![]);
        claims.exp = 1;
        let body = B64.encode(serde_json::to_vec(&claims).unwrap());
        let mut mac = k.mac();
        mac.update(body.as_bytes());
        let token = format!("{body}.{}", B64.encode(mac.finalize().into_bytes()));
        assert!(matches!(k.verify(&token), Err(Error::Unauthenticated(m)) if m.contains("expired")));
    }

    #[test]
    fn role_names_round_trip() {
        for r in [Role::Viewer, Role::Developer, Role::Operator, Role::TenantAdmin] {
            assert_eq!(Role::parse("role", r.as_str()).unwrap(), r);
        }
        assert_eq!(Role::parse("role", "owner").unwrap_err().field(), Some("role"));
    }

    #[test]
    fn a_stranger_gets_not_found_and_a_low_role_gets_denied() {
        let t = Uuid::now_v7();
        let viewer = Caller::user(
            "v",
            vec![Membership {
                tenant: t,
                role: Role::Viewer,
            }],
        );
        assert!(matches!(
            viewer.require(t, Role::Operator, "tenant", t),
            Err(Error::PermissionDenied(_))
        ));
        assert!(matches!(
            viewer.require(Uuid::now_v7(), Role::Viewer, "tenant", t),
            Err(Error::NotFound { .. })
        ));
        assert!(
            Caller::platform_admin("p")
                .require(t, Role::TenantAdmin, "tenant", t)
                .is_ok()
        );
    }
}
