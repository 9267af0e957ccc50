//! Cluster health. The [`Monitor`] probes every registered cluster's
//! `/readyz` each period with a timeout, through a kube client built from the
//! stored credentials. A cluster is Ready on its first successful probe,
//! NotReady after `misses` failed probes in a row and Unknown after twice as
//! many. Each transition is stored with its reason, message and time and
//! announced (`federation.cluster.health_changed`) in the same transaction; a
//! data centre all of whose clusters lost contact is announced once
//! (`federation.datacentre.health_changed`, `lost`), and again when one comes
//! back. A cluster that comes back is rediscovered (version, nodes, capacity)
//! and its partitions and binding targets are resynced at once.
//!
//! Only the holder of the `health-monitor` lease probes; other replicas stand
//! by and take over when it expires. Every write checks the lease in the
//! same statement, so a deposed leader cannot overwrite its successor.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Node;
use kernel::Result;
use kernel::event::EventType;
use kernel::outbox::{self, Outbox};
use kernel::quantity::Quantity;
use kube::api::{Api, ListParams};
use paas_proto::v1 as pb;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::credentials::Clients;
use crate::fencing;
use crate::lease::{self, Lease};

/// `federation.cluster.health_changed`
pub const HEALTH_CHANGED: EventType = EventType::new("federation", "cluster", "health_changed");
/// `federation.datacentre.health_changed`
pub const DATA_CENTRE_HEALTH_CHANGED: EventType = EventType::new("federation", "datacentre", "health_changed");

/// How long one fencing call to a returning cluster may take at least
/// (the probe timeout is tuned for `/readyz`, a write may take longer).
const FENCING_CALL: Duration = Duration::from_secs(2);

/// A cluster's health status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The last probe succeeded.
    Ready,
    /// `misses` probes in a row failed.
    NotReady,
    /// Never probed, or silent for twice `misses` probes.
    Unknown,
}

impl Status {
    /// The stored and shown text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::NotReady => "NotReady",
            Self::Unknown => "Unknown",
        }
    }

    pub(crate) fn from_stored(s: &str) -> Self {
        match s {
            "Ready" => Self::Ready,
            "NotReady" => Self::NotReady,
            _ => Self::Unknown,
        }
    }
}

/// The condition shown with a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Ready, NotReady or Unknown.
    pub status: Status,
    /// Why, in one CamelCase word.
    pub reason: String,
    /// The detail (the last probe error).
    pub message: String,
    /// When it was last probed.
    pub last_probe_at: Option<DateTime<Utc>>,
    /// When the status last changed.
    pub last_transition_at: DateTime<Utc>,
}

/// What discovery found in a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Discovery {
    /// `gitVersion` from `/version`.
    pub kubernetes_version: String,
    /// Number of nodes.
    pub nodes: i32,
    /// Node capacity summed per resource.
    pub capacity: BTreeMap<String, String>,
    /// Node allocatable summed per resource.
    pub allocatable: BTreeMap<String, String>,
    /// When, if ever.
    pub discovered_at: Option<DateTime<Utc>>,
}

/// The status a cluster should have after a probe, given the failed probes
/// in a row counting this one (0: it succeeded); `None` while it keeps its
/// current status (fewer misses than the threshold).
pub fn next_status(current: Status, misses: u32, threshold: u32) -> Option<Status> {
    let target = if misses == 0 {
        Status::Ready
    } else if misses >= threshold.saturating_mul(2) {
        Status::Unknown
    } else if misses >= threshold {
        Status::NotReady
    } else {
        return None;
    };
    (target != current).then_some(target)
}

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFailure {
    /// CamelCase reason.
    pub reason: &'static str,
    /// Detail.
    pub message: String,
}

