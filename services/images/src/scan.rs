//! Vulnerability scanning through pluggable scanners speaking Harbor's
//! scanner adapter API (v1.0): `GET /api/v1/metadata`, `POST /api/v1/scan`
//! with the registry's URL, a pull token and the artifact (answered 202 with
//! the scan's id), then `GET /api/v1/scan/{id}/report` (302 while running,
//! 200 with the vulnerabilities when done).
//!
//! Platform administrators register scanners (the adapter's Authorization
//! sealed at rest); one is the default. A scan is kept per repository and
//! digest with its status (queued, running, done, failed) and a summary by
//! severity; scans are asked for on push (when the default scanner says so)
//! or on demand. A tenant's scan policy may set, per environment, the
//! highest severity a deploy accepts: production admission
//! ([`crate::admission`]) refuses an image above it, or with no finished scan.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::name::DnsLabel;
use kernel::page::Page;
use kernel::{Error, Result, id};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::access::Grant;
use crate::seal::Sealer;
use crate::signing::Signer;

/// The report media type asked of adapters.
pub const REPORT_MIME: &str = "application/vnd.security.vulnerability.report; version=1.1";
/// The metadata media type asked of adapters.
pub const METADATA_MIME: &str = "application/vnd.scanner.adapter.metadata+json; version=1.0";
/// The scan request media type.
pub const SCAN_REQUEST_MIME: &str = "application/vnd.scanner.adapter.scan.request+json; version=1.0";
/// How often queued and running scans are looked at.
pub const POLL: Duration = Duration::from_millis(500);
/// A scan whose adapter keeps failing is given up after this many tries.
const ATTEMPTS: i32 = 20;

/// A vulnerability's severity, lowest first (Harbor's scale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// Not rated.
    Unknown,
    /// Negligible.
    Negligible,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Self; 6] = [
        Self::Unknown,
        Self::Negligible,
        Self::Low,
        Self::Medium,
        Self::High,
        Self::Critical,
    ];

    /// The name stored and shown (lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Negligible => "negligible",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// Parses a name, any case (adapters write `High`).
    ///
    /// # Errors
    /// Not a severity; names `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(raw.trim()))
            .ok_or_else(|| Error::invalid(field, "must be unknown, negligible, low, medium, high or critical"))
    }
}

/// A scanner as stored (never its Authorization).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Scanner {
    /// Its id.
    pub id: Uuid,
    /// DNS label, unique.
    pub name: String,
    /// The adapter's base URL.
    pub url: String,
    /// Whether each pushed tag is scanned.
    pub scan_on_push: bool,
    /// Whether scans go to it.
    pub is_default: bool,
    /// What the adapter says it is.
    pub adapter_name: String,
    /// Its vendor.
    pub adapter_vendor: String,
    /// Its version.
    pub adapter_version: String,
    /// Registered.
    pub created_at: DateTime<Utc>,
}

/// A validated new scanner.
#[derive(Debug, Clone)]
pub struct NewScanner {
    name: DnsLabel,
    url: url::Url,
    authorization: String,
    scan_on_push: bool,
    is_default: bool,
}

