//! Deploying many applications through the public API: 1,000 single-service
//! applications (2 replicas on each of 2 kubesim clusters) posted by 32
//! clients. Prints deploys accepted per second, the time until every one is
//! Available, and per application the time spent in the platform (release
//! created -> succeeded, minus the cluster's part) vs in kubesim (the
//! Deployment created -> Available, the slower of its two clusters).
//!
//! Run: `cargo bench -p paas-e2e --bench deploys` (`DEPLOYS=200` for fewer).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use e2e::Platform;
use kernel::caller::{Caller, CallerKey};
use kernel::grpc::{Outgoing, channel, uri};
use kernel::testkit::eventually;
use kubesim::{Cluster, ClusterConfig};
use paas_proto::v1 as pb;
use paas_proto::v1::federation_service_client::FederationServiceClient;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CLIENTS: usize = 32;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// When each Deployment of `namespace` in the cluster at `base` was first
/// seen and first Available, by this process's clock (the API's timestamps
/// have whole seconds), read from a watch that resumes where it stopped.
type Seen = Arc<std::sync::Mutex<std::collections::HashMap<String, (Instant, Option<Instant>)>>>;

async fn watch_deployments(http: reqwest::Client, base: String, namespace: &'static str, seen: Seen) {
    let mut version = String::new();
    loop {
        let url = format!(
            "{base}/apis/apps/v1/namespaces/{namespace}/deployments?watch=true&allowWatchBookmarks=true&timeoutSeconds=60&resourceVersion={version}"
        );
        let Ok(mut r) = http.get(&url).send().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut buffer = Vec::new();
        while let Ok(Some(chunk)) = r.chunk().await {
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                let o = &event["object"];
                if event["type"] == "ERROR" {
                    version.clear();
                    continue;
                }
                if let Some(v) = o["metadata"]["resourceVersion"].as_str() {
                    version = v.to_string();
                }
                let Some(name) = o["metadata"]["name"].as_str() else {
                    continue;
                };
                if event["type"] == "BOOKMARK" {
                    continue;
                }
                let available = o["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Available" && c["status"] == "True")
                    && o["status"]["availableReplicas"].as_i64().unwrap_or(0)
                        >= o["spec"]["replicas"].as_i64().unwrap_or(1);
                let now = Instant::now();
                let mut seen = seen.lock().unwrap();
                let entry = seen.entry(name.to_string()).or_insert((now, None));
                if available && entry.1.is_none() {
                    entry.1 = Some(now);
                }
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let deploys: usize = std::env::var("DEPLOYS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    // The services' own default pool size (tests use 4 connections per service).
    let pool = std::env::var("PAAS_DB_POOL_SIZE").unwrap_or_else(|_| "8".into());
    let p = Platform::start_with_env(
        &[
            ("PAAS_FEDERATION_RECONCILE_POLL", "100ms"),
            ("PAAS_APPS_RELEASE_POLL", "200ms"),
            ("PAAS_DB_POOL_SIZE", pool.as_str()),
        ],
        |_| {},
    )
    .await;
    println!("database pool: {pool} connections per service");

    // Two clusters with room for 2,000 pods each.
    let key = CallerKey::new(p.settings.caller_key.clone());
    let federation = p.stack.service("federation").unwrap();
    let mut client = FederationServiceClient::with_interceptor(
        channel(&uri(federation.grpc)).unwrap(),
        Outgoing::new(&key, &Caller::service("bench")),
    );
    let mut clusters = Vec::new();
    for (name, dc) in [("east", "dc1"), ("west", "dc2")] {
        let config = ClusterConfig {
            nodes: 10,
            node_cpu: "64".into(),
            node_memory: "256Gi".into(),
            node_pods: 500,
            ..ClusterConfig::named(name)
        };
        let cluster = Cluster::start(config).await.unwrap();
        client
            .register_cluster(pb::RegisterClusterRequest {
                name: name.into(),
                api_endpoint: cluster.url(),
                data_centre: dc.into(),
                environment: pb::Environment::Test as i32,
                ..Default::default()
            })
            .await
            .unwrap();
        clusters.push(cluster);
    }
    let admin = |m: Method, path: &str, body: Value| p.admin(m, path).json(&body).send();
    let t: Value = admin(Method::POST, "/api/v1/tenants", json!({"name": "bench"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tenant = t["id"].as_str().unwrap().to_string();
    admin(
        Method::PUT,
        &format!("/api/v1/tenants/{tenant}/quota"),
        json!({"hard": {"requests.cpu": "1000", "requests.memory": "4000Gi", "pods": "100000"}}),
    )
    .await
    .unwrap();
    let project: Value = admin(
        Method::POST,
        &format!("/api/v1/tenants/{tenant}/projects"),
        json!({"name": "apps"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    for (cluster, dc) in [("east", "dc1"), ("west", "dc2")] {
        admin(
            Method::POST,
            &format!("/api/v1/projects/{}/partitions", project["id"].as_str().unwrap()),
            json!({"cluster": cluster, "data_centre": dc}),
        )
        .await
        .unwrap();
    }
    for c in &clusters {
        eventually(Duration::from_secs(30), "the partition namespace", || {
            let url = format!("{}/api/v1/namespaces/bench-apps", c.url().trim_end_matches('/'));
            let http = p.http.clone();
            async move { (http.get(url).send().await.ok()?.status() == StatusCode::OK).then_some(()) }
        })
        .await;
    }
    let template: Value = admin(
        Method::POST,
        "/api/v1/templates",
        json!({"tenant_id": tenant, "name": "svc"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let spec = json!({"services": [{"name": "svc", "replicas": 2,
        "containers": [{"name": "svc", "image": "registry.example/svc:1", "resources": {"cpu_request": "10m", "memory_request": "16Mi"}, "ports": [{"container_port": 8080}]}]}]});
    let version: Value = admin(
        Method::POST,
        &format!("/api/v1/templates/{}/versions", template["id"].as_str().unwrap()),
        json!({"version": "1.0.0", "spec": spec}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let version = version["id"].as_str().unwrap().to_string();
    admin(
        Method::POST,
        &format!("/api/v1/template-versions/{version}/publish"),
        json!({}),
    )
    .await
    .unwrap();

    let seen: Vec<Seen> = clusters.iter().map(|_| Seen::default()).collect();
    for (c, seen) in clusters.iter().zip(&seen) {
        tokio::spawn(watch_deployments(
            p.http.clone(),
            c.url().trim_end_matches('/').to_string(),
            "bench-apps",
            seen.clone(),
        ));
    }
    println!("deploy benchmark: {deploys} applications (2 replicas on each of 2 kubesim clusters), {CLIENTS} clients");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (http, url, token, next, version) = (
            p.http.clone(),
            format!("{}/api/v1/tenants/{tenant}/applications", p.url),
            p.admin_token.clone(),
            next.clone(),
            version.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= deploys {
                    return ids;
                }
                let body = json!({"name": format!("app-{i}"), "environment": "test", "template_version_id": version,
                                  "placement": {"explicit": [{"cluster": "east"}, {"cluster": "west"}]}});
                let r = http.post(&url).bearer_auth(&token).json(&body).send().await.unwrap();
                assert_eq!(r.status(), StatusCode::CREATED);
                ids.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string());
            }
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    let accepted = start.elapsed();
    println!(
        "accepted: {deploys} in {:.2} s = {:.0} deploys/s (target >= 100/s)",
        accepted.as_secs_f64(),
        deploys as f64 / accepted.as_secs_f64()
    );

    // Until every release has succeeded (listing pages of 500).
    let deadline = Instant::now() + Duration::from_secs(600);
    let done = loop {
        let mut running = Vec::new();
        let mut cursor = String::new();
        loop {
            let page: Value = p
                .admin(
                    Method::GET,
                    &format!("/api/v1/tenants/{tenant}/applications?limit=500&cursor={cursor}"),
                )
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            running.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|a| a["state"] == "running")
                    .cloned(),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => break,
            }
        }
        if running.len() == deploys {
            break running;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {deploys} Available after 10 minutes",
            running.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let available = start.elapsed();
    println!(
        "all Available: {:.2} s after the first request (target <= 30 s)",
        available.as_secs_f64()
    );

    // Per application: the cluster's part (the Deployment first seen ->
    // Available, slower cluster, from the watches) and the platform's (the
    // rest of release created -> succeeded, by the release's timestamps).
    let mut in_kubesim = Vec::new();
    let mut in_platform = Vec::new();
    for app in &done {
        let release = &app["latest_release"];
        let (Some(created), Some(finished)) = (time(&release["created_at"]), time(&release["finished_at"])) else {
            continue;
        };
        // The service's Deployment is `<app>-<service>`.
        let name = format!("{}-svc", app["name"].as_str().unwrap());
        let slowest = seen
            .iter()
            .filter_map(|s| {
                s.lock()
                    .unwrap()
                    .get(&name)
                    .and_then(|(made, ready)| ready.map(|r| (r - *made).as_secs_f64()))
            })
            .fold(0.0f64, f64::max);
        let total = (finished - created).num_milliseconds() as f64 / 1000.0;
        in_kubesim.push(slowest);
        in_platform.push((total - slowest).max(0.0));
    }
    println!(
        "per application ({}): in the platform median {:.2} s, p99 {:.2} s; in kubesim median {:.2} s, p99 {:.2} s",
        in_platform.len(),
        median(&mut in_platform.clone()),
        percentile(&mut in_platform, 0.99),
        median(&mut in_kubesim.clone()),
        percentile(&mut in_kubesim, 0.99)
    );
    drop(ids);
}
