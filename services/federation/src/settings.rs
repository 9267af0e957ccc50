//! Federation's own settings, read from the environment beside the platform's.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use kernel::settings::{Env, Platform, SettingError};
use sha2::{Digest, Sha256};

/// How often the health monitor probes every cluster's `/readyz`.
pub const PROBE_PERIOD: &str = "PAAS_FEDERATION_PROBE_PERIOD";
/// Kubernetes' node monitor grace is in seconds too; 2 s notices a dead
/// cluster within 6 s at three misses without loading healthy ones.
const PROBE_PERIOD_DEFAULT: Duration = Duration::from_secs(2);
/// How long one probe may take before it counts as a miss.
pub const PROBE_TIMEOUT: &str = "PAAS_FEDERATION_PROBE_TIMEOUT";
/// Half the period, so a slow probe never overlaps the next one.
const PROBE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(1);
/// Failed probes in a row before a Ready cluster is NotReady; twice as many
/// make it Unknown.
pub const PROBE_MISSES: &str = "PAAS_FEDERATION_PROBE_MISSES";
/// Three rides out one lost packet or a garbage-collection pause.
const PROBE_MISSES_DEFAULT: u32 = 3;
/// How long a monitor's or reconciler's leadership lasts without renewal.
pub const LEASE_TTL: &str = "PAAS_FEDERATION_LEASE_TTL";
/// Five default periods: a stalled leader is replaced within 10 s, and a
/// leader that renews every period never loses the lease to a slow commit.
const LEASE_TTL_DEFAULT: Duration = Duration::from_secs(10);
/// How often converged partitions are re-applied to repair drift.
pub const RESYNC_PERIOD: &str = "PAAS_FEDERATION_RESYNC_PERIOD";
/// Like kube-runtime controllers' periodic requeue: cheap (a few applies per
/// partition) and bounds how long an edit in a member cluster survives.
const RESYNC_PERIOD_DEFAULT: Duration = Duration::from_secs(30);
/// How long a binding target rolling out in a watched cluster may go
/// without a status record before it is polled anyway.
pub const WATCHED_STATUS_POLL: &str = "PAAS_FEDERATION_WATCHED_STATUS_POLL";
/// A rollout records on every pod that becomes ready, so 5 s of silence
/// means a stuck rollout or a watch that is not delivering; one GET per such
/// target every 5 s is cheap either way.
const WATCHED_STATUS_POLL_DEFAULT: Duration = Duration::from_secs(5);
/// How often the partition reconciler looks for due work.
pub const RECONCILE_POLL: &str = "PAAS_FEDERATION_RECONCILE_POLL";
/// New partitions reach their cluster within a second.
const RECONCILE_POLL_DEFAULT: Duration = Duration::from_secs(1);
/// How many binding targets (binding x cluster) the propagator works on at once.
pub const PROPAGATION_PARALLELISM: &str = "PAAS_FEDERATION_PROPAGATION_PARALLELISM";
/// Enough to reach 100 clusters in a few round trips without opening a
/// connection burst a small API server would throttle.
const PROPAGATION_PARALLELISM_DEFAULT: usize = 32;
/// The longest one target's apply may take before it counts as failed.
pub const PROPAGATION_TIMEOUT: &str = "PAAS_FEDERATION_PROPAGATION_TIMEOUT";
/// Above kube-rs' 10 s read timeout for one request would be pointless; a
/// target is a handful of requests, so a healthy cluster needs far less.
const PROPAGATION_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// How long a recovered cluster must stay Ready before automatic failbacks
/// move replicas back onto it.
pub const FAILBACK_STABILISATION: &str = "PAAS_FEDERATION_FAILBACK_STABILISATION";
/// Ten health periods at the default probe rate: a cluster that flaps
/// (Ready for a probe or two, then lost again) never gets replicas back.
const FAILBACK_STABILISATION_DEFAULT: Duration = Duration::from_secs(30);
/// How many automatic failbacks run at once; the next in priority order
/// starts as one finishes.
pub const FAILBACK_PARALLELISM: &str = "PAAS_FEDERATION_FAILBACK_PARALLELISM";
/// A recovered data centre takes its most important bindings back first
/// without a burst of every binding's rollout at once.
const FAILBACK_PARALLELISM_DEFAULT: usize = 16;
/// When a singleton's automatic failback needing confirmation goes on
/// without it (`Sun 02:00-04:00 UTC`, [`crate::maintenance`]); unset: never.
pub const FAILBACK_WINDOW: &str = "PAAS_FEDERATION_FAILBACK_WINDOW";
/// Where tenancy's gRPC API is, for usage reports (the variable the gateway reads too).
pub const TENANCY_URL: &str = "PAAS_TENANCY_URL";
/// Tenancy's port under `paas serve` on the same host.
const TENANCY_URL_DEFAULT: &str = "http://127.0.0.1:7101";
/// 32 bytes, base64, encrypting member-cluster credentials at rest.
pub const SECRET_KEY: &str = "PAAS_FEDERATION_SECRET_KEY";

