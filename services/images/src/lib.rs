//! The images service: the image catalog (R7). It owns the `images` schema:
//! the registries the platform knows, the token-signing key registries trust,
//! robot accounts, repositories and tags per tenant and project with their
//! metadata and lifecycle state, each tenant's storage quota, and the
//! registry's notifications, recorded once each. It announces changes as
//! `images.*` events through its outbox. It replicates tenants' images from
//! the master to the sub-registries of their data centres.
//!
//! It does not store images (the registries do), does not proxy registry
//! traffic (the gateway's `/v2/` does, asking this service what policy
//! says), and does not configure pull secrets in member clusters (federation
//! does).

#![warn(missing_docs)]

pub mod access;
pub mod admission;
pub mod catalog;
pub mod cosign;
pub mod gate;
pub mod grpc;
pub mod inspect;
pub mod lifecycle;
pub mod notification;
pub mod registry;
pub mod replication;
pub mod replicator;
pub mod retention;
pub mod robot;
pub mod scan;
pub mod seal;
pub mod signature;
pub mod signing;
pub mod tenancy;
pub mod transfer;

use std::sync::Arc;

use kernel::caller::CallerKey;
use kernel::service::{Addresses, Base, Running};
use kernel::settings::{Env, Platform, SettingError};
use kernel::shutdown::Shutdown;
use paas_proto::v1::images_service_server::ImagesServiceServer;

/// The service's name and schema.
pub const NAME: &str = "images";
/// Default gRPC port of `paas serve images`.
pub const GRPC_PORT: u16 = 7105;
/// Default HTTP (health, metrics) port of `paas serve images`.
pub const HTTP_PORT: u16 = 7205;
/// Where tenancy is (`http://host:port`): repository names carry tenant and
/// project names, which tenancy resolves.
pub const TENANCY_URL: &str = "PAAS_TENANCY_URL";
/// The addresses (`host[:port]`, comma-separated) the platform's registry is
/// reached at in image references, for production admission. Default empty:
/// any host naming a catalog repository, since admitted images are pinned to
/// the catalog's digest wherever they are pulled from.
pub const REGISTRY_HOSTS: &str = "PAAS_IMAGES_REGISTRY_HOSTS";
/// Production admission: `enforce` (default: production runs only released,
/// pinned images of the tenant's own repositories) or `off` (digests are
/// still pinned; for platforms whose production images live elsewhere).
pub const ADMISSION: &str = "PAAS_IMAGES_ADMISSION";

/// The service's schema migrations.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/images");

/// The images service's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Tenancy's gRPC URL.
    pub tenancy_url: String,
    /// Retention's schedule and the registry's garbage collection.
    pub retention: retention::Settings,
    /// See [`REGISTRY_HOSTS`].
    pub registry_hosts: Vec<String>,
    /// Whether production admission refuses (see [`ADMISSION`]).
    pub enforce_admission: bool,
    /// How the replication worker paces itself.
    pub replication: replicator::Pace,
}

impl Settings {
    /// Reads [`TENANCY_URL`] (default: tenancy's default port on this host)
    /// [`REGISTRY_HOSTS`], [`ADMISSION`] and retention's settings
    /// ([`retention::Settings::from_env`]).
    ///
    /// # Errors
    /// A malformed value.
    pub fn from_env(env: &Env) -> Result<Self, SettingError> {
        Ok(Self {
            tenancy_url: env.or(TENANCY_URL, "http://127.0.0.1:7101".to_string())?,
            retention: retention::Settings::from_env(env)?,
            registry_hosts: env
                .or(REGISTRY_HOSTS, String::new())?
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_string)
                .collect(),
            enforce_admission: match env.or(ADMISSION, "enforce".to_string())?.as_str() {
                "enforce" => true,
                "off" => false,
                other => {
                    return Err(SettingError {
                        variable: ADMISSION.into(),
                        expected: "enforce or off".into(),
                        found: Some(other.to_string()),
                    });
                }
            },
            replication: replicator::Pace::default(),
        })
    }
}

/// Starts the service with settings from the environment.
///
/// # Errors
/// A setting is malformed, a dependency is unreachable or an address cannot be bound.
pub async fn start(platform: &Platform, addresses: Addresses, shutdown: &Shutdown) -> kernel::Result<Running> {
    let env = Env::load().map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
    let settings = Settings::from_env(&env).map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
    start_with(platform, settings, addresses, shutdown).await
}

/// Starts the service: schema, signing key, relay and gRPC API.
///
/// # Errors
/// A dependency is unreachable, the stored signing key does not open with
/// this platform's key, or an address cannot be bound.
pub async fn start_with(
    platform: &Platform,
    settings: Settings,
    addresses: Addresses,
    shutdown: &Shutdown,
) -> kernel::Result<Running> {
    let base = Base::connect(platform, NAME, &MIGRATIONS).await?;
    base.spawn_relay(shutdown);
    let sealer = seal::Sealer::derived_from(platform.caller_key.expose());
    let signer = Arc::new(signing::Signer::load_or_create(&base.pool, &sealer).await?);
    let tenancy = tenancy::Tenancy::new(
        kernel::grpc::channel(&settings.tenancy_url)?,
        CallerKey::new(platform.caller_key.clone()),
    );
    let retention = retention::Retention::new(base.outbox.clone(), signer.clone(), settings.retention.clone());
    shutdown.spawn("retention", retention.clone().run_scheduler(shutdown.token()));
    let gate = gate::Gate::new(&base.outbox, sealer.clone(), signer.clone(), tenancy.clone());
    let scans = scan::Scans::new(base.pool.clone(), sealer.clone());
    let scanning = scan::Scanning::new(scans.clone(), signer.clone());
    shutdown.spawn("scans", scanning.run(shutdown.token()));
    let admission =
        admission::Admission::new(base.pool.clone(), settings.registry_hosts).enforcing(settings.enforce_admission);
    let replications = replication::Replications::new(
        base.outbox.clone(),
        registry::Registries::new(base.outbox.clone(), sealer.clone()),
        tenancy,
    );
    let replicator = replicator::Replicator::new(replications.clone(), signer, settings.replication.clone());
    let waker = replicator.waker();
    shutdown.spawn("replicator", replicator.run(shutdown.token()));
    let api = ImagesServiceServer::new(
        grpc::Images::new(base.outbox.clone(), sealer, gate, retention)
            .with_admission(admission)
            .with_scans(scans)
            .with_replications(replications, waker),
    );
    base.serve(addresses, api, shutdown).await
}
