//! Status by watch: while this replica holds the propagator's lease, one
//! watch per Ready cluster over the platform's workloads (Deployments,
//! StatefulSets and DaemonSets labelled `paas.io/managed-by=federation`, in
//! every namespace) keeps a local copy of them (kube-runtime's watcher and
//! reflector store) and records a binding target's status
//! ([`crate::status::record`]) whenever one of the binding's workloads
//! changes there, so pods becoming ready reach the binding at once.
//!
//! A watch counts as **live** once the initial list of all three kinds is
//! complete; then every target in the cluster is recorded (what changed
//! while nothing watched), and the propagator stops polling the status of
//! that cluster's targets. Any error (the cluster unreachable, a 410 Gone
//! after compaction, a stream that ends) makes it not live, so polling
//! takes over at once, and it starts again from a fresh list after a
//! backoff (200 ms doubling to 30 s). A watch stops when its cluster
//! leaves Ready, when the lease is lost, and at shutdown.
//!
//! Records for one cluster are made by its watch task one after another
//! from its store, which only moves forward, so the last record is never
//! older than an earlier one. After an apply the propagator hands the
//! workloads' new `metadata.generation`s to the watch
//! ([`Watches::applied`]); until the store has seen them, those workloads
//! count as not current, so a record made before the apply's events arrive
//! cannot call the new generation settled.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kernel::{Error, Result};
use kube::api::Api;
use kube::core::DynamicObject;
use kube::runtime::reflector::{ObjectRef, store::Writer};
use kube::runtime::watcher;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::binding::{self, BINDING_LABEL, KINDS, Kind, MANAGED_BY};
use crate::credentials::Clients;
use crate::partition::{MAX_BACKOFF, OWNED_LABEL};
use crate::status;

/// Ends each watch request before the client's 10 s read timeout
/// ([`crate::credentials`]): a quiet cluster that sends no bookmark in
/// between would otherwise look like a failure. The watcher resumes from
/// its last resourceVersion without a new list.
const WATCH_TIMEOUT_SECONDS: u32 = 8;
/// The first wait after a failed watch.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The generations an apply left on a binding's workloads: (kind, name) -> generation.
pub type Generations = BTreeMap<(String, String), i64>;

struct Watch {
    stop: CancellationToken,
    live: Arc<AtomicBool>,
    applied: mpsc::UnboundedSender<(Uuid, Generations)>,
}

/// The running watches of this replica, one per cluster.
#[derive(Clone)]
pub struct Watches {
    pool: PgPool,
    clients: Clients,
    running: Arc<Mutex<HashMap<String, Watch>>>,
}

impl Watches {
    /// None running yet.
    pub fn new(pool: PgPool, clients: Clients) -> Self {
        Self {
            pool,
            clients,
            running: Arc::default(),
        }
    }

    /// Starts a watch for every Ready cluster that has none and stops those
    /// of clusters no longer Ready (or deregistered); each ends with `stop` too.
    ///
    /// # Errors
    /// The database fails (nothing changes).
    pub async fn follow(&self, stop: &CancellationToken) -> Result<()> {
        let ready: HashSet<String> = sqlx::query_scalar!("SELECT name FROM clusters WHERE condition = 'Ready'")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .collect();
        let mut running = self.running.lock().expect("not poisoned");
        running.retain(|name, w| {
            let keep = ready.contains(name) && !w.stop.is_cancelled();
            if !keep {
                tracing::info!(cluster = %name, "status watch stopped: the cluster is not Ready");
                w.stop.cancel();
            }
            keep
        });
        for name in ready {
            if running.contains_key(&name) {
                continue;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let w = Watch {
                stop: stop.child_token(),
                live: Arc::default(),
                applied: tx,
            };
            let task = ClusterWatch {
                pool: self.pool.clone(),
                clients: self.clients.clone(),
                cluster: name.clone(),
                live: w.live.clone(),
            };
            tokio::spawn(task.run(w.stop.clone(), rx));
            running.insert(name, w);
        }
        Ok(())
    }

    /// Stops every watch (the lease is lost, or shutdown).
    pub fn stop_all(&self) {
        let mut running = self.running.lock().expect("not poisoned");
        if !running.is_empty() {
            tracing::info!(watches = running.len(), "status watches stopped");
        }
        for (_, w) in running.drain() {
            w.stop.cancel();
        }
    }

    /// Whether `cluster`'s watch is live (its status need not be polled).
    pub fn live(&self, cluster: &str) -> bool {
        self.running
            .lock()
            .expect("not poisoned")
            .get(cluster)
            .is_some_and(|w| w.live.load(Ordering::Acquire))
    }

    /// The clusters whose watch is live.
    pub fn live_clusters(&self) -> Vec<String> {
        self.running
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|(_, w)| w.live.load(Ordering::Acquire))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Hands the watch of `cluster` the generations an apply of `binding`
    /// left, for it to record the target once it has seen them; `false`
    /// when no live watch takes it (the caller observes by polling).
    pub fn applied(&self, cluster: &str, binding: Uuid, generations: Generations) -> bool {
        let running = self.running.lock().expect("not poisoned");
        match running.get(cluster) {
            Some(w) if w.live.load(Ordering::Acquire) => w.applied.send((binding, generations)).is_ok(),
            _ => false,
        }
    }
}

/// The watched kinds: the workloads of [`KINDS`].
fn watched() -> Vec<&'static Kind> {
    KINDS.iter().filter(|k| status::observed(k)).collect()
}

