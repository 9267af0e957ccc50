//! Quotas, usage and reservations: `/tenants/{id}/quota`, `/projects/{id}/quota`,
//! `/partitions/{id}/quota`, `/tenants/{id}/usage`, `/reservations`.

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
use crate::problem::{ApiError, Problems};
use crate::projects::LimitRange;
use crate::rbac::Permission;
use crate::request::Path;
use crate::route::Routes;
use crate::upstream::{Signed, Tenancy};

/// The routes, each with who may call it.
pub fn routes() -> Routes {
    Routes::new()
        .route(Permission::PlatformAdmin, routes!(set_tenant))
        .route(Permission::Role(Role::TenantAdmin), routes!(set_project))
        .route(Permission::Role(Role::TenantAdmin), routes!(set_partition))
        .route(Permission::Authenticated, routes!(usage))
        .route(Permission::Authenticated, routes!(history))
        .route(Permission::Role(Role::Operator), routes!(reserve))
        .route(Permission::Authenticated, routes!(read_reservation))
        .route(Permission::Role(Role::Operator), routes!(commit))
        .route(Permission::Role(Role::Operator), routes!(release))
}

/// Amounts by resource name, as Kubernetes quantities.
pub type Amounts = BTreeMap<String, String>;

fn list(a: Amounts) -> Option<pb::ResourceList> {
    Some(pb::ResourceList {
        amounts: a.into_iter().collect(),
    })
}

/// Body of `PUT /tenants/{id}/quota`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantQuota {
    hard: BTreeMap<String, String>,
    #[serde(default)]
    clusters: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    data_centres: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    dr_reserve: BTreeMap<String, String>,
}

/// Body of `PUT /projects/{id}/quota`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectQuota {
    hard: BTreeMap<String, String>,
}

/// Body of `PUT /partitions/{id}/quota`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionQuota {
    hard: BTreeMap<String, String>,
    #[serde(default)]
    limit_range: LimitRange,
}

/// One resource at one level.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageLine {
    /// The resource.
    pub resource: String,
    /// The limit there, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hard: Option<String>,
    /// What reservations hold there.
    pub used: String,
}

/// The usage of one level.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScopeUsage {
    /// tenant, cluster, data_centre, dr_reserve, project or partition.
    pub level: String,
    /// The tenant, project or partition.
    pub owner_id: String,
    /// The cluster or data centre of a split.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub key: String,
    /// Per resource.
    pub lines: Vec<UsageLine>,
}

/// A tenant's usage: every level, and what clusters report per partition.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Usage {
    /// Hard and used per level.
    pub scopes: Vec<ScopeUsage>,
    /// Partition id -> what its cluster reports it uses.
    pub observed: BTreeMap<String, BTreeMap<String, String>>,
    /// Cluster -> what it reports the tenant's partitions there use.
    pub observed_by_cluster: BTreeMap<String, BTreeMap<String, String>>,
    /// Data centre -> the same, summed over its clusters.
    pub observed_by_data_centre: BTreeMap<String, BTreeMap<String, String>>,
}

/// One point of usage history.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsagePoint {
    /// The level.
    pub level: String,
    /// The tenant, project or partition.
    pub owner_id: String,
    /// The cluster or data centre of a split.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub key: String,
    /// The resource.
    pub resource: String,
    /// The limit then.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub hard: String,
    /// Held by reservations then.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub used: String,
    /// Reported by the cluster then.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub observed: String,
    /// When.
    pub at: Option<DateTime<Utc>>,
}

/// Filters of `GET /tenants/{id}/usage/history`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    #[serde(default)]
    resource: String,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

/// Body of `POST /reservations`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reserve {
    partition_id: String,
    /// What is reserved: at least one resource.
    amounts: BTreeMap<String, String>,
    idempotency_key: String,
    #[serde(default)]
    ttl_seconds: u64,
    #[serde(default)]
    failover: bool,
}

