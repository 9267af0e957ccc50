//! What a template version describes (R4): one service (a single-service
//! template) or several with dependencies (a composite), and the typed
//! parameters a deploy fills in. A spec is JSON; any string in it may name a
//! parameter as `${name}`: a string that is only a placeholder takes the
//! parameter's typed value (`"replicas": "${replicas}"` becomes a number),
//! otherwise the value is spliced into the text.
//!
//! [`Spec::check`] validates a raw spec with the parameters' defaults (and a
//! sample value for required ones), so a draft with a typo is refused when it
//! is saved, not when it is deployed; [`Spec::resolve`] validates a deploy's
//! parameters against their schema and yields the [`Application`] to render.
//! Every error names the failing field (`services[0].containers[1].image`).

use std::collections::{BTreeMap, BTreeSet};

use kernel::name::DnsLabel;
use kernel::quantity::Quantity;
use kernel::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The largest spec accepted, in bytes of JSON.
pub const MAX_SPEC_BYTES: usize = 256 * 1024;

/// A template version's document, as written (placeholders unresolved).
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    raw: Value,
    parameters: Vec<Parameter>,
}

/// A parameter a deploy fills in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    /// How placeholders name it: letters, digits, `_`.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: ParameterKind,
    /// Used when a deploy gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// A deploy must give it (when it has no default).
    #[serde(default)]
    pub required: bool,
    /// For the deploy form.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Smallest number allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// Largest number allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// Longest string allowed, in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// The only values allowed.
    #[serde(default, rename = "enum", skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<Value>,
}

/// A parameter's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParameterKind {
    /// Text.
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// true or false.
    Boolean,
}

/// A spec with its parameters resolved: what a deploy renders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// The parameters (kept for the record; already substituted).
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// Its services, in the order written.
    pub services: Vec<Service>,
}

/// One service of an application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// DNS label, unique in the application.
    pub name: String,
    /// The workload kind.
    #[serde(default)]
    pub controller: Controller,
    /// Pods wanted (not for a DaemonSet).
    #[serde(default = "one")]
    pub replicas: u32,
    /// How the Service spreads connections.
    #[serde(default)]
    pub proxy_mode: ProxyMode,
    /// Extra labels on every object of the service.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Pods use the node's network.
    #[serde(default)]
    pub host_network: bool,
    /// Services that must be Available before this one is deployed.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Its containers (at least one).
    pub containers: Vec<Container>,
    /// Volumes its containers mount.
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// Horizontal autoscaling.
    #[serde(default)]
    pub autoscaling: Option<Autoscaling>,
    /// Ingress rules to its ports.
    #[serde(default)]
    pub ingress: Vec<IngressRule>,
}

fn one() -> u32 {
    1
}

/// The workload kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Controller {
    /// Interchangeable replicas.
    #[default]
    Deployment,
    /// Replicas with identity and their own volumes.
    StatefulSet,
    /// One pod per node.
    DaemonSet,
}

/// How the Service spreads connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyMode {
    /// Each connection to any ready pod.
    #[default]
    RoundRobin,
    /// A client keeps its pod (`sessionAffinity: ClientIP`).
    SessionAffinity,
}

/// A container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// DNS label, unique in the service.
    pub name: String,
    /// The image reference.
    pub image: String,
    /// Requests and limits.
    #[serde(default)]
    pub resources: Resources,
    /// Ports it listens on.
    #[serde(default)]
    pub ports: Vec<Port>,
    /// Plain environment variables.
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// Config-center items, mounted as files or injected as variables.
    #[serde(default)]
    pub config_refs: Vec<ConfigRef>,
    /// Where volumes are mounted.
    #[serde(default)]
    pub volume_mounts: Vec<VolumeMount>,
    /// Replaces the image's entrypoint.
    #[serde(default)]
    pub command: Vec<String>,
    /// Run before the container is stopped.
    #[serde(default)]
    pub pre_stop: Vec<String>,
    /// Restarts the container when failing.
    #[serde(default)]
    pub liveness: Option<Probe>,
    /// Keeps traffic away until passing.
    #[serde(default)]
    pub readiness: Option<Probe>,
}

/// CPU and memory requests and limits (Kubernetes quantities).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// e.g. `250m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_request: Option<String>,
    /// e.g. `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_limit: Option<String>,
    /// e.g. `256Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_request: Option<String>,
    /// e.g. `512Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
}

