//! Watching several config sets in one request, so a client (an agent) needs
//! one connection for its whole effective configuration, in the shape of
//! Apollo's notifications/v2: the client sends each set with the release it
//! has (`sets=<id>:<n>,<id>:<n>`); the long poll answers at once with every
//! newer release of any of them, else holds up to 60 s and answers 304. The
//! event-stream form sends each release as it comes, with the whole position
//! as the event id, so a reconnecting `EventSource` resumes exactly.
//!
//! A client that names its configuration (`tenant`, `application`,
//! `environment`, `cluster`, as it reads the effective config) also hears of
//! a set joining or leaving it (a set created or deleted, shared links
//! changed): the long poll answers with a `joined` (or `left`) notice for
//! that set, and the client reads its configuration again, so a set created
//! after it started is watched at once rather than at its next full re-read.
//! The event stream sends the same notices as `joined` and `left` events and
//! itself watches a joined set from the release it joined at (and a left one
//! no more), so its event id stays the watcher's exact position.
//!
//! Watchers identify themselves (here and on the one-set watches) with
//! `instance` (an id the client picks) and `labels` (`k=v,k=v`); the configs
//! service records which instance holds which release of each set.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{FutureExt, StreamExt};
use kernel::caller::Caller;
use paas_proto::v1 as pb;
use serde::Deserialize;
use tokio_stream::StreamMap;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Authenticated;
use crate::configs::{LONG_POLL, ReleaseNotice, WatchAnswer};
use crate::problem::{ApiError, Problems};
use crate::rbac::Permission;
use crate::request::Query;
use crate::route::Routes;
use crate::upstream::{Configs, Signed};

/// The most sets one watch may name.
pub const MAX_SETS: usize = 50;
/// The longest `labels` parameter accepted.
const MAX_LABELS_LEN: usize = 2048;

/// The routes, each with who may call it.
pub fn routes() -> Routes {
    Routes::new()
        .route(Permission::Authenticated, routes!(watch_sets))
        .route(Permission::Authenticated, routes!(watch_sets_events))
}

/// Whether a request path is one of these watches (they hold open by design).
pub fn holds_open(path: &str) -> bool {
    path == "/api/v1/config-watch" || path == "/api/v1/config-watch/events"
}

/// Who watches: the `instance` and `labels` query parameters and the peer's address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The id the client picked; empty: an anonymous watcher (not recorded).
    pub instance: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its address as the gateway sees it.
    pub ip: String,
}

impl Identity {
    /// Parses `labels` (`k=v,k=v`); the configs service checks the names.
    ///
    /// # Errors
    /// 400 naming `labels` for a pair without `=`, a repeated key or an
    /// over-long parameter, or naming `instance` for labels without one.
    pub fn parse(instance: Option<&str>, labels: Option<&str>, ip: String) -> Result<Self, ApiError> {
        let instance = instance.unwrap_or_default().trim().to_string();
        let raw = labels.unwrap_or_default().trim();
        if raw.len() > MAX_LABELS_LEN {
            return Err(ApiError::invalid(
                "labels",
                format!("must be at most {MAX_LABELS_LEN} characters"),
            ));
        }
        let mut parsed = BTreeMap::new();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(ApiError::invalid(
                    "labels",
                    "must be key=value pairs separated by commas",
                ));
            };
            if parsed.insert(k.trim().to_string(), v.trim().to_string()).is_some() {
                return Err(ApiError::invalid("labels", format!("repeats the key {:.64}", k.trim())));
            }
        }
        if instance.is_empty() && !parsed.is_empty() {
            return Err(ApiError::invalid("instance", "is required with labels"));
        }
        Ok(Self {
            instance,
            labels: parsed,
            ip,
        })
    }

    /// The service's watch request for `set` after `after`, naming this watcher.
    pub fn request(&self, set: &str, after: u64) -> pb::WatchRequest {
        pb::WatchRequest {
            config_set_id: set.to_string(),
            after,
            instance: self.instance.clone(),
            labels: self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            ip: if self.instance.is_empty() {
                String::new()
            } else {
                self.ip.clone()
            },
        }
    }
}

/// The peer's address, when the server records it.
pub fn peer(extensions: &Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default()
}

/// What a watcher has: per set, the last release number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Positions(BTreeMap<Uuid, u64>);

