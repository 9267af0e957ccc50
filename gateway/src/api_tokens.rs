//! `/api/v1/tokens`: make, list and revoke API tokens.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use kernel::caller::Role;
use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Authenticated;
use crate::json::Body;
use crate::problem::{ApiError, Problems};
use crate::rbac::Permission;
use crate::request::{Path, Query};
use crate::route::Routes;
use crate::token::{NewToken, Token};
use crate::upstream::{Signed, Tenancy};

/// The routes, each with who may call it.
pub fn routes() -> Routes {
    Routes::new()
        .route(Permission::Role(Role::TenantAdmin), routes!(create))
        .route(Permission::Role(Role::TenantAdmin), routes!(list))
        .route(Permission::Role(Role::TenantAdmin), routes!(revoke))
}

/// A token as listed.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenView {
    /// Its id.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// Its first characters.
    pub prefix: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its project, if limited to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Its role.
    pub role: String,
    /// Who made it.
    pub created_by: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<Token> for TokenView {
    fn from(t: Token) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name,
            prefix: t.prefix,
            tenant_id: t.tenant_id.to_string(),
            project_id: t.project_id.map(|p| p.to_string()),
            role: t.role,
            created_by: t.created_by,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// A new token with its secret, shown this once.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Created {
    /// The token.
    #[serde(flatten)]
    pub token: TokenView,
    /// Send as `Authorization: Bearer <secret>`; it is not shown again.
    pub secret: String,
}

/// Body of `POST /tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What it is for: any text of 1-128 characters (`token::NewToken`).
    #[schema(max_length = 128)]
    name: String,
    tenant_id: String,
    #[serde(default)]
    project_id: String,
    role: String,
    #[schema(minimum = 1, maximum = 365)]
    expires_in_days: Option<u32>,
}

/// Filter of `GET /tokens`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    tenant_id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    request_body = CreateToken,
    responses((status = 201, body = Created), Problems),
    security(("bearer" = []))
)]
async fn create(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Signed(mut tenancy): Signed<Tenancy>,
    Body(b): Body<CreateToken>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let new = NewToken::parse(&b.name, &b.tenant_id, &b.project_id, &b.role, b.expires_in_days)?;
    if caller.can_see(new.tenant()) {
        check_scope(&mut tenancy, &new).await?;
    }
    let (token, secret) = s.tokens.create(&caller, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(Created {
            token: token.into(),
            secret,
        }),
    ))
}

/// The tenant a new token names exists, and so does its project, in that
/// tenant: the token would otherwise be made for nothing (or cross tenants).
async fn check_scope(tenancy: &mut Tenancy, new: &NewToken) -> Result<(), ApiError> {
    let tenant = new.tenant().to_string();
    match tenancy.get_tenant(pb::GetTenantRequest { id: tenant.clone() }).await {
        Ok(_) => {}
        Err(s) if s.code() == tonic::Code::NotFound => {
            return Err(ApiError::invalid("tenant_id", "no such tenant"));
        }
        Err(s) => return Err(s.into()),
    }
    let Some(project) = new.project() else {
        return Ok(());
    };
    match tenancy
        .get_project(pb::GetProjectRequest {
            id: project.to_string(),
        })
        .await
    {
        Ok(p) if p.get_ref().tenant_id == tenant => Ok(()),
        Ok(_) => Err(ApiError::invalid("project_id", "is a project of another tenant")),
        Err(s) if s.code() == tonic::Code::NotFound => Err(ApiError::invalid("project_id", "no such project")),
        Err(s) => Err(s.into()),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    params(Filter),
    responses((status = 200, body = Vec<TokenView>), Problems),
    security(("bearer" = []))
)]
async fn list(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Signed(mut tenancy): Signed<Tenancy>,
    Query(q): Query<Filter>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let tenant = q.tenant_id.map(|t| kernel::id::parse_id("tenant_id", &t)).transpose()?;
    if let Some(tenant) = tenant {
        // The tokens of a tenant that does not exist are not an empty list.
        tenancy
            .get_tenant(pb::GetTenantRequest { id: tenant.to_string() })
            .await?;
    }
    Ok(Json(
        s.tokens
            .list(&caller, tenant)
            .await?
            .into_iter()
            .map(TokenView::from)
            .collect(),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    params(("id" = String, Path, description = "the id")),
    responses((status = 204, description = "done"), Problems),
    security(("bearer" = []))
)]
async fn revoke(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.tokens.revoke(&caller, kernel::id::parse_id("id", &id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
