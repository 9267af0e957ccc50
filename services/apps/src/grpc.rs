//! The apps gRPC API.

use kernel::grpc::{caller, timestamp};
use kernel::id::parse_id;
use kernel::outbox::Outbox;
use kernel::page::Page;
use paas_proto::v1 as pb;
use paas_proto::v1::apps_service_server::AppsService;
use tonic::{Request, Response, Status};

use crate::template::{NewTemplate, Template, Templates};

/// The gRPC face of the apps service.
pub struct Apps {
    templates: Templates,
}

impl Apps {
    /// The API over the apps schema of `outbox`.
    pub fn new(outbox: Outbox) -> Self {
        Self { templates: Templates::new(outbox) }
    }
}

fn to_pb(t: Template) -> pb::Template {
    pb::Template {
        id: t.id.to_string(),
        tenant_id: t.tenant_id.map(|t| t.to_string()).unwrap_or_default(),
        name: t.name,
        description: t.description,
        created_at: timestamp(t.created_at),
    }
}

#[tonic::async_trait]
impl AppsService for Apps {
    async fn create_template(&self, request: Request<pb::CreateTemplateRequest>) -> Result<Response<pb::Template>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let new = NewTemplate::parse(&r.tenant_id, &r.name, &r.description)?;
        Ok(Response::new(to_pb(self.templates.create(&caller, new).await?)))
    }

    async fn get_template(&self, request: Request<pb::GetTemplateRequest>) -> Result<Response<pb::Template>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(to_pb(self.templates.get(&caller, id).await?)))
    }

    async fn list_templates(&self, request: Request<pb::ListTemplatesRequest>) -> Result<Response<pb::ListTemplatesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let p = r.page.unwrap_or_default();
        let tenant = kernel::id::parse_optional_id("tenant_id", &r.tenant_id)?;
        let (templates, next) = self.templates.list(&caller, Page::parse(p.limit, &p.cursor)?, tenant).await?;
        Ok(Response::new(pb::ListTemplatesResponse {
            templates: templates.into_iter().map(to_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn delete_template(&self, request: Request<pb::DeleteTemplateRequest>) -> Result<Response<pb::DeleteTemplateResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.templates.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteTemplateResponse {}))
    }
}
