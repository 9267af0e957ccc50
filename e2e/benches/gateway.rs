//! The gateway's cost: an authenticated GET of a small resource (a tenant),
//! with an API token and with a session cookie, against the same gateway's
//! `/healthz`, driven by the same in-process load loop in one run. Prints
//! requests/s at saturation and p50/p99 at a paced 1,000 requests/s, and the
//! ratios. The authenticated path includes the token lookup or session read,
//! the access rule, signing a caller token and the gRPC hop to tenancy. In the
//! same run, the same GET straight to tenancy over gRPC (no gateway) shows
//! what the service and its database allow at all: the gateway's own share.
//!
//! Run: `cargo bench -p paas-e2e --bench gateway`

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::{LOCAL_ADMIN_PASSWORD, Platform};
use hdrhistogram::Histogram;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;

const CONCURRENCY: usize = 32;
const SATURATION: Duration = Duration::from_secs(6);
const PACED_RATE: u64 = 1_000;
const PACED: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct Target {
    url: String,
    headers: Vec<(&'static str, String)>,
}

async fn once(client: &reqwest::Client, t: &Target) -> bool {
    let mut r = client.get(&t.url);
    for (k, v) in &t.headers {
        r = r.header(*k, v);
    }
    match r.send().await {
        Ok(resp) if resp.status().is_success() => resp.bytes().await.is_ok(),
        _ => false,
    }
}

/// Closed loop: CONCURRENCY clients as fast as they can.
async fn saturate(client: &reqwest::Client, t: &Target) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, t) = (client.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < SATURATION {
                assert!(once(&client, &t).await, "request failed");
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// Open loop: one request every 1/PACED_RATE s; latency percentiles in ms.
async fn paced(client: &reqwest::Client, t: &Target) -> (f64, f64) {
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap()));
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / PACED_RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    for _ in 0..(PACED_RATE * PACED.as_secs()) {
        tick.tick().await;
        let (client, t, latencies) = (client.clone(), t.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            assert!(once(&client, &t).await, "request failed");
            latencies
                .lock()
                .await
                .record(start.elapsed().as_micros().max(1) as u64)
                .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let h = latencies.lock().await;
    (
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
    )
}

/// Closed loop straight to tenancy's gRPC API, as a platform administrator.
async fn saturate_grpc(p: &Platform, id: &str) -> f64 {
    let key = kernel::caller::CallerKey::new(p.settings.caller_key.clone());
    let tenancy = p.stack.service("tenancy").expect("tenancy runs");
    let channel = kernel::grpc::channel(&format!("http://{}", tenancy.grpc)).unwrap();
    let caller = kernel::caller::Caller::platform_admin("bench");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let mut client = paas_proto::v1::tenancy_service_client::TenancyServiceClient::with_interceptor(
            channel.clone(),
            kernel::grpc::Outgoing::new(&key, &caller),
        );
        let id = id.to_string();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < SATURATION {
                client
                    .get_tenant(paas_proto::v1::GetTenantRequest { id: id.clone() })
                    .await
                    .expect("tenancy answers");
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let p = Platform::start().await;
    let tenant: Value = p
        .admin(Method::POST, "/api/v1/tenants")
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = tenant["id"].as_str().unwrap();
    let token: Value = p
        .admin(Method::POST, "/api/v1/tokens")
        .json(&json!({"name": "bench", "tenant_id": id, "role": "viewer"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let login = p
        .anonymous(Method::POST, "/api/v1/login/local")
        .json(&json!({"username": "admin", "password": LOCAL_ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();

    let resource = format!("{}/api/v1/tenants/{id}", p.url);
    let targets = [
        (
            "/healthz (no auth)",
            Target {
                url: format!("{}/healthz", p.url),
                headers: vec![],
            },
        ),
        (
            "GET tenant, API token",
            Target {
                url: resource.clone(),
                headers: vec![("authorization", format!("Bearer {}", token["secret"].as_str().unwrap()))],
            },
        ),
        (
            "GET tenant, session cookie",
            Target {
                url: resource,
                headers: vec![("cookie", cookie)],
            },
        ),
    ];
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY * 2)
        .build()
        .unwrap();
    println!(
        "gateway benchmark: {CONCURRENCY} concurrent clients for {}s, then {PACED_RATE}/s for {}s",
        SATURATION.as_secs(),
        PACED.as_secs()
    );
    println!("{:<30} {:>12} {:>10} {:>10}", "path", "requests/s", "p50 ms", "p99 ms");
    let mut figures = Vec::new();
    for (name, target) in &targets {
        let rps = saturate(&client, target).await;
        let (p50, p99) = paced(&client, target).await;
        println!("{name:<30} {rps:>12.0} {p50:>10.2} {p99:>10.2}");
        figures.push((rps, p99));
    }
    let direct = saturate_grpc(&p, id).await;
    println!("{:<30} {direct:>12.0}", "GetTenant gRPC, no gateway");
    let health = figures[0].0;
    for (i, name) in ["API token", "session cookie"].iter().enumerate() {
        let (rps, p99) = figures[i + 1];
        println!(
            "{name}: {:.2} of /healthz throughput (target >= 0.40), {:.2} of tenancy's own gRPC throughput; p99 at {PACED_RATE}/s {p99:.2} ms (target <= 10 ms)",
            rps / health,
            rps / direct
        );
    }
}
