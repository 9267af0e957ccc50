//! Vulnerability scanning's REST face, forwarded to the images service:
//! scanner adapters (Harbor's adapter API; platform administrators register
//! them), a tag's scan with its summary by severity (asked on push or here
//! on demand), and each tenant's scan policy per environment: the highest
//! severity a deploy there accepts.

use axum::Json;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use kernel::caller::Role;
use kernel::grpc::time;
use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use crate::json::Body;
use crate::page::{ListQuery, Page};
use crate::problem::{ApiError, Problems};
use crate::rbac::Permission;
use crate::request::{Path, Query};
use crate::route::Routes;
use crate::upstream::{Images, Signed};

/// The routes, each with who may call it.
pub fn routes() -> Routes {
    Routes::new()
        .route(Permission::PlatformAdmin, routes!(create_scanner))
        .route(Permission::Authenticated, routes!(list_scanners))
        .route(Permission::PlatformAdmin, routes!(delete_scanner))
        .route(Permission::Role(Role::Developer), routes!(scan_tag))
        .route(Permission::Authenticated, routes!(read_tag_scan))
        .route(Permission::Role(Role::TenantAdmin), routes!(set_scan_policy))
        .route(Permission::Authenticated, routes!(read_scan_policy))
}

/// A scanner adapter (never its Authorization).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Scanner {
    /// Its id.
    pub id: String,
    /// DNS label.
    pub name: String,
    /// The adapter's base URL.
    pub url: String,
    /// Whether each pushed image is scanned.
    pub scan_on_push: bool,
    /// Whether scans go to it (one scanner is the default).
    pub is_default: bool,
    /// What the adapter says it is.
    pub adapter_name: String,
    /// Its vendor.
    pub adapter_vendor: String,
    /// Its version.
    pub adapter_version: String,
    /// Registered.
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::Scanner> for Scanner {
    fn from(s: pb::Scanner) -> Self {
        Self {
            id: s.id,
            name: s.name,
            url: s.url,
            scan_on_push: s.scan_on_push,
            is_default: s.is_default,
            adapter_name: s.adapter_name,
            adapter_vendor: s.adapter_vendor,
            adapter_version: s.adapter_version,
            created_at: time(s.created_at),
        }
    }
}

/// Body of `POST /scanners`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewScanner {
    /// DNS label, unique.
    #[schema(max_length = 63)]
    name: String,
    /// The adapter's base URL (it answers `GET /api/v1/metadata` at registration).
    #[schema(max_length = 2048)]
    url: String,
    /// Sent to the adapter as its Authorization header (`Bearer ...`); sealed at rest, never returned.
    #[serde(default)]
    #[schema(max_length = 4096)]
    authorization: String,
    /// Scan each pushed image.
    #[serde(default)]
    scan_on_push: bool,
    /// Make it the default (the first scanner is anyway).
    #[serde(default)]
    is_default: bool,
}

/// A vulnerability's severity.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
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
    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "unknown" => Self::Unknown,
            "negligible" => Self::Negligible,
            "low" => Self::Low,
            "medium" => Self::Medium,
            "high" => Self::High,
            "critical" => Self::Critical,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Negligible => "negligible",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// Where a scan is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScanStatus {
    /// Waiting for the scanner.
    Queued,
    /// The scanner has it.
    Running,
    /// Its report is in.
    Done,
    /// The scanner refused or failed it: `message` says why.
    Failed,
}

/// One finding.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
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

/// Findings per severity.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeveritySummary {
    /// Critical.
    pub critical: i64,
    /// High.
    pub high: i64,
    /// Medium.
    pub medium: i64,
    /// Low.
    pub low: i64,
    /// Negligible.
    pub negligible: i64,
    /// Not rated.
    pub unknown: i64,
}

/// The scan of one image (repository and digest), whichever of its tags asked.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Scan {
    /// Its id.
    pub id: String,
    /// The repository's tenant.
    pub tenant_id: String,
    /// The repository.
    pub repository: String,
    /// The image's digest.
    pub digest: String,
    /// The scanner's name.
    pub scanner: String,
    /// Where it is.
    pub status: ScanStatus,
    /// Findings per severity.
    pub summary: SeveritySummary,
    /// The worst finding's severity; none when nothing was found or not done.
    pub highest_severity: Option<Severity>,
    /// The findings.
    pub vulnerabilities: Vec<Vulnerability>,
    /// Why it failed.
    pub message: String,
    /// Asked for.
    pub requested_at: Option<DateTime<Utc>>,
    /// Done or failed.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<pb::Scan> for Scan {
    fn from(s: pb::Scan) -> Self {
        let summary = s.summary.unwrap_or_default();
        Self {
            id: s.id,
            tenant_id: s.tenant_id,
            repository: s.repository,
            digest: s.digest,
            scanner: s.scanner,
            status: match s.status.as_str() {
                "running" => ScanStatus::Running,
                "done" => ScanStatus::Done,
                "failed" => ScanStatus::Failed,
                _ => ScanStatus::Queued,
            },
            summary: SeveritySummary {
                critical: summary.critical,
                high: summary.high,
                medium: summary.medium,
                low: summary.low,
                negligible: summary.negligible,
                unknown: summary.unknown,
            },
            highest_severity: Severity::parse(&s.highest_severity),
            vulnerabilities: s
                .vulnerabilities
                .into_iter()
                .map(|v| Vulnerability {
                    severity: Severity::parse(&v.severity).unwrap_or(Severity::Unknown),
                    id: v.id,
                    package: v.package,
                    version: v.version,
                    fix_version: v.fix_version,
                })
                .collect(),
            message: s.message,
            requested_at: time(s.requested_at),
            finished_at: time(s.finished_at),
        }
    }
}

