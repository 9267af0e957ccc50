//! Bindings: a tenant's Kubernetes objects (produced by the apps service), a
//! placement, and the resolved per-cluster assignment (`binding_targets`).
//! [`Bindings::apply`] places the binding, reserves its quota in tenancy for
//! every target whose amounts change, and only then records it; the
//! propagator ([`crate::propagation`]) writes it into the clusters and
//! commits the reservations. Every read and write is scoped by tenant here:
//! a binding of a tenant the caller cannot see is NotFound. What an apply
//! changes is decided by a pure function ([`plan`]), so it is unit-tested
//! without a database or a cluster; the reservations it makes are given back
//! whichever later step fails ([`reservation`]).
//!
//! Revisions and pinning: each apply that changes the objects makes a new
//! numbered revision (`binding_revisions`; `bindings.objects` is the newest).
//! An apply may `hold` clusters: those keep the revision they run while the
//! others take the newest, so one binding runs two object sets at once (a
//! gray release upgrades it cluster by cluster, see the apps service's
//! `strategy` module). A target's `objects_revision` is NULL when it
//! follows the newest; the propagator applies to each target the objects of
//! its revision, and a held target's quota is reserved for its own revision's
//! requests. An apply without `hold` puts every target on the newest again.
//! A target placed anew (by an apply or a failover) runs the newest.

pub mod ownership;
pub mod plan;
pub mod reservation;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::name::DnsLabel;
use kernel::page::Page;
use kernel::quantity::Quantity;
use kernel::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use self::plan::{Change, Desired, Plan, Stored, StoredRevision, StoredTarget};
use self::reservation::{Reservation, Reservations};
use crate::placement::{Assignment, Candidate, PartitionRef, Resources};

/// A Kubernetes kind a binding may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Kind {
    /// API group ("" for core).
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Resource (plural).
    pub plural: &'static str,
    /// Whether it runs replicas that the assignment sets.
    pub workload: bool,
}

impl Kind {
    /// `apiVersion` as objects carry it.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// kube-rs' description of the resource.
    pub fn api_resource(&self) -> kube::core::ApiResource {
        kube::core::ApiResource {
            group: self.group.into(),
            version: self.version.into(),
            api_version: self.api_version(),
            kind: self.kind.into(),
            plural: self.plural.into(),
        }
    }

    /// `apiVersion/kind`, as stored in `applied_kinds`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.api_version(), self.kind)
    }

    /// The kind of a `apiVersion/kind` key.
    pub fn from_key(key: &str) -> Option<&'static Kind> {
        KINDS.iter().find(|k| k.key() == key)
    }
}

/// Every kind a binding may hold: what the apps service produces.
pub const KINDS: &[Kind] = &[
    Kind {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        workload: true,
    },
    Kind {
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        plural: "statefulsets",
        workload: true,
    },
    Kind {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        workload: false,
    },
    Kind {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        workload: false,
    },
    // A Service without a selector's addresses (external services).
    Kind {
        group: "",
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        workload: false,
    },
    Kind {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        workload: false,
    },
    // Secret configuration: values sealed for delivery ([`kernel::seal`]),
    // opened only in the body written to the cluster ([`Object::for_target`]).
    Kind {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        workload: false,
    },
    Kind {
        group: "",
        version: "v1",
        kind: "PersistentVolumeClaim",
        plural: "persistentvolumeclaims",
        workload: false,
    },
    Kind {
        group: "autoscaling",
        version: "v2",
        kind: "HorizontalPodAutoscaler",
        plural: "horizontalpodautoscalers",
        workload: false,
    },
    Kind {
        group: "networking.k8s.io",
        version: "v1",
        kind: "Ingress",
        plural: "ingresses",
        workload: false,
    },
    Kind {
        group: "gateway.networking.k8s.io",
        version: "v1",
        kind: "HTTPRoute",
        plural: "httproutes",
        workload: false,
    },
];

/// Top-level field of an object holding, per cluster name, a JSON merge
/// patch (RFC 7386) for that cluster only: configuration whose effective
/// content differs in a cluster (the config center's cluster level) rides
/// on one binding. A key `cluster/namespace` patches one partition of the
/// cluster, after the cluster's own. Never written to a cluster.
pub const CLUSTER_PATCHES: &str = "paasClusterPatches";

/// Label naming the binding an object belongs to.
pub const BINDING_LABEL: &str = "paas.io/binding";
/// Value of [`crate::partition::OWNED_LABEL`] on binding objects.
pub const MANAGED_BY: &str = "federation";

/// One validated object of a binding.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Its kind.
    pub kind: &'static Kind,
    /// `metadata.name`.
    pub name: String,
    /// The object as given.
    pub body: Value,
}

impl Object {
    /// The body for one cluster: the partition's namespace, the assigned
    /// replicas for workloads, and the ownership labels; no server-managed fields.
    pub fn for_cluster(&self, binding: Uuid, namespace: &str, replicas: u32) -> Value {
        let mut body = self.body.clone();
        write_namespace(&mut body, namespace);
        let meta = body["metadata"].as_object_mut().expect("checked at parse");
        meta.insert("namespace".into(), Value::String(namespace.into()));
        for server_side in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "managedFields",
            "generation",
            "selfLink",
        ] {
            meta.remove(server_side);
        }
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(crate::partition::OWNED_LABEL.into(), Value::String(MANAGED_BY.into()));
            labels.insert(BINDING_LABEL.into(), Value::String(binding.to_string()));
        }
        if let Some(o) = body.as_object_mut() {
            o.remove("status");
            o.remove(CLUSTER_PATCHES);
        }
        if self.kind.workload {
            body["spec"]["replicas"] = Value::from(replicas);
        }
        body
    }

    /// The body for one target: [`Self::for_cluster`] with the cluster's
    /// patch ([`CLUSTER_PATCHES`]) merged in and a Secret's sealed values
    /// opened for the cluster (the only place they are in the clear).
    ///
    /// # Errors
    /// A sealed value that does not open for `tenant` with `key` (named).
    pub fn for_target(
        &self,
        binding: Uuid,
        namespace: &str,
        replicas: u32,
        cluster: &str,
        tenant: Uuid,
        key: Option<&kernel::seal::DeliveryKey>,
    ) -> Result<Value> {
        let mut body = self.for_cluster(binding, namespace, replicas);
        // The cluster's patch, then its partition's (`cluster/namespace`:
        // a config's gray release pinned to one partition) on top.
        if let Some(patches) = self.body.get(CLUSTER_PATCHES) {
            for key in [cluster.to_string(), format!("{cluster}/{namespace}")] {
                if let Some(patch) = patches.get(&key) {
                    merge_patch(&mut body, patch);
                }
            }
        }
        if self.kind.kind == "Secret" {
            let tenant = tenant.to_string();
            for field in ["data", "stringData"] {
                let Some(values) = body.get_mut(field).and_then(Value::as_object_mut) else {
                    continue;
                };
                for (name, value) in values.iter_mut() {
                    let Some(sealed) = value.as_str().filter(|v| kernel::seal::is_sealed(v)) else {
                        continue;
                    };
                    let field = format!("{}.{field}.{name}", self.name);
                    let key = key.ok_or_else(|| {
                        Error::FailedPrecondition(format!("{field} is sealed and this process has no delivery key"))
                    })?;
                    let clear = key.open(&tenant, &field, sealed)?;
                    *value = Value::String(base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        clear,
                    ));
                }
            }
        }
        Ok(body)
    }

    /// What one replica of this object requests (all containers), if it runs pods.
    fn per_replica(&self) -> Result<Resources> {
        if !self.kind.workload {
            return Ok(Resources::default());
        }
        let mut total = Resources::default();
        let containers = self.body["spec"]["template"]["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (i, c) in containers.iter().enumerate() {
            for (resource, slot) in [("cpu", &mut total.cpu_milli), ("memory", &mut total.memory_milli)] {
                if let Some(raw) = c["resources"]["requests"][resource].as_str() {
                    let field = format!("objects.{}.containers[{i}].resources.requests.{resource}", self.name);
                    let q = Quantity::parse(&field, raw)?;
                    *slot = slot
                        .checked_add(q.milli())
                        .ok_or_else(|| Error::invalid(field, "is too large"))?;
                }
            }
        }
        Ok(total)
    }
}

