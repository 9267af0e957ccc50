//! The pods of a binding in its member clusters: listed by the selectors of
//! the binding's workloads in each target namespace, their container logs
//! read from the cluster, and a rolling restart of the workloads. Reads go
//! to the clusters live (they are what an operator looks at when something
//! is wrong); an unreachable cluster is reported as such, not hidden.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kernel::{Error, Result};
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::binding::{Binding, Target};
use crate::credentials::Clients;

/// The workload kinds whose pods a binding has.
const WORKLOADS: [(&str, &str); 3] = [
    ("Deployment", "deployments"),
    ("StatefulSet", "statefulsets"),
    ("DaemonSet", "daemonsets"),
];

/// One pod as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// Its cluster.
    pub cluster: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The workload it belongs to (`Deployment/web`).
    pub workload: String,
    /// Pending, Running, Succeeded, Failed, Unknown.
    pub phase: String,
    /// Every container ready.
    pub ready: bool,
    /// Restarts over its containers.
    pub restarts: i32,
    /// The node it runs on.
    pub node: String,
    /// Its containers.
    pub containers: Vec<String>,
}

/// The pods of `binding`, per target; a cluster that cannot be read gives
/// its error instead of pods.
pub async fn list(clients: &Clients, binding: &Binding, targets: &[Target]) -> Vec<(String, Result<Vec<PodView>>)> {
    let mut out = Vec::new();
    for target in targets.iter().filter(|t| !t.removing) {
        out.push((target.cluster.clone(), pods_in(clients, binding, target).await));
    }
    out
}

/// Each workload of `objects` (`Kind/name`) with its pod selector (`k=v,...`).
pub(crate) fn selectors(objects: &Value) -> Vec<(String, String)> {
    objects
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| WORKLOADS.iter().any(|(kind, _)| o["kind"] == *kind))
        .filter_map(|o| {
            let labels = o["spec"]["selector"]["matchLabels"].as_object()?;
            let selector = labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",");
            Some((
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap_or_default(),
                    o["metadata"]["name"].as_str().unwrap_or_default()
                ),
                selector,
            ))
        })
        .filter(|(_, s)| !s.is_empty())
        .collect()
}

async fn pods_in(clients: &Clients, binding: &Binding, target: &Target) -> Result<Vec<PodView>> {
    let client = clients.by_name(&target.cluster).await?;
    let api: Api<Pod> = Api::namespaced(client, &target.namespace);
    let mut pods = Vec::new();
    for (workload, selector) in selectors(&binding.objects.0) {
        let listed = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| Error::Unavailable(format!("cluster {}: {e}", target.cluster)))?;
        for pod in listed.items {
            let status = pod.status.clone().unwrap_or_default();
            let statuses = status.container_statuses.clone().unwrap_or_default();
            pods.push(PodView {
                cluster: target.cluster.clone(),
                namespace: target.namespace.clone(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                workload: workload.clone(),
                phase: status.phase.clone().unwrap_or_else(|| "Unknown".into()),
                ready: !statuses.is_empty() && statuses.iter().all(|c| c.ready),
                restarts: statuses.iter().map(|c| c.restart_count).sum(),
                node: pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
                containers: pod
                    .spec
                    .as_ref()
                    .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
                    .unwrap_or_default(),
            });
        }
    }
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(pods)
}

/// The tail of one container's log (`cluster` and `pod` given), or, with
/// either left empty, the latest lines of every matching pod of the binding
/// across its clusters, each line prefixed with `cluster/pod` as `kubectl logs
/// -l` does (an unreachable cluster or an unreadable log is one line saying so).
///
/// # Errors
/// The cluster, pod or container is not the binding's (named as the field),
/// or the one cluster asked for is unreachable.
pub async fn logs(
    clients: &Clients,
    binding: &Binding,
    targets: &[Target],
    cluster: &str,
    pod: &str,
    container: &str,
    tail: i64,
) -> Result<String> {
    if !cluster.is_empty() && !pod.is_empty() {
        return one_log(clients, binding, targets, cluster, pod, container, tail).await;
    }
    let chosen: Vec<&Target> = targets
        .iter()
        .filter(|t| !t.removing && (cluster.is_empty() || t.cluster == cluster))
        .collect();
    if chosen.is_empty() && !cluster.is_empty() {
        return Err(Error::invalid(
            "cluster",
            format!("{cluster} runs nothing of this binding"),
        ));
    }
    let mut text = String::new();
    let mut matched = 0;
    for target in chosen {
        let pods = match pods_in(clients, binding, target).await {
            Ok(pods) => pods,
            Err(e) => {
                text.push_str(&format!("{}: {e}\n", target.cluster));
                continue;
            }
        };
        for found in pods.iter().filter(|p| pod.is_empty() || p.name == pod) {
            matched += 1;
            let prefix = format!("{}/{}", target.cluster, found.name);
            match tail_of(clients, found, container, tail).await {
                Ok(log) => {
                    for line in log.lines() {
                        text.push_str(&format!("{prefix} {line}\n"));
                    }
                }
                Err(e) => text.push_str(&format!("{prefix}: log not available: {e}\n")),
            }
        }
    }
    if matched == 0 && !pod.is_empty() {
        return Err(Error::invalid("pod", format!("{pod} is not a pod of this binding")));
    }
    Ok(text)
}