impl Positions {
    /// Parses `<id>:<n>,<id>:<n>` (`<id>` alone: release 0).
    ///
    /// # Errors
    /// 400 naming `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, ApiError> {
        let mut sets = BTreeMap::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, number) = part.split_once(':').unwrap_or((part, "0"));
            let id = Uuid::parse_str(id.trim())
                .map_err(|_| ApiError::invalid(field, "each set must be <config set id>:<release number>"))?;
            let number: u64 = number
                .trim()
                .parse()
                .map_err(|_| ApiError::invalid(field, "a release number must be a whole number"))?;
            if sets.insert(id, number).is_some() {
                return Err(ApiError::invalid(field, format!("names the set {id} twice")));
            }
        }
        if sets.is_empty() {
            return Err(ApiError::invalid(
                field,
                "must name at least one set: <id>:<release number>",
            ));
        }
        if sets.len() > MAX_SETS {
            return Err(ApiError::invalid(field, format!("must name at most {MAX_SETS} sets")));
        }
        Ok(Self(sets))
    }

    /// As [`Positions::parse`], but no set at all is a position too when
    /// `may_be_empty` (a configuration's event stream: its sets arrive as
    /// `joined`).
    ///
    /// # Errors
    /// 400 naming `field`.
    pub fn parse_within(field: &str, raw: &str, may_be_empty: bool) -> Result<Self, ApiError> {
        if may_be_empty && raw.trim().is_empty() {
            return Ok(Self(BTreeMap::new()));
        }
        Self::parse(field, raw)
    }

    /// Moves a set's position to a release it was told about.
    fn advance(&mut self, notice: &pb::ReleaseNotice) {
        if let Ok(id) = Uuid::parse_str(&notice.config_set_id) {
            let at = self.0.entry(id).or_default();
            *at = (*at).max(notice.number);
        }
    }
}

impl std::fmt::Display for Positions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (id, n) in &self.0 {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{id}:{n}")?;
        }
        Ok(())
    }
}

/// One service watch per set, each checked for an access key's scope.
async fn open(
    caller: &Caller,
    configs: &Configs,
    positions: &Positions,
    who: &Identity,
) -> Result<Vec<tonic::Streaming<pb::ReleaseNotice>>, ApiError> {
    let opened = positions.0.iter().map(|(id, after)| {
        let mut configs = configs.clone();
        let id = id.to_string();
        let request = who.request(&id, *after);
        async move {
            crate::access_keys::check_set(caller, &mut configs, &id).await?;
            Ok::<_, ApiError>(configs.watch(request).await?.into_inner())
        }
    });
    futures::future::try_join_all(opened).await
}

/// The hold of a long poll: `timeout` seconds, default and at most 60.
///
/// # Errors
/// 400 naming `timeout`.
pub fn hold(timeout: Option<&str>) -> Result<Duration, ApiError> {
    match timeout.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(LONG_POLL),
        Some(raw) => {
            let seconds: u64 = raw
                .parse()
                .map_err(|_| ApiError::invalid("timeout", "must be a whole number of seconds"))?;
            if seconds > LONG_POLL.as_secs() {
                return Err(ApiError::invalid("timeout", "must be at most 60 (seconds)"));
            }
            Ok(Duration::from_secs(seconds))
        }
    }
}

/// Query of `GET /config-watch`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MultiWatchQuery {
    /// Each set with the last release number the watcher has:
    /// `<config set id>:<n>,<config set id>:<n>` (at most 50 sets).
    #[param(required = true)]
    sets: Option<String>,
    /// Seconds to hold at most (default and maximum 60).
    #[param(pattern = "^([0-9]|[1-5][0-9]|60)$")]
    timeout: Option<String>,
    /// The watcher's instance id (its choice), recorded with the releases it holds.
    instance: Option<String>,
    /// The watcher's labels, `key=value,key=value` (gray releases select by them).
    labels: Option<String>,
    /// The tenant of the configuration the sets make (with `application`:
    /// also tell of sets joining or leaving it).
    tenant: Option<String>,
    /// Its application.
    application: Option<String>,
    /// Its environment (absent: the base level).
    environment: Option<String>,
    /// Its cluster (absent: the environment level).
    cluster: Option<String>,
}

/// What a multi-set long poll hears first.
enum Heard {
    Release(pb::ReleaseNotice),
    Layout(pb::Layout),
}

