//! The images gRPC API.

use std::sync::Arc;

use kernel::grpc::{caller, timestamp};
use kernel::id::parse_id;
use kernel::outbox::Outbox;
use kernel::page::Page;
use paas_proto::v1 as pb;
use paas_proto::v1::images_service_server::ImagesService;
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

use crate::admission::{Admission, ImageUse};
use crate::catalog::{Repository, Search, Tag};
use crate::gate::{Gate, ProxiedRequest};
use crate::lifecycle::State;
use crate::registry::{NewRegistry, Placement, Registries, Registry};
use crate::replication::{self, Item, Replications, RuleSpec};
use crate::retention::{Deletion, GcRun, Policy, Retention, Rule, Run};
use crate::robot::{NewRobot, Robot};
use crate::scan::{NewScanner, Scan, Scanner, Scans, Severity};
use crate::signature::{Check, SigningKey};

/// The gRPC face of the images service.
pub struct Images {
    registries: Registries,
    gate: Gate,
    retention: Retention,
    admission: Option<Admission>,
    scans: Option<Scans>,
    replications: Option<(Replications, Arc<Notify>)>,
}

impl Images {
    /// The API over the images schema of `outbox`.
    pub fn new(outbox: Outbox, sealer: crate::seal::Sealer, gate: Gate, retention: Retention) -> Self {
        Self {
            registries: Registries::new(outbox, sealer),
            gate,
            retention,
            admission: None,
            scans: None,
            replications: None,
        }
    }

    /// The API answering scanners, scans and scan policies with `scans`.
    #[must_use]
    pub fn with_scans(mut self, scans: Scans) -> Self {
        self.scans = Some(scans);
        self
    }

    fn scans(&self) -> Result<&Scans, Status> {
        self.scans
            .as_ref()
            .ok_or_else(|| Status::unavailable("scanning is not configured here"))
    }

    /// The API answering `AdmitImages` with `admission`.
    #[must_use]
    pub fn with_admission(mut self, admission: Admission) -> Self {
        self.admission = Some(admission);
        self
    }

    /// Serves replication rules and runs from `replications`, waking the
    /// replicator with `waker` when a run is queued by hand.
    pub fn with_replications(mut self, replications: Replications, waker: Arc<Notify>) -> Self {
        self.replications = Some((replications, waker));
        self
    }

    fn replications(&self) -> Result<&Replications, Status> {
        self.replications
            .as_ref()
            .map(|(r, _)| r)
            .ok_or_else(|| Status::unimplemented("replication is not served here"))
    }

    async fn registry_pb(&self, r: Registry) -> Result<pb::Registry, Status> {
        let placements = self.registries.placements(&[r.id]).await?;
        let p = placements.get(&r.id).cloned().unwrap_or_default();
        Ok(placed(to_pb(r), p))
    }
}

fn placed(mut r: pb::Registry, p: Placement) -> pb::Registry {
    r.data_centre = p.data_centre;
    r.cluster = p.cluster;
    r
}

fn to_pb(r: Registry) -> pb::Registry {
    pb::Registry {
        id: r.id.to_string(),
        name: r.name,
        url: r.url,
        master: r.master,
        created_at: timestamp(r.created_at),
        username: r.username,
        ..Default::default()
    }
}

/// The protobuf enum of a state.
pub fn state_to_pb(s: State) -> pb::TagState {
    match s {
        State::Built => pb::TagState::Built,
        State::Pushed => pb::TagState::Pushed,
        State::Tested => pb::TagState::Tested,
        State::Released => pb::TagState::Released,
        State::Deprecated => pb::TagState::Deprecated,
        State::Deleted => pb::TagState::Deleted,
    }
}

fn state_from_pb(raw: i32) -> Result<State, Status> {
    Ok(match pb::TagState::try_from(raw) {
        Ok(pb::TagState::Built) => State::Built,
        Ok(pb::TagState::Pushed) => State::Pushed,
        Ok(pb::TagState::Tested) => State::Tested,
        Ok(pb::TagState::Released) => State::Released,
        Ok(pb::TagState::Deprecated) => State::Deprecated,
        Ok(pb::TagState::Deleted) => State::Deleted,
        _ => return Err(kernel::Error::invalid("state", "must be a lifecycle state").into()),
    })
}

fn repository_pb(r: Repository) -> pb::Repository {
    pb::Repository {
        id: r.id.to_string(),
        tenant_id: r.tenant_id.to_string(),
        project_id: r.project_id.to_string(),
        name: r.name,
        tag_count: r.tag_count,
        created_at: timestamp(r.created_at),
        updated_at: timestamp(r.updated_at),
    }
}

