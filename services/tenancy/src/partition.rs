//! Partitions: one namespace of a project in one member cluster, optionally
//! tied to dedicated nodes, with its default network policy and LimitRange.
//! Federation writes them into the cluster from `tenancy.partition.*` events.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::event::EventType;
use kernel::name::DnsLabel;
use kernel::outbox::{self, Outbox};
use kernel::page::Page;
use kernel::quantity::Quantity;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::resource::ResourceList;

/// `tenancy.partition.created`
pub const CREATED: EventType = EventType::new("tenancy", "partition", "created");
/// `tenancy.partition.updated`
pub const UPDATED: EventType = EventType::new("tenancy", "partition", "updated");
/// `tenancy.partition.deleted`
pub const DELETED: EventType = EventType::new("tenancy", "partition", "deleted");

/// The five default network policies of R5, one chosen per partition
/// (kernel's list, which the API document states too).
pub use kernel::name::NETWORK_POLICIES;

/// Resources a LimitRange constrains.
const LIMITED: [&str; 3] = kernel::quantity::LIMIT_RANGE_RESOURCES;

/// One LimitRange item (Container or Pod), quantities kept as canonical text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitItem {
    /// Least a container/pod may ask.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub min: BTreeMap<String, String>,
    /// Most it may ask.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max: BTreeMap<String, String>,
    /// Limit given when none is set (containers only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub default: BTreeMap<String, String>,
    /// Request given when none is set (containers only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub default_request: BTreeMap<String, String>,
    /// Largest limit / request ratio.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max_limit_request_ratio: BTreeMap<String, String>,
}

/// A partition's LimitRange.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitRange {
    /// Per container.
    #[serde(default)]
    pub container: LimitItem,
    /// Per pod.
    #[serde(default)]
    pub pod: LimitItem,
}

impl LimitRange {
    /// Validates and canonicalises; errors name `limit_range.<kind>.<field>.<resource>`.
    ///
    /// # Errors
    /// Unknown resources, malformed or negative quantities, or bounds out of order.
    pub fn parse(raw: LimitRange) -> Result<Self> {
        Ok(Self {
            container: item("container", raw.container, true)?,
            pod: item("pod", raw.pod, false)?,
        })
    }

    /// Whether nothing is constrained.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn item(kind: &str, raw: LimitItem, defaults_allowed: bool) -> Result<LimitItem> {
    let parse = |name: &str, map: BTreeMap<String, String>| -> Result<BTreeMap<String, Quantity>> {
        map.into_iter()
            .map(|(resource, text)| {
                let field = format!("limit_range.{kind}.{name}.{resource}");
                if !LIMITED.contains(&resource.as_str()) {
                    return Err(Error::invalid(&field, format!("must be one of {}", LIMITED.join(", "))));
                }
                let q = Quantity::parse(&field, &text)?;
                if q.is_negative() {
                    return Err(Error::invalid(&field, "must not be negative"));
                }
                Ok((resource, q))
            })
            .collect()
    };
    let min = parse("min", raw.min)?;
    let max = parse("max", raw.max)?;
    let default = parse("default", raw.default)?;
    let default_request = parse("defaultRequest", raw.default_request)?;
    let ratio = parse("maxLimitRequestRatio", raw.max_limit_request_ratio)?;
    if !(defaults_allowed || default.is_empty() && default_request.is_empty()) {
        return Err(Error::invalid(
            format!("limit_range.{kind}.default"),
            "a Pod limit takes no defaults (Kubernetes applies them per container)",
        ));
    }
    // min <= defaultRequest <= default <= max, for every resource named in two of them.
    let chain = [
        ("min", &min),
        ("defaultRequest", &default_request),
        ("default", &default),
        ("max", &max),
    ];
    for (i, (lower_name, lower)) in chain.iter().enumerate() {
        for (upper_name, upper) in &chain[i + 1..] {
            for (resource, low) in lower.iter() {
                if let Some(high) = upper.get(resource)
                    && low > high
                {
                    return Err(Error::invalid(
                        format!("limit_range.{kind}.{lower_name}.{resource}"),
                        format!("{low} is above {upper_name} {high}"),
                    ));
                }
            }
        }
    }
    for (resource, r) in &ratio {
        if r.milli() < 1000 {
            return Err(Error::invalid(
                format!("limit_range.{kind}.maxLimitRequestRatio.{resource}"),
                "must be at least 1",
            ));
        }
    }
    let print = |m: BTreeMap<String, Quantity>| m.into_iter().map(|(k, q)| (k, q.to_string())).collect();
    Ok(LimitItem {
        min: print(min),
        max: print(max),
        default: print(default),
        default_request: print(default_request),
        max_limit_request_ratio: print(ratio),
    })
}

