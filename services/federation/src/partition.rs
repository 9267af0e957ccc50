//! Partitions in member clusters. Tenancy's `tenancy.partition.*` events say
//! what a partition should be; [`PartitionEvents`] records that (in the inbox
//! transaction, nothing external) and [`Reconciler`] brings each cluster to
//! match: the namespace, its ResourceQuota, LimitRange and default
//! NetworkPolicy, its image pull secrets and the `default` ServiceAccount
//! listing them ([`crate::pull_secret`]), written with server-side apply as
//! `paas-federation`, or the namespace deleted. It is level-triggered: whatever is behind is retried
//! with backoff until it converges, so a dead cluster delays only its own
//! partitions and a restart loses nothing. Converged partitions are
//! re-applied every resync period (and at once when their cluster comes back
//! from NotReady), which repairs drift: an object edited or deleted in the
//! member cluster is put back. Partitions of a cluster the health monitor
//! has lost contact with wait for its recovery, so a dead cluster costs the
//! others no timeouts. Only the holder of the `partition-reconciler` lease
//! reconciles.

use std::collections::BTreeMap;
use std::time::Duration;

use kernel::backoff::Backoff;
use kernel::caller::{Caller, CallerKey};
use kernel::event::Event;
use kernel::grpc::Outgoing;
use kernel::inbox::Handler;
use kernel::{Error, Result};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use paas_proto::v1 as pb;
use paas_proto::v1::tenancy_service_client::TenancyServiceClient;
use prost::Message;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::credentials::Clients;
use crate::lease::{self, Lease};

/// The field manager of everything federation writes into member clusters.
pub const FIELD_MANAGER: &str = "paas-federation";
/// Label on every object federation owns.
pub const OWNED_LABEL: &str = "paas.io/managed-by";
/// The longest wait before retrying a cluster that failed.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Records tenancy's partition events as desired state.
pub struct PartitionEvents;

impl Handler for PartitionEvents {
    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<()> {
        let deleted = match event.kind() {
            "tenancy.partition.created" | "tenancy.partition.updated" => false,
            "tenancy.partition.deleted" => true,
            _ => return Ok(()),
        };
        let p: pb::PartitionChanged = event.payload()?;
        let id = kernel::id::parse_id("partition_id", &p.partition_id)?;
        let tenant = kernel::id::parse_id("tenant_id", &p.tenant_id)?;
        sqlx::query!(
            "INSERT INTO partitions (partition_id, tenant_id, cluster, namespace, desired, deleted)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (partition_id) DO UPDATE SET
                 desired = EXCLUDED.desired, deleted = partitions.deleted OR EXCLUDED.deleted,
                 generation = partitions.generation + 1, next_attempt_at = now(), updated_at = now()",
            id,
            tenant,
            &p.cluster,
            &p.namespace,
            p.encode_to_vec(),
            deleted,
        )
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// The Kubernetes objects of a partition, as server-side apply bodies.
pub fn objects(p: &pb::PartitionChanged) -> Vec<(&'static str, Value)> {
    let labels = json!({ OWNED_LABEL: "paas", "paas.io/tenant": p.tenant_id, "paas.io/partition": p.partition_id });
    let mut objects = vec![(
        "namespace",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": p.namespace, "labels": labels}}),
    )];
    if !p.hard.is_empty() {
        objects.push((
            "resourcequota",
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "paas-quota", "namespace": p.namespace, "labels": labels},
                   "spec": {"hard": p.hard}}),
        ));
    }
    if let Ok(range) = serde_json::from_str::<Value>(&p.limit_range_json) {
        let mut limits = Vec::new();
        for (kind, item) in [("Container", &range["container"]), ("Pod", &range["pod"])] {
            if let Some(fields) = item.as_object().filter(|f| !f.is_empty()) {
                let mut limit = serde_json::Map::from_iter([("type".to_string(), json!(kind))]);
                limit.extend(fields.clone());
                limits.push(Value::Object(limit));
            }
        }
        if !limits.is_empty() {
            objects.push((
                "limitrange",
                json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "paas-limits", "namespace": p.namespace, "labels": labels},
                       "spec": {"limits": limits}}),
            ));
        }
    }
    let (types, ingress, egress) = match p.network_policy.as_str() {
        "allow-all-ingress" => (vec!["Ingress"], Some(json!([{}])), None),
        "deny-all-egress" => (vec!["Egress"], None, Some(json!([]))),
        "allow-all-egress" => (vec!["Egress"], None, Some(json!([{}]))),
        "deny-all" => (vec!["Ingress", "Egress"], Some(json!([])), Some(json!([]))),
        _ => (vec!["Ingress"], Some(json!([])), None),
    };
    let mut spec = json!({"podSelector": {}, "policyTypes": types});
    if let Some(i) = ingress {
        spec["ingress"] = i;
    }
    if let Some(e) = egress {
        spec["egress"] = e;
    }
    objects.push((
        "networkpolicy",
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": format!("paas-{}", p.network_policy), "namespace": p.namespace, "labels": labels}, "spec": spec}),
    ));
    objects
}

