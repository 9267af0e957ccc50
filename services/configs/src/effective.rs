//! Inheritance and diffs, on plain (opened) items. An application's
//! configuration in an environment and cluster is built from layers, lowest
//! first: each shared set it links (base, environment, cluster), then its own
//! base, environment and cluster sets. A higher layer overrides only what it
//! names: a key of a key/value item, or a whole file. Each resulting entry
//! keeps its origin (the layer that gave it).
//!
//! Pure functions: the store gathers the layers ([`crate::release`]) and
//! masks secrets when answering.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::format::{self, Format};

/// One item with its content in the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainItem {
    /// File name.
    pub name: String,
    /// Its format.
    pub format: Format,
    /// Whether it is secret (shown masked).
    pub secret: bool,
    /// The content.
    pub content: String,
}

impl PlainItem {
    /// Its keys, when it is a key/value item that parses (it was validated on save).
    fn keys(&self) -> Option<BTreeMap<String, String>> {
        if self.format.is_key_value() {
            format::properties(&self.content).ok()
        } else {
            None
        }
    }
}

/// One released level of configuration.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The config set.
    pub set_id: Uuid,
    /// How people name it: `app/production/eu-1`, `common/base`.
    pub origin: String,
    /// The release it is read from.
    pub release: u64,
    /// Its items.
    pub items: Vec<PlainItem>,
}

/// One key or file of the effective configuration and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The item.
    pub item: String,
    /// The key, for a key/value item; `None` for a whole file.
    pub key: Option<String>,
    /// The value (the file's content for a file).
    pub value: String,
    /// Whether the item that gave it is secret.
    pub secret: bool,
    /// The set that gave it.
    pub origin_set: Uuid,
    /// Its name.
    pub origin: String,
    /// Its release.
    pub origin_release: u64,
}

/// Merges layers, lowest first, into entries ordered by item and key.
pub fn merge(layers: &[Layer]) -> Vec<Entry> {
    // item -> (whether it is key/value, key -> entry); `None` key: the file.
    let mut merged: BTreeMap<String, (bool, BTreeMap<Option<String>, Entry>)> = BTreeMap::new();
    for layer in layers {
        for item in &layer.items {
            let entry = |key: Option<String>, value: String| Entry {
                item: item.name.clone(),
                key,
                value,
                secret: item.secret,
                origin_set: layer.set_id,
                origin: layer.origin.clone(),
                origin_release: layer.release,
            };
            match item.keys() {
                Some(keys) => {
                    let slot = merged.entry(item.name.clone()).or_insert((true, BTreeMap::new()));
                    // Keys merge into keys; a file below is replaced whole.
                    if !slot.0 {
                        *slot = (true, BTreeMap::new());
                    }
                    for (k, v) in keys {
                        slot.1.insert(Some(k.clone()), entry(Some(k), v));
                    }
                }
                None => {
                    let file = BTreeMap::from([(None, entry(None, item.content.clone()))]);
                    merged.insert(item.name.clone(), (false, file));
                }
            }
        }
    }
    merged
        .into_values()
        .flat_map(|(_, entries)| entries.into_values())
        .collect()
}

/// How one key or item differs between two releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Only in the later one.
    Added,
    /// Only in the earlier one.
    Removed,
    /// In both, different.
    Changed,
}

impl Change {
    /// The API's word.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Changed => "changed",
        }
    }
}

/// One key's change in a key/value item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// The key.
    pub key: String,
    /// What happened to it.
    pub change: Change,
    /// Its value before (empty when added).
    pub before: String,
    /// Its value after (empty when removed).
    pub after: String,
}

/// One item's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemChange {
    /// The item.
    pub name: String,
    /// What happened to it.
    pub change: Change,
    /// Whether either side is secret (values to be masked).
    pub secret: bool,
    /// Its content before (empty when added).
    pub before: String,
    /// Its content after (empty when removed).
    pub after: String,
    /// Per key, when both sides are key/value items.
    pub keys: Vec<KeyChange>,
}

