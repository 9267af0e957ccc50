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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::{Error, Result, id};
use sqlx::{PgConnection, PgPool};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::quota::{Level, lock_tenant};
use crate::resource::{Resource, ResourceList};

/// Time to live when the caller gives none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// How often overdue reservations are expired in the background (a request
/// that would be refused expires them at once, so this only tidies usage).
pub const SWEEP: Duration = Duration::from_secs(5);
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
    pub fn parse(
        partition: Uuid,
        amounts: ResourceList,
        idempotency_key: &str,
        ttl_seconds: u64,
        failover: bool,
    ) -> Result<Self> {
        if amounts.is_empty() {
            return Err(Error::invalid("amounts", "must name at least one resource"));
        }
        let key = idempotency_key.trim();
        if key.is_empty() || key.len() > 200 {
            return Err(Error::invalid("idempotency_key", "must be 1-200 characters"));
        }
        let ttl = if ttl_seconds == 0 {
            DEFAULT_TTL
        } else {
            Duration::from_secs(ttl_seconds)
        };
        if ttl > MAX_TTL {
            return Err(Error::invalid(
                "ttl_seconds",
                format!("must be at most {}", MAX_TTL.as_secs()),
            ));
        }
        Ok(Self {
            partition,
            amounts,
            idempotency_key: key.to_string(),
            ttl,
            purpose: if failover { Purpose::Failover } else { Purpose::Normal },
        })
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

/// The columns of [`Row`], as a literal for `concat!` in the statements
/// that charge or give back quota: they share [`charged_levels!`], so they
/// are built with `concat!` and checked at run time, not by `query_as!`.
macro_rules! columns {
    () => {
        "id, tenant_id, project_id, partition_id, cluster, data_centre, idempotency_key, amounts, state, refusal, expires_at, created_at"
    };
}

/// The answer a refused reservation gives, now and on every retry.
fn refused(r: &Reservation) -> Error {
    Error::ResourceExhausted(r.refusal.clone().unwrap_or_else(|| "over quota".into()))
}

/// The levels a reservation row `r` is charged to, joined with its amounts,
/// as SQL: `lv(l, o, k)` and `a(key, value)` for use after `FROM r`.
macro_rules! charged_levels {
    () => {
        "LATERAL (VALUES ('tenant', r.tenant_id, ''), ('cluster', r.tenant_id, r.cluster), ('data_centre', r.tenant_id, r.data_centre),
                  ('project', r.project_id, ''), ('partition', r.partition_id, '')) AS lv(l, o, k),
         LATERAL jsonb_each_text(r.amounts) AS a(key, value)"
    };
}

/// Expires the tenant's reservations whose time is up and gives back what
/// they held, in one statement. Call under the tenant's lock.
async fn expire(tx: &mut PgConnection, tenant: Uuid) -> Result<u64> {
    let given_back: i64 = sqlx::query_scalar(concat!(
        "WITH r AS (UPDATE reservations SET state = 'expired', updated_at = now()
                    WHERE tenant_id = $1 AND state = 'reserved' AND expires_at < now() RETURNING *),
              g AS (UPDATE quotas q SET used = q.used - t.amount
                    FROM (SELECT lv.l, lv.o, lv.k, a.key AS resource, sum(a.value::bigint) AS amount FROM r, ",
        charged_levels!(),
        "          GROUP BY 1, 2, 3, 4) t
                    WHERE q.level = t.l AND q.owner_id = t.o AND q.key = t.k AND q.resource = t.resource RETURNING 1)
         SELECT count(*) FROM r"
    ))
    .bind(tenant)
    .fetch_one(&mut *tx)
    .await?;
    Ok(given_back as u64)
}

