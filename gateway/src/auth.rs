//! Who is calling. An [`Authenticated`] extractor turns the request's
//! credentials into a [`Caller`] or answers 401. Credentials today: the
//! bootstrap administrator's bearer token (compared in constant time), API
//! tokens ([`crate::token`]), application access keys ([`crate::access_keys`],
//! for config clients) and browser sessions ([`crate::session`]), whose
//! memberships are the user's current ones ([`crate::membership`]).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use kernel::caller::Caller;
use kernel::settings::Secret;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::access_keys::{self, AccessKeys};
use crate::problem::ApiError;
use crate::token::Tokens;

/// Turns credentials into callers.
#[derive(Clone)]
pub struct Authenticator {
    admin_token: Option<Secret>,
    tokens: Tokens,
    access_keys: AccessKeys,
}

impl Authenticator {
    /// Accepts `admin_token` (if any) as the bootstrap administrator, the
    /// API tokens in `tokens` and the application access keys in `access_keys`.
    pub fn new(admin_token: Option<Secret>, tokens: Tokens, access_keys: AccessKeys) -> Self {
        Self {
            admin_token,
            tokens,
            access_keys,
        }
    }

    async fn caller(&self, bearer: &str) -> Result<Option<Caller>, kernel::Error> {
        if let Some(admin) = &self.admin_token
            && bool::from(admin.expose().as_bytes().ct_eq(bearer.as_bytes()))
        {
            return Ok(Some(Caller::platform_admin("local:bootstrap-admin")));
        }
        if bearer.starts_with(access_keys::PREFIX) {
            return self.access_keys.authenticate(bearer).await;
        }
        self.tokens.authenticate(bearer).await
    }
}

/// The authenticated caller of a request, with its request id.
pub struct Authenticated(pub Caller);

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The token of a `Bearer` credential; the scheme's name is
/// case-insensitive (RFC 7235 section 2.1), so `bearer` and `BEARER` count.
fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// Authenticates a request: a bearer token if one is sent, else the session
/// cookie, whose writes must carry the session's CSRF token.
///
/// # Errors
/// 401 without credentials or with invalid, expired or revoked ones; 403 for
/// a cookie-authenticated write without the right CSRF token.
pub async fn authenticate(state: &AppState, headers: &axum::http::HeaderMap, write: bool) -> Result<Caller, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let mut caller = match (bearer, cookie(headers, crate::session::COOKIE)) {
        (Some(bearer), _) => {
            let mut caller = state
                .auth
                .caller(bearer.trim())
                .await
                .map_err(ApiError::from)?
                .ok_or_else(|| ApiError::unauthenticated("the token is not valid, expired or revoked"))?;
            if !caller.platform_admin {
                // An API token's tenant as it is now: deleted, the token is
                // dead even before its revocation reaches this gateway.
                caller.memberships = state.memberships.live(caller.memberships).await?;
                if caller.memberships.is_empty() {
                    return Err(ApiError::unauthenticated("the token's tenant has been deleted"));
                }
            }
            caller
        }
        (None, Some(id)) => {
            let session = state
                .sessions
                .find(&id)
                .await
                .map_err(ApiError::from)?
                .ok_or_else(|| ApiError::unauthenticated("the session has ended; log in again"))?;
            let csrf = headers
                .get(crate::session::CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if write && !bool::from(csrf.as_bytes().ct_eq(session.csrf.as_bytes())) {
                return Err(ApiError(Box::new(kernel::error::Problem::new(
                    403,
                    "csrf",
                    "Forbidden",
                    "a write with the session cookie needs its X-CSRF-Token",
                ))));
            }
            // Roles as they are now, not as they were at login.
            let mut caller = session.caller;
            caller.memberships = state.memberships.of(&caller.subject).await?;
            caller
        }
        (None, None) => {
            return Err(ApiError::unauthenticated(
                "send Authorization: Bearer <token>, or log in",
            ));
        }
    };
    caller.request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok(caller)
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    /// The caller [`crate::rbac::authorize`] authenticated and authorised.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Self)
            .ok_or_else(|| ApiError::unauthenticated("no caller on this request"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for header in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR t0k"] {
            assert_eq!(bearer_token(header), Some("t0k"), "{header}");
        }
        for header in ["Basic dXNlcjpwdw==", "Bearert0k", "t0k", "Bearer"] {
            assert_eq!(bearer_token(header), None, "{header}");
        }
    }
}
