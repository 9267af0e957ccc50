//! The HTTP edge: discovery (`/api`, `/apis`, `/version`, health), the
//! resource routes of every served kind with their verbs and subresources
//! (`status`, `scale`, `log`), content negotiation of patches, and the fault
//! layer in front of it all.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use rand::Rng;
use serde_json::{Value, json};

use crate::access_review;
use crate::apply::Subresource;
use crate::fault::{Fault, FaultHandle};
use crate::negotiation::{Accept, Representation};
use crate::openapi;
use crate::patch::{self, PatchType};
use crate::protobuf;
use crate::resource::{self, ResourceId, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{Error, Result};
use crate::store::{ListQuery, Store, WriteOptions, meta_str};
use crate::table;
use crate::watch::{self, WatchRequest};

/// What the HTTP handlers share.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub store: Arc<Store>,
    pub faults: FaultHandle,
    pub bookmark_interval: Duration,
}

/// The Kubernetes API router of one cluster.
pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        // Clients ask for `/version/`, `/api/` and `/apis/` too (the Python
        // client's generated paths); the API server serves both spellings.
        .route("/version", get(version))
        .route("/version/", get(version))
        .route("/healthz", get(healthy))
        .route("/readyz", get(healthy))
        .route("/livez", get(healthy))
        .route("/openapi/v2", get(openapi::v2))
        .route("/openapi/v3", get(openapi::root))
        .route("/openapi/v3/{*gv}", get(openapi::group_version))
        .route("/api", get(core_versions))
        .route("/api/", get(core_versions))
        .route("/apis", get(group_list))
        .route("/apis/", get(group_list))
        .route("/api/{*rest}", any(core))
        .route("/apis/{*rest}", any(grouped))
        .fallback(not_found)
        .layer(middleware::from_fn(negotiate_errors))
        .layer(middleware::from_fn_with_state(state.clone(), fault_layer))
        .with_state(state)
}

async fn fault_layer(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let fault = state.faults.get();
    if let Some(delay) = fault.delay() {
        tokio::time::sleep(delay).await;
    }
    match fault {
        Fault::Healthy | Fault::Slow { .. } => next.run(req).await,
        Fault::NotReady if req.uri().path() == "/readyz" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed\n",
        )
            .into_response(),
        Fault::NotReady => next.run(req).await,
        Fault::NoWatch => {
            let watching = req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|kv| matches!(kv, "watch=1" | "watch=true")));
            if watching {
                Error::Unavailable(
                    "the server is currently unable to handle the request (kubesim refuses watches)".into(),
                )
                .into_response()
            } else {
                next.run(req).await
            }
        }
        Fault::Flaky { share } => {
            let (fail, internal) = {
                let mut rng = rand::rng();
                (rng.random_bool(share.clamp(0.0, 1.0)), rng.random_bool(0.5))
            };
            if !fail {
                next.run(req).await
            } else if internal {
                Error::Internal("Internal error occurred: kubesim injected a flaky failure".into()).into_response()
            } else {
                Error::Unavailable("the server is currently unable to handle the request (kubesim flaky fault)".into())
                    .into_response()
            }
        }
        Fault::Blackhole => {
            state.faults.until(|f| f != Fault::Blackhole).await;
            closing(Error::Unavailable(
                "the server is currently unable to handle the request".into(),
            ))
        }
        Fault::Down | Fault::Partition => closing(Error::Unavailable(
            "the server is currently unable to handle the request".into(),
        )),
    }
}

/// The largest error body re-encoded as protobuf (a `Status` is small).
const ERROR_BODY_LIMIT: usize = 1 << 20;