/// The layout watch of the configuration `q` names, if it names one.
async fn open_layout(
    caller: &Caller,
    configs: &Configs,
    positions: &Positions,
    q: &MultiWatchQuery,
) -> Result<Option<tonic::Streaming<pb::Layout>>, ApiError> {
    let (tenant, application) = match (q.tenant.as_deref(), q.application.as_deref()) {
        (None, None) => return Ok(None),
        (Some(tenant), Some(application)) => (tenant, application),
        (None, Some(_)) => return Err(ApiError::invalid("tenant", "is required with application")),
        (Some(_), None) => return Err(ApiError::invalid("application", "is required with tenant")),
    };
    crate::access_keys::check_application(caller, tenant, application)?;
    let request = pb::WatchLayoutRequest {
        tenant_id: tenant.to_string(),
        application: application.to_string(),
        environment: q.environment.clone().unwrap_or_default(),
        cluster: q.cluster.clone().unwrap_or_default(),
        config_set_ids: positions.0.keys().map(Uuid::to_string).collect(),
    };
    Ok(Some(configs.clone().watch_layout(request).await?.into_inner()))
}

/// The notices a new layout means for a watcher at `positions`: each set
/// it lacks, `joined` at its latest release; each it has that is no longer
/// in it, `left`.
fn layout_notices(positions: &Positions, layout: pb::Layout) -> Vec<ReleaseNotice> {
    let mut notices = Vec::new();
    let mut now = std::collections::BTreeSet::new();
    for set in layout.sets {
        let Ok(id) = Uuid::parse_str(&set.config_set_id) else {
            continue;
        };
        now.insert(id);
        if !positions.0.contains_key(&id) {
            notices.push(ReleaseNotice {
                config_set_id: set.config_set_id,
                number: set.latest_release,
                release_id: String::new(),
                kind: "joined".into(),
            });
        }
    }
    for (id, number) in positions.0.iter().filter(|(id, _)| !now.contains(id)) {
        notices.push(ReleaseNotice {
            config_set_id: id.to_string(),
            number: *number,
            release_id: String::new(),
            kind: "left".into(),
        });
    }
    notices
}

#[utoipa::path(get, path = "/api/v1/config-watch", tag = "configs",
    params(MultiWatchQuery),
    responses(
        (status = 200, body = WatchAnswer, description = "at once when any set has a release after the watcher's"),
        (status = 304, description = "none within `timeout`: ask again"),
        Problems
    ),
    security(("bearer" = [])))]
async fn watch_sets(
    Authenticated(caller): Authenticated,
    Signed(configs): Signed<Configs>,
    extensions: Extensions,
    Query(q): Query<MultiWatchQuery>,
) -> Result<Response, ApiError> {
    let positions = Positions::parse("sets", q.sets.as_deref().unwrap_or_default())?;
    let who = Identity::parse(q.instance.as_deref(), q.labels.as_deref(), peer(&extensions))?;
    let hold = hold(q.timeout.as_deref())?;
    let layout = open_layout(&caller, &configs, &positions, &q).await?;
    let releases = futures::stream::select_all(open(&caller, &configs, &positions, &who).await?)
        .map(|notice| notice.map(Heard::Release));
    let layout = futures::stream::iter(layout)
        .flatten()
        .map(|layout| layout.map(Heard::Layout));
    let mut merged = futures::stream::select(releases, layout);
    let first = match tokio::time::timeout(hold, merged.next()).await {
        Err(_) | Ok(None) => return Ok(StatusCode::NOT_MODIFIED.into_response()),
        Ok(Some(first)) => first?,
    };
    let mut releases = Vec::new();
    let mut heard = Some(first);
    // Everything else already waiting, so a watcher far behind catches up in one answer.
    while let Some(next) = heard {
        match next {
            Heard::Release(notice) => releases.push(ReleaseNotice::from(notice)),
            Heard::Layout(layout) => releases.extend(layout_notices(&positions, layout)),
        }
        heard = match merged.next().now_or_never() {
            Some(Some(Ok(next))) => Some(next),
            _ => None,
        };
    }
    if releases.is_empty() {
        // A layout the same as the watcher's (it changed and changed back).
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    Ok(axum::Json(WatchAnswer { releases }).into_response())
}

#[utoipa::path(get, path = "/api/v1/config-watch/events", tag = "configs",
    params(MultiWatchQuery),
    responses((status = 200, description = "text/event-stream. Event `release`: a release of a watched set \
        (data: a ReleaseNotice). With a named configuration (`tenant`, `application`, ...) also `joined`: a set \
        now part of it, watched from then on after the `number` given (its latest release; read the configuration \
        again), and `left`: a set no longer part of it, watched no more. Every event's id is the watcher's whole \
        position after it (`<set>:<n>,...`), which `Last-Event-ID` resumes from exactly: no release missed or \
        repeated, no set joined or left twice. With a named configuration `sets` may be empty (every set then \
        arrives as `joined`), and so may the id once every set has left"), Problems),
    security(("bearer" = [])))]
