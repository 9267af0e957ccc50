//! `/api/v1/tenants/{id}/projects`, `/projects/{id}`, `/projects/{id}/partitions`,
//! `/partitions/{id}`: a tenant's projects and their partitions, forwarded to tenancy.

use std::collections::BTreeMap;

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
        .route(Permission::Role(Role::TenantAdmin), routes!(create_project))
        .route(Permission::Authenticated, routes!(list_projects))
        .route(Permission::Authenticated, routes!(read_project))
        .route(Permission::Role(Role::TenantAdmin), routes!(delete_project))
        .route(Permission::Role(Role::TenantAdmin), routes!(create_partition))
        .route(Permission::Authenticated, routes!(list_partitions))
        .route(Permission::Authenticated, routes!(read_partition))
        .route(Permission::Role(Role::TenantAdmin), routes!(delete_partition))
}

/// A project as the API shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Project {
    /// Its id.
    pub id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// DNS label, unique in the tenant.
    pub name: String,
    /// Shown in the portal.
    pub display_name: String,
    /// What it is for.
    pub description: String,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::Project> for Project {
    fn from(p: pb::Project) -> Self {
        Self {
            id: p.id,
            tenant_id: p.tenant_id,
            name: p.name,
            display_name: p.display_name,
            description: p.description,
            created_at: time(p.created_at),
        }
    }
}

/// A LimitRange item (Container or Pod).
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitItem {
    #[serde(default)]
    min: BTreeMap<String, String>,
    #[serde(default)]
    max: BTreeMap<String, String>,
    #[serde(default)]
    default: BTreeMap<String, String>,
    #[serde(default, rename = "defaultRequest")]
    default_request: BTreeMap<String, String>,
    #[serde(default, rename = "maxLimitRequestRatio")]
    max_limit_request_ratio: BTreeMap<String, String>,
}

/// A partition's LimitRange.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitRange {
    #[serde(default)]
    container: LimitItem,
    #[serde(default)]
    pod: LimitItem,
}

impl LimitItem {
    fn from_pb(i: Option<pb::LimitItem>) -> Self {
        let i = i.unwrap_or_default();
        let m = |m: std::collections::HashMap<String, String>| m.into_iter().collect();
        Self {
            min: m(i.min),
            max: m(i.max),
            default: m(i.default),
            default_request: m(i.default_request),
            max_limit_request_ratio: m(i.max_limit_request_ratio),
        }
    }
    fn into_pb(self) -> pb::LimitItem {
        let m = |m: BTreeMap<String, String>| m.into_iter().collect();
        pb::LimitItem {
            min: m(self.min),
            max: m(self.max),
            default: m(self.default),
            default_request: m(self.default_request),
            max_limit_request_ratio: m(self.max_limit_request_ratio),
        }
    }
}

impl LimitRange {
    /// As the tenancy API takes it.
    pub fn into_pb(self) -> pb::LimitRange {
        pb::LimitRange {
            container: Some(self.container.into_pb()),
            pod: Some(self.pod.into_pb()),
        }
    }
}

/// A partition as the API shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Partition {
    /// Its id.
    pub id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its project.
    pub project_id: String,
    /// The member cluster.
    pub cluster: String,
    /// The cluster's data centre.
    pub data_centre: String,
    /// The namespace in the cluster.
    pub namespace: String,
    /// Dedicated node labels.
    pub node_selector: BTreeMap<String, String>,
    /// The default network policy.
    pub network_policy: String,
    /// Its LimitRange.
    pub limit_range: LimitRange,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::Partition> for Partition {
    fn from(p: pb::Partition) -> Self {
        let lr = p.limit_range.unwrap_or_default();
        Self {
            id: p.id,
            tenant_id: p.tenant_id,
            project_id: p.project_id,
            cluster: p.cluster,
            data_centre: p.data_centre,
            namespace: p.namespace,
            node_selector: p.node_selector.into_iter().collect(),
            network_policy: p.network_policy,
            limit_range: LimitRange {
                container: LimitItem::from_pb(lr.container),
                pod: LimitItem::from_pb(lr.pod),
            },
            created_at: time(p.created_at),
        }
    }
}

/// Paging and filters of list routes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    #[serde(default)]
    name_prefix: String,
    #[serde(default)]
    cluster: String,
}

/// Body of `POST /tenants/{id}/projects`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    name: String,
    /// Shown instead of the name (default: the name).
    #[serde(default)]
    #[schema(max_length = 128)]
    display_name: String,
    #[serde(default)]
    #[schema(max_length = 2048)]
    description: String,
}

