//! Fault injection for one cluster: what the API endpoint does instead of
//! answering normally. Shared by the in-process handle, the admin HTTP API
//! and the server's accept loop.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// One fault (or none).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "fault", rename_all = "lowercase")]
pub enum Fault {
    /// Normal service.
    #[default]
    #[serde(rename = "recover")]
    Healthy,
    /// The listener is closed: connections are refused; the simulation stops.
    Down,
    /// Connections are accepted and requests never answered.
    Blackhole,
    /// Every request is answered `ms` milliseconds late.
    Slow {
        /// The delay added to every answer.
        ms: u64,
    },
    /// This share (0..=1) of requests fail with 503 or 500.
    Flaky {
        /// The share of requests that fail.
        share: f64,
    },
    /// Like `Down` for clients, but the simulation carries on.
    Partition,
    /// Watch requests fail with 503 and open watches end; every other
    /// request is served, as behind a proxy that does not pass long-lived
    /// streams.
    NoWatch,
    /// `/readyz` fails (500, as when a readiness check such as etcd fails)
    /// while `/livez`, `/healthz` and the API answer normally: a cluster
    /// that is reachable but NotReady.
    #[serde(rename = "notready")]
    NotReady,
}

impl Fault {
    /// Whether the listener is closed under this fault.
    pub fn refuses_connections(self) -> bool {
        matches!(self, Self::Down | Self::Partition)
    }

    /// Whether watches are refused (and open ones ended) under this fault.
    pub fn refuses_watches(self) -> bool {
        self.refuses_connections() || self == Self::NoWatch
    }

    pub(crate) fn delay(self) -> Option<Duration> {
        match self {
            Self::Slow { ms } => Some(Duration::from_millis(ms)),
            _ => None,
        }
    }
}

/// Sets and observes the fault of one cluster. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FaultHandle(watch::Sender<Fault>);

impl Default for FaultHandle {
    fn default() -> Self {
        Self(watch::Sender::new(Fault::Healthy))
    }
}

impl FaultHandle {
    /// Switches to `fault`; [`Fault::Healthy`] recovers.
    pub fn set(&self, fault: Fault) {
        self.0.send_replace(fault);
    }

    /// Back to normal service.
    pub fn recover(&self) {
        self.set(Fault::Healthy);
    }

    /// The current fault.
    pub fn get(&self) -> Fault {
        *self.0.borrow()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Fault> {
        self.0.subscribe()
    }

    /// Resolves once the fault satisfies `pred`.
    pub(crate) async fn until(&self, pred: impl Fn(Fault) -> bool) {
        let mut rx = self.subscribe();
        let _ = rx.wait_for(|f| pred(*f)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_read_from_the_admin_json() {
        let f: Fault = serde_json::from_str(r#"{"fault":"slow","ms":50}"#).unwrap();
        assert_eq!(f, Fault::Slow { ms: 50 });
        let f: Fault = serde_json::from_str(r#"{"fault":"recover"}"#).unwrap();
        assert_eq!(f, Fault::Healthy);
        let f: Fault = serde_json::from_str(r#"{"fault":"flaky","share":0.5}"#).unwrap();
        assert_eq!(f, Fault::Flaky { share: 0.5 });
        let f: Fault = serde_json::from_str(r#"{"fault":"notready"}"#).unwrap();
        assert_eq!(f, Fault::NotReady);
    }
}
