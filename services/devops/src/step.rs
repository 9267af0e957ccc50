//! Steps as users see them: state, test results, the kept tail of the log,
//! and approval decisions. Who may approve is decided here from the step's
//! definition: named users, or holders of a named tenant role (the
//! platform's groups), never the run's starter under four-eyes.

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::outbox::Outbox;
use kernel::{Error, Result};
use uuid::Uuid;

use crate::definition::{Action, Approval};
use crate::run::{self, Decision, Step};

/// The most output kept per step, in characters: the tail is what explains a
/// failure, and the bound keeps a chatty build from filling the database.
pub const LOG_LIMIT: i64 = 256 * 1024;
/// The longest approval comment.
pub const MAX_COMMENT: usize = 4096;

/// A step with its log tail.
#[derive(Debug, Clone)]
pub struct StepView {
    /// The step.
    pub step: Step,
    /// Its stage's name.
    pub stage: String,
    /// The kept tail of its output.
    pub log: String,
    /// Approval decisions so far.
    pub decisions: Vec<Decision>,
}

/// A piece of a step's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPiece {
    /// Where `text` starts in all output ever written (characters).
    pub offset: u64,
    /// The text.
    pub text: String,
    /// Output between the asked offset and `offset` is gone (beyond the tail).
    pub truncated: bool,
    /// The step's state.
    pub state: String,
    /// Whether the step has ended (no more output will come).
    pub finished: bool,
}

/// Steps in the devops schema.
#[derive(Clone)]
pub struct Steps {
    outbox: Outbox,
}

/// Whether `caller` may decide on `approval` of a run started by `starter`.
fn may_approve(caller: &Caller, tenant: Uuid, approval: &Approval, starter: &str) -> Result<()> {
    if approval.four_eyes && caller.subject == starter {
        return Err(Error::PermissionDenied(
            "four-eyes approval: whoever started the run cannot approve it".into(),
        ));
    }
    let named = approval.users.contains(&caller.subject);
    let by_role = caller.role_in(tenant).is_some_and(|held| {
        approval
            .groups
            .iter()
            .filter_map(|g| Role::parse("group", g).ok())
            .any(|wanted| held >= wanted)
    });
    if named || by_role {
        Ok(())
    } else {
        Err(Error::PermissionDenied(
            "the caller is not among this step's approvers".into(),
        ))
    }
}

impl Steps {
    /// Steps stored in the outbox's schema.
    pub fn new(outbox: Outbox) -> Self {
        Self { outbox }
    }

