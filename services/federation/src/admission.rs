//! Quota admission through tenancy's reservation API ([`crate::binding::Admission`]),
//! called as the federation service: federation has already checked the
//! caller's role in the tenant.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use kernel::caller::{Caller, CallerKey};
use kernel::grpc::Outgoing;
use kernel::{Error, Result};
use paas_proto::v1 as pb;
use paas_proto::v1::tenancy_service_client::TenancyServiceClient;
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::binding::Admission;

/// How long a binding's reservation waits to be committed: tenancy's
/// longest, so a cluster that is down for a while does not lose it.
const RESERVATION_TTL_SECONDS: u64 = 3600;

/// Tenancy's reservations over gRPC.
#[derive(Clone)]
pub struct TenancyAdmission {
    channel: Channel,
    key: CallerKey,
}

impl TenancyAdmission {
    /// Calls tenancy over `channel`, signing calls with `key`.
    pub fn new(channel: Channel, key: CallerKey) -> Self {
        Self { channel, key }
    }

    fn client(&self) -> TenancyServiceClient<tonic::service::interceptor::InterceptedService<Channel, Outgoing>> {
        // A fresh caller token per call: they are short-lived.
        TenancyServiceClient::with_interceptor(
            self.channel.clone(),
            Outgoing::new(&self.key, &Caller::service(crate::NAME)),
        )
    }
}

fn map(s: tonic::Status) -> Error {
    match s.code() {
        Code::ResourceExhausted => Error::ResourceExhausted(s.message().to_string()),
        Code::NotFound => Error::NotFound {
            kind: "reservation",
            id: s.message().to_string(),
        },
        Code::FailedPrecondition => Error::FailedPrecondition(s.message().to_string()),
        Code::InvalidArgument => Error::invalid("quota", s.message()),
        _ => Error::Unavailable(format!("tenancy: {}", s.message())),
    }
}

impl TenancyAdmission {
    async fn reserve_as(
        &self,
        partition: Uuid,
        amounts: &BTreeMap<String, String>,
        key: &str,
        failover: bool,
    ) -> Result<Uuid> {
        let request = pb::ReserveRequest {
            partition_id: partition.to_string(),
            amounts: Some(pb::ResourceList {
                amounts: amounts.clone().into_iter().collect(),
            }),
            idempotency_key: key.into(),
            ttl_seconds: RESERVATION_TTL_SECONDS,
            failover,
        };
        let r = self.client().reserve(request).await.map_err(map)?.into_inner();
        if r.state == "refused" {
            return Err(Error::ResourceExhausted(format!(
                "tenancy refused reservation {}",
                r.id
            )));
        }
        kernel::id::parse_id("reservation.id", &r.id)
    }
}

impl Admission for TenancyAdmission {
    fn reserve<'a>(
        &'a self,
        partition: Uuid,
        amounts: &'a BTreeMap<String, String>,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Uuid>> + Send + 'a>> {
        Box::pin(self.reserve_as(partition, amounts, key, false))
    }

    fn reserve_for_failover<'a>(
        &'a self,
        partition: Uuid,
        amounts: &'a BTreeMap<String, String>,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Uuid>> + Send + 'a>> {
        Box::pin(self.reserve_as(partition, amounts, key, true))
    }

    fn commit(&self, reservation: Uuid) -> Pin<Box<dyn Future<Output = Result<()>> + Send + '_>> {
        Box::pin(async move {
            self.client()
                .commit_reservation(pb::ReservationRef {
                    id: reservation.to_string(),
                })
                .await
                .map_err(map)?;
            Ok(())
        })
    }

    fn release(&self, reservation: Uuid) -> Pin<Box<dyn Future<Output = Result<()>> + Send + '_>> {
        Box::pin(async move {
            self.client()
                .release_reservation(pb::ReservationRef {
                    id: reservation.to_string(),
                })
                .await
                .map_err(map)?;
            Ok(())
        })
    }
}
