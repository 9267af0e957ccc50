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
//! only the patch operation of each kind. `/openapi/v2` is an empty Swagger
//! document, there because kubectl up to 1.28 loads it before applying.

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

/// `/openapi/v2`: a Swagger 2.0 document without paths or definitions.
/// kubectl up to 1.28 loads it before `apply` and `diff` (and fails on a
/// 404); `kubectl explain` reads v3. In protobuf, `swagger` is field 1 and
/// `info` (`title` 1, `version` 2) field 2 of the document.
pub(crate) async fn v2(headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|h| h.to_str().ok()).unwrap_or("");
    if accept.contains(V2_PROTOBUF) {
        let mut info = vec![0x0a, 10];
        info.extend_from_slice(b"Kubernetes");
        info.extend_from_slice(&[0x12, 7]);
        info.extend_from_slice(b"v1.35.0");
        let mut doc = vec![0x0a, 3];
        doc.extend_from_slice(b"2.0");
        doc.extend_from_slice(&[0x12, u8::try_from(info.len()).unwrap_or(0)]);
        doc.extend_from_slice(&info);
        // Answered without the `@`, which Go's media type parser refuses.
        let content_type = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
        return (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], doc).into_response();
    }
    axum::Json(json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": "v1.35.0" },
        "paths": {},
    }))
    .into_response()
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
