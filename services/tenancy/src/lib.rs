//! The tenancy service: tenants, projects, partitions, members, role bindings
//! and hierarchical quotas (R1). It owns the `tenancy` schema and announces
//! every change as `tenancy.*` events through its outbox.
//!
//! It does not touch member clusters: federation turns its events into
//! namespaces and quotas there.

#![warn(missing_docs)]

pub mod grpc;
pub mod member;
pub mod partition;
pub mod project;
pub mod quota;
pub mod reservation;
pub mod resource;
pub mod resource_request;
pub mod tenant;
pub mod usage;

use kernel::service::{Addresses, Base, Running};
use kernel::settings::Platform;
use kernel::shutdown::Shutdown;
use paas_proto::v1::tenancy_service_server::TenancyServiceServer;

/// The service's name and schema.
pub const NAME: &str = "tenancy";
/// Default gRPC port of `paas serve tenancy`.
pub const GRPC_PORT: u16 = 7101;
/// Default HTTP (health, metrics) port of `paas serve tenancy`.
pub const HTTP_PORT: u16 = 7201;

/// The service's schema migrations.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/tenancy");

/// Starts the service: schema, relay and gRPC API.
///
/// # Errors
/// A dependency is unreachable or an address cannot be bound.
pub async fn start(platform: &Platform, addresses: Addresses, shutdown: &Shutdown) -> kernel::Result<Running> {
    let base = Base::connect(platform, NAME, &MIGRATIONS).await?;
    base.spawn_relay(shutdown);
    let reservations = reservation::Reservations::new(base.pool.clone());
    let stop = shutdown.token();
    shutdown.spawn("reservation sweeper", async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok::<(), kernel::Error>(()),
                _ = tokio::time::sleep(reservation::SWEEP) => {}
            }
            match reservations.expire_due().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "reservations expired"),
                Err(e) => tracing::warn!(error = %e, "reservation sweep failed"),
            }
        }
    });
    let history = usage::UsageHistory::new(base.pool.clone());
    let stop = shutdown.token();
    shutdown.spawn("usage snapshots", async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok::<(), kernel::Error>(()),
                _ = tokio::time::sleep(usage::SNAPSHOT) => {}
            }
            if let Err(e) = history.snapshot().await {
                tracing::warn!(error = %e, "usage snapshot failed");
            }
        }
    });
    let api = TenancyServiceServer::new(grpc::Tenancy::new(base.outbox.clone()));
    base.serve(addresses, api, shutdown).await
}
