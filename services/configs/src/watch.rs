//! Watching a config set's releases. Each instance of the service listens on
//! PostgreSQL's [`NOTIFY_CHANNEL`](crate::release::NOTIFY_CHANNEL), which a
//! publish notifies in its own transaction (so the wake-up comes at commit,
//! from whichever instance published), and fans the set ids out to its
//! watchers. A notification only wakes a watcher: it then reads the releases
//! after the last one it sent from the table, so a lost notification (the
//! listener reconnecting) or a burst of them can delay a watcher but never
//! make it skip or repeat a release. When the listener may have missed
//! something, every watcher is woken to read again.

use kernel::Result;
use sqlx::PgPool;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::release::{NOTIFY_CHANNEL, Notice, Releases};

/// How many wake-ups an instance buffers per watcher before a slow watcher
/// is told to read everything again (it then catches up from the table).
const BUFFER: usize = 1024;

/// What a watcher is woken with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// This set has a new release.
    Set(Uuid),
    /// Anything may have changed: read again.
    All,
}

/// This instance's watchers' wake-ups.
#[derive(Clone)]
pub struct Watchers {
    wake: broadcast::Sender<Wake>,
    releases: Releases,
    stop: CancellationToken,
}

impl Watchers {
    /// Watchers over `releases`; they end when `stop` is cancelled.
    pub fn new(releases: Releases, stop: CancellationToken) -> Self {
        let (wake, _) = broadcast::channel(BUFFER);
        Self { wake, releases, stop }
    }

    /// Listens for release notifications until stopped ([`kernel::db::follow`]
    /// reconnects a dropped connection; every watcher then reads again).
    ///
    /// # Errors
    /// Never: failures are retried.
    pub async fn listen(self, pool: PgPool) -> Result<()> {
        kernel::db::follow(&pool, NOTIFY_CHANNEL, &self.stop, |notice| {
            let wake = match notice {
                kernel::db::Notice::Payload(set) => Uuid::parse_str(&set).map_or(Wake::All, Wake::Set),
                kernel::db::Notice::Missed => Wake::All,
            };
            // No receiver: no watcher right now.
            let _ = self.wake.send(wake);
        })
        .await
    }

    /// Sends every release of `set_id` after `after`, in order, then each
    /// new one, into `out` until the receiver goes away or the service stops.
    /// The caller must have been allowed to see the set.
    pub fn spawn(&self, set_id: Uuid, after: i64, out: mpsc::Sender<Result<Notice>>) {
        // Subscribed before the first read, so no release falls between them.
        let mut wake = self.wake.subscribe();
        let releases = self.releases.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let mut last = after;
            loop {
                match releases.since(set_id, last).await {
                    Ok(notices) => {
                        let more = notices.len() == 100;
                        for notice in notices {
                            last = notice.number;
                            if out.send(Ok(notice)).await.is_err() {
                                return;
                            }
                        }
                        if more {
                            continue;
                        }
                    }
                    Err(e) => {
                        let _ = out.send(Err(e)).await;
                        return;
                    }
                }
                // Wait for a wake-up that concerns this set.
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = out.closed() => return,
                        w = wake.recv() => match w {
                            Ok(Wake::Set(id)) if id != set_id => continue,
                            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                            Err(broadcast::error::RecvError::Closed) => return,
                        },
                    }
                }
            }
        });
    }
}