/// One line of a followed log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The pod's cluster.
    pub cluster: String,
    /// The pod (empty for a line about a cluster that could not be read).
    pub pod: String,
    /// The line, without its newline.
    pub line: String,
}

/// How many lines of followed logs wait for a slow reader before the logs
/// are read no further (back-pressure down to the clusters).
const FOLLOW_BUFFER: usize = 256;

/// Follows the logs (`kubectl logs -f`) of the pods [`logs`] would read
/// (every pod of the binding in every cluster, or the cluster and pod
/// named): each pod's last `tail` lines, then each new line as it is
/// written, tagged with its cluster and pod. The pods are the ones running
/// when it starts, as `kubectl logs -f -l` follows them.
///
/// # Guarantees
/// Every log is read by a task of its own that ends when the log ends or
/// as soon as the receiver is dropped (the caller went away), even while
/// its log is silent. A log or cluster that cannot be read gives one line
/// saying so.
///
/// # Errors
/// The cluster, pod or container is not the binding's (named as the
/// field), or the one cluster asked for is unreachable; nothing is followed then.
pub async fn follow(
    clients: &Clients,
    binding: &Binding,
    targets: &[Target],
    cluster: &str,
    pod: &str,
    container: &str,
    tail: i64,
) -> Result<tokio::sync::mpsc::Receiver<LogLine>> {
    let chosen: Vec<&Target> = targets
        .iter()
        .filter(|t| !t.removing && (cluster.is_empty() || t.cluster == cluster))
        .collect();
    if chosen.is_empty() && !cluster.is_empty() {
        return Err(Error::invalid(
            "cluster",
            format!("{cluster} runs nothing of this binding"),
        ));
    }
    let mut followed = Vec::new();
    let mut unreadable = Vec::new();
    for target in chosen {
        match pods_in(clients, binding, target).await {
            Ok(pods) => followed.extend(pods.into_iter().filter(|p| pod.is_empty() || p.name == pod)),
            Err(e) if !cluster.is_empty() => return Err(e),
            Err(e) => unreadable.push(LogLine {
                cluster: target.cluster.clone(),
                pod: String::new(),
                line: e.to_string(),
            }),
        }
    }
    if followed.is_empty() && !pod.is_empty() {
        return Err(Error::invalid("pod", format!("{pod} is not a pod of this binding")));
    }
    let mut readers = Vec::new();
    for found in followed {
        let container = container_of(&found, container)?;
        let client = clients.by_name(&found.cluster).await?;
        readers.push((Api::<Pod>::namespaced(client, &found.namespace), found, container));
    }
    let (tx, rx) = tokio::sync::mpsc::channel(FOLLOW_BUFFER.max(unreadable.len()));
    for line in unreadable {
        // The channel is empty and has room for them.
        let _ = tx.try_send(line);
    }
    for (api, found, container) in readers {
        let params = LogParams {
            container: Some(container),
            follow: true,
            tail_lines: Some(tail.clamp(1, 10_000)),
            ..LogParams::default()
        };
        tokio::spawn(follow_one(api, found, params, tx.clone()));
    }
    Ok(rx)
}

/// Counts followed logs as they start and end (`event`: `started`,
/// `ended`): the difference is the logs being read now, so a follow left
/// running after its caller went away shows.
fn follows(event: &str) {
    kernel::telemetry::counter_vec(
        "paas_federation_log_follows_total",
        "Pod logs followed for callers, by event (started, ended)",
        &["event"],
    )
    .with_label_values(&[event])
    .inc();
}

/// Counts a followed log's end however its reader returns.
struct Following;

impl Following {
    fn start() -> Self {
        follows("started");
        Self
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        follows("ended");
    }
}