/// A tenant's scan policy in one environment.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScanPolicy {
    /// The tenant.
    pub tenant_id: String,
    /// production or test.
    pub environment: String,
    /// The highest severity a deploy there accepts; none: no limit. In
    /// production an image above it, or with no finished scan, is refused
    /// (admission rule `scan-severity`).
    pub max_severity: Option<Severity>,
}

/// Body of `PUT /tenants/{id}/scan-policies/{environment}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetScanPolicy {
    /// The highest severity accepted; null: no limit.
    #[serde(default)]
    max_severity: Option<Severity>,
}

fn policy(p: pb::ScanPolicy) -> ScanPolicy {
    ScanPolicy {
        tenant_id: p.tenant_id,
        environment: p.environment,
        max_severity: Severity::parse(&p.max_severity),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/scanners",
    tag = "images",
    request_body = NewScanner,
    responses((status = 201, body = Scanner), Problems),
    security(("bearer" = []))
)]
async fn create_scanner(
    Signed(mut images): Signed<Images>,
    Body(b): Body<NewScanner>,
) -> Result<(StatusCode, Json<Scanner>), ApiError> {
    let s = images
        .create_scanner(pb::CreateScannerRequest {
            name: b.name,
            url: b.url,
            authorization: b.authorization,
            scan_on_push: b.scan_on_push,
            is_default: b.is_default,
        })
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(s.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/scanners",
    tag = "images",
    params(ListQuery),
    responses((status = 200, body = Page<Scanner>), Problems),
    security(("bearer" = []))
)]
async fn list_scanners(
    Signed(mut images): Signed<Images>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<Scanner>>, ApiError> {
    let r = images
        .list_scanners(pb::ListScannersRequest { page: page.request() })
        .await?
        .into_inner();
    Ok(Json(Page::new(
        r.scanners.into_iter().map(Scanner::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    delete,
    path = "/api/v1/scanners/{id}",
    tag = "images",
    params(("id" = String, Path, description = "the scanner")),
    responses((status = 204, description = "gone; its scans stay"), Problems),
    security(("bearer" = []))
)]
async fn delete_scanner(Signed(mut images): Signed<Images>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    images.delete_scanner(pb::DeleteScannerRequest { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/repositories/{id}/tags/{tag}/scan",
    tag = "images",
    params(
        ("id" = String, Path, description = "the repository"),
        ("tag" = String, Path, description = "the tag"),
    ),
    responses((status = 202, body = Scan, description = "queued; read it again until done"), Problems),
    security(("bearer" = []))
)]
async fn scan_tag(
    Signed(mut images): Signed<Images>,
    Path((repository_id, tag)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Scan>), ApiError> {
    let s = images
        .scan_tag(pb::ScanTagRequest { repository_id, tag })
        .await?
        .into_inner();
    Ok((StatusCode::ACCEPTED, Json(s.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/repositories/{id}/tags/{tag}/scan",
    tag = "images",
    params(
        ("id" = String, Path, description = "the repository"),
        ("tag" = String, Path, description = "the tag"),
    ),
    responses((status = 200, body = Scan), Problems),
    security(("bearer" = []))
)]
async fn read_tag_scan(
    Signed(mut images): Signed<Images>,
    Path((repository_id, tag)): Path<(String, String)>,
) -> Result<Json<Scan>, ApiError> {
    let s = images
        .get_tag_scan(pb::GetTagScanRequest { repository_id, tag })
        .await?
        .into_inner();
    Ok(Json(s.into()))
}

#[utoipa::path(
    put,
    path = "/api/v1/tenants/{id}/scan-policies/{environment}",
    tag = "images",
    params(
        ("id" = String, Path, description = "the tenant"),
        ("environment" = String, Path, description = "production or test"),
    ),
    request_body = SetScanPolicy,
    responses((status = 200, body = ScanPolicy), Problems),
    security(("bearer" = []))
)]
async fn set_scan_policy(
    Signed(mut images): Signed<Images>,
    Path((tenant_id, environment)): Path<(String, String)>,
    Body(b): Body<SetScanPolicy>,
) -> Result<Json<ScanPolicy>, ApiError> {
    let p = images
        .set_scan_policy(pb::SetScanPolicyRequest {
            tenant_id,
            environment,
            max_severity: b.max_severity.map_or(String::new(), |s| s.as_str().to_string()),
        })
        .await?
        .into_inner();
    Ok(Json(policy(p)))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}/scan-policies/{environment}",
    tag = "images",
    params(
        ("id" = String, Path, description = "the tenant"),
        ("environment" = String, Path, description = "production or test"),
    ),
    responses((status = 200, body = ScanPolicy), Problems),
    security(("bearer" = []))
)]
async fn read_scan_policy(
    Signed(mut images): Signed<Images>,
    Path((tenant_id, environment)): Path<(String, String)>,
) -> Result<Json<ScanPolicy>, ApiError> {
    let p = images
        .get_scan_policy(pb::GetScanPolicyRequest { tenant_id, environment })
        .await?
        .into_inner();
    Ok(Json(policy(p)))
}
