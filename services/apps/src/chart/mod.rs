//! Helm charts imported as composite templates (R4). A chart is kept as its
//! files (nested `.tgz` sub-charts unpacked into `charts/<name>/`); a deploy
//! renders it the way `helm install` would: `values.yaml` under the deploy's
//! values (deep merge, the deploy wins, `null` deletes), each sub-chart under
//! `charts/` with its part of the values (key: its name or alias) and
//! `global`, enabled by its dependency's `condition`, `_*.tpl` partials shared
//! by the whole tree, `NOTES.txt` and `_` files not rendered, empty documents
//! dropped, and the objects in Helm's install order.
//!
//! No `helm` binary is involved: templates run on `gtmpl-ng` (Go's
//! text/template) with Helm's functions, plus the ones that need the chart
//! (`include`, `tpl`) or differ from Helm's (`toYaml`), see [`functions`].
//! Every error names the chart file it comes from (`web/templates/x.yaml`).

mod archive;
pub mod constraint;
pub mod functions;
pub mod schema;

use std::collections::{BTreeMap, BTreeSet};

pub use archive::unpack;
use kernel::{Error, Result};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The largest chart accepted, in bytes of all its files.
pub const MAX_CHART_BYTES: usize = 2 * 1024 * 1024;

/// What `.Release.Namespace` renders as: the namespace is the partition's,
/// known only once federation has placed the objects, so federation writes it
/// in per cluster (see `federation::binding::NAMESPACE_MARKER`).
pub const NAMESPACE_MARKER: &str = "@@paas.namespace@@";

/// The Kubernetes version `.Capabilities.KubeVersion` reports (what kubesim
/// and the member clusters serve).
pub const KUBE_VERSION: (u32, u32) = (1, 35);

/// The kinds federation places; a chart rendering anything else is refused
/// when it is imported rather than when it is deployed.
pub const PLACEABLE: [&str; 9] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Service",
    "ConfigMap",
    "PersistentVolumeClaim",
    "HorizontalPodAutoscaler",
    "Ingress",
    "HTTPRoute",
];

/// Helm's install order (`releaseutil.InstallOrder`); kinds not listed go last.
const INSTALL_ORDER: [&str; 37] = [
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "HTTPRoute",
];

/// `Chart.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// `v2` (Helm 3) or `v1`.
    pub api_version: String,
    /// The chart's name.
    pub name: String,
    /// SemVer of the chart.
    pub version: String,
    /// Version of what it deploys.
    #[serde(default)]
    pub app_version: Option<String>,
    /// What it deploys.
    #[serde(default)]
    pub description: String,
    /// `application` or `library`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Its sub-charts.
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
}

/// One entry of `dependencies`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Dependency {
    /// The sub-chart's name (its `Chart.yaml` name).
    pub name: String,
    /// Values paths (comma separated) whose first boolean enables it.
    #[serde(default)]
    pub condition: Option<String>,
    /// The name its values and templates go by instead.
    #[serde(default)]
    pub alias: Option<String>,
}

/// A loaded chart and its enabled-or-not sub-charts.
#[derive(Debug, Clone)]
pub struct Chart {
    /// `Chart.yaml`.
    pub meta: Meta,
    /// Where its files are in the tree, as Helm names templates
    /// (`web`, `web/charts/redis`).
    path: String,
    values: Value,
    schema: Option<Value>,
    /// Files under `templates/`: path in the tree -> text.
    templates: BTreeMap<String, String>,
    /// Sub-charts with the key their values go under and their condition.
    subcharts: Vec<(String, Option<String>, Chart)>,
}

/// A deploy's release, as templates see it.
#[derive(Debug, Clone)]
pub struct Release {
    /// `.Release.Name`: the application's name.
    pub name: String,
    /// `.Release.Revision`.
    pub revision: u64,
}

/// One rendered object and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The template file (`web/templates/deployment.yaml`).
    pub file: String,
    /// How deep its chart is (0: the chart itself, 1: a sub-chart...).
    pub depth: usize,
    /// The object.
    pub object: Value,
}

fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Error {
    Error::invalid(field, detail)
}

