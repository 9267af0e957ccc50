//! The tenancy gRPC API: proto in, domain calls, proto out. Errors become
//! statuses through the kernel's single mapping.

use kernel::grpc::{caller, timestamp};
use kernel::id::parse_id;
use kernel::outbox::Outbox;
use kernel::page::Page;
use paas_proto::v1 as pb;
use paas_proto::v1::tenancy_service_server::TenancyService;
use tonic::{Request, Response, Status};

use crate::member::{self, Binding, Grant, Members};
use crate::partition::{LimitItem, LimitRange, NewPartition, Partition, Partitions};
use crate::project::{NewProject, Project, Projects};
use crate::quota::{Quotas, TenantQuota};
use crate::reservation::{self, Reservation, Reservations};
use crate::resource::ResourceList;
use crate::resource_request::{self, Form, ResourceRequests, Spec, Step};
use crate::tenant::{self, NewTenant, Tenant, TenantChange, Tenants};
use crate::usage::UsageHistory;

/// The gRPC face of the tenancy service.
pub struct Tenancy {
    tenants: Tenants,
    projects: Projects,
    partitions: Partitions,
    quotas: Quotas,
    reservations: Reservations,
    requests: ResourceRequests,
    members: Members,
    usage: UsageHistory,
}

impl Tenancy {
    /// The API over the tenancy schema of `outbox`.
    pub fn new(outbox: Outbox) -> Self {
        Self {
            tenants: Tenants::new(outbox.clone()),
            projects: Projects::new(outbox.clone()),
            partitions: Partitions::new(outbox.clone()),
            reservations: Reservations::new(outbox.pool().clone()),
            requests: ResourceRequests::new(outbox.clone()),
            members: Members::new(outbox.clone()),
            usage: UsageHistory::new(outbox.pool().clone()),
            quotas: Quotas::new(outbox),
        }
    }
}

fn page(p: Option<pb::PageRequest>) -> kernel::Result<Page> {
    let p = p.unwrap_or_default();
    Page::parse(p.limit, &p.cursor)
}

fn list(field: &str, l: Option<pb::ResourceList>) -> kernel::Result<ResourceList> {
    let amounts = l.unwrap_or_default().amounts;
    ResourceList::parse(field, amounts.iter())
}

fn list_to_pb(l: &ResourceList) -> pb::ResourceList {
    pb::ResourceList {
        amounts: l.to_strings().into_iter().collect(),
    }
}

fn item_from_pb(i: Option<pb::LimitItem>) -> LimitItem {
    let i = i.unwrap_or_default();
    let m = |m: std::collections::HashMap<String, String>| m.into_iter().collect();
    LimitItem {
        min: m(i.min),
        max: m(i.max),
        default: m(i.default),
        default_request: m(i.default_request),
        max_limit_request_ratio: m(i.max_limit_request_ratio),
    }
}

fn item_to_pb(i: &LimitItem) -> pb::LimitItem {
    let m = |m: &std::collections::BTreeMap<String, String>| m.clone().into_iter().collect();
    pb::LimitItem {
        min: m(&i.min),
        max: m(&i.max),
        default: m(&i.default),
        default_request: m(&i.default_request),
        max_limit_request_ratio: m(&i.max_limit_request_ratio),
    }
}

fn project_to_pb(p: Project) -> pb::Project {
    pb::Project {
        id: p.id.to_string(),
        tenant_id: p.tenant_id.to_string(),
        name: p.name,
        display_name: p.display_name,
        description: p.description,
        created_at: timestamp(p.created_at),
    }
}

fn partition_to_pb(p: Partition) -> pb::Partition {
    pb::Partition {
        id: p.id.to_string(),
        tenant_id: p.tenant_id.to_string(),
        project_id: p.project_id.to_string(),
        cluster: p.cluster,
        data_centre: p.data_centre,
        namespace: p.namespace,
        node_selector: p.node_selector.into_iter().collect(),
        network_policy: p.network_policy,
        limit_range: Some(pb::LimitRange {
            container: Some(item_to_pb(&p.limit_range.container)),
            pod: Some(item_to_pb(&p.limit_range.pod)),
        }),
        created_at: timestamp(p.created_at),
    }
}

