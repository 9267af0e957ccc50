//! Every service and the gateway in one process, each service on its own
//! loopback port and talking to the others over gRPC exactly as when they run
//! as separate processes.

use std::net::SocketAddr;

use kernel::grpc::uri;
use kernel::service::{Addresses, Running};
use kernel::settings::{Env, Platform};
use kernel::shutdown::Shutdown;

/// A running platform.
#[derive(Debug, Clone)]
pub struct Stack {
    /// The gateway's address.
    pub gateway: SocketAddr,
    /// Each service and where it listens.
    pub services: Vec<Running>,
    /// Where devops takes runners (`paas runner`'s `PAAS_RUNNER_URL`).
    pub runners: Option<SocketAddr>,
}

impl Stack {
    /// The gateway's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.gateway)
    }

    /// Where a service listens.
    pub fn service(&self, name: &str) -> Option<&Running> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// The services, in start order, with their default ports for `paas serve`.
/// Configs and images before apps: apps renders configs' releases into
/// clusters and asks images to admit each release's images, and is pointed at
/// the configs and images started here; configs calls no one, images only tenancy.
pub const SERVICES: &[&str] = &[
    tenancy::NAME,
    federation::NAME,
    configs::NAME,
    images::NAME,
    apps::NAME,
    devops::NAME,
];

/// Starts one service by name.
///
/// # Errors
/// Unknown name, or the service fails to start.
pub async fn start_service(
    name: &str,
    platform: &Platform,
    addresses: Addresses,
    shutdown: &Shutdown,
) -> kernel::Result<Running> {
    match name {
        tenancy::NAME => tenancy::start(platform, addresses, shutdown).await,
        federation::NAME => federation::start(platform, addresses, shutdown).await,
        apps::NAME => apps::start(platform, addresses, shutdown).await,
        configs::NAME => configs::start(platform, addresses, shutdown).await,
        images::NAME => images::start(platform, addresses, shutdown).await,
        devops::NAME => devops::start(platform, addresses, shutdown).await,
        other => Err(kernel::Error::invalid(
            "service",
            format!("{other} is not one of {}", SERVICES.join(", ")),
        )),
    }
}

/// The default ports of a service under `paas serve`.
pub fn default_ports(name: &str) -> Option<(u16, u16)> {
    Some(match name {
        tenancy::NAME => (tenancy::GRPC_PORT, tenancy::HTTP_PORT),
        federation::NAME => (federation::GRPC_PORT, federation::HTTP_PORT),
        apps::NAME => (apps::GRPC_PORT, apps::HTTP_PORT),
        configs::NAME => (configs::GRPC_PORT, configs::HTTP_PORT),
        images::NAME => (images::GRPC_PORT, images::HTTP_PORT),
        devops::NAME => (devops::GRPC_PORT, devops::HTTP_PORT),
        _ => return None,
    })
}

/// Starts every service on ephemeral loopback ports, then the gateway on
/// `gateway.addr`, pointed at them.
///
/// # Errors
/// A service or the gateway fails to start.
pub async fn start(platform: &Platform, gateway: gateway::Settings, shutdown: &Shutdown) -> kernel::Result<Stack> {
    let env = Env::load().map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
    start_in(platform, &env, gateway, shutdown).await
}

