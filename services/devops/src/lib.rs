//! The devops service: pipelines, runs, gates and runners (R8). It owns the
//! `devops` schema and announces every change as `devops.*` events through its
//! outbox. Pipelines are defined in YAML (stored, or in the repository);
//! webhooks, manual requests and schedules queue runs; the conductor plans
//! and moves them; runners (`paas runner`, see [`agent`]) execute their steps
//! over a gRPC stream on a port of their own.
//!
//! It does not host Git repositories nor build images itself (runners do,
//! with buildah, pushing with a token devops has the image catalog issue
//! for the run: see [`registry`]), and it never deploys by itself: its
//! `deploy` and `promote` steps ask apps for releases of the environment's
//! application and watch them ([`deployment`]), its `security-scan` steps
//! ask the image catalog's scanner ([`scan_gate`]); feature branches get
//! applications of their own ([`environment`]). Notifications (webhook,
//! e-mail) follow its own run events ([`notification`]); image pushes
//! announced by the catalog start runs ([`image_trigger`]).

#![warn(missing_docs)]

pub mod agent;
pub mod conductor;
pub mod definition;
pub mod deployment;
pub mod environment;
pub mod grpc;
pub mod image_trigger;
pub mod junit;
pub mod notification;
pub mod pipeline;
pub mod registry;
pub mod run;
pub mod runner;
pub mod runner_grpc;
pub mod scan_gate;
pub mod source;
pub mod step;
pub mod trigger;
pub mod webhook;

use std::net::SocketAddr;

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
/// Default port of the runners' API: the gRPC port's series plus 200, beside
/// the HTTP one, so a firewall can open it to runners alone.
pub const RUNNER_PORT: u16 = 7306;

/// The service's schema migrations.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/devops");

/// A started devops service.
#[derive(Debug, Clone)]
pub struct Started {
    /// The gRPC API and health endpoints.
    pub running: Running,
    /// Where runners connect.
    pub runners: SocketAddr,
    /// Where build-image steps push (re-pointable once the gateway is up).
    pub registry: registry::Registry,
}

/// Starts the service: schema, relay, conductor, gRPC API and runners' API
/// (on [`RUNNER_PORT`] of the gRPC address, or an ephemeral port when the
/// gRPC one is), with the registry settings from the environment.
///
/// # Errors
/// A setting is malformed, a dependency is unreachable or an address cannot be bound.
pub async fn start(platform: &Platform, addresses: Addresses, shutdown: &Shutdown) -> kernel::Result<Running> {
    let port = if addresses.grpc.port() == 0 { 0 } else { RUNNER_PORT };
    let runners = SocketAddr::new(addresses.grpc.ip(), port);
    Ok(start_with_runners(platform, addresses, runners, shutdown)
        .await?
        .running)
}

/// [`start`], with the runners' API on `runners`.
///
/// # Errors
/// A setting is malformed, a dependency is unreachable or an address cannot be bound.
pub async fn start_with_runners(
    platform: &Platform,
    addresses: Addresses,
    runners: SocketAddr,
    shutdown: &Shutdown,
) -> kernel::Result<Started> {
    let env = kernel::settings::Env::load().map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
    let registry =
        registry::Settings::from_env(&env).map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
    start_with(platform, registry, addresses, runners, shutdown).await
}

/// [`start_with_runners`], with the registry `build-image` steps push to;
/// apps (where deploy steps release) and the SMTP server as the environment
/// says ([`deployment::APPS_URL`], `PAAS_SMTP_*`), the image catalog as
/// `registry` says.
///
/// # Errors
/// A setting is malformed, a dependency is unreachable or an address cannot be bound.
pub async fn start_with(
    platform: &Platform,
    registry: registry::Settings,
    addresses: Addresses,
    runners: SocketAddr,
    shutdown: &Shutdown,
) -> kernel::Result<Started> {
    let env = kernel::settings::Env::load().map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
    let smtp =
        notification::Smtp::from_env(&env).map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
    let delivery = delivery_from_env(&env, &registry)?;
    start_wired(platform, registry, smtp, delivery, addresses, runners, shutdown).await
}