/// Errors are `Status` objects in the representation the client negotiated,
/// as the API server writes them: protobuf when `Accept` prefers protobuf.
/// 406 and 415 stay JSON, since they say the negotiation itself failed (for
/// a custom resource, protobuf is not on offer at all).
async fn negotiate_errors(req: Request, next: Next) -> Response {
    let wants_protobuf = Accept::parse(req.headers(), false).first() == Some(&Representation::Protobuf);
    let resp = next.run(req).await;
    let code = resp.status();
    let json_error = (code.is_client_error() || code.is_server_error())
        && !matches!(code, StatusCode::NOT_ACCEPTABLE | StatusCode::UNSUPPORTED_MEDIA_TYPE)
        && resp
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !wants_protobuf || !json_error {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, ERROR_BODY_LIMIT).await else {
        return Error::Internal("the error body could not be read".into()).into_response();
    };
    let encoded = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(|status| status["kind"] == "Status")
        .and_then(|status| protobuf::encode(&status));
    match encoded {
        Some(pb) => {
            parts
                .headers
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(protobuf::MEDIA_TYPE));
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(pb))
        }
        None => Response::from_parts(parts, Body::from(bytes)),
    }
}

/// An error on a connection that must not be reused.
fn closing(err: Error) -> Response {
    let mut resp = err.into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    (code, Json(body)).into_response()
}

async fn not_found() -> Response {
    Error::NotFound {
        message: "the server could not find the requested resource".into(),
        details: crate::status::Details::default(),
    }
    .into_response()
}

async fn healthy() -> &'static str {
    "ok"
}

async fn version() -> Json<Value> {
    Json(json!({
        "major": "1", "minor": "35", "emulationMajor": "1", "emulationMinor": "35",
        "gitVersion": "v1.35.0-kubesim", "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0",
        "compiler": "gc", "platform": "linux/amd64",
    }))
}

async fn core_versions(headers: HeaderMap) -> Json<Value> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    Json(json!({
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": host }],
    }))
}

fn group_json(group: &str, version: &str) -> Value {
    let gv = json!({ "groupVersion": format!("{group}/{version}"), "version": version });
    json!({ "name": group, "versions": [gv], "preferredVersion": gv })
}

async fn group_list() -> Json<Value> {
    let mut groups: Vec<Value> = resource::groups().into_iter().map(|(g, v)| group_json(g, v)).collect();
    groups.push(group_json(access_review::GROUP, access_review::VERSION));
    Json(json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups }))
}

fn resource_list(group: &str, version: &str) -> Option<Value> {
    let kinds: Vec<&ResourceType> = resource::RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in kinds {
        resources.push(json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": r.short_names, "categories": r.categories(),
        }));
        for sub in r.subresources() {
            let mut entry = json!({
                "name": format!("{}/{sub}", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["get", "patch", "update"],
            });
            match sub {
                "scale" => {
                    entry["group"] = json!("autoscaling");
                    entry["version"] = json!("v1");
                    entry["kind"] = json!("Scale");
                }
                "log" => entry["verbs"] = json!(["get"]),
                _ => {}
            }
            resources.push(entry);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources }))
}

/// A request addressed to a resource.
struct Target {
    rid: ResourceId,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(group: &str, version: &str, rest: &[&str]) -> Result<Option<Target>> {
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, more @ ..] if !matches!(*plural, "status" | "finalize") => {
            (Some(ns.to_string()), [&[*plural][..], more].concat())
        }
        _ => (None, rest.to_vec()),
    };
    let Some(plural) = rest.first() else {
        return Ok(None);
    };
    let rid = resource::find(group, version, plural).ok_or_else(|| Error::NotFound {
        message: "the server could not find the requested resource".into(),
        details: crate::status::Details::default(),
    })?;
    if rest.len() > 3 {
        return Err(Error::NotFound {
            message: "the server could not find the requested resource".into(),
            details: crate::status::Details::default(),
        });
    }
    Ok(Some(Target {
        rid,
        namespace,
        name: rest.get(1).map(std::string::ToString::to_string),
        sub: rest.get(2).map(std::string::ToString::to_string),
    }))
}

type Params = Query<HashMap<String, String>>;

