//! The client itself: fetch, long-poll watch, cache fallback and callbacks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::settings::Settings;
use crate::snapshot::{Change, Item, SetRelease, Snapshot};

/// How long a plain request (not a long poll) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// What a long poll may take beyond its hold before the client gives up on it.
const POLL_GRACE: Duration = Duration::from_secs(15);

/// A change callback: the changes, then the configuration they led to.
type Callback = Box<dyn Fn(&[Change], &Snapshot) + Send + Sync>;

/// Where the configuration the client holds came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Nothing yet ([`ConfigClient::start`] has not succeeded).
    None,
    /// The config center.
    Server,
    /// The local cache: the config center was unreachable.
    Cache,
}

/// A client of one configuration (tenant, application, environment, cluster).
pub struct ConfigClient {
    settings: Settings,
    http: reqwest::Client,
    cache: Option<Cache>,
    current: Snapshot,
    source: Source,
    fetched_at: Option<Instant>,
    callbacks: Vec<Callback>,
}

impl std::fmt::Debug for ConfigClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigClient")
            .field("settings", &self.settings)
            .field("source", &self.source)
            .field("sets", &self.current.sets)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct EffectiveConfig {
    entries: Vec<EffectiveEntry>,
    #[serde(default)]
    sets: Vec<EffectiveSet>,
}

#[derive(Deserialize)]
struct EffectiveEntry {
    item: String,
    key: String,
    value: String,
    secret: bool,
}

#[derive(Deserialize)]
struct EffectiveSet {
    config_set_id: String,
    origin: String,
    latest_release: u64,
}

#[derive(Deserialize)]
struct WatchAnswer {
    releases: Vec<ReleaseNotice>,
}

/// A release the watch tells of.
#[derive(Debug, Clone, Deserialize)]
struct ReleaseNotice {
    config_set_id: String,
    number: u64,
}

#[derive(Deserialize)]
struct Problem {
    #[serde(default)]
    detail: String,
}

