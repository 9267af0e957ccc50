//! `/api/v1/.../bindings`: a tenant's Kubernetes objects placed on member
//! clusters, with per-cluster status, forwarded to federation (which checks
//! the caller's role in the tenant and scopes every query by it).

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
use crate::upstream::{Federation, Signed};

/// The routes, each with who may call it.
pub fn routes() -> Routes {
    Routes::new()
        .route(Permission::Role(Role::Developer), routes!(create))
        .route(Permission::Authenticated, routes!(list))
        .route(Permission::Authenticated, routes!(read))
        .route(Permission::Role(Role::Developer), routes!(update))
        .route(Permission::Role(Role::Developer), routes!(remove))
        .route(Permission::PlatformAdmin, routes!(break_glass_update))
        .route(Permission::PlatformAdmin, routes!(break_glass_remove))
}

/// Body of `POST /tenants/{id}/bindings`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBinding {
    /// DNS label, unique in the tenant; posting an existing name updates it.
    name: String,
    /// Only this project's partitions.
    #[serde(default)]
    project_id: String,
    /// Kubernetes objects: Deployments, StatefulSets, DaemonSets, Services,
    /// ConfigMaps, PersistentVolumeClaims, HorizontalPodAutoscalers,
    /// Ingresses, HTTPRoutes. Namespaces are set per cluster. At least one.
    #[schema(min_items = 1)]
    objects: Vec<Value>,
    /// `{"explicit": [{"cluster", "partition_id"?, "replicas"?}]}` or
    /// `{"policy": {"groups": [{"labels", "data_centres", "regions", "zones",
    /// "network_domains", "environments"}], "exclude": [..], "spread": {"by":
    /// "region"|"zone"|"data_centre", "min", "max"}, "division": "duplicated" |
    /// "dynamic" | {"weighted": {"<cluster>": n}}}}`, with the failover
    /// settings beside it: `"dr_tier"`, `"toleration_seconds"`,
    /// `"singleton"`, `"failback"` (`"automatic"` | `"manual"`), `"priority"`.
    placement: Value,
    /// Replicas in all; absent: the workloads' largest `spec.replicas`.
    #[serde(default)]
    replicas: u32,
}

/// Body of `PUT /bindings/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBinding {
    /// As in [`CreateBinding`].
    #[serde(default)]
    project_id: String,
    /// As in [`CreateBinding`].
    objects: Vec<Value>,
    /// As in [`CreateBinding`].
    placement: Value,
    /// As in [`CreateBinding`].
    #[serde(default)]
    replicas: u32,
}

/// Body of `PUT /bindings/{id}/break-glass`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassUpdate {
    /// Why the application's own routes will not do (an incident id, say);
    /// logged with the caller, and the audit log records the route.
    reason: String,
    /// As in [`CreateBinding`].
    #[serde(default)]
    project_id: String,
    /// As in [`CreateBinding`].
    objects: Vec<Value>,
    /// As in [`CreateBinding`].
    placement: Value,
    /// As in [`CreateBinding`].
    #[serde(default)]
    replicas: u32,
}

/// Query of `DELETE /bindings/{id}/break-glass`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassReason {
    /// Why the application's own routes will not do.
    reason: String,
}

/// A non-blank break-glass reason, or a 400 naming `reason`.
fn reason(text: String) -> Result<String, ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::invalid(
            "reason",
            "must say why the application's own routes will not do",
        ));
    }
    Ok(text)
}

/// A workload's rollout in one cluster.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkloadStatus {
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Replicas wanted.
    pub desired: i32,
    /// At the current template.
    pub updated: i32,
    /// Ready.
    pub ready: i32,
    /// Available.
    pub available: i32,
    /// The workload's conditions.
    pub conditions: Vec<WorkloadCondition>,
}

/// A workload condition as the cluster reports it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkloadCondition {
    /// `Available`, `Progressing`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False`, `Unknown`.
    pub status: String,
    /// Why.
    pub reason: String,
    /// Detail.
    pub message: String,
}

