//! A scratch service schema with a `notes` table whose writes announce
//! `test.note.created`, and a consumer that counts what it handles.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kernel::event::{Bus, Event, EventType};
use kernel::inbox::{Consumer, Handler, Subscription};
use kernel::outbox;
use kernel::testkit::TestPlatform;
use paas_proto::v1::ResourceChanged;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const NOTE_CREATED: EventType = EventType::new("test", "note", "created");

pub struct Scratch {
    pub pool: PgPool,
    pub outbox: outbox::Outbox,
    pub bus: Bus,
    pub stop: CancellationToken,
}

static NOTES: sqlx::migrate::Migrator = sqlx::migrate!("tests/events/migrations");

impl Scratch {
    pub async fn new() -> Self {
        let t = TestPlatform::new().await;
        let pool = kernel::db::connect(&t.settings, "scratch").await.expect("database");
        kernel::db::migrate(&pool, &NOTES).await.expect("migrations");
        let bus = Bus::connect(&t.settings).await.expect("NATS with JetStream");
        Self {
            outbox: outbox::Outbox::new(pool.clone()),
            pool,
            bus,
            stop: CancellationToken::new(),
        }
    }

    /// Writes a note and its event in one transaction; commits unless told not to.
    pub async fn write_note(&self, text: &str, commit: bool) -> Uuid {
        let mut tx = self.pool.begin().await.unwrap();
        let id = kernel::id::new_id();
        sqlx::query("INSERT INTO notes (id, text) VALUES ($1, $2)")
            .bind(id)
            .bind(text)
            .execute(&mut *tx)
            .await
            .unwrap();
        let payload = ResourceChanged {
            id: id.to_string(),
            tenant_id: String::new(),
            name: text.into(),
        };
        outbox::record(&mut tx, NOTE_CREATED, None, &payload).await.unwrap();
        if commit {
            self.outbox.commit(tx).await.unwrap();
        } else {
            tx.rollback().await.unwrap();
        }
        id
    }

    pub fn relay(&self) -> outbox::Relay {
        outbox::Relay::new(&self.outbox, self.bus.clone(), "scratch")
    }

    pub fn spawn_relay(&self) -> CancellationToken {
        let stop = self.stop.child_token();
        tokio::spawn(self.relay().run(stop.clone()));
        stop
    }

    pub fn spawn_consumer(&self, durable: &str) -> (Arc<AtomicUsize>, CancellationToken) {
        let count = Arc::new(AtomicUsize::new(0));
        let stop = self.stop.child_token();
        let consumer = Consumer::new(
            self.pool.clone(),
            self.bus.clone(),
            Subscription {
                durable: durable.into(),
                filter: "test.note.*".into(),
            },
            Recorder {
                count: count.clone(),
                failures: Arc::default(),
            },
        );
        tokio::spawn(consumer.run(stop.clone()));
        (count, stop)
    }

    pub async fn handled(&self) -> Vec<(Uuid, String)> {
        sqlx::query_as("SELECT note_id, text FROM handled ORDER BY handled_at")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    /// Messages in the stream (after JetStream's deduplication).
    pub async fn stream_messages(&self) -> u64 {
        let mut stream = self.bus.ensure_stream().await.unwrap();
        stream.info().await.unwrap().state.messages
    }

    /// Waits until the relay has published every committed event and the
    /// durable `consumer` has acknowledged (or terminated) every message in
    /// the stream: the positive signal after which "nothing more was handled"
    /// can be checked.
    pub async fn until_settled(&self, consumer: &str, within: Duration) {
        let relay = self.relay();
        kernel::testkit::eventually(within, "the consumer settling the whole stream", || async {
            if relay.backlog().await.unwrap() != 0 {
                return None;
            }
            let mut stream = self.bus.ensure_stream().await.unwrap();
            let last = stream.info().await.unwrap().state.last_sequence;
            let info = stream.consumer_info(consumer).await.ok()?;
            (info.ack_floor.stream_sequence >= last && info.num_ack_pending == 0 && info.num_pending == 0).then_some(())
        })
        .await;
    }

    /// Waits until `n` notes were handled, or panics after `within`.
    pub async fn until_handled(&self, n: usize, within: Duration) -> Vec<(Uuid, String)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let handled = self.handled().await;
            if handled.len() >= n {
                return handled;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {n} events handled within {within:?}",
                handled.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Records each handled note in `handled` (in the inbox transaction) and counts
/// calls. A note named `fail-twice` fails its first two attempts (a passing
/// outage: once in the batch, once in the per-event replay); one named `poison`
/// is refused as invalid (it can never succeed).
pub struct Recorder {
    pub count: Arc<AtomicUsize>,
    pub failures: Arc<AtomicUsize>,
}

impl Handler for Recorder {
    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> kernel::Result<()> {
        let note: ResourceChanged = event.payload()?;
        let id = kernel::id::parse_id("id", &note.id)?;
        if note.name == "poison" {
            return Err(kernel::Error::invalid("name", "poison"));
        }
        // Write first, then fail: the rollback must undo the write.
        sqlx::query("INSERT INTO handled (note_id, text) VALUES ($1, $2)")
            .bind(id)
            .bind(format!("{}-partial", note.name))
            .execute(&mut *tx)
            .await?;
        if note.name == "fail-twice" && self.failures.fetch_add(1, Ordering::SeqCst) < 2 {
            return Err(kernel::Error::Unavailable("a passing outage".into()));
        }
        sqlx::query("DELETE FROM handled WHERE note_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO handled (note_id, text) VALUES ($1, $2)")
            .bind(id)
            .bind(&note.name)
            .execute(&mut *tx)
            .await?;
        self.count.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
