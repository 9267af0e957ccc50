//! Resource specs and requests: `/specs`, `/tenants/{id}/requests`,
//! `/requests/{id}`, `/requests/{id}/{step}`, forwarded to tenancy.

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
use crate::upstream::{Federation, Signed, Tenancy};

/// The routes, each with who may call it.
pub fn routes() -> Routes {
    Routes::new()
        .route(Permission::PlatformAdmin, routes!(publish_spec))
        .route(Permission::Authenticated, routes!(list_specs))
        .route(Permission::Role(Role::TenantAdmin), routes!(file))
        .route(Permission::Authenticated, routes!(list))
        .route(Permission::Authenticated, routes!(read))
        .route(Permission::Role(Role::TenantAdmin), routes!(step))
}

/// A product on offer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Spec {
    /// Its id.
    pub id: String,
    /// DNS label.
    pub name: String,
    /// "2 CPU / 4 GiB".
    pub display_name: String,
    /// Per unit.
    pub amounts: BTreeMap<String, String>,
    /// Whether it can be requested.
    pub active: bool,
}

impl From<pb::Spec> for Spec {
    fn from(s: pb::Spec) -> Self {
        Self {
            id: s.id,
            name: s.name,
            display_name: s.display_name,
            amounts: s.amounts.unwrap_or_default().amounts.into_iter().collect(),
            active: s.active,
        }
    }
}

/// Body of `POST /specs`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishSpec {
    name: String,
    #[serde(default)]
    display_name: String,
    /// What one unit holds: at least one resource.
    amounts: BTreeMap<String, String>,
}

/// The R1 request form.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
// The bounds are tenancy's (`resource_request::Form::parse`), stated here
// so that the document says what is refused.
pub struct Form {
    project_name: String,
    #[schema(max_length = 128)]
    applicant: String,
    /// Digits, spaces and `+ - ( )`.
    #[serde(default)]
    #[schema(max_length = 32, pattern = r"^[0-9 +()\-]*$")]
    phone: String,
    /// An e-mail address.
    #[schema(max_length = 254, pattern = r"^\s*[^@\s][^@]*@[^\u0000]*\.[^\u0000]*$")]
    email: String,
    /// The application, as its owners call it.
    #[schema(max_length = 128)]
    application: String,
    #[serde(default)]
    base_services: Vec<String>,
    #[serde(default)]
    #[schema(max_length = 2048)]
    purpose: String,
    server_type: String,
    #[serde(default)]
    oracle_needed: bool,
    /// A quantity (`500Gi`), or empty.
    #[serde(default)]
    #[schema(
        max_length = 32,
        pattern = r"^([+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[mkMGTPE])?)?$"
    )]
    storage: String,
    #[serde(default)]
    #[schema(max_length = 32)]
    bandwidth: String,
    /// A DNS label.
    #[schema(max_length = 63, pattern = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
    data_centre: String,
    spec_id: String,
    #[schema(minimum = 1, maximum = 10000)]
    count: i32,
    #[serde(default)]
    #[schema(max_length = 2048)]
    remarks: String,
    /// Also keep spec x count for failover in each other data centre
    /// provisioned into (the tenant's DR reserve).
    #[serde(default)]
    dr_reserve: bool,
}

impl From<Form> for pb::ResourceRequestForm {
    fn from(f: Form) -> Self {
        Self {
            project_name: f.project_name,
            applicant: f.applicant,
            phone: f.phone,
            email: f.email,
            application: f.application,
            base_services: f.base_services,
            purpose: f.purpose,
            server_type: f.server_type,
            oracle_needed: f.oracle_needed,
            storage: f.storage,
            bandwidth: f.bandwidth,
            data_centre: f.data_centre,
            spec_id: f.spec_id,
            count: f.count,
            remarks: f.remarks,
            dr_reserve: f.dr_reserve,
        }
    }
}

impl From<pb::ResourceRequestForm> for Form {
    fn from(f: pb::ResourceRequestForm) -> Self {
        Self {
            project_name: f.project_name,
            applicant: f.applicant,
            phone: f.phone,
            email: f.email,
            application: f.application,
            base_services: f.base_services,
            purpose: f.purpose,
            server_type: f.server_type,
            oracle_needed: f.oracle_needed,
            storage: f.storage,
            bandwidth: f.bandwidth,
            data_centre: f.data_centre,
            spec_id: f.spec_id,
            count: f.count,
            remarks: f.remarks,
            dr_reserve: f.dr_reserve,
        }
    }
}

/// One recorded step of a request.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Step {
    /// From (absent for the creation).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub from: String,
    /// To.
    pub to: String,
    /// Who.
    pub actor: String,
    /// Why (rejections).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub reason: String,
    /// When.
    pub at: Option<DateTime<Utc>>,
}

/// A resource request as the API shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResourceRequest {
    /// Its id.
    pub id: String,
    /// The tenant asking.
    pub tenant_id: String,
    /// The form.
    pub form: Form,
    /// draft, submitted, approved, rejected or provisioned.
    pub state: String,
    /// Who filed it.
    pub created_by: String,
    /// When.
    pub created_at: Option<DateTime<Utc>>,
    /// Its steps (on single reads).
    pub steps: Vec<Step>,
}

impl From<pb::ResourceRequest> for ResourceRequest {
    fn from(r: pb::ResourceRequest) -> Self {
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            form: r.form.unwrap_or_default().into(),
            state: r.state,
            created_by: r.created_by,
            created_at: time(r.created_at),
            steps: r
                .steps
                .into_iter()
                .map(|s| Step {
                    from: s.from_state,
                    to: s.to_state,
                    actor: s.actor,
                    reason: s.reason,
                    at: time(s.at),
                })
                .collect(),
        }
    }
}

