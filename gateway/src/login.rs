//! Logging in and out. `POST /api/v1/login/local` is the break-glass login
//! (LDAP and OIDC come with their issue): it is rate limited per user and per
//! source address, with a temporary lockout, and every attempt is audited.
//! A login starts a browser session ([`crate::session`]).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kernel::caller::Caller;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::audit::Attempt;
use crate::auth::Authenticated;
use crate::json::Body;
use crate::problem::ApiError;
use crate::session::{self, COOKIE};

/// Failed logins per user before it is locked for the rest of the window.
pub const MAX_USER_FAILURES: u64 = 5;
/// Failed logins per source address before it is refused for the window.
pub const MAX_ADDRESS_FAILURES: u64 = 20;
/// The window failures are counted in, and so the lockout's length.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The routes that need no caller (the guard does not cover them).
pub fn public_routes() -> Router<AppState> {
    Router::new().route("/login/local", post(login_local)).route("/login/ldap", post(login_ldap))
}

/// The routes that need a caller.
pub fn routes() -> Router<AppState> {
    Router::new().route("/logout", post(logout)).route("/logout/everywhere", post(logout_everywhere)).route("/session", get(current))
}

/// Body of `POST /login/local`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalLogin {
    username: String,
    password: String,
}

/// A started session.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoggedIn {
    /// Who is logged in.
    pub subject: String,
    /// Echo it in `X-CSRF-Token` on every write made with the session cookie.
    pub csrf_token: String,
}

/// The caller of the current session or token.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Whoami {
    /// Stable subject id.
    pub subject: String,
    /// Platform administrator.
    pub platform_admin: bool,
    /// Tenant id -> role.
    pub memberships: Vec<(String, String)>,
}

fn locked(seconds: i64) -> Response {
    let problem = kernel::error::Problem::new(429, "locked-out", "Too many failed logins", format!("try again in {seconds} s"));
    let mut response = ApiError(Box::new(problem)).into_response();
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

fn session_cookie(id: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("{COOKIE}={id}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={max_age}")).expect("cookie text is ASCII")
}

/// Runs one login attempt through the lockout checks and the audit log, and
/// starts a session when `verify` vouches for a caller.
async fn attempt_login<F, Fut>(s: &AppState, address: String, headers: &HeaderMap, action: &str, actor: String, username: &str, verify: F) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Option<Caller>, ApiError>>,
{
    let header_text = |h: &str| headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or_default().chars().take(512).collect::<String>();
    let attempt = Attempt {
        actor: Some(actor),
        tenant: None,
        action: action.into(),
        target: String::new(),
        request_id: header_text("x-request-id"),
        source_ip: address.clone(),
        user_agent: header_text(header::USER_AGENT.as_str()),
    };
    let audit = s.audit.begin(&attempt).await?;
    let (user_key, address_key) = (format!("user:{username}"), format!("address:{address}"));
    let (user_failures, user_ttl) = s.sessions.failures(&user_key).await?;
    let (address_failures, address_ttl) = s.sessions.failures(&address_key).await?;
    if user_failures >= MAX_USER_FAILURES || address_failures >= MAX_ADDRESS_FAILURES {
        s.audit.finish(audit, "429").await?;
        return Ok(locked(user_ttl.max(address_ttl)));
    }
    let Some(caller) = verify().await? else {
        s.sessions.count_failure(&user_key, FAILURE_WINDOW).await?;
        s.sessions.count_failure(&address_key, FAILURE_WINDOW).await?;
        s.audit.finish(audit, "401").await?;
        return Err(ApiError::unauthenticated("wrong username or password, or the account is disabled"));
    };
    s.sessions.clear_failures(&user_key).await?;
    let subject = caller.subject.clone();
    let (id, csrf) = s.sessions.start(caller).await?;
    s.audit.finish(audit, "200").await?;
    let mut response = Json(LoggedIn { subject, csrf_token: csrf }).into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie(&id, session::ABSOLUTE.as_secs()));
    Ok(response)
}

fn address(connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>) -> String {
    connect.map(|c| c.0.0.ip().to_string()).unwrap_or_default()
}

