//! Simulated clusters: one store, API server, admin endpoint and simulation
//! loop each ([`Cluster::start`]), many of them in one process ([`Fleet`]),
//! and the `paas kubesim` entry point ([`run_standalone`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::api::{self, ApiState};
use crate::fault::{Fault, FaultHandle};
use crate::resource;
use crate::scheduler;
use crate::status::{Error, Result};
use crate::store::{Store, WriteOptions};
use crate::{autoscaler, container, cron_job, event, job, kubeconfig, quota, storage, workload};

/// How a simulated cluster looks and behaves.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Cluster name, also the kubeconfig context and node name prefix.
    pub name: String,
    /// Number of nodes.
    pub nodes: usize,
    /// Allocatable cpu per node (a Kubernetes quantity).
    pub node_cpu: String,
    /// Allocatable memory per node (a Kubernetes quantity).
    pub node_memory: String,
    /// Pods per node.
    pub node_pods: u32,
    /// How long a bound pod takes to become Running and Ready.
    pub ready_delay: Duration,
    /// How many watch events are retained; older resourceVersions get 410.
    pub event_window: usize,
    /// How often watches with bookmarks get one.
    pub bookmark_interval: Duration,
    /// Where the kubeconfig is written; a fresh temporary directory if `None`.
    pub kubeconfig_dir: Option<PathBuf>,
    /// How long an Event lives after it was last seen (the API server's `--event-ttl`).
    pub event_ttl: Duration,
    /// How often the watch history is compacted: each time, events older than
    /// the previous compaction's resourceVersion go, so a watch from before
    /// then gets 410 Gone (the API server's `--etcd-compaction-interval`).
    /// Start-up is compacted once as well. `None` keeps the history (up to
    /// `event_window` events).
    pub compaction_interval: Option<Duration>,
    /// The back-off before a Job replaces a failed pod, doubled per failure
    /// (the real Job controller's is 10 s).
    pub job_backoff: Duration,
}

/// Three nodes of 4 cpu / 16Gi, so a demo fleet fits typical test workloads.
const DEFAULT_NODES: usize = 3;
/// Small enough for tests to watch pods start, long enough to observe Pending.
const DEFAULT_READY_DELAY: Duration = Duration::from_millis(200);
/// Enough for kube-runtime watchers to resume after short disconnects.
const DEFAULT_EVENT_WINDOW: usize = 10_000;
/// Much shorter than the real minute so reflectors advance quickly in tests.
const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);
/// The API server's default `--event-ttl`.
const DEFAULT_EVENT_TTL: Duration = Duration::from_secs(3600);
/// The API server's default `--etcd-compaction-interval`.
const DEFAULT_COMPACTION_INTERVAL: Duration = Duration::from_secs(300);
/// The Job controller's default back-off.
const DEFAULT_JOB_BACKOFF: Duration = Duration::from_secs(10);

impl ClusterConfig {
    /// Defaults for a cluster called `name`.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            nodes: DEFAULT_NODES,
            node_cpu: "4".into(),
            node_memory: "16Gi".into(),
            node_pods: 110,
            ready_delay: DEFAULT_READY_DELAY,
            event_window: DEFAULT_EVENT_WINDOW,
            bookmark_interval: DEFAULT_BOOKMARK_INTERVAL,
            kubeconfig_dir: None,
            event_ttl: DEFAULT_EVENT_TTL,
            compaction_interval: Some(DEFAULT_COMPACTION_INTERVAL),
            job_backoff: DEFAULT_JOB_BACKOFF,
        }
    }
}

/// How long the simulation waits after a change before its next pass, so a
/// burst of writes costs one pass.
const SETTLE: Duration = Duration::from_millis(2);

/// Starts clusters.
pub struct Cluster;

/// A started cluster; stops when dropped.
pub struct RunningCluster {
    name: String,
    addr: SocketAddr,
    admin_addr: SocketAddr,
    store: Arc<Store>,
    faults: FaultHandle,
    kubeconfig: PathBuf,
    owned_dir: Option<PathBuf>,
    tasks: Vec<JoinHandle<()>>,
}

