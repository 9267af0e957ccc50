//! The scheduler and the kubelets of the simulated nodes: nodes with
//! capacity and a Ready condition, pods bound to the first node whose
//! allocatable cpu/memory fits the sum of their requests (else Pending with
//! `PodScheduled=False`, reason `Unschedulable`), and bound pods turned
//! Running and Ready after the cluster's ready delay.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::event::{self, Source, Type};
use crate::quantity::Quantity;
use crate::quota::pod_amount;
use crate::resource;
use crate::store::{self, Store, WriteOptions, meta_str};

/// The node objects a cluster starts with.
pub(crate) fn node_objects(cluster: &str, count: usize, cpu: &str, memory: &str, pods: u32) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let name = format!("{cluster}-node-{i}");
            json!({
                "metadata": {
                    "name": name,
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "node.kubernetes.io/instance-type": "kubesim",
                    },
                },
                "spec": { "podCIDR": format!("10.244.{i}.0/24") },
                "status": {
                    "capacity": { "cpu": cpu, "memory": memory, "pods": pods.to_string() },
                    "allocatable": { "cpu": cpu, "memory": memory, "pods": pods.to_string() },
                    "conditions": [{
                        "type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": store::now(), "lastTransitionTime": store::now(),
                    }],
                    "addresses": [
                        { "type": "InternalIP", "address": format!("10.0.0.{}", i + 10) },
                        { "type": "Hostname", "address": name },
                    ],
                    "nodeInfo": {
                        "kubeletVersion": "v1.35.0", "containerRuntimeVersion": "containerd://2.0.0",
                        "operatingSystem": "linux", "architecture": "amd64", "osImage": "kubesim",
                        "kernelVersion": "6.1.0", "kubeProxyVersion": "v1.35.0",
                        "machineID": "", "systemUUID": "", "bootID": "",
                    },
                },
            })
        })
        .collect()
}

fn amount(v: &Value) -> Quantity {
    v.as_str().and_then(Quantity::parse).unwrap_or_default()
}

