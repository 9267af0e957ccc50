//! Admission by reservation. Every deploy, scale-out or failover move first
//! reserves quota in a partition; the reservation is checked against every
//! level (partition -> project -> cluster and data-centre splits -> tenant) in
//! one transaction under the tenant's admission lock, and either holds the
//! amounts or is refused with a message naming the level, the resource, what
//! was asked and what is left. A held reservation is committed when the work is
//! applied, released when it is undone, and expires when neither happens
//! within its time to live.
//!
//! # Guarantees
//! - Nothing is over-committed, under any concurrency: see [`crate::quota`].
//! - A repeated idempotency key returns the first answer, refusals included.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::{Error, Result, id};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::quota::{Level, lock_tenant};
use crate::resource::{Resource, ResourceList};

/// Time to live when the caller gives none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// The longest time to live: a reservation is a promise to apply soon.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// What the quota is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Deploys and scale-outs: must leave the tenant's DR reserve free.
    Normal,
    /// Failover moves: may use the DR reserve.
    Failover,
}

impl Purpose {
    fn as_str(&self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Failover => "failover",
        }
    }
}

/// Where a reservation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Held, waiting for commit or release.
    Reserved,
    /// Held for good (the work was applied).
    Committed,
    /// Given back.
    Released,
    /// Given back because its time to live passed.
    Expired,
    /// Never held: over quota.
    Refused,
}

impl State {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Committed => "committed",
            Self::Released => "released",
            Self::Expired => "expired",
            Self::Refused => "refused",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "committed" => Self::Committed,
            "released" => Self::Released,
            "expired" => Self::Expired,
            "refused" => Self::Refused,
            _ => Self::Reserved,
        }
    }
}

/// A validated request to reserve.
#[derive(Debug, Clone)]
pub struct Request {
    /// The partition the amounts are for.
    pub partition: Uuid,
    /// What to hold.
    pub amounts: ResourceList,
    /// Makes retries safe: the same key returns the first answer.
    pub idempotency_key: String,
    /// How long to hold before it expires uncommitted.
    pub ttl: Duration,
    /// Normal or failover.
    pub purpose: Purpose,
}

impl Request {
    /// Validates raw input; errors name the field.
    ///
    /// # Errors
    /// No amounts, a bad key or TTL.
    pub fn parse(partition: Uuid, amounts: ResourceList, idempotency_key: &str, ttl_seconds: u64, failover: bool) -> Result<Self> {
        if amounts.is_empty() {
            return Err(Error::invalid("amounts", "must name at least one resource"));
        }
        let key = idempotency_key.trim();
        if key.is_empty() || key.len() > 200 {
            return Err(Error::invalid("idempotency_key", "must be 1-200 characters"));
        }
        let ttl = if ttl_seconds == 0 { DEFAULT_TTL } else { Duration::from_secs(ttl_seconds) };
        if ttl > MAX_TTL {
            return Err(Error::invalid("ttl_seconds", format!("must be at most {}", MAX_TTL.as_secs())));
        }
        Ok(Self { partition, amounts, idempotency_key: key.to_string(), ttl, purpose: if failover { Purpose::Failover } else { Purpose::Normal } })
    }
}

/// A reservation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Its id.
    pub id: Uuid,
    /// The tenant charged.
    pub tenant_id: Uuid,
    /// The project charged.
    pub project_id: Uuid,
    /// The partition charged.
    pub partition_id: Uuid,
    /// The partition's cluster.
    pub cluster: String,
    /// The partition's data centre.
    pub data_centre: String,
    /// The caller's key.
    pub idempotency_key: String,
    /// What is held.
    pub amounts: ResourceList,
    /// Where it is in its life.
    pub state: State,
    /// Why it was refused.
    pub refusal: Option<String>,
    /// When an uncommitted reservation expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    tenant_id: Uuid,
    project_id: Uuid,
    partition_id: Uuid,
    cluster: String,
    data_centre: String,
    idempotency_key: String,
    amounts: sqlx::types::Json<BTreeMap<String, i64>>,
    state: String,
    refusal: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<Row> for Reservation {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            project_id: r.project_id,
            partition_id: r.partition_id,
            cluster: r.cluster,
            data_centre: r.data_centre,
            idempotency_key: r.idempotency_key,
            amounts: ResourceList::from_milli(r.amounts.0),
            state: State::parse(&r.state),
            refusal: r.refusal,
            expires_at: r.expires_at,
            created_at: r.created_at,
        }
    }
}

