//! Federation as apps reaches it: the gRPC client signed as the apps
//! service, and the calls apps makes on bindings and clusters. Federation
//! owns placement and the member clusters; apps only asks.

use kernel::caller::Caller;
use kernel::grpc::Outgoing;
use kernel::{Error, Result};
use paas_proto::v1 as pb;
use paas_proto::v1::federation_service_client::FederationServiceClient;
use serde_json::Value;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::node_port;

/// Parses a placement document far enough to know it is one; federation
/// checks the rest when it places.
///
/// # Errors
/// Names `placement`.
pub fn parse_placement(text: &str) -> Result<Value> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| Error::invalid("placement", format!("is not JSON: {e}")))?;
    match value.as_object() {
        Some(o) if o.len() == 1 && (o.contains_key("explicit") || o.contains_key("policy")) => Ok(value),
        _ => Err(Error::invalid(
            "placement",
            "must be {\"explicit\": [...]} or {\"policy\": {...}}",
        )),
    }
}

/// The federation client type.
pub type FederationClient = FederationServiceClient<InterceptedService<Channel, Outgoing>>;

/// Deletes federation binding `id` (its objects leave every cluster); one
/// already gone is done.
///
/// # Errors
/// Federation did not take the deletion.
pub async fn delete_binding(federation: &mut FederationClient, id: &str) -> Result<()> {
    match federation
        .delete_binding(pb::DeleteBindingRequest {
            id: id.to_string(),
            break_glass: String::new(),
        })
        .await
    {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
        Err(s) => Err(Error::Unavailable(format!(
            "federation did not take the deletion: {}",
            s.message()
        ))),
    }
}

/// Reaches federation as the apps service.
#[derive(Clone)]
pub struct Federation {
    channel: Channel,
    key: kernel::caller::CallerKey,
}

impl Federation {
    /// Federation at `channel`, calls signed with `key`.
    pub fn new(channel: Channel, key: kernel::caller::CallerKey) -> Self {
        Self { channel, key }
    }

    /// A client acting as the apps service.
    pub fn client(&self) -> FederationClient {
        FederationServiceClient::with_interceptor(
            self.channel.clone(),
            Outgoing::new(&self.key, &Caller::service(crate::NAME)),
        )
    }

    /// The NodePort ranges of the clusters `placement` may put the
    /// application on: the named ones of an explicit placement, every
    /// registered cluster for a policy (it may place, and fail over,
    /// anywhere). Clusters federation does not know are left to its own
    /// placement check.
    ///
    /// # Errors
    /// Federation cannot be asked.
    pub async fn node_port_ranges(&self, placement: &Value) -> Result<Vec<node_port::ClusterRange>> {
        let unavailable = |s: tonic::Status| {
            Error::Unavailable(format!(
                "federation did not give the clusters' NodePort ranges: {}",
                s.message()
            ))
        };
        let mut client = self.client();
        let mut clusters = Vec::new();
        if let Some(targets) = placement["explicit"].as_array() {
            let mut names: Vec<&str> = targets.iter().filter_map(|t| t["cluster"].as_str()).collect();
            names.sort_unstable();
            names.dedup();
            for name in names {
                match client.get_cluster(pb::GetClusterRequest { id: name.to_string() }).await {
                    Ok(c) => clusters.push(c.into_inner()),
                    Err(s) if matches!(s.code(), tonic::Code::NotFound | tonic::Code::InvalidArgument) => {}
                    Err(s) => return Err(unavailable(s)),
                }
            }
        } else {
            let mut cursor = String::new();
            loop {
                let page = client
                    .list_clusters(pb::ListClustersRequest {
                        page: Some(pb::PageRequest { limit: 500, cursor }),
                        data_centre: String::new(),
                    })
                    .await
                    .map_err(unavailable)?
                    .into_inner();
                clusters.extend(page.clusters);
                cursor = page.page.map(|p| p.next_cursor).unwrap_or_default();
                if cursor.is_empty() {
                    break;
                }
            }
        }
        Ok(clusters
            .into_iter()
            .map(|c| {
                let s = c.settings.unwrap_or_default();
                let (first, last) = (
                    u16::try_from(s.node_port_first).unwrap_or(0),
                    u16::try_from(s.node_port_last).unwrap_or(0),
                );
                // A federation older than cluster settings sends none: Kubernetes' default.
                let ports = if first == 0 || last == 0 {
                    node_port::POOL
                } else {
                    first..=last
                };
                node_port::ClusterRange { cluster: c.name, ports }
            })
            .collect())
    }
}

/// Applies `request` (one service's binding); `service` names it in a refusal.
///
/// # Errors
/// Federation refuses (quota, placement: the message says why) or is unreachable
/// ([`Error::Unavailable`]).
pub async fn apply_binding(
    federation: &mut FederationClient,
    request: pb::ApplyBindingRequest,
    service: &str,
) -> Result<pb::Binding> {
    federation
        .apply_binding(request)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| match s.code() {
            tonic::Code::InvalidArgument => Error::invalid(format!("placement ({service})"), s.message()),
            tonic::Code::ResourceExhausted => Error::ResourceExhausted(s.message().to_string()),
            tonic::Code::FailedPrecondition | tonic::Code::NotFound | tonic::Code::PermissionDenied => {
                Error::FailedPrecondition(s.message().to_string())
            }
            _ => Error::Unavailable(format!("federation: {}", s.message())),
        })
}

/// Binding `id` as federation reports it; `None` when it is gone.
///
/// # Errors
/// Federation cannot be asked.
pub async fn binding(federation: &mut FederationClient, id: &str) -> Result<Option<pb::Binding>> {
    match federation
        .get_binding(pb::GetBindingRequest { id: id.to_string() })
        .await
    {
        Ok(b) => Ok(Some(b.into_inner())),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(Error::Unavailable(format!("federation: {}", s.message()))),
    }
}
