//! Liveness, readiness and metrics over HTTP (`/healthz`, `/readyz`,
//! `/metrics`) for every service and the gateway, plus gRPC health.
//!
//! `/healthz` answers while the process runs; `/readyz` checks the service's
//! dependencies (database, NATS) and answers 503 naming the one that is down.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What a service needs to be ready.
#[derive(Clone, Default)]
pub struct Readiness {
    /// The service's database pool.
    pub database: Option<PgPool>,
    /// The NATS connection.
    pub nats: Option<async_nats::Client>,
}

impl Readiness {
    /// Names the first dependency that is not usable, or `None` when ready.
    pub async fn problem(&self) -> Option<&'static str> {
        if let Some(pool) = &self.database
            && sqlx::query("SELECT 1").execute(pool).await.is_err()
        {
            return Some("database unavailable");
        }
        if let Some(nats) = &self.nats
            && nats.connection_state() != async_nats::connection::State::Connected
        {
            return Some("NATS unavailable");
        }
        None
    }
}

/// The `/healthz`, `/readyz` and `/metrics` routes.
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(readiness)
}

async fn ready(State(r): State<Readiness>) -> impl IntoResponse {
    match r.problem().await {
        None => (StatusCode::OK, "ready"),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

async fn metrics() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::render_metrics(),
    )
}

/// Serves `router` on `listener` until `stop`.
///
/// # Errors
/// The listener fails.
pub async fn serve_http(listener: TcpListener, router: Router, stop: CancellationToken) -> std::io::Result<()> {
    // Without Nagle's delay: small answers (a long poll's, a stream's next
    // event) go out at once rather than after the peer's delayed ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream: &mut tokio::net::TcpStream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}
