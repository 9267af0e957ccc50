//! The federation gRPC API.

use std::sync::Arc;

use kernel::grpc::{caller, timestamp};
use kernel::id::parse_id;
use kernel::outbox::Outbox;
use kernel::page::Page;
use paas_proto::v1 as pb;
use paas_proto::v1::federation_service_server::FederationService;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::binding::{self, Admission, Bindings};
use crate::cluster::{self, Cluster, Environment, NetworkDomain, NewCluster};
use crate::cluster_settings::ClusterSettings;
use crate::data_centre;
use crate::failover;
use crate::health::Condition;
use crate::known_tenant;
use crate::pull_secret::{self, NewPullSecret, PullSecret};
use crate::settings::SecretKey;

/// The gRPC face of the federation service.
pub struct Federation {
    outbox: Outbox,
    key: SecretKey,
    admission: Arc<dyn Admission>,
    clients: crate::credentials::Clients,
}

impl Federation {
    /// The API over the federation schema of `outbox`, sealing credentials
    /// with `key` and admitting bindings through `admission`.
    pub fn new(outbox: Outbox, key: SecretKey, admission: Arc<dyn Admission>) -> Self {
        let clients = crate::credentials::Clients::new(outbox.pool().clone(), key.clone());
        Self {
            outbox,
            key,
            admission,
            clients,
        }
    }

    fn bindings(&self) -> Bindings<'_> {
        Bindings::new(self.outbox.pool(), &*self.admission)
    }

    fn pool(&self) -> &PgPool {
        self.outbox.pool()
    }
}

fn operation_pb(o: failover::Operation) -> pb::FailoverOperation {
    pb::FailoverOperation {
        id: o.id.to_string(),
        binding_id: o.binding_id.to_string(),
        binding_name: o.binding_name,
        application: o.application,
        tenant_id: o.tenant_id.to_string(),
        kind: o.kind,
        trigger: o.trigger,
        from_cluster: o.from_cluster,
        to_clusters: o.to_clusters,
        state: o.state,
        reason: o.reason,
        fault_detected_at: timestamp(o.fault_detected_at),
        created_at: timestamp(o.created_at),
        replaced_at: o.replaced_at.and_then(timestamp),
        available_at: o.available_at.and_then(timestamp),
        finished_at: o.finished_at.and_then(timestamp),
        steps: o
            .steps
            .0
            .into_iter()
            .map(|s| pb::FailoverStep {
                name: s.name,
                at: timestamp(s.at),
            })
            .collect(),
    }
}

fn condition_pb(c: Condition) -> pb::ClusterCondition {
    pb::ClusterCondition {
        status: c.status.as_str().into(),
        reason: c.reason,
        message: c.message,
        last_probe_time: c.last_probe_at.and_then(timestamp),
        last_transition_time: timestamp(c.last_transition_at),
    }
}

fn settings_pb(s: ClusterSettings) -> pb::ClusterSettings {
    pb::ClusterSettings {
        storage_classes: s.storage.offered,
        default_storage_class: s.storage.default.unwrap_or_default(),
        ingress_classes: s.ingress.offered,
        default_ingress_class: s.ingress.default.unwrap_or_default(),
        node_port_first: u32::from(s.node_ports.first),
        node_port_last: u32::from(s.node_ports.last),
        registry_mirror: s.registry_mirror.unwrap_or_default(),
    }
}

fn pull_secret_pb(p: PullSecret) -> pb::PullSecret {
    pb::PullSecret {
        partition_id: p.partition_id.to_string(),
        secret_name: pull_secret::secret_name(&p.name),
        name: p.name,
        server: p.server,
        username: p.username,
        created_at: timestamp(p.created_at),
        updated_at: timestamp(p.updated_at),
    }
}

fn to_pb(c: Cluster) -> pb::Cluster {
    pb::Cluster {
        id: c.id.to_string(),
        name: c.name,
        api_endpoint: c.api_endpoint,
        data_centre: c.data_centre,
        region: c.region,
        zone: c.zone,
        network_domain: match c.network_domain {
            NetworkDomain::Core => pb::NetworkDomain::Core,
            NetworkDomain::Dmz => pb::NetworkDomain::Dmz,
            NetworkDomain::Internet => pb::NetworkDomain::Internet,
        } as i32,
        environment: match c.environment {
            Environment::Production => pb::Environment::Production,
            Environment::Test => pb::Environment::Test,
            Environment::Dr => pb::Environment::Dr,
        } as i32,
        labels: c.labels.into_iter().collect(),
        created_at: timestamp(c.created_at),
        condition: Some(condition_pb(c.condition)),
        discovery: Some(pb::ClusterDiscovery {
            kubernetes_version: c.discovery.kubernetes_version,
            nodes: c.discovery.nodes,
            capacity: c.discovery.capacity.into_iter().collect(),
            allocatable: c.discovery.allocatable.into_iter().collect(),
            discovered_at: c.discovery.discovered_at.and_then(timestamp),
        }),
        has_credentials: c.has_credentials,
        settings: Some(settings_pb(c.settings)),
    }
}