/// A port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// Optional IANA-style name (used by ingress rules and probes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 1-65535.
    pub container_port: u16,
    /// TCP or UDP.
    #[serde(default)]
    pub protocol: Protocol,
    /// Expose on every node: a fixed port, or `0` for one drawn from the
    /// platform's pool at deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<u16>,
}

/// A port's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Protocol {
    /// TCP.
    #[default]
    TCP,
    /// UDP.
    UDP,
}

/// An environment variable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    /// Its name.
    pub name: String,
    /// Its value.
    #[serde(default)]
    pub value: String,
}

/// A config of the config center used by a container: the effective
/// configuration of config set `config` (the application's own sets, or a
/// tenant-shared set, by name) in the application's environment and cluster,
/// delivered beside the workload as a ConfigMap (plain items) and a Secret
/// (secret items). Mounted as files at `mount_path` (every item, or only
/// `item`), or one item injected as the variable `env`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigRef {
    /// The config set's name (an application's or a shared set's).
    pub config: String,
    /// One item (a file name of the set); none: every item (a directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// Mount as files here: a directory of every item, or the one `item`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
    /// Or inject `item` as this variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// What a new release of the config does to the pods.
    #[serde(default)]
    pub reload: Reload,
}

/// What a new config release does to the pods that use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reload {
    /// The pod template carries a checksum of the content, so the pods roll
    /// (by the application's strategy) whenever it changes.
    #[default]
    Restart,
    /// Only the ConfigMap/Secret changes: mounted directories are updated in
    /// place by the kubelet; variables and single-file mounts keep the old
    /// value until the pods restart for another reason.
    None,
}

impl Reload {
    /// The word in templates and annotations.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restart => "restart",
            Self::None => "none",
        }
    }
}

/// A volume mount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeMount {
    /// A volume of the service.
    pub volume: String,
    /// Absolute path in the container.
    pub path: String,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// A volume: exactly one of its sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// DNS label, unique in the service.
    pub name: String,
    /// Scratch space living as long as the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDir>,
    /// A directory of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPath>,
    /// A persistent volume claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<Claim>,
}

/// Scratch space.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyDir {
    /// Keep it in memory.
    #[serde(default)]
    pub memory: bool,
    /// Its size limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<String>,
}

/// A node directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostPath {
    /// Absolute path on the node.
    pub path: String,
}

/// A persistent volume claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// Storage asked for, e.g. `10Gi`.
    pub size: String,
    /// The storage class (the cluster's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// `ReadWriteOnce` (default), `ReadOnlyMany` or `ReadWriteMany`.
    #[serde(default = "read_write_once")]
    pub access_mode: String,
}

fn read_write_once() -> String {
    "ReadWriteOnce".into()
}

/// A probe: exactly one of `http_get`, `tcp`, `exec`, and its timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// An HTTP GET answering 2xx/3xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGet>,
    /// A TCP connection that opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpProbe>,
    /// A command exiting 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    /// Seconds before the first probe.
    #[serde(default)]
    pub initial_delay_seconds: u32,
    /// Seconds a probe may take.
    #[serde(default = "probe_timeout")]
    pub timeout_seconds: u32,
    /// Seconds between probes.
    #[serde(default = "probe_period")]
    pub period_seconds: u32,
    /// Passes in a row to count as passing.
    #[serde(default = "probe_success")]
    pub success_threshold: u32,
    /// Failures in a row to count as failing.
    #[serde(default = "probe_failure")]
    pub failure_threshold: u32,
}

fn probe_timeout() -> u32 {
    1
}
fn probe_period() -> u32 {
    10
}
fn probe_success() -> u32 {
    1
}
fn probe_failure() -> u32 {
    3
}

/// An HTTP probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpGet {
    /// Absolute path.
    pub path: String,
    /// Container port.
    pub port: u16,
    /// HTTP or HTTPS.
    #[serde(default = "http")]
    pub scheme: String,
}

fn http() -> String {
    "HTTP".into()
}

/// A TCP probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpProbe {
    /// Container port.
    pub port: u16,
}

/// Horizontal autoscaling: on CPU utilisation, or on a custom metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Autoscaling {
    /// At least this many pods.
    pub min_replicas: u32,
    /// At most this many.
    pub max_replicas: u32,
    /// Target average CPU utilisation, percent of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_utilization: Option<u32>,
    /// Or a per-pod custom metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<CustomMetric>,
}

/// A per-pod metric and its target average value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomMetric {
    /// e.g. `http_requests_per_second`.
    pub name: String,
    /// e.g. `100`.
    pub target_average_value: String,
}

