//! A federation schema in a fresh database, kubesim clusters registered in
//! it, and settings with periods short enough for tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use federation::credentials::Clients;
use federation::health::{Monitor, ProbeSettings};
use federation::partition::{ReconcileSettings, Reconciler};
use federation::propagation::Propagator;
use federation::settings::SecretKey;
use kernel::caller::Caller;
use kernel::outbox::Outbox;
use kernel::testkit::{TestPlatform, eventually};
use kubesim::{Cluster, ClusterConfig, RunningCluster};
use paas_proto::v1 as pb;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Probes every 100 ms with a 400 ms timeout (a loaded CI machine must not
/// turn a healthy answer into a timeout; Slow faults are 1 s); 3 misses make
/// NotReady. The lease outlives a round that waits for a timeout.
pub const PROBES: ProbeSettings = ProbeSettings {
    period: Duration::from_millis(100),
    timeout: Duration::from_millis(400),
    misses: 3,
    lease_ttl: Duration::from_millis(1500),
};

pub struct Fed {
    pub outbox: Outbox,
    pub key: SecretKey,
    pub clients: Clients,
}

impl Fed {
    pub async fn start() -> Self {
        let t = TestPlatform::new().await;
        let pool = kernel::db::connect(&t.settings, federation::NAME).await.unwrap();
        kernel::db::migrate(&pool, &federation::MIGRATIONS).await.unwrap();
        let key = SecretKey::new(rand::random());
        Self {
            outbox: Outbox::new(pool.clone()),
            clients: Clients::new(pool, key.clone()),
            key,
        }
    }

    pub fn pool(&self) -> &PgPool {
        self.outbox.pool()
    }

    /// Registers `cluster` in data centre `dc` by endpoint, with `token` if not empty.
    pub async fn register(&self, cluster: &RunningCluster, dc: &str, token: &str) -> federation::cluster::Cluster {
        self.register_request(pb::RegisterClusterRequest {
            name: cluster.name().to_string(),
            api_endpoint: cluster.url(),
            data_centre: dc.into(),
            token: token.into(),
            ..Default::default()
        })
        .await
    }

    pub async fn register_request(&self, r: pb::RegisterClusterRequest) -> federation::cluster::Cluster {
        let new = federation::cluster::NewCluster::parse(r).unwrap();
        federation::cluster::register(&self.outbox, &self.key, &Caller::platform_admin("test"), new)
            .await
            .unwrap()
    }

    pub fn monitor(&self, settings: ProbeSettings) -> Monitor {
        Monitor::new(self.outbox.clone(), self.clients.clone(), settings)
    }

    pub fn reconciler(&self, resync: Duration) -> Reconciler {
        Reconciler::new(
            self.pool().clone(),
            self.clients.clone(),
            ReconcileSettings {
                poll: Duration::from_millis(50),
                resync,
                lease_ttl: Duration::from_secs(2),
            },
        )
    }

    /// The condition (status, reason) of a cluster.
    pub async fn condition(&self, name: &str) -> (String, String) {
        let c = sqlx::query!("SELECT condition, condition_reason FROM clusters WHERE name = $1", name)
            .fetch_one(self.pool())
            .await
            .unwrap();
        (c.condition, c.condition_reason)
    }

    /// Waits until cluster `name` has status `status`; returns its reason.
    pub async fn until_status(&self, name: &str, status: &str) -> String {
        eventually(Duration::from_secs(15), &format!("{name} {status}"), || async {
            let (s, reason) = self.condition(name).await;
            (s == status).then_some(reason)
        })
        .await
    }

    /// Events of `subject` in the outbox, decoded, oldest first.
    pub async fn events<M: prost::Message + Default>(&self, subject: &str) -> Vec<M> {
        let rows = sqlx::query_scalar!("SELECT envelope FROM outbox WHERE subject = $1 ORDER BY seq", subject)
            .fetch_all(self.pool())
            .await
            .unwrap();
        rows.iter()
            .map(|e| {
                let envelope = <pb::EventEnvelope as prost::Message>::decode(e.as_slice()).unwrap();
                M::decode(envelope.payload.as_slice()).unwrap()
            })
            .collect()
    }
}

/// A kubesim cluster named `name`.
pub async fn cluster(name: &str) -> RunningCluster {
    Cluster::start(ClusterConfig::named(name)).await.unwrap()
}

/// A task running until its token is cancelled (or the handle aborted),
/// with the count of the turns it has completed.
pub struct Running {
    pub stop: CancellationToken,
    pub task: JoinHandle<kernel::Result<()>>,
    pub turns: Arc<AtomicU64>,
}

impl Running {
    pub fn monitor(m: Monitor) -> Self {
        let stop = CancellationToken::new();
        Self {
            turns: m.turns(),
            task: tokio::spawn(m.run(stop.clone())),
            stop,
        }
    }

    pub fn reconciler(r: Reconciler) -> Self {
        let stop = CancellationToken::new();
        Self {
            turns: r.turns(),
            task: tokio::spawn(r.run(stop.clone())),
            stop,
        }
    }

    pub fn failover(r: federation::failover::Reconciler) -> Self {
        let stop = CancellationToken::new();
        Self {
            turns: r.turns(),
            task: tokio::spawn(r.run(stop.clone())),
            stop,
        }
    }

    pub fn propagator(p: Propagator) -> Self {
        let stop = CancellationToken::new();
        Self {
            turns: p.turns(),
            task: tokio::spawn(p.run(stop.clone())),
            stop,
        }
    }

    /// Waits until it has completed two more turns than now: the second
    /// started after this call, so it has looked at everything changed
    /// before it (what is checked next is then not a race).
    pub async fn looked(&self, what: &str) {
        let from = self.turns.load(Ordering::Acquire);
        eventually(Duration::from_secs(15), what, || async {
            (self.turns.load(Ordering::Acquire) >= from + 2).then_some(())
        })
        .await;
    }

    /// Stops it as at shutdown and waits.
    pub async fn stop(mut self) {
        self.stop.cancel();
        (&mut self.task).await.unwrap().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