impl ConfigClient {
    /// A client with `settings`; nothing is fetched until [`Self::start`].
    ///
    /// # Errors
    /// A setting is missing or malformed.
    pub fn new(settings: Settings) -> Result<Self> {
        settings.check()?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::Setting {
                setting: "gateway",
                reason: e.to_string(),
            })?;
        let cache = settings
            .cache_dir
            .as_ref()
            .map(|dir| Cache::new(dir, &settings.cache_name()));
        Ok(Self {
            settings,
            http,
            cache,
            current: Snapshot::default(),
            source: Source::None,
            fetched_at: None,
            callbacks: Vec::new(),
        })
    }

    /// Calls `callback` after every change, with what changed (per key for
    /// key/value items, per file otherwise) and the new configuration.
    pub fn on_change(&mut self, callback: impl Fn(&[Change], &Snapshot) + Send + Sync + 'static) {
        self.callbacks.push(Box::new(callback));
    }

    /// The configuration held now.
    pub fn current(&self) -> &Snapshot {
        &self.current
    }

    /// Where it came from.
    pub fn source(&self) -> Source {
        self.source
    }

    /// Fetches the configuration; when the config center is unreachable,
    /// loads the cached copy instead ([`Self::source`] says which), and
    /// [`Self::poll`] catches up from the cached releases once it is back.
    ///
    /// # Errors
    /// [`Error::NoCache`] when unreachable with nothing cached;
    /// [`Error::Refused`] when the credential or settings are refused.
    pub async fn start(&mut self) -> Result<&Snapshot> {
        match self.fetch().await {
            Ok(snapshot) => {
                self.adopt(snapshot).await;
                self.source = Source::Server;
            }
            Err(Error::Unreachable(why)) => {
                let cached = match &self.cache {
                    Some(cache) => cache.load().await?,
                    None => None,
                };
                let Some(cached) = cached else {
                    return Err(Error::NoCache(why));
                };
                tracing::warn!(reason = %why, "config center unreachable; serving the cached configuration");
                self.current = cached;
                self.source = Source::Cache;
            }
            Err(e) => return Err(e),
        }
        Ok(&self.current)
    }

    /// Waits for the next change, one long poll at most: answers the changes
    /// (empty when nothing changed within the hold), after calling the
    /// callbacks and saving the new configuration to the cache. It resumes
    /// from the releases held, so a release published while the client was
    /// away (or the center down) is seen at once, and none twice.
    ///
    /// # Errors
    /// [`Error::Unreachable`] while the config center is down (the
    /// configuration held stays as it was); [`Error::Refused`].
    pub async fn poll(&mut self) -> Result<Vec<Change>> {
        if self.current.sets.is_empty() || (self.source == Source::Server && self.refresh_due()) {
            // Nothing to watch yet, or time to look for sets created since:
            // read everything again. (Started from the cache, the watch
            // resumes from the cached releases first.)
            return self.refetch(&[]).await;
        }
        let hold = self.settings.poll;
        // Naming the configuration: a set joining it (created, or linked,
        // after this client started) answers the poll too.
        let s = &self.settings;
        let mut query = vec![
            ("sets", self.current.position()),
            ("timeout", hold.as_secs().to_string()),
            ("tenant", s.tenant.clone()),
            ("application", s.application.clone()),
        ];
        for (name, value) in [("environment", &s.environment), ("cluster", &s.cluster)] {
            if !value.is_empty() {
                query.push((name, value.clone()));
            }
        }
        if !self.settings.instance.is_empty() {
            query.push(("instance", self.settings.instance.clone()));
            query.push(("labels", self.settings.labels_query()));
        }
        let response = self
            .http
            .get(format!("{}/api/v1/config-watch", self.settings.gateway))
            .bearer_auth(&self.settings.token)
            .query(&query)
            .timeout(hold + POLL_GRACE)
            .send()
            .await
            .map_err(unreachable)?;
        if response.status() == StatusCode::NOT_MODIFIED {
            // The center confirms nothing is newer than what is held.
            self.source = Source::Server;
            return Ok(Vec::new());
        }
        let answer: WatchAnswer = read(response).await?;
        tracing::debug!(releases = answer.releases.len(), "new config releases");
        self.refetch(&answer.releases).await
    }

    fn refresh_due(&self) -> bool {
        self.fetched_at.is_none_or(|at| at.elapsed() >= self.settings.refresh)
    }

    /// Reads the configuration again after `releases`, and applies it.
    async fn refetch(&mut self, releases: &[ReleaseNotice]) -> Result<Vec<Change>> {
        let mut next = self.fetch().await?;
        // A release the watch told of is held even if the read raced ahead of
        // it on another path: the position never moves back.
        for notice in releases {
            if let Some(set) = next.sets.get_mut(&notice.config_set_id) {
                set.release = set.release.max(notice.number);
            }
        }
        let changes = self.current.changes(&next);
        let moved = next.sets != self.current.sets;
        self.source = Source::Server;
        if !changes.is_empty() || moved {
            self.adopt(next).await;
        }
        if !changes.is_empty() {
            for callback in &self.callbacks {
                callback(&changes, &self.current);
            }
        }
        Ok(changes)
    }

    /// Holds `snapshot` and caches it (a cache that cannot be written is
    /// logged: the configuration itself is current).
    async fn adopt(&mut self, snapshot: Snapshot) {
        self.current = snapshot;
        if let Some(cache) = &self.cache
            && let Err(e) = cache.save(&self.current).await
        {
            tracing::warn!(error = %e, "config cache not written");
        }
    }

    /// The effective configuration from the config center.
    async fn fetch(&mut self) -> Result<Snapshot> {
        let s = &self.settings;
        let response = self
            .http
            .get(format!("{}/api/v1/tenants/{}/effective-config", s.gateway, s.tenant))
            .bearer_auth(&s.token)
            .query(&[
                ("application", s.application.as_str()),
                ("environment", s.environment.as_str()),
                ("cluster", s.cluster.as_str()),
            ])
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(unreachable)?;
        let effective: EffectiveConfig = read(response).await?;
        self.fetched_at = Some(Instant::now());
        Ok(snapshot(effective))
    }
}