fn signature_pb(c: Check) -> pb::SignatureStatus {
    let never = c.checked_at == chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    pb::SignatureStatus {
        repository: c.repository,
        digest: c.digest,
        status: c.status,
        key_ids: c.key_ids.iter().map(ToString::to_string).collect(),
        message: c.message,
        checked_at: if never { None } else { timestamp(c.checked_at) },
    }
}

fn signing_key_pb(k: SigningKey) -> pb::SigningKey {
    pb::SigningKey {
        id: k.id.to_string(),
        tenant_id: k.tenant_id.to_string(),
        name: k.name,
        public_key_pem: k.public_key_pem,
        platform_held: k.platform_held,
        created_at: timestamp(k.created_at),
    }
}

/// Tags with their signature status.
async fn signed_tags(pool: &sqlx::PgPool, tags: Vec<Tag>) -> Result<Vec<pb::Tag>, Status> {
    let mut checks = crate::signature::of_tags(pool, &tags).await?;
    Ok(tags
        .into_iter()
        .map(|t| {
            let check = checks.remove(&(t.repository.clone(), t.meta.digest.clone()));
            let mut tag = tag_pb(t);
            tag.signature = check.map(signature_pb);
            tag
        })
        .collect())
}

fn tag_pb(t: Tag) -> pb::Tag {
    pb::Tag {
        id: t.id.to_string(),
        repository_id: t.repository_id.to_string(),
        repository: t.repository,
        name: t.name,
        digest: t.meta.digest,
        media_type: t.meta.media_type,
        size: t.meta.size,
        platforms: t
            .meta
            .platforms
            .into_iter()
            .map(|p| pb::ImagePlatform {
                os: p.os,
                architecture: p.architecture,
                variant: p.variant,
            })
            .collect(),
        created: t.meta.created.and_then(timestamp),
        labels: t.meta.labels.into_iter().collect(),
        exposed_ports: t.meta.exposed_ports,
        entrypoint: t.meta.entrypoint,
        cmd: t.meta.cmd,
        user: t.meta.user,
        source: t.meta.source,
        revision: t.meta.revision,
        state: state_to_pb(t.state) as i32,
        pushed_at: timestamp(t.pushed_at),
        updated_at: timestamp(t.updated_at),
        tenant_id: t.tenant_id.to_string(),
        signature: None,
    }
}

fn scanner_pb(s: Scanner) -> pb::Scanner {
    pb::Scanner {
        id: s.id.to_string(),
        name: s.name,
        url: s.url,
        scan_on_push: s.scan_on_push,
        is_default: s.is_default,
        adapter_name: s.adapter_name,
        adapter_vendor: s.adapter_vendor,
        adapter_version: s.adapter_version,
        created_at: timestamp(s.created_at),
    }
}

fn scan_pb(s: Scan) -> pb::Scan {
    let count = |severity| s.summary.get(&severity).copied().unwrap_or(0);
    pb::Scan {
        id: s.id.to_string(),
        tenant_id: s.tenant_id.to_string(),
        summary: Some(pb::SeveritySummary {
            critical: count(Severity::Critical),
            high: count(Severity::High),
            medium: count(Severity::Medium),
            low: count(Severity::Low),
            negligible: count(Severity::Negligible),
            unknown: count(Severity::Unknown),
        }),
        highest_severity: s.highest.map_or(String::new(), |h| h.as_str().to_string()),
        repository: s.repository,
        digest: s.digest,
        scanner: s.scanner,
        status: s.status,
        vulnerabilities: s
            .vulnerabilities
            .into_iter()
            .map(|v| pb::Vulnerability {
                id: v.id,
                severity: v.severity.as_str().to_string(),
                package: v.package,
                version: v.version,
                fix_version: v.fix_version,
            })
            .collect(),
        message: s.message,
        requested_at: timestamp(s.requested_at),
        finished_at: s.finished_at.and_then(timestamp),
    }
}

fn robot_pb(r: Robot) -> pb::Robot {
    pb::Robot {
        id: r.id.to_string(),
        tenant_id: r.tenant_id.to_string(),
        project_id: r.project_id.to_string(),
        name: r.name,
        scopes: r.scopes,
        created_at: timestamp(r.created_at),
        expires_at: r.expires_at.and_then(timestamp),
    }
}

fn policy_pb(repository: String, tenant: String, p: Policy) -> pb::RetentionRule {
    pb::RetentionRule {
        repository_id: repository,
        tenant_id: tenant,
        keep_last: p.keep_last,
        keep_released: p.keep_released,
        untagged_days: p.untagged_days,
        next_run_at: None,
        updated_by: String::new(),
        updated_at: None,
    }
}

