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
            write(problem)
        }
        None => response,
    }
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
