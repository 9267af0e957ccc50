//! Events through the outbox path (a state change and its event committed in
//! one PostgreSQL transaction -> relay -> JetStream -> durable consumer with
//! inbox) against raw JetStream publish -> consume, in the same run, on the
//! same servers. Prints throughput at saturation and p50/p99 publish-to-handle
//! latency at a paced 1,000 events/s, and the ratios. For context it also
//! runs `pgbench` with the outbox writer's transaction shape (two inserts and a
//! commit, same client count) on the same PostgreSQL: the durable-commit
//! ceiling no outbox can pass.
//!
//! Run: `cargo bench -p paas-kernel --bench events`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{self, AckPolicy};
use futures::StreamExt;
use hdrhistogram::Histogram;
use kernel::event::{Bus, Event, EventType};
use kernel::inbox::{Consumer, Handler, Subscription};
use kernel::outbox::{self, Outbox, Relay};
use kernel::testkit::TestPlatform;
use paas_proto::v1::ResourceChanged;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const PRODUCERS: usize = 16;
const SATURATION_EVENTS: usize = 20_000;
const PACED_RATE: u64 = 1_000;
const PACED_SECONDS: u64 = 5;
const BENCH_EVENT: EventType = EventType::new("bench", "note", "created");
static NOTES: sqlx::migrate::Migrator = sqlx::migrate!("tests/events/migrations");

/// Latencies and a countdown shared by producers and the consumer.
#[derive(Clone)]
struct Tally {
    base: Instant,
    latencies: Arc<Mutex<Histogram<u64>>>,
    remaining: Arc<Mutex<usize>>,
    done: Arc<Notify>,
}

impl Tally {
    fn new(base: Instant, expected: usize) -> Self {
        Self {
            base,
            latencies: Arc::new(Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).unwrap())),
            remaining: Arc::new(Mutex::new(expected)),
            done: Arc::new(Notify::new()),
        }
    }
    fn stamp(&self) -> String {
        (self.base.elapsed().as_micros() as u64).to_string()
    }
    fn handled(&self, stamp: &str) {
        let sent: u64 = stamp.parse().unwrap_or(0);
        let now = self.base.elapsed().as_micros() as u64;
        self.latencies
            .lock()
            .unwrap()
            .record(now.saturating_sub(sent).max(1))
            .unwrap();
        let mut left = self.remaining.lock().unwrap();
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.done.notify_one();
        }
    }
    fn p(&self, q: f64) -> f64 {
        self.latencies.lock().unwrap().value_at_quantile(q) as f64 / 1000.0
    }
}

struct Timed(Tally);

impl Handler for Timed {
    async fn handle(&self, _tx: &mut PgConnection, event: &Event) -> kernel::Result<()> {
        let note: ResourceChanged = event.payload()?;
        self.0.handled(&note.name);
        Ok(())
    }
}

async fn outbox_write(outbox: &Outbox, tally: &Tally) {
    let mut tx = outbox.pool().begin().await.unwrap();
    let id = kernel::id::new_id();
    sqlx::query("INSERT INTO notes (id, text) VALUES ($1, 'bench')")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let payload = ResourceChanged {
        id: id.to_string(),
        tenant_id: String::new(),
        name: tally.stamp(),
    };
    outbox::record(&mut tx, BENCH_EVENT, None, &payload).await.unwrap();
    outbox.commit(tx).await.unwrap();
}

