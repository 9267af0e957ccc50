//! The platform's NodePort pool: a port a service exposes on every node is
//! held by that application's service on every cluster, so two applications
//! never collide. A fixed port is claimed (refused, naming who holds it,
//! when taken); `node_port: 0` draws the lowest free port of [`POOL`].

use std::collections::BTreeMap;

use kernel::{Error, Result};
use uuid::Uuid;

use crate::spec::Application;

/// The ports drawn from: Kubernetes' default NodePort range.
pub const POOL: std::ops::RangeInclusive<u16> = 30000..=32767;

/// Claims the node ports `app` asks for, in the caller's transaction; returns
/// the drawn ones by (service, container port). A port already held by the
/// same service's port is kept (a new release of the same application).
///
/// # Errors
/// A fixed port held by another application (conflict, naming the holder
/// when it is in the same tenant), or the pool exhausted.
pub async fn claim(tx: &mut sqlx::PgConnection, tenant: Uuid, app_id: Uuid, app: &Application) -> Result<BTreeMap<(String, u16), u16>> {
    let mut drawn = BTreeMap::new();
    for service in &app.services {
        for port in service.containers.iter().flat_map(|c| &c.ports) {
            let Some(wanted) = port.node_port else { continue };
            let held: Option<i32> = sqlx::query_scalar("SELECT port FROM node_ports WHERE application_id = $1 AND service = $2 AND container_port = $3")
                .bind(app_id)
                .bind(&service.name)
                .bind(i32::from(port.container_port))
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(held) = held {
                if wanted == 0 || held == i32::from(wanted) {
                    if wanted == 0 {
                        drawn.insert((service.name.clone(), port.container_port), held as u16);
                    }
                    continue;
                }
                // The fixed port changed: give the old one back.
                sqlx::query("DELETE FROM node_ports WHERE port = $1").bind(held).execute(&mut *tx).await?;
            }
            if wanted != 0 {
                let claimed = sqlx::query("INSERT INTO node_ports (port, application_id, tenant_id, service, container_port) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
                    .bind(i32::from(wanted))
                    .bind(app_id)
                    .bind(tenant)
                    .bind(&service.name)
                    .bind(i32::from(port.container_port))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if claimed == 0 {
                    return Err(holder(tx, tenant, wanted).await);
                }
                continue;
            }
            let mut got = None;
            // Concurrent deploys may pick the same free port; the loser tries the next.
            for _ in 0..8 {
                got = sqlx::query_scalar(
                    "INSERT INTO node_ports (port, application_id, tenant_id, service, container_port)
                     SELECT s, $1, $2, $3, $4 FROM generate_series($5::int, $6::int) s
                      WHERE NOT EXISTS (SELECT 1 FROM node_ports WHERE port = s) ORDER BY s LIMIT 1
                     ON CONFLICT DO NOTHING RETURNING port",
                )
                .bind(app_id)
                .bind(tenant)
                .bind(&service.name)
                .bind(i32::from(port.container_port))
                .bind(i32::from(*POOL.start()))
                .bind(i32::from(*POOL.end()))
                .fetch_optional(&mut *tx)
                .await?;
                if got.is_some() {
                    break;
                }
            }
            let got: i32 = got.ok_or_else(|| Error::ResourceExhausted(format!("no free node port in {}-{}", POOL.start(), POOL.end())))?;
            drawn.insert((service.name.clone(), port.container_port), got as u16);
        }
    }
    Ok(drawn)
}

async fn holder(tx: &mut sqlx::PgConnection, tenant: Uuid, port: u16) -> Error {
    let row: Option<(Uuid, String, String)> = sqlx::query_as(
        "SELECT n.tenant_id, a.name, n.service FROM node_ports n JOIN applications a ON a.id = n.application_id WHERE n.port = $1",
    )
    .bind(i32::from(port))
    .fetch_optional(&mut *tx)
    .await
    .ok()
    .flatten();
    match row {
        Some((t, app, service)) if t == tenant => Error::Conflict(format!("node port {port} is held by application {app} (service {service})")),
        Some(_) => Error::Conflict(format!("node port {port} is held by another tenant's application")),
        None => Error::Conflict(format!("node port {port} was just taken; try again")),
    }
}
