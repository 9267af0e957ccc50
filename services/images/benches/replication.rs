//! Replication, registry pulls and catalog search, in one run.
//!
//! 1. Generates 50 images of 5 layers each (random, incompressible bytes,
//!    about 200 MB in all), pushes them to a master registry, and has the
//!    images service's replicator copy them to two sub-registries (one rule,
//!    one manual run). Side by side: `skopeo sync` of the same images from
//!    the same master to two other, empty registries. Target: the
//!    replicator's throughput at least 0.8x skopeo's.
//! 2. Pulls every manifest and blob of those images through the gateway's
//!    `/v2/` proxy and directly from the master. Target: at least 0.8x.
//! 3. Fills the catalog with 100,000 tags (1,000 repositories of 100 tags)
//!    and searches it through the gateway's REST API by name part and by
//!    label. Target: p99 at most 20 ms.
//!
//! The registries are Debian's `docker-registry` (distribution 2.8) on free
//! ports without authentication, so both copiers meet the same registries
//! and nothing but copying is measured. Needs PostgreSQL and NATS as the
//! tests do, `docker-registry` and `skopeo` (`scripts/deps`).
//!
//! `cargo bench -p paas-images --bench replication`. `REPLICATION_IMAGES`,
//! `REPLICATION_LAYERS`, `REPLICATION_LAYER_KB` and `REPLICATION_TAGS`
//! change the size.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use kernel::caller::{Caller, CallerKey};
use kernel::grpc::{Outgoing, uri};
use kernel::service::Addresses;
use kernel::settings::Secret;
use kernel::shutdown::Shutdown;
use kernel::testkit::TestPlatform;
use paas_proto::v1 as pb;
use paas_proto::v1::images_service_client::ImagesServiceClient;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

const TARGET_REPLICATION_RATIO: f64 = 0.8;
const TARGET_PULL_RATIO: f64 = 0.8;
const TARGET_SEARCH_P99: Duration = Duration::from_millis(20);
/// Longest the replication may take before the run is called broken.
const REPLICATION_LIMIT: Duration = Duration::from_secs(900);
const TENANT: &str = "bench";
const PROJECT: &str = "app";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn digest_of(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1_000_000.0 / d.as_secs_f64()
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// A registry process with its own folder, stopped and removed when dropped.
struct Registry {
    addr: SocketAddr,
    dir: PathBuf,
    child: Child,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Registry {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn start() -> Self {
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let dir = std::env::temp_dir().join(format!("paas-bench-registry-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = serde_json::json!({
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": true}},
            "storage": {"filesystem": {"rootdirectory": dir.join("data")}, "delete": {"enabled": true},
                        "maintenance": {"uploadpurging": {"enabled": false}}},
            "http": {"addr": addr.to_string(), "relativeurls": true,
                     "secret": format!("{:032x}", rand::random::<u128>())}
        });
        std::fs::write(dir.join("config.yml"), config.to_string()).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(registry_binary())
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry starts");
        let registry = Self { addr, dir, child };
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http.get(format!("{}/v2/", registry.url())).send().await.is_ok() {
                return registry;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the registry on {addr} did not answer");
    }
}

/// `PAAS_REGISTRY_BINARY`, as `paas up` reads it, or `docker-registry` on the `PATH`.
fn registry_binary() -> PathBuf {
    std::env::var_os("PAAS_REGISTRY_BINARY").map_or_else(|| PathBuf::from("docker-registry"), PathBuf::from)
}

/// One generated image: its blobs and manifest.
struct Image {
    repository: String,
    manifest: Vec<u8>,
    digest: String,
    blobs: Vec<(String, Vec<u8>)>,
}

fn generate(images: usize, layers: usize, layer_bytes: usize) -> Vec<Image> {
    let mut rng = rand::rng();
    (0..images)
        .map(|i| {
            let mut blobs = Vec::new();
            let mut layer_refs = Vec::new();
            for _ in 0..layers {
                let mut bytes = vec![0u8; layer_bytes];
                rng.fill_bytes(&mut bytes);
                let d = digest_of(&bytes);
                layer_refs.push(serde_json::json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": bytes.len()
                }));
                blobs.push((d, bytes));
            }
            let config = serde_json::json!({
                "architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/app"]},
                "rootfs": {"type": "layers", "diff_ids": layer_refs.iter().map(|l| l["digest"].clone()).collect::<Vec<_>>()}
            })
            .to_string()
            .into_bytes();
            let config_digest = digest_of(&config);
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                           "size": config.len()},
                "layers": layer_refs
            })
            .to_string()
            .into_bytes();
            blobs.push((config_digest, config));
            Image {
                repository: format!("{TENANT}/{PROJECT}/img-{i:03}"),
                digest: digest_of(&manifest),
                manifest,
                blobs,
            }
        })
        .collect()
}

