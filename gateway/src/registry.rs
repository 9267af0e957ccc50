//! The OCI registry's face on the gateway: the platform is the registry's
//! token issuer (`GET /service/token`, the Docker registry token
//! specification, with Basic credentials that are an API token or a robot
//! account's), it serves `/v2/` as a streaming reverse proxy to the master
//! registry so policy the registry cannot enforce is enforced here (the
//! images service decides: released tags are immutable, a tenant's storage
//! is bounded), and it receives the registry's notifications
//! (`POST /service/notifications`), which the images service records once
//! each and this module writes to the audit log.
//!
//! Bodies stream through hyper in both directions: a layer is never held in
//! memory whole. These routes are the registry protocol, not the REST API,
//! so they sit outside the API's body limit, deadline and OpenAPI document.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine;
use hmac::{Hmac, Mac};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kernel::caller::Caller;
use paas_proto::v1 as pb;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::audit::Attempt;
use crate::problem::ApiError;

/// The token endpoint: registries' `auth.token.realm`.
pub const TOKEN_PATH: &str = "/service/token";
/// The certificate registries trust (`auth.token.rootcertbundle`), as PEM.
pub const CERTIFICATE_PATH: &str = "/service/token/certificate";
/// Where registries post notifications (`notifications.endpoints[].url`).
pub const NOTIFICATIONS_PATH: &str = "/service/notifications";
/// Prefix of robot accounts' names (the images service owns them).
const ROBOT_PREFIX: &str = "robot$";
/// How long the master registry's address, as the images service last
/// answered it, serves reads without asking again. Reads are not the
/// platform's to refuse (see [`proxy`]); this bounds only how long a newly
/// registered master waits to receive them.
const UPSTREAM_FRESH_FOR: Duration = Duration::from_secs(5);
/// Idle connections to the master registry kept for reuse: pulls run many
/// layers at once, and a new connection per layer costs a handshake and a
/// cold TCP window.
const UPSTREAM_IDLE_CONNECTIONS: usize = 64;
/// How long an idle connection to the master registry is kept.
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Headers that belong to one connection, never forwarded (RFC 9110 section 7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// The bearer token registries send with notifications: derived from the
/// platform's caller key, so every gateway replica and the launcher that
/// writes a registry's configuration agree on it without another secret.
pub fn notification_token(caller_key: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(caller_key.as_bytes()).expect("any key length");
    mac.update(b"paas registry notifications");
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// What the registry routes need beyond the API's state.
#[derive(Clone)]
pub struct RegistryFace {
    client: Client<HttpConnector, Body>,
    notifications: Arc<String>,
    upstream: Arc<RwLock<Option<(String, Instant)>>>,
}

impl RegistryFace {
    /// The face of a platform whose caller key is `caller_key`.
    pub fn new(caller_key: &str) -> Self {
        let mut connector = HttpConnector::new();
        // Small writes (a request's headers, a manifest) leave at once
        // instead of waiting on the previous segment's acknowledgement.
        connector.set_nodelay(true);
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(UPSTREAM_IDLE_CONNECTIONS)
                .pool_idle_timeout(UPSTREAM_IDLE_TIMEOUT)
                .build(connector),
            notifications: Arc::new(notification_token(caller_key)),
            upstream: Arc::new(RwLock::new(None)),
        }
    }

    /// The master registry's address, if the images service named it less
    /// than [`UPSTREAM_FRESH_FOR`] ago.
    fn fresh_upstream(&self) -> Option<String> {
        let known = self.upstream.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        known
            .as_ref()
            .filter(|(_, learnt)| learnt.elapsed() < UPSTREAM_FRESH_FOR)
            .map(|(url, _)| url.clone())
    }

    fn learn_upstream(&self, url: &str) {
        let mut known = self.upstream.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *known = Some((url.to_string(), Instant::now()));
    }
}

/// The registry routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(TOKEN_PATH, get(token))
        .route(CERTIFICATE_PATH, get(certificate))
        .route(NOTIFICATIONS_PATH, post(notifications))
        .route("/v2", any(proxy))
        .route("/v2/", any(proxy))
        .route("/v2/{*rest}", any(proxy))
        .with_state(state)
}