fn bound(pod: &Value) -> bool {
    pod["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty())
}

fn terminal(pod: &Value) -> bool {
    matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

fn requests(pod: &Value) -> (Quantity, Quantity) {
    (
        pod_amount(pod, "requests", "cpu").unwrap_or_default(),
        pod_amount(pod, "requests", "memory").unwrap_or_default(),
    )
}

fn write_pod_status(store: &Store, pod: &Value, status: Value) -> Option<std::sync::Arc<Value>> {
    if pod.get("status") == Some(&status) {
        return None;
    }
    store
        .modify(
            resource::PODS,
            meta_str(pod, "namespace"),
            meta_str(pod, "name"),
            &WriteOptions::by("kubelet").status(),
            |cur| {
                let mut c = cur.clone();
                c["status"] = status;
                Ok(c)
            },
        )
        .ok()
}

/// The scheduler's name in events.
const SCHEDULER: &str = "default-scheduler";

/// Binds pending pods to nodes that fit them.
pub(crate) fn schedule(store: &Store) {
    let nodes = store.all(resource::NODES);
    let pods = store.all(resource::PODS);
    let mut used: HashMap<String, (Quantity, Quantity, i64)> = HashMap::new();
    for pod in pods.iter().filter(|p| bound(p) && !terminal(p)) {
        let (cpu, mem) = requests(pod);
        let e = used
            .entry(pod["spec"]["nodeName"].as_str().unwrap_or_default().to_string())
            .or_default();
        *e = (e.0.checked_add(cpu), e.1.checked_add(mem), e.2 + 1);
    }
    let mut pending: Vec<_> = pods
        .iter()
        .filter(|p| !bound(p) && !terminal(p) && p["metadata"].get("deletionTimestamp").is_none())
        .collect();
    pending.sort_by(|a, b| meta_str(a, "creationTimestamp").cmp(meta_str(b, "creationTimestamp")));
    for pod in pending {
        let (cpu, mem) = requests(pod);
        let mut insufficient_cpu = 0;
        let mut insufficient_mem = 0;
        let mut chosen = None;
        for node in &nodes {
            let name = meta_str(node, "name");
            let alloc = &node["status"]["allocatable"];
            let (ucpu, umem, count) = used.get(name).copied().unwrap_or_default();
            let cpu_ok = ucpu.checked_add(cpu) <= amount(&alloc["cpu"]);
            let mem_ok = umem.checked_add(mem) <= amount(&alloc["memory"]);
            let pods_ok = count < alloc["pods"].as_str().and_then(|p| p.parse().ok()).unwrap_or(110);
            insufficient_cpu += usize::from(!cpu_ok);
            insufficient_mem += usize::from(!mem_ok);
            if cpu_ok && mem_ok && pods_ok && chosen.is_none() {
                chosen = Some(name.to_string());
            }
        }
        match chosen {
            Some(node) => {
                let e = used.entry(node.clone()).or_default();
                *e = (e.0.checked_add(cpu), e.1.checked_add(mem), e.2 + 1);
                let bound_pod = store.modify(
                    resource::PODS,
                    meta_str(pod, "namespace"),
                    meta_str(pod, "name"),
                    &WriteOptions::by("kube-scheduler"),
                    |cur| {
                        let mut c = cur.clone();
                        c["spec"]["nodeName"] = json!(node);
                        Ok(c)
                    },
                );
                if let Ok(p) = bound_pod {
                    let mut status = p["status"].clone();
                    status["conditions"] =
                        json!([{ "type": "PodScheduled", "status": "True", "lastTransitionTime": store::now() }]);
                    let p = write_pod_status(store, &p, status).unwrap_or(p);
                    let message = format!(
                        "Successfully assigned {}/{} to {node}",
                        meta_str(&p, "namespace"),
                        meta_str(&p, "name")
                    );
                    event::record(
                        store,
                        &p,
                        Type::Normal,
                        "Scheduled",
                        &message,
                        Source::controller(SCHEDULER),
                    );
                }
            }
            None => {
                let mut reasons = Vec::new();
                if insufficient_cpu > 0 {
                    reasons.push(format!("{insufficient_cpu} Insufficient cpu"));
                }
                if insufficient_mem > 0 {
                    reasons.push(format!("{insufficient_mem} Insufficient memory"));
                }
                if reasons.is_empty() {
                    reasons.push(format!("{} Too many pods", nodes.len()));
                }
                let message = format!(
                    "0/{} nodes are available: {}. preemption: 0/{} nodes are available: {} No preemption victims found for incoming pod.",
                    nodes.len(),
                    reasons.join(", "),
                    nodes.len(),
                    nodes.len()
                );
                let previous = pod["status"]["conditions"].as_array().and_then(|c| c.first()).cloned();
                let transition = previous
                    .filter(|c| c["reason"] == "Unschedulable")
                    .map_or_else(|| json!(store::now()), |c| c["lastTransitionTime"].clone());
                let mut status = pod["status"].clone();
                status["phase"] = json!("Pending");
                status["conditions"] = json!([{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": message, "lastTransitionTime": transition,
                }]);
                // Reported when the scheduler's verdict changes, not on every pass.
                if let Some(p) = write_pod_status(store, pod, status) {
                    event::record(
                        store,
                        &p,
                        Type::Warning,
                        "FailedScheduling",
                        &message,
                        Source::controller(SCHEDULER),
                    );
                }
            }
        }
    }
}

/// Starts bound pods: after `ready_delay` from when the kubelet first saw
/// them they are Running and Ready. Returns when the next pod is due.
pub(crate) fn run_kubelets(
    store: &Store,
    ready_delay: Duration,
    seen: &mut HashMap<String, Instant>,
) -> Option<Duration> {
    let nodes = store.all(resource::NODES);
    let node_ip = |name: &str| {
        nodes
            .iter()
            .position(|n| meta_str(n, "name") == name)
            .map_or_else(|| ("10.0.0.1".into(), 0), |i| (format!("10.0.0.{}", i + 10), i))
    };
    let now = Instant::now();
    let mut next: Option<Duration> = None;
    let mut alive = std::collections::HashSet::new();
    let all = store.all(resource::PODS);
    for pod in all.iter().cloned() {
        let uid = meta_str(&pod, "uid").to_string();
        alive.insert(uid.clone());
        if !bound(&pod) || pod["status"]["phase"] != "Pending" {
            continue;
        }
        let first = *seen.entry(uid).or_insert(now);
        let due = first + ready_delay;
        if due > now {
            let wait = due - now;
            next = Some(next.map_or(wait, |n| n.min(wait)));
            continue;
        }
        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        let (host_ip, index) = node_ip(node);
        let started = store::now();
        let ordinal = alive.len() % 250 + 2;
        let containers: Vec<Value> = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| json!({
                "name": c["name"], "image": c["image"], "imageID": format!("{}@sha256:kubesim", c["image"].as_str().unwrap_or_default()),
                "containerID": format!("containerd://{}", meta_str(&pod, "uid")),
                "ready": true, "started": true, "restartCount": 0,
                "state": { "running": { "startedAt": started } },
            }))
            .collect();
        let condition = |kind: &str| json!({ "type": kind, "status": "True", "lastTransitionTime": started });
        let status = json!({
            "phase": "Running",
            "conditions": [condition("PodReadyToStartContainers"), condition("Initialized"), condition("Ready"), condition("ContainersReady"), condition("PodScheduled")],
            "hostIP": host_ip,
            "hostIPs": [{ "ip": host_ip }],
            "podIP": format!("10.244.{index}.{ordinal}"),
            "podIPs": [{ "ip": format!("10.244.{index}.{ordinal}") }],
            "startTime": started,
            "containerStatuses": containers,
            "qosClass": pod["status"]["qosClass"],
        });
        if let Some(p) = write_pod_status(store, &pod, status) {
            let present = |image: &str| {
                pods_on_node(&all, node).any(|other| {
                    other["status"]["phase"] != "Pending"
                        && other["metadata"]["uid"] != p["metadata"]["uid"]
                        && uses_image(other, image)
                })
            };
            container_start_events(store, &p, node, ready_delay, &present);
        }
    }
    seen.retain(|uid, _| alive.contains(uid));
    next
}

fn pods_on_node<'a>(pods: &'a [std::sync::Arc<Value>], node: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    pods.iter().map(|p| &**p).filter(move |p| p["spec"]["nodeName"] == node)
}