async fn push(http: &reqwest::Client, registry: &str, image: &Image) {
    for (digest, bytes) in &image.blobs {
        let started = http
            .post(format!("{registry}/v2/{}/blobs/uploads/", image.repository))
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), 202, "upload start");
        let location = started.headers()["location"].to_str().unwrap().to_string();
        let location = if location.starts_with('/') {
            format!("{registry}{location}")
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = http
            .put(format!("{location}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201, "blob upload");
    }
    let put = http
        .put(format!("{registry}/v2/{}/manifests/1.0", image.repository))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(image.manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201, "manifest push");
}

type Images = ImagesServiceClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Outgoing>>;

async fn skopeo_sync(master: &Registry, images: &[Image], to: &Registry, home: &Path) -> Duration {
    let mut yaml = format!("{}:\n  tls-verify: false\n  images:\n", master.addr);
    for i in images {
        yaml.push_str(&format!("    {}: [\"1.0\"]\n", i.repository));
    }
    let file = home.join("sync.yaml");
    std::fs::write(&file, yaml).unwrap();
    let started = Instant::now();
    let out = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "sync",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--dest-tls-verify=false",
        ])
        .arg(&file)
        .arg(to.addr.to_string())
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", home)
        .output()
        .expect("skopeo runs");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "skopeo sync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// Reads every manifest and blob of `images` from `base`, `parallel` at a