async fn core(
    State(state): State<ApiState>,
    method: Method,
    uri: Uri,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_start_matches("/api/").trim_end_matches('/').to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let Some((version, rest)) = segs.split_first() else {
        return not_found().await;
    };
    dispatch(state, method, "", version, rest, params, headers, body).await
}

async fn grouped(
    State(state): State<ApiState>,
    method: Method,
    uri: Uri,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path()
        .trim_start_matches("/apis/")
        .trim_end_matches('/')
        .to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [access_review::GROUP, access_review::VERSION, rest @ ..] => review(&method, rest, &headers, body),
        [group] => match resource::groups()
            .into_iter()
            .chain([(access_review::GROUP, access_review::VERSION)])
            .find(|(g, _)| g == group)
        {
            Some((g, v)) => {
                let mut body = group_json(g, v);
                body["kind"] = json!("APIGroup");
                body["apiVersion"] = json!("v1");
                json_response(StatusCode::OK, &body)
            }
            None => not_found().await,
        },
        [group, version, rest @ ..] => dispatch(state, method, group, version, rest, params, headers, body).await,
        _ => not_found().await,
    }
}

/// An access review (`kubectl auth can-i`), in JSON or protobuf.
fn review(method: &Method, rest: &[&str], headers: &HeaderMap, body: Bytes) -> Response {
    if rest.is_empty() {
        return json_response(StatusCode::OK, &access_review::resource_list());
    }
    let answer = request_body(headers, body).and_then(|b| access_review::handle(method, rest, &b));
    match answer {
        Ok((code, review)) => Accept::parse(headers, false).respond(code, &review, false),
        Err(e) => e.into_response(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    state: ApiState,
    method: Method,
    group: &str,
    version: &str,
    rest: &[&str],
    params: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = match parse_target(group, version, rest) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return match resource_list(group, version) {
                Some(list) => json_response(StatusCode::OK, &list),
                None => not_found().await,
            };
        }
        Err(e) => return e.into_response(),
    };
    let accept = Accept::parse(&headers, flag(&params, "watch"));
    let body = match request_body(&headers, body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let read = method == Method::GET;
    match handle(&state, &method, &target, &params, &headers, &body) {
        Ok(Reply::Object(code, v)) => accept.respond(code, &v, read),
        Ok(Reply::Raw(code, "application/json", bytes)) if accept.first() != Some(&Representation::Json) => {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => accept.respond(code, &v, read),
                Err(e) => Error::Internal(e.to_string()).into_response(),
            }
        }
        Ok(Reply::Raw(code, content_type, bytes)) => {
            (code, [(header::CONTENT_TYPE, content_type)], bytes).into_response()
        }
        Ok(Reply::Stream(content_type, body)) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Ok(Reply::Watch(req)) => {
            let rt = resource::get(req.resource);
            let protobuf_form = protobuf::has_form(&rt.api_version(), rt.kind);
            let stream = watch::stream(state.store.clone(), req, state.faults.clone());
            let (content_type, body) = match accept.for_watch(protobuf_form) {
                Some(Representation::Table(version)) => (
                    "application/json",
                    Body::from_stream(table::watch(stream, version.clone())),
                ),
                Some(Representation::Json) => ("application/json", Body::from_stream(stream)),
                Some(Representation::Protobuf) => {
                    (protobuf::WATCH_MEDIA_TYPE, Body::from_stream(protobuf::watch(stream)))
                }
                _ => return accept.respond(StatusCode::OK, &Value::Null, false),
            };
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CACHE_CONTROL, "no-cache, private"),
                ],
                body,
            )
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

