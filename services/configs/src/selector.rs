//! Labels a watcher registers (`zone=a,canary=true`) and the label selectors
//! a gray release is published with, in Kubernetes' syntax: equality
//! (`k=v`, `k==v`, `k!=v`), sets (`k in (a,b)`, `k notin (a,b)`) and
//! existence (`k`, `!k`), all of which must hold. Parsed once into types, so
//! what is stored and compared is always well formed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kernel::{Error, Result};

/// Longest label key (a DNS subdomain prefix and a name, as Kubernetes allows).
const MAX_KEY: usize = 253;
/// Longest label value.
const MAX_VALUE: usize = 63;
/// Most labels a watcher may register, and most requirements in a selector.
const MAX_ENTRIES: usize = 32;

fn key(field: &str, raw: &str) -> Result<String> {
    let raw = raw.trim();
    let ok = !raw.is_empty()
        && raw.len() <= MAX_KEY
        && raw.starts_with(|c: char| c.is_ascii_alphanumeric())
        && raw.ends_with(|c: char| c.is_ascii_alphanumeric())
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(raw.to_string())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "label key {raw:?} must be 1 to {MAX_KEY} letters, digits, '-', '_', '.' or '/', starting and ending alphanumeric"
            ),
        ))
    }
}

fn value(field: &str, raw: &str) -> Result<String> {
    let raw = raw.trim();
    let ok = raw.len() <= MAX_VALUE
        && (raw.is_empty()
            || (raw.starts_with(|c: char| c.is_ascii_alphanumeric())
                && raw.ends_with(|c: char| c.is_ascii_alphanumeric())
                && raw
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))));
    if ok {
        Ok(raw.to_string())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "label value {raw:?} must be at most {MAX_VALUE} letters, digits, '-', '_' or '.', starting and ending alphanumeric"
            ),
        ))
    }
}

/// A watcher's labels: key -> value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    /// Parses `k=v,k=v` (empty: no labels).
    ///
    /// # Errors
    /// A malformed or repeated key, a malformed value, or too many labels; named `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let mut labels = BTreeMap::new();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| Error::invalid(field, format!("{pair:?} is not key=value")))?;
            let k = key(field, k)?;
            if labels.insert(k.clone(), value(field, v)?).is_some() {
                return Err(Error::invalid(field, format!("label {k:?} is given twice")));
            }
        }
        if labels.len() > MAX_ENTRIES {
            return Err(Error::invalid(field, format!("at most {MAX_ENTRIES} labels")));
        }
        Ok(Self(labels))
    }

    /// Labels from pairs already stored (each checked again).
    ///
    /// # Errors
    /// A malformed key or value.
    pub fn from_pairs<'a>(field: &str, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut labels = BTreeMap::new();
        for (k, v) in pairs {
            labels.insert(key(field, k)?, value(field, v)?);
        }
        if labels.len() > MAX_ENTRIES {
            return Err(Error::invalid(field, format!("at most {MAX_ENTRIES} labels")));
        }
        Ok(Self(labels))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The labels, by key.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&pairs.join(","))
    }
}

/// One condition of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    /// The key has one of the values (`k=v`, `k in (a,b)`).
    In(String, BTreeSet<String>),
    /// The key is absent or has none of the values (`k!=v`, `k notin (a,b)`).
    NotIn(String, BTreeSet<String>),
    /// The key is present.
    Exists(String),
    /// The key is absent.
    Absent(String),
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        match self {
            Self::In(k, values) => labels.get(k).is_some_and(|v| values.contains(v)),
            Self::NotIn(k, values) => labels.get(k).is_none_or(|v| !values.contains(v)),
            Self::Exists(k) => labels.get(k).is_some(),
            Self::Absent(k) => labels.get(k).is_none(),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |values: &BTreeSet<String>| values.iter().cloned().collect::<Vec<_>>().join(",");
        match self {
            Self::In(k, values) if values.len() == 1 => write!(f, "{k}={}", set(values)),
            Self::In(k, values) => write!(f, "{k} in ({})", set(values)),
            Self::NotIn(k, values) if values.len() == 1 => write!(f, "{k}!={}", set(values)),
            Self::NotIn(k, values) => write!(f, "{k} notin ({})", set(values)),
            Self::Exists(k) => f.write_str(k),
            Self::Absent(k) => write!(f, "!{k}"),
        }
    }
}

/// A label selector: every requirement must hold. The empty selector
/// matches no watcher (a gray release aimed only at clusters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

/// Splits on commas outside parentheses.
fn requirements(raw: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0_i32, 0);
    for (i, c) in raw.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&raw[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&raw[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty()).collect()
}

fn value_set(field: &str, raw: &str) -> Result<BTreeSet<String>> {
    let inner = raw
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| Error::invalid(field, format!("{raw:?}: a set is written (a,b)")))?;
    let values = inner
        .split(',')
        .map(|v| value(field, v))
        .collect::<Result<BTreeSet<_>>>()?;
    if values.is_empty() || values.iter().all(String::is_empty) && inner.trim().is_empty() {
        return Err(Error::invalid(field, "a set needs at least one value"));
    }
    Ok(values)
}