/// time, streaming and counting; returns bytes and time.
async fn pull_all(http: &reqwest::Client, base: &str, images: &[Image], parallel: usize) -> (u64, Duration) {
    let mut urls = Vec::new();
    for i in images {
        urls.push(format!("{base}/v2/{}/manifests/{}", i.repository, i.digest));
        for (d, _) in &i.blobs {
            urls.push(format!("{base}/v2/{}/blobs/{d}", i.repository));
        }
    }
    let started = Instant::now();
    let bytes: Vec<u64> = futures::stream::iter(urls)
        .map(|url| async move {
            let r = http
                .get(&url)
                .header("accept", "application/vnd.oci.image.manifest.v1+json")
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{url}: {}", r.status());
            let mut body = r.bytes_stream();
            let mut n = 0u64;
            while let Some(chunk) = body.next().await {
                n += chunk.unwrap().len() as u64;
            }
            n
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    (bytes.iter().sum(), started.elapsed())
}

async fn fill_catalog(pool: &sqlx::PgPool, tenant: Uuid, project: Uuid, tags: usize) {
    let repositories = (tags / 100).max(1);
    for r in 0..repositories {
        let repo = Uuid::now_v7();
        sqlx::query("INSERT INTO repositories (id, tenant_id, project_id, name) VALUES ($1, $2, $3, $4)")
            .bind(repo)
            .bind(tenant)
            .bind(project)
            .bind(format!("{TENANT}/{PROJECT}/svc-{r:04}"))
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO tags (id, repository_id, tenant_id, name, digest, labels)
             SELECT gen_random_uuid(), $1, $2, 'v' || n, 'sha256:' || md5(n::text || $3::text),
                    jsonb_build_object('team', 'team-' || ($4::int % 20), 'build', n::text)
             FROM generate_series(1, 100) AS n",
        )
        .bind(repo)
        .bind(tenant)
        .bind(repo.to_string())
        .bind(i32::try_from(r).unwrap())
        .execute(pool)
        .await
        .unwrap();
    }
}

#[tokio::main]
async fn main() {
    let n_images = env_or("REPLICATION_IMAGES", 50);
    let n_layers = env_or("REPLICATION_LAYERS", 5);
    let layer_kb = env_or("REPLICATION_LAYER_KB", 800);
    let n_tags = env_or("REPLICATION_TAGS", 100_000);
    println!(
        "settings: {n_images} images x {n_layers} layers of {layer_kb} KB (random), 2 targets; \
         catalog of {n_tags} tags"
    );
    let home = std::env::temp_dir().join(format!("paas-bench-replication-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&home).unwrap();

    let t = TestPlatform::new().await;
    let shutdown = Shutdown::new();
    let mut settings = images::Settings::from_env(&t.env).expect("settings");
    // Nothing here resolves names: pushes go straight to the master.
    settings.tenancy_url = "http://127.0.0.1:1".to_string();
    let running = images::start_with(&t.settings, settings, Addresses::ephemeral(), &shutdown)
        .await
        .expect("images starts");
    let admin_token = format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>());
    let mut upstream = gateway::settings::Upstreams::from_env(&t.env).expect("defaults");
    upstream.images = uri(running.grpc);
    let gateway_settings = gateway::Settings {
        addr: "127.0.0.1:0".parse().expect("valid"),
        admin_token: Some(Secret::new(admin_token.clone())),
        upstream,
        local_admin_password: None,
        local_admin_disabled: true,
        directory: None,
        oidc: Vec::new(),
        public_url: None,
        sessions: gateway::session::Timeouts::default(),
    };
    let gateway_addr = gateway::start(&t.settings, gateway_settings, &shutdown)
        .await
        .expect("gateway starts");
    let gateway_url = format!("http://{gateway_addr}");

    let key = CallerKey::new(t.settings.caller_key.clone());
    let channel = kernel::grpc::channel(&uri(running.grpc)).expect("channel");
    let mut api: Images = ImagesServiceClient::with_interceptor(
        channel.clone(),
        Outgoing::new(&key, &Caller::platform_admin("user:bench")),
    );

    let master = Registry::start().await;
    let targets = [Registry::start().await, Registry::start().await];
    let skopeo_targets = [Registry::start().await, Registry::start().await];
    api.create_registry(pb::CreateRegistryRequest {
        name: "master".into(),
        url: master.url(),
        master: true,
        ..Default::default()
    })
    .await
    .expect("master registered");
    let mut target_ids = Vec::new();
    for (i, r) in targets.iter().enumerate() {
        let created = api
            .create_registry(pb::CreateRegistryRequest {
                name: format!("dc{i}"),
                url: r.url(),
                data_centre: format!("dc{i}"),
                ..Default::default()
            })
            .await
            .expect("sub-registry registered")
            .into_inner();
        target_ids.push(Uuid::parse_str(&created.id).unwrap());
    }

    let images = generate(n_images, n_layers, layer_kb * 1000);
    let total: u64 = images
        .iter()
        .map(|i| i.blobs.iter().map(|(_, b)| b.len() as u64).sum::<u64>() + i.manifest.len() as u64)
        .sum();
    println!("generated {:.1} MB", total as f64 / 1e6);
    let http = reqwest::Client::new();
    let master_url = master.url();
    futures::stream::iter(&images)
        .for_each_concurrent(4, |i| push(&http, &master_url, i))
        .await;
    println!("pushed to the master");

    // The catalog as notifications would have left it, and one rule.
    let pool = kernel::db::connect(&t.settings, images::NAME).await.expect("pool");
    let (tenant, project) = (Uuid::now_v7(), Uuid::now_v7());
    for i in &images {
        let repo = Uuid::now_v7();
        sqlx::query("INSERT INTO repositories (id, tenant_id, project_id, name) VALUES ($1, $2, $3, $4)")
            .bind(repo)
            .bind(tenant)
            .bind(project)
            .bind(&i.repository)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO tags (id, repository_id, tenant_id, name, digest) VALUES ($1, $2, $3, '1.0', $4)")
            .bind(Uuid::now_v7())
            .bind(repo)
            .bind(tenant)
            .bind(&i.digest)
            .execute(&pool)
            .await
            .unwrap();
    }
    let rule = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO replication_rules (id, tenant_id, name, repositories, registry_ids, on_push)
         VALUES ($1, $2, 'bench', $3, $4, false)",
    )
    .bind(rule)
    .bind(tenant)
    .bind(format!("{TENANT}/{PROJECT}/img-*"))
    .bind(&target_ids)
    .execute(&pool)
    .await
    .unwrap();

    // 1. Replication: the platform's replicator, then skopeo sync.
    let started = Instant::now();
    let run = api
        .trigger_replication(pb::TriggerReplicationRequest {
            rule_id: rule.to_string(),
        })
        .await
        .expect("triggered")
        .into_inner();
    let run = loop {
        // A client signed now: caller tokens are short-lived and a slow run outlasts one.
        let mut api: Images = ImagesServiceClient::with_interceptor(
            channel.clone(),
            Outgoing::new(&key, &Caller::platform_admin("user:bench")),
        );
        let r = api
            .get_replication_run(pb::GetReplicationRunRequest { id: run.id.clone() })
            .await
            .expect("run")
            .into_inner();
        if r.state == "succeeded" || r.state == "failed" {
            break r;
        }
        assert!(
            started.elapsed() < REPLICATION_LIMIT,
            "replication did not finish: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let platform_time = started.elapsed();
    assert_eq!(run.state, "succeeded", "{}", run.message);
    assert_eq!(run.items_copied, i64::try_from(2 * n_images).unwrap());
    let mut skopeo_time = Duration::ZERO;
    for to in &skopeo_targets {
        skopeo_time += skopeo_sync(&master, &images, to, &home).await;
    }
    let copied = 2 * total;
    let platform_tp = mb_per_s(copied, platform_time);
    let skopeo_tp = mb_per_s(copied, skopeo_time);
    let ratio = platform_tp / skopeo_tp;
    println!(
        "replication to 2 registries: platform {:.2} s ({platform_tp:.1} MB/s, {} bytes streamed), \
         skopeo sync {:.2} s ({skopeo_tp:.1} MB/s); ratio {ratio:.2} (target >= {TARGET_REPLICATION_RATIO}) {}",
        platform_time.as_secs_f64(),
        run.bytes,
        skopeo_time.as_secs_f64(),
        verdict(ratio >= TARGET_REPLICATION_RATIO)
    );
    // Digests verified: the targets answer the master's digest for each tag.
    let transfer = images::transfer::Transfer::new(http.clone());
    for r in &targets {
        let at = images::transfer::Endpoint::new(&r.url(), String::new());
        for i in &images {
            let d = transfer.head_manifest(&at, &i.repository, "1.0").await.unwrap();
            assert_eq!(d.as_deref(), Some(i.digest.as_str()), "{} at {}", i.repository, r.url());
        }
    }
    println!("digests: all {} copies equal the master's", 2 * n_images);

    // 2. Pulls: through the gateway's /v2/ proxy and directly, alternating to even out caches.
    let (mut direct, mut proxied) = ((0u64, Duration::ZERO), (0u64, Duration::ZERO));
    for _ in 0..2 {
        let d = pull_all(&http, &master.url(), &images, 4).await;
        let p = pull_all(&http, &gateway_url, &images, 4).await;
        direct = (direct.0 + d.0, direct.1 + d.1);
        proxied = (proxied.0 + p.0, proxied.1 + p.1);
    }
    let (direct_tp, proxied_tp) = (mb_per_s(direct.0, direct.1), mb_per_s(proxied.0, proxied.1));
    let pull_ratio = proxied_tp / direct_tp;
    println!(
        "pull: through /v2/ proxy {proxied_tp:.1} MB/s, direct {direct_tp:.1} MB/s; ratio {pull_ratio:.2} \
         (target >= {TARGET_PULL_RATIO}) {}",
        verdict(pull_ratio >= TARGET_PULL_RATIO)
    );

    // 3. Catalog search over n_tags tags through the gateway, and each layer
    // under it alone (the catalog's SQL, the images service over gRPC), so a
    // slow search says where its time goes.
    fill_catalog(&pool, tenant, project, n_tags).await;
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    let searches = 500;
    let queries: Vec<(String, String)> = (0..searches)
        .map(|n| {
            if n % 2 == 0 {
                (format!("svc-{:04}", (n * 37) % (n_tags / 100).max(1)), String::new())
            } else {
                (String::new(), format!("team=team-{}", n % 20))
            }
        })
        .collect();
    let catalog = images::catalog::Catalog::new(kernel::outbox::Outbox::new(pool.clone()));
    let admin = Caller::platform_admin("user:bench");
    let mut sql = Histogram::<u64>::new(3).unwrap();
    for (query, label) in &queries {
        let search = images::catalog::Search {
            tenant: None,
            query: query.clone(),
            label: label.clone(),
        };
        let started = Instant::now();
        let (found, _) = catalog
            .repositories(&admin, &search, kernel::page::Page::parse(50, "").unwrap())
            .await
            .unwrap();
        sql.record(micros(started.elapsed())).unwrap();
        assert!(!found.is_empty(), "{query:?} {label:?} finds something");
    }
    let mut grpc = Histogram::<u64>::new(3).unwrap();
    let mut api: Images = ImagesServiceClient::with_interceptor(
        channel.clone(),
        Outgoing::new(&key, &Caller::platform_admin("user:bench")),
    );
    for (query, label) in &queries {
        let started = Instant::now();
        let r = api
            .list_repositories(pb::ListRepositoriesRequest {
                query: query.clone(),
                label: label.clone(),
                page: Some(pb::PageRequest {
                    limit: 50,
                    cursor: String::new(),
                }),
                ..Default::default()
            })
            .await
            .expect("search over gRPC");
        grpc.record(micros(started.elapsed())).unwrap();
        assert!(!r.into_inner().repositories.is_empty());
    }
    let mut h = Histogram::<u64>::new(3).unwrap();
    for (query, label) in &queries {
        let started = Instant::now();
        let r = http
            .get(format!("{gateway_url}/api/v1/repositories"))
            .query(&[("q", query.as_str()), ("label", label.as_str()), ("limit", "50")])
            .bearer_auth(&admin_token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "search: {}", r.status());
        let _ = r.bytes().await.unwrap();
        h.record(micros(started.elapsed())).unwrap();
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "catalog search layers ({searches} searches each): catalog SQL p50 {:.1} ms p99 {:.1} ms; \
         images gRPC p50 {:.1} ms p99 {:.1} ms",
        ms(&sql, 0.5),
        ms(&sql, 0.99),
        ms(&grpc, 0.5),
        ms(&grpc, 0.99)
    );
    let p99 = Duration::from_micros(h.value_at_quantile(0.99));
    println!(
        "catalog search over {n_tags} tags ({searches} searches by name and label): p50 {:.1} ms, \
         p99 {:.1} ms (target <= {} ms) {}",
        ms(&h, 0.5),
        p99.as_secs_f64() * 1000.0,
        TARGET_SEARCH_P99.as_millis(),
        verdict(p99 <= TARGET_SEARCH_P99)
    );
    shutdown.trigger();
    let _ = std::fs::remove_dir_all(&home);
}
