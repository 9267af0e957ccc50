//! Tenancy as apps reaches it: whether a tenant exists before anything is
//! made under it or its children are listed. Tenancy owns tenants; apps only
//! asks, signed as the apps service (the caller's own sight of the tenant
//! is checked here first).

use kernel::caller::{Caller, CallerKey};
use kernel::grpc::Outgoing;
use kernel::{Error, Result};
use paas_proto::v1 as pb;
use paas_proto::v1::tenancy_service_client::TenancyServiceClient;
use tonic::transport::Channel;
use uuid::Uuid;

/// Reaches tenancy as the apps service.
#[derive(Clone)]
pub struct Tenancy {
    channel: Channel,
    key: CallerKey,
}

impl Tenancy {
    /// Tenancy at `channel`, calls signed with `key`.
    pub fn new(channel: Channel, key: CallerKey) -> Self {
        Self { channel, key }
    }

    /// Fails unless `tenant` exists and the caller can see it (the same 404
    /// either way).
    ///
    /// # Errors
    /// Not found, or tenancy did not answer.
    pub async fn require(&self, caller: &Caller, tenant: Uuid) -> Result<()> {
        if !caller.can_see(tenant) {
            return Err(Error::not_found("tenant", tenant));
        }
        let mut client = TenancyServiceClient::with_interceptor(
            self.channel.clone(),
            Outgoing::new(&self.key, &Caller::service(crate::NAME)),
        );
        match client.get_tenant(pb::GetTenantRequest { id: tenant.to_string() }).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Err(Error::not_found("tenant", tenant)),
            Err(s) => Err(Error::Unavailable(format!("tenancy did not answer: {}", s.message()))),
        }
    }

    /// [`Tenancy::require`] for a tenant named in a request's field: a
    /// missing one is that field's error. A tenant the caller cannot see
    /// stays a 404, as for any other of another tenant's things.
    ///
    /// # Errors
    /// Not visible; names `field` when the tenant is not found; tenancy did
    /// not answer.
    pub async fn require_field(&self, caller: &Caller, field: &str, tenant: Uuid) -> Result<()> {
        if !caller.can_see(tenant) {
            return Err(Error::not_found("tenant", tenant));
        }
        match self.require(caller, tenant).await {
            Err(Error::NotFound { .. }) => Err(Error::invalid(field, "no such tenant")),
            other => other,
        }
    }
}
