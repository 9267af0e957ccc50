//! The transactional outbox and its relay.
//!
//! [`record`] writes an event row in the caller's transaction, so the event
//! exists if and only if the state change committed; [`Outbox::commit`]
//! commits it and wakes the relay. The [`Relay`] publishes
//! unsent rows to JetStream with `Nats-Msg-Id` = event id and then marks them
//! sent. A relay that dies between publishing and marking publishes the rows
//! again on restart; JetStream drops the repeats inside its deduplication
//! window, and consumers' inboxes drop any that get through.
//!
//! # Guarantees
//! - At-least-once publication of every committed event, in commit order per
//!   service (one relay per schema holds an advisory lock while it publishes).
//! - No event for a rolled-back change.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage as Publish;
use paas_proto::v1::EventEnvelope;
use prost::Message;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::event::{Bus, EventType};
use crate::{Error, Result, id, telemetry};

/// Rows a relay publishes per transaction.
pub const BATCH: i64 = 512;
/// How often an idle relay looks for rows anyway, in case a notification was
/// missed (a reconnect of its listening connection, say).
pub const POLL: Duration = Duration::from_secs(1);
/// How long sent rows are kept, for inspection, before they are pruned.
pub const KEEP_SENT: Duration = Duration::from_secs(24 * 3600);

/// Writes an event for `kind` into the outbox inside the caller's transaction.
/// Commit with [`Outbox::commit`] so the relays wake at once. Returns the event id.
///
/// # Errors
/// The insert fails; the caller's transaction should then roll back.
pub async fn record<M: Message + prost::Name>(
    tx: &mut PgConnection,
    kind: EventType,
    tenant: Option<Uuid>,
    payload: &M,
) -> Result<Uuid> {
    let event_id = id::new_id();
    let now = chrono::Utc::now();
    let envelope = EventEnvelope {
        id: event_id.to_string(),
        r#type: kind.name(),
        time: Some(prost_types::Timestamp {
            seconds: now.timestamp(),
            nanos: now.timestamp_subsec_nanos() as i32,
        }),
        tenant_id: tenant.map(|t| t.to_string()).unwrap_or_default(),
        traceparent: telemetry::current_traceparent().unwrap_or_default(),
        payload_type: M::full_name(),
        payload: payload.encode_to_vec(),
    };
    sqlx::query!(
        "INSERT INTO outbox (id, subject, envelope) VALUES ($1, $2, $3)",
        event_id,
        kind.name(),
        envelope.encode_to_vec(),
    )
    .execute(&mut *tx)
    .await?;
    Ok(event_id)
}

/// A service's outbox: commits transactions that recorded events and wakes
/// the relays. Cheap to clone; every clone shares the wake-ups.
///
/// The relay of the same process is woken directly. Relays of other processes
/// (replicas of the service, one of which holds the relay lock) are woken by a
/// `pg_notify` sent after the commit by one background task, so a burst of
/// commits costs one notification. The notification is never sent inside the
/// transaction: PostgreSQL serialises every committing transaction that has
/// notified, fsync included, behind one global lock.
#[derive(Clone)]
pub struct Outbox {
    pool: PgPool,
    local: Arc<Notify>,
    remote: Arc<Notify>,
}

impl Outbox {
    /// The outbox in `pool`'s schema. Spawns the notification task, which
    /// ends when the pool is closed.
    pub fn new(pool: PgPool) -> Self {
        let remote = Arc::new(Notify::new());
        let outbox = Self {
            pool: pool.clone(),
            local: Arc::new(Notify::new()),
            remote: remote.clone(),
        };
        tokio::spawn(async move {
            loop {
                remote.notified().await;
                if pool.is_closed() {
                    return;
                }
                if let Err(e) = sqlx::query!("SELECT pg_notify('paas_outbox_' || current_schema(), '')")
                    .execute(&pool)
                    .await
                {
                    tracing::debug!(error = %e, "outbox wake-up not sent; relays will poll");
                }
            }
        });
        outbox
    }

    /// The pool the outbox lives in.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Commits a transaction that recorded events, then wakes the relays. A
    /// lost wake-up (the process dies right after the commit) only delays the
    /// events until a relay's next poll.
    ///
    /// # Errors
    /// The commit fails; nothing was written.
    pub async fn commit(&self, tx: Transaction<'_, Postgres>) -> Result<()> {
        tx.commit().await?;
        self.local.notify_one();
        self.remote.notify_one();
        Ok(())
    }
}

/// One row claimed for publication.
#[derive(Debug)]
struct Row {
    seq: i64,
    id: Uuid,
    subject: String,
    envelope: Vec<u8>,
}

/// Unsent rows held under lock by one relay until they are marked sent or the
/// claim is dropped (which releases them for the next attempt).
pub struct Claim {
    tx: Transaction<'static, Postgres>,
    rows: Vec<Row>,
}

