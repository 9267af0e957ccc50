//! `/openapi/v3`: the index of group versions and one OpenAPI 3 document per
//! served group version, as kubectl reads them: `kubectl explain` walks the
//! component schemas (each kind marked with its
//! `x-kubernetes-group-version-kind`), and every kubectl write checks the
//! patch operations' `fieldValidation` parameter to leave field validation
//! to the server.
//!
//! The schemas are generated from the `k8s-openapi` types (their schemars
//! implementations carry the upstream names, descriptions and types), so they
//! cover the built-in kinds of the Kubernetes version kubesim reports.
//! Custom resources (HTTPRoute) have no schema, and the documents' paths list
//! only the patch operation of each kind. `/openapi/v2` carries the same
//! schemas as Swagger 2.0 definitions, without paths.

use std::sync::LazyLock;

use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::{apps, authorization, autoscaling, batch, coordination, core, events, networking, storage};
use k8s_openapi::schemars::JsonSchema;
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::resource;
use crate::status::Error;

/// The component schemas of every built-in kind and all they reference.
static SCHEMAS: LazyLock<Map<String, Value>> = LazyLock::new(schemas);

/// Registers `T` and what it references, and marks it as the schema of
/// `group/version` `kind`.
fn kind<T: JsonSchema + k8s_openapi::Resource>(generator: &mut SchemaGenerator, kinds: &mut Vec<(String, Value)>) {
    generator.subschema_for::<T>();
    kinds.push((
        T::schema_name().into_owned(),
        json!([{ "group": T::GROUP, "version": T::VERSION, "kind": T::KIND }]),
    ));
}

fn schemas() -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut kinds = Vec::new();
    let g = &mut generator;
    let k = &mut kinds;
    kind::<core::v1::Namespace>(g, k);
    kind::<core::v1::Node>(g, k);
    kind::<core::v1::Pod>(g, k);
    kind::<core::v1::Service>(g, k);
    kind::<core::v1::Endpoints>(g, k);
    kind::<core::v1::ConfigMap>(g, k);
    kind::<core::v1::Secret>(g, k);
    kind::<core::v1::ResourceQuota>(g, k);
    kind::<core::v1::LimitRange>(g, k);
    kind::<core::v1::Event>(g, k);
    kind::<core::v1::PersistentVolumeClaim>(g, k);
    kind::<core::v1::PersistentVolume>(g, k);
    kind::<core::v1::ServiceAccount>(g, k);
    kind::<core::v1::ReplicationController>(g, k);
    kind::<apps::v1::Deployment>(g, k);
    kind::<apps::v1::StatefulSet>(g, k);
    kind::<apps::v1::DaemonSet>(g, k);
    kind::<apps::v1::ReplicaSet>(g, k);
    kind::<networking::v1::NetworkPolicy>(g, k);
    kind::<networking::v1::Ingress>(g, k);
    kind::<autoscaling::v2::HorizontalPodAutoscaler>(g, k);
    kind::<coordination::v1::Lease>(g, k);
    kind::<batch::v1::Job>(g, k);
    kind::<batch::v1::CronJob>(g, k);
    kind::<events::v1::Event>(g, k);
    kind::<storage::v1::StorageClass>(g, k);
    kind::<authorization::v1::SelfSubjectAccessReview>(g, k);
    let mut defs = generator.take_definitions(true);
    for (name, gvk) in kinds {
        if let Some(Value::Object(schema)) = defs.get_mut(&name) {
            schema.insert("x-kubernetes-group-version-kind".into(), gvk);
        }
    }
    defs
}

