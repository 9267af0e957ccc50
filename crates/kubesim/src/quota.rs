//! ResourceQuota: admission of pods, configmaps, secrets, services and
//! persistentvolumeclaims against `spec.hard` (403 Forbidden with the real
//! `exceeded quota` message), and the `status.hard`/`status.used` the quota
//! controller reports.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::quantity::Quantity;
use crate::resource::{self, ResourceId};
use crate::status::{Error, Result};
use crate::store::{State, Store, WriteOptions, meta_str};
use crate::workload;

/// Sum of a pod's container requests or limits for `resource` (`cpu`,
/// `memory`); requests default to limits, as the API server defaults them.
pub(crate) fn pod_amount(pod: &Value, kind: &str, resource: &str) -> Option<Quantity> {
    let containers = pod["spec"]["containers"].as_array()?;
    let mut total = Quantity::ZERO;
    for c in containers {
        let res = &c["resources"];
        let value = match kind {
            "requests" => res["requests"][resource]
                .as_str()
                .or_else(|| res["limits"][resource].as_str()),
            _ => res["limits"][resource].as_str(),
        }?;
        total = total.checked_add(Quantity::parse(value)?);
    }
    Some(total)
}

/// What one object counts against each quota resource name.
fn usage_of(rid: ResourceId, obj: &Value) -> BTreeMap<String, Quantity> {
    let mut usage = BTreeMap::new();
    let one = Quantity::from_units(1);
    match rid {
        resource::PODS => {
            usage.insert("pods".into(), one);
            usage.insert("count/pods".into(), one);
            for (kind, res) in [
                ("requests", "cpu"),
                ("requests", "memory"),
                ("limits", "cpu"),
                ("limits", "memory"),
            ] {
                let amount = pod_amount(obj, kind, res).unwrap_or_default();
                usage.insert(format!("{kind}.{res}"), amount);
                if kind == "requests" {
                    usage.insert(res.to_string(), amount);
                }
            }
        }
        resource::CONFIGMAPS => {
            usage.insert("configmaps".into(), one);
            usage.insert("count/configmaps".into(), one);
        }
        resource::SECRETS => {
            usage.insert("secrets".into(), one);
            usage.insert("count/secrets".into(), one);
        }
        resource::SERVICES => {
            usage.insert("services".into(), one);
            usage.insert("count/services".into(), one);
        }
        resource::PERSISTENTVOLUMECLAIMS => {
            usage.insert("persistentvolumeclaims".into(), one);
            usage.insert("count/persistentvolumeclaims".into(), one);
            if let Some(q) = obj["spec"]["resources"]["requests"]["storage"]
                .as_str()
                .and_then(Quantity::parse)
            {
                usage.insert("requests.storage".into(), q);
            }
        }
        _ => {}
    }
    usage
}

const COUNTED: [ResourceId; 5] = [
    resource::PODS,
    resource::CONFIGMAPS,
    resource::SECRETS,
    resource::SERVICES,
    resource::PERSISTENTVOLUMECLAIMS,
];

fn counts(rid: ResourceId, obj: &Value) -> bool {
    rid != resource::PODS
        || (obj["metadata"].get("deletionTimestamp").is_none()
            && !matches!(obj["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
}

/// Current usage in a namespace for every quota resource name.
fn namespace_usage(st: &State, ns: &str) -> BTreeMap<String, Quantity> {
    let mut total: BTreeMap<String, Quantity> = BTreeMap::new();
    for rid in COUNTED {
        for obj in st.in_namespace(rid, ns).filter(|o| counts(rid, o)) {
            for (k, v) in usage_of(rid, obj) {
                let e = total.entry(k).or_default();
                *e = e.checked_add(v);
            }
        }
    }
    total
}

fn hard_of(quota: &Value) -> BTreeMap<String, (Quantity, String)> {
    quota["spec"]["hard"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let text = v.as_str().map_or_else(|| v.to_string(), String::from);
            Quantity::parse(&text).map(|q| (k.clone(), (q, text)))
        })
        .collect()
}

/// Refuses a create that would take a namespace over one of its quotas.
/// `name` is the requested name, or the generateName prefix: quota admission
/// runs before the server generates a name, so refusals name the prefix.
///
/// # Errors
/// 403 Forbidden with `exceeded quota: <name>, requested: .., used: .., limited: ..`,
/// or `failed quota: <name>: must specify ..` for a pod without the
/// requests/limits a quota constrains.
pub(crate) fn admit(st: &State, rid: ResourceId, ns: &str, name: &str, obj: &Value) -> Result<()> {
    if !COUNTED.contains(&rid) {
        return Ok(());
    }
    let quotas: Vec<&std::sync::Arc<Value>> = st.in_namespace(resource::RESOURCEQUOTAS, ns).collect();
    if quotas.is_empty() {
        return Ok(());
    }
    let rt = resource::get(rid);
    let requested = usage_of(rid, obj);
    let used = namespace_usage(st, ns);
    for quota in quotas {
        let qname = meta_str(quota, "name");
        let hard = hard_of(quota);
        if rid == resource::PODS {
            let mut missing = Vec::new();
            for key in hard.keys() {
                let (kind, res) = match key.split_once('.') {
                    Some((k @ ("requests" | "limits"), r @ ("cpu" | "memory"))) => (k, r),
                    None if key == "cpu" || key == "memory" => ("requests", key.as_str()),
                    _ => continue,
                };
                if pod_amount(obj, kind, res).is_none() {
                    missing.push(format!("{kind}.{res}"));
                }
            }
            if !missing.is_empty() {
                missing.sort();
                missing.dedup();
                return Err(Error::forbidden(
                    rt,
                    name,
                    &format!("failed quota: {qname}: must specify {}", missing.join(",")),
                ));
            }
        }
        let exceeded: Vec<&String> = hard
            .iter()
            .filter(|(k, (limit, _))| {
                requested.get(*k).is_some_and(|r| {
                    r.milli() > 0 && used.get(*k).copied().unwrap_or_default().checked_add(*r) > *limit
                })
            })
            .map(|(k, _)| k)
            .collect();
        if !exceeded.is_empty() {
            let list = |f: &dyn Fn(&String) -> String| {
                exceeded
                    .iter()
                    .map(|k| format!("{k}={}", f(k)))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let message = format!(
                "exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                list(&|k| requested[k].format_like(&hard[k].1)),
                list(&|k| used.get(k).copied().unwrap_or_default().format_like(&hard[k].1)),
                list(&|k| hard[k].1.clone()),
            );
            return Err(Error::forbidden(rt, name, &message));
        }
    }
    Ok(())
}

/// One pass of the quota controller: `status.hard` and `status.used`.
pub(crate) fn reconcile(store: &Store) {
    for quota in store.all(resource::RESOURCEQUOTAS) {
        let (ns, name) = (
            meta_str(&quota, "namespace").to_string(),
            meta_str(&quota, "name").to_string(),
        );
        let used = namespace_usage(&store.lock(), &ns);
        let hard = hard_of(&quota);
        let mut used_json = serde_json::Map::new();
        for (k, (_, text)) in &hard {
            used_json.insert(
                k.clone(),
                json!(used.get(k).copied().unwrap_or_default().format_like(text)),
            );
        }
        let status = json!({ "hard": quota["spec"]["hard"], "used": used_json });
        if quota.get("status") == Some(&status) {
            continue;
        }
        let _ = store.modify(
            resource::RESOURCEQUOTAS,
            &ns,
            &name,
            &WriteOptions::by(workload::MANAGER).status(),
            |cur| {
                let mut c = cur.clone();
                c["status"] = status;
                Ok(c)
            },
        );
    }
}
