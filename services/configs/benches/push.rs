//! Config push: 10,000 concurrent watchers of one config set, half of them
//! gRPC `Watch` streams straight to the configs service and half HTTP long
//! polls through the gateway (Apollo-style, re-polling after each answer);
//! 100 releases published one after another. For each publish it measures
//! the time from the publish call until every watcher has heard of it, and
//! each watcher's own notification latency; then publishes per second (each
//! one waiting until all watchers are told). Side by side, in the same run:
//! etcd 3.4 (Debian's `etcd-server`, started here on free ports with a
//! scratch data directory) with 10,000 watches on one key through the
//! `etcd-client` crate, and the same 100 updates. It prints both, the ratio
//! and PASS/FAIL against the target: p99 (publish -> all notified) at most
//! 50 ms and no worse than etcd's. It also prints the memory per idle
//! watcher: the growth of this process's resident set (client, gateway and
//! service sides together, as they share the process) while the watchers
//! connect, divided by their number.
//!
//! `cargo bench -p paas-configs --bench push` (needs PostgreSQL, Redis and
//! NATS as the tests do, and `etcd` on the PATH: `scripts/deps`).
//! `PUSH_WATCHERS`, `PUSH_PUBLISHES`, `PUSH_GRPC_SHARE` (percent of watchers
//! on gRPC, default 50) and `PUSH_CONNECTIONS` (gRPC / etcd connections the
//! streams share, default 8) change the size.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kernel::caller::{Caller, CallerKey, Membership, Role};
use kernel::grpc::{Outgoing, uri};
use kernel::service::Addresses;
use kernel::settings::Secret;
use kernel::shutdown::Shutdown;
use kernel::testkit::TestPlatform;
use paas_proto::v1 as pb;
use paas_proto::v1::configs_service_client::ConfigsServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

type Client = ConfigsServiceClient<InterceptedService<Channel, Outgoing>>;

/// The target: p99 from publish to every watcher notified.
const TARGET_P99: Duration = Duration::from_millis(50);
/// Longest a publish may take to reach everyone before the run is called broken.
const FAN_OUT_LIMIT: Duration = Duration::from_secs(60);

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn summary(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    )
}

/// The stages of [`Tally::stages`], p50/p99 each.
fn stages(figures: &Figures) -> String {
    let [call, first, streams, polls] = &figures.stages;
    let pair = |h: &Histogram<u64>| {
        format!(
            "{:.1}/{:.1} ms",
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99))
        )
    };
    format!(
        "call returns {}, first watcher {}, last gRPC stream {}, last long poll {}",
        pair(call),
        pair(first),
        pair(streams),
        pair(polls)
    )
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// This process's resident set in KiB.
fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Raises this process's open files limit to its hard limit (a soft limit
/// of 1,024 is common and far below what 10,000 watchers hold) and returns
/// the limit in force.
fn raise_open_files_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            eprintln!("push: cannot raise the open files limit: {e}");
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Who heard of which release when: per release, how many watchers and the
/// latest arrival; and every arrival's latency.
struct Tally {
    start: Instant,
    published_at: Vec<AtomicU64>,
    /// When the publish call returned (its commit done).
    committed_at: Vec<AtomicU64>,
    heard: Vec<AtomicUsize>,
    last_heard: Vec<AtomicU64>,
    first_heard: Vec<AtomicU64>,
    /// The latest arrival per release over gRPC streams and over long polls.
    last_by_stream: Vec<AtomicU64>,
    last_by_poll: Vec<AtomicU64>,
    latencies: std::sync::Mutex<Histogram<u64>>,
    /// Arrivals that were not the release right after the watcher's last
    /// one (a gap, a repeat or out of order), and the first such.
    out_of_order: AtomicUsize,
    first_out_of_order: std::sync::Mutex<Option<String>>,
}

impl Tally {
    fn new(releases: usize) -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            published_at: (0..=releases).map(|_| AtomicU64::new(0)).collect(),
            committed_at: (0..=releases).map(|_| AtomicU64::new(0)).collect(),
            heard: (0..=releases).map(|_| AtomicUsize::new(0)).collect(),
            last_heard: (0..=releases).map(|_| AtomicU64::new(0)).collect(),
            first_heard: (0..=releases).map(|_| AtomicU64::new(u64::MAX)).collect(),
            last_by_stream: (0..=releases).map(|_| AtomicU64::new(0)).collect(),
            last_by_poll: (0..=releases).map(|_| AtomicU64::new(0)).collect(),
            latencies: std::sync::Mutex::new(histogram()),
            out_of_order: AtomicUsize::new(0),
            first_out_of_order: std::sync::Mutex::new(None),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn publishing(&self, release: usize) {
        self.published_at[release].store(self.now(), Ordering::SeqCst);
    }

