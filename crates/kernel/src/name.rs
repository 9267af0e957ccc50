//! Names people give things that end up in Kubernetes or in URLs: DNS labels
//! (RFC 1123), as Kubernetes requires for namespaces and most object names.

use crate::{Error, Result};

/// The five default network policies of R5, one chosen per partition: the
/// names tenancy takes and the API document lists.
pub const NETWORK_POLICIES: [&str; 5] = [
    "deny-all-ingress",
    "allow-all-ingress",
    "deny-all-egress",
    "allow-all-egress",
    "deny-all",
];

/// A DNS label: 1-63 characters, lower-case letters, digits and `-`, starting
/// and ending with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsLabel(String);

impl DnsLabel {
    /// Parses a label; the error names `field`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] saying which rule the text breaks.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let fail = |why: &str| Err(Error::invalid(field, why));
        if raw.is_empty() {
            return fail("is required");
        }
        if raw.len() > 63 {
            return fail("must be at most 63 characters");
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return fail("must contain only lower-case letters, digits and '-'");
        }
        if raw.starts_with('-') || raw.ends_with('-') {
            return fail("must start and end with a letter or digit");
        }
        Ok(Self(raw.to_string()))
    }

    /// The label text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DnsLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_rfc_1123() {
        for ok in ["a", "acme", "team-7", "0abc", &"a".repeat(63)] {
            assert!(DnsLabel::parse("name", ok).is_ok(), "{ok}");
        }
        for bad in ["", "Acme", "-a", "a-", "a_b", "a.b", &"a".repeat(64), "é"] {
            let err = DnsLabel::parse("name", bad).unwrap_err();
            assert_eq!(err.field(), Some("name"), "{bad}");
        }
    }
}
