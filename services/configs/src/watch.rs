//! Watching a config set's releases. Each instance of the service listens on
//! PostgreSQL's [`NOTIFY_CHANNEL`](crate::release::NOTIFY_CHANNEL), which a
//! publish (or a gray step) notifies in its own transaction, so the wake-up
//! comes at commit from whichever instance published.
//!
//! Each watched set has one feed per instance: a snapshot of the set's
//! watch state (its latest full releases, the gray release in flight and its
//! selector), shared (one `Arc`) by every watcher of the set. Each watcher
//! works out from that snapshot, with no query of its own, what it lacks: the
//! full releases after the one it has, the gray release if its labels match,
//! or the latest full release if it holds a gray one no longer meant for it.
//! A watcher further behind than the snapshot reaches catches up from the
//! table first.
//!
//! A publish or rollback carries its release in the notification
//! ([`RELEASE_PREFIX`]), and the listener adds it to the feed's snapshot
//! itself when the snapshot holds the release before it: a publish wakes its
//! watchers with no query at all, the moment its commit is heard. Anything
//! else (a gray step, a number the snapshot cannot place, a notification
//! lost while the listener reconnects, a new feed) makes the feed read the
//! state again, once however many watch; a read that began before a release
//! was added never replaces the newer snapshot. So a watcher can neither skip
//! nor repeat a release.
//!
//! A long poll subscribes again after every answer, so a subscription costs
//! no query either: the feed keeps the set's tenant (a set never changes
//! tenant) for the visibility check of the next watcher, and the watcher
//! answers from the current snapshot (anything newer wakes it when its
//! notification arrives). A deleted set ([`DELETED_PREFIX`] notifications)
//! ends its watchers.
//!
//! A client of a whole effective configuration also watches its layout (which
//! sets it is built from, [`Watchers::spawn_layout`]): a set created or
//! deleted, or an application's shared links changed, notify the tenant
//! ([`LAYOUT_PREFIX`]), and each layout watcher of the tenant reads its
//! layout again, telling its client when it differs from the one it knows.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kernel::{Error, Result};
use sqlx::PgPool;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::instance::{Instances, Sighting};
use crate::release::{NOTIFY_CHANNEL, Notice, Releases, Scope, Source};
use crate::selector::{Labels, Selector};

/// How many of a set's latest full releases a snapshot holds; a watcher
/// further behind reads the table until it is within them.
pub const WINDOW: i64 = 100;

/// Prefix of a notification's payload saying the set was deleted (else the
/// payload is the set id alone: it has a new release).
pub const DELETED_PREFIX: &str = "deleted:";
/// Prefix of a notification's payload naming a tenant whose layouts may have
/// changed (a set created or deleted, links changed).
pub const LAYOUT_PREFIX: &str = "layout:";
/// Prefix of a notification's payload carrying a new full release (a publish
/// or a rollback): `release:<set>:<number>:<release id>:<kind>`.
pub const RELEASE_PREFIX: &str = "release:";

/// The notification payload announcing full release `notice` (see [`RELEASE_PREFIX`]).
pub fn release_payload(notice: &Notice) -> String {
    format!(
        "{RELEASE_PREFIX}{}:{}:{}:{}",
        notice.config_set_id, notice.number, notice.release_id, notice.kind
    )
}

/// The release a [`release_payload`] carries (after its prefix).
fn parse_release(raw: &str) -> Option<Notice> {
    let mut parts = raw.splitn(4, ':');
    let config_set_id = Uuid::parse_str(parts.next()?).ok()?;
    let number = parts.next()?.parse().ok()?;
    let release_id = Uuid::parse_str(parts.next()?).ok()?;
    let kind = parts.next().filter(|k| matches!(*k, "publish" | "rollback"))?;
    Some(Notice {
        config_set_id,
        number,
        release_id,
        kind: kind.to_string(),
    })
}

