//! Item formats and their validation on save: a configuration that does not
//! parse is refused with the item and the line, before anyone publishes it.
//! Key/value items (`properties`) are also read into keys, which inheritance
//! and diffs work on.

use std::collections::BTreeMap;

use kernel::{Error, Result};

/// Largest item accepted: a ConfigMap holds at most 1 MiB in all, and the
/// gateway takes 1 MiB bodies.
pub const MAX_CONTENT: usize = 512 * 1024;

/// How an item's content is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Java-style `key=value` lines: the key/value format.
    Properties,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
    /// XML.
    Xml,
    /// Anything (UTF-8 text).
    Text,
}

impl Format {
    /// The name the API and storage use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Properties => "properties",
            Self::Yaml => "yaml",
            Self::Json => "json",
            Self::Xml => "xml",
            Self::Text => "text",
        }
    }

    /// Parses a format name; empty means "from the item's extension".
    ///
    /// # Errors
    /// An unknown name, naming `format`.
    pub fn parse(raw: &str, item: &str) -> Result<Self> {
        match raw.trim() {
            "properties" => Ok(Self::Properties),
            "yaml" | "yml" => Ok(Self::Yaml),
            "json" => Ok(Self::Json),
            "xml" => Ok(Self::Xml),
            "text" | "txt" => Ok(Self::Text),
            "" => Ok(Self::of_name(item)),
            _ => Err(Error::invalid("format", "must be properties, yaml, json, xml or text")),
        }
    }

    /// The format a file name suggests (`text` when it says nothing).
    pub fn of_name(name: &str) -> Self {
        match name
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .as_deref()
        {
            Some("properties") => Self::Properties,
            Some("yaml" | "yml") => Self::Yaml,
            Some("json") => Self::Json,
            Some("xml") => Self::Xml,
            _ => Self::Text,
        }
    }

    /// Whether items of this format are merged and diffed key by key.
    pub fn is_key_value(self) -> bool {
        self == Self::Properties
    }

    /// Checks `content` parses as this format.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `items.<name>.content` with the line of
    /// the first error.
    pub fn validate(self, item: &str, content: &str) -> Result<()> {
        let field = format!("items.{item}.content");
        if content.len() > MAX_CONTENT {
            return Err(Error::invalid(field, format!("is over {MAX_CONTENT} bytes")));
        }
        if content.contains('\0') {
            return Err(Error::invalid(field, "must not contain NUL characters"));
        }
        let failure = match self {
            Self::Text => None,
            Self::Properties => properties(content).err(),
            Self::Json => serde_json::from_str::<serde::de::IgnoredAny>(content)
                .err()
                .map(|e| (e.line(), e.to_string())),
            Self::Yaml => yaml(content).err(),
            Self::Xml => xml(content).err(),
        };
        match failure {
            None => Ok(()),
            Some((line, why)) => Err(Error::invalid(
                field,
                format!("is not valid {} (line {line}): {why}", self.as_str()),
            )),
        }
    }
}

/// Checks that every item name is a file name a ConfigMap key allows.
///
/// # Errors
/// [`Error::InvalidArgument`] on `name`.
pub fn validate_item_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            "must be 1-253 characters of letters, digits, '.', '-' or '_' (a file name)",
        ))
    }
}

/// The keys of a properties document, in key order; a later line wins.
///
/// # Errors
/// The line number and why, for a line with no key.
pub fn properties(content: &str) -> std::result::Result<BTreeMap<String, String>, (usize, String)> {
    let mut keys = BTreeMap::new();
    let mut lines = content.lines().enumerate();
    while let Some((index, raw)) = lines.next() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let first = index + 1;
        // A trailing unescaped backslash continues the logical line.
        let mut logical = line.to_string();
        while ends_continued(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let split = logical
            .char_indices()
            .find(|&(i, c)| matches!(c, '=' | ':' | ' ' | '\t') && !escaped(&logical, i));
        let (key, value) = match split {
            Some((i, _)) => {
                let rest = logical[i..].trim_start_matches([' ', '\t']);
                let rest = rest
                    .strip_prefix(['=', ':'])
                    .map_or(rest, |r| r.trim_start_matches([' ', '\t']));
                (&logical[..i], rest)
            }
            None => (logical.as_str(), ""),
        };
        if key.is_empty() {
            return Err((first, "a line has a value but no key".into()));
        }
        keys.insert(unescape(key), unescape(value));
    }
    Ok(keys)
}