/// A partition as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Its project.
    pub project_id: Uuid,
    /// The member cluster's name.
    pub cluster: String,
    /// The cluster's data centre.
    pub data_centre: String,
    /// The namespace in the cluster.
    pub namespace: String,
    /// Node labels its pods are pinned to (dedicated nodes); empty for the whole cluster.
    pub node_selector: BTreeMap<String, String>,
    /// One of [`NETWORK_POLICIES`].
    pub network_policy: String,
    /// Its LimitRange.
    pub limit_range: LimitRange,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

struct Row {
    id: Uuid,
    tenant_id: Uuid,
    project_id: Uuid,
    cluster: String,
    data_centre: String,
    namespace: String,
    node_selector: sqlx::types::Json<BTreeMap<String, String>>,
    network_policy: String,
    limit_range: sqlx::types::Json<LimitRange>,
    created_at: DateTime<Utc>,
}

impl From<Row> for Partition {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            project_id: r.project_id,
            cluster: r.cluster,
            data_centre: r.data_centre,
            namespace: r.namespace,
            node_selector: r.node_selector.0,
            network_policy: r.network_policy,
            limit_range: r.limit_range.0,
            created_at: r.created_at,
        }
    }
}

/// A validated new partition.
#[derive(Debug, Clone)]
pub struct NewPartition {
    cluster: DnsLabel,
    data_centre: DnsLabel,
    namespace: Option<DnsLabel>,
    node_selector: BTreeMap<String, String>,
    network_policy: String,
}

impl NewPartition {
    /// Validates raw input; errors name the field. An empty namespace means
    /// `<tenant>-<project>`.
    ///
    /// # Errors
    /// A field is malformed.
    pub fn parse(
        cluster: &str,
        data_centre: &str,
        namespace: &str,
        node_selector: BTreeMap<String, String>,
        network_policy: &str,
    ) -> Result<Self> {
        for (k, v) in &node_selector {
            // Counted in characters, as the API document states them.
            if k.is_empty() || k.chars().count() > 253 || v.chars().count() > 63 {
                return Err(Error::invalid(
                    format!("node_selector.{k}"),
                    "keys are 1-253 characters, values at most 63",
                ));
            }
        }
        let network_policy = match network_policy.trim() {
            "" => NETWORK_POLICIES[0].to_string(),
            p if NETWORK_POLICIES.contains(&p) => p.to_string(),
            _ => {
                return Err(Error::invalid(
                    "network_policy",
                    format!("must be one of {}", NETWORK_POLICIES.join(", ")),
                ));
            }
        };
        Ok(Self {
            cluster: DnsLabel::parse("cluster", cluster.trim())?,
            data_centre: DnsLabel::parse("data_centre", data_centre.trim())?,
            namespace: match namespace.trim() {
                "" => None,
                n => Some(DnsLabel::parse("namespace", n)?),
            },
            node_selector,
            network_policy,
        })
    }
}

