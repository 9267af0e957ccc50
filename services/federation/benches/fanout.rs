//! Fan-out: one app binding (a Deployment + a Service) to 100 kubesim
//! clusters in this process. Prints the time until applied everywhere and
//! until Available everywhere (as federation observes it), p50/p99 of the
//! per-cluster apply latency, and, in the same run, a bare kube-rs loop that
//! applies the same objects to the same clusters with the same parallelism
//! (the floor), and the ratio. Figures, not a pass/fail test.
//!
//! `cargo bench -p paas-federation --bench fanout` (needs PostgreSQL as the
//! tests do). `FANOUT_CLUSTERS` and `FANOUT_PARALLELISM` change the size.
//!
//! Member-cluster clients are built before the clock starts, as in the
//! service, where the health monitor shares the propagator's client cache
//! and has built every client before a binding arrives;
//! `FANOUT_COLD_CLIENTS=1` measures with a cold cache (each client built on
//! first use inside the measurement: 350 ms vs 222 ms applied everywhere,
//! 5.4x vs 2.9x the floor, in two consecutive runs on the 2-core dev machine).
//!
//! Quota admission is outside the measurement: the binding is admitted by a
//! grant-all [`Admission`] so the figures are the propagator's alone.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::GrantAll;
use federation::binding::{ApplyRequest, Bindings};
use federation::credentials::{self, Clients, Credentials};
use federation::propagation::{PropagateSettings, Propagator};
use federation::settings::SecretKey;
use futures::StreamExt;
use hdrhistogram::Histogram;
use kernel::caller::Caller;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DynamicObject;
use kubesim::{Cluster, ClusterConfig};
use serde_json::{Value, json};
use uuid::Uuid;