fn rule_pb(r: Rule) -> pb::RetentionRule {
    pb::RetentionRule {
        next_run_at: timestamp(r.next_run_at),
        updated_by: r.updated_by,
        updated_at: timestamp(r.updated_at),
        ..policy_pb(r.repository_id.to_string(), r.tenant_id.to_string(), r.policy)
    }
}

fn deletions_pb(ds: Vec<Deletion>) -> Vec<pb::RetentionDeletion> {
    ds.into_iter()
        .map(|d| pb::RetentionDeletion {
            digest: d.digest,
            tags: d.tags,
            reason: d.reason,
        })
        .collect()
}

fn run_pb(r: Run) -> pb::RetentionRun {
    pb::RetentionRun {
        id: r.id.to_string(),
        repository_id: r.repository_id.to_string(),
        tenant_id: r.tenant_id.to_string(),
        trigger: r.trigger,
        state: r.state,
        actor: r.actor,
        rule: Some(policy_pb(
            r.repository_id.to_string(),
            r.tenant_id.to_string(),
            r.policy,
        )),
        planned: deletions_pb(r.planned),
        deleted: deletions_pb(r.deleted),
        skipped: deletions_pb(r.skipped),
        error: r.error.unwrap_or_default(),
        started_at: timestamp(r.started_at),
        finished_at: r.finished_at.and_then(timestamp),
    }
}

fn gc_pb(g: GcRun) -> pb::GcRun {
    pb::GcRun {
        id: g.id.to_string(),
        registry_id: g.registry_id.to_string(),
        trigger: g.trigger,
        state: g.state,
        blobs_deleted: g.blobs_deleted,
        freed_bytes: g.freed_bytes,
        output: g.output,
        error: g.error.unwrap_or_default(),
        created_at: timestamp(g.created_at),
        finished_at: g.finished_at.and_then(timestamp),
    }
}

fn page_of(p: Option<pb::PageRequest>) -> Result<Page, Status> {
    let p = p.unwrap_or_default();
    Ok(Page::parse(p.limit, &p.cursor)?)
}