async fn watch_sets_events(
    Authenticated(caller): Authenticated,
    State(state): State<AppState>,
    extensions: Extensions,
    headers: HeaderMap,
    Query(q): Query<MultiWatchQuery>,
) -> Result<Response, ApiError> {
    // A configuration's stream may hold no set for a while (all left, none joined yet).
    let named = q.tenant.is_some() || q.application.is_some();
    // A reconnecting EventSource sends the last position it saw.
    let positions = match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        Some(last) => Positions::parse_within("Last-Event-ID", last, named)?,
        None => Positions::parse_within("sets", q.sets.as_deref().unwrap_or_default(), named)?,
    };
    let who = Identity::parse(q.instance.as_deref(), q.labels.as_deref(), peer(&extensions))?;
    let configs = state.upstream.configs(&state.key, &caller);
    let layout = open_layout(&caller, &configs, &positions, &q).await?;
    let releases = positions
        .0
        .keys()
        .copied()
        .zip(open(&caller, &configs, &positions, &who).await?.into_iter().map(ending))
        .collect();
    let feed = EventFeed {
        caller,
        state,
        who,
        positions,
        releases,
        layout,
        ready: VecDeque::new(),
    };
    let events = futures::stream::unfold(feed, EventFeed::next);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

/// A set's watch that says when it ends (`None`), which a [`StreamMap`]
/// would drop without a word.
type SetWatch = std::pin::Pin<Box<dyn futures::Stream<Item = Option<Result<pb::ReleaseNotice, tonic::Status>>> + Send>>;

fn ending(stream: tonic::Streaming<pb::ReleaseNotice>) -> SetWatch {
    Box::pin(stream.map(Some).chain(futures::stream::once(std::future::ready(None))))
}

/// An event stream's watches and what it has told: one watch per set, and
/// the configuration's layout when it names one.
struct EventFeed {
    caller: Caller,
    /// To sign a new watch's call (a caller token outlives no stream).
    state: AppState,
    who: Identity,
    /// What the client has been told, the id of its last event.
    positions: Positions,
    releases: StreamMap<Uuid, SetWatch>,
    layout: Option<tonic::Streaming<pb::Layout>>,
    /// Events worked out but not yet sent (a layout can tell of several sets).
    ready: VecDeque<Result<Event, axum::Error>>,
}

impl EventFeed {
    /// Event `name` telling of `notice`, with the position it leaves the client at.
    fn event(&self, name: &str, notice: ReleaseNotice) -> Result<Event, axum::Error> {
        Event::default()
            .event(name)
            .id(self.positions.to_string())
            .json_data(notice)
    }