fn ends_continued(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

fn escaped(text: &str, at: usize) -> bool {
    text[..at].chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn yaml(content: &str) -> std::result::Result<(), (usize, String)> {
    match serde_saphyr::from_str::<serde::de::IgnoredAny>(content) {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            Err((line_in(&text), text))
        }
    }
}

/// The line a parser's message names (`at line 3`), 0 when it names none.
fn line_in(message: &str) -> usize {
    message
        .split("line ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Well-formedness of an XML document: one root element, tags closed in
/// order, quoted attributes, comments, CDATA, processing instructions and a
/// doctype. Entities are not expanded (nothing here reads the values).
fn xml(content: &str) -> std::result::Result<(), (usize, String)> {
    let bytes = content.as_bytes();
    let line_at = |i: usize| content[..i].matches('\n').count() + 1;
    let mut open: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            if open.is_empty() && !bytes[i].is_ascii_whitespace() {
                return Err((line_at(i), "text outside the root element".into()));
            }
            i += 1;
            continue;
        }
        let rest = &content[i..];
        let (skip, closer) = if rest.starts_with("<!--") {
            (4, "-->")
        } else if rest.starts_with("<![CDATA[") {
            if open.is_empty() {
                return Err((line_at(i), "CDATA outside the root element".into()));
            }
            (9, "]]>")
        } else if rest.starts_with("<?") {
            (2, "?>")
        } else if rest.starts_with("<!") {
            (2, ">")
        } else {
            ("<".len(), "")
        };
        if !closer.is_empty() {
            let end = rest[skip..]
                .find(closer)
                .ok_or_else(|| (line_at(i), format!("unterminated markup, expected {closer}")))?;
            i += skip + end + closer.len();
            continue;
        }
        let end = tag_end(rest).ok_or_else(|| (line_at(i), "unterminated tag".to_string()))?;
        let tag = &rest[1..end];
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim();
            match open.pop() {
                Some(expected) if expected == name => {}
                Some(expected) => {
                    return Err((line_at(i), format!("</{name}> closes <{expected}>")));
                }
                None => return Err((line_at(i), format!("</{name}> closes nothing"))),
            }
        } else {
            let self_closing = tag.ends_with('/');
            let body = tag.trim_end_matches('/');
            let name_end = body.find(|c: char| c.is_whitespace()).unwrap_or(body.len());
            let name = &body[..name_end];
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, ':' | '_' | '-' | '.'))
            {
                return Err((line_at(i), format!("<{name}> is not a valid element name")));
            }
            attributes(&body[name_end..]).map_err(|why| (line_at(i), why))?;
            if open.is_empty() {
                roots += 1;
                if roots > 1 {
                    return Err((line_at(i), "a second root element".into()));
                }
            }
            if !self_closing {
                open.push(name);
            }
        }
        i += end + 1;
    }
    if let Some(unclosed) = open.last() {
        return Err((line_at(content.len()), format!("<{unclosed}> is never closed")));
    }
    if roots == 0 {
        return Err((line_at(content.len()), "no root element".into()));
    }
    Ok(())
}

/// Where a tag's `>` is, skipping quoted attribute values.
fn tag_end(tag: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in tag.char_indices().skip(1) {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            (None, '<') => return None,
            _ => {}
        }
    }
    None
}

fn attributes(mut text: &str) -> std::result::Result<(), String> {
    loop {
        text = text.trim_start();
        if text.is_empty() {
            return Ok(());
        }
        let eq = text
            .find('=')
            .ok_or_else(|| format!("attribute {text:?} has no value"))?;
        let name = text[..eq].trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("attribute {name:?} is malformed"));
        }
        let value = text[eq + 1..].trim_start();
        let quote = value
            .chars()
            .next()
            .filter(|c| matches!(c, '"' | '\''))
            .ok_or_else(|| format!("attribute {name} must be quoted"))?;
        let close = value[1..]
            .find(quote)
            .ok_or_else(|| format!("attribute {name} is not closed"))?;
        text = &value[close + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_yaml_syntax_error_names_the_item_and_the_line() {
        let err = Format::Yaml
            .validate("app.yaml", "a: 1\nb:\n  - x\n  c: [\n")
            .unwrap_err();
        assert_eq!(err.field(), Some("items.app.yaml.content"));
        let text = err.to_string();
        assert!(text.contains("line "), "{text}");
        assert!(!text.contains("line 0"), "{text}");
        assert!(Format::Yaml.validate("app.yaml", "a: 1\nb: [x, y]\n").is_ok());
    }

    #[test]
    fn json_errors_carry_their_line() {
        let err = Format::Json.validate("a.json", "{\n\"a\": 1,\n}").unwrap_err();
        assert!(err.to_string().contains("(line 3)"), "{err}");
        assert!(Format::Json.validate("a.json", "{\"a\": [1, 2]}").is_ok());
    }

    #[test]
    fn xml_must_be_well_formed() {
        assert!(
            Format::Xml
                .validate(
                    "a.xml",
                    "<?xml version=\"1.0\"?>\n<!-- c -->\n<a x=\"1\"><b/><c y='2'>t<![CDATA[<x>]]></c></a>\n"
                )
                .is_ok()
        );
        for (bad, line) in [
            ("<a>\n<b>\n</a>", 3),
            ("<a></a><b/>", 1),
            ("<a x=1/>", 1),
            ("<a>\n\n", 3),
            ("text", 1),
        ] {
            let err = Format::Xml.validate("a.xml", bad).unwrap_err().to_string();
            assert!(err.contains(&format!("(line {line})")), "{bad:?}: {err}");
        }
    }

    #[test]
    fn properties_read_as_keys() {
        let keys = properties("# c\na=1\nb : two words\nc three\\\n  four\nd\ne\\=x=5\n").unwrap();
        assert_eq!(keys["a"], "1");
        assert_eq!(keys["b"], "two words");
        assert_eq!(keys["c"], "threefour");
        assert_eq!(keys["d"], "");
        assert_eq!(keys["e=x"], "5");
        let err = Format::Properties.validate("p.properties", "a=1\n=2\n").unwrap_err();
        assert!(err.to_string().contains("(line 2)"), "{err}");
    }

    #[test]
    fn formats_come_from_the_name_when_not_given() {
        assert_eq!(Format::parse("", "app.yml").unwrap(), Format::Yaml);
        assert_eq!(Format::parse("", "README").unwrap(), Format::Text);
        assert_eq!(Format::parse("toml", "x").unwrap_err().field(), Some("format"));
    }

    #[test]
    fn item_names_are_file_names() {
        assert!(validate_item_name("application.properties").is_ok());
        for bad in ["", "..", "a/b", "a b"] {
            assert_eq!(validate_item_name(bad).unwrap_err().field(), Some("name"));
        }
    }
}
