//! Distinguished names (RFC 4514) of directory entries, compared as the
//! directory compares them: `CN=Ops, OU=Groups,dc=corp` names the same group
//! as `cn=ops,ou=groups,dc=corp`. Attribute types are case-insensitive, and
//! the values of the attributes DNs of people and groups are made of (`cn`,
//! `ou`, `dc`, `o`, `uid`, ...) compare ignoring case in every common schema;
//! spaces around separators are not part of a DN.

/// The canonical form of `dn`: attribute types and values in lower case,
/// no spaces around `,`, `+` and `=`, escapes spelled one way, the values of
/// a multi-valued RDN sorted. `None` when `dn` is not a DN (an RDN without
/// `=`, an empty attribute type, a dangling escape).
pub fn normalize(dn: &str) -> Option<String> {
    let dn = dn.trim();
    if dn.is_empty() {
        return None;
    }
    let mut rdns = Vec::new();
    for rdn in split_unescaped(dn, ',')? {
        let mut avas = Vec::new();
        for ava in split_unescaped(&rdn, '+')? {
            let (kind, value) = ava.split_once('=')?;
            let kind = kind.trim().to_ascii_lowercase();
            if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
                return None;
            }
            avas.push(format!("{kind}={}", escape(&unescape(value)?.to_lowercase())));
        }
        avas.sort();
        rdns.push(avas.join("+"));
    }
    Some(rdns.join(","))
}

/// Whether two DNs name the same entry (texts that are not DNs compare as
/// they are).
pub fn same(a: &str, b: &str) -> bool {
    match (normalize(a), normalize(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// Splits at `separator` where it is not escaped; `None` on a dangling
/// escape. Escapes are kept for [`unescape`].
fn split_unescaped(text: &str, separator: char) -> Option<Vec<String>> {
    let mut parts = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let part = parts.last_mut()?;
        if c == '\\' {
            part.push(c);
            part.push(chars.next()?);
        } else if c == separator {
            parts.push(String::new());
        } else {
            part.push(c);
        }
    }
    Some(parts)
}

/// A value's text: escapes (`\,` or hex `\2C`) decoded, unescaped spaces
/// at either end dropped.
fn unescape(value: &str) -> Option<String> {
    let value = value.trim_start();
    // A trailing space is kept only when escaped.
    let trimmed = value.trim_end();
    let value = if trimmed.ends_with('\\') && value.len() > trimmed.len() {
        &value[..trimmed.len() + 1]
    } else {
        trimmed
    };
    let mut bytes = Vec::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let first = chars.next()?;
        match (first.to_digit(16), chars.peek().and_then(|c| c.to_digit(16))) {
            (Some(high), Some(low)) => {
                chars.next();
                bytes.push((high * 16 + low) as u8);
            }
            _ => {
                let mut buf = [0; 4];
                bytes.extend_from_slice(first.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    String::from_utf8(bytes).ok()
}

/// A value escaped as RFC 4514 requires, one way only.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_dn_normalize_alike() {
        let canonical = "cn=acme-ops,ou=groups,dc=acme,dc=example";
        for spelling in [
            "cn=acme-ops,ou=groups,dc=acme,dc=example",
            "CN=Acme-Ops,OU=Groups,DC=acme,DC=example",
            "cn=acme-ops, ou=Groups, dc=acme, dc=example",
            " cn = acme-ops ,ou=groups,dc=ACME,dc=example ",
            "cn=acme\\2Dops,ou=groups,dc=acme,dc=example",
        ] {
            assert_eq!(normalize(spelling).as_deref(), Some(canonical), "{spelling}");
        }
    }

    #[test]
    fn escapes_and_multi_valued_rdns_are_kept_and_spelled_one_way() {
        assert_eq!(
            normalize("CN=Doe\\, John,OU=People").as_deref(),
            Some("cn=doe\\, john,ou=people")
        );
        assert_eq!(
            normalize("cn=Doe\\2C John,ou=people").as_deref(),
            Some("cn=doe\\, john,ou=people")
        );
        assert_eq!(
            normalize("uid=x+CN=b,dc=example").as_deref(),
            normalize("cn=B+uid=X,dc=example").as_deref()
        );
        assert_ne!(normalize("cn=a\\,b,dc=x"), normalize("cn=a,cn=b,dc=x"));
        assert_eq!(normalize("cn=trailing\\ ,dc=x").as_deref(), Some("cn=trailing\\ ,dc=x"));
    }

    #[test]
    fn what_is_not_a_dn_is_refused() {
        for text in ["", "team-pay-dev", "cn=a,groups", "=x", "cn=a\\", "c n=x"] {
            assert_eq!(normalize(text), None, "{text:?}");
        }
        assert!(same("team-pay-dev", "team-pay-dev"));
        assert!(!same("Team-Pay-Dev", "team-pay-dev"));
        assert!(same("CN=x, OU=Groups", "cn=X,ou=groups"));
    }
}
