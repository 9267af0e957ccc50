//! Admission throughput: reservations per second and p99 latency with 64
//! concurrent clients on one tenant (every call waits for the same tenant
//! lock) and on 64 different tenants, then pgbench's built-in simple-update on
//! the same PostgreSQL as the physical baseline, in the same run. In the
//! throughput phases each client reserves one CPU at a time with room to
//! spare. A third phase gives room for only 40 and each client reserves and
//! releases in a loop, so grants, refusals and releases race; over-commit is
//! checked after every phase.
//!
//! Run: `cargo bench -p paas-tenancy --bench reservations`

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kernel::caller::Caller;
use kernel::outbox::Outbox;
use kernel::testkit::TestPlatform;
use tenancy::partition::{NewPartition, Partitions};
use tenancy::project::{NewProject, Projects};
use tenancy::quota::{Quotas, TenantQuota};
use tenancy::reservation::{Request, Reservations};
use tenancy::resource::ResourceList;
use tenancy::tenant::{NewTenant, Tenants};
use uuid::Uuid;

const CLIENTS: usize = 64;
const PHASE: Duration = Duration::from_secs(8);
/// Room, in CPUs, in the throughput phases: more than any run reserves.
const AMPLE: usize = 10_000_000;
/// Room in the race phase: some of the 64 clients are always refused.
const TIGHT: usize = 40;

struct Setup {
    tenants: Tenants,
    projects: Projects,
    partitions: Partitions,
    quotas: Quotas,
    reservations: Reservations,
    pool: sqlx::PgPool,
}

fn cpu(n: &str) -> ResourceList {
    let pair = [("requests.cpu".to_string(), n.to_string())];
    ResourceList::parse("amounts", pair.iter().map(|(a, b)| (a, b))).unwrap()
}

impl Setup {
    /// A tenant with room for `room` CPUs, and its one partition.
    async fn partition(&self, name: &str, room: usize) -> (Uuid, Uuid) {
        let admin = Caller::platform_admin("bench");
        let t = self
            .tenants
            .create(&admin, NewTenant::parse(name, "", "").unwrap())
            .await
            .unwrap();
        self.quotas
            .set_tenant(
                &admin,
                t.id,
                &TenantQuota {
                    hard: cpu(&room.to_string()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let p = self
            .projects
            .create(&admin, t.id, NewProject::parse("web", "", "").unwrap())
            .await
            .unwrap();
        let part = self
            .partitions
            .create(
                &admin,
                p.id,
                NewPartition::parse("dc1", "dc1", "", Default::default(), "").unwrap(),
            )
            .await
            .unwrap();
        (t.id, part.id)
    }
}

struct Figures {
    per_second: f64,
    p50: f64,
    p99: f64,
    granted: u64,
    refused: u64,
}

async fn phase(setup: Arc<Setup>, partitions: Vec<Uuid>, release: bool) -> Figures {
    let admin = Caller::platform_admin("bench");
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let setup = setup.clone();
            let admin = admin.clone();
            let partition = partitions[c % partitions.len()];
            tokio::spawn(async move {
                let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let (mut granted, mut refused) = (0u64, 0u64);
                let mut i = 0;
                while start.elapsed() < PHASE {
                    i += 1;
                    let request = Request::parse(partition, cpu("1"), &format!("c{c}-{i}"), 60, false).unwrap();
                    let t = Instant::now();
                    let r = setup.reservations.reserve(&admin, &request).await;
                    latencies.record(t.elapsed().as_micros().max(1) as u64).unwrap();
                    match r {
                        Ok(r) => {
                            granted += 1;
                            if release {
                                setup.reservations.release(&admin, r.id).await.unwrap();
                            }
                        }
                        Err(kernel::Error::ResourceExhausted(_)) => refused += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                (latencies, granted, refused)
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let (mut granted, mut refused) = (0, 0);
    for t in tasks {
        let (h, g, r) = t.await.unwrap();
        all.add(h).unwrap();
        granted += g;
        refused += r;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Figures {
        per_second: all.len() as f64 / elapsed,
        p50: all.value_at_quantile(0.5) as f64 / 1000.0,
        p99: all.value_at_quantile(0.99) as f64 / 1000.0,
        granted,
        refused,
    }
}

async fn over_committed(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM quotas WHERE hard IS NOT NULL AND used > hard")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn pgbench_simple_update(url: &str) -> Result<f64, String> {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("pgbench")
            .args(args)
            .arg(url)
            .output()
            .map_err(|e| format!("pgbench: {e} (install postgresql-client)"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    };
    run(&["-i", "-q", "-s", "10"])?;
    let text = run(&[
        "-n",
        "-b",
        "simple-update",
        "-c",
        &CLIENTS.to_string(),
        "-j",
        "2",
        "-T",
        &PHASE.as_secs().to_string(),
    ])?;
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no tps in pgbench output: {text}"))
}

#[tokio::main]
async fn main() {
    let t = TestPlatform::new().await;
    let mut settings = t.settings.clone();
    settings.db_pool_size = CLIENTS as u32;
    let pool = kernel::db::connect(&settings, tenancy::NAME).await.unwrap();
    kernel::db::migrate(&pool, &tenancy::MIGRATIONS).await.unwrap();
    let outbox = Outbox::new(pool.clone());
    let setup = Arc::new(Setup {
        tenants: Tenants::new(outbox.clone()),
        projects: Projects::new(outbox.clone()),
        partitions: Partitions::new(outbox.clone()),
        quotas: Quotas::new(outbox),
        reservations: Reservations::new(pool.clone()),
        pool: pool.clone(),
    });

    println!(
        "reservations benchmark: {CLIENTS} clients, {}s per phase, reservations of 1 CPU",
        PHASE.as_secs()
    );
    let (_, one) = setup.partition("contended", AMPLE).await;
    let contended = phase(setup.clone(), vec![one], false).await;
    let mut spread = Vec::new();
    for i in 0..CLIENTS {
        spread.push(setup.partition(&format!("tenant-{i}"), AMPLE).await.1);
    }
    let uncontended = phase(setup.clone(), spread, false).await;
    let (_, tight) = setup.partition("race", TIGHT).await;
    let race = phase(setup.clone(), vec![tight], true).await;
    let over = over_committed(&setup.pool).await;
    // pgbench needs its own connections: PostgreSQL allows 100 by default.
    setup.pool.close().await;
    let baseline = pgbench_simple_update(settings.database_url.expose());

    println!(
        "{:<40} {:>12} {:>9} {:>9} {:>10} {:>10}",
        "case", "reserves/s", "p50 ms", "p99 ms", "granted", "refused"
    );
    for (name, f) in [
        ("one tenant (contended)", &contended),
        ("64 tenants (uncontended)", &uncontended),
        ("one tenant, room for 40, reserve+release", &race),
    ] {
        println!(
            "{name:<40} {:>12.0} {:>9.2} {:>9.2} {:>10} {:>10}",
            f.per_second, f.p50, f.p99, f.granted, f.refused
        );
    }
    match baseline {
        Ok(tps) => {
            println!("{:<40} {:>12.0}", "pgbench simple-update, 64 clients (tps)", tps);
            println!(
                "ratios: contended {:.0}/s (target >= 1000/s); uncontended / pgbench {:.2} (target >= 0.30)",
                contended.per_second,
                uncontended.per_second / tps
            );
        }
        Err(e) => println!("no pgbench baseline: {e}"),
    }
    println!("over-committed quota rows after all phases: {over} (must be 0)");
}
