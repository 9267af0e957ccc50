//! Logging in and out: the break-glass local administrator
//! (`POST /login/local`), the company directory (`POST /login/ldap`) and OIDC
//! providers (`GET /login/oidc/{provider}`, then the provider sends the
//! browser back to its `/callback`). Logins are rate limited per user and per
//! source address, with a temporary lockout, and every attempt is audited.
//! A login starts a browser session ([`crate::session`]); logging out of an
//! OIDC session also answers the provider's end-session URL.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use kernel::caller::Caller;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa_axum::routes;

use crate::AppState;
use crate::audit::Attempt;
use crate::auth::Authenticated;
use crate::json::Body;
use crate::oidc::{FLOW_COOKIE, FLOW_TTL};
use crate::problem::{ApiError, Problems};
use crate::rbac::Permission;
use crate::request::{Path, Query};
use crate::route::Routes;
use crate::session::{COOKIE, Origin};

/// Failed logins per user before it is locked for the rest of the window.
pub const MAX_USER_FAILURES: u64 = 5;
/// Failed logins per source address before it is refused for the window.
pub const MAX_ADDRESS_FAILURES: u64 = 20;
/// The window failures are counted in, and so the lockout's length.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The routes, each with who may call it.
pub fn routes() -> Routes {
    Routes::new()
        .route(Permission::Public, routes!(login_local))
        .route(Permission::Public, routes!(login_ldap))
        .route(Permission::Authenticated, routes!(logout))
        .route(Permission::Authenticated, routes!(logout_everywhere))
        .route(Permission::Authenticated, routes!(current))
        .route(Permission::Public, routes!(oidc_providers))
        .route(Permission::Public, routes!(oidc_begin))
        .route(Permission::Public, routes!(oidc_callback))
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
    /// Logged in as the local break-glass administrator (the console shows
    /// it, as the account is for when the directory or OIDC is down).
    #[serde(default)]
    pub break_glass: bool,
    /// Tenant id -> role.
    pub memberships: Vec<(String, String)>,
    /// With the session cookie: the token writes must echo in
    /// `X-CSRF-Token` (how a page learns it after an OIDC login).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

/// The answer to logging out of a session some OIDC provider started.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoggedOut {
    /// Send the browser here to log out at the provider too.
    pub end_session_url: String,
}

/// The query a provider sends the browser back with.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Callback {
    /// The authorization code.
    code: Option<String>,
    /// The state the login started with.
    state: Option<String>,
    /// The provider's refusal (e.g. `access_denied`).
    error: Option<String>,
    /// Its explanation.
    error_description: Option<String>,
}

/// Where to go once logged in.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Begin {
    /// A path on this platform (anything else is replaced by `/`).
    return_to: Option<String>,
}

fn locked(seconds: i64) -> ApiError {
    let mut problem = kernel::error::Problem::new(
        429,
        "locked-out",
        "Too many failed logins",
        format!("try again in {seconds} s"),
    );
    problem.retry_after = Some(seconds.max(1) as u64);
    ApiError(Box::new(problem))
}

/// `; Secure` when browsers reach the gateway over https: a browser drops a
/// Secure cookie set over plain http (except on localhost), and the login
/// could not finish.
fn secure(secure: bool) -> &'static str {
    if secure { "; Secure" } else { "" }
}

fn session_cookie(s: &AppState, id: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/; HttpOnly{}; SameSite=Strict; Max-Age={max_age}",
        secure(s.secure_cookies)
    ))
    .expect("cookie text is ASCII")
}

/// Binds a started OIDC login to this browser. Lax, not Strict: the
/// provider's redirect back is a cross-site navigation.
fn flow_cookie(s: &AppState, state: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{FLOW_COOKIE}={state}; Path=/api/v1/login/oidc; HttpOnly{}; SameSite=Lax; Max-Age={max_age}",
        secure(s.secure_cookies)
    ))
    .expect("cookie text is ASCII")
}

/// A started session.
struct Started {
    subject: String,
    id: String,
    csrf: String,
}