enum Reply {
    Object(StatusCode, Value),
    Raw(StatusCode, &'static str, Vec<u8>),
    Stream(&'static str, Body),
    Watch(WatchRequest),
}

fn flag(params: &HashMap<String, String>, key: &str) -> bool {
    params
        .get(key)
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

fn default_manager(headers: &HeaderMap) -> String {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("unknown");
    agent.split('/').next().unwrap_or("unknown").chars().take(128).collect()
}

/// A protobuf request body as the JSON the handlers read; other bodies as sent.
fn request_body(headers: &HeaderMap, body: Bytes) -> Result<Bytes> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !protobuf::is_protobuf(content_type) {
        return Ok(body);
    }
    let obj = protobuf::decode(&body)?;
    Ok(Bytes::from(
        serde_json::to_vec(&obj).map_err(|e| Error::Internal(e.to_string()))?,
    ))
}

fn decode_body(body: &Bytes, yaml_ok: bool) -> Result<Value> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(json_err) if yaml_ok => {
            let text = std::str::from_utf8(body).map_err(|_| Error::BadRequest("the body is not UTF-8".into()))?;
            serde_saphyr::from_str::<Value>(text)
                .map_err(|e| Error::BadRequest(format!("error decoding YAML: {e} (as JSON: {json_err})")))
        }
        Err(e) => Err(Error::BadRequest(format!("error decoding the request body: {e}"))),
    }
}

