//! Spawns real kubesim clusters on loopback port 0 and connects kube-rs to
//! them through their kubeconfig, as the platform connects to real clusters.

use std::path::{Path, PathBuf};
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
    kubectl_at(Path::new("kubectl"), cluster, cache, args, stdin)
}

/// The kubectl binary of one minor version (`1.31`): `kubectl.1.31` beside
/// the `kubectl` on PATH (the versions are installed side by side), or in
/// `$KUBESIM_KUBECTL_DIR`.
pub fn kubectl_version(minor: &str) -> PathBuf {
    let dir = std::env::var_os("KUBESIM_KUBECTL_DIR").map(PathBuf::from).or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join("kubectl"))
            .find(|k| k.exists())
            .and_then(|k| std::fs::canonicalize(k).ok())
            .and_then(|k| k.parent().map(Path::to_path_buf))
    });
    dir.map(|d| d.join(format!("kubectl.{minor}")))
        .filter(|b| b.exists())
        .unwrap_or_else(|| {
            panic!(
                "kubectl {minor} is required for this test: install kubectl.{minor} beside kubectl, \
                 or set KUBESIM_KUBECTL_DIR"
            )
        })
}

/// Runs the kubectl binary `program` against a cluster.
pub fn kubectl_at(
    program: &Path,
    cluster: &RunningCluster,
    cache: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(program);
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

/// A raw HTTP/1.1 exchange with the API server, for what kube-rs does not
/// send (protobuf bodies, chosen `Accept` headers): status, headers, body.
pub async fn raw_http(
    cluster: &RunningCluster,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(cluster.addr()).await.expect("connects");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        cluster.addr()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = response[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v == "chunked") {
        body = unchunk(&body);
    }
    (status, headers, body)
}

fn unchunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&body[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[end + 2..end + 2 + size]);
        body = &body[end + 2 + size + 2..];
    }
}

/// The value of a response header.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}
