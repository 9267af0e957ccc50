//! Application access keys (R6): a credential per tenant and application,
//! as Apollo's access keys, for config clients and agents. The gateway
//! accepts one only on the config center's read and watch routes
//! ([`ACCEPTED`]) and only for its application's sets and the shared sets
//! that application links; the caller it becomes is a viewer of the key's
//! tenant, so the configs service scopes it by tenant as any other caller.
//! Only a SHA-256 of the secret is stored; the secret is shown once.
//! Revoking takes effect on the next request (keys are not cached).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Membership, Role};
use kernel::name::DnsLabel;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Authenticated;
use crate::json::Body;
use crate::page::Page;
use crate::problem::{ApiError, Problems};
use crate::rbac::CONFIG_PUBLISH;
use crate::request::{Path, Query};
use crate::route::Routes;
use crate::upstream::{Configs, Signed, Tenancy};

/// Every access key starts with this, so the gateway knows what it is
/// looking at (and secret scanners can find leaked ones).
pub const PREFIX: &str = "paasak_";
/// The subject of a caller authenticated by an access key starts with this.
const SUBJECT: &str = "access-key:";
/// The routes (method, path template) an access key is accepted on: reading
/// and watching configuration, nothing else.
pub const ACCEPTED: &[(&str, &str)] = &[
    ("GET", "/api/v1/config-sets/{id}/watch"),
    ("GET", "/api/v1/config-sets/{id}/events"),
    ("GET", "/api/v1/config-watch"),
    ("GET", "/api/v1/config-watch/events"),
    ("GET", "/api/v1/tenants/{id}/effective-config"),
];

/// The routes, each with who may call it.
pub fn routes() -> Routes {
    Routes::new()
        .route(CONFIG_PUBLISH, routes!(create_access_key))
        .route(CONFIG_PUBLISH, routes!(list_access_keys))
        .route(CONFIG_PUBLISH, routes!(revoke_access_key))
}

/// What an access key may read: one application of one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The tenant.
    pub tenant: Uuid,
    /// The application.
    pub application: String,
}

impl Scope {
    /// The scope of a caller authenticated by an access key; `None` for any
    /// other caller.
    pub fn of(caller: &Caller) -> Option<Self> {
        let rest = caller.subject.strip_prefix(SUBJECT)?;
        let (application, _key) = rest.split_once('/')?;
        let [membership] = caller.memberships.as_slice() else {
            return None;
        };
        Some(Self {
            tenant: membership.tenant,
            application: application.to_string(),
        })
    }

    /// Whether an access key may call `method` `route`.
    pub fn accepts(method: &str, route: &str) -> bool {
        ACCEPTED.iter().any(|(m, r)| *m == method && *r == route)
    }

    /// Whether the key may read `set`: its application's own, or a shared
    /// set its application links (`links`: the application's shared set names).
    fn allows(&self, set: &pb::ConfigSet, links: &[String]) -> bool {
        set.tenant_id == self.tenant.to_string()
            && if set.shared {
                links.contains(&set.application)
            } else {
                set.application == self.application
            }
    }
}

/// Refuses an access key for a config set outside its application (404, as
/// for a set of another tenant: a key must not learn which sets exist).
///
/// # Errors
/// The set is not the key's, or the configs service fails.
pub async fn check_set(caller: &Caller, configs: &mut Configs, set_id: &str) -> Result<(), ApiError> {
    let Some(scope) = Scope::of(caller) else {
        return Ok(());
    };
    let set = configs
        .get_config_set(pb::GetConfigSetRequest { id: set_id.to_string() })
        .await?
        .into_inner();
    let links = if set.shared {
        configs
            .get_shared_links(pb::GetSharedLinksRequest {
                tenant_id: scope.tenant.to_string(),
                application: scope.application.clone(),
            })
            .await?
            .into_inner()
            .shared
    } else {
        Vec::new()
    };
    if scope.allows(&set, &links) {
        Ok(())
    } else {
        Err(Error::not_found("config set", set_id).into())
    }
}

/// Refuses an access key for another application's effective configuration.
///
/// # Errors
/// 403 naming the application.
pub fn check_application(caller: &Caller, tenant: &str, application: &str) -> Result<(), ApiError> {
    match Scope::of(caller) {
        Some(scope) if scope.tenant.to_string() != tenant || scope.application != application.trim() => {
            Err(Error::PermissionDenied(format!("this access key reads application {} only", scope.application)).into())
        }
        _ => Ok(()),
    }
}

