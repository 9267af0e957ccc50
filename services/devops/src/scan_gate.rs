//! The security gate: a `security-scan` step has the image catalog's
//! scanner (`ScanTag`, then `GetTagScan` until the report is in) look at the
//! image the run built, and passes when nothing above the step's
//! `max_severity` was found. The outcome is kept per digest with the run
//! (`step_operations`), because production deploys check it: a production
//! deploy is refused unless a scan of the very digest it would deploy passed
//! in the same run ([`PRODUCTION_RULE`]).

use kernel::Result;
use sqlx::PgConnection;
use uuid::Uuid;

/// The rule a refused production deploy names.
pub const PRODUCTION_RULE: &str = "production-needs-passed-scan";

/// How bad a finding is, in the scanner's words, as a rank: `none` (or
/// nothing found) 0, `negligible` 0, `low` 1, `unknown` 1 (not known to be
/// harmless, so it counts as low), `medium` 2, `high` 3, `critical` 4.
pub fn rank(severity: &str) -> u8 {
    match severity.to_ascii_lowercase().as_str() {
        "" | "none" | "negligible" => 0,
        "low" | "unknown" => 1,
        "medium" => 2,
        "high" => 3,
        _ => 4,
    }
}

/// Whether a report whose worst finding is `highest` passes a gate that
/// allows up to `max_severity`.
pub fn passes(highest: &str, max_severity: &str) -> bool {
    rank(highest) <= rank(max_severity)
}

/// Why a scan's outcome fails the gate, or `None` when it passes.
pub fn verdict(highest: &str, max_severity: &str, findings: &[(String, String)]) -> Option<String> {
    if passes(highest, max_severity) {
        return None;
    }
    let above: Vec<&str> = findings
        .iter()
        .filter(|(_, severity)| !passes(severity, max_severity))
        .map(|(id, _)| id.as_str())
        .take(5)
        .collect();
    Some(format!(
        "the scan found {highest} vulnerabilities, above max_severity {max_severity}{}",
        if above.is_empty() {
            String::new()
        } else {
            format!(" ({})", above.join(", "))
        }
    ))
}

/// The refusal of a production deploy of `digest` that no passed scan in
/// the run covers; `None` when one does.
///
/// # Errors
/// The database fails.
pub async fn production_refusal(conn: &mut PgConnection, run: Uuid, digest: &str) -> Result<Option<String>> {
    let passed = sqlx::query_scalar!(
        "SELECT step_id FROM step_operations
         WHERE run_id = $1 AND kind = 'security-scan' AND passed AND digest = $2 AND digest <> ''",
        run,
        digest
    )
    .fetch_optional(&mut *conn)
    .await?;
    if passed.is_some() {
        return Ok(None);
    }
    let image = if digest.is_empty() {
        "the run's image (no build-image step of this run pushed one)".to_string()
    } else {
        format!("image {digest}")
    };
    Ok(Some(format!(
        "refused by the security gate (rule {PRODUCTION_RULE}): a production deploy needs a security-scan step \
         of this run to have passed for {image}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_rank_from_nothing_to_critical() {
        assert!(passes("", "none"));
        assert!(passes("negligible", "none"));
        assert!(!passes("low", "none"));
        assert!(passes("medium", "medium"));
        assert!(!passes("high", "medium"));
        assert!(!passes("unknown", "none"), "an unknown finding is not harmless");
        assert!(passes("critical", "critical"));
        assert!(!passes("critical", "high"));
        assert!(
            !passes("something-new", "high"),
            "an unheard-of severity counts as the worst"
        );
    }

    #[test]
    fn a_failed_verdict_names_the_findings_above_the_limit() {
        let findings = vec![
            ("CVE-1".to_string(), "low".to_string()),
            ("CVE-2".to_string(), "high".to_string()),
        ];
        assert_eq!(verdict("high", "high", &findings), None);
        let why = verdict("high", "medium", &findings).unwrap();
        assert!(why.contains("above max_severity medium"), "{why}");
        assert!(why.contains("CVE-2") && !why.contains("CVE-1"), "{why}");
    }
}