/// Reads YAML text as JSON, naming `file` on failure.
pub(crate) fn yaml(file: &str, text: &str) -> Result<Value> {
    serde_yaml_neo::from_str::<Value>(text).map_err(|e| invalid(file, format!("is not valid YAML: {e}")))
}

/// A chart's files with its top folder (an archive's `web/`) taken off, so
/// `Chart.yaml` is at the root.
///
/// # Errors
/// No `Chart.yaml` at the root or in one top folder.
pub fn rooted(files: BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    if files.contains_key("Chart.yaml") {
        return Ok(files);
    }
    let tops: BTreeSet<&str> = files.keys().filter_map(|p| p.split_once('/').map(|(t, _)| t)).collect();
    match tops.iter().find(|t| files.contains_key(&format!("{t}/Chart.yaml"))) {
        Some(top) if tops.len() == 1 => {
            let prefix = format!("{top}/");
            Ok(files
                .into_iter()
                .filter_map(|(p, t)| p.strip_prefix(&prefix).map(|p| (p.to_string(), t)))
                .collect())
        }
        _ => Err(invalid(
            "Chart.yaml",
            "is missing: a chart has Chart.yaml at its root (or in its one top folder)",
        )),
    }
}

impl Chart {
    /// Loads a chart from its files (paths relative to its root), checking
    /// that every template parses and that it renders with its own values.
    ///
    /// # Errors
    /// Names the file: a missing or malformed `Chart.yaml`, bad YAML, a
    /// dependency not under `charts/`, a template that does not parse or
    /// render, an object federation cannot place.
    pub fn check(files: &BTreeMap<String, String>) -> Result<Self> {
        let size: usize = files.iter().map(|(p, t)| p.len() + t.len()).sum();
        if size > MAX_CHART_BYTES {
            return Err(invalid(
                "chart",
                format!("must be at most {MAX_CHART_BYTES} bytes of files"),
            ));
        }
        let chart = Self::load(files, None)?;
        if chart.meta.kind.as_deref() == Some("library") {
            return Err(invalid(
                "Chart.yaml",
                "type library: a library chart renders nothing; import the chart that uses it",
            ));
        }
        chart.render(
            &Release {
                name: "release-name".into(),
                revision: 1,
            },
            &Map::new(),
        )?;
        Ok(chart)
    }

    /// A chart stored earlier (checked when it was imported).
    ///
    /// # Errors
    /// Its files no longer load.
    pub fn stored(files: &BTreeMap<String, String>) -> Result<Self> {
        Self::load(files, None)
    }

