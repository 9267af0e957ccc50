//! Configs delivered into clusters (R6): every config an application's
//! template references (`config_refs`) becomes a ConfigMap (plain items) and
//! a Secret (secret items) beside the workload, in the same federation
//! binding, so placement, drift repair and failover carry them with it.
//!
//! **Why apps renders, not configs.** Apps knows the applications, which
//! config each workload uses and how (mounted, injected, reloaded), the
//! bindings and the release in flight; it already renders every object a
//! binding holds. Configs knows releases and content only; rendering there
//! would make configs call apps (for applications) and apps call configs
//! (for content) — a cycle. Here apps asks configs for content
//! ([`crate::configs::Configs::render`]) and configs calls no one: configs
//! starts first and apps' channel to it connects lazily.
//!
//! **Secrets.** Configs seals secret items for federation
//! ([`kernel::seal`]); apps stores and forwards only the sealed text, and
//! federation opens it in the body it writes into the cluster. No apps or
//! federation table holds a secret value in the clear.
//!
//! **Per cluster.** A config's content may differ in a cluster (the config
//! center's cluster level): the binding's objects carry the environment's
//! content and, per such cluster, a merge patch federation applies for that
//! cluster only (`paasClusterPatches`).
//!
//! **Gray releases in clusters.** While a gray release of the config is in
//! flight with cluster targets, configs lists them and renders each target's
//! cluster with the gray release standing in; that content rides as the
//! target's patch (`<cluster>` for a whole cluster, `<cluster>/<namespace>`
//! for one partition, applied after the cluster's own), so the targets run
//! the gray content and every other cluster keeps the full release. Promote
//! makes it the full release (one content, no patch); abandon drops the
//! targets (back to the full release). Either event makes the application
//! due like a release. Patches are recomputed at every render and carried by
//! every apply, so a redeploy, a drift repair or a failover keeps the pin —
//! unlike holding a binding target at an older revision, which pins the
//! whole object set and ends at the next apply.
//!
//! **Reload.** A workload names the configs its pods use in an annotation
//! ([`crate::render::CONFIGS_ANNOTATION`]); with `reload: restart` its pod
//! template carries `config.paas.io/<config>: <checksum>`, so a change of
//! content rolls the pods by the workload's update strategy (the
//! application's strategy wrote it); with `reload: none` only the
//! ConfigMap/Secret changes.
//!
//! **Convergence.** The content is persisted per application
//! (`config_deliveries`) and the driver's every apply places it
//! ([`attach`]). A config release (`configs.release.published` /
//! `rolled_back`) makes the tenant's applications due; the [`Reconciler`]
//! renders again, and once the application's release has settled applies
//! each service's objects with the new content, recording the checksums it
//! delivered. Due times, claims and what was delivered are rows, so a restart
//! of apps or configs mid-update resumes, and a periodic resync catches a
//! lost event: every cluster ends at the newest release.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kernel::event::Event;
use kernel::inbox::Handler;
use kernel::page::Page;
use kernel::{Error, Result};
use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::application::{Application, Applications};
use crate::configs::Configs;
use crate::render::{APP_LABEL, CONFIGS_ANNOTATION, SERVICE_LABEL};
use crate::spec;

/// The subject filter of the config center's release events.
pub const SUBJECTS: &str = "configs.release.*";
/// The subject filter of the config center's gray release steps.
pub const GRAY_SUBJECTS: &str = "configs.gray.*";
/// The notification channel on which applications made due are announced.
pub const CONFIGS_DUE: &str = "apps_configs_due";
/// Federation's field for per-cluster merge patches (its
/// `binding::CLUSTER_PATCHES`).
pub const CLUSTER_PATCHES: &str = "paasClusterPatches";
/// Prefix of the pod template annotation holding a config's checksum.
pub const CHECKSUM_PREFIX: &str = "config.paas.io/";