/// Reads and checks a binding's objects: a JSON array of objects of the
/// supported kinds, each with a DNS name, no two alike.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the object and field.
pub fn parse_objects(json: &str) -> Result<Vec<Object>> {
    let items: Vec<Value> = serde_json::from_str(json)
        .map_err(|e| Error::invalid("objects", format!("must be a JSON array of objects: {e}")))?;
    if items.is_empty() {
        return Err(Error::invalid("objects", "must hold at least one object"));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, body) in items.into_iter().enumerate() {
        let field = |f: &str| format!("objects[{i}].{f}");
        let api_version = body["apiVersion"].as_str().unwrap_or_default();
        let kind_name = body["kind"].as_str().unwrap_or_default();
        let kind = KINDS
            .iter()
            .find(|k| k.api_version() == api_version && k.kind == kind_name)
            .ok_or_else(|| {
                Error::invalid(
                    field("kind"),
                    format!("{api_version} {kind_name} is not a kind bindings hold"),
                )
            })?;
        let name = body["metadata"]["name"]
            .as_str()
            .ok_or_else(|| Error::invalid(field("metadata.name"), "is required"))?;
        DnsLabel::parse(&field("metadata.name"), name)?;
        if !seen.insert((kind.kind, name.to_string())) {
            return Err(Error::invalid(
                field("metadata.name"),
                format!("{} {name} appears twice", kind.kind),
            ));
        }
        if kind.kind == "Secret" {
            // Federation's tables never hold a secret in the clear.
            for data in ["data", "stringData"] {
                for (key, value) in body[data].as_object().into_iter().flatten() {
                    if !value.as_str().is_some_and(kernel::seal::is_sealed) {
                        return Err(Error::invalid(
                            field(&format!("{data}.{key}")),
                            "must be a value sealed by the platform (a Secret's values reach bindings only sealed)",
                        ));
                    }
                }
            }
        }
        let object = Object {
            kind,
            name: name.to_string(),
            body,
        };
        object.per_replica()?;
        out.push(object);
    }
    Ok(out)
}

/// What stands for the target's namespace in an object's strings (a Helm
/// chart's `.Release.Namespace`: the namespace is the partition's, known only
/// per cluster).
pub const NAMESPACE_MARKER: &str = "@@paas.namespace@@";

fn write_namespace(value: &mut Value, namespace: &str) {
    match value {
        Value::String(s) if s.contains(NAMESPACE_MARKER) => *s = s.replace(NAMESPACE_MARKER, namespace),
        Value::Array(items) => items.iter_mut().for_each(|v| write_namespace(v, namespace)),
        Value::Object(map) => map.values_mut().for_each(|v| write_namespace(v, namespace)),
        _ => {}
    }
}

/// Merges `patch` into `target` as RFC 7386 says: objects merge key by key,
/// `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let map = target.as_object_mut().expect("made an object above");
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The replicas a binding runs when the caller does not say: the largest
/// `spec.replicas` of its workloads, or 1.
pub fn default_replicas(objects: &[Object]) -> u32 {
    objects
        .iter()
        .filter(|o| o.kind.workload)
        .filter_map(|o| o.body["spec"]["replicas"].as_u64())
        .max()
        .map_or(1, |r| r as u32)
}

/// What one replica of the binding requests, and how many pods it is.
pub fn per_replica(objects: &[Object]) -> Result<(Resources, u32)> {
    let mut total = Resources::default();
    let mut pods = 0;
    for o in objects.iter().filter(|o| o.kind.workload) {
        let r = o.per_replica()?;
        total.cpu_milli = total.cpu_milli.saturating_add(r.cpu_milli);
        total.memory_milli = total.memory_milli.saturating_add(r.memory_milli);
        pods += 1;
    }
    Ok((total, pods))
}

/// The quota (tenancy resource names -> quantities) `replicas` replicas hold.
pub fn amounts(per: Resources, pods_per_replica: u32, replicas: u32) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let n = i64::from(replicas);
    if per.cpu_milli > 0 && n > 0 {
        out.insert(
            "requests.cpu".to_string(),
            Quantity::from_milli(per.cpu_milli.saturating_mul(n)).to_string(),
        );
    }
    if per.memory_milli > 0 && n > 0 {
        out.insert(
            "requests.memory".to_string(),
            Quantity::from_milli(per.memory_milli.saturating_mul(n)).to_string(),
        );
    }
    if pods_per_replica > 0 && n > 0 {
        out.insert("pods".to_string(), (i64::from(pods_per_replica) * n).to_string());
    }
    out
}

