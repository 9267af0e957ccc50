//! Content negotiation: which representation of an object the client's
//! `Accept` header asks for (JSON, protobuf, a meta.k8s.io Table or
//! PartialObjectMetadata) and producing it, in the client's order of
//! preference, as the API server does.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::protobuf;
use crate::status::Error;
use crate::table;

/// One representation a client accepts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Representation {
    /// The object itself, as JSON.
    Json,
    /// The object itself, in the protobuf encoding.
    Protobuf,
    /// A `meta.k8s.io` Table of the object(s), as JSON; the version (`v1`).
    Table(String),
    /// The metadata only (`PartialObjectMetadata` or its List), as JSON.
    Metadata(String),
}

/// The representations a request accepts, most preferred first.
#[derive(Debug, Clone)]
pub(crate) struct Accept(Vec<Representation>);

impl Accept {
    /// Reads the `Accept` header of a request (a watch or not); no header
    /// accepts JSON. A header naming nothing kubesim produces accepts
    /// nothing: [`Accept::respond`] then answers 406.
    pub(crate) fn parse(headers: &HeaderMap, watch: bool) -> Self {
        let Some(header) = headers.get(header::ACCEPT).and_then(|h| h.to_str().ok()) else {
            return Self(vec![Representation::Json]);
        };
        let mut ranked: Vec<(f32, Representation)> = Vec::new();
        for entry in header.split(',') {
            let mut parts = entry.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let params: HashMap<String, String> = parts
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_string()))
                .collect();
            let q: f32 = params.get("q").and_then(|q| q.parse().ok()).unwrap_or(1.0);
            if q <= 0.0 {
                continue;
            }
            let json_like = matches!(media.as_str(), "application/json" | "application/*" | "*/*");
            let representation = match params.get("as").map(String::as_str) {
                None if json_like => Representation::Json,
                None if protobuf::is_protobuf(&media) => Representation::Protobuf,
                Some("Table") if json_like && params.get("g").is_some_and(|g| g == "meta.k8s.io") => {
                    match params.get("v").map(String::as_str) {
                        Some(v @ ("v1" | "v1beta1")) => Representation::Table(v.to_string()),
                        _ => continue,
                    }
                }
                Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                    if json_like && params.get("g").is_some_and(|g| g == "meta.k8s.io") && !watch =>
                {
                    match params.get("v").map(String::as_str) {
                        Some(v @ ("v1" | "v1beta1")) => Representation::Metadata(v.to_string()),
                        _ => continue,
                    }
                }
                _ => continue,
            };
            ranked.push((q, representation));
        }
        // A stable sort keeps the client's order among equal weights.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        Self(ranked.into_iter().map(|(_, r)| r).collect())
    }

    /// The most preferred representation, if any is acceptable.
    pub(crate) fn first(&self) -> Option<&Representation> {
        self.0.first()
    }

    /// The representation of a watch's events: JSON, Tables, or protobuf
    /// frames if the kind has a protobuf form.
    pub(crate) fn for_watch(&self, protobuf_form: bool) -> Option<&Representation> {
        self.0.iter().find(|r| match r {
            Representation::Protobuf => protobuf_form,
            Representation::Json | Representation::Table(_) => true,
            Representation::Metadata(_) => false,
        })
    }

    /// The answer to a read (`get`/`list`, `transform` true) or a write of
    /// `body`: the first representation the client accepts that this object
    /// has. Tables and metadata only answer reads, as on the API server.
    pub(crate) fn respond(&self, code: StatusCode, body: &Value, transform: bool) -> Response {
        for representation in &self.0 {
            match representation {
                Representation::Json => return json(code, body),
                Representation::Protobuf => {
                    if let Some(bytes) = protobuf::encode(body) {
                        return (code, [(header::CONTENT_TYPE, protobuf::MEDIA_TYPE)], bytes).into_response();
                    }
                }
                Representation::Table(version) if transform => {
                    return json(code, &table::of(body, version));
                }
                Representation::Metadata(version) if transform => {
                    return json(code, &metadata_of(body, version));
                }
                Representation::Table(_) | Representation::Metadata(_) => {}
            }
        }
        Error::NotAcceptable(format!(
            "only the following media types are accepted: application/json, {}",
            protobuf::MEDIA_TYPE
        ))
        .into_response()
    }
}

fn json(code: StatusCode, body: &Value) -> Response {
    (code, axum::Json(body)).into_response()
}

/// `PartialObjectMetadata` of an object, or `PartialObjectMetadataList` of a list.
fn metadata_of(body: &Value, version: &str) -> Value {
    let api_version = format!("meta.k8s.io/{version}");
    let partial = |obj: &Value| {
        json!({
            "kind": "PartialObjectMetadata", "apiVersion": api_version,
            "metadata": obj["metadata"],
        })
    };
    match body["items"].as_array() {
        Some(items) => json!({
            "kind": "PartialObjectMetadataList", "apiVersion": api_version, "metadata": body["metadata"],
            "items": items.iter().map(partial).collect::<Vec<_>>(),
        }),
        None => partial(body),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn accept(value: &str, watch: bool) -> Accept {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        Accept::parse(&headers, watch)
    }

    #[test]
    fn kubectl_get_asks_for_a_table_then_json() {
        let a = accept(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,\
             application/json",
            false,
        );
        assert_eq!(
            a.0,
            vec![
                Representation::Table("v1".into()),
                Representation::Table("v1beta1".into()),
                Representation::Json
            ]
        );
    }

    #[test]
    fn protobuf_is_preferred_in_order_and_weight() {
        let a = accept("application/vnd.kubernetes.protobuf,application/json", false);
        assert_eq!(a.first(), Some(&Representation::Protobuf));
        let a = accept("application/vnd.kubernetes.protobuf;q=0.5,application/json", false);
        assert_eq!(a.first(), Some(&Representation::Json));
        // Watches of kinds without a protobuf form (custom resources) fall back to JSON.
        let a = accept(
            "application/vnd.kubernetes.protobuf;stream=watch,application/json",
            true,
        );
        assert_eq!(a.for_watch(true), Some(&Representation::Protobuf));
        assert_eq!(a.for_watch(false), Some(&Representation::Json));
        let refused = accept("text/html", false).respond(StatusCode::OK, &json!({}), true);
        assert_eq!(refused.status(), StatusCode::NOT_ACCEPTABLE);
    }
}
