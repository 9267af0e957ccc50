//! Hierarchical quotas: tenant (optionally split per cluster and per data
//! centre, with a DR reserve), project carved from the tenant, partition
//! carved from the project.
//!
//! # Guarantees
//! Every change to limits or to what is held against them happens under the
//! tenant's admission lock ([`lock_tenant`]), so the checks here and in
//! [`crate::reservation`] see a consistent tenant and nothing is ever
//! over-committed: at every level, `used <= hard`, and the projects' limits sum
//! to at most the tenant's, the partitions' to at most their project's. A
//! limit is carved from the nearest ancestor that sets one for the resource:
//! the partitions of a project without a `pods` limit count against the
//! tenant's `pods`, beside the projects that set one.

use std::collections::BTreeMap;

use kernel::caller::{Caller, Role};
use kernel::event::EventType;
use kernel::outbox::{self, Outbox};
use kernel::quantity::Quantity;
use kernel::{Error, Result};
use paas_proto::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::partition::{self, LimitRange, Partition};
use crate::resource::{Resource, ResourceList};

/// `tenancy.quota.changed`
pub const CHANGED: EventType = EventType::new("tenancy", "quota", "changed");

/// Takes the tenant's admission lock until the transaction ends. All quota
/// writes of a tenant serialise on it; different tenants do not wait for each
/// other.
///
/// # Errors
/// The database fails.
pub async fn lock_tenant(tx: &mut PgConnection, tenant: Uuid) -> Result<()> {
    // The random half of the UUIDv7 keys the lock; a collision only makes two
    // tenants wait for each other.
    let key = i64::from_be_bytes(tenant.as_bytes()[8..16].try_into().expect("16-byte uuid"));
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", key)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A level of the hierarchy where limits are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// A partition's namespace.
    Partition,
    /// A project.
    Project,
    /// The tenant's share of one cluster.
    Cluster,
    /// The tenant's share of one data centre.
    DataCentre,
    /// The tenant's total.
    Tenant,
    /// The part of the tenant's total kept for failover.
    DrReserve,
}

impl Level {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Partition => "partition",
            Self::Project => "project",
            Self::Cluster => "cluster",
            Self::DataCentre => "data_centre",
            Self::Tenant => "tenant",
            Self::DrReserve => "dr_reserve",
        }
    }
}

/// Where a set of limits lives: a level, its owner and, for splits, the
/// cluster or data centre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The level.
    pub level: Level,
    /// The tenant, project or partition.
    pub owner: Uuid,
    /// The cluster or data centre of a split; empty otherwise.
    pub key: String,
}

/// One resource at one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The resource.
    pub resource: Resource,
    /// The limit, if this level sets one.
    pub hard: Option<Quantity>,
    /// Held by reservations (reserved or committed).
    pub used: Quantity,
}

/// What a tenant's quota is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantQuota {
    /// The total.
    pub hard: ResourceList,
    /// Caps per cluster name.
    pub clusters: BTreeMap<String, ResourceList>,
    /// Caps per data centre name.
    pub data_centres: BTreeMap<String, ResourceList>,
    /// Kept for failover: normal reservations leave it free.
    pub dr_reserve: ResourceList,
}

/// The usage of one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// Where.
    pub scope: Scope,
    /// Per resource.
    pub lines: Vec<Line>,
}

struct Row {
    level: String,
    owner_id: Uuid,
    key: String,
    resource: String,
    hard: Option<i64>,
    used: i64,
}

fn level_of(stored: &str) -> Level {
    match stored {
        "partition" => Level::Partition,
        "project" => Level::Project,
        "cluster" => Level::Cluster,
        "data_centre" => Level::DataCentre,
        "dr_reserve" => Level::DrReserve,
        _ => Level::Tenant,
    }
}

