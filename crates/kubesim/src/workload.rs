//! Workload controllers as the kube-controller-manager runs them, simplified:
//! Deployment -> ReplicaSets (pod-template-hash, rolling update with
//! maxSurge/maxUnavailable, Recreate), ReplicaSet -> Pods, StatefulSet ->
//! Pods `<name>-<ordinal>`, DaemonSet -> one Pod per node; their status and
//! conditions; plus per-kind validation and defaulting on write.
//!
//! Deployments honour `paused` (no rollout; Progressing Unknown
//! `DeploymentPaused`), `minReadySeconds` (a pod is available once Ready
//! that long) and `progressDeadlineSeconds` (Progressing False
//! `ProgressDeadlineExceeded` after that long without progress).
//!
//! A paused Deployment, or one scaled mid-rollout, is scaled proportionally
//! across its active ReplicaSets. Not simulated: revision history cleanup, StatefulSet OrderedReady ordering (pods are created in
//! parallel), volume claim templates.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::event::{self, Source, Type};
use crate::resource::{self, ResourceId};
use crate::selector::LabelSelector;
use crate::store::{self, State, Store, WriteOptions, meta_str};

/// The field manager controllers write as.
pub(crate) const MANAGER: &str = "kube-controller-manager";

/// 422 problems specific to a kind: `(field, message)`.
pub(crate) fn validate(rid: ResourceId, obj: &Value) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let workload = matches!(
        rid,
        resource::DEPLOYMENTS | resource::REPLICASETS | resource::STATEFULSETS | resource::DAEMONSETS
    );
    if workload {
        let spec = &obj["spec"];
        if let Some(r) = spec["replicas"].as_i64().filter(|r| *r < 0) {
            problems.push((
                "spec.replicas".into(),
                format!("Invalid value: {r}: must be greater than or equal to 0"),
            ));
        }
        if spec["selector"].is_object() {
            let selector = LabelSelector::from_object(&spec["selector"]);
            if selector.is_empty() {
                problems.push((
                    "spec.selector".into(),
                    "Invalid value: \"null\": empty selector is invalid for deployment".into(),
                ));
            } else if !selector.matches(&spec["template"]) {
                problems.push((
                    "spec.template.metadata.labels".into(),
                    format!(
                        "Invalid value: {}: `selector` does not match template `labels`",
                        spec["template"]["metadata"]["labels"]
                    ),
                ));
            }
        } else {
            problems.push(("spec.selector".into(), "Required value".into()));
        }
        if spec["template"]["spec"]["containers"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            problems.push(("spec.template.spec.containers".into(), "Required value".into()));
        }
    }
    if rid == resource::SERVICES {
        problems.extend(service_problems(obj));
    }
    if rid == resource::ENDPOINTS {
        problems.extend(endpoints_problems(obj));
    }
    if rid == resource::PODS && obj["spec"]["containers"].as_array().is_none_or(Vec::is_empty) {
        problems.push(("spec.containers".into(), "Required value".into()));
    }
    problems.extend(crate::defaults::validate(rid, obj));
    problems
}

/// 422 problems of an update against the object it replaces: a workload's
/// selector is immutable in `apps/v1` (the API server answers
/// `spec.selector: Invalid value: ...: field is immutable`).
pub(crate) fn validate_update(rid: ResourceId, old: &Value, new: &Value) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let workload = matches!(
        rid,
        resource::DEPLOYMENTS | resource::REPLICASETS | resource::STATEFULSETS | resource::DAEMONSETS
    );
    if workload && old["spec"]["selector"] != new["spec"]["selector"] {
        problems.push((
            "spec.selector".into(),
            format!("Invalid value: {}: field is immutable", new["spec"]["selector"]),
        ));
    }
    problems
}

/// What the API server drops before validating an update, as its Service
/// strategy does (`dropTypeDependentFields`): a Service turning into an
/// ExternalName loses the cluster IPs and node ports it was given, unless
/// the update sets them anew.
pub(crate) fn prepare_update(rid: ResourceId, old: &Value, new: &mut Value) {
    if rid != resource::SERVICES {
        return;
    }
    let had_node_ports = matches!(old["spec"]["type"].as_str(), Some("NodePort" | "LoadBalancer"));
    if new["spec"]["type"] == "ClusterIP" && had_node_ports {
        // A Service turning into a ClusterIP one gives its node ports back.
        for p in new["spec"]["ports"].as_array_mut().into_iter().flatten() {
            if let Some(m) = p.as_object_mut() {
                m.remove("nodePort");
            }
        }
        if let Some(m) = new["spec"].as_object_mut() {
            m.remove("externalTrafficPolicy");
            m.remove("allocateLoadBalancerNodePorts");
        }
    }
    if new["spec"]["type"] != "ExternalName" || old["spec"]["type"] == "ExternalName" {
        return;
    }
    let spec = &mut new["spec"];
    for field in ["clusterIP", "clusterIPs"] {
        if spec.get(field).is_some()
            && spec[field] == old["spec"][field]
            && let Some(m) = spec.as_object_mut()
        {
            m.remove(field);
        }
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.remove("nodePort");
        }
    }
}

const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];

/// Port problems shared by Services and Endpoints: numbers 1-65535, a known
/// protocol, DNS-1123 names, required and unique when there are several.
fn port_problems(ports: &[Value], path: &str, number: &str) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let field = |f: &str| format!("{path}[{i}].{f}");
        match p[number].as_i64() {
            Some(n) if (1..=65535).contains(&n) => {}
            Some(n) => problems.push((
                field(number),
                format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
            )),
            None => problems.push((field(number), "Required value".into())),
        }
        if let Some(protocol) = p["protocol"].as_str().filter(|p| !PROTOCOLS.contains(p)) {
            problems.push((
                field("protocol"),
                format!("Unsupported value: \"{protocol}\": supported values: \"SCTP\", \"TCP\", \"UDP\""),
            ));
        }
        let name = p["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            if ports.len() > 1 {
                problems.push((field("name"), "Required value".into()));
            }
        } else if !crate::store::is_dns_label(name) {
            problems.push((field("name"), format!("Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character")));
        } else if !names.insert(name.to_string()) {
            problems.push((field("name"), format!("Duplicate value: \"{name}\"")));
        }
    }
    problems
}

