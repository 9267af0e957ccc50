//! Pipelines' notification targets and image triggers (R8), forwarded to the
//! devops service: webhooks (JSON POSTs signed with the secret shown once)
//! and e-mail on a failed run, an approval waiting, production deployed; and
//! runs started by tags pushed to the image catalog.

use axum::Json;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use kernel::caller::Role;
use kernel::grpc::time;
use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use crate::json::Body;
use crate::problem::{ApiError, Problems};
use crate::rbac::Permission;
use crate::request::{Path, Query};
use crate::route::Routes;
use crate::upstream::{Devops, Signed};

/// The routes, each with who may call it (devops checks the tenant, and
/// tenant administrators for tenant-wide targets).
pub fn routes() -> Routes {
    let dev = Permission::Role(Role::Developer);
    Routes::new()
        .route(dev, routes!(create_notification_target))
        .route(Permission::Authenticated, routes!(list_notification_targets))
        .route(dev, routes!(delete_notification_target))
        .route(Permission::Authenticated, routes!(list_notifications))
        .route(dev, routes!(create_pipeline_image_trigger))
        .route(Permission::Authenticated, routes!(list_pipeline_image_triggers))
        .route(dev, routes!(delete_pipeline_image_trigger))
}

/// How a target is reached.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotificationTargetKind {
    /// A JSON POST to `url`, signed in `X-Paas-Signature-256`.
    Webhook,
    /// An e-mail to `address` (needs `PAAS_SMTP_HOST`).
    Email,
}

/// Where a notification's delivery stands (devops' `notifications.state`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotificationState {
    /// Not delivered yet; retried with backoff.
    Pending,
    /// Delivered.
    Delivered,
    /// Given up after the last attempt.
    Failed,
}

/// What a target hears of.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
pub enum NotificationEvent {
    /// A run failed.
    #[serde(rename = "run.failed")]
    RunFailed,
    /// An approval step waits.
    #[serde(rename = "approval.needed")]
    ApprovalNeeded,
    /// Production was deployed.
    #[serde(rename = "production.deployed")]
    ProductionDeployed,
}

impl NotificationEvent {
    fn as_str(self) -> &'static str {
        match self {
            Self::RunFailed => "run.failed",
            Self::ApprovalNeeded => "approval.needed",
            Self::ProductionDeployed => "production.deployed",
        }
    }
}

/// Body of `POST /notification-targets`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNotificationTarget {
    /// One pipeline's target (developers)...
    #[serde(default)]
    #[schema(format = Uuid)]
    pipeline_id: String,
    /// ...or, without a pipeline, every pipeline of this tenant (tenant administrators).
    #[serde(default)]
    #[schema(format = Uuid)]
    tenant_id: String,
    /// webhook or email.
    kind: NotificationTargetKind,
    /// A webhook's http(s) URL.
    #[serde(default)]
    url: String,
    /// An e-mail target's address.
    #[serde(default)]
    address: String,
    /// What it hears of; empty: everything.
    #[serde(default)]
    events: Vec<NotificationEvent>,
}

/// A notification target.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NotificationTarget {
    /// Its id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Its tenant.
    #[schema(format = Uuid)]
    pub tenant_id: String,
    /// Its pipeline; empty: every pipeline of the tenant.
    pub pipeline_id: String,
    /// webhook or email.
    #[schema(value_type = NotificationTargetKind)]
    pub kind: String,
    /// A webhook's URL.
    pub url: String,
    /// An e-mail target's address.
    pub address: String,
    /// run.failed, approval.needed, production.deployed.
    #[schema(value_type = Vec<NotificationEvent>)]
    pub events: Vec<String>,
    /// Who made it.
    pub created_by: String,
    /// Created.
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::NotificationTarget> for NotificationTarget {
    fn from(t: pb::NotificationTarget) -> Self {
        Self {
            id: t.id,
            tenant_id: t.tenant_id,
            pipeline_id: t.pipeline_id,
            kind: t.kind,
            url: t.url,
            address: t.address,
            events: t.events,
            created_by: t.created_by,
            created_at: time(t.created_at),
        }
    }
}

