//! Version constraints as Helm reads them (Masterminds/semver v3), for
//! `semverCompare` and chart `kubeVersion`s: comparisons with or without a
//! space after the operator (`>= 1.2.3`, `=>`, `=<`, `!=`), `,` or spaces for
//! "and", `||` for "or", hyphen ranges (`1.2 - 1.4`), `x`/`X`/`*` wildcards
//! and missing parts (`1.2.x`, `1.2`), `~`/`~>` (same minor) and `^` (same
//! left-most non-zero part).
//!
//! As in Helm, a pre-release version meets a comparison only when that
//! comparison names a pre-release itself (`>=1.19-0` admits `1.20.0-rc.1`).

use semver::{Prerelease, Version};

/// A version in a constraint: parts left out or written as a wildcard are
/// `None` (`1.2.x` and `1.2` both have no patch).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Partial {
    major: Option<u64>,
    minor: Option<u64>,
    patch: Option<u64>,
    pre: Prerelease,
}

impl Partial {
    fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim().trim_start_matches(['v', 'V']);
        let raw = raw.split_once('+').map_or(raw, |(core, _)| core);
        let (core, pre) = raw.split_once('-').map_or((raw, ""), |(c, p)| (c, p));
        let pre = Prerelease::new(pre).ok()?;
        let mut parts = core.split('.');
        let mut next = || -> Option<Option<u64>> {
            match parts.next() {
                None | Some("x" | "X" | "*") => Some(None),
                Some(n) => n.parse().ok().map(Some),
            }
        };
        let (major, minor, patch) = (next()?, next()?, next()?);
        if parts.next().is_some() || (major.is_none() && core.is_empty()) {
            return None;
        }
        // A wildcard swallows what follows it (`1.x.3` is `1.x`).
        let minor = major.and(minor);
        let patch = minor.and(patch);
        Some(Self {
            major,
            minor,
            patch,
            pre,
        })
    }

    /// The lowest version it stands for (wildcards as 0).
    fn floor(&self) -> Version {
        Version {
            major: self.major.unwrap_or(0),
            minor: self.minor.unwrap_or(0),
            patch: self.patch.unwrap_or(0),
            pre: self.pre.clone(),
            build: semver::BuildMetadata::EMPTY,
        }
    }

    /// The first version above every one it stands for (`1.2.x` -> `1.3.0`),
    /// `None` when unbounded (`*`).
    fn ceiling(&self) -> Option<Version> {
        match (self.major, self.minor, self.patch) {
            (None, _, _) => None,
            (Some(major), None, _) => Some(Version::new(major + 1, 0, 0)),
            (Some(major), Some(minor), None) => Some(Version::new(major, minor + 1, 0)),
            (Some(major), Some(minor), Some(patch)) => Some(Version::new(major, minor, patch + 1)),
        }
    }

    /// Whether a part is a wildcard (`1.2` and `1.2.x` stand for a range).
    fn is_range(&self) -> bool {
        self.patch.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Tilde,
    Caret,
}