fn key_changes(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<KeyChange> {
    let mut changes = Vec::new();
    for (key, old) in before {
        match after.get(key) {
            None => changes.push(KeyChange {
                key: key.clone(),
                change: Change::Removed,
                before: old.clone(),
                after: String::new(),
            }),
            Some(new) if new != old => changes.push(KeyChange {
                key: key.clone(),
                change: Change::Changed,
                before: old.clone(),
                after: new.clone(),
            }),
            Some(_) => {}
        }
    }
    for (key, new) in after {
        if !before.contains_key(key) {
            changes.push(KeyChange {
                key: key.clone(),
                change: Change::Added,
                before: String::new(),
                after: new.clone(),
            });
        }
    }
    changes.sort_by(|a, b| a.key.cmp(&b.key));
    changes
}

/// What changed from `before` to `after`, by item name, then key.
pub fn diff(before: &[PlainItem], after: &[PlainItem]) -> Vec<ItemChange> {
    let old: BTreeMap<&str, &PlainItem> = before.iter().map(|i| (i.name.as_str(), i)).collect();
    let new: BTreeMap<&str, &PlainItem> = after.iter().map(|i| (i.name.as_str(), i)).collect();
    let mut names: Vec<&str> = old.keys().chain(new.keys()).copied().collect();
    names.sort_unstable();
    names.dedup();
    let mut changes = Vec::new();
    for name in names {
        let (a, b) = (old.get(name), new.get(name));
        let change = match (a, b) {
            (None, Some(_)) => Change::Added,
            (Some(_), None) => Change::Removed,
            (Some(a), Some(b)) if a.content != b.content || a.format != b.format || a.secret != b.secret => {
                Change::Changed
            }
            _ => continue,
        };
        let keys_of = |i: Option<&&PlainItem>| i.and_then(|i| i.keys());
        let keys = match (keys_of(a), keys_of(b)) {
            (Some(x), Some(y)) => key_changes(&x, &y),
            (Some(x), None) if b.is_none() => key_changes(&x, &BTreeMap::new()),
            (None, Some(y)) if a.is_none() => key_changes(&BTreeMap::new(), &y),
            _ => Vec::new(),
        };
        changes.push(ItemChange {
            name: name.to_string(),
            change,
            secret: a.is_some_and(|i| i.secret) || b.is_some_and(|i| i.secret),
            before: a.map(|i| i.content.clone()).unwrap_or_default(),
            after: b.map(|i| i.content.clone()).unwrap_or_default(),
            keys,
        });
    }
    changes
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn props(name: &str, pairs: &[(&str, &str)]) -> PlainItem {
        PlainItem {
            name: name.into(),
            format: Format::Properties,
            secret: false,
            content: pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect(),
        }
    }

    fn file(name: &str, content: &str) -> PlainItem {
        PlainItem {
            name: name.into(),
            format: Format::Yaml,
            secret: false,
            content: content.into(),
        }
    }

    fn layer(origin: &str, items: Vec<PlainItem>) -> Layer {
        Layer {
            set_id: Uuid::now_v7(),
            origin: origin.into(),
            release: 1,
            items,
        }
    }

    #[test]
    fn an_environment_overrides_only_the_keys_it_names() {
        let base = layer(
            "shop/base",
            vec![
                props("app.properties", &[("a", "1"), ("b", "2")]),
                file("log.yaml", "level: info"),
            ],
        );
        let prod = layer("shop/production", vec![props("app.properties", &[("b", "20")])]);
        let eu = layer("shop/production/eu-1", vec![file("log.yaml", "level: warn")]);
        let got: Vec<(String, Option<String>, String, String)> = merge(&[base, prod, eu])
            .into_iter()
            .map(|e| (e.item, e.key, e.value, e.origin))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "app.properties".into(),
                    Some("a".into()),
                    "1".into(),
                    "shop/base".into()
                ),
                (
                    "app.properties".into(),
                    Some("b".into()),
                    "20".into(),
                    "shop/production".into()
                ),
                (
                    "log.yaml".into(),
                    None,
                    "level: warn".into(),
                    "shop/production/eu-1".into()
                ),
            ]
        );
    }

    #[test]
    fn a_file_replaces_keys_below_it_and_keys_replace_a_file() {
        let got = merge(&[
            layer("a", vec![props("x", &[("k", "1")])]),
            layer("b", vec![file("x", "whole")]),
        ]);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].key.clone(), got[0].value.as_str()), (None, "whole"));
        let got = merge(&[
            layer("a", vec![file("x", "whole")]),
            layer("b", vec![props("x", &[("k", "1")])]),
        ]);
        assert_eq!((got[0].key.as_deref(), got[0].value.as_str()), (Some("k"), "1"));
    }

    #[test]
    fn diffs_go_per_item_and_per_key() {
        let before = vec![
            props("a.properties", &[("x", "1"), ("y", "2")]),
            file("gone.yaml", "a: 1"),
        ];
        let after = vec![
            props("a.properties", &[("x", "1"), ("y", "3"), ("z", "4")]),
            file("new.yaml", "b: 2"),
        ];
        let d = diff(&before, &after);
        let summary: Vec<(&str, &str)> = d.iter().map(|c| (c.name.as_str(), c.change.as_str())).collect();
        assert_eq!(
            summary,
            vec![
                ("a.properties", "changed"),
                ("gone.yaml", "removed"),
                ("new.yaml", "added")
            ]
        );
        let keys: Vec<(&str, &str)> = d[0].keys.iter().map(|k| (k.key.as_str(), k.change.as_str())).collect();
        assert_eq!(keys, vec![("y", "changed"), ("z", "added")]);
        assert!(diff(&after, &after).is_empty());
    }

    /// A layer as the property tests draw it: item index -> key index -> value,
    /// or a whole file.
    #[derive(Debug, Clone)]
    enum Drawn {
        Keys(BTreeMap<u8, u8>),
        File(u8),
    }

    fn drawn_item() -> impl Strategy<Value = Drawn> {
        prop_oneof![
            3 => prop::collection::btree_map(0u8..6, any::<u8>(), 0..5).prop_map(Drawn::Keys),
            1 => any::<u8>().prop_map(Drawn::File),
        ]
    }

    fn drawn_layers() -> impl Strategy<Value = Vec<BTreeMap<u8, Drawn>>> {
        prop::collection::vec(prop::collection::btree_map(0u8..3, drawn_item(), 0..3), 1..6)
    }

    fn build(drawn: &[BTreeMap<u8, Drawn>]) -> Vec<Layer> {
        drawn
            .iter()
            .enumerate()
            .map(|(n, items)| Layer {
                set_id: Uuid::from_u128(n as u128 + 1),
                origin: format!("layer-{n}"),
                release: n as u64 + 1,
                items: items
                    .iter()
                    .map(|(i, d)| match d {
                        Drawn::Keys(keys) => PlainItem {
                            name: format!("item{i}"),
                            format: Format::Properties,
                            secret: false,
                            content: keys.iter().map(|(k, v)| format!("k{k}=v{v}\n")).collect(),
                        },
                        Drawn::File(v) => PlainItem {
                            name: format!("item{i}"),
                            format: Format::Text,
                            secret: false,
                            content: format!("file {v}"),
                        },
                    })
                    .collect(),
            })
            .collect()
    }

    proptest! {
        /// Every entry comes from the highest layer that names it, and every
        /// key the highest layers name since the last whole file is present.
        #[test]
        fn the_highest_layer_that_names_a_key_wins(drawn in drawn_layers()) {
            let layers = build(&drawn);
            let merged = merge(&layers);
            let mut expected: BTreeMap<(String, Option<String>), (String, usize)> = BTreeMap::new();
            for (n, items) in drawn.iter().enumerate() {
                for (i, d) in items {
                    let item = format!("item{i}");
                    match d {
                        Drawn::File(v) => {
                            expected.retain(|(name, _), _| *name != item);
                            expected.insert((item, None), (format!("file {v}"), n));
                        }
                        Drawn::Keys(keys) => {
                            expected.remove(&(item.clone(), None));
                            for (k, v) in keys {
                                expected.insert((item.clone(), Some(format!("k{k}"))), (format!("v{v}"), n));
                            }
                        }
                    }
                }
            }
            let got: BTreeMap<(String, Option<String>), (String, usize)> = merged
                .into_iter()
                .map(|e| ((e.item, e.key), (e.value, e.origin_release as usize - 1)))
                .collect();
            prop_assert_eq!(got, expected);
        }

        /// A diff is empty exactly when nothing changed, and names every item
        /// on one side only as added or removed.
        #[test]
        fn diffs_name_exactly_what_differs(a in drawn_layers(), b in drawn_layers()) {
            let before = build(&a[..1]).remove(0).items;
            let after = build(&b[..1]).remove(0).items;
            let d = diff(&before, &after);
            prop_assert_eq!(d.is_empty(), before == after);
            for change in &d {
                let was = before.iter().any(|i| i.name == change.name);
                let is = after.iter().any(|i| i.name == change.name);
                let expected = match (was, is) {
                    (false, true) => Change::Added,
                    (true, false) => Change::Removed,
                    _ => Change::Changed,
                };
                prop_assert_eq!(&change.change, &expected);
            }
            prop_assert!(diff(&after, &after).is_empty());
        }
    }
}
