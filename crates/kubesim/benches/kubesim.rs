//! kubesim benchmark (prints figures; not a timed test):
//! 1. server-side apply of Deployments through kube-rs on one cluster, 32 in
//!    flight: p50/p99 latency and applies per second;
//! 2. 100 clusters in one process with 1,000 ConfigMaps each: resident
//!    memory, and list / watch latency through kube-rs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kubesim::{Cluster, ClusterConfig, Fleet, WriteOptions, resource};
use serde_json::json;
use tokio::sync::Mutex;

const IN_FLIGHT: usize = 32;
const APPLIES: usize = 20_000;
const CLUSTERS: usize = 100;
const OBJECTS: usize = 1_000;

async fn client(path: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kc = Kubeconfig::read_from(path)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn deployment(name: &str, n: usize) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "annotations": { "bench/iteration": n.to_string() } },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "app", "image": "nginx:1",
                    "resources": { "requests": { "cpu": "10m", "memory": "16Mi" } } }] } },
        },
    }))
    .expect("a valid deployment")
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn server_side_apply() -> anyhow::Result<()> {
    let cluster = Cluster::start(ClusterConfig::named("bench")).await?;
    let client = client(cluster.kubeconfig_path()).await?;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..IN_FLIGHT {
        let (api, next, hist) = (api.clone(), next.clone(), hist.clone());
        workers.push(tokio::spawn(async move {
            let name = format!("web-{w}");
            let params = PatchParams::apply("bench").force();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= APPLIES {
                    return anyhow::Ok(());
                }
                let t = Instant::now();
                api.patch(&name, &params, &Patch::Apply(deployment(&name, n))).await?;
                hist.lock().await.record(t.elapsed().as_micros() as u64)?;
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    let elapsed = start.elapsed();
    let h = hist.lock().await;
    println!(
        "ssa: {APPLIES} applies of Deployments, {IN_FLIGHT} in flight: {:.0} applies/s, p50 {:.2} ms, p99 {:.2} ms",
        APPLIES as f64 / elapsed.as_secs_f64(),
        ms(&h, 0.5),
        ms(&h, 0.99)
    );
    Ok(())
}

async fn many_clusters() -> anyhow::Result<()> {
    let before = rss_mib();
    let fleet = Fleet::start(CLUSTERS, |i| {
        let mut c = ClusterConfig::named(&format!("c{i}"));
        c.nodes = 1;
        c
    })
    .await?;
    for c in fleet.clusters() {
        for i in 0..OBJECTS {
            let cm = json!({
                "metadata": { "name": format!("cm-{i}"), "labels": { "app": "bench", "shard": (i % 10).to_string() } },
                "data": { "config.yaml": format!("key: value-{i}\nother: setting\n") },
            });
            c.store()
                .create(resource::CONFIGMAPS, "default", cm, &WriteOptions::by("bench"))
                .context("seeding")?;
        }
    }
    let after = rss_mib();
    println!(
        "fleet: {CLUSTERS} clusters x {OBJECTS} configmaps: process RSS {after:.0} MiB ({:.0} MiB more than before the fleet)",
        after - before
    );

    let mut list = Histogram::<u64>::new(3)?;
    let mut watch = Histogram::<u64>::new(3)?;
    for (i, c) in fleet.clusters().iter().enumerate().step_by(5) {
        let api: Api<ConfigMap> = Api::namespaced(client(c.kubeconfig_path()).await?, "default");
        let t = Instant::now();
        let items = api.list(&ListParams::default()).await?;
        list.record(t.elapsed().as_micros() as u64)?;
        anyhow::ensure!(items.items.len() == OBJECTS, "listed {}", items.items.len());
        let rv = items.metadata.resource_version.unwrap_or_default();
        let mut events = api.watch(&WatchParams::default().timeout(10), &rv).await?.boxed();
        let t = Instant::now();
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": format!("probe-{i}") } }))?,
        )
        .await?;
        loop {
            match events.try_next().await? {
                Some(WatchEvent::Added(cm)) if cm.metadata.name.as_deref() == Some(&format!("probe-{i}")) => {
                    break;
                }
                Some(_) => {}
                None => anyhow::bail!("watch ended before the event"),
            }
        }
        watch.record(t.elapsed().as_micros() as u64)?;
    }
    println!(
        "fleet: list of {OBJECTS} configmaps p50 {:.2} ms, p99 {:.2} ms; create-to-watch-event p50 {:.2} ms, p99 {:.2} ms ({} samples)",
        ms(&list, 0.5),
        ms(&list, 0.99),
        ms(&watch, 0.5),
        ms(&watch, 0.99),
        list.len()
    );
    drop(fleet);
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The fleet first, so its RSS figure is the whole process's.
    many_clusters().await?;
    server_side_apply().await?;
    Ok(())
}
