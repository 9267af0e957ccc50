//! The registry's notifications (distribution's `notifications.endpoints`):
//! each push, pull and delete lands once in `registry_events`, keyed by the
//! event's id, since the registry retries a delivery until it gets a 2xx.
//! A tagged manifest push updates the catalog with the image's metadata; a
//! layer push counts against the tenant's storage; a manifest delete marks
//! its tags deleted. What was recorded for the first time is returned, so the
//! gateway writes it to the audit log.

use chrono::{DateTime, Utc};
use kernel::{Error, Result};
use serde::Deserialize;
use uuid::Uuid;

use crate::access::RepositoryName;

/// The envelope the registry posts.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    /// Its events.
    pub events: Vec<Event>,
}

/// One event.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// Unique; the same on a retry.
    pub id: String,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// `push`, `pull`, `delete` or `mount`.
    pub action: String,
    /// What it concerned.
    #[serde(default)]
    pub target: Target,
    /// Who.
    #[serde(default)]
    pub actor: Actor,
}

/// An event's target.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// The manifest's or blob's media type.
    #[serde(default)]
    pub media_type: String,
    /// Bytes.
    #[serde(default)]
    pub size: i64,
    /// Its digest.
    #[serde(default)]
    pub digest: String,
    /// The repository.
    #[serde(default)]
    pub repository: String,
    /// The tag, for tagged manifests.
    #[serde(default)]
    pub tag: String,
}

/// An event's actor: the subject of the token used.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Actor {
    /// The token's `sub`.
    #[serde(default)]
    pub name: String,
}

/// The manifest media types: everything else pushed is a blob.
const MANIFESTS: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
];

impl Event {
    /// Whether it concerns a manifest (rather than a blob).
    pub fn is_manifest(&self) -> bool {
        MANIFESTS.contains(&self.target.media_type.as_str())
            // Deletes carry no media type; the registry deletes only manifests by API.
            || (self.action == "delete" && self.target.media_type.is_empty())
    }
}

/// Parses a posted envelope.
///
/// # Errors
/// Not an envelope (names `envelope`).
pub fn parse(body: &[u8]) -> Result<Vec<Event>> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| Error::invalid("envelope", format!("not a registry notification: {e}")))?;
    for e in &envelope.events {
        if e.id.is_empty() || e.id.len() > 200 {
            return Err(Error::invalid("envelope", "an event without a usable id"));
        }
    }
    Ok(envelope.events)
}

/// What one first-time event amounts to, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The event id.
    pub id: String,
    /// push, pull, delete.
    pub action: String,
    /// The repository.
    pub repository: String,
    /// The tag, if any.
    pub tag: String,
    /// The digest.
    pub digest: String,
    /// Who.
    pub actor: String,
    /// The repository's tenant, when it is a platform repository.
    pub tenant: Option<Uuid>,
}

/// The repository's tenant/project names, if it is laid out as the platform's.
pub fn owner_names(repository: &str) -> Option<(String, String)> {
    RepositoryName::parse("repository", repository)
        .ok()
        .map(|r| (r.tenant().to_string(), r.project().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_parses_and_manifests_are_told_from_blobs() {
        let body = br#"{"events":[
          {"id":"e1","timestamp":"2026-12-07T01:00:00.5Z","action":"push",
           "target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":500,
                     "digest":"sha256:ab","length":500,"repository":"acme/shop/web","tag":"1.0"},
           "actor":{"name":"robot$acme+shop+ci"},"request":{"method":"PUT"}},
          {"id":"e2","timestamp":"2026-12-07T01:00:00Z","action":"push",
           "target":{"mediaType":"application/octet-stream","size":9,"digest":"sha256:cd","repository":"acme/shop/web"}}
        ]}"#;
        let events = parse(body).unwrap();
        assert_eq!(events.len(), 2);
        assert!(events[0].is_manifest());
        assert_eq!(events[0].target.tag, "1.0");
        assert_eq!(events[0].actor.name, "robot$acme+shop+ci");
        assert!(!events[1].is_manifest());
        assert_eq!(parse(b"{}").unwrap_err().field(), Some("envelope"));
        assert_eq!(
            owner_names("acme/shop/web"),
            Some(("acme".to_string(), "shop".to_string()))
        );
        assert_eq!(owner_names("library/busybox"), None);
    }
}
