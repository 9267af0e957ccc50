//! `/api/v1/tenants/{id}/members` and `/api/v1/members/{id}`: who holds which
//! role in a tenant or one of its projects, forwarded to tenancy.

use axum::Json;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use kernel::caller::Role;
use kernel::grpc::time;
use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

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
        .route(Permission::Role(Role::TenantAdmin), routes!(add))
        .route(Permission::Authenticated, routes!(list))
        .route(Permission::Role(Role::TenantAdmin), routes!(remove))
}

/// A role binding as the API shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Member {
    /// Its id.
    pub id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The project, for a project-scoped role.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub project_id: String,
    /// user or group.
    pub kind: String,
    /// The user's subject or the group's name.
    pub subject: String,
    /// viewer, developer, operator or tenant-admin.
    pub role: String,
    /// Who granted it.
    pub created_by: String,
    /// When.
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::Member> for Member {
    fn from(m: pb::Member) -> Self {
        Self {
            id: m.id,
            tenant_id: m.tenant_id,
            project_id: m.project_id,
            kind: m.kind,
            subject: m.subject,
            role: m.role,
            created_by: m.created_by,
            created_at: time(m.created_at),
        }
    }
}

/// Body of `POST /tenants/{id}/members`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    #[serde(default)]
    project_id: String,
    kind: String,
    subject: String,
    role: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{id}/members",
    tag = "members",
    params(("id" = String, Path, description = "the id")),
    request_body = AddMember,
    responses((status = 201, body = Member), Problems),
    security(("bearer" = []))
)]
async fn add(
    Signed(mut tenancy): Signed<Tenancy>,
    Path(tenant_id): Path<String>,
    Body(b): Body<AddMember>,
) -> Result<(StatusCode, Json<Member>), ApiError> {
    let request = pb::AddMemberRequest {
        tenant_id,
        project_id: b.project_id,
        kind: b.kind,
        subject: b.subject,
        role: b.role,
    };
    Ok((
        StatusCode::CREATED,
        Json(tenancy.add_member(request).await?.into_inner().into()),
    ))
}

/// Paging and filters of `GET /tenants/{id}/members`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    project_id: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}/members",
    tag = "members",
    params(("id" = String, Path, description = "the id"), ListQuery, Filter),
    responses((status = 200, body = Page<Member>), Problems),
    security(("bearer" = []))
)]
async fn list(
    Signed(mut tenancy): Signed<Tenancy>,
    Path(tenant_id): Path<String>,
    Query(page): Query<ListQuery>,
    Query(q): Query<Filter>,
) -> Result<Json<Page<Member>>, ApiError> {
    let request = pb::ListMembersRequest {
        tenant_id,
        page: page.request(),
        kind: q.kind,
        project_id: q.project_id,
    };
    let r = tenancy.list_members(request).await?.into_inner();
    Ok(Json(Page::new(
        r.members.into_iter().map(Member::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    delete,
    path = "/api/v1/members/{id}",
    tag = "members",
    params(("id" = String, Path, description = "the id")),
    responses((status = 204, description = "done"), Problems),
    security(("bearer" = []))
)]
async fn remove(Signed(mut tenancy): Signed<Tenancy>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    tenancy.remove_member(pb::RemoveMemberRequest { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}
