//! The config center's routes (R6), forwarded to the configs service: config
//! sets, their drafts (edited with a version check), releases (publish,
//! history, diff, rollback), the effective configuration of an application,
//! per-environment publishing rules and shared links, and two ways to wait
//! for a new release: an Apollo-style long poll (`/watch`: at once when the
//! watcher is behind, else held up to 60 s, then 304) and Server-Sent Events
//! (`/events`), where a watcher names itself (`instance`) and its `labels`;
//! gray releases that only the watchers a label selector matches get, then
//! promoted to all or abandoned (`/gray-releases`); and which instance holds
//! which release (`/instances`). Editing and publishing are separate rights
//! ([`crate::rbac::CONFIG_EDIT`], [`crate::rbac::CONFIG_PUBLISH`]).

use std::time::Duration;

use axum::Json;
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::{FutureExt, StreamExt};
use kernel::caller::Role;
use kernel::grpc::time;
use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use crate::access_keys;
use crate::auth::Authenticated;
use crate::config_watch::{Identity, peer};
use crate::json::Body;
use crate::page::{ListQuery, Page};
use crate::problem::{ApiError, Problems};
use crate::rbac::{CONFIG_EDIT, CONFIG_PUBLISH, Permission};
use crate::request::{Path, Query};
use crate::route::Routes;
use crate::upstream::{Configs, Signed};

/// The longest a long poll holds before answering 304.
pub const LONG_POLL: Duration = Duration::from_secs(60);

/// The routes, each with who may call it.
pub fn routes() -> Routes {
    Routes::new()
        .route(Permission::Role(Role::Operator), routes!(create_set))
        .route(Permission::Authenticated, routes!(list_sets))
        .route(Permission::Authenticated, routes!(get_set))
        .route(Permission::Role(Role::Operator), routes!(delete_set))
        .route(Permission::Authenticated, routes!(get_draft))
        .route(CONFIG_EDIT, routes!(put_item))
        .route(CONFIG_EDIT, routes!(delete_item))
        .route(CONFIG_PUBLISH, routes!(publish))
        .route(Permission::Authenticated, routes!(list_releases))
        .route(Permission::Authenticated, routes!(get_release))
        .route(Permission::Authenticated, routes!(diff))
        .route(CONFIG_PUBLISH, routes!(rollback))
        .route(Permission::Authenticated, routes!(watch))
        .route(Permission::Authenticated, routes!(events))
        .route(Permission::Authenticated, routes!(effective))
        .route(Permission::Authenticated, routes!(get_policy))
        .route(Permission::Role(Role::TenantAdmin), routes!(set_policy))
        .route(Permission::Authenticated, routes!(get_links))
        .route(CONFIG_EDIT, routes!(set_links))
        .route(Permission::PlatformAdmin, routes!(rewrap))
        .route(CONFIG_PUBLISH, routes!(publish_gray))
        .route(Permission::Authenticated, routes!(list_gray_rules))
        .route(CONFIG_PUBLISH, routes!(promote_gray))
        .route(CONFIG_PUBLISH, routes!(abandon_gray))
        .route(Permission::Authenticated, routes!(list_instances))
}

/// Whether a request path is a watch that holds its response open by
/// design, so the gateway's request deadline does not apply to it.
pub fn holds_open(path: &str) -> bool {
    (path.starts_with("/api/v1/config-sets/") && (path.ends_with("/watch") || path.ends_with("/events")))
        || crate::config_watch::holds_open(path)
}

/// A whole number in a query parameter, or the problem naming it.
fn whole(field: &str, raw: Option<&str>) -> Result<u64, ApiError> {
    match raw.map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok(0),
        Some(raw) => raw
            .parse()
            .map_err(|_| ApiError::invalid(field, "must be a whole number")),
    }
}

/// Body of `POST /config-sets`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConfigSet {
    /// The tenant.
    tenant_id: String,
    /// The application, or the shared set's name (DNS label).
    application: String,
    /// The environment; absent: the base level.
    #[serde(default)]
    environment: String,
    /// The cluster (with an environment); absent: the whole environment.
    #[serde(default)]
    cluster: String,
    /// A shared set that applications link, rather than an application's.
    #[serde(default)]
    shared: bool,
}

/// A config set: one level of an application's (or a shared set's) configuration.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConfigSet {
    /// Its id.
    pub id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// The application, or the shared set's name.
    pub application: String,
    /// The environment; empty at the base level.
    pub environment: String,
    /// The cluster; empty at the environment or base level.
    pub cluster: String,
    /// Whether it is a shared set.
    pub shared: bool,
    /// The latest release's number, 0 before the first.
    pub latest_release: u64,
    /// Created.
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::ConfigSet> for ConfigSet {
    fn from(s: pb::ConfigSet) -> Self {
        Self {
            id: s.id,
            tenant_id: s.tenant_id,
            application: s.application,
            environment: s.environment,
            cluster: s.cluster,
            shared: s.shared,
            latest_release: s.latest_release,
            created_at: time(s.created_at),
        }
    }
}