fn gateway_caller() -> Caller {
    Caller::service("gateway")
}

/// An error in the registry API's shape, which registry clients print.
fn registry_error(status: u16, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"code": code, "message": message, "detail": null}]});
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn challenge(detail: &str) -> Response {
    let mut response = ApiError::unauthenticated(detail).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"paas registry\""),
    );
    response
}

/// `GET /service/token?service=&scope=...`: a short-lived registry token
/// for what the Basic credentials' roles allow of each scope.
async fn token(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let mut service = String::new();
    let mut scopes = Vec::new();
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        match &*k {
            "service" => service = v.into_owned(),
            "scope" => scopes.push(v.into_owned()),
            _ => {}
        }
    }
    let Some((user, password)) = basic_credentials(&headers) else {
        return challenge("log in with an API token (any user name) or a robot account");
    };
    let answer = if user.starts_with(ROBOT_PREFIX) {
        let request = pb::IssueRegistryTokenRequest {
            service,
            scopes,
            robot_name: user,
            robot_secret: password,
        };
        state
            .upstream
            .images(&state.key, &gateway_caller())
            .issue_registry_token(request)
            .await
    } else {
        let mut bearer = HeaderMap::new();
        let Ok(value) = HeaderValue::from_str(&format!("Bearer {password}")) else {
            return challenge("the password is not a valid API token");
        };
        bearer.insert(header::AUTHORIZATION, value);
        let Ok(caller) = crate::auth::authenticate(&state, &bearer, false).await else {
            return challenge("the password is not a valid, current API token");
        };
        let request = pb::IssueRegistryTokenRequest {
            service,
            scopes,
            robot_name: String::new(),
            robot_secret: String::new(),
        };
        state
            .upstream
            .images(&state.key, &caller)
            .issue_registry_token(request)
            .await
    };
    match answer {
        Ok(t) => {
            let t = t.into_inner();
            let issued_at = kernel::grpc::time(t.issued_at).unwrap_or_else(chrono::Utc::now);
            axum::Json(serde_json::json!({
                "token": t.token,
                "access_token": t.token,
                "expires_in": t.expires_in,
                "issued_at": issued_at.to_rfc3339(),
            }))
            .into_response()
        }
        Err(status) if status.code() == tonic::Code::Unauthenticated => challenge(status.message()),
        Err(status) => ApiError::from(status).into_response(),
    }
}

/// `GET /service/token/certificate`: the PEM registries verify tokens with.
async fn certificate(State(state): State<AppState>) -> Response {
    match state
        .upstream
        .images(&state.key, &gateway_caller())
        .get_token_certificate(pb::GetTokenCertificateRequest {})
        .await
    {
        Ok(c) => (
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            c.into_inner().certificate_pem,
        )
            .into_response(),
        Err(status) => ApiError::from(status).into_response(),
    }
}

/// `POST /service/notifications`: the registry's events, recorded once each
/// by the images service; what is new goes to the audit log.
async fn notifications(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !bool::from(sent.as_bytes().ct_eq(state.registry.notifications.as_bytes())) {
        return ApiError::unauthenticated("not the registry's notification token").into_response();
    }
    let recorded = match state
        .upstream
        .images(&state.key, &gateway_caller())
        .record_registry_events(pb::RecordRegistryEventsRequest {
            envelope: body.to_vec(),
        })
        .await
    {
        Ok(r) => r.into_inner().recorded,
        // Anything but 2xx makes the registry deliver again later.
        Err(status) => return ApiError::from(status).into_response(),
    };
    for r in recorded {
        let attempt = Attempt {
            actor: Some(r.actor).filter(|a| !a.is_empty()),
            tenant: uuid::Uuid::parse_str(&r.tenant_id).ok(),
            action: format!("registry {}", r.action),
            target: format!("repository={},tag={},digest={}", r.repository, r.tag, r.digest),
            request_id: r.id,
            source_ip: String::new(),
            user_agent: "registry notification".to_string(),
        };
        match state.audit.begin(&attempt).await {
            Ok(id) => {
                if let Err(e) = state.audit.finish(id, "200").await {
                    tracing::warn!(error = %e, "registry event's audit result not recorded");
                }
            }
            Err(e) => tracing::error!(error = %e, "registry event not written to the audit log"),
        }
    }
    StatusCode::OK.into_response()
}