fn handle(
    state: &ApiState,
    method: &Method,
    t: &Target,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Reply> {
    let store = &state.store;
    let rt = resource::get(t.rid);
    if rt.namespaced != t.namespace.is_some() && t.name.is_some() {
        return Err(Error::NotFound {
            message: "the server could not find the requested resource".into(),
            details: Default::default(),
        });
    }
    let ns = t.namespace.clone().unwrap_or_default();
    let mut opts = WriteOptions::by(
        &params
            .get("fieldManager")
            .cloned()
            .unwrap_or_else(|| default_manager(headers)),
    );
    opts.dry_run = params.get("dryRun").is_some_and(|v| v == "All");
    if t.sub.as_deref() == Some("status") {
        if !rt.status {
            return Err(Error::not_found(rt, t.name.as_deref().unwrap_or_default()));
        }
        opts = opts.status();
    }
    let ok = |v: &Value| Ok(Reply::Object(StatusCode::OK, v.clone()));
    let ok_arc = |v: Arc<Value>| Ok(Reply::Object(StatusCode::OK, Arc::unwrap_or_clone(v)));
    match (&t.name, t.sub.as_deref(), method.clone()) {
        (None, None, Method::GET) => {
            let labels = LabelSelector::parse(params.get("labelSelector").map_or("", String::as_str))?;
            let fields = FieldSelector::parse(params.get("fieldSelector").map_or("", String::as_str))?;
            let namespace = t.namespace.clone();
            if flag(params, "watch") {
                let since = params.get("resourceVersion").filter(|v| !v.is_empty()).map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| Error::BadRequest(format!("invalid resource version: {v}")))
                });
                let since = since.transpose()?;
                let timeout = params
                    .get("timeoutSeconds")
                    .and_then(|s| s.parse::<u64>().ok())
                    .map_or(Duration::from_secs(1800), Duration::from_secs);
                return Ok(Reply::Watch(WatchRequest {
                    resource: t.rid,
                    namespace,
                    labels,
                    fields,
                    since,
                    bookmarks: flag(params, "allowWatchBookmarks"),
                    timeout,
                    bookmark_interval: state.bookmark_interval,
                }));
            }
            let query = ListQuery {
                labels,
                fields,
                limit: params.get("limit").and_then(|l| l.parse().ok()),
                continue_token: params.get("continue").filter(|c| !c.is_empty()).cloned(),
            };
            let page = store.list(t.rid, namespace.as_deref(), &query)?;
            let mut out = Vec::with_capacity(page.items.len() * 512 + 256);
            let mut meta = json!({ "resourceVersion": page.resource_version.to_string() });
            if let Some(c) = &page.continue_token {
                meta["continue"] = json!(c);
            }
            if let Some(r) = page.remaining {
                meta["remainingItemCount"] = json!(r);
            }
            out.extend_from_slice(
                format!(
                    "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{meta},\"items\":[",
                    rt.kind,
                    rt.api_version()
                )
                .as_bytes(),
            );
            for (i, item) in page.items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut out, &**item).map_err(|e| Error::Internal(e.to_string()))?;
            }
            out.extend_from_slice(b"]}");
            Ok(Reply::Raw(StatusCode::OK, "application/json", out))
        }
        (None, None, Method::POST) => {
            let obj = decode_body(body, true)?;
            let created = store.create(t.rid, &ns, obj, &opts)?;
            Ok(Reply::Object(StatusCode::CREATED, (*created).clone()))
        }
        (None, None, Method::DELETE) => {
            let labels = LabelSelector::parse(params.get("labelSelector").map_or("", String::as_str))?;
            let fields = FieldSelector::parse(params.get("fieldSelector").map_or("", String::as_str))?;
            let page = store.list(
                t.rid,
                t.namespace.as_deref(),
                &ListQuery {
                    labels,
                    fields,
                    ..Default::default()
                },
            )?;
            let mut items = Vec::new();
            for item in page.items {
                if let Ok(gone) = store.delete(
                    t.rid,
                    meta_str(&item, "namespace"),
                    meta_str(&item, "name"),
                    false,
                    opts.dry_run,
                ) {
                    items.push((*gone).clone());
                }
            }
            ok(
                &json!({ "kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": {}, "items": items }),
            )
        }
        (Some(name), None | Some("status"), Method::GET) => ok_arc(store.get(t.rid, &ns, name)?),
        (Some(name), None | Some("status"), Method::PUT) => {
            let obj = decode_body(body, true)?;
            ok_arc(store.replace(t.rid, &ns, name, obj, &opts)?)
        }
        (Some(name), None | Some("status"), Method::PATCH) => {
            let kind = PatchType::from_content_type(
                headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or(""),
            )?;
            let body = decode_body(body, kind == PatchType::Apply)?;
            if kind == PatchType::Apply {
                let manager = params
                    .get("fieldManager")
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| Error::BadRequest("PATCH, fieldManager is required for apply requests".into()))?;
                opts.manager = manager.clone();
                let (obj, created) = store.apply(t.rid, &ns, name, &body, flag(params, "force"), &opts)?;
                let code = if created { StatusCode::CREATED } else { StatusCode::OK };
                return Ok(Reply::Object(code, (*obj).clone()));
            }
            ok_arc(store.modify(t.rid, &ns, name, &opts, |cur| patch::patch(cur, kind, &body))?)
        }
        (Some(name), None, Method::DELETE) => {
            let options = if body.is_empty() {
                Value::Null
            } else {
                decode_body(body, false)?
            };
            let policy = params
                .get("propagationPolicy")
                .map(String::as_str)
                .or_else(|| options["propagationPolicy"].as_str())
                .unwrap_or("Background");
            let dry_run = opts.dry_run
                || options["dryRun"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|v| v == "All"));
            let grace = params
                .get("gracePeriodSeconds")
                .and_then(|g| g.parse::<i64>().ok())
                .or_else(|| options["gracePeriodSeconds"].as_i64());
            ok_arc(store.delete_with_grace(t.rid, &ns, name, policy == "Orphan", dry_run, grace)?)
        }
        (Some(name), Some("scale"), m) if rt.scale => scale(store, t.rid, &ns, name, &m, headers, body, &opts),
        (Some(name), Some("log"), Method::GET) if t.rid == resource::PODS => logs(store, &ns, name, params),
        (_, Some(_), _) | (None | Some(_), None, _) => Err(Error::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource: {method}"
        ))),
    }
}

fn scale_of(obj: &Value) -> Value {
    let labels: Vec<String> = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"],
            "uid": obj["metadata"]["uid"], "resourceVersion": obj["metadata"]["resourceVersion"],
            "creationTimestamp": obj["metadata"]["creationTimestamp"],
        },
        "spec": { "replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1) },
        "status": { "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": labels.join(",") },
    })
}