/// A new target and, for a webhook, the secret that signs its bodies
/// (shown here only).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NotificationTargetCreated {
    /// The target.
    pub target: NotificationTarget,
    /// `X-Paas-Signature-256: sha256=<HMAC-SHA256 of the body under this secret, hex>`.
    pub secret: String,
}

/// NotificationTargets.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NotificationTargets {
    /// The targets.
    pub items: Vec<NotificationTarget>,
}

/// Filters of `GET /notification-targets`: a pipeline (its targets and its
/// tenant's), a tenant (its tenant-wide targets), or neither (every target
/// the caller can see).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationTargetFilter {
    /// A pipeline's, with its tenant's tenant-wide targets.
    #[serde(default)]
    #[param(format = Uuid)]
    pipeline_id: String,
    /// A tenant's tenant-wide targets (with neither filter: every target
    /// the caller can see).
    #[serde(default)]
    #[param(format = Uuid)]
    tenant_id: String,
}

/// One notification and how its delivery went.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Notification {
    /// Its id (the webhook's `X-Paas-Delivery`).
    #[schema(format = Uuid)]
    pub id: String,
    /// The run concerned.
    #[schema(format = Uuid)]
    pub run_id: String,
    /// run.failed, approval.needed or production.deployed.
    pub event: String,
    /// The JSON sent.
    pub payload: serde_json::Value,
    /// pending, delivered or failed (given up).
    #[schema(value_type = NotificationState)]
    pub state: String,
    /// Attempts so far.
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: String,
    /// Written.
    pub created_at: Option<DateTime<Utc>>,
    /// Delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A target's newest notifications.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Notifications {
    /// Newest first, at most 50.
    pub items: Vec<Notification>,
}

#[utoipa::path(post, path = "/api/v1/notification-targets", tag = "pipelines", request_body = NewNotificationTarget,
    responses((status = 201, body = NotificationTargetCreated), Problems), security(("bearer" = [])))]