/// Probes `/readyz` once within `timeout`.
///
/// # Errors
/// Why the cluster is not ready.
pub async fn probe(client: &kube::Client, timeout: Duration) -> Result<(), ProbeFailure> {
    let request = http::Request::get("/readyz").body(Vec::new()).expect("a valid request");
    match tokio::time::timeout(timeout, client.request_text(request)).await {
        Err(_) => Err(ProbeFailure {
            reason: "ProbeTimeout",
            message: format!("/readyz did not answer within {timeout:?}"),
        }),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(kube::Error::Api(s))) => Err(ProbeFailure {
            reason: "ReadyzFailed",
            message: format!("/readyz answered {}: {}", s.code, s.message),
        }),
        Ok(Err(e)) => Err(ProbeFailure {
            reason: "Unreachable",
            message: e.to_string(),
        }),
    }
}

/// Reads the version and sums the nodes' capacity and allocatable.
///
/// # Errors
/// The cluster does not answer.
pub async fn discover(client: &kube::Client) -> std::result::Result<Discovery, kube::Error> {
    let version = client.apiserver_version().await?;
    let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await?;
    let sum =
        |pick: fn(&Node) -> Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
            let mut total: BTreeMap<String, Quantity> = BTreeMap::new();
            for node in &nodes.items {
                for (resource, q) in pick(node).into_iter().flatten() {
                    // A quantity the platform cannot read (beyond its exact range) is left out.
                    let Ok(q) = Quantity::parse(resource, &q.0) else {
                        continue;
                    };
                    // Starting from the first node's value keeps its format (48Gi, not bytes).
                    match total.get_mut(resource) {
                        None => {
                            total.insert(resource.clone(), q);
                        }
                        Some(sum) => {
                            if let Ok(added) = sum.checked_add(q, resource) {
                                *sum = added;
                            }
                        }
                    }
                }
            }
            total
                .into_iter()
                .map(|(k, v)| (k, v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
    Ok(Discovery {
        kubernetes_version: version.git_version,
        nodes: nodes.items.len() as i32,
        capacity: sum(|n| n.status.as_ref()?.capacity.as_ref()),
        allocatable: sum(|n| n.status.as_ref()?.allocatable.as_ref()),
        discovered_at: Some(Utc::now()),
    })
}

/// How the monitor probes.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSettings {
    /// Between rounds.
    pub period: Duration,
    /// Per probe.
    pub timeout: Duration,
    /// Misses before NotReady (twice: Unknown).
    pub misses: u32,
    /// Leadership without renewal.
    pub lease_ttl: Duration,
}

impl From<&crate::Settings> for ProbeSettings {
    fn from(s: &crate::Settings) -> Self {
        Self {
            period: s.probe_period,
            timeout: s.probe_timeout,
            misses: s.probe_misses,
            lease_ttl: s.lease_ttl,
        }
    }
}

/// A cluster as a probe round reads it.
struct Target {
    id: Uuid,
    name: String,
    api_endpoint: String,
    data_centre: String,
    credentials: Option<Vec<u8>>,
    condition: String,
    misses: i32,
    needs_discovery: bool,
}

/// The health monitor (one per replica; only the lease holder probes).
#[derive(Clone)]
pub struct Monitor {
    outbox: Outbox,
    clients: Clients,
    settings: ProbeSettings,
    lease: Lease,
    probes: Arc<AtomicU64>,
}

impl Monitor {
    /// A monitor over the registry in `outbox`'s schema.
    pub fn new(outbox: Outbox, clients: Clients, settings: ProbeSettings) -> Self {
        let lease = Lease::new(
            outbox.pool().clone(),
            lease::HEALTH_MONITOR,
            lease::holder_id("health"),
            settings.lease_ttl,
        );
        Self {
            outbox,
            clients,
            settings,
            lease,
            probes: Arc::default(),
        }
    }

    /// Counts the probes this monitor has sent (for tests and metrics).
    pub fn probes(&self) -> Arc<AtomicU64> {
        self.probes.clone()
    }

    /// Counts the monitor's completed periods, standing by or probing
    /// ([`Lease::turns`]).
    pub fn turns(&self) -> Arc<AtomicU64> {
        self.lease.turns()
    }

    /// This monitor's lease identity.
    pub fn holder(&self) -> &str {
        self.lease.holder()
    }

    fn pool(&self) -> &PgPool {
        self.outbox.pool()
    }

    /// Probes each period while it holds the lease, until `stop`; then
    /// releases the lease so a standby takes over at once.
    ///
    /// # Errors
    /// Never while running; returns `Ok` at shutdown.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        let mut tick = tokio::time::interval(self.settings.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leading = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            match self.lease.acquire().await {
                Ok(true) => {
                    if !leading {
                        tracing::info!(holder = self.lease.holder(), "health monitor leads");
                        leading = true;
                    }
                    let round = self.probe_all();
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        r = round => if let Err(e) = r { tracing::warn!(error = %e, "health round failed"); },
                    }
                }
                Ok(false) => {
                    if leading {
                        tracing::warn!(
                            holder = self.lease.holder(),
                            "health monitor lost its lease; standing by"
                        );
                    }
                    leading = false;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "health monitor lease not renewed; standing by");
                    leading = false;
                }
            }
            self.lease.turned();
        }
        if leading && let Err(e) = self.lease.release().await {
            tracing::warn!(error = %e, "health monitor lease not released; it will expire");
        }
        Ok(())
    }

    /// One round: probes every cluster concurrently and records the outcome.
    ///
    /// # Errors
    /// The database fails.
    pub async fn probe_all(&self) -> Result<()> {
        let targets = sqlx::query_as!(
            Target,
            r#"SELECT id, name, api_endpoint, data_centre, credentials, condition, misses,
                      (discovered_at IS NULL AND condition = 'Ready') AS "needs_discovery!"
               FROM clusters"#,
        )
        .fetch_all(self.pool())
        .await?;
        self.clients.retain(|name| targets.iter().any(|t| t.name == name));
        let outcomes = futures::future::join_all(targets.iter().map(|t| async move {
            self.probes.fetch_add(1, Ordering::Relaxed);
            let client = match self
                .clients
                .get(&t.name, &t.api_endpoint, t.credentials.as_deref())
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    return (
                        Err(ProbeFailure {
                            reason: "CredentialsUnusable",
                            message: e.to_string(),
                        }),
                        None,
                    );
                }
            };
            let outcome = probe(&client, self.settings.timeout).await;
            (outcome, Some(client))
        }))
        .await;
        let ids: Vec<Uuid> = targets.iter().map(|t| t.id).collect();
        let misses: Vec<i32> = targets
            .iter()
            .zip(&outcomes)
            .map(|(t, (o, _))| if o.is_ok() { 0 } else { t.misses.saturating_add(1) })
            .collect();
        sqlx::query!(
            "UPDATE clusters c SET last_probe_at = now(), misses = u.misses,
                    last_contact_at = CASE WHEN u.misses = 0 THEN now() ELSE c.last_contact_at END
             FROM UNNEST($1::uuid[], $2::int[]) AS u(id, misses)
             WHERE c.id = u.id
               AND EXISTS (SELECT 1 FROM leases WHERE name = $3 AND holder = $4 AND expires_at > now())",
            &ids,
            &misses,
            self.lease.name(),
            self.lease.holder(),
        )
        .execute(self.pool())
        .await?;
        for ((t, (outcome, client)), misses) in targets.iter().zip(outcomes).zip(misses) {
            let current = Status::from_stored(&t.condition);
            let mut transition = next_status(current, misses as u32, self.settings.misses);
            let mut fenced = String::new();
            if let (Some(Status::Ready), Some(client)) = (transition, &client) {
                // The first successful contact after an absence: a singleton
                // copy moved away meanwhile is stopped before Ready.
                match self.fence_returning(t, client).await? {
                    Some(message) => fenced = message,
                    None => transition = None,
                }
            }
            if let Some(to) = transition {
                let (reason, message) = match (&outcome, to) {
                    (Ok(()), _) => ("ProbeSucceeded".to_string(), fenced),
                    (Err(f), Status::Unknown) => (
                        "NoContact".to_string(),
                        format!("{misses} probes in a row failed; last: {}", f.message),
                    ),
                    (Err(f), _) => (
                        f.reason.to_string(),
                        format!("{misses} probes in a row failed; last: {}", f.message),
                    ),
                };
                self.transition(t, current, to, &reason, &message).await?;
            }
            let recovered = transition == Some(Status::Ready);
            if let (Ok(()), Some(client)) = (&outcome, client)
                && (recovered || t.needs_discovery)
            {
                // Bounded by the period, so one slow cluster cannot stall the rounds.
                match tokio::time::timeout(self.settings.period, discover(&client)).await {
                    Ok(Ok(d)) => self.store_discovery(t.id, &d).await?,
                    Ok(Err(e)) => tracing::warn!(cluster = %t.name, error = %e, "discovery failed; retried next round"),
                    Err(_) => tracing::warn!(cluster = %t.name, "discovery timed out; retried next round"),
                }
            }
        }
        Ok(())
    }

    /// Fences the stale singleton copies of a cluster that answers again
    /// ([`crate::fencing`]): `Some` (what was stopped, for the Ready
    /// condition's message) once none of their pods remain, `None` while
    /// some do or the cluster does not answer the fencing calls; then it
    /// stays out of Ready with the reason [`fencing::FENCING_REASON`].
    async fn fence_returning(&self, t: &Target, client: &kube::Client) -> Result<Option<String>> {
        let copies = fencing::stale_copies(self.pool(), &t.name).await?;
        if copies.is_empty() {
            return Ok(Some(String::new()));
        }
        let outcome = fencing::stop_stale(client, &copies, self.settings.timeout.max(FENCING_CALL)).await;
        let waiting = match outcome {
            Ok(r) if r.confirmed() => {
                tracing::info!(cluster = %t.name, copies = copies.len(), "stale singleton copies stopped before Ready");
                return Ok(Some(format!(
                    "{} stale singleton cop{} stopped before Ready",
                    copies.len(),
                    if copies.len() == 1 { "y" } else { "ies" }
                )));
            }
            Ok(r) => format!(
                "answers again; waiting for {} pod(s) of {} stale singleton cop{} to stop before Ready",
                r.pods_left,
                copies.len(),
                if copies.len() == 1 { "y" } else { "ies" }
            ),
            Err(e) => format!("answers again; stopping its stale singleton copies failed: {e}"),
        };
        tracing::info!(cluster = %t.name, message = %waiting, "cluster fenced before Ready");
        sqlx::query!(
            "UPDATE clusters SET condition_reason = $2, condition_message = $3
             WHERE id = $1 AND condition <> 'Ready'
               AND EXISTS (SELECT 1 FROM leases WHERE name = $4 AND holder = $5 AND expires_at > now())",
            t.id,
            fencing::FENCING_REASON,
            &waiting,
            self.lease.name(),
            self.lease.holder(),
        )
        .execute(self.pool())
        .await?;
        Ok(None)
    }

    async fn transition(&self, t: &Target, from: Status, to: Status, reason: &str, message: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query!(
            "UPDATE clusters SET condition = $2, condition_reason = $3, condition_message = $4,
                    last_transition_at = now(),
                    not_ready_since = CASE WHEN $2 = 'Ready' THEN NULL WHEN condition = 'Ready' THEN now()
                                           ELSE not_ready_since END
             WHERE id = $1
               AND EXISTS (SELECT 1 FROM leases WHERE name = $5 AND holder = $6 AND expires_at > now())",
            t.id,
            to.as_str(),
            reason,
            message,
            self.lease.name(),
            self.lease.holder(),
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            // Deregistered meanwhile, or the lease passed to another replica.
            return Ok(());
        }
        tracing::info!(cluster = %t.name, from = from.as_str(), to = to.as_str(), reason, "cluster health changed");
        let event = pb::ClusterHealthChanged {
            cluster_id: t.id.to_string(),
            name: t.name.clone(),
            data_centre: t.data_centre.clone(),
            from: from.as_str().into(),
            to: to.as_str().into(),
            reason: reason.into(),
            message: message.into(),
        };
        outbox::record(&mut tx, HEALTH_CHANGED, None, &event).await?;
        if to == Status::Ready {
            // Whatever was written while it was away, or edited meanwhile, is put back now.
            sqlx::query!(
                "UPDATE partitions SET synced_at = '-infinity', next_attempt_at = now(), failures = 0
                 WHERE cluster = $1",
                &t.name,
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query!(
                "UPDATE binding_targets SET synced_at = '-infinity', next_attempt_at = now(), failures = 0
                 WHERE cluster = $1",
                &t.name,
            )
            .execute(&mut *tx)
            .await?;
        }
        self.data_centre(&mut tx, &t.data_centre).await?;
        self.outbox.commit(tx).await
    }

    /// Announces a data centre's loss of contact with all of its clusters,
    /// or its return, when that changes.
    async fn data_centre(&self, tx: &mut sqlx::PgConnection, name: &str) -> Result<()> {
        let misses = self.settings.misses as i32;
        let now = sqlx::query!(
            r#"SELECT bool_and(condition <> 'Ready' AND misses >= $2) AS lost,
                      coalesce(array_agg(name ORDER BY name), '{}') AS "clusters!"
               FROM clusters WHERE data_centre = $1"#,
            name,
            misses,
        )
        .fetch_one(&mut *tx)
        .await?;
        // No cluster in it (any more): not lost.
        let lost = now.lost.unwrap_or(false);
        let clusters = now.clusters;
        let was = sqlx::query_scalar!("SELECT lost FROM data_centres WHERE name = $1 FOR UPDATE", name)
            .fetch_optional(&mut *tx)
            .await?;
        if was.unwrap_or(false) == lost {
            if was.is_none() {
                sqlx::query!(
                    "INSERT INTO data_centres (name, lost) VALUES ($1, false) ON CONFLICT DO NOTHING",
                    name,
                )
                .execute(&mut *tx)
                .await?;
            }
            return Ok(());
        }
        sqlx::query!(
            "INSERT INTO data_centres (name, lost) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET lost = $2, changed_at = now()",
            name,
            lost,
        )
        .execute(&mut *tx)
        .await?;
        if lost {
            tracing::warn!(data_centre = name, "data centre lost contact with every cluster");
        } else {
            tracing::info!(data_centre = name, "data centre back in contact");
        }
        outbox::record(
            tx,
            DATA_CENTRE_HEALTH_CHANGED,
            None,
            &pb::DataCentreHealthChanged {
                data_centre: name.into(),
                lost,
                clusters,
            },
        )
        .await?;
        Ok(())
    }

    async fn store_discovery(&self, id: Uuid, d: &Discovery) -> Result<()> {
        sqlx::query!(
            "UPDATE clusters SET kubernetes_version = $2, node_count = $3, capacity = $4, allocatable = $5,
                    discovered_at = now()
             WHERE id = $1",
            id,
            &d.kubernetes_version,
            d.nodes,
            sqlx::types::Json(&d.capacity) as _,
            sqlx::types::Json(&d.allocatable) as _,
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use Status::*;

    use super::*;

    #[test]
    fn ready_after_one_success_notready_after_n_misses_unknown_after_twice_n() {
        assert_eq!(next_status(Unknown, 0, 3), Some(Ready));
        assert_eq!(next_status(Ready, 0, 3), None);
        assert_eq!(next_status(Ready, 1, 3), None);
        assert_eq!(next_status(Ready, 2, 3), None);
        assert_eq!(next_status(Ready, 3, 3), Some(NotReady));
        assert_eq!(next_status(NotReady, 4, 3), None);
        assert_eq!(next_status(NotReady, 6, 3), Some(Unknown));
        assert_eq!(next_status(Unknown, 7, 3), None);
        assert_eq!(next_status(Unknown, 0, 3), Some(Ready));
        assert_eq!(next_status(NotReady, 0, 3), Some(Ready));
    }

    #[test]
    fn a_cluster_never_reached_goes_from_unknown_to_notready_to_unknown() {
        assert_eq!(next_status(Unknown, 2, 3), None);
        assert_eq!(next_status(Unknown, 3, 3), Some(NotReady));
        assert_eq!(next_status(NotReady, 6, 3), Some(Unknown));
    }
}
