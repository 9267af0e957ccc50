//! The gateway: the platform's only HTTP face. It authenticates callers, signs
//! a short-lived caller token for each request and forwards it over gRPC to the
//! service that owns the resource, and turns every error into RFC 7807
//! problem+json. It holds no domain state of its own.
//!
//! Callers are the bootstrap administrator's token, API tokens, and browser
//! sessions started by a local, LDAP or OIDC login.

#![warn(missing_docs)]

pub mod access_keys;
pub mod api_tokens;
pub mod applications;
pub mod audit;
pub mod auth;
pub mod bindings;
pub mod clusters;
pub mod config_watch;
pub mod configs;
pub mod directory;
pub mod external_services;
pub mod failovers;
pub mod guard;
pub mod image_retention;
pub mod image_triggers;
pub mod images;
pub mod json;
pub mod local_admin;
pub mod login;
pub mod members;
pub mod membership;
pub mod oidc;
pub mod openapi;
pub mod page;
pub mod pipeline_notifications;
pub mod pipelines;
pub mod pods;
pub mod problem;
pub mod projects;
pub mod pull_secrets;
pub mod quotas;
pub mod rbac;
pub mod registry;
pub mod replication;
pub mod request;
pub mod requests;
pub mod route;
pub mod scans;
pub mod session;
pub mod settings;
pub mod signatures;
pub mod templates;
pub mod tenants;
pub mod token;
pub mod upstream;
pub mod web;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use kernel::caller::CallerKey;
use kernel::health::Readiness;
use kernel::shutdown::Shutdown;
pub use settings::Settings;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;

/// Largest request body accepted; the API takes small JSON documents.
pub const MAX_BODY: usize = 1024 * 1024;
/// Longest a request may take before the gateway answers 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Signs caller tokens for the services.
    pub key: CallerKey,
    /// Channels to the services.
    pub upstream: upstream::Upstream,
    /// How callers are authenticated.
    pub auth: auth::Authenticator,
    /// API tokens.
    pub tokens: token::Tokens,
    /// Application access keys (config clients).
    pub access_keys: access_keys::AccessKeys,
    /// The audit log.
    pub audit: audit::AuditLog,
    /// Browser sessions and login counters.
    pub sessions: session::Sessions,
    /// The break-glass account.
    pub local_admin: local_admin::LocalAdmin,
    /// The company directory, when LDAP login is configured.
    pub directory: Option<directory::Directory>,
    /// The OIDC providers (possibly none).
    pub oidc: oidc::Providers,
    /// Session users' current memberships.
    pub memberships: membership::Memberships,
    /// Whether cookies are `Secure` (browsers reach the gateway over https).
    pub secure_cookies: bool,
    /// The registry's face: the `/v2/` proxy's client and the notification token.
    pub registry: registry::RegistryFace,
}

/// The gateway's schema migrations (API tokens, audit).
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/gateway");

/// The gateway's schema.
pub const SCHEMA: &str = "gateway";

/// Every API route with its documentation and access rule; each module
/// declares its own.
pub fn api() -> route::Routes {
    route::Routes::new()
        .merge(tenants::routes())
        .merge(clusters::routes())
        .merge(bindings::routes())
        .merge(failovers::routes())
        .merge(projects::routes())
        .merge(pull_secrets::routes())
        .merge(quotas::routes())
        .merge(requests::routes())
        .merge(members::routes())
        .merge(api_tokens::routes())
        .merge(templates::routes())
        .merge(applications::routes())
        .merge(external_services::routes())
        .merge(pods::routes())
        .merge(configs::routes())
        .merge(access_keys::routes())
        .merge(config_watch::routes())
        .merge(images::routes())
        .merge(image_retention::routes())
        .merge(image_triggers::routes())
        .merge(scans::routes())
        .merge(signatures::routes())
        .merge(replication::routes())
        .merge(pipelines::routes())
        .merge(pipeline_notifications::routes())
        .merge(audit::routes::routes())
        .merge(login::routes())
}

