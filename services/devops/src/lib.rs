//! The devops service: pipelines, runs, gates and environments (R8). It owns the
//! `devops` schema and announces every change as `devops.*` events through its
//! outbox. Today it holds pipeline definitions; runs, triggers and gates come
//! with their issue.
//!
//! It does not host Git repositories nor build images itself, and it never
//! deploys: apps releases what a pipeline produces.

#![warn(missing_docs)]

pub mod grpc;
pub mod pipeline;

use kernel::service::{Addresses, Base, Running};
use kernel::settings::Platform;
use kernel::shutdown::Shutdown;
use paas_proto::v1::devops_service_server::DevopsServiceServer;

/// The service's name and schema.
pub const NAME: &str = "devops";
/// Default gRPC port of `paas serve devops`.
pub const GRPC_PORT: u16 = 7106;
/// Default HTTP (health, metrics) port of `paas serve devops`.
pub const HTTP_PORT: u16 = 7206;

/// The service's schema migrations.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/devops");

/// Starts the service: schema, relay and gRPC API.
///
/// # Errors
/// A dependency is unreachable or an address cannot be bound.
pub async fn start(platform: &Platform, addresses: Addresses, shutdown: &Shutdown) -> kernel::Result<Running> {
    let base = Base::connect(platform, NAME, &MIGRATIONS).await?;
    base.spawn_relay(shutdown);
    let api = DevopsServiceServer::new(grpc::Devops::new(base.outbox.clone()));
    base.serve(addresses, api, shutdown).await
}
