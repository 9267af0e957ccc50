//! `/api/v1/templates`, `/api/v1/template-versions`: application templates,
//! the catalog (templates without a tenant) and their versions, forwarded to
//! the apps service.

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
        .route(Permission::Role(Role::Developer), routes!(create))
        .route(Permission::Authenticated, routes!(list))
        .route(Permission::Authenticated, routes!(read))
        .route(Permission::Role(Role::Developer), routes!(delete))
        .route(Permission::Role(Role::Developer), routes!(create_version))
        .route(Permission::Authenticated, routes!(list_versions))
        .route(Permission::Authenticated, routes!(read_version))
        .route(Permission::Role(Role::Developer), routes!(update_version))
        .route(Permission::Role(Role::Developer), routes!(publish_version))
        .route(Permission::Authenticated, routes!(render_version))
        .route(Permission::Role(Role::Developer), routes!(import_chart))
}

/// A template as the API shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Template {
    /// Its id.
    pub id: String,
    /// Its tenant; absent for a platform-wide catalog template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// DNS label, unique in its tenant or the catalog.
    pub name: String,
    /// What it deploys.
    pub description: String,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::Template> for Template {
    fn from(t: pb::Template) -> Self {
        Self {
            id: t.id,
            tenant_id: Some(t.tenant_id).filter(|t| !t.is_empty()),
            name: t.name,
            description: t.description,
            created_at: time(t.created_at),
        }
    }
}

/// Body of `POST /templates`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    /// The tenant; omit for the platform catalog (platform administrators).
    #[serde(default)]
    tenant_id: String,
    /// DNS label.
    name: String,
    /// What it deploys.
    #[serde(default)]
    description: String,
}

/// Filters of `GET /templates`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    /// Only this tenant's templates (the catalog is always listed).
    #[serde(default)]
    tenant_id: String,
}

/// A template version.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TemplateVersion {
    /// Its id.
    pub id: String,
    /// Its template.
    pub template_id: String,
    /// The template's tenant; absent in the catalog.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// `MAJOR.MINOR.PATCH[-pre]`.
    pub version: String,
    /// What changed.
    pub note: String,
    /// `draft` (editable) or `published` (immutable, deployable).
    pub state: String,
    /// The spec: `parameters` and `services` (see the README).
    #[schema(value_type = Object)]
    pub spec: Value,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: Option<DateTime<Utc>>,
    /// Last edited.
    pub updated_at: Option<DateTime<Utc>>,
    /// When it was published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_at: Option<DateTime<Utc>>,
}

impl From<pb::TemplateVersion> for TemplateVersion {
    fn from(v: pb::TemplateVersion) -> Self {
        Self {
            spec: serde_json::from_str(&v.spec_json).unwrap_or(Value::Null),
            state: if v.published { "published" } else { "draft" }.into(),
            id: v.id,
            template_id: v.template_id,
            tenant_id: Some(v.tenant_id).filter(|t| !t.is_empty()),
            version: v.version,
            note: v.note,
            created_by: v.created_by,
            created_at: time(v.created_at),
            updated_at: time(v.updated_at),
            published_at: time(v.published_at),
        }
    }
}

/// Body of `POST /templates/{id}/versions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVersion {
    /// `MAJOR.MINOR.PATCH[-pre]`, new in the template.
    version: String,
    /// What changed.
    #[serde(default)]
    note: String,
    /// The spec.
    #[schema(value_type = Object)]
    spec: Value,
}

/// Body of `PATCH /template-versions/{id}` (drafts only).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateVersion {
    /// A new note.
    note: Option<String>,
    /// A new spec.
    #[schema(value_type = Option<Object>)]
    spec: Option<Value>,
}

/// Body of `POST /template-versions/{id}/render`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderRequest {
    /// The application's name (DNS label).
    app: String,
    /// Parameter values by name.
    #[serde(default)]
    #[schema(value_type = Object)]
    parameters: serde_json::Map<String, Value>,
}