/// Filters of `GET /config-sets`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SetFilter {
    /// Only this tenant's.
    #[serde(default)]
    tenant_id: String,
    /// Only this application's (or shared set's).
    #[serde(default)]
    application: String,
}

/// An item: a file in a format; a secret one is shown masked.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConfigItem {
    /// File name.
    pub name: String,
    /// properties, yaml, json, xml or text.
    pub format: String,
    /// The content; empty for a secret item.
    pub content: String,
    /// Whether it is secret (stored encrypted, never shown in full).
    pub secret: bool,
    /// A secret item's content masked: at most its last four characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub masked: String,
}

impl From<pb::ConfigItem> for ConfigItem {
    fn from(i: pb::ConfigItem) -> Self {
        Self {
            name: i.name,
            format: i.format,
            content: i.content,
            secret: i.secret,
            masked: i.masked,
        }
    }
}

/// A config set's draft.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Draft {
    /// The config set.
    pub config_set_id: String,
    /// Send it back with the next edit: a stale one is refused with 409.
    pub version: u64,
    /// Who edited last since the latest release; empty when unchanged.
    pub last_editor: String,
    /// The items.
    pub items: Vec<ConfigItem>,
}

impl From<pb::Draft> for Draft {
    fn from(d: pb::Draft) -> Self {
        Self {
            config_set_id: d.config_set_id,
            version: d.version,
            last_editor: d.last_editor,
            items: d.items.into_iter().map(ConfigItem::from).collect(),
        }
    }
}

/// Body of `PUT /config-sets/{id}/draft/items/{name}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutItem {
    /// The draft version this edit is based on.
    version: u64,
    /// properties, yaml, json, xml or text; absent: from the name's extension.
    #[serde(default)]
    format: String,
    /// The content, validated as its format.
    content: String,
    /// Store it encrypted and never show it back.
    #[serde(default)]
    secret: bool,
}

/// Query of `DELETE /config-sets/{id}/draft/items/{name}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// The draft version this edit is based on.
    #[param(required = true, pattern = "^[0-9]{1,19}$")]
    version: Option<String>,
}

/// A release.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConfigRelease {
    /// Its id.
    pub id: String,
    /// Its config set.
    pub config_set_id: String,
    /// Its number in the set.
    pub number: u64,
    /// Why.
    pub message: String,
    /// Who.
    pub author: String,
    /// publish or rollback.
    pub kind: String,
    /// For a rollback, the release it restores.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restores: u64,
    /// When.
    pub created_at: Option<DateTime<Utc>>,
    /// Its items (empty in lists).
    pub items: Vec<ConfigItem>,
    /// For a gray release (`kind` gray), its rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gray: Option<GrayRule>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<pb::ConfigRelease> for ConfigRelease {
    fn from(r: pb::ConfigRelease) -> Self {
        Self {
            id: r.id,
            config_set_id: r.config_set_id,
            number: r.number,
            message: r.message,
            author: r.author,
            kind: r.kind,
            restores: r.restores,
            created_at: time(r.created_at),
            items: r.items.into_iter().map(ConfigItem::from).collect(),
            gray: r.gray.map(GrayRule::from),
        }
    }
}

/// Body of `POST /config-sets/{id}/releases`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// What the release changes.
    message: String,
    /// The draft version reviewed; a later edit makes the publish 409.
    #[serde(default)]
    version: u64,
}

/// Body of `POST /config-sets/{id}/rollback`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigRollback {
    /// The earlier release to restore (releases count from 1).
    #[schema(minimum = 1)]
    to: u64,
    /// Why.
    #[serde(default)]
    message: String,
}

/// Query of `GET /config-sets/{id}/diff`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The earlier release (0 or absent: nothing).
    #[param(pattern = "^[0-9]{0,19}$")]
    from: Option<String>,
    /// The later release.
    #[param(pattern = "^[0-9]{0,19}$")]
    to: Option<String>,
}

/// One key's change.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyChange {
    /// The key.
    pub key: String,
    /// added, removed or changed.
    pub change: String,
    /// Before (masked for a secret item).
    pub before: String,
    /// After (masked for a secret item).
    pub after: String,
}

/// One item's change.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemChange {
    /// The item.
    pub name: String,
    /// added, removed or changed.
    pub change: String,
    /// Its content before (masked for a secret item).
    pub before: String,
    /// Its content after (masked for a secret item).
    pub after: String,
    /// Per key, for key/value items.
    pub keys: Vec<KeyChange>,
}

/// What changed between two releases.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConfigDiff {
    /// The earlier release.
    pub from: u64,
    /// The later release.
    pub to: u64,
    /// By item.
    pub items: Vec<ItemChange>,
}