/// The limits at one scope, as `resource -> (hard, used)` in milli-units.
async fn limits(tx: &mut PgConnection, scope: &Scope) -> Result<BTreeMap<Resource, (Option<i64>, i64)>> {
    let rows = sqlx::query_as!(
        Row,
        "SELECT level, owner_id, key, resource, hard, used FROM quotas WHERE level = $1 AND owner_id = $2 AND key = $3",
        scope.level.as_str(),
        scope.owner,
        scope.key,
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((Resource::parse(&r.resource)?, (r.hard, r.used))))
        .collect())
}

/// Sum of the limits set by a level's other members (`projects` of a tenant,
/// `partitions` of a project), per resource.
async fn siblings_sum(tx: &mut PgConnection, level: Level, members: &[Uuid]) -> Result<BTreeMap<Resource, i64>> {
    let rows = sqlx::query!(
        "SELECT resource, sum(hard)::bigint AS sum FROM quotas
         WHERE level = $1 AND owner_id = ANY($2) AND hard IS NOT NULL GROUP BY resource",
        level.as_str(),
        members,
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((Resource::parse(&r.resource)?, r.sum.unwrap_or(0))))
        .collect())
}

/// Replaces a scope's limits with `hard`, keeping what is used. Refuses to
/// set a limit below what is in use.
async fn replace(tx: &mut PgConnection, tenant: Uuid, scope: &Scope, name: &str, hard: &ResourceList) -> Result<()> {
    let current = limits(tx, scope).await?;
    for (resource, q) in &hard.0 {
        let used = current.get(resource).map_or(0, |(_, u)| *u);
        if q.milli() < used {
            return Err(Error::FailedPrecondition(format!(
                "{name}: cannot set {} to {q}: {} is in use",
                resource.as_str(),
                resource.amount(used)
            )));
        }
    }
    sqlx::query!(
        "UPDATE quotas SET hard = NULL WHERE level = $1 AND owner_id = $2 AND key = $3",
        scope.level.as_str(),
        scope.owner,
        scope.key,
    )
    .execute(&mut *tx)
    .await?;
    let (resources, amounts): (Vec<&str>, Vec<i64>) = hard.0.iter().map(|(r, q)| (r.as_str(), q.milli())).unzip();
    sqlx::query!(
        "INSERT INTO quotas (tenant_id, level, owner_id, key, resource, hard)
         SELECT $1, $2, $3, $4, r, h FROM unnest($5::text[], $6::bigint[]) AS t(r, h)
         ON CONFLICT (level, owner_id, key, resource) DO UPDATE SET hard = EXCLUDED.hard",
        tenant,
        scope.level.as_str(),
        scope.owner,
        scope.key,
        &resources as &[&str],
        &amounts,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "DELETE FROM quotas WHERE level = $1 AND owner_id = $2 AND key = $3 AND hard IS NULL AND used = 0",
        scope.level.as_str(),
        scope.owner,
        scope.key,
    )
    .execute(&mut *tx)
    .await?;
    let event = pb::QuotaChanged {
        tenant_id: tenant.to_string(),
        level: scope.level.as_str().into(),
        owner_id: scope.owner.to_string(),
        key: scope.key.clone(),
        hard: hard.to_strings().into_iter().collect(),
    };
    outbox::record(tx, CHANGED, Some(tenant), &event).await?;
    Ok(())
}