fn binding_pb(b: binding::Binding, targets: Vec<binding::Target>) -> pb::Binding {
    let (health, reason) = binding::overall(&b, &targets);
    pb::Binding {
        id: b.id.to_string(),
        tenant_id: b.tenant_id.to_string(),
        project_id: b.project_id.map(|p| p.to_string()).unwrap_or_default(),
        name: b.name,
        objects_json: b.objects.0.to_string(),
        placement_json: b.placement.0.to_string(),
        replicas: u32::try_from(b.replicas).unwrap_or(0),
        generation: b.generation,
        revision: b.revision,
        deleting: b.deleted,
        health: health.as_str().into(),
        health_reason: reason,
        created_at: timestamp(b.created_at),
        updated_at: timestamp(b.updated_at),
        failback: b.failback,
        priority: b.priority,
        targets: targets
            .into_iter()
            .map(|t| {
                let (health, reason) = t.health();
                pb::BindingTarget {
                    health: health.as_str().into(),
                    health_reason: reason,
                    cluster: t.cluster,
                    partition_id: t.partition_id.to_string(),
                    namespace: t.namespace,
                    replicas: u32::try_from(t.replicas).unwrap_or(0),
                    removing: t.removing,
                    applied_generation: t.applied_generation,
                    objects_revision: t.objects_revision,
                    last_error: t.last_error.unwrap_or_default(),
                    synced_at: t.synced_at.and_then(timestamp),
                    observed_at: t.observed_at.and_then(timestamp),
                    workloads: t
                        .workloads
                        .0
                        .into_iter()
                        .map(|w| pb::WorkloadStatus {
                            kind: w.kind,
                            name: w.name,
                            desired: w.desired,
                            updated: w.updated,
                            ready: w.ready,
                            available: w.available,
                            conditions: w
                                .conditions
                                .into_iter()
                                .map(|(r#type, status, reason, message)| pb::WorkloadCondition {
                                    r#type,
                                    status,
                                    reason,
                                    message,
                                })
                                .collect(),
                        })
                        .collect(),
                }
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl FederationService for Federation {
    async fn apply_binding(&self, request: Request<pb::ApplyBindingRequest>) -> Result<Response<pb::Binding>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        binding::ownership::check_apply(self.pool(), &caller, tenant, &r.name, &r.break_glass).await?;
        let apply = binding::ApplyRequest {
            tenant,
            project: kernel::id::parse_optional_id("project_id", &r.project_id)?,
            name: kernel::name::DnsLabel::parse("name", &r.name)?,
            objects_json: r.objects_json,
            placement_json: r.placement_json,
            replicas: r.replicas,
            hold: r.hold,
        };
        let (b, targets) = self.bindings().apply(&caller, apply).await?;
        Ok(Response::new(binding_pb(b, targets)))
    }

    async fn get_binding(&self, request: Request<pb::GetBindingRequest>) -> Result<Response<pb::Binding>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let (b, targets) = self.bindings().get(&caller, id).await?;
        Ok(Response::new(binding_pb(b, targets)))
    }

    async fn list_bindings(
        &self,
        request: Request<pb::ListBindingsRequest>,
    ) -> Result<Response<pb::ListBindingsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        let p = r.page.unwrap_or_default();
        let (rows, next) = self
            .bindings()
            .list(&caller, tenant, Page::parse(p.limit, &p.cursor)?)
            .await?;
        Ok(Response::new(pb::ListBindingsResponse {
            bindings: rows.into_iter().map(|(b, t)| binding_pb(b, t)).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn delete_binding(
        &self,
        request: Request<pb::DeleteBindingRequest>,
    ) -> Result<Response<pb::DeleteBindingResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let (b, _) = self.bindings().get(&caller, id).await?;
        caller.require(b.tenant_id, kernel::caller::Role::Developer, "binding", id)?;
        binding::ownership::check(&caller, &b.name, &b.objects, &request.get_ref().break_glass)?;
        self.bindings().delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteBindingResponse {}))
    }

    async fn list_failovers(
        &self,
        request: Request<pb::ListFailoversRequest>,
    ) -> Result<Response<pb::ListFailoversResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let binding = if r.binding_id.is_empty() {
            None
        } else {
            Some(parse_id("binding_id", &r.binding_id)?)
        };
        let p = r.page.unwrap_or_default();
        let (rows, next) = failover::list(self.pool(), &caller, binding, Page::parse(p.limit, &p.cursor)?).await?;
        Ok(Response::new(pb::ListFailoversResponse {
            operations: rows.into_iter().map(operation_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn trigger_failover(
        &self,
        request: Request<pb::TriggerFailoverRequest>,
    ) -> Result<Response<pb::FailoverOperation>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("binding_id", &r.binding_id)?;
        let from = (!r.from_cluster.is_empty()).then_some(r.from_cluster.as_str());
        Ok(Response::new(operation_pb(
            failover::trigger_failover(self.pool(), &caller, id, from).await?,
        )))
    }

    async fn trigger_failback(
        &self,
        request: Request<pb::TriggerFailbackRequest>,
    ) -> Result<Response<pb::FailoverOperation>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("binding_id", &request.get_ref().binding_id)?;
        Ok(Response::new(operation_pb(
            failover::trigger_failback(self.pool(), &caller, id).await?,
        )))
    }

    async fn confirm_failover(
        &self,
        request: Request<pb::ConfirmFailoverRequest>,
    ) -> Result<Response<pb::FailoverOperation>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(operation_pb(
            failover::confirm(self.pool(), &caller, id).await?,
        )))
    }

    async fn register_cluster(
        &self,
        request: Request<pb::RegisterClusterRequest>,
    ) -> Result<Response<pb::Cluster>, Status> {
        let caller = caller(&request)?;
        let new = NewCluster::parse(request.into_inner())?;
        Ok(Response::new(to_pb(
            cluster::register(&self.outbox, &self.key, &caller, new).await?,
        )))
    }

    async fn set_cluster_settings(
        &self,
        request: Request<pb::SetClusterSettingsRequest>,
    ) -> Result<Response<pb::Cluster>, Status> {
        let caller = caller(&request)?;
        caller.require_platform_admin()?;
        let r = request.into_inner();
        let id = r.id.as_str();
        if id.is_empty() {
            return Err(kernel::Error::invalid("id", "must be a cluster id or name").into());
        }
        let settings = ClusterSettings::parse("", r.settings)?;
        Ok(Response::new(to_pb(
            cluster::set_settings(self.pool(), &caller, id, &settings).await?,
        )))
    }

    async fn put_pull_secret(
        &self,
        request: Request<pb::PutPullSecretRequest>,
    ) -> Result<Response<pb::PullSecret>, Status> {
        let caller = caller(&request)?;
        let new = NewPullSecret::parse(request.into_inner())?;
        Ok(Response::new(pull_secret_pb(
            pull_secret::put(self.pool(), &self.key, &caller, new).await?,
        )))
    }

    async fn list_pull_secrets(
        &self,
        request: Request<pb::ListPullSecretsRequest>,
    ) -> Result<Response<pb::ListPullSecretsResponse>, Status> {
        let caller = caller(&request)?;
        let partition = parse_id("partition_id", &request.get_ref().partition_id)?;
        let rows = pull_secret::list(self.pool(), &caller, partition).await?;
        Ok(Response::new(pb::ListPullSecretsResponse {
            pull_secrets: rows.into_iter().map(pull_secret_pb).collect(),
        }))
    }

    async fn delete_pull_secret(
        &self,
        request: Request<pb::DeletePullSecretRequest>,
    ) -> Result<Response<pb::DeletePullSecretResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let partition = parse_id("partition_id", &r.partition_id)?;
        pull_secret::delete(self.pool(), &caller, partition, r.name.trim()).await?;
        Ok(Response::new(pb::DeletePullSecretResponse {}))
    }

    async fn get_cluster(&self, request: Request<pb::GetClusterRequest>) -> Result<Response<pb::Cluster>, Status> {
        caller(&request)?;
        let id = request.get_ref().id.as_str();
        if id.is_empty() {
            return Err(kernel::Error::invalid("id", "must be a cluster id or name").into());
        }
        Ok(Response::new(to_pb(cluster::get(self.pool(), id).await?)))
    }

    async fn list_clusters(
        &self,
        request: Request<pb::ListClustersRequest>,
    ) -> Result<Response<pb::ListClustersResponse>, Status> {
        caller(&request)?;
        let r = request.into_inner();
        let p = r.page.unwrap_or_default();
        let (clusters, next) = cluster::list(self.pool(), Page::parse(p.limit, &p.cursor)?, &r.data_centre).await?;
        Ok(Response::new(pb::ListClustersResponse {
            clusters: clusters.into_iter().map(to_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn deregister_cluster(
        &self,
        request: Request<pb::DeregisterClusterRequest>,
    ) -> Result<Response<pb::DeregisterClusterResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        cluster::deregister(&self.outbox, &caller, id).await?;
        Ok(Response::new(pb::DeregisterClusterResponse {}))
    }

    async fn list_data_centres(
        &self,
        request: Request<pb::ListDataCentresRequest>,
    ) -> Result<Response<pb::ListDataCentresResponse>, Status> {
        caller(&request)?.require_platform_admin()?;
        let dcs = data_centre::data_centres(self.pool()).await?;
        Ok(Response::new(pb::ListDataCentresResponse {
            data_centres: dcs
                .into_iter()
                .map(|d| pb::DataCentre {
                    name: d.name,
                    state: d.state.into(),
                    state_since: d.state_since.and_then(timestamp),
                    clusters: d
                        .clusters
                        .into_iter()
                        .map(|(id, name, c)| pb::DataCentreCluster {
                            id: id.to_string(),
                            name,
                            condition: Some(condition_pb(c)),
                        })
                        .collect(),
                })
                .collect(),
        }))
    }

    async fn get_known_tenant(
        &self,
        request: Request<pb::GetKnownTenantRequest>,
    ) -> Result<Response<pb::KnownTenant>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("tenant_id", &request.get_ref().tenant_id)?;
        let t = known_tenant::get(self.pool(), &caller, id).await?;
        Ok(Response::new(pb::KnownTenant {
            tenant_id: t.tenant_id.to_string(),
            name: t.name,
            learned_at: timestamp(t.learned_at),
            event_id: t.event_id.to_string(),
        }))
    }

    async fn list_binding_pods(
        &self,
        request: Request<pb::ListBindingPodsRequest>,
    ) -> Result<Response<pb::ListBindingPodsResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("binding_id", &request.get_ref().binding_id)?;
        let (b, targets) = self.bindings().get(&caller, id).await?;
        let mut answer = pb::ListBindingPodsResponse::default();
        for (cluster, pods) in crate::pod::list(&self.clients, &b, &targets).await {
            match pods {
                Ok(pods) => answer.pods.extend(pods.into_iter().map(|p| pb::BindingPod {
                    cluster: p.cluster,
                    namespace: p.namespace,
                    name: p.name,
                    workload: p.workload,
                    phase: p.phase,
                    ready: p.ready,
                    restarts: p.restarts,
                    node: p.node,
                    containers: p.containers,
                })),
                Err(e) => answer.unreachable.push(pb::ClusterError {
                    cluster,
                    message: e.to_string(),
                }),
            }
        }
        Ok(Response::new(answer))
    }

    async fn get_pod_logs(&self, request: Request<pb::GetPodLogsRequest>) -> Result<Response<pb::PodLogs>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("binding_id", &r.binding_id)?;
        let (b, targets) = self.bindings().get(&caller, id).await?;
        let tail = if r.tail_lines <= 0 { 100 } else { r.tail_lines };
        let text = crate::pod::logs(&self.clients, &b, &targets, &r.cluster, &r.pod, &r.container, tail).await?;
        Ok(Response::new(pb::PodLogs { text }))
    }

    type FollowPodLogsStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::PodLogLine, Status>> + Send>>;

    async fn follow_pod_logs(
        &self,
        request: Request<pb::GetPodLogsRequest>,
    ) -> Result<Response<Self::FollowPodLogsStream>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("binding_id", &r.binding_id)?;
        let (b, targets) = self.bindings().get(&caller, id).await?;
        let tail = if r.tail_lines <= 0 { 100 } else { r.tail_lines };
        let lines = crate::pod::follow(&self.clients, &b, &targets, &r.cluster, &r.pod, &r.container, tail).await?;
        // Dropping the stream (the caller went away) drops the receiver,
        // which ends every log reader.
        let stream = futures::stream::unfold(lines, |mut lines| async move {
            let l = lines.recv().await?;
            Some((
                Ok::<_, Status>(pb::PodLogLine {
                    cluster: l.cluster,
                    pod: l.pod,
                    line: l.line,
                }),
                lines,
            ))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn restart_binding(
        &self,
        request: Request<pb::RestartBindingRequest>,
    ) -> Result<Response<pb::RestartBindingResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("binding_id", &request.get_ref().binding_id)?;
        let (b, targets) = self.bindings().get(&caller, id).await?;
        caller.require(b.tenant_id, kernel::caller::Role::Operator, "binding", id)?;
        let restarted = crate::pod::restart(&self.clients, &b, &targets).await?;
        Ok(Response::new(pb::RestartBindingResponse {
            restarted: restarted.into_iter().map(|(c, n)| (c, n as u32)).collect(),
        }))
    }
}
