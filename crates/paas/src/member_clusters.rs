//! The simulated member clusters `paas up` brings: kubesim clusters in the
//! same process, registered with federation like real ones (by API endpoint),
//! so a laptop has a data centre and a DR site to deploy to.

use kernel::caller::{Caller, CallerKey};
use kernel::grpc::{Outgoing, channel, uri};
use kernel::service::Running;
use kubesim::{Cluster, ClusterConfig, RunningCluster};
use paas_proto::v1 as pb;
use paas_proto::v1::federation_service_client::FederationServiceClient;

/// The clusters of `paas up`: (name, data centre, environment).
pub const DEFAULT: &[(&str, &str, pb::Environment)] = &[
    ("dc1-prod", "dc1", pb::Environment::Production),
    ("dc2-dr", "dc2", pb::Environment::Dr),
];

/// Starts the clusters and registers them with federation, replacing an
/// earlier registration of the same name (its endpoint changed: kubesim
/// listens on a new port each run). Keep the returned clusters alive: they
/// stop when dropped.
///
/// # Errors
/// A cluster cannot start or federation refuses the registration.
pub async fn start(key: &CallerKey, federation: &Running) -> anyhow::Result<Vec<RunningCluster>> {
    let caller = Caller::service("paas-up");
    let mut client =
        FederationServiceClient::with_interceptor(channel(&uri(federation.grpc))?, Outgoing::new(key, &caller));
    let registered = client
        .list_clusters(pb::ListClustersRequest {
            page: Some(pb::PageRequest {
                limit: 500,
                cursor: String::new(),
            }),
            data_centre: String::new(),
        })
        .await?
        .into_inner();
    let mut clusters = Vec::new();
    for (name, data_centre, environment) in DEFAULT {
        let cluster = Cluster::start(ClusterConfig::named(name))
            .await
            .map_err(|e| anyhow::anyhow!("kubesim cluster {name}: {e}"))?;
        if let Some(old) = registered.clusters.iter().find(|c| c.name == *name) {
            client
                .deregister_cluster(pb::DeregisterClusterRequest { id: old.id.clone() })
                .await?;
        }
        client
            .register_cluster(pb::RegisterClusterRequest {
                name: name.to_string(),
                api_endpoint: cluster.url(),
                data_centre: data_centre.to_string(),
                environment: *environment as i32,
                labels: [("simulated".to_string(), "kubesim".to_string())].into(),
                ..Default::default()
            })
            .await?;
        clusters.push(cluster);
    }
    Ok(clusters)
}

/// Each cluster's fault-injection endpoint (`GET` shows the current fault,
/// `POST {"fault":"down"|"partition"|"blackhole"|"recover"|...}` sets it), in
/// the clusters' order. See `kubesim::Fault` for every fault.
pub fn fault_urls(clusters: &[RunningCluster]) -> Vec<String> {
    clusters
        .iter()
        .map(|c| format!("{}/_kubesim/fault", c.admin_url()))
        .collect()
}
