//! Automatic failback (R3): a binding whose failback is `automatic` (the
//! default of the `auto-failover` and `active-active` tiers) goes back to
//! the cluster its last completed failover left once that cluster has
//! returned and stayed Ready for the stabilisation period, so a flapping
//! cluster never gets replicas back. The operation is the operator's
//! failback ([`crate::failover::trigger_failback`]) with trigger
//! `automatic`: the earlier assignment is added first and the failover-only
//! replicas removed once it is available (never zero ready replicas), and
//! the stale copies are removed by the propagator.
//!
//! Only failovers off a cluster that was lost are undone: the cluster must
//! have turned Ready after the failover was opened (a planned move off a
//! Ready cluster stays where the operator put it). At most `parallelism`
//! automatic failbacks are open at once; the next are opened by priority
//! (higher first), then tier (active-active, auto-failover, manual), then
//! by how long their cluster has been back. A failed one is tried again
//! after [`crate::failover::RETRY_FAILED_AFTER`]. Everything is in the
//! `failovers` table, so a restart or a new leader picks up where it was.
//!
//! **A singleton's failback is a planned move**: its copy is stopped where
//! the failover put it before it starts in the returning cluster, so the
//! service has a gap. It is opened `awaiting-confirmation`, with the
//! expected gap in its steps and reason (the propagation timeout fencing
//! waits, plus as long as the failover's copy took to become available),
//! and goes on only when an operator confirms it
//! ([`crate::failover::confirm`], `POST /failovers/{id}/confirm`). It does not
//! hold one of the `parallelism` places while it waits. The confirmation is
//! the binding's `failback_confirmation` (apps requires it in production
//! only); one that needs none, or one opened inside the maintenance window
//! ([`crate::maintenance`]), goes on at once, with the expected gap still in
//! its steps.

use std::time::Duration;

use kernel::Result;
use uuid::Uuid;

/// Opens the automatic failbacks that are due, in priority order, up to
/// `parallelism` open at once; their ids, to be announced in `tx`.
///
/// # Errors
/// The database fails.
pub async fn open_due(
    tx: &mut sqlx::PgConnection,
    stabilisation: Duration,
    parallelism: usize,
    retry_failed_after: Duration,
    propagation_timeout: Duration,
    in_maintenance_window: bool,
) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar!(
        "WITH last AS (
             SELECT DISTINCT ON (binding_id) binding_id, kind, from_cluster, previous, created_at,
                    COALESCE(EXTRACT(EPOCH FROM available_at - replaced_at), 0)::float8 AS start_secs
             FROM failovers WHERE state = 'available' ORDER BY binding_id, created_at DESC
         ), due AS (
             -- The id is made here (a volatile CTE is evaluated once), so the reason can name it.
             SELECT gen_random_uuid() AS op_id, b.id, b.tenant_id, b.singleton,
                    b.failback_confirmation,
                    b.singleton AND b.failback_confirmation = 'required' AND NOT $5 AS confirm, l.from_cluster, l.previous,
                    c.last_transition_at, l.start_secs,
                    COALESCE((SELECT string_agg(t.cluster, ', ' ORDER BY t.cluster) FROM binding_targets t
                              WHERE t.binding_id = b.id AND NOT t.removing), 'its cluster') AS now_in
             FROM bindings b JOIN last l ON l.binding_id = b.id JOIN clusters c ON c.name = l.from_cluster
             WHERE NOT b.deleted AND b.failback = 'automatic' AND l.kind = 'failover'
               AND c.condition = 'Ready' AND c.last_transition_at > l.created_at
               AND c.last_transition_at <= now() - make_interval(secs => $1)
               AND NOT EXISTS (SELECT 1 FROM failovers f
                               WHERE f.binding_id = b.id AND f.state NOT IN ('available', 'failed'))
               AND NOT EXISTS (SELECT 1 FROM failovers f
                               WHERE f.binding_id = b.id AND f.kind = 'failback' AND f.state = 'failed'
                                 AND f.finished_at > now() - make_interval(secs => $3))
             ORDER BY b.priority DESC,
                      CASE b.dr_tier WHEN 'active-active' THEN 0 WHEN 'auto-failover' THEN 1 ELSE 2 END,
                      c.last_transition_at, b.id
             LIMIT GREATEST($2 - (SELECT count(*) FROM failovers
                                  WHERE kind = 'failback' AND trigger = 'automatic'
                                    AND state NOT IN ('available', 'failed', 'awaiting-confirmation')), 0)
         ), texts AS (
             SELECT d.*,
                    format('%s: a singleton''s failback onto %s stops its copy in %s before it starts there; expected gap about %ss (fencing waits %ss, then the copy starts, which took %ss at the failover)%s',
                           CASE WHEN d.confirm THEN 'awaiting confirmation'
                                WHEN d.failback_confirmation = 'required' THEN 'planned move inside the maintenance window'
                                ELSE 'planned move (no confirmation outside production)' END,
                           d.from_cluster, d.now_in, round(($4 + d.start_secs)::numeric, 1), round($4::numeric, 1),
                           round(d.start_secs::numeric, 1),
                           CASE WHEN d.confirm THEN '; confirm with POST /api/v1/failovers/' || d.op_id || '/confirm' ELSE '' END)
                        AS waiting
             FROM due d
         )
         INSERT INTO failovers (id, binding_id, tenant_id, kind, trigger, from_cluster, previous, fault_detected_at,
                                state, reason, steps)
         SELECT d.op_id, d.id, d.tenant_id, 'failback', 'automatic', d.from_cluster, d.previous,
                d.last_transition_at,
                CASE WHEN d.confirm THEN 'awaiting-confirmation' ELSE 'pending' END,
                CASE WHEN d.singleton THEN d.waiting ELSE '' END,
                jsonb_build_array(jsonb_build_object(
                    'name', 'opened: ' || d.from_cluster || ' Ready for the stabilisation period', 'at', now()))
                || CASE WHEN d.singleton THEN jsonb_build_array(jsonb_build_object('name', d.waiting, 'at', now()))
                        ELSE '[]'::jsonb END
         FROM texts d
         ON CONFLICT DO NOTHING RETURNING id",
        stabilisation.as_secs_f64(),
        i64::try_from(parallelism).unwrap_or(i64::MAX),
        retry_failed_after.as_secs_f64(),
        propagation_timeout.as_secs_f64(),
        in_maintenance_window,
    )
    .fetch_all(&mut *tx)
    .await?)
}