#[tonic::async_trait]
impl ImagesService for Images {
    async fn create_registry(
        &self,
        request: Request<pb::CreateRegistryRequest>,
    ) -> Result<Response<pb::Registry>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let new = NewRegistry::parse_with_login(&r.name, &r.url, r.master, &r.username, &r.password)?;
        let placement = Placement::parse(&r.data_centre, &r.cluster)?;
        if r.master && placement.is_placed() {
            return Err(kernel::Error::invalid("data_centre", "the master registry belongs to no data centre").into());
        }
        let registry = self.registries.create(&caller, new).await?;
        if placement.is_placed() {
            self.registries.place(&caller, registry.id, &placement).await?;
        }
        Ok(Response::new(placed(to_pb(registry), placement)))
    }

    async fn get_registry(&self, request: Request<pb::GetRegistryRequest>) -> Result<Response<pb::Registry>, Status> {
        caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let registry = self.registries.get(id).await?;
        Ok(Response::new(self.registry_pb(registry).await?))
    }

    async fn list_registries(
        &self,
        request: Request<pb::ListRegistriesRequest>,
    ) -> Result<Response<pb::ListRegistriesResponse>, Status> {
        caller(&request)?;
        let (registries, next) = self.registries.list(page_of(request.into_inner().page)?).await?;
        let ids: Vec<_> = registries.iter().map(|r| r.id).collect();
        let placements = self.registries.placements(&ids).await?;
        Ok(Response::new(pb::ListRegistriesResponse {
            registries: registries
                .into_iter()
                .map(|r| {
                    let p = placements.get(&r.id).cloned().unwrap_or_default();
                    placed(to_pb(r), p)
                })
                .collect(),
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

    async fn issue_registry_token(
        &self,
        request: Request<pb::IssueRegistryTokenRequest>,
    ) -> Result<Response<pb::RegistryToken>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let subject = if r.robot_name.is_empty() {
            Gate::subject(caller)
        } else {
            // Only the gateway, which read the robot's Basic credentials, asks for robots.
            caller.require_platform_admin()?;
            self.gate.robot(&r.robot_name, &r.robot_secret).await?
        };
        let (token, claims) = self.gate.issue(&subject, &r.service, &r.scopes).await?;
        Ok(Response::new(pb::RegistryToken {
            token,
            expires_in: claims.exp - claims.iat,
            issued_at: chrono::DateTime::from_timestamp(claims.iat, 0).and_then(timestamp),
        }))
    }

    async fn get_token_certificate(
        &self,
        request: Request<pb::GetTokenCertificateRequest>,
    ) -> Result<Response<pb::TokenCertificate>, Status> {
        caller(&request)?;
        Ok(Response::new(pb::TokenCertificate {
            certificate_pem: self.gate.certificate_pem().to_string(),
            issuer: crate::signing::ISSUER.to_string(),
            service: crate::signing::SERVICE.to_string(),
        }))
    }

    async fn authorize_registry_request(
        &self,
        request: Request<pb::AuthorizeRegistryRequestRequest>,
    ) -> Result<Response<pb::RegistryDecision>, Status> {
        caller(&request)?.require_platform_admin()?;
        let r = request.into_inner();
        let decision = self
            .gate
            .authorize(&ProxiedRequest {
                method: &r.method,
                path: &r.path,
                authorization: &r.authorization,
                content_length: (r.content_length >= 0).then_some(r.content_length),
            })
            .await?;
        let refusal = decision.refusal.clone();
        Ok(Response::new(pb::RegistryDecision {
            allowed: refusal.is_none(),
            status: refusal.as_ref().map_or(0, |r| u32::from(r.status)),
            code: refusal.as_ref().map_or(String::new(), |r| r.code.to_string()),
            message: refusal.map_or(String::new(), |r| r.message),
            upstream_url: decision.upstream,
            subject: decision.subject,
        }))
    }

    async fn record_registry_events(
        &self,
        request: Request<pb::RecordRegistryEventsRequest>,
    ) -> Result<Response<pb::RecordRegistryEventsResponse>, Status> {
        caller(&request)?.require_platform_admin()?;
        let recorded = self.gate.record(&request.into_inner().envelope).await?;
        Ok(Response::new(pb::RecordRegistryEventsResponse {
            recorded: recorded
                .into_iter()
                .map(|r| pb::RegistryEventRecord {
                    id: r.id,
                    action: r.action,
                    repository: r.repository,
                    tag: r.tag,
                    digest: r.digest,
                    actor: r.actor,
                    tenant_id: r.tenant.map(|t| t.to_string()).unwrap_or_default(),
                })
                .collect(),
        }))
    }

    async fn list_repositories(
        &self,
        request: Request<pb::ListRepositoriesRequest>,
    ) -> Result<Response<pb::ListRepositoriesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let search = Search {
            tenant: if r.tenant_id.is_empty() {
                None
            } else {
                Some(parse_id("tenant_id", &r.tenant_id)?)
            },
            query: r.query,
            label: r.label,
        };
        let (repos, next) = self
            .gate
            .catalog()
            .repositories(&caller, &search, page_of(r.page)?)
            .await?;
        Ok(Response::new(pb::ListRepositoriesResponse {
            repositories: repos.into_iter().map(repository_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn list_tags(&self, request: Request<pb::ListTagsRequest>) -> Result<Response<pb::ListTagsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let repository = parse_id("repository_id", &r.repository_id)?;
        let (tags, next) = self.gate.catalog().tags(&caller, repository, page_of(r.page)?).await?;
        Ok(Response::new(pb::ListTagsResponse {
            tags: signed_tags(self.gate.signatures().pool(), tags).await?,
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn get_tag(&self, request: Request<pb::GetTagRequest>) -> Result<Response<pb::Tag>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let repository = parse_id("repository_id", &r.repository_id)?;
        let tag = self.gate.catalog().tag(&caller, repository, &r.tag).await?;
        let mut tags = signed_tags(self.gate.signatures().pool(), vec![tag]).await?;
        Ok(Response::new(tags.remove(0)))
    }

    async fn move_tag(&self, request: Request<pb::MoveTagRequest>) -> Result<Response<pb::Tag>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let repository = parse_id("repository_id", &r.repository_id)?;
        let to = state_from_pb(r.state)?;
        Ok(Response::new(tag_pb(
            self.gate.catalog().move_tag(&caller, repository, &r.tag, to).await?,
        )))
    }

    async fn create_robot(
        &self,
        request: Request<pb::CreateRobotRequest>,
    ) -> Result<Response<pb::CreatedRobot>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let new = NewRobot::parse(&r.tenant_id, &r.project_id, &r.name, &r.scopes, r.days)?;
        caller.require(new.tenant, kernel::caller::Role::TenantAdmin, "tenant", new.tenant)?;
        let (tenant, project) = self.gate.tenancy().names(new.tenant, new.project).await?;
        let (robot, secret) = self.gate.robots().create(&caller, new, &tenant, &project).await?;
        Ok(Response::new(pb::CreatedRobot {
            robot: Some(robot_pb(robot)),
            secret,
        }))
    }

    async fn list_robots(
        &self,
        request: Request<pb::ListRobotsRequest>,
    ) -> Result<Response<pb::ListRobotsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        let (robots, next) = self.gate.robots().list(&caller, tenant, page_of(r.page)?).await?;
        Ok(Response::new(pb::ListRobotsResponse {
            robots: robots.into_iter().map(robot_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn delete_robot(
        &self,
        request: Request<pb::DeleteRobotRequest>,
    ) -> Result<Response<pb::DeleteRobotResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.gate.robots().delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteRobotResponse {}))
    }

    async fn set_storage_quota(
        &self,
        request: Request<pb::SetStorageQuotaRequest>,
    ) -> Result<Response<pb::StorageQuota>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        self.gate.catalog().set_storage_limit(&caller, tenant, r.bytes).await?;
        let (limit, used) = self.gate.catalog().storage(tenant).await?;
        Ok(Response::new(pb::StorageQuota {
            tenant_id: tenant.to_string(),
            limit_bytes: limit,
            used_bytes: used,
        }))
    }

    async fn get_storage_quota(
        &self,
        request: Request<pb::GetStorageQuotaRequest>,
    ) -> Result<Response<pb::StorageQuota>, Status> {
        let caller = caller(&request)?;
        let tenant = parse_id("tenant_id", &request.get_ref().tenant_id)?;
        let (limit, used) = self.gate.catalog().storage_for(&caller, tenant).await?;
        Ok(Response::new(pb::StorageQuota {
            tenant_id: tenant.to_string(),
            limit_bytes: limit,
            used_bytes: used,
        }))
    }

    async fn put_retention_rule(
        &self,
        request: Request<pb::PutRetentionRuleRequest>,
    ) -> Result<Response<pb::RetentionRule>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let repository = parse_id("repository_id", &r.repository_id)?;
        let policy = Policy::parse(r.keep_last, r.keep_released, r.untagged_days)?;
        let rule = self.retention.put_rule(&caller, repository, policy).await?;
        Ok(Response::new(rule_pb(rule)))
    }

    async fn get_retention_rule(
        &self,
        request: Request<pb::GetRetentionRuleRequest>,
    ) -> Result<Response<pb::RetentionRule>, Status> {
        let caller = caller(&request)?;
        let repository = parse_id("repository_id", &request.into_inner().repository_id)?;
        Ok(Response::new(rule_pb(self.retention.rule(&caller, repository).await?)))
    }

    async fn delete_retention_rule(
        &self,
        request: Request<pb::GetRetentionRuleRequest>,
    ) -> Result<Response<pb::DeleteRetentionRuleResponse>, Status> {
        let caller = caller(&request)?;
        let repository = parse_id("repository_id", &request.into_inner().repository_id)?;
        self.retention.delete_rule(&caller, repository).await?;
        Ok(Response::new(pb::DeleteRetentionRuleResponse {}))
    }

    async fn preview_retention(
        &self,
        request: Request<pb::GetRetentionRuleRequest>,
    ) -> Result<Response<pb::RetentionPreview>, Status> {
        let caller = caller(&request)?;
        let repository = parse_id("repository_id", &request.into_inner().repository_id)?;
        let deletions = self.retention.preview(&caller, repository).await?;
        Ok(Response::new(pb::RetentionPreview {
            deletions: deletions_pb(deletions),
        }))
    }

    async fn run_retention(
        &self,
        request: Request<pb::GetRetentionRuleRequest>,
    ) -> Result<Response<pb::RetentionRun>, Status> {
        let caller = caller(&request)?;
        let repository = parse_id("repository_id", &request.into_inner().repository_id)?;
        Ok(Response::new(run_pb(
            self.retention.run_now(&caller, repository).await?,
        )))
    }

    async fn get_retention_run(
        &self,
        request: Request<pb::GetRetentionRunRequest>,
    ) -> Result<Response<pb::RetentionRun>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.into_inner().id)?;
        Ok(Response::new(run_pb(self.retention.run(&caller, id).await?)))
    }

    async fn list_retention_runs(
        &self,
        request: Request<pb::ListRetentionRunsRequest>,
    ) -> Result<Response<pb::ListRetentionRunsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let repository = parse_id("repository_id", &r.repository_id)?;
        let (runs, next) = self.retention.runs(&caller, repository, page_of(r.page)?).await?;
        Ok(Response::new(pb::ListRetentionRunsResponse {
            runs: runs.into_iter().map(run_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn set_registry_gc_config(
        &self,
        request: Request<pb::SetRegistryGcConfigRequest>,
    ) -> Result<Response<pb::SetRegistryGcConfigResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let registry = parse_id("registry_id", &r.registry_id)?;
        self.retention.set_gc_config(&caller, registry, &r.config).await?;
        Ok(Response::new(pb::SetRegistryGcConfigResponse {}))
    }

    async fn collect_registry_garbage(
        &self,
        request: Request<pb::CollectRegistryGarbageRequest>,
    ) -> Result<Response<pb::GcRun>, Status> {
        let caller = caller(&request)?;
        let registry = parse_id("registry_id", &request.into_inner().registry_id)?;
        Ok(Response::new(gc_pb(self.retention.collect(&caller, registry).await?)))
    }

    async fn list_gc_runs(
        &self,
        request: Request<pb::ListGcRunsRequest>,
    ) -> Result<Response<pb::ListGcRunsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let registry = parse_id("registry_id", &r.registry_id)?;
        let (runs, next) = self.retention.gc_runs(&caller, registry, page_of(r.page)?).await?;
        Ok(Response::new(pb::ListGcRunsResponse {
            runs: runs.into_iter().map(gc_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn admit_images(
        &self,
        request: Request<pb::AdmitImagesRequest>,
    ) -> Result<Response<pb::AdmitImagesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        // Apps asks for any tenant; a user may ask only for their own.
        caller.require(tenant, kernel::caller::Role::Viewer, "tenant", tenant)?;
        let admission = self
            .admission
            .as_ref()
            .ok_or_else(|| Status::unavailable("admission is not configured here"))?;
        let uses: Vec<ImageUse> = r
            .images
            .into_iter()
            .map(|u| ImageUse {
                field: u.field,
                image: u.image,
                ports: u.ports,
                has_command: u.has_command,
            })
            .collect();
        let admitted = admission.admit(tenant, &r.environment, &uses).await?;
        Ok(Response::new(pb::AdmitImagesResponse {
            images: admitted
                .into_iter()
                .map(|a| pb::AdmittedImage {
                    field: a.field,
                    image: a.image,
                    digest: a.digest.unwrap_or_default(),
                })
                .collect(),
        }))
    }

    async fn create_scanner(
        &self,
        request: Request<pb::CreateScannerRequest>,
    ) -> Result<Response<pb::Scanner>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let new = NewScanner::parse(&r.name, &r.url, &r.authorization, r.scan_on_push, r.is_default)?;
        Ok(Response::new(scanner_pb(
            self.scans()?.create_scanner(&caller, new).await?,
        )))
    }

    async fn list_scanners(
        &self,
        request: Request<pb::ListScannersRequest>,
    ) -> Result<Response<pb::ListScannersResponse>, Status> {
        caller(&request)?;
        let (scanners, next) = self.scans()?.scanners(page_of(request.into_inner().page)?).await?;
        Ok(Response::new(pb::ListScannersResponse {
            scanners: scanners.into_iter().map(scanner_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn delete_scanner(
        &self,
        request: Request<pb::DeleteScannerRequest>,
    ) -> Result<Response<pb::DeleteScannerResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.scans()?.delete_scanner(&caller, id).await?;
        Ok(Response::new(pb::DeleteScannerResponse {}))
    }

    async fn scan_tag(&self, request: Request<pb::ScanTagRequest>) -> Result<Response<pb::Scan>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let repository = parse_id("repository_id", &r.repository_id)?;
        let tag = self.gate.catalog().tag(&caller, repository, &r.tag).await?;
        caller.require(tag.tenant_id, kernel::caller::Role::Developer, "tag", &r.tag)?;
        let scan = self
            .scans()?
            .request(tag.tenant_id, &tag.repository, &tag.meta.digest)
            .await?;
        Ok(Response::new(scan_pb(scan)))
    }

    async fn get_tag_scan(&self, request: Request<pb::GetTagScanRequest>) -> Result<Response<pb::Scan>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let repository = parse_id("repository_id", &r.repository_id)?;
        let tag = self.gate.catalog().tag(&caller, repository, &r.tag).await?;
        let scan = crate::scan::of_digest(self.scans()?.pool(), &tag.repository, &tag.meta.digest)
            .await?
            .ok_or_else(|| kernel::Error::not_found("scan", &r.tag))?;
        Ok(Response::new(scan_pb(scan)))
    }

    async fn set_scan_policy(
        &self,
        request: Request<pb::SetScanPolicyRequest>,
    ) -> Result<Response<pb::ScanPolicy>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        let max = if r.max_severity.is_empty() {
            None
        } else {
            Some(Severity::parse("max_severity", &r.max_severity)?)
        };
        self.scans()?.set_policy(&caller, tenant, &r.environment, max).await?;
        Ok(Response::new(pb::ScanPolicy {
            tenant_id: tenant.to_string(),
            environment: r.environment,
            max_severity: max.map_or(String::new(), |m| m.as_str().to_string()),
        }))
    }

    async fn get_scan_policy(
        &self,
        request: Request<pb::GetScanPolicyRequest>,
    ) -> Result<Response<pb::ScanPolicy>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        let max = self.scans()?.policy(&caller, tenant, &r.environment).await?;
        Ok(Response::new(pb::ScanPolicy {
            tenant_id: tenant.to_string(),
            environment: r.environment,
            max_severity: max.map_or(String::new(), |m| m.as_str().to_string()),
        }))
    }
    async fn create_replication_rule(
        &self,
        request: Request<pb::CreateReplicationRuleRequest>,
    ) -> Result<Response<pb::ReplicationRule>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        let spec = RuleSpec::parse(&r.repositories, &r.registry_ids, r.on_push, &r.schedule, r.enabled)?;
        let rule = self.replications()?.create(&caller, tenant, &r.name, spec).await?;
        Ok(Response::new(replication_rule_pb(rule)))
    }

    async fn get_replication_rule(
        &self,
        request: Request<pb::GetReplicationRuleRequest>,
    ) -> Result<Response<pb::ReplicationRule>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(replication_rule_pb(
            self.replications()?.get(&caller, id).await?,
        )))
    }

    async fn list_replication_rules(
        &self,
        request: Request<pb::ListReplicationRulesRequest>,
    ) -> Result<Response<pb::ListReplicationRulesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        let (rules, next) = self.replications()?.list(&caller, tenant, page_of(r.page)?).await?;
        Ok(Response::new(pb::ListReplicationRulesResponse {
            rules: rules.into_iter().map(replication_rule_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn update_replication_rule(
        &self,
        request: Request<pb::UpdateReplicationRuleRequest>,
    ) -> Result<Response<pb::ReplicationRule>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("id", &r.id)?;
        let spec = RuleSpec::parse(&r.repositories, &r.registry_ids, r.on_push, &r.schedule, r.enabled)?;
        Ok(Response::new(replication_rule_pb(
            self.replications()?.update(&caller, id, spec).await?,
        )))
    }

    async fn delete_replication_rule(
        &self,
        request: Request<pb::DeleteReplicationRuleRequest>,
    ) -> Result<Response<pb::DeleteReplicationRuleResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.replications()?.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteReplicationRuleResponse {}))
    }

    async fn trigger_replication(
        &self,
        request: Request<pb::TriggerReplicationRequest>,
    ) -> Result<Response<pb::ReplicationRun>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("rule_id", &request.get_ref().rule_id)?;
        let run = self.replications()?.trigger(&caller, id).await?;
        if let Some((_, waker)) = &self.replications {
            waker.notify_one();
        }
        Ok(Response::new(replication_run_pb(run, Vec::new())))
    }

    async fn list_replication_runs(
        &self,
        request: Request<pb::ListReplicationRunsRequest>,
    ) -> Result<Response<pb::ListReplicationRunsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let rule = parse_id("rule_id", &r.rule_id)?;
        let (runs, next) = self.replications()?.runs(&caller, rule, page_of(r.page)?).await?;
        Ok(Response::new(pb::ListReplicationRunsResponse {
            runs: runs.into_iter().map(|r| replication_run_pb(r, Vec::new())).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn get_replication_run(
        &self,
        request: Request<pb::GetReplicationRunRequest>,
    ) -> Result<Response<pb::ReplicationRun>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let (run, items) = self.replications()?.run(&caller, id).await?;
        Ok(Response::new(replication_run_pb(run, items)))
    }

    async fn create_signing_key(
        &self,
        request: Request<pb::CreateSigningKeyRequest>,
    ) -> Result<Response<pb::SigningKey>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        let public = (!r.public_key_pem.trim().is_empty()).then_some(r.public_key_pem.as_str());
        let key = self
            .gate
            .signatures()
            .create_key(&caller, tenant, &r.name, public)
            .await?;
        Ok(Response::new(signing_key_pb(key)))
    }

    async fn list_signing_keys(
        &self,
        request: Request<pb::ListSigningKeysRequest>,
    ) -> Result<Response<pb::ListSigningKeysResponse>, Status> {
        let caller = caller(&request)?;
        let tenant = parse_id("tenant_id", &request.get_ref().tenant_id)?;
        let keys = self.gate.signatures().keys(&caller, tenant).await?;
        Ok(Response::new(pb::ListSigningKeysResponse {
            keys: keys.into_iter().map(signing_key_pb).collect(),
        }))
    }

    async fn delete_signing_key(
        &self,
        request: Request<pb::DeleteSigningKeyRequest>,
    ) -> Result<Response<pb::DeleteSigningKeyResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        let key = parse_id("id", &r.id)?;
        self.gate.signatures().delete_key(&caller, tenant, key).await?;
        Ok(Response::new(pb::DeleteSigningKeyResponse {}))
    }

    async fn sign_tag(&self, request: Request<pb::SignTagRequest>) -> Result<Response<pb::SignatureStatus>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let repository = parse_id("repository_id", &r.repository_id)?;
        let key = parse_id("key_id", &r.key_id)?;
        let tag = self.gate.catalog().tag(&caller, repository, &r.tag).await?;
        let check = self.gate.signatures().sign(&caller, &tag, key).await?;
        Ok(Response::new(signature_pb(check)))
    }

    async fn check_tag_signatures(
        &self,
        request: Request<pb::CheckTagSignaturesRequest>,
    ) -> Result<Response<pb::SignatureStatus>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let repository = parse_id("repository_id", &r.repository_id)?;
        let tag = self.gate.catalog().tag(&caller, repository, &r.tag).await?;
        let check = self
            .gate
            .signatures()
            .check(tag.tenant_id, &tag.repository, &tag.meta.digest)
            .await?;
        Ok(Response::new(signature_pb(check)))
    }

    async fn set_signature_policy(
        &self,
        request: Request<pb::SetSignaturePolicyRequest>,
    ) -> Result<Response<pb::SignaturePolicy>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        self.gate
            .signatures()
            .set_policy(&caller, tenant, &r.environment, r.required)
            .await?;
        Ok(Response::new(pb::SignaturePolicy {
            tenant_id: tenant.to_string(),
            environment: r.environment,
            required: r.required,
        }))
    }

    async fn get_signature_policy(
        &self,
        request: Request<pb::GetSignaturePolicyRequest>,
    ) -> Result<Response<pb::SignaturePolicy>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        let required = self.gate.signatures().policy(&caller, tenant, &r.environment).await?;
        Ok(Response::new(pb::SignaturePolicy {
            tenant_id: tenant.to_string(),
            environment: r.environment,
            required,
        }))
    }
}