/// The OpenAPI v3 index: one document per group version.
pub(crate) async fn root() -> Response {
    let mut paths = Map::new();
    let mut gvs = vec![("", "v1")];
    gvs.extend(resource::groups());
    for (g, v) in gvs {
        let key = if g.is_empty() {
            format!("api/{v}")
        } else {
            format!("apis/{g}/{v}")
        };
        paths.insert(
            key.clone(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{key}?hash=kubesim") }),
        );
    }
    axum::Json(json!({ "paths": paths })).into_response()
}

/// The media type kubectl asks `/openapi/v2` for: gnostic's protobuf
/// `openapi_v2.Document`.
const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The Swagger 2.0 definitions: the v3 component schemas with their
/// references pointing into `#/definitions/`.
static V2_DEFINITIONS: LazyLock<Map<String, Value>> =
    LazyLock::new(|| SCHEMAS.iter().map(|(name, s)| (name.clone(), v2_schema(s))).collect());

fn v2_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(m) => {
            // A described reference is `allOf: [{$ref}]` in OpenAPI 3 and a
            // `$ref` beside the description in the API server's Swagger 2.0,
            // which is what kubectl's v2 reader follows.
            if let Some([only]) = m.get("allOf").and_then(Value::as_array).map(Vec::as_slice)
                && let Some(reference) = only
                    .get("$ref")
                    .filter(|_| only.as_object().is_some_and(|o| o.len() == 1))
            {
                let mut flat = m.clone();
                flat.remove("allOf");
                flat.insert("$ref".into(), reference.clone());
                return v2_schema(&Value::Object(flat));
            }
            Value::Object(
                m.iter()
                    // OpenAPI 3's `nullable` has no Swagger 2.0 counterpart.
                    .filter(|(k, v)| !(k.as_str() == "nullable" && v.is_boolean()))
                    .map(|(k, v)| {
                        let v = match (k.as_str(), v) {
                            ("$ref", Value::String(r)) => json!(r.replace("#/components/schemas/", "#/definitions/")),
                            _ => v2_schema(v),
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(v2_schema).collect()),
        other => other.clone(),
    }
}

/// `/openapi/v2`: the Swagger 2.0 document with the definitions of every
/// built-in kind (each marked with its `x-kubernetes-group-version-kind`)
/// and no paths, in gnostic's protobuf form when asked for it (as kubectl
/// does) or in JSON. kubectl up to 1.28 loads it before `apply` and `diff`
/// (without paths, `apply` computes its patches from its built-in types, as
/// it does for a kind the document lacks); `kubectl explain
/// --output=plaintext-openapiv2` reads the definitions.
pub(crate) async fn v2(headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|h| h.to_str().ok()).unwrap_or("");
    if accept.contains(V2_PROTOBUF) {
        // Answered without the `@`, which Go's media type parser refuses.
        let content_type = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, content_type)],
            V2_PROTOBUF_DOCUMENT.clone(),
        )
            .into_response();
    }
    axum::Json(json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": "v1.35.0" },
        "paths": {},
        "definitions": &*V2_DEFINITIONS,
    }))
    .into_response()
}

static V2_PROTOBUF_DOCUMENT: LazyLock<Vec<u8>> = LazyLock::new(gnostic::document);

/// The `openapi_v2` protobuf messages of gnostic (`OpenAPIv2.proto`), as
/// far as a document of definitions needs them: `Document` (swagger 1,
/// info 2, paths 8, definitions 9), `Schema` and its helpers. Values that
/// are JSON in Swagger (defaults, enums, vendor extensions) travel as the
/// `yaml` of an `Any`, which JSON text is.
mod gnostic {
    use serde_json::Value;

    fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
        varint(out, u64::from(field << 3 | u32::from(wire)));
    }

    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(u8::try_from(v & 0x7f).unwrap_or(0) | 0x80);
            v >>= 7;
        }
        out.push(u8::try_from(v).unwrap_or(0));
    }

    fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
        key(out, field, 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }

    fn int(out: &mut Vec<u8>, field: u32, v: &Value) {
        if let Some(n) = v.as_i64() {
            key(out, field, 0);
            #[expect(clippy::cast_sign_loss, reason = "protobuf int64 is written as its two's complement")]
            varint(out, n as u64);
        }
    }

    fn boolean(out: &mut Vec<u8>, field: u32, v: &Value) {
        if let Some(b) = v.as_bool() {
            key(out, field, 0);
            varint(out, u64::from(b));
        }
    }

    fn double(out: &mut Vec<u8>, field: u32, v: &Value) {
        if let Some(n) = v.as_f64() {
            key(out, field, 1);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }

    /// An `Any` carrying the value as YAML (JSON text).
    fn any(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        bytes(&mut out, 2, serde_json::to_string(v).unwrap_or_default().as_bytes());
        out
    }

    fn named(name: &str, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        bytes(&mut out, 1, name.as_bytes());
        bytes(&mut out, 2, value);
        out
    }

    pub(super) fn schema(s: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        let Value::Object(m) = s else { return out };
        for (k, v) in m {
            let o = &mut out;
            match k.as_str() {
                "$ref" | "format" | "title" | "description" | "pattern" => {
                    let field = match k.as_str() {
                        "$ref" => 1,
                        "format" => 2,
                        "title" => 3,
                        "description" => 4,
                        _ => 13,
                    };
                    if let Some(text) = v.as_str() {
                        bytes(o, field, text.as_bytes());
                    }
                }
                "default" => bytes(o, 5, &any(v)),
                "multipleOf" => double(o, 6, v),
                "maximum" => double(o, 7, v),
                "exclusiveMaximum" => boolean(o, 8, v),
                "minimum" => double(o, 9, v),
                "exclusiveMinimum" => boolean(o, 10, v),
                "maxLength" => int(o, 11, v),
                "minLength" => int(o, 12, v),
                "maxItems" => int(o, 14, v),
                "minItems" => int(o, 15, v),
                "uniqueItems" => boolean(o, 16, v),
                "maxProperties" => int(o, 17, v),
                "minProperties" => int(o, 18, v),
                "required" => {
                    for r in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
                        bytes(o, 19, r.as_bytes());
                    }
                }
                "enum" => {
                    for e in v.as_array().into_iter().flatten() {
                        bytes(o, 20, &any(e));
                    }
                }
                "additionalProperties" => {
                    let mut item = Vec::new();
                    match v {
                        Value::Bool(b) => boolean(&mut item, 2, &Value::Bool(*b)),
                        other => bytes(&mut item, 1, &schema(other)),
                    }
                    bytes(o, 21, &item);
                }
                "type" => {
                    let mut item = Vec::new();
                    let types = match v {
                        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                        other => other.as_str().into_iter().collect::<Vec<_>>(),
                    };
                    for t in types {
                        bytes(&mut item, 1, t.as_bytes());
                    }
                    bytes(o, 22, &item);
                }
                "items" => {
                    let mut item = Vec::new();
                    match v {
                        Value::Array(schemas) => {
                            for s in schemas {
                                bytes(&mut item, 1, &schema(s));
                            }
                        }
                        one => bytes(&mut item, 1, &schema(one)),
                    }
                    bytes(o, 23, &item);
                }
                "allOf" => {
                    for s in v.as_array().into_iter().flatten() {
                        bytes(o, 24, &schema(s));
                    }
                }
                "properties" => {
                    let mut props = Vec::new();
                    for (name, s) in v.as_object().into_iter().flatten() {
                        bytes(&mut props, 1, &named(name, &schema(s)));
                    }
                    bytes(o, 25, &props);
                }
                "readOnly" => boolean(o, 27, v),
                x if x.starts_with("x-") => bytes(o, 31, &named(x, &any(v))),
                _ => {}
            }
        }
        out
    }

    /// The whole document: swagger, info, empty paths and the definitions.
    pub(super) fn document() -> Vec<u8> {
        let mut out = Vec::new();
        bytes(&mut out, 1, b"2.0");
        let mut info = Vec::new();
        bytes(&mut info, 1, b"Kubernetes");
        bytes(&mut info, 2, b"v1.35.0");
        bytes(&mut out, 2, &info);
        bytes(&mut out, 8, &[]);
        let mut definitions = Vec::new();
        for (name, s) in super::V2_DEFINITIONS.iter() {
            bytes(&mut definitions, 1, &named(name, &schema(s)));
        }
        bytes(&mut out, 9, &definitions);
        out
    }
}

/// The document of one group version (`/openapi/v3/apis/apps/v1`).
pub(crate) async fn group_version(uri: Uri) -> Response {
    let gv = uri.path().trim_start_matches("/openapi/v3/");
    let (group, version) = match gv.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => (String::new(), (*v).to_string()),
        ["apis", g, v] => ((*g).to_string(), (*v).to_string()),
        _ => return not_found(),
    };
    match document(&group, &version) {
        Some(doc) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&doc).unwrap_or_default(),
        )
            .into_response(),
        None => not_found(),
    }
}

fn not_found() -> Response {
    Error::NotFound {
        message: "the server could not find the requested resource".into(),
        details: crate::status::Details::default(),
    }
    .into_response()
}

/// The patch operation of each kind of the group version, with its
/// `fieldValidation` parameter, and every component schema.
fn document(group: &str, version: &str) -> Option<Value> {
    let mut paths = Map::new();
    for r in resource::RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let prefix = if r.group.is_empty() {
            format!("/api/{}", r.version)
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let path = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        let query =
            |name: &str| json!({ "name": name, "in": "query", "schema": { "type": "string", "uniqueItems": true } });
        paths.insert(
            path,
            json!({
                "patch": {
                    "operationId": format!("patch{}", r.kind),
                    "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")],
                    "responses": { "200": { "description": "OK" } },
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": { "group": r.group, "version": r.version, "kind": r.kind },
                },
            }),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.35.0" },
        "paths": paths,
        "components": { "schemas": &*SCHEMAS },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_builtin_kind_has_a_schema_marked_with_its_kind() {
        for r in resource::RESOURCES.iter().filter(|r| !r.group.contains("gateway")) {
            let marked = SCHEMAS.values().any(|s| {
                s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|gvks| gvks.iter().any(|g| g["kind"] == r.kind && g["group"] == r.group))
            });
            assert!(marked, "{} has no schema", r.kind);
        }
        let spec = &SCHEMAS["io.k8s.api.apps.v1.DeploymentSpec"];
        assert!(spec["properties"]["replicas"]["description"].is_string());
    }
}