/// Query of `GET /config-sets/{id}/watch`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WatchQuery {
    /// The last release number the watcher has (0 or absent: none).
    #[param(pattern = "^[0-9]{0,19}$")]
    after: Option<String>,
    /// Seconds to hold at most (default and maximum 60; empty: the default).
    #[param(pattern = "^([0-9]|[1-5][0-9]|60)?$")]
    timeout: Option<String>,
    /// The watcher's own id, recorded in the set's instances view (absent: anonymous).
    #[param(pattern = "^[A-Za-z0-9._:@/-]{0,128}$")]
    instance: Option<String>,
    /// The watcher's labels, `k=v,k=v`: a gray release goes to the watchers its selector matches.
    labels: Option<String>,
}

/// A release a watcher is told about.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleaseNotice {
    /// The config set.
    pub config_set_id: String,
    /// The release number: pass it as `after` next time.
    pub number: u64,
    /// The release id.
    pub release_id: String,
    /// publish, rollback, gray (a gray release meant for this watcher) or
    /// promoted (a gray release now everyone's); on `/config-watch` with a
    /// named configuration also joined (a set now part of it, at its latest
    /// release) or left (a set no longer part of it): read it again.
    pub kind: String,
}

impl From<pb::ReleaseNotice> for ReleaseNotice {
    fn from(n: pb::ReleaseNotice) -> Self {
        Self {
            config_set_id: n.config_set_id,
            number: n.number,
            release_id: n.release_id,
            kind: n.kind,
        }
    }
}

/// The releases after the watcher's, oldest first.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WatchAnswer {
    /// At least one.
    pub releases: Vec<ReleaseNotice>,
}

/// Query of `GET /tenants/{id}/effective-config`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EffectiveQuery {
    /// The application (required: the configuration is one application's).
    application: String,
    /// The environment (absent: the base level only).
    #[serde(default)]
    environment: String,
    /// The cluster's name (absent: the environment level; present, it
    /// needs an environment).
    #[serde(default)]
    #[param(pattern = "^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$", max_length = 63)]
    cluster: String,
}

/// One key or file of an effective configuration.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EffectiveEntry {
    /// The item.
    pub item: String,
    /// The key; empty for a whole file.
    pub key: String,
    /// The value (masked for a secret item).
    pub value: String,
    /// Whether it is secret.
    pub secret: bool,
    /// The config set it comes from.
    pub origin_set_id: String,
    /// That set's name: `app/base`, `app/production`, `app/production/eu-1`.
    pub origin: String,
    /// The release of that set.
    pub origin_release: u64,
}

/// A set an effective configuration is built from.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EffectiveSet {
    /// The config set.
    pub config_set_id: String,
    /// Its name: `app/production`, `common/base`.
    pub origin: String,
    /// Its latest release, 0 before the first.
    pub latest_release: u64,
}

/// An application's effective configuration.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EffectiveConfig {
    /// By item, then key.
    pub entries: Vec<EffectiveEntry>,
    /// Every set it is built from (released or not), lowest first, with its
    /// latest release: what a client watches (`/config-watch`) to hear of a change.
    #[serde(default)]
    pub sets: Vec<EffectiveSet>,
}

/// An environment's publishing rules.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnvironmentPolicy {
    /// The tenant.
    pub tenant_id: String,
    /// The environment.
    pub environment: String,
    /// The publisher must differ from the draft's last editor.
    pub four_eyes: bool,
}

impl From<pb::EnvironmentPolicy> for EnvironmentPolicy {
    fn from(p: pb::EnvironmentPolicy) -> Self {
        Self {
            tenant_id: p.tenant_id,
            environment: p.environment,
            four_eyes: p.four_eyes,
        }
    }
}

/// Body of `PUT /tenants/{id}/config-environments/{environment}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPolicy {
    /// The publisher must differ from the draft's last editor.
    four_eyes: bool,
}

/// The shared sets an application's configuration is built on.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SharedLinks {
    /// The tenant.
    pub tenant_id: String,
    /// The application.
    pub application: String,
    /// Shared set names, lowest first; the application's own sets override them.
    pub shared: Vec<String>,
}

impl From<pb::SharedLinks> for SharedLinks {
    fn from(l: pb::SharedLinks) -> Self {
        Self {
            tenant_id: l.tenant_id,
            application: l.application,
            shared: l.shared,
        }
    }
}

/// Body of `PUT /tenants/{id}/config-links/{application}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLinks {
    /// Shared set names, lowest first.
    shared: Vec<String>,
}

/// What a re-seal did.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rewrapped {
    /// Tenant data keys re-sealed under the current master key.
    pub rewrapped: u64,
}

#[utoipa::path(post, path = "/api/v1/config-sets", tag = "configs", request_body = NewConfigSet,
    responses((status = 201, body = ConfigSet), Problems), security(("bearer" = [])))]
