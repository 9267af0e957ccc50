//! Defaults and validation the API server applies on write to the kinds
//! beyond the core workloads: Secrets (`stringData` merged into `data`,
//! `type: Opaque`), StatefulSet and DaemonSet update strategies, Jobs (the
//! generated selector and labels, parallelism, completions, backoffLimit)
//! and CronJobs, PersistentVolumeClaims (the default StorageClass, as the
//! `DefaultStorageClass` admission plugin sets it), StorageClasses and
//! PersistentVolumes.

use base64::Engine;
use serde_json::{Value, json};

use crate::resource::{self, ResourceId};
use crate::store::{State, meta_str};

/// The annotation marking the cluster's default StorageClass.
pub(crate) const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

fn set_if_absent(obj: &mut Value, field: &str, value: Value) {
    if obj.get(field).is_none_or(Value::is_null) {
        obj[field] = value;
    }
}

/// Fills in what the API server defaults for `rid`.
pub(crate) fn default_object(rid: ResourceId, obj: &mut Value, st: &State) {
    status_zero_values(rid, obj);
    match rid {
        resource::SECRETS => default_secret(obj),
        resource::STATEFULSETS => {
            let spec = &mut obj["spec"];
            set_if_absent(
                spec,
                "updateStrategy",
                json!({ "type": "RollingUpdate", "rollingUpdate": { "partition": 0 } }),
            );
            set_if_absent(spec, "podManagementPolicy", json!("OrderedReady"));
            set_if_absent(spec, "revisionHistoryLimit", json!(10));
            set_if_absent(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({ "whenDeleted": "Retain", "whenScaled": "Retain" }),
            );
        }
        resource::DAEMONSETS => {
            let spec = &mut obj["spec"];
            set_if_absent(
                spec,
                "updateStrategy",
                json!({ "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": 0 } }),
            );
            set_if_absent(spec, "revisionHistoryLimit", json!(10));
        }
        resource::JOBS => default_job(obj),
        resource::CRONJOBS => {
            let spec = &mut obj["spec"];
            set_if_absent(spec, "concurrencyPolicy", json!("Allow"));
            set_if_absent(spec, "suspend", json!(false));
            set_if_absent(spec, "successfulJobsHistoryLimit", json!(3));
            set_if_absent(spec, "failedJobsHistoryLimit", json!(1));
            default_job_spec(&mut spec["jobTemplate"]["spec"]);
        }
        resource::PERSISTENTVOLUMECLAIMS => {
            if obj["spec"].get("storageClassName").is_none_or(Value::is_null)
                && obj["spec"]["volumeName"].as_str().is_none_or(str::is_empty)
                && let Some(class) = default_class(st)
            {
                obj["spec"]["storageClassName"] = json!(class);
            }
            set_if_absent(&mut obj["spec"], "volumeMode", json!("Filesystem"));
            if obj["status"]["phase"].is_null() {
                obj["status"]["phase"] = json!("Pending");
            }
        }
        resource::STORAGECLASSES => {
            set_if_absent(obj, "reclaimPolicy", json!("Delete"));
            set_if_absent(obj, "volumeBindingMode", json!("Immediate"));
        }
        resource::PERSISTENTVOLUMES => {
            set_if_absent(&mut obj["spec"], "persistentVolumeReclaimPolicy", json!("Retain"));
            set_if_absent(&mut obj["spec"], "volumeMode", json!("Filesystem"));
            if obj["status"]["phase"].is_null() {
                obj["status"] = json!({ "phase": "Pending" });
            }
        }
        _ => {}
    }
}

