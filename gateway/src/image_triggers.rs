//! Image triggers' REST face, forwarded to the apps service: rules per
//! application releasing it when a matching tag is pushed (a semver range
//! or a glob), with the tags each rule took. Outside production the release
//! deploys at once; in production it awaits a tenant administrator's approval.

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
use crate::upstream::{Apps, Signed};

/// The routes, each with who may call it (apps checks the application's
/// environment: production triggers are tenant administrators').
pub fn routes() -> Routes {
    Routes::new()
        .route(Permission::Role(Role::Developer), routes!(create_image_trigger))
        .route(Permission::Authenticated, routes!(list_image_triggers))
        .route(Permission::Role(Role::Developer), routes!(delete_image_trigger))
}

/// A rule releasing an application when a matching tag is pushed.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImageTrigger {
    /// Its id.
    pub id: String,
    /// The application's tenant.
    pub tenant_id: String,
    /// The application released.
    pub application_id: String,
    /// `<tenant>/<project>/<name>`.
    pub repository: String,
    /// The tags taken: a semver range (`^1.2`) or a glob (`release-*`).
    pub tags: String,
    /// The template parameter given the new tag.
    pub parameter: String,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_at: Option<DateTime<Utc>>,
    /// The newest ten tags it took.
    pub firings: Vec<ImageTriggerFiring>,
}

/// A tag a trigger took: one release per trigger and tag, however often it is pushed.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImageTriggerFiring {
    /// The tag.
    pub tag: String,
    /// Its digest when pushed.
    pub digest: String,
    /// Where it is.
    pub state: FiringState,
    /// The release made, once made.
    pub release_id: String,
    /// Why it failed, or what it waits for.
    pub message: String,
    /// When it matched.
    pub at: Option<DateTime<Utc>>,
}

/// Where a firing is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FiringState {
    /// Its release is still to be made (another is in progress, say).
    Pending,
    /// Its release was made.
    Released,
    /// Its release was refused (admission, a bad parameter): `message` says why.
    Failed,
}

impl From<pb::ImageTrigger> for ImageTrigger {
    fn from(t: pb::ImageTrigger) -> Self {
        Self {
            id: t.id,
            tenant_id: t.tenant_id,
            application_id: t.application_id,
            repository: t.repository,
            tags: t.tags,
            parameter: t.parameter,
            created_by: t.created_by,
            created_at: time(t.created_at),
            firings: t
                .firings
                .into_iter()
                .map(|f| ImageTriggerFiring {
                    tag: f.tag,
                    digest: f.digest,
                    state: match f.state.as_str() {
                        "released" => FiringState::Released,
                        "failed" => FiringState::Failed,
                        _ => FiringState::Pending,
                    },
                    release_id: f.release_id,
                    message: f.message,
                    at: time(f.at),
                })
                .collect(),
        }
    }
}

/// Body of `POST /applications/{id}/image-triggers`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewImageTrigger {
    /// The repository watched, `<tenant>/<project>/<name>`.
    #[schema(max_length = 255)]
    repository: String,
    /// A semver range (`^1.2`, `>=1.0, <2`) or a glob with `*` or `?` (`release-*`).
    #[schema(max_length = 128)]
    tags: String,
    /// The template parameter given the new tag (the image's `${tag}`).
    #[schema(max_length = 63)]
    parameter: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/applications/{id}/image-triggers",
    tag = "applications",
    params(("id" = String, Path, description = "the application")),
    request_body = NewImageTrigger,
    responses((status = 201, body = ImageTrigger), Problems),
    security(("bearer" = []))
)]
async fn create_image_trigger(
    Signed(mut apps): Signed<Apps>,
    Path(application_id): Path<String>,
    Body(b): Body<NewImageTrigger>,
) -> Result<(StatusCode, Json<ImageTrigger>), ApiError> {
    let request = pb::CreateImageTriggerRequest {
        application_id,
        repository: b.repository,
        tags: b.tags,
        parameter: b.parameter,
    };
    let t = apps.create_image_trigger(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(t.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/applications/{id}/image-triggers",
    tag = "applications",
    params(("id" = String, Path, description = "the application"), ListQuery),
    responses((status = 200, body = Page<ImageTrigger>), Problems),
    security(("bearer" = []))
)]
async fn list_image_triggers(
    Signed(mut apps): Signed<Apps>,
    Path(application_id): Path<String>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<ImageTrigger>>, ApiError> {
    let r = apps
        .list_image_triggers(pb::ListImageTriggersRequest {
            application_id,
            page: page.request(),
        })
        .await?
        .into_inner();
    Ok(Json(Page::new(
        r.triggers.into_iter().map(ImageTrigger::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    delete,
    path = "/api/v1/image-triggers/{id}",
    tag = "applications",
    params(("id" = String, Path, description = "the trigger")),
    responses((status = 204, description = "gone; releases it made stay"), Problems),
    security(("bearer" = []))
)]
async fn delete_image_trigger(Signed(mut apps): Signed<Apps>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    apps.delete_image_trigger(pb::DeleteImageTriggerRequest { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}