/// An ingress rule: no host and no path is the single default backend;
/// a host, a path, or both narrow it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressRule {
    /// A DNS name (or `*.example.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A path prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The service's port it reaches.
    pub port: u16,
}

fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Error {
    Error::invalid(field, detail)
}

impl Spec {
    /// Validates a raw spec: its shape, its parameters, and the application
    /// it makes with the parameters' defaults (a sample value standing in
    /// for a required parameter without one).
    ///
    /// # Errors
    /// Names the failing field, prefixed `spec.`.
    pub fn check(text: &str) -> Result<Self> {
        if text.len() > MAX_SPEC_BYTES {
            return Err(invalid("spec", format!("must be at most {MAX_SPEC_BYTES} bytes")));
        }
        let raw: Value = serde_json::from_str(text).map_err(|e| invalid("spec", format!("is not JSON: {e}")))?;
        let Value::Object(top) = &raw else {
            return Err(invalid("spec", "must be a JSON object"));
        };
        if let Some(key) = top.keys().find(|k| !matches!(k.as_str(), "parameters" | "services")) {
            return Err(invalid(
                format!("spec.{key}"),
                "is not a field of a spec (parameters, services)",
            ));
        }
        let parameters: Vec<Parameter> = match top.get("parameters") {
            None => Vec::new(),
            Some(p) => typed(p.clone(), "spec.parameters")?,
        };
        let mut names = BTreeSet::new();
        for (i, p) in parameters.iter().enumerate() {
            let field = format!("spec.parameters[{i}]");
            if p.name.is_empty() || p.name.len() > 63 || !p.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(invalid(format!("{field}.name"), "must be 1-63 letters, digits or _"));
            }
            if !names.insert(p.name.clone()) {
                return Err(invalid(
                    format!("{field}.name"),
                    format!("{} is declared twice", p.name),
                ));
            }
            if let Some(default) = &p.default {
                p.admit(default)
                    .map_err(|why| invalid(format!("{field}.default"), why))?;
            }
        }
        let spec = Self { raw, parameters };
        let samples = spec
            .parameters
            .iter()
            .filter(|p| p.default.is_none())
            .map(|p| (p.name.clone(), p.sample()))
            .collect();
        spec.resolve(&samples)?;
        Ok(spec)
    }

    /// The spec's parameters.
    pub fn parameters(&self) -> &[Parameter] {
        &self.parameters
    }

    /// The spec as stored.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// A spec stored earlier (checked when it was saved).
    ///
    /// # Errors
    /// The stored document no longer parses (a bug, reported as internal).
    pub fn stored(raw: Value) -> Result<Self> {
        Self::check(&raw.to_string()).map_err(|e| Error::internal(format!("a stored spec does not check: {e}")))
    }

    /// Fills in `values` (defaults for the rest), checking each against its
    /// parameter, and validates the resulting application.
    ///
    /// # Errors
    /// An unknown, missing or invalid parameter (`parameters.<name>`), or an
    /// invalid application (`spec.<path>`).
    pub fn resolve(&self, values: &BTreeMap<String, Value>) -> Result<Application> {
        if let Some(unknown) = values.keys().find(|k| !self.parameters.iter().any(|p| &p.name == *k)) {
            return Err(invalid(
                format!("parameters.{unknown}"),
                "is not a parameter of this template",
            ));
        }
        let mut resolved = BTreeMap::new();
        for p in &self.parameters {
            let value = match values.get(&p.name).or(p.default.as_ref()) {
                Some(v) => v.clone(),
                None if p.required => return Err(invalid(format!("parameters.{}", p.name), "is required")),
                None => p.empty(),
            };
            p.admit(&value)
                .map_err(|why| invalid(format!("parameters.{}", p.name), why))?;
            resolved.insert(p.name.clone(), value);
        }
        let mut body = self.raw.clone();
        if let Value::Object(top) = &mut body {
            top.remove("parameters");
        }
        let body = substitute(body, &resolved, "spec")?;
        let mut app: Application = typed(body, "spec")?;
        app.parameters = self.parameters.clone();
        app.validate()?;
        Ok(app)
    }
}

/// Deserialises `value` as `T`, naming the failing field under `prefix`.
fn typed<T: serde::de::DeserializeOwned>(value: Value, prefix: &str) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            prefix.to_string()
        } else {
            format!("{prefix}.{path}")
        };
        invalid(field, e.into_inner().to_string())
    })
}

