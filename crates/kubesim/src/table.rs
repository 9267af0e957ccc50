//! `meta.k8s.io` Tables: the server-side printing `kubectl get` asks for
//! (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`), with the
//! columns the API server's printers give each kind. Priority-1 columns are
//! the ones `kubectl get -o wide` adds.
//!
//! A kind gets its columns from [`columns`]; kinds without their own fall
//! back to NAME and AGE.

use std::convert::Infallible;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};

/// One column: its name, type and whether only `-o wide` shows it.
struct Column {
    name: &'static str,
    ty: &'static str,
    wide: bool,
    description: &'static str,
}

const fn col(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        ty: "string",
        wide: false,
        description,
    }
}

const fn int(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        ty: "integer",
        wide: false,
        description,
    }
}

const fn wide(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        ty: "string",
        wide: true,
        description,
    }
}

const NAME: Column = col(
    "Name",
    "Name must be unique within a namespace. More info: http://kubernetes.io/docs/user-guide/identifiers#names",
);
const AGE: Column = col(
    "Age",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);
const CONTAINERS: Column = wide("Containers", "Names of each container in the template.");
const IMAGES: Column = wide("Images", "Images referenced by each container in the template.");
const SELECTOR: Column = wide("Selector", "Label selector for pods.");

type Cells = fn(&Value, &str) -> Vec<Value>;

