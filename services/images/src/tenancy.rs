//! Tenancy as the images service reaches it: repository names carry tenant
//! and project names, which tenancy owns; this resolves them to ids, signed
//! as the images service, and remembers answers for a short while.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kernel::caller::{Caller, CallerKey};
use kernel::grpc::Outgoing;
use kernel::{Error, Result};
use paas_proto::v1 as pb;
use paas_proto::v1::tenancy_service_client::TenancyServiceClient;
use tonic::transport::Channel;
use uuid::Uuid;

/// How long a resolved name is trusted: a deleted tenant's name stops
/// resolving within this time.
const CACHE_TTL: Duration = Duration::from_secs(30);

type Cache = HashMap<(String, String), (Instant, Option<(Uuid, Uuid)>)>;

/// Resolves tenant and project names.
#[derive(Clone)]
pub struct Tenancy {
    channel: Channel,
    key: CallerKey,
    cache: Arc<Mutex<Cache>>,
}

impl Tenancy {
    /// Tenancy at `channel`, calls signed with `key`.
    pub fn new(channel: Channel, key: CallerKey) -> Self {
        Self {
            channel,
            key,
            cache: Arc::default(),
        }
    }

    fn client(&self) -> TenancyServiceClient<tonic::service::interceptor::InterceptedService<Channel, Outgoing>> {
        TenancyServiceClient::with_interceptor(
            self.channel.clone(),
            Outgoing::new(&self.key, &Caller::service(crate::NAME)),
        )
    }

    /// The ids of tenant `tenant` and its project `project`, if both exist.
    ///
    /// # Errors
    /// Tenancy did not answer.
    pub async fn resolve(&self, tenant: &str, project: &str) -> Result<Option<(Uuid, Uuid)>> {
        let key = (tenant.to_string(), project.to_string());
        if let Some((at, ids)) = self.cache.lock().expect("not poisoned").get(&key)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(*ids);
        }
        let ids = self.ask(tenant, project).await?;
        self.cache
            .lock()
            .expect("not poisoned")
            .insert(key, (Instant::now(), ids));
        Ok(ids)
    }

    async fn ask(&self, tenant: &str, project: &str) -> Result<Option<(Uuid, Uuid)>> {
        let unavailable = |s: tonic::Status| Error::Unavailable(format!("tenancy did not answer: {}", s.message()));
        let tenants = self
            .client()
            .list_tenants(pb::ListTenantsRequest {
                page: Some(pb::PageRequest {
                    limit: 100,
                    cursor: String::new(),
                }),
                name_prefix: tenant.to_string(),
                ..Default::default()
            })
            .await
            .map_err(unavailable)?
            .into_inner()
            .tenants;
        let Some(t) = tenants.into_iter().find(|t| t.name == tenant) else {
            return Ok(None);
        };
        let projects = self
            .client()
            .list_projects(pb::ListProjectsRequest {
                tenant_id: t.id.clone(),
                page: Some(pb::PageRequest {
                    limit: 100,
                    cursor: String::new(),
                }),
                name_prefix: project.to_string(),
            })
            .await
            .map_err(unavailable)?
            .into_inner()
            .projects;
        let Some(p) = projects.into_iter().find(|p| p.name == project) else {
            return Ok(None);
        };
        let parse = |s: &str| Uuid::parse_str(s).map_err(Error::internal);
        Ok(Some((parse(&t.id)?, parse(&p.id)?)))
    }

    /// The names of `tenant` and its `project`, checked to exist.
    ///
    /// # Errors
    /// Either is unknown (naming the field), or tenancy did not answer.
    pub async fn names(&self, tenant: Uuid, project: Uuid) -> Result<(String, String)> {
        let t = match self
            .client()
            .get_tenant(pb::GetTenantRequest { id: tenant.to_string() })
            .await
        {
            Ok(t) => t.into_inner(),
            Err(s) if s.code() == tonic::Code::NotFound => return Err(Error::invalid("tenant_id", "no such tenant")),
            Err(s) => return Err(Error::Unavailable(format!("tenancy did not answer: {}", s.message()))),
        };
        let p = match self
            .client()
            .get_project(pb::GetProjectRequest {
                id: project.to_string(),
            })
            .await
        {
            Ok(p) => p.into_inner(),
            Err(s) if s.code() == tonic::Code::NotFound => return Err(Error::invalid("project_id", "no such project")),
            Err(s) => return Err(Error::Unavailable(format!("tenancy did not answer: {}", s.message()))),
        };
        if p.tenant_id != tenant.to_string() {
            return Err(Error::invalid("project_id", "the project belongs to another tenant"));
        }
        Ok((t.name, p.name))
    }

    /// Where `tenant` has partitions: their data centres and clusters.
    ///
    /// # Errors
    /// The tenant does not exist, or tenancy did not answer.
    pub async fn placements(&self, tenant: Uuid) -> Result<Placements> {
        // A tenant tenancy does not know is the caller's mistake (404), not
        // an outage (503).
        let unavailable = |s: tonic::Status| match s.code() {
            tonic::Code::NotFound => Error::not_found("tenant", tenant),
            _ => Error::Unavailable(format!("tenancy did not answer: {}", s.message())),
        };
        let mut placements = Placements::default();
        let mut cursor = String::new();
        loop {
            let page = self
                .client()
                .list_projects(pb::ListProjectsRequest {
                    tenant_id: tenant.to_string(),
                    page: Some(pb::PageRequest { limit: 500, cursor }),
                    name_prefix: String::new(),
                })
                .await
                .map_err(unavailable)?
                .into_inner();
            for project in page.projects {
                let mut inner = String::new();
                loop {
                    let parts = self
                        .client()
                        .list_partitions(pb::ListPartitionsRequest {
                            project_id: project.id.clone(),
                            page: Some(pb::PageRequest {
                                limit: 500,
                                cursor: inner,
                            }),
                            cluster: String::new(),
                        })
                        .await
                        .map_err(unavailable)?
                        .into_inner();
                    for p in parts.partitions {
                        placements.data_centres.insert(p.data_centre);
                        placements.clusters.insert(p.cluster);
                    }
                    inner = parts.page.map(|p| p.next_cursor).unwrap_or_default();
                    if inner.is_empty() {
                        break;
                    }
                }
            }
            cursor = page.page.map(|p| p.next_cursor).unwrap_or_default();
            if cursor.is_empty() {
                break;
            }
        }
        placements.data_centres.remove("");
        placements.clusters.remove("");
        Ok(placements)
    }
}

/// The data centres and clusters a tenant has partitions in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placements {
    /// Data centre names.
    pub data_centres: std::collections::BTreeSet<String>,
    /// Cluster names.
    pub clusters: std::collections::BTreeSet<String>,
}