/// [`start`] with services' own settings read from `env`; federation reports
/// usage to the tenancy started here.
///
/// # Errors
/// A setting is malformed, or a service or the gateway fails to start.
pub async fn start_in(
    platform: &Platform,
    env: &Env,
    mut gateway: gateway::Settings,
    shutdown: &Shutdown,
) -> kernel::Result<Stack> {
    let mut services: Vec<Running> = Vec::with_capacity(SERVICES.len());
    let mut runners = None;
    let mut devops_registry = None;
    for name in SERVICES {
        let running = if *name == federation::NAME {
            let mut settings = federation::Settings::from_env(env, platform)
                .map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
            if let Some(tenancy) = services.iter().find(|s| s.name == tenancy::NAME) {
                settings.tenancy_url = uri(tenancy.grpc);
            }
            federation::start_with(platform, settings, Addresses::ephemeral(), shutdown).await?
        } else if *name == apps::NAME {
            let mut settings =
                apps::Settings::from_env(env).map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
            if let Some(federation) = services.iter().find(|s| s.name == federation::NAME) {
                settings.federation_url = uri(federation.grpc);
            }
            if let Some(tenancy) = services.iter().find(|s| s.name == tenancy::NAME) {
                settings.tenancy_url = uri(tenancy.grpc);
            }
            if let Some(configs) = services.iter().find(|s| s.name == configs::NAME) {
                settings.configs_url = uri(configs.grpc);
            }
            if let Some(images) = services.iter().find(|s| s.name == images::NAME) {
                settings.images_url = uri(images.grpc);
            }
            apps::start_with(platform, settings, Addresses::ephemeral(), shutdown).await?
        } else if *name == images::NAME {
            let mut settings = images::Settings::from_env(env)
                .map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
            if let Some(tenancy) = services.iter().find(|s| s.name == tenancy::NAME) {
                settings.tenancy_url = uri(tenancy.grpc);
            }
            images::start_with(platform, settings, Addresses::ephemeral(), shutdown).await?
        } else if *name == configs::NAME {
            let settings = configs::Settings::from_env(env, platform)
                .map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
            configs::start_with(platform, settings, Addresses::ephemeral(), shutdown).await?
        } else if *name == devops::NAME {
            let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
            let mut settings = devops::registry::Settings::from_env(env)
                .map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
            if let Some(images) = services.iter().find(|s| s.name == images::NAME) {
                settings.images_url = Some(uri(images.grpc));
            }
            let mut delivery = devops::deployment::Settings::from_env(env)
                .map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
            delivery.images_url.clone_from(&settings.images_url);
            if let Some(apps) = services.iter().find(|s| s.name == apps::NAME) {
                delivery.apps_url = uri(apps.grpc);
            }
            let started =
                devops::start_delivering(platform, settings, delivery, Addresses::ephemeral(), loopback, shutdown)
                    .await?;
            runners = Some(started.runners);
            devops_registry = Some(started.registry);
            started.running
        } else {
            start_service(name, platform, Addresses::ephemeral(), shutdown).await?
        };
        services.push(running);
    }
    let find = |name: &str| {
        services
            .iter()
            .find(|s| s.name == name)
            .map(|s| uri(s.grpc))
            .expect("started above")
    };
    gateway.upstream.tenancy = find(tenancy::NAME);
    gateway.upstream.federation = find(federation::NAME);
    gateway.upstream.apps = find(apps::NAME);
    gateway.upstream.configs = find(configs::NAME);
    gateway.upstream.images = find(images::NAME);
    gateway.upstream.devops = find(devops::NAME);
    let gateway = gateway::start(platform, gateway, shutdown).await?;
    // Unless told otherwise, build-image steps push to this platform's own
    // registry, the gateway's /v2/, which runners on this machine reach on
    // loopback over plain HTTP.
    if let Some(registry) = devops_registry.filter(|r| !r.has_registry()) {
        let host = if gateway.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], gateway.port()))
        } else {
            gateway
        };
        registry.point_at(host.to_string(), true);
    }
    Ok(Stack {
        gateway,
        services,
        runners,
    })
}

/// Runs every service's migrations.
///
/// # Errors
/// A migration fails.
pub async fn migrate(platform: &Platform) -> kernel::Result<()> {
    let all: [(&str, &sqlx::migrate::Migrator); 7] = [
        (tenancy::NAME, &tenancy::MIGRATIONS),
        (federation::NAME, &federation::MIGRATIONS),
        (apps::NAME, &apps::MIGRATIONS),
        (configs::NAME, &configs::MIGRATIONS),
        (images::NAME, &images::MIGRATIONS),
        (devops::NAME, &devops::MIGRATIONS),
        (gateway::SCHEMA, &gateway::MIGRATIONS),
    ];
    for (schema, migrations) in all {
        let pool = kernel::db::connect(platform, schema).await?;
        kernel::db::migrate(&pool, migrations).await?;
        pool.close().await;
        tracing::info!(schema, "migrated");
    }
    Ok(())
}