/// Body of `POST /requests/{id}/{step}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepBody {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    clusters: Vec<String>,
}

/// Filters of `GET /requests`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    #[serde(default)]
    tenant_id: String,
    #[serde(default)]
    state: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/specs",
    tag = "requests",
    request_body = PublishSpec,
    responses((status = 201, body = Spec), Problems),
    security(("bearer" = []))
)]
async fn publish_spec(
    Signed(mut tenancy): Signed<Tenancy>,
    Body(b): Body<PublishSpec>,
) -> Result<(StatusCode, Json<Spec>), ApiError> {
    let request = pb::PublishSpecRequest {
        name: b.name,
        display_name: b.display_name,
        amounts: Some(pb::ResourceList {
            amounts: b.amounts.into_iter().collect(),
        }),
    };
    Ok((
        StatusCode::CREATED,
        Json(tenancy.publish_spec(request).await?.into_inner().into()),
    ))
}

/// Paging and filter of `GET /specs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SpecFilter {
    #[serde(default)]
    active_only: bool,
}

#[utoipa::path(
    get,
    path = "/api/v1/specs",
    tag = "requests",
    params(ListQuery, SpecFilter),
    responses((status = 200, body = Page<Spec>), Problems),
    security(("bearer" = []))
)]
async fn list_specs(
    Signed(mut tenancy): Signed<Tenancy>,
    Query(page): Query<ListQuery>,
    Query(q): Query<SpecFilter>,
) -> Result<Json<Page<Spec>>, ApiError> {
    let request = pb::ListSpecsRequest {
        page: page.request(),
        active_only: q.active_only,
    };
    let r = tenancy.list_specs(request).await?.into_inner();
    Ok(Json(Page::new(r.specs.into_iter().map(Spec::from).collect(), r.page)))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{id}/requests",
    tag = "requests",
    params(("id" = String, Path, description = "the id")),
    request_body = Form,
    responses((status = 201, body = ResourceRequest), Problems),
    security(("bearer" = []))
)]
async fn file(
    Signed(mut tenancy): Signed<Tenancy>,
    Path(tenant_id): Path<String>,
    Body(form): Body<Form>,
) -> Result<(StatusCode, Json<ResourceRequest>), ApiError> {
    let request = pb::FileResourceRequestRequest {
        tenant_id,
        form: Some(form.into()),
    };
    Ok((
        StatusCode::CREATED,
        Json(tenancy.file_resource_request(request).await?.into_inner().into()),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/requests",
    tag = "requests",
    params(ListQuery, Filter),
    responses((status = 200, body = Page<ResourceRequest>), Problems),
    security(("bearer" = []))
)]
async fn list(
    Signed(mut tenancy): Signed<Tenancy>,
    Query(page): Query<ListQuery>,
    Query(q): Query<Filter>,
) -> Result<Json<Page<ResourceRequest>>, ApiError> {
    let request = pb::ListResourceRequestsRequest {
        page: page.request(),
        tenant_id: q.tenant_id,
        state: q.state,
    };
    let r = tenancy.list_resource_requests(request).await?.into_inner();
    Ok(Json(Page::new(
        r.requests.into_iter().map(ResourceRequest::from).collect(),
        r.page,
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/requests/{id}",
    tag = "requests",
    params(("id" = String, Path, description = "the id")),
    responses((status = 200, body = ResourceRequest), Problems),
    security(("bearer" = []))
)]
async fn read(Signed(mut tenancy): Signed<Tenancy>, Path(id): Path<String>) -> Result<Json<ResourceRequest>, ApiError> {
    Ok(Json(
        tenancy
            .get_resource_request(pb::GetResourceRequestRequest { id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/requests/{id}/{step}",
    tag = "requests",
    params(
        ("id" = String, Path, description = "the id"),
        ("step" = String, Path, description = "submit, approve, reject or provision"),
    ),
    request_body = StepBody,
    responses((status = 200, body = ResourceRequest), Problems),
    security(("bearer" = []))
)]
async fn step(
    Signed(mut tenancy): Signed<Tenancy>,
    Signed(mut federation): Signed<Federation>,
    Path((id, step)): Path<(String, String)>,
    body: Option<Body<StepBody>>,
) -> Result<Json<ResourceRequest>, ApiError> {
    let b = body.map(|Body(b)| b).unwrap_or_default();
    // Each partition is in its cluster's data centre: take it from the
    // cluster's registration, never from the form.
    let mut data_centres = std::collections::HashMap::new();
    for cluster in &b.clusters {
        let found = federation
            .get_cluster(pb::GetClusterRequest { id: cluster.clone() })
            .await;
        match found {
            Ok(c) => data_centres.insert(cluster.clone(), c.into_inner().data_centre),
            Err(s) if s.code() == tonic::Code::NotFound || s.code() == tonic::Code::InvalidArgument => {
                return Err(ApiError::invalid(
                    "clusters",
                    format!("{cluster} is not a registered cluster"),
                ));
            }
            Err(s) => return Err(s.into()),
        };
    }
    let request = pb::StepResourceRequestRequest {
        id,
        step,
        reason: b.reason,
        clusters: b.clusters,
        data_centres,
    };
    Ok(Json(tenancy.step_resource_request(request).await?.into_inner().into()))
}
