//! The configs gRPC API: proto <-> domain, and errors to status, once.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use kernel::grpc::{caller, timestamp};
use kernel::id::parse_id;
use kernel::outbox::Outbox;
use kernel::page::Page;
use paas_proto::v1 as pb;
use paas_proto::v1::configs_service_server::ConfigsService;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::config_set::{ConfigSet, ConfigSets, NewConfigSet};
use crate::draft::{Draft, Drafts, NewItem};
use crate::effective::{Entry, ItemChange};
use crate::environment::{EnvironmentPolicies, EnvironmentPolicy};
use crate::gray::{GrayRule, NewGray};
use crate::instance::{InstanceView, Instances, instance_id};
use crate::item::ItemView;
use crate::link::{Links, SharedLinks};
use crate::release::{Notice, Release, ReleaseWithItems, Releases, Source};
use crate::secret::{Keyring, Sealer};
use crate::selector::Labels;
use crate::watch::{Watcher, Watchers};

/// How many notices a watcher may have in flight before the service waits
/// for it to read.
const WATCH_BUFFER: usize = 16;

/// The gRPC face of the configs service.
#[derive(Clone)]
pub struct Configs {
    sets: ConfigSets,
    drafts: Drafts,
    releases: Releases,
    policies: EnvironmentPolicies,
    links: Links,
    sealer: Sealer,
    watchers: Watchers,
    delivery: kernel::seal::DeliveryKey,
    instances: Instances,
}

impl Configs {
    /// The API over the configs schema of `outbox`, sealing secrets under
    /// `keyring`; watches end when `stop` is cancelled.
    /// `delivery` seals secret items rendered for clusters.
    pub fn new(outbox: Outbox, keyring: Keyring, delivery: kernel::seal::DeliveryKey, stop: CancellationToken) -> Self {
        let pool = outbox.pool().clone();
        let sets = ConfigSets::new(outbox.clone());
        let sealer = Sealer::new(pool.clone(), keyring);
        let policies = EnvironmentPolicies::new(pool.clone());
        let links = Links::new(pool.clone());
        let releases = Releases::new(outbox, sets.clone(), sealer.clone(), policies.clone(), links.clone());
        let instances = Instances::new(pool.clone(), sets.clone());
        Self {
            drafts: Drafts::new(pool, sets.clone(), sealer.clone()),
            watchers: Watchers::new(releases.clone(), instances.clone(), stop),
            instances,
            sets,
            releases,
            policies,
            links,
            sealer,
            delivery,
        }
    }

    /// Its sealer (to re-seal data keys at start).
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// Its watchers (to start their listener).
    pub fn watchers(&self) -> Watchers {
        self.watchers.clone()
    }

    /// Its instances view (to start its recorder).
    pub fn instances(&self) -> Instances {
        self.instances.clone()
    }
}

