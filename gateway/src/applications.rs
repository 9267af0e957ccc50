//! `/api/v1/tenants/{id}/applications`, `/applications/{id}`, `/releases/{id}`:
//! deploying applications from published template versions, their numbered
//! releases (upgrade, rollback, production approval) and scaling, forwarded
//! to the apps service.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use kernel::caller::Role;
use kernel::grpc::time;
use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::routes;

use crate::AppState;
use crate::json::Body;
use crate::page::{ListQuery, Page};
use crate::problem::{ApiError, Problems};
use crate::rbac::Permission;
use crate::request::{Path, Query};
use crate::route::Routes;
use crate::upstream::{Apps, Signed};

/// The routes, each with who may call it.
pub fn routes() -> Routes {
    Routes::new()
        .route(Permission::Role(Role::Developer), routes!(deploy))
        .route(Permission::Authenticated, routes!(list))
        .route(Permission::Authenticated, routes!(read))
        .route(Permission::Role(Role::Developer), routes!(delete))
        .route(Permission::Role(Role::Developer), routes!(release))
        .route(Permission::Authenticated, routes!(list_releases))
        .route(Permission::Role(Role::Developer), routes!(rollback))
        .route(Permission::Role(Role::Developer), routes!(scale))
        .route(Permission::Role(Role::TenantAdmin), routes!(approve))
        .route(Permission::Role(Role::Developer), routes!(confirm))
        .route(Permission::Role(Role::Developer), routes!(resume))
        .route(Permission::Role(Role::Developer), routes!(promote))
        .route(Permission::Role(Role::Developer), routes!(abort))
        .route(Permission::Authenticated, routes!(scale_events))
        .route(Permission::Authenticated, routes!(activity))
        .route(Permission::Authenticated, routes!(config_deliveries))
}

/// A release: one numbered deploy of an application.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Release {
    /// Its id.
    pub id: String,
    /// Its application.
    pub application_id: String,
    /// 1, 2, ... per application.
    pub number: u32,
    /// The template version it deploys.
    pub template_version_id: String,
    /// Its parameters.
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// Its placement.
    #[schema(value_type = Object)]
    pub placement: Value,
    /// Its strategy.
    #[schema(value_type = Object)]
    pub strategy: Value,
    /// awaiting-approval, deploying, succeeded, failed, superseded, cancelled, aborted.
    pub state: String,
    /// blue or green: the slot a blue-green, canary, A/B or shadow release runs in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// The release it replaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<u32>,
    /// rollout, traffic, waiting (for confirm, resume or promote), finishing, aborting, done.
    pub phase: String,
    /// Canary: the step being applied (index into `strategy.steps`); gray:
    /// the wave going out (index into `gray_waves`).
    pub step: u32,
    /// Gray: the waves, fixed when the rollout started (a cluster name or
    /// partition id and the clusters it upgrades).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub gray_waves: Option<Value>,
    /// Percent of requests the new version serves.
    pub traffic: u32,
    /// The services in deploy order.
    pub waves: Vec<Vec<String>>,
    /// How each service is replaced: strategies are per service (a
    /// StatefulSet rolls while the Deployments are canaried).
    pub services: Vec<ReleaseService>,
    /// The wave being deployed.
    pub wave: u32,
    /// What it waits for, or why it failed.
    pub message: String,
    /// The release it returned to, for a rollback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<u32>,
    /// Who made it.
    pub created_by: String,
    /// Who approved it (production).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// When it was made.
    pub created_at: Option<DateTime<Utc>>,
    /// When it started deploying.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// How one service of a release is replaced.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleaseService {
    /// The service.
    pub service: String,
    /// The strategy type it follows: the release's, or `rolling` for a
    /// StatefulSet or DaemonSet under blue-green, canary, A/B or shadow.
    pub strategy: String,
    /// Why it differs from the release's strategy (a StatefulSet rolls in
    /// place; a service without an HTTP port gets no HTTPRoute).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

fn json_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