async fn create_notification_target(
    Signed(mut devops): Signed<Devops>,
    Body(b): Body<NewNotificationTarget>,
) -> Result<(StatusCode, Json<NotificationTargetCreated>), ApiError> {
    let request = pb::CreateNotificationTargetRequest {
        tenant_id: b.tenant_id,
        pipeline_id: b.pipeline_id,
        kind: match b.kind {
            NotificationTargetKind::Webhook => "webhook",
            NotificationTargetKind::Email => "email",
        }
        .into(),
        url: b.url,
        address: b.address,
        events: b.events.into_iter().map(|e| e.as_str().to_string()).collect(),
    };
    let created = devops.create_notification_target(request).await?.into_inner();
    let target = created
        .target
        .ok_or_else(|| ApiError::from(kernel::Error::internal("no target in the answer")))?;
    Ok((
        StatusCode::CREATED,
        Json(NotificationTargetCreated {
            target: target.into(),
            secret: created.secret,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/notification-targets", tag = "pipelines", params(NotificationTargetFilter),
    responses((status = 200, body = NotificationTargets), Problems), security(("bearer" = [])))]
async fn list_notification_targets(
    Signed(mut devops): Signed<Devops>,
    Query(filter): Query<NotificationTargetFilter>,
) -> Result<Json<NotificationTargets>, ApiError> {
    let r = devops
        .list_notification_targets(pb::ListNotificationTargetsRequest {
            tenant_id: filter.tenant_id,
            pipeline_id: filter.pipeline_id,
        })
        .await?
        .into_inner();
    Ok(Json(NotificationTargets {
        items: r.targets.into_iter().map(NotificationTarget::from).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/notification-targets/{id}", tag = "pipelines",
    params(("id" = uuid::Uuid, Path, description = "the target")),
    responses((status = 204, description = "deleted with its pending notifications"), Problems),
    security(("bearer" = [])))]
async fn delete_notification_target(
    Signed(mut devops): Signed<Devops>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    devops
        .delete_notification_target(pb::DeleteNotificationTargetRequest { id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/notification-targets/{id}/notifications", tag = "pipelines",
    params(("id" = uuid::Uuid, Path, description = "the target")),
    responses((status = 200, body = Notifications), Problems), security(("bearer" = [])))]
async fn list_notifications(
    Signed(mut devops): Signed<Devops>,
    Path(id): Path<String>,
) -> Result<Json<Notifications>, ApiError> {
    let r = devops
        .list_notifications(pb::ListNotificationsRequest { target_id: id })
        .await?
        .into_inner();
    Ok(Json(Notifications {
        items: r
            .notifications
            .into_iter()
            .map(|n| Notification {
                id: n.id,
                run_id: n.run_id,
                event: n.event,
                payload: serde_json::from_str(&n.payload).unwrap_or(serde_json::Value::Null),
                state: n.state,
                attempts: n.attempts,
                last_error: n.last_error,
                created_at: time(n.created_at),
                delivered_at: time(n.delivered_at),
            })
            .collect(),
    }))
}

/// Body of `POST /pipelines/{id}/image-triggers`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPipelineImageTrigger {
    /// Glob over image repositories, `<tenant>/<project>/<name>` (`acme/base/*`).
    repository: String,
    /// Glob over tags (`1.*`); empty: every tag.
    #[serde(default)]
    tags: String,
    /// The branch or ref the run builds; empty: main.
    #[serde(default, rename = "ref")]
    git_ref: String,
}

/// An image trigger: runs get `IMAGE_REPOSITORY`, `IMAGE_TAG` and
/// `IMAGE_DIGEST` as parameters.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PipelineImageTrigger {
    /// Its id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Its pipeline.
    #[schema(format = Uuid)]
    pub pipeline_id: String,
    /// Repository glob.
    pub repository: String,
    /// Tag glob.
    pub tags: String,
    /// The full ref built.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Who made it.
    pub created_by: String,
    /// Created.
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::PipelineImageTrigger> for PipelineImageTrigger {
    fn from(t: pb::PipelineImageTrigger) -> Self {
        Self {
            id: t.id,
            pipeline_id: t.pipeline_id,
            repository: t.repository,
            tags: t.tags,
            git_ref: t.git_ref,
            created_by: t.created_by,
            created_at: time(t.created_at),
        }
    }
}

/// A pipeline's image triggers.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PipelineImageTriggers {
    /// The triggers.
    pub items: Vec<PipelineImageTrigger>,
}

#[utoipa::path(post, path = "/api/v1/pipelines/{id}/image-triggers", tag = "pipelines",
    params(("id" = uuid::Uuid, Path, description = "the pipeline")), request_body = NewPipelineImageTrigger,
    responses((status = 201, body = PipelineImageTrigger), Problems), security(("bearer" = [])))]
async fn create_pipeline_image_trigger(
    Signed(mut devops): Signed<Devops>,
    Path(id): Path<String>,
    Body(b): Body<NewPipelineImageTrigger>,
) -> Result<(StatusCode, Json<PipelineImageTrigger>), ApiError> {
    let trigger = devops
        .create_pipeline_image_trigger(pb::CreatePipelineImageTriggerRequest {
            pipeline_id: id,
            repository: b.repository,
            tags: b.tags,
            git_ref: b.git_ref,
        })
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(trigger.into())))
}

#[utoipa::path(get, path = "/api/v1/pipelines/{id}/image-triggers", tag = "pipelines",
    params(("id" = uuid::Uuid, Path, description = "the pipeline")),
    responses((status = 200, body = PipelineImageTriggers), Problems), security(("bearer" = [])))]
async fn list_pipeline_image_triggers(
    Signed(mut devops): Signed<Devops>,
    Path(id): Path<String>,
) -> Result<Json<PipelineImageTriggers>, ApiError> {
    let r = devops
        .list_pipeline_image_triggers(pb::ListPipelineImageTriggersRequest { pipeline_id: id })
        .await?
        .into_inner();
    Ok(Json(PipelineImageTriggers {
        items: r.triggers.into_iter().map(PipelineImageTrigger::from).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/pipeline-image-triggers/{id}", tag = "pipelines",
    params(("id" = uuid::Uuid, Path, description = "the trigger")),
    responses((status = 204, description = "deleted"), Problems), security(("bearer" = [])))]
async fn delete_pipeline_image_trigger(
    Signed(mut devops): Signed<Devops>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    devops
        .delete_pipeline_image_trigger(pb::DeletePipelineImageTriggerRequest { id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