/// What every watcher of a set needs to know to answer itself.
#[derive(Debug, Clone, Default)]
pub struct SetState {
    /// The latest full releases (at most [`WINDOW`]), oldest first.
    pub full: Vec<Notice>,
    /// Every full release numbered above this is in `full`.
    pub floor: i64,
    /// The highest release number of the set, gray ones included.
    pub max_number: i64,
    /// The gray release in flight and who gets it.
    pub gray: Option<(Notice, Selector)>,
    /// The set was deleted: its watchers end.
    pub gone: bool,
}

impl SetState {
    /// This state with full release `next` added, when it is the very next
    /// number and no gray release is in flight (else only a read can tell
    /// what changed: `None`).
    pub fn with_release(&self, next: &Notice) -> Option<Self> {
        if self.gone || self.gray.is_some() || next.number != self.max_number + 1 {
            return None;
        }
        let window = usize::try_from(WINDOW).unwrap_or(usize::MAX);
        let skip = (self.full.len() + 1).saturating_sub(window);
        let full: Vec<Notice> = self
            .full
            .iter()
            .skip(skip)
            .cloned()
            .chain(std::iter::once(next.clone()))
            .collect();
        let floor = if skip > 0 {
            full.first().map_or(self.floor, |oldest| oldest.number - 1)
        } else {
            self.floor
        };
        Some(Self {
            full,
            floor,
            max_number: next.number,
            gray: None,
            gone: false,
        })
    }

    /// What a watcher that has release `after` and `labels` lacks, in order;
    /// `None` when it is too far behind for this snapshot.
    pub fn answer(&self, after: i64, labels: &Labels) -> Option<Vec<Notice>> {
        if after < self.floor {
            return None;
        }
        let mut out: Vec<Notice> = self.full.iter().filter(|n| n.number > after).cloned().collect();
        let gray_for_it = self.gray.as_ref().filter(|(_, selector)| selector.matches(labels));
        if let Some((gray, _)) = gray_for_it.filter(|(g, _)| g.number > after) {
            out.push(gray.clone());
        }
        let latest = self.full.last();
        let holds_own_gray = gray_for_it.is_some_and(|(g, _)| g.number == after);
        // It holds a release that is neither full nor its gray one (abandoned,
        // or its labels changed): back to the latest full release.
        if out.is_empty()
            && !holds_own_gray
            && after <= self.max_number
            && let Some(latest) = latest.filter(|l| after > l.number)
        {
            out.push(latest.clone());
        }
        Some(out)
    }
}

/// Who is watching: recorded in the instances view when it names itself.
#[derive(Debug, Clone, Default)]
pub struct Watcher {
    /// The set's tenant.
    pub tenant_id: Uuid,
    /// The client-chosen id; empty: anonymous, not recorded.
    pub instance: String,
    /// Its labels, matched against gray selectors.
    pub labels: Labels,
    /// Where it connects from.
    pub ip: String,
}

type Snapshot = Option<Arc<SetState>>;

/// One set's feed on this instance.
struct Feed {
    state: watch::Sender<Snapshot>,
    reload: Arc<Notify>,
    /// The set's tenant, as read when its first watcher was let in.
    tenant_id: Uuid,
    /// Deleted (a notification said so): no more watchers, and the current ones end.
    gone: Arc<AtomicBool>,
}

impl Feed {
    /// Adds full release `notice` to the snapshot, waking every watcher;
    /// asks for a read when the snapshot cannot place it.
    fn add(&self, notice: &Notice) {
        let mut known = false;
        let added = self.state.send_if_modified(|snapshot| {
            let Some(current) = snapshot.as_ref() else {
                return false;
            };
            known = !current.gone && current.max_number >= notice.number;
            match current.with_release(notice) {
                Some(next) => {
                    *snapshot = Some(Arc::new(next));
                    true
                }
                None => false,
            }
        });
        if !added && !known {
            self.reload.notify_one();
        }
    }
}

