//! Replication's REST face, forwarded to the images service: a tenant's
//! rules (which repositories go to which sub-registries of its data
//! centres, on push and on a schedule), their status and lag, their runs
//! with each item copied, and running a rule by hand.

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
        .route(Permission::Role(Role::TenantAdmin), routes!(create_replication_rule))
        .route(Permission::Authenticated, routes!(list_replication_rules))
        .route(Permission::Authenticated, routes!(read_replication_rule))
        .route(Permission::Role(Role::TenantAdmin), routes!(update_replication_rule))
        .route(Permission::Role(Role::TenantAdmin), routes!(delete_replication_rule))
        .route(Permission::Role(Role::Developer), routes!(trigger_replication))
        .route(Permission::Authenticated, routes!(list_replication_runs))
        .route(Permission::Authenticated, routes!(read_replication_run))
}

/// How a rule is doing.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplicationRuleStatus {
    /// Its latest run, if any.
    pub last_run_id: Option<String>,
    /// That run's state.
    pub last_run_state: Option<RunState>,
    /// When a run of it last succeeded.
    pub last_succeeded_at: Option<DateTime<Utc>>,
    /// Items of unfinished runs not yet copied.
    pub pending_items: i64,
    /// Age in seconds of its oldest unfinished run (0: the targets are caught up).
    pub lag_seconds: i64,
    /// When its schedule runs it next.
    pub next_scheduled_at: Option<DateTime<Utc>>,
}

/// Which repositories of a tenant go to which sub-registries, and when.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplicationRule {
    /// Its id.
    pub id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// DNS label, unique in the tenant.
    pub name: String,
    /// Glob over `<tenant>/<project>/<name>` (`*` within a segment, `**` across); only the tenant's own match.
    pub repositories: String,
    /// Target registries: sub-registries of data centres or clusters where the tenant has partitions.
    pub registry_ids: Vec<String>,
    /// Replicates each push of a matching tag.
    pub on_push: bool,
    /// Empty, `every <n>s|m|h`, or five cron fields (UTC).
    pub schedule: String,
    /// Whether it runs at all (by hand it always can).
    pub enabled: bool,
    /// Created.
    pub created_at: Option<DateTime<Utc>>,
    /// Last changed.
    pub updated_at: Option<DateTime<Utc>>,
    /// How it is doing.
    pub status: ReplicationRuleStatus,
}

impl From<pb::ReplicationRule> for ReplicationRule {
    fn from(r: pb::ReplicationRule) -> Self {
        let s = r.status.unwrap_or_default();
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            name: r.name,
            repositories: r.repositories,
            registry_ids: r.registry_ids,
            on_push: r.on_push,
            schedule: r.schedule,
            enabled: r.enabled,
            created_at: time(r.created_at),
            updated_at: time(r.updated_at),
            status: ReplicationRuleStatus {
                last_run_id: Some(s.last_run_id).filter(|i| !i.is_empty()),
                last_run_state: RunState::parse(&s.last_run_state),
                last_succeeded_at: time(s.last_succeeded_at),
                pending_items: s.pending_items,
                lag_seconds: s.lag_seconds,
                next_scheduled_at: time(s.next_scheduled_at),
            },
        }
    }
}

fn default_true() -> bool {
    true
}

/// Body of `POST /tenants/{id}/replication-rules`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReplicationRule {
    /// DNS label, unique in the tenant.
    name: String,
    /// Glob over repository names, e.g. `acme/shop/*` or `acme/**`.
    repositories: String,
    /// Target registries (ids).
    registry_ids: Vec<String>,
    /// Replicate each push (default true).
    #[serde(default = "default_true")]
    on_push: bool,
    /// Empty, `every <n>s|m|h` (at least 10s), or five cron fields.
    #[serde(default)]
    schedule: String,
    /// Default true.
    #[serde(default = "default_true")]
    enabled: bool,
}

