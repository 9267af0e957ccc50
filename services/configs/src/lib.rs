//! The configs service: the config center (R6). Config sets addressed by
//! tenant, application (or a shared set's name), environment and cluster;
//! drafts edited with a version check; immutable numbered releases with
//! diffs, history and rollback; the effective configuration of an
//! application with the origin of each key; secrets sealed with per-tenant
//! data keys; four-eyes publishing per environment; and a watch that streams
//! each new release to clients, gray releases to the watchers whose labels
//! match first, and records which instance holds which release. It owns the
//! `configs` schema and announces releases as `configs.release.*` and
//! `configs.gray.*` events through its outbox.
//!
//! It does not own tenants (tenancy does) nor write into member clusters:
//! it renders a config as a cluster gets it ([`delivery`]) and the apps
//! service places it beside the application's objects.

#![warn(missing_docs)]

pub mod config_set;
pub mod delivery;
pub mod draft;
pub mod effective;
pub mod environment;
pub mod format;
pub mod gray;
pub mod grpc;
pub mod instance;
pub mod item;
pub mod link;
pub mod release;
pub mod secret;
pub mod selector;
pub mod settings;
pub mod watch;

use kernel::service::{Addresses, Base, Running};
use kernel::settings::Platform;
use kernel::shutdown::Shutdown;
use paas_proto::v1::configs_service_server::ConfigsServiceServer;
pub use settings::Settings;

/// The service's name and schema.
pub const NAME: &str = "configs";
/// Default gRPC port of `paas serve configs`.
pub const GRPC_PORT: u16 = 7104;
/// Default HTTP (health, metrics) port of `paas serve configs`.
pub const HTTP_PORT: u16 = 7204;

/// The service's schema migrations.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/configs");

/// Starts the service with settings from the environment.
///
/// # Errors
/// A setting is malformed, a dependency is unreachable or an address cannot be bound.
pub async fn start(platform: &Platform, addresses: Addresses, shutdown: &Shutdown) -> kernel::Result<Running> {
    let env = kernel::settings::Env::load().map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
    let settings =
        Settings::from_env(&env, platform).map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
    start_with(platform, settings, addresses, shutdown).await
}

/// Starts the service: schema, relay, data keys re-sealed under the current
/// master key, the release listener and the gRPC API.
///
/// # Errors
/// A dependency is unreachable, a data key's master key is not configured,
/// or an address cannot be bound.
pub async fn start_with(
    platform: &Platform,
    settings: Settings,
    addresses: Addresses,
    shutdown: &Shutdown,
) -> kernel::Result<Running> {
    let base = Base::connect(platform, NAME, &MIGRATIONS).await?;
    base.spawn_relay(shutdown);
    let api = grpc::Configs::new(
        base.outbox.clone(),
        settings.keyring,
        settings.delivery,
        shutdown.token(),
    );
    let rewrapped = api.sealer().rewrap().await?;
    if rewrapped > 0 {
        tracing::info!(rewrapped, "tenant data keys re-sealed under the current master key");
    }
    shutdown.spawn("config release listener", api.watchers().listen(base.pool.clone()));
    shutdown.spawn("config instance recorder", api.instances().record(shutdown.token()));
    base.serve(addresses, ConfigsServiceServer::new(api), shutdown).await
}
