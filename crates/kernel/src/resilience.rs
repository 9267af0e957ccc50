//! A binding's resilience: its disaster-recovery tier, how long a cluster
//! may be lost before its replicas move, whether it is a singleton, and how
//! and in which order its replicas come back ([`Resilience`]). They are given
//! beside the placement (`{"policy": {...}, "dr_tier": "auto-failover",
//! "toleration_seconds": 10, "singleton": true}`) and taken out of it before
//! it is placed; federation's failover reconciler acts on them. They live
//! here because apps takes the same settings on an application's placement
//! (for the whole application and per service) and must refuse a bad one
//! when the release is made, not when federation is first asked.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// The toleration when a binding does not set one: how long a cluster may
/// be out of Ready before its replicas move (R3's default).
pub const DEFAULT_TOLERATION: Duration = Duration::from_secs(10);

/// A binding's disaster-recovery tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DrTier {
    /// Replicas kept across clusters; lost ones re-placed on the survivors.
    ActiveActive,
    /// Moved by the placement to healthy clusters after the toleration.
    AutoFailover,
    /// Moved only when an operator triggers it.
    #[default]
    Manual,
}

impl DrTier {
    /// The stored and API name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ActiveActive => "active-active",
            Self::AutoFailover => "auto-failover",
            Self::Manual => "manual",
        }
    }
}

/// Whether a binding's replicas return to their recovered cluster by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failback {
    /// Once the cluster has been Ready for the stabilisation period.
    Automatic,
    /// Only when an operator triggers it (federation's failback action).
    Manual,
}

impl Failback {
    /// The stored and API name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Automatic => "automatic",
            Self::Manual => "manual",
        }
    }

    /// The tier's default: the tiers that fail over by themselves come back by themselves.
    pub fn default_for(tier: DrTier) -> Self {
        match tier {
            DrTier::ActiveActive | DrTier::AutoFailover => Self::Automatic,
            DrTier::Manual => Self::Manual,
        }
    }
}

/// Whether a singleton's automatic failback (a planned move with a gap)
/// waits for an operator's confirmation. Apps sets it from the
/// application's environment (production requires it); a binding that does
/// not say requires it, the safe side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailbackConfirmation {
    /// Waits for `POST /failovers/{id}/confirm` (or a maintenance window).
    #[default]
    Required,
    /// Goes on by itself, still reporting the expected gap.
    None,
}

impl FailbackConfirmation {
    /// The stored and API name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::None => "none",
        }
    }
}

/// A binding's failover settings, given beside its placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resilience {
    /// The tier.
    pub tier: DrTier,
    /// How long a cluster may be out of Ready before replicas move; for a
    /// singleton also how long it must be out of contact (fencing).
    pub toleration: Duration,
    /// Never two copies at once.
    pub singleton: bool,
    /// Whether replicas come back by themselves after a failover.
    pub failback: Failback,
    /// Order of automatic failbacks: higher first (then by tier).
    pub priority: i32,
    /// Whether a singleton's automatic failback waits for confirmation.
    pub failback_confirmation: FailbackConfirmation,
}

impl Default for Resilience {
    fn default() -> Self {
        Self {
            tier: DrTier::Manual,
            toleration: DEFAULT_TOLERATION,
            singleton: false,
            failback: Failback::Manual,
            priority: 0,
            failback_confirmation: FailbackConfirmation::Required,
        }
    }
}

/// The keys [`Resilience::split`] takes out of a placement.
pub const KEYS: [&str; 6] = [
    "dr_tier",
    "toleration_seconds",
    "singleton",
    "failback",
    "priority",
    "failback_confirmation",
];