/// What checking a login's credentials came to: a caller (and where an OIDC
/// session came from), or why the user is refused (401, counted as a
/// failure).
type Verdict = Result<(Caller, Option<Origin>), String>;

/// One login attempt, audited from its start and counted against the
/// lockout limits before any credential is checked: an attempt is counted
/// when it begins ([`Self::begin`] per source address, [`Self::admit`] per
/// user), so concurrent attempts cannot all slip under the limit, and taken
/// back when it succeeds or could not be checked.
struct LoginAttempt<'a> {
    s: &'a AppState,
    audit: uuid::Uuid,
    address_key: String,
    user_key: Option<String>,
}

impl<'a> LoginAttempt<'a> {
    /// Records the attempt and counts it against its source address; 429
    /// when the address is over its limit.
    async fn begin(
        s: &'a AppState,
        address: String,
        headers: &HeaderMap,
        action: &str,
        actor: String,
    ) -> Result<Self, ApiError> {
        let header_text = |h: &str| {
            headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .chars()
                .take(512)
                .collect::<String>()
        };
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
        let this = Self {
            s,
            audit,
            address_key: format!("address:{address}"),
            user_key: None,
        };
        let (attempts, ttl) = match s.sessions.count_attempt(&this.address_key, FAILURE_WINDOW).await {
            Ok(counted) => counted,
            Err(e) => return Err(this.unsettled(e.into()).await),
        };
        if attempts > MAX_ADDRESS_FAILURES {
            s.audit.finish(audit, "429").await?;
            return Err(locked(ttl));
        }
        Ok(this)
    }

    /// Counts the attempt against the user `key` names (once it is known,
    /// before the password is checked); 429 when the user is locked out.
    async fn admit(&mut self, key: String) -> Result<(), ApiError> {
        let (attempts, ttl) = self.s.sessions.count_attempt(&key, FAILURE_WINDOW).await?;
        self.user_key = Some(key);
        if attempts > MAX_USER_FAILURES {
            return Err(locked(ttl));
        }
        Ok(())
    }

    /// The check could not be made (the directory or a service failed):
    /// the attempt is not held against anyone, the audit row gets the
    /// answer's status and the log says why.
    async fn unsettled(&self, e: ApiError) -> ApiError {
        if e.0.status != 429 {
            if e.0.status >= 500 {
                tracing::warn!(status = e.0.status, detail = %e.0.detail, "a login could not be checked");
            }
            let _ = self.s.sessions.uncount_attempt(&self.address_key).await;
            if let Some(key) = &self.user_key {
                let _ = self.s.sessions.uncount_attempt(key).await;
            }
        }
        match self.s.audit.finish(self.audit, &e.0.status.to_string()).await {
            Ok(()) => e,
            Err(audit) => audit.into(),
        }
    }

    /// Ends the attempt with its verdict: a session for a caller, 401
    /// (the attempt stays counted) for a refusal.
    async fn settle(self, verdict: Result<Verdict, ApiError>) -> Result<Started, ApiError> {
        let (caller, origin) = match verdict {
            Ok(Ok(found)) => found,
            Ok(Err(why)) => {
                self.s.audit.finish(self.audit, "401").await?;
                return Err(ApiError::unauthenticated(&why));
            }
            Err(e) => return Err(self.unsettled(e).await),
        };
        if let Some(key) = &self.user_key {
            self.s.sessions.clear_failures(key).await?;
        }
        self.s.sessions.uncount_attempt(&self.address_key).await?;
        let subject = caller.subject.clone();
        let (id, csrf) = self.s.sessions.start(caller, origin).await?;
        self.s.audit.finish(self.audit, "200").await?;
        Ok(Started { subject, id, csrf })
    }
}