impl Claim {
    /// How many rows were claimed.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether nothing was claimed.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Publishes every claimed row and waits for JetStream's acknowledgements.
    ///
    /// # Errors
    /// NATS refuses or does not acknowledge; the rows stay unsent.
    pub async fn publish(&self, bus: &Bus) -> Result<()> {
        let mut acks = Vec::with_capacity(self.rows.len());
        for row in &self.rows {
            let traceparent = EventEnvelope::decode(row.envelope.as_slice())
                .map(|e| e.traceparent)
                .unwrap_or_default();
            let mut publish = Publish::build()
                .payload(row.envelope.clone().into())
                .message_id(row.id.to_string());
            if !traceparent.is_empty() {
                publish = publish.header(telemetry::TRACEPARENT, traceparent.as_str());
            }
            let ack = bus
                .jetstream
                .send_publish(bus.subject(&row.subject), publish)
                .await
                .map_err(|e| Error::Unavailable(format!("publish failed: {e}")))?;
            acks.push(ack);
        }
        for ack in futures::future::join_all(acks.into_iter().map(std::future::IntoFuture::into_future)).await {
            ack.map_err(|e| Error::Unavailable(format!("publish not acknowledged: {e}")))?;
        }
        Ok(())
    }

    /// Marks the rows sent and releases the claim.
    ///
    /// # Errors
    /// The database refuses; the rows will be published again (harmlessly).
    pub async fn mark_sent(mut self) -> Result<usize> {
        let seqs: Vec<i64> = self.rows.iter().map(|r| r.seq).collect();
        sqlx::query!("UPDATE outbox SET sent_at = now() WHERE seq = ANY($1)", &seqs)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(seqs.len())
    }
}

/// Publishes one service schema's outbox to JetStream.
#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    wake: Arc<Notify>,
    bus: Bus,
    service: String,
    published: prometheus::IntCounter,
}

impl Relay {
    /// A relay for `outbox`, named after its service.
    pub fn new(outbox: &Outbox, bus: Bus, service: &str) -> Self {
        let published = telemetry::counter_vec(
            "paas_outbox_published_events_total",
            "Events the outbox relay published to JetStream.",
            &["service"],
        )
        .with_label_values(&[service]);
        Self {
            pool: outbox.pool.clone(),
            wake: outbox.local.clone(),
            bus,
            service: service.to_string(),
            published,
        }
    }

    /// Claims up to [`BATCH`] unsent rows in commit order. Returns an empty
    /// claim when another relay of the same schema is publishing.
    ///
    /// # Errors
    /// The database refuses.
    pub async fn claim(&self) -> Result<Claim> {
        let mut tx = self.pool.begin().await?;
        let leader = sqlx::query_scalar!(
            r#"SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.outbox')) AS "leader!""#
        )
        .fetch_one(&mut *tx)
        .await?;
        let rows = if leader {
            sqlx::query_as!(
                Row,
                "SELECT seq, id, subject, envelope FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE",
                BATCH,
            )
            .fetch_all(&mut *tx)
            .await?
        } else {
            Vec::new()
        };
        Ok(Claim { tx, rows })
    }

    /// Claims, publishes and marks one batch. Returns how many were sent.
    ///
    /// # Errors
    /// The database or NATS fails; nothing is marked sent.
    pub async fn relay_once(&self) -> Result<usize> {
        let claim = self.claim().await?;
        if claim.is_empty() {
            return Ok(0);
        }
        claim.publish(&self.bus).await?;
        let n = claim.mark_sent().await?;
        self.published.inc_by(n as u64);
        Ok(n)
    }

    /// Relays until `stop`: woken by the outbox's notifications, polling every
    /// [`POLL`] as a fallback, backing off while NATS or the database is down.
    ///
    /// # Errors
    /// Never while running; returns `Ok` at shutdown.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        let channel = format!("paas_outbox_{}", self.schema().await?);
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(&channel).await?;
        let mut backoff = Duration::from_millis(100);
        let mut last_prune = tokio::time::Instant::now();
        loop {
            match self.drain().await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(service = %self.service, error = %e, "outbox relay failed; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            if last_prune.elapsed() > Duration::from_secs(600) {
                last_prune = tokio::time::Instant::now();
                if let Err(e) = self.prune().await {
                    tracing::warn!(service = %self.service, error = %e, "outbox prune failed");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = self.wake.notified() => {}
                r = listener.recv() => match r {
                    // Wake-ups that arrived meanwhile are covered by this drain.
                    Ok(_) => while listener.next_buffered().is_some() {},
                    Err(e) => {
                        tracing::warn!(service = %self.service, error = %e, "outbox listener lost; polling");
                        tokio::time::sleep(POLL).await;
                    }
                },
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn drain(&self) -> Result<()> {
        while self.relay_once().await? as i64 == BATCH {}
        Ok(())
    }

    async fn schema(&self) -> Result<String> {
        Ok(sqlx::query_scalar!(r#"SELECT current_schema() AS "schema!""#)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn prune(&self) -> Result<u64> {
        let keep = chrono::Duration::from_std(KEEP_SENT).expect("fits");
        let r = sqlx::query!("DELETE FROM outbox WHERE sent_at < $1", chrono::Utc::now() - keep)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Unsent rows, for readiness and tests.
    ///
    /// # Errors
    /// The database refuses.
    pub async fn backlog(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM outbox WHERE sent_at IS NULL"#)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