    fn load(files: &BTreeMap<String, String>, parent: Option<&str>) -> Result<Self> {
        let place = |name: &str| parent.map_or(name.to_string(), |p| format!("{p}/charts/{name}"));
        let raw = files.get("Chart.yaml").ok_or_else(|| {
            invalid(
                format!(
                    "{}Chart.yaml",
                    parent.map(|p| format!("{p}/charts/.../")).unwrap_or_default()
                ),
                "is missing",
            )
        })?;
        let meta: Meta = serde_json::from_value(yaml("Chart.yaml", raw)?)
            .map_err(|e| invalid(format!("{}/Chart.yaml", parent.unwrap_or(".")), e.to_string()))?;
        let path = place(&meta.name);
        let file = |f: &str| format!("{path}/{f}");
        if !matches!(meta.api_version.as_str(), "v1" | "v2") {
            return Err(invalid(
                file("Chart.yaml"),
                format!("apiVersion {} is not v2 (or v1)", meta.api_version),
            ));
        }
        if meta.name.is_empty()
            || !meta
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(invalid(file("Chart.yaml"), "name must be letters, digits, -, _ or ."));
        }
        crate::version::parse_version(&meta.version).map_err(|_| {
            invalid(
                file("Chart.yaml"),
                format!("version {} is not SemVer (MAJOR.MINOR.PATCH)", meta.version),
            )
        })?;
        let values = match files.get("values.yaml") {
            None => json!({}),
            Some(text) => match yaml(&file("values.yaml"), text)? {
                Value::Null => json!({}),
                v @ Value::Object(_) => v,
                _ => return Err(invalid(file("values.yaml"), "must be a mapping")),
            },
        };
        let schema = match files.get("values.schema.json") {
            None => None,
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|e| invalid(file("values.schema.json"), format!("is not JSON: {e}")))?,
            ),
        };
        let templates = files
            .iter()
            .filter_map(|(p, t)| {
                p.strip_prefix("templates/")
                    .map(|rest| (file(&format!("templates/{rest}")), t.clone()))
            })
            .collect();
        // Each folder under charts/ is one sub-chart (archives were unpacked there).
        let mut folders: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
        for (p, t) in files {
            if let Some((folder, rest)) = p.strip_prefix("charts/").and_then(|r| r.split_once('/')) {
                folders.entry(folder).or_default().insert(rest.to_string(), t.clone());
            }
        }
        let mut loaded: Vec<Chart> = folders
            .values()
            .map(|f| Self::load(f, Some(&path)))
            .collect::<Result<_>>()?;
        let mut subcharts = Vec::new();
        for (i, d) in meta.dependencies.iter().enumerate() {
            let at = loaded.iter().position(|c| c.meta.name == d.name).ok_or_else(|| {
                invalid(file("Chart.yaml"), format!("dependencies[{i}] {} is not under charts/ (charts are imported with their dependencies; none is fetched)", d.name))
            })?;
            let mut sub = loaded.remove(at);
            let key = d.alias.clone().unwrap_or_else(|| d.name.clone());
            if d.alias.is_some() {
                sub.rename(&place(&key));
            }
            subcharts.push((key, d.condition.clone(), sub));
        }
        // Helm also renders sub-charts that Chart.yaml does not list.
        subcharts.extend(loaded.into_iter().map(|c| (c.meta.name.clone(), None, c)));
        Ok(Self {
            meta,
            path,
            values,
            schema,
            templates,
            subcharts,
        })
    }

    /// An aliased sub-chart's templates go by its alias.
    fn rename(&mut self, path: &str) {
        let old = std::mem::replace(&mut self.path, path.to_string());
        self.templates = std::mem::take(&mut self.templates)
            .into_iter()
            .map(|(p, t)| (format!("{path}{}", &p[old.len()..]), t))
            .collect();
        for (key, _, sub) in &mut self.subcharts {
            let p = format!("{path}/charts/{key}");
            sub.rename(&p);
        }
    }

    /// The chart's own `values.yaml`: the parameters a deploy may override.
    pub fn values(&self) -> &Value {
        &self.values
    }

    /// Renders the chart for `release` with the deploy's `values`, objects in
    /// Helm's install order.
    ///
    /// # Errors
    /// Values the schema refuses (`values.<path>`), or a template error naming
    /// its file and line.
    pub fn render(&self, release: &Release, values: &Map<String, Value>) -> Result<Vec<Rendered>> {
        let top = coalesce(&self.values, &Value::Object(values.clone()));
        let mut jobs = Vec::new();
        self.plan(top, 0, &mut jobs)?;
        let sources: Vec<(String, String)> = jobs
            .iter()
            .flat_map(|(chart, _, _)| chart.templates.iter().map(|(p, t)| (p.clone(), t.clone())))
            .collect();
        let mut set = functions::TemplateSet::new(sources)?;
        // Helm renders deeper charts first, then by file name.
        let mut files: Vec<(usize, &String, &Chart, &Value)> = Vec::new();
        for (chart, depth, values) in &jobs {
            for p in chart.templates.keys() {
                let base = p.rsplit('/').next().unwrap_or_default();
                if !base.starts_with('_') && base != "NOTES.txt" {
                    files.push((*depth, p, chart, values));
                }
            }
        }
        files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        let mut out = Vec::new();
        for (depth, file, chart, values) in files {
            let text = set
                .render(file, &chart.context(release, values, file))?
                .replace("<no value>", "");
            for document in documents(&text) {
                let object = yaml(file, document)?;
                if object.is_null() {
                    continue;
                }
                check_object(file, &object)?;
                out.push(Rendered {
                    file: file.clone(),
                    depth,
                    object,
                });
            }
        }
        out.sort_by_key(|r| kind_rank(r.object["kind"].as_str().unwrap_or_default()));
        Ok(out)
    }

    /// The enabled charts of the tree with their final values.
    fn plan<'a>(&'a self, mut values: Value, depth: usize, jobs: &mut Vec<(&'a Chart, usize, Value)>) -> Result<()> {
        let global = values.get("global").cloned().unwrap_or_else(|| json!({}));
        let mut enabled = Vec::new();
        for (key, condition, sub) in &self.subcharts {
            if condition.as_deref().is_some_and(|c| !enabled_by(c, &values)) {
                continue;
            }
            let mut mine = coalesce(
                &sub.values,
                values.get(key).filter(|v| v.is_object()).unwrap_or(&json!({})),
            );
            let sub_global = coalesce(mine.get("global").unwrap_or(&json!({})), &global);
            mine["global"] = sub_global;
            // The parent sees its sub-chart's final values, as in Helm.
            values[key.as_str()] = mine.clone();
            enabled.push((sub, mine));
        }
        if let Some(schema) = &self.schema {
            schema::validate(schema, &values, "values").map_err(|e| match e {
                Error::InvalidArgument { field, reason } => {
                    invalid(field, format!("{reason} ({}/values.schema.json)", self.path))
                }
                other => other,
            })?;
        }
        jobs.push((self, depth, values));
        for (sub, mine) in enabled {
            sub.plan(mine, depth + 1, jobs)?;
        }
        Ok(())
    }

    fn context(&self, release: &Release, values: &Value, file: &str) -> Value {
        let (major, minor) = KUBE_VERSION;
        json!({
            "Values": values,
            "Chart": {"Name": self.meta.name, "Version": self.meta.version, "AppVersion": self.meta.app_version.clone().unwrap_or_default(),
                      "Description": self.meta.description, "APIVersion": self.meta.api_version, "Type": self.meta.kind.clone().unwrap_or_else(|| "application".into())},
            "Release": {"Name": release.name, "Namespace": NAMESPACE_MARKER, "Service": "Helm", "Revision": release.revision, "IsInstall": release.revision <= 1, "IsUpgrade": release.revision > 1},
            "Capabilities": {"KubeVersion": {"Version": format!("v{major}.{minor}.0"), "GitVersion": format!("v{major}.{minor}.0"), "Major": major.to_string(), "Minor": minor.to_string()},
                             "APIVersions": ["v1", "apps/v1", "autoscaling/v2", "networking.k8s.io/v1", "gateway.networking.k8s.io/v1"]},
            "Template": {"Name": file, "BasePath": format!("{}/templates", self.path)},
        })
    }
}

