//! The images gRPC API.

use kernel::grpc::{caller, timestamp};
use kernel::id::parse_id;
use kernel::outbox::Outbox;
use kernel::page::Page;
use paas_proto::v1 as pb;
use paas_proto::v1::images_service_server::ImagesService;
use tonic::{Request, Response, Status};

use crate::registry::{NewRegistry, Registries, Registry};

/// The gRPC face of the images service.
pub struct Images {
    registries: Registries,
}

impl Images {
    /// The API over the images schema of `outbox`.
    pub fn new(outbox: Outbox) -> Self {
        Self {
            registries: Registries::new(outbox),
        }
    }
}

fn to_pb(r: Registry) -> pb::Registry {
    pb::Registry {
        id: r.id.to_string(),
        name: r.name,
        url: r.url,
        master: r.master,
        created_at: timestamp(r.created_at),
    }
}

#[tonic::async_trait]
impl ImagesService for Images {
    async fn create_registry(
        &self,
        request: Request<pb::CreateRegistryRequest>,
    ) -> Result<Response<pb::Registry>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let new = NewRegistry::parse(&r.name, &r.url, r.master)?;
        Ok(Response::new(to_pb(self.registries.create(&caller, new).await?)))
    }

    async fn get_registry(&self, request: Request<pb::GetRegistryRequest>) -> Result<Response<pb::Registry>, Status> {
        caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(to_pb(self.registries.get(id).await?)))
    }

    async fn list_registries(
        &self,
        request: Request<pb::ListRegistriesRequest>,
    ) -> Result<Response<pb::ListRegistriesResponse>, Status> {
        caller(&request)?;
        let p = request.into_inner().page.unwrap_or_default();
        let (registries, next) = self.registries.list(Page::parse(p.limit, &p.cursor)?).await?;
        Ok(Response::new(pb::ListRegistriesResponse {
            registries: registries.into_iter().map(to_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn delete_registry(
        &self,
        request: Request<pb::DeleteRegistryRequest>,
    ) -> Result<Response<pb::DeleteRegistryResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.registries.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteRegistryResponse {}))
    }
}
