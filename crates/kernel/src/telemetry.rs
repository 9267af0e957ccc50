//! Logs, traces and metrics.
//!
//! Logs are JSON lines (or text for a terminal). Spans always carry
//! OpenTelemetry contexts, so trace ids flow gateway -> gRPC -> events even when
//! no collector is configured; with [`crate::settings::OTLP_ENDPOINT`] set they
//! are also exported over OTLP/gRPC. Metrics live in the process-wide
//! Prometheus registry and are served at `/metrics` by [`crate::health`].

use std::collections::HashMap;
use std::sync::OnceLock;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::settings::{LogFormat, Platform};

/// W3C trace context header and metadata key.
pub const TRACEPARENT: &str = "traceparent";

/// Keeps the trace exporter alive; dropping it flushes pending spans.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

/// Installs logging and tracing for the process, once. Later calls (tests that
/// start several stacks) keep the first installation.
///
/// # Errors
/// The OTLP exporter cannot be built from the configured endpoint.
pub fn init(process: &str, settings: &Platform) -> Result<Telemetry, opentelemetry_otlp::ExporterBuildError> {
    let mut builder = SdkTracerProvider::builder().with_resource(
        opentelemetry_sdk::Resource::builder()
            .with_service_name(process.to_string())
            .build(),
    );
    if let Some(endpoint) = &settings.otlp_endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(process.to_string()));
    let filter = || {
        EnvFilter::try_from_env("PAAS_LOG")
            .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,async_nats=warn,h2=warn,tower=warn"))
    };
    let fmt = match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed(),
    };
    let installed = tracing_subscriber::registry().with(otel).with(fmt).try_init().is_ok();
    if installed {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        opentelemetry::global::set_tracer_provider(provider.clone());
        Ok(Telemetry {
            provider: Some(provider),
        })
    } else {
        Ok(Telemetry { provider: None })
    }
}

struct MapCarrier<'a>(&'a mut HashMap<String, String>);

impl Injector for MapCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
}

struct Single<'a>(Option<&'a str>);

impl Extractor for Single<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if key == TRACEPARENT { self.0 } else { None }
    }
    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

/// The current span's W3C `traceparent`, if it has a valid trace.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let mut map = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut MapCarrier(&mut map));
    map.remove(TRACEPARENT)
}

/// Makes `span` a child of the trace named by `traceparent` (from a header,
/// gRPC metadata or an event envelope). Malformed values are ignored.
pub fn adopt_parent(span: &tracing::Span, traceparent: Option<&str>) {
    if traceparent.is_some() {
        let cx = TraceContextPropagator::new().extract(&Single(traceparent));
        let _ = span.set_parent(cx);
    }
}

/// The process-wide Prometheus registry.
pub fn registry() -> &'static prometheus::Registry {
    static REGISTRY: OnceLock<prometheus::Registry> = OnceLock::new();
    REGISTRY.get_or_init(prometheus::Registry::new)
}

/// Registers a metric in [`registry`], returning the one already there under
/// the same name (several services in one process share a metric family).
pub fn register<M: prometheus::core::Collector + Clone + 'static>(metric: M) -> M {
    let _ = registry().register(Box::new(metric.clone()));
    metric
}

/// Counter vector registered once per process.
pub fn counter_vec(name: &str, help: &str, labels: &[&str]) -> prometheus::IntCounterVec {
    static FAMILIES: OnceLock<std::sync::Mutex<HashMap<String, prometheus::IntCounterVec>>> = OnceLock::new();
    let mut families = FAMILIES.get_or_init(Default::default).lock().expect("metrics lock");
    families
        .entry(name.to_string())
        .or_insert_with(|| {
            register(prometheus::IntCounterVec::new(prometheus::Opts::new(name, help), labels).expect("valid metric"))
        })
        .clone()
}

/// Histogram vector registered once per process.
pub fn histogram_vec(name: &str, help: &str, labels: &[&str]) -> prometheus::HistogramVec {
    static FAMILIES: OnceLock<std::sync::Mutex<HashMap<String, prometheus::HistogramVec>>> = OnceLock::new();
    let mut families = FAMILIES.get_or_init(Default::default).lock().expect("metrics lock");
    families
        .entry(name.to_string())
        .or_insert_with(|| {
            let opts = prometheus::HistogramOpts::new(name, help).buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]);
            register(prometheus::HistogramVec::new(opts, labels).expect("valid metric"))
        })
        .clone()
}

/// The registry in Prometheus text format.
pub fn render_metrics() -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&registry().gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}
