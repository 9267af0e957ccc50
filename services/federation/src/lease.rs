//! Leader leases in PostgreSQL: one row per name with a holder and an expiry.
//! The holder renews it every period; another replica takes it only once it
//! has expired (or was released). Clocks are the database's (`now()`), so
//! replicas' clocks never disagree about expiry.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kernel::Result;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Names the monitor's lease.
pub const HEALTH_MONITOR: &str = "health-monitor";
/// Names the partition reconciler's lease.
pub const PARTITION_RECONCILER: &str = "partition-reconciler";

/// One contender for one lease.
#[derive(Debug, Clone)]
pub struct Lease {
    pool: PgPool,
    name: &'static str,
    holder: String,
    ttl: Duration,
    turns: Arc<AtomicU64>,
}

impl Lease {
    /// A contender named `holder` (unique per process and task).
    pub fn new(pool: PgPool, name: &'static str, holder: String, ttl: Duration) -> Self {
        Self {
            pool,
            name,
            holder,
            ttl,
            turns: Arc::default(),
        }
    }

    /// Counts this contender's completed turns: each an attempt at the
    /// lease and, when it held it, the round that followed. A turn that
    /// started after a change has looked at it, so a test waits for one
    /// before checking that the change led to nothing (also a liveness
    /// figure for metrics).
    pub fn turns(&self) -> Arc<AtomicU64> {
        self.turns.clone()
    }

    /// Records that a turn is complete (for a loop that does not use [`Self::lead`]).
    pub fn turned(&self) {
        self.turns.fetch_add(1, Ordering::Release);
    }

    /// This contender's identity.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The lease's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Takes the lease if free or expired, or renews it if held; says whether
    /// this contender holds it now.
    ///
    /// # Guarantees
    /// At most one contender gets `true` for an unexpired lease: the
    /// conditional upsert runs under the row's lock.
    ///
    /// # Errors
    /// The database fails (treat as not holding it).
    pub async fn acquire(&self) -> Result<bool> {
        let held = sqlx::query_scalar!(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))
             ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
                 WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < now()
             RETURNING holder",
            self.name,
            &self.holder,
            self.ttl.as_secs_f64(),
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(held.is_some())
    }

    /// Gives the lease up at once, so a standby need not wait for expiry.
    ///
    /// # Errors
    /// The database fails (the lease then simply expires).
    pub async fn release(&self) -> Result<()> {
        sqlx::query!(
            "DELETE FROM leases WHERE name = $1 AND holder = $2",
            self.name,
            &self.holder
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Runs `round` every `poll` while this process holds the lease, until
    /// `stop` (a round under way is dropped then: rounds are made of
    /// conditional steps that the next leader resumes); `standby` runs
    /// whenever it does not hold it, and at the end. The lease is released
    /// at the end so a standby takes over at once. `what` names the work in
    /// the log.
    pub async fn lead<T, F: Future<Output = Result<T>>>(
        &self,
        what: &str,
        poll: Duration,
        stop: &CancellationToken,
        mut round: impl FnMut() -> F,
        mut standby: impl FnMut(),
    ) {
        let mut leading;
        loop {
            match self.acquire().await {
                Ok(true) => {
                    leading = true;
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        r = round() => if let Err(e) = r { tracing::warn!(error = %e, "{what} failed; retrying") },
                    }
                }
                Ok(false) => {
                    leading = false;
                    standby();
                }
                Err(e) => {
                    leading = false;
                    standby();
                    tracing::warn!(error = %e, "{what} lease not renewed; standing by");
                }
            }
            self.turned();
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(poll) => {}
            }
        }
        standby();
        if leading && let Err(e) = self.release().await {
            tracing::warn!(error = %e, "{what} lease not released; it will expire");
        }
    }

    /// The current holder of lease `name`, if unexpired.
    ///
    /// # Errors
    /// The database fails.
    pub async fn current(pool: &PgPool, name: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar!("SELECT holder FROM leases WHERE name = $1 AND expires_at > now()", name)
                .fetch_optional(pool)
                .await?,
        )
    }
}

/// A holder name unique to this process and task: host, pid and a random part.
pub fn holder_id(task: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    format!("{host}/{}/{task}/{:08x}", std::process::id(), rand::random::<u32>())
}