/// The gateway's routes, for the server and for tests that call it directly.
pub fn router(state: AppState) -> Router {
    let (guarded, public) = api().into_routers();
    // The registry protocol streams layers for as long as they take: outside
    // the API's body limit and deadline.
    let registry = registry::router(state.clone());
    let api = guarded
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard::guard))
        .merge(public)
        .with_state(state);
    let x_request_id = HeaderName::from_static("x-request-id");
    api.route("/api/openapi.json", axum::routing::get(openapi::serve))
        .route("/api/docs", axum::routing::get(openapi::reference))
        .merge(kernel::health::router(Readiness::default()))
        .fallback(|| async { problem::ApiError::not_found_route() })
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(axum::middleware::from_fn(deadline))
        .layer(axum::middleware::from_fn(request::bounded_headers))
        // Outside the limits, so their 408 and 413 are problem+json too.
        .layer(axum::middleware::from_fn(problem::render))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(kernel::grpc::SpanFromHeaders))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        // Outside the API's headers: the web application sets its own cache and content policies.
        .layer(axum::middleware::from_fn_with_state(
            web::Portal::from_environment(),
            web::serve,
        ))
        .merge(registry)
}

/// Answers 408 to a request that takes longer than [`REQUEST_TIMEOUT`],
/// except config watches, which hold by design (a long poll bounds itself,
/// an event stream lasts as long as its client).
async fn deadline(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    if configs::holds_open(request.uri().path()) || pipelines::holds_open(request.uri().path()) {
        return next.run(request).await;
    }
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(http::StatusCode::REQUEST_TIMEOUT),
    }
}

/// Binds the gateway and serves it until shutdown; returns the bound address.
///
/// # Errors
/// The address cannot be bound.
pub async fn start(
    platform: &kernel::settings::Platform,
    settings: Settings,
    shutdown: &Shutdown,
) -> kernel::Result<SocketAddr> {
    let listener = TcpListener::bind(settings.addr)
        .await
        .map_err(|e| kernel::Error::Unavailable(format!("cannot listen on {}: {e}", settings.addr)))?;
    let addr = listener.local_addr().map_err(kernel::Error::internal)?;
    let pool = kernel::db::connect(platform, SCHEMA).await?;
    kernel::db::migrate(&pool, &MIGRATIONS).await?;
    let tokens = token::Tokens::new(pool.clone());
    let access_keys = access_keys::AccessKeys::new(pool.clone());
    shutdown.spawn("token-revocations", tokens.clone().follow_revocations(shutdown.token()));
    let local_admin = local_admin::LocalAdmin::new(pool.clone());
    local_admin
        .ensure(settings.local_admin_password.as_ref(), settings.local_admin_disabled)
        .await?;
    let sessions = session::Sessions::connect(
        platform.redis_url.as_str(),
        platform.event_prefix.as_str(),
        settings.sessions,
    )
    .await?;
    let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let secure_cookies = settings::over_https(&public_url);
    if !secure_cookies && !settings::on_loopback(&public_url) {
        tracing::warn!(
            %public_url,
            "browsers reach the gateway over plain http on a non-loopback address: session cookies are not Secure \
             and travel unencrypted; set PAAS_PUBLIC_URL to its https:// address"
        );
    }
    let key = CallerKey::new(platform.caller_key.clone());
    let upstream = upstream::Upstream::connect(&settings.upstream)?;
    let memberships = membership::Memberships::new(upstream.clone(), key.clone());
    shutdown.spawn(
        "membership-changes",
        memberships.clone().follow_changes(platform.clone(), shutdown.token()),
    );
    let state = AppState {
        key,
        upstream,
        memberships,
        auth: auth::Authenticator::new(settings.admin_token.clone(), tokens.clone(), access_keys.clone()),
        tokens,
        access_keys,
        audit: audit::AuditLog::new(pool),
        sessions,
        local_admin,
        directory: settings.directory.clone().map(directory::Directory::new).transpose()?,
        oidc: oidc::Providers::new(&settings.oidc, &public_url)?,
        secure_cookies,
        registry: registry::RegistryFace::new(platform.caller_key.expose()),
    };
    shutdown.spawn(
        "gateway",
        kernel::health::serve_http(listener, router(state), shutdown.token()),
    );
    tracing::info!(%addr, "gateway listening");
    Ok(addr)
}

