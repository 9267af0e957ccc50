//! Federation's word that a binding settled or unsettled in a cluster
//! (`federation.binding.status_changed`): the releases waiting on that
//! binding are looked at now instead of at their next poll, so a release
//! finishes as soon as its services are Available and the poll can stay
//! slow (it remains the fallback for a late or lost event).

use std::sync::Arc;

use kernel::Result;
use kernel::event::Event;
use kernel::inbox::Handler;
use paas_proto::v1 as pb;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The subject filter of the events handled here.
pub const SUBJECTS: &str = "federation.binding.*";

/// The notification channel on which releases made due are announced.
pub const RELEASES_DUE: &str = "apps_releases_due";

/// Makes the releases whose application owns the binding due now.
pub struct BindingStatusEvents;

impl Handler for BindingStatusEvents {
    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<()> {
        if event.kind() != "federation.binding.status_changed" {
            return Ok(());
        }
        let changed: pb::BindingStatusChanged = event.payload()?;
        let tenant = kernel::id::parse_id("tenant_id", &changed.tenant_id)?;
        let due = sqlx::query!(
            "UPDATE releases r SET next_check_at = now()
             FROM applications a
             WHERE jsonb_path_query_array(a.bindings, '$.*') @> jsonb_build_array($2::text) AND a.tenant_id = $1
               AND r.application_id = a.id AND r.tenant_id = $1 AND r.state = 'deploying' AND r.next_check_at > now()",
            tenant,
            changed.binding_id,
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if due > 0 {
            // Delivered at commit, to every apps process's driver: waking
            // this one now could beat the commit and find nothing due.
            sqlx::query!("SELECT pg_notify($1, '')", RELEASES_DUE)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }
}

/// Wakes the release driver through `wake` whenever releases were made due
/// ([`RELEASES_DUE`]), until `stop`.
///
/// # Errors
/// Never: a lost connection is reopened (and the driver woken, since a
/// notification may have been missed meanwhile).
pub async fn follow(pool: PgPool, wake: Arc<Notify>, stop: CancellationToken) -> Result<()> {
    kernel::db::follow(&pool, RELEASES_DUE, &stop, |_| wake.notify_one()).await
}