/// The platform registry (host[:port]) whose pull secret every partition's
/// namespace gets; unset: none (images come from registries that need no
/// credentials, or from a tenant's own pull secrets).
pub const REGISTRY_SERVER: &str = "PAAS_FEDERATION_REGISTRY_SERVER";
/// The user of the platform registry's pull secret; required with the server.
pub const REGISTRY_USERNAME: &str = "PAAS_FEDERATION_REGISTRY_USERNAME";
/// Its password; required with the server, never printed.
pub const REGISTRY_PASSWORD: &str = "PAAS_FEDERATION_REGISTRY_PASSWORD";

/// Credentials of the platform's image registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// host[:port].
    pub server: String,
    /// User.
    pub username: String,
    /// Password (`Debug` hides it).
    pub password: kernel::settings::Secret,
}

/// The key that encrypts stored credentials; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(pub(crate) [u8; 32]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl SecretKey {
    /// A key from its 32 bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key derived from the caller key when none is set: every process of
    /// one platform shares the caller key, so they agree on this one too.
    pub fn derived_from(platform: &Platform) -> Self {
        let mut h = Sha256::new();
        h.update(b"paas-federation-credentials\0");
        h.update(platform.caller_key.expose().as_bytes());
        Self(h.finalize().into())
    }
}

/// Federation's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Health probe period.
    pub probe_period: Duration,
    /// One probe's timeout.
    pub probe_timeout: Duration,
    /// Misses in a row before NotReady (twice as many: Unknown).
    pub probe_misses: u32,
    /// Leader lease duration.
    pub lease_ttl: Duration,
    /// Drift-repair resync period of converged partitions.
    pub resync_period: Duration,
    /// How often the partition reconciler looks for due work.
    pub reconcile_poll: Duration,
    /// Status polling of rolling-out targets in watched clusters.
    pub watched_status_poll: Duration,
    /// Binding targets worked on at once.
    pub propagation_parallelism: usize,
    /// One binding target's time limit.
    pub propagation_timeout: Duration,
    /// How long a recovered cluster stays Ready before automatic failback.
    pub failback_stabilisation: Duration,
    /// Automatic failbacks open at once.
    pub failback_parallelism: usize,
    /// When a singleton's failback needs no confirmation, if ever.
    pub failback_window: Option<crate::maintenance::MaintenanceWindow>,
    /// Encrypts credentials at rest.
    pub secret_key: SecretKey,
    /// Tenancy's gRPC URL, for observed-usage reports.
    pub tenancy_url: String,
    /// The platform registry every partition gets a pull secret for, if any.
    pub registry: Option<Registry>,
}

impl Settings {
    /// Defaults (the key derived from the caller key).
    pub fn defaults(platform: &Platform) -> Self {
        Self {
            probe_period: PROBE_PERIOD_DEFAULT,
            probe_timeout: PROBE_TIMEOUT_DEFAULT,
            probe_misses: PROBE_MISSES_DEFAULT,
            lease_ttl: LEASE_TTL_DEFAULT,
            resync_period: RESYNC_PERIOD_DEFAULT,
            reconcile_poll: RECONCILE_POLL_DEFAULT,
            watched_status_poll: WATCHED_STATUS_POLL_DEFAULT,
            propagation_parallelism: PROPAGATION_PARALLELISM_DEFAULT,
            propagation_timeout: PROPAGATION_TIMEOUT_DEFAULT,
            failback_stabilisation: FAILBACK_STABILISATION_DEFAULT,
            failback_parallelism: FAILBACK_PARALLELISM_DEFAULT,
            failback_window: None,
            secret_key: SecretKey::derived_from(platform),
            tenancy_url: TENANCY_URL_DEFAULT.into(),
            registry: None,
        }
    }

