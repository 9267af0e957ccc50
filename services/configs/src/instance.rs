//! Watcher instances: which instance (an id the client chooses, with its
//! labels and address) holds which release of a config set, as Apollo shows
//! "instances using this config". A watch that names its instance records
//! it with the release the watcher says it has; a client re-watches at least
//! every long poll (60 s), so `last_seen` tells live instances from gone ones.

use std::collections::BTreeMap;

use kernel::{Error, Result};
use sqlx::PgPool;
use uuid::Uuid;

/// The longest instance id, label key or value accepted.
const MAX_NAME: usize = 128;
/// The most labels one instance may carry.
const MAX_LABELS: usize = 32;

/// Who watches: an instance id and its labels, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watcher {
    instance: String,
    labels: BTreeMap<String, String>,
    ip: String,
}

/// Whether `raw` is a name made of letters, digits and `._-:/`.
fn is_name(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= MAX_NAME
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/'))
}

/// Labels from `k=v,k=v`.
fn pairs(raw: &str) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| Error::invalid("labels", "must be key=value pairs separated by commas"))?;
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(labels)
}

impl Watcher {
    /// A named watcher, or `None` when the watch names no instance (then
    /// nothing is recorded).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `instance` or `labels`.
    pub fn parse(instance: &str, labels: &str, ip: &str) -> Result<Option<Self>> {
        let labels = pairs(labels)?;
        let labels = &labels;
        let instance = instance.trim();
        if instance.is_empty() {
            if labels.is_empty() {
                return Ok(None);
            }
            return Err(Error::invalid("instance", "is required with labels"));
        }
        if !is_name(instance) {
            return Err(Error::invalid("instance", "must be 1-128 letters, digits or . _ - : /"));
        }
        if labels.len() > MAX_LABELS {
            return Err(Error::invalid("labels", format!("at most {MAX_LABELS}")));
        }
        for (k, v) in labels {
            if !is_name(k) || !(v.is_empty() || is_name(v)) {
                return Err(Error::invalid(
                    "labels",
                    format!("{k:.64}: keys and values must be 1-128 letters, digits or . _ - : /"),
                ));
            }
        }
        Ok(Some(Self {
            instance: instance.to_string(),
            labels: labels.clone(),
            ip: ip.chars().take(64).collect(),
        }))
    }

    /// The instance id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Its labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
}

/// The `instances` table.
#[derive(Clone)]
pub struct Instances {
    pool: PgPool,
}

impl Instances {
    /// Instances in `pool`'s schema.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Records that `watcher` holds `release` of `set` (of `tenant`) now.
    /// The caller must have been allowed to see the set.
    ///
    /// # Errors
    /// The database fails.
    pub async fn record(&self, tenant: Uuid, set: Uuid, watcher: &Watcher, release: i64) -> Result<()> {
        let labels = serde_json::to_value(&watcher.labels).map_err(Error::internal)?;
        sqlx::query!(
            "INSERT INTO instances (tenant_id, config_set_id, instance, labels, ip, release_number, last_seen)
             VALUES ($1, $2, $3, $4, $5, $6, now())
             ON CONFLICT (config_set_id, instance) DO UPDATE
             SET labels = EXCLUDED.labels, ip = EXCLUDED.ip, release_number = EXCLUDED.release_number,
                 last_seen = now()
             WHERE instances.tenant_id = EXCLUDED.tenant_id",
            tenant,
            set,
            watcher.instance,
            labels,
            watcher.ip,
            release,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> String {
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn a_watch_without_an_instance_records_nothing() {
        assert_eq!(Watcher::parse(" ", "", "1.2.3.4").unwrap(), None);
    }

    #[test]
    fn instances_and_labels_are_validated_naming_the_field() {
        let w = Watcher::parse("pod-7", &labels(&[("zone", "a"), ("canary", "true")]), "10.0.0.1")
            .unwrap()
            .unwrap();
        assert_eq!(w.instance(), "pod-7");
        assert_eq!(w.labels().get("zone").map(String::as_str), Some("a"));
        let bad = |i: &str, l: &[(&str, &str)]| match Watcher::parse(i, &labels(l), "") {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(bad("a b", &[]), "instance");
        assert_eq!(bad(&"x".repeat(129), &[]), "instance");
        assert_eq!(bad("", &[("zone", "a")]), "instance");
        assert_eq!(bad("pod", &[("zo ne", "a")]), "labels");
        assert_eq!(bad("pod", &[("zone", "a b")]), "labels");
        assert!(Watcher::parse("pod", "zone", "").is_err());
    }
}
