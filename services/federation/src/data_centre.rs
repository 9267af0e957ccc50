//! Data centres: each one's state aggregated from the health of its
//! clusters ([`crate::health`]) and the loss the health monitor last
//! announced for it.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use kernel::Result;
use sqlx::PgPool;
use uuid::Uuid;

use crate::health::{Condition, Status};

/// A data centre and its clusters' health.
#[derive(Debug, Clone)]
pub struct DataCentre {
    /// Its name.
    pub name: String,
    /// Ready (all Ready), Degraded, Lost (no contact with any) or Unknown (none probed yet).
    pub state: &'static str,
    /// When it was last lost or regained, if ever.
    pub state_since: Option<DateTime<Utc>>,
    /// Its clusters: (id, name, condition).
    pub clusters: Vec<(Uuid, String, Condition)>,
}

/// A data centre's loss as last announced.
struct DataCentreFlag {
    name: String,
    lost: bool,
    changed_at: DateTime<Utc>,
}

/// Every data centre with an aggregate state.
///
/// # Errors
/// The database fails.
pub async fn data_centres(pool: &PgPool) -> Result<Vec<DataCentre>> {
    let clusters = crate::cluster::all(pool).await?;
    let flags = sqlx::query_as!(DataCentreFlag, "SELECT name, lost, changed_at FROM data_centres")
        .fetch_all(pool)
        .await?;
    let names: BTreeSet<&str> = clusters.iter().map(|c| c.data_centre.as_str()).collect();
    Ok(names
        .into_iter()
        .map(|name| {
            let members: Vec<_> = clusters
                .iter()
                .filter(|c| c.data_centre == name)
                .map(|c| (c.id, c.name.clone(), c.condition.clone()))
                .collect();
            let flag = flags.iter().find(|f| f.name == name);
            let ready = members.iter().filter(|m| m.2.status == Status::Ready).count();
            // The flag is as last announced; a cluster registered or
            // deregistered since is counted as it is now.
            let state = if ready == members.len() {
                "Ready"
            } else if ready == 0 && flag.is_some_and(|f| f.lost) {
                "Lost"
            } else if ready > 0 {
                "Degraded"
            } else {
                "Unknown"
            };
            DataCentre {
                name: name.to_string(),
                state,
                state_since: flag.map(|f| f.changed_at),
                clusters: members,
            }
        })
        .collect())
}