/// One config's content for one level: plain items in the clear, secret
/// items sealed, and the checksum of the whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// Item -> content.
    pub plain: BTreeMap<String, String>,
    /// Item -> sealed content.
    pub sealed: BTreeMap<String, String>,
    /// Keyed checksum of the content (changes exactly when it does).
    pub checksum: String,
    /// The releases it is made of, lowest first (`shop/test@4`, with
    /// ` (gray)` for a gray release in flight).
    #[serde(default)]
    pub releases: Vec<String>,
}

impl From<pb::ConfigDelivery> for Content {
    fn from(d: pb::ConfigDelivery) -> Self {
        Self {
            plain: d.plain.into_iter().collect(),
            sealed: d.sealed.into_iter().collect(),
            checksum: d.checksum,
            releases: d.releases,
        }
    }
}

/// One config as rendered for an application's environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendered {
    /// What every cluster gets.
    pub base: Content,
    /// What differs: cluster (or `cluster/namespace` for one partition,
    /// a gray release's target) -> its content.
    #[serde(default)]
    pub clusters: BTreeMap<String, Content>,
}

impl Rendered {
    /// What the target `key` is patched from: a partition's is its
    /// cluster's content (federation applies the cluster's patch first),
    /// a cluster's the base.
    fn under(&self, key: &str) -> &Content {
        key.split_once('/')
            .and_then(|(cluster, _)| self.clusters.get(cluster))
            .unwrap_or(&self.base)
    }
}

/// A config a workload uses, as its annotation lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedConfig {
    /// The config set's name.
    pub config: String,
    /// The ConfigMap's (and Secret's) name.
    pub name: String,
    /// `restart` or `none`.
    pub reload: String,
}

/// The configs a workload object uses (none for other objects).
pub fn used_by(object: &Value) -> Vec<UsedConfig> {
    object["metadata"]["annotations"][CONFIGS_ANNOTATION]
        .as_str()
        .and_then(|raw| serde_json::from_str(raw).ok())
        .unwrap_or_default()
}

/// Every config the objects of a release (service -> objects) use.
pub fn referenced(objects: &Value) -> BTreeSet<String> {
    objects
        .as_object()
        .into_iter()
        .flat_map(|by_service| by_service.values())
        .filter_map(Value::as_array)
        .flatten()
        .flat_map(used_by)
        .map(|u| u.config)
        .collect()
}

/// What the checksums of `rendered` are, as recorded once delivered.
pub fn fingerprint(rendered: &BTreeMap<String, Rendered>) -> String {
    let summary: BTreeMap<&str, (&str, BTreeMap<&str, &str>)> = rendered
        .iter()
        .map(|(config, r)| {
            let clusters = r
                .clusters
                .iter()
                .map(|(c, x)| (c.as_str(), x.checksum.as_str()))
                .collect();
            (config.as_str(), (r.base.checksum.as_str(), clusters))
        })
        .collect();
    json!(summary).to_string()
}

/// A JSON merge patch turning `from`'s items into `to`'s.
fn items_patch(from: &BTreeMap<String, String>, to: &BTreeMap<String, String>) -> Map<String, Value> {
    let mut patch = Map::new();
    for name in from.keys().filter(|k| !to.contains_key(*k)) {
        patch.insert(name.clone(), Value::Null);
    }
    for (name, content) in to.iter().filter(|(k, v)| from.get(*k) != Some(*v)) {
        patch.insert(name.clone(), json!(content));
    }
    patch
}