fn uses_image(pod: &Value, image: &str) -> bool {
    pod["spec"]["containers"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["image"] == image))
}

/// A duration as Go prints it (`200ms`, `1.5s`), as the kubelet's messages show it.
fn go_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// The kubelet's events for starting a pod's containers: the image pulled
/// (or already present on the node, unless `imagePullPolicy: Always`), the
/// container created and started.
fn container_start_events(store: &Store, pod: &Value, node: &str, pull_time: Duration, present: &dyn Fn(&str) -> bool) {
    let source = Source::kubelet(node);
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or_default();
        let image = c["image"].as_str().unwrap_or_default();
        let always = c["imagePullPolicy"] == "Always"
            || (c["imagePullPolicy"].is_null() && (image.ends_with(":latest") || !image.contains(':')));
        let record = |reason: &str, message: &str| {
            event::record_container(store, pod, name, Type::Normal, reason, message, source);
        };
        if always || !present(image) {
            record("Pulling", &format!("Pulling image \"{image}\""));
            let size = 10_000_000
                + image
                    .bytes()
                    .fold(0_u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
                    % 90_000_000;
            let took = go_duration(pull_time);
            record(
                "Pulled",
                &format!(
                    "Successfully pulled image \"{image}\" in {took} ({took} including waiting). \
                     Image size: {size} bytes."
                ),
            );
        } else {
            record(
                "Pulled",
                &format!("Container image \"{image}\" already present on machine"),
            );
        }
        record("Created", &format!("Created container: {name}"));
        record("Started", &format!("Started container {name}"));
    }
}