/// A directory's or identity provider's failure as the caller sees it: 503
/// saying what did not answer (a generic message would hide that the
/// directory or the provider is the cause), and the same in the log.
fn unanswered(e: kernel::Error) -> ApiError {
    match e {
        kernel::Error::Unavailable(detail) => {
            tracing::warn!(%detail, "login refused: an identity source did not answer");
            ApiError(Box::new(kernel::error::Problem::new(
                503,
                "unavailable",
                "Service unavailable",
                detail,
            )))
        }
        other => other.into(),
    }
}

/// The answer to a typed login: the session cookie and its CSRF token.
fn logged_in(s: &AppState, started: Started) -> Response {
    let mut response = Json(LoggedIn {
        subject: started.subject,
        csrf_token: started.csrf,
    })
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(s, &started.id, s.sessions.timeouts().absolute.as_secs()),
    );
    response
}

const WRONG_PASSWORD: &str = "wrong username or password, or the account is disabled";

fn address(connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>) -> String {
    connect.map(|c| c.0.0.ip().to_string()).unwrap_or_default()
}

#[utoipa::path(
    post,
    path = "/api/v1/login/local",
    tag = "login",
    request_body = LocalLogin,
    responses((status = 200, body = LoggedIn), Problems)
)]
pub(crate) async fn login_local(
    State(s): State<AppState>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Body(b): Body<LocalLogin>,
) -> Result<Response, ApiError> {
    let mut attempt = LoginAttempt::begin(
        &s,
        address(connect),
        &headers,
        "POST /api/v1/login/local",
        format!("local:{}", b.username.chars().take(128).collect::<String>()),
    )
    .await?;
    let verdict: Result<Verdict, ApiError> = async {
        attempt.admit(format!("user:{}", b.username)).await?;
        let verified = s.local_admin.verify(&b.username, &b.password).await?;
        Ok(if verified {
            Ok((Caller::platform_admin(format!("local:{}", b.username)), None))
        } else {
            Err(WRONG_PASSWORD.to_string())
        })
    }
    .await;
    let started = attempt.settle(verdict).await?;
    Ok(logged_in(&s, started))
}

#[utoipa::path(
    post,
    path = "/api/v1/login/ldap",
    tag = "login",
    request_body = LocalLogin,
    responses((status = 200, body = LoggedIn), Problems)
)]
pub(crate) async fn login_ldap(
    State(s): State<AppState>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Body(b): Body<LocalLogin>,
) -> Result<Response, ApiError> {
    let Some(directory) = s.directory.clone() else {
        return Err(ApiError(Box::new(kernel::error::Problem::new(
            404,
            "not-found",
            "Not found",
            "LDAP login is not configured",
        ))));
    };
    let mut attempt = LoginAttempt::begin(
        &s,
        address(connect),
        &headers,
        "POST /api/v1/login/ldap",
        format!("ldap:{}", b.username.trim().chars().take(128).collect::<String>()),
    )
    .await?;
    let verdict: Result<Verdict, ApiError> = async {
        let Some(person) = directory.find(&b.username).await.map_err(unanswered)? else {
            return Ok(Err(WRONG_PASSWORD.to_string()));
        };
        // The entry's DN, not the login as typed, so `J.Doe` and ` j.doe`
        // share j.doe's lockout.
        let entry = kernel::dn::normalize(&person.dn).unwrap_or_else(|| person.dn.clone());
        attempt.admit(format!("ldap-user:{entry}")).await?;
        if !directory
            .check_password(&person, &b.password)
            .await
            .map_err(unanswered)?
        {
            return Ok(Err(WRONG_PASSWORD.to_string()));
        }
        let groups: Vec<String> = person.groups.iter().map(|dn| format!("ldap:{dn}")).collect();
        let caller = directory_caller(
            &s,
            format!("ldap:{}", person.login),
            &person.name,
            &person.mail,
            &groups,
            directory.is_admin(&person),
        )
        .await?;
        Ok(Ok((caller, None)))
    }
    .await;
    let started = attempt.settle(verdict).await?;
    Ok(logged_in(&s, started))
}

