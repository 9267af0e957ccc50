//! How a release replaces the running version inside each cluster.
//!
//! `recreate` (every old pod stops before new ones start) and `rolling`
//! (bounded by max surge / max unavailable) are written into the workloads
//! themselves, so Kubernetes carries them out in every cluster.
//!
//! `blue-green`, `canary`, `ab` and `shadow` run the new version in its own
//! slot beside the old one (see [`crate::traffic`]) and move traffic step by
//! step; [`crate::rollout`] decides each step and [`crate::driver`] carries it out.

use kernel::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A release strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Strategy {
    /// Old pods stop, then new ones start (Deployments only).
    Recreate,
    /// New pods replace old ones a few at a time.
    Rolling {
        /// Extra pods allowed during the update: a count or a percentage.
        #[serde(default = "quarter")]
        max_surge: IntOrPercent,
        /// Pods allowed to be unavailable: a count or a percentage.
        #[serde(default = "quarter")]
        max_unavailable: IntOrPercent,
    },
    /// The new version deploys in the other slot; once Available the Service
    /// switches to it; the old slot stays until the release is confirmed.
    #[serde(rename = "blue-green")]
    BlueGreen,
    /// An HTTPRoute sends a growing share of requests to the new version.
    Canary {
        /// Percentages of requests for the new version, ascending; the last
        /// step (or a promote) makes it the stable version.
        #[serde(default = "default_steps")]
        steps: Vec<u32>,
        /// Seconds to hold each step once the new version is Healthy.
        #[serde(default)]
        pause_seconds: u32,
        /// Hold each step until the release is resumed.
        #[serde(default)]
        pause: bool,
    },
    /// An HTTPRoute sends requests matching a header, cookie or query
    /// parameter to the new version, the rest to the stable one, until the
    /// release is promoted or aborted.
    #[serde(rename = "ab")]
    AB {
        /// Which requests go to the new version.
        #[serde(rename = "match")]
        matches: RequestMatch,
    },
    /// An HTTPRoute mirrors every request to the new version (its answers
    /// are dropped) until the release is promoted or aborted.
    Shadow,
    /// The new version goes out one cluster (or partition) at a time, each
    /// wave Available before the next.
    Gray {
        /// What one wave is.
        #[serde(default)]
        by: GrayBy,
        /// Waves first: cluster names (`by: cluster`) or partition ids
        /// (`by: partition`); the rest follow in the placement's order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        order: Vec<String>,
        /// After each Available wave but the last: seconds to hold, or
        /// `"manual"` to wait for a promote.
        #[serde(default)]
        pause: GrayPause,
        /// A wave not Available within this fails the release (default:
        /// the release driver's deadline).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deadline_seconds: Option<u32>,
    },
}

/// What one wave of a gray release covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrayBy {
    /// Every target in one cluster.
    #[default]
    Cluster,
    /// Every target in one partition.
    Partition,
}

/// What a gray release does between waves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrayPause {
    /// Holds this many seconds (0: goes straight on).
    Seconds(u32),
    /// Waits for a promote.
    Manual,
}

impl Default for GrayPause {
    fn default() -> Self {
        Self::Seconds(0)
    }
}

impl Serialize for GrayPause {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::Seconds(n) => s.serialize_u32(*n),
            Self::Manual => s.serialize_str("manual"),
        }
    }
}

impl<'de> Deserialize<'de> for GrayPause {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u32),
            Word(String),
        }
        let wrong = || serde::de::Error::custom("must be a number of seconds or \"manual\"");
        match Raw::deserialize(d).map_err(|_| wrong())? {
            Raw::Seconds(n) => Ok(Self::Seconds(n)),
            Raw::Word(w) if w == "manual" => Ok(Self::Manual),
            Raw::Word(_) => Err(wrong()),
        }
    }
}

/// Which requests an A/B release sends to the new version: a header with
/// this value, a cookie with this value, or a query parameter with this value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum RequestMatch {
    /// `{"header": {"name": "x-version", "value": "b"}}`
    Header(NameValue),
    /// `{"cookie": {"name": "variant", "value": "b"}}`
    Cookie(NameValue),
    /// `{"query": {"name": "variant", "value": "b"}}`
    Query(NameValue),
}

/// A name and the value it must have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameValue {
    /// Header, cookie or parameter name.
    pub name: String,
    /// The exact value.
    pub value: String,
}