fn unreachable(e: reqwest::Error) -> Error {
    Error::Unreachable(e.to_string())
}

/// A successful answer's body, or the error its status means.
async fn read<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T> {
    let status = response.status();
    if status.is_success() {
        return response.json().await.map_err(unreachable);
    }
    let detail = response.json::<Problem>().await.map(|p| p.detail).unwrap_or_default();
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS {
        Err(Error::Unreachable(format!("{status}: {detail}")))
    } else {
        Err(Error::Refused {
            status: status.as_u16(),
            detail,
        })
    }
}

/// Entries grouped into items; secret entries (masked here) left out.
fn snapshot(effective: EffectiveConfig) -> Snapshot {
    let mut items: BTreeMap<String, Item> = BTreeMap::new();
    for entry in effective.entries.into_iter().filter(|e| !e.secret) {
        if entry.key.is_empty() {
            items.insert(entry.item, Item::File(entry.value));
        } else {
            let item = items.entry(entry.item).or_insert_with(|| Item::Keys(BTreeMap::new()));
            if let Item::Keys(keys) = item {
                keys.insert(entry.key, entry.value);
            }
        }
    }
    let sets = effective
        .sets
        .into_iter()
        .map(|s| {
            (
                s.config_set_id,
                SetRelease {
                    origin: s.origin,
                    release: s.latest_release,
                },
            )
        })
        .collect();
    Snapshot { items, sets }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_group_into_files_and_key_value_items_without_secrets() {
        let effective: EffectiveConfig = serde_json::from_value(serde_json::json!({
            "entries": [
                {"item": "app.properties", "key": "a", "value": "1", "secret": false},
                {"item": "app.properties", "key": "b", "value": "2", "secret": false},
                {"item": "banner.txt", "key": "", "value": "hi", "secret": false},
                {"item": "db.properties", "key": "password", "value": "****word", "secret": true},
            ],
            "sets": [{"config_set_id": "s1", "origin": "shop/base", "latest_release": 3}],
        }))
        .unwrap();
        let s = snapshot(effective);
        assert_eq!(s.value("app.properties", "b"), Some("2"));
        assert_eq!(s.file("banner.txt"), Some("hi"));
        assert!(!s.items.contains_key("db.properties"));
        assert_eq!(s.position(), "s1:3");
    }

    #[tokio::test]
    async fn an_unreachable_center_falls_back_to_the_cache_and_without_one_says_so() {
        let dir = std::env::temp_dir().join(format!("config-client-fallback-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Nothing listens on port 1.
        let settings = Settings::new("http://127.0.0.1:1", "t", "tenant", "shop").cache_dir(&dir);
        let mut client = ConfigClient::new(settings.clone()).unwrap();
        assert!(matches!(client.start().await, Err(Error::NoCache(_))));
        let mut cached = Snapshot::default();
        cached.items.insert("banner.txt".into(), Item::File("cached".into()));
        cached.sets.insert(
            "s1".into(),
            SetRelease {
                origin: "shop/base".into(),
                release: 2,
            },
        );
        Cache::new(&dir, &settings.cache_name()).save(&cached).await.unwrap();
        let mut client = ConfigClient::new(settings).unwrap();
        assert_eq!(client.start().await.unwrap().file("banner.txt"), Some("cached"));
        assert_eq!(client.source(), Source::Cache);
        // Still down: the poll says so and the configuration held stays.
        assert!(client.poll().await.unwrap_err().is_transient());
        assert_eq!(client.current(), &cached);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
