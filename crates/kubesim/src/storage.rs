//! Volumes: the cluster's default StorageClass, and the PersistentVolume
//! controller with a provisioner for every class: a claim is bound to a
//! new PersistentVolume `pvc-<claim uid>` of the requested size (status
//! `Bound` on both, the annotations the real controller sets), at once for
//! `volumeBindingMode: Immediate` and, for `WaitForFirstConsumer`, once a
//! pod using the claim has been scheduled (the volume follows that node).
//! A claim naming a `volumeName` binds to that volume when it is Available.
//! A released volume is deleted (`reclaimPolicy: Delete`) or kept
//! `Released` (`Retain`).
//!
//! Not simulated: the pvc-protection and pv-protection finalizers, volume
//! expansion, access-mode and capacity matching of pre-provisioned volumes
//! without `volumeName`, and the scheduler waiting for unbound claims.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::defaults::DEFAULT_CLASS_ANNOTATION;
use crate::event::{self, Source, Type};
use crate::resource;
use crate::store::{Store, WriteOptions, meta_str};
use crate::workload::deleting;

/// The provisioner of kubesim's default StorageClass.
pub const PROVISIONER: &str = "kubesim.io/host-path";
const CONTROLLER: &str = "persistentvolume-controller";

/// The StorageClass every cluster starts with: `standard`, the default,
/// `volumeBindingMode: Immediate`, `reclaimPolicy: Delete`.
pub(crate) fn default_class() -> Value {
    json!({
        "metadata": { "name": "standard", "annotations": { DEFAULT_CLASS_ANNOTATION: "true" } },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": true,
    })
}

fn uses_claim(pod: &Value, claim: &str) -> bool {
    pod["spec"]["volumes"]
        .as_array()
        .is_some_and(|vs| vs.iter().any(|v| v["persistentVolumeClaim"]["claimName"] == claim))
}