/// Whether a dependency's condition (`a.enabled,b.enabled`) enables it: the
/// first path that holds a boolean decides; none does: enabled.
fn enabled_by(condition: &str, values: &Value) -> bool {
    condition
        .split(',')
        .map(str::trim)
        .find_map(|path| {
            path.split('.')
                .try_fold(values, |v, k| v.get(k))
                .and_then(Value::as_bool)
        })
        .unwrap_or(true)
}

/// Helm's value coalescing: `over` wins, maps merge deeply, a `null` in
/// `over` deletes the key.
pub fn coalesce(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                if v.is_null() {
                    out.remove(k);
                } else {
                    let merged = match out.get(k) {
                        Some(existing) => coalesce(existing, v),
                        None => strip_nulls(v),
                    };
                    out.insert(k.clone(), merged);
                }
            }
            Value::Object(out)
        }
        (_, o) => strip_nulls(o),
    }
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A rendered file's YAML documents, split at `---` lines as Helm does.
fn documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") {
            docs.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    docs.push(&text[start..]);
    docs.into_iter().filter(|d| !d.trim().is_empty()).collect()
}

fn check_object(file: &str, object: &Value) -> Result<()> {
    let kind = object["kind"]
        .as_str()
        .ok_or_else(|| invalid(file, "renders a document without kind"))?;
    if object["apiVersion"].as_str().is_none() || object["metadata"]["name"].as_str().is_none_or(str::is_empty) {
        return Err(invalid(
            file,
            format!("renders a {kind} without apiVersion or metadata.name"),
        ));
    }
    if !PLACEABLE.contains(&kind) {
        return Err(invalid(
            file,
            format!("renders a {kind}; the platform places only {}", PLACEABLE.join(", ")),
        ));
    }
    Ok(())
}

fn kind_rank(kind: &str) -> usize {
    INSTALL_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(INSTALL_ORDER.len())
}