impl NewScanner {
    /// Validates raw input; errors name the field.
    ///
    /// # Errors
    /// A field is malformed.
    pub fn parse(name: &str, url: &str, authorization: &str, scan_on_push: bool, is_default: bool) -> Result<Self> {
        let url = url::Url::parse(url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.password().is_none())
            .ok_or_else(|| Error::invalid("url", "must be an http(s) URL of the scanner adapter"))?;
        if authorization.len() > 4096 || authorization.chars().any(char::is_control) {
            return Err(Error::invalid(
                "authorization",
                "at most 4096 characters, no control characters",
            ));
        }
        Ok(Self {
            name: DnsLabel::parse("name", name.trim())?,
            url,
            authorization: authorization.to_string(),
            scan_on_push,
            is_default,
        })
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vulnerability {
    /// CVE-... or the scanner's id.
    pub id: String,
    /// How bad.
    pub severity: Severity,
    /// The package.
    pub package: String,
    /// Its installed version.
    pub version: String,
    /// The version fixing it, if any.
    pub fix_version: String,
}

/// A scan of one digest.
#[derive(Debug, Clone)]
pub struct Scan {
    /// Its id.
    pub id: Uuid,
    /// The repository's tenant.
    pub tenant_id: Uuid,
    /// The repository.
    pub repository: String,
    /// The image's digest.
    pub digest: String,
    /// The scanner's name.
    pub scanner: String,
    /// queued, running, done, failed.
    pub status: String,
    /// Findings per severity.
    pub summary: BTreeMap<Severity, i64>,
    /// The worst finding's severity, when done with findings.
    pub highest: Option<Severity>,
    /// The findings, when done.
    pub vulnerabilities: Vec<Vulnerability>,
    /// Why it failed.
    pub message: String,
    /// Asked for.
    pub requested_at: DateTime<Utc>,
    /// Done or failed.
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ScanRow {
    id: Uuid,
    tenant_id: Uuid,
    repository: String,
    digest: String,
    scanner: String,
    status: String,
    vulnerabilities: sqlx::types::Json<Vec<Vulnerability>>,
    message: String,
    requested_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl From<ScanRow> for Scan {
    fn from(r: ScanRow) -> Self {
        let mut summary = BTreeMap::new();
        for v in &r.vulnerabilities.0 {
            *summary.entry(v.severity).or_insert(0) += 1;
        }
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            repository: r.repository,
            digest: r.digest,
            scanner: r.scanner,
            status: r.status,
            highest: summary.keys().next_back().copied(),
            summary,
            vulnerabilities: r.vulnerabilities.0,
            message: r.message,
            requested_at: r.requested_at,
            finished_at: r.finished_at,
        }
    }
}

macro_rules! select_scans {
    () => {
        "SELECT s.id, s.tenant_id, s.repository, s.digest, coalesce(c.name, '') AS scanner, s.status,
                s.vulnerabilities, s.message, s.requested_at, s.finished_at
         FROM scans s LEFT JOIN scanners c ON c.id = s.scanner_id "
    };
}

/// Queues a scan of a pushed image in `tx` when the default scanner scans
/// on push; a digest already scanned (or queued) is left as it is.
///
/// # Errors
/// The database fails.
pub async fn enqueue_on_push(tx: &mut PgConnection, tenant: Uuid, repository: &str, digest: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO scans (id, tenant_id, repository, digest, scanner_id)
         SELECT $1, $2, $3, $4, id FROM scanners WHERE is_default AND scan_on_push
         ON CONFLICT (repository, digest) DO NOTHING",
    )
    .bind(id::new_id())
    .bind(tenant)
    .bind(repository)
    .bind(digest)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The highest severity `tenant` accepts in `environment`, if it set one.
///
/// # Errors
/// The database fails.
pub async fn max_severity(pool: &PgPool, tenant: Uuid, environment: &str) -> Result<Option<Severity>> {
    let raw: Option<String> =
        sqlx::query_scalar("SELECT max_severity FROM scan_policies WHERE tenant_id = $1 AND environment = $2")
            .bind(tenant)
            .bind(environment)
            .fetch_optional(pool)
            .await?;
    raw.map(|r| Severity::parse("max_severity", &r)).transpose()
}

/// The scan of `repository` at `digest`, if any.
///
/// # Errors
/// The database fails.
pub async fn of_digest(pool: &PgPool, repository: &str, digest: &str) -> Result<Option<Scan>> {
    let row = sqlx::query_as::<_, ScanRow>(concat!(select_scans!(), "WHERE s.repository = $1 AND s.digest = $2"))
        .bind(repository)
        .bind(digest)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(Scan::from))
}

/// Scanners, scans and scan policies in the images schema.
#[derive(Clone)]
pub struct Scans {
    pool: PgPool,
    sealer: Sealer,
    http: reqwest::Client,
}

impl Scans {
    /// Scans stored in `pool`, scanner credentials sealed with `sealer`.
    pub fn new(pool: PgPool, sealer: Sealer) -> Self {
        Self {
            pool,
            sealer,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a TLS backend"),
        }
    }

    /// Registers a scanner after asking its adapter what it is. Platform
    /// administrators only. The first scanner, or one asked to be, is the default.
    ///
    /// # Errors
    /// Not allowed, the name taken, or the adapter does not answer its metadata.
    pub async fn create_scanner(&self, caller: &Caller, new: NewScanner) -> Result<Scanner> {
        caller.require_platform_admin()?;
        let base = new.url.as_str().trim_end_matches('/').to_string();
        let mut request = self
            .http
            .get(format!("{base}/api/v1/metadata"))
            .header(reqwest::header::ACCEPT, METADATA_MIME);
        if !new.authorization.is_empty() {
            request = request.header(reqwest::header::AUTHORIZATION, &new.authorization);
        }
        let unreachable =
            |why: String| Error::invalid("url", format!("the scanner adapter did not answer its metadata: {why}"));
        let response = request.send().await.map_err(|e| unreachable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unreachable(format!("HTTP {}", response.status())));
        }
        let metadata: Metadata = response.json().await.map_err(|e| unreachable(e.to_string()))?;
        let sealed = if new.authorization.is_empty() {
            None
        } else {
            Some(self.sealer.seal(new.authorization.as_bytes())?)
        };
        let mut tx = self.pool.begin().await?;
        let any_default: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM scanners WHERE is_default)")
            .fetch_one(&mut *tx)
            .await?;
        let is_default = new.is_default || !any_default;
        if is_default {
            sqlx::query("UPDATE scanners SET is_default = false WHERE is_default")
                .execute(&mut *tx)
                .await?;
        }
        let scanner = sqlx::query_as::<_, Scanner>(
            "INSERT INTO scanners (id, name, url, authorization_sealed, scan_on_push, is_default, adapter_name,
                                   adapter_vendor, adapter_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name) DO NOTHING
             RETURNING id, name, url, scan_on_push, is_default, adapter_name, adapter_vendor, adapter_version, created_at",
        )
        .bind(id::new_id())
        .bind(new.name.as_str())
        .bind(&base)
        .bind(sealed)
        .bind(new.scan_on_push)
        .bind(is_default)
        .bind(&metadata.scanner.name)
        .bind(&metadata.scanner.vendor)
        .bind(&metadata.scanner.version)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::Conflict(format!("a scanner named {} already exists", new.name)))?;
        tx.commit().await?;
        Ok(scanner)
    }

    /// A page of scanners.
    ///
    /// # Errors
    /// The database fails.
    pub async fn scanners(&self, page: Page) -> Result<(Vec<Scanner>, String)> {
        let rows = sqlx::query_as::<_, Scanner>(
            "SELECT id, name, url, scan_on_push, is_default, adapter_name, adapter_vendor, adapter_version, created_at
             FROM scanners WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2",
        )
        .bind(page.after)
        .bind(page.fetch())
        .fetch_all(&self.pool)
        .await?;
        Ok(page.finish(rows, |s| s.id))
    }

    /// Deletes a scanner (its scans stay, without it). Platform administrators only.
    ///
    /// # Errors
    /// Not allowed, or no such scanner.
    pub async fn delete_scanner(&self, caller: &Caller, id: Uuid) -> Result<()> {
        caller.require_platform_admin()?;
        let gone = sqlx::query("DELETE FROM scanners WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if gone.rows_affected() == 0 {
            return Err(Error::not_found("scanner", id));
        }
        Ok(())
    }

    /// Asks for a scan of `repository` at `digest` (again, if scanned before).
    ///
    /// # Errors
    /// No scanner is registered.
    pub async fn request(&self, tenant: Uuid, repository: &str, digest: &str) -> Result<Scan> {
        let queued = sqlx::query(
            "INSERT INTO scans (id, tenant_id, repository, digest, scanner_id)
             SELECT $1, $2, $3, $4, id FROM scanners WHERE is_default
             ON CONFLICT (repository, digest) DO UPDATE SET status = 'queued', scanner_id = excluded.scanner_id,
                 adapter_scan_id = '', vulnerabilities = '[]', message = '', attempts = 0,
                 next_check_at = now(), requested_at = now(), finished_at = NULL",
        )
        .bind(id::new_id())
        .bind(tenant)
        .bind(repository)
        .bind(digest)
        .execute(&self.pool)
        .await?;
        if queued.rows_affected() == 0 {
            return Err(Error::FailedPrecondition(
                "no scanner is registered; a platform administrator registers one first".to_string(),
            ));
        }
        of_digest(&self.pool, repository, digest)
            .await?
            .ok_or_else(|| Error::internal("the scan just queued is gone"))
    }

    /// Sets the highest severity `tenant` accepts in `environment` (`None`:
    /// no limit). Tenant administrators.
    ///
    /// # Errors
    /// Not allowed, or an unknown environment.
    pub async fn set_policy(
        &self,
        caller: &Caller,
        tenant: Uuid,
        environment: &str,
        max: Option<Severity>,
    ) -> Result<()> {
        caller.require(tenant, Role::TenantAdmin, "tenant", tenant)?;
        policy_environment(environment)?;
        match max {
            Some(max) => {
                sqlx::query(
                    "INSERT INTO scan_policies (tenant_id, environment, max_severity) VALUES ($1, $2, $3)
                     ON CONFLICT (tenant_id, environment) DO UPDATE SET max_severity = $3, updated_at = now()",
                )
                .bind(tenant)
                .bind(environment)
                .bind(max.as_str())
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM scan_policies WHERE tenant_id = $1 AND environment = $2")
                    .bind(tenant)
                    .bind(environment)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// The highest severity `tenant` accepts in `environment`, for a caller who may see it.
    ///
    /// # Errors
    /// The caller may not see the tenant.
    pub async fn policy(&self, caller: &Caller, tenant: Uuid, environment: &str) -> Result<Option<Severity>> {
        caller.require(tenant, Role::Viewer, "tenant", tenant)?;
        policy_environment(environment)?;
        max_severity(&self.pool, tenant, environment).await
    }

    /// The pool scans are stored in.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Checks that `environment` is one a scan or signature policy is set for:
/// reading another answered a default policy for a place that has none.
///
/// # Errors
/// Neither `production` nor `test`, naming `environment`.
pub fn policy_environment(environment: &str) -> Result<()> {
    if matches!(environment, "production" | "test") {
        Ok(())
    } else {
        Err(Error::invalid("environment", "must be production or test"))
    }
}

/// What `GET /api/v1/metadata` answers (the parts kept).
#[derive(Debug, Deserialize)]
struct Metadata {
    scanner: AdapterName,
}

#[derive(Debug, Default, Deserialize)]
struct AdapterName {
    #[serde(default)]
    name: String,
    #[serde(default)]
    vendor: String,
    #[serde(default)]
    version: String,
}

#[derive(Debug, Serialize)]
struct ScanRequest<'a> {
    registry: RegistryRef<'a>,
    artifact: Artifact<'a>,
}

#[derive(Debug, Serialize)]
struct RegistryRef<'a> {
    url: &'a str,
    authorization: String,
}

#[derive(Debug, Serialize)]
struct Artifact<'a> {
    repository: &'a str,
    digest: &'a str,
    mime_type: &'a str,
}