/// Places the configs the workloads of `objects` use beside them: a
/// ConfigMap per config, a Secret when it has secret items (in any
/// cluster), per-cluster patches where content differs, the checksum
/// annotation for `reload: restart`, and `secretKeyRef` for variables
/// taking a secret item. A config not rendered yet is left out (the volume
/// is optional; the next delivery places it).
pub fn attach(objects: &mut Vec<Value>, rendered: &BTreeMap<String, Rendered>) {
    let mut placed: BTreeSet<String> = objects
        .iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("ConfigMap" | "Secret")))
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let mut extra = Vec::new();
    for object in objects.iter_mut() {
        for used in used_by(object) {
            let Some(r) = rendered.get(&used.config) else { continue };
            if placed.insert(used.name.clone()) {
                let mut labels = Map::new();
                for label in [APP_LABEL, SERVICE_LABEL, "app.kubernetes.io/managed-by"] {
                    if let Some(v) = object["metadata"]["labels"].get(label) {
                        labels.insert(label.into(), v.clone());
                    }
                }
                labels.insert("paas.io/config".into(), json!(used.config));
                let meta = json!({"name": used.name, "labels": labels});
                let mut config_map =
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": r.base.plain});
                let mut patches = Map::new();
                for (cluster, c) in &r.clusters {
                    let patch = items_patch(&r.under(cluster).plain, &c.plain);
                    if !patch.is_empty() {
                        patches.insert(cluster.clone(), json!({"data": patch}));
                    }
                }
                if !patches.is_empty() {
                    config_map[CLUSTER_PATCHES] = Value::Object(patches);
                }
                extra.push(config_map);
                if !r.base.sealed.is_empty() || r.clusters.values().any(|c| !c.sealed.is_empty()) {
                    let mut secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta,
                                            "type": "Opaque", "data": r.base.sealed});
                    let mut patches = Map::new();
                    for (cluster, c) in &r.clusters {
                        let patch = items_patch(&r.under(cluster).sealed, &c.sealed);
                        if !patch.is_empty() {
                            patches.insert(cluster.clone(), json!({"data": patch}));
                        }
                    }
                    if !patches.is_empty() {
                        secret[CLUSTER_PATCHES] = Value::Object(patches);
                    }
                    extra.push(secret);
                }
            }
            if used.reload == spec::Reload::Restart.as_str() {
                let key = format!("{CHECKSUM_PREFIX}{}", used.config);
                object["spec"]["template"]["metadata"]["annotations"][&key] = json!(r.base.checksum);
                for (cluster, c) in r.clusters.iter().filter(|(k, c)| c.checksum != r.under(k).checksum) {
                    let patch = json!({"spec": {"template": {"metadata": {"annotations": {&key: c.checksum}}}}});
                    let slot = &mut object[CLUSTER_PATCHES][cluster];
                    merge(slot, &patch);
                }
            }
            // A variable taking a secret item reads it from the Secret.
            let containers = object["spec"]["template"]["spec"]["containers"].as_array_mut();
            for container in containers.into_iter().flatten() {
                for var in container["env"].as_array_mut().into_iter().flatten() {
                    let from = &var["valueFrom"]["configMapKeyRef"];
                    if from["name"] != json!(used.name) {
                        continue;
                    }
                    let item = from["key"].as_str().unwrap_or_default().to_string();
                    if r.base.sealed.contains_key(&item) {
                        var["valueFrom"] = json!({"secretKeyRef": {"name": used.name, "key": item}});
                    }
                }
            }
        }
    }
    objects.extend(extra);
}

/// Merges `patch` into `target` (objects key by key).
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        _ => *target = patch.clone(),
    }
}

/// Renders `config` of `tenant` for `environment`: the environment level,
/// then each cluster with sets of its own, then each target of a gray
/// release in flight (its cluster with the gray release standing in).
///
/// # Errors
/// [`Error::NotFound`] when the tenant has no such config; configs does not answer.
pub async fn render(configs: &Configs, tenant: Uuid, config: &str, environment: &str) -> Result<Rendered> {
    let mut base = configs.render(tenant, config, environment, "", false).await?;
    let mut clusters = BTreeMap::new();
    for cluster in base.clusters.clone() {
        let content: Content = configs
            .render(tenant, config, environment, &cluster, false)
            .await?
            .into();
        clusters.insert(cluster, content);
    }
    let mut gray = BTreeMap::new();
    for target in std::mem::take(&mut base.gray_targets) {
        let content: Content = match gray.get(&target.cluster) {
            Some(c) => Clone::clone(c),
            None => configs
                .render(tenant, config, environment, &target.cluster, true)
                .await?
                .into(),
        };
        gray.insert(target.cluster.clone(), content.clone());
        let key = if target.partition.is_empty() {
            target.cluster
        } else {
            format!("{}/{}", target.cluster, target.partition)
        };
        clusters.insert(key, content);
    }
    Ok(Rendered {
        base: base.into(),
        clusters,
    })
}