/// Quota admission: tenancy's reservation API as federation uses it.
pub trait Admission: Send + Sync {
    /// Reserves `amounts` in `partition` under `key` (idempotent); the
    /// reservation's id.
    ///
    /// # Errors
    /// [`Error::ResourceExhausted`] when refused; unavailable otherwise.
    fn reserve<'a>(
        &'a self,
        partition: Uuid,
        amounts: &'a BTreeMap<String, String>,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Uuid>> + Send + 'a>>;
    /// Commits a reservation (the work is applied).
    ///
    /// # Errors
    /// Tenancy refuses or is unreachable.
    /// Reserves as [`Self::reserve`] for a failover, which may draw on the
    /// DR reserve; by default an ordinary reservation.
    ///
    /// # Errors
    /// As [`Self::reserve`].
    fn reserve_for_failover<'a>(
        &'a self,
        partition: Uuid,
        amounts: &'a BTreeMap<String, String>,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Uuid>> + Send + 'a>> {
        self.reserve(partition, amounts, key)
    }
    /// Commits a reservation (the work it was made for is recorded).
    fn commit(&self, reservation: Uuid) -> Pin<Box<dyn Future<Output = Result<()>> + Send + '_>>;
    /// Releases a reservation (the work is undone or superseded).
    ///
    /// # Errors
    /// Tenancy refuses or is unreachable.
    fn release(&self, reservation: Uuid) -> Pin<Box<dyn Future<Output = Result<()>> + Send + '_>>;
}

/// A request to create or update a binding.
#[derive(Debug, Clone)]
pub struct ApplyRequest {
    /// The tenant.
    pub tenant: Uuid,
    /// Only this project's partitions.
    pub project: Option<Uuid>,
    /// Unique per tenant.
    pub name: DnsLabel,
    /// The objects as given (JSON array).
    pub objects_json: String,
    /// The placement as given (JSON).
    pub placement_json: String,
    /// 0: [`default_replicas`].
    pub replicas: u32,
    /// Clusters that keep the revision they run (see [`plan::pins`]).
    pub hold: Vec<String>,
}

/// A binding as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Binding {
    /// Its id.
    pub id: Uuid,
    /// Owner.
    pub tenant_id: Uuid,
    /// Project, if any.
    pub project_id: Option<Uuid>,
    /// Name.
    pub name: String,
    /// The objects.
    pub objects: sqlx::types::Json<Value>,
    /// The placement.
    pub placement: sqlx::types::Json<Value>,
    /// Replicas in all (divided per the placement).
    pub replicas: i32,
    /// Changes so far.
    pub generation: i64,
    /// Being deleted.
    pub deleted: bool,
    /// Why the last failover failed, until one succeeds.
    pub failover_error: Option<String>,
    /// DR tier ([`crate::resilience::DrTier`]).
    pub dr_tier: String,
    /// Failover toleration, milliseconds.
    pub toleration_ms: i64,
    /// Never runs two copies.
    pub singleton: bool,
    /// The newest revision of the objects (what `objects` holds).
    pub revision: i64,
    /// `automatic` or `manual` ([`crate::resilience::Failback`]).
    pub failback: String,
    /// Order of automatic failbacks, higher first.
    pub priority: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// One cluster of a binding, with what was last observed there.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Target {
    /// Cluster name.
    pub cluster: String,
    /// Partition.
    pub partition_id: Uuid,
    /// Namespace.
    pub namespace: String,
    /// Replicas assigned.
    pub replicas: i32,
    /// No longer assigned; objects being deleted.
    pub removing: bool,
    /// The binding generation wanted here.
    pub generation: i64,
    /// The binding generation applied here.
    pub applied_generation: i64,
    /// The last apply's error.
    pub last_error: Option<String>,
    /// Per-workload status as last observed.
    pub workloads: sqlx::types::Json<Vec<WorkloadStatus>>,
    /// Last successful apply.
    pub synced_at: Option<DateTime<Utc>>,
    /// Last observation.
    pub observed_at: Option<DateTime<Utc>>,
    /// The cluster's health condition now.
    pub cluster_condition: Option<String>,
    /// The cluster's last successful probe (what "last seen" says while it is out of Ready).
    pub cluster_last_contact: Option<DateTime<Utc>>,
    /// The revision of the binding's objects this cluster is to run (the
    /// newest unless held); it runs it once `applied_generation` reaches `generation`.
    pub objects_revision: i64,
}

/// A workload's rollout as observed in a member cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadStatus {
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Replicas wanted (scheduled nodes for DaemonSets).
    pub desired: i32,
    /// Replicas at the current template.
    pub updated: i32,
    /// Ready.
    pub ready: i32,
    /// Available.
    pub available: i32,
    /// Whether the controller has seen the latest spec.
    pub current: bool,
    /// The workload's conditions: (type, status, reason, message).
    pub conditions: Vec<(String, String, String, String)>,
    /// Pods still at an older template (`status.replicas - updatedReplicas`):
    /// while a surge pod starts, the old pod keeps the count available.
    #[serde(default)]
    pub outdated: i32,
}

impl WorkloadStatus {
    /// Whether the rollout is done, as `kubectl rollout status` judges it:
    /// the controller has seen the latest spec, every desired replica is
    /// updated and available, no pod of an older template is left, and (a
    /// Deployment) the controller says the new ReplicaSet has progressed.
    pub fn rolled_out(&self) -> bool {
        self.current
            && self.updated >= self.desired
            && self.available >= self.desired
            && self.outdated <= 0
            && self.rollout_unfinished().is_none()
    }

    /// A Deployment's Progressing condition while its rollout is not done.
    /// Old pods still serving make the counts look complete while the new
    /// ones are not up; the controller's reason says otherwise (as
    /// `kubectl rollout status` reads it).
    fn rollout_unfinished(&self) -> Option<&(String, String, String, String)> {
        self.conditions
            .iter()
            .find(|c| self.kind == "Deployment" && c.0 == "Progressing" && c.2 != "NewReplicaSetAvailable")
    }
}

/// Overall or per-cluster health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// Applied everywhere and every workload available.
    Healthy,
    /// Applying or rolling out.
    Progressing,
    /// The cluster is out of contact.
    Unknown,
    /// Applying fails.
    Degraded,
}

impl Health {
    /// The API's name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Healthy => "Healthy",
            Self::Progressing => "Progressing",
            Self::Unknown => "Unknown",
            Self::Degraded => "Degraded",
        }
    }
}

