//! Status of a binding in one cluster: each workload's rollout (desired,
//! updated, ready and available replicas, whether the controller has seen
//! the latest spec, conditions) read from the object as the cluster returns
//! it, and recorded on the binding target. Two paths feed it: the watches
//! ([`crate::watch`]) while they run, and the propagator's polling
//! ([`crate::propagation`]) where they do not; both record through
//! [`record`], so the binding's health (computed from the targets on every
//! read, [`crate::binding::overall`]) follows whichever observed last.

use kernel::Result;
use kernel::event::EventType;
use kube::core::DynamicObject;
use paas_proto::v1 as pb;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::binding::{Kind, Object, WorkloadStatus};

/// Whether objects of `kind` run pods whose rollout is observed.
pub fn observed(kind: &Kind) -> bool {
    kind.workload || kind.kind == "DaemonSet"
}

/// Whether every workload's rollout is done ([`WorkloadStatus::rolled_out`]).
pub fn settled(workloads: &[WorkloadStatus]) -> bool {
    workloads.iter().all(WorkloadStatus::rolled_out)
}

/// Announces that one cluster's copy of a binding settled or unsettled.
pub const STATUS_CHANGED: EventType = EventType::new("federation", "binding", "status_changed");

/// Records what was observed of `binding` in `cluster` (unless the target is
/// being removed): the workloads, when, and whether they are settled. When
/// `settled` flips, [`STATUS_CHANGED`] goes out in the same transaction, so
/// whoever waits on the binding (a release) need not poll for it.
///
/// # Errors
/// The database fails.
pub async fn record(pool: &PgPool, binding: Uuid, cluster: &str, workloads: Vec<WorkloadStatus>) -> Result<()> {
    let settled = settled(&workloads);
    let mut tx = pool.begin().await?;
    let flipped = sqlx::query_scalar!(
        r#"WITH before AS (SELECT t.settled, b.tenant_id FROM binding_targets t JOIN bindings b ON b.id = t.binding_id
                           WHERE t.binding_id = $1 AND t.cluster = $2 AND NOT t.removing FOR UPDATE OF t),
                changed AS (UPDATE binding_targets SET workloads = $3, observed_at = now(), settled = $4
                            WHERE binding_id = $1 AND cluster = $2 AND NOT removing RETURNING 1)
           SELECT tenant_id AS "tenant_id!" FROM before WHERE settled <> $4"#,
        binding,
        cluster,
        sqlx::types::Json(workloads) as _,
        settled,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(tenant) = flipped {
        let event = pb::BindingStatusChanged {
            binding_id: binding.to_string(),
            tenant_id: tenant.to_string(),
            cluster: cluster.to_string(),
            settled,
        };
        kernel::outbox::record(&mut tx, STATUS_CHANGED, Some(tenant), &event).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A workload's rollout from the object read back (absent: nothing yet).
pub fn observe(o: &Object, found: Option<&DynamicObject>) -> WorkloadStatus {
    let mut w = WorkloadStatus {
        kind: o.kind.kind.into(),
        name: o.name.clone(),
        ..Default::default()
    };
    let Some(found) = found else { return w };
    let int = |v: &Value| v.as_i64().unwrap_or(0) as i32;
    let status = &found.data["status"];
    let (desired, updated, ready, available) = if o.kind.kind == "DaemonSet" {
        (
            int(&status["desiredNumberScheduled"]),
            int(&status["updatedNumberScheduled"]),
            int(&status["numberReady"]),
            int(&status["numberAvailable"]),
        )
    } else {
        let desired = found.data["spec"]["replicas"].as_i64().map_or(1, |r| r as i32);
        let available = if o.kind.kind == "StatefulSet" && status.get("availableReplicas").is_none() {
            &status["readyReplicas"]
        } else {
            &status["availableReplicas"]
        };
        (
            desired,
            int(&status["updatedReplicas"]),
            int(&status["readyReplicas"]),
            int(available),
        )
    };
    if o.kind.kind == "Deployment" {
        w.outdated = (int(&status["replicas"]) - int(&status["updatedReplicas"])).max(0);
    }
    w.desired = desired;
    w.updated = updated;
    w.ready = ready;
    w.available = available;
    w.current = match (found.metadata.generation, status["observedGeneration"].as_i64()) {
        (Some(g), Some(seen)) => seen >= g,
        (None, _) => true,
        (Some(_), None) => false,
    };
    w.conditions = status["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                    (s("type"), s("status"), s("reason"), s("message"))
                })
                .collect()
        })
        .unwrap_or_default();
    w
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::binding;

    #[test]
    fn a_deployment_rollout_is_read_from_its_status_and_generation() {
        let o = &binding::parse_objects(&json!([{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}}]).to_string()).unwrap()[0];
        let found: DynamicObject = serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 3},
            "status": {"observedGeneration": 1, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2,
                       "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "m"}]}}))
        .unwrap();
        let w = observe(o, Some(&found));
        assert_eq!(
            (w.desired, w.updated, w.ready, w.available, w.current),
            (3, 3, 2, 2, false)
        );
        assert_eq!(w.conditions[0].0, "Available");
        assert_eq!(observe(o, None).available, 0);
    }

    /// A surge pod at the new template is counted as updated while the old
    /// pod keeps the Deployment available: not rolled out until the old pod
    /// is gone (`kubectl rollout status`: "old replicas are pending termination").
    #[test]
    fn a_rollout_with_an_old_pod_left_is_not_complete() {
        let o = &binding::parse_objects(&json!([{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1}}]).to_string()).unwrap()[0];
        let status = |replicas: i64| -> DynamicObject {
            serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 1},
                "status": {"observedGeneration": 2, "replicas": replicas, "updatedReplicas": 1, "readyReplicas": replicas, "availableReplicas": 1}}))
            .unwrap()
        };
        let surging = observe(o, Some(&status(2)));
        assert_eq!((surging.outdated, surging.rolled_out()), (1, false));
        assert!(observe(o, Some(&status(1))).rolled_out());
    }
}