async fn create_set(
    Signed(mut configs): Signed<Configs>,
    Body(b): Body<NewConfigSet>,
) -> Result<(StatusCode, Json<ConfigSet>), ApiError> {
    let request = pb::CreateConfigSetRequest {
        tenant_id: b.tenant_id,
        application: b.application,
        environment: b.environment,
        cluster: b.cluster,
        shared: b.shared,
    };
    let set = configs.create_config_set(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(set.into())))
}

#[utoipa::path(get, path = "/api/v1/config-sets", tag = "configs", params(ListQuery, SetFilter),
    responses((status = 200, body = Page<ConfigSet>), Problems), security(("bearer" = [])))]
async fn list_sets(
    Signed(mut configs): Signed<Configs>,
    Query(page): Query<ListQuery>,
    Query(filter): Query<SetFilter>,
) -> Result<Json<Page<ConfigSet>>, ApiError> {
    let request = pb::ListConfigSetsRequest {
        page: page.request(),
        tenant_id: filter.tenant_id,
        application: filter.application,
    };
    let r = configs.list_config_sets(request).await?.into_inner();
    Ok(Json(Page::new(
        r.config_sets.into_iter().map(ConfigSet::from).collect(),
        r.page,
    )))
}

#[utoipa::path(get, path = "/api/v1/config-sets/{id}", tag = "configs",
    params(("id" = String, Path, description = "the config set")),
    responses((status = 200, body = ConfigSet), Problems), security(("bearer" = [])))]
async fn get_set(Signed(mut configs): Signed<Configs>, Path(id): Path<String>) -> Result<Json<ConfigSet>, ApiError> {
    let set = configs
        .get_config_set(pb::GetConfigSetRequest { id })
        .await?
        .into_inner();
    Ok(Json(set.into()))
}

#[utoipa::path(delete, path = "/api/v1/config-sets/{id}", tag = "configs",
    params(("id" = String, Path, description = "the config set")),
    responses((status = 204, description = "deleted with its draft and releases"), Problems),
    security(("bearer" = [])))]
async fn delete_set(Signed(mut configs): Signed<Configs>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    configs.delete_config_set(pb::DeleteConfigSetRequest { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/config-sets/{id}/draft", tag = "configs",
    params(("id" = String, Path, description = "the config set")),
    responses((status = 200, body = Draft), Problems), security(("bearer" = [])))]
async fn get_draft(Signed(mut configs): Signed<Configs>, Path(id): Path<String>) -> Result<Json<Draft>, ApiError> {
    let draft = configs
        .get_draft(pb::GetDraftRequest { config_set_id: id })
        .await?
        .into_inner();
    Ok(Json(draft.into()))
}

#[utoipa::path(put, path = "/api/v1/config-sets/{id}/draft/items/{name}", tag = "configs",
    params(
        ("id" = String, Path, description = "the config set"),
        // configs' `format::validate_item_name`: not `.` or `..`.
        ("name" = String, Path, description = "the item's file name", max_length = 253,
            pattern = r"^([A-Za-z0-9_-][A-Za-z0-9._-]{0,252}|\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,251}|\.\.[A-Za-z0-9._-]{1,251})$")),
    request_body = PutItem,
    responses((status = 200, body = Draft), Problems), security(("bearer" = [])))]
async fn put_item(
    Signed(mut configs): Signed<Configs>,
    Path((id, name)): Path<(String, String)>,
    Body(b): Body<PutItem>,
) -> Result<Json<Draft>, ApiError> {
    let request = pb::PutDraftItemRequest {
        config_set_id: id,
        version: b.version,
        item: Some(pb::ConfigItem {
            name,
            format: b.format,
            content: b.content,
            secret: b.secret,
            masked: String::new(),
        }),
    };
    Ok(Json(configs.put_draft_item(request).await?.into_inner().into()))
}

#[utoipa::path(delete, path = "/api/v1/config-sets/{id}/draft/items/{name}", tag = "configs",
    params(
        ("id" = String, Path, description = "the config set"),
        // configs' `format::validate_item_name`: not `.` or `..`.
        ("name" = String, Path, description = "the item's file name", max_length = 253,
            pattern = r"^([A-Za-z0-9_-][A-Za-z0-9._-]{0,252}|\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,251}|\.\.[A-Za-z0-9._-]{1,251})$"), VersionQuery),
    responses((status = 200, body = Draft), Problems), security(("bearer" = [])))]
async fn delete_item(
    Signed(mut configs): Signed<Configs>,
    Path((id, name)): Path<(String, String)>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<Draft>, ApiError> {
    let version = q
        .version
        .as_deref()
        .ok_or_else(|| ApiError::invalid("version", "is required: the draft version this edit is based on"))?;
    let request = pb::DeleteDraftItemRequest {
        config_set_id: id,
        version: whole("version", Some(version))?,
        name,
    };
    Ok(Json(configs.delete_draft_item(request).await?.into_inner().into()))
}

#[utoipa::path(post, path = "/api/v1/config-sets/{id}/releases", tag = "configs",
    params(("id" = String, Path, description = "the config set")), request_body = Publish,
    responses((status = 201, body = ConfigRelease), Problems), security(("bearer" = [])))]