/// Body of `PUT /replication-rules/{id}`: the rule's settings, replaced.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicationRuleSettings {
    /// Glob over repository names.
    repositories: String,
    /// Target registries (ids).
    registry_ids: Vec<String>,
    /// Replicate each push (default true).
    #[serde(default = "default_true")]
    on_push: bool,
    /// Empty, `every <n>s|m|h`, or five cron fields.
    #[serde(default)]
    schedule: String,
    /// Default true.
    #[serde(default = "default_true")]
    enabled: bool,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Waiting for a worker (or for its next attempt while a target is down).
    Queued,
    /// Being copied.
    Running,
    /// Every item is copied.
    Succeeded,
    /// Given up after its last attempt.
    Failed,
}

impl RunState {
    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunTrigger {
    /// A push of a matching tag.
    Push,
    /// The rule's schedule.
    Schedule,
    /// Someone, through the API.
    Manual,
}

/// Where an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ItemState {
    /// Not yet copied.
    Pending,
    /// At the target, digest checked.
    Copied,
    /// The last attempt failed (see `error`); the run tries again.
    Failed,
}

/// One tag copied to one registry.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplicationItem {
    /// The target registry.
    pub registry_id: String,
    /// The repository (the same name at the target).
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The image's digest.
    pub digest: String,
    /// Where it is.
    pub state: ItemState,
    /// Bytes streamed (blobs the target had or mounted are not counted).
    pub bytes: i64,
    /// Why its last attempt failed.
    pub error: String,
}

/// One run of a rule.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplicationRun {
    /// Its id.
    pub id: String,
    /// Its rule.
    pub rule_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// What started it.
    pub trigger: RunTrigger,
    /// Where it is.
    pub state: RunState,
    /// Attempts so far.
    pub attempts: i32,
    /// Items.
    pub items_total: i64,
    /// Items copied.
    pub items_copied: i64,
    /// Items whose last attempt failed.
    pub items_failed: i64,
    /// Bytes streamed.
    pub bytes: i64,
    /// Why its last attempt did not finish it.
    pub message: String,
    /// Queued.
    pub created_at: Option<DateTime<Utc>>,
    /// First taken up.
    pub started_at: Option<DateTime<Utc>>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its items (only when one run is read).
    pub items: Vec<ReplicationItem>,
}