impl From<pb::Release> for Release {
    fn from(r: pb::Release) -> Self {
        Self {
            parameters: json_text(&r.parameters_json),
            placement: json_text(&r.placement_json),
            strategy: json_text(&r.strategy_json),
            waves: r.waves.into_iter().map(|w| w.services).collect(),
            services: r
                .services
                .into_iter()
                .map(|s| ReleaseService {
                    service: s.service,
                    strategy: s.strategy,
                    note: s.note,
                })
                .collect(),
            rollback_of: Some(r.rollback_of).filter(|n| *n != 0),
            approved_by: Some(r.approved_by).filter(|a| !a.is_empty()),
            id: r.id,
            application_id: r.application_id,
            number: r.number,
            template_version_id: r.template_version_id,
            state: r.state,
            slot: Some(r.slot).filter(|s| !s.is_empty()),
            replaces: Some(r.replaces).filter(|n| *n != 0),
            phase: r.phase,
            step: r.step,
            gray_waves: Some(json_text(&r.gray_waves_json)).filter(|w| !w.is_null()),
            traffic: r.traffic,
            wave: r.wave,
            message: r.message,
            created_by: r.created_by,
            created_at: time(r.created_at),
            started_at: time(r.started_at),
            finished_at: time(r.finished_at),
        }
    }
}

/// One service of an application as federation places it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceStatus {
    /// The service.
    pub name: String,
    /// Its federation binding.
    pub binding_id: String,
    /// Healthy, Progressing, Degraded or Unknown.
    pub health: String,
    /// Why.
    pub health_reason: String,
    /// Per cluster: namespace, replicas, ready, available, health, last error.
    #[schema(value_type = Vec<Object>)]
    pub clusters: Value,
}

/// An application.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Application {
    /// Its id.
    pub id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its project, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// DNS label, unique in the tenant.
    pub name: String,
    /// production or test.
    pub environment: String,
    /// awaiting-approval, deploying, running, failed.
    pub state: String,
    /// The last release that succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_release: Option<u32>,
    /// The newest release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_release: Option<Release>,
    /// Replicas set by scaling, per service.
    pub replicas: std::collections::BTreeMap<String, u32>,
    /// Each service where federation placed it.
    pub services: Vec<ServiceStatus>,
    /// The worst of its services' health (read, not listed): Healthy,
    /// Progressing, Unknown or Degraded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub health: String,
    /// Why, per service in that state ("web: running in dc2-dr only: ...").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub health_reason: String,
    /// Who deployed it.
    pub created_by: String,
    /// When.
    pub created_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<pb::Application> for Application {
    fn from(a: pb::Application) -> Self {
        Self {
            project_id: Some(a.project_id).filter(|p| !p.is_empty()),
            current_release: Some(a.current_release).filter(|n| *n != 0),
            latest_release: a.latest_release.map(Release::from),
            replicas: a.replicas.into_iter().collect(),
            services: a
                .services
                .into_iter()
                .map(|s| ServiceStatus {
                    clusters: json_text(&s.targets_json),
                    name: s.name,
                    binding_id: s.binding_id,
                    health: s.health,
                    health_reason: s.health_reason,
                })
                .collect(),
            health: a.health,
            health_reason: a.health_reason,
            id: a.id,
            tenant_id: a.tenant_id,
            name: a.name,
            environment: a.environment,
            state: a.state,
            created_by: a.created_by,
            created_at: time(a.created_at),
            updated_at: time(a.updated_at),
        }
    }
}

/// Body of a deploy.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// DNS label, unique in the tenant.
    name: String,
    /// Its project.
    #[serde(default)]
    project_id: String,
    /// `production` (releases need a tenant administrator's approval) or `test`.
    environment: String,
    /// A published template version.
    template_version_id: String,
    /// Parameter values by name.
    #[serde(default)]
    #[schema(value_type = Object)]
    parameters: serde_json::Map<String, Value>,
    /// `{"explicit": [{"cluster": "dc1-prod", "replicas": 2}]}` or `{"policy": {...}}`.
    #[schema(value_type = Object)]
    placement: Value,
    /// `{"type": "rolling", "max_surge": "25%", "max_unavailable": 0}`, `{"type": "recreate"}`,
    /// `{"type": "blue-green"}`, `{"type": "canary", "steps": [5, 25, 50, 100], "pause_seconds": 0, "pause": false}`,
    /// `{"type": "ab", "match": {"header"|"cookie"|"query": {"name": "variant", "value": "b"}}}`, `{"type": "shadow"}` or
    /// `{"type": "gray", "by": "cluster"|"partition", "order": ["dc2-dr", ...], "pause": 30|"manual", "deadline_seconds": 600}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    strategy: Option<Value>,
}

