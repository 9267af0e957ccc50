//! The image catalog's REST face, forwarded to the images service:
//! registries (platform administrators change them), repositories and tags
//! with their metadata, search by name or label, the lifecycle of a tag,
//! robot accounts per tenant and project, and each tenant's image storage
//! quota. Registry traffic itself goes through [`crate::registry`].

use std::collections::BTreeMap;

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
        .route(Permission::PlatformAdmin, routes!(create_registry))
        .route(Permission::Authenticated, routes!(list_registries))
        .route(Permission::Authenticated, routes!(read_registry))
        .route(Permission::PlatformAdmin, routes!(delete_registry))
        .route(Permission::Authenticated, routes!(list_repositories))
        .route(Permission::Authenticated, routes!(list_tags))
        .route(Permission::Authenticated, routes!(read_tag))
        .route(Permission::Role(Role::Developer), routes!(move_tag))
        .route(Permission::Role(Role::TenantAdmin), routes!(create_robot))
        .route(Permission::Role(Role::TenantAdmin), routes!(list_robots))
        .route(Permission::Role(Role::TenantAdmin), routes!(delete_robot))
        .route(Permission::PlatformAdmin, routes!(set_storage_quota))
        .route(Permission::Authenticated, routes!(read_storage_quota))
}

/// A registry the platform knows (never its password).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Registry {
    /// Its id.
    pub id: String,
    /// DNS label.
    pub name: String,
    /// Base URL.
    pub url: String,
    /// Whether it is the master others replicate from, and `/v2/` serves.
    pub master: bool,
    /// The platform's login there, if any.
    pub username: String,
    /// The data centre whose clusters pull from it (empty: none).
    #[serde(default)]
    pub data_centre: String,
    /// The cluster that pulls from it (empty: none).
    #[serde(default)]
    pub cluster: String,
    /// Registered.
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::Registry> for Registry {
    fn from(r: pb::Registry) -> Self {
        Self {
            id: r.id,
            name: r.name,
            url: r.url,
            master: r.master,
            username: r.username,
            data_centre: r.data_centre,
            cluster: r.cluster,
            created_at: time(r.created_at),
        }
    }
}

/// Body of `POST /registries`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRegistry {
    /// DNS label, unique.
    name: String,
    /// `http(s)://host[:port]`.
    url: String,
    /// The master registry (one at most).
    #[serde(default)]
    master: bool,
    /// The platform's login there.
    #[serde(default)]
    username: String,
    /// Its password; stored sealed, never returned.
    #[serde(default)]
    password: String,
    /// A sub-registry of this data centre: replication sends tenants' images
    /// here for their partitions in it.
    #[serde(default)]
    data_centre: String,
    /// A sub-registry of this cluster.
    #[serde(default)]
    cluster: String,
}

/// A repository of a tenant's project.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Repository {
    /// Its id.
    pub id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its project.
    pub project_id: String,
    /// `<tenant>/<project>/<name>`.
    #[schema(pattern = r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")]
    pub name: String,
    /// Tags not deleted.
    pub tag_count: i64,
    /// First push.
    pub created_at: Option<DateTime<Utc>>,
    /// Last push.
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<pb::Repository> for Repository {
    fn from(r: pb::Repository) -> Self {
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            project_id: r.project_id,
            name: r.name,
            tag_count: r.tag_count,
            created_at: time(r.created_at),
            updated_at: time(r.updated_at),
        }
    }
}

/// Where a tag is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TagState {
    /// Built, not yet pushed.
    Built,
    /// In the registry.
    Pushed,
    /// Passed its tests.
    Tested,
    /// Released: immutable.
    Released,
    /// No longer recommended; still immutable.
    Deprecated,
    /// Gone.
    Deleted,
}

impl TagState {
    fn from_pb(raw: i32) -> Self {
        match pb::TagState::try_from(raw) {
            Ok(pb::TagState::Built) => Self::Built,
            Ok(pb::TagState::Tested) => Self::Tested,
            Ok(pb::TagState::Released) => Self::Released,
            Ok(pb::TagState::Deprecated) => Self::Deprecated,
            Ok(pb::TagState::Deleted) => Self::Deleted,
            _ => Self::Pushed,
        }
    }

    fn to_pb(self) -> pb::TagState {
        match self {
            Self::Built => pb::TagState::Built,
            Self::Pushed => pb::TagState::Pushed,
            Self::Tested => pb::TagState::Tested,
            Self::Released => pb::TagState::Released,
            Self::Deprecated => pb::TagState::Deprecated,
            Self::Deleted => pb::TagState::Deleted,
        }
    }
}

