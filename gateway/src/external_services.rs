//! `/api/v1/tenants/{id}/external-services`, `/external-services/{id}`:
//! services outside the clusters (a mainframe database, a SaaS API) that
//! apps in a tenant's partitions reach by a stable in-cluster name,
//! forwarded to the apps service.

use axum::Json;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use kernel::caller::Role;
use kernel::grpc::time;
use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::routes;

use crate::json::Body;
use crate::page::{ListQuery, Page};
use crate::problem::{ApiError, Problems};
use crate::rbac::Permission;
use crate::request::{Path, Query};
use crate::route::Routes;
use crate::upstream::{Apps, Signed};

/// The routes, each with who may call it.
pub fn routes() -> Routes {
    Routes::new()
        .route(Permission::Role(Role::Developer), routes!(register))
        .route(Permission::Authenticated, routes!(list))
        .route(Permission::Authenticated, routes!(read))
        .route(Permission::Role(Role::Developer), routes!(update))
        .route(Permission::Role(Role::Developer), routes!(delete))
}

/// A port of an external service.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// DNS label; required when there are several ports.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// 1-65535.
    pub port: u32,
    /// TCP (the default), UDP or SCTP.
    #[serde(default)]
    pub protocol: String,
}

fn ports_pb(ports: Vec<Port>) -> Vec<pb::ExternalServicePort> {
    ports
        .into_iter()
        .map(|p| pb::ExternalServicePort {
            name: p.name,
            port: p.port,
            protocol: p.protocol,
        })
        .collect()
}

/// An external service.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExternalService {
    /// Its id.
    pub id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its project: only that project's partitions, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// The in-cluster name apps use (a Service in each partition's namespace).
    pub name: String,
    /// What it is.
    pub description: String,
    /// The DNS name the in-cluster name aliases (an ExternalName Service).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// The addresses the in-cluster name's Endpoints list.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Its ports.
    pub ports: Vec<Port>,
    /// Its placement.
    #[schema(value_type = Object)]
    pub placement: Value,
    /// Its federation binding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding_id: Option<String>,
    /// Healthy, Progressing, Degraded or Unknown (read of one service only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_reason: Option<String>,
    /// Per cluster: cluster, namespace, health, last error (read of one service only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub clusters: Option<Value>,
    /// Who registered it.
    pub created_by: String,
    /// When.
    pub created_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<pb::ExternalService> for ExternalService {
    fn from(s: pb::ExternalService) -> Self {
        Self {
            project_id: Some(s.project_id).filter(|p| !p.is_empty()),
            dns_name: Some(s.dns_name).filter(|d| !d.is_empty()),
            ports: s
                .ports
                .into_iter()
                .map(|p| Port {
                    name: p.name,
                    port: p.port,
                    protocol: p.protocol,
                })
                .collect(),
            placement: serde_json::from_str(&s.placement_json).unwrap_or(Value::Null),
            binding_id: Some(s.binding_id).filter(|b| !b.is_empty()),
            health: Some(s.health).filter(|h| !h.is_empty()),
            health_reason: Some(s.health_reason).filter(|h| !h.is_empty()),
            clusters: serde_json::from_str(&s.clusters_json).ok(),
            id: s.id,
            tenant_id: s.tenant_id,
            name: s.name,
            description: s.description,
            addresses: s.addresses,
            created_by: s.created_by,
            created_at: time(s.created_at),
            updated_at: time(s.updated_at),
        }
    }
}

/// Body of a registration: a DNS name or addresses (with ports).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// The in-cluster name: an RFC 1035 label, unique in the tenant among
    /// external services and applications' objects.
    name: String,
    /// Only this project's partitions.
    #[serde(default)]
    project_id: String,
    /// What it is.
    #[serde(default)]
    description: String,
    /// Where it is by name (`db.mainframe.example.com`): an ExternalName Service.
    #[serde(default)]
    dns_name: String,
    /// Where it is by address (IPv4 or IPv6; not loopback, link-local or
    /// unspecified): a Service without selector and its Endpoints.
    #[serde(default)]
    addresses: Vec<String>,
    /// Its ports; at least one with addresses.
    #[serde(default)]
    ports: Vec<Port>,
    /// `{"explicit": [{"cluster": "dc1-prod"}]}` or `{"policy": {...}}`: the partitions it is written into.
    #[schema(value_type = Object)]
    placement: Value,
}

/// Body of an update: everything but the name and project, replaced.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// What it is.
    #[serde(default)]
    description: String,
    /// Where it is by name.
    #[serde(default)]
    dns_name: String,
    /// Where it is by address.
    #[serde(default)]
    addresses: Vec<String>,
    /// Its ports.
    #[serde(default)]
    ports: Vec<Port>,
    /// Its placement.
    #[schema(value_type = Object)]
    placement: Value,
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{id}/external-services",
    tag = "external services",
    params(("id" = String, Path, description = "the tenant")),
    request_body = Register,
    responses(
        (status = 201, body = ExternalService, description = "registered and being written into its partitions"),
        Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn register(
    Signed(mut apps): Signed<Apps>,
    Path(tenant): Path<String>,
    Body(b): Body<Register>,
) -> Result<(StatusCode, Json<ExternalService>), ApiError> {
    let request = pb::RegisterExternalServiceRequest {
        tenant_id: tenant,
        project_id: b.project_id,
        name: b.name,
        description: b.description,
        dns_name: b.dns_name,
        addresses: b.addresses,
        ports: ports_pb(b.ports),
        placement_json: b.placement.to_string(),
    };
    let registered = apps.register_external_service(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(registered.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}/external-services",
    tag = "external services",
    params(("id" = String, Path, description = "the tenant"), ListQuery),
    responses((status = 200, body = Page<ExternalService>), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    Signed(mut apps): Signed<Apps>,
    Path(tenant): Path<String>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<ExternalService>>, ApiError> {
    let request = pb::ListExternalServicesRequest {
        tenant_id: tenant,
        page: page.request(),
    };
    let r = apps.list_external_services(request).await?.into_inner();
    Ok(Json(Page::new(
        r.external_services.into_iter().map(ExternalService::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/external-services/{id}",
    tag = "external services",
    params(("id" = String, Path, description = "the id")),
    responses((status = 200, body = ExternalService), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn read(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
) -> Result<Json<ExternalService>, ApiError> {
    Ok(Json(
        apps.get_external_service(pb::GetExternalServiceRequest { id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(
    put,
    path = "/api/v1/external-services/{id}",
    tag = "external services",
    params(("id" = String, Path, description = "the id")),
    request_body = Update,
    responses((status = 200, body = ExternalService, description = "changed in place in every partition"), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn update(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
    Body(b): Body<Update>,
) -> Result<Json<ExternalService>, ApiError> {
    let request = pb::UpdateExternalServiceRequest {
        id,
        description: b.description,
        dns_name: b.dns_name,
        addresses: b.addresses,
        ports: ports_pb(b.ports),
        placement_json: b.placement.to_string(),
    };
    Ok(Json(apps.update_external_service(request).await?.into_inner().into()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/external-services/{id}",
    tag = "external services",
    params(("id" = String, Path, description = "the id")),
    responses((status = 204, description = "deleted: federation removes its objects from every cluster"), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn delete(Signed(mut apps): Signed<Apps>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    apps.delete_external_service(pb::DeleteExternalServiceRequest { id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