/// Longest first, so `>=` is not read as `>` then `=`.
const OPS: [(&str, Op); 13] = [
    ("!=", Op::Ne),
    (">=", Op::Ge),
    ("=>", Op::Ge),
    ("<=", Op::Le),
    ("=<", Op::Le),
    ("~>", Op::Tilde),
    ("==", Op::Eq),
    (">", Op::Gt),
    ("<", Op::Lt),
    ("=", Op::Eq),
    ("~", Op::Tilde),
    ("^", Op::Caret),
    ("", Op::Eq),
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Comparison {
    op: Op,
    version: Partial,
}

impl Comparison {
    fn matches(&self, v: &Version) -> bool {
        let w = &self.version;
        if !v.pre.is_empty() && w.pre.is_empty() {
            return false;
        }
        let v = &Version {
            build: semver::BuildMetadata::EMPTY,
            ..v.clone()
        };
        let floor = w.floor();
        let below_ceiling = |v: &Version| w.ceiling().is_none_or(|c| *v < c);
        match self.op {
            Op::Eq if w.is_range() => *v >= floor && below_ceiling(v),
            Op::Eq => *v == floor,
            Op::Ne if w.is_range() => !(*v >= floor && below_ceiling(v)),
            Op::Ne => *v != floor,
            Op::Gt if w.is_range() => w.ceiling().is_some_and(|c| *v >= c),
            Op::Gt => *v > floor,
            Op::Ge => *v >= floor,
            Op::Lt => *v < floor,
            Op::Le if w.is_range() => below_ceiling(v),
            Op::Le => *v <= floor,
            Op::Tilde => {
                let upper = match (w.major, w.minor) {
                    (None, _) => None,
                    (Some(major), None) => Some(Version::new(major + 1, 0, 0)),
                    (Some(major), Some(minor)) => Some(Version::new(major, minor + 1, 0)),
                };
                *v >= floor && upper.is_none_or(|u| *v < u)
            }
            Op::Caret => {
                let upper = match (w.major, w.minor, w.patch) {
                    (None, _, _) => None,
                    (Some(major), None, _) => Some(Version::new(major + 1, 0, 0)),
                    (Some(0), Some(minor), None) => Some(Version::new(0, minor + 1, 0)),
                    (Some(0), Some(0), Some(patch)) => Some(Version::new(0, 0, patch + 1)),
                    (Some(0), Some(minor), Some(_)) => Some(Version::new(0, minor + 1, 0)),
                    (Some(major), Some(_), _) => Some(Version::new(major + 1, 0, 0)),
                };
                *v >= floor && upper.is_none_or(|u| *v < u)
            }
        }
    }
}

/// A parsed constraint: alternatives (`||`), each a list of comparisons
/// that must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint(Vec<Vec<Comparison>>);

impl Constraint {
    /// Reads a constraint; `None` when it is not one.
    pub fn parse(raw: &str) -> Option<Self> {
        raw.split("||").map(alternative).collect::<Option<Vec<_>>>().map(Self)
    }

    /// Whether `version` meets it.
    pub fn matches(&self, version: &Version) -> bool {
        self.0.iter().any(|all| all.iter().all(|c| c.matches(version)))
    }
}

/// One `||` alternative: tokens split on `,` and spaces, an operator alone
/// joined to the version after it, `a - b` read as `>= a, <= b`.
fn alternative(raw: &str) -> Option<Vec<Comparison>> {
    let tokens: Vec<&str> = raw.split([',', ' ', '\t']).filter(|t| !t.is_empty()).collect();
    if tokens.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens.get(i + 1) == Some(&"-") {
            let (from, to) = (tokens[i], *tokens.get(i + 2)?);
            out.push(Comparison {
                op: Op::Ge,
                version: Partial::parse(from)?,
            });
            out.push(Comparison {
                op: Op::Le,
                version: Partial::parse(to)?,
            });
            i += 3;
            continue;
        }
        let (text, op) = OPS
            .iter()
            .find_map(|(sym, op)| tokens[i].strip_prefix(sym).map(|r| (r, *op)))?;
        let text = if text.is_empty() {
            i += 1;
            *tokens.get(i)?
        } else {
            text
        };
        out.push(Comparison {
            op,
            version: Partial::parse(text)?,
        });
        i += 1;
    }
    Some(out)
}

/// A version as Helm reads one: an optional `v`, missing parts 0
/// (`1.19` is `1.19.0`), build metadata kept but never compared.
pub fn loose_version(raw: &str) -> Option<Version> {
    let p = Partial::parse(raw)?;
    let build = raw
        .split_once('+')
        .map_or(Ok(semver::BuildMetadata::EMPTY), |(_, b)| semver::BuildMetadata::new(b));
    p.major?;
    Some(Version {
        build: build.ok()?,
        ..p.floor()
    })
}