/// `/v2/...`: asks the images service whether policy allows the request,
/// then streams it to the master registry and its answer back.
///
/// Reads (`GET`, `HEAD`) skip the question while the master's address is
/// fresh: the platform's policy is about writes (released tags immutable,
/// storage quota, no writes during garbage collection) and never refuses a
/// read; who may pull what is the registry's own token check (the platform
/// issues those tokens), and pulls reach the audit log from the registry's
/// notifications. A layer pulled costs the registry's time, not also a
/// round trip to the images service and its database.
async fn proxy(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    let read = parts.method == Method::GET || parts.method == Method::HEAD;
    let upstream_url = match state.registry.fresh_upstream().filter(|_| read) {
        Some(url) => url,
        None => match decide(&state, &parts).await {
            Ok(url) => url,
            Err(refused) => return refused,
        },
    };
    let Ok(uri) = format!("{upstream_url}{path_and_query}").parse::<Uri>() else {
        return registry_error(502, "UNAVAILABLE", "the master registry's URL is not valid");
    };
    let mut upstream = http::Request::builder().method(parts.method.clone()).uri(uri);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            upstream = upstream.header(name, value);
        }
    }
    let Ok(upstream) = upstream.body(body) else {
        return registry_error(400, "UNSUPPORTED", "the request cannot be forwarded");
    };
    match state.registry.client.request(upstream).await {
        Ok(response) => {
            let (mut parts, incoming) = response.into_parts();
            for name in HOP_BY_HOP {
                parts.headers.remove(*name);
            }
            Response::from_parts(parts, Body::new(incoming))
        }
        Err(e) => {
            tracing::warn!(error = %e, "the master registry did not answer");
            registry_error(502, "UNAVAILABLE", "the registry did not answer")
        }
    }
}

/// The images service's decision on a request: the master registry's
/// address to forward it to, or the refusal to answer (audited).
async fn decide(state: &AppState, parts: &http::request::Parts) -> Result<String, Response> {
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let content_length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(-1);
    let decision = match state
        .upstream
        .images(&state.key, &gateway_caller())
        .authorize_registry_request(pb::AuthorizeRegistryRequestRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            authorization,
            content_length,
        })
        .await
    {
        Ok(d) => d.into_inner(),
        Err(status) => return Err(registry_error(503, "UNAVAILABLE", status.message())),
    };
    if !decision.allowed {
        audit_refusal(state, parts, &decision).await;
        let status = u16::try_from(decision.status).unwrap_or(403);
        return Err(registry_error(status, &decision.code, &decision.message));
    }
    state.registry.learn_upstream(&decision.upstream_url);
    Ok(decision.upstream_url)
}

async fn audit_refusal(state: &AppState, parts: &http::request::Parts, decision: &pb::RegistryDecision) {
    let attempt = Attempt {
        actor: Some(decision.subject.clone()).filter(|s| !s.is_empty()),
        tenant: None,
        action: format!("{} /v2/", parts.method),
        target: parts.uri.path().chars().take(512).collect(),
        request_id: String::new(),
        source_ip: String::new(),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(512)
            .collect(),
    };
    match state.audit.begin(&attempt).await {
        Ok(id) => {
            if let Err(e) = state.audit.finish(id, &decision.status.to_string()).await {
                tracing::warn!(error = %e, "refused registry request's audit result not recorded");
            }
        }
        Err(e) => tracing::error!(error = %e, "refused registry request not written to the audit log"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read_and_others_are_not() {
        let mut h = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("robot$a+b+ci:s3cret:x");
        h.insert(header::AUTHORIZATION, format!("Basic {encoded}").parse().unwrap());
        assert_eq!(
            basic_credentials(&h),
            Some(("robot$a+b+ci".to_string(), "s3cret:x".to_string()))
        );
        h.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        assert_eq!(basic_credentials(&h), None);
    }

    #[test]
    fn the_notification_token_depends_on_the_caller_key() {
        assert_eq!(notification_token("k1"), notification_token("k1"));
        assert_ne!(notification_token("k1"), notification_token("k2"));
        assert_eq!(notification_token("k1").len(), 64);
    }
}
