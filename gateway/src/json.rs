//! A JSON body extractor whose errors are problem+json naming the failing
//! field (`display_name: invalid type: integer, expected a string`), where
//! axum's own rejection names none.

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use kernel::error::Problem;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// A JSON request body.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("?"));
        if !content_type.is_some_and(is_json) {
            return Err(ApiError(Box::new(Problem {
                field: Some("Content-Type".into()),
                ..Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE.as_u16(),
                    "unsupported-media-type",
                    "Unsupported media type",
                    "the body must be JSON sent with Content-Type: application/json (charset utf-8, if any)",
                )
            })));
        }
        let bytes = bytes::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError(Box::new(Problem::new(
                    413,
                    "payload-too-large",
                    "Request body too large",
                    format!("the body may be at most {} bytes", crate::MAX_BODY),
                )))
            } else {
                ApiError::invalid("body", format!("cannot be read: {e}"))
            }
        })?;
        // One document, nothing after it (a second document or stray bytes
        // would be a broken or smuggled body), and no string or key holding
        // text that no name or value may: checked on the document, which
        // still says where each string was.
        let mut document: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::invalid("body", format!("is not one JSON document: {e}")))?;
        refuse_bad_text(&document, &mut String::new())?;
        whole_numbers(&mut document);
        let value = serde_path_to_error::deserialize(document).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let field = if path == "." || path.is_empty() {
                missing_field(&inner.to_string()).unwrap_or("body".into())
            } else {
                path
            };
            ApiError::invalid(field, inner.to_string())
        })?;
        Ok(Body(value))
    }
}

/// A number written with a zero fraction (`3.0`, `1e3`) as the integer it
/// is: JSON Schema's `integer`, which the document uses, counts it as one,
/// and serde would refuse it where the field is an integer type.
fn whole_numbers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                // Within ±2^53 a float holds the integer exactly.
                if f.abs() <= 9_007_199_254_740_992.0 {
                    #[allow(clippy::cast_possible_truncation)]
                    let whole = f as i64;
                    *n = whole.into();
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// Whether a `Content-Type` is JSON as the API takes it: `application/json`
/// in any case, with no parameter but `charset=utf-8` (RFC 8259 JSON is
/// UTF-8; `application/jsonx` or `charset=utf-16` is not what we read).
pub(crate) fn is_json(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        && parts.all(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            name.trim().eq_ignore_ascii_case("charset") && value.eq_ignore_ascii_case("utf-8")
        })
}

/// Refuses a document holding a key or string that [`crate::request::refusal`]
/// refuses, naming it by its path (`labels.team`, `ports[0].name`).
fn refuse_bad_text(value: &serde_json::Value, path: &mut String) -> Result<(), ApiError> {
    use serde_json::Value;
    let field = |path: &str| {
        if path.is_empty() {
            "body".to_string()
        } else {
            path.to_string()
        }
    };
    match value {
        Value::String(text) if text.chars().count() > crate::request::MAX_TEXT => Err(ApiError::invalid(
            field(path.as_str()),
            format!("must be at most {} characters", crate::request::MAX_TEXT),
        )),
        Value::String(text) => match crate::request::refusal(text) {
            Some(why) => Err(ApiError::invalid(field(path.as_str()), why)),
            None => Ok(()),
        },
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                refuse_bad_text(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Object(members) => {
            for (key, item) in members {
                // A key is a name (a label, a resource, an item): bounded like
                // a parameter, so no error naming it outgrows what a service's
                // answer can carry back.
                if key.chars().count() > crate::request::MAX_PARAMETER {
                    return Err(ApiError::invalid(
                        field(path.as_str()),
                        format!("a key is longer than {} characters", crate::request::MAX_PARAMETER),
                    ));
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                if let Some(why) = crate::request::refusal(key) {
                    return Err(ApiError::invalid(field(path.as_str()), format!("the key {why}")));
                }
                refuse_bad_text(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// serde reports a missing field at the parent's path; take the name from its message.
pub(crate) fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

/// An optional JSON body: none when the request has no body at all.
impl<S: Send + Sync, T: DeserializeOwned> axum::extract::OptionalFromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let empty = req.headers().get(header::CONTENT_TYPE).is_none()
            && req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .is_none_or(|l| l == "0");
        if empty {
            Ok(None)
        } else {
            <Self as FromRequest<S>>::from_request(req, state).await.map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// What the document calls an integer, the body takes: `3812.0` into a
    /// `u32`, while `1.5` stays a fraction that an integer field refuses.
    #[test]
    fn a_number_with_a_zero_fraction_is_an_integer() {
        let mut body = json!({"replicas": 3812.0, "nested": [1e3, 1.5, -2.0]});
        whole_numbers(&mut body);
        assert_eq!(body, json!({"replicas": 3812, "nested": [1000, 1.5, -2]}));
        assert_eq!(serde_json::from_value::<u32>(body["replicas"].clone()).unwrap(), 3812);
    }
}