/// Whether `version` meets `constraint`; `None` when either does not parse.
pub fn satisfies(constraint: &str, version: &str) -> Option<bool> {
    Some(Constraint::parse(constraint)?.matches(&loose_version(version)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_read_as_helm_reads_them() {
        let table: &[(&str, &str, bool)] = &[
            // comparisons, with or without a space
            (">= 1.2.3", "1.2.3", true),
            (">= 1.2.3", "1.2.2", false),
            (">=1.2.3", "1.3.0", true),
            ("=> 1.2.3", "1.2.3", true),
            ("=< 1.2.3", "1.2.3", true),
            ("> 1.2.3", "1.2.3", false),
            ("< 1.2.3", "1.2.2", true),
            ("<= 1.2.3", "1.2.4", false),
            ("= 1.2.3", "1.2.3", true),
            ("1.2.3", "1.2.4", false),
            ("!= 1.2.3", "1.2.4", true),
            ("!=1.2.3", "1.2.3", false),
            // and, or
            (">=1.2, <2.0", "1.9.9", true),
            (">= 1.2 < 2.0", "2.0.0", false),
            ("<1 || >=3", "3.1.0", true),
            ("<1 || >=3", "2.0.0", false),
            ("~1.2.0 || >=3", "3.1.0", true),
            // hyphen ranges (the upper bound a wildcard when partial)
            ("1.2 - 1.4", "1.4.9", true),
            ("1.2 - 1.4", "1.5.0", false),
            ("1.2 - 1.4", "1.1.9", false),
            ("1.2.3 - 1.4.5", "1.4.5", true),
            ("1.2.3 - 1.4.5", "1.4.6", false),
            // wildcards and missing parts
            ("1.2.x", "1.2.5", true),
            ("1.2.X", "1.3.0", false),
            ("1.2.*", "1.2.0", true),
            ("1.2", "1.2.5", true),
            ("*", "9.9.9", true),
            ("x", "0.0.1", true),
            (">= 1.2.x", "1.2.0", true),
            ("> 1.2.x", "1.2.9", false),
            ("> 1.2.x", "1.3.0", true),
            ("<= 1.2.x", "1.2.9", true),
            ("<= 1.2.x", "1.3.0", false),
            ("< 1.2.x", "1.2.0", false),
            ("!= 1.2.x", "1.2.7", false),
            ("!= 1.2.x", "1.3.0", true),
            ("<1.19", "1.35.0", false),
            // tilde: same minor (same major when only a major is given)
            ("~1.2.3", "1.2.9", true),
            ("~1.2.3", "1.3.0", false),
            ("~1.2.3", "1.2.2", false),
            ("~>1.2", "1.2.0", true),
            ("~1", "1.9.0", true),
            ("~1", "2.0.0", false),
            ("~1.x", "1.5.0", true),
            // caret: same left-most non-zero part
            ("^1.2.3", "1.9.0", true),
            ("^1.2.3", "2.0.0", false),
            ("^1.2", "2.0.0", false),
            ("^1.2.x", "1.2.0", true),
            ("^0.2.3", "0.2.9", true),
            ("^0.2.3", "0.3.0", false),
            ("^0.0.3", "0.0.3", true),
            ("^0.0.3", "0.0.4", false),
            ("^0.0", "0.0.9", true),
            ("^0.0", "0.1.0", false),
            ("^0", "0.9.0", true),
            ("^0", "1.0.0", false),
            // pre-releases only when the comparison names one
            (">=1.0", "1.1.0-rc.1", false),
            (">=1.19-0", "v1.35.0", true),
            (">=1.19-0", "1.20.0-rc.1", true),
            (">=1.2.3-alpha", "1.2.3-beta", true),
            (">=1.2.3-beta", "1.2.3-alpha", false),
            // versions written loosely; build metadata never compared
            (">=1.19", "v1.35.0+k3s1", true),
            ("=1.2.3", "1.2.3+build.7", true),
            ("<1.2.3", "1.2.3+build.7", false),
        ];
        for (constraint, version, want) in table {
            assert_eq!(
                satisfies(constraint, version),
                Some(*want),
                "{version} against {constraint}"
            );
        }
    }

    #[test]
    fn what_is_not_a_constraint_or_version_does_not_compare() {
        for bad in ["", ">=", "1.2 -", "abc", ">= 1.2.3.4", "1.2 || ", ">>1.2"] {
            assert_eq!(satisfies(bad, "1.2.3"), None, "{bad:?}");
        }
        for bad in ["", "x", "1.2.3.4", "one"] {
            assert_eq!(satisfies(">=1.0", bad), None, "{bad:?}");
        }
    }
}