#[allow(clippy::too_many_arguments)]
fn scale(
    store: &Store,
    rid: ResourceId,
    ns: &str,
    name: &str,
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
    opts: &WriteOptions,
) -> Result<Reply> {
    let current = store.get(rid, ns, name)?;
    let wanted: Value = match *method {
        Method::GET => return Ok(Reply::Object(StatusCode::OK, scale_of(&current))),
        Method::PUT => decode_body(body, false)?,
        Method::PATCH => {
            let kind = PatchType::from_content_type(
                headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or(""),
            )?;
            let patch_body = decode_body(body, kind == PatchType::Apply)?;
            if kind == PatchType::Apply {
                let mut merged = scale_of(&current);
                crate::apply::merge_into(&mut merged, &patch_body);
                merged
            } else {
                patch::patch(&scale_of(&current), kind, &patch_body)?
            }
        }
        _ => {
            return Err(Error::MethodNotAllowed(format!(
                "the server does not allow this method on the requested resource: {method}"
            )));
        }
    };
    let replicas = wanted["spec"]["replicas"].as_i64().unwrap_or(0);
    let precondition = wanted["metadata"]["resourceVersion"].as_str().map(String::from);
    let updated = store.modify(
        rid,
        ns,
        name,
        &WriteOptions {
            subresource: Subresource::Main,
            ..opts.clone()
        },
        |cur| {
            let mut c = cur.clone();
            c["spec"]["replicas"] = json!(replicas);
            if let Some(rv) = precondition {
                c["metadata"]["resourceVersion"] = json!(rv);
            }
            Ok(c)
        },
    )?;
    Ok(Reply::Object(StatusCode::OK, scale_of(&updated)))
}

fn logs(store: &Arc<Store>, ns: &str, name: &str, params: &HashMap<String, String>) -> Result<Reply> {
    let pod = store.get(resource::PODS, ns, name)?;
    let containers: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect();
    let container = match params.get("container") {
        Some(c) if containers.contains(c) => c.clone(),
        Some(c) => {
            return Err(Error::BadRequest(format!("container {c} is not valid for pod {name}")));
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return Err(Error::BadRequest(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
    };
    if !matches!(
        pod["status"]["phase"].as_str(),
        Some("Running" | "Succeeded" | "Failed")
    ) {
        return Err(Error::BadRequest(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    }
    let spec = pod["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()))
        .cloned()
        .unwrap_or_default();
    if flag(params, "follow") {
        let tail = params.get("tailLines").and_then(|t| t.parse::<usize>().ok());
        let stream = crate::container::follow(store.clone(), ns.to_string(), name.to_string(), container, tail);
        return Ok(Reply::Stream("text/plain", Body::from_stream(stream)));
    }
    let mut lines: Vec<String> = crate::container::log_lines(&pod, &spec, Duration::ZERO)
        .into_iter()
        .map(|l| l + "\n")
        .collect();
    if let Some(tail) = params.get("tailLines").and_then(|t| t.parse::<usize>().ok()) {
        let skip = lines.len().saturating_sub(tail);
        lines.drain(..skip);
    }
    Ok(Reply::Raw(StatusCode::OK, "text/plain", lines.concat().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_paths_and_namespace_objects_are_told_apart() {
        let t = parse_target("", "v1", &["namespaces", "dev", "configmaps", "a"])
            .unwrap()
            .unwrap();
        assert_eq!(
            (t.rid, t.namespace.as_deref(), t.name.as_deref()),
            (resource::CONFIGMAPS, Some("dev"), Some("a"))
        );
        let t = parse_target("", "v1", &["namespaces", "dev"]).unwrap().unwrap();
        assert_eq!(
            (t.rid, t.namespace, t.name.as_deref()),
            (resource::NAMESPACES, None, Some("dev"))
        );
        let t = parse_target("", "v1", &["namespaces", "dev", "status"])
            .unwrap()
            .unwrap();
        assert_eq!((t.rid, t.sub.as_deref()), (resource::NAMESPACES, Some("status")));
        assert!(parse_target("", "v1", &["widgets"]).is_err());
    }
}