impl From<pb::ReplicationRun> for ReplicationRun {
    fn from(r: pb::ReplicationRun) -> Self {
        Self {
            id: r.id,
            rule_id: r.rule_id,
            tenant_id: r.tenant_id,
            trigger: match r.trigger.as_str() {
                "push" => RunTrigger::Push,
                "schedule" => RunTrigger::Schedule,
                _ => RunTrigger::Manual,
            },
            state: RunState::parse(&r.state).unwrap_or(RunState::Queued),
            attempts: r.attempts,
            items_total: r.items_total,
            items_copied: r.items_copied,
            items_failed: r.items_failed,
            bytes: r.bytes,
            message: r.message,
            created_at: time(r.created_at),
            started_at: time(r.started_at),
            finished_at: time(r.finished_at),
            items: r
                .items
                .into_iter()
                .map(|i| ReplicationItem {
                    registry_id: i.registry_id,
                    repository: i.repository,
                    tag: i.tag,
                    digest: i.digest,
                    state: match i.state.as_str() {
                        "copied" => ItemState::Copied,
                        "failed" => ItemState::Failed,
                        _ => ItemState::Pending,
                    },
                    bytes: i.bytes,
                    error: i.error,
                })
                .collect(),
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{id}/replication-rules",
    tag = "images",
    params(("id" = String, Path, description = "the tenant")),
    request_body = NewReplicationRule,
    responses((status = 201, body = ReplicationRule), Problems),
    security(("bearer" = []))
)]
async fn create_replication_rule(
    Signed(mut images): Signed<Images>,
    Path(tenant_id): Path<String>,
    Body(b): Body<NewReplicationRule>,
) -> Result<(StatusCode, Json<ReplicationRule>), ApiError> {
    let request = pb::CreateReplicationRuleRequest {
        tenant_id,
        name: b.name,
        repositories: b.repositories,
        registry_ids: b.registry_ids,
        on_push: b.on_push,
        schedule: b.schedule,
        enabled: b.enabled,
    };
    let rule = images.create_replication_rule(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(rule.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}/replication-rules",
    tag = "images",
    params(("id" = String, Path, description = "the tenant"), ListQuery),
    responses((status = 200, body = Page<ReplicationRule>), Problems),
    security(("bearer" = []))
)]
async fn list_replication_rules(
    Signed(mut images): Signed<Images>,
    Path(tenant_id): Path<String>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<ReplicationRule>>, ApiError> {
    let r = images
        .list_replication_rules(pb::ListReplicationRulesRequest {
            tenant_id,
            page: page.request(),
        })
        .await?
        .into_inner();
    Ok(Json(Page::new(
        r.rules.into_iter().map(ReplicationRule::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/replication-rules/{id}",
    tag = "images",
    params(("id" = String, Path, description = "the rule")),
    responses((status = 200, body = ReplicationRule), Problems),
    security(("bearer" = []))
)]
async fn read_replication_rule(
    Signed(mut images): Signed<Images>,
    Path(id): Path<String>,
) -> Result<Json<ReplicationRule>, ApiError> {
    let rule = images
        .get_replication_rule(pb::GetReplicationRuleRequest { id })
        .await?
        .into_inner();
    Ok(Json(rule.into()))
}

#[utoipa::path(
    put,
    path = "/api/v1/replication-rules/{id}",
    tag = "images",
    params(("id" = String, Path, description = "the rule")),
    request_body = ReplicationRuleSettings,
    responses((status = 200, body = ReplicationRule), Problems),
    security(("bearer" = []))
)]
async fn update_replication_rule(
    Signed(mut images): Signed<Images>,
    Path(id): Path<String>,
    Body(b): Body<ReplicationRuleSettings>,
) -> Result<Json<ReplicationRule>, ApiError> {
    let request = pb::UpdateReplicationRuleRequest {
        id,
        repositories: b.repositories,
        registry_ids: b.registry_ids,
        on_push: b.on_push,
        schedule: b.schedule,
        enabled: b.enabled,
    };
    Ok(Json(images.update_replication_rule(request).await?.into_inner().into()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/replication-rules/{id}",
    tag = "images",
    params(("id" = String, Path, description = "the rule")),
    responses((status = 204, description = "gone with its runs; copies already made stay"), Problems),
    security(("bearer" = []))
)]
async fn delete_replication_rule(
    Signed(mut images): Signed<Images>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    images
        .delete_replication_rule(pb::DeleteReplicationRuleRequest { id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/replication-rules/{id}/runs",
    tag = "images",
    params(("id" = String, Path, description = "the rule")),
    responses((status = 202, body = ReplicationRun), Problems),
    security(("bearer" = []))
)]
async fn trigger_replication(
    Signed(mut images): Signed<Images>,
    Path(rule_id): Path<String>,
) -> Result<(StatusCode, Json<ReplicationRun>), ApiError> {
    let run = images
        .trigger_replication(pb::TriggerReplicationRequest { rule_id })
        .await?
        .into_inner();
    Ok((StatusCode::ACCEPTED, Json(run.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/replication-rules/{id}/runs",
    tag = "images",
    params(("id" = String, Path, description = "the rule"), ListQuery),
    responses((status = 200, body = Page<ReplicationRun>), Problems),
    security(("bearer" = []))
)]
async fn list_replication_runs(
    Signed(mut images): Signed<Images>,
    Path(rule_id): Path<String>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<ReplicationRun>>, ApiError> {
    let r = images
        .list_replication_runs(pb::ListReplicationRunsRequest {
            rule_id,
            page: page.request(),
        })
        .await?
        .into_inner();
    Ok(Json(Page::new(
        r.runs.into_iter().map(ReplicationRun::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/replication-runs/{id}",
    tag = "images",
    params(("id" = String, Path, description = "the run")),
    responses((status = 200, body = ReplicationRun), Problems),
    security(("bearer" = []))
)]
async fn read_replication_run(
    Signed(mut images): Signed<Images>,
    Path(id): Path<String>,
) -> Result<Json<ReplicationRun>, ApiError> {
    let run = images
        .get_replication_run(pb::GetReplicationRunRequest { id })
        .await?
        .into_inner();
    Ok(Json(run.into()))
}
