//! The HorizontalPodAutoscaler controller, without a metrics API (as on a
//! cluster without metrics-server): it keeps the target's replicas within
//! `minReplicas`..`maxReplicas`, scaling it with `SuccessfulRescale` ("New
//! size: N; reason: Current number of replicas below Spec.MinReplicas"),
//! and reports that it cannot compute a recommendation from metrics
//! (ScalingActive False, `FailedGetResourceMetric`), with the status
//! `currentReplicas`, `desiredReplicas`, `lastScaleTime` and conditions.
//!
//! Not simulated: metric-driven scaling, behavior policies and stabilisation windows.

use serde_json::{Value, json};

use crate::event::{self, Source, Type};
use crate::resource::{self, ResourceId};
use crate::store::{self, Store, WriteOptions, meta_str};
use crate::workload::{self, deleting};

const CONTROLLER: &str = "horizontal-pod-autoscaler";

fn target_kind(kind: &str) -> Option<ResourceId> {
    match kind {
        "Deployment" => Some(resource::DEPLOYMENTS),
        "StatefulSet" => Some(resource::STATEFULSETS),
        "ReplicaSet" => Some(resource::REPLICASETS),
        _ => None,
    }
}

fn hpa_condition(previous: &Value, kind: &str, status: bool, reason: &str, message: &str) -> Value {
    let status = if status { "True" } else { "False" };
    let same = previous["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind && c["status"] == status));
    let transition = same.map_or_else(|| json!(store::now()), |c| c["lastTransitionTime"].clone());
    json!({ "type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": transition })
}

/// One pass of the HPA controller.
pub(crate) fn reconcile(store: &Store) {
    for hpa in store.all(resource::HORIZONTALPODAUTOSCALERS) {
        if deleting(&hpa) {
            continue;
        }
        let ns = meta_str(&hpa, "namespace");
        let spec = &hpa["spec"];
        let target = &spec["scaleTargetRef"];
        let (Some(rid), Some(name)) = (target["kind"].as_str().and_then(target_kind), target["name"].as_str()) else {
            continue;
        };
        let Ok(workload) = store.get(rid, ns, name) else {
            continue;
        };
        let current = workload["spec"]["replicas"].as_i64().unwrap_or(1);
        let min = spec["minReplicas"].as_i64().unwrap_or(1);
        let max = spec["maxReplicas"].as_i64().unwrap_or(min);
        let previous = &hpa["status"];
        let (desired, reason, limited) = if current == 0 && min != 0 {
            (0, "", None)
        } else if current > max {
            (
                max,
                "Current number of replicas above Spec.MaxReplicas",
                Some((
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                )),
            )
        } else if current < min {
            (
                min,
                "Current number of replicas below Spec.MinReplicas",
                Some((
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                )),
            )
        } else {
            (current, "", None)
        };
        let mut last_scale = previous["lastScaleTime"].clone();
        if desired != current && current != 0 {
            let scaled = store.modify(rid, ns, name, &WriteOptions::by(CONTROLLER), |cur| {
                let mut c = cur.clone();
                c["spec"]["replicas"] = json!(desired);
                Ok(c)
            });
            if scaled.is_ok() {
                last_scale = json!(store::now());
                event::record(
                    store,
                    &hpa,
                    Type::Normal,
                    "SuccessfulRescale",
                    &format!("New size: {desired}; reason: {reason}"),
                    Source::controller(CONTROLLER),
                );
            }
        }
        let metrics_message = "the HPA was unable to compute the replica count: failed to get cpu utilization: \
                               unable to get metrics for resource cpu: no metrics returned from resource metrics API";
        let mut conditions = vec![hpa_condition(
            previous,
            "AbleToScale",
            true,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        )];
        if current == 0 && min != 0 {
            conditions.push(hpa_condition(
                previous,
                "ScalingActive",
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            ));
        } else {
            conditions.push(hpa_condition(
                previous,
                "ScalingActive",
                false,
                "FailedGetResourceMetric",
                metrics_message,
            ));
            event::record_once(
                store,
                &hpa,
                Type::Warning,
                "FailedGetResourceMetric",
                "failed to get cpu utilization: unable to get metrics for resource cpu: \
                 no metrics returned from resource metrics API",
                Source::controller(CONTROLLER),
            );
        }
        if let Some((why, message)) = limited {
            conditions.push(hpa_condition(previous, "ScalingLimited", true, why, message));
        }
        let mut status = json!({
            "currentReplicas": current,
            "desiredReplicas": desired,
            "currentMetrics": null,
            "conditions": conditions,
        });
        if !last_scale.is_null() {
            status["lastScaleTime"] = last_scale;
        }
        if let Some(m) = status.as_object_mut() {
            m.retain(|_, v| !v.is_null());
        }
        if hpa.get("status") != Some(&status) {
            let _ = store.modify(
                resource::HORIZONTALPODAUTOSCALERS,
                ns,
                meta_str(&hpa, "name"),
                &WriteOptions::by(workload::MANAGER).status(),
                |cur| {
                    let mut c = cur.clone();
                    c["status"] = status;
                    Ok(c)
                },
            );
        }
    }
}