    fn committed(&self, release: usize) {
        self.committed_at[release].store(self.now(), Ordering::SeqCst);
    }

    /// Watcher `who`, holding release `last`, hears of `release`: it must
    /// be the next one (every watcher gets every release once, in order).
    fn heard_by(&self, who: &str, last: &mut usize, release: usize) {
        let by = if who.starts_with("poller") {
            &self.last_by_poll
        } else {
            &self.last_by_stream
        };
        if let Some(at) = by.get(release) {
            at.fetch_max(self.now(), Ordering::SeqCst);
        }
        if release != *last + 1 {
            self.out_of_order.fetch_add(1, Ordering::SeqCst);
            self.first_out_of_order
                .lock()
                .expect("not poisoned")
                .get_or_insert_with(|| format!("{who} holding {last} was told of {release}"));
        }
        *last = (*last).max(release);
        self.heard(release);
    }

    /// Every watcher heard of every release from `first` on exactly once, in order.
    fn assert_exactly_once(&self, watchers: usize, first: usize) {
        let example = self.first_out_of_order.lock().expect("not poisoned").clone();
        assert_eq!(
            self.out_of_order.load(Ordering::SeqCst),
            0,
            "releases arrived out of order, repeated or with gaps; first: {example:?}"
        );
        for (n, count) in self.heard.iter().enumerate().skip(first) {
            assert_eq!(
                count.load(Ordering::SeqCst),
                watchers,
                "release {n}: told to that many watchers"
            );
        }
    }

    fn heard(&self, release: usize) {
        let Some(count) = self.heard.get(release) else { return };
        let now = self.now();
        self.last_heard[release].fetch_max(now, Ordering::SeqCst);
        self.first_heard[release].fetch_min(now, Ordering::SeqCst);
        count.fetch_add(1, Ordering::SeqCst);
        let published = self.published_at[release].load(Ordering::SeqCst);
        if published > 0 {
            let _ = self
                .latencies
                .lock()
                .expect("not poisoned")
                .record(now.saturating_sub(published).max(1));
        }
    }

    async fn all_heard(&self, release: usize, watchers: usize) -> bool {
        let deadline = Instant::now() + FAN_OUT_LIMIT;
        while self.heard[release].load(Ordering::SeqCst) < watchers {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        true
    }

    /// Where release `release`'s time went: publish call, then from its
    /// start to the first watcher told, to the last gRPC stream, to the
    /// last long poll (0 where none).
    fn stages(&self, release: usize) -> [u64; 4] {
        let start = self.published_at[release].load(Ordering::SeqCst);
        let since = |at: &AtomicU64| at.load(Ordering::SeqCst).saturating_sub(start).max(1);
        [
            since(&self.committed_at[release]),
            since(&self.first_heard[release]),
            since(&self.last_by_stream[release]),
            since(&self.last_by_poll[release]),
        ]
    }

    fn fan_out(&self, release: usize) -> u64 {
        self.last_heard[release]
            .load(Ordering::SeqCst)
            .saturating_sub(self.published_at[release].load(Ordering::SeqCst))
            .max(1)
    }
}

struct Figures {
    all_notified: Histogram<u64>,
    /// Per publish: the call itself, first watcher, last gRPC stream, last long poll.
    stages: [Histogram<u64>; 4],
    each: Histogram<u64>,
    per_second: f64,
    idle_kib: f64,
}

fn client(channel: Channel, key: &CallerKey, caller: &Caller) -> Client {
    ConfigsServiceClient::with_interceptor(channel, Outgoing::new(key, caller))
}

async fn grpc_channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(uri(addr))
        .expect("valid uri")
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("configs answers")
}

