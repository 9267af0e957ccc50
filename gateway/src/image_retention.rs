//! Image retention's REST face, forwarded to the images service: a rule per
//! repository (`/repositories/{id}/retention`: keep the last N tags, keep
//! released tags, delete untagged manifests after N days), its preview (what
//! a run would delete now), its runs (scheduled or started here), and the
//! registry's garbage collections that free the space (platform
//! administrators).

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

/// The routes, each with who may call it. Changing a rule or running one
/// deletes images: tenant administrators, as deleting a tag.
pub fn routes() -> Routes {
    Routes::new()
        .route(Permission::Authenticated, routes!(read_retention_rule))
        .route(Permission::Role(Role::TenantAdmin), routes!(put_retention_rule))
        .route(Permission::Role(Role::TenantAdmin), routes!(delete_retention_rule))
        .route(Permission::Authenticated, routes!(preview_retention))
        .route(Permission::Role(Role::TenantAdmin), routes!(start_retention_run))
        .route(Permission::Authenticated, routes!(list_retention_runs))
        .route(Permission::Authenticated, routes!(read_retention_run))
        .route(Permission::PlatformAdmin, routes!(set_gc_config))
        .route(Permission::PlatformAdmin, routes!(start_garbage_collection))
        .route(Permission::PlatformAdmin, routes!(list_garbage_collections))
}

/// A repository's retention rule: what it keeps; the rest goes.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetentionRule {
    /// The repository.
    pub repository_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Keep the N most recently pushed tags (absent: no limit by count).
    pub keep_last: Option<u32>,
    /// Never delete a released tag.
    pub keep_released: bool,
    /// Delete manifests no tag points at once untagged this many days
    /// (absent: keep them).
    pub untagged_days: Option<u32>,
    /// When the schedule runs it next.
    pub next_run_at: Option<DateTime<Utc>>,
    /// Who set it last.
    pub updated_by: String,
    /// When.
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<pb::RetentionRule> for RetentionRule {
    fn from(r: pb::RetentionRule) -> Self {
        Self {
            repository_id: r.repository_id,
            tenant_id: r.tenant_id,
            keep_last: r.keep_last,
            keep_released: r.keep_released,
            untagged_days: r.untagged_days,
            next_run_at: time(r.next_run_at),
            updated_by: r.updated_by,
            updated_at: time(r.updated_at),
        }
    }
}

fn default_true() -> bool {
    true
}

/// Body of `PUT /repositories/{id}/retention`: at least one of `keep_last`
/// and `untagged_days`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRetentionRule {
    /// Keep the N most recently pushed tags (1 to 100000).
    #[serde(default)]
    keep_last: Option<i64>,
    /// Never delete a released tag (default true).
    #[serde(default = "default_true")]
    keep_released: bool,
    /// Delete untagged manifests after N days (0 to 3650).
    #[serde(default)]
    untagged_days: Option<i64>,
}

/// One manifest a run deletes (or would): the registry deletes by digest,
/// with every tag on it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetentionDeletion {
    /// The manifest's digest.
    pub digest: String,
    /// The tags on it (none for an untagged manifest).
    pub tags: Vec<String>,
    /// Why.
    pub reason: String,
}

impl From<pb::RetentionDeletion> for RetentionDeletion {
    fn from(d: pb::RetentionDeletion) -> Self {
        Self {
            digest: d.digest,
            tags: d.tags,
            reason: d.reason,
        }
    }
}

fn deletions(ds: Vec<pb::RetentionDeletion>) -> Vec<RetentionDeletion> {
    ds.into_iter().map(RetentionDeletion::from).collect()
}

/// What a run of the rule would delete now (all of it: a preview is not paged).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetentionPreview {
    /// The manifests, by digest.
    pub deletions: Vec<RetentionDeletion>,
}