impl NewPartition {
    /// The namespace: the one named, or `<tenant>-<project>`.
    ///
    /// # Errors
    /// The default is not a DNS label (too long).
    pub fn namespace_in(&self, tenant: &str, project: &str) -> Result<String> {
        match &self.namespace {
            Some(n) => Ok(n.to_string()),
            None => Ok(DnsLabel::parse("namespace", &format!("{tenant}-{project}"))
                .map_err(|_| Error::invalid("namespace", "the default <tenant>-<project> is too long; name one"))?
                .to_string()),
        }
    }
}

/// The event telling federation what the partition should look like.
pub(crate) async fn announce(tx: &mut PgConnection, kind: EventType, p: &Partition, hard: &ResourceList) -> Result<()> {
    let event = pb::PartitionChanged {
        partition_id: p.id.to_string(),
        tenant_id: p.tenant_id.to_string(),
        project_id: p.project_id.to_string(),
        cluster: p.cluster.clone(),
        data_centre: p.data_centre.clone(),
        namespace: p.namespace.clone(),
        node_selector: p.node_selector.clone().into_iter().collect(),
        network_policy: p.network_policy.clone(),
        hard: hard
            .0
            .iter()
            .map(|(r, q)| (r.kubernetes_name().to_string(), q.to_string()))
            .collect(),
        limit_range_json: serde_json::to_string(&p.limit_range).map_err(Error::internal)?,
    };
    outbox::record(tx, kind, Some(p.tenant_id), &event).await?;
    Ok(())
}

/// Inserts and announces a partition in the caller's transaction, with its
/// LimitRange and, when `hard` names anything, its quota (carved by the
/// caller, under the tenant's lock); `None` when the namespace is taken in
/// the cluster. The announcement carries both, so the namespace has its
/// ResourceQuota and LimitRange from the start.
pub(crate) async fn insert(
    tx: &mut PgConnection,
    tenant: Uuid,
    project: Uuid,
    new: &NewPartition,
    namespace: &str,
    hard: &ResourceList,
    limit_range: &LimitRange,
) -> Result<Option<Partition>> {
    let row = sqlx::query_as!(
        Row,
        r#"INSERT INTO partitions (id, tenant_id, project_id, cluster, data_centre, namespace, node_selector,
                                  network_policy, limit_range)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (cluster, namespace) DO NOTHING
           RETURNING id, tenant_id, project_id, cluster, data_centre, namespace,
                     node_selector AS "node_selector: _", network_policy, limit_range AS "limit_range: _", created_at"#,
        id::new_id(),
        tenant,
        project,
        new.cluster.as_str(),
        new.data_centre.as_str(),
        namespace,
        sqlx::types::Json(&new.node_selector) as _,
        new.network_policy,
        sqlx::types::Json(limit_range) as _,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let partition = Partition::from(row);
    if !hard.is_empty() {
        crate::quota::raise(tx, tenant, crate::quota::Level::Partition, partition.id, hard, true).await?;
    }
    announce(tx, CREATED, &partition, hard).await?;
    Ok(Some(partition))
}