/// Publishes release `n` with a token signed now: the run outlasts a
/// caller token's lifetime ([`kernel::caller::TOKEN_TTL`]), and a real
/// client (the gateway) signs one per request too.
/// The clock starts at the publish call itself (`tally`), after the draft
/// edit, as etcd's starts at the put.
async fn publish(channel: &Channel, key: &CallerKey, operator: &Caller, set: &str, n: usize, tally: Option<&Tally>) {
    let mut api = client(channel.clone(), key, operator);
    let draft = api
        .get_draft(pb::GetDraftRequest {
            config_set_id: set.into(),
        })
        .await
        .expect("draft")
        .into_inner();
    api.put_draft_item(pb::PutDraftItemRequest {
        config_set_id: set.into(),
        version: draft.version,
        item: Some(pb::ConfigItem {
            name: "app.properties".into(),
            content: format!("release={n}\n"),
            ..Default::default()
        }),
    })
    .await
    .expect("edit");
    if let Some(tally) = tally {
        tally.publishing(n);
    }
    api.publish(pb::PublishRequest {
        config_set_id: set.into(),
        message: format!("release {n}"),
        version: 0,
    })
    .await
    .expect("publish");
    if let Some(tally) = tally {
        tally.committed(n);
    }
}

async fn run_configs(watchers: usize, grpc_share: usize, connections: usize, publishes: usize) -> Figures {
    let t = TestPlatform::new().await;
    let shutdown = Shutdown::new();
    let settings = configs::Settings::from_env(&t.env, &t.settings).expect("settings");
    let running = configs::start_with(&t.settings, settings, Addresses::ephemeral(), &shutdown)
        .await
        .expect("configs starts");
    let admin_token = format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>());
    let mut upstream = gateway::settings::Upstreams::from_env(&t.env).expect("defaults");
    upstream.configs = uri(running.grpc);
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

    let key = CallerKey::new(t.settings.caller_key.clone());
    let tenant = Uuid::now_v7();
    let operator = Caller::user(
        "user:bench",
        vec![Membership {
            tenant,
            role: Role::Operator,
        }],
    );
    let api_channel = grpc_channel(running.grpc).await;
    let set = client(api_channel.clone(), &key, &operator)
        .create_config_set(pb::CreateConfigSetRequest {
            tenant_id: tenant.to_string(),
            application: "bench".into(),
            environment: "qa".into(),
            ..Default::default()
        })
        .await
        .expect("set")
        .into_inner()
        .id;
    // Release 1 exists before anyone watches: each watcher's first answer
    // is it, which tells that the watcher is connected.
    publish(&api_channel, &key, &operator, &set, 1, None).await;

    let tally = Tally::new(publishes + 1);
    let stop = tokio_util::sync::CancellationToken::new();
    let before_kib = rss_kib("self");
    let grpc_watchers = watchers * grpc_share / 100;
    let poll_watchers = watchers - grpc_watchers;

    let channels: Vec<Channel> =
        futures::future::join_all((0..connections.max(1)).map(|_| grpc_channel(running.grpc))).await;
    for i in 0..grpc_watchers {
        let mut watcher = client(channels[i % channels.len()].clone(), &key, &operator);
        let (tally, stop, set) = (tally.clone(), stop.clone(), set.clone());
        tokio::spawn(async move {
            let mut stream = watcher
                .watch(pb::WatchRequest {
                    config_set_id: set,
                    after: 0,
                    ..Default::default()
                })
                .await
                .expect("watch")
                .into_inner();
            let (who, mut last) = (format!("stream {i}"), 0);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    notice = stream.message() => match notice {
                        Ok(Some(n)) => tally.heard_by(&who, &mut last, usize::try_from(n.number).unwrap_or(usize::MAX)),
                        _ => return,
                    },
                }
            }
        });
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(poll_watchers + 16)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(90))
        .build()
        .expect("client");
    for i in 0..poll_watchers {
        let (tally, stop, http) = (tally.clone(), stop.clone(), http.clone());
        let base = format!(
            "http://{gateway_addr}/api/v1/config-sets/{set}/watch?timeout=60&instance=poller-{i}&labels=zone%3Da"
        );
        let token = admin_token.clone();
        tokio::spawn(async move {
            let (who, mut after) = (format!("poller {i}"), 0usize);
            loop {
                let request = http.get(format!("{base}&after={after}")).bearer_auth(&token).send();
                let response = tokio::select! {
                    () = stop.cancelled() => return,
                    r = request => r,
                };
                let Ok(response) = response else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                if response.status() != reqwest::StatusCode::OK {
                    continue;
                }
                let Ok(answer) = response.json::<serde_json::Value>().await else {
                    continue;
                };
                for release in answer["releases"].as_array().into_iter().flatten() {
                    let number = release["number"].as_u64().unwrap_or_default();
                    tally.heard_by(&who, &mut after, usize::try_from(number).unwrap_or(usize::MAX));
                }
            }
        });
    }
    assert!(
        tally.all_heard(1, watchers).await,
        "only {} of {watchers} watchers connected within {FAN_OUT_LIMIT:?}",
        tally.heard[1].load(Ordering::SeqCst)
    );
    // The long pollers are re-polling for release 2; give their requests
    // the time to reach the service before measuring (the same pause the
    // etcd side gets), then read the memory of everything idle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_kib = (rss_kib("self").saturating_sub(before_kib)) as f64 / watchers as f64;

    let mut all_notified = histogram();
    let mut stages = [histogram(), histogram(), histogram(), histogram()];
    let started = Instant::now();
    for n in 2..=publishes + 1 {
        publish(&api_channel, &key, &operator, &set, n, Some(tally.as_ref())).await;
        assert!(
            tally.all_heard(n, watchers).await,
            "release {n} reached {} of {watchers} watchers within {FAN_OUT_LIMIT:?}",
            tally.heard[n].load(Ordering::SeqCst)
        );
        all_notified.record(tally.fan_out(n)).expect("in range");
        for (stage, at) in stages.iter_mut().zip(tally.stages(n)) {
            stage.record(at).expect("in range");
        }
    }
    let per_second = publishes as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    shutdown.trigger();
    tally.assert_exactly_once(watchers, 1);
    let each = tally.latencies.lock().expect("not poisoned").clone();
    Figures {
        all_notified,
        stages,
        each,
        per_second,
        idle_kib,
    }
}