/// One cluster's watch task.
struct ClusterWatch {
    pool: PgPool,
    clients: Clients,
    cluster: String,
    live: Arc<AtomicBool>,
}

/// A watch's local copy of the cluster's workloads, one store per kind.
struct Stores(HashMap<&'static str, Writer<DynamicObject>>);

impl ClusterWatch {
    async fn run(self, stop: CancellationToken, mut applied: mpsc::UnboundedReceiver<(Uuid, Generations)>) {
        let mut generations: HashMap<Uuid, Generations> = HashMap::new();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let outcome = tokio::select! {
                _ = stop.cancelled() => break,
                r = self.session(&mut applied, &mut generations) => r,
            };
            let was_live = self.live.swap(false, Ordering::AcqRel);
            if was_live {
                backoff = FIRST_BACKOFF;
            }
            match outcome {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(cluster = %self.cluster, error = %e, retry_in = ?backoff, "status watch failed; polling until it runs again");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        self.live.store(false, Ordering::Release);
    }

    /// Lists and watches until an error; `Ok` only when the propagator
    /// dropped its side (nothing will ask again).
    async fn session(
        &self,
        applied: &mut mpsc::UnboundedReceiver<(Uuid, Generations)>,
        generations: &mut HashMap<Uuid, Generations>,
    ) -> Result<()> {
        let client = self.clients.by_name(&self.cluster).await?;
        let kinds = watched();
        let selector = format!("{OWNED_LABEL}={MANAGED_BY}");
        let mut stores = Stores(kinds.iter().map(|k| (k.kind, Writer::new(k.api_resource()))).collect());
        let streams = kinds.iter().map(|k| {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &k.api_resource());
            let config = watcher::Config::default()
                .labels(&selector)
                .timeout(WATCH_TIMEOUT_SECONDS);
            watcher::watcher(api, config).map(move |e| (k.kind, e)).boxed()
        });
        let mut events = futures::stream::select_all(streams);
        let mut listed: HashSet<&'static str> = HashSet::new();
        let fail = |e: String| Error::Unavailable(format!("cluster {}: {e}", self.cluster));
        loop {
            tokio::select! {
                next = applied.recv() => {
                    let Some((binding, g)) = next else { return Ok(()) };
                    generations.insert(binding, g);
                    if listed.len() == kinds.len() {
                        self.record(&stores, generations, binding).await?;
                    }
                }
                next = events.next() => {
                    let Some((kind, event)) = next else { return Err(fail("the watch ended".into())) };
                    let event = event.map_err(|e| fail(e.to_string()))?;
                    stores.0.get_mut(kind).expect("a store per kind").apply_watcher_event(&event);
                    match event {
                        watcher::Event::Init => {
                            listed.remove(kind);
                            self.live.store(false, Ordering::Release);
                        }
                        watcher::Event::InitApply(_) => {}
                        watcher::Event::InitDone => {
                            listed.insert(kind);
                            if listed.len() == kinds.len() {
                                self.record_all(&stores, generations).await?;
                                self.live.store(true, Ordering::Release);
                                tracing::info!(cluster = %self.cluster, "status watch live");
                            }
                        }
                        watcher::Event::Apply(o) | watcher::Event::Delete(o) => {
                            let binding = o.metadata.labels.as_ref().and_then(|l| l.get(BINDING_LABEL)).and_then(|b| Uuid::parse_str(b).ok());
                            if let Some(binding) = binding && listed.len() == kinds.len() {
                                self.record(&stores, generations, binding).await?;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Records every (not removing) target in the cluster.
    async fn record_all(&self, stores: &Stores, generations: &mut HashMap<Uuid, Generations>) -> Result<()> {
        let bindings = sqlx::query_scalar!(
            "SELECT binding_id FROM binding_targets WHERE cluster = $1 AND NOT removing",
            &self.cluster,
        )
        .fetch_all(&self.pool)
        .await?;
        generations.retain(|b, _| bindings.contains(b));
        for b in bindings {
            self.record(stores, generations, b).await?;
        }
        Ok(())
    }

    /// Records `binding`'s target from the stores, if it has one here.
    async fn record(&self, stores: &Stores, generations: &mut HashMap<Uuid, Generations>, binding: Uuid) -> Result<()> {
        let target = sqlx::query!(
            "SELECT b.objects, t.namespace FROM binding_targets t JOIN bindings b ON b.id = t.binding_id
             WHERE t.binding_id = $1 AND t.cluster = $2 AND NOT t.removing",
            binding,
            &self.cluster,
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(target) = target else {
            generations.remove(&binding);
            return Ok(());
        };
        let namespace = target.namespace;
        let objects = binding::parse_objects(&target.objects.to_string())?;
        let wanted = generations.get(&binding);
        let mut seen_all = true;
        let workloads = objects
            .iter()
            .filter(|o| status::observed(o.kind))
            .map(|o| {
                let reader = stores.0[o.kind.kind].as_reader();
                let found = reader.get(&ObjectRef::new_with(&o.name, o.kind.api_resource()).within(&namespace));
                let mut w = status::observe(o, found.as_deref());
                let want = wanted.and_then(|g| g.get(&(o.kind.kind.to_string(), o.name.clone())));
                if let Some(want) = want
                    && found
                        .as_ref()
                        .and_then(|f| f.metadata.generation)
                        .is_none_or(|g| g < *want)
                {
                    // The apply's change has not reached this watch yet.
                    w.current = false;
                    seen_all = false;
                }
                w
            })
            .collect();
        if seen_all {
            generations.remove(&binding);
        }
        status::record(&self.pool, binding, &self.cluster, workloads).await
    }
}