fn requirement(field: &str, raw: &str) -> Result<Requirement> {
    if let Some(k) = raw.strip_prefix('!').filter(|r| !r.contains('=')) {
        return Ok(Requirement::Absent(key(field, k)?));
    }
    if let Some((k, v)) = raw.split_once("!=") {
        return Ok(Requirement::NotIn(key(field, k)?, BTreeSet::from([value(field, v)?])));
    }
    if let Some((k, v)) = raw.split_once("==").or_else(|| raw.split_once('=')) {
        return Ok(Requirement::In(key(field, k)?, BTreeSet::from([value(field, v)?])));
    }
    let words: Vec<&str> = raw.splitn(3, char::is_whitespace).collect();
    match words.as_slice() {
        [k] => Ok(Requirement::Exists(key(field, k)?)),
        [k, op, set] if op.eq_ignore_ascii_case("in") => Ok(Requirement::In(key(field, k)?, value_set(field, set)?)),
        [k, op, set] if op.eq_ignore_ascii_case("notin") => {
            Ok(Requirement::NotIn(key(field, k)?, value_set(field, set)?))
        }
        _ => Err(Error::invalid(
            field,
            format!("{raw:?} is not k=v, k!=v, k in (a,b), k notin (a,b), k or !k"),
        )),
    }
}

impl Selector {
    /// Parses a selector such as `zone=a,canary=true` or `zone in (a,b),!legacy`.
    ///
    /// # Errors
    /// A malformed requirement, key or value, or too many; named `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let parts = requirements(raw);
        if parts.len() > MAX_ENTRIES {
            return Err(Error::invalid(field, format!("at most {MAX_ENTRIES} requirements")));
        }
        Ok(Self(
            parts
                .into_iter()
                .map(|r| requirement(field, r))
                .collect::<Result<_>>()?,
        ))
    }

    /// Whether a watcher with `labels` is selected.
    pub fn matches(&self, labels: &Labels) -> bool {
        !self.0.is_empty() && self.0.iter().all(|r| r.matches(labels))
    }

    /// Whether it has no requirement (and so selects no watcher).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(raw: &str) -> Labels {
        Labels::parse("labels", raw).unwrap()
    }

    fn selects(selector: &str, raw: &str) -> bool {
        Selector::parse("selector", selector).unwrap().matches(&labels(raw))
    }

    #[test]
    fn equality_requirements_must_all_hold() {
        assert!(selects("zone=a,canary=true", "zone=a,canary=true,team=x"));
        assert!(!selects("zone=a,canary=true", "zone=a"));
        assert!(!selects("zone=a,canary=true", "zone=b,canary=true"));
        assert!(selects("zone==a", "zone=a"));
        assert!(selects("zone!=a", "zone=b"));
        assert!(selects("zone!=a", "canary=true"));
        assert!(!selects("zone!=a", "zone=a"));
    }

    #[test]
    fn set_and_existence_requirements_follow_kubernetes() {
        assert!(selects("zone in (a, b)", "zone=b"));
        assert!(!selects("zone in (a,b)", "zone=c"));
        assert!(!selects("zone in (a,b)", ""));
        assert!(selects("zone notin (a,b)", "zone=c"));
        assert!(selects("zone notin (a,b)", ""));
        assert!(selects("canary", "canary=true"));
        assert!(!selects("canary", "zone=a"));
        assert!(selects("!legacy,zone in (a,b)", "zone=a"));
        assert!(!selects("!legacy", "legacy=yes"));
    }

    #[test]
    fn the_empty_selector_selects_no_watcher() {
        assert!(!selects("", "zone=a"));
        assert!(Selector::parse("selector", " , ").unwrap().is_empty());
    }

    #[test]
    fn a_selector_prints_in_a_form_that_parses_back_the_same() {
        for raw in ["zone=a,canary=true", "zone in (a,b),!legacy,tier", "x notin (1,2),y!=z"] {
            let parsed = Selector::parse("selector", raw).unwrap();
            assert_eq!(
                Selector::parse("selector", &parsed.to_string()).unwrap(),
                parsed,
                "{raw}"
            );
        }
        assert_eq!(
            Selector::parse("s", "zone in (b,a)").unwrap().to_string(),
            "zone in (a,b)"
        );
    }

    #[test]
    fn malformed_input_names_the_field() {
        for raw in ["zone=(a", "zone in a", "=a", "zone=a b", "zone in ()", "-x=1"] {
            let e = Selector::parse("selector", raw).unwrap_err();
            assert!(
                matches!(e, Error::InvalidArgument { ref field, .. } if field == "selector"),
                "{raw}: {e:?}"
            );
        }
        for raw in ["zone", "zone=a,zone=b", "k=v v"] {
            let e = Labels::parse("labels", raw).unwrap_err();
            assert!(
                matches!(e, Error::InvalidArgument { ref field, .. } if field == "labels"),
                "{raw}: {e:?}"
            );
        }
        assert_eq!(labels("b=2, a=1").to_string(), "a=1,b=2");
    }
}