#[derive(Debug, Deserialize)]
struct ScanAccepted {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Report {
    #[serde(default)]
    vulnerabilities: Vec<ReportedVulnerability>,
}

#[derive(Debug, Deserialize)]
struct ReportedVulnerability {
    id: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    package: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    fix_version: String,
}

#[derive(sqlx::FromRow)]
struct Due {
    id: Uuid,
    repository: String,
    digest: String,
    status: String,
    adapter_scan_id: String,
    attempts: i32,
    url: String,
    authorization_sealed: Option<Vec<u8>>,
    media_type: Option<String>,
}

/// What one look at a scan came to.
enum Step {
    Submitted(String),
    NotYet(Duration),
    Done(Vec<Vulnerability>),
    Retry(String),
    Failed(String),
}

/// Drives queued and running scans through their adapters.
pub struct Scanning {
    scans: Scans,
    signer: Arc<Signer>,
}

impl Scanning {
    /// Drives the scans of `scans`, with pull tokens signed by `signer`.
    pub fn new(scans: Scans, signer: Arc<Signer>) -> Self {
        Self { scans, signer }
    }

    /// Looks at due scans every [`POLL`] until `stop`.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        loop {
            if let Err(e) = self.step_due().await {
                tracing::warn!(error = %e, "scans: a step failed; trying again");
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Takes each due scan one step: submit, or fetch its report.
    ///
    /// # Errors
    /// The database fails.
    pub async fn step_due(&self) -> Result<()> {
        loop {
            // Claimed by pushing its next look out: another replica skips it meanwhile.
            let due = sqlx::query_as::<_, Due>(
                "UPDATE scans s SET next_check_at = now() + interval '30 seconds'
                 FROM scanners c
                 WHERE c.id = s.scanner_id AND s.id = (
                     SELECT id FROM scans WHERE status IN ('queued', 'running') AND next_check_at <= now()
                     ORDER BY next_check_at LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING s.id, s.repository, s.digest, s.status, s.adapter_scan_id, s.attempts, c.url,
                           c.authorization_sealed,
                           (SELECT t.media_type FROM tags t JOIN repositories r ON r.id = t.repository_id
                            WHERE r.name = s.repository AND t.digest = s.digest LIMIT 1) AS media_type",
            )
            .fetch_optional(&self.scans.pool)
            .await?;
            let Some(due) = due else { return Ok(()) };
            let step = self.step(&due).await;
            self.record(&due, step).await?;
        }
    }

    async fn step(&self, due: &Due) -> Step {
        let authorization = match &due.authorization_sealed {
            Some(sealed) => match self.scans.sealer.open(sealed) {
                Ok(plain) => String::from_utf8_lossy(&plain).into_owned(),
                Err(e) => return Step::Failed(format!("the scanner's credentials do not open: {e}")),
            },
            None => String::new(),
        };
        let with_auth = |r: reqwest::RequestBuilder| {
            if authorization.is_empty() {
                r
            } else {
                r.header(reqwest::header::AUTHORIZATION, &authorization)
            }
        };
        if due.status == "queued" {
            let registry = match sqlx::query_scalar::<_, String>("SELECT url FROM registries WHERE master")
                .fetch_optional(&self.scans.pool)
                .await
            {
                Ok(Some(url)) => url,
                Ok(None) => return Step::Failed("no master registry is registered".to_string()),
                Err(e) => return Step::Retry(e.to_string()),
            };
            let grant = Grant {
                kind: "repository".to_string(),
                name: due.repository.clone(),
                actions: vec!["pull".to_string()],
            };
            let token = match self.signer.issue("scanner", vec![grant]) {
                Ok((token, _)) => token,
                Err(e) => return Step::Retry(e.to_string()),
            };
            let body = ScanRequest {
                registry: RegistryRef {
                    url: &registry,
                    authorization: format!("Bearer {token}"),
                },
                artifact: Artifact {
                    repository: &due.repository,
                    digest: &due.digest,
                    mime_type: due
                        .media_type
                        .as_deref()
                        .unwrap_or("application/vnd.oci.image.manifest.v1+json"),
                },
            };
            let sent = with_auth(self.scans.http.post(format!("{}/api/v1/scan", due.url)))
                .header(reqwest::header::CONTENT_TYPE, SCAN_REQUEST_MIME)
                .body(serde_json::to_vec(&body).unwrap_or_default())
                .send()
                .await;
            return match sent {
                Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => match r.json::<ScanAccepted>().await {
                    Ok(a) => Step::Submitted(a.id),
                    Err(e) => Step::Failed(format!("the adapter accepted the scan without an id: {e}")),
                },
                Ok(r) if r.status().is_server_error() => Step::Retry(format!("the adapter answered {}", r.status())),
                Ok(r) => Step::Failed(format!("the adapter refused the scan: HTTP {}", r.status())),
                Err(e) => Step::Retry(format!("the adapter did not answer: {e}")),
            };
        }
        let sent = with_auth(
            self.scans
                .http
                .get(format!("{}/api/v1/scan/{}/report", due.url, due.adapter_scan_id)),
        )
        .header(reqwest::header::ACCEPT, REPORT_MIME)
        .send()
        .await;
        match sent {
            Ok(r) if r.status() == reqwest::StatusCode::FOUND => {
                // Refresh-After: seconds until the report may be ready.
                let after = r
                    .headers()
                    .get("Refresh-After")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1)
                    .clamp(1, 60);
                Step::NotYet(Duration::from_secs(after))
            }
            Ok(r) if r.status().is_success() => match r.json::<Report>().await {
                Ok(report) => Step::Done(
                    report
                        .vulnerabilities
                        .into_iter()
                        .map(|v| Vulnerability {
                            severity: Severity::parse("severity", &v.severity).unwrap_or(Severity::Unknown),
                            id: v.id,
                            package: v.package,
                            version: v.version,
                            fix_version: v.fix_version,
                        })
                        .collect(),
                ),
                Err(e) => Step::Failed(format!("the adapter's report does not parse: {e}")),
            },
            Ok(r) if r.status().is_server_error() => Step::Retry(format!("the adapter answered {}", r.status())),
            Ok(r) => Step::Failed(format!("the adapter has no report: HTTP {}", r.status())),
            Err(e) => Step::Retry(format!("the adapter did not answer: {e}")),
        }
    }

    async fn record(&self, due: &Due, step: Step) -> Result<()> {
        let q = match step {
            Step::Submitted(adapter) => sqlx::query(
                "UPDATE scans SET status = 'running', adapter_scan_id = $2, next_check_at = now() WHERE id = $1",
            )
            .bind(due.id)
            .bind(adapter),
            Step::NotYet(after) => {
                sqlx::query("UPDATE scans SET next_check_at = now() + make_interval(secs => $2) WHERE id = $1")
                    .bind(due.id)
                    .bind(after.as_secs_f64())
            }
            Step::Done(found) => sqlx::query(
                "UPDATE scans SET status = 'done', vulnerabilities = $2, message = '', finished_at = now()
                 WHERE id = $1",
            )
            .bind(due.id)
            .bind(sqlx::types::Json(found)),
            Step::Retry(why) if due.attempts + 1 < ATTEMPTS => sqlx::query(
                "UPDATE scans SET attempts = attempts + 1, message = $2,
                        next_check_at = now() + make_interval(secs => least(30, 1 + attempts * 2)) WHERE id = $1",
            )
            .bind(due.id)
            .bind(why),
            Step::Retry(why) | Step::Failed(why) => {
                sqlx::query("UPDATE scans SET status = 'failed', message = $2, finished_at = now() WHERE id = $1")
                    .bind(due.id)
                    .bind(why)
            }
        };
        q.execute(&self.scans.pool).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_lowest_first_and_parse_any_case() {
        assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Unknown);
        assert_eq!(Severity::parse("s", "High").unwrap(), Severity::High);
        assert_eq!(
            Severity::parse("max_severity", "severe").unwrap_err().field(),
            Some("max_severity")
        );
    }

    #[test]
    fn a_scan_summarises_its_findings_by_severity() {
        let finding = |id: &str, severity| Vulnerability {
            id: id.to_string(),
            severity,
            package: "openssl".to_string(),
            version: "3.0.0".to_string(),
            fix_version: String::new(),
        };
        let scan = Scan::from(ScanRow {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            repository: "acme/shop/web".to_string(),
            digest: "sha256:00".to_string(),
            scanner: "trivy".to_string(),
            status: "done".to_string(),
            vulnerabilities: sqlx::types::Json(vec![
                finding("CVE-1", Severity::High),
                finding("CVE-2", Severity::Low),
                finding("CVE-3", Severity::High),
            ]),
            message: String::new(),
            requested_at: Utc::now(),
            finished_at: None,
        });
        assert_eq!(scan.highest, Some(Severity::High));
        assert_eq!(scan.summary[&Severity::High], 2);
        assert_eq!(scan.summary[&Severity::Low], 1);
    }

    #[test]
    fn a_scanner_needs_an_http_url_and_a_dns_name() {
        assert_eq!(
            NewScanner::parse("t", "ftp://x", "", false, false).unwrap_err().field(),
            Some("url")
        );
        assert_eq!(
            NewScanner::parse("T!", "http://x", "", false, false)
                .unwrap_err()
                .field(),
            Some("name")
        );
        assert!(NewScanner::parse("trivy", "http://127.0.0.1:8080", "Bearer x", true, true).is_ok());
    }
}
