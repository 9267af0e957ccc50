use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kernel::testkit::eventually;
use kube::api::{Api, PostParams};
use kubesim::{ClusterConfig, Fault, Fleet};

use crate::helpers::{client_for, configmap, raw_http, spawn};

/// Waits (briefly: the listener closes asynchronously) until `addr` refuses connections.
async fn refuses(addr: std::net::SocketAddr) {
    eventually(Duration::from_secs(2), "the port refusing connections", || async {
        tokio::net::TcpStream::connect(addr).await.is_err().then_some(())
    })
    .await;
}

/// Waits until `addr` accepts connections again (the listener reopens asynchronously).
async fn accepts(addr: std::net::SocketAddr) {
    eventually(Duration::from_secs(5), "the port accepting connections", || async {
        tokio::net::TcpStream::connect(addr).await.is_ok().then_some(())
    })
    .await;
}

fn is_transport_error(err: &kube::Error) -> bool {
    !matches!(err, kube::Error::Api(_))
}

/// A cluster that is down refuses connections (kube-rs sees a connect
/// error, not an API Status) and serves again on the same port after recovery.
#[tokio::test]
async fn a_down_cluster_refuses_connections_until_it_recovers() {
    let t = spawn().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    cms.list(&Default::default()).await.unwrap();
    t.cluster.faults().set(Fault::Down);
    refuses(t.cluster.addr()).await;
    let fresh: Api<ConfigMap> = Api::namespaced(
        client_for(t.cluster.kubeconfig_path(), Some(Duration::from_secs(2))).await,
        "default",
    );
    let err = fresh.list(&Default::default()).await.unwrap_err();
    assert!(is_transport_error(&err), "{err:?}");
    t.cluster.faults().recover();
    accepts(t.cluster.addr()).await;
    cms.create(&PostParams::default(), &configmap("back", &[]))
        .await
        .unwrap();
}

/// A black-holed cluster accepts connections and never answers: clients
/// time out.
#[tokio::test]
async fn a_blackholed_cluster_makes_clients_time_out() {
    let t = spawn().await;
    t.cluster.faults().set(Fault::Blackhole);
    let client = client_for(t.cluster.kubeconfig_path(), Some(Duration::from_millis(300))).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let start = Instant::now();
    let err = cms.list(&Default::default()).await.unwrap_err();
    assert!(is_transport_error(&err), "{err:?}");
    let text = format!("{err:?}").to_lowercase();
    assert!(
        text.contains("timedout") || text.contains("timed out") || text.contains("elapsed"),
        "{err:?}"
    );
    assert!(start.elapsed() >= Duration::from_millis(300));
    t.cluster.faults().recover();
}

/// A flaky cluster answers a share of requests with 5xx Status errors.
#[tokio::test]
async fn a_flaky_cluster_answers_with_server_errors() {
    let t = spawn().await;
    t.cluster.faults().set(Fault::Flaky { share: 1.0 });
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    match cms.get("x").await {
        Err(kube::Error::Api(s)) => assert!(s.code == 500 || s.code == 503, "{s:?}"),
        other => panic!("expected a 5xx, got {other:?}"),
    }
}

/// A slow cluster adds latency to every request; the admin endpoint sets faults over HTTP.
#[tokio::test]
async fn a_slow_cluster_adds_latency_and_faults_can_be_set_over_http() {
    let t = spawn().await;
    let admin = format!("{}/_kubesim/fault", t.cluster.admin_url());
    let body = r#"{"fault":"slow","ms":300}"#;
    let response = post_json(&admin, body).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(t.cluster.faults().get(), Fault::Slow { ms: 300 });
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let start = Instant::now();
    cms.list(&Default::default()).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300));
    post_json(&admin, r#"{"fault":"recover"}"#).await;
    let start = Instant::now();
    cms.list(&Default::default()).await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(300));
}

/// A partitioned cluster refuses clients but keeps simulating.
#[tokio::test]
async fn a_partitioned_cluster_keeps_simulating() {
    let t = spawn().await;
    t.cluster.faults().set(Fault::Partition);
    refuses(t.cluster.addr()).await;
    let pod =
        serde_json::json!({ "metadata": { "name": "p" }, "spec": { "containers": [{ "name": "c", "image": "x" }] } });
    t.cluster
        .store()
        .create(
            kubesim::resource::PODS,
            "default",
            pod,
            &kubesim::WriteOptions::by("test"),
        )
        .unwrap();
    eventually(Duration::from_secs(5), "the pod running while partitioned", || async {
        let p = t.cluster.store().get(kubesim::resource::PODS, "default", "p").unwrap();
        (p["status"]["phase"] == "Running").then_some(())
    })
    .await;
    t.cluster.faults().recover();
}

/// A fleet runs clusters side by side on their own ports, with their own
/// objects and kubeconfigs.
#[tokio::test]
async fn a_fleet_keeps_its_clusters_apart() {
    let fleet = Fleet::start(2, |i| ClusterConfig::named(&format!("c{i}")))
        .await
        .unwrap();
    let [a, b] = fleet.clusters() else {
        panic!("two clusters")
    };
    assert_ne!(a.url(), b.url());
    let ca: Api<ConfigMap> = Api::namespaced(client_for(a.kubeconfig_path(), None).await, "default");
    let cb: Api<ConfigMap> = Api::namespaced(client_for(b.kubeconfig_path(), None).await, "default");
    ca.create(&PostParams::default(), &configmap("only-a", &[]))
        .await
        .unwrap();
    assert!(cb.get_opt("only-a").await.unwrap().is_none());
    b.faults().set(Fault::Down);
    ca.get("only-a").await.unwrap();
    assert!(fleet.get("c1").is_some());
}

async fn post_json(url: &str, body: &str) -> String {
    let url = url.to_string();
    let body = body.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        let request = format!(
            "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap()
}

/// A NotReady cluster fails `/readyz` (500) while `/livez` and the API
/// answer, so a client can tell "reachable but not ready" from "down"; the
/// fault is set and cleared through the admin API like the others.
#[tokio::test]
async fn a_not_ready_cluster_fails_readyz_and_still_serves_the_api() {
    let t = spawn().await;
    let admin = format!("{}/_kubesim/fault", t.cluster.admin_url());
    let (status, _, _) = raw_http(&t.cluster, "GET", "/readyz", &[], &[]).await;
    assert_eq!(status, 200);
    let response = post_json(&admin, r#"{"fault":"notready"}"#).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(t.cluster.faults().get(), Fault::NotReady);
    let (status, _, body) = raw_http(&t.cluster, "GET", "/readyz", &[], &[]).await;
    assert_eq!(status, 500);
    assert!(String::from_utf8_lossy(&body).contains("readyz check failed"));
    let (status, _, _) = raw_http(&t.cluster, "GET", "/livez", &[], &[]).await;
    assert_eq!(status, 200);
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    cms.create(&PostParams::default(), &configmap("still-served", &[]))
        .await
        .unwrap();
    post_json(&admin, r#"{"fault":"recover"}"#).await;
    let (status, _, _) = raw_http(&t.cluster, "GET", "/readyz", &[], &[]).await;
    assert_eq!(status, 200);
}
