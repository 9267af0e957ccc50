//! `cargo bench -p paas-devops --bench runs`: 200 webhook pushes at once to
//! 200 pipelines of one trivial step (`echo`), executed by one runner (what
//! `paas runner` runs) with 8 slots, against a real devops service, Git
//! server (`git daemon`), PostgreSQL and NATS.
//!
//! Figures (times from devops' own records; `accepted` is when the webhook
//! call returned to the sender):
//! - webhook accepted -> first step started (claimed by the runner), p50/p99,
//!   for the first 8 runs (an idle runner) and for all;
//! - runs completed per minute (last run finished - first webhook sent);
//! - queueing overhead per run: the platform's time around a step — from
//!   accepted (first 8) or from the slot's previous step finishing (the rest)
//!   to the step starting, plus from the step finishing to the run finished;
//! - the platform's share of the time vs the steps' own (start -> finish as
//!   the runner reports, including its fresh workspace and `git fetch`).

#[allow(dead_code, unused_imports)]
#[path = "../tests/runs/helpers.rs"]
mod helpers;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use helpers::{GitServer, World};
use kernel::testkit::{TestPlatform, eventually};
use paas_proto::v1 as pb;
use uuid::Uuid;

const PIPELINES: usize = 200;
const CONCURRENCY: u32 = 8;
/// `PAAS_DB_POOL_SIZE`'s default.
const DB_POOL: u32 = 8;
const IDLE_RUNS: usize = CONCURRENCY as usize;
const TARGET_IDLE_P99_MS: f64 = 200.0;
const TARGET_OVERHEAD_MS: f64 = 50.0;

