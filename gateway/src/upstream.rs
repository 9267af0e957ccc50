//! Channels to the services. Each request builds a client on a shared channel
//! with its own caller token: cheap, since channels multiplex over HTTP/2. A
//! handler takes the client it calls as an extractor, `Signed(mut tenancy):
//! Signed<Tenancy>`, already signed with its caller's token.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use kernel::caller::{Caller, CallerKey};
use kernel::grpc::{Outgoing, channel};
use paas_proto::v1::apps_service_client::AppsServiceClient;
use paas_proto::v1::configs_service_client::ConfigsServiceClient;
use paas_proto::v1::devops_service_client::DevopsServiceClient;
use paas_proto::v1::federation_service_client::FederationServiceClient;
use paas_proto::v1::images_service_client::ImagesServiceClient;
use paas_proto::v1::tenancy_service_client::TenancyServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::AppState;
use crate::auth::Authenticated;
use crate::problem::ApiError;
use crate::settings::Upstreams;

/// Tenancy's client, with a caller's token.
pub type Tenancy = TenancyServiceClient<InterceptedService<Channel, Outgoing>>;
/// Federation's client, with a caller's token.
pub type Federation = FederationServiceClient<InterceptedService<Channel, Outgoing>>;
/// Apps' client, with a caller's token.
pub type Apps = AppsServiceClient<InterceptedService<Channel, Outgoing>>;
/// Configs' client, with a caller's token.
pub type Configs = ConfigsServiceClient<InterceptedService<Channel, Outgoing>>;

/// Images' client, with a caller's token.
pub type Images = ImagesServiceClient<InterceptedService<Channel, Outgoing>>;
/// Devops' client, with a caller's token.
pub type Devops = DevopsServiceClient<InterceptedService<Channel, Outgoing>>;

/// Lazily connected channels to each service.
#[derive(Clone)]
pub struct Upstream {
    tenancy: Channel,
    federation: Channel,
    apps: Channel,
    configs: Channel,
    images: Channel,
    devops: Channel,
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
            configs: channel(&addresses.configs)?,
            images: channel(&addresses.images)?,
            devops: channel(&addresses.devops)?,
        })
    }

    /// Tenancy, called as `caller`.
    pub fn tenancy(&self, key: &CallerKey, caller: &Caller) -> Tenancy {
        TenancyServiceClient::with_interceptor(self.tenancy.clone(), Outgoing::new(key, caller))
    }

    /// Federation, called as `caller`.
    pub fn federation(&self, key: &CallerKey, caller: &Caller) -> Federation {
        FederationServiceClient::with_interceptor(self.federation.clone(), Outgoing::new(key, caller))
    }

    /// Apps, called as `caller`.
    pub fn apps(&self, key: &CallerKey, caller: &Caller) -> Apps {
        AppsServiceClient::with_interceptor(self.apps.clone(), Outgoing::new(key, caller))
    }

    /// Configs, called as `caller`.
    pub fn configs(&self, key: &CallerKey, caller: &Caller) -> Configs {
        ConfigsServiceClient::with_interceptor(self.configs.clone(), Outgoing::new(key, caller))
    }
}

impl Upstream {
    /// Images, called as `caller`.
    pub fn images(&self, key: &CallerKey, caller: &Caller) -> Images {
        ImagesServiceClient::with_interceptor(self.images.clone(), Outgoing::new(key, caller))
    }

    /// Devops, called as `caller`.
    pub fn devops(&self, key: &CallerKey, caller: &Caller) -> Devops {
        DevopsServiceClient::with_interceptor(self.devops.clone(), Outgoing::new(key, caller))
    }
}

/// A service's client signed with the request's caller, as an extractor.
pub struct Signed<C>(pub C);

/// A client [`Signed`] can build.
pub trait Service: Sized {
    /// The client on `upstream`'s channel, called as `caller`.
    fn signed(upstream: &Upstream, key: &CallerKey, caller: &Caller) -> Self;
}

impl Service for Tenancy {
    fn signed(upstream: &Upstream, key: &CallerKey, caller: &Caller) -> Self {
        upstream.tenancy(key, caller)
    }
}

impl Service for Federation {
    fn signed(upstream: &Upstream, key: &CallerKey, caller: &Caller) -> Self {
        upstream.federation(key, caller)
    }
}

impl Service for Apps {
    fn signed(upstream: &Upstream, key: &CallerKey, caller: &Caller) -> Self {
        upstream.apps(key, caller)
    }
}

impl Service for Configs {
    fn signed(upstream: &Upstream, key: &CallerKey, caller: &Caller) -> Self {
        upstream.configs(key, caller)
    }
}

impl Service for Images {
    fn signed(upstream: &Upstream, key: &CallerKey, caller: &Caller) -> Self {
        upstream.images(key, caller)
    }
}

impl Service for Devops {
    fn signed(upstream: &Upstream, key: &CallerKey, caller: &Caller) -> Self {
        upstream.devops(key, caller)
    }
}

impl<C: Service> FromRequestParts<AppState> for Signed<C> {
    type Rejection = ApiError;

    /// Signs the caller the guard authenticated (401 without one, as [`Authenticated`]).
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Authenticated(caller) = Authenticated::from_request_parts(parts, state).await?;
        Ok(Self(C::signed(&state.upstream, &state.key, &caller)))
    }
}