fn delivery_from_env(
    env: &kernel::settings::Env,
    registry: &registry::Settings,
) -> kernel::Result<deployment::Settings> {
    let mut delivery =
        deployment::Settings::from_env(env).map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
    delivery.images_url.clone_from(&registry.images_url);
    Ok(delivery)
}

/// [`start_with`], with the SMTP server e-mail notifications go through
/// (apps as the environment says).
///
/// # Errors
/// A setting is malformed, a dependency is unreachable or an address cannot be bound.
pub async fn start_notifying(
    platform: &Platform,
    registry: registry::Settings,
    smtp: notification::Smtp,
    addresses: Addresses,
    runners: SocketAddr,
    shutdown: &Shutdown,
) -> kernel::Result<Started> {
    let env = kernel::settings::Env::load().map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
    let delivery = delivery_from_env(&env, &registry)?;
    start_wired(platform, registry, smtp, delivery, addresses, runners, shutdown).await
}

/// [`start_with`], with the services deploy, security-scan and promote
/// steps go through (the SMTP server as the environment says).
///
/// # Errors
/// A setting is malformed, a dependency is unreachable or an address cannot be bound.
pub async fn start_delivering(
    platform: &Platform,
    registry: registry::Settings,
    delivery: deployment::Settings,
    addresses: Addresses,
    runners: SocketAddr,
    shutdown: &Shutdown,
) -> kernel::Result<Started> {
    let env = kernel::settings::Env::load().map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
    let smtp =
        notification::Smtp::from_env(&env).map_err(|e| kernel::Error::invalid(e.variable.clone(), e.to_string()))?;
    start_wired(platform, registry, smtp, delivery, addresses, runners, shutdown).await
}

async fn start_wired(
    platform: &Platform,
    registry: registry::Settings,
    smtp: notification::Smtp,
    delivery: deployment::Settings,
    addresses: Addresses,
    runners: SocketAddr,
    shutdown: &Shutdown,
) -> kernel::Result<Started> {
    let base = Base::connect(platform, NAME, &MIGRATIONS).await?;
    base.spawn_relay(shutdown);
    base.spawn_consumer(
        shutdown,
        kernel::inbox::Subscription {
            durable: "devops-notifications".into(),
            filter: notification::SUBJECTS.into(),
        },
        notification::RunEvents,
    );
    base.spawn_consumer(
        shutdown,
        kernel::inbox::Subscription {
            durable: "devops-image-triggers".into(),
            filter: image_trigger::SUBJECTS.into(),
        },
        image_trigger::TagPushes,
    );
    let email = smtp.server.is_some();
    let courier = notification::Courier::new(base.pool.clone(), smtp)?;
    shutdown.spawn("notification courier", courier.run(shutdown.token()));
    let wake = conductor::Wake::default();
    let mut conductor = conductor::Conductor::new(base.outbox.clone(), wake.clone());
    if delivery.deliver {
        conductor = conductor.with_delivery(deployment::Delivery::new(
            delivery,
            kernel::caller::CallerKey::new(platform.caller_key.clone()),
            base.outbox.clone(),
        ));
    }
    shutdown.spawn("pipeline conductor", conductor.run(shutdown.token()));
    let registry = registry::Registry::new(registry, kernel::caller::CallerKey::new(platform.caller_key.clone()));
    let runner_api = runner_grpc::RunnerApi::new(
        runner::Runners::new(base.outbox.clone(), wake.clone()),
        wake.clone(),
        registry.clone(),
    );
    let runners = runner_grpc::serve(runners, runner_api, shutdown).await?;
    let api = DevopsServiceServer::new(grpc::Devops::new(base.outbox.clone(), wake, email));
    let running = base.serve(addresses, api, shutdown).await?;
    Ok(Started {
        running,
        runners,
        registry,
    })
}
