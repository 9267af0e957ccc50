//! The apps gRPC API.

use kernel::grpc::{caller, timestamp};
use kernel::id::parse_id;
use kernel::outbox::Outbox;
use kernel::page::Page;
use paas_proto::v1 as pb;
use paas_proto::v1::apps_service_server::AppsService;
use tonic::{Request, Response, Status};

use crate::application::{self, Action, Application, Applications, Blueprint};
use crate::external_service::{self, Definition, ExternalService, ExternalServices, Placed, PortRequest};
use crate::placement;
use crate::release::Release;
use crate::strategy::Strategy;
use crate::template::{NewTemplate, Template, Templates};
use crate::tenancy::Tenancy;
use crate::trigger::{NewTrigger, Trigger, Triggers};
use crate::version::{Version, Versions};

/// The gRPC face of the apps service.
pub struct Apps {
    templates: Templates,
    versions: Versions,
    applications: Applications,
    external_services: ExternalServices,
    tenancy: Tenancy,
    triggers: Triggers,
}

impl Apps {
    /// The API over the apps schema of `outbox`.
    pub fn new(outbox: Outbox, tenancy: Tenancy, applications: Applications) -> Self {
        let external_services = ExternalServices::new(outbox.clone(), applications.federation().clone());
        let triggers = Triggers::new(outbox.pool().clone(), applications.clone());
        Self {
            triggers,
            templates: Templates::new(outbox.clone()),
            versions: Versions::new(outbox),
            applications,
            external_services,
            tenancy,
        }
    }

    async fn act(
        &self,
        request: Request<pb::ReleaseActionRequest>,
        action: Action,
    ) -> Result<Response<pb::Release>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(release_pb(
            self.applications.act(&caller, id, action).await?,
        )))
    }

    async fn application_pb(&self, app: Application) -> Result<pb::Application, Status> {
        let (app, latest) = self.applications.snapshot(&app).await?;
        let services = self.applications.services(&app).await;
        let (health, health_reason) = crate::application::overall_health(&services);
        Ok(pb::Application {
            health,
            health_reason,
            ..summary_pb(app, latest, services)
        })
    }
}

/// An application as listed (`services` empty) or read (each service's binding).
fn summary_pb(app: Application, latest: Option<Release>, services: Vec<pb::ServiceStatus>) -> pb::Application {
    pb::Application {
        id: app.id.to_string(),
        tenant_id: app.tenant_id.to_string(),
        project_id: app.project_id.map(|p| p.to_string()).unwrap_or_default(),
        name: app.name,
        environment: app.environment,
        state: app.state,
        current_release: app.current_release.unwrap_or(0) as u32,
        latest_release: latest.map(release_pb),
        replicas: app
            .replicas
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_u64()? as u32)))
            .collect(),
        services,
        created_by: app.created_by,
        created_at: timestamp(app.created_at),
        updated_at: timestamp(app.updated_at),
        health: String::new(),
        health_reason: String::new(),
    }
}

fn ports_in(ports: &[pb::ExternalServicePort]) -> Vec<PortRequest> {
    ports
        .iter()
        .map(|p| PortRequest {
            name: p.name.clone(),
            port: p.port,
            protocol: p.protocol.clone(),
        })
        .collect()
}

/// An external service as listed (`placed` none) or read.
fn trigger_pb(t: Trigger) -> pb::ImageTrigger {
    pb::ImageTrigger {
        id: t.id.to_string(),
        tenant_id: t.tenant_id.to_string(),
        application_id: t.application_id.to_string(),
        repository: t.repository,
        tags: t.tags,
        parameter: t.parameter,
        created_by: t.created_by,
        created_at: timestamp(t.created_at),
        firings: t
            .firings
            .into_iter()
            .map(|f| pb::ImageTriggerFiring {
                tag: f.tag,
                digest: f.digest,
                state: f.state,
                release_id: f.release_id.map(|r| r.to_string()).unwrap_or_default(),
                message: f.message,
                at: timestamp(f.created_at),
            })
            .collect(),
    }
}