async fn publish(
    Signed(mut configs): Signed<Configs>,
    Path(id): Path<String>,
    Body(b): Body<Publish>,
) -> Result<(StatusCode, Json<ConfigRelease>), ApiError> {
    let request = pb::PublishRequest {
        config_set_id: id,
        message: b.message,
        version: b.version,
    };
    let release = configs.publish(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(release.into())))
}

#[utoipa::path(get, path = "/api/v1/config-sets/{id}/releases", tag = "configs",
    params(("id" = String, Path, description = "the config set"), ListQuery),
    responses((status = 200, body = Page<ConfigRelease>), Problems), security(("bearer" = [])))]
async fn list_releases(
    Signed(mut configs): Signed<Configs>,
    Path(id): Path<String>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<ConfigRelease>>, ApiError> {
    let request = pb::ListConfigReleasesRequest {
        config_set_id: id,
        page: page.request(),
    };
    let r = configs.list_releases(request).await?.into_inner();
    Ok(Json(Page::new(
        r.releases.into_iter().map(ConfigRelease::from).collect(),
        r.page,
    )))
}

#[utoipa::path(get, path = "/api/v1/config-sets/{id}/releases/{number}", tag = "configs",
    params(("id" = String, Path, description = "the config set"), ("number" = u64, Path, description = "the release number")),
    responses((status = 200, body = ConfigRelease), Problems), security(("bearer" = [])))]
async fn get_release(
    Signed(mut configs): Signed<Configs>,
    Path((id, number)): Path<(String, String)>,
) -> Result<Json<ConfigRelease>, ApiError> {
    let request = pb::GetReleaseRequest {
        config_set_id: id,
        number: whole("number", Some(&number))?,
    };
    Ok(Json(configs.get_release(request).await?.into_inner().into()))
}

#[utoipa::path(get, path = "/api/v1/config-sets/{id}/diff", tag = "configs",
    params(("id" = String, Path, description = "the config set"), DiffQuery),
    responses((status = 200, body = ConfigDiff), Problems), security(("bearer" = [])))]
async fn diff(
    Signed(mut configs): Signed<Configs>,
    Path(id): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Result<Json<ConfigDiff>, ApiError> {
    let request = pb::DiffReleasesRequest {
        config_set_id: id,
        from: whole("from", q.from.as_deref())?,
        to: whole("to", q.to.as_deref())?,
    };
    let d = configs.diff_releases(request).await?.into_inner();
    Ok(Json(ConfigDiff {
        from: d.from,
        to: d.to,
        items: d
            .items
            .into_iter()
            .map(|c| ItemChange {
                name: c.name,
                change: c.change,
                before: c.before,
                after: c.after,
                keys: c
                    .keys
                    .into_iter()
                    .map(|k| KeyChange {
                        key: k.key,
                        change: k.change,
                        before: k.before,
                        after: k.after,
                    })
                    .collect(),
            })
            .collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/config-sets/{id}/rollback", tag = "configs",
    params(("id" = String, Path, description = "the config set")), request_body = ConfigRollback,
    responses((status = 201, body = ConfigRelease, description = "the new release restoring the earlier one"), Problems),
    security(("bearer" = [])))]
async fn rollback(
    Signed(mut configs): Signed<Configs>,
    Path(id): Path<String>,
    Body(b): Body<ConfigRollback>,
) -> Result<(StatusCode, Json<ConfigRelease>), ApiError> {
    let request = pb::RollbackRequest {
        config_set_id: id,
        to: b.to,
        message: b.message,
    };
    let release = configs.rollback(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(release.into())))
}

#[utoipa::path(get, path = "/api/v1/config-sets/{id}/watch", tag = "configs",
    params(("id" = String, Path, description = "the config set"), WatchQuery),
    responses(
        (status = 200, body = WatchAnswer, description = "at once when a release after `after` exists"),
        (status = 304, description = "none within `timeout`: ask again"),
        Problems
    ),
    security(("bearer" = [])))]
async fn watch(
    Authenticated(caller): Authenticated,
    Signed(mut configs): Signed<Configs>,
    extensions: Extensions,
    Path(id): Path<String>,
    Query(q): Query<WatchQuery>,
) -> Result<Response, ApiError> {
    let after = whole("after", q.after.as_deref())?;
    let hold = crate::config_watch::hold(q.timeout.as_deref())?;
    let who = Identity::parse(q.instance.as_deref(), q.labels.as_deref(), peer(&extensions))?;
    access_keys::check_set(&caller, &mut configs, &id).await?;
    let mut stream = configs.watch(who.request(&id, after)).await?.into_inner();
    let first = match tokio::time::timeout(hold, stream.message()).await {
        Err(_) => return Ok(StatusCode::NOT_MODIFIED.into_response()),
        Ok(first) => first?,
    };
    let Some(first) = first else {
        // The service is stopping; the watcher asks again.
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    };
    let mut releases = vec![ReleaseNotice::from(first)];
    // Everything else already waiting, so a watcher far behind catches up in one answer.
    while let Some(Ok(Some(next))) = stream.message().now_or_never() {
        releases.push(next.into());
    }
    Ok(Json(WatchAnswer { releases }).into_response())
}