/// One platform of a multi-arch image.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImagePlatform {
    /// `linux`.
    pub os: String,
    /// `amd64`.
    pub architecture: String,
    /// `v8`, or empty.
    pub variant: String,
}

/// A tag with what the registry says of its image.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tag {
    /// Its id.
    pub id: String,
    /// Its repository.
    pub repository_id: String,
    /// The repository's name.
    pub repository: String,
    /// Its tenant.
    pub tenant_id: String,
    /// The tag.
    #[schema(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")]
    pub name: String,
    /// The manifest's (or index's) digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Bytes of manifest, config and layers.
    pub size: i64,
    /// Platforms (several for a multi-arch index).
    pub platforms: Vec<ImagePlatform>,
    /// When the image was built, from its config.
    pub created: Option<DateTime<Utc>>,
    /// Config labels.
    pub labels: BTreeMap<String, String>,
    /// Exposed ports (`8080/tcp`).
    pub exposed_ports: Vec<String>,
    /// Entrypoint.
    pub entrypoint: Vec<String>,
    /// Cmd.
    pub cmd: Vec<String>,
    /// User it runs as.
    pub user: String,
    /// Build source (`org.opencontainers.image.source`).
    pub source: String,
    /// Build revision (`org.opencontainers.image.revision`).
    pub revision: String,
    /// Lifecycle state.
    pub state: TagState,
    /// Last push.
    pub pushed_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: Option<DateTime<Utc>>,
    /// Its image's cosign signatures, as last checked.
    pub signature: crate::signatures::SignatureStatus,
}

impl From<pb::Tag> for Tag {
    fn from(t: pb::Tag) -> Self {
        Self {
            id: t.id,
            repository_id: t.repository_id,
            repository: t.repository,
            tenant_id: t.tenant_id,
            name: t.name,
            digest: t.digest,
            media_type: t.media_type,
            size: t.size,
            platforms: t
                .platforms
                .into_iter()
                .map(|p| ImagePlatform {
                    os: p.os,
                    architecture: p.architecture,
                    variant: p.variant,
                })
                .collect(),
            created: time(t.created),
            labels: t.labels.into_iter().collect(),
            exposed_ports: t.exposed_ports,
            entrypoint: t.entrypoint,
            cmd: t.cmd,
            user: t.user,
            source: t.source,
            revision: t.revision,
            state: TagState::from_pb(t.state),
            pushed_at: time(t.pushed_at),
            updated_at: time(t.updated_at),
            signature: t.signature.map(Into::into).unwrap_or_default(),
        }
    }
}

/// Body of `PUT .../tags/{tag}/state`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveTag {
    /// The next state (one step forward, or deleted).
    state: TagState,
}

/// A robot account (never its secret after creation).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Robot {
    /// Its id.
    pub id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its project.
    pub project_id: String,
    /// `robot$<tenant>+<project>+<name>`: the user name registry clients log in with.
    #[schema(pattern = r"^robot\$[a-z0-9-]+\+[a-z0-9-]+\+[a-z0-9-]+$")]
    pub name: String,
    /// What it may do in its project's repositories.
    pub scopes: Vec<RobotScope>,
    /// Made.
    pub created_at: Option<DateTime<Utc>>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a robot may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RobotScope {
    /// Pull images.
    Pull,
    /// Push images.
    Push,
}

impl From<pb::Robot> for Robot {
    fn from(r: pb::Robot) -> Self {
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            project_id: r.project_id,
            name: r.name,
            scopes: r
                .scopes
                .iter()
                .filter_map(|s| match s.as_str() {
                    "pull" => Some(RobotScope::Pull),
                    "push" => Some(RobotScope::Push),
                    _ => None,
                })
                .collect(),
            created_at: time(r.created_at),
            expires_at: time(r.expires_at),
        }
    }
}

/// Body of `POST /tenants/{id}/robots`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRobot {
    /// The project whose repositories it reaches.
    project_id: String,
    /// DNS label, unique in the project.
    name: String,
    /// What it may do: at least one scope.
    #[schema(min_items = 1)]
    scopes: Vec<RobotScope>,
    /// Days until it expires (0 or absent: never; at most 3650).
    #[serde(default)]
    days: u32,
}

/// A robot just made, with its secret: shown this once.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedRobot {
    /// The robot.
    pub robot: Robot,
    /// Its secret, the password registry clients log in with.
    pub secret: String,
}