/// Reads one followed log into `out` until it ends or `out` is closed.
async fn follow_one(api: Api<Pod>, found: PodView, params: LogParams, out: tokio::sync::mpsc::Sender<LogLine>) {
    use futures::{AsyncBufReadExt, StreamExt};
    let _following = Following::start();
    let line = |line: String| LogLine {
        cluster: found.cluster.clone(),
        pod: found.name.clone(),
        line,
    };
    let reader = tokio::select! {
        () = out.closed() => return,
        r = api.log_stream(&found.name, &params) => r,
    };
    let mut lines = match reader {
        Ok(reader) => Box::pin(reader).lines(),
        Err(e) => {
            let _ = out
                .send(line(format!("log not available: cluster {}: {e}", found.cluster)))
                .await;
            return;
        }
    };
    loop {
        let next = tokio::select! {
            () = out.closed() => return,
            next = lines.next() => next,
        };
        let sent = match next {
            Some(Ok(text)) => out.send(line(text)).await,
            Some(Err(e)) => {
                let _ = out.send(line(format!("log interrupted: {e}"))).await;
                return;
            }
            None => return,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// The tail of `pod`'s `container` log (the first container when empty) in `cluster`.
async fn one_log(
    clients: &Clients,
    binding: &Binding,
    targets: &[Target],
    cluster: &str,
    pod: &str,
    container: &str,
    tail: i64,
) -> Result<String> {
    let target = targets
        .iter()
        .find(|t| t.cluster == cluster && !t.removing)
        .ok_or_else(|| Error::invalid("cluster", format!("{cluster} runs nothing of this binding")))?;
    let pods = pods_in(clients, binding, target).await?;
    let found = pods
        .iter()
        .find(|p| p.name == pod)
        .ok_or_else(|| Error::invalid("pod", format!("{pod} is not a pod of this binding in {cluster}")))?;
    tail_of(clients, found, container, tail).await
}

/// The tail of `found`'s `container` log (the first container when empty).
async fn tail_of(clients: &Clients, found: &PodView, container: &str, tail: i64) -> Result<String> {
    let container = container_of(found, container)?;
    let client = clients.by_name(&found.cluster).await?;
    let api: Api<Pod> = Api::namespaced(client, &found.namespace);
    let params = LogParams {
        container: Some(container),
        tail_lines: Some(tail.clamp(1, 10_000)),
        ..LogParams::default()
    };
    api.logs(&found.name, &params)
        .await
        .map_err(|e| Error::Unavailable(format!("cluster {}: {e}", found.cluster)))
}

/// The container of `found` named (the first when empty).
fn container_of(found: &PodView, container: &str) -> Result<String> {
    match container {
        "" => Ok(found.containers.first().cloned().unwrap_or_default()),
        c if found.containers.iter().any(|x| x == c) => Ok(c.to_string()),
        c => Err(Error::invalid(
            "container",
            format!("{c} is not a container of {}", found.name),
        )),
    }
}

/// Restarts every workload of the binding in every cluster, rolling (the
/// pod template is stamped, as `kubectl rollout restart` does). Stamped with
/// a field manager of its own, so the propagator's applies keep it.
///
/// # Errors
/// The first cluster that cannot be reached (the others are restarted).
pub async fn restart(clients: &Clients, binding: &Binding, targets: &[Target]) -> Result<BTreeMap<String, usize>> {
    let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let patch: Value =
        json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}});
    let mut restarted = BTreeMap::new();
    let mut failure = None;
    for target in targets.iter().filter(|t| !t.removing) {
        let client = match clients.by_name(&target.cluster).await {
            Ok(c) => c,
            Err(e) => {
                failure.get_or_insert(e);
                continue;
            }
        };
        let mut n = 0;
        for object in binding.objects.0.as_array().into_iter().flatten() {
            let Some((kind, plural)) = WORKLOADS.iter().find(|(k, _)| object["kind"] == *k) else {
                continue;
            };
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            let resource = kube::api::ApiResource {
                group: "apps".into(),
                version: "v1".into(),
                api_version: "apps/v1".into(),
                kind: (*kind).into(),
                plural: (*plural).into(),
            };
            let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), &target.namespace, &resource);
            match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => n += 1,
                Err(e) => {
                    failure.get_or_insert(Error::Unavailable(format!("cluster {}: {e}", target.cluster)));
                }
            }
        }
        restarted.insert(target.cluster.clone(), n);
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(restarted),
    }
}