/// A reservation as the API shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reservation {
    /// Its id.
    pub id: String,
    /// The tenant charged.
    pub tenant_id: String,
    /// The project charged.
    pub project_id: String,
    /// The partition charged.
    pub partition_id: String,
    /// The partition's cluster.
    pub cluster: String,
    /// The caller's key.
    pub idempotency_key: String,
    /// What is held.
    pub amounts: BTreeMap<String, String>,
    /// reserved, committed, released or expired.
    pub state: String,
    /// When an uncommitted reservation expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::Reservation> for Reservation {
    fn from(r: pb::Reservation) -> Self {
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            project_id: r.project_id,
            partition_id: r.partition_id,
            cluster: r.cluster,
            idempotency_key: r.idempotency_key,
            amounts: r.amounts.unwrap_or_default().amounts.into_iter().collect(),
            state: r.state,
            expires_at: time(r.expires_at),
            created_at: time(r.created_at),
        }
    }
}

#[utoipa::path(
    put,
    path = "/api/v1/tenants/{id}/quota",
    tag = "quotas",
    params(("id" = String, Path, description = "the id")),
    request_body = TenantQuota,
    responses((status = 204, description = "done"), Problems),
    security(("bearer" = []))
)]
async fn set_tenant(
    Signed(mut tenancy): Signed<Tenancy>,
    Path(tenant_id): Path<String>,
    Body(b): Body<TenantQuota>,
) -> Result<StatusCode, ApiError> {
    let splits = |m: BTreeMap<String, Amounts>| {
        m.into_iter()
            .map(|(k, a)| {
                (
                    k,
                    pb::ResourceList {
                        amounts: a.into_iter().collect(),
                    },
                )
            })
            .collect()
    };
    let request = pb::SetTenantQuotaRequest {
        tenant_id,
        hard: list(b.hard),
        clusters: splits(b.clusters),
        data_centres: splits(b.data_centres),
        dr_reserve: list(b.dr_reserve),
    };
    tenancy.set_tenant_quota(request).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    put,
    path = "/api/v1/projects/{id}/quota",
    tag = "quotas",
    params(("id" = String, Path, description = "the id")),
    request_body = ProjectQuota,
    responses((status = 204, description = "done"), Problems),
    security(("bearer" = []))
)]
async fn set_project(
    Signed(mut tenancy): Signed<Tenancy>,
    Path(project_id): Path<String>,
    Body(b): Body<ProjectQuota>,
) -> Result<StatusCode, ApiError> {
    tenancy
        .set_project_quota(pb::SetProjectQuotaRequest {
            project_id,
            hard: list(b.hard),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    put,
    path = "/api/v1/partitions/{id}/quota",
    tag = "quotas",
    params(("id" = String, Path, description = "the id")),
    request_body = PartitionQuota,
    responses((status = 204, description = "done"), Problems),
    security(("bearer" = []))
)]
async fn set_partition(
    Signed(mut tenancy): Signed<Tenancy>,
    Path(partition_id): Path<String>,
    Body(b): Body<PartitionQuota>,
) -> Result<StatusCode, ApiError> {
    let request = pb::SetPartitionQuotaRequest {
        partition_id,
        hard: list(b.hard),
        limit_range: Some(b.limit_range.into_pb()),
    };
    tenancy.set_partition_quota(request).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}/usage",
    tag = "quotas",
    params(("id" = String, Path, description = "the id")),
    responses((status = 200, body = Usage), Problems),
    security(("bearer" = []))
)]
async fn usage(Signed(mut tenancy): Signed<Tenancy>, Path(tenant_id): Path<String>) -> Result<Json<Usage>, ApiError> {
    let r = tenancy.get_usage(pb::GetUsageRequest { tenant_id }).await?.into_inner();
    let scopes = r
        .scopes
        .into_iter()
        .map(|u| ScopeUsage {
            level: u.level,
            owner_id: u.owner_id,
            key: u.key,
            lines: u
                .lines
                .into_iter()
                .map(|l| UsageLine {
                    resource: l.resource,
                    hard: Some(l.hard).filter(|h| !h.is_empty()),
                    used: l.used,
                })
                .collect(),
        })
        .collect();
    let amounts = |m: std::collections::HashMap<String, pb::ResourceList>| {
        m.into_iter()
            .map(|(k, l)| (k, l.amounts.into_iter().collect()))
            .collect()
    };
    Ok(Json(Usage {
        scopes,
        observed: amounts(r.observed),
        observed_by_cluster: amounts(r.observed_clusters),
        observed_by_data_centre: amounts(r.observed_data_centres),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}/usage/history",
    tag = "quotas",
    params(("id" = String, Path, description = "the id"), HistoryQuery),
    responses((status = 200, body = Vec<UsagePoint>), Problems),
    security(("bearer" = []))
)]
async fn history(
    Signed(mut tenancy): Signed<Tenancy>,
    Path(tenant_id): Path<String>,
    crate::request::Query(q): crate::request::Query<HistoryQuery>,
) -> Result<Json<Vec<UsagePoint>>, ApiError> {
    let stamp = |t: DateTime<Utc>| kernel::grpc::timestamp(t);
    let request = pb::GetUsageHistoryRequest {
        tenant_id,
        resource: q.resource,
        since: q.since.and_then(stamp),
        until: q.until.and_then(stamp),
    };
    let r = tenancy.get_usage_history(request).await?.into_inner();
    Ok(Json(
        r.points
            .into_iter()
            .map(|p| UsagePoint {
                level: p.level,
                owner_id: p.owner_id,
                key: p.key,
                resource: p.resource,
                hard: p.hard,
                used: p.used,
                observed: p.observed,
                at: time(p.at),
            })
            .collect(),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/reservations",
    tag = "reservations",
    request_body = Reserve,
    responses((status = 201, body = Reservation), Problems),
    security(("bearer" = []))
)]
async fn reserve(
    Signed(mut tenancy): Signed<Tenancy>,
    Body(b): Body<Reserve>,
) -> Result<(StatusCode, Json<Reservation>), ApiError> {
    let request = pb::ReserveRequest {
        partition_id: b.partition_id,
        amounts: list(b.amounts),
        idempotency_key: b.idempotency_key,
        ttl_seconds: b.ttl_seconds,
        failover: b.failover,
    };
    Ok((
        StatusCode::CREATED,
        Json(tenancy.reserve(request).await?.into_inner().into()),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/reservations/{id}",
    tag = "reservations",
    params(("id" = String, Path, description = "the id")),
    responses((status = 200, body = Reservation), Problems),
    security(("bearer" = []))
)]
async fn read_reservation(
    Signed(mut tenancy): Signed<Tenancy>,
    Path(id): Path<String>,
) -> Result<Json<Reservation>, ApiError> {
    Ok(Json(
        tenancy
            .get_reservation(pb::ReservationRef { id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/reservations/{id}/commit",
    tag = "reservations",
    params(("id" = String, Path, description = "the id")),
    responses((status = 200, body = Reservation), Problems),
    security(("bearer" = []))
)]
async fn commit(Signed(mut tenancy): Signed<Tenancy>, Path(id): Path<String>) -> Result<Json<Reservation>, ApiError> {
    Ok(Json(
        tenancy
            .commit_reservation(pb::ReservationRef { id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/reservations/{id}/release",
    tag = "reservations",
    params(("id" = String, Path, description = "the id")),
    responses((status = 200, body = Reservation), Problems),
    security(("bearer" = []))
)]
async fn release(Signed(mut tenancy): Signed<Tenancy>, Path(id): Path<String>) -> Result<Json<Reservation>, ApiError> {
    Ok(Json(
        tenancy
            .release_reservation(pb::ReservationRef { id })
            .await?
            .into_inner()
            .into(),
    ))
}