/// One pass of the PersistentVolume controller.
pub(crate) fn reconcile(store: &Store) {
    let classes = store.all(resource::STORAGECLASSES);
    for pvc in store.all(resource::PERSISTENTVOLUMECLAIMS) {
        if deleting(&pvc) || pvc["status"]["phase"] == "Bound" {
            continue;
        }
        let (ns, name) = (meta_str(&pvc, "namespace"), meta_str(&pvc, "name"));
        if let Some(volume) = pvc["spec"]["volumeName"].as_str().filter(|v| !v.is_empty()) {
            bind_existing(store, &pvc, volume);
            continue;
        }
        let Some(class) = pvc["spec"]["storageClassName"]
            .as_str()
            .and_then(|c| classes.iter().find(|sc| meta_str(sc, "name") == c))
        else {
            continue;
        };
        let provisioner = class["provisioner"].as_str().unwrap_or(PROVISIONER);
        let mut node = None;
        if class["volumeBindingMode"] == "WaitForFirstConsumer" {
            let consumer = store
                .lock()
                .in_namespace(resource::PODS, ns)
                .find(|p| {
                    uses_claim(p, name)
                        && p["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty())
                        && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
                })
                .cloned();
            match consumer {
                Some(p) => node = p["spec"]["nodeName"].as_str().map(String::from),
                None => {
                    event::record_once(
                        store,
                        &pvc,
                        Type::Normal,
                        "WaitForFirstConsumer",
                        "waiting for first consumer to be created before binding",
                        Source::controller(CONTROLLER),
                    );
                    continue;
                }
            }
        }
        provision(store, &pvc, class, provisioner, node.as_deref());
    }
    release_volumes(store);
}

fn provision(store: &Store, pvc: &Arc<Value>, class: &Value, provisioner: &str, node: Option<&str>) {
    let (ns, name) = (meta_str(pvc, "namespace"), meta_str(pvc, "name"));
    let pv_name = format!("pvc-{}", meta_str(pvc, "uid"));
    let size = pvc["spec"]["resources"]["requests"]["storage"].clone();
    let modes = pvc["spec"]["accessModes"].clone();
    event::record(
        store,
        pvc,
        Type::Normal,
        "Provisioning",
        &format!("External provisioner is provisioning volume for claim \"{ns}/{name}\""),
        Source::controller(provisioner),
    );
    let mut pv = json!({
        "metadata": {
            "name": pv_name,
            "annotations": { "pv.kubernetes.io/provisioned-by": provisioner },
        },
        "spec": {
            "capacity": { "storage": size },
            "accessModes": modes,
            "persistentVolumeReclaimPolicy": class["reclaimPolicy"].as_str().unwrap_or("Delete"),
            "storageClassName": class["metadata"]["name"],
            "volumeMode": pvc["spec"]["volumeMode"],
            "hostPath": { "path": format!("/var/lib/kubesim/{pv_name}"), "type": "DirectoryOrCreate" },
            "claimRef": {
                "kind": "PersistentVolumeClaim", "namespace": ns, "name": name,
                "uid": pvc["metadata"]["uid"], "apiVersion": "v1",
                "resourceVersion": pvc["metadata"]["resourceVersion"],
            },
        },
        "status": { "phase": "Bound" },
    });
    if let Some(n) = node {
        pv["spec"]["nodeAffinity"] = json!({ "required": { "nodeSelectorTerms": [{ "matchExpressions": [
            { "key": "kubernetes.io/hostname", "operator": "In", "values": [n] },
        ] }] } });
    }
    let created = store.create(resource::PERSISTENTVOLUMES, "", pv, &WriteOptions::by(CONTROLLER));
    if let Err(e) = &created
        && !matches!(e, crate::status::Error::AlreadyExists { .. })
    {
        event::record(
            store,
            pvc,
            Type::Warning,
            "ProvisioningFailed",
            &e.to_string(),
            Source::controller(provisioner),
        );
        return;
    }
    event::record(
        store,
        pvc,
        Type::Normal,
        "ProvisioningSucceeded",
        &format!("Successfully provisioned volume {pv_name}"),
        Source::controller(provisioner),
    );
    bind_claim(store, pvc, &pv_name, &size, &modes, Some(provisioner), node);
}

/// Binds a claim to the volume it names, if that volume is free.
fn bind_existing(store: &Store, pvc: &Value, volume: &str) {
    let Ok(pv) = store.get(resource::PERSISTENTVOLUMES, "", volume) else {
        return;
    };
    let claim = &pv["spec"]["claimRef"];
    let free = claim.is_null()
        || (claim["namespace"] == pvc["metadata"]["namespace"] && claim["name"] == pvc["metadata"]["name"]);
    if !free {
        return;
    }
    let (ns, name) = (meta_str(pvc, "namespace"), meta_str(pvc, "name"));
    let bound = store.modify(
        resource::PERSISTENTVOLUMES,
        "",
        volume,
        &WriteOptions::by(CONTROLLER),
        |cur| {
            let mut c = cur.clone();
            c["spec"]["claimRef"] = json!({
                "kind": "PersistentVolumeClaim", "namespace": ns, "name": name,
                "uid": pvc["metadata"]["uid"], "apiVersion": "v1",
                "resourceVersion": pvc["metadata"]["resourceVersion"],
            });
            Ok(c)
        },
    );
    if let Ok(pv) = bound {
        write_phase(store, &pv, "Bound");
        let size = pv["spec"]["capacity"]["storage"].clone();
        bind_claim(store, pvc, volume, &size, &pv["spec"]["accessModes"], None, None);
    }
}

fn write_phase(store: &Store, pv: &Value, phase: &str) {
    if pv["status"]["phase"] == phase {
        return;
    }
    let _ = store.modify(
        resource::PERSISTENTVOLUMES,
        "",
        meta_str(pv, "name"),
        &WriteOptions::by(CONTROLLER).status(),
        |cur| {
            let mut c = cur.clone();
            c["status"] = json!({ "phase": phase });
            Ok(c)
        },
    );
}

fn bind_claim(
    store: &Store,
    pvc: &Value,
    volume: &str,
    size: &Value,
    modes: &Value,
    provisioner: Option<&str>,
    node: Option<&str>,
) {
    let (ns, name) = (meta_str(pvc, "namespace"), meta_str(pvc, "name"));
    let opts = WriteOptions::by(CONTROLLER);
    let updated = store.modify(resource::PERSISTENTVOLUMECLAIMS, ns, name, &opts, |cur| {
        let mut c = cur.clone();
        c["spec"]["volumeName"] = json!(volume);
        let a = &mut c["metadata"]["annotations"];
        if !a.is_object() {
            *a = json!({});
        }
        a["pv.kubernetes.io/bind-completed"] = json!("yes");
        a["pv.kubernetes.io/bound-by-controller"] = json!("yes");
        if let Some(p) = provisioner {
            a["volume.beta.kubernetes.io/storage-provisioner"] = json!(p);
            a["volume.kubernetes.io/storage-provisioner"] = json!(p);
        }
        if let Some(n) = node {
            a["volume.kubernetes.io/selected-node"] = json!(n);
        }
        Ok(c)
    });
    if updated.is_ok() {
        let _ = store.modify(
            resource::PERSISTENTVOLUMECLAIMS,
            ns,
            name,
            &opts.clone().status(),
            |cur| {
                let mut c = cur.clone();
                c["status"] = json!({ "phase": "Bound", "accessModes": modes, "capacity": { "storage": size } });
                Ok(c)
            },
        );
    }
}

/// Volumes whose claim is gone: deleted or `Released` by reclaim policy;
/// unclaimed ones are `Available`.
fn release_volumes(store: &Store) {
    for pv in store.all(resource::PERSISTENTVOLUMES) {
        if deleting(&pv) {
            continue;
        }
        let claim = &pv["spec"]["claimRef"];
        if claim.is_null() {
            write_phase(store, &pv, "Available");
            continue;
        }
        let exists = store
            .get(
                resource::PERSISTENTVOLUMECLAIMS,
                claim["namespace"].as_str().unwrap_or_default(),
                claim["name"].as_str().unwrap_or_default(),
            )
            .is_ok_and(|c| claim["uid"].is_null() || c["metadata"]["uid"] == claim["uid"]);
        if exists {
            continue;
        }
        if pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete" {
            let _ = store.delete(resource::PERSISTENTVOLUMES, "", meta_str(&pv, "name"), false, false);
        } else {
            write_phase(store, &pv, "Released");
        }
    }
}