/// The first level, from the partition up, where `ask` does not fit; as the
/// refusal message.
fn first_shortfall(
    ask: &ResourceList,
    purpose: Purpose,
    limits: &BTreeMap<(Level, Resource), (Option<i64>, i64)>,
    names: &BTreeMap<Level, String>,
) -> Option<String> {
    for level in [
        Level::Partition,
        Level::Project,
        Level::Cluster,
        Level::DataCentre,
        Level::Tenant,
    ] {
        for (resource, q) in &ask.0 {
            let Some((Some(hard), used)) = limits.get(&(level, *resource)) else {
                continue;
            };
            let reserve = match (level, purpose) {
                (Level::Tenant, Purpose::Normal) => limits
                    .get(&(Level::DrReserve, *resource))
                    .and_then(|(h, _)| *h)
                    .unwrap_or(0),
                _ => 0,
            };
            let left = (hard - reserve - used).max(0);
            if q.milli() > left {
                let kept = if reserve > 0 {
                    format!(" ({} kept for failover)", resource.amount(reserve))
                } else {
                    String::new()
                };
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

/// One limit a reservation is checked against.
struct Limit {
    level: String,
    resource: String,
    hard: Option<i64>,
    used: i64,
}

fn to_limits(rows: Vec<Limit>) -> BTreeMap<(Level, Resource), (Option<i64>, i64)> {
    rows.into_iter()
        .filter_map(|l| {
            let level = match l.level.as_str() {
                "tenant" => Level::Tenant,
                "dr_reserve" => Level::DrReserve,
                "cluster" => Level::Cluster,
                "data_centre" => Level::DataCentre,
                "project" => Level::Project,
                _ => Level::Partition,
            };
            Some(((level, Resource::parse(&l.resource)?), (l.hard, l.used)))
        })
        .collect()
}

/// Where a partition sits, as a reservation needs it.
#[derive(Debug, Clone)]
struct Place {
    tenant_id: Uuid,
    project_id: Uuid,
    cluster: String,
    data_centre: String,
    namespace: String,
    project_name: String,
    tenant_name: String,
}

/// A request waiting in its tenant's admission line.
struct Ask {
    place: Place,
    request: Request,
}

/// The stored row, or `None` when the idempotency key was taken.
type Decision = Result<Option<Row>>;

/// Per tenant, the requests waiting for this process's drainer of that
/// tenant. A tenant is in the map exactly while a drainer runs for it, so a
/// request that joins either finds one or starts one. Across processes the
/// tenant's advisory lock still orders the drainers' transactions.
#[derive(Clone, Default)]
struct AdmissionLine(Arc<Mutex<HashMap<Uuid, Vec<Waiting>>>>);

/// A request in the line, with where its decision goes.
type Waiting = (Ask, oneshot::Sender<Decision>);

/// The most requests decided in one transaction.
const BATCH: usize = 128;

impl AdmissionLine {
    fn join(&self, pool: &PgPool, ask: Ask, answer: oneshot::Sender<Decision>) {
        let tenant = ask.place.tenant_id;
        let mut waiting = self.0.lock().expect("not poisoned");
        match waiting.get_mut(&tenant) {
            Some(queue) => queue.push((ask, answer)),
            None => {
                waiting.insert(tenant, vec![(ask, answer)]);
                // A task of its own: a caller that goes away must not take
                // the drainer (and everyone waiting on it) with it.
                tokio::spawn(self.clone().drain(pool.clone(), tenant));
            }
        }
    }

    async fn drain(self, pool: PgPool, tenant: Uuid) {
        let _closing = Closing { line: &self, tenant };
        loop {
            let batch: Vec<Waiting> = {
                let mut waiting = self.0.lock().expect("not poisoned");
                let Some(queue) = waiting.get_mut(&tenant) else { return };
                if queue.is_empty() {
                    waiting.remove(&tenant);
                    return;
                }
                let n = queue.len().min(BATCH);
                queue.drain(..n).collect()
            };
            let (asks, answers): (Vec<Ask>, Vec<oneshot::Sender<Decision>>) = batch.into_iter().unzip();
            match decide_all(&pool, tenant, &asks).await {
                Ok(rows) => {
                    for (answer, row) in answers.into_iter().zip(rows) {
                        let _ = answer.send(Ok(row));
                    }
                }
                // One request's failure must not fail the others: each alone.
                Err(_) if asks.len() > 1 => {
                    for (ask, answer) in asks.iter().zip(answers) {
                        let alone = decide_all(&pool, tenant, std::slice::from_ref(ask))
                            .await
                            .map(|mut rows| rows.pop().flatten());
                        let _ = answer.send(alone);
                    }
                }
                Err(e) => {
                    if let Some(answer) = answers.into_iter().next() {
                        let _ = answer.send(Err(e));
                    }
                }
            }
        }
    }
}

/// Ends a drainer that stops abnormally (a panic): its tenant leaves the
/// map, so those waiting hear it stopped and the next request starts a new
/// drainer. After a normal end the tenant has already left, and may belong
/// to a newer drainer, so nothing is removed then.
struct Closing<'a> {
    line: &'a AdmissionLine,
    tenant: Uuid,
}

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(mut waiting) = self.line.0.lock()
        {
            waiting.remove(&self.tenant);
        }
    }
}

/// Decides `asks` in order, in one transaction under the tenant's lock.
async fn decide_all(pool: &PgPool, tenant: Uuid, asks: &[Ask]) -> Result<Vec<Option<Row>>> {
    let mut tx = pool.begin().await?;
    lock_tenant(&mut tx, tenant).await?;
    let mut rows = Vec::with_capacity(asks.len());
    for ask in asks {
        rows.push(decide(&mut tx, ask).await?);
    }
    tx.commit().await?;
    Ok(rows)
}

/// Holds or refuses one request; call under the tenant's lock.
async fn decide(tx: &mut PgConnection, ask: &Ask) -> Result<Option<Row>> {
    let (place, request) = (&ask.place, &ask.request);
    let resources: Vec<&str> = request.amounts.0.keys().map(Resource::as_str).collect();
    let limits_query = || {
        sqlx::query_as!(
            Limit,
            "SELECT level, resource, hard, used FROM quotas WHERE tenant_id = $1 AND resource = ANY($2) AND (
                (level IN ('tenant', 'dr_reserve') AND owner_id = $1)
             OR (level = 'cluster' AND owner_id = $1 AND key = $3)
             OR (level = 'data_centre' AND owner_id = $1 AND key = $4)
             OR (level = 'project' AND owner_id = $5)
             OR (level = 'partition' AND owner_id = $6))",
            place.tenant_id,
            &resources as &[&str],
            place.cluster,
            place.data_centre,
            place.project_id,
            request.partition,
        )
    };
    let names = BTreeMap::from([
        (
            Level::Partition,
            format!("partition {} in {}", place.namespace, place.cluster),
        ),
        (Level::Project, format!("project {}", place.project_name)),
        (
            Level::Cluster,
            format!("tenant {} in cluster {}", place.tenant_name, place.cluster),
        ),
        (
            Level::DataCentre,
            format!("tenant {} in data centre {}", place.tenant_name, place.data_centre),
        ),
        (Level::Tenant, format!("tenant {}", place.tenant_name)),
    ]);
    let mut refusal = first_shortfall(
        &request.amounts,
        request.purpose,
        &to_limits(limits_query().fetch_all(&mut *tx).await?),
        &names,
    );
    // Overdue reservations may hold the room asked for: give it back and
    // look again. (The sweeper does this too; here it is never late.)
    if refusal.is_some() && expire(tx, place.tenant_id).await? > 0 {
        refusal = first_shortfall(
            &request.amounts,
            request.purpose,
            &to_limits(limits_query().fetch_all(&mut *tx).await?),
            &names,
        );
    }
    let state = if refusal.is_some() {
        State::Refused
    } else {
        State::Reserved
    };
    let expires_at = chrono::Utc::now() + chrono::Duration::from_std(request.ttl).expect("ttl fits");
    // Insert and charge in one statement; a taken key inserts nothing and
    // the earlier answer is returned instead.
    let row: Option<Row> = sqlx::query_as(concat!(
        "WITH r AS (INSERT INTO reservations (id, tenant_id, project_id, partition_id, cluster, data_centre, idempotency_key, purpose, amounts, state, refusal, expires_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING *),
              c AS (INSERT INTO quotas (tenant_id, level, owner_id, key, resource, used)
                    SELECT r.tenant_id, lv.l, lv.o, lv.k, a.key, a.value::bigint FROM r, ",
        charged_levels!(),
        "           WHERE r.state = 'reserved'
                    ON CONFLICT (level, owner_id, key, resource) DO UPDATE SET used = quotas.used + EXCLUDED.used RETURNING 1)
         SELECT ",
        columns!(),
        " FROM r"
    ))
    .bind(id::new_id())
    .bind(place.tenant_id)
    .bind(place.project_id)
    .bind(request.partition)
    .bind(&place.cluster)
    .bind(&place.data_centre)
    .bind(&request.idempotency_key)
    .bind(request.purpose.as_str())
    .bind(sqlx::types::Json(request.amounts.to_milli()))
    .bind(state.as_str())
    .bind(&refusal)
    .bind((state == State::Reserved).then_some(expires_at))
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row)
}

