//! `/api/v1/failovers` and `/api/v1/bindings/{id}/failover|failback`: the
//! persisted failover operations of bindings (R3) and an operator's trigger,
//! forwarded to federation (which scopes the list by the caller's tenants
//! and checks the operator role in the binding's tenant).

use axum::Json;
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
use crate::upstream::{Federation, Signed};

/// The routes, each with who may call it.
pub fn routes() -> Routes {
    Routes::new()
        .route(Permission::Authenticated, routes!(list))
        .route(Permission::Role(Role::Operator), routes!(failover))
        .route(Permission::Role(Role::Operator), routes!(failback))
        .route(Permission::Role(Role::Operator), routes!(confirm))
}

/// A failover or failback of a binding.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FailoverOperation {
    /// Its id.
    pub id: String,
    /// The binding.
    pub binding_id: String,
    /// The binding's name.
    pub binding_name: String,
    /// The application whose service the binding is; absent for a binding made directly.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub application: String,
    /// The binding's tenant.
    pub tenant_id: String,
    /// `failover` or `failback`.
    pub kind: String,
    /// `automatic` or `operator`.
    pub trigger: String,
    /// Failover: the lost cluster; failback: the cluster the replicas return to.
    pub from_cluster: String,
    /// Clusters of the new assignment.
    pub to_clusters: Vec<String>,
    /// `awaiting-confirmation` (a singleton's automatic failback, with the expected gap in `reason`),
    /// `pending`, `fencing` (a singleton's old copy being stopped), `placing`, `applied`, `available` or `failed`.
    pub state: String,
    /// Why it failed, or what it waits for (singleton fencing).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub reason: String,
    /// When the cluster left Ready (failover) or the failback was asked.
    pub fault_detected_at: Option<DateTime<Utc>>,
    /// When the operation began (the toleration passed, or the trigger).
    pub created_at: Option<DateTime<Utc>>,
    /// When the new assignment was written.
    pub replaced_at: Option<DateTime<Utc>>,
    /// When every new target was available.
    pub available_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// What it did and when, oldest first.
    pub steps: Vec<FailoverStep>,
}

/// One step of a failover or failback.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FailoverStep {
    /// What happened: `opened ...`, `fencing: scaled to 0 in <cluster>`,
    /// `fencing: confirmed stopped in <cluster> ...`, `placing: ...`,
    /// `applied: ...`, `available in ...`, `failed: ...`.
    pub name: String,
    /// When.
    pub at: Option<DateTime<Utc>>,
}

impl From<pb::FailoverOperation> for FailoverOperation {
    fn from(o: pb::FailoverOperation) -> Self {
        Self {
            id: o.id,
            binding_id: o.binding_id,
            binding_name: o.binding_name,
            application: o.application,
            tenant_id: o.tenant_id,
            kind: o.kind,
            trigger: o.trigger,
            from_cluster: o.from_cluster,
            to_clusters: o.to_clusters,
            state: o.state,
            reason: o.reason,
            fault_detected_at: time(o.fault_detected_at),
            created_at: time(o.created_at),
            replaced_at: time(o.replaced_at),
            available_at: time(o.available_at),
            finished_at: time(o.finished_at),
            steps: o
                .steps
                .into_iter()
                .map(|s| FailoverStep {
                    name: s.name,
                    at: time(s.at),
                })
                .collect(),
        }
    }
}

/// Query of `GET /failovers`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    /// Only this binding's operations.
    #[serde(default)]
    binding_id: String,
}

/// Body of `POST /bindings/{id}/failover`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerFailover {
    /// The cluster to move off; absent: the binding's first cluster out of Ready.
    #[serde(default)]
    from_cluster: String,
}

/// Body of `POST /bindings/{id}/failback` (nothing to say yet).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerFailback {}

#[utoipa::path(
    get,
    path = "/api/v1/failovers",
    tag = "failovers",
    params(Filter, ListQuery),
    responses((status = 200, body = Page<FailoverOperation>), Problems),
    security(("bearer" = []))
)]
async fn list(
    Signed(mut federation): Signed<Federation>,
    Query(page): Query<ListQuery>,
    Query(q): Query<Filter>,
) -> Result<Json<Page<FailoverOperation>>, ApiError> {
    let request = pb::ListFailoversRequest {
        binding_id: q.binding_id,
        page: page.request(),
    };
    let r = federation.list_failovers(request).await?.into_inner();
    Ok(Json(Page::new(
        r.operations.into_iter().map(FailoverOperation::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    post,
    path = "/api/v1/bindings/{id}/failover",
    tag = "failovers",
    params(("id" = String, Path, description = "the binding")),
    request_body = TriggerFailover,
    responses((status = 200, body = FailoverOperation), Problems),
    security(("bearer" = []))
)]
async fn failover(
    Signed(mut federation): Signed<Federation>,
    Path(id): Path<String>,
    Body(b): Body<TriggerFailover>,
) -> Result<Json<FailoverOperation>, ApiError> {
    let request = pb::TriggerFailoverRequest {
        binding_id: id,
        from_cluster: b.from_cluster,
    };
    Ok(Json(federation.trigger_failover(request).await?.into_inner().into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/bindings/{id}/failback",
    tag = "failovers",
    params(("id" = String, Path, description = "the binding")),
    request_body = TriggerFailback,
    responses((status = 200, body = FailoverOperation), Problems),
    security(("bearer" = []))
)]
async fn failback(
    Signed(mut federation): Signed<Federation>,
    Path(id): Path<String>,
    Body(_nothing): Body<TriggerFailback>,
) -> Result<Json<FailoverOperation>, ApiError> {
    let request = pb::TriggerFailbackRequest { binding_id: id };
    Ok(Json(federation.trigger_failback(request).await?.into_inner().into()))
}

/// Body of `POST /failovers/{id}/confirm` (nothing to say yet).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmFailover {}

#[utoipa::path(
    post,
    path = "/api/v1/failovers/{id}/confirm",
    tag = "failovers",
    params(("id" = String, Path, description = "the operation awaiting confirmation")),
    request_body = ConfirmFailover,
    responses((status = 200, body = FailoverOperation), Problems),
    security(("bearer" = []))
)]
async fn confirm(
    Signed(mut federation): Signed<Federation>,
    Path(id): Path<String>,
    Body(_nothing): Body<ConfirmFailover>,
) -> Result<Json<FailoverOperation>, ApiError> {
    let request = pb::ConfirmFailoverRequest { id };
    Ok(Json(federation.confirm_failover(request).await?.into_inner().into()))
}