/// A partition the reconciler is to apply.
struct Pending {
    partition_id: Uuid,
    cluster: String,
    namespace: String,
    desired: Vec<u8>,
    deleted: bool,
    generation: i64,
    failures: i32,
}

/// Retrying a cluster that failed: 1 s doubling, at most [`MAX_BACKOFF`],
/// jittered so clusters that failed together do not retry together. The
/// propagator uses it too.
pub(crate) const RETRY: Backoff = Backoff::new(Duration::from_secs(1), MAX_BACKOFF);

/// Wait after the `failures`-th failure in a row (a count read from the database).
pub(crate) fn retry_delay(failures: i32) -> Duration {
    RETRY.delay(u32::try_from(failures).unwrap_or(0))
}

/// How the reconciler paces itself.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileSettings {
    /// How often it looks for due work.
    pub poll: Duration,
    /// How often a converged partition is re-applied (drift repair).
    pub resync: Duration,
    /// Leadership without renewal.
    pub lease_ttl: Duration,
}

impl From<&crate::Settings> for ReconcileSettings {
    fn from(s: &crate::Settings) -> Self {
        Self {
            poll: s.reconcile_poll,
            resync: s.resync_period,
            lease_ttl: s.lease_ttl,
        }
    }
}

/// Reports what a partition's ResourceQuota says is used (`status.used`)
/// to tenancy, as federation itself.
#[derive(Clone)]
pub struct UsageReporter {
    channel: Channel,
    key: CallerKey,
}

impl UsageReporter {
    /// Reports over `channel` to tenancy, signing calls with `key`.
    pub fn new(channel: Channel, key: CallerKey) -> Self {
        Self { channel, key }
    }

    /// Sends one observation.
    ///
    /// # Errors
    /// Tenancy refuses or is unreachable.
    pub async fn report(&self, partition: Uuid, used: BTreeMap<String, String>) -> Result<()> {
        // A fresh caller token per call: they are short-lived.
        let outgoing = Outgoing::new(&self.key, &Caller::service(crate::NAME));
        let mut client = TenancyServiceClient::with_interceptor(self.channel.clone(), outgoing);
        let request = pb::ReportUsageRequest {
            partition_id: partition.to_string(),
            observed: Some(pb::ResourceList {
                amounts: used.into_iter().collect(),
            }),
            observed_at: kernel::grpc::timestamp(chrono::Utc::now()),
        };
        client
            .report_usage(request)
            .await
            .map_err(|s| Error::Unavailable(format!("tenancy: {}", s.message())))?;
        Ok(())
    }
}

/// Brings member clusters to match the recorded partitions.
#[derive(Clone)]
pub struct Reconciler {
    pool: PgPool,
    clients: Clients,
    settings: ReconcileSettings,
    lease: Lease,
    usage: Option<UsageReporter>,
    registry: Option<crate::settings::Registry>,
}

impl Reconciler {
    /// A reconciler over the federation schema in `pool`.
    pub fn new(pool: PgPool, clients: Clients, settings: ReconcileSettings) -> Self {
        let lease = Lease::new(
            pool.clone(),
            lease::PARTITION_RECONCILER,
            lease::holder_id("partitions"),
            settings.lease_ttl,
        );
        Self {
            pool,
            clients,
            settings,
            lease,
            usage: None,
            registry: None,
        }
    }

    /// Also gives every partition a pull secret for the platform registry.
    pub fn with_platform_registry(mut self, registry: Option<crate::settings::Registry>) -> Self {
        self.registry = registry;
        self
    }

    /// Also reports each partition's observed quota usage after every apply.
    pub fn reporting_usage(mut self, usage: UsageReporter) -> Self {
        self.usage = Some(usage);
        self
    }

    /// Counts the reconciler's completed turns ([`Lease::turns`]).
    pub fn turns(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.lease.turns()
    }

