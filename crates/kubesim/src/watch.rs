//! Watch: newline-delimited JSON events (`ADDED`, `MODIFIED`, `DELETED`,
//! `BOOKMARK`, `ERROR`) from a resourceVersion, as the API server streams
//! them. Without a resourceVersion (or with "0") the current objects come
//! first as `ADDED`. A resourceVersion older than the retained window gets a
//! single `ERROR` event carrying a 410 `Expired` Status. Bookmarks carry the
//! last resourceVersion the stream has passed. The stream ends after
//! `timeoutSeconds`, when the client goes away, when it falls too far behind,
//! or when the cluster goes down.
//!
//! With a label or field selector, an object that starts matching arrives as
//! `ADDED` and one that stops matching as `DELETED`, as from the watch cache.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::fault::FaultHandle;
use crate::resource::{self, ResourceId};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::Error;
use crate::store::{Event, EventType, Store, meta_str};

/// What to watch.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    pub resource: ResourceId,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// `None` or `Some(0)`: start with the current objects.
    pub since: Option<u64>,
    pub bookmarks: bool,
    pub timeout: Duration,
    pub bookmark_interval: Duration,
}

impl WatchRequest {
    fn selects(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| !resource::get(self.resource).namespaced || meta_str(obj, "namespace") == ns)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }

    /// The event type this watch sees for a change, if any: an object
    /// entering the selection is ADDED, one leaving it is DELETED.
    fn event_type(&self, e: &Event) -> Option<&'static str> {
        if e.resource != self.resource {
            return None;
        }
        let now = self.selects(&e.object);
        if e.kind != EventType::Modified {
            return now.then(|| e.kind.as_str());
        }
        let before = e.previous.as_ref().is_some_and(|p| self.selects(p));
        match (before, now) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        }
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    if serde_json::to_writer(&mut out, object).is_err() {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

/// Starts a watch and returns its body stream.
pub(crate) fn stream(
    store: Arc<Store>,
    req: WatchRequest,
    faults: FaultHandle,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        let _ = run(store, req, faults, tx).await;
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) })
}

async fn run(
    store: Arc<Store>,
    req: WatchRequest,
    faults: FaultHandle,
    tx: mpsc::Sender<Bytes>,
) -> Result<(), mpsc::error::SendError<Bytes>> {
    let rt = resource::get(req.resource);
    // Before the first event, so a fault set while they are sent still ends the watch.
    let mut fault_rx = faults.subscribe();
    let (mut live, mut last_rv) = match req.since.filter(|rv| *rv > 0) {
        None => {
            let (objects, rv, live) = store.watch_now(req.resource);
            for obj in objects.iter().filter(|o| req.selects(o)) {
                tx.send(line("ADDED", obj)).await?;
            }
            (live, rv)
        }
        Some(since) => match store.watch_from(since) {
            Ok((replay, live)) => {
                let mut last = since;
                for e in &replay {
                    last = last.max(e.rv);
                    if let Some(kind) = req.event_type(e) {
                        tx.send(line(kind, &e.object)).await?;
                    }
                }
                (live, last)
            }
            Err(e @ Error::Expired(_)) => {
                tx.send(line("ERROR", &e.to_status())).await?;
                return Ok(());
            }
            Err(other) => {
                tx.send(line("ERROR", &other.to_status())).await?;
                return Ok(());
            }
        },
    };
    let deadline = tokio::time::sleep(req.timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(req.bookmark_interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = &mut deadline => return Ok(()),
            _ = tx.closed() => return Ok(()),
            changed = fault_rx.changed() => {
                if changed.is_err() || fault_rx.borrow().refuses_watches() {
                    return Ok(());
                }
            }
            _ = ticker.tick(), if req.bookmarks => {
                let bookmark = json!({
                    "kind": rt.kind,
                    "apiVersion": rt.api_version(),
                    "metadata": { "resourceVersion": last_rv.to_string(), "annotations": {} },
                });
                tx.send(line("BOOKMARK", &bookmark)).await?;
            }
            event = live.recv() => match event {
                Ok(e) => {
                    let e: Arc<Event> = e;
                    if e.rv <= last_rv {
                        continue;
                    }
                    last_rv = last_rv.max(e.rv);
                    if let Some(kind) = req.event_type(&e) {
                        tx.send(line(kind, &e.object)).await?;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
    }
}
