//! Kubernetes resource quantities (`500m`, `2Gi`, `1.5`, `1e3`) as exact
//! thousandths, for scheduling and quota arithmetic.

use std::fmt;

/// A quantity in thousandths of its unit (millicores for cpu, millibytes for memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Quantity(i128);

impl Quantity {
    /// Nothing.
    pub const ZERO: Self = Self(0);

    /// Parses a Kubernetes quantity string; `None` if it is not one.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(split);
        let mantissa_milli = parse_decimal_milli(number)?;
        let scaled = match suffix {
            "" => mantissa_milli,
            "m" => div_exact(mantissa_milli, 1000)?,
            "k" => mantissa_milli.checked_mul(1_000)?,
            "M" => mantissa_milli.checked_mul(1_000_000)?,
            "G" => mantissa_milli.checked_mul(1_000_000_000)?,
            "T" => mantissa_milli.checked_mul(1_000_000_000_000)?,
            "P" => mantissa_milli.checked_mul(1_000_000_000_000_000)?,
            "Ki" => mantissa_milli.checked_mul(1 << 10)?,
            "Mi" => mantissa_milli.checked_mul(1 << 20)?,
            "Gi" => mantissa_milli.checked_mul(1 << 30)?,
            "Ti" => mantissa_milli.checked_mul(1 << 40)?,
            "Pi" => mantissa_milli.checked_mul(1 << 50)?,
            e if e.starts_with(['e', 'E']) => {
                let exp: i32 = e[1..].parse().ok()?;
                scale10(mantissa_milli, exp)?
            }
            _ => return None,
        };
        Some(Self(scaled))
    }

    /// From whole units.
    pub fn from_units(units: i64) -> Self {
        Self(i128::from(units) * 1000)
    }

    /// The quantity in thousandths (millicores for CPU).
    pub fn milli(self) -> i128 {
        self.0
    }

    /// The sum, saturating rather than overflowing.
    pub fn checked_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }

    /// Canonical text in the style of `like`: binary suffixes if `like` uses
    /// them, `m` for fractions, plain integers otherwise.
    pub fn format_like(self, like: &str) -> String {
        let binary = ["Ki", "Mi", "Gi", "Ti", "Pi"].iter().any(|s| like.ends_with(s));
        if binary && self.0 % 1000 == 0 {
            let units = self.0 / 1000;
            for (suffix, shift) in [("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)] {
                let unit = 1i128 << shift;
                if units != 0 && units % unit == 0 {
                    return format!("{}{suffix}", units / unit);
                }
            }
        }
        self.to_string()
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 % 1000 == 0 {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

fn div_exact(v: i128, d: i128) -> Option<i128> {
    // Sub-milli precision rounds up, as Kubernetes does for cpu.
    Some((v + d - 1).div_euclid(d))
}

fn scale10(v: i128, exp: i32) -> Option<i128> {
    if exp >= 0 {
        v.checked_mul(10i128.checked_pow(exp.unsigned_abs())?)
    } else {
        div_exact(v, 10i128.checked_pow(exp.unsigned_abs())?)
    }
}

/// `"1.5"` -> 1500 (thousandths). Digits beyond three decimals round up.
fn parse_decimal_milli(number: &str) -> Option<i128> {
    let (negative, digits) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let int_value: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut frac_milli: i128 = 0;
    for (i, c) in frac.chars().enumerate() {
        let digit = i128::from(c.to_digit(10)?);
        if i < 3 {
            frac_milli += digit * 10i128.pow(2 - i as u32);
        } else if digit > 0 {
            frac_milli += 1;
            break;
        }
    }
    let value = int_value.checked_mul(1000)?.checked_add(frac_milli)?;
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_kubernetes_accepts() {
        assert_eq!(Quantity::parse("500m").unwrap().milli(), 500);
        assert_eq!(Quantity::parse("2").unwrap().milli(), 2000);
        assert_eq!(Quantity::parse("1.5").unwrap().milli(), 1500);
        assert_eq!(Quantity::parse("1e3").unwrap().milli(), 1_000_000);
        assert_eq!(Quantity::parse("2Gi").unwrap().milli(), 2 * (1i128 << 30) * 1000);
        assert_eq!(Quantity::parse("128M").unwrap().milli(), 128_000_000_000);
        assert!(Quantity::parse("abc").is_none());
        assert!(Quantity::parse("1Zi").is_none());
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(Quantity::parse("1500m").unwrap().to_string(), "1500m");
        assert_eq!(Quantity::parse("2000m").unwrap().to_string(), "2");
        assert_eq!(Quantity::parse("1024Mi").unwrap().format_like("2Gi"), "1Gi");
    }
}
