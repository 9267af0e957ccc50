//! Kubernetes quantities (`500m`, `2Gi`, `1.5`, `1e3`), exact.
//!
//! A [`Quantity`] holds its value as whole thousandths ("milli-units") in an
//! `i64` — exact for every amount a quota or a container request can name, up
//! to about 9.2 * 10^15 units (8 PiB of memory). Like Kubernetes, a value with
//! a finer fraction than a thousandth is rounded up to the next thousandth, and
//! a quantity prints in canonical form: the suffix family it was written in
//! (binary `Ki`..`Ei`, decimal `k`..`E`, or exponent `e3`..), with the largest
//! suffix that keeps the number whole, else in `m`. Printing and parsing round
//! trip: `parse(print(q)) == q`.

use std::cmp::Ordering;
use std::fmt;

use crate::{Error, Result};

/// The resources a quota limits, as the API names them (the keys of every
/// `hard`, `dr_reserve`, reservation and spec amount): one list, read by
/// tenancy's parser and by the gateway's OpenAPI document.
pub const QUOTA_RESOURCES: [&str; 13] = [
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
    "requests.storage",
    "pods",
    "persistentvolumeclaims",
    "services",
    "services.loadbalancers",
    "services.nodeports",
    "configmaps",
    "secrets",
    "gpu",
];

/// The [`QUOTA_RESOURCES`] counted in whole numbers (pods, services ...);
/// the rest are amounts of CPU, memory or storage.
pub const COUNTED_RESOURCES: [&str; 8] = [
    "pods",
    "persistentvolumeclaims",
    "services",
    "services.loadbalancers",
    "services.nodeports",
    "configmaps",
    "secrets",
    "gpu",
];

/// The resources a LimitRange constrains (its keys in the API).
pub const LIMIT_RANGE_RESOURCES: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// A quantity as the API documents it: not negative, at most six whole
/// digits with up to three decimals, and a suffix up to giga. Every text it
/// matches parses (a test holds it so) and stays far below the largest
/// amount [`Quantity`] holds, whatever the suffix; larger amounts parse too,
/// but no quota on one cluster needs them.
pub const DOCUMENTED_QUANTITY: &str = "^[+]?([0-9]{1,6}(\\.[0-9]{0,3})?|\\.[0-9]{1,3})([KMG]i|[mkMG])?$";

/// A counted amount as the API documents it: a whole number of at most
/// nine digits.
pub const DOCUMENTED_COUNT: &str = "^[+]?[0-9]{1,9}$";

/// How a quantity was written, and so how it prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Powers of 1024: `Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`.
    BinarySi,
    /// Powers of 1000: `m`, none, `k`, `M`, `G`, `T`, `P`, `E` (and `n`, `u` on input).
    DecimalSi,
    /// Scientific: `1e3`, `5E-3`.
    DecimalExponent,
}

/// An exact Kubernetes quantity.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    milli: i64,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.milli == other.milli
    }
}
impl Eq for Quantity {}
impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.milli.cmp(&other.milli)
    }
}
impl std::hash::Hash for Quantity {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.milli.hash(state);
    }
}

