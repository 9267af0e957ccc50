//! The platform's NodePort pool: a port a service exposes on every node is
//! held by that application's service on every cluster, so two applications
//! never collide. Each member cluster has its own NodePort range (federation's
//! cluster settings): a fixed port must lie in the range of every cluster the
//! application targets (refused naming the field and the cluster) and is
//! claimed (refused, naming who holds it, when taken); `node_port: 0` draws
//! the lowest free port inside every target cluster's range ([`POOL`] when
//! no cluster is known).

use std::collections::BTreeMap;

use kernel::{Error, Result};
use uuid::Uuid;

use crate::spec::Application;

/// The ports drawn from when no target cluster is known: Kubernetes' default NodePort range.
pub const POOL: std::ops::RangeInclusive<u16> = 30000..=32767;

/// The NodePort range of one target cluster, as federation reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRange {
    /// The cluster's name.
    pub cluster: String,
    /// Its NodePort range.
    pub ports: std::ops::RangeInclusive<u16>,
}

/// The ports inside every range (empty when they do not overlap); [`POOL`]
/// when there are no ranges.
pub fn common(ranges: &[ClusterRange]) -> std::ops::RangeInclusive<u16> {
    let first = ranges.iter().map(|r| *r.ports.start()).max().unwrap_or(*POOL.start());
    let last = ranges.iter().map(|r| *r.ports.end()).min().unwrap_or(*POOL.end());
    first..=last
}

/// Checks a fixed port against every target cluster's range.
///
/// # Errors
/// Names `field` and the first cluster whose range does not hold `port`.
pub fn check(field: &str, port: u16, ranges: &[ClusterRange]) -> Result<()> {
    match ranges.iter().find(|r| !r.ports.contains(&port)) {
        Some(r) => Err(Error::invalid(
            field,
            format!(
                "node port {port} is outside the NodePort range {}-{} of cluster {}",
                r.ports.start(),
                r.ports.end(),
                r.cluster
            ),
        )),
        None => Ok(()),
    }
}