/// Body of `POST /projects/{id}/partitions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePartition {
    cluster: String,
    data_centre: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    node_selector: BTreeMap<String, String>,
    #[serde(default)]
    network_policy: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{id}/projects",
    tag = "projects",
    params(("id" = String, Path, description = "the id")),
    request_body = CreateProject,
    responses((status = 201, body = Project), Problems),
    security(("bearer" = []))
)]
async fn create_project(
    Signed(mut tenancy): Signed<Tenancy>,
    Path(tenant_id): Path<String>,
    Body(b): Body<CreateProject>,
) -> Result<(StatusCode, Json<Project>), ApiError> {
    let request = pb::CreateProjectRequest {
        tenant_id,
        name: b.name,
        display_name: b.display_name,
        description: b.description,
    };
    Ok((
        StatusCode::CREATED,
        Json(tenancy.create_project(request).await?.into_inner().into()),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}/projects",
    tag = "projects",
    params(("id" = String, Path, description = "the id"), ListQuery, Filter),
    responses((status = 200, body = Page<Project>), Problems),
    security(("bearer" = []))
)]
async fn list_projects(
    Signed(mut tenancy): Signed<Tenancy>,
    Path(tenant_id): Path<String>,
    Query(page): Query<ListQuery>,
    Query(q): Query<Filter>,
) -> Result<Json<Page<Project>>, ApiError> {
    let request = pb::ListProjectsRequest {
        tenant_id,
        page: page.request(),
        name_prefix: q.name_prefix,
    };
    let r = tenancy.list_projects(request).await?.into_inner();
    Ok(Json(Page::new(
        r.projects.into_iter().map(Project::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}",
    tag = "projects",
    params(("id" = String, Path, description = "the id")),
    responses((status = 200, body = Project), Problems),
    security(("bearer" = []))
)]
async fn read_project(Signed(mut tenancy): Signed<Tenancy>, Path(id): Path<String>) -> Result<Json<Project>, ApiError> {
    Ok(Json(
        tenancy
            .get_project(pb::GetProjectRequest { id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/projects/{id}",
    tag = "projects",
    params(("id" = String, Path, description = "the id")),
    responses((status = 204, description = "done"), Problems),
    security(("bearer" = []))
)]
async fn delete_project(Signed(mut tenancy): Signed<Tenancy>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    tenancy.delete_project(pb::DeleteProjectRequest { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/partitions",
    tag = "partitions",
    params(("id" = String, Path, description = "the id")),
    request_body = CreatePartition,
    responses((status = 201, body = Partition), Problems),
    security(("bearer" = []))
)]
async fn create_partition(
    Signed(mut tenancy): Signed<Tenancy>,
    Path(project_id): Path<String>,
    Body(b): Body<CreatePartition>,
) -> Result<(StatusCode, Json<Partition>), ApiError> {
    let request = pb::CreatePartitionRequest {
        project_id,
        cluster: b.cluster,
        data_centre: b.data_centre,
        namespace: b.namespace,
        node_selector: b.node_selector.into_iter().collect(),
        network_policy: b.network_policy,
    };
    Ok((
        StatusCode::CREATED,
        Json(tenancy.create_partition(request).await?.into_inner().into()),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/partitions",
    tag = "partitions",
    params(("id" = String, Path, description = "the id"), ListQuery, Filter),
    responses((status = 200, body = Page<Partition>), Problems),
    security(("bearer" = []))
)]
async fn list_partitions(
    Signed(mut tenancy): Signed<Tenancy>,
    Path(project_id): Path<String>,
    Query(page): Query<ListQuery>,
    Query(q): Query<Filter>,
) -> Result<Json<Page<Partition>>, ApiError> {
    let request = pb::ListPartitionsRequest {
        project_id,
        page: page.request(),
        cluster: q.cluster,
    };
    let r = tenancy.list_partitions(request).await?.into_inner();
    Ok(Json(Page::new(
        r.partitions.into_iter().map(Partition::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/partitions/{id}",
    tag = "partitions",
    params(("id" = String, Path, description = "the id")),
    responses((status = 200, body = Partition), Problems),
    security(("bearer" = []))
)]
async fn read_partition(
    Signed(mut tenancy): Signed<Tenancy>,
    Path(id): Path<String>,
) -> Result<Json<Partition>, ApiError> {
    Ok(Json(
        tenancy
            .get_partition(pb::GetPartitionRequest { id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/partitions/{id}",
    tag = "partitions",
    params(("id" = String, Path, description = "the id")),
    responses((status = 204, description = "done"), Problems),
    security(("bearer" = []))
)]
async fn delete_partition(
    Signed(mut tenancy): Signed<Tenancy>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    tenancy.delete_partition(pb::DeletePartitionRequest { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}
