//! Events as the cluster's components report them: core/v1 `Event` objects
//! with the reasons and messages of the real scheduler, kubelet and
//! controllers, aggregated and rate-limited as client-go's event correlator
//! does (an identical event bumps `count` and `lastTimestamp`; each source
//! and object gets a burst of 25 events, then one per five minutes), mirrored
//! into the `events.k8s.io/v1` schema, and deleted once older than the
//! cluster's event TTL, as the API server's `--event-ttl` does.
//!
//! Differences: an event's name is `<object>.<hash of the aggregation key>`
//! rather than `<object>.<timestamp>`, so a repeated event is found without a
//! scan; similar events with different messages are not combined into one
//! "(combined from similar events)" event.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::resource::{self, ResourceId};
use crate::store::{self, Store, WriteOptions, meta_str};

/// `Normal` or `Warning`, the two event types Kubernetes uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    Normal,
    Warning,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// The component reporting an event: `source.component` and `source.host`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    pub component: &'a str,
    pub host: Option<&'a str>,
}

impl<'a> Source<'a> {
    /// A controller of kube-controller-manager or the scheduler (no host).
    pub(crate) fn controller(component: &'a str) -> Self {
        Self { component, host: None }
    }

    /// The kubelet of a node.
    pub(crate) fn kubelet(node: &'a str) -> Self {
        Self {
            component: "kubelet",
            host: Some(node),
        }
    }
}

/// client-go's `EventSourceObjectSpamFilter`: a burst of 25, then one token
/// per 300 seconds, per source and involved object.
const SPAM_BURST: f64 = 25.0;
const SPAM_REFILL: Duration = Duration::from_secs(300);