/// Takes `key` out of `map` and reads it, naming `<at>.<key>` when it is malformed.
fn take<T: serde::de::DeserializeOwned>(
    map: &mut serde_json::Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<Option<T>> {
    map.remove(key)
        .map(|v| serde_json::from_value(v).map_err(|e| Error::invalid(format!("{at}.{key}"), e.to_string())))
        .transpose()
}

impl Resilience {
    /// Takes `dr_tier`, `toleration_seconds`, `singleton`, `failback` and
    /// `priority` out of a placement object, leaving the placement proper.
    ///
    /// # Errors
    /// InvalidArgument naming the field.
    pub fn split(placement: &mut Value) -> Result<Self> {
        Self::split_at(placement, "placement")
    }

    /// [`Resilience::split`] of the object at `at` (`placement.services.db`),
    /// which errors name.
    ///
    /// # Errors
    /// InvalidArgument naming the field under `at`.
    pub fn split_at(placement: &mut Value, at: &str) -> Result<Self> {
        let Some(map) = placement.as_object_mut() else {
            return Ok(Self::default());
        };
        let tier: DrTier = take(map, at, "dr_tier")?.unwrap_or_default();
        let toleration = match take::<f64>(map, at, "toleration_seconds")? {
            None => DEFAULT_TOLERATION,
            Some(s) if s.is_finite() && (0.0..=86_400.0).contains(&s) => Duration::from_secs_f64(s),
            Some(_) => {
                return Err(Error::invalid(
                    format!("{at}.toleration_seconds"),
                    "must be between 0 and 86400",
                ));
            }
        };
        let singleton = take(map, at, "singleton")?.unwrap_or(false);
        let failback = take(map, at, "failback")?.unwrap_or(Failback::default_for(tier));
        let priority: i32 = take(map, at, "priority")?.unwrap_or(0);
        if !(-1000..=1000).contains(&priority) {
            return Err(Error::invalid(
                format!("{at}.priority"),
                "must be between -1000 and 1000",
            ));
        }
        let failback_confirmation = take(map, at, "failback_confirmation")?.unwrap_or_default();
        Ok(Self {
            tier,
            toleration,
            singleton,
            failback,
            priority,
            failback_confirmation,
        })
    }

    /// Reads a stored tier (the failback settings are read where they are used).
    pub fn from_stored(tier: &str, toleration_ms: i64, singleton: bool) -> Self {
        let tier = match tier {
            "active-active" => DrTier::ActiveActive,
            "auto-failover" => DrTier::AutoFailover,
            _ => DrTier::Manual,
        };
        Self {
            tier,
            toleration: Duration::from_millis(toleration_ms.max(0) as u64),
            singleton,
            failback: Failback::default_for(tier),
            priority: 0,
            failback_confirmation: FailbackConfirmation::Required,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn dr_settings_are_taken_out_of_the_placement_with_defaults() {
        let mut p = json!({"policy": {}, "dr_tier": "auto-failover", "toleration_seconds": 2.5, "singleton": true});
        let r = Resilience::split(&mut p).unwrap();
        assert_eq!(
            r,
            Resilience {
                tier: DrTier::AutoFailover,
                toleration: Duration::from_millis(2500),
                singleton: true,
                failback: Failback::Automatic,
                priority: 0,
                failback_confirmation: FailbackConfirmation::Required,
            }
        );
        assert_eq!(p, json!({"policy": {}}));
        let mut plain = json!({"explicit": []});
        assert_eq!(Resilience::split(&mut plain).unwrap(), Resilience::default());
        assert_eq!(Resilience::default().tier, DrTier::Manual);
        let mut bad = json!({"policy": {}, "dr_tier": "sometimes"});
        assert_eq!(
            Resilience::split(&mut bad).unwrap_err().field(),
            Some("placement.dr_tier")
        );
        let mut negative = json!({"policy": {}, "toleration_seconds": -1});
        assert_eq!(
            Resilience::split(&mut negative).unwrap_err().field(),
            Some("placement.toleration_seconds")
        );
        // Failback follows the tier unless given; priority orders automatic failbacks.
        let mut manual_back = json!({"policy": {}, "dr_tier": "active-active", "failback": "manual", "priority": 7});
        let r = Resilience::split(&mut manual_back).unwrap();
        assert_eq!((r.failback, r.priority), (Failback::Manual, 7));
        let mut manual_tier = json!({"policy": {}, "dr_tier": "manual"});
        assert_eq!(Resilience::split(&mut manual_tier).unwrap().failback, Failback::Manual);
        let mut bad_failback = json!({"policy": {}, "dr_tier": "auto-failover", "failback": "sometimes"});
        assert_eq!(
            Resilience::split(&mut bad_failback).unwrap_err().field(),
            Some("placement.failback")
        );
        let mut unconfirmed = json!({"policy": {}, "singleton": true, "failback_confirmation": "none"});
        assert_eq!(
            Resilience::split(&mut unconfirmed).unwrap().failback_confirmation,
            FailbackConfirmation::None
        );
        let mut bad_confirmation = json!({"policy": {}, "failback_confirmation": "maybe"});
        assert_eq!(
            Resilience::split(&mut bad_confirmation).unwrap_err().field(),
            Some("placement.failback_confirmation")
        );
        let mut bad_priority = json!({"policy": {}, "priority": 5000});
        assert_eq!(
            Resilience::split(&mut bad_priority).unwrap_err().field(),
            Some("placement.priority")
        );
    }
}