/// Adds `amounts` to a scope's limits (provisioning). Where the scope sets no
/// limit for a resource, `limit_unlimited` decides whether it stays unlimited
/// or gets one: the amount on top of what is already committed there (what
/// is in use, or what its projects or partitions already hold if more), so
/// the amount is really new room and nothing below ends up over its parent.
/// Call under the tenant's lock.
///
/// # Errors
/// The database fails or a limit overflows.
pub(crate) async fn raise(
    tx: &mut PgConnection,
    tenant: Uuid,
    level: Level,
    owner: Uuid,
    amounts: &ResourceList,
    limit_unlimited: bool,
) -> Result<()> {
    let scope = Scope {
        level,
        owner,
        key: String::new(),
    };
    let current = limits(tx, &scope).await?;
    let children = match level {
        // What is carved from the tenant: its projects' limits, and its
        // partitions' under projects that set none.
        Level::Tenant => Tree::load(tx, tenant).await?.charged_to_tenant(),
        Level::Project => {
            let partitions = sqlx::query_scalar!("SELECT id FROM partitions WHERE project_id = $1", owner)
                .fetch_all(&mut *tx)
                .await?;
            siblings_sum(tx, Level::Partition, &partitions).await?
        }
        _ => BTreeMap::new(),
    };
    let too_large = || Error::invalid("count", "makes the quota too large");
    let mut raised = Vec::new();
    for (resource, q) in &amounts.0 {
        let new = match current.get(resource) {
            Some((Some(hard), _)) => Some(hard.checked_add(q.milli()).ok_or_else(too_large)?),
            _ if limit_unlimited => {
                let used = current.get(resource).map_or(0, |(_, u)| *u);
                let committed = used.max(children.get(resource).copied().unwrap_or(0));
                Some(committed.checked_add(q.milli()).ok_or_else(too_large)?)
            }
            _ => None,
        };
        if let Some(new) = new {
            raised.push((resource.as_str(), new));
        }
    }
    let (resources, values): (Vec<&str>, Vec<i64>) = raised.into_iter().unzip();
    sqlx::query!(
        "INSERT INTO quotas (tenant_id, level, owner_id, key, resource, hard)
         SELECT $1, $2, $3, '', r, h FROM unnest($4::text[], $5::bigint[]) AS t(r, h)
         ON CONFLICT (level, owner_id, key, resource) DO UPDATE SET hard = EXCLUDED.hard",
        tenant,
        level.as_str(),
        owner,
        &resources as &[&str],
        &values,
    )
    .execute(&mut *tx)
    .await?;
    let hard = hard(tx, level, owner).await?;
    let event = pb::QuotaChanged {
        tenant_id: tenant.to_string(),
        level: level.as_str().into(),
        owner_id: owner.to_string(),
        key: String::new(),
        hard: hard.to_strings().into_iter().collect(),
    };
    outbox::record(tx, CHANGED, Some(tenant), &event).await?;
    Ok(())
}

/// The limits a tenant's projects and partitions set, in milli-units: what
/// carving through a level that sets no limit needs to see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Tree {
    /// Project -> resource -> hard.
    projects: BTreeMap<Uuid, BTreeMap<Resource, i64>>,
    /// Partition -> (its project, resource -> hard).
    partitions: BTreeMap<Uuid, (Uuid, BTreeMap<Resource, i64>)>,
}

impl Tree {
    /// Each tenant-level row (`key = ''`) of the tenant's quotas: level,
    /// owner, resource, hard, used and, for a partition, its project.
    async fn rows(tx: &mut PgConnection, tenant: Uuid) -> Result<Vec<TreeRow>> {
        Ok(sqlx::query_as!(
            TreeRow,
            r#"SELECT q.level, q.owner_id, q.resource, q.hard, q.used, pa.project_id AS "project_id?"
           FROM quotas q LEFT JOIN partitions pa ON q.level = 'partition' AND pa.id = q.owner_id
           WHERE q.tenant_id = $1 AND q.key = ''"#,
            tenant,
        )
        .fetch_all(&mut *tx)
        .await?)
    }

    fn of(rows: &[TreeRow]) -> Self {
        let mut tree = Self::default();
        for r in rows {
            let (Some(resource), Some(hard)) = (Resource::parse(&r.resource), r.hard) else {
                continue;
            };
            match (level_of(&r.level), r.project_id) {
                (Level::Project, _) => {
                    tree.projects.entry(r.owner_id).or_default().insert(resource, hard);
                }
                (Level::Partition, Some(project)) => {
                    tree.partitions
                        .entry(r.owner_id)
                        .or_insert_with(|| (project, BTreeMap::new()))
                        .1
                        .insert(resource, hard);
                }
                _ => {}
            }
        }
        tree
    }

    async fn load(tx: &mut PgConnection, tenant: Uuid) -> Result<Self> {
        Ok(Self::of(&Self::rows(tx, tenant).await?))
    }

