//! The configs gRPC API.

use kernel::grpc::{caller, timestamp};
use kernel::id::parse_id;
use kernel::outbox::Outbox;
use kernel::page::Page;
use paas_proto::v1 as pb;
use paas_proto::v1::configs_service_server::ConfigsService;
use tonic::{Request, Response, Status};

use crate::config_set::{ConfigSet, ConfigSets, NewConfigSet};

/// The gRPC face of the configs service.
pub struct Configs {
    sets: ConfigSets,
}

impl Configs {
    /// The API over the configs schema of `outbox`.
    pub fn new(outbox: Outbox) -> Self {
        Self {
            sets: ConfigSets::new(outbox),
        }
    }
}

fn to_pb(s: ConfigSet) -> pb::ConfigSet {
    pb::ConfigSet {
        id: s.id.to_string(),
        tenant_id: s.tenant_id.to_string(),
        application: s.application,
        environment: s.environment,
        created_at: timestamp(s.created_at),
    }
}

#[tonic::async_trait]
impl ConfigsService for Configs {
    async fn create_config_set(
        &self,
        request: Request<pb::CreateConfigSetRequest>,
    ) -> Result<Response<pb::ConfigSet>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let new = NewConfigSet::parse(&r.tenant_id, &r.application, &r.environment)?;
        Ok(Response::new(to_pb(self.sets.create(&caller, new).await?)))
    }

    async fn get_config_set(
        &self,
        request: Request<pb::GetConfigSetRequest>,
    ) -> Result<Response<pb::ConfigSet>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(to_pb(self.sets.get(&caller, id).await?)))
    }

    async fn list_config_sets(
        &self,
        request: Request<pb::ListConfigSetsRequest>,
    ) -> Result<Response<pb::ListConfigSetsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let p = r.page.unwrap_or_default();
        let tenant = kernel::id::parse_optional_id("tenant_id", &r.tenant_id)?;
        let (sets, next) = self
            .sets
            .list(&caller, Page::parse(p.limit, &p.cursor)?, tenant)
            .await?;
        Ok(Response::new(pb::ListConfigSetsResponse {
            config_sets: sets.into_iter().map(to_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn delete_config_set(
        &self,
        request: Request<pb::DeleteConfigSetRequest>,
    ) -> Result<Response<pb::DeleteConfigSetResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.sets.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteConfigSetResponse {}))
    }
}
