//! Fixtures for tests: every test gets a fresh database on the local
//! PostgreSQL and a unique event prefix (so its own JetStream stream) on the
//! local NATS, so tests running in parallel never see each other's state or
//! events.
//!
//! The servers default to the local ones and can be pointed elsewhere with
//! `PAAS_TEST_DATABASE_URL` (any database on the server; new ones are made
//! beside it), `PAAS_TEST_NATS_URL` and `PAAS_TEST_REDIS_URL`.
//!
//! Names carry their creation time (`paas_t_<unix secs>_<random>`), so the
//! first fixture of each test process removes leftovers of runs older than
//! [`STALE_AFTER`] without touching those of tests running now.

use std::time::Duration;

use crate::settings::{self, Env, Platform};

/// Prefix of the databases tests create.
pub const DATABASE_PREFIX: &str = "paas_t_";
/// Prefix of the event prefixes tests use (and so of their streams' names).
pub const EVENT_PREFIX: &str = "paast-";
/// Age after which a test's database or stream is a leftover.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

/// Settings for one test: a new database and event prefix, a random caller key.
pub struct TestPlatform {
    /// The settings, ready for a service's `start`.
    pub settings: Platform,
    /// The raw variables behind them, to extend with service settings.
    pub env: Env,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TestPlatform {
    /// Creates the database and returns the settings.
    ///
    /// # Panics
    /// When PostgreSQL is unreachable: no such test can run without it.
    pub async fn new() -> Self {
        let tag = format!("{}_{:08x}", now_secs(), rand::random::<u32>());
        let base = std::env::var("PAAS_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let base = settings::DatabaseUrl::from_url_text(&base).expect("PAAS_TEST_DATABASE_URL is a postgres:// URL");
        let nats = std::env::var("PAAS_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        let env = Env::from_pairs([
            (
                settings::DATABASE_URL.to_string(),
                base.with_database(&format!("{DATABASE_PREFIX}{tag}"))
                    .expose()
                    .to_string(),
            ),
            (settings::NATS_URL.to_string(), nats.clone()),
            (
                settings::REDIS_URL.to_string(),
                std::env::var("PAAS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            ),
            (
                settings::EVENT_PREFIX.to_string(),
                format!("{EVENT_PREFIX}{}", tag.replace('_', "-")),
            ),
            (
                settings::CALLER_KEY.to_string(),
                format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>()),
            ),
            (settings::LOG_FORMAT.to_string(), "text".to_string()),
            (settings::DB_POOL_SIZE.to_string(), "4".to_string()),
        ]);
        let settings = Platform::from_env(&env).expect("test settings are valid");
        sweep_once(&base, &nats).await;
        crate::db::ensure_database(&settings.database_url)
            .await
            .expect("PostgreSQL is reachable for tests");
        Self { settings, env }
    }
}

/// How often [`eventually`] asks again: short enough that a test waits about
/// as long as the work takes, long enough not to busy-spin two shared cores.
pub const POLL: Duration = Duration::from_millis(20);

/// Waits for a positive signal: polls `probe` every [`POLL`] until it returns
/// `Some`, and returns that value.
///
/// Tests use it instead of a fixed sleep, both to wait for work to happen and,
/// before checking that something did *not* happen, to wait for the evidence
/// that the work which could have done it has run.
///
/// # Panics
/// When `probe` has not returned `Some` within `within`; the message names
/// `what` was awaited.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Whether a test resource name (after its prefix) is older than [`STALE_AFTER`].
fn is_stale(rest: &str, now: u64) -> bool {
    let secs = rest.split(['_', '-']).next().and_then(|s| s.parse::<u64>().ok());
    secs.is_some_and(|s| s + STALE_AFTER.as_secs() < now)
}

async fn sweep_once(base: &settings::DatabaseUrl, nats: &str) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let now = now_secs();
            if let Ok(mut admin) = <sqlx::PgConnection as sqlx::Connection>::connect(base.expose()).await {
                let names: Vec<String> =
                    sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'paas\\_t\\_%'")
                        .fetch_all(&mut admin)
                        .await
                        .unwrap_or_default();
                for name in names.iter().filter(|n| is_stale(&n[DATABASE_PREFIX.len()..], now)) {
                    // Names come from pg_database and match our own pattern.
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                }
            }
            if let Ok(client) = async_nats::connect(nats).await {
                let js = async_nats::jetstream::new(client);
                let stream_prefix = EVENT_PREFIX.to_ascii_uppercase().replace('-', "_");
                let mut names = js.stream_names();
                let mut stale = Vec::new();
                use futures::StreamExt;
                while let Some(Ok(name)) = names.next().await {
                    if let Some(rest) = name.strip_prefix(&stream_prefix)
                        && is_stale(rest, now)
                    {
                        stale.push(name);
                    }
                }
                for name in stale {
                    let _ = js.delete_stream(&name).await;
                }
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_returns_the_first_value_the_probe_finds() {
        let mut calls = 0;
        let found = eventually(Duration::from_secs(5), "the third call", || {
            calls += 1;
            let now = calls;
            async move { (now == 3).then_some(now) }
        })
        .await;
        assert_eq!(found, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "nothing did not happen within")]
    async fn eventually_panics_naming_what_it_waited_for() {
        eventually(Duration::from_millis(50), "nothing", || async { None::<()> }).await;
    }

    #[test]
    fn only_names_older_than_an_hour_are_stale() {
        assert!(is_stale("1000_abcd", 1000 + 3601));
        assert!(!is_stale("1000_abcd", 1000 + 10));
        assert!(!is_stale("notanumber", 10_000));
        assert!(is_stale("1000_ABCD_EVENTS", 5000));
    }
}
