//! The registry of member clusters. Clusters are platform resources: every
//! authenticated caller may read them (to choose placements), only platform
//! administrators change them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kernel::caller::Caller;
use kernel::event::EventType;
use kernel::name::DnsLabel;
use kernel::outbox::{self, Outbox};
use kernel::page::Page;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use sqlx::PgPool;
use uuid::Uuid;

use crate::cluster_settings::{self, ClusterSettings};
use crate::credentials::{self, Credentials};
use crate::health::{Condition, Discovery, Status};
use crate::settings::SecretKey;

/// `federation.cluster.registered`
pub const REGISTERED: EventType = EventType::new("federation", "cluster", "registered");
/// `federation.cluster.deregistered`
pub const DEREGISTERED: EventType = EventType::new("federation", "cluster", "deregistered");

/// The network zone a cluster sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkDomain {
    /// The internal core network.
    Core,
    /// The demilitarised zone.
    Dmz,
    /// Facing the internet.
    Internet,
}

/// What a cluster is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Production workloads.
    Production,
    /// Development and testing.
    Test,
    /// Disaster-recovery standby.
    Dr,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident => $s:literal),* }) => {
        impl $t {
            /// The stored text.
            pub fn as_str(&self) -> &'static str { match self { $(Self::$v => $s),* } }
            fn from_stored(s: &str) -> Self { match s { $($s => Self::$v,)* _ => unreachable!("checked by the table") } }
        }
    };
}
text_enum!(NetworkDomain { Core => "core", Dmz => "dmz", Internet => "internet" });
text_enum!(Environment { Production => "production", Test => "test", Dr => "dr" });

/// A registered member cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Its id.
    pub id: Uuid,
    /// DNS label, unique.
    pub name: String,
    /// The Kubernetes API URL.
    pub api_endpoint: String,
    /// The data centre it is in.
    pub data_centre: String,
    /// Region, if any.
    pub region: String,
    /// Zone, if any.
    pub zone: String,
    /// Network domain.
    pub network_domain: NetworkDomain,
    /// Environment.
    pub environment: Environment,
    /// Labels for placement affinity.
    pub labels: BTreeMap<String, String>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// Health as the monitor last saw it.
    pub condition: Condition,
    /// What discovery found.
    pub discovery: Discovery,
    /// Whether credentials are stored (never their value).
    pub has_credentials: bool,
    /// Storage and ingress classes, NodePort range.
    pub settings: ClusterSettings,
}

/// A validated registration.
#[derive(Debug, Clone)]
pub struct NewCluster {
    /// DNS label.
    pub name: DnsLabel,
    /// http(s) URL of the API server.
    pub api_endpoint: url::Url,
    /// DNS label of its data centre.
    pub data_centre: DnsLabel,
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Network domain.
    pub network_domain: NetworkDomain,
    /// Environment.
    pub environment: Environment,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Credentials, sealed before they are stored.
    pub credentials: Credentials,
    /// Storage and ingress classes, NodePort range.
    pub settings: ClusterSettings,
}