    /// Whether `project` sets a limit for `resource`.
    fn limits(&self, project: Uuid, resource: Resource) -> bool {
        self.projects.get(&project).is_some_and(|l| l.contains_key(&resource))
    }

    /// What the tenant's limit of each resource is carved into: each
    /// project's own limit, and for a project that sets none, what its
    /// partitions set (carved from the tenant through it). A child's limit
    /// counts against the nearest ancestor that sets one.
    fn charged_to_tenant(&self) -> BTreeMap<Resource, i64> {
        let mut sums: BTreeMap<Resource, i64> = BTreeMap::new();
        for limits in self.projects.values() {
            for (r, h) in limits {
                *sums.entry(*r).or_default() += h;
            }
        }
        for (project, limits) in self.partitions.values() {
            for (r, h) in limits.iter().filter(|(r, _)| !self.limits(*project, **r)) {
                *sums.entry(*r).or_default() += h;
            }
        }
        sums
    }

    /// What `project`'s partitions set, per resource.
    fn partitions_of(&self, project: Uuid) -> BTreeMap<Resource, i64> {
        let mut sums: BTreeMap<Resource, i64> = BTreeMap::new();
        for (_, limits) in self.partitions.values().filter(|(p, _)| *p == project) {
            for (r, h) in limits {
                *sums.entry(*r).or_default() += h;
            }
        }
        sums
    }
}

struct TreeRow {
    level: String,
    owner_id: Uuid,
    resource: String,
    hard: Option<i64>,
    used: i64,
    project_id: Option<Uuid>,
}

fn milli_map(list: &ResourceList) -> BTreeMap<Resource, i64> {
    list.0.iter().map(|(r, q)| (*r, q.milli())).collect()
}

/// A child's limit over its nearest limiting ancestor: bad input on the
/// field `hard.<resource>`, naming the ancestor.
/// `children` names what the ancestor is carved into when it is the parent;
/// `through` the level in between that sets no limit, when it is not.
fn over(resource: Resource, ancestor: &str, children: &str, limit: i64, sum: i64, through: Option<&str>) -> Error {
    let (what, through) = match through {
        None => (children, String::new()),
        Some(p) => (
            "what is carved from it",
            format!(
                " ({p} sets no {} limit, so the nearest level above that does is {ancestor})",
                resource.as_str()
            ),
        ),
    };
    Error::invalid(
        format!("hard.{}", resource.as_str()),
        format!(
            "{ancestor} has {} of {}; {what} would hold {}{through}",
            resource.amount(limit),
            resource.as_str(),
            resource.amount(sum)
        ),
    )
}

/// Checks a tenant's quota holds together after provisioning changed it:
/// at every scope nothing is used beyond its limit, the DR reserve is within
/// the total, the projects' limits within the tenant's and each project's
/// partitions' within the project's. Call under the tenant's lock, before
/// committing.
///
/// # Errors
/// [`Error::FailedPrecondition`] naming the first level that would be
/// over-committed.
pub(crate) async fn verify(tx: &mut PgConnection, tenant: Uuid) -> Result<()> {
    let rows = Tree::rows(tx, tenant).await?;
    // Partitions under a project that sets no limit for a resource are
    // carved from the tenant through it.
    let tree = Tree::of(&rows);
    // (level, owner, resource) -> hard; children's sums per (parent, resource).
    let mut hard: BTreeMap<(Level, Uuid, Resource), i64> = BTreeMap::new();
    let mut children: BTreeMap<(Level, Uuid, Resource), i64> = BTreeMap::new();
    for r in &rows {
        let (level, Some(resource)) = (level_of(&r.level), Resource::parse(&r.resource)) else {
            continue;
        };
        let Some(h) = r.hard else { continue };
        if r.used > h {
            return Err(Error::FailedPrecondition(format!(
                "{} {}: {} would be limited to {} while {} is in use",
                level.as_str(),
                r.owner_id,
                resource.as_str(),
                resource.amount(h),
                resource.amount(r.used)
            )));
        }
        hard.insert((level, r.owner_id, resource), h);
        // The tenant's children are summed by the tree below (projects, and
        // partitions of projects that set no limit).
        let parent = match (level, r.project_id) {
            (Level::DrReserve, _) => Some((Level::Tenant, tenant)),
            (Level::Partition, Some(project)) if tree.limits(project, resource) => Some((Level::Project, project)),
            _ => None,
        };
        if let Some((parent_level, parent)) = parent {
            // The reserve is a part of the total, not a child beside the projects.
            let key = if level == Level::DrReserve {
                (Level::DrReserve, parent, resource)
            } else {
                (parent_level, parent, resource)
            };
            *children.entry(key).or_default() += h;
        }
    }
    for (resource, sum) in tree.charged_to_tenant() {
        children.insert((Level::Tenant, tenant, resource), sum);
    }
    for ((level, owner, resource), sum) in children {
        let parent_level = if level == Level::DrReserve {
            Level::Tenant
        } else {
            level
        };
        if let Some(limit) = hard.get(&(parent_level, owner, resource))
            && sum > *limit
        {
            let what = match level {
                Level::DrReserve => "the DR reserve",
                Level::Tenant => "its projects",
                _ => "its partitions",
            };
            return Err(Error::FailedPrecondition(format!(
                "{} {owner} has {} of {}; {what} would hold {}",
                parent_level.as_str(),
                resource.amount(*limit),
                resource.as_str(),
                resource.amount(sum)
            )));
        }
    }
    Ok(())
}

