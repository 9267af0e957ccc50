//! The part of JSON Schema that charts' `values.schema.json` files use:
//! `type` (one or several), `properties`, `required`,
//! `additionalProperties: false`, `items`, `enum`, `const`, `minimum`,
//! `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `minLength`,
//! `maxLength`, `pattern`, `minItems`, `maxItems`, and `allOf`/`anyOf`/`oneOf`.
//! Keywords outside it are ignored, as a validator ignores unknown ones.

use kernel::{Error, Result};
use serde_json::Value;

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks `value` against `schema`; the error names the failing path under
/// `at` (`values.image.tag`).
///
/// # Errors
/// The first value the schema refuses.
pub fn validate(schema: &Value, value: &Value, at: &str) -> Result<()> {
    let fail = |why: String| Err(Error::invalid(at, why));
    let Some(s) = schema.as_object() else { return Ok(()) };
    if let Some(t) = s.get("type") {
        let actual = type_of(value);
        let allowed: Vec<&str> = match t {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !allowed.is_empty()
            && !allowed
                .iter()
                .any(|a| *a == actual || (*a == "number" && actual == "integer"))
        {
            return fail(format!("must be of type {}, not {actual}", allowed.join(" or ")));
        }
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        return fail(format!("must be one of {}", Value::Array(options.clone())));
    }
    if let Some(c) = s.get("const")
        && c != value
    {
        return fail(format!("must be {c}"));
    }
    if let Some(n) = value.as_f64() {
        let bound = |k: &str| s.get(k).and_then(Value::as_f64);
        if let Some(m) = bound("minimum").filter(|m| n < *m) {
            return fail(format!("must be at least {m}"));
        }
        if let Some(m) = bound("maximum").filter(|m| n > *m) {
            return fail(format!("must be at most {m}"));
        }
        if let Some(m) = bound("exclusiveMinimum").filter(|m| n <= *m) {
            return fail(format!("must be more than {m}"));
        }
        if let Some(m) = bound("exclusiveMaximum").filter(|m| n >= *m) {
            return fail(format!("must be less than {m}"));
        }
    }
    if let Value::String(text) = value {
        let len = text.chars().count() as u64;
        if let Some(m) = s.get("minLength").and_then(Value::as_u64).filter(|m| len < *m) {
            return fail(format!("must be at least {m} characters"));
        }
        if let Some(m) = s.get("maxLength").and_then(Value::as_u64).filter(|m| len > *m) {
            return fail(format!("must be at most {m} characters"));
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            let re = regex::Regex::new(p)
                .map_err(|e| Error::invalid(at, format!("the schema's pattern {p} does not compile: {e}")))?;
            if !re.is_match(text) {
                return fail(format!("must match {p}"));
            }
        }
    }
    if let Value::Array(items) = value {
        if let Some(m) = s
            .get("minItems")
            .and_then(Value::as_u64)
            .filter(|m| (items.len() as u64) < *m)
        {
            return fail(format!("must have at least {m} items"));
        }
        if let Some(m) = s
            .get("maxItems")
            .and_then(Value::as_u64)
            .filter(|m| (items.len() as u64) > *m)
        {
            return fail(format!("must have at most {m} items"));
        }
        if let Some(item) = s.get("items") {
            for (i, v) in items.iter().enumerate() {
                validate(item, v, &format!("{at}[{i}]"))?;
            }
        }
    }
    if let Value::Object(map) = value {
        for name in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !map.contains_key(name) {
                return Err(Error::invalid(format!("{at}.{name}"), "is required"));
            }
        }
        let properties = s.get("properties").and_then(Value::as_object);
        for (k, v) in map {
            match properties.and_then(|p| p.get(k)) {
                Some(p) => validate(p, v, &format!("{at}.{k}"))?,
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => return Err(Error::invalid(format!("{at}.{k}"), "is not allowed here")),
                    Some(extra @ Value::Object(_)) => validate(extra, v, &format!("{at}.{k}"))?,
                    _ => {}
                },
            }
        }
    }
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for sub in all {
            validate(sub, value, at)?;
        }
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array)
        && !any.iter().any(|sub| validate(sub, value, at).is_ok())
    {
        return fail("matches none of anyOf".into());
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array)
        && one.iter().filter(|sub| validate(sub, value, at).is_ok()).count() != 1
    {
        return fail("must match exactly one of oneOf".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_refusal_names_the_value() {
        let schema = json!({"type": "object", "required": ["image"], "properties": {
            "replicaCount": {"type": "integer", "minimum": 1, "maximum": 10},
            "image": {"type": "object", "additionalProperties": false, "properties": {"tag": {"type": "string", "pattern": "^[a-z0-9.]+$"}}},
            "mode": {"enum": ["a", "b"]}, "ports": {"type": "array", "items": {"type": "integer"}}}});
        assert!(
            validate(
                &schema,
                &json!({"image": {"tag": "1.25"}, "replicaCount": 3, "ports": [80]}),
                "values"
            )
            .is_ok()
        );
        let field = |v: Value| validate(&schema, &v, "values").unwrap_err().field().map(str::to_string);
        assert_eq!(field(json!({})), Some("values.image".into()));
        assert_eq!(
            field(json!({"image": {}, "replicaCount": 0})),
            Some("values.replicaCount".into())
        );
        assert_eq!(
            field(json!({"image": {}, "replicaCount": "3"})),
            Some("values.replicaCount".into())
        );
        assert_eq!(
            field(json!({"image": {"tag": "Bad!"}})),
            Some("values.image.tag".into())
        );
        assert_eq!(field(json!({"image": {"x": 1}})), Some("values.image.x".into()));
        assert_eq!(field(json!({"image": {}, "mode": "c"})), Some("values.mode".into()));
        assert_eq!(
            field(json!({"image": {}, "ports": [80, "x"]})),
            Some("values.ports[1]".into())
        );
        assert!(
            validate(&json!({"type": "number"}), &json!(3), "v").is_ok(),
            "an integer is a number"
        );
    }
}
