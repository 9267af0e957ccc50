//! Image signatures' REST face, forwarded to the images service: tenants'
//! cosign signing keys (made and held sealed by the platform, or registered
//! public keys of the tenant's own CI), signing a tag's digest in cosign's
//! format, checking a tag's signatures, and each tenant's policy of
//! requiring signed images per environment (admission rule `signature`).

use axum::Json;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use kernel::caller::Role;
use kernel::grpc::time;
use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use crate::json::Body;
use crate::problem::{ApiError, Problems};
use crate::rbac::Permission;
use crate::request::Path;
use crate::route::Routes;
use crate::upstream::{Images, Signed};

/// The routes, each with who may call it.
pub fn routes() -> Routes {
    Routes::new()
        .route(Permission::Role(Role::TenantAdmin), routes!(create_signing_key))
        .route(Permission::Authenticated, routes!(list_signing_keys))
        .route(Permission::Role(Role::TenantAdmin), routes!(delete_signing_key))
        .route(Permission::Role(Role::Operator), routes!(sign_tag))
        .route(Permission::Authenticated, routes!(check_tag_signatures))
        .route(Permission::Role(Role::TenantAdmin), routes!(set_signature_policy))
        .route(Permission::Authenticated, routes!(read_signature_policy))
}

/// A tenant's signing key (never its private half).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SigningKey {
    /// Its id.
    pub id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// DNS label, unique in the tenant.
    pub name: String,
    /// PEM `PUBLIC KEY`: `cosign verify --key <file>` checks signatures with it.
    pub public_key_pem: String,
    /// Made and held (sealed) by the platform, which signs with it; false:
    /// the tenant's own key, registered by its public half.
    pub platform_held: bool,
    /// Made or registered.
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::SigningKey> for SigningKey {
    fn from(k: pb::SigningKey) -> Self {
        Self {
            id: k.id,
            tenant_id: k.tenant_id,
            name: k.name,
            public_key_pem: k.public_key_pem,
            platform_held: k.platform_held,
            created_at: time(k.created_at),
        }
    }
}

/// Body of `POST /tenants/{id}/signing-keys`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSigningKey {
    /// DNS label, unique in the tenant.
    #[schema(max_length = 63)]
    name: String,
    /// The tenant's own ECDSA P-256 public key (PEM, as `cosign generate-key-pair`
    /// writes `cosign.pub`); omitted: the platform makes a key and holds it.
    #[serde(default)]
    #[schema(max_length = 4096)]
    public_key_pem: Option<String>,
}

/// Signatures found on an image.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureState {
    /// No signature image (`sha256-<hex>.sig`), or never checked.
    #[default]
    Unsigned,
    /// A valid signature by one of the owner's keys (`key_ids`).
    Signed,
    /// Signatures, none valid with the owner's keys (`message` says why).
    Invalid,
}

/// An image's cosign signature status (per repository and digest).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignatureStatus {
    /// unsigned, signed or invalid.
    pub status: SignatureState,
    /// With `signed`: the owner's keys whose signatures are valid.
    pub key_ids: Vec<String>,
    /// With `invalid`: why each signature failed.
    pub message: String,
    /// Last checked; none: never.
    pub checked_at: Option<DateTime<Utc>>,
}

impl From<pb::SignatureStatus> for SignatureStatus {
    fn from(s: pb::SignatureStatus) -> Self {
        Self {
            status: match s.status.as_str() {
                "signed" => SignatureState::Signed,
                "invalid" => SignatureState::Invalid,
                _ => SignatureState::Unsigned,
            },
            key_ids: s.key_ids,
            message: s.message,
            checked_at: time(s.checked_at),
        }
    }
}

/// Body of `POST /repositories/{id}/tags/{tag}/signatures`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignTag {
    /// A platform-held key of the repository's tenant.
    #[schema(max_length = 36)]
    key_id: String,
}

/// A tenant's signature policy in one environment.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignaturePolicy {
    /// The tenant.
    pub tenant_id: String,
    /// production or test.
    pub environment: String,
    /// Deploys need images signed by one of the owner's keys; in production
    /// an image without is refused (admission rule `signature`). Default false.
    pub required: bool,
}

/// Body of `PUT /tenants/{id}/signature-policies/{environment}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSignaturePolicy {
    /// Whether signatures are required.
    required: bool,
}