/// A binding in one cluster.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BindingTarget {
    /// Cluster name.
    pub cluster: String,
    /// Partition.
    pub partition_id: String,
    /// Namespace.
    pub namespace: String,
    /// Replicas assigned.
    pub replicas: u32,
    /// No longer assigned; its objects are being deleted.
    pub removing: bool,
    /// The binding generation applied there.
    pub applied_generation: i64,
    /// The revision of the objects this cluster is to run: the binding's
    /// `revision` unless a gray release holds it at an earlier one.
    pub objects_revision: i64,
    /// The last apply's error.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub last_error: String,
    /// `Healthy`, `Progressing`, `Degraded` or `Unknown`.
    pub health: String,
    /// Why.
    pub health_reason: String,
    /// Workloads as last observed.
    pub workloads: Vec<WorkloadStatus>,
    /// Last apply.
    pub synced_at: Option<DateTime<Utc>>,
    /// Last observation.
    pub observed_at: Option<DateTime<Utc>>,
}

/// A binding.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Binding {
    /// Its id.
    pub id: String,
    /// Owner.
    pub tenant_id: String,
    /// Project, if any.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub project_id: String,
    /// Name.
    pub name: String,
    /// The objects.
    pub objects: Value,
    /// The placement.
    pub placement: Value,
    /// Replicas in all.
    pub replicas: u32,
    /// Changes so far.
    pub generation: i64,
    /// The newest revision of the objects.
    pub revision: i64,
    /// Being deleted.
    pub deleting: bool,
    /// `Healthy`, `Progressing`, `Degraded` or `Unknown`: the worst cluster's.
    pub health: String,
    /// Why.
    pub health_reason: String,
    /// `automatic` or `manual`: whether replicas return to a recovered
    /// cluster by themselves after a failover (placement's `failback`;
    /// default by DR tier).
    pub failback: String,
    /// Order of automatic failbacks, higher first (placement's `priority`).
    pub priority: i32,
    /// The clusters.
    pub clusters: Vec<BindingTarget>,
    /// Created.
    pub created_at: Option<DateTime<Utc>>,
    /// Last changed.
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<pb::Binding> for Binding {
    fn from(b: pb::Binding) -> Self {
        Self {
            objects: serde_json::from_str(&b.objects_json).unwrap_or(Value::Null),
            placement: serde_json::from_str(&b.placement_json).unwrap_or(Value::Null),
            id: b.id,
            tenant_id: b.tenant_id,
            project_id: b.project_id,
            name: b.name,
            replicas: b.replicas,
            generation: b.generation,
            revision: b.revision,
            deleting: b.deleting,
            health: b.health,
            health_reason: b.health_reason,
            failback: b.failback,
            priority: b.priority,
            created_at: time(b.created_at),
            updated_at: time(b.updated_at),
            clusters: b
                .targets
                .into_iter()
                .map(|t| BindingTarget {
                    cluster: t.cluster,
                    partition_id: t.partition_id,
                    namespace: t.namespace,
                    replicas: t.replicas,
                    removing: t.removing,
                    applied_generation: t.applied_generation,
                    objects_revision: t.objects_revision,
                    last_error: t.last_error,
                    health: t.health,
                    health_reason: t.health_reason,
                    synced_at: time(t.synced_at),
                    observed_at: time(t.observed_at),
                    workloads: t
                        .workloads
                        .into_iter()
                        .map(|w| WorkloadStatus {
                            kind: w.kind,
                            name: w.name,
                            desired: w.desired,
                            updated: w.updated,
                            ready: w.ready,
                            available: w.available,
                            conditions: w
                                .conditions
                                .into_iter()
                                .map(|c| WorkloadCondition {
                                    kind: c.r#type,
                                    status: c.status,
                                    reason: c.reason,
                                    message: c.message,
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{id}/bindings",
    tag = "bindings",
    params(("id" = String, Path, description = "the tenant")),
    request_body = CreateBinding,
    responses((status = 200, body = Binding), Problems),
    security(("bearer" = []))
)]
async fn create(
    Signed(mut federation): Signed<Federation>,
    Path(tenant_id): Path<String>,
    Body(b): Body<CreateBinding>,
) -> Result<Json<Binding>, ApiError> {
    let request = pb::ApplyBindingRequest {
        tenant_id,
        project_id: b.project_id,
        name: b.name,
        objects_json: Value::Array(b.objects).to_string(),
        placement_json: b.placement.to_string(),
        replicas: b.replicas,
        hold: Vec::new(),
        break_glass: String::new(),
    };
    Ok(Json(federation.apply_binding(request).await?.into_inner().into()))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}/bindings",
    tag = "bindings",
    params(("id" = String, Path, description = "the tenant"), ListQuery),
    responses((status = 200, body = Page<Binding>), Problems),
    security(("bearer" = []))
)]
async fn list(
    Signed(mut federation): Signed<Federation>,
    Path(tenant_id): Path<String>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<Binding>>, ApiError> {
    let request = pb::ListBindingsRequest {
        tenant_id,
        page: page.request(),
    };
    let r = federation.list_bindings(request).await?.into_inner();
    Ok(Json(Page::new(
        r.bindings.into_iter().map(Binding::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/bindings/{id}",
    tag = "bindings",
    params(("id" = String, Path, description = "the id")),
    responses((status = 200, body = Binding), Problems),
    security(("bearer" = []))
)]
async fn read(Signed(mut federation): Signed<Federation>, Path(id): Path<String>) -> Result<Json<Binding>, ApiError> {
    Ok(Json(
        federation
            .get_binding(pb::GetBindingRequest { id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(
    put,
    path = "/api/v1/bindings/{id}",
    tag = "bindings",
    params(("id" = String, Path, description = "the id")),
    request_body = UpdateBinding,
    responses((status = 200, body = Binding), Problems),
    security(("bearer" = []))
)]
async fn update(
    Signed(mut federation): Signed<Federation>,
    Path(id): Path<String>,
    Body(b): Body<UpdateBinding>,
) -> Result<Json<Binding>, ApiError> {
    reapply(&mut federation, id, b, String::new()).await
}

/// Applies `b` to binding `id` under its stored tenant and name;
/// `break_glass` is the platform administrator's reason, or empty.
async fn reapply(
    federation: &mut Federation,
    id: String,
    b: UpdateBinding,
    break_glass: String,
) -> Result<Json<Binding>, ApiError> {
    let current = federation.get_binding(pb::GetBindingRequest { id }).await?.into_inner();
    let request = pb::ApplyBindingRequest {
        tenant_id: current.tenant_id,
        project_id: b.project_id,
        name: current.name,
        objects_json: Value::Array(b.objects).to_string(),
        placement_json: b.placement.to_string(),
        replicas: b.replicas,
        hold: Vec::new(),
        break_glass,
    };
    Ok(Json(federation.apply_binding(request).await?.into_inner().into()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/bindings/{id}",
    tag = "bindings",
    params(("id" = String, Path, description = "the id")),
    responses((status = 204, description = "deleting: objects are removed from every cluster"), Problems),
    security(("bearer" = []))
)]
async fn remove(Signed(mut federation): Signed<Federation>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    federation
        .delete_binding(pb::DeleteBindingRequest {
            id,
            break_glass: String::new(),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    put,
    path = "/api/v1/bindings/{id}/break-glass",
    tag = "bindings",
    description = "Changes a binding an application owns, bypassing the application's releases and \
        approvals: platform administrators only, with a reason. Every other change to such a binding \
        is refused with 409 naming the application.",
    params(("id" = String, Path, description = "the id")),
    request_body = BreakGlassUpdate,
    responses((status = 200, body = Binding), Problems),
    security(("bearer" = []))
)]
async fn break_glass_update(
    Signed(mut federation): Signed<Federation>,
    Path(id): Path<String>,
    Body(b): Body<BreakGlassUpdate>,
) -> Result<Json<Binding>, ApiError> {
    let reason = reason(b.reason)?;
    let change = UpdateBinding {
        project_id: b.project_id,
        objects: b.objects,
        placement: b.placement,
        replicas: b.replicas,
    };
    reapply(&mut federation, id, change, reason).await
}

#[utoipa::path(
    delete,
    path = "/api/v1/bindings/{id}/break-glass",
    tag = "bindings",
    description = "Deletes a binding an application owns, bypassing the application: platform \
        administrators only, with a reason.",
    params(("id" = String, Path, description = "the id"), BreakGlassReason),
    responses((status = 204, description = "deleting: objects are removed from every cluster"), Problems),
    security(("bearer" = []))
)]
async fn break_glass_remove(
    Signed(mut federation): Signed<Federation>,
    Path(id): Path<String>,
    Query(q): Query<BreakGlassReason>,
) -> Result<StatusCode, ApiError> {
    federation
        .delete_binding(pb::DeleteBindingRequest {
            id,
            break_glass: reason(q.reason)?,
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