fn member_to_pb(b: Binding) -> pb::Member {
    pb::Member {
        id: b.id.to_string(),
        tenant_id: b.tenant_id.to_string(),
        project_id: b.project_id.map(|p| p.to_string()).unwrap_or_default(),
        kind: match b.kind {
            member::Kind::User => "user",
            member::Kind::Group => "group",
        }
        .into(),
        subject: b.subject,
        role: b.role.as_str().into(),
        created_by: b.created_by,
        created_at: timestamp(b.created_at),
    }
}

fn spec_to_pb(s: Spec) -> pb::Spec {
    pb::Spec {
        id: s.id.to_string(),
        name: s.name,
        display_name: s.display_name,
        amounts: Some(list_to_pb(&s.amounts)),
        active: s.active,
    }
}

fn request_to_pb(r: resource_request::Request) -> pb::ResourceRequest {
    let f = r.form;
    pb::ResourceRequest {
        id: r.id.to_string(),
        tenant_id: r.tenant_id.to_string(),
        form: Some(pb::ResourceRequestForm {
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
            spec_id: f.spec_id.to_string(),
            count: f.count,
            remarks: f.remarks,
            dr_reserve: f.dr_reserve,
        }),
        state: r.state.as_str().into(),
        created_by: r.created_by,
        created_at: timestamp(r.created_at),
        steps: r
            .steps
            .into_iter()
            .map(|s| pb::ResourceRequestStep {
                from_state: s.from_state.unwrap_or_default(),
                to_state: s.to_state,
                actor: s.actor,
                reason: s.reason,
                at: timestamp(s.at),
            })
            .collect(),
    }
}