const BINARY: [(&str, u32); 6] = [("Ki", 1), ("Mi", 2), ("Gi", 3), ("Ti", 4), ("Pi", 5), ("Ei", 6)];
const DECIMAL: [(&str, i32); 9] = [
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

impl Quantity {
    /// Zero.
    pub const ZERO: Self = Self {
        milli: 0,
        format: Format::DecimalSi,
    };

    /// From whole thousandths, printing in decimal form.
    pub const fn from_milli(milli: i64) -> Self {
        Self {
            milli,
            format: Format::DecimalSi,
        }
    }

    /// From whole thousandths, printing in the given family.
    pub const fn from_milli_as(milli: i64, format: Format) -> Self {
        Self { milli, format }
    }

    /// The value in thousandths.
    pub const fn milli(&self) -> i64 {
        self.milli
    }

    /// How it prints.
    pub const fn format(&self) -> Format {
        self.format
    }

    /// Whether it is below zero.
    pub const fn is_negative(&self) -> bool {
        self.milli < 0
    }

    /// The sum, keeping `self`'s format.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on overflow.
    pub fn checked_add(self, other: Self, field: &str) -> Result<Self> {
        self.milli
            .checked_add(other.milli)
            .map(|milli| Self {
                milli,
                format: self.format,
            })
            .ok_or_else(|| Error::invalid(field, "the total is too large"))
    }

    /// The difference, keeping `self`'s format (may be negative).
    pub fn saturating_sub(self, other: Self) -> Self {
        Self {
            milli: self.milli.saturating_sub(other.milli),
            format: self.format,
        }
    }

    /// Parses a quantity; errors name `field`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the text is not a quantity or is too large.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                field,
                format!("{raw:?} is not a quantity (such as 500m, 2Gi, 1.5 or 1e3)"),
            )
        };
        // Kubernetes refuses surrounding spaces (" 1"); so do we, rather
        // than store a limit the member cluster would reject.
        let s = raw;
        let (negative, s) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let number_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let (number, suffix) = s.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') || whole.len() + fraction.len() > 30 {
            return Err(bad());
        }
        let digits: i128 = format!("{whole}{fraction}").parse().map_err(|_| bad())?;
        // value = digits * 10^-frac * multiplier; milli = value * 1000.
        let (format, numerator, denominator): (Format, i128, i128) = if suffix.is_empty() {
            (Format::DecimalSi, 1000, 1)
        } else if let Some((_, power)) = BINARY.iter().find(|(s, _)| *s == suffix) {
            (Format::BinarySi, 1000 * 1024_i128.pow(*power), 1)
        } else if let Some((_, exp)) = DECIMAL.iter().find(|(s, _)| *s == suffix) {
            let (n, d) = pow10_ratio(*exp + 3);
            (Format::DecimalSi, n, d)
        } else if let Some(exp) = suffix.strip_prefix(['e', 'E']) {
            let exp: i32 = exp.parse().map_err(|_| bad())?;
            if !(-30..=30).contains(&exp) {
                return Err(bad());
            }
            let (n, d) = pow10_ratio(exp + 3);
            (Format::DecimalExponent, n, d)
        } else {
            return Err(bad());
        };
        let denominator = denominator * 10_i128.pow(fraction.len() as u32);
        let scaled = digits
            .checked_mul(numerator)
            .ok_or_else(|| Error::invalid(field, "is too large"))?;
        // Round up to whole thousandths, as Kubernetes does.
        let milli = (scaled + denominator - 1) / denominator;
        let milli = i64::try_from(milli).map_err(|_| Error::invalid(field, "is too large"))?;
        Ok(Self {
            milli: if negative { -milli } else { milli },
            format,
        })
    }
}

fn pow10_ratio(exp: i32) -> (i128, i128) {
    if exp >= 0 {
        (10_i128.pow(exp as u32), 1)
    } else {
        (1, 10_i128.pow((-exp) as u32))
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let milli = self.milli;
        if milli == 0 {
            return f.write_str("0");
        }
        if milli % 1000 != 0 {
            return write!(f, "{milli}m");
        }
        let units = milli / 1000;
        match self.format {
            Format::BinarySi => {
                for (suffix, power) in BINARY.iter().rev() {
                    let unit = 1024_i64.pow(*power);
                    if units % unit == 0 {
                        return write!(f, "{}{suffix}", units / unit);
                    }
                }
                write!(f, "{units}")
            }
            Format::DecimalSi | Format::DecimalExponent => {
                let mut exp = 0;
                let mut v = units;
                while v % 1000 == 0 && exp < 18 {
                    v /= 1000;
                    exp += 3;
                }
                match (self.format, exp) {
                    (_, 0) => write!(f, "{v}"),
                    (Format::DecimalExponent, e) => write!(f, "{v}e{e}"),
                    (_, e) => {
                        let suffix = DECIMAL.iter().find(|(_, x)| *x == e).map_or("", |(s, _)| *s);
                        write!(f, "{v}{suffix}")
                    }
                }
            }
        }
    }
}