/// A retention run: what it decided, what it deleted, what it kept after all.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetentionRun {
    /// Its id.
    pub id: String,
    /// The repository.
    pub repository_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// `schedule` or `manual`.
    pub cause: String,
    /// `running`, `succeeded` or `failed`.
    pub state: String,
    /// Who started it (`retention`: the schedule).
    pub actor: String,
    /// The rule as it applied it.
    pub rule: Option<RetentionRule>,
    /// What it decided to delete.
    pub planned: Vec<RetentionDeletion>,
    /// What it deleted.
    pub deleted: Vec<RetentionDeletion>,
    /// What it kept after all (released or repointed meanwhile), and why.
    pub skipped: Vec<RetentionDeletion>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<pb::RetentionRun> for RetentionRun {
    fn from(r: pb::RetentionRun) -> Self {
        Self {
            id: r.id,
            repository_id: r.repository_id,
            tenant_id: r.tenant_id,
            cause: r.trigger,
            state: r.state,
            actor: r.actor,
            rule: r.rule.map(RetentionRule::from),
            planned: deletions(r.planned),
            deleted: deletions(r.deleted),
            skipped: deletions(r.skipped),
            error: Some(r.error).filter(|e| !e.is_empty()),
            started_at: time(r.started_at),
            finished_at: time(r.finished_at),
        }
    }
}

/// Body of `PUT /registries/{id}/garbage-collection`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GcConfig {
    /// Absolute path of the registry's configuration on the images
    /// service's host (`registry garbage-collect <config>`); empty: the
    /// platform does not collect this registry.
    config: String,
}