macro_rules! columns {
    () => {
        "id, tenant_id, project_id, partition_id, cluster, data_centre, idempotency_key, amounts, state, refusal, expires_at, created_at"
    };
}

/// The answer a refused reservation gives, now and on every retry.
fn refused(r: &Reservation) -> Error {
    Error::ResourceExhausted(r.refusal.clone().unwrap_or_else(|| "over quota".into()))
}

/// Adds `sign * amounts` to `used` at every level the reservation is charged to.
async fn charge(tx: &mut PgConnection, r: &Reservation, sign: i64) -> Result<()> {
    let levels = [
        (Level::Tenant, r.tenant_id, ""),
        (Level::Cluster, r.tenant_id, r.cluster.as_str()),
        (Level::DataCentre, r.tenant_id, r.data_centre.as_str()),
        (Level::Project, r.project_id, ""),
        (Level::Partition, r.partition_id, ""),
    ];
    let mut level = Vec::new();
    let mut owner = Vec::new();
    let mut key = Vec::new();
    let mut resource = Vec::new();
    let mut amount = Vec::new();
    for (l, o, k) in levels {
        for (res, q) in &r.amounts.0 {
            level.push(l.as_str());
            owner.push(o);
            key.push(k);
            resource.push(res.as_str());
            amount.push(sign * q.milli());
        }
    }
    // Taking creates the rows it needs; giving back only updates (an insert's
    // candidate row would fail `used >= 0` before the conflict is seen).
    let statement = if sign > 0 {
        "INSERT INTO quotas (tenant_id, level, owner_id, key, resource, used)
         SELECT $1, l, o, k, r, a FROM unnest($2::text[], $3::uuid[], $4::text[], $5::text[], $6::bigint[]) AS t(l, o, k, r, a)
         ON CONFLICT (level, owner_id, key, resource) DO UPDATE SET used = quotas.used + EXCLUDED.used"
    } else {
        "UPDATE quotas q SET used = q.used + t.a
         FROM unnest($2::text[], $3::uuid[], $4::text[], $5::text[], $6::bigint[]) AS t(l, o, k, r, a)
         WHERE q.tenant_id = $1 AND q.level = t.l AND q.owner_id = t.o AND q.key = t.k AND q.resource = t.r"
    };
    sqlx::query(statement)
    .bind(r.tenant_id)
    .bind(&level)
    .bind(&owner)
    .bind(&key)
    .bind(&resource)
    .bind(&amount)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Expires the tenant's reservations whose time is up and gives back what
/// they held. Call under the tenant's lock.
async fn expire(tx: &mut PgConnection, tenant: Uuid) -> Result<u64> {
    let due: Vec<Row> = sqlx::query_as(concat!(
        "UPDATE reservations SET state = 'expired', updated_at = now()
         WHERE tenant_id = $1 AND state = 'reserved' AND expires_at < now() RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .fetch_all(&mut *tx)
    .await?;
    let count = due.len() as u64;
    for r in due {
        charge(tx, &Reservation::from(r), -1).await?;
    }
    Ok(count)
}

/// The first level, from the partition up, where `ask` does not fit; as the
/// refusal message.
fn first_shortfall(
    ask: &ResourceList,
    purpose: Purpose,
    limits: &BTreeMap<(Level, Resource), (Option<i64>, i64)>,
    names: &BTreeMap<Level, String>,
) -> Option<String> {
    for level in [Level::Partition, Level::Project, Level::Cluster, Level::DataCentre, Level::Tenant] {
        for (resource, q) in &ask.0 {
            let Some((Some(hard), used)) = limits.get(&(level, *resource)) else { continue };
            let reserve = match (level, purpose) {
                (Level::Tenant, Purpose::Normal) => limits.get(&(Level::DrReserve, *resource)).and_then(|(h, _)| *h).unwrap_or(0),
                _ => 0,
            };
            let left = (hard - reserve - used).max(0);
            if q.milli() > left {
                let kept = if reserve > 0 { format!(" ({} kept for failover)", resource.amount(reserve)) } else { String::new() };
                return Some(format!(
                    "{} quota exceeded for {}: asked {}, {} left of {}{kept}",
                    names[&level],
                    resource.as_str(),
                    q,
                    resource.amount(left),
                    resource.amount(*hard),
                ));
            }
        }
    }
    None
}

/// Reservations in the tenancy schema.
#[derive(Clone)]
pub struct Reservations {
    pool: PgPool,
}

impl Reservations {
    /// Reservations stored in `pool`'s schema.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Holds `request.amounts` in its partition, or refuses.
    ///
    /// # Errors
    /// [`Error::ResourceExhausted`] naming the level, resource, ask and what is
    /// left; not found or not allowed (operators and above); the key was used
    /// before for a different request.
    pub async fn reserve(&self, caller: &Caller, request: &Request) -> Result<Reservation> {
        let mut tx = self.pool.begin().await?;
        let place: Option<(Uuid, Uuid, String, String, String, String, String)> = sqlx::query_as(
            "SELECT pa.tenant_id, pa.project_id, pa.cluster, pa.data_centre, pa.namespace, pr.name, t.name
             FROM partitions pa JOIN projects pr ON pr.id = pa.project_id JOIN tenants t ON t.id = pa.tenant_id WHERE pa.id = $1",
        )
        .bind(request.partition)
        .fetch_optional(&mut *tx)
        .await?;
        let (tenant, project, cluster, data_centre, namespace, project_name, tenant_name) =
            place.filter(|p| caller.can_see(p.0)).ok_or_else(|| Error::not_found("partition", request.partition))?;
        caller.require(tenant, Role::Operator, "partition", request.partition)?;
        lock_tenant(&mut tx, tenant).await?;

        let earlier: Option<Row> = sqlx::query_as(concat!("SELECT ", columns!(), " FROM reservations WHERE tenant_id = $1 AND idempotency_key = $2"))
            .bind(tenant)
            .bind(&request.idempotency_key)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(earlier) = earlier {
            let earlier = Reservation::from(earlier);
            if earlier.partition_id != request.partition || earlier.amounts != request.amounts {
                return Err(Error::Conflict(format!("idempotency key {} was used for a different reservation", request.idempotency_key)));
            }
            return if earlier.state == State::Refused { Err(refused(&earlier)) } else { Ok(earlier) };
        }
        expire(&mut tx, tenant).await?;

        let resources: Vec<&str> = request.amounts.0.keys().map(Resource::as_str).collect();
        let rows: Vec<(String, String, Option<i64>, i64)> = sqlx::query_as(
            "SELECT level, resource, hard, used FROM quotas WHERE tenant_id = $1 AND resource = ANY($2) AND (
                (level IN ('tenant', 'dr_reserve') AND owner_id = $1)
             OR (level = 'cluster' AND owner_id = $1 AND key = $3)
             OR (level = 'data_centre' AND owner_id = $1 AND key = $4)
             OR (level = 'project' AND owner_id = $5)
             OR (level = 'partition' AND owner_id = $6))",
        )
        .bind(tenant)
        .bind(&resources)
        .bind(&cluster)
        .bind(&data_centre)
        .bind(project)
        .bind(request.partition)
        .fetch_all(&mut *tx)
        .await?;
        let limits: BTreeMap<(Level, Resource), (Option<i64>, i64)> = rows
            .into_iter()
            .filter_map(|(l, r, h, u)| {
                let level = match l.as_str() {
                    "tenant" => Level::Tenant,
                    "dr_reserve" => Level::DrReserve,
                    "cluster" => Level::Cluster,
                    "data_centre" => Level::DataCentre,
                    "project" => Level::Project,
                    _ => Level::Partition,
                };
                Some(((level, Resource::parse(&r)?), (h, u)))
            })
            .collect();
        let names = BTreeMap::from([
            (Level::Partition, format!("partition {namespace} in {cluster}")),
            (Level::Project, format!("project {project_name}")),
            (Level::Cluster, format!("tenant {tenant_name} in cluster {cluster}")),
            (Level::DataCentre, format!("tenant {tenant_name} in data centre {data_centre}")),
            (Level::Tenant, format!("tenant {tenant_name}")),
        ]);
        let refusal = first_shortfall(&request.amounts, request.purpose, &limits, &names);
        let state = if refusal.is_some() { State::Refused } else { State::Reserved };
        let expires_at = chrono::Utc::now() + chrono::Duration::from_std(request.ttl).expect("ttl fits");
        let row: Row = sqlx::query_as(concat!(
            "INSERT INTO reservations (id, tenant_id, project_id, partition_id, cluster, data_centre, idempotency_key, purpose, amounts, state, refusal, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ",
            columns!()
        ))
        .bind(id::new_id())
        .bind(tenant)
        .bind(project)
        .bind(request.partition)
        .bind(&cluster)
        .bind(&data_centre)
        .bind(&request.idempotency_key)
        .bind(request.purpose.as_str())
        .bind(sqlx::types::Json(request.amounts.to_milli()))
        .bind(state.as_str())
        .bind(&refusal)
        .bind((state == State::Reserved).then_some(expires_at))
        .fetch_one(&mut *tx)
        .await?;
        let reservation = Reservation::from(row);
        if state == State::Reserved {
            charge(&mut tx, &reservation, 1).await?;
        }
        tx.commit().await?;
        if state == State::Refused { Err(refused(&reservation)) } else { Ok(reservation) }
    }

    /// A reservation the caller can see.
    ///
    /// # Errors
    /// Not found or not visible (the same answer).
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Reservation> {
        let row: Option<Row> = sqlx::query_as(concat!("SELECT ", columns!(), " FROM reservations WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(Reservation::from).filter(|r| caller.can_see(r.tenant_id)).ok_or_else(|| Error::not_found("reservation", id))
    }

    /// Holds a reservation for good. Committing twice is harmless.
    ///
    /// # Errors
    /// Not visible or allowed, or it already expired, was released or refused.
    pub async fn commit(&self, caller: &Caller, id: Uuid) -> Result<Reservation> {
        self.transition(caller, id, |r| match r.state {
            State::Reserved if r.expires_at.is_some_and(|e| e < chrono::Utc::now()) => Err(Error::FailedPrecondition(format!("reservation {id} expired"))),
            State::Reserved | State::Committed => Ok(Some(State::Committed)),
            other => Err(Error::FailedPrecondition(format!("reservation {id} is {}, it cannot be committed", other.as_str()))),
        })
        .await
    }

    /// Gives a reservation back. Releasing twice is harmless.
    ///
    /// # Errors
    /// Not visible or allowed, or it was refused.
    pub async fn release(&self, caller: &Caller, id: Uuid) -> Result<Reservation> {
        self.transition(caller, id, |r| match r.state {
            State::Reserved | State::Committed => Ok(Some(State::Released)),
            State::Released | State::Expired => Ok(None),
            State::Refused => Err(Error::FailedPrecondition(format!("reservation {id} was refused; nothing is held"))),
        })
        .await
    }

    async fn transition(&self, caller: &Caller, id: Uuid, next: impl Fn(&Reservation) -> Result<Option<State>>) -> Result<Reservation> {
        let seen = self.get(caller, id).await?;
        caller.require(seen.tenant_id, Role::Operator, "reservation", id)?;
        let mut tx = self.pool.begin().await?;
        lock_tenant(&mut tx, seen.tenant_id).await?;
        expire(&mut tx, seen.tenant_id).await?;
        let current: Reservation =
            sqlx::query_as::<_, Row>(concat!("SELECT ", columns!(), " FROM reservations WHERE id = $1")).bind(id).fetch_one(&mut *tx).await?.into();
        let Some(state) = next(&current)? else {
            return Ok(current);
        };
        if state == current.state {
            return Ok(current);
        }
        sqlx::query("UPDATE reservations SET state = $2, updated_at = now(), expires_at = CASE WHEN $2 = 'committed' THEN NULL ELSE expires_at END WHERE id = $1")
            .bind(id)
            .bind(state.as_str())
            .execute(&mut *tx)
            .await?;
        if state == State::Released {
            charge(&mut tx, &current, -1).await?;
        }
        tx.commit().await?;
        Ok(Reservation { state, expires_at: if state == State::Committed { None } else { current.expires_at }, ..current })
    }

    /// Expires every tenant's overdue reservations; the sweeper calls this.
    ///
    /// # Errors
    /// The database fails.
    pub async fn expire_due(&self) -> Result<u64> {
        let tenants: Vec<Uuid> = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM reservations WHERE state = 'reserved' AND expires_at < now()")
            .fetch_all(&self.pool)
            .await?;
        let mut expired = 0;
        for tenant in tenants {
            let mut tx = self.pool.begin().await?;
            lock_tenant(&mut tx, tenant).await?;
            expired += expire(&mut tx, tenant).await?;
            tx.commit().await?;
        }
        Ok(expired)
    }
}