const WORKLOADS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

/// A chart's objects by service name, and the order services deploy in
/// (waves of service names: sub-charts first, deepest first).
pub type ServiceObjects = (BTreeMap<String, Vec<Value>>, Vec<Vec<String>>);

/// Groups a rendered chart into the application's services: one per
/// workload (federation gives every workload of a binding the same
/// replicas), each with the objects that belong to it (the Services that
/// select its pods, the HPA scaling it, the ConfigMaps and claims its pods
/// name, the Ingresses in front of its Services); what belongs to none goes
/// with its chart's first workload. Sub-charts deploy first, deepest first.
///
/// # Errors
/// The chart renders no workload.
pub fn services(rendered: &[Rendered]) -> Result<ServiceObjects> {
    let workloads: Vec<&Rendered> = rendered
        .iter()
        .filter(|r| WORKLOADS.contains(&r.object["kind"].as_str().unwrap_or_default()))
        .collect();
    let first = workloads.first().ok_or_else(|| {
        invalid(
            "chart",
            "renders no Deployment, StatefulSet or DaemonSet: nothing to run",
        )
    })?;
    let name = |r: &Rendered| r.object["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let chart_of = |r: &Rendered| {
        r.file
            .rsplit_once("/templates/")
            .map(|(c, _)| c.to_string())
            .unwrap_or_default()
    };
    let mut owner: Vec<Option<String>> = vec![None; rendered.len()];
    for (i, r) in rendered.iter().enumerate() {
        let kind = r.object["kind"].as_str().unwrap_or_default();
        owner[i] = match kind {
            k if WORKLOADS.contains(&k) => Some(name(r)),
            "Service" => r.object["spec"]["selector"]
                .as_object()
                .filter(|s| !s.is_empty())
                .and_then(|selector| {
                    workloads
                        .iter()
                        .find(|w| {
                            selector
                                .iter()
                                .all(|(k, v)| &w.object["spec"]["template"]["metadata"]["labels"][k] == v)
                        })
                        .map(|w| name(w))
                }),
            "HorizontalPodAutoscaler" => r.object["spec"]["scaleTargetRef"]["name"]
                .as_str()
                .filter(|n| workloads.iter().any(|w| name(w) == *n))
                .map(str::to_string),
            _ => {
                let me = name(r);
                workloads
                    .iter()
                    .find(|w| mentions(&w.object["spec"]["template"]["spec"], &me))
                    .map(|w| name(w))
            }
        };
    }
    // Ingresses and HTTPRoutes follow the Service they send to.
    for (i, r) in rendered.iter().enumerate() {
        if matches!(r.object["kind"].as_str(), Some("Ingress" | "HTTPRoute")) {
            owner[i] = rendered
                .iter()
                .enumerate()
                .find(|(j, s)| {
                    s.object["kind"] == "Service" && owner[*j].is_some() && mentions(&r.object["spec"], &name(s))
                })
                .and_then(|(j, _)| owner[j].clone());
        }
    }
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut depth: BTreeMap<String, usize> = BTreeMap::new();
    for (i, r) in rendered.iter().enumerate() {
        let service = owner[i].clone().unwrap_or_else(|| {
            workloads
                .iter()
                .find(|w| chart_of(w) == chart_of(r))
                .map_or_else(|| name(first), |w| name(w))
        });
        if WORKLOADS.contains(&r.object["kind"].as_str().unwrap_or_default()) {
            depth.insert(service.clone(), r.depth);
        }
        groups.entry(service).or_default().push(r.object.clone());
    }
    let deepest = depth.values().copied().max().unwrap_or(0);
    let waves = (0..=deepest)
        .rev()
        .map(|d| {
            depth
                .iter()
                .filter(|(_, x)| **x == d)
                .map(|(s, _)| s.clone())
                .collect::<Vec<_>>()
        })
        .filter(|w| !w.is_empty())
        .collect();
    Ok((groups, waves))
}

