//! The apps service: application templates, the catalog, applications, releases,
//! release strategies and scaling (R4, R5). It owns the `apps` schema and
//! announces every change as `apps.*` events through its outbox: templates and
//! their versions, rendering, applications and their releases (driven by
//! [`driver::Driver`]), scaling, the NodePort pool, and external services
//! registered for apps to reach by a stable in-cluster name, and the
//! config center's configs delivered beside the workloads that use them
//! ([`config_delivery`]).
//!
//! It does not own tenants (tenancy does) and never writes to member clusters
//! itself: federation does.

#![warn(missing_docs)]

pub mod activity;
pub mod application;
pub mod binding_status;
pub mod chart;
pub mod config_delivery;
pub mod configs;
pub mod driver;
pub mod external_service;
pub mod federation;
pub mod grpc;
pub mod images;
pub mod node_port;
pub mod placement;
pub mod pod;
pub mod release;
pub mod render;
pub mod rollout;
pub mod spec;
pub mod strategy;
pub mod template;
pub mod tenancy;
pub mod traffic;
pub mod trigger;
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

/// Where federation is (`http://host:port`).
pub const FEDERATION_URL: &str = "PAAS_FEDERATION_URL";
/// Where configs is (`http://host:port`), asked for the configs templates reference.
pub const CONFIGS_URL: &str = "PAAS_CONFIGS_URL";
/// How often every application's configs are rendered again to catch a lost
/// release event (default 60s).
pub const CONFIG_RESYNC: &str = "PAAS_APPS_CONFIG_RESYNC";
/// Where tenancy is (`http://host:port`), asked whether tenants exist.
pub const TENANCY_URL: &str = "PAAS_TENANCY_URL";
/// Where images is (`http://host:port`), asked to admit and pin each release's images.
pub const IMAGES_URL: &str = "PAAS_IMAGES_URL";
/// How often a deploying release is looked at (default 500ms).
pub const RELEASE_POLL: &str = "PAAS_APPS_RELEASE_POLL";
/// How long a release may take to become Healthy (default 10m).
pub const RELEASE_DEADLINE: &str = "PAAS_APPS_RELEASE_DEADLINE";
/// The Gateway (`namespace/name`) that canary, A/B and shadow HTTPRoutes
/// attach to. Default `paas-system/paas-gateway`: the platform installs one
/// shared Gateway there.
pub const GATEWAY: &str = "PAAS_APPS_GATEWAY";
/// Whether this process drives releases (default true). Several apps
/// replicas may all drive (releases are claimed one at a time); `false`
/// leaves it to another process.
pub const RELEASE_DRIVER: &str = "PAAS_APPS_RELEASE_DRIVER";

/// Whether this process delivers configs into clusters (default true).
/// Several apps replicas may all deliver (applications are claimed one at
/// a time); `false` leaves it to another process.
pub const CONFIG_DELIVERY: &str = "PAAS_APPS_CONFIG_DELIVERY";

/// The apps service's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Federation's gRPC URL.
    pub federation_url: String,
    /// Tenancy's gRPC URL.
    pub tenancy_url: String,
    /// Configs' gRPC URL.
    pub configs_url: String,
    /// Images' gRPC URL.
    pub images_url: String,
    /// How configs are delivered.
    pub config_pacing: config_delivery::Pacing,
    /// Whether to run the config delivery reconciler here.
    pub deliver_configs: bool,
    /// How releases are paced.
    pub pacing: driver::Pacing,
    /// Where HTTPRoutes attach.
    pub gateway: traffic::GatewayRef,
    /// Whether to run the release driver here.
    pub drive_releases: bool,
}

impl Settings {
    /// Reads [`FEDERATION_URL`], [`TENANCY_URL`], [`CONFIGS_URL`], [`IMAGES_URL`], [`RELEASE_POLL`],
    /// [`RELEASE_DEADLINE`], [`GATEWAY`], [`RELEASE_DRIVER`], [`CONFIG_RESYNC`] and
    /// [`CONFIG_DELIVERY`].
    ///
    /// # Errors
    /// A malformed value.
    pub fn from_env(env: &kernel::settings::Env) -> Result<Self, kernel::settings::SettingError> {
        let d = driver::Pacing::default();
        Ok(Self {
            federation_url: env.or(FEDERATION_URL, "http://127.0.0.1:7102".to_string())?,
            tenancy_url: env.or(TENANCY_URL, "http://127.0.0.1:7101".to_string())?,
            configs_url: env.or(CONFIGS_URL, "http://127.0.0.1:7104".to_string())?,
            images_url: env.or(IMAGES_URL, "http://127.0.0.1:7105".to_string())?,
            config_pacing: config_delivery::Pacing {
                resync: env.or(CONFIG_RESYNC, config_delivery::Pacing::default().resync)?,
                ..config_delivery::Pacing::default()
            },
            pacing: driver::Pacing {
                poll: env.or(RELEASE_POLL, d.poll)?,
                deadline: env.or(RELEASE_DEADLINE, d.deadline)?,
            },
            gateway: match env.or(GATEWAY, String::new())? {
                raw if raw.is_empty() => traffic::GatewayRef::default(),
                raw => traffic::GatewayRef::parse(&raw).map_err(|_| kernel::settings::SettingError {
                    variable: GATEWAY.into(),
                    expected: "namespace/name of a Gateway".into(),
                    found: Some(raw.clone()),
                })?,
            },
            drive_releases: env.or(RELEASE_DRIVER, true)?,
            deliver_configs: env.or(CONFIG_DELIVERY, true)?,
        })
    }
}

