//! The tenancy gRPC API: proto in, domain calls, proto out. Errors become
//! statuses through the kernel's single mapping.

use kernel::grpc::{caller, timestamp};
use kernel::id::parse_id;
use kernel::page::Page;
use paas_proto::v1 as pb;
use paas_proto::v1::tenancy_service_server::TenancyService;
use kernel::outbox::Outbox;
use tonic::{Request, Response, Status};

use crate::tenant::{self, NewTenant, Tenant, TenantChange, Tenants};

/// The gRPC face of the tenancy service.
pub struct Tenancy {
    tenants: Tenants,
}

impl Tenancy {
    /// The API over the tenancy schema of `outbox`.
    pub fn new(outbox: Outbox) -> Self {
        Self { tenants: Tenants::new(outbox) }
    }
}

fn status_to_pb(s: tenant::Status) -> pb::TenantStatus {
    match s {
        tenant::Status::Active => pb::TenantStatus::Active,
        tenant::Status::Suspended => pb::TenantStatus::Suspended,
    }
}

fn status_from_pb(raw: i32) -> Result<Option<tenant::Status>, Status> {
    match pb::TenantStatus::try_from(raw) {
        Ok(pb::TenantStatus::Unspecified) => Ok(None),
        Ok(pb::TenantStatus::Active) => Ok(Some(tenant::Status::Active)),
        Ok(pb::TenantStatus::Suspended) => Ok(Some(tenant::Status::Suspended)),
        Err(_) => Err(kernel::Error::invalid("status", "must be active or suspended").into()),
    }
}

fn to_pb(t: Tenant) -> pb::Tenant {
    pb::Tenant {
        id: t.id.to_string(),
        name: t.name.to_string(),
        display_name: t.display_name,
        contact: t.contact,
        status: status_to_pb(t.status) as i32,
        created_at: timestamp(t.created_at),
        updated_at: timestamp(t.updated_at),
        version: t.version,
    }
}

#[tonic::async_trait]
impl TenancyService for Tenancy {
    async fn create_tenant(&self, request: Request<pb::CreateTenantRequest>) -> Result<Response<pb::Tenant>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let new = NewTenant::parse(&r.name, &r.display_name, &r.contact)?;
        Ok(Response::new(to_pb(self.tenants.create(&caller, new).await?)))
    }

    async fn get_tenant(&self, request: Request<pb::GetTenantRequest>) -> Result<Response<pb::Tenant>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(to_pb(self.tenants.get(&caller, id).await?)))
    }

    async fn list_tenants(&self, request: Request<pb::ListTenantsRequest>) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let page_req = r.page.unwrap_or_default();
        let page = Page::parse(page_req.limit, &page_req.cursor)?;
        let (tenants, next) = self.tenants.list(&caller, page, &r.name_prefix, status_from_pb(r.status)?).await?;
        Ok(Response::new(pb::ListTenantsResponse {
            tenants: tenants.into_iter().map(to_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn update_tenant(&self, request: Request<pb::UpdateTenantRequest>) -> Result<Response<pb::Tenant>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("id", &r.id)?;
        let change = TenantChange::parse(r.display_name.as_deref(), r.contact.as_deref(), status_from_pb(r.status)?, r.expected_version)?;
        Ok(Response::new(to_pb(self.tenants.update(&caller, id, change).await?)))
    }

    async fn delete_tenant(&self, request: Request<pb::DeleteTenantRequest>) -> Result<Response<pb::DeleteTenantResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.tenants.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteTenantResponse {}))
    }
}