/// Reservations in the tenancy schema.
#[derive(Clone)]
pub struct Reservations {
    pool: PgPool,
    line: AdmissionLine,
}

impl Reservations {
    /// Reservations stored in `pool`'s schema.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            line: AdmissionLine::default(),
        }
    }

    /// Holds `request.amounts` in its partition, or refuses.
    ///
    /// The request waits in its tenant's admission line in this process,
    /// not on a pooled connection: the line's drainer decides every waiting
    /// request in one transaction under the tenant's lock (one commit for
    /// many deploys), in arrival order, so each decision sees the ones
    /// before it.
    ///
    /// # Errors
    /// [`Error::ResourceExhausted`] naming the level, resource, ask and what is
    /// left; not found or not allowed (operators and above); the key was used
    /// before for a different request.
    pub async fn reserve(&self, caller: &Caller, request: &Request) -> Result<Reservation> {
        let place = sqlx::query_as!(
            Place,
            "SELECT pa.tenant_id, pa.project_id, pa.cluster, pa.data_centre, pa.namespace,
                    pr.name AS project_name, t.name AS tenant_name
             FROM partitions pa JOIN projects pr ON pr.id = pa.project_id JOIN tenants t ON t.id = pa.tenant_id
             WHERE pa.id = $1",
            request.partition,
        )
        .fetch_optional(&self.pool)
        .await?;
        let place = place
            .filter(|p| caller.can_see(p.tenant_id))
            .ok_or_else(|| Error::not_found("partition", request.partition))?;
        caller.require(place.tenant_id, Role::Operator, "partition", request.partition)?;
        let tenant = place.tenant_id;
        let (answer, decided) = tokio::sync::oneshot::channel();
        self.line.join(
            &self.pool,
            Ask {
                place,
                request: request.clone(),
            },
            answer,
        );
        let row = decided
            .await
            .map_err(|_| Error::Unavailable("the admission line stopped".into()))??;
        let reservation = match row {
            Some(row) => Reservation::from(row),
            None => {
                let earlier = sqlx::query_as!(
                    Row,
                    r#"SELECT id, tenant_id, project_id, partition_id, cluster, data_centre, idempotency_key,
                              amounts AS "amounts: _", state, refusal, expires_at, created_at
                       FROM reservations WHERE tenant_id = $1 AND idempotency_key = $2"#,
                    tenant,
                    request.idempotency_key,
                )
                .fetch_one(&self.pool)
                .await?;
                let earlier = Reservation::from(earlier);
                if earlier.partition_id != request.partition || earlier.amounts != request.amounts {
                    return Err(Error::Conflict(format!(
                        "idempotency key {} was used for a different reservation",
                        request.idempotency_key
                    )));
                }
                earlier
            }
        };
        if reservation.state == State::Refused {
            Err(refused(&reservation))
        } else {
            Ok(reservation)
        }
    }

    /// A reservation the caller can see.
    ///
    /// # Errors
    /// Not found or not visible (the same answer).
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Reservation> {
        let row = sqlx::query_as!(
            Row,
            r#"SELECT id, tenant_id, project_id, partition_id, cluster, data_centre, idempotency_key,
                      amounts AS "amounts: _", state, refusal, expires_at, created_at
               FROM reservations WHERE id = $1"#,
            id,
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(Reservation::from)
            .filter(|r| caller.can_see(r.tenant_id))
            .ok_or_else(|| Error::not_found("reservation", id))
    }

    /// Holds a reservation for good. Committing twice is harmless. Needs no
    /// tenant lock: it changes no counter, and its guard on `expires_at` and
    /// the row lock settle a race with expiry either way.
    ///
    /// # Errors
    /// Not visible or allowed, or it already expired, was released or refused.
    pub async fn commit(&self, caller: &Caller, id: Uuid) -> Result<Reservation> {
        let seen = self.get(caller, id).await?;
        caller.require(seen.tenant_id, Role::Operator, "reservation", id)?;
        let row = sqlx::query_as!(
            Row,
            r#"UPDATE reservations SET state = 'committed', expires_at = NULL, updated_at = now()
               WHERE id = $1 AND state = 'reserved' AND expires_at >= now()
               RETURNING id, tenant_id, project_id, partition_id, cluster, data_centre, idempotency_key,
                         amounts AS "amounts: _", state, refusal, expires_at, created_at"#,
            id,
        )
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            return Ok(row.into());
        }
        let current = self.get(caller, id).await?;
        match current.state {
            State::Committed => Ok(current),
            State::Reserved | State::Expired => Err(Error::FailedPrecondition(format!("reservation {id} expired"))),
            other => Err(Error::FailedPrecondition(format!(
                "reservation {id} is {}, it cannot be committed",
                other.as_str()
            ))),
        }
    }

    /// Gives a reservation back. Releasing twice is harmless.
    ///
    /// # Errors
    /// Not visible or allowed, or it was refused.
    pub async fn release(&self, caller: &Caller, id: Uuid) -> Result<Reservation> {
        let seen = self.get(caller, id).await?;
        caller.require(seen.tenant_id, Role::Operator, "reservation", id)?;
        let mut tx = self.pool.begin().await?;
        lock_tenant(&mut tx, seen.tenant_id).await?;
        let row: Option<Row> = sqlx::query_as(concat!(
            "WITH r AS (UPDATE reservations SET state = 'released', updated_at = now()
                        WHERE id = $1 AND state IN ('reserved', 'committed') RETURNING *),
                  g AS (UPDATE quotas q SET used = q.used - a.value::bigint FROM r, ",
            charged_levels!(),
            "           WHERE q.level = lv.l AND q.owner_id = lv.o AND q.key = lv.k AND q.resource = a.key RETURNING 1)
             SELECT ",
            columns!(),
            " FROM r"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        if let Some(row) = row {
            return Ok(row.into());
        }
        let current = self.get(caller, id).await?;
        match current.state {
            State::Refused => Err(Error::FailedPrecondition(format!(
                "reservation {id} was refused; nothing is held"
            ))),
            _ => Ok(current),
        }
    }

    /// Expires every tenant's overdue reservations; the sweeper calls this.
    ///
    /// # Errors
    /// The database fails.
    pub async fn expire_due(&self) -> Result<u64> {
        let tenants = sqlx::query_scalar!(
            "SELECT DISTINCT tenant_id FROM reservations WHERE state = 'reserved' AND expires_at < now()"
        )
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