/// A garbage collection of a registry.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GcRun {
    /// Its id.
    pub id: String,
    /// The registry.
    pub registry_id: String,
    /// `retention` (queued by a run that deleted) or `manual`.
    pub cause: String,
    /// `pending`, `draining` (writes refused until earlier tokens expire),
    /// `collecting`, `succeeded`, `failed` or `skipped`.
    pub state: String,
    /// Blobs the collector deleted.
    pub blobs_deleted: i32,
    /// Bytes the registry's storage shrank by.
    pub freed_bytes: i64,
    /// The end of the collector's output.
    pub output: String,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was queued.
    pub created_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<pb::GcRun> for GcRun {
    fn from(g: pb::GcRun) -> Self {
        Self {
            id: g.id,
            registry_id: g.registry_id,
            cause: g.trigger,
            state: g.state,
            blobs_deleted: g.blobs_deleted,
            freed_bytes: g.freed_bytes,
            output: g.output,
            error: Some(g.error).filter(|e| !e.is_empty()),
            created_at: time(g.created_at),
            finished_at: time(g.finished_at),
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/repositories/{id}/retention",
    tag = "images",
    params(("id" = String, Path, description = "the repository")),
    responses((status = 200, body = RetentionRule), Problems),
    security(("bearer" = []))
)]
async fn read_retention_rule(
    Signed(mut images): Signed<Images>,
    Path(id): Path<String>,
) -> Result<Json<RetentionRule>, ApiError> {
    let request = pb::GetRetentionRuleRequest { repository_id: id };
    Ok(Json(images.get_retention_rule(request).await?.into_inner().into()))
}

#[utoipa::path(
    put,
    path = "/api/v1/repositories/{id}/retention",
    tag = "images",
    params(("id" = String, Path, description = "the repository")),
    request_body = PutRetentionRule,
    responses((status = 200, body = RetentionRule, description = "set; the schedule runs it one interval from now"), Problems),
    security(("bearer" = []))
)]
async fn put_retention_rule(
    Signed(mut images): Signed<Images>,
    Path(id): Path<String>,
    Body(b): Body<PutRetentionRule>,
) -> Result<Json<RetentionRule>, ApiError> {
    let request = pb::PutRetentionRuleRequest {
        repository_id: id,
        keep_last: b.keep_last,
        keep_released: b.keep_released,
        untagged_days: b.untagged_days,
    };
    Ok(Json(images.put_retention_rule(request).await?.into_inner().into()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/repositories/{id}/retention",
    tag = "images",
    params(("id" = String, Path, description = "the repository")),
    responses((status = 204, description = "no rule any more; its runs stay"), Problems),
    security(("bearer" = []))
)]
async fn delete_retention_rule(
    Signed(mut images): Signed<Images>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    images
        .delete_retention_rule(pb::GetRetentionRuleRequest { repository_id: id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/v1/repositories/{id}/retention/preview",
    tag = "images",
    params(("id" = String, Path, description = "the repository")),
    responses((status = 200, body = RetentionPreview, description = "exactly what a run would delete now"), Problems),
    security(("bearer" = []))
)]
async fn preview_retention(
    Signed(mut images): Signed<Images>,
    Path(id): Path<String>,
) -> Result<Json<RetentionPreview>, ApiError> {
    let r = images
        .preview_retention(pb::GetRetentionRuleRequest { repository_id: id })
        .await?
        .into_inner();
    Ok(Json(RetentionPreview {
        deletions: deletions(r.deletions),
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/repositories/{id}/retention/runs",
    tag = "images",
    params(("id" = String, Path, description = "the repository")),
    responses((status = 201, body = RetentionRun, description = "the run, finished"), Problems),
    security(("bearer" = []))
)]
async fn start_retention_run(
    Signed(mut images): Signed<Images>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RetentionRun>), ApiError> {
    let run = images
        .run_retention(pb::GetRetentionRuleRequest { repository_id: id })
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(run.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/repositories/{id}/retention/runs",
    tag = "images",
    params(("id" = String, Path, description = "the repository"), ListQuery),
    responses((status = 200, body = Page<RetentionRun>), Problems),
    security(("bearer" = []))
)]
async fn list_retention_runs(
    Signed(mut images): Signed<Images>,
    Path(id): Path<String>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<RetentionRun>>, ApiError> {
    let r = images
        .list_retention_runs(pb::ListRetentionRunsRequest {
            repository_id: id,
            page: page.request(),
        })
        .await?
        .into_inner();
    Ok(Json(Page::new(
        r.runs.into_iter().map(RetentionRun::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/retention-runs/{id}",
    tag = "images",
    params(("id" = String, Path, description = "the run")),
    responses((status = 200, body = RetentionRun), Problems),
    security(("bearer" = []))
)]
async fn read_retention_run(
    Signed(mut images): Signed<Images>,
    Path(id): Path<String>,
) -> Result<Json<RetentionRun>, ApiError> {
    let run = images
        .get_retention_run(pb::GetRetentionRunRequest { id })
        .await?
        .into_inner();
    Ok(Json(run.into()))
}

#[utoipa::path(
    put,
    path = "/api/v1/registries/{id}/garbage-collection",
    tag = "images",
    params(("id" = String, Path, description = "the registry")),
    request_body = GcConfig,
    responses((status = 204, description = "set"), Problems),
    security(("bearer" = []))
)]
async fn set_gc_config(
    Signed(mut images): Signed<Images>,
    Path(id): Path<String>,
    Body(b): Body<GcConfig>,
) -> Result<StatusCode, ApiError> {
    images
        .set_registry_gc_config(pb::SetRegistryGcConfigRequest {
            registry_id: id,
            config: b.config,
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/registries/{id}/garbage-collections",
    tag = "images",
    params(("id" = String, Path, description = "the registry")),
    responses((status = 202, body = GcRun, description = "queued (or the one queued or under way)"), Problems),
    security(("bearer" = []))
)]
async fn start_garbage_collection(
    Signed(mut images): Signed<Images>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<GcRun>), ApiError> {
    let run = images
        .collect_registry_garbage(pb::CollectRegistryGarbageRequest { registry_id: id })
        .await?
        .into_inner();
    Ok((StatusCode::ACCEPTED, Json(run.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/registries/{id}/garbage-collections",
    tag = "images",
    params(("id" = String, Path, description = "the registry"), ListQuery),
    responses((status = 200, body = Page<GcRun>), Problems),
    security(("bearer" = []))
)]
async fn list_garbage_collections(
    Signed(mut images): Signed<Images>,
    Path(id): Path<String>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<GcRun>>, ApiError> {
    let r = images
        .list_gc_runs(pb::ListGcRunsRequest {
            registry_id: id,
            page: page.request(),
        })
        .await?
        .into_inner();
    Ok(Json(Page::new(r.runs.into_iter().map(GcRun::from).collect(), r.page)))
}