impl Cluster {
    /// Binds the API on 127.0.0.1 (an ephemeral port) and an admin endpoint
    /// on another, creates the nodes and default namespaces, writes the
    /// kubeconfig and starts the simulation.
    ///
    /// # Errors
    /// If a port cannot be bound or the kubeconfig cannot be written.
    pub async fn start(config: ClusterConfig) -> Result<RunningCluster> {
        let store = Arc::new(Store::new(config.event_window));
        let setup = WriteOptions::by("kube-apiserver");
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            store.create(resource::NAMESPACES, "", json!({ "metadata": { "name": ns } }), &setup)?;
        }
        for node in scheduler::node_objects(
            &config.name,
            config.nodes,
            &config.node_cpu,
            &config.node_memory,
            config.node_pods,
        ) {
            store.create(resource::NODES, "", node, &WriteOptions::by("kubelet"))?;
        }
        store.create(resource::STORAGECLASSES, "", storage::default_class(), &setup)?;
        if config.compaction_interval.is_some() {
            // Like a real cluster's, the history starts after start-up: a
            // watch from an older resourceVersion gets 410 Gone.
            store.compact();
        }
        let faults = FaultHandle::default();
        let bind = |what: &'static str| async move {
            TcpListener::bind("127.0.0.1:0").await.map_err(|source| Error::Io {
                context: format!("binding the {what} port"),
                source,
            })
        };
        let listener = bind("API").await?;
        let admin = bind("admin").await?;
        let addr = listener.local_addr().map_err(|source| Error::Io {
            context: "reading the API address".into(),
            source,
        })?;
        let admin_addr = admin.local_addr().map_err(|source| Error::Io {
            context: "reading the admin address".into(),
            source,
        })?;

        let (dir, owned_dir) = match &config.kubeconfig_dir {
            Some(d) => (d.clone(), None),
            None => {
                let d = std::env::temp_dir().join(format!(
                    "kubesim-{}-{}-{}",
                    std::process::id(),
                    config.name,
                    addr.port()
                ));
                (d.clone(), Some(d))
            }
        };
        let kubeconfig = dir.join(format!("{}.kubeconfig", config.name));
        kubeconfig::write(&kubeconfig, &config.name, &format!("http://{addr}"))?;

        let state = ApiState {
            store: store.clone(),
            faults: faults.clone(),
            bookmark_interval: config.bookmark_interval,
        };
        let app = api::router(state);
        let tasks = vec![
            tokio::spawn(serve_api(listener, addr, app, faults.clone())),
            tokio::spawn(serve_admin(admin, store.clone(), faults.clone())),
            tokio::spawn(simulate(store.clone(), faults.clone(), Timing::of(&config))),
        ];
        let mut tasks = tasks;
        if let Some(every) = config.compaction_interval {
            tasks.push(tokio::spawn(compact_periodically(store.clone(), every)));
        }
        Ok(RunningCluster {
            name: config.name,
            addr,
            admin_addr,
            store,
            faults,
            kubeconfig,
            owned_dir,
            tasks,
        })
    }
}