/// A Service: an ExternalName one needs a DNS name and has no cluster IP;
/// every port is valid.
fn service_problems(obj: &Value) -> Vec<(String, String)> {
    let spec = &obj["spec"];
    let mut problems = port_problems(
        spec["ports"].as_array().map_or(&[][..], Vec::as_slice),
        "spec.ports",
        "port",
    );
    if spec["type"] == "ExternalName" {
        let name = spec["externalName"].as_str().unwrap_or_default();
        let cname = name.strip_suffix('.').unwrap_or(name);
        if cname.is_empty() {
            problems.push(("spec.externalName".into(), "Required value".into()));
        } else if !is_dns_subdomain(cname) {
            problems.push(("spec.externalName".into(), format!("Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")));
        }
        if spec
            .get("clusterIP")
            .is_some_and(|ip| ip.as_str().is_some_and(|ip| !ip.is_empty()))
            || spec["clusterIPs"].as_array().is_some_and(|ips| !ips.is_empty())
        {
            problems.push((
                "spec.clusterIPs".into(),
                "Forbidden: may not be set for ExternalName services".into(),
            ));
        }
    }
    problems
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(crate::store::is_dns_label)
}

/// Endpoints: every address a valid IP outside the ranges Kubernetes
/// refuses for endpoints (unspecified, loopback, link-local and link-local
/// multicast: `ValidateNonSpecialIP`), every port valid.
fn endpoints_problems(obj: &Value) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (i, subset) in obj["subsets"].as_array().into_iter().flatten().enumerate() {
        for list in ["addresses", "notReadyAddresses"] {
            for (j, a) in subset[list].as_array().into_iter().flatten().enumerate() {
                let field = format!("subsets[{i}].{list}[{j}].ip");
                let raw = a["ip"].as_str().unwrap_or_default();
                match raw.parse::<std::net::IpAddr>() {
                    Err(_) => problems.push((field, format!("Invalid value: \"{raw}\": must be a valid IP address"))),
                    Ok(ip) => {
                        if let Some(why) = special_ip(ip) {
                            problems.push((field, format!("Invalid value: \"{raw}\": {why}")));
                        }
                    }
                }
            }
        }
        problems.extend(port_problems(
            subset["ports"].as_array().map_or(&[][..], Vec::as_slice),
            &format!("subsets[{i}].ports"),
            "port",
        ));
    }
    problems
}

/// Why Kubernetes refuses `ip` as an endpoint, if it does.
pub(crate) fn special_ip(ip: std::net::IpAddr) -> Option<&'static str> {
    use std::net::IpAddr;
    if ip.is_unspecified() {
        return Some("may not be unspecified (0.0.0.0)");
    }
    if ip.is_loopback() {
        return Some("may not be in the loopback range (127.0.0.0/8, ::1/128)");
    }
    let (link_local, link_local_multicast) = match ip {
        IpAddr::V4(v4) => (v4.is_link_local(), v4.octets()[..3] == [224, 0, 0]),
        IpAddr::V6(v6) => (
            (v6.segments()[0] & 0xffc0) == 0xfe80,
            (v6.segments()[0] & 0xff0f) == 0xff02,
        ),
    };
    if link_local {
        return Some("may not be in the link-local range (169.254.0.0/16, fe80::/10)");
    }
    if link_local_multicast {
        return Some("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)");
    }
    None
}

/// Defaults the API server fills in on write.
pub(crate) fn default_object(rid: ResourceId, obj: &mut Value, st: &State) {
    match rid {
        resource::NAMESPACES => {
            let name = meta_str(obj, "name").to_string();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            obj["spec"]["finalizers"] = json!(["kubernetes"]);
            if obj["metadata"].get("deletionTimestamp").is_none() {
                obj["status"] = json!({ "phase": "Active" });
            }
        }
        resource::DEPLOYMENTS => {
            default_replicas(obj);
            let spec = &mut obj["spec"];
            if !spec["strategy"].is_object() {
                spec["strategy"] = json!({ "type": "RollingUpdate" });
            }
            if spec["strategy"]["type"] == "RollingUpdate" {
                let ru = &mut spec["strategy"]["rollingUpdate"];
                if !ru.is_object() {
                    *ru = json!({});
                }
                if ru.get("maxSurge").is_none() {
                    ru["maxSurge"] = json!("25%");
                }
                if ru.get("maxUnavailable").is_none() {
                    ru["maxUnavailable"] = json!("25%");
                }
            }
            for (field, value) in [("revisionHistoryLimit", 10), ("progressDeadlineSeconds", 600)] {
                if spec.get(field).is_none() {
                    spec[field] = json!(value);
                }
            }
        }
        resource::REPLICASETS | resource::STATEFULSETS => default_replicas(obj),
        resource::PODS => {
            if obj["spec"].get("restartPolicy").is_none() {
                obj["spec"]["restartPolicy"] = json!("Always");
            }
            if obj["status"]["phase"].is_null() {
                obj["status"] = json!({ "phase": "Pending", "qosClass": qos_class(obj) });
            }
        }
        resource::SERVICES => {
            if obj["spec"].get("type").is_none() {
                obj["spec"]["type"] = json!("ClusterIP");
            }
            default_ports(&mut obj["spec"]["ports"], true);
            // An ExternalName Service is a DNS CNAME: it gets no cluster IP.
            if obj["spec"]["type"] != "ExternalName" && obj["spec"].get("clusterIP").is_none() {
                let n = st.map(resource::SERVICES).len() + 1;
                let ip = format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 1);
                obj["spec"]["clusterIP"] = json!(ip);
                obj["spec"]["clusterIPs"] = json!([ip]);
            }
            default_service_policies(&mut obj["spec"]);
            allocate_node_ports(obj, st);
        }
        resource::ENDPOINTS => {
            for subset in obj["subsets"].as_array_mut().into_iter().flatten() {
                default_ports(&mut subset["ports"], false);
            }
        }
        _ => {}
    }
    crate::defaults::default_object(rid, obj, st);
}