    /// Reconciles while it holds the lease, until `stop`.
    ///
    /// # Errors
    /// Never while running; returns `Ok` at shutdown.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        self.lease
            .lead(
                "partition reconciliation",
                self.settings.poll,
                &stop,
                || self.reconcile_due(),
                || {},
            )
            .await;
        Ok(())
    }

    /// Applies every partition that is behind, or converged longer ago than
    /// the resync period, and due; returns how many converged.
    ///
    /// # Errors
    /// The database fails.
    pub async fn reconcile_due(&self) -> Result<usize> {
        let due = sqlx::query_as!(
            Pending,
            "SELECT partition_id, cluster, namespace, desired, deleted, generation, failures FROM partitions
             WHERE (applied_generation < generation OR synced_at <= now() - make_interval(secs => $1))
               AND next_attempt_at <= now()
               -- A cluster the monitor has lost contact with would only make
               -- everyone behind it wait for timeouts; its recovery resyncs it.
               AND NOT EXISTS (SELECT 1 FROM clusters c WHERE c.name = partitions.cluster
                               AND (c.condition = 'NotReady'
                                    OR (c.condition = 'Unknown' AND c.condition_reason = 'NoContact')))
             ORDER BY next_attempt_at LIMIT 100",
            self.settings.resync.as_secs_f64(),
        )
        .fetch_all(&self.pool)
        .await?;
        let mut converged = 0;
        for p in due {
            match self.apply(&p).await {
                Ok(()) => {
                    converged += 1;
                    if p.deleted {
                        sqlx::query!(
                            "DELETE FROM partitions WHERE partition_id = $1 AND generation = $2",
                            p.partition_id,
                            p.generation,
                        )
                        .execute(&self.pool)
                        .await?;
                    } else {
                        sqlx::query!(
                            "UPDATE partitions SET applied_generation = $2, last_error = NULL, failures = 0,
                                    synced_at = now()
                             WHERE partition_id = $1",
                            p.partition_id,
                            p.generation,
                        )
                        .execute(&self.pool)
                        .await?;
                    }
                }
                Err(e) => {
                    tracing::warn!(partition = %p.partition_id, cluster = %p.cluster, error = %e, "partition not applied; will retry");
                    sqlx::query!(
                        "UPDATE partitions SET last_error = $2, failures = failures + 1,
                                next_attempt_at = now() + make_interval(secs => $3)
                         WHERE partition_id = $1",
                        p.partition_id,
                        e.to_string(),
                        retry_delay(p.failures).as_secs_f64(),
                    )
                    .execute(&self.pool)
                    .await?;
                }
            }
        }
        Ok(converged)
    }

    async fn apply(&self, p: &Pending) -> Result<()> {
        let client = self.clients.by_name(&p.cluster).await?;
        let fail = |e: kube::Error| Error::Unavailable(format!("cluster {}: {e}", p.cluster));
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        if p.deleted {
            return match namespaces.delete(&p.namespace, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(fail(e)),
            };
        }
        let desired = pb::PartitionChanged::decode(p.desired.as_slice()).map_err(Error::internal)?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut used = None;
        for (kind, body) in objects(&desired) {
            let name = body["metadata"]["name"].as_str().unwrap_or_default().to_string();
            match kind {
                "namespace" => {
                    namespaces
                        .patch(&name, &params, &Patch::Apply(&body))
                        .await
                        .map_err(fail)?;
                }
                "resourcequota" => {
                    let api: Api<k8s_openapi::api::core::v1::ResourceQuota> =
                        Api::namespaced(client.clone(), &p.namespace);
                    let quota = api.patch(&name, &params, &Patch::Apply(&body)).await.map_err(fail)?;
                    used = quota.status.and_then(|s| s.used);
                }
                "limitrange" => {
                    let api: Api<k8s_openapi::api::core::v1::LimitRange> =
                        Api::namespaced(client.clone(), &p.namespace);
                    api.patch(&name, &params, &Patch::Apply(&body)).await.map_err(fail)?;
                }
                _ => {
                    let api: Api<k8s_openapi::api::networking::v1::NetworkPolicy> =
                        Api::namespaced(client.clone(), &p.namespace);
                    api.patch(&name, &params, &Patch::Apply(&body)).await.map_err(fail)?;
                }
            }
        }
        self.apply_pull_secrets(&client, p, &desired).await?;
        if let (Some(reporter), Some(used)) = (&self.usage, used) {
            let used: BTreeMap<String, String> = used
                .into_iter()
                .filter(|(r, _)| desired.hard.contains_key(r))
                .map(|(r, q)| (r, q.0))
                .collect();
            // The partition is applied either way; the next resync reports again.
            if let Err(e) = reporter.report(p.partition_id, used).await {
                tracing::warn!(partition = %p.partition_id, error = %e, "observed usage not reported");
            }
        }
        Ok(())
    }

    /// Writes the partition's pull secrets and the `default` ServiceAccount
    /// listing them, then deletes pull secrets federation wrote that are no
    /// longer wanted (a removed credential, the platform registry unset).
    async fn apply_pull_secrets(
        &self,
        client: &kube::Client,
        p: &Pending,
        desired: &pb::PartitionChanged,
    ) -> Result<()> {
        use k8s_openapi::api::core::v1::{Secret, ServiceAccount};

        use crate::pull_secret;
        let fail = |e: kube::Error| Error::Unavailable(format!("cluster {}: {e}", p.cluster));
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let labels = json!({ OWNED_LABEL: "paas", "paas.io/tenant": desired.tenant_id, "paas.io/partition": desired.partition_id });
        let mirror = sqlx::query_scalar!("SELECT registry_mirror FROM clusters WHERE name = $1", &p.cluster)
            .fetch_optional(&self.pool)
            .await?
            .filter(|m| !m.is_empty());
        let wanted = pull_secret::wanted(
            &self.pool,
            self.clients.key(),
            p.partition_id,
            &p.namespace,
            &labels,
            self.registry.as_ref(),
            mirror.as_deref(),
        )
        .await?;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &p.namespace);
        for (name, body) in &wanted {
            secrets.patch(name, &params, &Patch::Apply(body)).await.map_err(fail)?;
        }
        let names: Vec<String> = wanted.into_iter().map(|(n, _)| n).collect();
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &p.namespace);
        accounts
            .patch(
                pull_secret::SERVICE_ACCOUNT,
                &params,
                &Patch::Apply(pull_secret::service_account(&p.namespace, &names)),
            )
            .await
            .map_err(fail)?;
        // Every pull secret written here before, some perhaps no longer wanted.
        let selector = format!("{}=true,{OWNED_LABEL}=paas", pull_secret::PULL_SECRET_LABEL);
        let written = secrets
            .list(&kube::api::ListParams::default().labels(&selector))
            .await
            .map_err(fail)?;
        for s in written.items {
            let name = s.metadata.name.unwrap_or_default();
            if names.contains(&name) {
                continue;
            }
            match secrets.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(fail(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(policy: &str, hard: &[(&str, &str)], limit_range: &str) -> pb::PartitionChanged {
        pb::PartitionChanged {
            partition_id: "p".into(),
            tenant_id: "t".into(),
            namespace: "acme-web".into(),
            network_policy: policy.into(),
            hard: hard.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
            limit_range_json: limit_range.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_partition_becomes_namespace_quota_limits_and_policy() {
        let objs = objects(&partition(
            "deny-all",
            &[("requests.cpu", "2")],
            r#"{"container":{"default":{"cpu":"500m"}},"pod":{}}"#,
        ));
        let kinds: Vec<&str> = objs.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, ["namespace", "resourcequota", "limitrange", "networkpolicy"]);
        assert_eq!(objs[1].1["spec"]["hard"]["requests.cpu"], "2");
        assert_eq!(
            objs[2].1["spec"]["limits"],
            json!([{"type": "Container", "default": {"cpu": "500m"}}])
        );
        assert_eq!(objs[3].1["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(objs[0].1["metadata"]["labels"][OWNED_LABEL], "paas");
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(RETRY.ceiling(0), Duration::from_secs(1));
        assert_eq!(RETRY.ceiling(3), Duration::from_secs(8));
        assert_eq!(RETRY.ceiling(50), MAX_BACKOFF);
        assert!(retry_delay(3) <= Duration::from_secs(8) && retry_delay(3) >= Duration::from_secs(4));
        assert!(retry_delay(-1) <= Duration::from_secs(1));
    }

    #[test]
    fn without_limits_only_the_namespace_and_policy_are_written() {
        let objs = objects(&partition("allow-all-ingress", &[], "{}"));
        assert_eq!(
            objs.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            ["namespace", "networkpolicy"]
        );
        assert_eq!(objs[1].1["spec"]["ingress"], json!([{}]));
    }
}