impl NewCluster {
    /// Validates a registration; each error names its field.
    ///
    /// # Errors
    /// A field is malformed.
    pub fn parse(mut r: pb::RegisterClusterRequest) -> Result<Self> {
        let credentials = if r.kubeconfig.trim().is_empty() {
            let c = Credentials {
                ca_pem: std::mem::take(&mut r.ca_pem),
                token: std::mem::take(&mut r.token).trim().to_string(),
                client_cert_pem: std::mem::take(&mut r.client_cert_pem),
                client_key_pem: std::mem::take(&mut r.client_key_pem),
            };
            c.validate()?;
            c
        } else {
            if !(r.ca_pem.is_empty()
                && r.token.is_empty()
                && r.client_cert_pem.is_empty()
                && r.client_key_pem.is_empty())
            {
                return Err(Error::invalid(
                    "kubeconfig",
                    "give either a kubeconfig or ca_pem/token/client_cert_pem/client_key_pem, not both",
                ));
            }
            let (server, c) = credentials::from_kubeconfig(&r.kubeconfig)?;
            // An explicit endpoint wins (the kubeconfig may name a public
            // address the platform reaches differently).
            if r.api_endpoint.trim().is_empty() {
                r.api_endpoint = server;
            }
            c
        };
        let api_endpoint = url::Url::parse(r.api_endpoint.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| Error::invalid("api_endpoint", "must be an http(s) URL of the Kubernetes API"))?;
        let network_domain = match pb::NetworkDomain::try_from(r.network_domain) {
            Ok(pb::NetworkDomain::Unspecified | pb::NetworkDomain::Core) => NetworkDomain::Core,
            Ok(pb::NetworkDomain::Dmz) => NetworkDomain::Dmz,
            Ok(pb::NetworkDomain::Internet) => NetworkDomain::Internet,
            Err(_) => return Err(Error::invalid("network_domain", "must be core, dmz or internet")),
        };
        let environment = match pb::Environment::try_from(r.environment) {
            Ok(pb::Environment::Unspecified | pb::Environment::Test) => Environment::Test,
            Ok(pb::Environment::Production) => Environment::Production,
            Ok(pb::Environment::Dr) => Environment::Dr,
            Err(_) => return Err(Error::invalid("environment", "must be production, test or dr")),
        };
        for key in r.labels.keys() {
            if key.is_empty() || key.len() > 63 {
                return Err(Error::invalid(format!("labels.{key}"), "keys must be 1-63 characters"));
            }
        }
        let settings = ClusterSettings::parse("settings.", r.settings.take())?;
        Ok(Self {
            name: DnsLabel::parse("name", r.name.trim())?,
            api_endpoint,
            data_centre: DnsLabel::parse("data_centre", r.data_centre.trim())?,
            region: r.region.trim().to_string(),
            zone: r.zone.trim().to_string(),
            network_domain,
            environment,
            labels: r.labels.into_iter().collect(),
            credentials,
            settings,
        })
    }
}

/// A cluster as stored (the columns every query below selects).
struct Row {
    id: Uuid,
    name: String,
    api_endpoint: String,
    data_centre: String,
    region: String,
    zone: String,
    network_domain: String,
    environment: String,
    labels: sqlx::types::Json<BTreeMap<String, String>>,
    created_at: DateTime<Utc>,
    condition: String,
    condition_reason: String,
    condition_message: String,
    last_probe_at: Option<DateTime<Utc>>,
    last_transition_at: DateTime<Utc>,
    kubernetes_version: String,
    node_count: i32,
    capacity: sqlx::types::Json<BTreeMap<String, String>>,
    allocatable: sqlx::types::Json<BTreeMap<String, String>>,
    discovered_at: Option<DateTime<Utc>>,
    has_credentials: bool,
    storage_classes: sqlx::types::Json<Vec<String>>,
    default_storage_class: String,
    ingress_classes: sqlx::types::Json<Vec<String>>,
    default_ingress_class: String,
    node_port_first: i32,
    node_port_last: i32,
    registry_mirror: String,
}

impl From<Row> for Cluster {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            name: r.name,
            api_endpoint: r.api_endpoint,
            data_centre: r.data_centre,
            region: r.region,
            zone: r.zone,
            network_domain: NetworkDomain::from_stored(&r.network_domain),
            environment: Environment::from_stored(&r.environment),
            labels: r.labels.0,
            created_at: r.created_at,
            condition: Condition {
                status: Status::from_stored(&r.condition),
                reason: r.condition_reason,
                message: r.condition_message,
                last_probe_at: r.last_probe_at,
                last_transition_at: r.last_transition_at,
            },
            discovery: Discovery {
                kubernetes_version: r.kubernetes_version,
                nodes: r.node_count,
                capacity: r.capacity.0,
                allocatable: r.allocatable.0,
                discovered_at: r.discovered_at,
            },
            has_credentials: r.has_credentials,
            settings: cluster_settings::Row {
                storage_classes: r.storage_classes,
                default_storage_class: r.default_storage_class,
                ingress_classes: r.ingress_classes,
                default_ingress_class: r.default_ingress_class,
                node_port_first: r.node_port_first,
                node_port_last: r.node_port_last,
                registry_mirror: r.registry_mirror,
            }
            .into(),
        }
    }
}