fn reservation_to_pb(r: Reservation) -> pb::Reservation {
    pb::Reservation {
        id: r.id.to_string(),
        tenant_id: r.tenant_id.to_string(),
        project_id: r.project_id.to_string(),
        partition_id: r.partition_id.to_string(),
        cluster: r.cluster,
        data_centre: r.data_centre,
        idempotency_key: r.idempotency_key,
        amounts: Some(list_to_pb(&r.amounts)),
        state: r.state.as_str().into(),
        expires_at: r.expires_at.and_then(timestamp),
        created_at: timestamp(r.created_at),
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

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let page_req = r.page.unwrap_or_default();
        let page = Page::parse(page_req.limit, &page_req.cursor)?;
        let (tenants, next) = self
            .tenants
            .list(&caller, page, &r.name_prefix, status_from_pb(r.status)?)
            .await?;
        Ok(Response::new(pb::ListTenantsResponse {
            tenants: tenants.into_iter().map(to_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn update_tenant(&self, request: Request<pb::UpdateTenantRequest>) -> Result<Response<pb::Tenant>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("id", &r.id)?;
        let change = TenantChange::parse(
            r.display_name.as_deref(),
            r.contact.as_deref(),
            status_from_pb(r.status)?,
            r.expected_version,
        )?;
        Ok(Response::new(to_pb(self.tenants.update(&caller, id, change).await?)))
    }

    async fn delete_tenant(
        &self,
        request: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<pb::DeleteTenantResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.tenants.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteTenantResponse {}))
    }

    async fn create_project(
        &self,
        request: Request<pb::CreateProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        let new = NewProject::parse(&r.name, &r.display_name, &r.description)?;
        Ok(Response::new(project_to_pb(
            self.projects.create(&caller, tenant, new).await?,
        )))
    }

    async fn get_project(&self, request: Request<pb::GetProjectRequest>) -> Result<Response<pb::Project>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(project_to_pb(self.projects.get(&caller, id).await?)))
    }

    async fn list_projects(
        &self,
        request: Request<pb::ListProjectsRequest>,
    ) -> Result<Response<pb::ListProjectsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        let (projects, next) = self
            .projects
            .list(&caller, tenant, page(r.page)?, &r.name_prefix)
            .await?;
        Ok(Response::new(pb::ListProjectsResponse {
            projects: projects.into_iter().map(project_to_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn delete_project(
        &self,
        request: Request<pb::DeleteProjectRequest>,
    ) -> Result<Response<pb::DeleteProjectResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.projects.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteProjectResponse {}))
    }

    async fn create_partition(
        &self,
        request: Request<pb::CreatePartitionRequest>,
    ) -> Result<Response<pb::Partition>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let project = parse_id("project_id", &r.project_id)?;
        let new = NewPartition::parse(
            &r.cluster,
            &r.data_centre,
            &r.namespace,
            r.node_selector.into_iter().collect(),
            &r.network_policy,
        )?;
        Ok(Response::new(partition_to_pb(
            self.partitions.create(&caller, project, new).await?,
        )))
    }

    async fn get_partition(
        &self,
        request: Request<pb::GetPartitionRequest>,
    ) -> Result<Response<pb::Partition>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(partition_to_pb(self.partitions.get(&caller, id).await?)))
    }

    async fn list_partitions(
        &self,
        request: Request<pb::ListPartitionsRequest>,
    ) -> Result<Response<pb::ListPartitionsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let project = parse_id("project_id", &r.project_id)?;
        let (partitions, next) = self
            .partitions
            .list(&caller, project, &r.cluster, page(r.page)?)
            .await?;
        Ok(Response::new(pb::ListPartitionsResponse {
            partitions: partitions.into_iter().map(partition_to_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn delete_partition(
        &self,
        request: Request<pb::DeletePartitionRequest>,
    ) -> Result<Response<pb::DeletePartitionResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.partitions.delete(&caller, id).await?;
        Ok(Response::new(pb::DeletePartitionResponse {}))
    }

    async fn set_tenant_quota(
        &self,
        request: Request<pb::SetTenantQuotaRequest>,
    ) -> Result<Response<pb::SetQuotaResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        let splits = |field: &str,
                      m: std::collections::HashMap<String, pb::ResourceList>|
         -> kernel::Result<std::collections::BTreeMap<String, ResourceList>> {
            m.into_iter()
                .map(|(k, l)| {
                    kernel::name::DnsLabel::parse(&format!("{field}.{k}"), &k)?;
                    Ok((k.clone(), list(&format!("{field}.{k}"), Some(l))?))
                })
                .collect()
        };
        let quota = TenantQuota {
            hard: list("hard", r.hard)?,
            clusters: splits("clusters", r.clusters)?,
            data_centres: splits("data_centres", r.data_centres)?,
            dr_reserve: list("dr_reserve", r.dr_reserve)?,
        };
        self.quotas.set_tenant(&caller, tenant, &quota).await?;
        Ok(Response::new(pb::SetQuotaResponse {}))
    }

    async fn set_project_quota(
        &self,
        request: Request<pb::SetProjectQuotaRequest>,
    ) -> Result<Response<pb::SetQuotaResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let project = parse_id("project_id", &r.project_id)?;
        self.quotas
            .set_project(&caller, project, &list("hard", r.hard)?)
            .await?;
        Ok(Response::new(pb::SetQuotaResponse {}))
    }

    async fn set_partition_quota(
        &self,
        request: Request<pb::SetPartitionQuotaRequest>,
    ) -> Result<Response<pb::SetQuotaResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("partition_id", &r.partition_id)?;
        let hard = list("hard", r.hard)?;
        let lr = r.limit_range.unwrap_or_default();
        let limit_range = LimitRange::parse(LimitRange {
            container: item_from_pb(lr.container),
            pod: item_from_pb(lr.pod),
        })?;
        let partition = self.partitions.get(&caller, id).await?;
        self.quotas
            .set_partition(&caller, &partition, &hard, limit_range)
            .await?;
        Ok(Response::new(pb::SetQuotaResponse {}))
    }

    async fn get_usage(&self, request: Request<pb::GetUsageRequest>) -> Result<Response<pb::GetUsageResponse>, Status> {
        let caller = caller(&request)?;
        let tenant = parse_id("tenant_id", &request.get_ref().tenant_id)?;
        let scopes = self
            .quotas
            .usage(&caller, tenant)
            .await?
            .into_iter()
            .map(|u| pb::ScopeUsage {
                level: u.scope.level.as_str().into(),
                owner_id: u.scope.owner.to_string(),
                key: u.scope.key,
                lines: u
                    .lines
                    .into_iter()
                    .map(|l| pb::UsageLine {
                        resource: l.resource.as_str().into(),
                        hard: l.hard.map(|h| h.to_string()).unwrap_or_default(),
                        used: l.used.to_string(),
                    })
                    .collect(),
            })
            .collect();
        let observed = self.usage.observed(&caller, tenant).await?;
        let by_name = |sums: std::collections::BTreeMap<String, ResourceList>| {
            sums.into_iter().map(|(k, l)| (k, list_to_pb(&l))).collect()
        };
        Ok(Response::new(pb::GetUsageResponse {
            scopes,
            observed: observed
                .partitions
                .into_iter()
                .map(|(p, l)| (p.to_string(), list_to_pb(&l)))
                .collect(),
            observed_clusters: by_name(observed.clusters),
            observed_data_centres: by_name(observed.data_centres),
        }))
    }

    async fn reserve(&self, request: Request<pb::ReserveRequest>) -> Result<Response<pb::Reservation>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let partition = parse_id("partition_id", &r.partition_id)?;
        let request = reservation::Request::parse(
            partition,
            list("amounts", r.amounts)?,
            &r.idempotency_key,
            r.ttl_seconds,
            r.failover,
        )?;
        Ok(Response::new(reservation_to_pb(
            self.reservations.reserve(&caller, &request).await?,
        )))
    }

    async fn get_reservation(&self, request: Request<pb::ReservationRef>) -> Result<Response<pb::Reservation>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(reservation_to_pb(
            self.reservations.get(&caller, id).await?,
        )))
    }

    async fn commit_reservation(
        &self,
        request: Request<pb::ReservationRef>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(reservation_to_pb(
            self.reservations.commit(&caller, id).await?,
        )))
    }

    async fn release_reservation(
        &self,
        request: Request<pb::ReservationRef>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(reservation_to_pb(
            self.reservations.release(&caller, id).await?,
        )))
    }

    async fn publish_spec(&self, request: Request<pb::PublishSpecRequest>) -> Result<Response<pb::Spec>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let spec = self
            .requests
            .publish_spec(&caller, &r.name, &r.display_name, list("amounts", r.amounts)?)
            .await?;
        Ok(Response::new(spec_to_pb(spec)))
    }

    async fn list_specs(
        &self,
        request: Request<pb::ListSpecsRequest>,
    ) -> Result<Response<pb::ListSpecsResponse>, Status> {
        caller(&request)?;
        let r = request.into_inner();
        let (specs, next) = self.requests.specs(page(r.page)?, r.active_only).await?;
        Ok(Response::new(pb::ListSpecsResponse {
            specs: specs.into_iter().map(spec_to_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn file_resource_request(
        &self,
        request: Request<pb::FileResourceRequestRequest>,
    ) -> Result<Response<pb::ResourceRequest>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        let form = Form::parse(&r.form.unwrap_or_default())?;
        Ok(Response::new(request_to_pb(
            self.requests.file(&caller, tenant, form).await?,
        )))
    }

    async fn get_resource_request(
        &self,
        request: Request<pb::GetResourceRequestRequest>,
    ) -> Result<Response<pb::ResourceRequest>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(request_to_pb(self.requests.get(&caller, id).await?)))
    }

    async fn list_resource_requests(
        &self,
        request: Request<pb::ListResourceRequestsRequest>,
    ) -> Result<Response<pb::ListResourceRequestsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = kernel::id::parse_optional_id("tenant_id", &r.tenant_id)?;
        let state = match r.state.as_str() {
            "" => None,
            "draft" => Some(resource_request::State::Draft),
            "submitted" => Some(resource_request::State::Submitted),
            "approved" => Some(resource_request::State::Approved),
            "rejected" => Some(resource_request::State::Rejected),
            "provisioned" => Some(resource_request::State::Provisioned),
            _ => {
                return Err(kernel::Error::invalid(
                    "state",
                    "must be draft, submitted, approved, rejected or provisioned",
                )
                .into());
            }
        };
        let (requests, next) = self.requests.list(&caller, page(r.page)?, tenant, state).await?;
        Ok(Response::new(pb::ListResourceRequestsResponse {
            requests: requests.into_iter().map(request_to_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn step_resource_request(
        &self,
        request: Request<pb::StepResourceRequestRequest>,
    ) -> Result<Response<pb::ResourceRequest>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("id", &r.id)?;
        let step = match r.step.as_str() {
            "submit" => Step::Submit,
            "approve" => Step::Approve,
            "reject" => Step::Reject,
            "provision" => Step::Provision,
            _ => return Err(kernel::Error::invalid("step", "must be submit, approve, reject or provision").into()),
        };
        let clusters = r
            .clusters
            .into_iter()
            .map(|c| match r.data_centres.get(&c) {
                Some(dc) => Ok((c, dc.clone())),
                None => Err(kernel::Error::invalid(
                    format!("data_centres.{c}"),
                    "is required for every cluster provisioned into",
                )),
            })
            .collect::<kernel::Result<Vec<_>>>()?;
        Ok(Response::new(request_to_pb(
            self.requests.step(&caller, id, step, &r.reason, &clusters).await?,
        )))
    }

    async fn add_member(&self, request: Request<pb::AddMemberRequest>) -> Result<Response<pb::Member>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let grant = Grant::parse(&r.tenant_id, &r.project_id, &r.kind, &r.subject, &r.role)?;
        Ok(Response::new(member_to_pb(self.members.add(&caller, grant).await?)))
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.members.remove(&caller, id).await?;
        Ok(Response::new(pb::RemoveMemberResponse {}))
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        let kind = if r.kind.is_empty() {
            None
        } else {
            Some(member::Kind::parse("kind", &r.kind)?)
        };
        let project = kernel::id::parse_optional_id("project_id", &r.project_id)?;
        let (members, next) = self.members.list(&caller, tenant, page(r.page)?, kind, project).await?;
        Ok(Response::new(pb::ListMembersResponse {
            members: members.into_iter().map(member_to_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn sync_user(&self, request: Request<pb::SyncUserRequest>) -> Result<Response<pb::SyncUserResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        self.members
            .sync_user(&caller, &r.subject, &r.display_name, &r.email, &r.groups)
            .await?;
        Ok(Response::new(pb::SyncUserResponse {}))
    }

    async fn resolve_memberships(
        &self,
        request: Request<pb::ResolveMembershipsRequest>,
    ) -> Result<Response<pb::ResolveMembershipsResponse>, Status> {
        let caller = caller(&request)?;
        let memberships = self.members.memberships(&caller, &request.get_ref().subject).await?;
        Ok(Response::new(pb::ResolveMembershipsResponse {
            memberships: memberships
                .into_iter()
                .map(|m| pb::TenantRole {
                    tenant_id: m.tenant.to_string(),
                    role: m.role.as_str().into(),
                })
                .collect(),
        }))
    }

    async fn report_usage(
        &self,
        request: Request<pb::ReportUsageRequest>,
    ) -> Result<Response<pb::ReportUsageResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let partition = parse_id("partition_id", &r.partition_id)?;
        let at = kernel::grpc::time(r.observed_at).unwrap_or_else(chrono::Utc::now);
        self.usage
            .report(&caller, partition, &list("observed", r.observed)?, at)
            .await?;
        Ok(Response::new(pb::ReportUsageResponse {}))
    }

    async fn get_usage_history(
        &self,
        request: Request<pb::GetUsageHistoryRequest>,
    ) -> Result<Response<pb::GetUsageHistoryResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        let resource = match r.resource.as_str() {
            "" => None,
            name => Some(
                crate::resource::Resource::parse(name)
                    .ok_or_else(|| kernel::Error::invalid("resource", "is not a resource"))?,
            ),
        };
        let until = kernel::grpc::time(r.until).unwrap_or_else(chrono::Utc::now);
        let since = kernel::grpc::time(r.since).unwrap_or(until - chrono::Duration::days(1));
        let points = self.usage.history(&caller, tenant, resource, since, until).await?;
        let text =
            |res: crate::resource::Resource, v: Option<i64>| v.map(|v| res.amount(v).to_string()).unwrap_or_default();
        Ok(Response::new(pb::GetUsageHistoryResponse {
            points: points
                .into_iter()
                .map(|p| pb::UsagePoint {
                    level: p.level,
                    owner_id: p.owner.to_string(),
                    key: p.key,
                    resource: p.resource.as_str().into(),
                    hard: text(p.resource, p.hard),
                    used: text(p.resource, p.used),
                    observed: text(p.resource, p.observed),
                    at: timestamp(p.at),
                })
                .collect(),
        }))
    }
}