/// Filters of `GET /repositories`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RepositoryFilter {
    /// Only this tenant's.
    #[serde(default)]
    tenant_id: String,
    /// Part of the name.
    #[serde(default)]
    q: String,
    /// A label one of its tags carries: `key` or `key=value`.
    #[serde(default)]
    label: String,
}

/// A tenant's image storage: limit and use.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StorageQuota {
    /// The tenant.
    pub tenant_id: String,
    /// Bytes its blobs may take (0: no limit).
    pub limit_bytes: i64,
    /// Bytes its blobs take.
    pub used_bytes: i64,
}

/// Body of `PUT /tenants/{id}/image-storage`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStorageQuota {
    /// Bytes (0: no limit).
    #[schema(minimum = 0)]
    limit_bytes: i64,
}

#[utoipa::path(
    post,
    path = "/api/v1/registries",
    tag = "images",
    request_body = NewRegistry,
    responses((status = 201, body = Registry), Problems),
    security(("bearer" = []))
)]
async fn create_registry(
    Signed(mut images): Signed<Images>,
    Body(b): Body<NewRegistry>,
) -> Result<(StatusCode, Json<Registry>), ApiError> {
    let request = pb::CreateRegistryRequest {
        name: b.name,
        url: b.url,
        master: b.master,
        username: b.username,
        password: b.password,
        data_centre: b.data_centre,
        cluster: b.cluster,
    };
    let registry = images.create_registry(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(registry.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/registries",
    tag = "images",
    params(ListQuery),
    responses((status = 200, body = Page<Registry>), Problems),
    security(("bearer" = []))
)]
async fn list_registries(
    Signed(mut images): Signed<Images>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<Registry>>, ApiError> {
    let r = images
        .list_registries(pb::ListRegistriesRequest { page: page.request() })
        .await?
        .into_inner();
    Ok(Json(Page::new(
        r.registries.into_iter().map(Registry::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/registries/{id}",
    tag = "images",
    params(("id" = String, Path, description = "the registry")),
    responses((status = 200, body = Registry), Problems),
    security(("bearer" = []))
)]
async fn read_registry(Signed(mut images): Signed<Images>, Path(id): Path<String>) -> Result<Json<Registry>, ApiError> {
    Ok(Json(
        images
            .get_registry(pb::GetRegistryRequest { id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/registries/{id}",
    tag = "images",
    params(("id" = String, Path, description = "the registry")),
    responses((status = 204, description = "forgotten; the registry itself is untouched"), Problems),
    security(("bearer" = []))
)]
async fn delete_registry(Signed(mut images): Signed<Images>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    images.delete_registry(pb::DeleteRegistryRequest { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/v1/repositories",
    tag = "images",
    params(ListQuery, RepositoryFilter),
    responses((status = 200, body = Page<Repository>), Problems),
    security(("bearer" = []))
)]
async fn list_repositories(
    Signed(mut images): Signed<Images>,
    Query(page): Query<ListQuery>,
    Query(f): Query<RepositoryFilter>,
) -> Result<Json<Page<Repository>>, ApiError> {
    let request = pb::ListRepositoriesRequest {
        tenant_id: f.tenant_id,
        query: f.q,
        label: f.label,
        page: page.request(),
    };
    let r = images.list_repositories(request).await?.into_inner();
    Ok(Json(Page::new(
        r.repositories.into_iter().map(Repository::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/repositories/{id}/tags",
    tag = "images",
    params(("id" = String, Path, description = "the repository"), ListQuery),
    responses((status = 200, body = Page<Tag>), Problems),
    security(("bearer" = []))
)]
async fn list_tags(
    Signed(mut images): Signed<Images>,
    Path(repository_id): Path<String>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<Tag>>, ApiError> {
    let r = images
        .list_tags(pb::ListTagsRequest {
            repository_id,
            page: page.request(),
        })
        .await?
        .into_inner();
    Ok(Json(Page::new(r.tags.into_iter().map(Tag::from).collect(), r.page)))
}

#[utoipa::path(
    get,
    path = "/api/v1/repositories/{id}/tags/{tag}",
    tag = "images",
    params(
        ("id" = String, Path, description = "the repository"),
        ("tag" = String, Path, description = "the tag"),
    ),
    responses((status = 200, body = Tag), Problems),
    security(("bearer" = []))
)]
async fn read_tag(
    Signed(mut images): Signed<Images>,
    Path((repository_id, tag)): Path<(String, String)>,
) -> Result<Json<Tag>, ApiError> {
    let t = images
        .get_tag(pb::GetTagRequest { repository_id, tag })
        .await?
        .into_inner();
    Ok(Json(t.into()))
}

#[utoipa::path(
    put,
    path = "/api/v1/repositories/{id}/tags/{tag}/state",
    tag = "images",
    params(
        ("id" = String, Path, description = "the repository"),
        ("tag" = String, Path, description = "the tag"),
    ),
    request_body = MoveTag,
    responses((status = 200, body = Tag), Problems),
    security(("bearer" = []))
)]
async fn move_tag(
    Signed(mut images): Signed<Images>,
    Path((repository_id, tag)): Path<(String, String)>,
    Body(b): Body<MoveTag>,
) -> Result<Json<Tag>, ApiError> {
    let request = pb::MoveTagRequest {
        repository_id,
        tag,
        state: b.state.to_pb() as i32,
    };
    Ok(Json(images.move_tag(request).await?.into_inner().into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{id}/robots",
    tag = "images",
    params(("id" = String, Path, description = "the tenant")),
    request_body = NewRobot,
    responses((status = 201, body = CreatedRobot), Problems),
    security(("bearer" = []))
)]
async fn create_robot(
    Signed(mut images): Signed<Images>,
    Path(tenant_id): Path<String>,
    Body(b): Body<NewRobot>,
) -> Result<(StatusCode, Json<CreatedRobot>), ApiError> {
    let request = pb::CreateRobotRequest {
        tenant_id,
        project_id: b.project_id,
        name: b.name,
        scopes: b
            .scopes
            .iter()
            .map(|s| match s {
                RobotScope::Pull => "pull".to_string(),
                RobotScope::Push => "push".to_string(),
            })
            .collect(),
        days: b.days,
    };
    let created = images.create_robot(request).await?.into_inner();
    let robot = created
        .robot
        .ok_or_else(|| ApiError::from(kernel::Error::internal("the images service answered no robot")))?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedRobot {
            robot: robot.into(),
            secret: created.secret,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}/robots",
    tag = "images",
    params(("id" = String, Path, description = "the tenant"), ListQuery),
    responses((status = 200, body = Page<Robot>), Problems),
    security(("bearer" = []))
)]
async fn list_robots(
    Signed(mut images): Signed<Images>,
    Path(tenant_id): Path<String>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<Robot>>, ApiError> {
    let r = images
        .list_robots(pb::ListRobotsRequest {
            tenant_id,
            page: page.request(),
        })
        .await?
        .into_inner();
    Ok(Json(Page::new(r.robots.into_iter().map(Robot::from).collect(), r.page)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/robots/{id}",
    tag = "images",
    params(("id" = String, Path, description = "the robot")),
    responses((status = 204, description = "gone; its tokens lapse within minutes"), Problems),
    security(("bearer" = []))
)]
async fn delete_robot(Signed(mut images): Signed<Images>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    images.delete_robot(pb::DeleteRobotRequest { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    put,
    path = "/api/v1/tenants/{id}/image-storage",
    tag = "images",
    params(("id" = String, Path, description = "the tenant")),
    request_body = SetStorageQuota,
    responses((status = 200, body = StorageQuota), Problems),
    security(("bearer" = []))
)]
async fn set_storage_quota(
    Signed(mut images): Signed<Images>,
    Path(tenant_id): Path<String>,
    Body(b): Body<SetStorageQuota>,
) -> Result<Json<StorageQuota>, ApiError> {
    let q = images
        .set_storage_quota(pb::SetStorageQuotaRequest {
            tenant_id,
            bytes: b.limit_bytes,
        })
        .await?
        .into_inner();
    Ok(Json(StorageQuota {
        tenant_id: q.tenant_id,
        limit_bytes: q.limit_bytes,
        used_bytes: q.used_bytes,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}/image-storage",
    tag = "images",
    params(("id" = String, Path, description = "the tenant")),
    responses((status = 200, body = StorageQuota), Problems),
    security(("bearer" = []))
)]
async fn read_storage_quota(
    Signed(mut images): Signed<Images>,
    Path(tenant_id): Path<String>,
) -> Result<Json<StorageQuota>, ApiError> {
    let q = images
        .get_storage_quota(pb::GetStorageQuotaRequest { tenant_id })
        .await?
        .into_inner();
    Ok(Json(StorageQuota {
        tenant_id: q.tenant_id,
        limit_bytes: q.limit_bytes,
        used_bytes: q.used_bytes,
    }))
}