async fn raw_publish(bus: &Bus, tally: &Tally) {
    let payload = ResourceChanged {
        id: kernel::id::new_id().to_string(),
        tenant_id: String::new(),
        name: tally.stamp(),
    };
    let body = prost::Message::encode_to_vec(&payload);
    bus.jetstream
        .publish(bus.subject("raw.note.created"), body.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// Closed loop: PRODUCERS tasks write `n` events as fast as they can.
async fn saturate<F, Fut>(n: usize, tally: &Tally, write: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PRODUCERS {
        let write = write.clone();
        let share = n / PRODUCERS + usize::from(p < n % PRODUCERS);
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                write().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(120), tally.done.notified())
        .await
        .expect("all events handled");
    n as f64 / start.elapsed().as_secs_f64()
}

/// Open loop: one event every 1/PACED_RATE s, each written by its own task.
async fn paced<F, Fut>(tally: &Tally, write: F)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let n = (PACED_RATE * PACED_SECONDS) as usize;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / PACED_RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..n {
        tick.tick().await;
        tokio::spawn(write());
    }
    tokio::time::timeout(Duration::from_secs(60), tally.done.notified())
        .await
        .expect("all paced events handled");
}

fn spawn_raw_consumer(bus: Bus, durable: &str, tally: Tally, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    let durable = durable.to_string();
    tokio::spawn(async move {
        let stream = bus.ensure_stream().await.unwrap();
        let c = stream
            .get_or_create_consumer(
                &durable,
                consumer::pull::Config {
                    durable_name: Some(durable.clone()),
                    filter_subject: bus.subject("raw.note.created"),
                    ack_policy: AckPolicy::Explicit,
                    max_ack_pending: 20_000,
                    deliver_policy: consumer::DeliverPolicy::New,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let mut messages = c.messages().await.unwrap();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                m = messages.next() => {
                    let Some(Ok(m)) = m else { return };
                    let note: ResourceChanged = prost::Message::decode(m.payload.as_ref()).unwrap();
                    tally.handled(&note.name);
                    let _ = m.ack().await;
                }
            }
        }
    })
}

struct Figures {
    saturated: f64,
    p50: f64,
    p99: f64,
}

async fn run_raw(bus: &Bus, base: Instant) -> Figures {
    let stop = CancellationToken::new();
    let sat = Tally::new(base, SATURATION_EVENTS);
    let c = spawn_raw_consumer(bus.clone(), "raw-sat", sat.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (b, t) = (bus.clone(), sat.clone());
    let saturated = saturate(SATURATION_EVENTS, &sat, move || {
        let (b, t) = (b.clone(), t.clone());
        async move { raw_publish(&b, &t).await }
    })
    .await;
    stop.cancel();
    let _ = c.await;

    let stop = CancellationToken::new();
    let paced_tally = Tally::new(base, (PACED_RATE * PACED_SECONDS) as usize);
    let c = spawn_raw_consumer(bus.clone(), "raw-paced", paced_tally.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (b, t) = (bus.clone(), paced_tally.clone());
    paced(&paced_tally, move || {
        let (b, t) = (b.clone(), t.clone());
        async move { raw_publish(&b, &t).await }
    })
    .await;
    stop.cancel();
    let _ = c.await;
    Figures {
        saturated,
        p50: paced_tally.p(0.5),
        p99: paced_tally.p(0.99),
    }
}

async fn run_outbox(pool: &PgPool, bus: &Bus, base: Instant) -> Figures {
    let stop = CancellationToken::new();
    let outbox = Outbox::new(pool.clone());
    tokio::spawn(Relay::new(&outbox, bus.clone(), "bench").run(stop.clone()));

    let mut figures = Figures {
        saturated: 0.0,
        p50: 0.0,
        p99: 0.0,
    };
    for (phase, expected) in [
        ("sat", SATURATION_EVENTS),
        ("paced", (PACED_RATE * PACED_SECONDS) as usize),
    ] {
        let tally = Tally::new(base, expected);
        let consumer_stop = stop.child_token();
        let consumer = Consumer::new(
            pool.clone(),
            bus.clone(),
            Subscription {
                durable: format!("outbox-{phase}"),
                filter: "bench.note.*".into(),
            },
            Timed(tally.clone()),
        );
        tokio::spawn(consumer.run(consumer_stop.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (o, t) = (outbox.clone(), tally.clone());
        let write = move || {
            let (o, t) = (o.clone(), t.clone());
            async move { outbox_write(&o, &t).await }
        };
        if phase == "sat" {
            figures.saturated = saturate(expected, &tally, write).await;
        } else {
            paced(&tally, write).await;
            figures.p50 = tally.p(0.5);
            figures.p99 = tally.p(0.99);
        }
        consumer_stop.cancel();
        // The next phase's consumer starts from the stream's beginning; its
        // own durable name keeps the earlier phase's events out of its tally
        // only if they are filtered, so wait for the stream to be consumed
        // and purge it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        bus.ensure_stream().await.unwrap().purge().await.unwrap();
    }
    stop.cancel();
    figures
}

/// Transactions per second PostgreSQL sustains for the writer's shape, if
/// pgbench is installed.
fn pgbench_ceiling(url: &str) -> Option<f64> {
    let script = std::env::temp_dir().join(format!("paas-bench-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "BEGIN;\nINSERT INTO bench.notes (id, text) VALUES (gen_random_uuid(), 'bench');\n\
         INSERT INTO bench.outbox (id, subject, envelope) VALUES (gen_random_uuid(), 'bench.note.created', '\\x0102030405060708');\nCOMMIT;\n",
    )
    .ok()?;
    let out = std::process::Command::new("pgbench")
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &PRODUCERS.to_string(),
            "-j",
            "2",
            "-T",
            "8",
            "-f",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[tokio::main]
async fn main() {
    let t = TestPlatform::new().await;
    let mut settings = t.settings.clone();
    settings.db_pool_size = 32;
    let pool = kernel::db::connect(&settings, "bench").await.unwrap();
    kernel::db::migrate(&pool, &NOTES).await.unwrap();
    let bus = Bus::connect(&settings).await.unwrap();
    let base = Instant::now();

    println!(
        "events benchmark: {PRODUCERS} producers, {SATURATION_EVENTS} events at saturation, then {PACED_RATE}/s for {PACED_SECONDS}s"
    );
    let raw = run_raw(&bus, base).await;
    bus.ensure_stream().await.unwrap().purge().await.unwrap();
    let ob = run_outbox(&pool, &bus, base).await;

    println!("{:<28} {:>12} {:>10} {:>10}", "path", "events/s", "p50 ms", "p99 ms");
    println!(
        "{:<28} {:>12.0} {:>10.2} {:>10.2}",
        "raw JetStream", raw.saturated, raw.p50, raw.p99
    );
    println!(
        "{:<28} {:>12.0} {:>10.2} {:>10.2}",
        "outbox -> relay -> inbox", ob.saturated, ob.p50, ob.p99
    );
    let ceiling = pgbench_ceiling(settings.database_url.expose());
    if let Some(tps) = ceiling {
        println!(
            "{:<28} {:>12.0}   (same transaction shape, {PRODUCERS} clients, no relay or consumer)",
            "pgbench commit ceiling", tps
        );
    }
    println!(
        "ratio outbox/raw: throughput {:.2} (target >= 0.50); outbox p99 at {PACED_RATE}/s {:.2} ms (target <= 20 ms)",
        ob.saturated / raw.saturated,
        ob.p99
    );
    if let Some(tps) = ceiling {
        println!(
            "ratio pgbench/raw {:.2}: the most any one-transaction-per-event outbox can reach here; outbox/pgbench {:.2}",
            tps / raw.saturated,
            ob.saturated / tps
        );
    }
    let _ = bus.jetstream.delete_stream(bus.stream_name()).await;
}
