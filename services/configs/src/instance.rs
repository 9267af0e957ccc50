//! The instances that watch a set (Apollo's "instances using this config"):
//! a watcher that names itself is recorded with its labels, address, the
//! release it holds and when it was last seen. Sightings are queued and
//! written in batches by one task, never on the path that notifies watchers,
//! so ten thousand watchers woken by a publish cost one write, not ten
//! thousand.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kernel::caller::Caller;
use kernel::page::Page;
use kernel::{Error, Result, id};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config_set::ConfigSets;
use crate::selector::Labels;

/// Sightings queued before new ones are dropped (the watcher's next poll
/// records it again).
const QUEUE: usize = 65_536;
/// How often queued sightings are written.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Longest instance id.
const MAX_INSTANCE: usize = 128;

/// Checks a client-chosen instance id (empty: anonymous).
///
/// # Errors
/// Too long, or a character other than letters, digits and `-_.:@/`.
pub fn instance_id(raw: &str) -> Result<String> {
    let raw = raw.trim();
    if raw.len() > MAX_INSTANCE
        || !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@' | '/'))
    {
        return Err(Error::invalid(
            "instance",
            format!("must be at most {MAX_INSTANCE} letters, digits, '-', '_', '.', ':', '@' or '/'"),
        ));
    }
    Ok(raw.to_string())
}

/// A watcher seen holding a release.
#[derive(Debug, Clone)]
pub struct Sighting {
    /// The set's tenant.
    pub tenant_id: Uuid,
    /// The set.
    pub config_set_id: Uuid,
    /// The watcher's id.
    pub instance: String,
    /// Its labels.
    pub labels: Labels,
    /// Its address.
    pub ip: String,
    /// The release it holds.
    pub release: i64,
}

/// An instance as the view shows it.
#[derive(Debug, Clone)]
pub struct InstanceView {
    /// Its row id (the page cursor).
    pub id: Uuid,
    /// The set.
    pub config_set_id: Uuid,
    /// The watcher's id.
    pub instance: String,
    /// Its labels.
    pub labels: serde_json::Value,
    /// Its address.
    pub ip: String,
    /// The release it holds.
    pub release_number: i64,
    /// When it was last seen.
    pub last_seen: DateTime<Utc>,
    /// Whether that release is the set's gray release in flight.
    pub gray: bool,
}

/// The instances table.
#[derive(Clone)]
pub struct Instances {
    pool: PgPool,
    sets: ConfigSets,
    queue: mpsc::Sender<Sighting>,
    queued: std::sync::Arc<std::sync::Mutex<Option<mpsc::Receiver<Sighting>>>>,
}

impl Instances {
    /// Instances in `pool`; [`Instances::record`] must run for sightings to be written.
    pub fn new(pool: PgPool, sets: ConfigSets) -> Self {
        let (queue, queued) = mpsc::channel(QUEUE);
        Self {
            pool,
            sets,
            queue,
            queued: std::sync::Arc::new(std::sync::Mutex::new(Some(queued))),
        }
    }

    /// Queues a sighting.
    pub fn saw(&self, sighting: Sighting) {
        if self.queue.try_send(sighting).is_err() {
            tracing::debug!("instance sightings queue full; one dropped");
        }
    }

    /// Writes queued sightings in batches until `stop`, then the rest.
    ///
    /// # Errors
    /// Never: a failed batch is logged and the next one goes on.
    pub async fn record(self, stop: CancellationToken) -> Result<()> {
        let taken = self
            .queued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(mut queued) = taken else {
            return Ok(());
        };
        let mut batch = Vec::new();
        loop {
            let stopping = tokio::select! {
                () = stop.cancelled() => true,
                n = queued.recv_many(&mut batch, 4096) => n == 0,
            };
            while let Ok(s) = queued.try_recv() {
                batch.push(s);
            }
            if !batch.is_empty()
                && let Err(e) = self.write(std::mem::take(&mut batch)).await
            {
                tracing::warn!(error = %e, "cannot record instance sightings");
            }
            if stopping {
                return Ok(());
            }
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(FLUSH_EVERY) => {}
            }
        }
    }

    async fn write(&self, batch: Vec<Sighting>) -> Result<()> {
        // The latest sighting of each instance wins.
        let mut latest: HashMap<(Uuid, String), Sighting> = HashMap::new();
        for s in batch {
            latest.insert((s.config_set_id, s.instance.clone()), s);
        }
        let n = latest.len();
        let (mut ids, mut tenants, mut sets, mut names) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut labels, mut ips, mut releases) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for s in latest.into_values() {
            ids.push(id::new_id());
            tenants.push(s.tenant_id);
            sets.push(s.config_set_id);
            names.push(s.instance);
            labels.push(serde_json::to_value(s.labels.as_map()).map_err(Error::internal)?);
            ips.push(s.ip);
            releases.push(s.release);
        }
        sqlx::query!(
            "INSERT INTO instances (id, tenant_id, config_set_id, instance, labels, ip, release_number, last_seen)
             SELECT u.id, u.tenant_id, u.set_id, u.instance, u.labels, u.ip, u.release, now()
             FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::jsonb[], $6::text[], $7::bigint[])
                  AS u (id, tenant_id, set_id, instance, labels, ip, release)
             WHERE EXISTS (SELECT 1 FROM config_sets s WHERE s.id = u.set_id AND s.tenant_id = u.tenant_id)
             ON CONFLICT (config_set_id, instance) DO UPDATE
             SET labels = EXCLUDED.labels, ip = EXCLUDED.ip, release_number = EXCLUDED.release_number,
                 last_seen = now()",
            &ids,
            &tenants,
            &sets,
            &names,
            &labels,
            &ips,
            &releases,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A page of the instances watching a set, with the release each holds.
    /// Members of the tenant.
    ///
    /// # Errors
    /// The set is not visible.
    pub async fn list(&self, caller: &Caller, set_id: Uuid, page: Page) -> Result<(Vec<InstanceView>, String)> {
        let set = self.sets.get(caller, set_id).await?;
        let rows = sqlx::query_as!(
            InstanceView,
            r#"SELECT i.id, i.config_set_id, i.instance, i.labels, i.ip, i.release_number, i.last_seen,
                      (g.release_id IS NOT NULL) AS "gray!"
               FROM instances i
               LEFT JOIN config_gray_rules g
                      ON g.config_set_id = i.config_set_id AND g.number = i.release_number AND g.state = 'active'
               WHERE i.config_set_id = $1 AND i.tenant_id = $2 AND ($3::uuid IS NULL OR i.id > $3)
               ORDER BY i.id LIMIT $4"#,
            set.id,
            set.tenant_id,
            page.after,
            page.fetch()
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(page.finish(rows, |r| r.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_id_is_short_and_plain() {
        assert_eq!(instance_id(" web-1.zone-a:8080 ").unwrap(), "web-1.zone-a:8080");
        assert_eq!(instance_id("").unwrap(), "");
        assert!(instance_id("a b").is_err());
        assert!(instance_id(&"x".repeat(129)).is_err());
    }
}
