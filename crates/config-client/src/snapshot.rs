//! A configuration as the client holds it: items (files, or key/value sets)
//! with the release of each set it was built from, and what changed between
//! two of them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One item of a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Item {
    /// A whole file (yaml, json, xml, text).
    File(String),
    /// Key/value pairs (a properties item), merged key by key across levels.
    Keys(BTreeMap<String, String>),
}

impl Item {
    /// The item as a file: a file's content, or key/value pairs as a
    /// properties document in key order.
    pub fn render(&self) -> String {
        match self {
            Self::File(content) => content.clone(),
            Self::Keys(keys) => keys.iter().map(|(k, v)| format!("{k}={v}\n")).collect(),
        }
    }
}

/// The release of one config set a snapshot was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRelease {
    /// The set's name: `shop/production`, `common/base`.
    pub origin: String,
    /// Its release number (0 before its first release).
    pub release: u64,
}

/// An effective configuration at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// By item name.
    pub items: BTreeMap<String, Item>,
    /// By config set id: what the client watches, and resumes from.
    pub sets: BTreeMap<String, SetRelease>,
}

/// One key (or whole file) that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The item.
    pub item: String,
    /// The key, for a key/value item; `None` for a whole file.
    pub key: Option<String>,
    /// Before; `None` when added.
    pub old: Option<String>,
    /// After; `None` when removed.
    pub new: Option<String>,
}

impl Change {
    /// `item` or `item#key`, for messages.
    pub fn path(&self) -> String {
        match &self.key {
            Some(key) => format!("{}#{key}", self.item),
            None => self.item.clone(),
        }
    }
}

impl Snapshot {
    /// A key's value in a key/value item.
    pub fn value(&self, item: &str, key: &str) -> Option<&str> {
        match self.items.get(item)? {
            Item::Keys(keys) => keys.get(key).map(String::as_str),
            Item::File(_) => None,
        }
    }

    /// A file item's content.
    pub fn file(&self, item: &str) -> Option<&str> {
        match self.items.get(item)? {
            Item::File(content) => Some(content),
            Item::Keys(_) => None,
        }
    }

    /// The watch position: each set with its release, `<id>:<n>,...`.
    pub(crate) fn position(&self) -> String {
        self.sets
            .iter()
            .map(|(id, s)| format!("{id}:{}", s.release))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// What changed from `self` to `next`, by item then key.
    pub fn changes(&self, next: &Self) -> Vec<Change> {
        let names: BTreeSet<&String> = self.items.keys().chain(next.items.keys()).collect();
        let mut changes = Vec::new();
        for name in names {
            match (self.items.get(name), next.items.get(name)) {
                (Some(Item::Keys(old)), Some(Item::Keys(new))) => {
                    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
                    for key in keys {
                        let (o, n) = (old.get(key), new.get(key));
                        if o != n {
                            changes.push(Change {
                                item: name.clone(),
                                key: Some(key.clone()),
                                old: o.cloned(),
                                new: n.cloned(),
                            });
                        }
                    }
                }
                (old, new) => {
                    if old != new {
                        changes.extend(whole(name, old, new));
                    }
                }
            }
        }
        changes
    }
}

/// Changes for an item added, removed or changing kind: per key for key/value
/// items, else the whole file.
fn whole(name: &str, old: Option<&Item>, new: Option<&Item>) -> Vec<Change> {
    let mut out = Vec::new();
    let mut side = |item: Option<&Item>, is_old: bool| match item {
        Some(Item::Keys(keys)) => {
            for (k, v) in keys {
                out.push(Change {
                    item: name.to_string(),
                    key: Some(k.clone()),
                    old: is_old.then(|| v.clone()),
                    new: (!is_old).then(|| v.clone()),
                });
            }
        }
        Some(Item::File(content)) => out.push(Change {
            item: name.to_string(),
            key: None,
            old: is_old.then(|| content.clone()),
            new: (!is_old).then(|| content.clone()),
        }),
        None => {}
    };
    side(old, true);
    side(new, false);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pairs: &[(&str, &str)]) -> Item {
        Item::Keys(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        )
    }

    fn snapshot(items: &[(&str, Item)]) -> Snapshot {
        Snapshot {
            items: items.iter().map(|(n, i)| ((*n).to_string(), i.clone())).collect(),
            sets: BTreeMap::new(),
        }
    }

    #[test]
    fn changes_name_each_key_with_old_and_new() {
        let before = snapshot(&[
            ("app.properties", keys(&[("a", "1"), ("b", "2")])),
            ("banner.txt", Item::File("hi".into())),
        ]);
        let after = snapshot(&[
            ("app.properties", keys(&[("a", "1"), ("b", "3"), ("c", "4")])),
            ("logback.xml", Item::File("<x/>".into())),
        ]);
        let changes = before.changes(&after);
        let seen: Vec<(String, Option<&str>, Option<&str>)> = changes
            .iter()
            .map(|c| (c.path(), c.old.as_deref(), c.new.as_deref()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("app.properties#b".into(), Some("2"), Some("3")),
                ("app.properties#c".into(), None, Some("4")),
                ("banner.txt".into(), Some("hi"), None),
                ("logback.xml".into(), None, Some("<x/>")),
            ]
        );
        assert!(after.changes(&after).is_empty());
    }

    #[test]
    fn key_value_items_render_as_properties() {
        assert_eq!(keys(&[("b", "2"), ("a", "x=y")]).render(), "a=x=y\nb=2\n");
        assert_eq!(Item::File("raw".into()).render(), "raw");
    }

    #[test]
    fn the_position_lists_every_set_with_its_release() {
        let mut s = Snapshot::default();
        s.sets.insert(
            "s1".into(),
            SetRelease {
                origin: "shop/base".into(),
                release: 3,
            },
        );
        s.sets.insert(
            "s2".into(),
            SetRelease {
                origin: "shop/prod".into(),
                release: 0,
            },
        );
        assert_eq!(s.position(), "s1:3,s2:0");
    }
}