/// The status fields the API server always serializes, zero until a
/// controller sets them: Go's JSON encoding writes non-`omitempty` integers
/// and nested structs even when empty, and clients whose models require
/// them (the Python client's `StatefulSetStatus.replicas`) fail without.
fn status_zero_values(rid: ResourceId, obj: &mut Value) {
    let fields: &[(&str, Value)] = match rid {
        resource::STATEFULSETS => &[("replicas", json!(0)), ("availableReplicas", json!(0))],
        resource::REPLICASETS | resource::REPLICATIONCONTROLLERS => &[("replicas", json!(0))],
        resource::DAEMONSETS => &[
            ("currentNumberScheduled", json!(0)),
            ("desiredNumberScheduled", json!(0)),
            ("numberMisscheduled", json!(0)),
            ("numberReady", json!(0)),
        ],
        resource::HORIZONTALPODAUTOSCALERS => &[("desiredReplicas", json!(0))],
        resource::SERVICES | resource::INGRESSES => &[("loadBalancer", json!({}))],
        _ => return,
    };
    if !obj["status"].is_object() {
        obj["status"] = json!({});
    }
    for (field, zero) in fields {
        set_if_absent(&mut obj["status"], field, zero.clone());
    }
}

/// The default StorageClass: the newest one annotated as default, as the
/// admission plugin picks it when several are.
pub(crate) fn default_class(st: &State) -> Option<String> {
    st.map(resource::STORAGECLASSES)
        .values()
        .filter(|c| c["metadata"]["annotations"][DEFAULT_CLASS_ANNOTATION] == "true")
        .max_by(|a, b| meta_str(a, "creationTimestamp").cmp(meta_str(b, "creationTimestamp")))
        .map(|c| meta_str(c, "name").to_string())
}

/// `stringData` is write-only: merged into `data` as base64 (winning over
/// the same key in `data`) and dropped; `type` defaults to `Opaque`.
fn default_secret(obj: &mut Value) {
    if let Some(Value::Object(plain)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) {
        if !obj["data"].is_object() {
            obj["data"] = json!({});
        }
        for (k, v) in plain {
            let text = v.as_str().map_or_else(|| v.to_string(), String::from);
            obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
    set_if_absent(obj, "type", json!("Opaque"));
}

/// A Job's generated selector and pod labels (unless `manualSelector`),
/// then the spec defaults.
fn default_job(obj: &mut Value) {
    let uid = meta_str(obj, "uid").to_string();
    let name = meta_str(obj, "name").to_string();
    let spec = &mut obj["spec"];
    if spec["manualSelector"] != true && !spec["selector"].is_object() && !uid.is_empty() {
        spec["selector"] = json!({ "matchLabels": { "batch.kubernetes.io/controller-uid": uid } });
        let labels = &mut spec["template"]["metadata"]["labels"];
        if !labels.is_object() {
            *labels = json!({});
        }
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", &uid),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("job-name", &name),
        ] {
            labels[k] = json!(v);
        }
    }
    default_job_spec(spec);
}

fn default_job_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    if spec.get("completions").is_none_or(Value::is_null) && spec.get("parallelism").is_none_or(Value::is_null) {
        spec["completions"] = json!(1);
        spec["parallelism"] = json!(1);
    }
    set_if_absent(spec, "parallelism", json!(1));
    set_if_absent(spec, "backoffLimit", json!(6));
    set_if_absent(spec, "completionMode", json!("NonIndexed"));
    set_if_absent(spec, "suspend", json!(false));
    set_if_absent(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    set_if_absent(&mut spec["template"]["spec"], "restartPolicy", json!("Always"));
}

/// 422 problems of Jobs and CronJobs, with the API server's messages.
pub(crate) fn validate(rid: ResourceId, obj: &Value) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    match rid {
        resource::JOBS => job_spec_problems(&obj["spec"], "spec", &mut problems),
        resource::CRONJOBS => {
            let spec = &obj["spec"];
            match spec["schedule"].as_str() {
                None | Some("") => problems.push(("spec.schedule".into(), "Required value".into())),
                Some(s) => {
                    if let Err(why) = crate::cron_job::parse_schedule(s) {
                        problems.push(("spec.schedule".into(), format!("Invalid value: \"{s}\": {why}")));
                    }
                }
            }
            if let Some(zone) = spec["timeZone"].as_str()
                && let Err(why) = crate::cron_job::parse_time_zone(zone)
            {
                problems.push(("spec.timeZone".into(), format!("Invalid value: \"{zone}\": {why}")));
            }
            if let Some(p) = spec["concurrencyPolicy"]
                .as_str()
                .filter(|p| !["Allow", "Forbid", "Replace"].contains(p))
            {
                problems.push((
                    "spec.concurrencyPolicy".into(),
                    format!("Unsupported value: \"{p}\": supported values: \"Allow\", \"Forbid\", \"Replace\""),
                ));
            }
            job_spec_problems(&spec["jobTemplate"]["spec"], "spec.jobTemplate.spec", &mut problems);
        }
        _ => {}
    }
    problems
}

