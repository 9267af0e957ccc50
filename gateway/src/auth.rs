//! Who is calling. An [`Authenticated`] extractor turns the request's
//! credentials into a [`Caller`] or answers 401. Credentials today: the
//! bootstrap administrator's bearer token (compared in constant time) and API
//! tokens ([`crate::token`]).

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use kernel::caller::Caller;
use kernel::settings::Secret;
use subtle::ConstantTimeEq;
use tower_http::request_id::RequestId;

use crate::AppState;
use crate::token::Tokens;
use crate::problem::ApiError;

/// Turns credentials into callers.
#[derive(Clone)]
pub struct Authenticator {
    admin_token: Option<Secret>,
    tokens: Tokens,
}

impl Authenticator {
    /// Accepts `admin_token` (if any) as the bootstrap administrator, and the
    /// API tokens in `tokens`.
    pub fn new(admin_token: Option<Secret>, tokens: Tokens) -> Self {
        Self { admin_token, tokens }
    }

    async fn caller(&self, bearer: &str) -> Result<Option<Caller>, kernel::Error> {
        if let Some(admin) = &self.admin_token
            && bool::from(admin.expose().as_bytes().ct_eq(bearer.as_bytes()))
        {
            return Ok(Some(Caller::platform_admin("local:bootstrap-admin")));
        }
        self.tokens.authenticate(bearer).await
    }
}

/// The authenticated caller of a request, with its request id.
pub struct Authenticated(pub Caller);

/// The request id the gateway assigned (or the client sent).
pub fn request_id(parts: &Parts) -> Option<String> {
    parts.extensions.get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).map(str::to_string)
}

impl<S> FromRequestParts<S> for Authenticated
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let rid = request_id(parts);
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::unauthenticated("send Authorization: Bearer <token>").with_request_id(rid.clone()))?;
        let mut caller = state
            .auth
            .caller(bearer.trim())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::unauthenticated("the token is not valid, expired or revoked").with_request_id(rid.clone()))?;
        caller.request_id = rid;
        Ok(Self(caller))
    }
}
