//! `/api/v1/clusters`: the member-cluster registry, forwarded to federation,
//! and what federation knows of a tenant.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
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
use crate::upstream::{Federation, Signed};

/// The routes, each with who may call it.
pub fn routes() -> Routes {
    Routes::new()
        .route(Permission::PlatformAdmin, routes!(register))
        .route(Permission::Authenticated, routes!(read))
        .route(Permission::PlatformAdmin, routes!(set_settings))
        .route(Permission::Authenticated, routes!(list))
        .route(Permission::PlatformAdmin, routes!(deregister))
        .route(Permission::Authenticated, routes!(known_tenant))
        .route(Permission::PlatformAdmin, routes!(data_centres))
}

/// A cluster's health condition.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterCondition {
    /// `Ready`, `NotReady` or `Unknown`.
    pub status: String,
    /// Why, in one word.
    pub reason: String,
    /// Detail (the last probe error).
    pub message: String,
    /// When it was last probed.
    pub last_probe_time: Option<DateTime<Utc>>,
    /// When the status last changed.
    pub last_transition_time: Option<DateTime<Utc>>,
}

impl From<Option<pb::ClusterCondition>> for ClusterCondition {
    fn from(c: Option<pb::ClusterCondition>) -> Self {
        let c = c.unwrap_or_default();
        Self {
            status: c.status,
            reason: c.reason,
            message: c.message,
            last_probe_time: time(c.last_probe_time),
            last_transition_time: time(c.last_transition_time),
        }
    }
}

/// What discovery found in a cluster.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterDiscovery {
    /// Kubernetes `gitVersion`.
    pub kubernetes_version: String,
    /// Number of nodes.
    pub nodes: i32,
    /// Node capacity summed per resource.
    pub capacity: BTreeMap<String, String>,
    /// Node allocatable summed per resource.
    pub allocatable: BTreeMap<String, String>,
    /// When, if ever.
    pub discovered_at: Option<DateTime<Utc>>,
}

/// A cluster's NodePort range, `first..=last` (ports 1-65535).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodePortRange {
    /// The lowest port.
    pub first: u32,
    /// The highest port.
    pub last: u32,
}

/// Per-cluster settings: the storage and ingress classes the cluster offers
/// (an empty list: not managed by the platform) with the default of each,
/// filled into claims and ingresses that name none, and the NodePort range
/// node ports are drawn from (default 30000-32767), and the registry mirror
/// the cluster pulls the platform registry's images from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// Storage classes offered.
    #[serde(default)]
    pub storage_classes: Vec<String>,
    /// One of `storage_classes`, or none.
    #[serde(default)]
    pub default_storage_class: Option<String>,
    /// Ingress classes offered.
    #[serde(default)]
    pub ingress_classes: Vec<String>,
    /// One of `ingress_classes`, or none.
    #[serde(default)]
    pub default_ingress_class: Option<String>,
    /// Absent: Kubernetes' default 30000-32767.
    #[serde(default)]
    pub node_port_range: Option<NodePortRange>,
    /// The sub-registry (`host[:port]`, usually the data centre's) serving
    /// the cluster: workloads applied there pull the platform registry's
    /// images from it, by the same digest. None: from the platform registry.
    #[serde(default)]
    #[schema(example = "registry.dc1.example:5000")]
    pub registry_mirror: Option<String>,
}

impl ClusterSettings {
    /// The request message; `prefix` names where the settings sit in the body.
    fn into_pb(self, prefix: &str) -> Result<pb::ClusterSettings, ApiError> {
        let (first, last) = match self.node_port_range {
            None => (0, 0),
            // 0 means "the default" on the wire; here it can only be a mistake.
            Some(r) if r.first == 0 => {
                return Err(ApiError::invalid(
                    format!("{prefix}node_port_range.first"),
                    "0 is not a port (1-65535)",
                ));
            }
            Some(r) if r.last == 0 => {
                return Err(ApiError::invalid(
                    format!("{prefix}node_port_range.last"),
                    "0 is not a port (1-65535)",
                ));
            }
            Some(r) => (r.first, r.last),
        };
        Ok(pb::ClusterSettings {
            storage_classes: self.storage_classes,
            default_storage_class: self.default_storage_class.unwrap_or_default(),
            ingress_classes: self.ingress_classes,
            default_ingress_class: self.default_ingress_class.unwrap_or_default(),
            node_port_first: first,
            node_port_last: last,
            registry_mirror: self.registry_mirror.unwrap_or_default(),
        })
    }
}

impl From<Option<pb::ClusterSettings>> for ClusterSettings {
    fn from(s: Option<pb::ClusterSettings>) -> Self {
        let s = s.unwrap_or_default();
        let some = |v: String| (!v.is_empty()).then_some(v);
        Self {
            storage_classes: s.storage_classes,
            default_storage_class: some(s.default_storage_class),
            ingress_classes: s.ingress_classes,
            default_ingress_class: some(s.default_ingress_class),
            node_port_range: Some(NodePortRange {
                first: s.node_port_first,
                last: s.node_port_last,
            }),
            registry_mirror: some(s.registry_mirror),
        }
    }
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
    /// Health as last probed.
    pub condition: ClusterCondition,
    /// Version, nodes, capacity.
    pub discovery: ClusterDiscovery,
    /// Whether credentials are stored (they are never shown).
    pub has_credentials: bool,
    /// Storage and ingress classes, NodePort range.
    pub settings: ClusterSettings,
}

/// Body of `POST /clusters`: `api_endpoint` with optional `ca_pem` and
/// `token` or `client_cert_pem` + `client_key_pem`, or a `kubeconfig`
/// document whose current context gives them (then `api_endpoint` may be
/// left out). Credentials are stored encrypted and never returned.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterCluster {
    name: String,
    #[serde(default)]
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
    #[serde(default)]
    kubeconfig: String,
    #[serde(default)]
    ca_pem: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    client_cert_pem: String,
    #[serde(default)]
    client_key_pem: String,
    #[serde(default)]
    settings: Option<ClusterSettings>,
}

