//! Channels to the services. Each request builds a client on a shared channel
//! with its own caller token: cheap, since channels multiplex over HTTP/2.

use kernel::caller::{Caller, CallerKey};
use kernel::grpc::{Outgoing, channel};
use paas_proto::v1::apps_service_client::AppsServiceClient;
use paas_proto::v1::federation_service_client::FederationServiceClient;
use paas_proto::v1::tenancy_service_client::TenancyServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::settings::Upstreams;

/// Lazily connected channels to each service.
#[derive(Clone)]
pub struct Upstream {
    tenancy: Channel,
    federation: Channel,
    apps: Channel,
}

impl Upstream {
    /// Channels to the configured addresses (connected on first use).
    ///
    /// # Errors
    /// An address is not a valid URI.
    pub fn connect(addresses: &Upstreams) -> kernel::Result<Self> {
        Ok(Self {
            tenancy: channel(&addresses.tenancy)?,
            federation: channel(&addresses.federation)?,
            apps: channel(&addresses.apps)?,
        })
    }

    /// Tenancy, called as `caller`.
    pub fn tenancy(
        &self,
        key: &CallerKey,
        caller: &Caller,
    ) -> TenancyServiceClient<InterceptedService<Channel, Outgoing>> {
        TenancyServiceClient::with_interceptor(self.tenancy.clone(), Outgoing::new(key, caller))
    }

    /// Federation, called as `caller`.
    pub fn federation(
        &self,
        key: &CallerKey,
        caller: &Caller,
    ) -> FederationServiceClient<InterceptedService<Channel, Outgoing>> {
        FederationServiceClient::with_interceptor(self.federation.clone(), Outgoing::new(key, caller))
    }

    /// Apps, called as `caller`.
    pub fn apps(&self, key: &CallerKey, caller: &Caller) -> AppsServiceClient<InterceptedService<Channel, Outgoing>> {
        AppsServiceClient::with_interceptor(self.apps.clone(), Outgoing::new(key, caller))
    }
}
