//! Errors as RFC 7807 problem+json. Services' gRPC statuses are mapped by the
//! kernel's single table ([`kernel::error::Problem::from_status`]); the gateway
//! adds the request id.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kernel::error::Problem;

/// An error answered as problem+json.
#[derive(Debug)]
pub struct ApiError(pub Problem);

impl ApiError {
    /// 400 naming the field.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self(Problem::invalid(field, detail))
    }

    /// 401.
    pub fn unauthenticated(detail: &str) -> Self {
        Self(Problem::new(401, "unauthenticated", "Not authenticated", detail))
    }

    /// 404 for a path no route serves.
    pub fn not_found_route() -> Self {
        Self(Problem::new(404, "not-found", "Not found", "no such API route"))
    }

    /// Attaches the request id.
    pub fn with_request_id(self, id: Option<String>) -> Self {
        Self(self.0.with_request_id(id))
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let request_id = kernel::grpc::metadata_str(status.metadata(), kernel::grpc::REQUEST_ID_METADATA).map(str::to_string);
        Self(Problem::from_status(&status).with_request_id(request_id))
    }
}

impl From<kernel::Error> for ApiError {
    fn from(e: kernel::Error) -> Self {
        Self::from(tonic::Status::from(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self.0)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
