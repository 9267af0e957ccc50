//! gRPC plumbing shared by services and their clients.
//!
//! Servers wrap each service in [`CallerCheck`], which refuses a call without a
//! valid signed caller token and puts the [`Caller`] into the request; handlers
//! read it with [`caller`]. Clients attach a token and the current trace
//! context with [`Outgoing`]. [`trace_layer`] starts a server span that
//! continues the caller's trace and counts requests.

use std::net::SocketAddr;
use std::time::Duration;

use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, Endpoint};
use tower_http::classify::{GrpcErrorsAsFailures, SharedClassifier};
use tower_http::trace::{MakeSpan, TraceLayer};

use crate::caller::{CALLER_METADATA, Caller, CallerKey};
use crate::{Error, telemetry};

/// Metadata key carrying the gateway's request id.
pub const REQUEST_ID_METADATA: &str = "x-request-id";

/// Server-side interceptor: verifies the caller token.
#[derive(Clone)]
pub struct CallerCheck {
    key: CallerKey,
}

impl CallerCheck {
    /// Checks tokens signed with `key`.
    pub fn new(key: CallerKey) -> Self {
        Self { key }
    }
}

impl tonic::service::Interceptor for CallerCheck {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let token = request
            .metadata()
            .get(CALLER_METADATA)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| tonic::Status::from(Error::Unauthenticated("no caller token".into())))?;
        let caller = self.key.verify(token)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// The verified caller of a request that passed [`CallerCheck`].
///
/// # Errors
/// `Unauthenticated` when the service was mounted without the check.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Error::Unauthenticated("no caller on this request".into()).into())
}

/// Client-side interceptor: attaches a signed caller token, the request id and
/// the current trace context to every call.
#[derive(Clone)]
pub struct Outgoing {
    token: AsciiMetadataValue,
    request_id: Option<AsciiMetadataValue>,
}

impl Outgoing {
    /// Calls made on behalf of `caller`.
    pub fn new(key: &CallerKey, caller: &Caller) -> Self {
        let token = key.sign(caller).parse().expect("base64 and '.' are valid metadata");
        let request_id = caller.request_id.as_deref().and_then(|r| r.parse().ok());
        Self { token, request_id }
    }
}

impl tonic::service::Interceptor for Outgoing {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let md = request.metadata_mut();
        md.insert(CALLER_METADATA, self.token.clone());
        if let Some(id) = &self.request_id {
            md.insert(REQUEST_ID_METADATA, id.clone());
        }
        if let Some(tp) = telemetry::current_traceparent().and_then(|t| t.parse().ok()) {
            md.insert(telemetry::TRACEPARENT, tp);
        }
        Ok(request)
    }
}

/// A lazily connecting channel to a service at `addr` (`http://host:port`).
///
/// # Errors
/// The address is not a valid URI.
pub fn channel(addr: &str) -> crate::Result<Channel> {
    Ok(Endpoint::from_shared(addr.to_string())
        .map_err(|e| Error::invalid("address", e.to_string()))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .connect_lazy())
}

/// The `http://` URI of a bound address.
pub fn uri(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Span maker continuing the trace named in the request's `traceparent`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpanFromHeaders;

impl<B> MakeSpan<B> for SpanFromHeaders {
    fn make_span(&mut self, request: &http::Request<B>) -> tracing::Span {
        let headers = request.headers();
        let request_id = headers
            .get(REQUEST_ID_METADATA)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let span = tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id);
        telemetry::adopt_parent(&span, headers.get(telemetry::TRACEPARENT).and_then(|v| v.to_str().ok()));
        span
    }
}

/// The tracing layer for gRPC servers.
pub fn trace_layer() -> TraceLayer<SharedClassifier<GrpcErrorsAsFailures>, SpanFromHeaders> {
    TraceLayer::new_for_grpc().make_span_with(SpanFromHeaders)
}

/// Reads a metadata value as text.
pub fn metadata_str<'a>(md: &'a MetadataMap, key: &str) -> Option<&'a str> {
    md.get(key).and_then(|v| v.to_str().ok())
}

/// A time as a protobuf timestamp.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

/// A protobuf timestamp as a time (`None` when absent or out of range).
pub fn time(t: Option<prost_types::Timestamp>) -> Option<chrono::DateTime<chrono::Utc>> {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
}
