//! The config center as apps reaches it: a config's content as a cluster
//! gets it ([`Configs::render`]). Configs owns config sets and releases;
//! apps only asks, signed as the apps service, always naming the
//! application's own tenant (so another tenant's config is never found).

use kernel::caller::{Caller, CallerKey};
use kernel::grpc::Outgoing;
use kernel::{Error, Result};
use paas_proto::v1 as pb;
use paas_proto::v1::configs_service_client::ConfigsServiceClient;
use tonic::transport::Channel;
use uuid::Uuid;

/// Reaches configs as the apps service.
#[derive(Clone)]
pub struct Configs {
    channel: Channel,
    key: CallerKey,
}

impl Configs {
    /// Configs at `channel`, calls signed with `key`.
    pub fn new(channel: Channel, key: CallerKey) -> Self {
        Self { channel, key }
    }

    /// `config` of `tenant` as delivered in `environment` and `cluster`
    /// (empty: the environment level); with `gray`, the gray releases in
    /// flight that target `cluster` stand in for the full ones.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the tenant has no config set of that name;
    /// [`Error::Unavailable`] when configs does not answer.
    pub async fn render(
        &self,
        tenant: Uuid,
        config: &str,
        environment: &str,
        cluster: &str,
        gray: bool,
    ) -> Result<pb::ConfigDelivery> {
        let mut client = ConfigsServiceClient::with_interceptor(
            self.channel.clone(),
            Outgoing::new(&self.key, &Caller::service(crate::NAME)),
        );
        client
            .render_delivery(pb::RenderDeliveryRequest {
                tenant_id: tenant.to_string(),
                config: config.to_string(),
                environment: environment.to_string(),
                cluster: cluster.to_string(),
                gray,
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| match s.code() {
                tonic::Code::NotFound => Error::not_found("config", config),
                tonic::Code::InvalidArgument => Error::invalid("config", s.message()),
                _ => Error::Unavailable(format!("configs did not answer: {}", s.message())),
            })
    }
}