/// The objects a chart deploys as application `app`'s release `number`,
/// by service (see [`services`]; a service is its workload's name without
/// the `<app>-` prefix charts give it), with the platform's labels and no
/// namespace (federation sets the partition's), and the deploy waves.
///
/// # Errors
/// As [`Chart::render`] and [`services`].
pub fn release_objects(chart: &Chart, app: &str, number: u64, values: &Map<String, Value>) -> Result<ServiceObjects> {
    use crate::render::{APP_LABEL, RELEASE_ANNOTATION, SERVICE_LABEL};
    let rendered = chart.render(
        &Release {
            name: app.to_string(),
            revision: number.max(1),
        },
        values,
    )?;
    let (groups, waves) = services(&rendered)?;
    let prefix = format!("{app}-");
    let short = |s: &str| {
        s.strip_prefix(&prefix)
            .filter(|rest| !rest.is_empty())
            .unwrap_or(s)
            .to_string()
    };
    let mut out = BTreeMap::new();
    for (service, mut objects) in groups {
        let service = short(&service);
        crate::render::object_name(app, &service)?;
        for o in &mut objects {
            let meta = o["metadata"]
                .as_object_mut()
                .ok_or_else(|| invalid("chart", "an object without metadata"))?;
            meta.remove("namespace");
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            labels[APP_LABEL] = json!(app);
            labels[SERVICE_LABEL] = json!(service);
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            if !annotations.is_object() {
                *annotations = json!({});
            }
            annotations[RELEASE_ANNOTATION] = json!(number.to_string());
        }
        out.insert(service, objects);
    }
    let waves = waves
        .into_iter()
        .map(|w| w.iter().map(|s| short(s)).collect())
        .collect();
    Ok((out, waves))
}

/// Whether a string of `value` equals `name`.
fn mentions(value: &Value, name: &str) -> bool {
    match value {
        Value::String(s) => s == name,
        Value::Array(items) => items.iter().any(|v| mentions(v, name)),
        Value::Object(m) => m.values().any(|v| mentions(v, name)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_merge_deeply_the_deploy_wins_and_null_deletes() {
        let base = json!({"image": {"repository": "nginx", "tag": "1.0"}, "replicas": 1, "extra": {"a": 1}});
        let over = json!({"image": {"tag": "2.0"}, "replicas": 3, "extra": null});
        assert_eq!(
            coalesce(&base, &over),
            json!({"image": {"repository": "nginx", "tag": "2.0"}, "replicas": 3})
        );
        assert_eq!(
            coalesce(&json!({"a": [1, 2]}), &json!({"a": [3]})),
            json!({"a": [3]}),
            "lists are replaced, not merged"
        );
    }

    #[test]
    fn documents_split_at_dashes_and_empty_ones_go() {
        assert_eq!(
            documents("a: 1\n---\n\n---\nb: 2\n--- # c\nc: 3"),
            vec!["a: 1\n", "b: 2\n", "c: 3"]
        );
        assert_eq!(documents("a: '---x'\n"), vec!["a: '---x'\n"]);
    }

    #[test]
    fn conditions_take_the_first_boolean() {
        let v = json!({"redis": {"enabled": false}, "cache": {"enabled": true}});
        assert!(!enabled_by("redis.enabled", &v));
        assert!(enabled_by("missing.enabled,cache.enabled", &v));
        assert!(enabled_by("missing.enabled", &v));
    }

    #[test]
    fn kinds_go_in_helm_install_order() {
        let mut kinds = vec![
            "Ingress",
            "Deployment",
            "Service",
            "ConfigMap",
            "StatefulSet",
            "Unknown",
        ];
        kinds.sort_by_key(|k| kind_rank(k));
        assert_eq!(
            kinds,
            vec![
                "ConfigMap",
                "Service",
                "Deployment",
                "StatefulSet",
                "Ingress",
                "Unknown"
            ]
        );
    }

    #[test]
    fn a_chart_in_one_top_folder_is_rooted_and_one_without_chart_yaml_is_refused() {
        let files: BTreeMap<String, String> = [
            ("web/Chart.yaml".to_string(), "x".to_string()),
            ("web/values.yaml".into(), "y".into()),
        ]
        .into();
        assert!(rooted(files).unwrap().contains_key("Chart.yaml"));
        let none: BTreeMap<String, String> = [("web/values.yaml".to_string(), "y".to_string())].into();
        assert_eq!(rooted(none).unwrap_err().field(), Some("Chart.yaml"));
    }
}
