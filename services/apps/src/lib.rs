//! The apps service: application templates, the catalog, applications, releases,
//! release strategies and scaling (R4, R5). It owns the `apps` schema and
//! announces every change as `apps.*` events through its outbox. Today it holds
//! the template registry; rendering, releases and strategies come with their
//! issue.
//!
//! It does not own tenants (tenancy does) and never writes to member clusters
//! itself: federation does.

pub mod grpc;
pub mod render;
pub mod spec;
pub mod template;
pub mod version;

use kernel::service::{Addresses, Base, Running};
use kernel::settings::Platform;
use kernel::shutdown::Shutdown;
use paas_proto::v1::apps_service_server::AppsServiceServer;

/// The service's name and schema.
pub const NAME: &str = "apps";
/// Default gRPC port of `paas serve apps`.
pub const GRPC_PORT: u16 = 7103;
/// Default HTTP (health, metrics) port of `paas serve apps`.
pub const HTTP_PORT: u16 = 7203;

/// The service's schema migrations.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/apps");

/// Starts the service: schema, relay and gRPC API.
///
/// # Errors
/// A dependency is unreachable or an address cannot be bound.
pub async fn start(platform: &Platform, addresses: Addresses, shutdown: &Shutdown) -> kernel::Result<Running> {
    let base = Base::connect(platform, NAME, &MIGRATIONS).await?;
    base.spawn_relay(shutdown);
    let api = AppsServiceServer::new(grpc::Apps::new(base.outbox.clone()));
    base.serve(addresses, api, shutdown).await
}
