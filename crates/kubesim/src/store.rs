//! The object store: every object as JSON keyed by (resource, namespace,
//! name), one resourceVersion counter per cluster, a bounded window of watch
//! events, and the write paths with the API server's rules (generateName,
//! uid, generation, optimistic concurrency, finalizers, owner-reference
//! garbage collection, namespace cascade, managedFields).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use crate::apply::{self, Subresource};
use crate::quota;
use crate::resource::{self, ResourceId, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{Error, Result};
use crate::workload;

/// Watch event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as the watch window retains it.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub resource: ResourceId,
    pub kind: EventType,
    pub object: Arc<Value>,
    /// The object before a MODIFIED change, so watches with selectors can
    /// tell objects entering and leaving their selection.
    pub previous: Option<Arc<Value>>,
}

/// How a write is made.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// The field manager recorded in managedFields.
    /// The field manager (`fieldManager`, or the client's user agent).
    pub manager: String,
    /// `dryRun=All`: validate and compute, but do not persist.
    pub dry_run: bool,
    /// The subresource written (main, status or scale).
    pub subresource: Subresource,
}

impl WriteOptions {
    /// A write to the main resource by this field manager.
    pub fn by(manager: &str) -> Self {
        Self {
            manager: manager.to_string(),
            dry_run: false,
            subresource: Subresource::Main,
        }
    }

    /// The same write, to the `status` subresource.
    pub fn status(mut self) -> Self {
        self.subresource = Subresource::Status;
        self
    }
}

/// A list request.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit`: at most this many items on the page.
    pub limit: Option<usize>,
    /// `continue`: the token of the previous page.
    pub continue_token: Option<String>,
}

/// One page of a list.
#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<Arc<Value>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

type Key = (String, String);

/// Events buffered per watcher before a slow watch is ended (it resumes from
/// its last resourceVersion out of the retained window, like a real client).
const LIVE_EVENTS: usize = 1024;

/// The live side of a watch.
pub type Subscription = broadcast::Receiver<Arc<Event>>;

pub(crate) struct State {
    rv: u64,
    pub(crate) objects: Vec<BTreeMap<Key, Arc<Value>>>,
    /// Controller owner uid -> the objects it controls, kept by [`State::put`]
    /// and [`State::take`] (every write goes through them), so a controller
    /// finds its ReplicaSets or pods without scanning the namespace, as a
    /// real controller's informer index does.
    controlled: HashMap<String, BTreeSet<(ResourceId, Key)>>,
    log: VecDeque<Arc<Event>>,
    window: usize,
    /// Events with a resourceVersion at or below this are no longer retained.
    compacted: u64,
}

/// The store of one cluster.
pub struct Store {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<Event>>,
    changed: Notify,
    event_limiter: crate::event::Limiter,
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

const DNS1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The 422 problems of an object's name (`(field, message)`).
fn name_problems(rt: &ResourceType, name: &str) -> Vec<(String, String)> {
    let label_only = matches!(rt.plural, "namespaces" | "services");
    let ok = if label_only {
        is_dns_label(name)
    } else {
        name.len() <= 253 && name.split('.').all(is_dns_label)
    };
    if ok {
        Vec::new()
    } else {
        let rule = if label_only { DNS1123_LABEL } else { DNS1123_SUBDOMAIN };
        vec![("metadata.name".into(), format!("Invalid value: \"{name}\": {rule}"))]
    }
}

/// The uid of the controller owning `obj`, if any.
fn controller_uid(obj: &Value) -> Option<&str> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)?["uid"]
        .as_str()
}

impl State {
    /// Stores `obj` under `k`; returns what it replaces.
    fn put(&mut self, rid: ResourceId, k: Key, obj: Arc<Value>) -> Option<Arc<Value>> {
        if let Some(uid) = controller_uid(&obj) {
            self.controlled
                .entry(uid.to_string())
                .or_default()
                .insert((rid, k.clone()));
        }
        let previous = self.objects[rid].insert(k.clone(), obj.clone());
        if let Some(old) = previous
            .as_deref()
            .and_then(controller_uid)
            .filter(|old| Some(*old) != controller_uid(&obj))
        {
            self.forget_controlled(old.to_string(), rid, &k);
        }
        previous
    }