impl Target {
    /// This cluster's health and why.
    pub fn health(&self) -> (Health, String) {
        let c = &self.cluster;
        match self.cluster_condition.as_deref() {
            Some("Ready") => {}
            other => {
                return (
                    Health::Unknown,
                    format!(
                        "cluster {c} is {}, last seen {}",
                        other.unwrap_or("deregistered"),
                        last_seen(self.cluster_last_contact, Utc::now())
                    ),
                );
            }
        }
        if self.applied_generation < self.generation {
            return match &self.last_error {
                Some(e) => (Health::Degraded, format!("applying to {c} fails: {e}")),
                None => (
                    Health::Progressing,
                    format!("applying generation {} to {c}", self.generation),
                ),
            };
        }
        for w in self.workloads.iter() {
            if !w.rolled_out() {
                let outdated = if w.outdated > 0 {
                    format!(", {} outdated", w.outdated)
                } else {
                    String::new()
                };
                return (
                    Health::Progressing,
                    format!(
                        "{} {} in {c}: {}/{} available, {}/{} updated{outdated}",
                        w.kind, w.name, w.available, w.desired, w.updated, w.desired
                    ),
                );
            }
            if let Some((_, _, reason, message)) = w.rollout_unfinished() {
                return (
                    Health::Progressing,
                    format!("{} {} in {c}: rolling out ({reason}: {message})", w.kind, w.name),
                );
            }
        }
        if self.observed_at.is_none() {
            return (Health::Progressing, format!("waiting for the first observation of {c}"));
        }
        (Health::Healthy, format!("available in {c}"))
    }
}

/// How long ago `contact` was, as "12s ago" (or "never").
pub fn last_seen(contact: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(c) = contact else {
        return "never".into();
    };
    let secs = (now - c).num_seconds().max(0);
    match secs {
        0..=119 => format!("{secs}s ago"),
        120..=7199 => format!("{}m ago", secs / 60),
        _ => format!("{}h ago", secs / 3600),
    }
}

