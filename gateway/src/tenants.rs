//! `/api/v1/tenants`: the tenant slice of the public API, forwarded to tenancy.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use kernel::caller::Role;
use kernel::grpc::time;
use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use crate::AppState;
use crate::json::Body;
use crate::page::{ListQuery, Page};
use crate::problem::{ApiError, Problems};
use crate::rbac::Permission;
use crate::request::{Path, Query};
use crate::route::Routes;
use crate::upstream::{Signed, Tenancy};

/// The routes, each with who may call it.
pub fn routes() -> Routes {
    Routes::new()
        .route(Permission::PlatformAdmin, routes!(create))
        .route(Permission::Authenticated, routes!(read))
        .route(Permission::Authenticated, routes!(list))
        .route(Permission::Role(Role::TenantAdmin), routes!(update))
        .route(Permission::PlatformAdmin, routes!(delete))
}

/// A tenant as the API shows it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Tenant {
    /// Its id.
    pub id: String,
    /// DNS label, unique.
    pub name: String,
    /// Shown in the portal.
    pub display_name: String,
    /// Owner's e-mail.
    pub contact: String,
    /// `active` or `suspended`.
    pub status: String,
    /// Bumped on every change; send it back as `expected_version`.
    pub version: i64,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: Option<DateTime<Utc>>,
}

/// Body of `POST /tenants`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    name: String,
    /// Shown instead of the name.
    #[serde(default)]
    #[schema(max_length = 128)]
    display_name: String,
    #[serde(default)]
    contact: String,
}

/// Body of `PATCH /tenants/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    /// Shown instead of the name; absent: left as it is (it cannot be emptied).
    #[schema(min_length = 1, max_length = 128)]
    display_name: Option<String>,
    contact: Option<String>,
    status: Option<String>,
    #[serde(default)]
    expected_version: i64,
}

/// Query of `GET /tenants`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    #[serde(default)]
    name_prefix: String,
    #[serde(default)]
    status: Option<String>,
}

fn status_name(raw: i32) -> String {
    match pb::TenantStatus::try_from(raw) {
        Ok(pb::TenantStatus::Suspended) => "suspended",
        _ => "active",
    }
    .into()
}

fn status_value(field: &str, raw: Option<&str>) -> Result<i32, ApiError> {
    Ok(match raw {
        None => pb::TenantStatus::Unspecified,
        Some("active") => pb::TenantStatus::Active,
        Some("suspended") => pb::TenantStatus::Suspended,
        Some(_) => return Err(ApiError::invalid(field, "must be active or suspended")),
    } as i32)
}

impl From<pb::Tenant> for Tenant {
    fn from(t: pb::Tenant) -> Self {
        Self {
            status: status_name(t.status),
            id: t.id,
            name: t.name,
            display_name: t.display_name,
            contact: t.contact,
            version: t.version,
            created_at: time(t.created_at),
            updated_at: time(t.updated_at),
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants",
    tag = "tenants",
    request_body = CreateTenant,
    responses((status = 201, body = Tenant), Problems),
    security(("bearer" = []))
)]
async fn create(
    Signed(mut tenancy): Signed<Tenancy>,
    Body(body): Body<CreateTenant>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    let request = pb::CreateTenantRequest {
        name: body.name,
        display_name: body.display_name,
        contact: body.contact,
    };
    let tenant = tenancy.create_tenant(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(tenant.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}",
    tag = "tenants",
    params(("id" = String, Path, description = "the id")),
    responses((status = 200, body = Tenant), Problems),
    security(("bearer" = []))
)]
async fn read(Signed(mut tenancy): Signed<Tenancy>, Path(id): Path<String>) -> Result<Json<Tenant>, ApiError> {
    let tenant = tenancy.get_tenant(pb::GetTenantRequest { id }).await?.into_inner();
    Ok(Json(tenant.into()))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants",
    tag = "tenants",
    params(ListQuery, Filter),
    responses((status = 200, body = Page<Tenant>), Problems),
    security(("bearer" = []))
)]
async fn list(
    Signed(mut tenancy): Signed<Tenancy>,
    Query(page): Query<ListQuery>,
    Query(q): Query<Filter>,
) -> Result<Json<Page<Tenant>>, ApiError> {
    let request = pb::ListTenantsRequest {
        page: page.request(),
        name_prefix: q.name_prefix,
        status: status_value("status", q.status.as_deref())?,
    };
    let r = tenancy.list_tenants(request).await?.into_inner();
    Ok(Json(Page::new(
        r.tenants.into_iter().map(Tenant::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    patch,
    path = "/api/v1/tenants/{id}",
    tag = "tenants",
    params(("id" = String, Path, description = "the id")),
    request_body = UpdateTenant,
    responses((status = 200, body = Tenant), Problems),
    security(("bearer" = []))
)]
async fn update(
    State(s): State<AppState>,
    Signed(mut tenancy): Signed<Tenancy>,
    Path(id): Path<String>,
    Body(body): Body<UpdateTenant>,
) -> Result<Json<Tenant>, ApiError> {
    let request = pb::UpdateTenantRequest {
        id,
        display_name: body.display_name,
        contact: body.contact,
        status: status_value("status", body.status.as_deref())?,
        expected_version: body.expected_version,
    };
    let suspension = request.status != 0;
    let tenant = tenancy.update_tenant(request).await?.into_inner();
    if suspension {
        // Suspended or reactivated: its members' roles change here at once.
        s.memberships.forget(None);
    }
    Ok(Json(tenant.into()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{id}",
    tag = "tenants",
    params(("id" = String, Path, description = "the id")),
    responses((status = 204, description = "done"), Problems),
    security(("bearer" = []))
)]
async fn delete(
    State(s): State<AppState>,
    Signed(mut tenancy): Signed<Tenancy>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = kernel::id::parse_id("id", &id)?;
    tenancy.delete_tenant(pb::DeleteTenantRequest { id }).await?;
    // Its tokens and its members' roles die with it here and now; other
    // gateways see the tenant gone when tenancy's event reaches them.
    let revoked = s.tokens.revoke_tenant(tenant).await?;
    s.memberships.forget(None);
    tracing::info!(%tenant, revoked, "tenant deleted; its API tokens revoked");
    Ok(StatusCode::NO_CONTENT)
}