    /// Removes the object under `k`; returns it.
    fn take(&mut self, rid: ResourceId, k: &Key) -> Option<Arc<Value>> {
        let removed = self.objects[rid].remove(k);
        if let Some(uid) = removed.as_deref().and_then(controller_uid) {
            self.forget_controlled(uid.to_string(), rid, k);
        }
        removed
    }

    fn forget_controlled(&mut self, uid: String, rid: ResourceId, k: &Key) {
        if let Some(set) = self.controlled.get_mut(&uid) {
            set.remove(&(rid, k.clone()));
            if set.is_empty() {
                self.controlled.remove(&uid);
            }
        }
    }

    /// The objects of `rid` in `ns` whose controller is the object with `uid`, by name.
    pub(crate) fn controlled_by(&self, uid: &str, rid: ResourceId, ns: &str) -> Vec<Arc<Value>> {
        let Some(set) = self.controlled.get(uid) else {
            return Vec::new();
        };
        set.iter()
            .filter(|(r, (n, _))| *r == rid && n == ns)
            .filter_map(|(r, k)| self.objects[*r].get(k).cloned())
            .collect()
    }

    pub(crate) fn map(&self, rid: ResourceId) -> &BTreeMap<Key, Arc<Value>> {
        &self.objects[rid]
    }

    pub(crate) fn in_namespace<'a>(
        &'a self,
        rid: ResourceId,
        ns: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Value>> + 'a {
        self.objects[rid]
            .range((ns.to_string(), String::new())..)
            .take_while(move |((n, _), _)| n == ns)
            .map(|(_, v)| v)
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }
}

fn key(rt: &ResourceType, ns: &str, name: &str) -> Key {
    (
        if rt.namespaced { ns.to_string() } else { String::new() },
        name.to_string(),
    )
}

fn encode_token(rv: u64, ns: &str, name: &str) -> String {
    let raw = format!("{rv}\n{ns}\n{name}");
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str) -> Option<(u64, String, String)> {
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| token.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let mut parts = text.splitn(3, '\n');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.to_string(),
        parts.next()?.to_string(),
    ))
}

impl Store {
    /// An empty store retaining the last `window` watch events.
    pub fn new(window: usize) -> Self {
        let (events, _) = broadcast::channel(LIVE_EVENTS);
        Self {
            state: Mutex::new(State {
                rv: 1,
                objects: resource::RESOURCES.iter().map(|_| BTreeMap::new()).collect(),
                controlled: HashMap::new(),
                log: VecDeque::new(),
                window,
                compacted: 0,
            }),
            events,
            changed: Notify::new(),
            event_limiter: crate::event::Limiter::default(),
        }
    }