/// A binding's health: the worst of its clusters'.
pub fn overall(binding: &Binding, targets: &[Target]) -> (Health, String) {
    if binding.deleted {
        return (Health::Progressing, "being deleted".into());
    }
    if let Some(e) = &binding.failover_error {
        return (Health::Degraded, e.clone());
    }
    let live: Vec<&Target> = targets.iter().filter(|t| !t.removing).collect();
    if live.is_empty() {
        return (Health::Unknown, "assigned to no cluster".into());
    }
    let mut worst = (Health::Healthy, String::new());
    for t in &live {
        let h = t.health();
        if h.0 > worst.0 {
            worst = h;
        }
    }
    // A policy divides the binding's replicas among its clusters: fewer in
    // all than asked (a scale not yet placed everywhere) is not Healthy even
    // when every cluster runs what it was given. (An explicit placement may
    // give each cluster its own count.)
    let placed: i64 = live.iter().map(|t| i64::from(t.replicas.max(0))).sum();
    if worst.0 == Health::Healthy
        && binding.placement.0.get("explicit").is_none()
        && placed < i64::from(binding.replicas)
    {
        worst = (
            Health::Progressing,
            format!("{placed} of {} replicas placed", binding.replicas),
        );
    }
    // Copies left behind in a cluster out of Ready (a failover's lost
    // cluster) cannot be removed until it returns: the binding runs in its
    // live clusters only, which is Degraded, not a removal in progress.
    let stranded: Vec<&Target> = targets
        .iter()
        .filter(|t| t.removing && t.cluster_condition.as_deref().is_some_and(|c| c != "Ready"))
        .collect();
    if worst.0 <= Health::Progressing && !stranded.is_empty() {
        let mut running: Vec<&str> = live.iter().map(|t| t.cluster.as_str()).collect();
        running.dedup();
        let away = stranded
            .iter()
            .map(|t| {
                format!(
                    "{} is {} (last seen {}); its copies are removed when it returns",
                    t.cluster,
                    t.cluster_condition.as_deref().unwrap_or("Unknown"),
                    last_seen(t.cluster_last_contact, Utc::now())
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let also = if worst.0 == Health::Healthy {
            String::new()
        } else {
            format!("; {}", worst.1)
        };
        return (
            Health::Degraded,
            format!("running in {} only: {away}{also}", running.join(", ")),
        );
    }
    if worst.0 == Health::Healthy {
        worst = if targets.iter().any(|t| t.removing) {
            (Health::Progressing, "removing from clusters no longer assigned".into())
        } else {
            (Health::Healthy, "available in every assigned cluster".into())
        };
    }
    worst
}

/// A cluster as placement reads it.
#[derive(sqlx::FromRow)]
struct ClusterRow {
    name: String,
    data_centre: String,
    region: String,
    zone: String,
    network_domain: String,
    environment: String,
    labels: sqlx::types::Json<BTreeMap<String, String>>,
    condition: String,
    allocatable: sqlx::types::Json<BTreeMap<String, String>>,
}

/// One of the tenant's partitions, with tenancy's description of it (which names its project).
#[derive(sqlx::FromRow)]
struct PartitionRow {
    partition_id: Uuid,
    cluster: String,
    namespace: String,
    desired: Vec<u8>,
}

/// What federation has placed in a cluster, in thousandths.
#[derive(sqlx::FromRow)]
struct Placed {
    cluster: String,
    cpu_milli: i64,
    memory_milli: i64,
}

/// The binding API's domain side.
pub struct Bindings<'a> {
    pool: &'a PgPool,
    admission: &'a dyn Admission,
}

impl<'a> Bindings<'a> {
    /// Over the federation schema in `pool`, reserving quota through `admission`.
    pub fn new(pool: &'a PgPool, admission: &'a dyn Admission) -> Self {
        Self { pool, admission }
    }

    /// What placement knows of every cluster for `tenant`: health, attributes,
    /// the tenant's partitions, and free capacity (allocatable minus the
    /// requests of everything federation has placed there, other than `except`).
    pub(crate) async fn candidates(&self, tenant: Uuid, except: Option<Uuid>) -> Result<Vec<Candidate>> {
        self.candidates_weighing(tenant, except, true).await
    }

    /// The clusters as placement sees them; their free capacity only when
    /// `capacity` (otherwise it reads as all of their allocatable).
    async fn candidates_weighing(&self, tenant: Uuid, except: Option<Uuid>, capacity: bool) -> Result<Vec<Candidate>> {
        let rows = sqlx::query_as!(
            ClusterRow,
            r#"SELECT name, data_centre, region, zone, network_domain, environment, labels AS "labels: _", condition,
                      allocatable AS "allocatable: _"
               FROM clusters ORDER BY name"#,
        )
        .fetch_all(self.pool)
        .await?;
        let partitions = sqlx::query_as!(
            PartitionRow,
            "SELECT partition_id, cluster, namespace, desired FROM partitions WHERE tenant_id = $1 AND NOT deleted",
            tenant,
        )
        .fetch_all(self.pool)
        .await?;
        let placed = if capacity {
            sqlx::query_as!(
                Placed,
                r#"SELECT t.cluster,
                          COALESCE(SUM(t.replicas::BIGINT
                                       * COALESCE(r.replica_cpu_milli, b.replica_cpu_milli)), 0)::BIGINT
                              AS "cpu_milli!",
                          COALESCE(SUM(t.replicas::BIGINT
                                       * COALESCE(r.replica_memory_milli, b.replica_memory_milli)), 0)::BIGINT
                              AS "memory_milli!"
                   FROM binding_targets t JOIN bindings b ON b.id = t.binding_id
                   -- A held target requests what its revision's objects request.
                   LEFT JOIN binding_revisions r ON r.binding_id = t.binding_id AND r.revision = t.objects_revision
                   WHERE b.id IS DISTINCT FROM $1 GROUP BY t.cluster"#,
                except,
            )
            .fetch_all(self.pool)
            .await?
        } else {
            Vec::new()
        };
        let mut out = Vec::with_capacity(rows.len());
        for c in rows {
            let quantity = |r: &str| {
                c.allocatable
                    .get(r)
                    .and_then(|q| Quantity::parse(r, q).ok())
                    .map_or(0, |q| q.milli())
            };
            let used = placed
                .iter()
                .find(|p| p.cluster == c.name)
                .map_or_else(Resources::default, |p| Resources {
                    cpu_milli: p.cpu_milli,
                    memory_milli: p.memory_milli,
                });
            let partitions = partitions
                .iter()
                .filter(|p| p.cluster == c.name)
                .map(|p| {
                    let project = <paas_proto::v1::PartitionChanged as prost::Message>::decode(p.desired.as_slice())
                        .ok()
                        .and_then(|d| Uuid::parse_str(&d.project_id).ok());
                    PartitionRef {
                        id: p.partition_id,
                        namespace: p.namespace.clone(),
                        project,
                    }
                })
                .collect();
            out.push(Candidate {
                free: Resources {
                    cpu_milli: quantity("cpu") - used.cpu_milli,
                    memory_milli: quantity("memory") - used.memory_milli,
                },
                name: c.name,
                data_centre: c.data_centre,
                region: c.region,
                zone: c.zone,
                network_domain: c.network_domain,
                environment: c.environment,
                labels: c.labels.0,
                ready: c.condition == "Ready",
                partitions,
            });
        }
        Ok(out)
    }

    /// Creates or updates the binding `request.name` of the tenant: places it,
    /// reserves quota for every target whose amounts change (releasing them
    /// all if any is refused), then records it for the propagator. The same
    /// request again changes nothing. What changes is decided by
    /// [`plan::plan`]; this loads its inputs and carries it out.
    ///
    /// # Errors
    /// Bad input (field named); NotFound when the caller cannot see the
    /// tenant; PermissionDenied below developer; FailedPrecondition when no
    /// placement is possible; ResourceExhausted when quota or capacity refuse.
    pub async fn apply(&self, caller: &Caller, r: ApplyRequest) -> Result<(Binding, Vec<Target>)> {
        caller.require(r.tenant, Role::Developer, "tenant", r.tenant)?;
        // Nothing is placed for a tenant federation does not know (deleted,
        // or never created).
        crate::known_tenant::get(self.pool, caller, r.tenant).await?;
        let desired = Desired::parse(&r)?;
        let stored = self.stored(&desired).await?;
        let clusters = self
            .candidates_weighing(
                desired.tenant,
                stored.binding.as_ref().map(|b| b.id),
                desired.placement.weighs_capacity(),
            )
            .await?;
        let change = match plan::plan(&desired, &stored, &clusters, kernel::id::new_id())? {
            Plan::Unchanged(b) => return Ok((b.clone(), self.targets(b.id).await?)),
            Plan::Change(change) => change,
        };
        // Quota first: nothing is recorded (so nothing applied) unless every target is admitted.
        let mut reservations = Reservations::new(self.admission);
        let recorded = self.reserve_and_record(&desired, &change, &mut reservations).await;
        let binding = reservations.settle(recorded).await?;
        let targets = self.targets(change.id).await?;
        Ok((binding, targets))
    }

    /// The binding of `desired`'s name as stored, with its targets and
    /// (when the apply holds clusters) its revisions.
    async fn stored(&self, desired: &Desired) -> Result<Stored> {
        let binding = sqlx::query_as!(
            Binding,
            r#"SELECT id, tenant_id, project_id, name, objects AS "objects: _", placement AS "placement: _", replicas,
                    generation, deleted, failover_error, dr_tier, toleration_ms, singleton, revision, failback,
                    priority, created_at, updated_at
               FROM bindings WHERE tenant_id = $1 AND name = $2"#,
            desired.tenant,
            desired.name.as_str(),
        )
        .fetch_optional(self.pool)
        .await?;
        let Some(id) = binding.as_ref().map(|b| b.id) else {
            return Ok(Stored::default());
        };
        let targets = sqlx::query_as!(
            StoredTarget,
            r#"SELECT cluster, partition_id, replicas, removing, amounts AS "amounts: _", objects_revision
               FROM binding_targets WHERE binding_id = $1"#,
            id,
        )
        .fetch_all(self.pool)
        .await?;
        // Only a held cluster runs anything but the newest revision.
        let revisions = if desired.hold.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as!(
                StoredRevision,
                r#"SELECT revision, objects AS "objects: _" FROM binding_revisions WHERE binding_id = $1"#,
                id,
            )
            .fetch_all(self.pool)
            .await?
        };
        Ok(Stored {
            binding,
            targets,
            revisions,
        })
    }

    /// Reserves the change's quota, then records it; the reservations made
    /// are in `reservations`, for the caller to keep or release.
    async fn reserve_and_record(
        &self,
        desired: &Desired,
        change: &Change,
        reservations: &mut Reservations<'_>,
    ) -> Result<Binding> {
        for quota in &change.quota {
            reservations.reserve(quota).await.map_err(|e| match e {
                Error::ResourceExhausted(m) => Error::ResourceExhausted(format!(
                    "binding {} in cluster {}: {m}",
                    desired.name.as_str(),
                    quota.cluster
                )),
                other => other,
            })?;
        }
        self.record(desired, change, reservations.held()).await
    }

    /// Records the change in one transaction: the binding, its targets (with
    /// the reservations made for them), its new revision and pins, and
    /// forgets the revisions no target runs any more.
    async fn record(&self, desired: &Desired, change: &Change, reserved: &[Reservation]) -> Result<Binding> {
        let id = change.id;
        let generation = change.generation;
        let resilience = desired.resilience;
        let per = desired.per_replica;
        let name = desired.name.as_str();
        let replicas = desired.replicas as i32;
        let toleration_ms = resilience.toleration.as_millis() as i64;
        let mut tx = self.pool.begin().await?;
        let binding = if change.create {
            sqlx::query_as!(
                Binding,
                r#"INSERT INTO bindings (id, tenant_id, project_id, name, objects, placement, replicas,
                                        replica_cpu_milli, replica_memory_milli, dr_tier, toleration_ms, singleton,
                                        failback, priority, failback_confirmation)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                   ON CONFLICT (tenant_id, name) DO NOTHING
                   RETURNING id, tenant_id, project_id, name, objects AS "objects: _", placement AS "placement: _",
                           replicas, generation, deleted, failover_error, dr_tier, toleration_ms, singleton, revision,
                           failback, priority, created_at, updated_at"#,
                id,
                desired.tenant,
                desired.project,
                name,
                sqlx::types::Json(&desired.objects) as _,
                sqlx::types::Json(&desired.placement_as_given) as _,
                replicas,
                per.cpu_milli,
                per.memory_milli,
                resilience.tier.as_str(),
                toleration_ms,
                resilience.singleton,
                resilience.failback.as_str(),
                resilience.priority,
                resilience.failback_confirmation.as_str(),
            )
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::Conflict(format!("binding {name} was created meanwhile; apply again")))?
        } else {
            sqlx::query_as!(
                Binding,
                r#"UPDATE bindings SET project_id = $2, objects = $3, placement = $4, replicas = $5,
                          replica_cpu_milli = $6, replica_memory_milli = $7, generation = $8::bigint,
                          updated_at = now(),
                          dr_tier = $9, toleration_ms = $10, singleton = $11, failover_error = NULL,
                          failback = $12, priority = $13, revision = $14, failback_confirmation = $15
                   WHERE id = $1 AND generation = $8::bigint - 1 AND NOT deleted
                   RETURNING id, tenant_id, project_id, name, objects AS "objects: _", placement AS "placement: _",
                           replicas, generation, deleted, failover_error, dr_tier, toleration_ms, singleton, revision,
                           failback, priority, created_at, updated_at"#,
                id,
                desired.project,
                sqlx::types::Json(&desired.objects) as _,
                sqlx::types::Json(&desired.placement_as_given) as _,
                replicas,
                per.cpu_milli,
                per.memory_milli,
                generation,
                resilience.tier.as_str(),
                toleration_ms,
                resilience.singleton,
                resilience.failback.as_str(),
                resilience.priority,
                change.revision,
                resilience.failback_confirmation.as_str(),
            )
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::Conflict(format!("binding {name} changed meanwhile; apply again")))?
        };
        // Clusters no longer assigned, or assigned another partition: their objects go.
        let clusters: Vec<String> = change.targets.iter().map(|a| a.cluster.clone()).collect();
        sqlx::query!(
            "UPDATE binding_targets SET removing = true, generation = $2, next_attempt_at = now(), failures = 0
             WHERE binding_id = $1 AND NOT (cluster = ANY($3))",
            id,
            generation,
            &clusters,
        )
        .execute(&mut *tx)
        .await?;
        // A pending reservation this replaces was never committed: released by the propagator with it.
        write_targets(&mut tx, id, generation, &change.targets, reserved).await?;
        if change.new_revision {
            sqlx::query!(
                "INSERT INTO binding_revisions (binding_id, revision, objects, replica_cpu_milli, replica_memory_milli)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (binding_id, revision) DO NOTHING",
                id,
                change.revision,
                sqlx::types::Json(&desired.objects) as _,
                per.cpu_milli,
                per.memory_milli,
            )
            .execute(&mut *tx)
            .await?;
        }
        let (clusters, pins): (Vec<String>, Vec<Option<i64>>) =
            change.pins.iter().map(|(c, p)| (c.clone(), *p)).unzip();
        sqlx::query!(
            "UPDATE binding_targets t SET objects_revision = p.pin
             FROM unnest($2::text[], $3::bigint[]) AS p(cluster, pin)
             WHERE t.binding_id = $1 AND t.cluster = p.cluster",
            id,
            &clusters,
            // A NULL pin follows the newest revision.
            &pins as _,
        )
        .execute(&mut *tx)
        .await?;
        // Revisions no target runs any more (removed targets keep theirs until they are gone).
        sqlx::query!(
            "DELETE FROM binding_revisions r WHERE r.binding_id = $1 AND r.revision <> $2
               AND NOT EXISTS (SELECT 1 FROM binding_targets t
                               WHERE t.binding_id = r.binding_id AND t.objects_revision = r.revision)",
            id,
            change.revision,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(binding)
    }

    async fn targets(&self, id: Uuid) -> Result<Vec<Target>> {
        Ok(sqlx::query_as!(
            Target,
            r#"SELECT t.cluster, t.partition_id, t.namespace, t.replicas, t.removing, t.generation,
                      t.applied_generation, t.last_error, t.workloads AS "workloads: _",
                      NULLIF(t.synced_at, '-infinity') AS "synced_at?",
                      t.observed_at, c.condition AS "cluster_condition?",
                      c.last_contact_at AS "cluster_last_contact?",
                      COALESCE(t.objects_revision, b.revision) AS "objects_revision!"
               FROM binding_targets t JOIN bindings b ON b.id = t.binding_id LEFT JOIN clusters c ON c.name = t.cluster
               WHERE t.binding_id = $1 ORDER BY t.cluster"#,
            id,
        )
        .fetch_all(self.pool)
        .await?)
    }

    /// A binding the caller can see, with its clusters.
    ///
    /// # Errors
    /// NotFound when absent or of a tenant the caller cannot see.
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<(Binding, Vec<Target>)> {
        let b = sqlx::query_as!(
            Binding,
            r#"SELECT id, tenant_id, project_id, name, objects AS "objects: _", placement AS "placement: _", replicas,
                      generation, deleted, failover_error, dr_tier, toleration_ms, singleton, revision, failback,
                      priority, created_at, updated_at
               FROM bindings WHERE id = $1"#,
            id,
        )
        .fetch_optional(self.pool)
        .await?
        .filter(|b| caller.can_see(b.tenant_id))
        .ok_or_else(|| Error::not_found("binding", id))?;
        let targets = self.targets(id).await?;
        Ok((b, targets))
    }

    /// A page of the tenant's bindings, by id.
    ///
    /// # Errors
    /// NotFound when the caller cannot see the tenant.
    pub async fn list(
        &self,
        caller: &Caller,
        tenant: Uuid,
        page: Page,
    ) -> Result<(Vec<(Binding, Vec<Target>)>, String)> {
        crate::known_tenant::get(self.pool, caller, tenant).await?;
        let rows = sqlx::query_as!(
            Binding,
            r#"SELECT id, tenant_id, project_id, name, objects AS "objects: _", placement AS "placement: _", replicas,
                      generation, deleted, failover_error, dr_tier, toleration_ms, singleton, revision, failback,
                      priority, created_at, updated_at
               FROM bindings WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"#,
            tenant,
            page.after,
            page.fetch(),
        )
        .fetch_all(self.pool)
        .await?;
        let (rows, next) = page.finish(rows, |b| b.id);
        let mut out = Vec::with_capacity(rows.len());
        for b in rows {
            let targets = self.targets(b.id).await?;
            out.push((b, targets));
        }
        Ok((out, next))
    }

    /// Marks the binding deleted: the propagator removes its objects from
    /// every cluster, releases its quota, then forgets it.
    ///
    /// # Errors
    /// NotFound as [`Self::get`]; PermissionDenied below developer.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let (b, _) = self.get(caller, id).await?;
        caller.require(b.tenant_id, Role::Developer, "binding", id)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "UPDATE bindings SET deleted = true, generation = generation + 1, updated_at = now() WHERE id = $1",
            id,
        )
        .execute(&mut *tx)
        .await?;
        let targets = sqlx::query!(
            "UPDATE binding_targets SET removing = true, generation = generation + 1, next_attempt_at = now(),
             failures = 0 WHERE binding_id = $1",
            id,
        )
        .execute(&mut *tx)
        .await?;
        if targets.rows_affected() == 0 {
            sqlx::query!("DELETE FROM bindings WHERE id = $1", id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Records the targets `to` of generation `generation` (new ones, or
/// reassigned ones brought back from removal), with the reservations made
/// for them.
///
/// # Errors
/// The database fails.
pub(crate) async fn write_targets(
    tx: &mut sqlx::PgConnection,
    binding: Uuid,
    generation: i64,
    to: &[Assignment],
    reserved: &[Reservation],
) -> Result<()> {
    for a in to {
        let new = reserved.iter().find(|r| r.cluster == a.cluster);
        let replicas = a.replicas as i32;
        sqlx::query!(
            "INSERT INTO binding_targets (binding_id, cluster, partition_id, namespace, replicas, generation, amounts,
                                         reservation_id)
             VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, '{}'::jsonb), $8)
             ON CONFLICT (binding_id, cluster) DO UPDATE SET
                 removing = false, partition_id = EXCLUDED.partition_id, namespace = EXCLUDED.namespace,
                 replicas = EXCLUDED.replicas, generation = EXCLUDED.generation, next_attempt_at = now(), failures = 0,
                 amounts = CASE WHEN $8::uuid IS NULL THEN binding_targets.amounts ELSE EXCLUDED.amounts END,
                 reservation_id = COALESCE($8, binding_targets.reservation_id)",
            binding,
            &a.cluster,
            a.partition_id,
            &a.namespace,
            replicas,
            generation,
            new.map(|r| sqlx::types::Json(&r.amounts)) as _,
            new.map(|r| r.id),
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(replicas: u64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "resourceVersion": "9", "labels": {"app": "web"}},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                            {"name": "a", "image": "nginx", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                            {"name": "b", "image": "side", "resources": {"requests": {"cpu": "50m"}}}]}}},
               "status": {"replicas": 1}})
    }

    #[test]
    fn objects_are_checked_by_kind_and_name() {
        let ok =
            json!([deployment(3), {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}]).to_string();
        let objects = parse_objects(&ok).unwrap();
        assert_eq!(default_replicas(&objects), 3);
        let (per, pods) = per_replica(&objects).unwrap();
        assert_eq!(
            (per.cpu_milli, per.memory_milli, pods),
            (300, 64 * 1024 * 1024 * 1000, 1)
        );
        let amounts = amounts(per, pods, 4);
        assert_eq!(amounts["requests.cpu"], "1200m");
        assert_eq!(amounts["requests.memory"], (256u64 * 1024 * 1024).to_string());
        assert_eq!(amounts["pods"], "4");

        let bad_kind = json!([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}]).to_string();
        assert_eq!(parse_objects(&bad_kind).unwrap_err().field(), Some("objects[0].kind"));
        let twice = json!([deployment(1), deployment(2)]).to_string();
        assert_eq!(
            parse_objects(&twice).unwrap_err().field(),
            Some("objects[1].metadata.name")
        );
        assert_eq!(parse_objects("[]").unwrap_err().field(), Some("objects"));
    }

    #[test]
    fn a_partition_patch_applies_on_top_of_its_clusters_and_only_there() {
        let objects = parse_objects(
            &json!([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config-shop"},
                     "data": {"level": "info", "pool": "10"},
                     CLUSTER_PATCHES: {"eu-1": {"data": {"level": "warn", "pool": "20"}},
                                       "eu-1/acme-web": {"data": {"level": "debug"}}}}])
            .to_string(),
        )
        .unwrap();
        let id = Uuid::now_v7();
        let tenant = Uuid::now_v7();
        let gray = objects[0].for_target(id, "acme-web", 1, "eu-1", tenant, None).unwrap();
        assert_eq!(gray["data"], json!({"level": "debug", "pool": "20"}));
        let other = objects[0].for_target(id, "acme-api", 1, "eu-1", tenant, None).unwrap();
        assert_eq!(other["data"], json!({"level": "warn", "pool": "20"}));
        let us = objects[0].for_target(id, "acme-web", 1, "us-1", tenant, None).unwrap();
        assert_eq!(us["data"], json!({"level": "info", "pool": "10"}));
    }

    #[test]
    fn a_target_gets_its_cluster_patch_and_its_secrets_opened() {
        let key = kernel::seal::DeliveryKey::from_caller_key(&kernel::settings::Secret::new("k".repeat(32)));
        let tenant = Uuid::now_v7();
        let sealed = key.seal(&tenant.to_string(), b"hunter2");
        let eu = key.seal(&tenant.to_string(), b"eu-secret");
        let objects = parse_objects(
            &json!([{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-config-db"},
                     "data": {"password": sealed},
                     CLUSTER_PATCHES: {"eu-1": {"data": {"password": eu}}}}])
            .to_string(),
        )
        .unwrap();
        let id = Uuid::now_v7();
        let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
        let us = objects[0]
            .for_target(id, "acme-web", 1, "us-1", tenant, Some(&key))
            .unwrap();
        assert_eq!(us["data"]["password"], b64("hunter2"));
        assert!(us.get(CLUSTER_PATCHES).is_none());
        let eu = objects[0]
            .for_target(id, "acme-web", 1, "eu-1", tenant, Some(&key))
            .unwrap();
        assert_eq!(eu["data"]["password"], b64("eu-secret"));
        // Sealed for another tenant: refused, naming the value.
        let other = objects[0].for_target(id, "acme-web", 1, "us-1", Uuid::now_v7(), Some(&key));
        assert_eq!(other.unwrap_err().field(), Some("web-config-db.data.password"));
        assert!(objects[0].for_target(id, "acme-web", 1, "us-1", tenant, None).is_err());
        let plain =
            json!([{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "data": {"k": "aHVudGVyMg=="}}]);
        assert_eq!(
            parse_objects(&plain.to_string()).unwrap_err().field(),
            Some("objects[0].data.k")
        );
        // The stored objects keep only sealed text.
        assert!(!objects[0].body.to_string().contains("hunter2"));
    }

    #[test]
    fn merge_patches_merge_objects_and_remove_nulls() {
        let mut target = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge_patch(&mut target, &json!({"a": {"b": null, "e": 3}, "d": [2]}));
        assert_eq!(target, json!({"a": {"c": 2, "e": 3}, "d": [2]}));
    }

    #[test]
    fn a_cluster_gets_its_namespace_replicas_and_ownership_labels_without_server_fields() {
        let o = &parse_objects(&json!([deployment(3)]).to_string()).unwrap()[0];
        let id = Uuid::from_u128(1);
        let body = o.for_cluster(id, "acme-web", 2);
        assert_eq!(body["metadata"]["namespace"], "acme-web");
        assert_eq!(body["spec"]["replicas"], 2);
        assert_eq!(body["metadata"]["labels"]["paas.io/managed-by"], "federation");
        assert_eq!(body["metadata"]["labels"]["paas.io/binding"], id.to_string());
        assert_eq!(body["metadata"]["labels"]["app"], "web");
        assert!(body["metadata"].get("resourceVersion").is_none() && body.get("status").is_none());
        let mut marked = deployment(3);
        marked["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "NS", "value": format!("redis.{NAMESPACE_MARKER}.svc")}]);
        let objects = parse_objects(&json!([marked]).to_string()).unwrap();
        let body = objects[0].for_cluster(id, "acme-web", 2);
        assert_eq!(
            body["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "redis.acme-web.svc",
            "a chart's .Release.Namespace becomes the partition's"
        );
    }

    #[test]
    fn a_deployment_still_rolling_out_behind_old_pods_is_not_healthy() {
        let mut w = WorkloadStatus {
            kind: "Deployment".into(),
            name: "web".into(),
            desired: 1,
            updated: 1,
            ready: 1,
            available: 1,
            current: true,
            conditions: vec![],
            outdated: 0,
        };
        let target = |w: &WorkloadStatus| Target {
            cluster: "a".into(),
            partition_id: Uuid::nil(),
            namespace: "ns".into(),
            replicas: 1,
            removing: false,
            generation: 2,
            applied_generation: 2,
            last_error: None,
            workloads: sqlx::types::Json(vec![w.clone()]),
            synced_at: None,
            observed_at: Some(Utc::now()),
            cluster_condition: Some("Ready".into()),
            cluster_last_contact: Some(Utc::now()),
            objects_revision: 1,
        };
        assert_eq!(target(&w).health().0, Health::Healthy);
        let progressing = |reason: &str| {
            (
                "Progressing".to_string(),
                "True".to_string(),
                reason.to_string(),
                "m".to_string(),
            )
        };
        w.conditions = vec![progressing("ReplicaSetUpdated")];
        assert_eq!(
            target(&w).health().0,
            Health::Progressing,
            "the new pod is not up; the old one still counts as available"
        );
        w.conditions = vec![progressing("NewReplicaSetAvailable")];
        assert_eq!(target(&w).health().0, Health::Healthy);
    }

    #[test]
    fn fewer_replicas_placed_than_asked_is_not_healthy_and_copies_left_in_a_lost_cluster_are_degraded() {
        let web = |n: i32| WorkloadStatus {
            kind: "Deployment".into(),
            name: "web".into(),
            desired: n,
            updated: n,
            ready: n,
            available: n,
            current: true,
            conditions: vec![],
            outdated: 0,
        };
        let target = |cluster: &str, replicas: i32, removing: bool, condition: &str| Target {
            cluster: cluster.into(),
            partition_id: Uuid::nil(),
            namespace: "ns".into(),
            replicas,
            removing,
            generation: 2,
            applied_generation: 2,
            last_error: None,
            workloads: sqlx::types::Json(vec![web(replicas)]),
            synced_at: None,
            observed_at: Some(Utc::now()),
            cluster_condition: Some(condition.into()),
            cluster_last_contact: Some(Utc::now() - chrono::Duration::seconds(42)),
            objects_revision: 1,
        };
        let binding = |replicas: i32, placement: Value| Binding {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            project_id: None,
            name: "web".into(),
            objects: sqlx::types::Json(json!([])),
            placement: sqlx::types::Json(placement),
            replicas,
            generation: 2,
            deleted: false,
            failover_error: None,
            dr_tier: "auto-failover".into(),
            toleration_ms: 1000,
            singleton: false,
            revision: 1,
            failback: "automatic".into(),
            priority: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let policy = json!({"policy": {}});
        // The failback that once settled on 4 + 2 while 7 were asked for.
        let six = [target("dc1", 4, false, "Ready"), target("dc2", 2, false, "Ready")];
        let (h, why) = overall(&binding(7, policy.clone()), &six);
        assert_eq!((h, why.as_str()), (Health::Progressing, "6 of 7 replicas placed"));
        assert_eq!(overall(&binding(6, policy.clone()), &six).0, Health::Healthy);
        // An explicit placement gives each cluster its own count.
        assert_eq!(
            overall(
                &binding(4, json!({"explicit": [{"cluster": "dc1"}, {"cluster": "dc2"}]})),
                &six
            )
            .0,
            Health::Healthy
        );
        // After a failover: running in dc2 only, dc1's copy Unknown, not a removal in progress.
        let after = [target("dc1", 2, true, "Unknown"), target("dc2", 2, false, "Ready")];
        let (h, why) = overall(&binding(2, policy), &after);
        assert_eq!(h, Health::Degraded, "{why}");
        assert!(
            why.starts_with("running in dc2 only: dc1 is Unknown (last seen 42s ago)"),
            "{why}"
        );
        assert_eq!(after[0].health().0, Health::Unknown);
        assert!(
            after[0].health().1.contains("last seen 42s ago"),
            "{}",
            after[0].health().1
        );
    }
}