/// Replaces `${name}` placeholders in every string of `value`.
fn substitute(value: Value, params: &BTreeMap<String, Value>, field: &str) -> Result<Value> {
    Ok(match value {
        Value::String(s) => {
            if let Some(name) = s
                .strip_prefix("${")
                .and_then(|r| r.strip_suffix('}'))
                .filter(|n| !n.contains("${") && !n.contains('}'))
            {
                return params
                    .get(name)
                    .cloned()
                    .ok_or_else(|| invalid(field, format!("names ${{{name}}}, which is not a parameter")));
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after.find('}').ok_or_else(|| invalid(field, "has an unclosed ${"))?;
                let name = &after[..end];
                match params.get(name) {
                    Some(Value::String(v)) => out.push_str(v),
                    Some(v) => out.push_str(&v.to_string()),
                    None => return Err(invalid(field, format!("names ${{{name}}}, which is not a parameter"))),
                }
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| substitute(v, params, &format!("{field}[{i}]")))
                .collect::<Result<_>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| Ok((k.clone(), substitute(v, params, &format!("{field}.{k}"))?)))
                .collect::<Result<_>>()?,
        ),
        other => other,
    })
}

impl Parameter {
    /// Whether `value` is allowed; why not otherwise.
    fn admit(&self, value: &Value) -> std::result::Result<(), String> {
        let number = match (self.kind, value) {
            (ParameterKind::String, Value::String(s)) => {
                if self.max_length.is_some_and(|max| s.chars().count() > max) {
                    return Err(format!(
                        "must be at most {} characters",
                        self.max_length.unwrap_or_default()
                    ));
                }
                None
            }
            (ParameterKind::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => n.as_f64(),
            (ParameterKind::Number, Value::Number(n)) => n.as_f64(),
            (ParameterKind::Boolean, Value::Bool(_)) => None,
            (kind, _) => {
                return Err(format!(
                    "must be {}",
                    match kind {
                        ParameterKind::String => "a string",
                        ParameterKind::Integer => "a whole number",
                        ParameterKind::Number => "a number",
                        ParameterKind::Boolean => "true or false",
                    }
                ));
            }
        };
        if let Some(n) = number {
            if self.minimum.is_some_and(|min| n < min) {
                return Err(format!("must be at least {}", self.minimum.unwrap_or_default()));
            }
            if self.maximum.is_some_and(|max| n > max) {
                return Err(format!("must be at most {}", self.maximum.unwrap_or_default()));
            }
        }
        if !self.allowed.is_empty() && !self.allowed.contains(value) {
            return Err(format!("must be one of {}", Value::Array(self.allowed.clone())));
        }
        Ok(())
    }

    /// A value standing in for a required parameter while a draft is checked.
    fn sample(&self) -> Value {
        if let Some(first) = self.allowed.first() {
            return first.clone();
        }
        match self.kind {
            ParameterKind::String => Value::String("sample".into()),
            ParameterKind::Integer | ParameterKind::Number => {
                serde_json::json!(self.minimum.map_or(1, |m| m.ceil().max(1.0) as i64))
            }
            ParameterKind::Boolean => Value::Bool(false),
        }
    }

    /// The value of an optional parameter a deploy left out.
    fn empty(&self) -> Value {
        match self.kind {
            ParameterKind::String => Value::String(String::new()),
            ParameterKind::Integer | ParameterKind::Number => {
                serde_json::json!(self.minimum.map_or(0, |m| m.ceil() as i64))
            }
            ParameterKind::Boolean => Value::Bool(false),
        }
    }
}

fn label(field: &str, raw: &str) -> Result<()> {
    DnsLabel::parse(field, raw).map(|_| ())
}

fn quantity(field: &str, raw: Option<&String>) -> Result<Option<Quantity>> {
    raw.map(|r| Quantity::parse(field, r)).transpose()
}

fn absolute_path(field: &str, path: &str) -> Result<()> {
    if !path.starts_with('/') || path.contains('\0') {
        return Err(invalid(field, "must be an absolute path"));
    }
    Ok(())
}

impl Application {
    /// Checks what the types cannot: names, references, quantities, ports,
    /// dependencies without cycles, autoscaling that can work.
    ///
    /// # Errors
    /// Names the failing field (`spec.services[i]...`).
    pub fn validate(&self) -> Result<()> {
        if self.services.is_empty() {
            return Err(invalid("spec.services", "must name at least one service"));
        }
        let names: BTreeSet<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
        for (i, s) in self.services.iter().enumerate() {
            let f = format!("spec.services[{i}]");
            label(&format!("{f}.name"), &s.name)?;
            if self.services.iter().filter(|o| o.name == s.name).count() > 1 {
                return Err(invalid(
                    format!("{f}.name"),
                    format!("{} is used by two services", s.name),
                ));
            }
            for (j, d) in s.depends_on.iter().enumerate() {
                if !names.contains(d.as_str()) || d == &s.name {
                    return Err(invalid(
                        format!("{f}.depends_on[{j}]"),
                        format!("{d} is not another service of this application"),
                    ));
                }
            }
            s.validate(&f)?;
        }
        self.deploy_order().map(|_| ())
    }