/// Claims the node ports `app` asks for, in the caller's transaction, for
/// the target clusters' `ranges`; returns the drawn ones by (service,
/// container port). A port already held by the same service's port is kept
/// (a new release of the same application) while it is inside every range.
///
/// # Errors
/// A fixed port outside a target cluster's range (invalid, naming the field
/// and the cluster), a fixed port held by another application (conflict,
/// naming the holder when it is in the same tenant), ranges that do not
/// overlap, or the pool exhausted.
pub async fn claim(
    tx: &mut sqlx::PgConnection,
    tenant: Uuid,
    app_id: Uuid,
    app: &Application,
    ranges: &[ClusterRange],
) -> Result<BTreeMap<(String, u16), u16>> {
    let mut drawn = BTreeMap::new();
    let pool = common(ranges);
    // Collected before the first await: a lazy iterator of closures is not Send across it.
    let mut ports = Vec::new();
    for (i, service) in app.services.iter().enumerate() {
        for (j, c) in service.containers.iter().enumerate() {
            for (k, port) in c.ports.iter().enumerate() {
                ports.push((
                    format!("spec.services[{i}].containers[{j}].ports[{k}].node_port"),
                    service,
                    port,
                ));
            }
        }
    }
    for (field, service, port) in ports {
        let Some(wanted) = port.node_port else { continue };
        if wanted != 0 {
            check(&field, wanted, ranges)?;
        } else if pool.is_empty() {
            let each: Vec<String> = ranges
                .iter()
                .map(|r| format!("{} {}-{}", r.cluster, r.ports.start(), r.ports.end()))
                .collect();
            return Err(Error::invalid(
                field,
                format!(
                    "no port is inside the NodePort range of every target cluster ({})",
                    each.join(", ")
                ),
            ));
        }
        let held = sqlx::query_scalar!(
            "SELECT port FROM node_ports WHERE application_id = $1 AND service = $2 AND container_port = $3",
            app_id,
            service.name,
            i32::from(port.container_port),
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(held) = held {
            let held_fits = u16::try_from(held).is_ok_and(|h| pool.contains(&h));
            if (wanted == 0 && held_fits) || held == i32::from(wanted) {
                if wanted == 0 {
                    drawn.insert((service.name.clone(), port.container_port), held as u16);
                }
                continue;
            }
            // The fixed port changed, or the drawn one is outside a target's range now: give the old one back.
            sqlx::query!("DELETE FROM node_ports WHERE port = $1", held)
                .execute(&mut *tx)
                .await?;
        }
        if wanted != 0 {
            let claimed = sqlx::query!(
                "INSERT INTO node_ports (port, application_id, tenant_id, service, container_port)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                i32::from(wanted),
                app_id,
                tenant,
                service.name,
                i32::from(port.container_port),
            )
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
            got = sqlx::query_scalar!(
                "INSERT INTO node_ports (port, application_id, tenant_id, service, container_port)
                 SELECT s, $1, $2, $3, $4 FROM generate_series($5::int, $6::int) s
                  WHERE NOT EXISTS (SELECT 1 FROM node_ports WHERE port = s) ORDER BY s LIMIT 1
                 ON CONFLICT DO NOTHING RETURNING port",
                app_id,
                tenant,
                service.name,
                i32::from(port.container_port),
                i32::from(*pool.start()),
                i32::from(*pool.end()),
            )
            .fetch_optional(&mut *tx)
            .await?;
            if got.is_some() {
                break;
            }
        }
        let got: i32 = got
            .ok_or_else(|| Error::ResourceExhausted(format!("no free node port in {}-{}", pool.start(), pool.end())))?;
        drawn.insert((service.name.clone(), port.container_port), got as u16);
    }
    Ok(drawn)
}

/// Who holds a node port.
struct Holder {
    tenant_id: Uuid,
    application: String,
    service: String,
}

async fn holder(tx: &mut sqlx::PgConnection, tenant: Uuid, port: u16) -> Error {
    let row = sqlx::query_as!(
        Holder,
        "SELECT n.tenant_id, a.name AS application, n.service FROM node_ports n JOIN applications a
         ON a.id = n.application_id WHERE n.port = $1",
        i32::from(port),
    )
    .fetch_optional(&mut *tx)
    .await
    .ok()
    .flatten();
    match row {
        Some(h) if h.tenant_id == tenant => Error::Conflict(format!(
            "node port {port} is held by application {} (service {})",
            h.application, h.service
        )),
        Some(_) => Error::Conflict(format!("node port {port} is held by another tenant's application")),
        None => Error::Conflict(format!("node port {port} was just taken; try again")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(cluster: &str, ports: std::ops::RangeInclusive<u16>) -> ClusterRange {
        ClusterRange {
            cluster: cluster.into(),
            ports,
        }
    }

    #[test]
    fn the_common_range_is_the_overlap_of_every_targets_range() {
        assert_eq!(common(&[]), POOL);
        assert_eq!(
            common(&[range("a", 30000..=32767), range("b", 31000..=40000)]),
            31000..=32767
        );
        assert!(common(&[range("a", 30000..=30999), range("b", 31000..=31999)]).is_empty());
    }

    #[test]
    fn a_fixed_port_outside_one_targets_range_is_refused_naming_field_and_cluster() {
        let ranges = [range("east", 30000..=32767), range("west", 31000..=31099)];
        assert!(check("f", 31050, &ranges).is_ok());
        match check("spec.services[0].containers[0].ports[0].node_port", 30500, &ranges).unwrap_err() {
            Error::InvalidArgument { field, reason } => {
                assert_eq!(field, "spec.services[0].containers[0].ports[0].node_port");
                assert!(
                    reason.contains("west") && reason.contains("31000-31099") && !reason.contains("east"),
                    "{reason}"
                );
            }
            e => panic!("{e}"),
        }
    }
}
