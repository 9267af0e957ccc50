//! `/partitions/{id}/pull-secrets`: registry credentials a tenant
//! administrator adds to a partition, forwarded to federation, which writes
//! each as an image pull secret into the partition's namespace. Passwords
//! go in and never come back out.

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
use crate::upstream::{Federation, Signed};

/// The routes, each with who may call it.
pub fn routes() -> Routes {
    Routes::new()
        .route(Permission::Role(Role::TenantAdmin), routes!(put_secret))
        .route(Permission::Authenticated, routes!(list))
        .route(Permission::Role(Role::TenantAdmin), routes!(delete))
}

/// Body of `PUT /partitions/{id}/pull-secrets/{name}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPullSecret {
    /// Registry host[:port].
    server: String,
    /// User.
    username: String,
    /// Password or token; stored encrypted, never returned.
    password: String,
}

/// A partition's registry credential (never its password).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PullSecret {
    /// The partition.
    pub partition_id: String,
    /// Its name in the partition.
    pub name: String,
    /// Registry host[:port].
    pub server: String,
    /// User.
    pub username: String,
    /// The Secret in the partition's namespace.
    pub secret_name: String,
    /// Added.
    pub created_at: Option<DateTime<Utc>>,
    /// Last replaced.
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<pb::PullSecret> for PullSecret {
    fn from(p: pb::PullSecret) -> Self {
        Self {
            partition_id: p.partition_id,
            name: p.name,
            server: p.server,
            username: p.username,
            secret_name: p.secret_name,
            created_at: time(p.created_at),
            updated_at: time(p.updated_at),
        }
    }
}

/// A partition's credentials.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PullSecretList {
    /// By name.
    pub items: Vec<PullSecret>,
}

#[utoipa::path(
    put,
    path = "/api/v1/partitions/{id}/pull-secrets/{name}",
    tag = "projects",
    params(
        ("id" = String, Path, description = "the partition"),
        ("name" = String, Path, description = "the credential's name (DNS label)", max_length = 53,
            pattern = r"^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$"),
    ),
    request_body = PutPullSecret,
    responses((status = 200, body = PullSecret), Problems),
    security(("bearer" = []))
)]
async fn put_secret(
    Signed(mut federation): Signed<Federation>,
    Path((partition_id, name)): Path<(String, String)>,
    Body(b): Body<PutPullSecret>,
) -> Result<Json<PullSecret>, ApiError> {
    let request = pb::PutPullSecretRequest {
        partition_id,
        name,
        server: b.server,
        username: b.username,
        password: b.password,
    };
    Ok(Json(federation.put_pull_secret(request).await?.into_inner().into()))
}

#[utoipa::path(
    get,
    path = "/api/v1/partitions/{id}/pull-secrets",
    tag = "projects",
    params(("id" = String, Path, description = "the partition")),
    responses((status = 200, body = PullSecretList), Problems),
    security(("bearer" = []))
)]
async fn list(
    Signed(mut federation): Signed<Federation>,
    Path(partition_id): Path<String>,
) -> Result<Json<PullSecretList>, ApiError> {
    let r = federation
        .list_pull_secrets(pb::ListPullSecretsRequest { partition_id })
        .await?
        .into_inner();
    Ok(Json(PullSecretList {
        items: r.pull_secrets.into_iter().map(PullSecret::from).collect(),
    }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/partitions/{id}/pull-secrets/{name}",
    tag = "projects",
    params(
        ("id" = String, Path, description = "the partition"),
        ("name" = String, Path, description = "the credential's name", max_length = 53,
            pattern = r"^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$"),
    ),
    responses((status = 204, description = "done; its Secret leaves the cluster"), Problems),
    security(("bearer" = []))
)]
async fn delete(
    Signed(mut federation): Signed<Federation>,
    Path((partition_id, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    federation
        .delete_pull_secret(pb::DeletePullSecretRequest { partition_id, name })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