fn policy(p: pb::SignaturePolicy) -> SignaturePolicy {
    SignaturePolicy {
        tenant_id: p.tenant_id,
        environment: p.environment,
        required: p.required,
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{id}/signing-keys",
    tag = "images",
    params(("id" = String, Path, description = "the tenant")),
    request_body = NewSigningKey,
    responses((status = 201, body = SigningKey), Problems),
    security(("bearer" = []))
)]
async fn create_signing_key(
    Signed(mut images): Signed<Images>,
    Path(tenant_id): Path<String>,
    Body(b): Body<NewSigningKey>,
) -> Result<(StatusCode, Json<SigningKey>), ApiError> {
    let k = images
        .create_signing_key(pb::CreateSigningKeyRequest {
            tenant_id,
            name: b.name,
            public_key_pem: b.public_key_pem.unwrap_or_default(),
        })
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(k.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}/signing-keys",
    tag = "images",
    params(("id" = String, Path, description = "the tenant")),
    responses((status = 200, body = Vec<SigningKey>), Problems),
    security(("bearer" = []))
)]
async fn list_signing_keys(
    Signed(mut images): Signed<Images>,
    Path(tenant_id): Path<String>,
) -> Result<Json<Vec<SigningKey>>, ApiError> {
    let r = images
        .list_signing_keys(pb::ListSigningKeysRequest { tenant_id })
        .await?
        .into_inner();
    Ok(Json(r.keys.into_iter().map(SigningKey::from).collect()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{id}/signing-keys/{key_id}",
    tag = "images",
    params(
        ("id" = String, Path, description = "the tenant"),
        ("key_id" = String, Path, description = "the key"),
    ),
    responses((status = 204, description = "gone; signatures it made no longer count"), Problems),
    security(("bearer" = []))
)]
async fn delete_signing_key(
    Signed(mut images): Signed<Images>,
    Path((tenant_id, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    images
        .delete_signing_key(pb::DeleteSigningKeyRequest { tenant_id, id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/repositories/{id}/tags/{tag}/signatures",
    tag = "images",
    params(
        ("id" = String, Path, description = "the repository"),
        ("tag" = String, Path, description = "the tag"),
    ),
    request_body = SignTag,
    responses((status = 201, body = SignatureStatus, description = "signed (cosign's `sha256-<hex>.sig` pushed) and checked"), Problems),
    security(("bearer" = []))
)]
async fn sign_tag(
    Signed(mut images): Signed<Images>,
    Path((repository_id, tag)): Path<(String, String)>,
    Body(b): Body<SignTag>,
) -> Result<(StatusCode, Json<SignatureStatus>), ApiError> {
    let s = images
        .sign_tag(pb::SignTagRequest {
            repository_id,
            tag,
            key_id: b.key_id,
        })
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(s.into())))
}

#[utoipa::path(
    post,
    path = "/api/v1/repositories/{id}/tags/{tag}/signatures/check",
    tag = "images",
    params(
        ("id" = String, Path, description = "the repository"),
        ("tag" = String, Path, description = "the tag"),
    ),
    responses((status = 200, body = SignatureStatus, description = "checked now against the tenant's keys"), Problems),
    security(("bearer" = []))
)]
async fn check_tag_signatures(
    Signed(mut images): Signed<Images>,
    Path((repository_id, tag)): Path<(String, String)>,
) -> Result<Json<SignatureStatus>, ApiError> {
    let s = images
        .check_tag_signatures(pb::CheckTagSignaturesRequest { repository_id, tag })
        .await?
        .into_inner();
    Ok(Json(s.into()))
}

#[utoipa::path(
    put,
    path = "/api/v1/tenants/{id}/signature-policies/{environment}",
    tag = "images",
    params(
        ("id" = String, Path, description = "the tenant"),
        ("environment" = String, Path, description = "production or test"),
    ),
    request_body = SetSignaturePolicy,
    responses((status = 200, body = SignaturePolicy), Problems),
    security(("bearer" = []))
)]
async fn set_signature_policy(
    Signed(mut images): Signed<Images>,
    Path((tenant_id, environment)): Path<(String, String)>,
    Body(b): Body<SetSignaturePolicy>,
) -> Result<Json<SignaturePolicy>, ApiError> {
    let p = images
        .set_signature_policy(pb::SetSignaturePolicyRequest {
            tenant_id,
            environment,
            required: b.required,
        })
        .await?
        .into_inner();
    Ok(Json(policy(p)))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}/signature-policies/{environment}",
    tag = "images",
    params(
        ("id" = String, Path, description = "the tenant"),
        ("environment" = String, Path, description = "production or test"),
    ),
    responses((status = 200, body = SignaturePolicy), Problems),
    security(("bearer" = []))
)]
async fn read_signature_policy(
    Signed(mut images): Signed<Images>,
    Path((tenant_id, environment)): Path<(String, String)>,
) -> Result<Json<SignaturePolicy>, ApiError> {
    let p = images
        .get_signature_policy(pb::GetSignaturePolicyRequest { tenant_id, environment })
        .await?
        .into_inner();
    Ok(Json(policy(p)))
}
