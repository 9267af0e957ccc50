//! The devops gRPC API.

use kernel::grpc::{caller, timestamp};
use kernel::id::parse_id;
use kernel::outbox::Outbox;
use kernel::page::Page;
use paas_proto::v1 as pb;
use paas_proto::v1::devops_service_server::DevopsService;
use tonic::{Request, Response, Status};

use crate::pipeline::{NewPipeline, Pipeline, Pipelines};

/// The gRPC face of the devops service.
pub struct Devops {
    pipelines: Pipelines,
}

impl Devops {
    /// The API over the devops schema of `outbox`.
    pub fn new(outbox: Outbox) -> Self {
        Self {
            pipelines: Pipelines::new(outbox),
        }
    }
}

fn to_pb(p: Pipeline) -> pb::Pipeline {
    pb::Pipeline {
        id: p.id.to_string(),
        tenant_id: p.tenant_id.to_string(),
        name: p.name,
        repository: p.repository,
        created_at: timestamp(p.created_at),
    }
}

#[tonic::async_trait]
impl DevopsService for Devops {
    async fn create_pipeline(
        &self,
        request: Request<pb::CreatePipelineRequest>,
    ) -> Result<Response<pb::Pipeline>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let new = NewPipeline::parse(&r.tenant_id, &r.name, &r.repository)?;
        Ok(Response::new(to_pb(self.pipelines.create(&caller, new).await?)))
    }

    async fn get_pipeline(&self, request: Request<pb::GetPipelineRequest>) -> Result<Response<pb::Pipeline>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(to_pb(self.pipelines.get(&caller, id).await?)))
    }

    async fn list_pipelines(
        &self,
        request: Request<pb::ListPipelinesRequest>,
    ) -> Result<Response<pb::ListPipelinesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let p = r.page.unwrap_or_default();
        let tenant = kernel::id::parse_optional_id("tenant_id", &r.tenant_id)?;
        let (pipelines, next) = self
            .pipelines
            .list(&caller, Page::parse(p.limit, &p.cursor)?, tenant)
            .await?;
        Ok(Response::new(pb::ListPipelinesResponse {
            pipelines: pipelines.into_iter().map(to_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn delete_pipeline(
        &self,
        request: Request<pb::DeletePipelineRequest>,
    ) -> Result<Response<pb::DeletePipelineResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.pipelines.delete(&caller, id).await?;
        Ok(Response::new(pb::DeletePipelineResponse {}))
    }
}
