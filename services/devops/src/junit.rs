//! JUnit XML reports, as test tools write them (`<testsuites>` or
//! `<testsuite>` holding `<testcase>` elements with `<failure>`, `<error>` or
//! `<skipped>` inside). The counts come from the test cases themselves, not
//! the suites' attributes, which some tools leave out or get wrong. The
//! reader is a small tag scanner: the format uses elements and attributes
//! only, so it needs no full XML parser.

/// What a set of reports says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Test cases.
    pub total: u32,
    /// Failed or errored cases.
    pub failed: u32,
    /// Skipped cases.
    pub skipped: u32,
    /// `(classname.name, message)` of failed cases, in order.
    pub failures: Vec<(String, String)>,
}

impl Summary {
    /// Adds another report's cases.
    pub fn merge(&mut self, other: Self) {
        self.total += other.total;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.failures.extend(other.failures);
    }
}

/// Why a report cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The text is not XML of the expected shape.
    #[error("not a JUnit XML report: {0}")]
    Malformed(&'static str),
}

fn unescape(raw: &str) -> String {
    raw.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The attribute `name` of a start tag's text (`testcase name="x" ...`).
fn attribute(tag: &str, name: &str) -> Option<String> {
    let mut rest = tag;
    while let Some(i) = rest.find(name) {
        let before_ok = i == 0 || rest[..i].ends_with(char::is_whitespace);
        let after = rest[i + name.len()..].trim_start();
        if before_ok && let Some(value) = after.strip_prefix('=') {
            let value = value.trim_start();
            let quote = value.chars().next()?;
            if quote == '"' || quote == '\'' {
                let end = value[1..].find(quote)?;
                return Some(unescape(&value[1..=end]));
            }
        }
        rest = &rest[i + name.len()..];
    }
    None
}

/// Reads one report.
///
/// # Errors
/// An unclosed tag or a document without test cases or suites.
pub fn read(xml: &str) -> Result<Summary, ReportError> {
    let mut summary = Summary::default();
    let mut rest = xml;
    let mut case: Option<(String, Option<String>, bool)> = None;
    let mut saw_suite = false;
    while let Some(start) = rest.find('<') {
        rest = &rest[start..];
        if let Some(r) = rest.strip_prefix("<!--") {
            let end = r.find("-->").ok_or(ReportError::Malformed("an unclosed comment"))?;
            rest = &r[end + 3..];
            continue;
        }
        if let Some(r) = rest.strip_prefix("<![CDATA[") {
            let end = r
                .find("]]>")
                .ok_or(ReportError::Malformed("an unclosed CDATA section"))?;
            rest = &r[end + 3..];
            continue;
        }
        let end = rest.find('>').ok_or(ReportError::Malformed("an unclosed tag"))?;
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        let closing = tag.starts_with('/');
        let self_closing = tag.ends_with('/');
        let body = tag.trim_start_matches('/').trim_end_matches('/');
        let element = body.split_whitespace().next().unwrap_or_default();
        match (element, closing) {
            ("testsuite" | "testsuites", _) => saw_suite = true,
            ("testcase", false) => {
                let name = attribute(body, "name").unwrap_or_default();
                let full = match attribute(body, "classname") {
                    Some(c) if !c.is_empty() => format!("{c}.{name}"),
                    _ => name,
                };
                case = Some((full, None, false));
                if self_closing {
                    finish(&mut summary, case.take());
                }
            }
            ("testcase", true) => finish(&mut summary, case.take()),
            ("failure" | "error", false) => {
                if let Some(c) = case.as_mut() {
                    let message = attribute(body, "message")
                        .or_else(|| attribute(body, "type"))
                        .unwrap_or_else(|| element.to_string());
                    c.1.get_or_insert(message);
                }
            }
            ("skipped", false) => {
                if let Some(c) = case.as_mut() {
                    c.2 = true;
                }
            }
            _ => {}
        }
    }
    if case.is_some() {
        return Err(ReportError::Malformed("an unclosed testcase"));
    }
    if !saw_suite && summary.total == 0 {
        return Err(ReportError::Malformed("no testsuite or testcase element"));
    }
    Ok(summary)
}

fn finish(summary: &mut Summary, case: Option<(String, Option<String>, bool)>) {
    let Some((name, failure, skipped)) = case else {
        return;
    };
    summary.total += 1;
    if let Some(message) = failure {
        summary.failed += 1;
        summary.failures.push((name, message));
    } else if skipped {
        summary.skipped += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_failures_errors_and_skips_are_counted_from_the_cases() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- written by a <test> tool -->
<testsuites>
  <testsuite name="math" tests="99">
    <testcase classname="math" name="adds"/>
    <testcase classname="math" name="divides">
      <failure message="expected 2 &amp; got 3" type="AssertionError"><![CDATA[at <line 3>]]></failure>
    </testcase>
    <testcase name='crashes'><error type="Panic"/></testcase>
    <testcase classname="math" name="later"><skipped/></testcase>
  </testsuite>
</testsuites>"#;
        let s = read(xml).unwrap();
        assert_eq!((s.total, s.failed, s.skipped), (4, 2, 1));
        assert_eq!(
            s.failures,
            vec![
                ("math.divides".to_string(), "expected 2 & got 3".to_string()),
                ("crashes".to_string(), "Panic".to_string()),
            ]
        );
    }

    #[test]
    fn what_is_not_a_report_is_refused() {
        assert!(read("hello").is_err());
        assert!(read("<testsuite><testcase name=\"a\">").is_err());
        assert!(read("<testsuite").is_err());
        assert_eq!(read("<testsuite/>").unwrap(), Summary::default());
    }
}
