//! The configs service: the config center (R6), config sets addressed by tenant,
//! application and environment. It owns the `configs` schema and announces
//! every change as `configs.*` events through its outbox. Items, releases,
//! gray release and delivery come with their issue.
//!
//! It does not own tenants (tenancy does) nor deliver configuration into
//! member clusters (federation does).

#![warn(missing_docs)]

pub mod config_set;
pub mod grpc;

use kernel::service::{Addresses, Base, Running};
use kernel::settings::Platform;
use kernel::shutdown::Shutdown;
use paas_proto::v1::configs_service_server::ConfigsServiceServer;

/// The service's name and schema.
pub const NAME: &str = "configs";
/// Default gRPC port of `paas serve configs`.
pub const GRPC_PORT: u16 = 7104;
/// Default HTTP (health, metrics) port of `paas serve configs`.
pub const HTTP_PORT: u16 = 7204;

/// The service's schema migrations.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/configs");

/// Starts the service: schema, relay and gRPC API.
///
/// # Errors
/// A dependency is unreachable or an address cannot be bound.
pub async fn start(platform: &Platform, addresses: Addresses, shutdown: &Shutdown) -> kernel::Result<Running> {
    let base = Base::connect(platform, NAME, &MIGRATIONS).await?;
    base.spawn_relay(shutdown);
    let api = ConfigsServiceServer::new(grpc::Configs::new(base.outbox.clone()));
    base.serve(addresses, api, shutdown).await
}
