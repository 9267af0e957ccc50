//! The federation service: member clusters and data centres, health,
//! partitions in member clusters, placement, propagation and failover (R2, R3).
//! It owns the `federation` schema; it learns of tenants from tenancy's events
//! and never reads tenancy's tables.

#![warn(missing_docs)]

pub mod admission;
pub mod binding;
pub mod cluster;
pub mod cluster_settings;
pub mod credentials;
pub mod data_centre;

pub mod failback;
pub mod failover;
pub mod fencing;
pub mod grpc;
pub mod health;
pub mod known_tenant;
pub mod lease;
pub mod maintenance;
pub mod partition;
pub mod placement;
pub mod pod;
pub mod propagation;
pub mod pull_secret;
pub mod registry_mirror;
pub mod resilience;
pub mod settings;
pub mod status;
pub mod watch;

use kernel::inbox::Subscription;
use kernel::service::{Addresses, Base, Running};
use kernel::settings::{Env, Platform};
use kernel::shutdown::Shutdown;
use paas_proto::v1::federation_service_server::FederationServiceServer;

/// The service's name and schema.
pub const NAME: &str = "federation";
/// Default gRPC port of `paas serve federation`.
pub const GRPC_PORT: u16 = 7102;
/// Default HTTP (health, metrics) port of `paas serve federation`.
pub const HTTP_PORT: u16 = 7202;

/// The service's schema migrations.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/federation");

pub use settings::Settings;

/// Starts the service with its settings read from the environment (and the
/// optional settings file).
///
/// # Errors
/// A setting is malformed, a dependency is unreachable or an address cannot be bound.
pub async fn start(platform: &Platform, addresses: Addresses, shutdown: &Shutdown) -> kernel::Result<Running> {
    let env = Env::load().map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
    let settings =
        Settings::from_env(&env, platform).map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
    start_with(platform, settings, addresses, shutdown).await
}

/// Starts the service: schema, relay, tenancy consumers, partition
/// reconciler, binding propagator, health monitor and gRPC API.
///
/// # Errors
/// A dependency is unreachable or an address cannot be bound.
pub async fn start_with(
    platform: &Platform,
    settings: Settings,
    addresses: Addresses,
    shutdown: &Shutdown,
) -> kernel::Result<Running> {
    let base = Base::connect(platform, NAME, &MIGRATIONS).await?;
    base.spawn_relay(shutdown);
    base.spawn_consumer(
        shutdown,
        Subscription {
            durable: "federation-tenants".into(),
            filter: "tenancy.tenant.*".into(),
        },
        known_tenant::TenantEvents,
    );
    base.spawn_consumer(
        shutdown,
        Subscription {
            durable: "federation-partitions".into(),
            filter: "tenancy.partition.*".into(),
        },
        partition::PartitionEvents,
    );
    let clients = credentials::Clients::new(base.pool.clone(), settings.secret_key.clone());
    let tenancy = kernel::grpc::channel(&settings.tenancy_url)?;
    let caller_key = kernel::caller::CallerKey::new(platform.caller_key.clone());
    let usage = partition::UsageReporter::new(tenancy.clone(), caller_key.clone());
    let admission: std::sync::Arc<dyn binding::Admission> =
        std::sync::Arc::new(admission::TenancyAdmission::new(tenancy, caller_key));
    let reconciler = partition::Reconciler::new(
        base.pool.clone(),
        clients.clone(),
        partition::ReconcileSettings::from(&settings),
    )
    .reporting_usage(usage)
    .with_platform_registry(settings.registry.clone());
    shutdown.spawn("partition reconciler", reconciler.run(shutdown.token()));
    let propagator = propagation::Propagator::new(
        base.pool.clone(),
        clients.clone(),
        propagation::PropagateSettings::from(&settings),
        admission.clone(),
    )
    .with_delivery_key(kernel::seal::DeliveryKey::from_caller_key(&platform.caller_key))
    .with_platform_registry(settings.registry.as_ref().map(|r| r.server.clone()));
    shutdown.spawn("binding propagator", propagator.run(shutdown.token()));
    let failovers = failover::Reconciler::new(
        base.pool.clone(),
        clients.clone(),
        admission.clone(),
        failover::FailoverSettings::from(&settings),
    );
    shutdown.spawn("failover reconciler", failovers.run(shutdown.token()));
    let monitor = health::Monitor::new(base.outbox.clone(), clients, health::ProbeSettings::from(&settings));
    shutdown.spawn("health monitor", monitor.run(shutdown.token()));
    let api = FederationServiceServer::new(grpc::Federation::new(
        base.outbox.clone(),
        settings.secret_key.clone(),
        admission,
    ));
    base.serve(addresses, api, shutdown).await
}