#[utoipa::path(get, path = "/api/v1/config-sets/{id}/events", tag = "configs",
    params(
        ("id" = String, Path, description = "the config set"),
        ("after" = Option<u64>, Query, description = "the last release number the watcher has; `Last-Event-ID` wins"),
        ("instance" = Option<String>, Query, pattern = "^[A-Za-z0-9._:@/-]{0,128}$",
            description = "the watcher's own id, recorded in the set's instances view"),
        ("labels" = Option<String>, Query, description = "the watcher's labels, `k=v,k=v`, matched by gray releases"),
    ),
    responses((status = 200, description = "text/event-stream: one `release` event per release, its number as the event id"), Problems),
    security(("bearer" = [])))]
async fn events(
    Authenticated(caller): Authenticated,
    Signed(mut configs): Signed<Configs>,
    extensions: Extensions,
    Path(id): Path<String>,
    Query(q): Query<WatchQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // A reconnecting EventSource sends the last id it saw.
    let last_event = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let after = match last_event {
        Some(id) => whole("Last-Event-ID", Some(id))?,
        None => whole("after", q.after.as_deref())?,
    };
    let who = Identity::parse(q.instance.as_deref(), q.labels.as_deref(), peer(&extensions))?;
    access_keys::check_set(&caller, &mut configs, &id).await?;
    let stream = configs.watch(who.request(&id, after)).await?.into_inner();
    // The stream ends at the first error (the service stopping): the client reconnects.
    let events = stream
        .scan((), |_, notice| std::future::ready(notice.ok()))
        .map(|notice| {
            Event::default()
                .event("release")
                .id(notice.number.to_string())
                .json_data(ReleaseNotice::from(notice))
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/effective-config", tag = "configs",
    params(("id" = String, Path, description = "the tenant"), EffectiveQuery),
    responses((status = 200, body = EffectiveConfig), Problems), security(("bearer" = [])))]
async fn effective(
    Authenticated(caller): Authenticated,
    Signed(mut configs): Signed<Configs>,
    Path(tenant_id): Path<String>,
    Query(q): Query<EffectiveQuery>,
) -> Result<Json<EffectiveConfig>, ApiError> {
    access_keys::check_application(&caller, &tenant_id, &q.application)?;
    let request = pb::GetEffectiveConfigRequest {
        tenant_id,
        application: q.application,
        environment: q.environment,
        cluster: q.cluster,
    };
    let r = configs.get_effective_config(request).await?.into_inner();
    Ok(Json(EffectiveConfig {
        entries: r
            .entries
            .into_iter()
            .map(|e| EffectiveEntry {
                item: e.item,
                key: e.key,
                value: e.value,
                secret: e.secret,
                origin_set_id: e.origin_set_id,
                origin: e.origin,
                origin_release: e.origin_release,
            })
            .collect(),
        sets: r
            .sets
            .into_iter()
            .map(|s| EffectiveSet {
                config_set_id: s.config_set_id,
                origin: s.origin,
                latest_release: s.latest_release,
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/config-environments/{environment}", tag = "configs",
    params(("id" = String, Path, description = "the tenant"), ("environment" = String, Path, description = "the environment")),
    responses((status = 200, body = EnvironmentPolicy), Problems), security(("bearer" = [])))]
async fn get_policy(
    Signed(mut configs): Signed<Configs>,
    Path((tenant_id, environment)): Path<(String, String)>,
) -> Result<Json<EnvironmentPolicy>, ApiError> {
    let request = pb::GetEnvironmentPolicyRequest { tenant_id, environment };
    Ok(Json(configs.get_environment_policy(request).await?.into_inner().into()))
}

#[utoipa::path(put, path = "/api/v1/tenants/{id}/config-environments/{environment}", tag = "configs",
    params(("id" = String, Path, description = "the tenant"), ("environment" = String, Path, description = "the environment")),
    request_body = SetPolicy,
    responses((status = 200, body = EnvironmentPolicy), Problems), security(("bearer" = [])))]
async fn set_policy(
    Signed(mut configs): Signed<Configs>,
    Path((tenant_id, environment)): Path<(String, String)>,
    Body(b): Body<SetPolicy>,
) -> Result<Json<EnvironmentPolicy>, ApiError> {
    let request = pb::SetEnvironmentPolicyRequest {
        tenant_id,
        environment,
        four_eyes: b.four_eyes,
    };
    Ok(Json(configs.set_environment_policy(request).await?.into_inner().into()))
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/config-links/{application}", tag = "configs",
    params(("id" = String, Path, description = "the tenant"), ("application" = String, Path, description = "the application")),
    responses((status = 200, body = SharedLinks), Problems), security(("bearer" = [])))]
async fn get_links(
    Signed(mut configs): Signed<Configs>,
    Path((tenant_id, application)): Path<(String, String)>,
) -> Result<Json<SharedLinks>, ApiError> {
    let request = pb::GetSharedLinksRequest { tenant_id, application };
    Ok(Json(configs.get_shared_links(request).await?.into_inner().into()))
}

#[utoipa::path(put, path = "/api/v1/tenants/{id}/config-links/{application}", tag = "configs",
    params(("id" = String, Path, description = "the tenant"), ("application" = String, Path, description = "the application")),
    request_body = SetLinks,
    responses((status = 200, body = SharedLinks), Problems), security(("bearer" = [])))]
