//! Durable consumers with an inbox: each handler's writes commit once per
//! event id.
//!
//! A [`Consumer`] pulls from a durable JetStream consumer, and for every event
//! records `(consumer, event id)` in its service's `inbox` table in the same
//! transaction as the handler's writes. A redelivered event (lost ack, crash
//! before ack, a second relay publication) finds its inbox row and is only
//! acknowledged. Messages are handled in batches in one transaction: the inbox
//! rows of the whole batch go in with one statement and the handlers run
//! without savepoints; if any handler fails, the batch is rolled back and
//! replayed with one savepoint per event, so the failing event is retried
//! alone and the others commit.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy};
use futures::StreamExt;
use sqlx::{Acquire, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::event::{Bus, Event};
use crate::{Error, Result, telemetry};

/// Events handled per transaction at most.
pub const BATCH: usize = 256;
/// How long JetStream waits for an ack before redelivering.
pub const ACK_WAIT: Duration = Duration::from_secs(30);
/// Delay before a failed event is offered again.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);

/// What a consumer does with each event, inside the inbox transaction.
pub trait Handler: Send + Sync + 'static {
    /// Handles one event; its writes commit with the inbox row, exactly once
    /// per event id. It may be invoked again after a rollback (another event
    /// of its batch failed, or the process died before commit), so it must act
    /// only through `tx`. Events of types it does not care about return `Ok(())`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] marks the event as poison (logged, never
    /// retried); any other error retries it after [`RETRY_DELAY`].
    fn handle(&self, tx: &mut PgConnection, event: &Event) -> impl Future<Output = Result<()>> + Send;
}

/// Which events a consumer receives.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Durable name, unique per consuming service and purpose
    /// (`federation-tenants`); also the inbox's `consumer` column.
    pub durable: String,
    /// Subject filter after the prefix (`tenancy.tenant.*`, `tenancy.>`).
    pub filter: String,
}

/// A running durable consumer.
pub struct Consumer<H> {
    pool: PgPool,
    bus: Bus,
    subscription: Subscription,
    handler: H,
    handled: prometheus::IntCounterVec,
}

impl<H: Handler> Consumer<H> {
    /// A consumer writing its inbox in `pool`'s schema.
    pub fn new(pool: PgPool, bus: Bus, subscription: Subscription, handler: H) -> Self {
        let handled = telemetry::counter_vec(
            "paas_inbox_handled_events_total",
            "Events consumers received, by outcome (handled, duplicate, failed, poison).",
            &["consumer", "outcome"],
        );
        Self {
            pool,
            bus,
            subscription,
            handler,
            handled,
        }
    }