/// The API's routes as (method, path template), from the OpenAPI document.
pub fn route_table() -> Vec<(String, String)> {
    openapi::document()
        .paths
        .paths
        .iter()
        .flat_map(|(path, item)| route::methods(item).map(|method| (method.to_string(), path.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use kernel::testkit::TestPlatform;
    use tower::ServiceExt;

    use super::*;

    /// A state with real stores, which the probe below never reaches.
    async fn state(t: &TestPlatform) -> AppState {
        let pool = kernel::db::connect(&t.settings, SCHEMA).await.unwrap();
        let tokens = token::Tokens::new(pool.clone());
        let upstream = settings::Upstreams {
            tenancy: "http://127.0.0.1:1".into(),
            federation: "http://127.0.0.1:1".into(),
            apps: "http://127.0.0.1:1".into(),
            configs: "http://127.0.0.1:1".into(),
            images: "http://127.0.0.1:1".into(),
            devops: "http://127.0.0.1:1".into(),
        };
        let key = CallerKey::new(t.settings.caller_key.clone());
        let upstream = upstream::Upstream::connect(&upstream).unwrap();
        AppState {
            memberships: membership::Memberships::new(upstream.clone(), key.clone()),
            key,
            upstream,
            auth: auth::Authenticator::new(None, tokens.clone(), access_keys::AccessKeys::new(pool.clone())),
            access_keys: access_keys::AccessKeys::new(pool.clone()),
            tokens,
            audit: audit::AuditLog::new(pool.clone()),
            sessions: session::Sessions::connect(
                t.settings.redis_url.as_str(),
                t.settings.event_prefix.as_str(),
                session::Timeouts::default(),
            )
            .await
            .unwrap(),
            local_admin: local_admin::LocalAdmin::new(pool),
            directory: None,
            oidc: oidc::Providers::new(&[], "http://127.0.0.1").unwrap(),
            secure_cookies: false,
            registry: registry::RegistryFace::new(t.settings.caller_key.expose()),
        }
    }

    /// The router and the document are both built from the `routes!`
    /// declarations ([`route::Routes`] takes routes no other way), so a path
    /// cannot be served undocumented; this checks the methods at each path.
    #[tokio::test]
    async fn the_router_serves_exactly_the_routes_the_document_lists() {
        let t = TestPlatform::new().await;
        let (guarded, public) = api().into_routers();
        let app: Router = guarded.merge(public).with_state(state(&t).await);
        let documented = route_table();
        let paths: BTreeSet<&str> = documented.iter().map(|(_, path)| path.as_str()).collect();
        for path in paths {
            // No route answers OPTIONS: the router's 405 lists what it serves
            // at the path without running a handler.
            let request = Request::builder()
                .method("OPTIONS")
                .uri(path.replace('{', "x").replace('}', ""))
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{path} is not served"
            );
            let served: BTreeSet<&str> = response.headers()[http::header::ALLOW]
                .to_str()
                .unwrap()
                .split(',')
                .map(str::trim)
                .filter(|method| *method != "HEAD")
                .collect();
            let listed: BTreeSet<&str> = documented
                .iter()
                .filter(|(_, p)| p == path)
                .map(|(method, _)| method.as_str())
                .collect();
            assert_eq!(served, listed, "{path}: the methods served and documented differ");
        }
    }
}