fn number(field: &str, n: u64) -> Result<i64, Status> {
    i64::try_from(n).map_err(|_| kernel::Error::invalid(field, "is too large").into())
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

fn set_to_pb(s: ConfigSet) -> pb::ConfigSet {
    pb::ConfigSet {
        id: s.id.to_string(),
        tenant_id: s.tenant_id.to_string(),
        application: s.application,
        environment: s.environment,
        created_at: timestamp(s.created_at),
        cluster: s.cluster,
        shared: s.shared,
        latest_release: unsigned(s.latest_release),
    }
}

fn item_to_pb(i: ItemView) -> pb::ConfigItem {
    pb::ConfigItem {
        name: i.name,
        format: i.format,
        content: i.content,
        secret: i.secret,
        masked: i.masked,
    }
}

fn draft_to_pb(d: Draft) -> pb::Draft {
    pb::Draft {
        config_set_id: d.config_set_id.to_string(),
        version: unsigned(d.version),
        last_editor: d.last_editor.unwrap_or_default(),
        items: d.items.into_iter().map(item_to_pb).collect(),
    }
}

fn gray_to_pb(g: GrayRule) -> pb::GrayRule {
    pb::GrayRule {
        release_id: g.release_id.to_string(),
        config_set_id: g.config_set_id.to_string(),
        number: unsigned(g.number),
        selector: g.selector.to_string(),
        targets: g
            .targets
            .into_iter()
            .map(|t| pb::GrayTarget {
                cluster: t.cluster,
                partition: t.partition,
            })
            .collect(),
        base: unsigned(g.base),
        state: g.state.as_str().into(),
        author: g.author,
        decided_by: g.decided_by.unwrap_or_default(),
        decided_at: g.decided_at.and_then(timestamp),
        created_at: timestamp(g.created_at),
    }
}

fn instance_to_pb(i: InstanceView) -> pb::Instance {
    let labels = match i.labels {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
            .collect(),
        _ => Default::default(),
    };
    pb::Instance {
        config_set_id: i.config_set_id.to_string(),
        instance: i.instance,
        labels,
        ip: i.ip,
        release_number: unsigned(i.release_number),
        last_seen: timestamp(i.last_seen),
        gray: i.gray,
    }
}

fn release_to_pb(r: Release, items: Vec<ItemView>) -> pb::ConfigRelease {
    pb::ConfigRelease {
        id: r.id.to_string(),
        config_set_id: r.config_set_id.to_string(),
        number: unsigned(r.number),
        message: r.message,
        author: r.author,
        kind: r.kind,
        restores: unsigned(r.restores),
        created_at: timestamp(r.created_at),
        items: items.into_iter().map(item_to_pb).collect(),
        gray: None,
    }
}

fn with_items_to_pb(r: ReleaseWithItems) -> pb::ConfigRelease {
    pb::ConfigRelease {
        gray: r.gray.map(gray_to_pb),
        ..release_to_pb(r.release, r.items)
    }
}

fn change_to_pb(c: ItemChange) -> pb::ItemChange {
    pb::ItemChange {
        name: c.name,
        change: c.change.as_str().into(),
        before: c.before,
        after: c.after,
        keys: c
            .keys
            .into_iter()
            .map(|k| pb::KeyChange {
                key: k.key,
                change: k.change.as_str().into(),
                before: k.before,
                after: k.after,
            })
            .collect(),
    }
}

fn entry_to_pb(e: Entry) -> pb::EffectiveEntry {
    pb::EffectiveEntry {
        item: e.item,
        key: e.key.unwrap_or_default(),
        value: e.value,
        secret: e.secret,
        origin_set_id: e.origin_set.to_string(),
        origin: e.origin,
        origin_release: e.origin_release,
    }
}

fn policy_to_pb(p: EnvironmentPolicy) -> pb::EnvironmentPolicy {
    pb::EnvironmentPolicy {
        tenant_id: p.tenant_id.to_string(),
        environment: p.environment,
        four_eyes: p.four_eyes,
    }
}

fn links_to_pb(l: SharedLinks) -> pb::SharedLinks {
    pb::SharedLinks {
        tenant_id: l.tenant_id.to_string(),
        application: l.application,
        shared: l.shared,
    }
}

fn source_to_pb(s: Source) -> pb::EffectiveSet {
    pb::EffectiveSet {
        config_set_id: s.set_id.to_string(),
        origin: s.origin,
        latest_release: s.latest_release,
    }
}

fn notice_to_pb(n: Notice) -> pb::ReleaseNotice {
    pb::ReleaseNotice {
        config_set_id: n.config_set_id.to_string(),
        number: unsigned(n.number),
        release_id: n.release_id.to_string(),
        kind: n.kind,
    }
}

type NoticeStream = Pin<Box<dyn Stream<Item = Result<pb::ReleaseNotice, Status>> + Send>>;
type LayoutStream = Pin<Box<dyn Stream<Item = Result<pb::Layout, Status>> + Send>>;

#[tonic::async_trait]
impl ConfigsService for Configs {
    async fn create_config_set(
        &self,
        request: Request<pb::CreateConfigSetRequest>,
    ) -> Result<Response<pb::ConfigSet>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let new = NewConfigSet::parse(&r.tenant_id, &r.application, &r.environment, &r.cluster, r.shared)?;
        Ok(Response::new(set_to_pb(self.sets.create(&caller, new).await?)))
    }

    async fn get_config_set(
        &self,
        request: Request<pb::GetConfigSetRequest>,
    ) -> Result<Response<pb::ConfigSet>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(set_to_pb(self.sets.get(&caller, id).await?)))
    }

    async fn list_config_sets(
        &self,
        request: Request<pb::ListConfigSetsRequest>,
    ) -> Result<Response<pb::ListConfigSetsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let p = r.page.unwrap_or_default();
        let tenant = kernel::id::parse_optional_id("tenant_id", &r.tenant_id)?;
        // A filter is held to the rule of what it filters: "0.5" names no set.
        let application = match r.application.trim() {
            "" => None,
            raw => Some(kernel::name::DnsLabel::parse("application", raw)?),
        };
        let (sets, next) = self
            .sets
            .list(
                &caller,
                Page::parse(p.limit, &p.cursor)?,
                tenant,
                application.as_ref().map(kernel::name::DnsLabel::as_str),
            )
            .await?;
        Ok(Response::new(pb::ListConfigSetsResponse {
            config_sets: sets.into_iter().map(set_to_pb).collect(),
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

    async fn get_draft(&self, request: Request<pb::GetDraftRequest>) -> Result<Response<pb::Draft>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("config_set_id", &request.get_ref().config_set_id)?;
        Ok(Response::new(draft_to_pb(self.drafts.get(&caller, id).await?)))
    }

    async fn put_draft_item(&self, request: Request<pb::PutDraftItemRequest>) -> Result<Response<pb::Draft>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("config_set_id", &r.config_set_id)?;
        let item = r
            .item
            .ok_or_else(|| Status::from(kernel::Error::invalid("item", "is required")))?;
        let item = NewItem::parse(&item.name, &item.format, item.content, item.secret)?;
        let draft = self
            .drafts
            .put_item(&caller, id, number("version", r.version)?, item)
            .await?;
        Ok(Response::new(draft_to_pb(draft)))
    }

    async fn delete_draft_item(
        &self,
        request: Request<pb::DeleteDraftItemRequest>,
    ) -> Result<Response<pb::Draft>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("config_set_id", &r.config_set_id)?;
        let draft = self
            .drafts
            .delete_item(&caller, id, number("version", r.version)?, &r.name)
            .await?;
        Ok(Response::new(draft_to_pb(draft)))
    }

    async fn publish(&self, request: Request<pb::PublishRequest>) -> Result<Response<pb::ConfigRelease>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("config_set_id", &r.config_set_id)?;
        let release = self
            .releases
            .publish(&caller, id, &r.message, number("version", r.version)?)
            .await?;
        Ok(Response::new(with_items_to_pb(release)))
    }

    async fn rollback(&self, request: Request<pb::RollbackRequest>) -> Result<Response<pb::ConfigRelease>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("config_set_id", &r.config_set_id)?;
        let release = self
            .releases
            .rollback(&caller, id, number("to", r.to)?, &r.message)
            .await?;
        Ok(Response::new(with_items_to_pb(release)))
    }

    async fn get_release(
        &self,
        request: Request<pb::GetReleaseRequest>,
    ) -> Result<Response<pb::ConfigRelease>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("config_set_id", &r.config_set_id)?;
        let release = self.releases.get(&caller, id, number("number", r.number)?).await?;
        Ok(Response::new(with_items_to_pb(release)))
    }

    async fn list_releases(
        &self,
        request: Request<pb::ListConfigReleasesRequest>,
    ) -> Result<Response<pb::ListConfigReleasesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("config_set_id", &r.config_set_id)?;
        let p = r.page.unwrap_or_default();
        let (releases, next) = self
            .releases
            .list(&caller, id, Page::parse(p.limit, &p.cursor)?)
            .await?;
        Ok(Response::new(pb::ListConfigReleasesResponse {
            releases: releases.into_iter().map(|r| release_to_pb(r, Vec::new())).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn diff_releases(
        &self,
        request: Request<pb::DiffReleasesRequest>,
    ) -> Result<Response<pb::ConfigDiff>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("config_set_id", &r.config_set_id)?;
        let diff = self
            .releases
            .diff(&caller, id, number("from", r.from)?, number("to", r.to)?)
            .await?;
        Ok(Response::new(pb::ConfigDiff {
            from: unsigned(diff.from),
            to: unsigned(diff.to),
            items: diff.items.into_iter().map(change_to_pb).collect(),
        }))
    }

    async fn get_effective_config(
        &self,
        request: Request<pb::GetEffectiveConfigRequest>,
    ) -> Result<Response<pb::EffectiveConfig>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let effective = self
            .releases
            .effective(&caller, &r.tenant_id, &r.application, &r.environment, &r.cluster)
            .await?;
        Ok(Response::new(pb::EffectiveConfig {
            entries: effective.entries.into_iter().map(entry_to_pb).collect(),
            sets: effective.sources.into_iter().map(source_to_pb).collect(),
        }))
    }

    async fn render_delivery(
        &self,
        request: Request<pb::RenderDeliveryRequest>,
    ) -> Result<Response<pb::ConfigDelivery>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let asked = crate::delivery::Asked {
            tenant: &r.tenant_id,
            config: &r.config,
            environment: &r.environment,
            cluster: &r.cluster,
            gray: r.gray,
        };
        let d = crate::delivery::render(&self.releases, &self.delivery, &caller, asked).await?;
        Ok(Response::new(pb::ConfigDelivery {
            plain: d.plain.into_iter().collect(),
            sealed: d.sealed.into_iter().collect(),
            checksum: d.checksum,
            clusters: d.clusters,
            gray_targets: d
                .gray_targets
                .into_iter()
                .map(|t| pb::GrayTarget {
                    cluster: t.cluster,
                    partition: t.partition,
                })
                .collect(),
            releases: d.releases,
        }))
    }

    async fn set_shared_links(
        &self,
        request: Request<pb::SetSharedLinksRequest>,
    ) -> Result<Response<pb::SharedLinks>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let links = self.links.set(&caller, &r.tenant_id, &r.application, &r.shared).await?;
        Ok(Response::new(links_to_pb(links)))
    }

    async fn get_shared_links(
        &self,
        request: Request<pb::GetSharedLinksRequest>,
    ) -> Result<Response<pb::SharedLinks>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        Ok(Response::new(links_to_pb(
            self.links.get(&caller, &r.tenant_id, &r.application).await?,
        )))
    }

    async fn get_environment_policy(
        &self,
        request: Request<pb::GetEnvironmentPolicyRequest>,
    ) -> Result<Response<pb::EnvironmentPolicy>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        Ok(Response::new(policy_to_pb(
            self.policies.get(&caller, &r.tenant_id, &r.environment).await?,
        )))
    }

    async fn set_environment_policy(
        &self,
        request: Request<pb::SetEnvironmentPolicyRequest>,
    ) -> Result<Response<pb::EnvironmentPolicy>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        Ok(Response::new(policy_to_pb(
            self.policies
                .set(&caller, &r.tenant_id, &r.environment, r.four_eyes)
                .await?,
        )))
    }

    async fn rewrap_data_keys(
        &self,
        request: Request<pb::RewrapDataKeysRequest>,
    ) -> Result<Response<pb::RewrapDataKeysResponse>, Status> {
        caller(&request)?.require_platform_admin()?;
        Ok(Response::new(pb::RewrapDataKeysResponse {
            rewrapped: self.sealer.rewrap().await?,
        }))
    }

    type WatchStream = NoticeStream;

    async fn watch(&self, request: Request<pb::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let caller = caller(&request)?;
        let peer = request.remote_addr().map(|a| a.ip().to_string()).unwrap_or_default();
        let r = request.into_inner();
        let id = parse_id("config_set_id", &r.config_set_id)?;
        let after = number("after", r.after)?;
        let watcher = Watcher {
            tenant_id: Default::default(),
            instance: instance_id(&r.instance)?,
            labels: Labels::parse("labels", &r.labels)?,
            ip: if r.ip.trim().is_empty() { peer } else { ip(&r.ip)? },
        };
        // Only the caller's own tenants' sets: checked once, when the watch
        // starts, against the tenant the set's feed holds if it has one (a
        // long poll watches again after every answer).
        let tenant_id = self
            .watchers
            .tenant_for(id, || async { Ok(self.sets.get(&caller, id).await?.tenant_id) })
            .await?;
        if !caller.can_see(tenant_id) {
            return Err(kernel::Error::not_found("config set", id).into());
        }
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_BUFFER);
        self.watchers.spawn(id, after, Watcher { tenant_id, ..watcher }, tx);
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx)
            .map(|notice| notice.map(notice_to_pb).map_err(Status::from));
        Ok(Response::new(Box::pin(stream)))
    }

    type WatchLayoutStream = LayoutStream;

    async fn watch_layout(
        &self,
        request: Request<pb::WatchLayoutRequest>,
    ) -> Result<Response<Self::WatchLayoutStream>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let scope = self
            .releases
            .scope(&caller, &r.tenant_id, &r.application, &r.environment, &r.cluster)?;
        let known = r
            .config_set_ids
            .iter()
            .enumerate()
            .map(|(i, id)| parse_id(&format!("config_set_ids[{i}]"), id))
            .collect::<kernel::Result<_>>()?;
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_BUFFER);
        self.watchers.spawn_layout(scope, known, tx);
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|layout| {
            layout
                .map(|sets| pb::Layout {
                    sets: sets.into_iter().map(source_to_pb).collect(),
                })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn publish_gray(
        &self,
        request: Request<pb::PublishGrayRequest>,
    ) -> Result<Response<pb::ConfigRelease>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("config_set_id", &r.config_set_id)?;
        let gray = NewGray::parse(
            &r.selector,
            r.targets.iter().map(|t| (t.cluster.as_str(), t.partition.as_str())),
        )?;
        let release = self
            .releases
            .publish_gray(&caller, id, &r.message, number("version", r.version)?, gray)
            .await?;
        Ok(Response::new(with_items_to_pb(release)))
    }

    async fn promote_gray(
        &self,
        request: Request<pb::DecideGrayRequest>,
    ) -> Result<Response<pb::ConfigRelease>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("config_set_id", &r.config_set_id)?;
        let release = self
            .releases
            .promote_gray(&caller, id, number("number", r.number)?)
            .await?;
        Ok(Response::new(with_items_to_pb(release)))
    }

    async fn abandon_gray(
        &self,
        request: Request<pb::DecideGrayRequest>,
    ) -> Result<Response<pb::ConfigRelease>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("config_set_id", &r.config_set_id)?;
        let release = self
            .releases
            .abandon_gray(&caller, id, number("number", r.number)?)
            .await?;
        Ok(Response::new(with_items_to_pb(release)))
    }

    async fn list_gray_rules(
        &self,
        request: Request<pb::ListGrayRulesRequest>,
    ) -> Result<Response<pb::ListGrayRulesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("config_set_id", &r.config_set_id)?;
        let p = r.page.unwrap_or_default();
        let (rules, next) = self
            .releases
            .gray_rules(&caller, id, Page::parse(p.limit, &p.cursor)?)
            .await?;
        Ok(Response::new(pb::ListGrayRulesResponse {
            rules: rules.into_iter().map(gray_to_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn list_instances(
        &self,
        request: Request<pb::ListInstancesRequest>,
    ) -> Result<Response<pb::ListInstancesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("config_set_id", &r.config_set_id)?;
        let p = r.page.unwrap_or_default();
        let (instances, next) = self
            .instances
            .list(&caller, id, Page::parse(p.limit, &p.cursor)?)
            .await?;
        Ok(Response::new(pb::ListInstancesResponse {
            instances: instances.into_iter().map(instance_to_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }
}

/// A watcher's address as the gateway saw it.
fn ip(raw: &str) -> Result<String, Status> {
    raw.trim()
        .parse::<std::net::IpAddr>()
        .map(|a| a.to_string())
        .map_err(|_| kernel::Error::invalid("ip", "is not an IP address").into())
}
