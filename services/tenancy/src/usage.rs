//! Usage beyond reservations: what member clusters report their namespaces
//! really use (from federation), and the history of usage for reports.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kernel::caller::Caller;
use kernel::{Error, Result};
use sqlx::PgPool;
use uuid::Uuid;

use crate::resource::{Resource, ResourceList};

/// How often every level's usage is written to the history.
pub const SNAPSHOT: Duration = Duration::from_secs(300);

/// One point of history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// The level (tenant, cluster, data_centre, project, partition).
    pub level: String,
    /// The tenant, project or partition.
    pub owner: Uuid,
    /// The cluster or data centre of a split.
    pub key: String,
    /// The resource.
    pub resource: Resource,
    /// The limit then, if any.
    pub hard: Option<i64>,
    /// Held by reservations then.
    pub used: Option<i64>,
    /// Reported by the cluster then.
    pub observed: Option<i64>,
    /// When.
    pub at: DateTime<Utc>,
}

/// What member clusters report a tenant's namespaces use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Per partition.
    pub partitions: BTreeMap<Uuid, ResourceList>,
    /// Summed per cluster name.
    pub clusters: BTreeMap<String, ResourceList>,
    /// Summed per data centre name.
    pub data_centres: BTreeMap<String, ResourceList>,
}

struct HistoryRow {
    level: String,
    owner_id: Uuid,
    key: String,
    resource: String,
    hard: Option<i64>,
    used: Option<i64>,
    observed: Option<i64>,
    recorded_at: DateTime<Utc>,
}

/// Usage reports and history in the tenancy schema.
#[derive(Clone)]
pub struct UsageHistory {
    pool: PgPool,
}

impl UsageHistory {
    /// Stored in `pool`'s schema.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Records what a partition's namespace uses, as its cluster reports it.
    /// Platform services only (federation).
    ///
    /// # Errors
    /// Not a platform service, or no such partition.
    pub async fn report(
        &self,
        caller: &Caller,
        partition: Uuid,
        observed: &ResourceList,
        at: DateTime<Utc>,
    ) -> Result<()> {
        caller.require_platform_admin()?;
        let tenant = sqlx::query_scalar!("SELECT tenant_id FROM partitions WHERE id = $1", partition)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::not_found("partition", partition))?;
        let (resources, amounts): (Vec<&str>, Vec<i64>) =
            observed.0.iter().map(|(r, q)| (r.as_str(), q.milli())).unzip();
        let mut tx = self.pool.begin().await?;
        // A late report never overwrites a newer one.
        sqlx::query!(
            "INSERT INTO observed_usage (partition_id, resource, observed, reported_at)
             SELECT $1, r, o, $4 FROM unnest($2::text[], $3::bigint[]) AS t(r, o)
             ON CONFLICT (partition_id, resource) DO UPDATE
             SET observed = EXCLUDED.observed, reported_at = EXCLUDED.reported_at
             WHERE observed_usage.reported_at <= EXCLUDED.reported_at",
            partition,
            &resources as &[&str],
            &amounts,
            at,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO usage_history (tenant_id, level, owner_id, resource, observed, recorded_at)
             SELECT $1, 'partition', $2, r, o, $5 FROM unnest($3::text[], $4::bigint[]) AS t(r, o)",
            tenant,
            partition,
            &resources as &[&str],
            &amounts,
            at,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// What the member clusters report a tenant's namespaces use: per
    /// partition, and summed per cluster and per data centre (each
    /// partition counted where it is).
    ///
    /// # Errors
    /// The tenant is not visible to the caller.
    pub async fn observed(&self, caller: &Caller, tenant: Uuid) -> Result<Observed> {
        crate::tenant::require_visible(&self.pool, caller, tenant).await?;
        let rows = sqlx::query!(
            "SELECT o.partition_id, p.cluster, p.data_centre, o.resource, o.observed
             FROM observed_usage o JOIN partitions p ON p.id = o.partition_id WHERE p.tenant_id = $1",
            tenant,
        )
        .fetch_all(&self.pool)
        .await?;
        let mut partitions: BTreeMap<Uuid, BTreeMap<Resource, i64>> = BTreeMap::new();
        let mut clusters: BTreeMap<String, BTreeMap<Resource, i64>> = BTreeMap::new();
        let mut data_centres: BTreeMap<String, BTreeMap<Resource, i64>> = BTreeMap::new();
        for row in rows {
            if let Some(r) = Resource::parse(&row.resource) {
                *partitions.entry(row.partition_id).or_default().entry(r).or_default() += row.observed;
                *clusters.entry(row.cluster).or_default().entry(r).or_default() += row.observed;
                *data_centres.entry(row.data_centre).or_default().entry(r).or_default() += row.observed;
            }
        }
        fn lists<K: Ord>(sums: BTreeMap<K, BTreeMap<Resource, i64>>) -> BTreeMap<K, ResourceList> {
            sums.into_iter()
                .map(|(k, m)| (k, ResourceList(m.into_iter().map(|(r, v)| (r, r.amount(v))).collect())))
                .collect()
        }
        Ok(Observed {
            partitions: lists(partitions),
            clusters: lists(clusters),
            data_centres: lists(data_centres),
        })
    }

    /// Writes every level's hard and used to the history (the periodic snapshot).
    ///
    /// # Errors
    /// The database fails.
    pub async fn snapshot(&self) -> Result<u64> {
        let written = sqlx::query!(
            "INSERT INTO usage_history (tenant_id, level, owner_id, key, resource, hard, used)
             SELECT tenant_id, level, owner_id, key, resource, hard, used FROM quotas WHERE level <> 'dr_reserve'"
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(written)
    }

    /// A tenant's history between two times, optionally of one resource.
    ///
    /// # Errors
    /// The tenant is not visible to the caller, or the window is inverted.
    pub async fn history(
        &self,
        caller: &Caller,
        tenant: Uuid,
        resource: Option<Resource>,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Point>> {
        crate::tenant::require_visible(&self.pool, caller, tenant).await?;
        if since > until {
            return Err(Error::invalid("since", "must not be after until"));
        }
        let rows = sqlx::query_as!(
            HistoryRow,
            "SELECT level, owner_id, key, resource, hard, used, observed, recorded_at FROM usage_history
             WHERE tenant_id = $1 AND recorded_at BETWEEN $2 AND $3 AND ($4::text IS NULL OR resource = $4)
             ORDER BY recorded_at, level, owner_id, resource LIMIT 10000",
            tenant,
            since,
            until,
            resource.map(|r| r.as_str()),
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(Point {
                    level: r.level,
                    owner: r.owner_id,
                    key: r.key,
                    resource: Resource::parse(&r.resource)?,
                    hard: r.hard,
                    used: r.used,
                    observed: r.observed,
                    at: r.recorded_at,
                })
            })
            .collect())
    }
}
