//! A config as a member cluster gets it. The apps service renders an
//! application's ConfigMaps and Secrets (it knows the applications, their
//! templates' `config_refs` and their federation bindings); it asks here for
//! each referenced config's effective content in the application's
//! environment and a cluster. Plain items come in the clear; secret items are
//! sealed with the platform's delivery key ([`kernel::seal`]) so that only
//! federation, writing the Secret into the cluster, opens them.
//!
//! Each item becomes one key: a file item its content, a key/value item its
//! effective keys as `key=value` lines (so keys inherited from lower levels
//! are there). An item with any secret layer is secret.

use std::collections::BTreeMap;

use kernel::caller::Caller;
use kernel::name::DnsLabel;
use kernel::seal::DeliveryKey;
use kernel::{Error, Result, id};

use crate::effective::Entry;
use crate::gray::GrayTarget;
use crate::release::Releases;

/// One config rendered for a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Plain items: name -> content.
    pub plain: BTreeMap<String, String>,
    /// Secret items: name -> sealed content.
    pub sealed: BTreeMap<String, String>,
    /// Keyed checksum of the content in the clear.
    pub checksum: String,
    /// Clusters whose content may differ (they have sets of their own).
    pub clusters: Vec<String>,
    /// At the environment level: where gray releases in flight are pinned.
    pub gray_targets: Vec<GrayTarget>,
    /// The releases read, lowest first.
    pub releases: Vec<String>,
}

/// What a delivery is asked for, as the caller gave it (parsed by [`render`]).
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    /// The tenant's id.
    pub tenant: &'a str,
    /// The config set's name.
    pub config: &'a str,
    /// The environment.
    pub environment: &'a str,
    /// A cluster; empty: the environment level.
    pub cluster: &'a str,
    /// With a cluster: gray releases in flight that target it stand in.
    pub gray: bool,
}

/// Items in the clear, split into plain and secret ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Items {
    /// Plain items: name -> content.
    pub plain: BTreeMap<String, String>,
    /// Secret items: name -> content in the clear.
    pub secret: BTreeMap<String, String>,
}

/// Folds effective entries into one key per item.
pub fn items(entries: &[Entry]) -> Items {
    // item -> (secret, content)
    let mut by_item: BTreeMap<&str, (bool, String)> = BTreeMap::new();
    for e in entries {
        let slot = by_item.entry(e.item.as_str()).or_default();
        slot.0 |= e.secret;
        match &e.key {
            Some(key) => {
                slot.1.push_str(key);
                slot.1.push('=');
                slot.1.push_str(&escape(&e.value));
                slot.1.push('\n');
            }
            None => slot.1 = e.value.clone(),
        }
    }
    let mut out = Items::default();
    for (name, (secret, content)) in by_item {
        let target = if secret { &mut out.secret } else { &mut out.plain };
        target.insert(name.to_string(), content);
    }
    out
}

/// A value written back as a properties line (line breaks escaped).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Renders `config` of `tenant` for `environment` and `cluster` (empty: the
/// environment level). Platform services only.
///
/// **Gray in clusters.** A gray release with cluster targets is delivered
/// like a cluster level: the environment level lists its targets and, asked
/// for a target's cluster with `gray`, the gray release stands in for its
/// set's latest full release. Apps puts that content on the target only (a
/// per-cluster or per-partition patch), every other cluster keeps the full
/// release; promoting makes it the full release everywhere, abandoning
/// drops the targets, and both end in one content for all.
///
/// # Errors
/// Not a platform service; a malformed field (named); NotFound when the
/// tenant has no config set of that name (another tenant's is not visible).
pub async fn render(releases: &Releases, key: &DeliveryKey, caller: &Caller, asked: Asked<'_>) -> Result<Delivery> {
    let Asked {
        tenant,
        config,
        environment,
        cluster,
        gray,
    } = asked;
    caller.require_platform_admin()?;
    let tenant = id::parse_id("tenant_id", tenant)?;
    let config = DnsLabel::parse("config", config.trim())?;
    let environment = DnsLabel::parse("environment", environment.trim())?;
    let cluster = match cluster.trim() {
        "" => String::new(),
        raw => DnsLabel::parse("cluster", raw)?.to_string(),
    };
    let exists = sqlx::query_scalar!(
        "SELECT EXISTS (SELECT 1 FROM config_sets WHERE tenant_id = $1 AND application = $2)",
        tenant,
        config.as_str(),
    )
    .fetch_one(releases.pool())
    .await?
    .unwrap_or(false);
    if !exists {
        return Err(Error::not_found("config", config.as_str()));
    }
    let gray_in = (gray && !cluster.is_empty()).then_some(cluster.as_str());
    let effective = releases
        .merged(tenant, config.as_str(), environment.as_str(), &cluster, gray_in)
        .await?;
    let items = items(&effective.entries);
    let clear = serde_json::to_vec(&(&items.plain, &items.secret)).map_err(Error::internal)?;
    let tenant_text = tenant.to_string();
    let names = releases.layer_names(tenant, config.as_str()).await?;
    let clusters = sqlx::query_scalar!(
        "SELECT DISTINCT cluster FROM config_sets
         WHERE tenant_id = $1 AND application = ANY($2) AND environment = $3 AND cluster <> '' AND latest_release > 0
         ORDER BY cluster",
        tenant,
        &names,
        environment.as_str(),
    )
    .fetch_all(releases.pool())
    .await?;
    let gray_targets = if cluster.is_empty() {
        releases.gray_targets_in(tenant, &names, environment.as_str()).await?
    } else {
        Vec::new()
    };
    Ok(Delivery {
        checksum: key.checksum(&clear),
        sealed: items
            .secret
            .iter()
            .map(|(name, content)| (name.clone(), key.seal(&tenant_text, content.as_bytes())))
            .collect(),
        plain: items.plain,
        clusters,
        gray_targets,
        releases: effective.releases,
    })
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn entry(item: &str, key: Option<&str>, value: &str, secret: bool) -> Entry {
        Entry {
            item: item.into(),
            key: key.map(Into::into),
            value: value.into(),
            secret,
            origin_set: Uuid::nil(),
            origin: "shop/base".into(),
            origin_release: 1,
        }
    }

    #[test]
    fn key_value_items_become_lines_and_secret_items_stand_apart() {
        let got = items(&[
            entry("app.properties", Some("a"), "1", false),
            entry("app.properties", Some("b"), "two\nlines", false),
            entry("db.properties", Some("password"), "hunter2", true),
            entry("log.yaml", None, "level: info", false),
        ]);
        assert_eq!(got.plain["app.properties"], "a=1\nb=two\\nlines\n");
        assert_eq!(got.plain["log.yaml"], "level: info");
        assert_eq!(got.secret["db.properties"], "password=hunter2\n");
        assert!(!got.plain.contains_key("db.properties"));
    }
}
