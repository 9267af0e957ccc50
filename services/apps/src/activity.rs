//! An application's activity (R3): the failovers and failbacks of its
//! services, as federation announces them (`federation.failover.changed`,
//! every state an operation enters, with its timed steps). One entry per
//! operation keeps its latest state and steps, so a portal can show "dc1
//! lost at 21:42:30, available in dc2 at 21:42:48" beside the application
//! without asking federation.

use chrono::{DateTime, Utc};
use kernel::Result;
use kernel::event::Event;
use kernel::inbox::Handler;
use kernel::page::Page;
use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The subject filter of the events handled here.
pub const SUBJECTS: &str = "federation.failover.*";

/// One step of a failover or failback and when it was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// What happened ("placing: 3 in dc2-dr").
    pub name: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// One failover or failback of one of the application's services.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Entry {
    /// Its id (newest first).
    pub id: Uuid,
    /// The service whose binding moved.
    pub service: String,
    /// `failover` or `failback`.
    pub kind: String,
    /// Federation's operation.
    pub operation_id: Uuid,
    /// `automatic` or `operator`.
    pub trigger: String,
    /// Failover: the cluster left. Failback: the cluster returned to.
    pub from_cluster: String,
    /// Where the replicas were placed.
    pub to_clusters: Vec<String>,
    /// The operation's state (`available`, `failed`, or on its way).
    pub state: String,
    /// Why it failed or what it waits for.
    pub reason: String,
    /// Its steps with their times, oldest first.
    pub steps: sqlx::types::Json<Vec<Step>>,
    /// Its first step.
    pub at: DateTime<Utc>,
}

/// Records each announced state of an operation on the application that
/// owns the binding (none: not an application's binding, nothing to do).
pub struct FailoverEvents;

impl Handler for FailoverEvents {
    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<()> {
        if event.kind() != "federation.failover.changed" {
            return Ok(());
        }
        let Some(tenant) = event.tenant() else {
            return Ok(());
        };
        let changed: pb::FailoverChanged = event.payload()?;
        let operation = kernel::id::parse_id("id", &changed.id)?;
        let steps: Vec<Step> = changed
            .steps
            .iter()
            .filter_map(|s| {
                Some(Step {
                    name: s.name.clone(),
                    at: kernel::grpc::time(s.at)?,
                })
            })
            .collect();
        // Every operation is announced from its first step on; without one, now.
        let at = steps.first().map_or_else(Utc::now, |s| s.at);
        // Events of one operation may be redelivered or overtake each other:
        // an entry only moves forward (to as many steps or more).
        sqlx::query!(
            r#"INSERT INTO activity (id, application_id, tenant_id, service, kind, operation_id, trigger, from_cluster,
                                     to_clusters, state, reason, steps, at)
               SELECT $3, a.id, a.tenant_id, k.key, $4, $5, $6, $7, $8, $9, $10, $11, $12
               FROM applications a, jsonb_each_text(a.bindings) k
               WHERE a.tenant_id = $1 AND k.value = $2
                 AND jsonb_path_query_array(a.bindings, '$.*') @> jsonb_build_array($2::text)
               ON CONFLICT (application_id, operation_id) DO UPDATE
                 SET state = EXCLUDED.state, reason = EXCLUDED.reason, to_clusters = EXCLUDED.to_clusters,
                     steps = EXCLUDED.steps, updated_at = now()
                 WHERE jsonb_array_length(EXCLUDED.steps) >= jsonb_array_length(activity.steps)"#,
            tenant,
            changed.binding_id,
            kernel::id::new_id(),
            changed.kind,
            operation,
            changed.trigger,
            changed.from_cluster,
            &changed.to_clusters,
            changed.state,
            changed.reason,
            sqlx::types::Json(&steps) as _,
            at,
        )
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// A page of application `app`'s (of `tenant`) activity, newest first.
///
/// # Errors
/// The database fails.
pub async fn list(pool: &PgPool, tenant: Uuid, app: Uuid, page: Page) -> Result<(Vec<Entry>, String)> {
    let rows = sqlx::query_as!(
        Entry,
        r#"SELECT id, service, kind, operation_id, trigger, from_cluster, to_clusters, state, reason,
                  steps AS "steps: _", at
           FROM activity WHERE application_id = $1 AND tenant_id = $2 AND ($3::uuid IS NULL OR id < $3)
           ORDER BY id DESC LIMIT $4"#,
        app,
        tenant,
        page.after,
        page.fetch(),
    )
    .fetch_all(pool)
    .await?;
    Ok(page.finish(rows, |e| e.id))
}