async fn set_links(
    Signed(mut configs): Signed<Configs>,
    Path((tenant_id, application)): Path<(String, String)>,
    Body(b): Body<SetLinks>,
) -> Result<Json<SharedLinks>, ApiError> {
    let request = pb::SetSharedLinksRequest {
        tenant_id,
        application,
        shared: b.shared,
    };
    Ok(Json(configs.set_shared_links(request).await?.into_inner().into()))
}

#[utoipa::path(post, path = "/api/v1/config-keys/rewrap", tag = "configs",
    responses((status = 200, body = Rewrapped), Problems), security(("bearer" = [])))]
async fn rewrap(Signed(mut configs): Signed<Configs>) -> Result<Json<Rewrapped>, ApiError> {
    let r = configs
        .rewrap_data_keys(pb::RewrapDataKeysRequest {})
        .await?
        .into_inner();
    Ok(Json(Rewrapped { rewrapped: r.rewrapped }))
}

/// Where a gray release stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GrayState {
    /// Delivered to the watchers its selector matches and to its targets.
    Active,
    /// The release for all.
    Promoted,
    /// Withdrawn: its watchers went back to the latest full release.
    Abandoned,
}

impl GrayState {
    fn parse(raw: &str) -> Self {
        match raw {
            "promoted" => Self::Promoted,
            "abandoned" => Self::Abandoned,
            _ => Self::Active,
        }
    }
}

/// A cluster (and optionally one partition in it) that a gray release is pinned to.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrayTarget {
    /// The cluster's name.
    pub cluster: String,
    /// One partition of it, by its namespace in that cluster; empty or
    /// absent: all of them.
    #[serde(default)]
    pub partition: String,
}

/// A gray release's rule: who gets it, and where it stands.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GrayRule {
    /// The release.
    pub release_id: String,
    /// Its config set.
    pub config_set_id: String,
    /// The release number.
    pub number: u64,
    /// The label selector (Kubernetes syntax), canonical form.
    pub selector: String,
    /// Clusters / partitions delivery pins to it.
    pub targets: Vec<GrayTarget>,
    /// The full release everyone else keeps.
    pub base: u64,
    /// Where it stands.
    pub state: GrayState,
    /// Who published it.
    pub author: String,
    /// Who promoted or abandoned it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub decided_by: String,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
    /// When it was published.
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::GrayRule> for GrayRule {
    fn from(g: pb::GrayRule) -> Self {
        Self {
            release_id: g.release_id,
            config_set_id: g.config_set_id,
            number: g.number,
            selector: g.selector,
            targets: g
                .targets
                .into_iter()
                .map(|t| GrayTarget {
                    cluster: t.cluster,
                    partition: t.partition,
                })
                .collect(),
            base: g.base,
            state: GrayState::parse(&g.state),
            author: g.author,
            decided_by: g.decided_by,
            decided_at: time(g.decided_at),
            created_at: time(g.created_at),
        }
    }
}

/// Body of `POST /config-sets/{id}/gray-releases`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishGray {
    /// What the release changes.
    message: String,
    /// The draft version reviewed; a later edit makes the publish 409.
    #[serde(default)]
    version: u64,
    /// Which watchers get it, by their labels: `zone=a,canary=true`,
    /// `zone in (a,b)`, `tier notin (db)`, `canary`, `!legacy`.
    #[serde(default)]
    selector: String,
    /// Which clusters (and partitions) get it.
    #[serde(default)]
    targets: Vec<GrayTarget>,
}

/// A watcher of a set and the release it holds.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Instance {
    /// The config set.
    pub config_set_id: String,
    /// The watcher's own id.
    pub instance: String,
    /// Its labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Where it connected from.
    pub ip: String,
    /// The release it holds (0: none yet).
    pub release_number: u64,
    /// Whether that is the set's gray release in flight.
    pub gray: bool,
    /// When it last watched.
    pub last_seen: Option<DateTime<Utc>>,
}

