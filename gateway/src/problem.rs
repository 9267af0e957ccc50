//! Errors as RFC 7807 problem+json. Services' gRPC statuses are mapped by the
//! kernel's single table ([`kernel::error::Problem::from_status`]). Handlers and
//! extractors return an [`ApiError`]; the [`render`] middleware writes it out
//! with the request id, so every problem carries one whoever raised it.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kernel::error::Problem;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{Ref, RefOr};

/// An error answered as problem+json (boxed: errors are rare, results common).
#[derive(Debug)]
pub struct ApiError(pub Box<Problem>);

impl ApiError {
    /// 400 naming the field.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self(Box::new(Problem::invalid(field, detail)))
    }

    /// 401.
    pub fn unauthenticated(detail: &str) -> Self {
        Self(Box::new(Problem::new(
            401,
            "unauthenticated",
            "Not authenticated",
            detail,
        )))
    }

    /// 404 for a path no route serves.
    pub fn not_found_route() -> Self {
        Self(Box::new(Problem::new(
            404,
            "not-found",
            "Not found",
            "no such API route",
        )))
    }

    /// Attaches the request id.
    pub fn with_request_id(self, id: Option<String>) -> Self {
        Self(Box::new(self.0.with_request_id(id)))
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let request_id =
            kernel::grpc::metadata_str(status.metadata(), kernel::grpc::REQUEST_ID_METADATA).map(str::to_string);
        Self(Box::new(Problem::from_status(&status).with_request_id(request_id)))
    }
}

impl From<kernel::Error> for ApiError {
    fn from(e: kernel::Error) -> Self {
        Self::from(tonic::Status::from(e))
    }
}

/// A problem waiting in a response's extensions for [`render`].
#[derive(Clone)]
struct Pending(Box<Problem>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = status.into_response();
        response.extensions_mut().insert(Pending(self.0));
        response
    }
}

/// Middleware writing pending problems as problem+json with the request id.
pub async fn render(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut response = next.run(request).await;
    match response.extensions_mut().remove::<Pending>() {
        Some(Pending(problem)) => {
            let problem = if problem.request_id.is_none() {
                problem.with_request_id(request_id)
            } else {
                *problem
            };
            let allow = response.headers().get(header::ALLOW).cloned();
            let mut written = write(problem);
            if let Some(allow) = allow {
                written.headers_mut().insert(header::ALLOW, allow);
            }
            written
        }
        None if is_bare_error(&response) => rewrite(response, request_id).await,
        None => response,
    }
}

/// An error answer that is not problem+json: a rejection by axum (method,
/// extractor) or by a tower layer (timeout, body limit).
fn is_bare_error(response: &Response) -> bool {
    let status = response.status();
    (status.is_client_error() || status.is_server_error())
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_none_or(|ct| ct.as_bytes() != b"application/problem+json")
}

/// [`is_bare_error`]'s answer as problem+json, its plain-text body (axum's
/// reason) as the detail, keeping `Allow` on a 405.
async fn rewrite(response: Response, request_id: Option<String>) -> Response {
    let (parts, body) = response.into_parts();
    let status = parts.status;
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let plain = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"text/plain"));
    let reason = status.canonical_reason().unwrap_or("Error");
    let detail = match std::str::from_utf8(&text) {
        Ok(text) if plain && !text.trim().is_empty() => text.trim().to_string(),
        _ => reason.to_lowercase(),
    };
    let slug = match status.as_u16() {
        400 => "invalid-argument".to_string(),
        500 => "internal".to_string(),
        _ => reason.to_lowercase().replace(' ', "-"),
    };
    if status.is_server_error() {
        tracing::error!(%status, %detail, "an error answered outside the handlers");
    }
    let mut problem = Problem::new(status.as_u16(), &slug, reason, detail).with_request_id(request_id);
    if status == StatusCode::BAD_REQUEST {
        problem.field = Some("request".into());
    }
    let mut rewritten = write(problem);
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        rewritten.headers_mut().insert(header::ALLOW, allow.clone());
    }
    rewritten
}

fn write(problem: Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let retry_after = problem.retry_after;
    let mut response = (status, Json(problem)).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// The problem+json answer any route may give with a 4xx status, documented
/// once: a route lists it as `responses(..., Problems)`.
pub struct Problems;

impl utoipa::IntoResponses for Problems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        let problem = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build();
        let response = ResponseBuilder::new()
            .description("")
            .content("application/problem+json", problem)
            .build();
        BTreeMap::from([("4XX".to_string(), response.into())])
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    use tower_http::timeout::TimeoutLayer;

    use super::*;

    async fn answer(app: Router, request: Request<Body>) -> (StatusCode, Response) {
        let response = app.oneshot(request).await.unwrap();
        (response.status(), response)
    }

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// A layer's own answer (here the timeout's bare 408) and the router's
    /// 405 come out as problem+json, the 405 keeping its `Allow`.
    #[tokio::test]
    async fn bare_error_answers_are_rewritten_as_problems() {
        let app = Router::new()
            .route("/hangs", axum::routing::get(std::future::pending::<()>))
            .route("/only-get", axum::routing::get(|| async {}))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_millis(20),
            ))
            .layer(axum::middleware::from_fn(render));

        let (status, response) = answer(app.clone(), Request::get("/hangs").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        let problem = body(response).await;
        assert_eq!(problem["status"], 408);
        assert_eq!(problem["type"], "urn:paas:problem:request-timeout");

        let (status, response) = answer(app, Request::post("/only-get").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        assert!(response.headers()[header::ALLOW].to_str().unwrap().contains("GET"));
        assert_eq!(body(response).await["status"], 405);
    }
}