/// The columns of a kind and the function that fills one row's cells.
fn columns(kind: &str) -> (Vec<Column>, Cells) {
    match kind {
        "Pod" => (
            vec![
                NAME,
                col(
                    "Ready",
                    "The aggregate readiness state of this pod for accepting traffic.",
                ),
                col("Status", "The aggregate status of the containers in this pod."),
                col(
                    "Restarts",
                    "The number of times the containers in this pod have been restarted.",
                ),
                AGE,
                wide("IP", "IP address allocated to the pod."),
                wide("Node", "Name of the node the pod is assigned to."),
                wide("Nominated Node", "Name of the node where the pod is nominated to run."),
                wide("Readiness Gates", "Pod readiness gates."),
            ],
            pod,
        ),
        "Deployment" => (
            vec![
                NAME,
                col("Ready", "Number of the pod with ready state."),
                int(
                    "Up-to-date",
                    "Total number of non-terminated pods targeted by this deployment that have the desired template \
                     spec.",
                ),
                int(
                    "Available",
                    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                ),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            |o, age| {
                let s = &o["status"];
                let mut cells = vec![
                    json!(format!("{}/{}", num(&s["readyReplicas"]), replicas(o))),
                    json!(num(&s["updatedReplicas"])),
                    json!(num(&s["availableReplicas"])),
                    json!(age),
                ];
                cells.extend(template_cells(o, true));
                cells
            },
        ),
        "ReplicaSet" | "ReplicationController" => (
            vec![
                NAME,
                int("Desired", "Number of desired pods."),
                int("Current", "Number of actual replicas."),
                int("Ready", "The number of ready replicas for this replica set."),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            |o, age| {
                let s = &o["status"];
                let mut cells = vec![
                    json!(replicas(o)),
                    json!(num(&s["replicas"])),
                    json!(num(&s["readyReplicas"])),
                    json!(age),
                ];
                cells.extend(template_cells(o, true));
                cells
            },
        ),
        "StatefulSet" => (
            vec![
                NAME,
                col("Ready", "Number of the pod with ready state."),
                AGE,
                CONTAINERS,
                IMAGES,
            ],
            |o, age| {
                let mut cells = vec![
                    json!(format!("{}/{}", num(&o["status"]["readyReplicas"]), replicas(o))),
                    json!(age),
                ];
                cells.extend(template_cells(o, false));
                cells
            },
        ),
        "DaemonSet" => (
            vec![
                NAME,
                int(
                    "Desired",
                    "The total number of nodes that should be running the daemon pod.",
                ),
                int("Current", "The number of nodes that are running at least 1 daemon pod."),
                int(
                    "Ready",
                    "The number of nodes that should be running the daemon pod and have one or more of the daemon \
                     pod running and ready.",
                ),
                int(
                    "Up-to-date",
                    "The total number of nodes that are running updated daemon pod.",
                ),
                int(
                    "Available",
                    "The number of nodes that should be running the daemon pod and have one or more of the daemon \
                     pod running and available.",
                ),
                col(
                    "Node Selector",
                    "NodeSelector is a selector which must be true for the pod to fit on a node.",
                ),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            |o, age| {
                let s = &o["status"];
                let mut cells = vec![
                    json!(num(&s["desiredNumberScheduled"])),
                    json!(num(&s["currentNumberScheduled"])),
                    json!(num(&s["numberReady"])),
                    json!(num(&s["updatedNumberScheduled"])),
                    json!(num(&s["numberAvailable"])),
                    json!(pairs(&o["spec"]["template"]["spec"]["nodeSelector"], "<none>")),
                    json!(age),
                ];
                cells.extend(template_cells(o, true));
                cells
            },
        ),
        "Service" => (
            vec![
                NAME,
                col("Type", "The type of the service."),
                col("Cluster-IP", "The cluster IP of the service."),
                col("External-IP", "The external IPs of the service."),
                col("Port(s)", "The ports of the service."),
                AGE,
                wide(
                    "Selector",
                    "Route service traffic to pods with label keys and values matching this selector.",
                ),
            ],
            service,
        ),
        "Node" => (
            vec![
                NAME,
                col("Status", "The status of the node"),
                col("Roles", "The roles of the node"),
                AGE,
                col("Version", "Kubelet Version reported by the node."),
                wide("Internal-IP", "List of internal IPs for the node."),
                wide("External-IP", "List of external IPs for the node."),
                wide(
                    "OS-Image",
                    "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
                ),
                wide(
                    "Kernel-Version",
                    "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
                ),
                wide(
                    "Container-Runtime",
                    "Container runtime version reported by the node through runtime remote API (e.g. \
                     containerd://1.4.2).",
                ),
            ],
            node,
        ),
        "Namespace" => (
            vec![NAME, col("Status", "The status of the namespace"), AGE],
            |o, age| vec![json!(text(&o["status"]["phase"], "Active")), json!(age)],
        ),
        "ConfigMap" => (vec![NAME, int("Data", "Number of data in configmap"), AGE], |o, age| {
            vec![json!(count(&o["data"]) + count(&o["binaryData"])), json!(age)]
        }),
        "Secret" => (
            vec![
                NAME,
                col("Type", "The type of the secret"),
                int("Data", "The number of data in the secret"),
                AGE,
            ],
            |o, age| vec![json!(text(&o["type"], "Opaque")), json!(count(&o["data"])), json!(age)],
        ),
        "ServiceAccount" => (
            vec![
                NAME,
                int("Secrets", "The number of secrets in the service account"),
                AGE,
            ],
            |o, age| vec![json!(o["secrets"].as_array().map_or(0, Vec::len)), json!(age)],
        ),
        "Endpoints" => (
            vec![NAME, col("Endpoints", "Endpoints of the service"), AGE],
            |o, age| vec![json!(endpoints(o)), json!(age)],
        ),
        "Job" => (
            vec![
                NAME,
                col("Status", "Status of the job."),
                col("Completions", "The completion status of the job."),
                col("Duration", "Time required to complete the job."),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            job,
        ),
        "CronJob" => (
            vec![
                NAME,
                col("Schedule", "The schedule for running the job."),
                col("Timezone", "The time zone for the given schedule."),
                col("Suspend", "Whether the scheduling is suspended."),
                int("Active", "The number of currently running jobs."),
                col("Last Schedule", "The last time the job was scheduled."),
                AGE,
                wide("Containers", "Names of each container in the template."),
                wide("Images", "Images referenced by each container in the template."),
                wide("Selector", "Label selector for pods."),
            ],
            |o, age| {
                let spec = &o["spec"];
                let last = o["status"]["lastScheduleTime"]
                    .as_str()
                    .map_or_else(|| "<none>".to_string(), since);
                let mut cells = vec![
                    json!(text(&spec["schedule"], "")),
                    json!(text(&spec["timeZone"], "<none>")),
                    json!(if spec["suspend"].as_bool() == Some(true) {
                        "True"
                    } else {
                        "False"
                    }),
                    json!(o["status"]["active"].as_array().map_or(0, Vec::len)),
                    json!(last),
                    json!(age),
                ];
                cells.extend(pod_template_cells(&spec["jobTemplate"]["spec"]["template"]));
                cells.push(json!(selector(&spec["jobTemplate"]["spec"]["selector"])));
                cells
            },
        ),
        "Event" => (
            vec![
                col("Last Seen", "Time when last this event was seen."),
                col(
                    "Type",
                    "Type of this event (Normal, Warning), new types could be added in the future.",
                ),
                col(
                    "Reason",
                    "This should be a short, machine understandable string that gives the reason for this event \
                     being generated.",
                ),
                col("Object", "The object that this event is about."),
                col(
                    "Message",
                    "A human-readable description of the status of this operation.",
                ),
                wide("Subobject", "The subobject of the object that this event is about."),
                wide("Source", "The component reporting this event."),
                wide("First Seen", "Time when this event was first seen."),
                wide("Count", "The number of times this event has occurred."),
                wide("Name", "The name of the event."),
            ],
            event,
        ),
        "PersistentVolumeClaim" => (
            vec![
                NAME,
                col("Status", "Status of the persistent volume claim."),
                col("Volume", "Name of the volume bound to the claim."),
                col("Capacity", "Capacity of the bound volume."),
                col("Access Modes", "Access modes of the bound volume."),
                col("StorageClass", "StorageClass of the pvc"),
                col("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
                AGE,
                wide("VolumeMode", "The volume mode of the pvc"),
            ],
            |o, age| {
                let bound = o["status"]["phase"] == "Bound";
                let capacity = if bound {
                    text(&o["status"]["capacity"]["storage"], "")
                } else {
                    String::new()
                };
                let modes = if bound {
                    access_modes(&o["status"]["accessModes"])
                } else {
                    String::new()
                };
                vec![
                    json!(text(&o["status"]["phase"], "Pending")),
                    json!(text(&o["spec"]["volumeName"], "")),
                    json!(capacity),
                    json!(modes),
                    json!(text(&o["spec"]["storageClassName"], "<unset>")),
                    json!(text(&o["spec"]["volumeAttributesClassName"], "<unset>")),
                    json!(age),
                    json!(text(&o["spec"]["volumeMode"], "Filesystem")),
                ]
            },
        ),
        "HorizontalPodAutoscaler" => (
            vec![
                NAME,
                col("Reference", "Reference to the target resource."),
                col(
                    "Targets",
                    "Current and target values of the metrics the autoscaler scales on.",
                ),
                col("MinPods", "Lower limit for the number of pods."),
                int("MaxPods", "Upper limit for the number of pods."),
                int(
                    "Replicas",
                    "Current number of replicas of pods managed by this autoscaler.",
                ),
                AGE,
            ],
            hpa,
        ),
        "Ingress" => (
            vec![
                NAME,
                col("Class", "The name of the IngressClass resource that should be used."),
                col(
                    "Hosts",
                    "Hosts that incoming requests are matched against before the ingress rule",
                ),
                col(
                    "Address",
                    "Address is a list containing ingress points for the load-balancer",
                ),
                col("Ports", "Ports of TLS configurations that open"),
                AGE,
            ],
            ingress,
        ),
        "HTTPRoute" => (vec![NAME, col("Hostnames", ""), AGE], |o, age| {
            let hosts: Vec<&str> = o["spec"]["hostnames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            vec![
                json!(if hosts.is_empty() {
                    String::new()
                } else {
                    format!("[\"{}\"]", hosts.join("\",\""))
                }),
                json!(age),
            ]
        }),
        "ResourceQuota" => (
            vec![
                NAME,
                AGE,
                col(
                    "Request",
                    "Request represents a minimum amount of cpu/memory that a container may consume.",
                ),
                col(
                    "Limit",
                    "Limits control the maximum amount of cpu/memory that a container may use independent of \
                     contention on the node.",
                ),
            ],
            |o, age| {
                let (requests, limits) = quota(o);
                vec![json!(age), json!(requests), json!(limits)]
            },
        ),
        "NetworkPolicy" => (
            vec![
                NAME,
                col(
                    "Pod-Selector",
                    "Selects the pods to which this NetworkPolicy object applies.",
                ),
                AGE,
            ],
            |o, age| vec![json!(selector(&o["spec"]["podSelector"])), json!(age)],
        ),
        "Lease" => (vec![NAME, col("Holder", "The holder of the lease."), AGE], |o, age| {
            vec![json!(text(&o["spec"]["holderIdentity"], "")), json!(age)]
        }),
        _ => (vec![NAME, AGE], |_, age| vec![json!(age)]),
    }
}

/// The Table of an object, or of a list's items, in `meta.k8s.io/{version}`.
pub(crate) fn of(body: &Value, version: &str) -> Value {
    let (items, kind, meta) = match body["items"].as_array() {
        Some(items) => (
            items.iter().collect::<Vec<_>>(),
            body["kind"].as_str().unwrap_or_default().trim_end_matches("List"),
            json!({
                "resourceVersion": body["metadata"]["resourceVersion"],
                "continue": body["metadata"]["continue"],
                "remainingItemCount": body["metadata"]["remainingItemCount"],
            }),
        ),
        None => (
            vec![body],
            body["kind"].as_str().unwrap_or_default(),
            json!({ "resourceVersion": body["metadata"]["resourceVersion"] }),
        ),
    };
    let mut meta = meta;
    if let Some(m) = meta.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    let (cols, cells) = columns(kind);
    let definitions: Vec<Value> = cols
        .iter()
        .map(|c| {
            json!({
                "name": c.name, "type": c.ty, "format": if c.name == "Name" { "name" } else { "" },
                "description": c.description, "priority": u8::from(c.wide),
            })
        })
        .collect();
    let name_first = cols.first().is_some_and(|c| c.name == "Name");
    let rows: Vec<Value> = items
        .into_iter()
        .map(|obj| {
            let age = obj["metadata"]["creationTimestamp"]
                .as_str()
                .map_or_else(|| "<unknown>".to_string(), since);
            let mut row = Vec::with_capacity(cols.len());
            if name_first {
                row.push(obj["metadata"]["name"].clone());
            }
            row.extend(cells(obj, &age));
            if !name_first {
                row.push(obj["metadata"]["name"].clone());
            }
            json!({
                "cells": row,
                "object": {
                    "kind": "PartialObjectMetadata", "apiVersion": format!("meta.k8s.io/{version}"),
                    "metadata": obj["metadata"],
                },
            })
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": format!("meta.k8s.io/{version}"), "metadata": meta,
        "columnDefinitions": definitions, "rows": rows,
    })
}

/// A watch stream whose event objects are Tables of one row each.
pub(crate) fn watch(
    events: impl Stream<Item = Result<Bytes, Infallible>>,
    version: String,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    events.map(move |line| {
        let line = line?;
        let Ok(mut event) = serde_json::from_slice::<Value>(&line) else {
            return Ok(line);
        };
        // Bookmarks and errors carry no row.
        if matches!(event["type"].as_str(), Some("ADDED" | "MODIFIED" | "DELETED")) {
            event["object"] = of(&event["object"], &version);
        }
        let mut out = serde_json::to_vec(&event).unwrap_or_default();
        out.push(b'\n');
        Ok(Bytes::from(out))
    })
}

fn num(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn replicas(o: &Value) -> i64 {
    o["spec"]["replicas"].as_i64().unwrap_or(1)
}

fn text(v: &Value, default: &str) -> String {
    match v.as_str() {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => default.to_string(),
    }
}

fn count(v: &Value) -> usize {
    v.as_object().map_or(0, serde_json::Map::len)
}

fn pairs(v: &Value, empty: &str) -> String {
    let listed: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    if listed.is_empty() {
        empty.to_string()
    } else {
        listed.join(",")
    }
}

/// A label selector as `kubectl` prints it (`app=web,tier in (a,b)`).
fn selector(sel: &Value) -> String {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for expr in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = expr["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = expr["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match expr["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other}"),
        });
    }
    if parts.is_empty() {
        "<none>".to_string()
    } else {
        parts.join(",")
    }
}

fn pod_template_cells(template: &Value) -> Vec<Value> {
    let containers = template["spec"]["containers"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = containers.iter().filter_map(|c| c["name"].as_str()).collect();
    let images: Vec<&str> = containers.iter().filter_map(|c| c["image"].as_str()).collect();
    vec![json!(names.join(",")), json!(images.join(","))]
}

fn template_cells(o: &Value, with_selector: bool) -> Vec<Value> {
    let mut cells = pod_template_cells(&o["spec"]["template"]);
    if with_selector {
        let sel = &o["spec"]["selector"];
        // ReplicationControllers select with a plain map.
        let printed = if sel.get("matchLabels").is_some() || sel.get("matchExpressions").is_some() {
            selector(sel)
        } else {
            pairs(sel, "<none>")
        };
        cells.push(json!(printed));
    }
    cells
}

fn pod(o: &Value, age: &str) -> Vec<Value> {
    let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
    let statuses = o["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
    let ready = statuses.iter().filter(|c| c["ready"].as_bool() == Some(true)).count();
    let restarts: i64 = statuses.iter().map(|c| num(&c["restartCount"])).sum();
    let mut reason = text(&o["status"]["reason"], &text(&o["status"]["phase"], "Pending"));
    for c in &statuses {
        if let Some(r) = c["state"]["waiting"]["reason"].as_str().filter(|r| !r.is_empty()) {
            reason = r.to_string();
        } else if let Some(r) = c["state"]["terminated"]["reason"].as_str().filter(|r| !r.is_empty()) {
            reason = r.to_string();
        }
    }
    if o["metadata"]["deletionTimestamp"].is_string() {
        reason = "Terminating".into();
    }
    let gates = o["spec"]["readinessGates"].as_array().map_or(0, Vec::len);
    vec![
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts),
        json!(age),
        json!(text(&o["status"]["podIP"], "<none>")),
        json!(text(&o["spec"]["nodeName"], "<none>")),
        json!(text(&o["status"]["nominatedNodeName"], "<none>")),
        json!(if gates == 0 {
            "<none>".to_string()
        } else {
            format!("0/{gates}")
        }),
    ]
}

fn service(o: &Value, age: &str) -> Vec<Value> {
    let spec = &o["spec"];
    let kind = text(&spec["type"], "ClusterIP");
    let external: Vec<String> = spec["externalIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let external = match kind.as_str() {
        "LoadBalancer" => {
            let ingress: Vec<String> = o["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str().or_else(|| i["hostname"].as_str()).map(String::from))
                .chain(external)
                .collect();
            if ingress.is_empty() {
                "<pending>".to_string()
            } else {
                ingress.join(",")
            }
        }
        "ExternalName" => text(&spec["externalName"], "<none>"),
        _ if external.is_empty() => "<none>".to_string(),
        _ => external.join(","),
    };
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let protocol = text(&p["protocol"], "TCP");
            match p["nodePort"].as_i64().filter(|n| *n > 0) {
                Some(node_port) => format!("{}:{node_port}/{protocol}", num(&p["port"])),
                None => format!("{}/{protocol}", num(&p["port"])),
            }
        })
        .collect();
    vec![
        json!(kind),
        json!(text(&spec["clusterIP"], "<none>")),
        json!(external),
        json!(if ports.is_empty() {
            "<none>".to_string()
        } else {
            ports.join(",")
        }),
        json!(age),
        json!(pairs(&spec["selector"], "<none>")),
    ]
}

fn node(o: &Value, age: &str) -> Vec<Value> {
    let ready = o["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready");
    let mut status = match ready {
        Some(c) if c["status"] == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if o["spec"]["unschedulable"].as_bool() == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = o["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(String::from)
                .or_else(|| (k == "kubernetes.io/role").then(|| v.as_str().unwrap_or_default().to_string()))
        })
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort();
    let address = |kind: &str| {
        o["status"]["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["type"] == kind)
            .and_then(|a| a["address"].as_str())
            .unwrap_or("<none>")
            .to_string()
    };
    let info = &o["status"]["nodeInfo"];
    vec![
        json!(status),
        json!(if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }),
        json!(age),
        json!(text(&info["kubeletVersion"], "")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(text(&info["osImage"], "<unknown>")),
        json!(text(&info["kernelVersion"], "<unknown>")),
        json!(text(&info["containerRuntimeVersion"], "<unknown>")),
    ]
}

fn endpoints(o: &Value) -> String {
    let mut listed = Vec::new();
    for subset in o["subsets"].as_array().into_iter().flatten() {
        for address in subset["addresses"].as_array().into_iter().flatten() {
            let ip = address["ip"].as_str().unwrap_or_default();
            let ports = subset["ports"].as_array().cloned().unwrap_or_default();
            if ports.is_empty() {
                listed.push(ip.to_string());
            }
            for p in ports {
                listed.push(format!("{ip}:{}", num(&p["port"])));
            }
        }
    }
    if listed.is_empty() {
        return "<none>".to_string();
    }
    let more = listed.len().saturating_sub(3);
    listed.truncate(3);
    if more > 0 {
        format!("{} + {more} more...", listed.join(","))
    } else {
        listed.join(",")
    }
}

fn job(o: &Value, age: &str) -> Vec<Value> {
    let conditions: Vec<&Value> = o["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "True")
        .collect();
    let has = |t: &str| conditions.iter().any(|c| c["type"] == t);
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if o["metadata"]["deletionTimestamp"].is_string() {
        "Terminating"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let succeeded = num(&o["status"]["succeeded"]);
    let completions = match o["spec"]["completions"].as_i64() {
        Some(c) => format!("{succeeded}/{c}"),
        None => match o["spec"]["parallelism"].as_i64() {
            Some(p) if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = o["status"]["startTime"].as_str().and_then(parse_time);
    let end = o["status"]["completionTime"].as_str().and_then(parse_time);
    let duration = match (start, end) {
        (Some(s), Some(e)) => human((e - s).num_seconds()),
        (Some(s), None) => human((Utc::now() - s).num_seconds()),
        _ => String::new(),
    };
    let mut cells = vec![json!(status), json!(completions), json!(duration), json!(age)];
    cells.extend(template_cells(o, true));
    cells
}

/// A core/v1 Event row; events.k8s.io/v1 Events name the same things
/// `regarding`, `note`, `series` and `deprecated*`.
fn event(o: &Value, _age: &str) -> Vec<Value> {
    let at = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| {
                let v = k.split('.').fold(o, |v, part| &v[part]);
                v.as_str().filter(|s| !s.is_empty())
            })
            .map_or_else(|| "<unknown>".to_string(), since)
    };
    let mut last = at(&[
        "series.lastObservedTime",
        "lastTimestamp",
        "deprecatedLastTimestamp",
        "eventTime",
        "metadata.creationTimestamp",
    ]);
    let first = at(&[
        "firstTimestamp",
        "deprecatedFirstTimestamp",
        "eventTime",
        "metadata.creationTimestamp",
    ]);
    let count = o["series"]["count"]
        .as_i64()
        .or_else(|| o["count"].as_i64())
        .or_else(|| o["deprecatedCount"].as_i64())
        .unwrap_or(1);
    if count > 1 {
        last = format!("{last} (x{count} over {first})");
    }
    let involved = if o["involvedObject"].is_object() {
        &o["involvedObject"]
    } else {
        &o["regarding"]
    };
    let object = format!(
        "{}/{}",
        involved["kind"].as_str().unwrap_or_default().to_lowercase(),
        involved["name"].as_str().unwrap_or_default()
    );
    let source = match (o["source"]["component"].as_str(), o["source"]["host"].as_str()) {
        (Some(c), Some(h)) if !h.is_empty() => format!("{c}, {h}"),
        (Some(c), _) => c.to_string(),
        _ => text(&o["reportingController"], &text(&o["reportingComponent"], "")),
    };
    let message = o["message"].as_str().or_else(|| o["note"].as_str()).unwrap_or_default();
    vec![
        json!(last),
        json!(text(&o["type"], "")),
        json!(text(&o["reason"], "")),
        json!(object),
        json!(message.trim()),
        json!(text(&involved["fieldPath"], "")),
        json!(source),
        json!(first),
        json!(count),
    ]
}

fn access_modes(modes: &Value) -> String {
    modes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn hpa(o: &Value, age: &str) -> Vec<Value> {
    let target = &o["spec"]["scaleTargetRef"];
    let reference = format!(
        "{}/{}",
        target["kind"].as_str().unwrap_or_default(),
        target["name"].as_str().unwrap_or_default()
    );
    let current = o["status"]["currentMetrics"].as_array().cloned().unwrap_or_default();
    let targets: Vec<String> = o["spec"]["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, m)| {
            let name = m["resource"]["name"].as_str().unwrap_or("metric");
            let goal = &m["resource"]["target"];
            let now = &current.get(i).map_or(&Value::Null, |c| &c["resource"]["current"]);
            match goal["averageUtilization"].as_i64() {
                Some(want) => match now["averageUtilization"].as_i64() {
                    Some(have) => format!("{name}: {have}%/{want}%"),
                    None => format!("{name}: <unknown>/{want}%"),
                },
                None => format!(
                    "{name}: {}/{}",
                    text(&now["averageValue"], "<unknown>"),
                    text(&goal["averageValue"], &text(&goal["value"], "<unknown>"))
                ),
            }
        })
        .collect();
    vec![
        json!(reference),
        json!(if targets.is_empty() {
            "<none>".to_string()
        } else {
            targets.join(", ")
        }),
        json!(o["spec"]["minReplicas"].as_i64().unwrap_or(1).to_string()),
        json!(num(&o["spec"]["maxReplicas"])),
        json!(num(&o["status"]["currentReplicas"])),
        json!(age),
    ]
}

fn ingress(o: &Value, age: &str) -> Vec<Value> {
    let spec = &o["spec"];
    let hosts: Vec<&str> = spec["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["host"].as_str())
        .collect();
    let address: Vec<&str> = o["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str().or_else(|| i["hostname"].as_str()))
        .collect();
    let ports = if spec["tls"].as_array().is_some_and(|t| !t.is_empty()) {
        "80, 443"
    } else {
        "80"
    };
    vec![
        json!(text(&spec["ingressClassName"], "<none>")),
        json!(if hosts.is_empty() {
            "*".to_string()
        } else {
            hosts.join(",")
        }),
        json!(address.join(",")),
        json!(ports),
        json!(age),
    ]
}

/// The Request and Limit cells of a ResourceQuota: `used/hard` per resource.
fn quota(o: &Value) -> (String, String) {
    let hard = o["status"]["hard"]
        .as_object()
        .or_else(|| o["spec"]["hard"].as_object());
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    let mut names: Vec<&String> = hard.into_iter().flat_map(|h| h.keys()).collect();
    names.sort();
    for name in names {
        let want = hard.and_then(|h| h[name].as_str()).unwrap_or("0");
        let used = o["status"]["used"][name.as_str()].as_str().unwrap_or("0");
        let cell = format!("{name}: {used}/{want}");
        if name.starts_with("limits.") {
            limits.push(cell);
        } else {
            requests.push(cell);
        }
    }
    (requests.join(", "), limits.join(", "))
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// How long ago a timestamp was, as `kubectl` prints ages (`5m`, `2d3h`).
fn since(timestamp: &str) -> String {
    match parse_time(timestamp) {
        Some(t) => human((Utc::now() - t).num_seconds()),
        None => "<unknown>".to_string(),
    }
}

/// Go's `duration.HumanDuration`.
fn human(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let minutes = s / 60;
    if minutes < 10 {
        let rest = s % 60;
        return if rest == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{rest}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let rest = minutes % 60;
        return if rest == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{rest}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let rest = hours % 24;
        return if rest == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{rest}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let rest = days % 365;
        return if rest == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{rest}d")
        };
    }
    format!("{years}y")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        for (s, text) in [
            (5, "5s"),
            (150, "2m30s"),
            (900, "15m"),
            (4 * 3600 + 60, "4h1m"),
            (3 * 86400, "3d"),
        ] {
            assert_eq!(human(s), text);
        }
    }

    #[test]
    fn pod_rows_carry_readiness_restarts_and_wide_columns() {
        let pod = json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": { "name": "web-1", "creationTimestamp": "2020-01-01T00:00:00Z", "resourceVersion": "7" },
            "spec": { "nodeName": "node-0", "containers": [{ "name": "a" }, { "name": "b" }] },
            "status": { "phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
                { "ready": true, "restartCount": 2 }, { "ready": false, "restartCount": 1 }] },
        });
        let table = of(&pod, "v1");
        let names: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            &names[..7],
            ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node"]
        );
        let cells = &table["rows"][0]["cells"];
        assert_eq!(cells[0], "web-1");
        assert_eq!(cells[1], "1/2");
        assert_eq!(cells[2], "Running");
        assert_eq!(cells[3], 3);
        assert_eq!(cells[5], "10.0.0.5");
        assert_eq!(cells[6], "node-0");
        assert_eq!(table["columnDefinitions"][5]["priority"], 1);
    }

    #[test]
    fn repeated_events_say_how_often_and_since_when() {
        let event = json!({
            "kind": "Event", "metadata": { "name": "web.1" },
            "involvedObject": { "kind": "Pod", "name": "web" }, "type": "Warning", "reason": "BackOff",
            "message": "Back-off restarting failed container", "count": 3,
            "firstTimestamp": "2020-01-01T00:00:00Z", "lastTimestamp": "2020-01-01T00:00:00Z",
        });
        let cells = &of(&event, "v1")["rows"][0]["cells"];
        assert!(cells[0].as_str().unwrap().contains("(x3 over "), "{cells}");
        assert_eq!(cells[3], "pod/web");
        assert_eq!(cells[9], "web.1");
    }

    #[test]
    fn quota_cells_split_requests_from_limits() {
        let q = json!({ "status": { "hard": { "pods": "10", "limits.cpu": "2" }, "used": { "pods": "1" } } });
        assert_eq!(quota(&q), ("pods: 1/10".to_string(), "limits.cpu: 0/2".to_string()));
    }
}
