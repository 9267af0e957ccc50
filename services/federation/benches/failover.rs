//! Failover RTO: 1,000 auto-failover bindings over 10 kubesim clusters (100
//! each, primary in one data centre, backups spread over the others); one cluster goes
//! down. Prints the time from the fault to all its replicas Available
//! elsewhere, split into detection (fault -> the monitor marks it NotReady),
//! the bindings' toleration, and re-placement (toleration passed -> every
//! moved binding Available in its backup cluster), with the re-placement's
//! own split (operations opened -> targets written -> Available).
//! Figures, not a pass/fail test; the target is re-placement <= 5 s.
//!
//! `cargo bench -p paas-federation --bench failover` (needs PostgreSQL as the
//! tests do). The health monitor, propagator and failover reconciler run
//! with the service's default settings (probe every 2 s, 3 misses);
//! `FAILOVER_BINDINGS`, `FAILOVER_CLUSTERS` and `FAILOVER_TOLERATION_MS`
//! (default the R3 default, 10 s) change the size. Quota admission is a
//! grant-all [`Admission`], outside the measurement.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::GrantAll;
use federation::binding::{ApplyRequest, Bindings};
use federation::credentials::Clients;
use federation::failover::{FailoverSettings, Reconciler};
use federation::health::{Monitor, ProbeSettings};
use federation::propagation::{PropagateSettings, Propagator};
use federation::settings::SecretKey;
use futures::StreamExt;
use kernel::caller::Caller;
use kubesim::{Cluster, ClusterConfig, Fault};
use serde_json::json;
use uuid::Uuid;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn objects(i: usize) -> String {
    let name = format!("app{i}");
    json!([
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                  "template": {"metadata": {"labels": {"app": name}},
                               "spec": {"containers": [{"name": "web", "image": "nginx", "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}}}]}}}}
    ])
    .to_string()
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn between(a: chrono::DateTime<chrono::Utc>, b: chrono::DateTime<chrono::Utc>) -> Duration {
    (b - a).to_std().unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let bindings = env_or("FAILOVER_BINDINGS", 1000) as usize;
    let n = env_or("FAILOVER_CLUSTERS", 10) as usize;
    let toleration = Duration::from_millis(env_or(
        "FAILOVER_TOLERATION_MS",
        federation::resilience::DEFAULT_TOLERATION.as_millis() as u64,
    ));
    let t = kernel::testkit::TestPlatform::new().await;
    let pool = kernel::db::connect(&t.settings, federation::NAME).await?;
    kernel::db::migrate(&pool, &federation::MIGRATIONS).await?;
    let settings = federation::Settings::defaults(&t.settings);
    let key = SecretKey::new(rand::random());
    let outbox = kernel::outbox::Outbox::new(pool.clone());
    let clients = Clients::new(pool.clone(), key.clone());
    let tenant = Uuid::now_v7();

    let mut fleet = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("f{i:02}");
        let c = Cluster::start(ClusterConfig::named(&name)).await?;
        common::register_member(&outbox, &key, tenant, &name, c.url(), format!("dc{i}")).await?;
        fleet.push(c);
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let admission = Arc::new(GrantAll);
    let probes = ProbeSettings::from(&settings);
    let partitions = federation::partition::Reconciler::new(
        pool.clone(),
        clients.clone(),
        federation::partition::ReconcileSettings::from(&settings),
    );
    let tasks = vec![
        tokio::spawn(Monitor::new(outbox.clone(), clients.clone(), probes).run(stop.clone())),
        tokio::spawn(partitions.run(stop.clone())),
        tokio::spawn(
            Propagator::new(
                pool.clone(),
                clients.clone(),
                PropagateSettings::from(&settings),
                admission.clone(),
            )
            .run(stop.clone()),
        ),
        tokio::spawn(
            Reconciler::new(
                pool.clone(),
                clients.clone(),
                admission.clone(),
                FailoverSettings::from(&settings),
            )
            .run(stop.clone()),
        ),
    ];
    wait(Duration::from_secs(60), "every cluster Ready", || async {
        let ready: i64 = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM clusters WHERE condition = 'Ready'"#)
            .fetch_one(&pool)
            .await
            .ok()?;
        (ready as usize == n).then_some(())
    })
    .await;

    let setup = Instant::now();
    let results: Vec<kernel::Result<()>> = futures::stream::iter(0..bindings)
        .map(|i| {
            let (pool, admission) = (pool.clone(), admission.clone());
            async move {
                // Backups of one cluster's bindings spread over all the others
                // (kubesim nodes hold 110 pods, as real ones do by default).
                let backup = (i % n + 1 + (i / n) % (n - 1)) % n;
                let placement = json!({"policy": {"groups": [{"data_centres": [format!("dc{}", i % n)]}, {"data_centres": [format!("dc{backup}")]}]},
                                       "dr_tier": "auto-failover", "toleration_seconds": toleration.as_secs_f64()});
                let request = ApplyRequest {
                    tenant,
                    project: None,
                    name: kernel::name::DnsLabel::parse("name", &format!("app{i}"))?,
                    objects_json: objects(i),
                    placement_json: placement.to_string(),
                    replicas: 2,
                    hold: Vec::new(),
                };
                Bindings::new(&pool, &*admission).apply(&Caller::platform_admin("bench"), request).await.map(|_| ())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect::<kernel::Result<Vec<()>>>()?;
    wait(Duration::from_secs(300), "every binding Available", || async {
        let settled: i64 =
            sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM binding_targets WHERE settled AND NOT removing"#)
                .fetch_one(&pool)
                .await
                .ok()?;
        (settled as usize == bindings).then_some(())
    })
    .await;
    println!(
        "failover RTO: {bindings} auto-failover bindings (Deployment x2) over {n} kubesim clusters, placed and Available in {}; probe every {:?}, {} misses, toleration {:?}",
        secs(setup.elapsed()),
        probes.period,
        probes.misses,
        toleration
    );

    // The fault.
    let lost = "f00";
    let moved: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM binding_targets WHERE cluster = $1"#,
        lost
    )
    .fetch_one(&pool)
    .await?;
    let fault_db: chrono::DateTime<chrono::Utc> = sqlx::query_scalar!(r#"SELECT now() AS "now!""#)
        .fetch_one(&pool)
        .await?;
    let fault = Instant::now();
    fleet[0].faults().set(Fault::Down);
    wait(Duration::from_secs(120), "every moved binding Available", || async {
        let done: i64 = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM failovers WHERE state = 'available'"#)
            .fetch_one(&pool)
            .await
            .ok()?;
        (done == moved).then_some(())
    })
    .await;
    let total = fault.elapsed();
    let failed: i64 = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM failovers WHERE state = 'failed'"#)
        .fetch_one(&pool)
        .await?;
    let not_ready: chrono::DateTime<chrono::Utc> = sqlx::query_scalar!(
        r#"SELECT not_ready_since AS "not_ready_since!" FROM clusters WHERE name = $1"#,
        lost
    )
    .fetch_one(&pool)
    .await?;
    let times = sqlx::query!(
        r#"SELECT min(created_at) AS "first_opened!", max(created_at) AS "last_opened!",
                  max(replaced_at) AS "last_replaced!", max(available_at) AS "last_available!"
           FROM failovers"#
    )
    .fetch_one(&pool)
    .await?;
    let (first_opened, last_opened, last_replaced, last_available) = (
        times.first_opened,
        times.last_opened,
        times.last_replaced,
        times.last_available,
    );
    // Every moved binding's replicas really run in the backup cluster.
    let mut running = 0;
    for c in &fleet[1..] {
        running += c
            .store()
            .all(kubesim::resource::DEPLOYMENTS)
            .iter()
            .filter(|d| d["status"]["availableReplicas"].as_i64() == Some(2))
            .count();
    }
    stop.cancel();
    for task in tasks {
        task.await??;
    }

    let detection = between(fault_db, not_ready);
    let tolerated = between(not_ready, first_opened);
    let replacement = between(first_opened, last_available);
    println!(
        "moved {moved} bindings off {lost} ({failed} failed); {running} Deployments with 2 available replicas in the other clusters"
    );
    println!(
        "fault -> all Available elsewhere: {} (wall clock {})",
        secs(between(fault_db, last_available)),
        secs(total)
    );
    println!("  detection (fault -> NotReady):                {}", secs(detection));
    println!("  toleration (NotReady -> first failover):      {}", secs(tolerated));
    println!(
        "  re-placement (first failover -> all Available): {}  [opened over {}, all written by +{}, Available by +{}]",
        secs(replacement),
        secs(between(first_opened, last_opened)),
        secs(between(first_opened, last_replaced)),
        secs(replacement)
    );
    println!(
        "  re-placement after detection, without the toleration: {} (target <= 5 s)",
        secs(between(not_ready, last_available).saturating_sub(toleration))
    );
    drop(fleet);
    Ok(())
}

async fn wait<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
