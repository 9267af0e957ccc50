//! What a client needs to know: where the gateway is, its credential, which
//! configuration it reads, who it is, and where it caches.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// How long a long poll holds at most; the gateway's maximum (60 s), as
/// Apollo's: an idle client makes one request a minute.
pub const DEFAULT_POLL: Duration = Duration::from_secs(60);
/// How often the client re-reads the whole configuration while nothing is
/// published. A set created after it started (a new cluster level, a newly
/// linked shared set) answers its watch at once (the watch names the
/// configuration); this re-read is the safety net for a notice lost on the way.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// A client's settings, built with [`Settings::new`] and the setters.
#[derive(Clone)]
pub struct Settings {
    pub(crate) gateway: String,
    pub(crate) token: String,
    pub(crate) tenant: String,
    pub(crate) application: String,
    pub(crate) environment: String,
    pub(crate) cluster: String,
    pub(crate) instance: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) cache_dir: Option<PathBuf>,
    pub(crate) poll: Duration,
    pub(crate) refresh: Duration,
}

impl fmt::Debug for Settings {
    // The credential never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("gateway", &self.gateway)
            .field("token", &"<redacted>")
            .field("tenant", &self.tenant)
            .field("application", &self.application)
            .field("environment", &self.environment)
            .field("cluster", &self.cluster)
            .field("instance", &self.instance)
            .field("labels", &self.labels)
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Reads `application`'s base configuration in `tenant` through the
    /// gateway at `gateway` (`http://host:port`) with `token` (an application
    /// access key or an API token).
    pub fn new(
        gateway: impl Into<String>,
        token: impl Into<String>,
        tenant: impl Into<String>,
        application: impl Into<String>,
    ) -> Self {
        Self {
            gateway: gateway.into().trim_end_matches('/').to_string(),
            token: token.into(),
            tenant: tenant.into(),
            application: application.into(),
            environment: String::new(),
            cluster: String::new(),
            instance: String::new(),
            labels: BTreeMap::new(),
            cache_dir: None,
            poll: DEFAULT_POLL,
            refresh: DEFAULT_REFRESH,
        }
    }

    /// The environment level (empty: the base level).
    #[must_use]
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = environment.into();
        self
    }

    /// The cluster level (with an environment).
    #[must_use]
    pub fn cluster(mut self, cluster: impl Into<String>) -> Self {
        self.cluster = cluster.into();
        self
    }

    /// The instance id the config center records this client as.
    #[must_use]
    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = instance.into();
        self
    }

    /// A label of this instance (gray releases select instances by labels).
    #[must_use]
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Labels from `key=value,key=value`.
    ///
    /// # Errors
    /// A pair without `=`.
    pub fn labels(mut self, raw: &str) -> Result<Self> {
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| Error::Setting {
                setting: "labels",
                reason: format!("{pair:.64} is not key=value"),
            })?;
            self.labels.insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(self)
    }

    /// Where the last configuration received is kept, for a start while the
    /// config center is unreachable (none: no cache).
    #[must_use]
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// How long one long poll holds at most (at most 60 s).
    #[must_use]
    pub fn poll(mut self, poll: Duration) -> Self {
        self.poll = poll.min(DEFAULT_POLL);
        self
    }

    /// How often the whole configuration is re-read while nothing changes.
    #[must_use]
    pub fn refresh(mut self, refresh: Duration) -> Self {
        self.refresh = refresh;
        self
    }

    /// The labels as the gateway takes them: `k=v,k=v`.
    pub(crate) fn labels_query(&self) -> String {
        self.labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The cache file's name: one per configuration read.
    pub(crate) fn cache_name(&self) -> String {
        let part = |s: &str| -> String {
            s.chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
                .collect()
        };
        format!(
            "{}_{}_{}_{}.json",
            part(&self.tenant),
            part(&self.application),
            part(&self.environment),
            part(&self.cluster)
        )
    }

    pub(crate) fn check(&self) -> Result<()> {
        let missing = |setting: &'static str, value: &str| {
            if value.trim().is_empty() {
                Err(Error::Setting {
                    setting,
                    reason: "is required".into(),
                })
            } else {
                Ok(())
            }
        };
        missing("gateway", &self.gateway)?;
        missing("token", &self.token)?;
        missing("tenant", &self.tenant)?;
        missing("application", &self.application)?;
        if !self.gateway.starts_with("http://") && !self.gateway.starts_with("https://") {
            return Err(Error::Setting {
                setting: "gateway",
                reason: "must be an http:// or https:// URL".into(),
            });
        }
        if !self.cluster.is_empty() && self.environment.is_empty() {
            return Err(Error::Setting {
                setting: "cluster",
                reason: "needs an environment".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_render_in_key_order() {
        let s = Settings::new("http://g", "t", "x", "shop")
            .labels("zone=a, canary=true")
            .unwrap();
        assert_eq!(s.labels_query(), "canary=true,zone=a");
        assert!(Settings::new("http://g", "t", "x", "shop").labels("zone").is_err());
    }

    #[test]
    fn the_token_is_never_printed() {
        let s = Settings::new("http://g", "paasak_secret", "x", "shop");
        assert!(!format!("{s:?}").contains("paasak_secret"));
    }

    #[test]
    fn settings_are_checked() {
        assert!(Settings::new("http://g", "t", "x", "shop").check().is_ok());
        assert!(Settings::new("g", "t", "x", "shop").check().is_err());
        assert!(Settings::new("http://g", "", "x", "shop").check().is_err());
        assert!(
            Settings::new("http://g", "t", "x", "shop")
                .cluster("eu")
                .check()
                .is_err()
        );
    }

    #[test]
    fn each_configuration_has_its_own_cache_file() {
        let a = Settings::new("http://g", "t", "x", "shop").environment("prod");
        let b = Settings::new("http://g", "t", "x", "shop").environment("qa");
        assert_ne!(a.cache_name(), b.cache_name());
        assert!(!Settings::new("http://g", "t", "../x", "a/b").cache_name().contains('/'));
    }
}
