//! LimitRanger admission: a pod's containers get their namespace's
//! LimitRange `Container` defaults (`default` limits, `defaultRequest`
//! requests) for the resources they do not set, before ResourceQuota
//! admission, so a quota on `requests.memory` admits a pod that names none
//! when a LimitRange supplies it (as the API server's LimitRanger plugin
//! does). As the API server defaults a LimitRange item, a missing `default`
//! is the `max`, and a missing `defaultRequest` is the `default`.

use serde_json::{Map, Value, json};

use crate::resource;
use crate::store::State;

/// The `Container` defaults of the namespace's LimitRanges:
/// (limits, requests), first LimitRange (by name) first.
fn container_defaults(st: &State, ns: &str) -> (Map<String, Value>, Map<String, Value>) {
    let (mut limits, mut requests) = (Map::new(), Map::new());
    let Some(rid) = resource::find("", "v1", "limitranges") else {
        return (limits, requests);
    };
    // In name order: the first LimitRange to default a resource wins.
    for range in st.in_namespace(rid, ns) {
        for item in range["spec"]["limits"].as_array().into_iter().flatten() {
            if item["type"] != "Container" {
                continue;
            }
            let field = |name: &str| item[name].as_object().cloned().unwrap_or_default();
            let mut default = field("max");
            default.extend(field("default"));
            let mut request = default.clone();
            request.extend(field("defaultRequest"));
            for (k, v) in default {
                limits.entry(k).or_insert(v);
            }
            for (k, v) in request {
                requests.entry(k).or_insert(v);
            }
        }
    }
    (limits, requests)
}

/// Sets the namespace's LimitRange defaults on the pod's containers (and
/// init containers) where they set nothing, with LimitRanger's annotation
/// naming what it set.
pub(crate) fn default_pod(st: &State, ns: &str, pod: &mut Value) {
    let (limits, requests) = container_defaults(st, ns);
    if limits.is_empty() && requests.is_empty() {
        return;
    }
    let mut set = Vec::new();
    for list in ["initContainers", "containers"] {
        // `get_mut`: indexing would add an empty list the pod did not have.
        let containers = pod
            .get_mut("spec")
            .and_then(|s| s.get_mut(list))
            .and_then(Value::as_array_mut);
        for c in containers.into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or_default().to_string();
            if !c["resources"].is_object() {
                c["resources"] = json!({});
            }
            let own_limits = c["resources"]["limits"].clone();
            let mut did = Vec::new();
            for (kind, defaults) in [("limits", &limits), ("requests", &requests)] {
                for (res, value) in defaults {
                    if c["resources"][kind].get(res).is_some() {
                        continue;
                    }
                    // A container's own limit is its request (the API server's pod
                    // defaulting, which runs first), not the LimitRange's default.
                    let own_limit = (kind == "requests").then(|| own_limits.get(res).cloned()).flatten();
                    if !c["resources"][kind].is_object() {
                        c["resources"][kind] = json!({});
                    }
                    c["resources"][kind][res] = own_limit.unwrap_or_else(|| value.clone());
                    did.push(format!("{res} {}", if kind == "limits" { "limit" } else { "request" }));
                }
            }
            if !did.is_empty() {
                set.push(format!(
                    "{} for {} {name}",
                    did.join(", "),
                    if list == "initContainers" {
                        "init container"
                    } else {
                        "container"
                    }
                ));
            }
        }
    }
    if !set.is_empty() {
        pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] =
            json!(format!("LimitRanger plugin set: {}", set.join("; ")));
    }
}