/// Query of `GET /clusters`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    #[serde(default)]
    data_centre: String,
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
            condition: c.condition.into(),
            discovery: {
                let d = c.discovery.unwrap_or_default();
                ClusterDiscovery {
                    kubernetes_version: d.kubernetes_version,
                    nodes: d.nodes,
                    capacity: d.capacity.into_iter().collect(),
                    allocatable: d.allocatable.into_iter().collect(),
                    discovered_at: time(d.discovered_at),
                }
            },
            has_credentials: c.has_credentials,
            settings: c.settings.into(),
        }
    }
}

/// A cluster as a data centre lists it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DataCentreCluster {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its health.
    pub condition: ClusterCondition,
}

/// A data centre with its clusters.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DataCentre {
    /// Its name.
    pub name: String,
    /// `Ready` (every cluster Ready), `Degraded`, `Lost` (no contact with any) or `Unknown` (none probed yet).
    pub state: String,
    /// When it was last lost or regained.
    pub state_since: Option<DateTime<Utc>>,
    /// Its clusters.
    pub clusters: Vec<DataCentreCluster>,
}

/// Every data centre.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DataCentreList {
    /// The data centres, by name.
    pub items: Vec<DataCentre>,
}

#[utoipa::path(
    post,
    path = "/api/v1/clusters",
    tag = "clusters",
    request_body = RegisterCluster,
    responses((status = 201, body = Cluster), Problems),
    security(("bearer" = []))
)]
async fn register(
    State(_s): State<AppState>,
    Signed(mut federation): Signed<Federation>,
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
        kubeconfig: b.kubeconfig,
        ca_pem: b.ca_pem,
        token: b.token,
        client_cert_pem: b.client_cert_pem,
        client_key_pem: b.client_key_pem,
        settings: b.settings.map(|s| s.into_pb("settings.")).transpose()?,
    };
    let cluster = federation.register_cluster(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(cluster.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/clusters/{id}",
    tag = "clusters",
    params(("id" = String, Path, description = "the id or the name")),
    responses((status = 200, body = Cluster), Problems),
    security(("bearer" = []))
)]
async fn read(Signed(mut federation): Signed<Federation>, Path(id): Path<String>) -> Result<Json<Cluster>, ApiError> {
    Ok(Json(
        federation
            .get_cluster(pb::GetClusterRequest { id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(
    put,
    path = "/api/v1/clusters/{id}/settings",
    tag = "clusters",
    params(("id" = String, Path, description = "the id or the name")),
    request_body = ClusterSettings,
    responses((status = 200, body = Cluster), Problems),
    security(("bearer" = []))
)]
async fn set_settings(
    Signed(mut federation): Signed<Federation>,
    Path(id): Path<String>,
    Body(b): Body<ClusterSettings>,
) -> Result<Json<Cluster>, ApiError> {
    let request = pb::SetClusterSettingsRequest {
        id,
        settings: Some(b.into_pb("")?),
    };
    Ok(Json(
        federation.set_cluster_settings(request).await?.into_inner().into(),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/clusters",
    tag = "clusters",
    params(ListQuery, Filter),
    responses((status = 200, body = Page<Cluster>), Problems),
    security(("bearer" = []))
)]
async fn list(
    Signed(mut federation): Signed<Federation>,
    Query(page): Query<ListQuery>,
    Query(q): Query<Filter>,
) -> Result<Json<Page<Cluster>>, ApiError> {
    let request = pb::ListClustersRequest {
        page: page.request(),
        data_centre: q.data_centre,
    };
    let r = federation.list_clusters(request).await?.into_inner();
    Ok(Json(Page::new(
        r.clusters.into_iter().map(Cluster::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    delete,
    path = "/api/v1/clusters/{id}",
    tag = "clusters",
    params(("id" = String, Path, description = "the id")),
    responses((status = 204, description = "done"), Problems),
    security(("bearer" = []))
)]
async fn deregister(
    Signed(mut federation): Signed<Federation>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    federation
        .deregister_cluster(pb::DeregisterClusterRequest { id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}/federation",
    tag = "clusters",
    params(("id" = String, Path, description = "the id")),
    responses((status = 200, body = KnownTenant), Problems),
    security(("bearer" = []))
)]
async fn known_tenant(
    Signed(mut federation): Signed<Federation>,
    Path(id): Path<String>,
) -> Result<Json<KnownTenant>, ApiError> {
    let t = federation
        .get_known_tenant(pb::GetKnownTenantRequest { tenant_id: id })
        .await?
        .into_inner();
    Ok(Json(KnownTenant {
        tenant_id: t.tenant_id,
        name: t.name,
        learned_at: time(t.learned_at),
        event_id: t.event_id,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/datacenters",
    tag = "clusters",
    responses((status = 200, body = DataCentreList), Problems),
    security(("bearer" = []))
)]
async fn data_centres(Signed(mut federation): Signed<Federation>) -> Result<Json<DataCentreList>, ApiError> {
    let r = federation
        .list_data_centres(pb::ListDataCentresRequest {})
        .await?
        .into_inner();
    let items = r
        .data_centres
        .into_iter()
        .map(|d| DataCentre {
            name: d.name,
            state: d.state,
            state_since: time(d.state_since),
            clusters: d
                .clusters
                .into_iter()
                .map(|c| DataCentreCluster {
                    id: c.id,
                    name: c.name,
                    condition: c.condition.into(),
                })
                .collect(),
        })
        .collect();
    Ok(Json(DataCentreList { items }))
}
