//! The apps gRPC API.

use kernel::grpc::{caller, timestamp};
use kernel::id::parse_id;
use kernel::outbox::Outbox;
use kernel::page::Page;
use paas_proto::v1 as pb;
use paas_proto::v1::apps_service_server::AppsService;
use tonic::{Request, Response, Status};

use crate::template::{NewTemplate, Template, Templates};
use crate::version::{Version, Versions};

/// The gRPC face of the apps service.
pub struct Apps {
    templates: Templates,
    versions: Versions,
}

impl Apps {
    /// The API over the apps schema of `outbox`.
    pub fn new(outbox: Outbox) -> Self {
        Self { templates: Templates::new(outbox.clone()), versions: Versions::new(outbox) }
    }
}

fn version_pb(v: Version) -> pb::TemplateVersion {
    pb::TemplateVersion {
        published: v.published(),
        id: v.id.to_string(),
        template_id: v.template_id.to_string(),
        tenant_id: v.tenant_id.map(|t| t.to_string()).unwrap_or_default(),
        version: v.version,
        note: v.note,
        spec_json: v.spec.to_string(),
        created_by: v.created_by,
        created_at: timestamp(v.created_at),
        updated_at: timestamp(v.updated_at),
        published_at: v.published_at.and_then(timestamp),
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

    async fn create_template_version(&self, request: Request<pb::CreateTemplateVersionRequest>) -> Result<Response<pb::TemplateVersion>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let template = parse_id("template_id", &r.template_id)?;
        Ok(Response::new(version_pb(self.versions.create(&caller, template, &r.version, &r.note, &r.spec_json).await?)))
    }

    async fn update_template_version(&self, request: Request<pb::UpdateTemplateVersionRequest>) -> Result<Response<pb::TemplateVersion>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("id", &r.id)?;
        Ok(Response::new(version_pb(self.versions.update(&caller, id, r.note.as_deref(), r.spec_json.as_deref()).await?)))
    }

    async fn publish_template_version(&self, request: Request<pb::PublishTemplateVersionRequest>) -> Result<Response<pb::TemplateVersion>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(version_pb(self.versions.publish(&caller, id).await?)))
    }

    async fn get_template_version(&self, request: Request<pb::GetTemplateVersionRequest>) -> Result<Response<pb::TemplateVersion>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(version_pb(self.versions.get(&caller, id).await?)))
    }

    async fn list_template_versions(&self, request: Request<pb::ListTemplateVersionsRequest>) -> Result<Response<pb::ListTemplateVersionsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let p = r.page.unwrap_or_default();
        let template = parse_id("template_id", &r.template_id)?;
        let (versions, next) = self.versions.list(&caller, template, Page::parse(p.limit, &p.cursor)?).await?;
        Ok(Response::new(pb::ListTemplateVersionsResponse { versions: versions.into_iter().map(version_pb).collect(), page: Some(pb::PageInfo { next_cursor: next }) }))
    }

    async fn render_template_version(&self, request: Request<pb::RenderTemplateVersionRequest>) -> Result<Response<pb::RenderTemplateVersionResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("id", &r.id)?;
        let (objects, waves) = self.versions.render(&caller, id, &r.app, &r.parameters_json).await?;
        Ok(Response::new(pb::RenderTemplateVersionResponse {
            objects_json: serde_json::Value::Array(objects).to_string(),
            waves: waves.into_iter().map(|services| pb::DeployWave { services }).collect(),
        }))
    }
}