/// Registers a cluster and announces it. Platform administrators only.
///
/// # Errors
/// Not an administrator, or the name is taken.
pub async fn register(outbox: &Outbox, key: &SecretKey, caller: &Caller, new: NewCluster) -> Result<Cluster> {
    caller.require_platform_admin()?;
    let sealed = (!new.credentials.is_empty()).then(|| credentials::seal(key, new.name.as_str(), &new.credentials));
    let mut tx = outbox.pool().begin().await?;
    let row = sqlx::query_as!(
        Row,
        r#"INSERT INTO clusters (id, name, api_endpoint, data_centre, region, zone, network_domain, environment, labels,
                                credentials, storage_classes, default_storage_class, ingress_classes,
                                default_ingress_class, node_port_first, node_port_last, registry_mirror)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
           ON CONFLICT (name) DO NOTHING
           RETURNING id, name, api_endpoint, data_centre, region, zone, network_domain, environment,
                  labels AS "labels: _",
                  created_at, condition, condition_reason, condition_message, last_probe_at, last_transition_at,
                  kubernetes_version, node_count, capacity AS "capacity: _", allocatable AS "allocatable: _",
                  discovered_at, credentials IS NOT NULL AS "has_credentials!", storage_classes AS "storage_classes: _",
                  default_storage_class, ingress_classes AS "ingress_classes: _", default_ingress_class,
                  node_port_first, node_port_last, registry_mirror"#,
        id::new_id(),
        new.name.as_str(),
        new.api_endpoint.as_str(),
        new.data_centre.as_str(),
        &new.region,
        &new.zone,
        new.network_domain.as_str(),
        new.environment.as_str(),
        sqlx::types::Json(&new.labels) as _,
        sealed,
        sqlx::types::Json(&new.settings.storage.offered) as _,
        new.settings.storage.default.as_deref().unwrap_or_default(),
        sqlx::types::Json(&new.settings.ingress.offered) as _,
        new.settings.ingress.default.as_deref().unwrap_or_default(),
        i32::from(new.settings.node_ports.first),
        i32::from(new.settings.node_ports.last),
        new.settings.registry_mirror.as_deref().unwrap_or_default(),
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::Conflict(format!("a cluster named {} already exists", new.name)))?;
    let cluster = Cluster::from(row);
    let event = pb::ClusterRegistered {
        cluster_id: cluster.id.to_string(),
        name: cluster.name.clone(),
        data_centre: cluster.data_centre.clone(),
    };
    outbox::record(&mut tx, REGISTERED, None, &event).await?;
    outbox.commit(tx).await?;
    Ok(cluster)
}

/// The id in `id_or_name` when it is a hyphenated UUID (as the API states;
/// the simple, braced and URN forms name nothing), else `None`: a name.
fn id_in(id_or_name: &str) -> Option<Uuid> {
    (id_or_name.len() == 36)
        .then(|| Uuid::parse_str(id_or_name).ok())
        .flatten()
}

/// One cluster, by id or by name.
///
/// # Errors
/// No such cluster.
pub async fn get(pool: &PgPool, id_or_name: &str) -> Result<Cluster> {
    let id = id_in(id_or_name);
    let row = sqlx::query_as!(
        Row,
        r#"SELECT id, name, api_endpoint, data_centre, region, zone, network_domain, environment, labels AS "labels: _",
                  created_at, condition, condition_reason, condition_message, last_probe_at, last_transition_at,
                  kubernetes_version, node_count, capacity AS "capacity: _", allocatable AS "allocatable: _",
                  discovered_at, credentials IS NOT NULL AS "has_credentials!", storage_classes AS "storage_classes: _",
                  default_storage_class, ingress_classes AS "ingress_classes: _", default_ingress_class,
                  node_port_first, node_port_last, registry_mirror
           FROM clusters WHERE id = $1 OR ($1 IS NULL AND name = $2)"#,
        id,
        id_or_name,
    )
    .fetch_optional(pool)
    .await?;
    row.map(Cluster::from)
        .ok_or_else(|| Error::not_found("cluster", id_or_name))
}

/// Every cluster, by data centre then name.
///
/// # Errors
/// The database fails.
pub async fn all(pool: &PgPool) -> Result<Vec<Cluster>> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, name, api_endpoint, data_centre, region, zone, network_domain, environment, labels AS "labels: _",
                  created_at, condition, condition_reason, condition_message, last_probe_at, last_transition_at,
                  kubernetes_version, node_count, capacity AS "capacity: _", allocatable AS "allocatable: _",
                  discovered_at, credentials IS NOT NULL AS "has_credentials!", storage_classes AS "storage_classes: _",
                  default_storage_class, ingress_classes AS "ingress_classes: _", default_ingress_class,
                  node_port_first, node_port_last, registry_mirror
           FROM clusters ORDER BY data_centre, name"#,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Cluster::from).collect())
}