/// What a version renders to.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rendered {
    /// The Kubernetes objects (no namespace: federation sets each partition's).
    #[schema(value_type = Vec<Object>)]
    pub objects: Vec<Value>,
    /// The services in deploy order: each wave after the one before is Available.
    pub waves: Vec<Vec<String>>,
}

#[utoipa::path(
    post,
    path = "/api/v1/templates",
    tag = "templates",
    request_body = CreateTemplate,
    responses((status = 201, body = Template), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn create(
    Signed(mut apps): Signed<Apps>,
    Body(b): Body<CreateTemplate>,
) -> Result<(StatusCode, Json<Template>), ApiError> {
    let request = pb::CreateTemplateRequest {
        tenant_id: b.tenant_id,
        name: b.name,
        description: b.description,
    };
    let t = apps.create_template(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(t.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/templates",
    tag = "templates",
    params(ListQuery, Filter),
    responses((status = 200, body = Page<Template>), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    Signed(mut apps): Signed<Apps>,
    Query(page): Query<ListQuery>,
    Query(q): Query<Filter>,
) -> Result<Json<Page<Template>>, ApiError> {
    let request = pb::ListTemplatesRequest {
        page: page.request(),
        tenant_id: q.tenant_id,
    };
    let r = apps.list_templates(request).await?.into_inner();
    Ok(Json(Page::new(
        r.templates.into_iter().map(Template::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/templates/{id}",
    tag = "templates",
    params(("id" = String, Path, description = "the id")),
    responses((status = 200, body = Template), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn read(Signed(mut apps): Signed<Apps>, Path(id): Path<String>) -> Result<Json<Template>, ApiError> {
    Ok(Json(
        apps.get_template(pb::GetTemplateRequest { id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/templates/{id}",
    tag = "templates",
    params(("id" = String, Path, description = "the id")),
    responses((status = 204, description = "deleted with its versions"), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn delete(Signed(mut apps): Signed<Apps>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    apps.delete_template(pb::DeleteTemplateRequest { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/templates/{id}/versions",
    tag = "templates",
    params(("id" = String, Path, description = "the template's id")),
    request_body = CreateVersion,
    responses((status = 201, body = TemplateVersion, description = "a draft"), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn create_version(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
    Body(b): Body<CreateVersion>,
) -> Result<(StatusCode, Json<TemplateVersion>), ApiError> {
    let request = pb::CreateTemplateVersionRequest {
        template_id: id,
        version: b.version,
        note: b.note,
        spec_json: b.spec.to_string(),
    };
    let v = apps.create_template_version(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(v.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/templates/{id}/versions",
    tag = "templates",
    params(("id" = String, Path, description = "the template's id"), ListQuery),
    responses((status = 200, body = Page<TemplateVersion>), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn list_versions(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<TemplateVersion>>, ApiError> {
    let request = pb::ListTemplateVersionsRequest {
        page: page.request(),
        template_id: id,
    };
    let r = apps.list_template_versions(request).await?.into_inner();
    Ok(Json(Page::new(
        r.versions.into_iter().map(TemplateVersion::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/template-versions/{id}",
    tag = "templates",
    params(("id" = String, Path, description = "the version's id")),
    responses((status = 200, body = TemplateVersion), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn read_version(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
) -> Result<Json<TemplateVersion>, ApiError> {
    Ok(Json(
        apps.get_template_version(pb::GetTemplateVersionRequest { id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(
    patch,
    path = "/api/v1/template-versions/{id}",
    tag = "templates",
    params(("id" = String, Path, description = "the version's id")),
    request_body = UpdateVersion,
    responses(
        (status = 200, body = TemplateVersion),
        (status = 409, body = kernel::error::Problem, content_type = "application/problem+json", description = "the \
            version is published"),
        Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn update_version(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
    Body(b): Body<UpdateVersion>,
) -> Result<Json<TemplateVersion>, ApiError> {
    let request = pb::UpdateTemplateVersionRequest {
        id,
        note: b.note,
        spec_json: b.spec.map(|spec| spec.to_string()),
    };
    Ok(Json(apps.update_template_version(request).await?.into_inner().into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/template-versions/{id}/publish",
    tag = "templates",
    params(("id" = String, Path, description = "the version's id")),
    responses((status = 200, body = TemplateVersion), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn publish_version(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
) -> Result<Json<TemplateVersion>, ApiError> {
    Ok(Json(
        apps.publish_template_version(pb::PublishTemplateVersionRequest { id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/template-versions/{id}/render",
    tag = "templates",
    params(("id" = String, Path, description = "the version's id")),
    request_body = RenderRequest,
    responses((status = 200, body = Rendered), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn render_version(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
    Body(b): Body<RenderRequest>,
) -> Result<Json<Rendered>, ApiError> {
    let request = pb::RenderTemplateVersionRequest {
        id,
        app: b.app,
        parameters_json: Value::Object(b.parameters).to_string(),
    };
    let r = apps.render_template_version(request).await?.into_inner();
    let objects: Vec<Value> = serde_json::from_str(&r.objects_json).map_err(kernel::Error::internal)?;
    Ok(Json(Rendered {
        objects,
        waves: r.waves.into_iter().map(|w| w.services).collect(),
    }))
}

/// What importing a chart made: its template (new or existing) and the draft version.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportedChart {
    /// The template named like the chart.
    pub template: Template,
    /// The chart as a draft version: version and note from `Chart.yaml`;
    /// a deploy's `parameters` are values over the chart's `values.yaml`.
    pub version: TemplateVersion,
}

/// Body of `POST /tenants/{id}/templates/import` as JSON: a chart directory.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChartFiles {
    /// Path (from the chart's root, or one top folder) -> text.
    files: std::collections::BTreeMap<String, String>,
}

/// Body of `POST /tenants/{id}/templates/import` as `application/gzip`: the
/// bytes of a chart archive as `helm package` writes it.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ChartArchive(#[allow(dead_code, reason = "documents the body only")] Vec<u8>);

/// A chart the apps service refuses is unprocessable content, not a
/// malformed request: 422 naming the chart file that is wrong.
fn chart_problem(status: tonic::Status) -> ApiError {
    let mut e = ApiError::from(status);
    if e.0.status == 400 {
        e.0.status = 422;
        e.0.kind = "urn:paas:problem:invalid-chart".into();
        e.0.title = "Invalid chart".into();
    }
    e
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{id}/templates/import",
    tag = "templates",
    params(("id" = String, Path, description = "the tenant's id")),
    request_body(
        description = "a chart archive (helm package) as application/gzip, or a chart directory as JSON",
        content((ChartArchive = "application/gzip"), (ChartFiles = "application/json")),
    ),
    responses(
        (status = 201, body = ImportedChart),
        (status = 422, body = kernel::error::Problem, content_type = "application/problem+json", description = "the \
            chart is invalid; field names the file"),
        Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn import_chart(
    State(_s): State<AppState>,
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<ImportedChart>), ApiError> {
    let kind = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut request = pb::ImportChartRequest {
        tenant_id: id,
        ..Default::default()
    };
    if crate::json::is_json(kind) {
        let chart: ChartFiles = serde_json::from_slice(&body).map_err(|e| {
            ApiError::invalid(
                "files",
                format!("must be a JSON object {{\"files\": {{path: text}}}}: {e}"),
            )
        })?;
        request.files = chart.files.into_iter().collect();
    } else if matches!(
        kind,
        "application/gzip" | "application/x-gzip" | "application/x-tar" | "application/octet-stream"
    ) {
        request.archive = body.to_vec();
    } else {
        return Err(ApiError::invalid(
            "Content-Type",
            "must be application/gzip (a chart archive) or application/json (a chart's files)",
        ));
    }
    let r = apps.import_chart(request).await.map_err(chart_problem)?.into_inner();
    let (Some(template), Some(version)) = (r.template, r.version) else {
        return Err(kernel::Error::internal("the apps service answered an import without its template").into());
    };
    Ok((
        StatusCode::CREATED,
        Json(ImportedChart {
            template: template.into(),
            version: version.into(),
        }),
    ))
}
