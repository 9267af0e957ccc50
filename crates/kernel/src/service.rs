//! What it takes to run one platform service: its schema migrated, the event
//! bus, the outbox relay, its consumers, and its gRPC API (always behind the
//! caller check) beside the HTTP health and metrics endpoints.

use std::convert::Infallible;
use std::net::SocketAddr;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;

use crate::caller::CallerKey;
use crate::event::Bus;
use crate::grpc::CallerCheck;
use crate::health::Readiness;
use crate::inbox::{Consumer, Handler, Subscription};
use crate::outbox::{Outbox, Relay};
use crate::settings::{Env, Platform, SettingError};
use crate::shutdown::Shutdown;
use crate::{Error, Result, db};

/// Where a service listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// The gRPC API.
    pub grpc: SocketAddr,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub http: SocketAddr,
}

impl Addresses {
    /// Both on loopback with ports the OS picks (tests, `paas up`).
    pub fn ephemeral() -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self { grpc: any, http: any }
    }

    /// Reads `PAAS_<SERVICE>_GRPC_ADDR` and `PAAS_<SERVICE>_HTTP_ADDR`, with
    /// the service's fixed default ports (so `paas serve` processes find each
    /// other without configuration on one host).
    ///
    /// # Errors
    /// A malformed address.
    pub fn from_env(env: &Env, service: &str, grpc_port: u16, http_port: u16) -> Result<Self, SettingError> {
        let upper = service.to_ascii_uppercase();
        Ok(Self {
            grpc: env.or(
                &format!("PAAS_{upper}_GRPC_ADDR"),
                SocketAddr::from(([127, 0, 0, 1], grpc_port)),
            )?,
            http: env.or(
                &format!("PAAS_{upper}_HTTP_ADDR"),
                SocketAddr::from(([127, 0, 0, 1], http_port)),
            )?,
        })
    }
}

/// A service's connections: its schema's pool, the bus and the caller key.
#[derive(Clone)]
pub struct Base {
    /// The service's name, also its schema.
    pub name: &'static str,
    /// Pool on the service's schema.
    pub pool: PgPool,
    /// The service's outbox: commit event-recording transactions through it.
    pub outbox: Outbox,
    /// The event bus.
    pub bus: Bus,
    /// Verifies callers and signs calls to other services.
    pub key: CallerKey,
}

impl Base {
    /// Connects, creates and migrates the schema `name`, and joins the bus.
    ///
    /// # Errors
    /// PostgreSQL or NATS is unreachable, or a migration fails.
    pub async fn connect(platform: &Platform, name: &'static str, migrations: &Migrator) -> Result<Self> {
        let pool = db::connect(platform, name).await?;
        db::migrate(&pool, migrations).await?;
        let bus = Bus::connect(platform).await?;
        Ok(Self {
            name,
            outbox: Outbox::new(pool.clone()),
            pool,
            bus,
            key: CallerKey::new(platform.caller_key.clone()),
        })
    }

    /// Starts the outbox relay for this service's schema.
    pub fn spawn_relay(&self, shutdown: &Shutdown) {
        let relay = Relay::new(&self.outbox, self.bus.clone(), self.name);
        shutdown.spawn("outbox relay", relay.run(shutdown.token()));
    }

    /// Starts a durable consumer whose inbox lives in this service's schema.
    pub fn spawn_consumer<H: Handler>(&self, shutdown: &Shutdown, subscription: Subscription, handler: H) {
        let consumer = Consumer::new(self.pool.clone(), self.bus.clone(), subscription, handler);
        shutdown.spawn("event consumer", consumer.run(shutdown.token()));
    }

    /// Serves `api` (behind [`CallerCheck`]) with gRPC health, and the HTTP
    /// health and metrics endpoints, until shutdown.
    ///
    /// # Errors
    /// An address cannot be bound.
    pub async fn serve<S>(&self, addresses: Addresses, api: S, shutdown: &Shutdown) -> Result<Running>
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|e| Error::Unavailable(format!("cannot listen on {addr}: {e}")))
        };
        let grpc_listener = bind(addresses.grpc).await?;
        let http_listener = bind(addresses.http).await?;
        let running = Running {
            name: self.name,
            grpc: grpc_listener.local_addr().map_err(Error::internal)?,
            http: http_listener.local_addr().map_err(Error::internal)?,
        };

        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<S>().await;
        let router = tonic::transport::Server::builder()
            .layer(crate::grpc::trace_layer())
            .add_service(health)
            .add_service(InterceptedService::new(api, CallerCheck::new(self.key.clone())));
        let stop = shutdown.token();
        shutdown.spawn("grpc server", async move {
            router
                .serve_with_incoming_shutdown(
                    // Without Nagle's delay: a watch's notice (a few small
                    // frames) would otherwise wait for the peer's delayed ACK
                    // of the one before, tens of milliseconds.
                    tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
                    stop.cancelled_owned(),
                )
                .await
        });
        let readiness = Readiness {
            database: Some(self.pool.clone()),
            nats: Some(self.bus.client.clone()),
        };
        shutdown.spawn(
            "http server",
            crate::health::serve_http(http_listener, crate::health::router(readiness), shutdown.token()),
        );
        tracing::info!(service = self.name, grpc = %running.grpc, http = %running.http, "service listening");
        Ok(running)
    }
}

/// A started service and where it listens.
#[derive(Debug, Clone, Copy)]
pub struct Running {
    /// The service's name.
    pub name: &'static str,
    /// The bound gRPC address.
    pub grpc: SocketAddr,
    /// The bound HTTP address.
    pub http: SocketAddr,
}