    /// Reads the settings.
    ///
    /// # Errors
    /// A variable is malformed: a zero duration or count, or a key that is
    /// not 32 bytes of base64.
    pub fn from_env(env: &Env, platform: &Platform) -> Result<Self, SettingError> {
        let d = Self::defaults(platform);
        let positive = |name: &str, default: Duration| -> Result<Duration, SettingError> {
            let v = env.or(name, default)?;
            if v.is_zero() {
                return Err(SettingError {
                    variable: name.into(),
                    expected: "a duration above zero".into(),
                    found: Some("0".into()),
                });
            }
            Ok(v)
        };
        let misses: u32 = env.or(PROBE_MISSES, d.probe_misses)?;
        if misses == 0 {
            return Err(SettingError {
                variable: PROBE_MISSES.into(),
                expected: "a whole number above zero".into(),
                found: Some("0".into()),
            });
        }
        let parallelism: usize = env.or(PROPAGATION_PARALLELISM, d.propagation_parallelism)?;
        if parallelism == 0 {
            return Err(SettingError {
                variable: PROPAGATION_PARALLELISM.into(),
                expected: "a whole number above zero".into(),
                found: Some("0".into()),
            });
        }
        let failback_parallelism: usize = env.or(FAILBACK_PARALLELISM, d.failback_parallelism)?;
        if failback_parallelism == 0 {
            return Err(SettingError {
                variable: FAILBACK_PARALLELISM.into(),
                expected: "a whole number above zero".into(),
                found: Some("0".into()),
            });
        }
        let failback_window = env
            .raw(FAILBACK_WINDOW)
            .map(|raw| {
                crate::maintenance::MaintenanceWindow::parse(raw).map_err(|expected| SettingError {
                    variable: FAILBACK_WINDOW.into(),
                    expected,
                    found: Some(raw.to_string()),
                })
            })
            .transpose()?;
        let secret_key = match env.raw(SECRET_KEY) {
            None => d.secret_key,
            Some(raw) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(raw.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok());
                // The value itself is never shown.
                SecretKey(bytes.ok_or_else(|| SettingError {
                    variable: SECRET_KEY.into(),
                    expected: "32 bytes, base64-encoded (openssl rand -base64 32)".into(),
                    found: Some(format!("{} characters", raw.len())),
                })?)
            }
        };
        let registry = match env.raw(REGISTRY_SERVER) {
            None => None,
            Some(server) => {
                let required = |name: &str| {
                    env.raw(name).map(str::to_string).ok_or_else(|| SettingError {
                        variable: name.into(),
                        expected: format!("to be set with {REGISTRY_SERVER}"),
                        found: None,
                    })
                };
                Some(Registry {
                    server: server.trim().to_string(),
                    username: required(REGISTRY_USERNAME)?,
                    password: kernel::settings::Secret::new(required(REGISTRY_PASSWORD)?),
                })
            }
        };
        Ok(Self {
            probe_period: positive(PROBE_PERIOD, d.probe_period)?,
            probe_timeout: positive(PROBE_TIMEOUT, d.probe_timeout)?,
            probe_misses: misses,
            lease_ttl: positive(LEASE_TTL, d.lease_ttl)?,
            resync_period: positive(RESYNC_PERIOD, d.resync_period)?,
            reconcile_poll: positive(RECONCILE_POLL, d.reconcile_poll)?,
            watched_status_poll: positive(WATCHED_STATUS_POLL, d.watched_status_poll)?,
            propagation_parallelism: parallelism,
            propagation_timeout: positive(PROPAGATION_TIMEOUT, d.propagation_timeout)?,
            failback_stabilisation: positive(FAILBACK_STABILISATION, d.failback_stabilisation)?,
            failback_parallelism,
            failback_window,
            secret_key,
            tenancy_url: env.or(TENANCY_URL, d.tenancy_url)?,
            registry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform() -> Platform {
        Platform::from_env(&Env::from_pairs([(kernel::settings::CALLER_KEY, "k".repeat(32))])).unwrap()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = Settings::from_env(&Env::default(), &platform()).unwrap();
        assert_eq!(s.probe_period, Duration::from_secs(2));
        assert_eq!(s.probe_misses, 3);
        assert_eq!(
            (s.failback_stabilisation, s.failback_parallelism),
            (Duration::from_secs(30), 16)
        );
        assert_eq!(s.secret_key, SecretKey::derived_from(&platform()));
    }

    #[test]
    fn a_secret_key_must_be_32_bytes_of_base64_and_is_never_echoed() {
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
        let e = Settings::from_env(&Env::from_pairs([(SECRET_KEY, short.clone())]), &platform()).unwrap_err();
        assert_eq!(e.variable, SECRET_KEY);
        assert!(!e.to_string().contains(&short));
        let good = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let s = Settings::from_env(&Env::from_pairs([(SECRET_KEY, good)]), &platform()).unwrap();
        assert_eq!(s.secret_key, SecretKey([7u8; 32]));
        assert_eq!(format!("{:?}", s.secret_key), "SecretKey(***)");
    }

    #[test]
    fn the_platform_registry_needs_its_user_and_password_and_hides_the_password() {
        assert_eq!(Settings::from_env(&Env::default(), &platform()).unwrap().registry, None);
        let e = Settings::from_env(
            &Env::from_pairs([(REGISTRY_SERVER, "registry.example:5000"), (REGISTRY_USERNAME, "robot")]),
            &platform(),
        )
        .unwrap_err();
        assert_eq!(e.variable, REGISTRY_PASSWORD);
        let s = Settings::from_env(
            &Env::from_pairs([
                (REGISTRY_SERVER, "registry.example:5000"),
                (REGISTRY_USERNAME, "robot"),
                (REGISTRY_PASSWORD, "hunter2"),
            ]),
            &platform(),
        )
        .unwrap();
        let r = s.registry.unwrap();
        assert_eq!(
            (r.server.as_str(), r.username.as_str(), r.password.expose()),
            ("registry.example:5000", "robot", "hunter2")
        );
        assert!(!format!("{r:?}").contains("hunter2"));
    }

    #[test]
    fn zero_periods_and_counts_are_refused() {
        assert!(Settings::from_env(&Env::from_pairs([(PROBE_PERIOD, "0s")]), &platform()).is_err());
        assert!(Settings::from_env(&Env::from_pairs([(PROBE_MISSES, "0")]), &platform()).is_err());
    }
}