/// The limits a tenant, project or partition sets (not a split's).
///
/// # Errors
/// The database fails.
pub(crate) async fn hard(tx: &mut PgConnection, level: Level, owner: Uuid) -> Result<ResourceList> {
    let scope = Scope {
        level,
        owner,
        key: String::new(),
    };
    Ok(ResourceList(
        limits(tx, &scope)
            .await?
            .into_iter()
            .filter_map(|(r, (h, _))| Some((r, r.amount(h?))))
            .collect(),
    ))
}

/// Refuses when `children` (with the new limits) would exceed `parent`.
fn carve(
    parent_name: &str,
    parent: &BTreeMap<Resource, (Option<i64>, i64)>,
    children: &BTreeMap<Resource, i64>,
    what: &str,
) -> Result<()> {
    for (resource, sum) in children {
        if let Some((Some(hard), _)) = parent.get(resource)
            && sum > hard
        {
            return Err(Error::FailedPrecondition(format!(
                "{parent_name} has {} of {}; {what} would hold {}",
                resource.amount(*hard),
                resource.as_str(),
                resource.amount(*sum)
            )));
        }
    }
    Ok(())
}

fn add(mut sums: BTreeMap<Resource, i64>, list: &ResourceList) -> BTreeMap<Resource, i64> {
    for (r, q) in &list.0 {
        *sums.entry(*r).or_default() += q.milli();
    }
    sums
}

/// Quotas in the tenancy schema.
#[derive(Clone)]
pub struct Quotas {
    outbox: Outbox,
}

impl Quotas {
    /// Quotas stored in the outbox's schema.
    pub fn new(outbox: Outbox) -> Self {
        Self { outbox }
    }

