//! What the gateway accepts of a request before a handler sees it: headers of
//! a bounded size, and path and query parameters that are UTF-8 text free of
//! characters that no name or text may hold. [`Path`] and [`Query`] stand in
//! for axum's extractors so that every refusal is problem+json naming the
//! parameter, where axum's own rejections are plain text naming none.

use axum::extract::{FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kernel::error::Problem;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// Most bytes of headers (names and values) a request may carry. Far above
/// what a browser or a token sends; hyper itself stops at about 400 KiB with
/// a bare 431, so this limit is what callers meet, as problem+json.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Middleware answering 431 problem+json to a request whose headers exceed
/// [`MAX_HEADER_BYTES`].
pub async fn bounded_headers(request: Request, next: Next) -> Response {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > MAX_HEADER_BYTES {
        return ApiError(Box::new(Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE.as_u16(),
            "headers-too-large",
            "Request headers too large",
            format!("the request's headers are {size} bytes; at most {MAX_HEADER_BYTES} are accepted"),
        )))
        .into_response();
    }
    next.run(request).await
}

/// Longest text a JSON string of a request body may hold, in characters,
/// where its field documents no shorter limit (names are DNS labels of 63).
pub const MAX_TEXT: usize = 64 * 1024;
/// Longest value of a path or query parameter, in characters.
pub const MAX_PARAMETER: usize = 1024;

/// Why a piece of text cannot be taken, if it cannot: a NUL (which no
/// database column stores), or a character that makes text display other
/// than it reads (bidirectional overrides and isolates, as in "Trojan
/// Source") or hides in it (zero-width characters and the byte-order mark).
pub fn refusal(text: &str) -> Option<String> {
    let bad = text.chars().find(|c| {
        matches!(
            c,
            '\0' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
        )
    })?;
    Some(if bad == '\0' {
        "must not contain a NUL character".to_string()
    } else {
        format!(
            "must not contain the invisible or direction-changing character U+{:04X}",
            u32::from(bad)
        )
    })
}

/// A refusal of `field`'s text as a 400 problem.
fn check(field: &str, text: &str) -> Result<(), ApiError> {
    if text.chars().count() > MAX_PARAMETER {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {MAX_PARAMETER} characters"),
        ));
    }
    refusal(text).map_or(Ok(()), |why| Err(ApiError::invalid(field, why)))
}

/// Path parameters, each checked by [`refusal`]; a parameter that is not
/// UTF-8 or does not parse is a 400 naming it.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::{PathRejection, RawPathParamsRejection};

        let raw = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| match e {
                RawPathParamsRejection::InvalidUtf8InPathParam(e) => {
                    // The rejection names the parameter only in its text.
                    let text = e.body_text();
                    let key = text.split('`').nth(1).unwrap_or("path").to_string();
                    ApiError::invalid(key, "must be UTF-8 text once percent-decoded")
                }
                other => ApiError::invalid("path", other.body_text()),
            })?;
        let mut only = None;
        for (key, value) in &raw {
            check(key, value)?;
            only = Some(key.to_string());
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|e| match e {
                PathRejection::FailedToDeserializePathParams(e) => {
                    let field = match e.kind() {
                        ErrorKind::ParseErrorAtKey { key, .. }
                        | ErrorKind::InvalidUtf8InPathParam { key }
                        | ErrorKind::DeserializeError { key, .. } => key.clone(),
                        _ => only.clone().unwrap_or_else(|| "path".into()),
                    };
                    ApiError::invalid(field, e.body_text())
                }
                other => ApiError::invalid("path", other.body_text()),
            })
    }
}

/// A query string, each parameter checked by [`refusal`]; a parameter that is
/// not UTF-8 or does not parse is a 400 naming it.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key).map_err(|()| ApiError::invalid("query", "a parameter name is not UTF-8 text"))?;
            let value = decode(value).map_err(|()| ApiError::invalid(key.as_str(), "must be UTF-8 text"))?;
            check("query", &key)?;
            check(&key, &value)?;
        }
        let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let field = if path == "." || path.is_empty() {
                crate::json::missing_field(&inner).unwrap_or_else(|| "query".into())
            } else {
                path
            };
            ApiError::invalid(field, inner)
        })
    }
}

/// A form-encoded key or value as text: `+` is a space, `%XX` a byte.
fn decode(raw: &str) -> Result<String, ()> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_with_nul_bidi_overrides_or_zero_width_characters_is_refused() {
        for bad in ["a\0b", "abc\u{202E}txt", "x\u{200B}", "\u{FEFF}name", "a\u{2066}b"] {
            assert!(refusal(bad).is_some(), "{bad:?}");
        }
        for ok in ["acme", "Société Générale", "日本語", "emoji 🚀", "tab\tand\nnewline"] {
            assert_eq!(refusal(ok), None, "{ok:?}");
        }
    }

    #[test]
    fn form_encoding_decodes_plus_and_percent_and_refuses_broken_utf8() {
        assert_eq!(decode("a+b%20c").unwrap(), "a b c");
        assert_eq!(decode("%C3%A9").unwrap(), "é");
        assert!(decode("%FF").is_err());
    }
}
