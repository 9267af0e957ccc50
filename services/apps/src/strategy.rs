//! How a release replaces the running version inside each cluster:
//! `recreate` (every old pod stops before new ones start) or `rolling`
//! (bounded by max surge / max unavailable). The strategy is written into the
//! workloads themselves, so Kubernetes carries it out in every cluster.

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
}

impl Default for Strategy {
    fn default() -> Self {
        Self::Rolling { max_surge: quarter(), max_unavailable: quarter() }
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
        let value: Value = serde_json::from_str(text).map_err(|e| Error::invalid("strategy", format!("is not JSON: {e}")))?;
        let strategy: Self = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            Error::invalid(if path == "." { "strategy".to_string() } else { format!("strategy.{path}") }, e.into_inner().to_string())
        })?;
        if let Self::Rolling { max_surge, max_unavailable } = &strategy {
            max_surge.check("strategy.max_surge")?;
            max_unavailable.check("strategy.max_unavailable")?;
            if max_surge.is_zero() && max_unavailable.is_zero() {
                return Err(Error::invalid("strategy.max_unavailable", "max_surge and max_unavailable cannot both be zero: the rollout could not move"));
            }
        }
        Ok(strategy)
    }

    /// Writes the strategy into a workload object.
    ///
    /// # Errors
    /// `recreate` asked of a StatefulSet or DaemonSet, which cannot do it.
    pub fn apply_to(&self, object: &mut Value) -> Result<()> {
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let rolling = |s: &IntOrPercent, u: &IntOrPercent| json!({"maxSurge": s, "maxUnavailable": u});
        match (self, kind.as_str()) {
            (Self::Recreate, "Deployment") => object["spec"]["strategy"] = json!({"type": "Recreate"}),
            (Self::Rolling { max_surge, max_unavailable }, "Deployment") => {
                object["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": rolling(max_surge, max_unavailable)});
            }
            (Self::Rolling { max_unavailable, .. }, "StatefulSet") => {
                object["spec"]["updateStrategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable}});
            }
            (Self::Rolling { max_surge, max_unavailable }, "DaemonSet") => {
                object["spec"]["updateStrategy"] = json!({"type": "RollingUpdate", "rollingUpdate": rolling(max_surge, max_unavailable)});
            }
            (Self::Recreate, "StatefulSet" | "DaemonSet") => {
                return Err(Error::invalid("strategy.type", format!("recreate applies to Deployments; {} {} updates by rolling", kind, object["metadata"]["name"])));
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
        assert_eq!(rolling, Strategy::Rolling { max_surge: IntOrPercent::Count(1), max_unavailable: IntOrPercent::Percent("0%".into()) });
        assert_eq!(Strategy::parse(r#"{"type": "rolling", "max_surge": "lots"}"#).unwrap_err().field(), Some("strategy.max_surge"));
        assert_eq!(Strategy::parse(r#"{"type": "rolling", "max_surge": 0, "max_unavailable": 0}"#).unwrap_err().field(), Some("strategy.max_unavailable"));
        assert_eq!(Strategy::parse(r#"{"type": "sideways"}"#).unwrap_err().field(), Some("strategy.type"));
    }

    #[test]
    fn the_strategy_is_written_into_the_workload() {
        let mut deployment = json!({"kind": "Deployment", "metadata": {"name": "web"}, "spec": {}});
        Strategy::parse(r#"{"type": "rolling", "max_surge": 2, "max_unavailable": "10%"}"#).unwrap().apply_to(&mut deployment).unwrap();
        assert_eq!(deployment["spec"]["strategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": "10%"}}));
        Strategy::Recreate.apply_to(&mut deployment).unwrap();
        assert_eq!(deployment["spec"]["strategy"], json!({"type": "Recreate"}));
        let mut set = json!({"kind": "StatefulSet", "metadata": {"name": "db"}, "spec": {}});
        assert_eq!(Strategy::Recreate.apply_to(&mut set).unwrap_err().field(), Some("strategy.type"));
    }
}
