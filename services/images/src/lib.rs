//! The images service: the image catalog (R7): OCI registries, repositories,
//! tags and replication. It owns the `images` schema and announces every change
//! as `images.*` events through its outbox. Today it holds the registry list;
//! repositories, tags and replication come with their issue.
//!
//! It does not store images (the registries do) nor configure pull secrets in
//! member clusters (federation does).

#![warn(missing_docs)]

pub mod grpc;
pub mod registry;

use kernel::service::{Addresses, Base, Running};
use kernel::settings::Platform;
use kernel::shutdown::Shutdown;
use paas_proto::v1::images_service_server::ImagesServiceServer;

/// The service's name and schema.
pub const NAME: &str = "images";
/// Default gRPC port of `paas serve images`.
pub const GRPC_PORT: u16 = 7105;
/// Default HTTP (health, metrics) port of `paas serve images`.
pub const HTTP_PORT: u16 = 7205;

/// The service's schema migrations.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/images");

/// Starts the service: schema, relay and gRPC API.
///
/// # Errors
/// A dependency is unreachable or an address cannot be bound.
pub async fn start(platform: &Platform, addresses: Addresses, shutdown: &Shutdown) -> kernel::Result<Running> {
    let base = Base::connect(platform, NAME, &MIGRATIONS).await?;
    base.spawn_relay(shutdown);
    let api = ImagesServiceServer::new(grpc::Images::new(base.outbox.clone()));
    base.serve(addresses, api, shutdown).await
}