/// Starts the service with settings from the environment.
///
/// # Errors
/// A setting is malformed, a dependency is unreachable or an address cannot be bound.
pub async fn start(platform: &Platform, addresses: Addresses, shutdown: &Shutdown) -> kernel::Result<Running> {
    let env = kernel::settings::Env::load().map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
    let settings = Settings::from_env(&env).map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
    start_with(platform, settings, addresses, shutdown).await
}

/// Starts the service: schema, relay, release driver and gRPC API.
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
        kernel::inbox::Subscription {
            durable: "apps-bindings".into(),
            filter: binding_status::SUBJECTS.into(),
        },
        binding_status::BindingStatusEvents,
    );
    base.spawn_consumer(
        shutdown,
        kernel::inbox::Subscription {
            durable: "apps-failovers".into(),
            filter: activity::SUBJECTS.into(),
        },
        activity::FailoverEvents,
    );
    let federation = federation::Federation::new(
        kernel::grpc::channel(&settings.federation_url)?,
        kernel::caller::CallerKey::new(platform.caller_key.clone()),
    );
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    if settings.drive_releases {
        let driver = driver::Driver::new(
            base.pool.clone(),
            federation.clone(),
            wake.clone(),
            settings.pacing,
            settings.gateway.clone(),
        );
        shutdown.spawn("release driver", driver.run(shutdown.token()));
        shutdown.spawn(
            "due release listener",
            binding_status::follow(base.pool.clone(), wake.clone(), shutdown.token()),
        );
    }
    let tenancy = tenancy::Tenancy::new(
        kernel::grpc::channel(&settings.tenancy_url)?,
        kernel::caller::CallerKey::new(platform.caller_key.clone()),
    );
    // Lazy: configs may start after apps (`paas serve`); nothing is asked until a deploy or a delivery.
    let configs = configs::Configs::new(
        kernel::grpc::channel(&settings.configs_url)?,
        kernel::caller::CallerKey::new(platform.caller_key.clone()),
    );
    // Lazy like configs: images is asked at each release.
    let images = images::Images::new(
        kernel::grpc::channel(&settings.images_url)?,
        kernel::caller::CallerKey::new(platform.caller_key.clone()),
    );
    let applications =
        application::Applications::new(base.outbox.clone(), federation, configs.clone(), wake, settings.gateway)
            .with_images(images);
    base.spawn_consumer(
        shutdown,
        kernel::inbox::Subscription {
            durable: "apps-config-releases".into(),
            filter: config_delivery::SUBJECTS.into(),
        },
        config_delivery::ConfigReleaseEvents,
    );
    // Its own durable: a consumer's filter is fixed once created.
    base.spawn_consumer(
        shutdown,
        kernel::inbox::Subscription {
            durable: "apps-config-grays".into(),
            filter: config_delivery::GRAY_SUBJECTS.into(),
        },
        config_delivery::ConfigReleaseEvents,
    );
    if settings.deliver_configs {
        let configs_due = std::sync::Arc::new(tokio::sync::Notify::new());
        let deliveries = config_delivery::Reconciler::new(
            base.pool.clone(),
            configs,
            applications.clone(),
            configs_due.clone(),
            settings.config_pacing,
        );
        shutdown.spawn("config delivery", deliveries.run(shutdown.token()));
        shutdown.spawn(
            "due config listener",
            config_delivery::follow(base.pool.clone(), configs_due, shutdown.token()),
        );
    }
    base.spawn_consumer(
        shutdown,
        kernel::inbox::Subscription {
            durable: "apps-image-triggers".into(),
            filter: trigger::SUBJECTS.into(),
        },
        trigger::TagEvents,
    );
    if settings.drive_releases {
        let firer = trigger::Firer::new(base.pool.clone(), applications.clone());
        shutdown.spawn("image trigger firer", firer.run(shutdown.token()));
    }
    let api = AppsServiceServer::new(grpc::Apps::new(base.outbox.clone(), tenancy, applications));
    base.serve(addresses, api, shutdown).await
}