/// Gives a project `hard` more in a cluster (provisioning): creates its
/// partition there with that quota and `limit_range`, or raises the quota of
/// the one it has (which keeps a LimitRange it already has, and takes the
/// cluster's data centre as given). Call under the tenant's lock.
///
/// # Errors
/// The namespace belongs to another project in that cluster, or the
/// database fails.
pub(crate) async fn provision(
    tx: &mut PgConnection,
    tenant: Uuid,
    project: Uuid,
    new: &NewPartition,
    namespace: &str,
    hard: &ResourceList,
    limit_range: &LimitRange,
) -> Result<Partition> {
    let taken = || {
        Error::Conflict(format!(
            "namespace {namespace} is already taken in cluster {}",
            new.cluster
        ))
    };
    let existing = sqlx::query_as!(
        Row,
        r#"SELECT id, tenant_id, project_id, cluster, data_centre, namespace, node_selector AS "node_selector: _",
                  network_policy, limit_range AS "limit_range: _", created_at
           FROM partitions WHERE cluster = $1 AND namespace = $2 FOR UPDATE"#,
        new.cluster.as_str(),
        namespace,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(existing) = existing else {
        return insert(tx, tenant, project, new, namespace, hard, limit_range)
            .await?
            .ok_or_else(taken);
    };
    if existing.project_id != project {
        return Err(taken());
    }
    let mut partition = Partition::from(existing);
    crate::quota::raise(tx, tenant, crate::quota::Level::Partition, partition.id, hard, true).await?;
    if partition.limit_range.is_empty() {
        partition.limit_range = limit_range.clone();
    }
    partition.data_centre = new.data_centre.to_string();
    sqlx::query!(
        "UPDATE partitions SET limit_range = $2, data_centre = $3 WHERE id = $1",
        partition.id,
        sqlx::types::Json(&partition.limit_range) as _,
        partition.data_centre,
    )
    .execute(&mut *tx)
    .await?;
    let raised = crate::quota::hard(tx, crate::quota::Level::Partition, partition.id).await?;
    announce(tx, UPDATED, &partition, &raised).await?;
    Ok(partition)
}

/// Partitions in the tenancy schema.
#[derive(Clone)]
pub struct Partitions {
    outbox: Outbox,
}

impl Partitions {
    /// Partitions stored in the outbox's schema.
    pub fn new(outbox: Outbox) -> Self {
        Self { outbox }
    }

    /// Creates a partition of a project. Tenant admins.
    ///
    /// # Errors
    /// Not allowed, no such project, or the namespace is taken in the cluster.
    pub async fn create(&self, caller: &Caller, project: Uuid, new: NewPartition) -> Result<Partition> {
        let mut tx = self.outbox.pool().begin().await?;
        let owner = sqlx::query!(
            "SELECT p.tenant_id, t.name AS tenant_name, p.name AS project_name
             FROM projects p JOIN tenants t ON t.id = p.tenant_id WHERE p.id = $1",
            project,
        )
        .fetch_optional(&mut *tx)
        .await?
        .filter(|o| caller.can_see(o.tenant_id))
        .ok_or_else(|| Error::not_found("project", project))?;
        caller.require(owner.tenant_id, Role::TenantAdmin, "project", project)?;
        let namespace = new.namespace_in(&owner.tenant_name, &owner.project_name)?;
        let none = ResourceList::default();
        let partition = insert(
            &mut tx,
            owner.tenant_id,
            project,
            &new,
            &namespace,
            &none,
            &LimitRange::default(),
        )
        .await?
        .ok_or_else(|| {
            Error::Conflict(format!(
                "namespace {namespace} is already taken in cluster {}",
                new.cluster
            ))
        })?;
        self.outbox.commit(tx).await?;
        Ok(partition)
    }

    /// A partition the caller can see.
    ///
    /// # Errors
    /// Not found or not visible (the same answer).
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Partition> {
        let row = sqlx::query_as!(
            Row,
            r#"SELECT id, tenant_id, project_id, cluster, data_centre, namespace, node_selector AS "node_selector: _",
                      network_policy, limit_range AS "limit_range: _", created_at
               FROM partitions WHERE id = $1"#,
            id,
        )
        .fetch_optional(self.outbox.pool())
        .await?;
        row.map(Partition::from)
            .filter(|p| caller.can_see(p.tenant_id))
            .ok_or_else(|| Error::not_found("partition", id))
    }

    /// A page of a project's partitions, optionally in one cluster.
    ///
    /// # Errors
    /// The project is not visible to the caller.
    pub async fn list(
        &self,
        caller: &Caller,
        project: Uuid,
        cluster: &str,
        page: Page,
    ) -> Result<(Vec<Partition>, String)> {
        let tenant = sqlx::query_scalar!("SELECT tenant_id FROM projects WHERE id = $1", project)
            .fetch_optional(self.outbox.pool())
            .await?;
        if !tenant.is_some_and(|t| caller.can_see(t)) {
            return Err(Error::not_found("project", project));
        }
        let rows = sqlx::query_as!(
            Row,
            r#"SELECT id, tenant_id, project_id, cluster, data_centre, namespace, node_selector AS "node_selector: _",
                      network_policy, limit_range AS "limit_range: _", created_at
               FROM partitions
               WHERE project_id = $1 AND ($2 = '' OR cluster = $2) AND ($3::uuid IS NULL OR id > $3)
               ORDER BY id LIMIT $4"#,
            project,
            cluster,
            page.after,
            page.fetch(),
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(page.finish(rows.into_iter().map(Partition::from).collect(), |p| p.id))
    }

    /// Deletes a partition that holds no reservations. Tenant admins.
    ///
    /// # Errors
    /// Not visible, not allowed, or reservations still hold quota in it.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let partition = self.get(caller, id).await?;
        caller.require(partition.tenant_id, Role::TenantAdmin, "partition", id)?;
        let mut tx = self.outbox.pool().begin().await?;
        crate::quota::lock_tenant(&mut tx, partition.tenant_id).await?;
        let held = sqlx::query_scalar!(
            r#"SELECT count(*) AS "count!" FROM reservations WHERE partition_id = $1 AND state IN ('reserved', 'committed')"#,
            id,
        )
        .fetch_one(&mut *tx)
        .await?;
        if held > 0 {
            return Err(Error::FailedPrecondition(format!(
                "partition {} still holds {held} reservation(s); release them first",
                partition.namespace
            )));
        }
        sqlx::query!("DELETE FROM quotas WHERE level = 'partition' AND owner_id = $1", id)
            .execute(&mut *tx)
            .await?;
        sqlx::query!("DELETE FROM partitions WHERE id = $1", id)
            .execute(&mut *tx)
            .await?;
        announce(&mut tx, DELETED, &partition, &ResourceList::default()).await?;
        self.outbox.commit(tx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn a_limit_range_is_canonicalised() {
        let raw = LimitRange {
            container: LimitItem {
                min: map(&[("cpu", "0.1")]),
                default_request: map(&[("cpu", "250m"), ("memory", "256Mi")]),
                default: map(&[("cpu", "0.5"), ("memory", "0.5Gi")]),
                max: map(&[("cpu", "2")]),
                ..Default::default()
            },
            pod: LimitItem {
                max: map(&[("memory", "8Gi")]),
                ..Default::default()
            },
        };
        let lr = LimitRange::parse(raw).unwrap();
        assert_eq!(lr.container.min["cpu"], "100m");
        assert_eq!(lr.container.default["memory"], "512Mi");
    }

    #[test]
    fn bounds_out_of_order_name_the_lower_field() {
        let raw = LimitRange {
            container: LimitItem {
                default_request: map(&[("cpu", "2")]),
                default: map(&[("cpu", "1")]),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            LimitRange::parse(raw).unwrap_err().field(),
            Some("limit_range.container.defaultRequest.cpu")
        );
        let raw = LimitRange {
            pod: LimitItem {
                default: map(&[("cpu", "1")]),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            LimitRange::parse(raw).unwrap_err().field(),
            Some("limit_range.pod.default")
        );
        let raw = LimitRange {
            container: LimitItem {
                max: map(&[("gpu", "1")]),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            LimitRange::parse(raw).unwrap_err().field(),
            Some("limit_range.container.max.gpu")
        );
    }

    #[test]
    fn a_new_partition_checks_its_fields() {
        assert!(NewPartition::parse("dc1-prod", "dc1", "", BTreeMap::new(), "").is_ok());
        assert_eq!(
            NewPartition::parse("DC1", "dc1", "", BTreeMap::new(), "")
                .unwrap_err()
                .field(),
            Some("cluster")
        );
        assert_eq!(
            NewPartition::parse("c", "dc1", "", BTreeMap::new(), "open")
                .unwrap_err()
                .field(),
            Some("network_policy")
        );
        assert_eq!(
            NewPartition::parse("c", "dc1", "A_B", BTreeMap::new(), "")
                .unwrap_err()
                .field(),
            Some("namespace")
        );
    }
}