/// The policies the API server defaults on a Service: session affinity,
/// the IP family of its cluster IP, and the traffic policies.
fn default_service_policies(spec: &mut Value) {
    let kind = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    if spec.get("sessionAffinity").is_none_or(Value::is_null) {
        spec["sessionAffinity"] = json!("None");
    }
    if kind == "ExternalName" {
        return;
    }
    for (field, value) in [
        ("ipFamilies", json!(["IPv4"])),
        ("ipFamilyPolicy", json!("SingleStack")),
        ("internalTrafficPolicy", json!("Cluster")),
    ] {
        if spec.get(field).is_none_or(Value::is_null) {
            spec[field] = value;
        }
    }
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer")
        && spec.get("externalTrafficPolicy").is_none_or(Value::is_null)
    {
        spec["externalTrafficPolicy"] = json!("Cluster");
    }
    if kind == "LoadBalancer" && spec.get("allocateLoadBalancerNodePorts").is_none_or(Value::is_null) {
        spec["allocateLoadBalancerNodePorts"] = json!(true);
    }
}

/// The API server's node port range (`--service-node-port-range`).
const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

/// Gives each port of a NodePort (or LoadBalancer) Service that has none a
/// free node port from the range, as the API server's allocator does.
fn allocate_node_ports(obj: &mut Value, st: &State) {
    let kind = obj["spec"]["type"].as_str().unwrap_or_default();
    let wanted =
        kind == "NodePort" || (kind == "LoadBalancer" && obj["spec"]["allocateLoadBalancerNodePorts"] != false);
    if !wanted {
        return;
    }
    let me = (
        meta_str(obj, "namespace").to_string(),
        meta_str(obj, "name").to_string(),
    );
    let mut used: std::collections::BTreeSet<i64> = st
        .map(resource::SERVICES)
        .values()
        .filter(|s| (meta_str(s, "namespace"), meta_str(s, "name")) != (me.0.as_str(), me.1.as_str()))
        .flat_map(|s| s["spec"]["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["nodePort"].as_i64())
        .collect();
    used.extend(
        obj["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["nodePort"].as_i64()),
    );
    // Start from a name-derived port, so allocations spread over the range
    // as the real allocator's random picks do, but stay reproducible.
    let span = NODE_PORTS.end() - NODE_PORTS.start() + 1;
    let seed = me.1.bytes().fold(0_i64, |h, b| (h * 31 + i64::from(b)) % span);
    for p in obj["spec"]["ports"].as_array_mut().into_iter().flatten() {
        if p["nodePort"].as_i64().is_some_and(|n| n > 0) {
            continue;
        }
        if let Some(port) = (0..span)
            .map(|i| NODE_PORTS.start() + (seed + i) % span)
            .find(|n| !used.contains(n))
        {
            p["nodePort"] = json!(port);
            used.insert(port);
        }
    }
}

/// Ports default to TCP; a Service's target port to its port.
fn default_ports(ports: &mut Value, target: bool) {
    for p in ports.as_array_mut().into_iter().flatten() {
        if p.get("protocol").is_none() {
            p["protocol"] = json!("TCP");
        }
        if target && p.get("targetPort").is_none() {
            p["targetPort"] = p["port"].clone();
        }
    }
}

fn default_replicas(obj: &mut Value) {
    if obj["spec"].get("replicas").is_none_or(Value::is_null) {
        obj["spec"]["replicas"] = json!(1);
    }
}

fn qos_class(pod: &Value) -> &'static str {
    let containers = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
    let any = containers.iter().any(|c| {
        c["resources"]["requests"].as_object().is_some_and(|m| !m.is_empty())
            || c["resources"]["limits"].as_object().is_some_and(|m| !m.is_empty())
    });
    if any { "Burstable" } else { "BestEffort" }
}

pub(crate) fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Ready for at least `min_ready_seconds` (the pod's Ready transition time
/// has second precision, so availability may come up to a second early).
fn is_available(pod: &Value, min_ready_seconds: i64) -> bool {
    if min_ready_seconds <= 0 {
        return is_ready(pod);
    }
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter().any(|c| {
            c["type"] == "Ready"
                && c["status"] == "True"
                && crate::job::time(&c["lastTransitionTime"])
                    .is_some_and(|t| chrono::Utc::now() - t >= chrono::Duration::seconds(min_ready_seconds))
        })
    })
}

pub(crate) fn is_active(pod: &Value) -> bool {
    pod["metadata"].get("deletionTimestamp").is_none()
        && !matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

pub(crate) fn owned(store: &Store, rid: ResourceId, ns: &str, uid: &str) -> Vec<Arc<Value>> {
    store.lock().controlled_by(uid, rid, ns)
}

pub(crate) fn owner_ref(owner: &Value) -> Value {
    json!([{
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    }])
}

fn replicas(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1)
}

pub(crate) fn status_i64(obj: &Value, field: &str) -> i64 {
    obj["status"][field].as_i64().unwrap_or(0)
}

pub(crate) fn deleting(obj: &Value) -> bool {
    obj["metadata"].get("deletionTimestamp").is_some()
}

/// The pod-template-hash of a template: FNV-1a of its JSON, each decimal
/// digit encoded in the alphabet Kubernetes uses for safe names.
pub(crate) fn template_hash(template: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hash: u32 = 0x811c_9dc5;
    for b in template.to_string().bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash.to_string()
        .bytes()
        .map(|d| ALPHABET[usize::from(d - b'0')] as char)
        .collect()
}

/// A condition keeping its transition time while its status is unchanged.
pub(crate) fn condition(previous: &Value, kind: &str, status: bool, reason: &str, message: &str) -> Value {
    let status = if status { "True" } else { "False" };
    let prev = previous["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .cloned();
    let now = store::now();
    let (transition, update) = match &prev {
        Some(p) if p["status"] == status => {
            let t = p["lastTransitionTime"].clone();
            let u = if p["reason"] == reason && p["message"] == message {
                p["lastUpdateTime"].clone()
            } else {
                json!(now)
            };
            (t, u)
        }
        _ => (json!(now), json!(now)),
    };
    json!({
        "type": kind, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": transition, "lastUpdateTime": update,
    })
}

pub(crate) fn write_status(store: &Store, rid: ResourceId, obj: &Value, status: Value) {
    if obj.get("status") == Some(&status) {
        return;
    }
    let (ns, name) = (meta_str(obj, "namespace"), meta_str(obj, "name"));
    let _ = store.modify(rid, ns, name, &WriteOptions::by(MANAGER).status(), |cur| {
        let mut c = cur.clone();
        c["status"] = status;
        Ok(c)
    });
}

/// The Deployment's replicas when a ReplicaSet was last sized by it.
const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas plus maxSurge at that time.
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

fn annotated(obj: &Value, key: &str) -> Option<i64> {
    obj["metadata"]["annotations"][key].as_str()?.parse().ok()
}

/// The Deployment controller's `scale`: a single active ReplicaSet (or,
/// with none, the new or newest one) takes the Deployment's replicas; a
/// saturated new ReplicaSet leaves the old ones at zero; otherwise a
/// rolling Deployment's replicas (plus maxSurge) are shared among the
/// active ReplicaSets in proportion to their sizes, by the
/// `max-replicas` annotation each carries, the rounding leftover going to
/// the largest (newest when scaling up, oldest when scaling down).
#[allow(clippy::too_many_arguments)]
fn scale_proportionally(
    store: &Store,
    d: &Value,
    new_rs: Option<&Arc<Value>>,
    sets: &[Arc<Value>],
    desired: i64,
    surge: i64,
    recreate: bool,
) {
    let mut active: Vec<&Arc<Value>> = sets.iter().filter(|rs| replicas(rs) > 0).collect();
    let lone = match active.as_slice() {
        [one] => Some(*one),
        [] => new_rs.or_else(|| sets.iter().max_by(|a, b| created(a).cmp(created(b)))),
        _ => None,
    };
    if let Some(rs) = lone {
        resize(store, d, rs, desired, surge);
        return;
    }
    if let Some(new_rs) = new_rs
        && replicas(new_rs) == desired
        && status_i64(new_rs, "availableReplicas") == desired
    {
        for rs in active
            .iter()
            .filter(|rs| meta_str(rs, "name") != meta_str(new_rs, "name"))
        {
            resize(store, d, rs, 0, surge);
        }
        return;
    }
    if recreate {
        return;
    }
    let total: i64 = active.iter().map(|rs| replicas(rs)).sum();
    let allowed = if desired > 0 { desired + surge } else { 0 };
    let to_add = allowed - total;
    // Larger first; among equals the newer when scaling up, the older when down.
    active.sort_by(|a, b| {
        let by_age = if to_add > 0 {
            created(b).cmp(created(a))
        } else {
            created(a).cmp(created(b))
        };
        replicas(b).cmp(&replicas(a)).then(by_age)
    });
    let mut added = 0;
    let mut sizes: Vec<i64> = Vec::with_capacity(active.len());
    for rs in &active {
        let proportion = if to_add == 0 || to_add == added {
            0
        } else {
            let fraction = if desired == 0 {
                -replicas(rs)
            } else {
                let before = annotated(rs, MAX_REPLICAS)
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| status_i64(d, "replicas"));
                if before == 0 {
                    0
                } else {
                    #[expect(clippy::cast_precision_loss, reason = "replica counts are far below 2^52")]
                    #[expect(clippy::cast_possible_truncation, reason = "the result is a replica count")]
                    let scaled = ((replicas(rs) * (desired + surge)) as f64 / before as f64).round() as i64;
                    scaled - replicas(rs)
                }
            };
            let room = to_add - added;
            if to_add > 0 {
                fraction.min(room)
            } else {
                fraction.max(room)
            }
        };
        sizes.push(replicas(rs) + proportion);
        added += proportion;
    }
    if let Some(first) = sizes.first_mut()
        && to_add != 0
    {
        *first = (*first + to_add - added).max(0);
    }
    for (rs, size) in active.iter().zip(sizes) {
        resize(store, d, rs, size, surge);
    }
}

fn created(obj: &Value) -> &str {
    meta_str(obj, "creationTimestamp")
}

/// Sizes a ReplicaSet for its Deployment, recording the Deployment's
/// replicas and maximum in its annotations as the controller does.
fn resize(store: &Store, d: &Value, rs: &Value, n: i64, surge: i64) {
    let desired = replicas(d);
    if annotated(rs, DESIRED_REPLICAS) != Some(desired) || annotated(rs, MAX_REPLICAS) != Some(desired + surge) {
        let _ = store.modify(
            resource::REPLICASETS,
            meta_str(rs, "namespace"),
            meta_str(rs, "name"),
            &WriteOptions::by(MANAGER),
            |cur| {
                let mut c = cur.clone();
                c["metadata"]["annotations"][DESIRED_REPLICAS] = json!(desired.to_string());
                c["metadata"]["annotations"][MAX_REPLICAS] = json!((desired + surge).to_string());
                Ok(c)
            },
        );
    }
    write_replicas(store, resource::REPLICASETS, rs, n);
}

/// The annotation carrying a rollout's revision, on the Deployment and its ReplicaSets.
const REVISION: &str = "deployment.kubernetes.io/revision";

fn revision_of(obj: &Value) -> i64 {
    obj["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Keeps the revision annotations as the Deployment controller does: the
/// current ReplicaSet carries the newest revision (a rollback to an older
/// template gives its ReplicaSet the next one), and the Deployment the
/// revision of its current ReplicaSet (`kubectl rollout history` reads both).
fn sync_revision(store: &Store, d: &Value, new_rs: &Value, sets: &[Arc<Value>]) {
    let newest_other = sets
        .iter()
        .filter(|rs| meta_str(rs, "name") != meta_str(new_rs, "name"))
        .map(|rs| revision_of(rs))
        .max()
        .unwrap_or(0);
    let mut revision = revision_of(new_rs);
    if revision <= newest_other {
        revision = newest_other + 1;
        let _ = store.modify(
            resource::REPLICASETS,
            meta_str(new_rs, "namespace"),
            meta_str(new_rs, "name"),
            &WriteOptions::by(MANAGER),
            |cur| {
                let mut c = cur.clone();
                c["metadata"]["annotations"][REVISION] = json!(revision.to_string());
                Ok(c)
            },
        );
    }
    if revision_of(d) != revision {
        let _ = store.modify(
            resource::DEPLOYMENTS,
            meta_str(d, "namespace"),
            meta_str(d, "name"),
            &WriteOptions::by(MANAGER),
            |cur| {
                let mut c = cur.clone();
                c["metadata"]["annotations"][REVISION] = json!(revision.to_string());
                Ok(c)
            },
        );
    }
}

/// Scales a Deployment's ReplicaSet, reporting `ScalingReplicaSet` on the Deployment.
fn write_replicas(store: &Store, rid: ResourceId, obj: &Value, n: i64) {
    let from = replicas(obj);
    if from == n {
        return;
    }
    let (ns, name) = (meta_str(obj, "namespace"), meta_str(obj, "name"));
    let scaled = store.modify(rid, ns, name, &WriteOptions::by(MANAGER), |cur| {
        let mut c = cur.clone();
        c["spec"]["replicas"] = json!(n);
        Ok(c)
    });
    let owner = obj["metadata"]["ownerReferences"][0]["name"]
        .as_str()
        .unwrap_or_default();
    if scaled.is_ok()
        && let Ok(d) = store.get(resource::DEPLOYMENTS, ns, owner)
    {
        let direction = if n > from { "up" } else { "down" };
        event::record(
            store,
            &d,
            Type::Normal,
            "ScalingReplicaSet",
            &format!("Scaled {direction} replica set {name} from {from} to {n}"),
            Source::controller("deployment-controller"),
        );
    }
}

/// Reports a pod created (`SuccessfulCreate`) or refused (`FailedCreate`) on its controller.
fn report_create(store: &Store, owner: &Value, controller: &str, result: &crate::status::Result<Arc<Value>>) {
    let (kind, reason, message) = match result {
        Ok(p) => (
            Type::Normal,
            "SuccessfulCreate",
            format!("Created pod: {}", meta_str(p, "name")),
        ),
        Err(e) => (Type::Warning, "FailedCreate", format!("Error creating: {e}")),
    };
    event::record(store, owner, kind, reason, &message, Source::controller(controller));
}

pub(crate) fn pod_from_template(owner: &Value, template: &Value, extra_labels: &[(&str, String)]) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": template.get("metadata").cloned().unwrap_or_else(|| json!({})),
        "spec": template["spec"].clone(),
    });
    if !pod["metadata"]["labels"].is_object() {
        pod["metadata"]["labels"] = json!({});
    }
    for (k, v) in extra_labels {
        pod["metadata"]["labels"][*k] = json!(v);
    }
    pod["metadata"]["ownerReferences"] = owner_ref(owner);
    pod
}