/// This instance's watchers and their sets' feeds.
#[derive(Clone)]
pub struct Watchers {
    feeds: Arc<Mutex<HashMap<Uuid, Feed>>>,
    /// Per tenant with layout watchers here: a count of its layout changes.
    layouts: Arc<Mutex<HashMap<Uuid, watch::Sender<u64>>>>,
    /// Sets not fed here whose tenant is being read for a burst of first
    /// watchers: one read for all of them (see [`Watchers::tenant_for`]).
    lookups: Arc<Mutex<HashMap<Uuid, Arc<tokio::sync::OnceCell<Uuid>>>>>,
    releases: Releases,
    instances: Instances,
    stop: CancellationToken,
}

impl Watchers {
    /// Watchers over `releases`, recording named ones in `instances`; they
    /// end when `stop` is cancelled.
    pub fn new(releases: Releases, instances: Instances, stop: CancellationToken) -> Self {
        Self {
            feeds: Arc::default(),
            layouts: Arc::default(),
            lookups: Arc::default(),
            releases,
            instances,
            stop,
        }
    }

    fn feeds(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Feed>> {
        // A panic while holding this lock leaves the map consistent (inserts and removes only).
        self.feeds.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn layouts(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, watch::Sender<u64>>> {
        // As for the feeds: inserts and removes only.
        self.layouts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn layout_changed(&self, tenant: Option<Uuid>) {
        let mut layouts = self.layouts();
        layouts.retain(|_, changes| changes.receiver_count() > 0);
        for (_, changes) in layouts
            .iter()
            .filter(|(t, _)| tenant.is_none_or(|tenant| **t == tenant))
        {
            changes.send_modify(|n| *n += 1);
        }
    }

    /// Listens for release notifications until stopped ([`kernel::db::follow`]
    /// reconnects a dropped connection; every feed then reads again).
    ///
    /// # Errors
    /// Never: failures are retried.
    pub async fn listen(self, pool: PgPool) -> Result<()> {
        kernel::db::follow(&pool, NOTIFY_CHANNEL, &self.stop, |notice| {
            if let kernel::db::Notice::Payload(payload) = &notice
                && let Some(tenant) = payload.strip_prefix(LAYOUT_PREFIX)
            {
                self.layout_changed(Uuid::parse_str(tenant).ok());
                return;
            }
            if matches!(notice, kernel::db::Notice::Missed) {
                self.layout_changed(None);
            }
            let feeds = self.feeds();
            match notice {
                kernel::db::Notice::Payload(payload) if payload.starts_with(RELEASE_PREFIX) => {
                    match parse_release(&payload[RELEASE_PREFIX.len()..]) {
                        Some(release) => {
                            if let Some(feed) = feeds.get(&release.config_set_id) {
                                feed.add(&release);
                            }
                        }
                        None => feeds.values().for_each(|f| f.reload.notify_one()),
                    }
                }
                kernel::db::Notice::Payload(payload) => {
                    let (deleted, set) = match payload.strip_prefix(DELETED_PREFIX) {
                        Some(set) => (true, set),
                        None => (false, payload.as_str()),
                    };
                    match Uuid::parse_str(set) {
                        Ok(set) => {
                            if let Some(feed) = feeds.get(&set) {
                                if deleted {
                                    feed.gone.store(true, Ordering::SeqCst);
                                }
                                feed.reload.notify_one();
                            }
                        }
                        Err(_) => feeds.values().for_each(|f| f.reload.notify_one()),
                    }
                }
                kernel::db::Notice::Missed => feeds.values().for_each(|f| f.reload.notify_one()),
            }
        })
        .await
    }

    /// How many sets this instance is feeding (for tests and metrics).
    pub fn feeding(&self) -> usize {
        self.feeds().len()
    }

    /// The tenant of a set this instance is feeding, so the next watcher's
    /// visibility is checked without a query; `None`: not fed here (read
    /// the set), or deleted.
    pub fn tenant_of(&self, set_id: Uuid) -> Option<Uuid> {
        self.feeds()
            .get(&set_id)
            .filter(|f| !f.gone.load(Ordering::SeqCst))
            .map(|f| f.tenant_id)
    }

    /// The tenant of `set_id` for a new watcher: the feed's when the set is
    /// fed here, else what `read` finds. Watchers that arrive together for a
    /// set not fed yet (ten thousand at a service's start) share one read
    /// rather than queue one each on the pool; the caller still checks that
    /// it may see that tenant.
    ///
    /// # Errors
    /// Those of `read` (a set not visible to the first reader is read again
    /// by the next).
    pub async fn tenant_for<F, Fut>(&self, set_id: Uuid, read: F) -> Result<Uuid>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Uuid>>,
    {
        if let Some(tenant) = self.tenant_of(set_id) {
            return Ok(tenant);
        }
        let lookups = || self.lookups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let cell = lookups().entry(set_id).or_default().clone();
        let tenant = cell.get_or_try_init(read).await.copied();
        // The last of the burst forgets it: later watchers find the feed, or read again.
        let mut pending = lookups();
        if Arc::strong_count(&cell) <= 2 {
            pending.remove(&set_id);
        }
        tenant
    }

    /// The set's snapshots, starting its feed if it has none. A subscription
    /// costs no read: a release committed before it whose notification is
    /// still on the way wakes it when the notification arrives.
    fn subscribe(&self, set_id: Uuid, tenant_id: Uuid) -> watch::Receiver<Snapshot> {
        let mut feeds = self.feeds();
        if let Some(feed) = feeds.get(&set_id) {
            return feed.state.subscribe();
        }
        let (state, receiver) = watch::channel(None);
        let reload = Arc::new(Notify::new());
        let gone = Arc::new(AtomicBool::new(false));
        // The first read, after the feed is in the map: a release committed
        // from here on wakes it again, so none falls between.
        reload.notify_one();
        feeds.insert(
            set_id,
            Feed {
                state: state.clone(),
                reload: reload.clone(),
                tenant_id,
                gone: gone.clone(),
            },
        );
        tokio::spawn(self.clone().feed(set_id, state, reload, gone));
        receiver
    }

    async fn feed(self, set_id: Uuid, state: watch::Sender<Snapshot>, reload: Arc<Notify>, gone: Arc<AtomicBool>) {
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = state.closed() => {
                    let mut feeds = self.feeds();
                    // A watcher may have joined since: then keep feeding.
                    if state.receiver_count() == 0 {
                        feeds.remove(&set_id);
                        return;
                    }
                }
                () = reload.notified() => loop {
                    if gone.load(Ordering::SeqCst) {
                        let gone = SetState { gone: true, ..SetState::default() };
                        state.send_replace(Some(Arc::new(gone)));
                        break;
                    }
                    match self.releases.watch_state(set_id).await {
                        Ok(read) => {
                            state.send_if_modified(|current| {
                                // Read before a release the listener has added since:
                                // the newer snapshot stays.
                                if current.as_ref().is_some_and(|c| c.gone || c.max_number > read.max_number) {
                                    return false;
                                }
                                *current = Some(Arc::new(read));
                                true
                            });
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, %set_id, "cannot read the set's releases; retrying");
                            tokio::select! {
                                () = self.stop.cancelled() => return,
                                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                        }
                    }
                },
            }
        }
    }

    /// Sends `watcher` what it lacks of `set_id` after release `after`, in
    /// order, then each new release meant for it, into `out` until the
    /// receiver goes away, the set is deleted (a not-found error ends it) or
    /// the service stops. The caller must have been allowed to see the set
    /// (of `watcher.tenant_id`).
    pub fn spawn(&self, set_id: Uuid, after: i64, watcher: Watcher, out: mpsc::Sender<Result<Notice>>) {
        let mut feed = self.subscribe(set_id, watcher.tenant_id);
        let releases = self.releases.clone();
        let instances = self.instances.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let seen = |release: i64| {
                if !watcher.instance.is_empty() {
                    instances.saw(Sighting {
                        tenant_id: watcher.tenant_id,
                        config_set_id: set_id,
                        instance: watcher.instance.clone(),
                        labels: watcher.labels.clone(),
                        ip: watcher.ip.clone(),
                        release,
                    });
                }
            };
            seen(after);
            let mut last = after;
            loop {
                let snapshot = feed.borrow_and_update().clone();
                if snapshot.as_ref().is_some_and(|s| s.gone) {
                    let _ = out.send(Err(Error::not_found("config set", set_id))).await;
                    return;
                }
                let answer = snapshot.map(|s| s.answer(last, &watcher.labels));
                let (notices, from_table) = match answer {
                    // Not read yet: the first snapshot wakes it.
                    None => (Vec::new(), false),
                    Some(Some(notices)) => (notices, false),
                    Some(None) => match releases.full_after(set_id, last, WINDOW).await {
                        Ok(notices) => (notices, true),
                        Err(e) => {
                            let _ = out.send(Err(e)).await;
                            return;
                        }
                    },
                };
                let sent = !notices.is_empty();
                let more = from_table && sent;
                for notice in notices {
                    last = notice.number;
                    if out.send(Ok(notice)).await.is_err() {
                        return;
                    }
                }
                if more {
                    // Caught up from the table: see whether the snapshot now reaches.
                    continue;
                }
                if sent {
                    seen(last);
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = out.closed() => return,
                    changed = feed.changed() => if changed.is_err() { return },
                }
            }
        });
    }