/// etcd on free ports with a scratch data directory, stopped on drop.
struct Etcd {
    child: std::process::Child,
    dir: std::path::PathBuf,
    client_url: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn start_etcd() -> Etcd {
    let dir = std::env::temp_dir().join(format!("paas-push-etcd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = std::process::Command::new("etcd")
        .args([
            "--name",
            "bench",
            "--data-dir",
            dir.to_str().expect("utf-8 path"),
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--initial-cluster",
            &format!("bench={peer_url}"),
            "--log-level",
            "error",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("etcd on the PATH (scripts/deps installs etcd-server)");
    let etcd = Etcd { child, dir, client_url };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut c) = etcd_client::Client::connect([etcd.client_url.as_str()], None).await
            && c.status().await.is_ok()
        {
            return etcd;
        }
        assert!(Instant::now() < deadline, "etcd did not answer within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run_etcd(watchers: usize, connections: usize, publishes: usize) -> (Figures, f64) {
    let etcd = start_etcd().await;
    let pid = etcd.child.id().to_string();
    let key = "/paas/bench/app.properties";
    let mut writer = etcd_client::Client::connect([etcd.client_url.as_str()], None)
        .await
        .expect("etcd");
    writer.put(key, "release=1", None).await.expect("put");
    let tally = Tally::new(publishes + 1);
    let stop = tokio_util::sync::CancellationToken::new();
    let before_kib = rss_kib("self");
    let before_server_kib = rss_kib(&pid);
    let mut clients = Vec::new();
    for _ in 0..connections.max(1) {
        clients.push(
            etcd_client::Client::connect([etcd.client_url.as_str()], None)
                .await
                .expect("etcd"),
        );
    }
    let ready = Arc::new(AtomicUsize::new(0));
    for i in 0..watchers {
        let mut c = clients[i % clients.len()].clone();
        let (tally, stop, ready) = (tally.clone(), stop.clone(), ready.clone());
        tokio::spawn(async move {
            let mut stream = c.watch(key, None).await.expect("watch");
            // The first answer confirms the watch is in place.
            let created = stream.message().await.expect("watch created");
            assert!(created.is_some_and(|r| r.created()), "etcd confirms the watch");
            ready.fetch_add(1, Ordering::SeqCst);
            let (who, mut last) = (format!("etcd watch {i}"), 1);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    message = stream.message() => match message {
                        Ok(Some(response)) => {
                            for event in response.events() {
                                let value = event.kv().and_then(|kv| kv.value_str().ok()).unwrap_or_default();
                                if let Some(n) = value.strip_prefix("release=").and_then(|n| n.parse().ok()) {
                                    tally.heard_by(&who, &mut last, n);
                                }
                            }
                        }
                        _ => return,
                    },
                }
            }
        });
    }
    let deadline = Instant::now() + FAN_OUT_LIMIT;
    while ready.load(Ordering::SeqCst) < watchers {
        assert!(Instant::now() < deadline, "etcd watches did not all start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_kib = (rss_kib("self").saturating_sub(before_kib)) as f64 / watchers as f64;
    let server_kib = (rss_kib(&pid).saturating_sub(before_server_kib)) as f64 / watchers as f64;

    let mut all_notified = histogram();
    let mut stages = [histogram(), histogram(), histogram(), histogram()];
    let started = Instant::now();
    for n in 2..=publishes + 1 {
        tally.publishing(n);
        writer.put(key, format!("release={n}"), None).await.expect("put");
        tally.committed(n);
        assert!(
            tally.all_heard(n, watchers).await,
            "etcd: update {n} reached {} of {watchers} watches",
            tally.heard[n].load(Ordering::SeqCst)
        );
        all_notified.record(tally.fan_out(n)).expect("in range");
        for (stage, at) in stages.iter_mut().zip(tally.stages(n)) {
            stage.record(at).expect("in range");
        }
    }
    let per_second = publishes as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    // Release 1 was put before the watches started.
    tally.assert_exactly_once(watchers, 2);
    let each = tally.latencies.lock().expect("not poisoned").clone();
    (
        Figures {
            all_notified,
            stages,
            each,
            per_second,
            idle_kib,
        },
        server_kib,
    )
}

#[tokio::main]
async fn main() {
    let watchers = env_or("PUSH_WATCHERS", 10_000);
    let publishes = env_or("PUSH_PUBLISHES", 100);
    let grpc_share = env_or("PUSH_GRPC_SHARE", 50).min(100);
    let connections = env_or("PUSH_CONNECTIONS", 8);
    let polls = watchers - watchers * grpc_share / 100;
    let files = raise_open_files_limit();
    println!(
        "push: {watchers} watchers on one config set ({} gRPC streams over {connections} connections, {polls} HTTP long polls \
         through the gateway, each a connection), {publishes} publishes one after another, each awaited by all; \
         etcd: {watchers} watches on one key over {connections} connections, {publishes} puts; open files limit {files}; \
         {} cores; {} build",
        watchers - polls,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    // A long poll holds a socket at each end.
    let needed = u64::try_from(polls * 2 + 512).unwrap_or(u64::MAX);
    assert!(
        files >= needed,
        "the open files limit ({files}) is below the {needed} this run needs: raise it (ulimit -n) or lower PUSH_WATCHERS"
    );

    let ours = run_configs(watchers, grpc_share, connections, publishes).await;
    println!(
        "configs: publish -> all {watchers} notified: {}; each notification: {}; {:.1} publishes/s; {:.1} KiB per idle watcher \
         (client, gateway and service in this process)",
        summary(&ours.all_notified),
        summary(&ours.each),
        ours.per_second,
        ours.idle_kib
    );
    println!("configs stages (p50/p99 from the publish call): {}", stages(&ours));
    let (etcd, etcd_server_kib) = run_etcd(watchers, connections, publishes).await;
    println!(
        "etcd:    put -> all {watchers} notified: {}; each notification: {}; {:.1} puts/s; {:.1} KiB per idle watch \
         (client) + {:.1} KiB (etcd server)",
        summary(&etcd.all_notified),
        summary(&etcd.each),
        etcd.per_second,
        etcd.idle_kib,
        etcd_server_kib
    );
    println!("etcd stages (p50/p99 from the put):              {}", stages(&etcd));
    let ours_p99 = ours.all_notified.value_at_quantile(0.99);
    let etcd_p99 = etcd.all_notified.value_at_quantile(0.99);
    println!(
        "ratio (configs / etcd): p50 {:.2}x, p99 {:.2}x, max {:.2}x, throughput {:.2}x",
        ours.all_notified.value_at_quantile(0.5) as f64 / etcd.all_notified.value_at_quantile(0.5).max(1) as f64,
        ours_p99 as f64 / etcd_p99.max(1) as f64,
        ours.all_notified.max() as f64 / etcd.all_notified.max().max(1) as f64,
        ours.per_second / etcd.per_second.max(f64::MIN_POSITIVE)
    );
    let within_target = Duration::from_micros(ours_p99) <= TARGET_P99;
    let no_worse = ours_p99 <= etcd_p99;
    println!(
        "{}: p99 {:.1} ms {} the {} ms target, {} etcd's {:.1} ms",
        if within_target && no_worse { "PASS" } else { "FAIL" },
        ms(ours_p99),
        if within_target { "within" } else { "over" },
        TARGET_P99.as_millis(),
        if no_worse { "no worse than" } else { "worse than" },
        ms(etcd_p99)
    );
}