    /// The next event; `None` ends the stream (the service stopping, or a
    /// watch failing otherwise than for a set gone): the client reconnects
    /// from its last event's id.
    async fn next(mut self) -> Option<(Result<Event, axum::Error>, Self)> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some((event, self));
            }
            let layout = &mut self.layout;
            let layout = async move {
                match layout {
                    Some(layout) => layout.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some((set, notice)) = self.releases.next(), if !self.releases.is_empty() => match notice {
                    Some(Ok(notice)) => {
                        self.positions.advance(&notice);
                        let event = self.event("release", notice.into());
                        return Some((event, self));
                    }
                    // Deleted: it has left the configuration (its layout,
                    // telling so too, then finds it gone already).
                    Some(Err(status)) if status.code() == tonic::Code::NotFound && self.layout.is_some() => {
                        self.leave(set);
                    }
                    // Failed or ended (the service stopping): the client reconnects.
                    Some(Err(_)) | None => return None,
                },
                layout = layout => match layout {
                    Some(Ok(layout)) => {
                        for notice in layout_notices(&self.positions, layout) {
                            let Ok(set) = Uuid::parse_str(&notice.config_set_id) else { continue };
                            if notice.kind == "left" {
                                self.leave(set);
                            } else if !self.join(set, notice).await {
                                return None;
                            }
                        }
                    }
                    _ => return None,
                },
            }
        }
    }

    /// Stops watching `set` and tells the client so.
    fn leave(&mut self, set: Uuid) {
        self.releases.remove(&set);
        if let Some(number) = self.positions.0.remove(&set) {
            let event = self.event(
                "left",
                ReleaseNotice {
                    config_set_id: set.to_string(),
                    number,
                    release_id: String::new(),
                    kind: "left".into(),
                },
            );
            self.ready.push_back(event);
        }
    }

    /// Watches `joined`'s set after the release it joined at and tells the
    /// client so; false when the watch cannot start (a set deleted or out
    /// of reach since the layout was read is left out: true).
    async fn join(&mut self, set: Uuid, joined: ReleaseNotice) -> bool {
        let mut configs = self.state.upstream.configs(&self.state.key, &self.caller);
        let id = set.to_string();
        let opened = async {
            crate::access_keys::check_set(&self.caller, &mut configs, &id).await?;
            let request = self.who.request(&id, joined.number);
            Ok::<_, ApiError>(configs.watch(request).await?.into_inner())
        };
        match opened.await {
            Ok(stream) => {
                self.releases.insert(set, ending(stream));
                self.positions.0.insert(set, joined.number);
                let event = self.event("joined", joined);
                self.ready.push_back(event);
                true
            }
            Err(e) if e.0.status == StatusCode::NOT_FOUND.as_u16() => true,
            Err(e) => {
                tracing::debug!(%set, error = %e.0.detail, "cannot watch a set that joined; the client reconnects");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_and_print_back() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        let p = Positions::parse("sets", &format!("{b}:3, {a}")).unwrap();
        assert_eq!(p.to_string(), format!("{a}:0,{b}:3"));
        let field = |raw: &str| Positions::parse("sets", raw).unwrap_err().0.field;
        assert_eq!(field("").as_deref(), Some("sets"));
        assert_eq!(field("nope:1").as_deref(), Some("sets"));
        assert_eq!(field(&format!("{a}:x")).as_deref(), Some("sets"));
        assert_eq!(field(&format!("{a}:1,{a}:2")).as_deref(), Some("sets"));
        let many: Vec<String> = (0..=MAX_SETS).map(|_| Uuid::now_v7().to_string()).collect();
        assert_eq!(field(&many.join(",")).as_deref(), Some("sets"));
    }

    #[test]
    fn a_position_only_moves_forward() {
        let a = Uuid::now_v7();
        let mut p = Positions::parse("sets", &format!("{a}:5")).unwrap();
        let notice = |n| pb::ReleaseNotice {
            config_set_id: a.to_string(),
            number: n,
            ..Default::default()
        };
        p.advance(&notice(7));
        p.advance(&notice(6));
        assert_eq!(p.to_string(), format!("{a}:7"));
    }

    #[test]
    fn labels_are_pairs_and_need_an_instance() {
        let who = Identity::parse(Some("pod-1"), Some("zone=a, canary=true"), "10.0.0.9".into()).unwrap();
        assert_eq!(who.labels.get("canary").map(String::as_str), Some("true"));
        assert_eq!(who.request("s", 4).ip, "10.0.0.9");
        let field = |i: Option<&str>, l: &str| Identity::parse(i, Some(l), String::new()).unwrap_err().0.field;
        assert_eq!(field(Some("pod"), "zone").as_deref(), Some("labels"));
        assert_eq!(field(Some("pod"), "a=1,a=2").as_deref(), Some("labels"));
        assert_eq!(field(None, "a=1").as_deref(), Some("instance"));
        assert_eq!(
            Identity::parse(None, None, "10.0.0.9".into())
                .unwrap()
                .request("s", 0)
                .ip,
            ""
        );
    }

    #[test]
    fn a_layout_tells_of_the_sets_joining_and_leaving() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let positions = Positions::parse("sets", &format!("{a}:3,{b}:1")).unwrap();
        let set = |id: Uuid, latest_release| pb::EffectiveSet {
            config_set_id: id.to_string(),
            origin: String::new(),
            latest_release,
        };
        let layout = pb::Layout {
            sets: vec![set(c, 2), set(a, 3)],
        };
        let told: Vec<(String, u64, String)> = layout_notices(&positions, layout)
            .into_iter()
            .map(|n| (n.config_set_id, n.number, n.kind))
            .collect();
        assert_eq!(
            told,
            vec![
                (c.to_string(), 2, "joined".to_string()),
                (b.to_string(), 1, "left".to_string())
            ]
        );
    }

    #[test]
    fn the_hold_is_at_most_a_minute() {
        assert_eq!(hold(None).unwrap(), LONG_POLL);
        assert_eq!(hold(Some("5")).unwrap(), Duration::from_secs(5));
        assert_eq!(hold(Some("61")).unwrap_err().0.field.as_deref(), Some("timeout"));
    }
}