fn job_spec_problems(spec: &Value, path: &str, problems: &mut Vec<(String, String)>) {
    for field in [
        "parallelism",
        "completions",
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
    ] {
        if let Some(n) = spec[field].as_i64().filter(|n| *n < 0) {
            problems.push((
                format!("{path}.{field}"),
                format!("Invalid value: {n}: must be greater than or equal to 0"),
            ));
        }
    }
    if spec["completionMode"] == "Indexed" && spec["completions"].as_i64().is_none() {
        problems.push((
            format!("{path}.completions"),
            "Required value: when completion mode is Indexed".into(),
        ));
    }
    let pod = &spec["template"]["spec"];
    if pod["containers"].as_array().is_none_or(Vec::is_empty) {
        problems.push((format!("{path}.template.spec.containers"), "Required value".into()));
    }
    let policy = pod["restartPolicy"].as_str().unwrap_or("Always");
    if !matches!(policy, "OnFailure" | "Never") {
        problems.push((
            format!("{path}.template.spec.restartPolicy"),
            format!("Unsupported value: \"{policy}\": supported values: \"OnFailure\", \"Never\""),
        ));
    }
    if spec["podFailurePolicy"].is_object() {
        if policy != "Never" {
            problems.push((
                format!("{path}.template.spec.restartPolicy"),
                format!("Invalid value: \"{policy}\": only \"Never\" is supported when podFailurePolicy is specified"),
            ));
        }
        for (i, rule) in spec["podFailurePolicy"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let action = rule["action"].as_str().unwrap_or_default();
            if !matches!(action, "FailJob" | "Ignore" | "Count" | "FailIndex") {
                problems.push((
                    format!("{path}.podFailurePolicy.rules[{i}].action"),
                    format!(
                        "Unsupported value: \"{action}\": supported values: \"Count\", \"FailIndex\", \"FailJob\", \"Ignore\""
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_data_is_merged_into_data_as_base64() {
        let mut s =
            json!({ "metadata": { "name": "s" }, "data": { "a": "eA==", "b": "eQ==" }, "stringData": { "b": "hi" } });
        default_secret(&mut s);
        assert_eq!(s["data"], json!({ "a": "eA==", "b": "aGk=" }));
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
    }

    #[test]
    fn a_job_gets_a_generated_selector_and_one_completion() {
        let mut job = json!({
            "metadata": { "name": "pi", "uid": "u-1" },
            "spec": { "template": { "spec": { "restartPolicy": "Never", "containers": [{ "name": "c" }] } } },
        });
        default_job(&mut job);
        assert_eq!(
            job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "u-1"
        );
        assert_eq!(job["spec"]["template"]["metadata"]["labels"]["job-name"], "pi");
        assert_eq!(
            (job["spec"]["completions"].as_i64(), job["spec"]["parallelism"].as_i64()),
            (Some(1), Some(1))
        );
        assert_eq!(job["spec"]["backoffLimit"], 6);
        assert!(validate(resource::JOBS, &job).is_empty());
    }

    #[test]
    fn a_job_must_not_restart_always() {
        let job = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "c" }] } } } });
        let problems = validate(resource::JOBS, &job);
        assert_eq!(problems[0].0, "spec.template.spec.restartPolicy");
        assert!(problems[0].1.contains("\"Always\""), "{problems:?}");
    }
}