/// The rate limiter of one cluster's event sources.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    /// Takes a token for `key`; false when the source has used its burst.
    fn admit(&self, key: &str) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let (tokens, last) = buckets.entry(key.to_string()).or_insert((SPAM_BURST, now));
        let refill = now.duration_since(*last).as_secs_f64() / SPAM_REFILL.as_secs_f64();
        *tokens = (*tokens + refill).min(SPAM_BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The reference to an object as events carry it (`involvedObject`).
pub(crate) fn reference(obj: &Value, field_path: Option<&str>) -> Value {
    let mut r = json!({
        "kind": obj["kind"],
        "namespace": obj["metadata"]["namespace"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "apiVersion": obj["apiVersion"],
        "resourceVersion": obj["metadata"]["resourceVersion"],
    });
    if let Some(path) = field_path {
        r["fieldPath"] = json!(path);
    }
    if r["namespace"].is_null()
        && let Some(m) = r.as_object_mut()
    {
        m.remove("namespace");
    }
    r
}

fn fnv(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Records an event about `involved` (a stored object), or counts it again
/// if the same one was recorded before.
pub(crate) fn record(store: &Store, involved: &Value, kind: Type, reason: &str, message: &str, source: Source<'_>) {
    record_at(store, involved, None, kind, reason, message, source, false);
}

/// As [`record`], but an event recorded before is left as it is: for a
/// condition a controller sees on every pass (a claim waiting for its
/// consumer) that the real controller reports once per retry.
pub(crate) fn record_once(
    store: &Store,
    involved: &Value,
    kind: Type,
    reason: &str,
    message: &str,
    source: Source<'_>,
) {
    record_at(store, involved, None, kind, reason, message, source, true);
}

/// As [`record`], about one container of a pod (`fieldPath`
/// `spec.containers{name}`), as the kubelet reports container events.
pub(crate) fn record_container(
    store: &Store,
    pod: &Value,
    container: &str,
    kind: Type,
    reason: &str,
    message: &str,
    source: Source<'_>,
) {
    let path = format!("spec.containers{{{container}}}");
    record_at(store, pod, Some(&path), kind, reason, message, source, false);
}

#[allow(clippy::too_many_arguments)]
fn record_at(
    store: &Store,
    involved: &Value,
    field_path: Option<&str>,
    kind: Type,
    reason: &str,
    message: &str,
    source: Source<'_>,
    once: bool,
) {
    let object = reference(involved, field_path);
    let name = meta_str(involved, "name");
    // Cluster-scoped objects' events live in `default`, as client-go records them.
    let ns = match meta_str(involved, "namespace") {
        "" => "default",
        ns => ns,
    };
    let uid = meta_str(involved, "uid");
    let host = source.host.unwrap_or_default();
    let key = format!(
        "{}\n{host}\n{uid}\n{}\n{}\n{reason}\n{message}",
        source.component,
        field_path.unwrap_or_default(),
        kind.as_str()
    );
    let event_name = format!("{name}.{:016x}", fnv(&key));
    if once && store.get(resource::EVENTS, ns, &event_name).is_ok() {
        return;
    }
    if !store
        .event_limiter()
        .admit(&format!("{}\n{host}\n{uid}\n{}", source.component, object["kind"]))
    {
        return;
    }
    let now = store::now();
    let opts = WriteOptions::by(source.component);
    let counted = store.modify(resource::EVENTS, ns, &event_name, &opts, |cur| {
        let mut e = cur.clone();
        e["count"] = json!(cur["count"].as_i64().unwrap_or(1) + 1);
        e["lastTimestamp"] = json!(now);
        e["involvedObject"] = object.clone();
        Ok(e)
    });
    if counted.is_ok() {
        return;
    }
    let mut src = json!({ "component": source.component });
    if let Some(h) = source.host {
        src["host"] = json!(h);
    }
    let event = json!({
        "metadata": { "name": event_name, "namespace": ns },
        "involvedObject": object,
        "reason": reason,
        "message": message,
        "source": src,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": kind.as_str(),
        "eventTime": null,
        "reportingComponent": source.component,
        "reportingInstance": host,
    });
    if let Err(e) = store.create(resource::EVENTS, ns, event, &opts) {
        tracing::debug!(error = %e, reason, "kubesim could not record an event");
    }
}

/// The same event in the other schema: core/v1 -> events.k8s.io/v1 and back,
/// as the API server converts between the two views of one stored event.
pub(crate) fn mirror(rid: ResourceId, obj: &Value) -> Option<(ResourceId, Value)> {
    let mut meta = obj["metadata"].clone();
    if let Some(m) = meta.as_object_mut() {
        m.remove("managedFields");
        m.remove("resourceVersion");
    }
    match rid {
        resource::EVENTS => Some((
            resource::EVENTS_V1,
            json!({
                "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": meta,
                "eventTime": obj["eventTime"],
                "reportingController": obj["reportingComponent"].as_str().filter(|s| !s.is_empty())
                    .or_else(|| obj["source"]["component"].as_str()),
                "reportingInstance": obj["reportingInstance"],
                "action": obj["action"],
                "reason": obj["reason"],
                "regarding": obj["involvedObject"],
                "related": obj["related"],
                "note": obj["message"],
                "type": obj["type"],
                "series": obj["series"],
                "deprecatedSource": obj["source"],
                "deprecatedFirstTimestamp": obj["firstTimestamp"],
                "deprecatedLastTimestamp": obj["lastTimestamp"],
                "deprecatedCount": obj["count"],
            }),
        )),
        resource::EVENTS_V1 => Some((
            resource::EVENTS,
            json!({
                "apiVersion": "v1", "kind": "Event", "metadata": meta,
                "eventTime": obj["eventTime"],
                "reportingComponent": obj["reportingController"],
                "reportingInstance": obj["reportingInstance"],
                "action": obj["action"],
                "reason": obj["reason"],
                "involvedObject": obj["regarding"],
                "related": obj["related"],
                "message": obj["note"],
                "type": obj["type"],
                "series": obj["series"],
                "source": if obj["deprecatedSource"].is_object() {
                    obj["deprecatedSource"].clone()
                } else {
                    json!({ "component": obj["reportingController"] })
                },
                "firstTimestamp": obj["deprecatedFirstTimestamp"],
                "lastTimestamp": obj["deprecatedLastTimestamp"],
                "count": obj["deprecatedCount"],
            }),
        )),
        _ => None,
    }
    .map(|(other, mut v)| {
        if let Some(m) = v.as_object_mut() {
            m.retain(|_, field| !field.is_null());
        }
        (other, v)
    })
}

/// Deletes events last seen longer than `ttl` ago.
pub(crate) fn expire(store: &Store, ttl: Duration) {
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    for e in store.all(resource::EVENTS) {
        let last = e["lastTimestamp"]
            .as_str()
            .or_else(|| e["eventTime"].as_str())
            .or_else(|| e["metadata"]["creationTimestamp"].as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        if last.is_some_and(|t| t < cutoff) {
            let _ = store.delete(
                resource::EVENTS,
                meta_str(&e, "namespace"),
                meta_str(&e, "name"),
                false,
                false,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_events_and_their_events_k8s_io_view_convert_both_ways() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": { "name": "p.1", "namespace": "default", "uid": "u" },
            "involvedObject": { "kind": "Pod", "name": "p" },
            "reason": "Scheduled", "message": "Successfully assigned default/p to n",
            "source": { "component": "default-scheduler" }, "count": 2, "type": "Normal",
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:01Z",
        });
        let (rid, v1) = mirror(resource::EVENTS, &core).unwrap();
        assert_eq!(rid, resource::EVENTS_V1);
        assert_eq!(v1["note"], core["message"]);
        assert_eq!(v1["regarding"]["name"], "p");
        assert_eq!(v1["deprecatedCount"], 2);
        assert_eq!(v1["reportingController"], "default-scheduler");
        let (rid, back) = mirror(resource::EVENTS_V1, &v1).unwrap();
        assert_eq!(rid, resource::EVENTS);
        for field in [
            "message",
            "reason",
            "involvedObject",
            "count",
            "source",
            "lastTimestamp",
            "type",
        ] {
            assert_eq!(back[field], core[field], "{field}");
        }
    }

    #[test]
    fn a_source_gets_a_burst_of_25_events_per_object() {
        let limiter = Limiter::default();
        let admitted = (0..30).filter(|_| limiter.admit("kubelet/pod-a")).count();
        assert_eq!(admitted, 25);
        assert!(limiter.admit("kubelet/pod-b"));
    }
}