/// A page of clusters, optionally of one data centre.
///
/// # Errors
/// The database fails.
pub async fn list(pool: &PgPool, page: Page, data_centre: &str) -> Result<(Vec<Cluster>, String)> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, name, api_endpoint, data_centre, region, zone, network_domain, environment, labels AS "labels: _",
                  created_at, condition, condition_reason, condition_message, last_probe_at, last_transition_at,
                  kubernetes_version, node_count, capacity AS "capacity: _", allocatable AS "allocatable: _",
                  discovered_at, credentials IS NOT NULL AS "has_credentials!", storage_classes AS "storage_classes: _",
                  default_storage_class, ingress_classes AS "ingress_classes: _", default_ingress_class,
                  node_port_first, node_port_last, registry_mirror
           FROM clusters WHERE ($1::uuid IS NULL OR id > $1) AND ($2 = '' OR data_centre = $2) ORDER BY id LIMIT $3"#,
        page.after,
        data_centre,
        page.fetch(),
    )
    .fetch_all(pool)
    .await?;
    Ok(page.finish(rows.into_iter().map(Cluster::from).collect(), |c| c.id))
}

/// Replaces the settings of cluster `id_or_name`. Platform administrators
/// only. Every binding target in the cluster is re-applied soon after, so
/// new defaults reach existing objects and targets refused for a class the
/// cluster now offers converge without waiting for their backoff.
///
/// # Errors
/// Not an administrator, or no such cluster.
pub async fn set_settings(pool: &PgPool, caller: &Caller, id_or_name: &str, s: &ClusterSettings) -> Result<Cluster> {
    caller.require_platform_admin()?;
    let id = id_in(id_or_name);
    let mut tx = pool.begin().await?;
    let name = sqlx::query_scalar!(
        "UPDATE clusters SET storage_classes = $3, default_storage_class = $4, ingress_classes = $5,
                default_ingress_class = $6, node_port_first = $7, node_port_last = $8, registry_mirror = $9
         WHERE id = $1 OR ($1 IS NULL AND name = $2) RETURNING name",
        id,
        id_or_name,
        sqlx::types::Json(&s.storage.offered) as _,
        s.storage.default.as_deref().unwrap_or_default(),
        sqlx::types::Json(&s.ingress.offered) as _,
        s.ingress.default.as_deref().unwrap_or_default(),
        i32::from(s.node_ports.first),
        i32::from(s.node_ports.last),
        s.registry_mirror.as_deref().unwrap_or_default(),
    )
    .fetch_optional(&mut *tx)
    .await?;
    let name = name.ok_or_else(|| Error::not_found("cluster", id_or_name))?;
    sqlx::query!(
        "UPDATE binding_targets SET synced_at = '-infinity', next_attempt_at = now()
         WHERE cluster = $1 AND NOT removing",
        &name,
    )
    .execute(&mut *tx)
    .await?;
    // The pull secrets of its partitions name the registry mirror too.
    sqlx::query!(
        "UPDATE partitions SET generation = generation + 1, next_attempt_at = now(), updated_at = now()
         WHERE cluster = $1 AND NOT deleted",
        &name,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    get(pool, &name).await
}

/// Removes a cluster from the registry. Platform administrators only.
///
/// # Errors
/// Not an administrator, or no such cluster.
pub async fn deregister(outbox: &Outbox, caller: &Caller, id: Uuid) -> Result<()> {
    caller.require_platform_admin()?;
    let mut tx = outbox.pool().begin().await?;
    if sqlx::query!("DELETE FROM clusters WHERE id = $1", id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 0
    {
        return Err(Error::not_found("cluster", id));
    }
    outbox::record(
        &mut tx,
        DEREGISTERED,
        None,
        &pb::ClusterDeregistered {
            cluster_id: id.to_string(),
        },
    )
    .await?;
    outbox.commit(tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_hyphenated_uuid_is_an_id_and_anything_else_a_name() {
        let id = Uuid::now_v7();
        assert_eq!(id_in(&id.to_string()), Some(id));
        assert_eq!(id_in(&id.to_string().to_uppercase()), Some(id));
        for name in [
            id.simple().to_string(),
            id.braced().to_string(),
            id.urn().to_string(),
            "dc1-a".into(),
        ] {
            assert_eq!(id_in(&name), None, "{name}");
        }
    }
}