    /// The services in an order that deploys each after what it depends on:
    /// waves whose members may go in parallel.
    ///
    /// # Errors
    /// The dependencies form a cycle.
    pub fn deploy_order(&self) -> Result<Vec<Vec<String>>> {
        let mut placed: BTreeSet<&str> = BTreeSet::new();
        let mut waves = Vec::new();
        while placed.len() < self.services.len() {
            let wave: Vec<&str> = self
                .services
                .iter()
                .filter(|s| {
                    !placed.contains(s.name.as_str()) && s.depends_on.iter().all(|d| placed.contains(d.as_str()))
                })
                .map(|s| s.name.as_str())
                .collect();
            if wave.is_empty() {
                let stuck: Vec<&str> = self
                    .services
                    .iter()
                    .map(|s| s.name.as_str())
                    .filter(|n| !placed.contains(n))
                    .collect();
                return Err(invalid(
                    "spec.services",
                    format!("the dependencies of {} form a cycle", stuck.join(", ")),
                ));
            }
            placed.extend(wave.iter().copied());
            waves.push(wave.into_iter().map(str::to_string).collect());
        }
        Ok(waves)
    }
}

impl Service {
    fn validate(&self, f: &str) -> Result<()> {
        if self.containers.is_empty() {
            return Err(invalid(format!("{f}.containers"), "must have at least one container"));
        }
        if self.controller == Controller::DaemonSet && self.autoscaling.is_some() {
            return Err(invalid(
                format!("{f}.autoscaling"),
                "a DaemonSet runs one pod per node and cannot autoscale",
            ));
        }
        if self.replicas > 1000 {
            return Err(invalid(format!("{f}.replicas"), "must be at most 1000"));
        }
        for (k, v) in &self.labels {
            if k.is_empty()
                || k.len() > 253
                || v.len() > 63
                || k.starts_with("paas.io/")
                || k.starts_with("app.kubernetes.io/")
            {
                return Err(invalid(
                    format!("{f}.labels.{k}"),
                    "must be a Kubernetes label not reserved by the platform (paas.io/, app.kubernetes.io/)",
                ));
            }
        }
        let mut volumes = BTreeSet::new();
        for (i, v) in self.volumes.iter().enumerate() {
            let vf = format!("{f}.volumes[{i}]");
            label(&format!("{vf}.name"), &v.name)?;
            if !volumes.insert(v.name.as_str()) {
                return Err(invalid(
                    format!("{vf}.name"),
                    format!("{} is used by two volumes", v.name),
                ));
            }
            let sources = [v.empty_dir.is_some(), v.host_path.is_some(), v.pvc.is_some()]
                .into_iter()
                .filter(|b| *b)
                .count();
            if sources != 1 {
                return Err(invalid(vf, "must have exactly one of empty_dir, host_path, pvc"));
            }
            if let Some(e) = &v.empty_dir {
                quantity(&format!("{vf}.empty_dir.size_limit"), e.size_limit.as_ref())?;
            }
            if let Some(h) = &v.host_path {
                absolute_path(&format!("{vf}.host_path.path"), &h.path)?;
            }
            if let Some(c) = &v.pvc {
                quantity(&format!("{vf}.pvc.size"), Some(&c.size))?;
                if !matches!(
                    c.access_mode.as_str(),
                    "ReadWriteOnce" | "ReadOnlyMany" | "ReadWriteMany" | "ReadWriteOncePod"
                ) {
                    return Err(invalid(
                        format!("{vf}.pvc.access_mode"),
                        "must be ReadWriteOnce, ReadOnlyMany, ReadWriteMany or ReadWriteOncePod",
                    ));
                }
            }
        }
        let mut container_names = BTreeSet::new();
        let mut ports = BTreeSet::new();
        for (i, c) in self.containers.iter().enumerate() {
            let cf = format!("{f}.containers[{i}]");
            label(&format!("{cf}.name"), &c.name)?;
            if !container_names.insert(c.name.as_str()) {
                return Err(invalid(
                    format!("{cf}.name"),
                    format!("{} is used by two containers", c.name),
                ));
            }
            c.validate(&cf, &volumes, &mut ports)?;
        }
        if let Some(a) = &self.autoscaling {
            let af = format!("{f}.autoscaling");
            if a.min_replicas == 0 || a.min_replicas > a.max_replicas {
                return Err(invalid(
                    format!("{af}.min_replicas"),
                    "must be at least 1 and at most max_replicas",
                ));
            }
            match (a.cpu_utilization, &a.metric) {
                (Some(cpu), None) => {
                    if !(1..=100).contains(&cpu) {
                        return Err(invalid(
                            format!("{af}.cpu_utilization"),
                            "must be 1-100 (percent of the CPU request)",
                        ));
                    }
                    if let Some((i, _)) = self
                        .containers
                        .iter()
                        .enumerate()
                        .find(|(_, c)| c.resources.cpu_request.is_none())
                    {
                        return Err(invalid(
                            format!("{f}.containers[{i}].resources.cpu_request"),
                            "autoscaling on CPU needs a CPU request on every container",
                        ));
                    }
                }
                (None, Some(m)) => {
                    if m.name.is_empty() {
                        return Err(invalid(format!("{af}.metric.name"), "must name a metric"));
                    }
                    quantity(
                        &format!("{af}.metric.target_average_value"),
                        Some(&m.target_average_value),
                    )?;
                }
                _ => return Err(invalid(af, "must have exactly one of cpu_utilization, metric")),
            }
        }
        for (i, rule) in self.ingress.iter().enumerate() {
            let rf = format!("{f}.ingress[{i}]");
            if !ports.contains(&rule.port) {
                return Err(invalid(
                    format!("{rf}.port"),
                    format!("{} is not a port of the service's containers", rule.port),
                ));
            }
            if let Some(host) = &rule.host {
                let bare = host.strip_prefix("*.").unwrap_or(host);
                if bare.is_empty() || bare.len() > 253 || !bare.split('.').all(|l| DnsLabel::parse("host", l).is_ok()) {
                    return Err(invalid(format!("{rf}.host"), "must be a DNS name (optionally *.)"));
                }
            }
            if let Some(path) = &rule.path {
                absolute_path(&format!("{rf}.path"), path)?;
            }
        }
        Ok(())
    }
}

impl Container {
    fn validate(&self, cf: &str, volumes: &BTreeSet<&str>, ports: &mut BTreeSet<u16>) -> Result<()> {
        if self.image.trim().is_empty() || self.image.chars().any(char::is_whitespace) {
            return Err(invalid(format!("{cf}.image"), "must be an image reference"));
        }
        let r = &self.resources;
        let rf = format!("{cf}.resources");
        let cpu = (
            quantity(&format!("{rf}.cpu_request"), r.cpu_request.as_ref())?,
            quantity(&format!("{rf}.cpu_limit"), r.cpu_limit.as_ref())?,
        );
        let memory = (
            quantity(&format!("{rf}.memory_request"), r.memory_request.as_ref())?,
            quantity(&format!("{rf}.memory_limit"), r.memory_limit.as_ref())?,
        );
        if let (Some(request), Some(limit)) = cpu
            && request > limit
        {
            return Err(invalid(format!("{rf}.cpu_request"), "must not exceed cpu_limit"));
        }
        if let (Some(request), Some(limit)) = memory
            && request > limit
        {
            return Err(invalid(format!("{rf}.memory_request"), "must not exceed memory_limit"));
        }
        for (i, p) in self.ports.iter().enumerate() {
            let pf = format!("{cf}.ports[{i}]");
            if p.container_port == 0 {
                return Err(invalid(format!("{pf}.container_port"), "must be 1-65535"));
            }
            if !ports.insert(p.container_port) {
                return Err(invalid(
                    format!("{pf}.container_port"),
                    format!("{} is used twice in the service", p.container_port),
                ));
            }
            if let Some(name) = &p.name
                && (name.len() > 15 || DnsLabel::parse("name", name).is_err())
            {
                return Err(invalid(
                    format!("{pf}.name"),
                    "must be a DNS label of at most 15 characters",
                ));
            }
            if let Some(n) = p.node_port
                && n != 0
                && !(1024..=65535).contains(&n)
            {
                return Err(invalid(
                    format!("{pf}.node_port"),
                    "must be 0 (drawn from the pool) or a port of the cluster's NodePort range",
                ));
            }
        }
        let mut names = BTreeSet::new();
        for (i, e) in self.env.iter().enumerate() {
            env_name(&format!("{cf}.env[{i}].name"), &e.name)?;
            names.insert(e.name.as_str());
        }
        for (i, c) in self.config_refs.iter().enumerate() {
            let cr = format!("{cf}.config_refs[{i}]");
            label(&format!("{cr}.config"), &c.config)?;
            if let Some(item) = &c.item
                && (item.is_empty()
                    || item.len() > 253
                    || !item
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.')))
            {
                return Err(invalid(
                    format!("{cr}.item"),
                    "must be a ConfigMap key (letters, digits, -, _, .)",
                ));
            }
            match (&c.mount_path, &c.env) {
                (Some(path), None) => absolute_path(&format!("{cr}.mount_path"), path)?,
                (None, Some(_)) if c.item.is_none() => {
                    return Err(invalid(format!("{cr}.item"), "names the item the variable takes"));
                }
                (None, Some(env)) => {
                    env_name(&format!("{cr}.env"), env)?;
                    if !names.insert(env.as_str()) {
                        return Err(invalid(format!("{cr}.env"), format!("{env} is set twice")));
                    }
                }
                _ => return Err(invalid(cr, "must have exactly one of mount_path, env")),
            }
        }
        for (i, m) in self.volume_mounts.iter().enumerate() {
            let mf = format!("{cf}.volume_mounts[{i}]");
            if !volumes.contains(m.volume.as_str()) {
                return Err(invalid(
                    format!("{mf}.volume"),
                    format!("{} is not a volume of the service", m.volume),
                ));
            }
            absolute_path(&format!("{mf}.path"), &m.path)?;
        }
        for (probe, name) in [(&self.liveness, "liveness"), (&self.readiness, "readiness")] {
            let Some(p) = probe else { continue };
            let pf = format!("{cf}.{name}");
            let kinds = [p.http_get.is_some(), p.tcp.is_some(), p.exec.is_some()]
                .into_iter()
                .filter(|b| *b)
                .count();
            if kinds != 1 {
                return Err(invalid(pf, "must have exactly one of http_get, tcp, exec"));
            }
            if let Some(h) = &p.http_get {
                absolute_path(&format!("{pf}.http_get.path"), &h.path)?;
                if !matches!(h.scheme.as_str(), "HTTP" | "HTTPS") {
                    return Err(invalid(format!("{pf}.http_get.scheme"), "must be HTTP or HTTPS"));
                }
            }
            if p.exec.as_ref().is_some_and(Vec::is_empty) {
                return Err(invalid(format!("{pf}.exec"), "must name a command"));
            }
            if p.timeout_seconds == 0 || p.period_seconds == 0 || p.success_threshold == 0 || p.failure_threshold == 0 {
                return Err(invalid(pf, "timeout, period and thresholds must be at least 1"));
            }
            if name == "liveness" && p.success_threshold != 1 {
                return Err(invalid(
                    format!("{pf}.success_threshold"),
                    "must be 1 for a liveness probe",
                ));
            }
        }
        Ok(())
    }
}

fn env_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(field, "must be an environment variable name"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn web() -> Value {
        json!({
            "parameters": [
                {"name": "replicas", "type": "integer", "default": 2, "minimum": 1, "maximum": 20},
                {"name": "tag", "type": "string", "required": true, "max_length": 20},
                {"name": "tier", "type": "string", "default": "front", "enum": ["front", "back"]}
            ],
            "services": [{
                "name": "web",
                "replicas": "${replicas}",
                "labels": {"tier": "${tier}"},
                "containers": [{"name": "web", "image": "registry.example/web:${tag}", "resources": {"cpu_request": "250m"}, "ports": [{"container_port": 8080}]}],
                "autoscaling": {"min_replicas": 2, "max_replicas": 5, "cpu_utilization": 70}
            }]
        })
    }

    fn field(e: Error) -> String {
        e.field().unwrap_or_default().to_string()
    }

    #[test]
    fn parameters_fill_placeholders_with_their_types() {
        let spec = Spec::check(&web().to_string()).unwrap();
        let app = spec
            .resolve(&BTreeMap::from([
                ("tag".to_string(), json!("1.4.2")),
                ("replicas".to_string(), json!(3)),
            ]))
            .unwrap();
        assert_eq!(app.services[0].replicas, 3);
        assert_eq!(app.services[0].containers[0].image, "registry.example/web:1.4.2");
        assert_eq!(app.services[0].labels["tier"], "front", "the default");
    }

    #[test]
    fn parameters_are_checked_against_their_schema_and_name_the_parameter() {
        let spec = Spec::check(&web().to_string()).unwrap();
        let with = |pairs: &[(&str, Value)]| {
            spec.resolve(&pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
                .unwrap_err()
        };
        assert_eq!(field(with(&[])), "parameters.tag", "required");
        assert_eq!(field(with(&[("tag", json!(1))])), "parameters.tag", "a string");
        assert_eq!(
            field(with(&[("tag", json!("x".repeat(21)))])),
            "parameters.tag",
            "too long"
        );
        assert_eq!(
            field(with(&[("tag", json!("a")), ("replicas", json!(21))])),
            "parameters.replicas",
            "above maximum"
        );
        assert_eq!(
            field(with(&[("tag", json!("a")), ("replicas", json!(2.5))])),
            "parameters.replicas",
            "whole"
        );
        assert_eq!(
            field(with(&[("tag", json!("a")), ("tier", json!("middle"))])),
            "parameters.tier",
            "enum"
        );
        assert_eq!(
            field(with(&[("tag", json!("a")), ("colour", json!("red"))])),
            "parameters.colour",
            "unknown"
        );
    }

    #[test]
    fn a_bad_draft_is_refused_at_save_naming_the_field() {
        let bad = |f: &dyn Fn(&mut Value)| {
            let mut spec = web();
            f(&mut spec);
            field(Spec::check(&spec.to_string()).unwrap_err())
        };
        assert_eq!(
            bad(&|s| s["services"][0]["containers"][0]["resources"]["cpu_request"] = json!("lots")),
            "spec.services[0].containers[0].resources.cpu_request"
        );
        assert_eq!(
            bad(&|s| s["services"][0]["containers"][0]["resources"] = json!({})),
            "spec.services[0].containers[0].resources.cpu_request",
            "HPA on CPU needs a CPU request"
        );
        assert_eq!(
            bad(&|s| s["services"][0]["controller"] = json!("ReplicaSet")),
            "spec.services[0].controller"
        );
        assert_eq!(
            bad(&|s| s["services"][0]["replicas"] = json!("${nope}")),
            "spec.services[0].replicas"
        );
        assert_eq!(
            bad(&|s| s["services"][0]["containers"][0]["colour"] = json!("red")),
            "spec.services[0].containers[0].colour"
        );
        assert_eq!(
            bad(&|s| s["services"][0]["containers"][0]["volume_mounts"] = json!([{"volume": "data", "path": "/d"}])),
            "spec.services[0].containers[0].volume_mounts[0].volume"
        );
        assert_eq!(
            bad(&|s| s["services"][0]["ingress"] = json!([{"host": "web.example.com", "port": 9090}])),
            "spec.services[0].ingress[0].port"
        );
        assert_eq!(
            bad(&|s| s["services"][0]["depends_on"] = json!(["web"])),
            "spec.services[0].depends_on[0]"
        );
        assert_eq!(
            bad(&|s| s["parameters"][0]["default"] = json!(0)),
            "spec.parameters[0].default"
        );
        assert_eq!(
            bad(&|s| s["services"][0]["name"] = json!("Web")),
            "spec.services[0].name"
        );
        assert_eq!(bad(&|s| s["extra"] = json!(1)), "spec.extra");
    }

    #[test]
    fn dependencies_give_deploy_waves_and_cycles_are_refused() {
        let service = |name: &str, deps: &[&str]| json!({"name": name, "depends_on": deps, "containers": [{"name": "c", "image": "i"}]});
        let spec = json!({"services": [service("web", &["api"]), service("api", &["db", "cache"]), service("db", &[]), service("cache", &[])]});
        let app = Spec::check(&spec.to_string())
            .unwrap()
            .resolve(&BTreeMap::new())
            .unwrap();
        assert_eq!(
            app.deploy_order().unwrap(),
            vec![
                vec!["db".to_string(), "cache".to_string()],
                vec!["api".to_string()],
                vec!["web".to_string()]
            ]
        );
        let cycle = json!({"services": [service("a", &["b"]), service("b", &["a"])]});
        let e = Spec::check(&cycle.to_string()).unwrap_err();
        assert_eq!(field(e), "spec.services");
    }
}