/// The caller a directory login (LDAP or OIDC) makes: the user recorded with
/// its current groups, each named with its source (`ldap:<DN>`,
/// `oidc:<provider>:<group>`) so memberships follow the directory and one
/// provider's group never stands for another's, and its roles resolved.
async fn directory_caller(
    s: &AppState,
    subject: String,
    name: &str,
    mail: &str,
    groups: &[String],
    platform_admin: bool,
) -> Result<Caller, ApiError> {
    let mut tenancy = s.upstream.tenancy(&s.key, &Caller::service("gateway"));
    tenancy
        .sync_user(paas_proto::v1::SyncUserRequest {
            subject: subject.clone(),
            display_name: name.to_string(),
            email: mail.to_string(),
            groups: groups.to_vec(),
        })
        .await?;
    // Its groups may have changed: what was cached for it is stale.
    s.memberships.forget(Some(&subject));
    let memberships = s.memberships.of(&subject).await?;
    Ok(Caller {
        subject,
        platform_admin,
        memberships,
        request_id: None,
        exp: 0,
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/logout",
    tag = "login",
    responses(
        (status = 204, description = "the session ended"),
        (status = 200, body = LoggedOut, description = "the session ended; the OIDC provider that started it offers \
            logout too"),
        Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let mut end_session_url = None;
    if let Some(id) = crate::auth::cookie(&headers, COOKIE) {
        if let Some(origin) = s.sessions.find(&id).await?.and_then(|session| session.origin) {
            end_session_url = s
                .oidc
                .end_session_url(&origin.provider, &origin.id_token)
                .await
                .ok()
                .flatten();
        }
        s.sessions.end(&id).await?;
    }
    let mut response = match end_session_url {
        Some(end_session_url) => Json(LoggedOut { end_session_url }).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    };
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&s, "", 0));
    Ok(response)
}

#[utoipa::path(
    post,
    path = "/api/v1/logout/everywhere",
    tag = "login",
    responses((status = 204, description = "every session of the caller ended"), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn logout_everywhere(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Response, ApiError> {
    s.sessions.end_all(&caller.subject).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&s, "", 0));
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/api/v1/session",
    tag = "login",
    responses((status = 200, body = Whoami), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn current(
    State(s): State<AppState>,
    headers: HeaderMap,
    Authenticated(caller): Authenticated,
) -> Result<Json<Whoami>, ApiError> {
    let bearer = headers.contains_key(header::AUTHORIZATION);
    let csrf_token = match crate::auth::cookie(&headers, COOKIE) {
        Some(id) if !bearer => s.sessions.find(&id).await?.map(|session| session.csrf),
        _ => None,
    };
    Ok(Json(Whoami {
        break_glass: caller.subject == format!("local:{}", crate::local_admin::USERNAME),
        subject: caller.subject,
        platform_admin: caller.platform_admin,
        memberships: caller
            .memberships
            .into_iter()
            .map(|m| (m.tenant.to_string(), m.role.as_str().to_string()))
            .collect(),
        csrf_token,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/login/oidc",
    tag = "login",
    responses(
        (status = 200, body = Vec<crate::oidc::ProviderSummary>, description = "the OIDC providers one can log in with"),
    )
)]
pub(crate) async fn oidc_providers(State(s): State<AppState>) -> Json<Vec<crate::oidc::ProviderSummary>> {
    Json(s.oidc.summaries())
}

#[utoipa::path(
    get,
    path = "/api/v1/login/oidc/{provider}",
    tag = "login",
    params(("provider" = String, Path, description = "the provider's name"), Begin),
    responses(
        (status = 303, description = "to the provider's login page"),
        Problems,
        (status = 503, body = kernel::error::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn oidc_begin(
    State(s): State<AppState>,
    Path(provider): Path<String>,
    Query(begin): Query<Begin>,
) -> Result<Response, ApiError> {
    let (url, state, flow) = s
        .oidc
        .begin(&provider, crate::oidc::safe_return_to(begin.return_to.as_deref()))
        .await
        .map_err(unanswered)?;
    s.sessions
        .stash(
            &format!("oidc-flow:{state}"),
            &serde_json::to_string(&flow).map_err(kernel::Error::internal)?,
            FLOW_TTL,
        )
        .await?;
    let mut response = Redirect::to(&url).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, flow_cookie(&s, &state, FLOW_TTL.as_secs()));
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/api/v1/login/oidc/{provider}/callback",
    tag = "login",
    params(("provider" = String, Path, description = "the provider's name"), Callback),
    responses(
        (status = 303, description = "logged in: the session cookie is set and the browser goes where the login started"),
        Problems,
    )
)]
pub(crate) async fn oidc_callback(
    State(s): State<AppState>,
    Path(provider): Path<String>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Query(callback): Query<Callback>,
) -> Result<Response, ApiError> {
    let action = "GET /api/v1/login/oidc/{provider}/callback";
    // Verified before the attempt is recorded, so the audit names the user.
    let verdict: Result<Result<(Caller, Origin, String), String>, ApiError> = async {
        let (identity, return_to) = match oidc_verify(&s, &provider, &headers, callback).await? {
            Ok(found) => found,
            Err(why) => return Ok(Err(why)),
        };
        let groups: Vec<String> = identity
            .groups
            .iter()
            .map(|group| format!("oidc:{provider}:{group}"))
            .collect();
        let caller = directory_caller(
            &s,
            identity.subject.clone(),
            &identity.name,
            &identity.email,
            &groups,
            identity.platform_admin,
        )
        .await?;
        Ok(Ok((
            caller,
            Origin {
                provider: provider.clone(),
                id_token: identity.id_token,
            },
            return_to,
        )))
    }
    .await;
    let (actor, return_to) = match &verdict {
        Ok(Ok((caller, _, return_to))) => (caller.subject.clone(), return_to.clone()),
        _ => (
            format!("oidc:{}", provider.chars().take(64).collect::<String>()),
            "/".to_string(),
        ),
    };
    let attempt = LoginAttempt::begin(&s, address(connect), &headers, action, actor).await?;
    let started = attempt
        .settle(verdict.map(|v| v.map(|(caller, origin, _)| (caller, Some(origin)))))
        .await?;
    let mut response = Redirect::to(&return_to).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        session_cookie(&s, &started.id, s.sessions.timeouts().absolute.as_secs()),
    );
    response
        .headers_mut()
        .append(header::SET_COOKIE, flow_cookie(&s, "", 0));
    Ok(response)
}

/// Checks an OIDC callback: the flow it belongs to (taken once, bound to
/// this browser's cookie), then the code and the ID token at the provider.
async fn oidc_verify(
    s: &AppState,
    provider: &str,
    headers: &HeaderMap,
    callback: Callback,
) -> Result<Result<(crate::oidc::Identity, String), String>, ApiError> {
    if let Some(error) = callback.error {
        return Ok(Err(format!(
            "the provider refused the login: {error} {}",
            callback.error_description.unwrap_or_default()
        )
        .trim_end()
        .to_string()));
    }
    let (Some(code), Some(state)) = (callback.code, callback.state) else {
        return Err(ApiError(Box::new(kernel::error::Problem::invalid(
            "code",
            "the callback needs code and state",
        ))));
    };
    let cookie = crate::auth::cookie(headers, FLOW_COOKIE).unwrap_or_default();
    if cookie.is_empty() || !bool::from(cookie.as_bytes().ct_eq(state.as_bytes())) {
        return Ok(Err(
            "the login was not started in this browser, or its state was changed".into(),
        ));
    }
    let Some(flow) = s.sessions.take(&format!("oidc-flow:{state}")).await? else {
        return Ok(Err("the login's state is unknown, used or expired; start again".into()));
    };
    let flow: crate::oidc::Flow = serde_json::from_str(&flow).map_err(kernel::Error::internal)?;
    let return_to = flow.return_to.clone();
    Ok(match s.oidc.finish(provider, flow, &code).await? {
        Ok(identity) => Ok((identity, return_to)),
        Err(refusal) => Err(refusal.0),
    })
}