impl serde::Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse("q", s).unwrap()
    }

    fn unanchored(pattern: &str) -> &str {
        pattern.trim_start_matches('^').trim_end_matches('$')
    }

    proptest! {
        /// What the document allows is taken: a documented quantity parses,
        /// a documented count is a whole number, neither is negative.
        #[test]
        fn documented_amounts_parse(
            quantity in prop::string::string_regex(unanchored(DOCUMENTED_QUANTITY)).unwrap(),
            count in prop::string::string_regex(unanchored(DOCUMENTED_COUNT)).unwrap(),
        ) {
            let parsed = Quantity::parse("q", &quantity);
            prop_assert!(parsed.as_ref().is_ok_and(|q| !q.is_negative()), "{quantity:?}: {parsed:?}");
            let parsed = Quantity::parse("q", &count).unwrap();
            prop_assert!(!parsed.is_negative() && parsed.milli() % 1000 == 0, "{count:?}");
        }
    }

    #[test]
    fn the_largest_documented_amounts_parse() {
        for largest in ["999999.999Gi", "+999999G", ".999Ki", "1.", "999999999"] {
            assert!(Quantity::parse("q", largest).is_ok(), "{largest}");
        }
        assert_eq!(
            COUNTED_RESOURCES.iter().filter(|r| QUOTA_RESOURCES.contains(r)).count(),
            8
        );
    }

    #[test]
    fn common_quantities_parse_exactly() {
        assert_eq!(q("500m").milli(), 500);
        assert_eq!(q("1.5").milli(), 1500);
        assert_eq!(q("2Gi").milli(), 2 * 1024 * 1024 * 1024 * 1000);
        assert_eq!(q("1e3").milli(), 1_000_000);
        assert_eq!(q("1k").milli(), 1_000_000);
        assert_eq!(q("0.1").milli(), 100);
        assert_eq!(q("100M").milli(), 100_000_000_000);
        assert_eq!(q("5E-3").milli(), 5);
        assert_eq!(q(".5").milli(), 500);
        assert_eq!(q("+3").milli(), 3000);
        assert_eq!(q("-2").milli(), -2000);
    }

    #[test]
    fn finer_than_a_thousandth_rounds_up_like_kubernetes() {
        assert_eq!(q("100n").milli(), 1);
        assert_eq!(q("1.0001").milli(), 1001);
        assert_eq!(q("0.0001").milli(), 1);
    }

    #[test]
    fn quantities_print_in_canonical_form() {
        for (input, printed) in [
            ("500m", "500m"),
            ("1.5", "1500m"),
            ("2Gi", "2Gi"),
            ("2048Mi", "2Gi"),
            ("1536Mi", "1536Mi"),
            ("1000", "1k"),
            ("1e3", "1e3"),
            ("0.5Gi", "512Mi"),
            ("1", "1"),
            ("0", "0"),
            ("1.5Ki", "1536"),
            ("3M", "3M"),
        ] {
            assert_eq!(q(input).to_string(), printed, "{input}");
        }
    }

    #[test]
    fn malformed_quantities_name_the_field() {
        for bad in [
            "",
            "abc",
            "1.2.3",
            "1Xi",
            "1 Gi",
            " 1",
            "1 ",
            "\t2Gi",
            "--1",
            "1e",
            "1e99",
            ".",
            "1e3m",
            "99999999999999999999999999999999",
        ] {
            let err = Quantity::parse("quota.requests.cpu", bad).unwrap_err();
            assert_eq!(err.field(), Some("quota.requests.cpu"), "{bad:?}");
        }
        assert!(Quantity::parse("x", "9Ei").is_err(), "beyond i64 milli-units");
    }

    proptest! {
        #[test]
        fn printing_then_parsing_gives_the_same_value(milli in -1_000_000_000_000_000i64..1_000_000_000_000_000i64, family in 0..3u8) {
            let format = [Format::BinarySi, Format::DecimalSi, Format::DecimalExponent][family as usize];
            let original = Quantity::from_milli_as(milli, format);
            let back = Quantity::parse("q", &original.to_string()).unwrap();
            prop_assert_eq!(back, original);
        }

        #[test]
        fn parsing_decimal_text_is_exact(units in 0i64..1_000_000_000, thousandths in 0i64..1000) {
            let text = format!("{units}.{thousandths:03}");
            prop_assert_eq!(Quantity::parse("q", &text).unwrap().milli(), units * 1000 + thousandths);
        }
    }
}
