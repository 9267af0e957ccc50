//! The resource kinds kubesim serves: group, version, plural, kind, scope and
//! subresources, which drive routing, discovery and the store's keys.

/// One served resource kind.
#[derive(Debug)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// API version within the group (`v1`).
    pub version: &'static str,
    /// The plural name used in URLs (`deployments`).
    pub plural: &'static str,
    /// The singular name discovery reports (`deployment`).
    pub singular: &'static str,
    /// The object kind (`Deployment`).
    pub kind: &'static str,
    /// Objects live in a namespace (false for cluster-scoped kinds).
    pub namespaced: bool,
    /// Short names kubectl accepts (`deploy`).
    pub short_names: &'static [&'static str],
    /// Has a `status` subresource (the main endpoint ignores status changes).
    pub status: bool,
    /// Has a `scale` subresource (autoscaling/v1 `Scale`).
    pub scale: bool,
}

/// Index of a resource kind in [`RESOURCES`].
pub type ResourceId = usize;

// The kinds the simulation's controllers name, by their index in RESOURCES.
/// `v1` Namespace.
pub const NAMESPACES: ResourceId = 0;
/// `v1` Node.
pub const NODES: ResourceId = 1;
/// `v1` Pod.
pub const PODS: ResourceId = 2;
/// `v1` Service.
pub const SERVICES: ResourceId = 3;
/// `v1` Endpoints.
pub const ENDPOINTS: ResourceId = 4;
/// `v1` ConfigMap.
pub const CONFIGMAPS: ResourceId = 5;
/// `v1` Secret.
pub const SECRETS: ResourceId = 6;
/// `v1` ResourceQuota.
pub const RESOURCEQUOTAS: ResourceId = 7;
/// `v1` PersistentVolumeClaim.
pub const PERSISTENTVOLUMECLAIMS: ResourceId = 10;
/// `apps/v1` Deployment.
pub const DEPLOYMENTS: ResourceId = 12;
/// `apps/v1` StatefulSet.
pub const STATEFULSETS: ResourceId = 13;
/// `apps/v1` DaemonSet.
pub const DAEMONSETS: ResourceId = 14;
/// `apps/v1` ReplicaSet.
pub const REPLICASETS: ResourceId = 15;
/// `v1` Event.
pub const EVENTS: ResourceId = 9;
/// `autoscaling/v2` HorizontalPodAutoscaler.
pub const HORIZONTALPODAUTOSCALERS: ResourceId = 18;
/// `batch/v1` Job.
pub const JOBS: ResourceId = 21;
/// `batch/v1` CronJob.
pub const CRONJOBS: ResourceId = 22;
/// `events.k8s.io/v1` Event: the same events as [`EVENTS`] in the newer schema.
pub const EVENTS_V1: ResourceId = 23;
/// `storage.k8s.io/v1` StorageClass.
pub const STORAGECLASSES: ResourceId = 24;
/// `v1` PersistentVolume.
pub const PERSISTENTVOLUMES: ResourceId = 25;
/// `networking.k8s.io/v1` Ingress.
pub const INGRESSES: ResourceId = 17;
/// `v1` ReplicationController.
pub const REPLICATIONCONTROLLERS: ResourceId = 26;

#[allow(clippy::too_many_arguments)]
const fn rt(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    status: bool,
    scale: bool,
) -> ResourceType {
    ResourceType {
        group,
        version,
        plural,
        singular,
        kind,
        namespaced,
        short_names,
        status,
        scale,
    }
}