    /// Sets a tenant's quota, its splits and DR reserve. Platform
    /// administrators only (tenants ask for more through resource requests).
    ///
    /// # Errors
    /// Not allowed, no such tenant, a limit below what is in use or below
    /// what the projects hold, a split or reserve above the total.
    pub async fn set_tenant(&self, caller: &Caller, tenant: Uuid, quota: &TenantQuota) -> Result<()> {
        caller.require_platform_admin()?;
        let mut tx = self.outbox.pool().begin().await?;
        let name = sqlx::query_scalar!("SELECT name FROM tenants WHERE id = $1", tenant)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::not_found("tenant", tenant))?;
        lock_tenant(&mut tx, tenant).await?;
        let label = format!("tenant {name}");
        let total: BTreeMap<Resource, (Option<i64>, i64)> =
            quota.hard.0.iter().map(|(r, q)| (*r, (Some(q.milli()), 0))).collect();
        carve(
            &label,
            &total,
            &Tree::load(&mut tx, tenant).await?.charged_to_tenant(),
            "its projects",
        )?;
        for (what, list) in std::iter::once(("the DR reserve".to_string(), &quota.dr_reserve))
            .chain(
                quota
                    .clusters
                    .iter()
                    .map(|(c, l)| (format!("the split for cluster {c}"), l)),
            )
            .chain(
                quota
                    .data_centres
                    .iter()
                    .map(|(d, l)| (format!("the split for data centre {d}"), l)),
            )
        {
            carve(&label, &total, &add(BTreeMap::new(), list), &what)?;
        }
        for resource in quota.dr_reserve.0.keys() {
            if !quota.hard.0.contains_key(resource) {
                return Err(Error::invalid(
                    format!("dr_reserve.{}", resource.as_str()),
                    "a reserve needs a total for the same resource",
                ));
            }
        }
        let scope = |level, key: &str| Scope {
            level,
            owner: tenant,
            key: key.to_string(),
        };
        replace(&mut tx, tenant, &scope(Level::Tenant, ""), &label, &quota.hard).await?;
        replace(&mut tx, tenant, &scope(Level::DrReserve, ""), &label, &quota.dr_reserve).await?;
        // Splits no longer named are removed (their usage stays counted at the tenant).
        for (level, splits) in [
            (Level::Cluster, &quota.clusters),
            (Level::DataCentre, &quota.data_centres),
        ] {
            let keys: Vec<String> = splits.keys().cloned().collect();
            sqlx::query!(
                "UPDATE quotas SET hard = NULL WHERE level = $1 AND owner_id = $2 AND NOT (key = ANY($3))",
                level.as_str(),
                tenant,
                &keys,
            )
            .execute(&mut *tx)
            .await?;
            for (key, list) in splits {
                replace(&mut tx, tenant, &scope(level, key), &format!("{label} in {key}"), list).await?;
            }
        }
        self.outbox.commit(tx).await
    }

    /// Sets a project's quota, carved from its tenant's. Tenant admins.
    ///
    /// # Errors
    /// Not allowed, no such project, the projects would exceed the tenant,
    /// or the limit is below its partitions' limits or what is in use.
    pub async fn set_project(&self, caller: &Caller, project: Uuid, hard: &ResourceList) -> Result<()> {
        let mut tx = self.outbox.pool().begin().await?;
        let owner = sqlx::query!(
            "SELECT p.tenant_id, p.name, t.name AS tenant_name
             FROM projects p JOIN tenants t ON t.id = p.tenant_id WHERE p.id = $1",
            project,
        )
        .fetch_optional(&mut *tx)
        .await?
        .filter(|o| caller.can_see(o.tenant_id))
        .ok_or_else(|| Error::not_found("project", project))?;
        let (tenant, name, tenant_name) = (owner.tenant_id, owner.name, owner.tenant_name);
        caller.require(tenant, Role::TenantAdmin, "project", project)?;
        lock_tenant(&mut tx, tenant).await?;
        let tenant_limits = limits(
            &mut tx,
            &Scope {
                level: Level::Tenant,
                owner: tenant,
                key: String::new(),
            },
        )
        .await?;
        let mut tree = Tree::load(&mut tx, tenant).await?;
        let partitions = tree.partitions_of(project);
        let before = tree.projects.insert(project, milli_map(hard)).unwrap_or_default();
        let charged = tree.charged_to_tenant();
        let ancestor = format!("tenant {tenant_name}");
        for (resource, (limit, _)) in &tenant_limits {
            let (Some(limit), Some(sum)) = (*limit, charged.get(resource).copied()) else {
                continue;
            };
            // Only what this change moves is judged: the project's own
            // limit, or (when it stops setting one) its partitions' limits,
            // which are then carved from the tenant through it.
            let moved =
                hard.0.contains_key(resource) || (before.contains_key(resource) && partitions.contains_key(resource));
            if moved && sum > limit {
                let through = (!hard.0.contains_key(resource)).then(|| format!("project {name}"));
                return Err(over(
                    *resource,
                    &ancestor,
                    "its projects",
                    limit,
                    sum,
                    through.as_deref(),
                ));
            }
        }
        let new: BTreeMap<Resource, (Option<i64>, i64)> =
            hard.0.iter().map(|(r, q)| (*r, (Some(q.milli()), 0))).collect();
        carve(&format!("project {name}"), &new, &partitions, "its partitions")?;
        replace(
            &mut tx,
            tenant,
            &Scope {
                level: Level::Project,
                owner: project,
                key: String::new(),
            },
            &format!("project {name}"),
            hard,
        )
        .await?;
        self.outbox.commit(tx).await
    }

    /// Sets a partition's ResourceQuota and LimitRange, carved from its
    /// project; federation writes both into the cluster. Tenant admins.
    ///
    /// # Errors
    /// Not allowed, no such partition, the partitions would exceed the
    /// project, or the limit is below what is in use.
    pub async fn set_partition(
        &self,
        caller: &Caller,
        partition: &Partition,
        hard: &ResourceList,
        limit_range: LimitRange,
    ) -> Result<()> {
        caller.require(partition.tenant_id, Role::TenantAdmin, "partition", partition.id)?;
        let mut tx = self.outbox.pool().begin().await?;
        lock_tenant(&mut tx, partition.tenant_id).await?;
        let project_name = sqlx::query_scalar!("SELECT name FROM projects WHERE id = $1", partition.project_id)
            .fetch_one(&mut *tx)
            .await?;
        let tenant_name = sqlx::query_scalar!("SELECT name FROM tenants WHERE id = $1", partition.tenant_id)
            .fetch_one(&mut *tx)
            .await?;
        let project_limits = limits(
            &mut tx,
            &Scope {
                level: Level::Project,
                owner: partition.project_id,
                key: String::new(),
            },
        )
        .await?;
        let tenant_limits = limits(
            &mut tx,
            &Scope {
                level: Level::Tenant,
                owner: partition.tenant_id,
                key: String::new(),
            },
        )
        .await?;
        let mut tree = Tree::load(&mut tx, partition.tenant_id).await?;
        tree.partitions
            .insert(partition.id, (partition.project_id, milli_map(hard)));
        let in_project = tree.partitions_of(partition.project_id);
        let charged = tree.charged_to_tenant();
        // Each limit is checked against the nearest level above that sets
        // one: the project, else the tenant.
        for resource in hard.0.keys() {
            let (ancestor, limit, sum, through) = match (project_limits.get(resource), tenant_limits.get(resource)) {
                (Some((Some(limit), _)), _) => (
                    format!("project {project_name}"),
                    *limit,
                    in_project.get(resource).copied().unwrap_or(0),
                    None,
                ),
                (_, Some((Some(limit), _))) => (
                    format!("tenant {tenant_name}"),
                    *limit,
                    charged.get(resource).copied().unwrap_or(0),
                    Some(format!("project {project_name}")),
                ),
                _ => continue,
            };
            if sum > limit {
                return Err(over(
                    *resource,
                    &ancestor,
                    "its partitions",
                    limit,
                    sum,
                    through.as_deref(),
                ));
            }
        }
        let label = format!("partition {} in {}", partition.namespace, partition.cluster);
        replace(
            &mut tx,
            partition.tenant_id,
            &Scope {
                level: Level::Partition,
                owner: partition.id,
                key: String::new(),
            },
            &label,
            hard,
        )
        .await?;
        sqlx::query!(
            "UPDATE partitions SET limit_range = $2 WHERE id = $1",
            partition.id,
            sqlx::types::Json(&limit_range) as _,
        )
        .execute(&mut *tx)
        .await?;
        let updated = Partition {
            limit_range,
            ..partition.clone()
        };
        partition::announce(&mut tx, partition::UPDATED, &updated, hard).await?;
        self.outbox.commit(tx).await
    }

    /// Used against hard at every level of a tenant the caller can see.
    ///
    /// # Errors
    /// The tenant is not visible to the caller.
    pub async fn usage(&self, caller: &Caller, tenant: Uuid) -> Result<Vec<Usage>> {
        crate::tenant::require_visible(self.outbox.pool(), caller, tenant).await?;
        let rows = sqlx::query_as!(
            Row,
            "SELECT level, owner_id, key, resource, hard, used FROM quotas
             WHERE tenant_id = $1 ORDER BY level, owner_id, key, resource",
            tenant,
        )
        .fetch_all(self.outbox.pool())
        .await?;
        let mut usage: Vec<Usage> = Vec::new();
        for r in rows {
            let scope = Scope {
                level: level_of(&r.level),
                owner: r.owner_id,
                key: r.key,
            };
            let Some(resource) = Resource::parse(&r.resource) else {
                continue;
            };
            let line = Line {
                resource,
                hard: r.hard.map(|h| resource.amount(h)),
                used: resource.amount(r.used),
            };
            match usage.last_mut() {
                Some(u) if u.scope == scope => u.lines.push(line),
                _ => usage.push(Usage {
                    scope,
                    lines: vec![line],
                }),
            }
        }
        Ok(usage)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn limits(pairs: &[(Resource, i64)]) -> BTreeMap<Resource, (Option<i64>, i64)> {
        pairs.iter().map(|(r, h)| (*r, (Some(*h), 0))).collect()
    }

    proptest! {
        /// Carving accepts exactly the children whose sums stay within the
        /// parent, for every resource the parent limits.
        #[test]
        fn carving_never_lets_children_exceed_their_parent(
            parent in proptest::collection::vec(0i64..1_000_000, 3),
            children in proptest::collection::vec(proptest::collection::vec(0i64..400_000, 3), 0..6),
        ) {
            let resources = [Resource::RequestsCpu, Resource::RequestsMemory, Resource::Pods];
            let parent_limits = limits(&resources.iter().copied().zip(parent.iter().copied()).collect::<Vec<_>>());
            let mut sums = BTreeMap::new();
            for child in &children {
                let list = ResourceList(resources.iter().zip(child).map(|(r, m)| (*r, Quantity::from_milli(*m))).collect());
                sums = add(sums, &list);
            }
            let fits = resources.iter().zip(&parent).all(|(r, p)| sums.get(r).copied().unwrap_or(0) <= *p);
            prop_assert_eq!(carve("tenant t", &parent_limits, &sums, "its projects").is_ok(), fits);
        }
    }

    #[test]
    fn partitions_of_a_project_without_a_limit_are_charged_to_the_tenant() {
        let (web, api) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut tree = Tree::default();
        tree.projects
            .insert(web, BTreeMap::from([(Resource::RequestsCpu, 4000)]));
        tree.projects.insert(api, BTreeMap::from([(Resource::Pods, 30_000)]));
        tree.partitions.insert(
            Uuid::from_u128(3),
            (
                web,
                BTreeMap::from([(Resource::Pods, 1_000_000), (Resource::RequestsCpu, 3000)]),
            ),
        );
        tree.partitions
            .insert(Uuid::from_u128(4), (api, BTreeMap::from([(Resource::Pods, 20_000)])));
        assert_eq!(
            tree.charged_to_tenant(),
            BTreeMap::from([(Resource::Pods, 1_030_000), (Resource::RequestsCpu, 4000)]),
            "web's partition's pods count against the tenant; its cpu and api's pods against their project"
        );
        assert_eq!(tree.partitions_of(api), BTreeMap::from([(Resource::Pods, 20_000)]));
        assert!(tree.limits(api, Resource::Pods) && !tree.limits(web, Resource::Pods));
    }

    #[test]
    fn a_parent_that_does_not_limit_a_resource_lets_children_take_any_amount() {
        let parent = limits(&[(Resource::RequestsCpu, 1000)]);
        let children = BTreeMap::from([(Resource::Pods, i64::MAX / 2)]);
        assert!(carve("tenant t", &parent, &children, "its projects").is_ok());
    }
}