/// Serves the API, closing the listener while the fault refuses connections
/// and reopening it on the same port afterwards.
async fn serve_api(first: TcpListener, addr: SocketAddr, app: Router, faults: FaultHandle) {
    let mut listener = Some(first);
    loop {
        if faults.get().refuses_connections() {
            // Close a listener bound before the fault, so connections are refused.
            listener = None;
        }
        faults.until(|f| !f.refuses_connections()).await;
        let l = match listener.take() {
            Some(l) => l,
            None => match TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "kubesim could not reopen its port; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let down = faults.clone();
        // Like the Go API server: no Nagle delay on watch events and small responses.
        let l = l.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let result = axum::serve(l, app.clone())
            .with_graceful_shutdown(async move { down.until(Fault::refuses_connections).await })
            .await;
        if let Err(e) = result {
            tracing::warn!(%addr, error = %e, "kubesim API server stopped");
        }
    }
}

#[derive(Clone)]
struct AdminState {
    store: Arc<Store>,
    faults: FaultHandle,
}

/// `GET/POST /_kubesim/fault` (`{"fault":"down"}`, `{"fault":"slow","ms":200}`,
/// `{"fault":"flaky","share":0.5}`, `{"fault":"notready"}`, `{"fault":"recover"}`, ...) and
/// `POST /_kubesim/compact`.
fn admin_router(store: Arc<Store>, faults: FaultHandle) -> Router {
    async fn get_fault(State(s): State<AdminState>) -> Json<Fault> {
        Json(s.faults.get())
    }
    async fn set_fault(State(s): State<AdminState>, Json(f): Json<Fault>) -> Json<Fault> {
        s.faults.set(f);
        Json(f)
    }
    async fn compact(State(s): State<AdminState>) -> Json<Value> {
        s.store.compact();
        Json(json!({ "compacted": s.store.resource_version() }))
    }
    Router::new()
        .route("/_kubesim/fault", get(get_fault).post(set_fault))
        .route("/_kubesim/compact", post(compact))
        .with_state(AdminState { store, faults })
}

async fn serve_admin(listener: TcpListener, store: Arc<Store>, faults: FaultHandle) {
    if let Err(e) = axum::serve(listener, admin_router(store, faults)).await {
        tracing::warn!(error = %e, "kubesim admin endpoint stopped");
    }
}

/// Compacts the watch history every `every`, up to where it stood at the
/// previous compaction, so a watch can always resume from the last interval.
async fn compact_periodically(store: Arc<Store>, every: Duration) {
    let mut mark = store.resource_version();
    loop {
        tokio::time::sleep(every).await;
        store.compact_to(mark);
        mark = store.resource_version();
    }
}

/// The simulation's clocks, from the cluster's configuration.
#[derive(Debug, Clone, Copy)]
struct Timing {
    ready_delay: Duration,
    event_ttl: Duration,
    job_backoff: Duration,
}

impl Timing {
    fn of(config: &ClusterConfig) -> Self {
        Self {
            ready_delay: config.ready_delay,
            event_ttl: config.event_ttl,
            job_backoff: config.job_backoff,
        }
    }
}

/// How often expired Events are looked for.
const EVENT_SWEEP: Duration = Duration::from_secs(1);

/// The controllers, scheduler and kubelets, level-triggered: a pass after
/// every change, when a pod is due to start, and at least twice a second.
async fn simulate(store: Arc<Store>, faults: FaultHandle, timing: Timing) {
    let mut seen = HashMap::new();
    let mut running = HashMap::new();
    let mut stopping = HashMap::new();
    let mut announced = HashMap::new();
    let mut swept = std::time::Instant::now();
    loop {
        let mut wake = Duration::from_millis(500);
        if faults.get() != Fault::Down {
            scheduler::schedule(&store);
            let due = [
                scheduler::run_kubelets(&store, timing.ready_delay, &mut seen),
                container::finish(&store, &mut running),
                container::terminate(&store, &mut stopping),
                job::reconcile(&store, timing.job_backoff),
            ];
            for next in due.into_iter().flatten() {
                wake = wake.min(next);
            }
            workload::reconcile_deployments(&store);
            workload::reconcile_replicasets(&store);
            workload::reconcile_statefulsets(&store);
            workload::reconcile_daemonsets(&store);
            cron_job::reconcile(&store, &mut announced);
            autoscaler::reconcile(&store);
            storage::reconcile(&store);
            quota::reconcile(&store);
            store.finish_terminating_namespaces();
            if swept.elapsed() >= EVENT_SWEEP {
                event::expire(&store, timing.event_ttl);
                swept = std::time::Instant::now();
            }
        }
        tokio::select! {
            () = store.changed().notified() => {
                // Coalesce a burst of writes into one pass, and always yield.
                tokio::time::sleep(SETTLE).await;
            }
            () = tokio::time::sleep(wake) => {}
        }
    }
}

impl RunningCluster {
    /// The cluster's name, as in its kubeconfig's context.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The API server's bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin endpoint, `http://127.0.0.1:<port>/_kubesim/...`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// The kubeconfig written for this cluster (for kubectl and kube-rs).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The fault handle of this cluster.
    pub fn faults(&self) -> &FaultHandle {
        &self.faults
    }

    /// The object store, for in-process inspection and compaction.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl Drop for RunningCluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(dir) = &self.owned_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Many clusters in one process, each on its own ports.
pub struct Fleet {
    clusters: Vec<RunningCluster>,
}

impl Fleet {
    /// Starts `count` clusters; `config(i)` describes the i-th.
    ///
    /// # Errors
    /// As [`Cluster::start`].
    pub async fn start(count: usize, config: impl Fn(usize) -> ClusterConfig) -> Result<Self> {
        let mut clusters = Vec::with_capacity(count);
        for i in 0..count {
            clusters.push(Cluster::start(config(i)).await?);
        }
        Ok(Self { clusters })
    }

    /// Every running cluster, in the order they were started.
    pub fn clusters(&self) -> &[RunningCluster] {
        &self.clusters
    }

    /// The running cluster with this name.
    pub fn get(&self, name: &str) -> Option<&RunningCluster> {
        self.clusters.iter().find(|c| c.name == name)
    }
}

/// The `paas kubesim --clusters N` entry point: starts `clusters` clusters
/// named `<prefix>-0..N` from `template` (its name is the prefix), prints each
/// one's name, URL, admin URL and kubeconfig path, and serves until SIGINT
/// (Ctrl-C) or SIGTERM, then removes the kubeconfig folders it created.
///
/// # Errors
/// As [`Cluster::start`], or if the Ctrl-C handler cannot be installed.
pub async fn run_standalone(clusters: usize, template: ClusterConfig) -> Result<()> {
    // The handlers go in before the clusters are announced: a signal sent as
    // soon as a caller reads the addresses must already be caught, or its
    // default action would end the process with the folders still there.
    let listen = |kind: tokio::signal::unix::SignalKind, what: &str| {
        tokio::signal::unix::signal(kind).map_err(|source| Error::Io {
            context: format!("installing the {what} handler"),
            source,
        })
    };
    let mut terminate = listen(tokio::signal::unix::SignalKind::terminate(), "SIGTERM")?;
    let mut interrupt = listen(tokio::signal::unix::SignalKind::interrupt(), "SIGINT")?;
    let fleet = Fleet::start(clusters, |i| ClusterConfig {
        name: format!("{}-{i}", template.name),
        ..template.clone()
    })
    .await?;
    for c in fleet.clusters() {
        println!(
            "{}\t{}\tadmin={}\tkubeconfig={}",
            c.name(),
            c.url(),
            c.admin_url(),
            c.kubeconfig_path().display()
        );
    }
    // Returning drops the fleet, which removes the temporary kubeconfig folders.
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    drop(fleet);
    Ok(())
}