/// Body of a new release: what changes (the rest stays as in the latest).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRelease {
    /// Another published version.
    #[serde(default)]
    template_version_id: String,
    /// New parameter values (replacing all of them).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    parameters: Option<Value>,
    /// A new placement.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    placement: Option<Value>,
    /// A new strategy.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    strategy: Option<Value>,
}

/// Body of a rollback.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// The release to return to (one that succeeded; releases count from 1).
    #[schema(minimum = 1)]
    to_release: u32,
}

/// Body of a scale.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    /// The service.
    service: String,
    /// Its replicas in all, divided over its clusters by the placement.
    #[schema(minimum = 1, maximum = 1000)]
    replicas: u32,
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{id}/applications",
    tag = "applications",
    params(("id" = String, Path, description = "the tenant")),
    request_body = Deploy,
    responses(
        (status = 201, body = Application, description = "deploying, or awaiting approval in production"),
        Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn deploy(
    State(_s): State<AppState>,
    Signed(mut apps): Signed<Apps>,
    Path(tenant): Path<String>,
    Body(b): Body<Deploy>,
) -> Result<(StatusCode, Json<Application>), ApiError> {
    let request = pb::DeployApplicationRequest {
        tenant_id: tenant,
        project_id: b.project_id,
        name: b.name,
        environment: b.environment,
        template_version_id: b.template_version_id,
        parameters_json: Value::Object(b.parameters).to_string(),
        placement_json: b.placement.to_string(),
        strategy_json: b.strategy.map(|s| s.to_string()).unwrap_or_default(),
    };
    let app = apps.deploy_application(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(app.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}/applications",
    tag = "applications",
    params(("id" = String, Path, description = "the tenant"), ListQuery),
    responses((status = 200, body = Page<Application>), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    Signed(mut apps): Signed<Apps>,
    Path(tenant): Path<String>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<Application>>, ApiError> {
    let request = pb::ListApplicationsRequest {
        tenant_id: tenant,
        page: page.request(),
    };
    let r = apps.list_applications(request).await?.into_inner();
    Ok(Json(Page::new(
        r.applications.into_iter().map(Application::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/applications/{id}",
    tag = "applications",
    params(("id" = String, Path, description = "the id")),
    responses((status = 200, body = Application), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn read(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
) -> Result<Json<Application>, ApiError> {
    Ok(Json(
        apps.get_application(pb::GetApplicationRequest { id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/applications/{id}",
    tag = "applications",
    params(("id" = String, Path, description = "the id")),
    responses((status = 204, description = "deleted: federation removes its objects and releases its quota"), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn delete(Signed(mut apps): Signed<Apps>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    apps.delete_application(pb::DeleteApplicationRequest { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/applications/{id}/releases",
    tag = "applications",
    params(("id" = String, Path, description = "the application")),
    request_body = NewRelease,
    responses((status = 201, body = Release), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn release(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
    Body(b): Body<NewRelease>,
) -> Result<(StatusCode, Json<Release>), ApiError> {
    let request = pb::CreateReleaseRequest {
        application_id: id,
        template_version_id: b.template_version_id,
        parameters_json: b.parameters.map(|p| p.to_string()),
        placement_json: b.placement.map(|p| p.to_string()),
        strategy_json: b.strategy.map(|p| p.to_string()),
    };
    let r = apps.create_release(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(r.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/applications/{id}/releases",
    tag = "applications",
    params(("id" = String, Path, description = "the application"), ListQuery),
    responses((status = 200, body = Page<Release>), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn list_releases(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<Release>>, ApiError> {
    let request = pb::ListReleasesRequest {
        application_id: id,
        page: page.request(),
    };
    let r = apps.list_releases(request).await?.into_inner();
    Ok(Json(Page::new(
        r.releases.into_iter().map(Release::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    post,
    path = "/api/v1/applications/{id}/rollback",
    tag = "applications",
    params(("id" = String, Path, description = "the application")),
    request_body = Rollback,
    responses((status = 201, body = Release, description = "a new release returning to the named one"), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn rollback(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
    Body(b): Body<Rollback>,
) -> Result<(StatusCode, Json<Release>), ApiError> {
    let r = apps
        .rollback_application(pb::RollbackApplicationRequest {
            application_id: id,
            to_release: b.to_release,
        })
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(r.into())))
}

#[utoipa::path(
    post,
    path = "/api/v1/applications/{id}/scale",
    tag = "applications",
    params(("id" = String, Path, description = "the application")),
    request_body = Scale,
    responses((status = 200, body = Application), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn scale(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
    Body(b): Body<Scale>,
) -> Result<Json<Application>, ApiError> {
    let request = pb::ScaleApplicationRequest {
        application_id: id,
        service: b.service,
        replicas: b.replicas,
    };
    Ok(Json(apps.scale_application(request).await?.into_inner().into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/releases/{id}/approve",
    tag = "applications",
    params(("id" = String, Path, description = "the release")),
    responses((status = 200, body = Release), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn approve(Signed(mut apps): Signed<Apps>, Path(id): Path<String>) -> Result<Json<Release>, ApiError> {
    Ok(Json(
        apps.approve_release(pb::ApproveReleaseRequest { id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/releases/{id}/confirm",
    tag = "applications",
    params(("id" = String, Path, description = "the release")),
    responses(
        (status = 200, body = Release, description = "a blue-green release keeps its new slot; the old one is removed"),
        Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn confirm(Signed(mut apps): Signed<Apps>, Path(id): Path<String>) -> Result<Json<Release>, ApiError> {
    Ok(Json(
        apps.confirm_release(pb::ReleaseActionRequest { id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/releases/{id}/resume",
    tag = "applications",
    params(("id" = String, Path, description = "the release")),
    responses((status = 200, body = Release, description = "a paused canary goes on to its next step"), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn resume(Signed(mut apps): Signed<Apps>, Path(id): Path<String>) -> Result<Json<Release>, ApiError> {
    Ok(Json(
        apps.resume_release(pb::ReleaseActionRequest { id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/releases/{id}/promote",
    tag = "applications",
    params(("id" = String, Path, description = "the release")),
    responses(
        (status = 200, body = Release, description = "a canary, A/B or shadow release takes every request and becomes \
            the stable version; a gray release waiting between waves goes on to the next"),
        Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn promote(Signed(mut apps): Signed<Apps>, Path(id): Path<String>) -> Result<Json<Release>, ApiError> {
    Ok(Json(
        apps.promote_release(pb::ReleaseActionRequest { id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/releases/{id}/abort",
    tag = "applications",
    params(("id" = String, Path, description = "the release")),
    responses(
        (status = 200, body = Release, description = "the replaced release serves every request again at once; the new \
            slot is removed (a gray release: every cluster returns to the replaced release's objects)"),
        Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn abort(Signed(mut apps): Signed<Apps>, Path(id): Path<String>) -> Result<Json<Release>, ApiError> {
    Ok(Json(
        apps.abort_release(pb::ReleaseActionRequest { id })
            .await?
            .into_inner()
            .into(),
    ))
}

/// A change of a service's replica count.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScaleEvent {
    /// The service.
    pub service: String,
    /// The count before; absent when it was the spec's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_replicas: Option<u32>,
    /// The count after.
    pub to_replicas: u32,
    /// Why (`manual`).
    pub reason: String,
    /// Who.
    pub actor: String,
    /// When.
    pub at: Option<DateTime<Utc>>,
}

#[utoipa::path(
    get,
    path = "/api/v1/applications/{id}/scale-events",
    tag = "applications",
    params(("id" = String, Path, description = "the application"), ListQuery),
    responses((status = 200, body = Page<ScaleEvent>), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn scale_events(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<ScaleEvent>>, ApiError> {
    let request = pb::ListScaleEventsRequest {
        application_id: id,
        page: page.request(),
    };
    let r = apps.list_scale_events(request).await?.into_inner();
    let items = r
        .events
        .into_iter()
        .map(|e| ScaleEvent {
            service: e.service,
            from_replicas: Some(e.from_replicas).filter(|n| *n != 0),
            to_replicas: e.to_replicas,
            reason: e.reason,
            actor: e.actor,
            at: time(e.at),
        })
        .collect();
    Ok(Json(Page::new(items, r.page)))
}

/// One step of a failover or failback.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActivityStep {
    /// What happened ("placing: 3 in dc2-dr").
    pub name: String,
    /// When.
    pub at: Option<DateTime<Utc>>,
}

/// A failover or failback of one of the application's services.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Activity {
    /// Its id.
    pub id: String,
    /// The service whose replicas moved.
    pub service: String,
    /// `failover` or `failback`.
    pub kind: String,
    /// The operation (`GET /api/v1/failovers?binding_id=...`).
    pub operation_id: String,
    /// `automatic` or `operator`.
    pub trigger: String,
    /// Failover: the cluster left. Failback: the cluster returned to.
    pub from_cluster: String,
    /// Where the replicas went.
    pub to_clusters: Vec<String>,
    /// `available`, `failed`, or the step it is at.
    pub state: String,
    /// Why it failed or what it waits for.
    pub reason: String,
    /// Its timed steps, oldest first.
    pub steps: Vec<ActivityStep>,
    /// Its first step.
    pub at: Option<DateTime<Utc>>,
}

#[utoipa::path(
    get,
    path = "/api/v1/applications/{id}/activity",
    tag = "applications",
    params(("id" = String, Path, description = "the application"), ListQuery),
    responses((status = 200, body = Page<Activity>), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn activity(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<Activity>>, ApiError> {
    let request = pb::ListActivityRequest {
        application_id: id,
        page: page.request(),
    };
    let r = apps.list_activity(request).await?.into_inner();
    let items = r
        .items
        .into_iter()
        .map(|a| Activity {
            id: a.id,
            service: a.service,
            kind: a.kind,
            operation_id: a.operation_id,
            trigger: a.trigger,
            from_cluster: a.from_cluster,
            to_clusters: a.to_clusters,
            state: a.state,
            reason: a.reason,
            steps: a
                .steps
                .into_iter()
                .map(|s| ActivityStep {
                    name: s.name,
                    at: time(s.at),
                })
                .collect(),
            at: time(a.at),
        })
        .collect();
    Ok(Json(Page::new(items, r.page)))
}

/// One kind of target of a config delivered to an application.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConfigDeliveryTarget {
    /// Empty: every cluster without content of its own; else a cluster, or
    /// `cluster/namespace` for one partition (a gray release's target).
    pub target: String,
    /// The config releases its content is made of, lowest level first
    /// (`shop/base@3`, `shop/test@5 (gray)`).
    pub releases: Vec<String>,
    /// Checksum of the content (the pod template annotation with `reload: restart`).
    pub checksum: String,
    /// A gray release in flight makes this content.
    pub gray: bool,
}

/// A config delivered into an application's clusters.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveredConfig {
    /// The config set's name.
    pub config: String,
    /// Every cluster's content first, then each target whose content differs.
    pub targets: Vec<ConfigDeliveryTarget>,
    /// When this content was rendered.
    pub rendered_at: Option<DateTime<Utc>>,
}

/// The configs delivered into an application's clusters, a page of them,
/// and how delivery stands.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConfigDeliveries {
    /// A page of the configs.
    pub items: Vec<DeliveredConfig>,
    /// Cursor for the next page; absent at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// What is rendered has reached the clusters.
    pub in_sync: bool,
    /// The last delivery's error (cleared by the next delivery).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Failed deliveries in a row.
    pub failures: i32,
    /// When content last reached the clusters.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When delivery looks at the application next.
    pub due_at: Option<DateTime<Utc>>,
}

#[utoipa::path(
    get,
    path = "/api/v1/applications/{id}/config-deliveries",
    tag = "applications",
    params(("id" = String, Path, description = "the application"), ListQuery),
    responses((status = 200, body = ConfigDeliveries), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn config_deliveries(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
    Query(page): Query<ListQuery>,
) -> Result<Json<ConfigDeliveries>, ApiError> {
    let request = pb::ListConfigDeliveriesRequest {
        application_id: id,
        page: page.request(),
    };
    let r = apps.list_config_deliveries(request).await?.into_inner();
    let items = r
        .items
        .into_iter()
        .map(|c| DeliveredConfig {
            config: c.config,
            targets: c
                .targets
                .into_iter()
                .map(|t| ConfigDeliveryTarget {
                    target: t.target,
                    releases: t.releases,
                    checksum: t.checksum,
                    gray: t.gray,
                })
                .collect(),
            rendered_at: time(c.rendered_at),
        })
        .collect();
    Ok(Json(ConfigDeliveries {
        items,
        next_cursor: r.page.map(|p| p.next_cursor).filter(|c| !c.is_empty()),
        in_sync: r.in_sync,
        last_error: Some(r.last_error).filter(|e| !e.is_empty()),
        failures: r.failures,
        delivered_at: time(r.delivered_at),
        due_at: time(r.due_at),
    }))
}