    /// Sends `known`'s client the layout of `scope` (the sets its effective
    /// configuration is built from, lowest first) whenever it differs from
    /// the one the client had last (at once if it differs from `known`),
    /// into `out` until the receiver goes away or the service stops. The
    /// caller must have been allowed to read the scope.
    pub fn spawn_layout(&self, scope: Scope, known: BTreeSet<Uuid>, out: mpsc::Sender<Result<Vec<Source>>>) {
        // Subscribed before the first read: a change committed after it wakes it again.
        let mut changes = self
            .layouts()
            .entry(scope.tenant)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        let releases = self.releases.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let mut known = known;
            loop {
                changes.mark_unchanged();
                let layout = releases
                    .layout(scope.tenant, &scope.application, &scope.environment, &scope.cluster)
                    .await
                    .map(|sets| {
                        sets.into_iter()
                            .map(|set| Source {
                                set_id: set.id,
                                origin: set.address(),
                                latest_release: u64::try_from(set.latest_release).unwrap_or_default(),
                            })
                            .collect::<Vec<_>>()
                    });
                match layout {
                    Ok(layout) => {
                        let now: BTreeSet<Uuid> = layout.iter().map(|s| s.set_id).collect();
                        if now != known {
                            known = now;
                            if out.send(Ok(layout)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = out.send(Err(e)).await;
                        return;
                    }
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = out.closed() => return,
                    changed = changes.changed() => if changed.is_err() { return },
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(number: i64, kind: &str) -> Notice {
        Notice {
            config_set_id: Uuid::nil(),
            number,
            release_id: Uuid::from_u128(number as u128),
            kind: kind.into(),
        }
    }

    fn numbers(answer: Option<Vec<Notice>>) -> Vec<i64> {
        answer.unwrap().iter().map(|n| n.number).collect()
    }

    fn labels(raw: &str) -> Labels {
        Labels::parse("labels", raw).unwrap()
    }

    /// Full releases 1 and 2, gray release 3 for `zone=a`.
    fn gray_state() -> SetState {
        SetState {
            full: vec![notice(1, "publish"), notice(2, "publish")],
            floor: 0,
            max_number: 3,
            gray: Some((notice(3, "gray"), Selector::parse("s", "zone=a").unwrap())),
            gone: false,
        }
    }

    #[test]
    fn only_matching_watchers_get_the_gray_release() {
        let s = gray_state();
        assert_eq!(numbers(s.answer(0, &labels("zone=a"))), vec![1, 2, 3]);
        assert_eq!(numbers(s.answer(2, &labels("zone=a"))), vec![3]);
        assert_eq!(numbers(s.answer(2, &labels("zone=b"))), Vec::<i64>::new());
        assert_eq!(numbers(s.answer(0, &labels(""))), vec![1, 2]);
        // Holding it: nothing more.
        assert_eq!(numbers(s.answer(3, &labels("zone=a"))), Vec::<i64>::new());
    }

    #[test]
    fn a_watcher_holding_a_gray_release_not_meant_for_it_goes_back_to_the_full_one() {
        let mut s = gray_state();
        // Its labels changed.
        assert_eq!(numbers(s.answer(3, &labels("zone=b"))), vec![2]);
        // Abandoned.
        s.gray = None;
        assert_eq!(numbers(s.answer(3, &labels("zone=a"))), vec![2]);
        assert_eq!(numbers(s.answer(2, &labels("zone=a"))), Vec::<i64>::new());
        // A number the snapshot does not know yet: wait for it rather than go back.
        assert_eq!(numbers(s.answer(9, &labels("zone=a"))), Vec::<i64>::new());
    }

    #[test]
    fn a_promoted_gray_release_reaches_the_others_only() {
        let s = SetState {
            full: vec![notice(1, "publish"), notice(2, "publish"), notice(3, "promoted")],
            floor: 0,
            max_number: 3,
            gray: None,
            gone: false,
        };
        assert_eq!(numbers(s.answer(2, &labels("zone=b"))), vec![3]);
        assert_eq!(numbers(s.answer(3, &labels("zone=a"))), Vec::<i64>::new());
    }

    #[test]
    fn a_release_in_the_notification_extends_the_snapshot() {
        let s = SetState {
            full: vec![notice(1, "publish"), notice(2, "publish")],
            max_number: 2,
            ..SetState::default()
        };
        let next = s.with_release(&notice(3, "rollback")).unwrap();
        assert_eq!(numbers(next.answer(1, &labels(""))), vec![2, 3]);
        assert_eq!(next.max_number, 3);
        // A gap (a gray release in between), a repeat, or a gray release in flight: read instead.
        assert!(s.with_release(&notice(4, "publish")).is_none());
        assert!(s.with_release(&notice(2, "publish")).is_none());
        assert!(gray_state().with_release(&notice(4, "publish")).is_none());
        let payload = release_payload(&notice(3, "publish"));
        let parsed = parse_release(payload.strip_prefix(RELEASE_PREFIX).unwrap()).unwrap();
        assert_eq!(parsed, notice(3, "publish"));
        assert!(parse_release(&format!("{}:3:{}:gray", Uuid::nil(), Uuid::nil())).is_none());
    }

    #[test]
    fn the_window_slides_as_releases_are_added() {
        let mut s = SetState::default();
        for n in 1..=WINDOW + 5 {
            s = s.with_release(&notice(n, "publish")).unwrap();
        }
        assert_eq!(s.full.len(), usize::try_from(WINDOW).unwrap());
        assert_eq!(s.floor, 5);
        assert!(s.answer(4, &labels("")).is_none());
        assert_eq!(numbers(s.answer(WINDOW + 3, &labels(""))), vec![WINDOW + 4, WINDOW + 5]);
    }

    #[test]
    fn a_watcher_behind_the_window_reads_the_table() {
        let s = SetState {
            full: vec![notice(150, "publish")],
            floor: 149,
            max_number: 150,
            gray: None,
            gone: false,
        };
        assert!(s.answer(10, &labels("")).is_none());
        assert_eq!(numbers(s.answer(149, &labels(""))), vec![150]);
    }
}
