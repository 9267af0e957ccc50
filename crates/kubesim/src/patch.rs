//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and
//! strategic merge patch, which kubesim applies as a merge patch that merges
//! lists of named items (containers, env, volumes, ports with a name) by
//! `name` and honours `$patch: delete` on such items. Other strategic
//! directives (`$retainKeys`, `$setElementOrder`, `$deleteFromPrimitiveList`)
//! are not interpreted.

use serde_json::Value;

use crate::apply::associative;
use crate::status::{Details, Error, Result};

/// The patch types of the `Content-Type` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    /// Reads the patch type from a Content-Type.
    ///
    /// # Errors
    /// 415 for any other content type.
    pub fn from_content_type(ct: &str) -> Result<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/json-patch+json" => Ok(Self::Json),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Self::Apply),
            other => Err(Error::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml; got {other}"
            ))),
        }
    }
}

/// Applies a merge, JSON or strategic patch to `current`.
///
/// # Errors
/// 400 for a body that is not a patch, 422 for a JSON patch that does not apply.
pub fn patch(current: &Value, kind: PatchType, body: &Value) -> Result<Value> {
    let mut doc = current.clone();
    match kind {
        PatchType::Merge => json_patch::merge(&mut doc, body),
        PatchType::Strategic => strategic(&mut doc, body),
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(body.clone())
                .map_err(|e| Error::BadRequest(format!("error decoding patch: {e}")))?;
            json_patch::patch(&mut doc, &ops).map_err(|e| Error::Invalid {
                message: format!("the server rejected our request due to an error in our request: {e}"),
                details: Details::default(),
            })?;
        }
        PatchType::Apply => {
            return Err(Error::BadRequest("apply patches are not merged here".into()));
        }
    }
    Ok(doc)
}

fn strategic(doc: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *doc = patch.clone();
        return;
    };
    if !doc.is_object() {
        *doc = Value::Object(serde_json::Map::new());
    }
    let d = doc.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                d.remove(k);
            }
            Value::Object(_) => strategic(d.entry(k.clone()).or_insert(Value::Null), v),
            Value::Array(items)
                if associative(items)
                    && d.get(k)
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.is_empty() || associative(a)) =>
            {
                let target = d.get_mut(k).and_then(Value::as_array_mut).expect("checked above");
                for item in items {
                    let pos = target.iter().position(|t| t.get("name") == item.get("name"));
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    match (pos, delete) {
                        (Some(i), true) => {
                            target.remove(i);
                        }
                        (Some(i), false) => strategic(&mut target[i], item),
                        (None, false) => {
                            let mut fresh = Value::Null;
                            strategic(&mut fresh, item);
                            target.push(fresh);
                        }
                        (None, true) => {}
                    }
                }
            }
            _ => {
                d.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_replaces_lists_and_null_deletes() {
        let cur = json!({"a": 1, "b": {"c": 2}, "l": [1, 2]});
        let out = patch(&cur, PatchType::Merge, &json!({"a": null, "b": {"d": 3}, "l": [3]})).unwrap();
        assert_eq!(out, json!({"b": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn strategic_patch_merges_containers_by_name() {
        let cur = json!({"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]});
        let out = patch(
            &cur,
            PatchType::Strategic,
            &json!({"containers": [{"name": "b", "image": "z"}]}),
        )
        .unwrap();
        assert_eq!(out["containers"][0]["image"], "x");
        assert_eq!(out["containers"][1]["image"], "z");
    }

    #[test]
    fn a_failing_json_patch_test_is_unprocessable() {
        let cur = json!({"a": 1});
        let err = patch(
            &cur,
            PatchType::Json,
            &json!([{"op": "test", "path": "/a", "value": 2}]),
        )
        .unwrap_err();
        assert_eq!(err.code(), 422);
    }
}
