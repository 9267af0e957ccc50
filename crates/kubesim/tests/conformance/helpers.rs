//! Spawns real kubesim clusters on loopback port 0 and connects kube-rs to
//! them through their kubeconfig, as the platform connects to real clusters.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kubesim::{Cluster, ClusterConfig, RunningCluster};
use serde_json::json;

pub struct TestCluster {
    pub cluster: RunningCluster,
    pub client: Client,
}

pub async fn spawn() -> TestCluster {
    spawn_with(|c| c).await
}

pub async fn spawn_with(tweak: impl FnOnce(ClusterConfig) -> ClusterConfig) -> TestCluster {
    let mut config = ClusterConfig::named("test");
    config.ready_delay = Duration::from_millis(20);
    config.bookmark_interval = Duration::from_millis(200);
    let cluster = Cluster::start(tweak(config)).await.expect("cluster starts");
    let client = client_for(cluster.kubeconfig_path(), None).await;
    TestCluster { cluster, client }
}

/// A kube-rs client built from the kubeconfig file, optionally with a read timeout.
pub async fn client_for(kubeconfig: &Path, read_timeout: Option<Duration>) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig reads");
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is valid");
    if read_timeout.is_some() {
        config.read_timeout = read_timeout;
        config.connect_timeout = read_timeout;
    }
    Client::try_from(config).expect("client builds")
}

pub fn configmap(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let labels: serde_json::Map<String, serde_json::Value> =
        labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": labels },
        "data": { "key": "value" },
    }))
    .unwrap()
}

pub fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{
                    "name": "app", "image": image,
                    "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } },
                }] },
            },
        },
    }))
    .unwrap()
}

/// The Status of a failed kube-rs call.
pub fn status_of<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error Status, got {other:?}"),
    }
}

/// Runs kubectl against a cluster; fails clearly if kubectl is missing.
pub fn kubectl(cluster: &RunningCluster, cache: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .arg("--cache-dir")
        .arg(cache)
        .args(args);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!("kubectl is required for this test and could not be started ({e}); install kubectl on PATH")
    });
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}