/// An access key as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccessKey {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// The application whose configuration it reads.
    pub application: String,
    /// What it is for.
    pub name: String,
    /// Its first characters, to recognise it.
    pub prefix: String,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it was revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A new access key with its secret, shown this once.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedAccessKey {
    /// The key.
    #[serde(flatten)]
    pub key: AccessKey,
    /// Send as `Authorization: Bearer <secret>`; it is not shown again.
    pub secret: String,
}

/// Body of `POST /tenants/{id}/config-access-keys`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccessKey {
    /// The application (DNS label) whose configuration the key reads.
    application: String,
    /// What it is for (1-128 characters).
    #[schema(max_length = 128)]
    name: String,
}

/// Filters of `GET /tenants/{id}/config-access-keys`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyFilter {
    /// Only this application's.
    #[serde(default)]
    application: String,
    /// Page size (default 50, at most 500).
    #[serde(default)]
    limit: u32,
    /// From the previous page.
    #[serde(default)]
    cursor: String,
}

fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Access keys in the gateway's schema.
#[derive(Clone)]
pub struct AccessKeys {
    pool: PgPool,
}

impl AccessKeys {
    /// Keys stored in `pool`'s schema.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The caller a live key's secret stands for: a viewer of its tenant
    /// whose subject names the application and the key.
    ///
    /// # Errors
    /// The database fails.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Caller>> {
        let row = sqlx::query!(
            "UPDATE config_access_keys SET last_used_at = now()
             WHERE hash = $1 AND revoked_at IS NULL
             RETURNING id, tenant_id, application",
            digest(secret)
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| {
            Caller::user(
                format!("{SUBJECT}{}/{}", r.application, r.id),
                vec![Membership {
                    tenant: r.tenant_id,
                    role: Role::Viewer,
                }],
            )
        }))
    }

    /// Makes a key; returns it with its secret, which is never shown again.
    ///
    /// # Errors
    /// A field is malformed, or the caller is not an operator of the tenant.
    pub async fn create(
        &self,
        caller: &Caller,
        tenant: Uuid,
        application: &str,
        name: &str,
    ) -> Result<(AccessKey, String)> {
        let application = DnsLabel::parse("application", application.trim())?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 128 {
            return Err(Error::invalid("name", "must be 1-128 characters"));
        }
        caller.require(tenant, Role::Operator, "tenant", tenant)?;
        let bytes: [u8; 32] = rand::random();
        let secret = format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        let key = sqlx::query_as!(
            AccessKey,
            "INSERT INTO config_access_keys (id, tenant_id, application, name, hash, prefix, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING id, tenant_id, application, name, prefix, created_by, created_at, revoked_at, last_used_at",
            id::new_id(),
            tenant,
            application.as_str(),
            name,
            digest(&secret),
            &secret[..PREFIX.len() + 6],
            caller.subject,
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((key, secret))
    }

    /// A page of a tenant's keys, optionally of one application.
    ///
    /// # Errors
    /// A filter is malformed, or the caller is not an operator of the tenant.
    pub async fn list(
        &self,
        caller: &Caller,
        tenant: Uuid,
        application: &str,
        page: kernel::page::Page,
    ) -> Result<(Vec<AccessKey>, String)> {
        caller.require(tenant, Role::Operator, "tenant", tenant)?;
        let application = match application.trim() {
            "" => None,
            raw => Some(DnsLabel::parse("application", raw)?.to_string()),
        };
        let rows = sqlx::query_as!(
            AccessKey,
            "SELECT id, tenant_id, application, name, prefix, created_by, created_at, revoked_at, last_used_at
             FROM config_access_keys
             WHERE tenant_id = $1 AND ($2::text IS NULL OR application = $2) AND ($3::uuid IS NULL OR id > $3)
             ORDER BY id LIMIT $4",
            tenant,
            application,
            page.after,
            page.fetch(),
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(page.finish(rows, |k| k.id))
    }

    /// Revokes a key of `tenant` at once.
    ///
    /// # Errors
    /// Not found for this caller, or the caller is not an operator of the tenant.
    pub async fn revoke(&self, caller: &Caller, tenant: Uuid, id: Uuid) -> Result<()> {
        if !caller.can_see(tenant) {
            return Err(Error::not_found("access key", id));
        }
        caller.require(tenant, Role::Operator, "tenant", tenant)?;
        let revoked = sqlx::query!(
            "UPDATE config_access_keys SET revoked_at = coalesce(revoked_at, now())
             WHERE id = $1 AND tenant_id = $2",
            id,
            tenant
        )
        .execute(&self.pool)
        .await?;
        if revoked.rows_affected() == 0 {
            return Err(Error::not_found("access key", id));
        }
        Ok(())
    }
}

/// The tenant exists (an access key for no tenant is refused, not stored).
async fn check_tenant(tenancy: &mut Tenancy, tenant: Uuid) -> Result<(), ApiError> {
    tenancy
        .get_tenant(pb::GetTenantRequest { id: tenant.to_string() })
        .await?;
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/tenants/{id}/config-access-keys", tag = "configs",
    params(("id" = String, Path, description = "the tenant")),
    request_body = NewAccessKey,
    responses((status = 201, body = CreatedAccessKey, description = "the key, with its secret shown this once"), Problems),
    security(("bearer" = [])))]