#[utoipa::path(post, path = "/api/v1/config-sets/{id}/gray-releases", tag = "configs",
    params(("id" = String, Path, description = "the config set")), request_body = PublishGray,
    responses((status = 201, body = ConfigRelease, description = "the gray release, with its rule"), Problems),
    security(("bearer" = [])))]
async fn publish_gray(
    Signed(mut configs): Signed<Configs>,
    Path(id): Path<String>,
    Body(b): Body<PublishGray>,
) -> Result<(StatusCode, Json<ConfigRelease>), ApiError> {
    let request = pb::PublishGrayRequest {
        config_set_id: id,
        message: b.message,
        version: b.version,
        selector: b.selector,
        targets: b
            .targets
            .into_iter()
            .map(|t| pb::GrayTarget {
                cluster: t.cluster,
                partition: t.partition,
            })
            .collect(),
    };
    let release = configs.publish_gray(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(release.into())))
}

#[utoipa::path(get, path = "/api/v1/config-sets/{id}/gray-releases", tag = "configs",
    params(("id" = String, Path, description = "the config set"), ListQuery),
    responses((status = 200, body = Page<GrayRule>), Problems), security(("bearer" = [])))]
async fn list_gray_rules(
    Signed(mut configs): Signed<Configs>,
    Path(id): Path<String>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<GrayRule>>, ApiError> {
    let request = pb::ListGrayRulesRequest {
        config_set_id: id,
        page: page.request(),
    };
    let r = configs.list_gray_rules(request).await?.into_inner();
    Ok(Json(Page::new(
        r.rules.into_iter().map(GrayRule::from).collect(),
        r.page,
    )))
}

#[utoipa::path(post, path = "/api/v1/config-sets/{id}/gray-releases/{number}/promote", tag = "configs",
    params(("id" = String, Path, description = "the config set"), ("number" = u64, Path, description = "the gray release")),
    responses((status = 200, body = ConfigRelease, description = "the release, now everyone's"), Problems),
    security(("bearer" = [])))]
async fn promote_gray(
    Signed(mut configs): Signed<Configs>,
    Path((id, number)): Path<(String, String)>,
) -> Result<Json<ConfigRelease>, ApiError> {
    let request = pb::DecideGrayRequest {
        config_set_id: id,
        number: whole("number", Some(&number))?,
    };
    Ok(Json(configs.promote_gray(request).await?.into_inner().into()))
}

#[utoipa::path(post, path = "/api/v1/config-sets/{id}/gray-releases/{number}/abandon", tag = "configs",
    params(("id" = String, Path, description = "the config set"), ("number" = u64, Path, description = "the gray release")),
    responses((status = 200, body = ConfigRelease, description = "the release, withdrawn"), Problems),
    security(("bearer" = [])))]
async fn abandon_gray(
    Signed(mut configs): Signed<Configs>,
    Path((id, number)): Path<(String, String)>,
) -> Result<Json<ConfigRelease>, ApiError> {
    let request = pb::DecideGrayRequest {
        config_set_id: id,
        number: whole("number", Some(&number))?,
    };
    Ok(Json(configs.abandon_gray(request).await?.into_inner().into()))
}

#[utoipa::path(get, path = "/api/v1/config-sets/{id}/instances", tag = "configs",
    params(("id" = String, Path, description = "the config set"), ListQuery),
    responses((status = 200, body = Page<Instance>, description = "the watchers that named themselves, with the release each holds"), Problems),
    security(("bearer" = [])))]
async fn list_instances(
    Signed(mut configs): Signed<Configs>,
    Path(id): Path<String>,
    Query(page): Query<ListQuery>,
) -> Result<Json<Page<Instance>>, ApiError> {
    let request = pb::ListInstancesRequest {
        config_set_id: id,
        page: page.request(),
    };
    let r = configs.list_instances(request).await?.into_inner();
    let instances = r
        .instances
        .into_iter()
        .map(|i| Instance {
            config_set_id: i.config_set_id,
            instance: i.instance,
            labels: i.labels.into_iter().collect(),
            ip: i.ip,
            release_number: i.release_number,
            gray: i.gray,
            last_seen: time(i.last_seen),
        })
        .collect();
    Ok(Json(Page::new(instances, r.page)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_watches_hold_open() {
        assert!(holds_open("/api/v1/config-sets/abc/watch"));
        assert!(holds_open("/api/v1/config-sets/abc/events"));
        assert!(!holds_open("/api/v1/config-sets/abc/releases"));
        assert!(!holds_open("/api/v1/applications/abc/watch"));
    }

    #[test]
    fn query_numbers_name_their_field() {
        assert_eq!(whole("after", None).unwrap(), 0);
        assert_eq!(whole("after", Some("7")).unwrap(), 7);
        assert_eq!(whole("after", Some("x")).unwrap_err().0.field.as_deref(), Some("after"));
    }
}