#[utoipa::path(post, path = "/api/v1/login/local", tag = "login", request_body = LocalLogin,
    responses((status = 200, body = LoggedIn), (status = "4XX", body = kernel::error::Problem, content_type = "application/problem+json")))]
pub(crate) async fn login_local(
    State(s): State<AppState>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Body(b): Body<LocalLogin>,
) -> Result<Response, ApiError> {
    let actor = format!("local:{}", b.username.chars().take(128).collect::<String>());
    attempt_login(&s, address(connect), &headers, "POST /api/v1/login/local", actor, &b.username, || async {
        Ok(s.local_admin.verify(&b.username, &b.password).await?.then(|| Caller::platform_admin(format!("local:{}", b.username))))
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/login/ldap", tag = "login", request_body = LocalLogin,
    responses((status = 200, body = LoggedIn), (status = "4XX", body = kernel::error::Problem, content_type = "application/problem+json")))]
pub(crate) async fn login_ldap(
    State(s): State<AppState>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Body(b): Body<LocalLogin>,
) -> Result<Response, ApiError> {
    let Some(directory) = s.directory.clone() else {
        return Err(ApiError(Box::new(kernel::error::Problem::new(404, "not-found", "Not found", "LDAP login is not configured"))));
    };
    let actor = format!("ldap:{}", b.username.chars().take(128).collect::<String>());
    attempt_login(&s, address(connect), &headers, "POST /api/v1/login/ldap", actor, &b.username, || async {
        let Some(person) = directory.authenticate(&b.username, &b.password).await? else { return Ok(None) };
        Ok(Some(crate::login::directory_caller(&s, &person, directory.is_admin(&person)).await?))
    })
    .await
}

/// The caller a directory login makes: the user recorded with its current
/// groups (so memberships follow the directory), and its roles resolved.
async fn directory_caller(s: &AppState, person: &crate::directory::Person, platform_admin: bool) -> Result<Caller, ApiError> {
    let subject = format!("ldap:{}", person.login);
    let mut tenancy = s.upstream.tenancy(&s.key, &Caller::service("gateway"));
    tenancy
        .sync_user(paas_proto::v1::SyncUserRequest { subject: subject.clone(), display_name: person.name.clone(), email: person.mail.clone(), groups: person.groups.clone() })
        .await?;
    let resolved = tenancy.resolve_memberships(paas_proto::v1::ResolveMembershipsRequest { subject: subject.clone() }).await?.into_inner();
    let memberships = resolved
        .memberships
        .into_iter()
        .filter_map(|m| {
            let tenant = uuid::Uuid::parse_str(&m.tenant_id).ok()?;
            let role = kernel::caller::Role::parse("role", &m.role).ok()?;
            Some(kernel::caller::Membership { tenant, role })
        })
        .collect();
    Ok(Caller { subject, platform_admin, memberships, request_id: None, exp: 0 })
}

#[utoipa::path(post, path = "/api/v1/logout", tag = "login",
    responses((status = 204, description = "the session ended"), (status = "4XX", body = kernel::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(id) = crate::auth::cookie(&headers, COOKIE) {
        s.sessions.end(&id).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie("", 0));
    Ok(response)
}

#[utoipa::path(post, path = "/api/v1/logout/everywhere", tag = "login",
    responses((status = 204, description = "every session of the caller ended"), (status = "4XX", body = kernel::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn logout_everywhere(State(s): State<AppState>, Authenticated(caller): Authenticated) -> Result<Response, ApiError> {
    s.sessions.end_all(&caller.subject).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie("", 0));
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/session", tag = "login",
    responses((status = 200, body = Whoami), (status = "4XX", body = kernel::error::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn current(Authenticated(caller): Authenticated) -> Json<Whoami> {
    Json(Whoami {
        subject: caller.subject,
        platform_admin: caller.platform_admin,
        memberships: caller.memberships.into_iter().map(|m| (m.tenant.to_string(), format!("{:?}", m.role).to_lowercase())).collect(),
    })
}
