//! `/api/v1/clusters`: the member-cluster registry, forwarded to federation,
//! and what federation knows of a tenant.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use kernel::grpc::time;

use crate::AppState;
use crate::auth::Authenticated;
use crate::json::Body;
use crate::problem::ApiError;

/// The cluster routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/clusters", get(list).post(register))
        .route("/clusters/{id}", get(read).delete(deregister))
        .route("/tenants/{id}/federation", get(known_tenant))
}

/// A member cluster as the API shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cluster {
    /// Its id.
    pub id: String,
    /// DNS label.
    pub name: String,
    /// Kubernetes API URL.
    pub api_endpoint: String,
    /// Data centre.
    pub data_centre: String,
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// `core`, `dmz` or `internet`.
    pub network_domain: String,
    /// `production`, `test` or `dr`.
    pub environment: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// When it was registered.
    pub created_at: Option<DateTime<Utc>>,
}

/// Body of `POST /clusters`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterCluster {
    name: String,
    api_endpoint: String,
    data_centre: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    zone: String,
    #[serde(default)]
    network_domain: Option<String>,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Query of `GET /clusters`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[serde(default)]
    limit: u32,
    #[serde(default)]
    cursor: String,
    #[serde(default)]
    data_centre: String,
}

/// A page of clusters.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterPage {
    /// The clusters.
    pub items: Vec<Cluster>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What federation knows of a tenant.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KnownTenant {
    /// The tenant.
    pub tenant_id: String,
    /// Its name.
    pub name: String,
    /// When federation learned of it.
    pub learned_at: Option<DateTime<Utc>>,
    /// The event it learned it from.
    pub event_id: String,
}

impl From<pb::Cluster> for Cluster {
    fn from(c: pb::Cluster) -> Self {
        let domain = match pb::NetworkDomain::try_from(c.network_domain) {
            Ok(pb::NetworkDomain::Dmz) => "dmz",
            Ok(pb::NetworkDomain::Internet) => "internet",
            _ => "core",
        };
        let environment = match pb::Environment::try_from(c.environment) {
            Ok(pb::Environment::Production) => "production",
            Ok(pb::Environment::Dr) => "dr",
            _ => "test",
        };
        Self {
            id: c.id,
            name: c.name,
            api_endpoint: c.api_endpoint,
            data_centre: c.data_centre,
            region: c.region,
            zone: c.zone,
            network_domain: domain.into(),
            environment: environment.into(),
            labels: c.labels.into_iter().collect(),
            created_at: time(c.created_at),
        }
    }
}

#[utoipa::path(post, path = "/api/v1/clusters", tag = "clusters", request_body = RegisterCluster, responses((status = 201, body = Cluster), (status = "4XX", body = kernel::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
async fn register(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Body(b): Body<RegisterCluster>,
) -> Result<(StatusCode, Json<Cluster>), ApiError> {
    let network_domain = match b.network_domain.as_deref() {
        None | Some("core") => pb::NetworkDomain::Core,
        Some("dmz") => pb::NetworkDomain::Dmz,
        Some("internet") => pb::NetworkDomain::Internet,
        Some(_) => return Err(ApiError::invalid("network_domain", "must be core, dmz or internet")),
    };
    let environment = match b.environment.as_deref() {
        None | Some("test") => pb::Environment::Test,
        Some("production") => pb::Environment::Production,
        Some("dr") => pb::Environment::Dr,
        Some(_) => return Err(ApiError::invalid("environment", "must be production, test or dr")),
    };
    let request = pb::RegisterClusterRequest {
        name: b.name,
        api_endpoint: b.api_endpoint,
        data_centre: b.data_centre,
        region: b.region,
        zone: b.zone,
        network_domain: network_domain as i32,
        environment: environment as i32,
        labels: b.labels.into_iter().collect(),
    };
    let cluster = s.upstream.federation(&s.key, &caller).register_cluster(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(cluster.into())))
}

#[utoipa::path(get, path = "/api/v1/clusters/{id}", tag = "clusters", params(("id" = String, Path, description = "the id")), responses((status = 200, body = Cluster), (status = "4XX", body = kernel::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
async fn read(State(s): State<AppState>, Authenticated(caller): Authenticated, Path(id): Path<String>) -> Result<Json<Cluster>, ApiError> {
    Ok(Json(s.upstream.federation(&s.key, &caller).get_cluster(pb::GetClusterRequest { id }).await?.into_inner().into()))
}

#[utoipa::path(get, path = "/api/v1/clusters", tag = "clusters", params(ListQuery), responses((status = 200, body = ClusterPage), (status = "4XX", body = kernel::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
async fn list(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(q): Query<ListQuery>,
) -> Result<Json<ClusterPage>, ApiError> {
    let request = pb::ListClustersRequest { page: Some(pb::PageRequest { limit: q.limit, cursor: q.cursor }), data_centre: q.data_centre };
    let r = s.upstream.federation(&s.key, &caller).list_clusters(request).await?.into_inner();
    let next = r.page.map(|p| p.next_cursor).filter(|c| !c.is_empty());
    Ok(Json(ClusterPage { items: r.clusters.into_iter().map(Cluster::from).collect(), next_cursor: next }))
}

#[utoipa::path(delete, path = "/api/v1/clusters/{id}", tag = "clusters", params(("id" = String, Path, description = "the id")), responses((status = 204, description = "done"), (status = "4XX", body = kernel::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
async fn deregister(State(s): State<AppState>, Authenticated(caller): Authenticated, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.upstream.federation(&s.key, &caller).deregister_cluster(pb::DeregisterClusterRequest { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/federation", tag = "clusters", params(("id" = String, Path, description = "the id")), responses((status = 200, body = KnownTenant), (status = "4XX", body = kernel::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
async fn known_tenant(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<KnownTenant>, ApiError> {
    let t = s.upstream.federation(&s.key, &caller).get_known_tenant(pb::GetKnownTenantRequest { tenant_id: id }).await?.into_inner();
    Ok(Json(KnownTenant { tenant_id: t.tenant_id, name: t.name, learned_at: time(t.learned_at), event_id: t.event_id }))
}