fn objects() -> Value {
    json!([
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "web", "image": "nginx", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    ])
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let n = env_or("FANOUT_CLUSTERS", 100);
    let parallelism = env_or("FANOUT_PARALLELISM", 32);
    let t = kernel::testkit::TestPlatform::new().await;
    let pool = kernel::db::connect(&t.settings, federation::NAME).await?;
    kernel::db::migrate(&pool, &federation::MIGRATIONS).await?;
    let key = SecretKey::new(rand::random());
    let outbox = kernel::outbox::Outbox::new(pool.clone());
    let clients = Clients::new(pool.clone(), key.clone());
    let tenant = Uuid::now_v7();

    // The fleet: registered, Ready, a partition of the tenant in each, both namespaces made.
    let mut fleet = Vec::with_capacity(n);
    let mut bare = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("m{i:03}");
        let c = Cluster::start(ClusterConfig {
            nodes: 1,
            ..ClusterConfig::named(&name)
        })
        .await?;
        common::register_member(&outbox, &key, tenant, &name, c.url(), format!("dc{}", i % 4)).await?;
        let client = credentials::client(&name, &c.url(), &Credentials::default()).await?;
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        for ns in ["acme-web", "floor"] {
            namespaces
                .patch(
                    ns,
                    &PatchParams::apply("bench").force(),
                    &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})),
                )
                .await?;
        }
        bare.push(client);
        fleet.push(c);
    }
    sqlx::query!("UPDATE clusters SET condition = 'Ready', condition_reason = 'Probed'")
        .execute(&pool)
        .await?;
    println!(
        "fan-out of one binding (Deployment x2 replicas + Service) to {n} kubesim clusters, parallelism {parallelism}"
    );

    // Federation: apply the binding, then watch its targets converge.
    let settings = PropagateSettings {
        poll: Duration::from_millis(10),
        resync: Duration::from_secs(3600),
        watched_poll: Duration::from_secs(5),
        lease_ttl: Duration::from_secs(10),
        parallelism,
        timeout: Duration::from_secs(10),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let admission = Arc::new(GrantAll);
    let propagator =
        tokio::spawn(Propagator::new(pool.clone(), clients.clone(), settings, admission.clone()).run(stop.clone()));
    // In the service the health monitor shares this client cache and has
    // built every cluster's client before any binding arrives; so here.
    if std::env::var("FANOUT_COLD_CLIENTS").is_err() {
        for i in 0..n {
            clients.by_name(&format!("m{i:03}")).await?;
        }
    }
    // Let it take the lease, and open its status watch on every Ready
    // cluster, before the clock starts: a running service has both long
    // before a binding arrives (100 watches listing at once would
    // otherwise share the two cores with the fan-out being measured).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started_db: chrono::DateTime<chrono::Utc> = sqlx::query_scalar!(r#"SELECT now() AS "now!""#)
        .fetch_one(&pool)
        .await?;
    let started = Instant::now();
    let request = ApplyRequest {
        tenant,
        project: None,
        name: kernel::name::DnsLabel::parse("name", "shop")?,
        objects_json: objects().to_string(),
        placement_json: json!({"policy": {"division": "duplicated"}}).to_string(),
        replicas: 2,
        hold: Vec::new(),
    };
    let (b, _) = Bindings::new(&pool, &*admission)
        .apply(&Caller::platform_admin("bench"), request)
        .await?;
    let admitted = started.elapsed();
    let mut applied = None;
    let available;
    loop {
        let counts = sqlx::query!(
            r#"SELECT count(*) FILTER (WHERE applied_generation >= generation) AS "done!",
                      count(*) FILTER (WHERE settled) AS "settled!"
               FROM binding_targets WHERE binding_id = $1"#,
            b.id,
        )
        .fetch_one(&pool)
        .await?;
        let (done, settled) = (counts.done, counts.settled);
        if applied.is_none() && done as usize == n {
            applied = Some(started.elapsed());
        }
        if settled as usize == n {
            available = started.elapsed();
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not converged within 2 minutes: {done} applied, {settled} available"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let applied = applied.unwrap_or(available);
    let synced: Vec<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar!("SELECT synced_at FROM binding_targets WHERE binding_id = $1", b.id)
            .fetch_all(&pool)
            .await?;
    let mut fed_hist = Histogram::<u64>::new(3)?;
    for s in synced {
        fed_hist.record((s - started_db).num_microseconds().unwrap_or(0).max(1) as u64)?;
    }
    stop.cancel();
    propagator.await??;

    // The floor: the same objects, the same clusters, the same parallelism, nothing else.
    let bodies: Vec<(kube::core::ApiResource, String, Value)> =
        federation::binding::parse_objects(&objects().to_string())?
            .iter()
            .map(|o| (o.kind.api_resource(), o.name.clone(), o.for_cluster(b.id, "floor", 2)))
            .collect();
    let bodies = Arc::new(bodies);
    let floor_started = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter(bare.iter().cloned())
        .map(|client| {
            let bodies = bodies.clone();
            async move {
                let params = PatchParams::apply("paas-federation").force();
                for (ar, name, body) in bodies.iter() {
                    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "floor", ar);
                    api.patch(name, &params, &Patch::Apply(body))
                        .await
                        .expect("the floor applies");
                }
                floor_started.elapsed()
            }
        })
        .buffer_unordered(parallelism)
        .collect()
        .await;
    let floor = floor_started.elapsed();
    let mut floor_hist = Histogram::<u64>::new(3)?;
    for l in &latencies {
        floor_hist.record(l.as_micros().max(1) as u64)?;
    }

    println!("federation: admitted (placed + recorded) in {:.1} ms", ms(admitted));
    println!(
        "federation: applied everywhere in {:.1} ms; per-cluster apply latency {}",
        ms(applied),
        summary(&fed_hist)
    );
    println!("federation: Available everywhere (observed) in {:.1} ms", ms(available));
    println!(
        "floor (bare kube-rs loop): applied everywhere in {:.1} ms; per-cluster apply latency {}",
        ms(floor),
        summary(&floor_hist)
    );
    println!(
        "ratio federation / floor: applied everywhere {:.2}x, p99 per-cluster {:.2}x",
        applied.as_secs_f64() / floor.as_secs_f64(),
        fed_hist.value_at_quantile(0.99) as f64 / floor_hist.value_at_quantile(0.99).max(1) as f64
    );
    drop(fleet);
    Ok(())
}