    /// Consumes until `stop`, reconnecting with backoff when NATS is away.
    ///
    /// # Errors
    /// Never while running; returns `Ok` at shutdown.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let result = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                r = self.consume() => r,
            };
            if let Err(e) = result {
                tracing::warn!(consumer = %self.subscription.durable, error = %e, "consumer interrupted; reconnecting");
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn consume(&self) -> Result<()> {
        let unavailable = |e: &dyn std::fmt::Display| Error::Unavailable(format!("JetStream: {e}"));
        let stream = self.bus.ensure_stream().await?;
        let consumer = stream
            .get_or_create_consumer(
                &self.subscription.durable,
                consumer::pull::Config {
                    durable_name: Some(self.subscription.durable.clone()),
                    filter_subject: self.bus.subject(&self.subscription.filter),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    deliver_policy: DeliverPolicy::All,
                    max_ack_pending: 20_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| unavailable(&e))?;
        let messages = consumer.messages().await.map_err(|e| unavailable(&e))?;
        let mut batches = messages.ready_chunks(BATCH);
        while let Some(batch) = batches.next().await {
            let mut messages = Vec::with_capacity(batch.len());
            for m in batch {
                messages.push(m.map_err(|e| unavailable(&e))?);
            }
            self.handle_batch(messages).await?;
        }
        Err(Error::Unavailable("JetStream message stream ended".into()))
    }

    async fn handle_batch(&self, messages: Vec<async_nats::jetstream::Message>) -> Result<()> {
        let durable = self.subscription.durable.as_str();
        let events: Vec<Option<Event>> = messages
            .iter()
            .map(|msg| match Event::decode(&msg.payload) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::error!(consumer = durable, subject = %msg.subject, error = %e, "undecodable event dropped");
                    None
                }
            })
            .collect();
        let outcomes = match self.handle_all(&events).await? {
            Some(outcomes) => outcomes,
            None => self.handle_each(&events).await?,
        };
        let acks = messages.iter().zip(&outcomes).map(|(msg, outcome)| async move {
            self.handled.with_label_values(&[durable, outcome.label()]).inc();
            let kind = match outcome {
                Outcome::Handled | Outcome::Duplicate => AckKind::Ack,
                Outcome::Failed => AckKind::Nak(Some(RETRY_DELAY)),
                Outcome::Poison => AckKind::Term,
            };
            if let Err(e) = msg.ack_with(kind).await {
                // The event comes back after ACK_WAIT and the inbox absorbs it.
                tracing::debug!(error = %e, "ack failed");
            }
        });
        futures::future::join_all(acks).await;
        Ok(())
    }

    /// The fast path: every handler in one transaction without savepoints.
    /// `None` when a handler failed (nothing was committed).
    async fn handle_all(&self, events: &[Option<Event>]) -> Result<Option<Vec<Outcome>>> {
        let ids: Vec<uuid::Uuid> = events.iter().flatten().map(Event::id).collect();
        let mut tx = self.pool.begin().await?;
        let fresh: std::collections::HashSet<uuid::Uuid> = sqlx::query_scalar!(
            "INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING RETURNING event_id",
            self.subscription.durable,
            &ids,
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let mut outcomes = Vec::with_capacity(events.len());
        let mut seen = std::collections::HashSet::new();
        for event in events {
            let Some(event) = event else {
                outcomes.push(Outcome::Poison);
                continue;
            };
            // A batch may hold the same event twice (a redelivery); run it once.
            if !fresh.contains(&event.id()) || !seen.insert(event.id()) {
                outcomes.push(Outcome::Duplicate);
                continue;
            }
            if self
                .handler
                .handle(&mut tx, event)
                .instrument(self.span(event))
                .await
                .is_err()
            {
                tx.rollback().await?;
                return Ok(None);
            }
            outcomes.push(Outcome::Handled);
        }
        tx.commit().await?;
        Ok(Some(outcomes))
    }

    /// The slow path after a failure: each event in its own savepoint.
    async fn handle_each(&self, events: &[Option<Event>]) -> Result<Vec<Outcome>> {
        let mut tx = self.pool.begin().await?;
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            outcomes.push(match event {
                None => Outcome::Poison,
                Some(event) => self.handle_one(&mut tx, event).instrument(self.span(event)).await?,
            });
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    fn span(&self, event: &Event) -> tracing::Span {
        let span = tracing::info_span!("event", consumer = %self.subscription.durable, event.id = %event.id(), event.type = %event.kind());
        telemetry::adopt_parent(
            &span,
            Some(event.envelope.traceparent.as_str()).filter(|t| !t.is_empty()),
        );
        span
    }

    async fn handle_one(&self, tx: &mut sqlx::Transaction<'static, sqlx::Postgres>, event: &Event) -> Result<Outcome> {
        let mut savepoint = tx.begin().await?;
        let fresh = sqlx::query!(
            "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            self.subscription.durable,
            event.id(),
        )
        .execute(&mut *savepoint)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            savepoint.commit().await?;
            return Ok(Outcome::Duplicate);
        }
        let conn = savepoint.acquire().await?;
        match self.handler.handle(conn, event).await {
            Ok(()) => {
                savepoint.commit().await?;
                Ok(Outcome::Handled)
            }
            Err(e) => {
                savepoint.rollback().await?;
                let poison = matches!(e, Error::InvalidArgument { .. });
                tracing::warn!(error = %e, poison, "event handler failed");
                Ok(if poison { Outcome::Poison } else { Outcome::Failed })
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Handled,
    Duplicate,
    Failed,
    Poison,
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Self::Handled => "handled",
            Self::Duplicate => "duplicate",
            Self::Failed => "failed",
            Self::Poison => "poison",
        }
    }
}