    /// A step the caller can see, with its log tail.
    ///
    /// # Errors
    /// Not found or not visible (the same answer).
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<StepView> {
        let row = sqlx::query!(
            "SELECT s.tenant_id, s.log, g.name AS stage FROM steps s JOIN stages g ON g.id = s.stage_id
             WHERE s.id = $1",
            id
        )
        .fetch_optional(self.outbox.pool())
        .await?
        .filter(|r| caller.can_see(r.tenant_id))
        .ok_or_else(|| Error::not_found("step", id))?;
        let step = self.load(row.tenant_id, id).await?;
        let decisions = sqlx::query_as!(
            Decision,
            "SELECT approver, decision, comment, decided_at FROM approvals
             WHERE step_id = $1 AND tenant_id = $2 ORDER BY decided_at",
            id,
            row.tenant_id
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(StepView {
            step,
            stage: row.stage,
            log: row.log,
            decisions,
        })
    }

    async fn load(&self, tenant: Uuid, id: Uuid) -> Result<Step> {
        sqlx::query_as!(
            Step,
            "SELECT id, run_id, stage_id, tenant_id, position, name, kind, spec, state, attempt, runner_id, exit_code,
                    message, log_length, tests_total, tests_failed, tests_skipped, test_failures, started_at,
                    finished_at, image, image_digest
             FROM steps WHERE id = $1 AND tenant_id = $2",
            id,
            tenant
        )
        .fetch_optional(self.outbox.pool())
        .await?
        .ok_or_else(|| Error::not_found("step", id))
    }

    /// Output of a visible step from `offset` on (what is still kept).
    ///
    /// # Errors
    /// Not found or not visible.
    pub async fn log_since(&self, caller: &Caller, id: Uuid, offset: u64) -> Result<LogPiece> {
        let row = sqlx::query!("SELECT tenant_id, log, log_length, state FROM steps WHERE id = $1", id)
            .fetch_optional(self.outbox.pool())
            .await?
            .filter(|r| caller.can_see(r.tenant_id))
            .ok_or_else(|| Error::not_found("step", id))?;
        let kept = row.log.chars().count() as u64;
        let total = u64::try_from(row.log_length).unwrap_or(0);
        let head = total.saturating_sub(kept);
        let from = offset.max(head).min(total);
        let skip = usize::try_from(from - head).unwrap_or(usize::MAX);
        Ok(LogPiece {
            offset: from,
            text: row.log.chars().skip(skip).collect(),
            truncated: offset < head,
            finished: matches!(row.state.as_str(), "succeeded" | "failed" | "cancelled" | "skipped"),
            state: row.state,
        })
    }

    /// Records an approval decision on a waiting approval step; the conductor
    /// then passes or fails the gate. A later decision of the same approver
    /// replaces the earlier one.
    ///
    /// # Errors
    /// Not visible; not an approval step; not waiting; the caller is not an
    /// approver (or is the run's starter under four-eyes); comment too long.
    pub async fn decide(&self, caller: &Caller, id: Uuid, approve: bool, comment: &str) -> Result<StepView> {
        if comment.len() > MAX_COMMENT {
            return Err(Error::invalid(
                "comment",
                format!("must be at most {MAX_COMMENT} bytes"),
            ));
        }
        let view = self.get(caller, id).await?;
        let step = &view.step;
        let def: crate::definition::Step = serde_json::from_value(step.spec.clone()).map_err(Error::internal)?;
        let Action::Approval(approval) = def.action else {
            return Err(Error::FailedPrecondition(format!("step {id} is not an approval")));
        };
        if step.state != "waiting" {
            return Err(Error::FailedPrecondition(format!(
                "step {id} is {}, not waiting for approval",
                step.state
            )));
        }
        let run = run::load(self.outbox.pool(), step.run_id)
            .await?
            .ok_or_else(|| Error::not_found("run", step.run_id))?;
        may_approve(caller, step.tenant_id, &approval, &run.triggered_by)?;
        sqlx::query!(
            "INSERT INTO approvals (step_id, tenant_id, approver, decision, comment) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (step_id, approver) DO UPDATE
                 SET decision = EXCLUDED.decision, comment = EXCLUDED.comment, decided_at = now()",
            id,
            step.tenant_id,
            caller.subject,
            if approve { "approved" } else { "rejected" },
            comment,
        )
        .execute(self.outbox.pool())
        .await?;
        self.get(caller, id).await
    }
}

/// When an approval step ended, and how, from its decisions.
pub(crate) fn approval_outcome(
    approval: &Approval,
    timeout: std::time::Duration,
    decisions: &[(String, String, String)],
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(bool, String)> {
    if let Some((who, _, comment)) = decisions.iter().find(|(_, d, _)| d == "rejected") {
        return Some((false, format!("rejected by {who}: {comment}")));
    }
    let approvers: Vec<&str> = decisions
        .iter()
        .filter(|(_, d, _)| d == "approved")
        .map(|(w, _, _)| w.as_str())
        .collect();
    if approvers.len() >= approval.required as usize {
        return Some((true, format!("approved by {}", approvers.join(", "))));
    }
    let deadline = started + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    if now >= deadline {
        return Some(match approval.on_timeout {
            crate::definition::OnTimeout::Fail => (false, "no decision before the approval timed out".into()),
            crate::definition::OnTimeout::Continue => (true, "timed out; the pipeline says continue".into()),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kernel::caller::Membership;

    use super::*;
    use crate::definition::OnTimeout;

    const MINUTE: Duration = Duration::from_secs(60);

    fn gate(four_eyes: bool, required: u32) -> Approval {
        Approval {
            users: vec!["alice".into()],
            groups: vec!["tenant-admin".into()],
            required,
            on_timeout: OnTimeout::Fail,
            four_eyes,
        }
    }

    #[test]
    fn approvers_are_named_users_or_holders_of_a_named_role_and_never_the_starter_under_four_eyes() {
        let t = Uuid::now_v7();
        let member = |name: &str, role| Caller::user(name, vec![Membership { tenant: t, role }]);
        assert!(may_approve(&member("alice", Role::Viewer), t, &gate(false, 1), "bob").is_ok());
        assert!(may_approve(&member("carol", Role::TenantAdmin), t, &gate(false, 1), "bob").is_ok());
        assert!(may_approve(&member("dave", Role::Developer), t, &gate(false, 1), "bob").is_err());
        assert!(may_approve(&member("alice", Role::Viewer), t, &gate(true, 2), "alice").is_err());
        assert!(may_approve(&member("alice", Role::Viewer), t, &gate(false, 1), "alice").is_ok());
    }

    #[test]
    fn a_gate_passes_on_enough_approvals_fails_on_a_rejection_and_obeys_its_timeout() {
        let start = Utc::now();
        let d = |w: &str, x: &str| (w.to_string(), x.to_string(), "ok".to_string());
        assert_eq!(
            approval_outcome(&gate(true, 2), MINUTE, &[d("a", "approved")], start, start),
            None
        );
        assert!(
            approval_outcome(
                &gate(true, 2),
                MINUTE,
                &[d("a", "approved"), d("b", "approved")],
                start,
                start
            )
            .unwrap()
            .0
        );
        assert!(
            !approval_outcome(
                &gate(true, 2),
                MINUTE,
                &[d("a", "approved"), d("b", "rejected")],
                start,
                start
            )
            .unwrap()
            .0
        );
        let late = start + chrono::Duration::seconds(61);
        assert!(!approval_outcome(&gate(false, 1), MINUTE, &[], start, late).unwrap().0);
        let mut go_on = gate(false, 1);
        go_on.on_timeout = OnTimeout::Continue;
        assert!(approval_outcome(&go_on, MINUTE, &[], start, late).unwrap().0);
    }
}