fn external_service_pb(s: ExternalService, placed: Option<Placed>) -> pb::ExternalService {
    let placed = placed.unwrap_or(Placed {
        health: String::new(),
        reason: String::new(),
        clusters: serde_json::Value::Null,
    });
    pb::ExternalService {
        id: s.id.to_string(),
        tenant_id: s.tenant_id.to_string(),
        project_id: s.project_id.map(|p| p.to_string()).unwrap_or_default(),
        name: s.name,
        description: s.description,
        dns_name: s.dns_name.unwrap_or_default(),
        addresses: s.addresses,
        ports: s
            .ports
            .0
            .into_iter()
            .map(|p| pb::ExternalServicePort {
                name: p.name,
                port: u32::from(p.port),
                protocol: p.protocol,
            })
            .collect(),
        placement_json: s.placement.to_string(),
        binding_id: s.binding_id.map(|b| b.to_string()).unwrap_or_default(),
        health: placed.health,
        health_reason: placed.reason,
        clusters_json: if placed.clusters.is_null() {
            String::new()
        } else {
            placed.clusters.to_string()
        },
        created_by: s.created_by,
        created_at: timestamp(s.created_at),
        updated_at: timestamp(s.updated_at),
    }
}

fn release_pb(r: Release) -> pb::Release {
    pb::Release {
        services: crate::release::plan(&r)
            .into_iter()
            .map(|p| pb::ReleaseService {
                service: p.service,
                strategy: p.strategy,
                note: p.note,
            })
            .collect(),
        waves: r
            .waves()
            .into_iter()
            .map(|services| pb::DeployWave { services })
            .collect(),
        id: r.id.to_string(),
        application_id: r.application_id.to_string(),
        number: r.number as u32,
        template_version_id: r.template_version_id.to_string(),
        parameters_json: r.parameters.to_string(),
        placement_json: r.placement.to_string(),
        strategy_json: r.strategy.to_string(),
        state: r.state,
        wave: r.wave as u32,
        message: r.message,
        rollback_of: r.rollback_of.unwrap_or(0) as u32,
        created_by: r.created_by,
        approved_by: r.approved_by.unwrap_or_default(),
        created_at: timestamp(r.created_at),
        started_at: r.started_at.and_then(timestamp),
        finished_at: r.finished_at.and_then(timestamp),
        slot: r.slot.unwrap_or_default(),
        replaces: r.replaces.unwrap_or(0) as u32,
        phase: r.phase,
        step: r.step as u32,
        traffic: r.traffic as u32,
        gray_waves_json: r.gray_waves.map(|w| w.to_string()).unwrap_or_default(),
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
    async fn create_template(
        &self,
        request: Request<pb::CreateTemplateRequest>,
    ) -> Result<Response<pb::Template>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let new = NewTemplate::parse(&r.tenant_id, &r.name, &r.description)?;
        if let Some(tenant) = new.tenant() {
            self.tenancy.require_field(&caller, "tenant_id", tenant).await?;
        }
        Ok(Response::new(to_pb(self.templates.create(&caller, new).await?)))
    }

    async fn get_template(&self, request: Request<pb::GetTemplateRequest>) -> Result<Response<pb::Template>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(to_pb(self.templates.get(&caller, id).await?)))
    }

    async fn list_templates(
        &self,
        request: Request<pb::ListTemplatesRequest>,
    ) -> Result<Response<pb::ListTemplatesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let p = r.page.unwrap_or_default();
        let tenant = kernel::id::parse_optional_id("tenant_id", &r.tenant_id)?;
        if let Some(tenant) = tenant {
            self.tenancy.require(&caller, tenant).await?;
        }
        let (templates, next) = self
            .templates
            .list(&caller, Page::parse(p.limit, &p.cursor)?, tenant)
            .await?;
        Ok(Response::new(pb::ListTemplatesResponse {
            templates: templates.into_iter().map(to_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn delete_template(
        &self,
        request: Request<pb::DeleteTemplateRequest>,
    ) -> Result<Response<pb::DeleteTemplateResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.templates.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteTemplateResponse {}))
    }

    async fn create_template_version(
        &self,
        request: Request<pb::CreateTemplateVersionRequest>,
    ) -> Result<Response<pb::TemplateVersion>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let template = parse_id("template_id", &r.template_id)?;
        Ok(Response::new(version_pb(
            self.versions
                .create(&caller, template, &r.version, &r.note, &r.spec_json)
                .await?,
        )))
    }

    async fn import_chart(
        &self,
        request: Request<pb::ImportChartRequest>,
    ) -> Result<Response<pb::ImportChartResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let files = match (r.archive.is_empty(), r.files.is_empty()) {
            (false, true) => crate::chart::unpack(&r.archive)?,
            (true, false) => crate::chart::rooted(r.files.into_iter().collect())?,
            _ => return Err(kernel::Error::invalid("chart", "give either a chart archive or a chart's files").into()),
        };
        if let Some(tenant) = kernel::id::parse_optional_id("tenant_id", &r.tenant_id)? {
            self.tenancy.require(&caller, tenant).await?;
        }
        let (template, version) = self.versions.import(&caller, &r.tenant_id, files).await?;
        Ok(Response::new(pb::ImportChartResponse {
            template: Some(to_pb(template)),
            version: Some(version_pb(version)),
        }))
    }

    async fn update_template_version(
        &self,
        request: Request<pb::UpdateTemplateVersionRequest>,
    ) -> Result<Response<pb::TemplateVersion>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("id", &r.id)?;
        Ok(Response::new(version_pb(
            self.versions
                .update(&caller, id, r.note.as_deref(), r.spec_json.as_deref())
                .await?,
        )))
    }

    async fn publish_template_version(
        &self,
        request: Request<pb::PublishTemplateVersionRequest>,
    ) -> Result<Response<pb::TemplateVersion>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(version_pb(self.versions.publish(&caller, id).await?)))
    }

    async fn get_template_version(
        &self,
        request: Request<pb::GetTemplateVersionRequest>,
    ) -> Result<Response<pb::TemplateVersion>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(version_pb(self.versions.get(&caller, id).await?)))
    }

    async fn list_template_versions(
        &self,
        request: Request<pb::ListTemplateVersionsRequest>,
    ) -> Result<Response<pb::ListTemplateVersionsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let p = r.page.unwrap_or_default();
        let template = parse_id("template_id", &r.template_id)?;
        let (versions, next) = self
            .versions
            .list(&caller, template, Page::parse(p.limit, &p.cursor)?)
            .await?;
        Ok(Response::new(pb::ListTemplateVersionsResponse {
            versions: versions.into_iter().map(version_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn render_template_version(
        &self,
        request: Request<pb::RenderTemplateVersionRequest>,
    ) -> Result<Response<pb::RenderTemplateVersionResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("id", &r.id)?;
        let (objects, waves) = self.versions.render(&caller, id, &r.app, &r.parameters_json).await?;
        Ok(Response::new(pb::RenderTemplateVersionResponse {
            objects_json: serde_json::Value::Array(objects).to_string(),
            waves: waves.into_iter().map(|services| pb::DeployWave { services }).collect(),
        }))
    }

    async fn deploy_application(
        &self,
        request: Request<pb::DeployApplicationRequest>,
    ) -> Result<Response<pb::Application>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        self.tenancy.require(&caller, tenant).await?;
        let project = kernel::id::parse_optional_id("project_id", &r.project_id)?;
        let blueprint = Blueprint {
            template_version_id: parse_id("template_version_id", &r.template_version_id)?,
            parameters: application::parse_parameters(&r.parameters_json)?,
            placement: placement::parse(&r.placement_json)?,
            strategy: Strategy::parse(&r.strategy_json)?,
        };
        let (app, _) = self
            .applications
            .deploy(&caller, tenant, project, &r.name, &r.environment, blueprint)
            .await?;
        Ok(Response::new(self.application_pb(app).await?))
    }

    async fn get_application(
        &self,
        request: Request<pb::GetApplicationRequest>,
    ) -> Result<Response<pb::Application>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let app = self.applications.get(&caller, id).await?;
        Ok(Response::new(self.application_pb(app).await?))
    }

    async fn list_applications(
        &self,
        request: Request<pb::ListApplicationsRequest>,
    ) -> Result<Response<pb::ListApplicationsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        self.tenancy.require(&caller, tenant).await?;
        let p = r.page.unwrap_or_default();
        let (apps, next) = self
            .applications
            .list(&caller, tenant, Page::parse(p.limit, &p.cursor)?)
            .await?;
        // Lists leave out the per-service placement: it is a call to
        // federation per service; reading one application shows it.
        let applications = apps
            .into_iter()
            .map(|(app, latest)| summary_pb(app, latest, Vec::new()))
            .collect();
        Ok(Response::new(pb::ListApplicationsResponse {
            applications,
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn delete_application(
        &self,
        request: Request<pb::DeleteApplicationRequest>,
    ) -> Result<Response<pb::DeleteApplicationResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.applications.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteApplicationResponse {}))
    }

    async fn create_release(
        &self,
        request: Request<pb::CreateReleaseRequest>,
    ) -> Result<Response<pb::Release>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let app = parse_id("application_id", &r.application_id)?;
        let version = kernel::id::parse_optional_id("template_version_id", &r.template_version_id)?;
        let parameters = r
            .parameters_json
            .as_deref()
            .map(application::parse_parameters)
            .transpose()?;
        let placement = r.placement_json.as_deref().map(placement::parse).transpose()?;
        let strategy = r.strategy_json.as_deref().map(Strategy::parse).transpose()?;
        let release = self
            .applications
            .release(
                &caller,
                app,
                |mut b| {
                    if let Some(v) = version {
                        b.template_version_id = v;
                    }
                    if let Some(p) = parameters {
                        b.parameters = p;
                    }
                    if let Some(p) = placement {
                        b.placement = p;
                    }
                    if let Some(s) = strategy {
                        b.strategy = s;
                    }
                    Ok(b)
                },
                None,
            )
            .await?;
        Ok(Response::new(release_pb(release)))
    }

    async fn rollback_application(
        &self,
        request: Request<pb::RollbackApplicationRequest>,
    ) -> Result<Response<pb::Release>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let app = parse_id("application_id", &r.application_id)?;
        if r.to_release == 0 {
            return Err(kernel::Error::invalid("to_release", "must name an earlier release").into());
        }
        let release = self
            .applications
            .release(&caller, app, Ok, Some(r.to_release as i32))
            .await?;
        Ok(Response::new(release_pb(release)))
    }

    async fn approve_release(
        &self,
        request: Request<pb::ApproveReleaseRequest>,
    ) -> Result<Response<pb::Release>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(release_pb(self.applications.approve(&caller, id).await?)))
    }

    async fn confirm_release(
        &self,
        request: Request<pb::ReleaseActionRequest>,
    ) -> Result<Response<pb::Release>, Status> {
        self.act(request, Action::Confirm).await
    }

    async fn resume_release(
        &self,
        request: Request<pb::ReleaseActionRequest>,
    ) -> Result<Response<pb::Release>, Status> {
        self.act(request, Action::Resume).await
    }

    async fn promote_release(
        &self,
        request: Request<pb::ReleaseActionRequest>,
    ) -> Result<Response<pb::Release>, Status> {
        self.act(request, Action::Promote).await
    }

    async fn abort_release(&self, request: Request<pb::ReleaseActionRequest>) -> Result<Response<pb::Release>, Status> {
        self.act(request, Action::Abort).await
    }

    async fn list_releases(
        &self,
        request: Request<pb::ListReleasesRequest>,
    ) -> Result<Response<pb::ListReleasesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let app = parse_id("application_id", &r.application_id)?;
        let p = r.page.unwrap_or_default();
        let (releases, next) = self
            .applications
            .releases(&caller, app, Page::parse(p.limit, &p.cursor)?)
            .await?;
        Ok(Response::new(pb::ListReleasesResponse {
            releases: releases.into_iter().map(release_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn scale_application(
        &self,
        request: Request<pb::ScaleApplicationRequest>,
    ) -> Result<Response<pb::Application>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let app = parse_id("application_id", &r.application_id)?;
        let app = self.applications.scale(&caller, app, &r.service, r.replicas).await?;
        Ok(Response::new(self.application_pb(app).await?))
    }

    async fn list_scale_events(
        &self,
        request: Request<pb::ListScaleEventsRequest>,
    ) -> Result<Response<pb::ListScaleEventsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let app = parse_id("application_id", &r.application_id)?;
        let p = r.page.unwrap_or_default();
        let (events, next) = self
            .applications
            .scale_events(&caller, app, Page::parse(p.limit, &p.cursor)?)
            .await?;
        let events = events
            .into_iter()
            .map(|e| pb::ScaleEvent {
                service: e.service,
                from_replicas: e.from_replicas.unwrap_or(0) as u32,
                to_replicas: e.to_replicas as u32,
                reason: e.reason,
                actor: e.actor,
                at: timestamp(e.at),
            })
            .collect();
        Ok(Response::new(pb::ListScaleEventsResponse {
            events,
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn list_config_deliveries(
        &self,
        request: Request<pb::ListConfigDeliveriesRequest>,
    ) -> Result<Response<pb::ListConfigDeliveriesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let app = parse_id("application_id", &r.application_id)?;
        // Tenant-scoped: an application the caller cannot see is NotFound.
        let app = self.applications.get(&caller, app).await?;
        let p = r.page.unwrap_or_default();
        let (views, next, state) = crate::config_delivery::view(
            self.applications.outbox().pool(),
            &app,
            Page::parse(p.limit, &p.cursor)?,
        )
        .await?;
        let items = views
            .into_iter()
            .map(|v| pb::DeliveredConfig {
                config: v.config,
                targets: v
                    .targets
                    .into_iter()
                    .map(|t| pb::ConfigDeliveryTarget {
                        target: t.target,
                        releases: t.releases,
                        checksum: t.checksum,
                        gray: t.gray,
                    })
                    .collect(),
                rendered_at: timestamp(v.rendered_at),
            })
            .collect();
        Ok(Response::new(pb::ListConfigDeliveriesResponse {
            items,
            page: Some(pb::PageInfo { next_cursor: next }),
            in_sync: state.in_sync,
            last_error: state.last_error.unwrap_or_default(),
            failures: state.failures,
            delivered_at: state.delivered_at.and_then(timestamp),
            due_at: state.due_at.and_then(timestamp),
        }))
    }

    async fn list_activity(
        &self,
        request: Request<pb::ListActivityRequest>,
    ) -> Result<Response<pb::ListActivityResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let app = parse_id("application_id", &r.application_id)?;
        let app = self.applications.get(&caller, app).await?;
        let p = r.page.unwrap_or_default();
        let (entries, next) = crate::activity::list(
            self.applications.outbox().pool(),
            app.tenant_id,
            app.id,
            Page::parse(p.limit, &p.cursor)?,
        )
        .await?;
        let items = entries
            .into_iter()
            .map(|e| pb::Activity {
                id: e.id.to_string(),
                service: e.service,
                kind: e.kind,
                operation_id: e.operation_id.to_string(),
                trigger: e.trigger,
                from_cluster: e.from_cluster,
                to_clusters: e.to_clusters,
                state: e.state,
                reason: e.reason,
                steps: e
                    .steps
                    .0
                    .into_iter()
                    .map(|s| pb::ActivityStep {
                        name: s.name,
                        at: timestamp(s.at),
                    })
                    .collect(),
                at: timestamp(e.at),
            })
            .collect();
        Ok(Response::new(pb::ListActivityResponse {
            items,
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn list_application_pods(
        &self,
        request: Request<pb::ListApplicationPodsRequest>,
    ) -> Result<Response<pb::ListApplicationPodsResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("application_id", &request.get_ref().application_id)?;
        Ok(Response::new(self.applications.pods(&caller, id).await?))
    }

    async fn get_application_logs(
        &self,
        request: Request<pb::GetApplicationLogsRequest>,
    ) -> Result<Response<pb::PodLogs>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("application_id", &r.application_id)?;
        Ok(Response::new(pb::PodLogs {
            text: self.applications.logs(&caller, id, r).await?,
        }))
    }

    type FollowApplicationLogsStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::PodLogLine, Status>> + Send>>;

    async fn follow_application_logs(
        &self,
        request: Request<pb::GetApplicationLogsRequest>,
    ) -> Result<Response<Self::FollowApplicationLogsStream>, Status> {
        use futures::StreamExt;
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("application_id", &r.application_id)?;
        let lines = self.applications.follow_logs(&caller, id, r).await?;
        Ok(Response::new(Box::pin(lines.map(|l| l.map_err(Status::from)))))
    }

    async fn restart_application(
        &self,
        request: Request<pb::RestartApplicationRequest>,
    ) -> Result<Response<pb::RestartApplicationResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("application_id", &r.application_id)?;
        let restarted = self.applications.restart(&caller, id, &r.service).await?;
        Ok(Response::new(pb::RestartApplicationResponse {
            restarted: restarted.into_iter().collect(),
        }))
    }

    async fn stop_application(
        &self,
        request: Request<pb::StopApplicationRequest>,
    ) -> Result<Response<pb::Application>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("application_id", &request.get_ref().application_id)?;
        let app = self.applications.stop(&caller, id).await?;
        Ok(Response::new(self.application_pb(app).await?))
    }

    async fn start_application(
        &self,
        request: Request<pb::StartApplicationRequest>,
    ) -> Result<Response<pb::Application>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("application_id", &request.get_ref().application_id)?;
        let app = self.applications.start(&caller, id).await?;
        Ok(Response::new(self.application_pb(app).await?))
    }
    async fn register_external_service(
        &self,
        request: Request<pb::RegisterExternalServiceRequest>,
    ) -> Result<Response<pb::ExternalService>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        self.tenancy.require(&caller, tenant).await?;
        let project = kernel::id::parse_optional_id("project_id", &r.project_id)?;
        external_service::parse_name(&r.name)?;
        let definition = Definition::parse(
            &r.dns_name,
            &r.addresses,
            &ports_in(&r.ports),
            &r.placement_json,
            &r.description,
        )?;
        let registered = self
            .external_services
            .register(&caller, tenant, project, &r.name, definition)
            .await?;
        let placed = self.external_services.placed(&registered).await;
        Ok(Response::new(external_service_pb(registered, Some(placed))))
    }

    async fn get_external_service(
        &self,
        request: Request<pb::GetExternalServiceRequest>,
    ) -> Result<Response<pb::ExternalService>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let found = self.external_services.get(&caller, id).await?;
        let placed = self.external_services.placed(&found).await;
        Ok(Response::new(external_service_pb(found, Some(placed))))
    }

    async fn list_external_services(
        &self,
        request: Request<pb::ListExternalServicesRequest>,
    ) -> Result<Response<pb::ListExternalServicesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        self.tenancy.require(&caller, tenant).await?;
        let p = r.page.unwrap_or_default();
        // Lists leave out where each is placed: a call to federation each.
        let (found, next) = self
            .external_services
            .list(&caller, tenant, Page::parse(p.limit, &p.cursor)?)
            .await?;
        Ok(Response::new(pb::ListExternalServicesResponse {
            external_services: found.into_iter().map(|s| external_service_pb(s, None)).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn update_external_service(
        &self,
        request: Request<pb::UpdateExternalServiceRequest>,
    ) -> Result<Response<pb::ExternalService>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("id", &r.id)?;
        let definition = Definition::parse(
            &r.dns_name,
            &r.addresses,
            &ports_in(&r.ports),
            &r.placement_json,
            &r.description,
        )?;
        let updated = self.external_services.update(&caller, id, definition).await?;
        let placed = self.external_services.placed(&updated).await;
        Ok(Response::new(external_service_pb(updated, Some(placed))))
    }

    async fn delete_external_service(
        &self,
        request: Request<pb::DeleteExternalServiceRequest>,
    ) -> Result<Response<pb::DeleteExternalServiceResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.external_services.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteExternalServiceResponse {}))
    }

    async fn create_image_trigger(
        &self,
        request: Request<pb::CreateImageTriggerRequest>,
    ) -> Result<Response<pb::ImageTrigger>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let application = parse_id("application_id", &r.application_id)?;
        let new = NewTrigger::parse(&r.repository, &r.tags, &r.parameter)?;
        Ok(Response::new(trigger_pb(
            self.triggers.create(&caller, application, new).await?,
        )))
    }

    async fn list_image_triggers(
        &self,
        request: Request<pb::ListImageTriggersRequest>,
    ) -> Result<Response<pb::ListImageTriggersResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let application = parse_id("application_id", &r.application_id)?;
        let p = r.page.unwrap_or_default();
        let page = Page::parse(p.limit, &p.cursor)?;
        let (triggers, next) = self.triggers.list(&caller, application, page).await?;
        Ok(Response::new(pb::ListImageTriggersResponse {
            triggers: triggers.into_iter().map(trigger_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn delete_image_trigger(
        &self,
        request: Request<pb::DeleteImageTriggerRequest>,
    ) -> Result<Response<pb::DeleteImageTriggerResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.triggers.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteImageTriggerResponse {}))
    }
}