const ECHO: &str = concat!(
    "stages:\n",
    "  - name: build\n",
    "    steps:\n",
    "      - name: hello\n",
    "        kind: run\n",
    "        commands: ['echo hello']\n",
);

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: chrono::TimeDelta) -> f64 {
    d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

struct Hook {
    pipeline: String,
    id: String,
    secret: String,
}

#[derive(sqlx::FromRow)]
struct Timing {
    run_id: Uuid,
    state: String,
    step_started: Option<DateTime<Utc>>,
    step_finished: Option<DateTime<Utc>>,
    run_finished: Option<DateTime<Utc>>,
}

async fn make_hooks(w: &World, git: &GitServer, n: usize, prefix: &str) -> Vec<Hook> {
    let mut hooks = Vec::with_capacity(n);
    for i in 0..n {
        let pipeline = w
            .dev()
            .create_pipeline(pb::CreatePipelineRequest {
                tenant_id: w.tenant.to_string(),
                name: format!("{prefix}-{i}"),
                repository: git.url.clone(),
                application_id: String::new(),
                definition: ECHO.into(),
                definition_source: "platform".into(),
            })
            .await
            .expect("pipeline created")
            .into_inner();
        let (id, secret) = w.webhook(&pipeline).await;
        hooks.push(Hook {
            pipeline: pipeline.id,
            id,
            secret,
        });
    }
    hooks
}

async fn timings(w: &World) -> Vec<Timing> {
    sqlx::query_as::<_, Timing>(
        "SELECT r.id AS run_id, r.state, s.started_at AS step_started, s.finished_at AS step_finished,
                r.finished_at AS run_finished
         FROM runs r LEFT JOIN steps s ON s.run_id = r.id",
    )
    .fetch_all(&w.pool)
    .await
    .expect("timings read")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut t = TestPlatform::new().await;
    // Tests run with small pools; measure with the platform's default.
    t.settings.db_pool_size = DB_POOL;
    let w = World::start(
        t,
        devops::registry::Settings::default(),
        devops::notification::Smtp::default(),
    )
    .await;
    let git = GitServer::start().await;
    let commit = git.push("main").await;
    println!(
        "devops runs benchmark: {PIPELINES} pipelines x 1 step (`echo hello`), one runner with {CONCURRENCY} slots, \
         sandbox {:?}, git daemon source, webhook deliveries over devops' gRPC API, all sent at once",
        w.sandbox
    );
    let setup = Instant::now();
    let warm = make_hooks(&w, &git, 1, "warm").await;
    let hooks = make_hooks(&w, &git, PIPELINES, "bench").await;
    println!(
        "setup: {} pipelines and webhooks in {:.1} s",
        PIPELINES + 1,
        setup.elapsed().as_secs_f64()
    );
    let _runner = w.runner("bench", CONCURRENCY).await;

    // One run first, so the runner is connected and idle when the burst comes.
    let answer = w
        .deliver(&warm[0].id, &warm[0].secret, "warm-1", "refs/heads/main", &commit)
        .await
        .expect("warm-up delivery");
    w.run_reaches(&answer.run_id, "succeeded").await;
    let warm_run: Uuid = answer.run_id.parse().unwrap();

    let sent = Utc::now();
    let clock = Instant::now();
    let deliveries = hooks.iter().enumerate().map(|(i, h)| {
        let w = &w;
        let commit = commit.clone();
        async move {
            let answer = w
                .deliver(&h.id, &h.secret, &format!("burst-{i}"), "refs/heads/main", &commit)
                .await
                .expect("delivery accepted");
            assert_eq!(answer.outcome, "queued");
            (answer.run_id.parse::<Uuid>().unwrap(), Utc::now())
        }
    });
    let accepted: HashMap<Uuid, DateTime<Utc>> = futures::future::join_all(deliveries).await.into_iter().collect();
    let answered = clock.elapsed();
    eventually(Duration::from_secs(600), "every run finished", || async {
        let t = timings(&w).await;
        t.iter()
            .all(|t| matches!(t.state.as_str(), "succeeded" | "failed" | "cancelled"))
            .then_some(())
    })
    .await;
    let wall = clock.elapsed();

    let all: Vec<Timing> = timings(&w).await.into_iter().filter(|t| t.run_id != warm_run).collect();
    // Invariants: one run per push, every one succeeded, each step timed.
    assert_eq!(all.len(), PIPELINES, "one run (and one step) per push");
    let pipelines: i64 = sqlx::query_scalar("SELECT count(DISTINCT pipeline_id) FROM runs")
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert_eq!(pipelines, PIPELINES as i64 + 1, "each pipeline ran once");
    assert!(hooks.iter().all(|h| !h.pipeline.is_empty()));
    let failed: Vec<&Timing> = all.iter().filter(|t| t.state != "succeeded").collect();
    assert!(failed.is_empty(), "{} runs did not succeed", failed.len());

    struct Row {
        accepted: DateTime<Utc>,
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
        run_finished: DateTime<Utc>,
    }
    let mut rows: Vec<Row> = all
        .iter()
        .map(|t| Row {
            accepted: accepted[&t.run_id],
            started: t.step_started.expect("started"),
            finished: t.step_finished.expect("finished"),
            run_finished: t.run_finished.expect("run finished"),
        })
        .collect();
    rows.sort_by_key(|r| r.started);

    let mut to_start: Vec<f64> = rows.iter().map(|r| ms(r.started - r.accepted)).collect();
    let mut idle: Vec<f64> = to_start[..IDLE_RUNS].to_vec();
    idle.sort_by(f64::total_cmp);
    to_start.sort_by(f64::total_cmp);

    // A slot frees when a step finishes: the i-th start (from the 9th on)
    // waits for the (i-8)-th finish at the earliest.
    let mut finishes: Vec<DateTime<Utc>> = rows.iter().map(|r| r.finished).collect();
    finishes.sort();
    let mut platform = Vec::with_capacity(rows.len());
    let mut own = Vec::with_capacity(rows.len());
    let mut dispatch = Vec::with_capacity(rows.len());
    let mut closing = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let ready = if i < IDLE_RUNS {
            r.accepted
        } else {
            r.accepted.max(finishes[i - IDLE_RUNS])
        };
        let wait = ms(r.started - ready).max(0.0);
        let end = ms(r.run_finished - r.finished).max(0.0);
        dispatch.push(wait);
        closing.push(end);
        platform.push(wait + end);
        own.push(ms(r.finished - r.started));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let overhead = mean(&platform);
    let platform_total: f64 = platform.iter().sum();
    let own_total: f64 = own.iter().sum();
    let first_sent_to_last = rows
        .iter()
        .map(|r| r.run_finished)
        .max()
        .map_or(f64::NAN, |last| ms(last - sent));
    let per_minute = PIPELINES as f64 / (first_sent_to_last / 60_000.0);
    let mut own_sorted = own.clone();
    own_sorted.sort_by(f64::total_cmp);

    println!(
        "settings: pipelines={PIPELINES} runner_slots={CONCURRENCY} steps_per_run=1 step=`echo hello` \
         db_pool={DB_POOL} conductor_parallel={} conductor_tick={:?} (resync pass; runs are attended to when touched) \
         job_stream_fallback_poll={:?} (streams are woken when a step is queued or a slot frees)",
        devops::conductor::PARALLEL,
        devops::conductor::TICK,
        devops::runner_grpc::JOB_POLL
    );
    println!(
        "burst: {PIPELINES} deliveries answered in {:.0} ms; all runs done {:.1} s after the first was sent",
        answered.as_secs_f64() * 1000.0,
        wall.as_secs_f64()
    );
    let idle_p99 = percentile(&idle, 99.0);
    println!(
        "webhook accepted -> first step started, first {IDLE_RUNS} runs (idle runner): p50 {:.1} ms, p99 {:.1} ms \
         (target p99 <= {TARGET_IDLE_P99_MS} ms) {}",
        percentile(&idle, 50.0),
        idle_p99,
        verdict(idle_p99 <= TARGET_IDLE_P99_MS)
    );
    println!(
        "webhook accepted -> first step started, all {PIPELINES} runs (waiting for free slots included): \
         p50 {:.1} ms, p99 {:.1} ms",
        percentile(&to_start, 50.0),
        percentile(&to_start, 99.0)
    );
    println!("runs completed per minute: {per_minute:.0} ({first_sent_to_last:.0} ms for {PIPELINES} runs)");
    println!(
        "queueing overhead per run: {overhead:.1} ms mean (dispatch {:.1} ms p50 / {:.1} ms p99, \
         step finished -> run finished {:.1} ms p50) (target <= {TARGET_OVERHEAD_MS} ms) {}",
        percentile(&sorted(&dispatch), 50.0),
        percentile(&sorted(&dispatch), 99.0),
        percentile(&sorted(&closing), 50.0),
        verdict(overhead <= TARGET_OVERHEAD_MS)
    );
    println!(
        "time split: platform {:.1}% ({platform_total:.0} ms), steps' own {:.1}% ({own_total:.0} ms; \
         a step takes p50 {:.0} ms: fresh workspace, git fetch, sandbox, echo)",
        100.0 * platform_total / (platform_total + own_total),
        100.0 * own_total / (platform_total + own_total),
        percentile(&own_sorted, 50.0)
    );
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}