/// Every served resource kind; the constants above index into it.
pub static RESOURCES: &[ResourceType] = &[
    rt(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        true,
        false,
    ),
    rt("", "v1", "nodes", "node", "Node", false, &["no"], true, false),
    rt("", "v1", "pods", "pod", "Pod", true, &["po"], true, false),
    rt("", "v1", "services", "service", "Service", true, &["svc"], true, false),
    rt(
        "",
        "v1",
        "endpoints",
        "endpoints",
        "Endpoints",
        true,
        &["ep"],
        false,
        false,
    ),
    rt(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        false,
        false,
    ),
    rt("", "v1", "secrets", "secret", "Secret", true, &[], false, false),
    rt(
        "",
        "v1",
        "resourcequotas",
        "resourcequota",
        "ResourceQuota",
        true,
        &["quota"],
        true,
        false,
    ),
    rt(
        "",
        "v1",
        "limitranges",
        "limitrange",
        "LimitRange",
        true,
        &["limits"],
        false,
        false,
    ),
    rt("", "v1", "events", "event", "Event", true, &["ev"], false, false),
    rt(
        "",
        "v1",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        true,
        false,
    ),
    rt(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        false,
        false,
    ),
    rt(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
        true,
        true,
    ),
    rt(
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        &["sts"],
        true,
        true,
    ),
    rt(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        &["ds"],
        true,
        false,
    ),
    rt(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        &["rs"],
        true,
        true,
    ),
    rt(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        true,
        &["netpol"],
        false,
        false,
    ),
    rt(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "ingress",
        "Ingress",
        true,
        &["ing"],
        true,
        false,
    ),
    rt(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
        true,
        false,
    ),
    rt(
        "gateway.networking.k8s.io",
        "v1",
        "httproutes",
        "httproute",
        "HTTPRoute",
        true,
        &[],
        true,
        false,
    ),
    rt(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        true,
        &[],
        false,
        false,
    ),
    rt("batch", "v1", "jobs", "job", "Job", true, &[], true, false),
    rt(
        "batch",
        "v1",
        "cronjobs",
        "cronjob",
        "CronJob",
        true,
        &["cj"],
        true,
        false,
    ),
    rt(
        "events.k8s.io",
        "v1",
        "events",
        "event",
        "Event",
        true,
        &[],
        false,
        false,
    ),
    rt(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "storageclass",
        "StorageClass",
        false,
        &["sc"],
        false,
        false,
    ),
    rt(
        "",
        "v1",
        "persistentvolumes",
        "persistentvolume",
        "PersistentVolume",
        false,
        &["pv"],
        true,
        false,
    ),
    // Served so `kubectl apply --prune`'s default allow-list resolves; no
    // controller manages its pods.
    rt(
        "",
        "v1",
        "replicationcontrollers",
        "replicationcontroller",
        "ReplicationController",
        true,
        &["rc"],
        true,
        true,
    ),
];

/// The resource kind with this index.
///
/// # Panics
/// If `id` is not one of the constants of this module (a programming error).
pub fn get(id: ResourceId) -> &'static ResourceType {
    &RESOURCES[id]
}

/// Looks a resource up by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<ResourceId> {
    RESOURCES
        .iter()
        .position(|r| r.group == group && r.version == version && r.plural == plural)
}

impl ResourceType {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `pods` for the core group, as error messages name it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The discovery categories of this kind: `all` for the workload kinds
    /// `kubectl get all` lists, as on a real API server.
    pub fn categories(&self) -> &'static [&'static str] {
        match self.plural {
            "pods"
            | "services"
            | "deployments"
            | "replicasets"
            | "statefulsets"
            | "daemonsets"
            | "jobs"
            | "cronjobs"
            | "horizontalpodautoscalers"
            | "replicationcontrollers" => &["all"],
            _ => &[],
        }
    }

    /// The subresources served for this kind.
    pub fn subresources(&self) -> Vec<&'static str> {
        let mut subs = Vec::new();
        if self.status {
            subs.push("status");
        }
        if self.scale {
            subs.push("scale");
        }
        if self.plural == "pods" {
            subs.push("log");
        }
        subs
    }
}

/// The API groups served, in discovery order, with their versions.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut groups: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !groups.contains(&(r.group, r.version)) {
            groups.push((r.group, r.version));
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_index_the_kinds_they_name() {
        assert_eq!(get(NAMESPACES).plural, "namespaces");
        assert_eq!(get(NODES).plural, "nodes");
        assert_eq!(get(PODS).plural, "pods");
        assert_eq!(get(SERVICES).plural, "services");
        assert_eq!(get(ENDPOINTS).plural, "endpoints");
        assert_eq!(get(CONFIGMAPS).plural, "configmaps");
        assert_eq!(get(SECRETS).plural, "secrets");
        assert_eq!(get(RESOURCEQUOTAS).plural, "resourcequotas");
        assert_eq!(get(PERSISTENTVOLUMECLAIMS).plural, "persistentvolumeclaims");
        assert_eq!(get(DEPLOYMENTS).plural, "deployments");
        assert_eq!(get(STATEFULSETS).plural, "statefulsets");
        assert_eq!(get(DAEMONSETS).plural, "daemonsets");
        assert_eq!(get(REPLICASETS).plural, "replicasets");
        assert_eq!(get(EVENTS).api_version(), "v1");
        assert_eq!(get(EVENTS).plural, "events");
        assert_eq!(get(JOBS).qualified(), "jobs.batch");
        assert_eq!(get(HORIZONTALPODAUTOSCALERS).plural, "horizontalpodautoscalers");
        assert_eq!(get(CRONJOBS).qualified(), "cronjobs.batch");
        assert_eq!(get(EVENTS_V1).qualified(), "events.events.k8s.io");
        assert_eq!(get(STORAGECLASSES).qualified(), "storageclasses.storage.k8s.io");
        assert_eq!(get(PERSISTENTVOLUMES).plural, "persistentvolumes");
        assert_eq!(get(INGRESSES).qualified(), "ingresses.networking.k8s.io");
        assert_eq!(get(REPLICATIONCONTROLLERS).plural, "replicationcontrollers");
    }
}