fn default_steps() -> Vec<u32> {
    vec![5, 25, 50, 100]
}

/// Longest a canary step may hold by itself (a day); longer holds are pauses.
const MAX_PAUSE_SECONDS: u32 = 86_400;

impl Default for Strategy {
    fn default() -> Self {
        Self::Rolling {
            max_surge: quarter(),
            max_unavailable: quarter(),
        }
    }
}

/// A count (`1`) or a percentage (`"25%"`), as Kubernetes takes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrPercent {
    /// Pods.
    Count(u32),
    /// Percent of the replicas, written `"25%"`.
    Percent(String),
}

fn quarter() -> IntOrPercent {
    IntOrPercent::Percent("25%".into())
}

impl IntOrPercent {
    fn check(&self, field: &str) -> Result<()> {
        if let Self::Percent(p) = self {
            let n = p.strip_suffix('%').and_then(|n| n.parse::<u32>().ok());
            if n.is_none_or(|n| n > 100) {
                return Err(Error::invalid(field, "must be a count or a percentage such as \"25%\""));
            }
        }
        Ok(())
    }

    fn is_zero(&self) -> bool {
        match self {
            Self::Count(n) => *n == 0,
            Self::Percent(p) => p.trim_end_matches('%') == "0",
        }
    }
}

impl Strategy {
    /// Parses a strategy document (empty: rolling 25%/25%).
    ///
    /// # Errors
    /// Names the failing field under `strategy`.
    pub fn parse(text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| Error::invalid("strategy", format!("is not JSON: {e}")))?;
        if value["type"] == "gray" {
            // Inside an internally tagged enum serde loses the path of a bad
            // value; these fields are checked here to name them.
            if let Some(by) = value.get("by")
                && !matches!(by.as_str(), Some("cluster" | "partition"))
            {
                return Err(Error::invalid("strategy.by", "must be \"cluster\" or \"partition\""));
            }
            if let Some(pause) = value.get("pause")
                && !(pause.as_u64().is_some_and(|n| n <= u64::from(MAX_PAUSE_SECONDS)) || pause == "manual")
            {
                return Err(Error::invalid(
                    "strategy.pause",
                    format!(
                        "must be a number of seconds up to {MAX_PAUSE_SECONDS}, or \"manual\" to wait for a promote"
                    ),
                ));
            }
        }
        let strategy: Self = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            Error::invalid(
                if path == "." {
                    "strategy".to_string()
                } else {
                    format!("strategy.{path}")
                },
                e.into_inner().to_string(),
            )
        })?;
        match &strategy {
            Self::Rolling {
                max_surge,
                max_unavailable,
            } => {
                max_surge.check("strategy.max_surge")?;
                max_unavailable.check("strategy.max_unavailable")?;
                if max_surge.is_zero() && max_unavailable.is_zero() {
                    return Err(Error::invalid(
                        "strategy.max_unavailable",
                        "max_surge and max_unavailable cannot both be zero: the rollout could not move",
                    ));
                }
            }
            Self::Canary {
                steps, pause_seconds, ..
            } => {
                if steps.is_empty()
                    || steps.iter().any(|s| !(1..=100).contains(s))
                    || steps.windows(2).any(|w| w[0] >= w[1])
                {
                    return Err(Error::invalid(
                        "strategy.steps",
                        "must be ascending percentages between 1 and 100, such as [5, 25, 50, 100]",
                    ));
                }
                if *pause_seconds > MAX_PAUSE_SECONDS {
                    return Err(Error::invalid(
                        "strategy.pause_seconds",
                        format!("must be at most {MAX_PAUSE_SECONDS}; use \"pause\": true to hold until resumed"),
                    ));
                }
            }
            Self::AB { matches } => {
                let (field, nv) = match matches {
                    RequestMatch::Header(nv) => ("header", nv),
                    RequestMatch::Cookie(nv) => ("cookie", nv),
                    RequestMatch::Query(nv) => ("query", nv),
                };
                let token = |t: &str| {
                    !t.is_empty()
                        && t.len() <= 256
                        && t.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                };
                if !token(&nv.name) {
                    return Err(Error::invalid(
                        format!("strategy.match.{field}.name"),
                        "must be a non-empty token (letters, digits, -_.)",
                    ));
                }
                if nv.value.is_empty()
                    || nv.value.len() > 1024
                    || nv
                        .value
                        .chars()
                        .any(|c| c.is_control() || (field == "cookie" && matches!(c, ';' | ' ' | ',')))
                {
                    return Err(Error::invalid(
                        format!("strategy.match.{field}.value"),
                        "must be a non-empty printable value (a cookie value without ; , or spaces)",
                    ));
                }
            }
            Self::Gray {
                by,
                order,
                pause,
                deadline_seconds,
            } => {
                let mut seen = std::collections::BTreeSet::new();
                for (i, wave) in order.iter().enumerate() {
                    let field = format!("strategy.order[{i}]");
                    match by {
                        GrayBy::Cluster => drop(kernel::name::DnsLabel::parse(&field, wave)?),
                        GrayBy::Partition => drop(kernel::id::parse_id(&field, wave)?),
                    }
                    if !seen.insert(wave) {
                        return Err(Error::invalid(field, format!("{wave} is named twice")));
                    }
                }
                if let GrayPause::Seconds(n) = pause
                    && *n > MAX_PAUSE_SECONDS
                {
                    return Err(Error::invalid(
                        "strategy.pause",
                        format!("must be at most {MAX_PAUSE_SECONDS} seconds; use \"manual\" to wait for a promote"),
                    ));
                }
                if deadline_seconds.is_some_and(|d| d == 0 || d > MAX_PAUSE_SECONDS) {
                    return Err(Error::invalid(
                        "strategy.deadline_seconds",
                        format!("must be between 1 and {MAX_PAUSE_SECONDS}"),
                    ));
                }
            }
            Self::Recreate | Self::BlueGreen | Self::Shadow => {}
        }
        Ok(strategy)
    }

    /// Whether the new version runs in its own slot beside the old one.
    pub fn slotted(&self) -> bool {
        matches!(
            self,
            Self::BlueGreen | Self::Canary { .. } | Self::AB { .. } | Self::Shadow
        )
    }

    /// Whether the strategy steers requests with an HTTPRoute.
    pub fn routed(&self) -> bool {
        matches!(self, Self::Canary { .. } | Self::AB { .. } | Self::Shadow)
    }

    /// Whether the release goes out cluster by cluster (or partition by partition).
    pub fn gray(&self) -> bool {
        matches!(self, Self::Gray { .. })
    }

    /// Writes the strategy into a workload object. Strategies are per
    /// service: a slotted one asked of a StatefulSet or DaemonSet (which
    /// cannot run in two slots) makes that service roll in place while the
    /// application's Deployments run in slots.
    ///
    /// # Errors
    /// `recreate` asked of a StatefulSet or DaemonSet, which cannot do it.
    pub fn apply_to(&self, object: &mut Value) -> Result<()> {
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        if self.gray() || (self.slotted() && matches!(kind.as_str(), "StatefulSet" | "DaemonSet")) {
            // Inside one cluster a gray wave updates as a default rolling update.
            return Self::default().apply_to(object);
        }
        let rolling = |s: &IntOrPercent, u: &IntOrPercent| json!({"maxSurge": s, "maxUnavailable": u});
        match (self, kind.as_str()) {
            (Self::Recreate, "Deployment") => object["spec"]["strategy"] = json!({"type": "Recreate"}),
            (
                Self::Rolling {
                    max_surge,
                    max_unavailable,
                },
                "Deployment",
            ) => {
                object["spec"]["strategy"] =
                    json!({"type": "RollingUpdate", "rollingUpdate": rolling(max_surge, max_unavailable)});
            }
            (Self::Rolling { max_unavailable, .. }, "StatefulSet") => {
                object["spec"]["updateStrategy"] =
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable}});
            }
            (
                Self::Rolling {
                    max_surge,
                    max_unavailable,
                },
                "DaemonSet",
            ) => {
                object["spec"]["updateStrategy"] =
                    json!({"type": "RollingUpdate", "rollingUpdate": rolling(max_surge, max_unavailable)});
            }
            (Self::Recreate, "StatefulSet" | "DaemonSet") => {
                return Err(Error::invalid(
                    "strategy.type",
                    format!(
                        "recreate applies to Deployments; {} {} updates by rolling",
                        kind, object["metadata"]["name"]
                    ),
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse_with_defaults_and_name_bad_fields() {
        assert_eq!(Strategy::parse("").unwrap(), Strategy::default());
        assert_eq!(Strategy::parse(r#"{"type": "recreate"}"#).unwrap(), Strategy::Recreate);
        let rolling = Strategy::parse(r#"{"type": "rolling", "max_surge": 1, "max_unavailable": "0%"}"#).unwrap();
        assert_eq!(
            rolling,
            Strategy::Rolling {
                max_surge: IntOrPercent::Count(1),
                max_unavailable: IntOrPercent::Percent("0%".into())
            }
        );
        assert_eq!(
            Strategy::parse(r#"{"type": "rolling", "max_surge": "lots"}"#)
                .unwrap_err()
                .field(),
            Some("strategy.max_surge")
        );
        assert_eq!(
            Strategy::parse(r#"{"type": "rolling", "max_surge": 0, "max_unavailable": 0}"#)
                .unwrap_err()
                .field(),
            Some("strategy.max_unavailable")
        );
        assert_eq!(
            Strategy::parse(r#"{"type": "sideways"}"#).unwrap_err().field(),
            Some("strategy.type")
        );
    }

    #[test]
    fn slotted_strategies_parse_with_defaults_and_name_bad_fields() {
        assert_eq!(
            Strategy::parse(r#"{"type": "blue-green"}"#).unwrap(),
            Strategy::BlueGreen
        );
        assert_eq!(
            Strategy::parse(r#"{"type": "canary"}"#).unwrap(),
            Strategy::Canary {
                steps: vec![5, 25, 50, 100],
                pause_seconds: 0,
                pause: false
            }
        );
        assert_eq!(
            Strategy::parse(r#"{"type": "canary", "steps": [10, 100], "pause": true}"#).unwrap(),
            Strategy::Canary {
                steps: vec![10, 100],
                pause_seconds: 0,
                pause: true
            }
        );
        assert_eq!(
            Strategy::parse(r#"{"type": "canary", "steps": [50, 20]}"#)
                .unwrap_err()
                .field(),
            Some("strategy.steps")
        );
        assert_eq!(
            Strategy::parse(r#"{"type": "canary", "steps": [0, 100]}"#)
                .unwrap_err()
                .field(),
            Some("strategy.steps")
        );
        assert_eq!(
            Strategy::parse(r#"{"type": "canary", "steps": [101]}"#)
                .unwrap_err()
                .field(),
            Some("strategy.steps")
        );
        assert_eq!(
            Strategy::parse(r#"{"type": "canary", "pause_seconds": 100000}"#)
                .unwrap_err()
                .field(),
            Some("strategy.pause_seconds")
        );
        let ab = Strategy::parse(r#"{"type": "ab", "match": {"cookie": {"name": "variant", "value": "b"}}}"#).unwrap();
        assert_eq!(
            ab,
            Strategy::AB {
                matches: RequestMatch::Cookie(NameValue {
                    name: "variant".into(),
                    value: "b".into()
                })
            }
        );
        assert_eq!(
            Strategy::parse(r#"{"type": "ab", "match": {"header": {"name": "x version", "value": "b"}}}"#)
                .unwrap_err()
                .field(),
            Some("strategy.match.header.name")
        );
        assert_eq!(
            Strategy::parse(r#"{"type": "ab", "match": {"cookie": {"name": "v", "value": "a;b"}}}"#)
                .unwrap_err()
                .field(),
            Some("strategy.match.cookie.value")
        );
        assert!(
            Strategy::parse(r#"{"type": "ab", "match": {"path": {"name": "v", "value": "b"}}}"#)
                .unwrap_err()
                .field()
                .unwrap()
                .starts_with("strategy"),
            "an unknown match kind is refused"
        );
        assert_eq!(Strategy::parse(r#"{"type": "shadow"}"#).unwrap(), Strategy::Shadow);
        let round = Strategy::parse(&serde_json::to_string(&ab).unwrap()).unwrap();
        assert_eq!(round, ab, "stored strategies read back");
        assert!(
            Strategy::Shadow.routed()
                && !Strategy::BlueGreen.routed()
                && Strategy::BlueGreen.slotted()
                && !Strategy::Recreate.slotted()
        );
    }

    #[test]
    fn gray_strategies_parse_with_defaults_and_name_bad_fields() {
        let gray = Strategy::parse(r#"{"type": "gray"}"#).unwrap();
        assert_eq!(
            gray,
            Strategy::Gray {
                by: GrayBy::Cluster,
                order: vec![],
                pause: GrayPause::Seconds(0),
                deadline_seconds: None
            }
        );
        let manual = Strategy::parse(r#"{"type": "gray", "by": "cluster", "order": ["dc2-dr", "dc1-prod"], "pause": "manual", "deadline_seconds": 60}"#).unwrap();
        assert_eq!(
            manual,
            Strategy::Gray {
                by: GrayBy::Cluster,
                order: vec!["dc2-dr".into(), "dc1-prod".into()],
                pause: GrayPause::Manual,
                deadline_seconds: Some(60)
            }
        );
        assert_eq!(
            Strategy::parse(&serde_json::to_string(&manual).unwrap()).unwrap(),
            manual,
            "stored strategies read back"
        );
        let by_partition = Strategy::parse(
            r#"{"type": "gray", "by": "partition", "order": ["0190e5a4-0000-7000-8000-000000000001"], "pause": 5}"#,
        )
        .unwrap();
        assert!(matches!(
            by_partition,
            Strategy::Gray {
                by: GrayBy::Partition,
                pause: GrayPause::Seconds(5),
                ..
            }
        ));
        assert_eq!(
            Strategy::parse(r#"{"type": "gray", "pause": "later"}"#)
                .unwrap_err()
                .field(),
            Some("strategy.pause")
        );
        assert_eq!(
            Strategy::parse(r#"{"type": "gray", "pause": 100000}"#)
                .unwrap_err()
                .field(),
            Some("strategy.pause")
        );
        assert_eq!(
            Strategy::parse(r#"{"type": "gray", "by": "zone"}"#)
                .unwrap_err()
                .field(),
            Some("strategy.by")
        );
        assert_eq!(
            Strategy::parse(r#"{"type": "gray", "by": "partition", "order": ["dc1"]}"#)
                .unwrap_err()
                .field(),
            Some("strategy.order[0]")
        );
        assert_eq!(
            Strategy::parse(r#"{"type": "gray", "order": ["a", "a"]}"#)
                .unwrap_err()
                .field(),
            Some("strategy.order[1]")
        );
        assert_eq!(
            Strategy::parse(r#"{"type": "gray", "deadline_seconds": 0}"#)
                .unwrap_err()
                .field(),
            Some("strategy.deadline_seconds")
        );
        assert!(!gray.slotted() && !gray.routed() && gray.gray());
        let mut deployment = json!({"kind": "Deployment", "metadata": {"name": "web"}, "spec": {}});
        gray.apply_to(&mut deployment).unwrap();
        assert_eq!(
            deployment["spec"]["strategy"]["type"], "RollingUpdate",
            "inside a cluster a wave rolls"
        );
    }

    #[test]
    fn under_a_slotted_strategy_a_stateful_set_or_daemon_set_rolls() {
        for kind in ["StatefulSet", "DaemonSet"] {
            for strategy in [Strategy::BlueGreen, Strategy::parse(r#"{"type": "canary"}"#).unwrap()] {
                let mut set = json!({"kind": kind, "metadata": {"name": "db"}, "spec": {}});
                strategy.apply_to(&mut set).unwrap();
                assert_eq!(set["spec"]["updateStrategy"]["type"], "RollingUpdate", "{kind}");
            }
        }
        let mut deployment = json!({"kind": "Deployment", "metadata": {"name": "web"}, "spec": {}});
        Strategy::Shadow.apply_to(&mut deployment).unwrap();
        assert_eq!(
            deployment["spec"].get("strategy"),
            None,
            "the slot's Deployment keeps Kubernetes' default"
        );
    }

    #[test]
    fn the_strategy_is_written_into_the_workload() {
        let mut deployment = json!({"kind": "Deployment", "metadata": {"name": "web"}, "spec": {}});
        Strategy::parse(r#"{"type": "rolling", "max_surge": 2, "max_unavailable": "10%"}"#)
            .unwrap()
            .apply_to(&mut deployment)
            .unwrap();
        assert_eq!(
            deployment["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": "10%"}})
        );
        Strategy::Recreate.apply_to(&mut deployment).unwrap();
        assert_eq!(deployment["spec"]["strategy"], json!({"type": "Recreate"}));
        let mut set = json!({"kind": "StatefulSet", "metadata": {"name": "db"}, "spec": {}});
        assert_eq!(
            Strategy::Recreate.apply_to(&mut set).unwrap_err().field(),
            Some("strategy.type")
        );
    }
}