/// One pass of the ReplicaSet controller.
pub(crate) fn reconcile_replicasets(store: &Store) {
    for rs in store.all(resource::REPLICASETS) {
        if deleting(&rs) {
            continue;
        }
        let (ns, name, uid) = (meta_str(&rs, "namespace"), meta_str(&rs, "name"), meta_str(&rs, "uid"));
        let desired = usize::try_from(replicas(&rs)).unwrap_or(0);
        let mut pods: Vec<Arc<Value>> = owned(store, resource::PODS, ns, uid)
            .into_iter()
            .filter(|p| is_active(p))
            .collect();
        let mut failure = None;
        while pods.len() < desired {
            let mut pod = pod_from_template(&rs, &rs["spec"]["template"], &[]);
            pod["metadata"]["generateName"] = json!(format!("{name}-"));
            let created = store.create(resource::PODS, ns, pod, &WriteOptions::by(MANAGER));
            report_create(store, &rs, "replicaset-controller", &created);
            match created {
                Ok(p) => pods.push(p),
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        if pods.len() > desired {
            pods.sort_by(|a, b| {
                is_ready(a)
                    .cmp(&is_ready(b))
                    .then_with(|| meta_str(b, "creationTimestamp").cmp(meta_str(a, "creationTimestamp")))
            });
            let extra = pods.len() - desired;
            for pod in pods.drain(..extra) {
                if store
                    .delete(resource::PODS, ns, meta_str(&pod, "name"), false, false)
                    .is_ok()
                {
                    event::record(
                        store,
                        &rs,
                        Type::Normal,
                        "SuccessfulDelete",
                        &format!("Deleted pod: {}", meta_str(&pod, "name")),
                        Source::controller("replicaset-controller"),
                    );
                }
            }
        }
        let ready = pods.iter().filter(|p| is_ready(p)).count();
        let min_ready = rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
        let available = pods.iter().filter(|p| is_available(p, min_ready)).count();
        let mut status = json!({
            "replicas": pods.len(),
            "fullyLabeledReplicas": pods.len(),
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": rs["metadata"]["generation"],
        });
        if let Some(message) = failure {
            status["conditions"] = json!([condition(
                &rs["status"],
                "ReplicaFailure",
                true,
                "FailedCreate",
                &message
            )]);
        }
        write_status(store, resource::REPLICASETS, &rs, status);
    }
}

/// `maxSurge`/`maxUnavailable`: an int or a percentage of `total`.
fn resolve(value: &Value, total: i64, round_up: bool) -> i64 {
    match value {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(pct) if round_up => (pct * total + 99) / 100,
            Some(pct) => pct * total / 100,
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

/// One pass of the Deployment controller.
pub(crate) fn reconcile_deployments(store: &Store) {
    for d in store.all(resource::DEPLOYMENTS) {
        if deleting(&d) {
            continue;
        }
        let (ns, name, uid) = (meta_str(&d, "namespace"), meta_str(&d, "name"), meta_str(&d, "uid"));
        let desired = replicas(&d);
        let hash = template_hash(&d["spec"]["template"]);
        let mut sets = owned(store, resource::REPLICASETS, ns, uid);
        sets.sort_by(|a, b| meta_str(a, "creationTimestamp").cmp(meta_str(b, "creationTimestamp")));
        let is_new = |rs: &Value| rs["metadata"]["labels"]["pod-template-hash"] == hash.as_str();
        let recreate = d["spec"]["strategy"]["type"] == "Recreate";
        // A paused Deployment starts no rollout and scales nothing.
        let paused = d["spec"]["paused"] == true;
        let (surge, unavailable) = if recreate {
            (0, desired)
        } else {
            let ru = &d["spec"]["strategy"]["rollingUpdate"];
            let s = resolve(&ru["maxSurge"], desired, true);
            let u = resolve(&ru["maxUnavailable"], desired, false);
            (s, if s == 0 && u == 0 { 1 } else { u })
        };

        // A paused Deployment, and one whose replicas changed under its
        // ReplicaSets (a scaling event), is scaled rather than rolled out.
        let scaling_event = sets
            .iter()
            .any(|rs| replicas(rs) > 0 && annotated(rs, DESIRED_REPLICAS).is_some_and(|n| n != desired));
        if paused || scaling_event {
            let new_rs = sets.iter().find(|rs| is_new(rs));
            scale_proportionally(store, &d, new_rs, &sets, desired, surge, recreate);
        }
        if !paused && !scaling_event && !sets.iter().any(|rs| is_new(rs)) {
            let revision = sets
                .iter()
                .filter_map(|rs| {
                    rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                        .as_str()?
                        .parse::<i64>()
                        .ok()
                })
                .max()
                .unwrap_or(0)
                + 1;
            let mut template = d["spec"]["template"].clone();
            template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            let mut selector = d["spec"]["selector"].clone();
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let rs = json!({
                "metadata": {
                    "name": format!("{name}-{hash}"),
                    "labels": template["metadata"]["labels"],
                    "annotations": {
                        "deployment.kubernetes.io/revision": revision.to_string(),
                        "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                        "deployment.kubernetes.io/max-replicas": (desired + surge).to_string(),
                    },
                    "ownerReferences": owner_ref(&d),
                },
                "spec": {
                    "replicas": 0, "selector": selector, "template": template,
                    "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
                },
            });
            if let Ok(created) = store.create(resource::REPLICASETS, ns, rs, &WriteOptions::by(MANAGER)) {
                sets.push(created);
            }
        }
        if let Some(new_rs) = sets
            .iter()
            .find(|rs| is_new(rs))
            .cloned()
            .filter(|_| !paused && !scaling_event)
        {
            let old: Vec<&Arc<Value>> = sets.iter().filter(|rs| !is_new(rs)).collect();

            if recreate {
                let old_running: i64 = old.iter().map(|rs| status_i64(rs, "replicas")).sum();
                for rs in &old {
                    write_replicas(store, resource::REPLICASETS, rs, 0);
                }
                if old_running == 0 {
                    write_replicas(store, resource::REPLICASETS, &new_rs, desired);
                }
            } else {
                let total: i64 = sets.iter().map(|rs| replicas(rs)).sum();
                let new_now = replicas(&new_rs);
                let new_target = if new_now >= desired {
                    desired
                } else {
                    let room = (desired + surge - total).max(0);
                    (new_now + room).min(desired)
                };
                write_replicas(store, resource::REPLICASETS, &new_rs, new_target);
                let all_after: i64 = total - new_now + new_target;
                let new_unavailable = (new_target - status_i64(&new_rs, "availableReplicas")).max(0);
                let mut can_remove = all_after - (desired - unavailable) - new_unavailable;
                for rs in &old {
                    let current = replicas(rs);
                    // Old pods that are not available can always go.
                    let unhealthy = (current - status_i64(rs, "availableReplicas")).max(0);
                    let remove = (unhealthy + can_remove.max(0)).min(current);
                    can_remove -= (remove - unhealthy).max(0);
                    write_replicas(store, resource::REPLICASETS, rs, current - remove);
                }
            }
        }

        if !paused && let Some(new_rs) = sets.iter().find(|rs| is_new(rs)) {
            sync_revision(store, &d, new_rs, &sets);
        }
        let sets = owned(store, resource::REPLICASETS, ns, uid);
        let new_rs = sets.iter().find(|rs| is_new(rs));
        let sum = |f: &str| sets.iter().map(|rs| status_i64(rs, f)).sum::<i64>();
        let spec_total: i64 = sets.iter().map(|rs| replicas(rs)).sum();
        let (replicas_now, ready, available) = (sum("replicas"), sum("readyReplicas"), sum("availableReplicas"));
        let updated = new_rs.map_or(0, |rs| status_i64(rs, "replicas"));
        let new_name = format!("{name}-{hash}");
        let complete = updated == desired && replicas_now == desired && available == desired;
        let mut conditions = vec![
            if available >= desired - unavailable {
                condition(
                    &d["status"],
                    "Available",
                    true,
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                )
            } else {
                condition(
                    &d["status"],
                    "Available",
                    false,
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                )
            },
            progressing(
                &d,
                &new_name,
                complete,
                paused,
                [replicas_now, updated, ready, available],
            ),
        ];
        let failure = sets.iter().find_map(|rs| {
            rs["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "ReplicaFailure")
                .cloned()
        });
        if let Some(f) = failure {
            conditions.push(condition(
                &d["status"],
                "ReplicaFailure",
                true,
                f["reason"].as_str().unwrap_or("FailedCreate"),
                f["message"].as_str().unwrap_or_default(),
            ));
        }
        let status = json!({
            "observedGeneration": d["metadata"]["generation"],
            "replicas": replicas_now,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": (spec_total.max(desired) - available).max(0),
            "conditions": conditions,
        });
        write_status(store, resource::DEPLOYMENTS, &d, status);
    }
}

/// The Progressing condition, as the Deployment controller keeps it: True
/// with `NewReplicaSetAvailable` once complete; `Unknown`/`DeploymentPaused`
/// while paused; True with `ReplicaSetUpdated`, its `lastUpdateTime` moved
/// on by every change in the rollout's counts; False with
/// `ProgressDeadlineExceeded` once `progressDeadlineSeconds` pass without one.
fn progressing(d: &Value, new_name: &str, complete: bool, paused: bool, counts: [i64; 4]) -> Value {
    let previous = &d["status"];
    let before = previous["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"))
        .cloned();
    let now = store::now();
    let keep_or = |status: &str, reason: &str, message: String| {
        if let Some(c) = before
            .as_ref()
            .filter(|c| c["status"] == status && c["reason"] == reason)
        {
            return c.clone();
        }
        json!({
            "type": "Progressing", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": before
                .as_ref()
                .filter(|c| c["status"] == status)
                .map_or_else(|| json!(now), |c| c["lastTransitionTime"].clone()),
            "lastUpdateTime": now,
        })
    };
    if paused {
        return keep_or("Unknown", "DeploymentPaused", "Deployment is paused".into());
    }
    if complete {
        return condition(
            previous,
            "Progressing",
            true,
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{new_name}\" has successfully progressed."),
        );
    }
    let was = |f: &str| previous[f].as_i64().unwrap_or(0);
    let moved = counts
        != [
            was("replicas"),
            was("updatedReplicas"),
            was("readyReplicas"),
            was("availableReplicas"),
        ]
        || previous["observedGeneration"] != d["metadata"]["generation"];
    let resumed = before.as_ref().is_some_and(|c| c["reason"] == "DeploymentPaused");
    if moved || resumed || before.is_none() {
        let (reason, message) = if resumed {
            ("DeploymentResumed", "Deployment is resumed".to_string())
        } else {
            (
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{new_name}\" is progressing."),
            )
        };
        let mut c = keep_or("True", reason, message);
        c["lastUpdateTime"] = json!(now);
        return c;
    }
    let last = before
        .as_ref()
        .and_then(|c| crate::job::time(&c["lastUpdateTime"]))
        .unwrap_or_else(chrono::Utc::now);
    let deadline = d["spec"]["progressDeadlineSeconds"].as_i64().unwrap_or(600);
    if chrono::Utc::now() - last > chrono::Duration::seconds(deadline) {
        return keep_or(
            "False",
            "ProgressDeadlineExceeded",
            format!("ReplicaSet \"{new_name}\" has timed out progressing."),
        );
    }
    before.unwrap_or_else(|| {
        condition(
            previous,
            "Progressing",
            true,
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{new_name}\" is progressing."),
        )
    })
}

/// One pass of the StatefulSet controller.
pub(crate) fn reconcile_statefulsets(store: &Store) {
    for sts in store.all(resource::STATEFULSETS) {
        if deleting(&sts) {
            continue;
        }
        let (ns, name, uid) = (
            meta_str(&sts, "namespace"),
            meta_str(&sts, "name"),
            meta_str(&sts, "uid"),
        );
        let desired = usize::try_from(replicas(&sts)).unwrap_or(0);
        let revision = format!("{name}-{}", template_hash(&sts["spec"]["template"]));
        let pods = owned(store, resource::PODS, ns, uid);
        let ordinal = |p: &Value| {
            meta_str(p, "name")
                .rsplit_once('-')
                .and_then(|(_, o)| o.parse::<usize>().ok())
                .unwrap_or(usize::MAX)
        };
        let mut failure = None;
        for i in 0..desired {
            if pods.iter().any(|p| ordinal(p) == i) {
                continue;
            }
            let pod_name = format!("{name}-{i}");
            let mut pod = pod_from_template(
                &sts,
                &sts["spec"]["template"],
                &[
                    ("controller-revision-hash", revision.clone()),
                    ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
                ],
            );
            pod["metadata"]["name"] = json!(pod_name);
            pod["spec"]["hostname"] = json!(pod_name);
            let created = store.create(resource::PODS, ns, pod, &WriteOptions::by(MANAGER));
            let (kind, reason, message) = match &created {
                Ok(_) => (
                    Type::Normal,
                    "SuccessfulCreate",
                    format!("create Pod {pod_name} in StatefulSet {name} successful"),
                ),
                Err(e) => (
                    Type::Warning,
                    "FailedCreate",
                    format!("create Pod {pod_name} in StatefulSet {name} failed error: {e}"),
                ),
            };
            event::record(
                store,
                &sts,
                kind,
                reason,
                &message,
                Source::controller("statefulset-controller"),
            );
            if let Err(e) = created {
                failure = Some(e.to_string());
                break;
            }
        }
        for pod in pods.iter().filter(|p| ordinal(p) >= desired) {
            let _ = store.delete(resource::PODS, ns, meta_str(pod, "name"), false, false);
        }
        let pods: Vec<Arc<Value>> = owned(store, resource::PODS, ns, uid)
            .into_iter()
            .filter(|p| ordinal(p) < desired)
            .collect();
        let outdated = |p: &Value| p["metadata"]["labels"]["controller-revision-hash"] != revision.as_str();
        if pods.len() == desired
            && pods.iter().all(|p| is_ready(p))
            && let Some(victim) = pods.iter().filter(|p| outdated(p)).max_by_key(|p| ordinal(p))
        {
            let _ = store.delete(resource::PODS, ns, meta_str(victim, "name"), false, false);
        }
        let ready = pods.iter().filter(|p| is_ready(p)).count();
        let updated = pods.iter().filter(|p| !outdated(p)).count();
        let current_revision = if updated == desired {
            revision.clone()
        } else {
            sts["status"]["currentRevision"]
                .as_str()
                .unwrap_or(&revision)
                .to_string()
        };
        let mut status = json!({
            "observedGeneration": sts["metadata"]["generation"],
            "replicas": pods.len(),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": if updated == desired { updated } else { pods.len() - updated },
            "updatedReplicas": updated,
            "currentRevision": current_revision,
            "updateRevision": revision,
            "collisionCount": 0,
        });
        if let Some(message) = failure {
            status["conditions"] = json!([condition(
                &sts["status"],
                "ReplicaFailure",
                true,
                "FailedCreate",
                &message
            )]);
        }
        write_status(store, resource::STATEFULSETS, &sts, status);
    }
}

/// One pass of the DaemonSet controller: one pod per node.
pub(crate) fn reconcile_daemonsets(store: &Store) {
    let nodes: Vec<String> = store
        .all(resource::NODES)
        .iter()
        .map(|n| meta_str(n, "name").to_string())
        .collect();
    for ds in store.all(resource::DAEMONSETS) {
        if deleting(&ds) {
            continue;
        }
        let (ns, name, uid) = (meta_str(&ds, "namespace"), meta_str(&ds, "name"), meta_str(&ds, "uid"));
        let hash = template_hash(&ds["spec"]["template"]);
        let pods: Vec<Arc<Value>> = owned(store, resource::PODS, ns, uid)
            .into_iter()
            .filter(|p| is_active(p))
            .collect();
        for node in &nodes {
            if !pods.iter().any(|p| p["spec"]["nodeName"] == node.as_str()) {
                let mut pod = pod_from_template(
                    &ds,
                    &ds["spec"]["template"],
                    &[("controller-revision-hash", hash.clone())],
                );
                pod["metadata"]["generateName"] = json!(format!("{name}-"));
                pod["spec"]["nodeName"] = json!(node);
                let created = store.create(resource::PODS, ns, pod, &WriteOptions::by(MANAGER));
                report_create(store, &ds, "daemonset-controller", &created);
            }
        }
        let outdated = |p: &Value| p["metadata"]["labels"]["controller-revision-hash"] != hash.as_str();
        if pods.len() == nodes.len()
            && pods.iter().all(|p| is_ready(p))
            && let Some(victim) = pods.iter().find(|p| outdated(p))
        {
            let _ = store.delete(resource::PODS, ns, meta_str(victim, "name"), false, false);
        }
        let pods: Vec<Arc<Value>> = owned(store, resource::PODS, ns, uid)
            .into_iter()
            .filter(|p| is_active(p))
            .collect();
        let ready = pods.iter().filter(|p| is_ready(p)).count();
        let status = json!({
            "observedGeneration": ds["metadata"]["generation"],
            "desiredNumberScheduled": nodes.len(),
            "currentNumberScheduled": pods.len(),
            "numberMisscheduled": 0,
            "numberReady": ready,
            "numberAvailable": ready,
            "numberUnavailable": nodes.len().saturating_sub(ready),
            "updatedNumberScheduled": pods.iter().filter(|p| !outdated(p)).count(),
        });
        write_status(store, resource::DAEMONSETS, &ds, status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hashes_are_stable_and_differ_by_template() {
        let a = json!({"spec":{"containers":[{"name":"a","image":"x:1"}]}});
        let b = json!({"spec":{"containers":[{"name":"a","image":"x:2"}]}});
        assert_eq!(template_hash(&a), template_hash(&a));
        assert_ne!(template_hash(&a), template_hash(&b));
        assert!(template_hash(&a).chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn surge_rounds_up_and_unavailable_rounds_down() {
        assert_eq!(resolve(&json!("25%"), 10, true), 3);
        assert_eq!(resolve(&json!("25%"), 10, false), 2);
        assert_eq!(resolve(&json!(1), 10, false), 1);
    }

    #[test]
    fn workloads_need_a_selector_matching_their_template() {
        let d = json!({"spec":{"selector":{"matchLabels":{"app":"a"}},"template":{"metadata":{"labels":{"app":"b"}},"spec":{"containers":[{"name":"c"}]}}}});
        let problems = validate(resource::DEPLOYMENTS, &d);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "spec.template.metadata.labels");
    }
}