async fn create_access_key(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Signed(mut tenancy): Signed<Tenancy>,
    Path(tenant): Path<String>,
    Body(b): Body<NewAccessKey>,
) -> Result<(StatusCode, Json<CreatedAccessKey>), ApiError> {
    let tenant = id::parse_id("id", &tenant)?;
    if caller.can_see(tenant) {
        check_tenant(&mut tenancy, tenant).await?;
    }
    let (key, secret) = s.access_keys.create(&caller, tenant, &b.application, &b.name).await?;
    Ok((StatusCode::CREATED, Json(CreatedAccessKey { key, secret })))
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/config-access-keys", tag = "configs",
    params(("id" = String, Path, description = "the tenant"), KeyFilter),
    responses((status = 200, body = Page<AccessKey>), Problems),
    security(("bearer" = [])))]
async fn list_access_keys(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(tenant): Path<String>,
    Query(q): Query<KeyFilter>,
) -> Result<Json<Page<AccessKey>>, ApiError> {
    let tenant = id::parse_id("id", &tenant)?;
    let page = kernel::page::Page::parse(q.limit, &q.cursor)?;
    let (items, next) = s.access_keys.list(&caller, tenant, &q.application, page).await?;
    Ok(Json(Page {
        items,
        next_cursor: Some(next).filter(|c| !c.is_empty()),
    }))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{id}/config-access-keys/{key_id}", tag = "configs",
    params(
        ("id" = String, Path, description = "the tenant"),
        ("key_id" = String, Path, description = "the access key"),
    ),
    responses((status = 204, description = "revoked"), Problems),
    security(("bearer" = [])))]
async fn revoke_access_key(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((tenant, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let tenant = id::parse_id("id", &tenant)?;
    let key = id::parse_id("key_id", &key)?;
    s.access_keys.revoke(&caller, tenant, key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_caller(application: &str, tenant: Uuid) -> Caller {
        Caller::user(
            format!("{SUBJECT}{application}/{}", Uuid::now_v7()),
            vec![Membership {
                tenant,
                role: Role::Viewer,
            }],
        )
    }

    fn set(tenant: Uuid, application: &str, shared: bool) -> pb::ConfigSet {
        pb::ConfigSet {
            tenant_id: tenant.to_string(),
            application: application.into(),
            shared,
            ..Default::default()
        }
    }

    #[test]
    fn only_access_key_callers_have_a_scope() {
        let t = Uuid::now_v7();
        assert_eq!(
            Scope::of(&key_caller("shop", t)),
            Some(Scope {
                tenant: t,
                application: "shop".into()
            })
        );
        assert_eq!(Scope::of(&Caller::user("token:x", vec![])), None);
        assert_eq!(Scope::of(&Caller::platform_admin("p")), None);
    }

    #[test]
    fn a_key_reads_its_application_and_the_shared_sets_it_links_only() {
        let t = Uuid::now_v7();
        let scope = Scope::of(&key_caller("shop", t)).unwrap();
        let common = ["common".to_string()];
        assert!(scope.allows(&set(t, "shop", false), &[]));
        assert!(!scope.allows(&set(t, "cart", false), &[]));
        assert!(scope.allows(&set(t, "common", true), &common));
        assert!(!scope.allows(&set(t, "other", true), &common));
        assert!(!scope.allows(&set(Uuid::now_v7(), "shop", false), &[]));
    }

    #[test]
    fn keys_are_accepted_on_read_and_watch_routes_only() {
        assert!(Scope::accepts("GET", "/api/v1/config-watch"));
        assert!(Scope::accepts("GET", "/api/v1/tenants/{id}/effective-config"));
        assert!(!Scope::accepts("POST", "/api/v1/config-sets/{id}/releases"));
        assert!(!Scope::accepts("GET", "/api/v1/config-sets"));
        assert!(!Scope::accepts("GET", "/api/v1/tenants"));
    }
}