fn replication_rule_pb(r: replication::Rule) -> pb::ReplicationRule {
    pb::ReplicationRule {
        id: r.id.to_string(),
        tenant_id: r.tenant_id.to_string(),
        name: r.name,
        repositories: r.repositories,
        registry_ids: r.registry_ids.iter().map(ToString::to_string).collect(),
        on_push: r.on_push,
        schedule: r.schedule,
        enabled: r.enabled,
        created_at: timestamp(r.created_at),
        updated_at: timestamp(r.updated_at),
        status: Some(pb::ReplicationRuleStatus {
            last_run_id: r
                .status
                .last_run_id
                .as_ref()
                .map_or_else(String::new, ToString::to_string),
            last_run_state: r.status.last_run_state,
            last_succeeded_at: r.status.last_succeeded_at.and_then(timestamp),
            pending_items: r.status.pending_items,
            lag_seconds: r.status.lag_seconds,
            next_scheduled_at: r.status.next_scheduled_at.and_then(timestamp),
        }),
    }
}

fn replication_run_pb(r: replication::Run, items: Vec<Item>) -> pb::ReplicationRun {
    pb::ReplicationRun {
        id: r.id.to_string(),
        rule_id: r.rule_id.to_string(),
        tenant_id: r.tenant_id.to_string(),
        trigger: r.trigger,
        state: r.state,
        attempts: r.attempts,
        items_total: r.items_total,
        items_copied: r.items_copied,
        items_failed: r.items_failed,
        bytes: r.bytes,
        message: r.message,
        created_at: timestamp(r.created_at),
        started_at: r.started_at.and_then(timestamp),
        finished_at: r.finished_at.and_then(timestamp),
        items: items
            .into_iter()
            .map(|i| pb::ReplicationItem {
                registry_id: i.registry_id.to_string(),
                repository: i.repository,
                tag: i.tag,
                digest: i.digest,
                state: i.state,
                bytes: i.bytes,
                error: i.error,
            })
            .collect(),
    }
}