/// Renders every config `app`'s services reference, for a deploy: a config
/// the tenant does not have is the reference's error.
///
/// # Errors
/// Names `services[i].containers[j].config_refs[k].config` for a config the
/// tenant has no set of (another tenant's is never found); configs does not answer.
pub async fn render_for_deploy(
    configs: &Configs,
    tenant: Uuid,
    environment: &str,
    app: &spec::Application,
) -> Result<BTreeMap<String, Rendered>> {
    let mut out = BTreeMap::new();
    for (i, service) in app.services.iter().enumerate() {
        for (j, container) in service.containers.iter().enumerate() {
            for (k, r) in container.config_refs.iter().enumerate() {
                if out.contains_key(&r.config) {
                    continue;
                }
                match render(configs, tenant, &r.config, environment).await {
                    Ok(rendered) => {
                        out.insert(r.config.clone(), rendered);
                    }
                    Err(Error::NotFound { .. }) => {
                        return Err(Error::invalid(
                            format!("services[{i}].containers[{j}].config_refs[{k}].config"),
                            format!("the tenant has no config set named {}", r.config),
                        ));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(out)
}

/// Stores `rendered` as `app`'s configs (with `only`, the others are
/// forgotten: the settled release uses none of them) and makes the
/// application known to the reconciler.
///
/// # Errors
/// The database fails.
pub async fn store(
    tx: &mut PgConnection,
    app: &Application,
    rendered: &BTreeMap<String, Rendered>,
    only: bool,
) -> Result<()> {
    if only {
        let names: Vec<String> = rendered.keys().cloned().collect();
        sqlx::query!(
            "DELETE FROM config_deliveries WHERE application_id = $1 AND tenant_id = $2 AND NOT (config = ANY($3))",
            app.id,
            app.tenant_id,
            &names,
        )
        .execute(&mut *tx)
        .await?;
    }
    for (config, r) in rendered {
        sqlx::query!(
            "INSERT INTO config_deliveries (application_id, tenant_id, config, content) VALUES ($1, $2, $3, $4)
             ON CONFLICT (application_id, config) DO UPDATE SET content = EXCLUDED.content, rendered_at = now()
             WHERE config_deliveries.content <> EXCLUDED.content",
            app.id,
            app.tenant_id,
            config,
            serde_json::to_value(r).map_err(Error::internal)?,
        )
        .execute(&mut *tx)
        .await?;
    }
    if !rendered.is_empty() {
        sqlx::query!(
            "INSERT INTO config_delivery_states (application_id, tenant_id) VALUES ($1, $2)
             ON CONFLICT (application_id) DO NOTHING",
            app.id,
            app.tenant_id,
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// The configs stored for `app`.
///
/// # Errors
/// The database fails.
pub async fn load<'e>(db: impl sqlx::PgExecutor<'e>, app: &Application) -> Result<BTreeMap<String, Rendered>> {
    let rows = sqlx::query!(
        "SELECT config, content FROM config_deliveries WHERE application_id = $1 AND tenant_id = $2",
        app.id,
        app.tenant_id,
    )
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|r| Ok((r.config, serde_json::from_value(r.content).map_err(Error::internal)?)))
        .collect()
}

/// Where one config stands in one kind of target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetView {
    /// Empty: every cluster without content of its own; else a cluster or
    /// `cluster/namespace` (one partition, a gray release's target).
    pub target: String,
    /// The releases its content is made of, lowest first.
    pub releases: Vec<String>,
    /// The content's checksum.
    pub checksum: String,
    /// Whether a gray release in flight makes it.
    pub gray: bool,
}

/// One config as delivered to an application.
#[derive(Debug, Clone)]
pub struct DeliveryView {
    /// Row id (the page cursor).
    pub id: Uuid,
    /// The config set's name.
    pub config: String,
    /// The base first, then each target with content of its own.
    pub targets: Vec<TargetView>,
    /// When this content was rendered.
    pub rendered_at: DateTime<Utc>,
}

/// How the reconciler stands with an application.
#[derive(Debug, Clone, Default)]
pub struct DeliveryState {
    /// Whether what is rendered is what the clusters were last given.
    pub in_sync: bool,
    /// The last failure, cleared by the next delivery.
    pub last_error: Option<String>,
    /// Failures in a row.
    pub failures: i32,
    /// When content last reached the clusters.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the reconciler looks next.
    pub due_at: Option<DateTime<Utc>>,
}

fn target_view(target: &str, c: &Content) -> TargetView {
    TargetView {
        target: target.to_string(),
        releases: c.releases.clone(),
        checksum: c.checksum.clone(),
        gray: c.releases.iter().any(|r| r.ends_with(" (gray)")),
    }
}

/// A page of `app`'s delivered configs and the reconciler's state for it.
/// Callers check that the caller sees `app` first.
///
/// # Errors
/// The database fails or a stored content does not parse.
pub async fn view(pool: &PgPool, app: &Application, page: Page) -> Result<(Vec<DeliveryView>, String, DeliveryState)> {
    let rows = sqlx::query!(
        "SELECT id, config, content, rendered_at FROM config_deliveries
         WHERE application_id = $1 AND tenant_id = $2 AND ($3::uuid IS NULL OR id > $3)
         ORDER BY id LIMIT $4",
        app.id,
        app.tenant_id,
        page.after,
        page.fetch(),
    )
    .fetch_all(pool)
    .await?;
    let mut views = Vec::new();
    for row in rows {
        let r: Rendered = serde_json::from_value(row.content).map_err(Error::internal)?;
        let mut targets = vec![target_view("", &r.base)];
        targets.extend(r.clusters.iter().map(|(k, c)| target_view(k, c)));
        views.push(DeliveryView {
            id: row.id,
            config: row.config,
            targets,
            rendered_at: row.rendered_at,
        });
    }
    let (views, next) = page.finish(views, |v| v.id);
    let state = sqlx::query!(
        "SELECT delivered, last_error, failures, delivered_at, due_at FROM config_delivery_states
         WHERE application_id = $1 AND tenant_id = $2",
        app.id,
        app.tenant_id,
    )
    .fetch_optional(pool)
    .await?;
    let state = match state {
        Some(s) => DeliveryState {
            in_sync: s.delivered == fingerprint(&load(pool, app).await?),
            last_error: s.last_error,
            failures: s.failures,
            delivered_at: s.delivered_at,
            due_at: Some(s.due_at),
        },
        None => DeliveryState {
            in_sync: true,
            ..DeliveryState::default()
        },
    };
    Ok((views, next, state))
}

/// Makes the tenant's applications that use configs due at a config
/// release (`configs.release.published`, `configs.release.rolled_back`) and
/// at each gray step (`configs.gray.published`, `promoted`, `abandoned`).
pub struct ConfigReleaseEvents;

impl Handler for ConfigReleaseEvents {
    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<()> {
        let tenant_id = match event.kind() {
            "configs.release.published" | "configs.release.rolled_back" => {
                event.payload::<pb::ConfigReleased>()?.tenant_id
            }
            "configs.gray.published" | "configs.gray.promoted" | "configs.gray.abandoned" => {
                event.payload::<pb::ConfigGrayChanged>()?.tenant_id
            }
            _ => return Ok(()),
        };
        let tenant = kernel::id::parse_id("tenant_id", &tenant_id)?;
        // Any of them may link the set (a shared one) or be it: render all
        // of the tenant's again; an unchanged one costs one comparison.
        let due = sqlx::query!(
            "UPDATE config_delivery_states SET due_at = now() WHERE tenant_id = $1 AND due_at > now()",
            tenant
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if due > 0 {
            // Delivered at commit to every apps process's reconciler.
            sqlx::query!("SELECT pg_notify($1, '')", CONFIGS_DUE)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }
}

/// Wakes the reconciler through `wake` whenever applications were made due
/// ([`CONFIGS_DUE`]), until `stop`.
///
/// # Errors
/// Never: a lost connection is reopened (and the reconciler woken).
pub async fn follow(pool: PgPool, wake: Arc<Notify>, stop: CancellationToken) -> Result<()> {
    kernel::db::follow(&pool, CONFIGS_DUE, &stop, |_| wake.notify_one()).await
}

/// How the reconciler paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// How often it looks for due applications (a release event wakes it sooner).
    pub poll: Duration,
    /// How often every application's configs are rendered again (a lost
    /// event is caught within this).
    pub resync: Duration,
    /// How soon it looks again at an application whose release is in flight.
    pub settle: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(2),
            resync: Duration::from_secs(60),
            settle: Duration::from_secs(2),
        }
    }
}

/// How long a claim on an application lasts (a process that dies holding
/// it gives it up after this).
const CLAIM: Duration = Duration::from_secs(60);

/// Keeps every application's configs in its clusters at the newest release.
#[derive(Clone)]
pub struct Reconciler {
    pool: PgPool,
    configs: Configs,
    apps: Applications,
    wake: Arc<Notify>,
    pacing: Pacing,
}

/// What one look at an application did.
enum Outcome {
    /// Delivered (or nothing to deliver): look again at the resync.
    Settled(String),
    /// Its release is in flight: look again soon.
    Waiting,
}

impl Reconciler {
    /// A reconciler over the apps schema in `pool`.
    pub fn new(pool: PgPool, configs: Configs, apps: Applications, wake: Arc<Notify>, pacing: Pacing) -> Self {
        Self {
            pool,
            configs,
            apps,
            wake,
            pacing,
        }
    }

    /// Delivers due applications until `stop`.
    ///
    /// # Errors
    /// Never while running; returns `Ok` at shutdown.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        loop {
            match self.turn().await {
                Ok(()) => {}
                Err(e) => tracing::warn!(error = %e, "config delivery turn failed; retrying"),
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.pacing.poll) => {}
            }
        }
    }

    async fn turn(&self) -> Result<()> {
        // A claim pushes the due time out; an event during the work brings
        // it back to now, which the end of the work keeps.
        let claimed = sqlx::query!(
            "UPDATE config_delivery_states SET due_at = now() + make_interval(secs => $1)
             WHERE application_id IN (
                 SELECT application_id FROM config_delivery_states WHERE due_at <= now()
                 ORDER BY due_at LIMIT 20 FOR UPDATE SKIP LOCKED)
             RETURNING application_id, tenant_id, delivered, failures",
            CLAIM.as_secs_f64(),
        )
        .fetch_all(&self.pool)
        .await?;
        for c in claimed {
            let outcome = self.deliver(c.application_id, c.tenant_id, &c.delivered).await;
            let (due_in, delivered, failures, error) = match outcome {
                Ok(Outcome::Settled(d)) => (self.pacing.resync, d, 0, None),
                Ok(Outcome::Waiting) => (self.pacing.settle, c.delivered, 0, None),
                Err(e) => {
                    tracing::warn!(application = %c.application_id, error = %e, "configs not delivered; will retry");
                    let backoff = Duration::from_secs(1 << c.failures.clamp(0, 5));
                    (backoff, c.delivered, c.failures + 1, Some(e.to_string()))
                }
            };
            sqlx::query!(
                "UPDATE config_delivery_states SET delivered = $3, failures = $4, last_error = $5,
                        due_at = CASE WHEN due_at <= now() THEN due_at ELSE now() + make_interval(secs => $6) END,
                        delivered_at = CASE WHEN delivered <> $3 THEN now() ELSE delivered_at END
                 WHERE application_id = $1 AND tenant_id = $2",
                c.application_id,
                c.tenant_id,
                delivered,
                failures,
                error,
                due_in.as_secs_f64(),
            )
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Renders `app`'s configs again and, when they changed since the last
    /// delivery and its release has settled, applies its services with them.
    async fn deliver(&self, id: Uuid, tenant: Uuid, delivered: &str) -> Result<Outcome> {
        let Some(app) = self.apps.by_id(tenant, id).await? else {
            return Ok(Outcome::Settled(String::new()));
        };
        let Some(latest) = self.apps.latest_release(&app).await? else {
            return Ok(Outcome::Settled(String::new()));
        };
        let mut rendered = BTreeMap::new();
        for config in referenced(&latest.objects) {
            match render(&self.configs, tenant, &config, &app.environment).await {
                Ok(r) => {
                    rendered.insert(config, r);
                }
                // Deleted from the config center: what the cluster has stays
                // (removing it would break the pods that mount it).
                Err(Error::NotFound { .. }) => {
                    if let Some(old) = load(&self.pool, &app).await?.remove(&config) {
                        rendered.insert(config, old);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let settled = matches!(latest.state.as_str(), "succeeded" | "aborted");
        let mut tx = self.pool.begin().await?;
        store(&mut tx, &app, &rendered, settled).await?;
        tx.commit().await?;
        let now = fingerprint(&rendered);
        if now == delivered {
            return Ok(Outcome::Settled(now));
        }
        if !settled {
            // The release in flight applies the new content itself
            // ([`attach`] in every apply); once it settles, one more look
            // applies whatever it did not.
            return Ok(if matches!(latest.state.as_str(), "deploying" | "awaiting-approval") {
                Outcome::Waiting
            } else {
                Outcome::Settled(delivered.to_string())
            });
        }
        self.apps.redeliver(&app).await?;
        tracing::info!(application = %app.name, tenant = %tenant, "configs delivered");
        Ok(Outcome::Settled(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(plain: &[(&str, &str)], sealed: &[(&str, &str)], checksum: &str) -> Content {
        Content {
            plain: plain.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            sealed: sealed.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            checksum: checksum.into(),
            releases: Vec::new(),
        }
    }

    fn workload(reload: &str) -> Value {
        let used = json!([{"config": "shop", "name": "shop-web-config-shop", "reload": reload}]).to_string();
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "shop-web", "labels": {APP_LABEL: "shop", SERVICE_LABEL: "web"},
                            "annotations": {CONFIGS_ANNOTATION: used}},
               "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx", "env": [
                   {"name": "PASSWORD", "valueFrom": {"configMapKeyRef": {"name": "shop-web-config-shop", "key": "password"}}},
                   {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "shop-web-config-shop", "key": "level"}}}]}]}}}})
    }

    fn rendered() -> BTreeMap<String, Rendered> {
        BTreeMap::from([(
            "shop".to_string(),
            Rendered {
                base: content(
                    &[("level", "info"), ("app.yaml", "a: 1")],
                    &[("password", "sealed:v1:AAA")],
                    "c1",
                ),
                clusters: BTreeMap::from([(
                    "eu-1".to_string(),
                    content(
                        &[("level", "warn"), ("app.yaml", "a: 1")],
                        &[("password", "sealed:v1:AAA")],
                        "c2",
                    ),
                )]),
            },
        )])
    }

    #[test]
    fn a_workload_gets_its_config_map_and_secret_and_rolls_on_a_new_checksum() {
        let mut objects = vec![workload("restart")];
        attach(&mut objects, &rendered());
        assert_eq!(objects.len(), 3);
        let cm = objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
        assert_eq!(cm["metadata"]["name"], "shop-web-config-shop");
        assert_eq!(cm["data"], json!({"level": "info", "app.yaml": "a: 1"}));
        assert_eq!(cm[CLUSTER_PATCHES], json!({"eu-1": {"data": {"level": "warn"}}}));
        assert_eq!(cm["metadata"]["labels"][SERVICE_LABEL], "web");
        let secret = objects.iter().find(|o| o["kind"] == "Secret").unwrap();
        assert_eq!(secret["data"], json!({"password": "sealed:v1:AAA"}));
        assert!(secret.get(CLUSTER_PATCHES).is_none());
        let w = &objects[0];
        assert_eq!(
            w["spec"]["template"]["metadata"]["annotations"]["config.paas.io/shop"],
            "c1"
        );
        assert_eq!(
            w[CLUSTER_PATCHES]["eu-1"]["spec"]["template"]["metadata"]["annotations"]["config.paas.io/shop"],
            "c2"
        );
        let env = &w["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env[0]["valueFrom"]["secretKeyRef"]["key"], "password");
        assert_eq!(env[1]["valueFrom"]["configMapKeyRef"]["key"], "level");
    }

    #[test]
    fn reload_none_leaves_the_pod_template_alone() {
        let mut objects = vec![workload("none")];
        attach(&mut objects, &rendered());
        assert!(objects[0]["spec"]["template"]["metadata"].get("annotations").is_none());
        assert!(objects[0].get(CLUSTER_PATCHES).is_none());
        assert_eq!(objects.len(), 3);
    }

    #[test]
    fn two_slots_share_one_config_map_and_an_unrendered_config_is_left_out() {
        let mut blue = workload("restart");
        blue["metadata"]["name"] = json!("shop-web-blue");
        let mut objects = vec![workload("restart"), blue];
        attach(&mut objects, &rendered());
        assert_eq!(objects.iter().filter(|o| o["kind"] == "ConfigMap").count(), 1);
        let mut alone = vec![workload("restart")];
        attach(&mut alone, &BTreeMap::new());
        assert_eq!(alone.len(), 1);
    }

    #[test]
    fn a_gray_target_partition_is_patched_from_its_cluster_and_rolls_only_there() {
        let mut r = rendered();
        let shop = r.get_mut("shop").unwrap();
        // eu-1 has its own level; the gray release pins eu-1's acme-web
        // partition to a new app.yaml (and keeps eu-1's level).
        shop.clusters.insert(
            "eu-1/acme-web".into(),
            content(
                &[("level", "warn"), ("app.yaml", "a: 2")],
                &[("password", "sealed:v1:AAA")],
                "c9",
            ),
        );
        let mut objects = vec![workload("restart")];
        attach(&mut objects, &r);
        let cm = objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
        assert_eq!(
            cm[CLUSTER_PATCHES],
            json!({"eu-1": {"data": {"level": "warn"}}, "eu-1/acme-web": {"data": {"app.yaml": "a: 2"}}})
        );
        let annotations = |key: &str| {
            objects[0][CLUSTER_PATCHES][key]["spec"]["template"]["metadata"]["annotations"]["config.paas.io/shop"]
                .clone()
        };
        assert_eq!(annotations("eu-1"), "c2");
        assert_eq!(annotations("eu-1/acme-web"), "c9");
        let secret = objects.iter().find(|o| o["kind"] == "Secret").unwrap();
        assert!(secret.get(CLUSTER_PATCHES).is_none(), "{secret}");
    }

    #[test]
    fn a_gray_content_is_told_apart_in_the_view() {
        let mut c = content(&[], &[], "c1");
        c.releases = vec!["shop/base@3".into(), "shop/test@5 (gray)".into()];
        let v = target_view("eu-1", &c);
        assert!(v.gray);
        assert_eq!(v.releases.len(), 2);
        assert!(!target_view("", &content(&[], &[], "c1")).gray);
    }

    #[test]
    fn the_fingerprint_changes_with_any_cluster() {
        let a = rendered();
        let mut b = rendered();
        b.get_mut("shop").unwrap().clusters.get_mut("eu-1").unwrap().checksum = "c3".into();
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(
            referenced(&json!({"web": [workload("none")]})),
            BTreeSet::from(["shop".to_string()])
        );
    }
}
