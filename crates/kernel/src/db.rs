//! The PostgreSQL pool. Each service owns one schema in the platform database;
//! its pool's `search_path` is that schema, so service SQL never names it. The
//! kernel's own tables (outbox, inbox) are created in every service schema by
//! the kernel migrations before the service's own.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::settings::{DatabaseUrl, Platform};
use crate::{Error, Result};

/// The outbox and inbox tables, created in every service schema.
pub static KERNEL_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/kernel");

/// Creates the database named in `url` if it does not exist, connecting to the
/// server's `postgres` database to do so.
///
/// # Errors
/// The server is unreachable or refuses.
pub async fn ensure_database(url: &DatabaseUrl) -> Result<()> {
    let name = url.database().to_string();
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Error::invalid(
            "PAAS_DATABASE_URL",
            "database name must be letters, digits and _",
        ));
    }
    let mut admin = connect_one(&url.with_database("postgres")).await?;
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#,
        name,
    )
    .fetch_one(&mut admin)
    .await?;
    if !exists {
        // Two processes may race here; losing the race is fine.
        if let Err(e) = // The name was checked to be letters, digits and _ above.
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut admin)
                .await
        {
            let raced = matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("42P04") || d.code().as_deref() == Some("23505"));
            if !raced {
                return Err(e.into());
            }
        }
    }
    let _ = admin.close().await;
    Ok(())
}

async fn connect_one(url: &DatabaseUrl) -> Result<PgConnection> {
    let opts: PgConnectOptions = url.expose().parse().map_err(Error::internal)?;
    opts.log_statements(tracing::log::LevelFilter::Trace)
        .connect()
        .await
        .map_err(|e| Error::Unavailable(format!("cannot connect to PostgreSQL: {e}")))
}

/// A pool whose connections use `schema`, creating the schema if missing.
///
/// # Errors
/// PostgreSQL is unreachable or the schema name is not a plain identifier.
pub async fn connect(settings: &Platform, schema: &str) -> Result<PgPool> {
    if !schema.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return Err(Error::invalid("schema", "must be lower-case letters and _"));
    }
    ensure_database(&settings.database_url).await?;
    let mut one = connect_one(&settings.database_url).await?;
    // The schema was checked to be lower-case letters and _ above.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {schema}")))
        .execute(&mut one)
        .await?;
    let _ = one.close().await;
    let opts: PgConnectOptions = settings.database_url.expose().parse().map_err(Error::internal)?;
    let opts = opts
        .options([("search_path", schema)])
        .log_statements(tracing::log::LevelFilter::Trace);
    PgPoolOptions::new()
        .max_connections(settings.db_pool_size)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(60))
        .connect_with(opts)
        .await
        .map_err(|e| Error::Unavailable(format!("cannot connect to PostgreSQL: {e}")))
}

/// Runs the kernel migrations, then the service's, in the pool's schema. Both
/// share the schema's migration table; each ignores the other's versions
/// (kernel versions are small integers, services use timestamps).
///
/// # Errors
/// A migration fails or an applied one was changed.
pub async fn migrate(pool: &PgPool, service: &Migrator) -> Result<()> {
    for migrator in [&KERNEL_MIGRATIONS, service] {
        let mut m = Migrator {
            migrations: migrator.migrations.clone(),
            ..Migrator::DEFAULT
        };
        m.set_ignore_missing(true);
        m.run(pool).await.map_err(Error::internal)?;
    }
    Ok(())
}

/// What [`follow`] hands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A notification's payload.
    Payload(String),
    /// Listening (re)started: notifications may have been missed before, so
    /// whatever they keep current must be refreshed.
    Missed,
}

/// Hands every notification on `channel` to `on`, until `stop`. A lost
/// connection is reopened (after a second when it cannot be), and each
/// (re)start is handed on as [`Notice::Missed`].
///
/// # Errors
/// Never: returns `Ok` at shutdown.
pub async fn follow(
    pool: &PgPool,
    channel: &str,
    stop: &tokio_util::sync::CancellationToken,
    mut on: impl FnMut(Notice),
) -> Result<()> {
    while !stop.is_cancelled() {
        let mut listener = match sqlx::postgres::PgListener::connect_with(pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, channel, "cannot listen; retrying");
                tokio::select! { () = stop.cancelled() => break, () = tokio::time::sleep(Duration::from_secs(1)) => continue }
            }
        };
        if let Err(e) = listener.listen(channel).await {
            tracing::warn!(error = %e, channel, "cannot listen; retrying");
            continue;
        }
        on(Notice::Missed);
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                n = listener.try_recv() => match n {
                    Ok(Some(n)) => on(Notice::Payload(n.payload().to_string())),
                    Ok(None) | Err(_) => {
                        on(Notice::Missed);
                        break;
                    }
                },
            }
        }
    }
    Ok(())
}