    /// The rate limiter of the cluster's event sources.
    pub(crate) fn event_limiter(&self) -> &crate::event::Limiter {
        &self.event_limiter
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Resolves when any object changed (for the simulation loop).
    pub(crate) fn changed(&self) -> &Notify {
        &self.changed
    }

    /// The current resourceVersion of the store.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Drops every retained watch event, so watches and continue tokens from
    /// before now get 410 Gone, as after an etcd compaction.
    pub fn compact(&self) {
        let mut st = self.lock();
        st.log.clear();
        st.compacted = st.rv;
    }

    /// Drops the retained watch events up to `rv`, as the API server's
    /// periodic etcd compaction does: watches from before it get 410 Gone.
    pub fn compact_to(&self, rv: u64) {
        let mut st = self.lock();
        let rv = rv.min(st.rv);
        while st.log.front().is_some_and(|e| e.rv <= rv) {
            st.log.pop_front();
        }
        st.compacted = st.compacted.max(rv);
    }

    /// Changes how many watch events are retained.
    pub fn set_window(&self, window: usize) {
        let mut st = self.lock();
        st.window = window.max(1);
        while st.log.len() > st.window {
            if let Some(e) = st.log.pop_front() {
                st.compacted = e.rv;
            }
        }
    }

    fn record(
        &self,
        st: &mut State,
        rid: ResourceId,
        kind: EventType,
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) {
        let mirrored = crate::event::mirror(rid, &object);
        self.record_one(st, rid, kind, object, previous);
        // The two Event schemas are views of one stored event: a write to
        // either shows in both.
        if let Some((other, mut converted)) = mirrored {
            let rt = resource::get(other);
            let k = key(rt, meta_str(&converted, "namespace"), meta_str(&converted, "name"));
            let rv = st.next_rv();
            converted["metadata"]["resourceVersion"] = json!(rv.to_string());
            let converted = Arc::new(converted);
            match kind {
                EventType::Deleted => {
                    if st.take(other, &k).is_some() {
                        self.record_one(st, other, kind, converted, None);
                    }
                }
                _ => {
                    let before = st.put(other, k, converted.clone());
                    let kind = if before.is_some() {
                        EventType::Modified
                    } else {
                        EventType::Added
                    };
                    self.record_one(st, other, kind, converted, before);
                }
            }
        }
    }

    fn record_one(
        &self,
        st: &mut State,
        rid: ResourceId,
        kind: EventType,
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) {
        let event = Arc::new(Event {
            rv: st.rv,
            resource: rid,
            kind,
            object,
            previous,
        });
        st.log.push_back(event.clone());
        while st.log.len() > st.window {
            if let Some(e) = st.log.pop_front() {
                st.compacted = e.rv;
            }
        }
        let _ = self.events.send(event);
        self.changed.notify_one();
    }

    /// Reads one object.
    ///
    /// # Errors
    /// 404 if absent.
    pub fn get(&self, rid: ResourceId, ns: &str, name: &str) -> Result<Arc<Value>> {
        let rt = resource::get(rid);
        self.lock().objects[rid]
            .get(&key(rt, ns, name))
            .cloned()
            .ok_or_else(|| Error::not_found(rt, name))
    }

    /// Every object of a kind (all namespaces), for controllers.
    pub fn all(&self, rid: ResourceId) -> Vec<Arc<Value>> {
        self.lock().objects[rid].values().cloned().collect()
    }

    /// Lists objects in `ns` (or all namespaces for `None`), with selectors and pages.
    ///
    /// Pages are read from the current state; every page reports the
    /// resourceVersion of the first, so a watch started from it replays what
    /// changed while paging.
    ///
    /// # Errors
    /// 400 for a malformed continue token, 410 for one older than the window.
    pub fn list(&self, rid: ResourceId, ns: Option<&str>, q: &ListQuery) -> Result<ListPage> {
        let rt = resource::get(rid);
        let st = self.lock();
        let (list_rv, start) = match &q.continue_token {
            Some(token) => {
                let (rv, tns, tname) =
                    decode_token(token).ok_or_else(|| Error::BadRequest("continue key is not valid".into()))?;
                if rv < st.compacted {
                    return Err(Error::Expired(
                        "The provided continue parameter is too old to display a consistent list result. \
                         You can start a new list without the continue parameter."
                            .into(),
                    ));
                }
                (rv, Some((tns, tname)))
            }
            None => (st.rv, None),
        };
        let map = &st.objects[rid];
        let ns = ns.filter(|_| rt.namespaced);
        let lower = match (&start, ns) {
            (Some((tns, tname)), _) => std::ops::Bound::Excluded((tns.clone(), tname.clone())),
            (None, Some(n)) => std::ops::Bound::Included((n.to_string(), String::new())),
            (None, None) => std::ops::Bound::Unbounded,
        };
        let mut items = Vec::new();
        let mut continue_token = None;
        let mut remaining = None;
        let mut iter = map
            .range((lower, std::ops::Bound::Unbounded))
            .take_while(|((n, _), _)| ns.is_none_or(|want| n == want))
            .filter(|(_, v)| q.labels.matches(v) && q.fields.matches(v));
        for (k, v) in iter.by_ref() {
            items.push(v.clone());
            if q.limit.is_some_and(|l| l > 0 && items.len() >= l) {
                continue_token = Some(encode_token(list_rv, &k.0, &k.1));
                break;
            }
        }
        if continue_token.is_some() {
            let left = iter.count();
            if left == 0 {
                continue_token = None;
            } else {
                remaining = Some(left);
            }
        }
        Ok(ListPage {
            items,
            resource_version: list_rv,
            continue_token,
            remaining,
        })
    }

    /// How many watches are open: the streams being served and in-process
    /// subscribers of [`Self::watch_now`] or [`Self::watch_from`]. A test
    /// waits on it to know a fault has ended the watches before it changes
    /// what they would have seen.
    pub fn open_watches(&self) -> usize {
        self.events.receiver_count()
    }

    /// Subscribes to changes after `since`: the retained events to replay and
    /// the live receiver.
    ///
    /// # Errors
    /// 410 if `since` is older than the retained window.
    pub fn watch_from(&self, since: u64) -> Result<(Vec<Arc<Event>>, Subscription)> {
        let st = self.lock();
        if since < st.compacted {
            return Err(Error::Expired(format!(
                "too old resource version: {since} ({})",
                st.compacted + 1
            )));
        }
        let replay = st.log.iter().filter(|e| e.rv > since).cloned().collect();
        Ok((replay, self.events.subscribe()))
    }

    /// A consistent snapshot for `watch` without a resourceVersion: the
    /// current objects (sent as ADDED) and the receiver for what follows.
    pub fn watch_now(&self, rid: ResourceId) -> (Vec<Arc<Value>>, u64, broadcast::Receiver<Arc<Event>>) {
        let st = self.lock();
        (
            st.objects[rid].values().cloned().collect(),
            st.rv,
            self.events.subscribe(),
        )
    }

    /// Creates an object.
    ///
    /// # Errors
    /// 409 if it exists, 422 if invalid, 404/403 for a missing or terminating
    /// namespace, 403 if a ResourceQuota refuses it.
    pub fn create(&self, rid: ResourceId, ns: &str, obj: Value, opts: &WriteOptions) -> Result<Arc<Value>> {
        let mut st = self.lock();
        self.create_locked(&mut st, rid, ns, obj, opts, true)
    }

    fn create_locked(
        &self,
        st: &mut State,
        rid: ResourceId,
        ns: &str,
        mut obj: Value,
        opts: &WriteOptions,
        record_fields: bool,
    ) -> Result<Arc<Value>> {
        let rt = resource::get(rid);
        if !obj.is_object() {
            return Err(Error::BadRequest(
                "the body of the request was not a JSON object".into(),
            ));
        }
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let mut name = meta_str(&obj, "name").to_string();
        let requested_name = if name.is_empty() {
            meta_str(&obj, "generateName").to_string()
        } else {
            name.clone()
        };
        if name.is_empty() {
            let prefix = meta_str(&obj, "generateName");
            if prefix.is_empty() {
                return Err(Error::invalid(
                    rt,
                    "",
                    &[(
                        "metadata.name".into(),
                        "Required value: name or generateName is required".into(),
                    )],
                ));
            }
            name = format!("{prefix}{}", random_suffix(5));
            obj["metadata"]["name"] = json!(name);
        }
        let mut problems = name_problems(rt, &name);
        problems.extend(workload::validate(rid, &obj));
        if !problems.is_empty() {
            return Err(Error::invalid(rt, &name, &problems));
        }
        if rt.namespaced {
            let body_ns = meta_str(&obj, "namespace");
            if !body_ns.is_empty() && body_ns != ns {
                return Err(Error::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            obj["metadata"]["namespace"] = json!(ns);
            let namespace = st.objects[resource::NAMESPACES]
                .get(&(String::new(), ns.to_string()))
                .ok_or_else(|| Error::not_found(resource::get(resource::NAMESPACES), ns))?;
            if namespace["metadata"].get("deletionTimestamp").is_some() {
                return Err(Error::forbidden(
                    rt,
                    &name,
                    &format!("unable to create new content in namespace {ns} because it is being terminated"),
                ));
            }
        } else if let Some(meta) = obj["metadata"].as_object_mut() {
            meta.remove("namespace");
        }
        let k = key(rt, ns, &name);
        if st.objects[rid].contains_key(&k) {
            return Err(Error::already_exists(rt, &name));
        }
        // The API server ignores a status sent on create, and answers with an
        // empty one for the controllers to fill in.
        if rt.status && rid != resource::NODES && rid != resource::PERSISTENTVOLUMES {
            obj["status"] = json!({});
        }
        if let Some(meta) = obj["metadata"].as_object_mut() {
            meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            meta.insert("creationTimestamp".into(), json!(now()));
            meta.remove("deletionTimestamp");
            meta.remove("resourceVersion");
            meta.remove("selfLink");
            if rt.status && rid != resource::NAMESPACES {
                meta.insert("generation".into(), json!(1));
            }
        }
        // LimitRanger (on create only: a pod's resources never change) before
        // the QoS class is worked out and before the quota's admission.
        if rid == resource::PODS {
            crate::limit_range::default_pod(st, ns, &mut obj);
        }
        workload::default_object(rid, &mut obj, st);
        quota::admit(st, rid, ns, &requested_name, &obj)?;
        if record_fields {
            apply::record_update(
                None,
                &mut obj,
                &opts.manager,
                &rt.api_version(),
                opts.subresource,
                rt.status,
            );
        }
        if opts.dry_run {
            return Ok(Arc::new(obj));
        }
        let rv = st.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let obj = Arc::new(obj);
        st.put(rid, k, obj.clone());
        self.record(st, rid, EventType::Added, obj.clone(), None);
        Ok(obj)
    }

    /// Replaces an object (PUT), on the main resource or the status subresource.
    ///
    /// # Errors
    /// 404 if absent, 409 if `metadata.resourceVersion` is stale, 400 if the
    /// body names another object.
    pub fn replace(
        &self,
        rid: ResourceId,
        ns: &str,
        name: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Arc<Value>> {
        let mut st = self.lock();
        let rt = resource::get(rid);
        let old = st.objects[rid]
            .get(&key(rt, ns, name))
            .cloned()
            .ok_or_else(|| Error::not_found(rt, name))?;
        self.commit_locked(&mut st, rid, ns, name, &old, obj, opts, true)
    }

    /// Reads, changes and writes an object under the store lock (patch). `f`
    /// gets the current object.
    ///
    /// # Errors
    /// 404 if absent, and whatever `f` or the write returns.
    pub fn modify(
        &self,
        rid: ResourceId,
        ns: &str,
        name: &str,
        opts: &WriteOptions,
        f: impl FnOnce(&Value) -> Result<Value>,
    ) -> Result<Arc<Value>> {
        let mut st = self.lock();
        let rt = resource::get(rid);
        let old = st.objects[rid]
            .get(&key(rt, ns, name))
            .cloned()
            .ok_or_else(|| Error::not_found(rt, name))?;
        let new = f(&old)?;
        self.commit_locked(&mut st, rid, ns, name, &old, new, opts, true)
    }

    /// Server-side apply: creates or updates `name` from the applied configuration.
    ///
    /// # Errors
    /// 409 naming the other managers on a conflict without `force`, and the
    /// errors of create and update.
    pub fn apply(
        &self,
        rid: ResourceId,
        ns: &str,
        name: &str,
        applied: &Value,
        force: bool,
        opts: &WriteOptions,
    ) -> Result<(Arc<Value>, bool)> {
        let rt = resource::get(rid);
        if meta_str(applied, "name") != name {
            return Err(Error::BadRequest(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(applied, "name")
            )));
        }
        let mut st = self.lock();
        let existing = st.objects[rid].get(&key(rt, ns, name)).cloned();
        let skeleton;
        let live: &Value = match &existing {
            Some(o) => o,
            None => {
                skeleton = json!({ "apiVersion": rt.api_version(), "kind": rt.kind, "metadata": { "name": name } });
                &skeleton
            }
        };
        let merged = apply::apply(
            live,
            applied,
            &opts.manager,
            force,
            &rt.api_version(),
            opts.subresource,
            rt.status,
        )
        .map_err(|conflicts| {
            let mut details = crate::status::Details::named(rt, name, rt.plural);
            details.causes = conflicts
                .iter()
                .map(|c| {
                    (
                        "FieldManagerConflict".to_string(),
                        c.path.clone(),
                        format!("conflict with \"{}\" using {}", c.manager, c.api_version),
                    )
                })
                .collect();
            Error::Conflict {
                message: apply::conflict_message(&conflicts),
                details,
            }
        })?;
        match existing {
            Some(old) => Ok((
                self.commit_locked(&mut st, rid, ns, name, &old, merged, opts, false)?,
                false,
            )),
            None => {
                if opts.subresource == Subresource::Status {
                    return Err(Error::not_found(rt, name));
                }
                Ok((self.create_locked(&mut st, rid, ns, merged, opts, false)?, true))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_locked(
        &self,
        st: &mut State,
        rid: ResourceId,
        ns: &str,
        name: &str,
        old: &Arc<Value>,
        mut new: Value,
        opts: &WriteOptions,
        record_fields: bool,
    ) -> Result<Arc<Value>> {
        let rt = resource::get(rid);
        if !new.is_object() {
            return Err(Error::BadRequest(
                "the body of the request was not a JSON object".into(),
            ));
        }
        if !new["metadata"].is_object() {
            new["metadata"] = json!({});
        }
        let body_name = meta_str(&new, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(Error::BadRequest(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_rv = meta_str(&new, "resourceVersion");
        if !body_rv.is_empty() && body_rv != meta_str(old, "resourceVersion") {
            return Err(Error::stale(rt, name));
        }
        let mut new = match opts.subresource {
            Subresource::Status => {
                let mut merged = (**old).clone();
                merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
                merged
            }
            Subresource::Main => {
                if rt.status {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                new
            }
        };
        new["apiVersion"] = json!(rt.api_version());
        new["kind"] = json!(rt.kind);
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match old["metadata"].get(field) {
                Some(v) => new["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        if (new["metadata"].get("managedFields").is_none() || record_fields)
            && let Some(mf) = old["metadata"].get("managedFields")
        {
            new["metadata"]["managedFields"] = mf.clone();
        }
        workload::prepare_update(rid, old, &mut new);
        let mut problems = workload::validate(rid, &new);
        if opts.subresource == Subresource::Main {
            problems.extend(workload::validate_update(rid, old, &new));
        }
        if !problems.is_empty() {
            return Err(Error::invalid(rt, name, &problems));
        }
        workload::default_object(rid, &mut new, st);
        if rt.status && rid != resource::NAMESPACES && spec_of(&new) != spec_of(old) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            new["metadata"]["generation"] = json!(generation);
        }
        if record_fields {
            apply::record_update(
                Some(old),
                &mut new,
                &opts.manager,
                &rt.api_version(),
                opts.subresource,
                rt.status,
            );
        }
        if without_times(&new) == without_times(old) {
            return Ok(old.clone());
        }
        if opts.dry_run {
            return Ok(Arc::new(new));
        }
        // A pod in its termination grace period is not removed by an update:
        // its kubelet removes it (a delete with grace period 0).
        let finalized = new["metadata"].get("deletionTimestamp").is_some()
            && new["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty)
            && old["metadata"]["deletionGracePeriodSeconds"].as_i64().unwrap_or(0) == 0;
        let rv = st.next_rv();
        new["metadata"]["resourceVersion"] = json!(rv.to_string());
        let k = key(rt, ns, name);
        let new = Arc::new(new);
        if finalized && rid != resource::NAMESPACES {
            st.take(rid, &k);
            self.record(st, rid, EventType::Deleted, new.clone(), None);
            self.collect_dependents(st, rid, &new);
        } else {
            let previous = st.put(rid, k, new.clone());
            self.record(st, rid, EventType::Modified, new.clone(), previous);
        }
        Ok(new)
    }

    /// Deletes an object. With finalizers it only gets a deletionTimestamp
    /// and stays until they are removed; dependents (ownerReferences) are
    /// deleted too unless `orphan`; a namespace takes its objects with it.
    ///
    /// # Errors
    /// 404 if absent.
    pub fn delete(&self, rid: ResourceId, ns: &str, name: &str, orphan: bool, dry_run: bool) -> Result<Arc<Value>> {
        self.delete_with_grace(rid, ns, name, orphan, dry_run, None)
    }

    /// [`Store::delete`] with the DeleteOptions' `gracePeriodSeconds`: a
    /// pod bound to a node and not finished is only marked (deletionTimestamp
    /// `grace` seconds ahead, `deletionGracePeriodSeconds`), by default its
    /// `terminationGracePeriodSeconds` (30); its kubelet stops the containers
    /// and removes it with grace 0.
    ///
    /// # Errors
    /// 404 if absent.
    pub fn delete_with_grace(
        &self,
        rid: ResourceId,
        ns: &str,
        name: &str,
        orphan: bool,
        dry_run: bool,
        grace: Option<i64>,
    ) -> Result<Arc<Value>> {
        let mut st = self.lock();
        let rt = resource::get(rid);
        let old = st.objects[rid]
            .get(&key(rt, ns, name))
            .cloned()
            .ok_or_else(|| Error::not_found(rt, name))?;
        if dry_run {
            return Ok(old);
        }
        self.delete_locked(&mut st, rid, &old, orphan, grace)
    }

    fn delete_locked(
        &self,
        st: &mut State,
        rid: ResourceId,
        old: &Arc<Value>,
        orphan: bool,
        grace: Option<i64>,
    ) -> Result<Arc<Value>> {
        let rt = resource::get(rid);
        let ns = meta_str(old, "namespace").to_string();
        let name = meta_str(old, "name").to_string();
        let k = key(rt, &ns, &name);
        let has_finalizers = old["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        if rid == resource::NAMESPACES {
            let mut terminating = (**old).clone();
            if terminating["metadata"].get("deletionTimestamp").is_none() {
                terminating["metadata"]["deletionTimestamp"] = json!(now());
            }
            terminating["status"]["phase"] = json!("Terminating");
            for other in 0..st.objects.len() {
                if !resource::get(other).namespaced {
                    continue;
                }
                let inside: Vec<Arc<Value>> = st.in_namespace(other, &name).cloned().collect();
                for obj in inside {
                    self.delete_locked(st, other, &obj, true, None)?;
                }
            }
            return Ok(self.finish_namespace(st, terminating));
        }
        let terminating = old["metadata"].get("deletionTimestamp").is_some();
        let forced = grace == Some(0);
        let grace = if rid == resource::PODS {
            pod_grace(old, grace)
        } else {
            0
        };
        if grace > 0 || (terminating && rid == resource::PODS && grace_left(old) && !forced) {
            if terminating {
                return Ok(old.clone());
            }
            let mut marked = (**old).clone();
            let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
            marked["metadata"]["deletionTimestamp"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            let rv = st.next_rv();
            marked["metadata"]["resourceVersion"] = json!(rv.to_string());
            let marked = Arc::new(marked);
            let previous = st.put(rid, k, marked.clone());
            self.record(st, rid, EventType::Modified, marked.clone(), previous);
            return Ok(marked);
        }
        if has_finalizers {
            if terminating {
                if rid == resource::PODS && grace_left(old) {
                    // The kubelet is done: only the finalizers hold the pod now.
                    let mut done = (**old).clone();
                    done["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                    let rv = st.next_rv();
                    done["metadata"]["resourceVersion"] = json!(rv.to_string());
                    let done = Arc::new(done);
                    let previous = st.put(rid, k, done.clone());
                    self.record(st, rid, EventType::Modified, done.clone(), previous);
                    return Ok(done);
                }
                return Ok(old.clone());
            }
            let mut marked = (**old).clone();
            marked["metadata"]["deletionTimestamp"] = json!(now());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            let rv = st.next_rv();
            marked["metadata"]["resourceVersion"] = json!(rv.to_string());
            let marked = Arc::new(marked);
            let previous = st.put(rid, k, marked.clone());
            self.record(st, rid, EventType::Modified, marked.clone(), previous);
            return Ok(marked);
        }
        st.take(rid, &k);
        let rv = st.next_rv();
        let mut gone = (**old).clone();
        gone["metadata"]["resourceVersion"] = json!(rv.to_string());
        let gone = Arc::new(gone);
        self.record(st, rid, EventType::Deleted, gone.clone(), None);
        if !orphan {
            self.collect_dependents(st, rid, &gone);
        }
        Ok(gone)
    }

    /// Removes a terminating namespace once it is empty; otherwise stores it
    /// as Terminating. Returns what the namespace now is.
    fn finish_namespace(&self, st: &mut State, terminating: Value) -> Arc<Value> {
        let name = meta_str(&terminating, "name").to_string();
        let empty = (0..st.objects.len())
            .filter(|r| resource::get(*r).namespaced)
            .all(|r| st.in_namespace(r, &name).next().is_none());
        let k = (String::new(), name);
        let mut terminating = terminating;
        let rv = st.next_rv();
        terminating["metadata"]["resourceVersion"] = json!(rv.to_string());
        let obj = Arc::new(terminating);
        if empty {
            st.take(resource::NAMESPACES, &k);
            self.record(st, resource::NAMESPACES, EventType::Deleted, obj.clone(), None);
        } else if st.objects[resource::NAMESPACES].get(&k).map(|o| without_times(o)) != Some(without_times(&obj)) {
            let previous = st.put(resource::NAMESPACES, k, obj.clone());
            self.record(st, resource::NAMESPACES, EventType::Modified, obj.clone(), previous);
        } else {
            st.rv -= 1;
        }
        obj
    }

    /// Finishes namespaces whose remaining objects have been finalized.
    pub(crate) fn finish_terminating_namespaces(&self) {
        let mut st = self.lock();
        let terminating: Vec<Arc<Value>> = st.objects[resource::NAMESPACES]
            .values()
            .filter(|n| n["metadata"].get("deletionTimestamp").is_some())
            .cloned()
            .collect();
        for ns in terminating {
            let name = meta_str(&ns, "name");
            let empty = (0..st.objects.len())
                .filter(|r| resource::get(*r).namespaced)
                .all(|r| st.in_namespace(r, name).next().is_none());
            if empty {
                self.finish_namespace(&mut st, (*ns).clone());
            }
        }
    }

    /// Background garbage collection: deletes objects owned by `owner`.
    fn collect_dependents(&self, st: &mut State, owner_rid: ResourceId, owner: &Value) {
        let uid = meta_str(owner, "uid").to_string();
        let ns = meta_str(owner, "namespace").to_string();
        let owner_namespaced = resource::get(owner_rid).namespaced;
        for rid in 0..st.objects.len() {
            let rt = resource::get(rid);
            if !rt.namespaced && owner_namespaced {
                continue;
            }
            let candidates: Vec<Arc<Value>> = if owner_namespaced {
                st.in_namespace(rid, &ns).cloned().collect()
            } else {
                st.objects[rid].values().cloned().collect()
            };
            for dep in candidates {
                let owned = dep["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid.as_str()));
                if owned {
                    let _ = self.delete_locked(st, rid, &dep, false, None);
                }
            }
        }
    }
}

/// The termination grace period a pod's deletion gets: none for a pod no
/// kubelet runs (unbound, or finished) or when 0 is asked for, else the
/// requested period or the pod's `terminationGracePeriodSeconds` (30).
fn pod_grace(pod: &Value, requested: Option<i64>) -> i64 {
    let bound = pod["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
    let finished = matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
    if !bound || finished || pod["metadata"].get("deletionTimestamp").is_some() && requested.is_none() {
        return 0;
    }
    requested
        .unwrap_or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(30))
        .max(0)
}

/// A terminating pod whose kubelet has not finished with it yet.
fn grace_left(pod: &Value) -> bool {
    pod["metadata"]["deletionGracePeriodSeconds"].as_i64().unwrap_or(0) > 0
}

fn spec_of(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

/// The object without what changes on every write (rv, managedFields times),
/// to detect no-op writes that the API server does not persist.
fn without_times(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(meta) = o["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
        if let Some(Value::Array(entries)) = meta.get_mut("managedFields") {
            for e in entries {
                if let Some(m) = e.as_object_mut() {
                    m.remove("time");
                }
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource_version(obj: &Value) -> u64 {
        meta_str(obj, "resourceVersion").parse().unwrap_or(0)
    }

    fn store_with_default() -> Store {
        let store = Store::new(100);
        store
            .create(
                resource::NAMESPACES,
                "",
                json!({"metadata":{"name":"default"}}),
                &WriteOptions::by("test"),
            )
            .unwrap();
        store
    }

    #[test]
    fn continue_tokens_round_trip() {
        assert_eq!(
            decode_token(&encode_token(7, "ns", "a-b")),
            Some((7, "ns".into(), "a-b".into()))
        );
    }

    #[test]
    fn every_write_bumps_the_resource_version_and_no_op_writes_do_not() {
        let store = store_with_default();
        let cm = store
            .create(
                resource::CONFIGMAPS,
                "default",
                json!({"metadata":{"name":"a"},"data":{"k":"v"}}),
                &WriteOptions::by("t"),
            )
            .unwrap();
        let same = store
            .replace(
                resource::CONFIGMAPS,
                "default",
                "a",
                (*cm).clone(),
                &WriteOptions::by("t"),
            )
            .unwrap();
        assert_eq!(resource_version(&same), resource_version(&cm));
        let mut changed = (*cm).clone();
        changed["data"]["k"] = json!("w");
        let next = store
            .replace(resource::CONFIGMAPS, "default", "a", changed, &WriteOptions::by("t"))
            .unwrap();
        assert!(resource_version(&next) > resource_version(&cm));
    }

    #[test]
    fn a_compacted_window_expires_old_watches() {
        let store = store_with_default();
        let rv = store.resource_version();
        store
            .create(
                resource::CONFIGMAPS,
                "default",
                json!({"metadata":{"name":"a"}}),
                &WriteOptions::by("t"),
            )
            .unwrap();
        store.compact();
        assert!(matches!(store.watch_from(rv), Err(Error::Expired(_))));
        assert!(store.watch_from(store.resource_version()).is_ok());
    }
}
