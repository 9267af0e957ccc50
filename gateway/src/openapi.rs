//! The API's OpenAPI 3.1 document, generated from the handlers and types
//! (`/api/openapi.json`), and a reference page that renders it
//! (`/api/docs`), self-contained so it works without internet access.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use axum::Json;
use axum::response::Html;
use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

mod shapes;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// What the document says besides its routes: title, the problem schema
/// every error uses and the bearer scheme. The routes add their operations
/// ([`crate::route`]).
#[derive(OpenApi)]
#[openapi(
    info(title = "paas public API", description = "Tenants, quotas, clusters and access. Errors are RFC 7807 problem+json."),
    components(schemas(kernel::error::Problem)),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

/// The document: [`ApiDoc`] with every route's operation.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(|| crate::api().document(ApiDoc::openapi()));
    &DOCUMENT
}

/// The document as served: [`document`] made [`exact`]. Amended as JSON,
/// not through utoipa's types, which would write a link's `operationId` as
/// `operation_id`.
pub fn served() -> &'static Value {
    static SERVED: LazyLock<Value> = LazyLock::new(|| {
        let mut json = serde_json::to_value(document()).expect("the document serialises");
        exact(&mut json);
        json
    });
    &SERVED
}

/// What the attributes cannot say, said once for every route: operation ids
/// unique across the document (utoipa takes the handler's name, and many
/// modules have a `create` or a `list`), ids in paths as UUIDs, and links
/// from each create to the get and delete of what it created, so that a
/// client (or a stateful fuzzer) can follow them.
fn exact(doc: &mut Value) {
    unique_operation_ids(doc);
    uuid_path_ids(doc);
    link_created_to_reads(doc);
    shapes::document(doc);
    closed_values(doc);
    non_empty_maps(doc);
    resource_amounts(doc);
    field_rules(doc);
    input_rules(doc);
    bounded_strings(doc);
    uniform_tuples(doc);
}

/// A tuple of one type (`Vec<(String, String)>`, the session's memberships)
/// as an array of that type with its length, rather than `prefixItems`:
/// the same values, in the form every OpenAPI tool reads (Schemathesis
/// refuses the `prefixItems` form).
fn uniform_tuples(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            let same = match fields.get("prefixItems") {
                Some(Value::Array(tuple)) if !tuple.is_empty() && tuple.iter().all(|t| *t == tuple[0]) => {
                    Some((tuple[0].clone(), tuple.len()))
                }
                _ => None,
            };
            if let Some((item, len)) = same {
                fields.remove("prefixItems");
                fields.insert("items".into(), item);
                fields.insert("minItems".into(), json!(len));
                fields.insert("maxItems".into(), json!(len));
            }
            fields.values_mut().for_each(uniform_tuples);
        }
        Value::Array(items) => items.iter_mut().for_each(uniform_tuples),
        _ => {}
    }
}

/// Every string has a documented maximum length: the gateway's own bounds
/// ([`crate::request::MAX_TEXT`] in bodies, [`crate::request::MAX_PARAMETER`]
/// in paths and query strings) where a field says no shorter one.
fn bounded_strings(doc: &mut Value) {
    fn bound(schema: &mut Value, max: usize) {
        match schema {
            Value::Object(fields) => {
                let is_string = match fields.get("type") {
                    Some(Value::String(t)) => t == "string",
                    Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
                    _ => false,
                };
                let free = !fields.contains_key("maxLength")
                    && !fields.contains_key("enum")
                    && !matches!(
                        fields.get("format").and_then(Value::as_str),
                        Some("uuid" | "date-time" | "binary")
                    );
                if is_string && free {
                    fields.insert("maxLength".into(), json!(max));
                }
                for (key, value) in fields.iter_mut() {
                    if !matches!(key.as_str(), "example" | "examples" | "default" | "enum") {
                        bound(value, max);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| bound(item, max)),
            _ => {}
        }
    }
    for (_, _, op) in operations(doc) {
        if let Some(params) = op.get_mut("parameters") {
            bound(params, crate::request::MAX_PARAMETER);
        }
        if let Some(body) = op.get_mut("requestBody") {
            bound(body, crate::request::MAX_TEXT);
        }
    }
    if let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") {
        for (name, schema) in schemas.iter_mut() {
            // A problem is only ever answered; it quotes what it refuses.
            if name != "Problem" {
                bound(schema, crate::request::MAX_TEXT);
            }
        }
    }
}

/// Properties whose values are a closed set the services enforce, by schema
/// and property (`*` for every schema having it).
const CLOSED: &[(&str, &str, &[&str])] = &[
    ("*", "role", &["viewer", "developer", "operator", "tenant-admin"]),
    ("Tenant", "status", &["active", "suspended"]),
    ("Member", "kind", &["user", "group"]),
    ("AddMember", "kind", &["user", "group"]),
    ("*", "network_domain", &["core", "dmz", "internet"]),
    ("RegisterCluster", "environment", &["production", "test", "dr"]),
    ("Cluster", "environment", &["production", "test", "dr"]),
    ("Application", "environment", &["production", "test"]),
    ("Deploy", "environment", &["production", "test"]),
    ("ConfigItem", "format", &["properties", "yaml", "json", "xml", "text"]),
    // What a config item's format is parsed from (`configs::format`):
    // aliases, and empty (or absent) for "from the item's name".
    (
        "PutItem",
        "format",
        &["properties", "yaml", "yml", "json", "xml", "text", "txt", ""],
    ),
    ("ConfigRelease", "kind", &["publish", "rollback"]),
    ("ReleaseNotice", "kind", &["publish", "rollback"]),
    ("UpdateTenant", "status", &["active", "suspended"]),
    ("Form", "server_type", &["application-host", "mpp", "hadoop"]),
    (
        "*",
        "level",
        &["tenant", "cluster", "data_centre", "dr_reserve", "project", "partition"],
    ),
    // Health as federation derives it, for a binding, a cluster target,
    // a service and an application.
    ("*", "health", &["Healthy", "Progressing", "Degraded", "Unknown"]),
    ("*", "trigger", &["automatic", "operator"]),
    ("*", "failback", &["automatic", "manual"]),
    ("ClusterCondition", "status", &["Ready", "NotReady", "Unknown"]),
    ("WorkloadStatus", "kind", &["Deployment", "StatefulSet", "DaemonSet"]),
    ("WorkloadCondition", "status", &["True", "False", "Unknown"]),
    (
        "Pod",
        "phase",
        &["Pending", "Running", "Succeeded", "Failed", "Unknown"],
    ),
    ("FailoverOperation", "kind", &["failover", "failback"]),
    ("Activity", "kind", &["failover", "failback"]),
    ("RetentionRun", "cause", &["schedule", "manual"]),
    ("RetentionRun", "state", &["running", "succeeded", "failed"]),
    ("GcRun", "cause", &["retention", "manual"]),
    (
        "GcRun",
        "state",
        &["pending", "draining", "collecting", "succeeded", "failed", "skipped"],
    ),
    ("Release", "slot", &["blue", "green"]),
    (
        "Release",
        "phase",
        &["rollout", "traffic", "waiting", "finishing", "aborting", "done"],
    ),
    (
        "ReleaseService",
        "strategy",
        &["recreate", "rolling", "blue-green", "canary", "ab", "shadow", "gray"],
    ),
    // States, as the services' tables constrain them.
    (
        "Release",
        "state",
        &[
            "awaiting-approval",
            "deploying",
            "succeeded",
            "failed",
            "superseded",
            "cancelled",
            "aborted",
        ],
    ),
    (
        "Application",
        "state",
        &["awaiting-approval", "deploying", "running", "failed", "stopped"],
    ),
    (
        "Reservation",
        "state",
        &["reserved", "committed", "released", "expired", "refused"],
    ),
    ("TemplateVersion", "state", &["draft", "published"]),
    (
        "FailoverOperation",
        "state",
        &[
            "awaiting-confirmation",
            "pending",
            "fencing",
            "placing",
            "applied",
            "available",
            "failed",
        ],
    ),
    (
        "Activity",
        "state",
        &[
            "awaiting-confirmation",
            "pending",
            "fencing",
            "placing",
            "applied",
            "available",
            "failed",
        ],
    ),
    (
        "ResourceRequest",
        "state",
        &["draft", "submitted", "approved", "rejected", "provisioned"],
    ),
    (
        "Step",
        "from",
        &["draft", "submitted", "approved", "rejected", "provisioned"],
    ),
    (
        "Step",
        "to",
        &["draft", "submitted", "approved", "rejected", "provisioned"],
    ),
    ("DataCentre", "state", &["Ready", "Degraded", "Lost", "Unknown"]),
    // Pipelines, as devops' tables constrain them.
    (
        "RunStep",
        "state",
        &[
            "pending",
            "queued",
            "running",
            "waiting",
            "succeeded",
            "failed",
            "cancelled",
            "skipped",
        ],
    ),
    (
        "RunStep",
        "kind",
        &[
            "run",
            "test",
            "approval",
            "deploy",
            "build-image",
            "security-scan",
            "promote",
        ],
    ),
    (
        "RunStage",
        "state",
        &["pending", "running", "succeeded", "failed", "cancelled", "skipped"],
    ),
    ("Runner", "state", &["active", "draining"]),
];

/// Parameters whose values are a closed set, by the path of the list
/// they filter and the parameter (an empty value, the default, is no filter).
const CLOSED_PARAMETERS: &[(&str, &str, &[&str])] = &[
    ("/api/v1/tenants", "status", &["active", "suspended"]),
    ("/api/v1/tenants/{id}/members", "kind", &["user", "group"]),
    (
        "/api/v1/requests",
        "state",
        &["draft", "submitted", "approved", "rejected", "provisioned"],
    ),
    (
        "/api/v1/requests/{id}/{step}",
        "step",
        &["submit", "approve", "reject", "provision"],
    ),
    // images' scan and signature policies: per environment kind.
    (
        "/api/v1/tenants/{id}/scan-policies/{environment}",
        "environment",
        &["production", "test"],
    ),
    (
        "/api/v1/tenants/{id}/signature-policies/{environment}",
        "environment",
        &["production", "test"],
    ),
];

/// Maps the services refuse empty (utoipa has no `min_properties` for a
/// field), by schema and property: an amount of nothing reserves nothing.
const NON_EMPTY_MAPS: &[(&str, &str)] = &[("Reserve", "amounts"), ("PublishSpec", "amounts")];

/// The [`NON_EMPTY_MAPS`] as `minProperties: 1`.
fn non_empty_maps(doc: &mut Value) {
    for (schema, property) in NON_EMPTY_MAPS {
        if let Some(Value::Object(map)) =
            doc.pointer_mut(&format!("/components/schemas/{schema}/properties/{property}"))
        {
            map.insert("minProperties".into(), json!(1));
        }
    }
}

/// Maps of amounts by resource, by schema and property: quotas, reservations
/// and specs name [`kernel::quantity::QUOTA_RESOURCES`], LimitRanges
/// [`kernel::quantity::LIMIT_RANGE_RESOURCES`].
const QUOTA_AMOUNTS: &[(&str, &str)] = &[
    ("TenantQuota", "hard"),
    ("TenantQuota", "dr_reserve"),
    ("ProjectQuota", "hard"),
    ("PartitionQuota", "hard"),
    ("Reserve", "amounts"),
    ("PublishSpec", "amounts"),
];
/// Maps of such maps, by cluster or data centre.
const QUOTA_AMOUNTS_BY_PLACE: &[(&str, &str)] = &[("TenantQuota", "clusters"), ("TenantQuota", "data_centres")];
/// A LimitRange item's maps.
const LIMIT_AMOUNTS: &[&str] = &["min", "max", "default", "defaultRequest", "maxLimitRequestRatio"];

/// Amounts by resource as an object of the known resources, each a
/// quantity (CPU, memory, storage) or a count, as tenancy parses them:
/// an unknown resource, a negative or fractional count is no amount.
fn resource_amounts(doc: &mut Value) {
    use kernel::quantity::{
        COUNTED_RESOURCES, DOCUMENTED_COUNT, DOCUMENTED_QUANTITY, LIMIT_RANGE_RESOURCES, QUOTA_RESOURCES,
    };
    let quantity = json!({"type": "string", "pattern": DOCUMENTED_QUANTITY, "maxLength": 14});
    let count = json!({"type": "string", "pattern": DOCUMENTED_COUNT, "maxLength": 10});
    let amounts = |names: &[&str]| {
        let properties: serde_json::Map<String, Value> = names
            .iter()
            .map(|n| {
                let amount = if COUNTED_RESOURCES.contains(n) {
                    &count
                } else {
                    &quantity
                };
                (n.to_string(), amount.clone())
            })
            .collect();
        json!({"type": "object", "properties": properties, "additionalProperties": false})
    };
    let quota = amounts(&QUOTA_RESOURCES);
    let limits = amounts(&LIMIT_RANGE_RESOURCES);
    // Keeps what the field says besides its shape (description, minProperties).
    let replace = |target: &mut Value, with: &Value| {
        if let (Value::Object(fields), Value::Object(shape)) = (target, with) {
            fields.remove("additionalProperties");
            fields.remove("propertyNames");
            for (k, v) in shape {
                fields.insert(k.clone(), v.clone());
            }
        }
    };
    let schemas = |schema: &str, property: &str| format!("/components/schemas/{schema}/properties/{property}");
    for &(schema, property) in QUOTA_AMOUNTS {
        if let Some(target) = doc.pointer_mut(&schemas(schema, property)) {
            replace(target, &quota);
        }
    }
    for &(schema, property) in QUOTA_AMOUNTS_BY_PLACE {
        if let Some(target) = doc.pointer_mut(&format!("{}/additionalProperties", schemas(schema, property))) {
            replace(target, &quota);
        }
    }
    for &property in LIMIT_AMOUNTS {
        if let Some(target) = doc.pointer_mut(&schemas("LimitItem", property)) {
            replace(target, &limits);
        }
    }
    // A partition's network policy: one of kernel's, or empty for the first.
    if let Some(target) = doc.pointer_mut(&schemas("CreatePartition", "network_policy")) {
        let mut names: Vec<&str> = kernel::name::NETWORK_POLICIES.to_vec();
        names.push("");
        close(target, &names);
    }
}

/// A DNS subdomain (RFC 1123): a Kubernetes class name.
const DNS_SUBDOMAIN: &str = "^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$";
/// An RFC 1035 label: a Service name, which starts with a letter.
const RFC_1035_LABEL: &str = "^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$";
/// A DNS name whose last label starts with a letter (so no IPv4 address),
/// or nothing (an external service given by its addresses instead).
const DNS_NAME_OR_EMPTY: &str = "^(([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\\.)*[a-z]([-a-z0-9]{0,61}[a-z0-9])?\\.?)?$";

/// What the gateway and the services refuse in any text (see
/// [`ACCEPTED_TEXT`]), as the inside of a character class: a macro, so
/// that `concat!` builds the patterns holding it at compile time.
macro_rules! refused {
    () => {
        "\\u0000\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2064\\u2066-\\u2069\\uFEFF"
    };
}

/// An e-mail address as tenancy takes a contact: something, `@`, and a
/// domain with a dot inside it, no white space (nor what no text may hold);
/// or nothing.
const CONTACT: &str = concat!(
    "^\\s*([^\\s@",
    refused!(),
    "]+@[^\\s.",
    refused!(),
    "][^\\s",
    refused!(),
    "]*\\.[^\\s",
    refused!(),
    "]*[^\\s.",
    refused!(),
    "])?\\s*$"
);

/// What devops takes in an e-mail address's local part or domain.
const EMAIL_CHARS: &str = "[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]";

/// Rules the services apply to single fields, stated in the document:
/// (schema, property, what the property's schema gains). Items of a list
/// are `property/items`.
fn field_rules(doc: &mut Value) {
    let label = json!({"pattern": DNS_LABEL, "maxLength": DNS_LABEL_MAX});
    let rules: Vec<(&str, &str, Value)> = vec![
        // tenancy's `NewPartition::parse`: DNS labels (trimmed).
        ("CreatePartition", "cluster", label.clone()),
        ("CreatePartition", "data_centre", label.clone()),
        // federation's `NewCluster::parse`.
        ("RegisterCluster", "data_centre", label.clone()),
        (
            "RegisterCluster",
            "api_endpoint",
            json!({"pattern": "^(https?://[^\\s/?#]+([/?#][^\\s]*)?)?$", "maxLength": 2048}),
        ),
        // federation's `cluster_settings::Classes::parse`.
        (
            "ClusterSettings",
            "storage_classes/items",
            json!({"pattern": DNS_SUBDOMAIN, "maxLength": 253}),
        ),
        (
            "ClusterSettings",
            "ingress_classes/items",
            json!({"pattern": DNS_SUBDOMAIN, "maxLength": 253}),
        ),
        ("ClusterSettings", "storage_classes", json!({"uniqueItems": true})),
        ("ClusterSettings", "ingress_classes", json!({"uniqueItems": true})),
        // apps' `external_service::parse_name`, `parse_dns_name`, `parse_ports`.
        (
            "Register",
            "name",
            json!({"pattern": RFC_1035_LABEL, "maxLength": DNS_LABEL_MAX}),
        ),
        (
            "Register",
            "dns_name",
            json!({"pattern": DNS_NAME_OR_EMPTY, "maxLength": 253}),
        ),
        (
            "Update",
            "dns_name",
            json!({"pattern": DNS_NAME_OR_EMPTY, "maxLength": 253}),
        ),
        ("Register", "addresses", json!({"uniqueItems": true, "maxItems": 1000})),
        ("Update", "addresses", json!({"uniqueItems": true, "maxItems": 1000})),
        (
            "Register",
            "addresses/items",
            json!({"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}], "maxLength": 45}),
        ),
        (
            "Update",
            "addresses/items",
            json!({"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}], "maxLength": 45}),
        ),
        // tenancy's `tenant::contact_email`: an e-mail address (trimmed), or nothing.
        ("CreateTenant", "contact", json!({"pattern": CONTACT, "maxLength": 254})),
        ("UpdateTenant", "contact", json!({"pattern": CONTACT, "maxLength": 254})),
        // federation's `NewPullSecret::parse`: a host[:port] without spaces,
        // a user without `:`, a password; none with control characters.
        (
            "PutPullSecret",
            "server",
            json!({"pattern": format!("^[^\\s{CONTROL}]{{1,253}}$"), "maxLength": 253}),
        ),
        (
            "PutPullSecret",
            "username",
            json!({"pattern": format!("^[^\\s:{CONTROL}]([^:{CONTROL}]*[^\\s:{CONTROL}])?$")}),
        ),
        (
            "PutPullSecret",
            "password",
            json!({"pattern": format!("^[^{CONTROL}]+$")}),
        ),
        // images' `set_gc_config`: an absolute path (trimmed), or nothing.
        (
            "GcConfig",
            "config",
            json!({"pattern": format!("^{SPACE}*(/[^{CONTROL}]*)?{SPACE}*$"), "minLength": 0}),
        ),
        // images' `RetentionPolicy::parse`.
        (
            "PutRetentionRule",
            "keep_last",
            json!({"minimum": 1, "maximum": 100_000}),
        ),
        (
            "PutRetentionRule",
            "untagged_days",
            json!({"minimum": 0, "maximum": 3650}),
        ),
        // The clusters a request is provisioned into: the gateway looks
        // each up by name (a 400 naming `clusters` when none has it).
        ("StepBody", "clusters/items", label.clone()),
        ("Port", "port", json!({"minimum": 1, "maximum": 65535})),
        ("Port", "protocol", json!({"enum": ["TCP", "UDP", "SCTP", ""]})),
        // tenancy's `NewPartition::parse`: node selector keys and values
        // within Kubernetes' label lengths.
        (
            "CreatePartition",
            "node_selector/propertyNames",
            json!({"minLength": 1, "maxLength": 253}),
        ),
        (
            "CreatePartition",
            "node_selector/additionalProperties",
            json!({"maxLength": 63}),
        ),
        // apps' `NewTrigger::parse`: a platform repository and a template
        // parameter's name.
        (
            "NewImageTrigger",
            "repository",
            json!({"pattern": "^[a-z0-9._-]+/[a-z0-9._-]+/[a-z0-9._-]+$", "maxLength": 255}),
        ),
        (
            "NewImageTrigger",
            "parameter",
            json!({"pattern": "^[A-Za-z0-9_]{1,63}$", "maxLength": 63}),
        ),
        // devops' `image_trigger::Glob::parse` (tags left empty: every tag).
        (
            "NewPipelineImageTrigger",
            "repository",
            json!({"pattern": "^[A-Za-z0-9._/:*?-]{1,255}$", "maxLength": 255}),
        ),
        (
            "NewPipelineImageTrigger",
            "tags",
            json!({"pattern": "^[A-Za-z0-9._/:*?-]{0,255}$", "maxLength": 255}),
        ),
        // devops' `notification::parse_address`: `local@domain` of what
        // SMTP takes without quoting, or nothing (a webhook's).
        (
            "NewNotificationTarget",
            "address",
            json!({"pattern": format!("^({EMAIL_CHARS}+@{EMAIL_CHARS}+)?$"), "maxLength": 254}),
        ),
        // Its webhook URL is what the WHATWG parser reads as http(s) with
        // a host (no pattern states that exactly), of at most 2048 characters.
        ("NewNotificationTarget", "url", json!({"maxLength": 2048})),
    ];
    let key = "[A-Za-z0-9]([-A-Za-z0-9_./]{0,251}[A-Za-z0-9])?";
    let value = "([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?";
    let pair = format!("{key}={value}");
    // configs' `selector::Labels::parse`: at most 32 `key=value` pairs.
    let labels = json!({"pattern": format!("^({pair}(,{pair}){{0,31}})?$"), "maxLength": 2048});
    // configs' `instance::instance_id`.
    let instance = json!({"pattern": "^[A-Za-z0-9._:@/-]{0,128}$", "maxLength": 128});
    // The gateway's `config_watch::Positions::parse`: up to 50 sets.
    let position = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(:[0-9]{1,19})?";
    let sets = json!({"pattern": format!("^{position}(,{position}){{0,49}}$"), "minLength": 36});
    let parameters: Vec<(&str, &str, &Value)> = vec![
        ("/api/v1/config-watch", "labels", &labels),
        ("/api/v1/config-watch/events", "labels", &labels),
        ("/api/v1/config-sets/{id}/watch", "labels", &labels),
        ("/api/v1/config-sets/{id}/events", "labels", &labels),
        ("/api/v1/config-watch", "instance", &instance),
        ("/api/v1/config-watch/events", "instance", &instance),
        ("/api/v1/config-watch", "sets", &sets),
        ("/api/v1/config-watch/events", "sets", &sets),
    ];
    for (at, name, rule) in parameters {
        let mut found = false;
        for (path, _, op) in operations(doc) {
            for param in op
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if path == at && param["name"] == name {
                    found = true;
                    for (k, v) in rule.as_object().into_iter().flatten() {
                        param["schema"][k] = v.clone();
                    }
                }
            }
        }
        assert!(found, "{at} has no parameter {name}: the rule names one that moved");
    }
    for (schema, property, rule) in rules {
        let Some(target) = doc.pointer_mut(&format!("/components/schemas/{schema}/properties/{property}")) else {
            panic!("{schema}.{property} is not in the document: the rule names a field that moved");
        };
        if let (Value::Object(fields), Value::Object(rule)) = (target, rule) {
            for (k, v) in rule {
                fields.insert(k, v);
            }
        }
    }
}

/// Whether a schema's `type` is `string` or a union holding it
/// (`["string", "null"]`, an `Option<String>`).
fn string_type(t: Option<&Value>) -> bool {
    match t.unwrap_or(&Value::Null) {
        Value::String(t) => t == "string",
        Value::Array(ts) => ts.iter().any(|t| t == "string"),
        _ => false,
    }
}

/// `values` as the `enum` of a string schema; an optional one (type
/// `["string", "null"]`) keeps `null` among them, since leaving it out is
/// what the services take as "the default".
fn close(schema: &mut Value, values: &[&str]) {
    let nullable = schema["type"]
        .as_array()
        .is_some_and(|ts| ts.iter().any(|t| t == "null"));
    if !string_type(schema.get("type")) {
        return;
    }
    let mut closed = json!(values);
    if nullable {
        closed.as_array_mut().expect("an array").push(Value::Null);
    }
    if let Some(fields) = schema.as_object_mut() {
        // An enum says all a pattern or length would.
        fields.remove("pattern");
        fields.remove("minLength");
        fields.remove("maxLength");
        fields.insert("enum".into(), closed);
    }
}

/// The [`CLOSED`] and [`CLOSED_PARAMETERS`] sets as `enum`s.
fn closed_values(doc: &mut Value) {
    // A usage history's resource: one tenancy counts, or empty for all.
    let resources: Vec<&str> = std::iter::once("").chain(kernel::quantity::QUOTA_RESOURCES).collect();
    for (path, _, op) in operations(doc) {
        for param in op
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            for (at, name, values) in CLOSED_PARAMETERS {
                if path == *at && param["name"] == *name {
                    close(&mut param["schema"], values);
                }
            }
            if path == "/api/v1/tenants/{id}/usage/history" && param["name"] == "resource" {
                close(&mut param["schema"], &resources);
            }
        }
    }
    let Some(schemas) = doc["components"]["schemas"].as_object_mut() else {
        return;
    };
    for (name, schema) in schemas.iter_mut() {
        for (owner, property, values) in CLOSED {
            let target = schema.get_mut("properties").and_then(|p| p.get_mut(*property));
            if let Some(target) = target
                && (*owner == "*" || *owner == name.as_str())
            {
                close(target, values);
            }
        }
    }
}

/// Names ending in `_id` that are not one of the platform's UUIDs.
const NOT_UUIDS: &[&str] = &["client_id", "request_id"];

/// Names the services take as DNS labels (`kernel::name::DnsLabel`) where
/// the field documents no rule of its own (a token's name is up to 128
/// characters of anything, a config item's a file name).
const DNS_LABELS: &[&str] = &["name", "app", "application", "environment", "namespace", "project_name"];

/// A DNS label (RFC 1123), as `kernel::name::DnsLabel` parses it (a test
/// holds the two spellings of the rule equal).
const DNS_LABEL: &str = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";
/// A DNS label or nothing: an optional label left empty is no label.
const DNS_LABEL_OR_EMPTY: &str = "^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$";
/// The longest DNS label.
const DNS_LABEL_MAX: usize = 63;

/// An optional id: a UUID, or empty for none (a cursor: the first page).
const UUID_OR_EMPTY: &str = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$";

/// What the gateway and the services refuse in any text (NUL, bidirectional
/// overrides and isolates, zero-width characters, the byte-order mark: see
/// [`crate::request::refusal`]), as the pattern of a string that may hold
/// anything else.
const ACCEPTED_TEXT: &str = concat!("^[^", refused!(), "]*$");

/// What a service refuses in a field that takes no control characters
/// (Rust's `char::is_control`) with what the gateway refuses in any text,
/// as the inside of a regular expression's character class.
const CONTROL: &str =
    "\\u0000-\\u001F\\u007F-\\u009F\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2064\\u2066-\\u2069\\uFEFF";
/// What Rust's `str::trim` removes (Unicode's White_Space), as a character class.
const SPACE: &str = "[\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]";

/// [`ACCEPTED_TEXT`] with at least one character that is not white space:
/// a required text is trimmed before it is taken.
const NON_BLANK_TEXT: &str = concat!("^[^", refused!(), "]*[^\\s", refused!(), "][^", refused!(), "]*$");

/// The input rules the services apply to every request, stated where a
/// client can read them: a `cursor` and every `*_id` are UUIDs (a cursor is
/// the last id of the previous page, `kernel::page::Page`), a required text
/// is not empty, and no text holds what [`crate::request::refusal`] refuses.
/// Only parameters and the schemas request bodies name are amended: an
/// answer may quote what it was given.
fn input_rules(doc: &mut Value) {
    fn is_string(schema: &Value) -> bool {
        string_type(schema.get("type"))
    }
    fn is_id(name: &str) -> bool {
        (name == "cursor" || name == "id" || name.ends_with("_id")) && !NOT_UUIDS.contains(&name)
    }
    // An optional label left empty is no label (the base level of a
    // config set, a filter that filters nothing), as the services take it.
    fn as_label(name: &str, required: bool, schema: &mut Value) {
        if DNS_LABELS.contains(&name)
            && string_type(schema.get("type"))
            && ["enum", "pattern", "format", "maxLength"]
                .iter()
                .all(|k| schema.get(*k).is_none())
        {
            let pattern = if required { DNS_LABEL } else { DNS_LABEL_OR_EMPTY };
            schema["pattern"] = json!(pattern);
            schema["maxLength"] = json!(DNS_LABEL_MAX);
        }
    }
    fn uuid_or_empty(schema: &mut Value) {
        if let Some(fields) = schema.as_object_mut() {
            fields.remove("minLength");
            fields.remove("format");
            fields.insert("maxLength".into(), json!(36));
            fields.insert("pattern".into(), json!(UUID_OR_EMPTY));
        }
    }
    fn as_uuid(schema: &mut Value) {
        if let Some(fields) = schema.as_object_mut() {
            fields.remove("maxLength");
            fields.remove("minLength");
            fields.insert("format".into(), json!("uuid"));
        }
    }
    fn text(schema: &mut Value) {
        match schema {
            Value::Object(fields) => {
                let plain = string_type(fields.get("type"))
                    && !fields.contains_key("enum")
                    && !fields.contains_key("pattern")
                    && !fields.contains_key("format");
                if plain {
                    fields.insert("pattern".into(), json!(ACCEPTED_TEXT));
                }
                for (key, value) in fields.iter_mut() {
                    if !matches!(key.as_str(), "example" | "examples" | "default" | "enum") {
                        text(value);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(text),
            _ => {}
        }
    }
    fn object(schema: &mut Value) {
        let required: Vec<String> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            for (name, property) in properties.iter_mut() {
                if is_string(property) && is_id(name) && property.get("enum").is_none() {
                    // An optional id left empty is no id (a token without
                    // a project, a template of the whole platform).
                    if required.contains(name) {
                        as_uuid(property);
                    } else {
                        uuid_or_empty(property);
                    }
                } else if name.ends_with("_ids") && is_string(&property["items"]) {
                    as_uuid(&mut property["items"]);
                } else if DNS_LABELS.contains(&name.as_str()) && property.get("maxLength").is_none() {
                    as_label(name, required.contains(name), property);
                } else if is_string(property)
                    && required.contains(name)
                    && property.get("enum").is_none()
                    && property.get("format").is_none()
                    && property.get("minLength").is_none()
                {
                    property["minLength"] = json!(1);
                    if property.get("pattern").is_none() {
                        property["pattern"] = json!(NON_BLANK_TEXT);
                    }
                }
            }
        }
        text(schema);
    }
    // The schemas request bodies name, and those they name in turn.
    fn refs(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(fields) => {
                if let Some(Value::String(r)) = fields.get("$ref")
                    && let Some(name) = r.strip_prefix("#/components/schemas/")
                {
                    found.push(name.to_string());
                }
                fields.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }
    let mut pending = Vec::new();
    for (_, _, op) in operations(doc) {
        if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
            for param in params {
                let name = param["name"].as_str().unwrap_or_default().to_string();
                let required = param["required"] == true;
                let in_query = param["in"] == "query";
                let schema = &mut param["schema"];
                if in_query && !required && is_string(schema) && is_id(&name) && schema.get("enum").is_none() {
                    // `kernel::page::Page` takes an empty cursor as the
                    // first page, and a filter left empty filters nothing,
                    // as clients that always send them expect.
                    uuid_or_empty(schema);
                } else if is_string(schema)
                    && is_id(&name)
                    && schema.get("enum").is_none()
                    && schema.get("pattern").is_none()
                {
                    // (A pattern is a rule of its own: a cluster's id or name.)
                    as_uuid(schema);
                } else if name == "limit" && in_query {
                    schema["maximum"] = json!(kernel::page::MAX_LIMIT);
                } else if DNS_LABELS.contains(&name.as_str()) {
                    as_label(&name, required, schema);
                } else if is_string(schema) && required && schema.get("minLength").is_none() {
                    schema["minLength"] = json!(1);
                    if schema.get("pattern").is_none() {
                        schema["pattern"] = json!(NON_BLANK_TEXT);
                    }
                }
                text(schema);
            }
        }
        if let Some(body) = op.get_mut("requestBody") {
            refs(body, &mut pending);
            for content in body["content"].as_object_mut().into_iter().flat_map(|c| c.values_mut()) {
                if content["schema"].get("properties").is_some() {
                    object(&mut content["schema"]);
                } else {
                    text(&mut content["schema"]);
                }
            }
        }
    }
    let mut named = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if named.insert(name.clone())
            && let Some(schema) = doc.pointer(&format!("/components/schemas/{name}"))
        {
            refs(schema, &mut pending);
        }
    }
    for name in named {
        if let Some(schema) = doc.pointer_mut(&format!("/components/schemas/{name}")) {
            object(schema);
        }
    }
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Every operation as (path, method, operation).
fn operations(doc: &mut Value) -> Vec<(String, &'static str, &mut Value)> {
    let mut found = Vec::new();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            if let Some(item) = item.as_object_mut() {
                for (method, op) in item.iter_mut() {
                    if let Some(m) = METHODS.iter().find(|m| **m == method.as_str()) {
                        found.push((path.clone(), *m, op));
                    }
                }
            }
        }
    }
    found
}

/// A handler's name is kept where no other operation has it; else it is
/// qualified by the resource its path names (`create` of
/// `/api/v1/tenants/{id}/projects` is `create_projects`), then by the method
/// and every static segment of the path.
fn unique_operation_ids(doc: &mut Value) {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, op) in operations(doc) {
        *count
            .entry(op["operationId"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    let mut qualified: BTreeMap<String, usize> = BTreeMap::new();
    let mut renames = Vec::new();
    for (path, method, op) in operations(doc) {
        let id = op["operationId"].as_str().unwrap_or_default().to_string();
        if count[&id] > 1 {
            let resource = static_segments(&path).last().cloned().unwrap_or_default();
            let new_id = format!("{id}_{resource}");
            *qualified.entry(new_id.clone()).or_default() += 1;
            renames.push((path, method, new_id));
        }
    }
    for (path, method, op) in operations(doc) {
        if let Some((_, _, new_id)) = renames.iter().find(|(p, m, _)| *p == path && *m == method) {
            let new_id = if qualified[new_id] > 1 {
                format!("{method}_{}", static_segments(&path).join("_"))
            } else {
                new_id.clone()
            };
            op["operationId"] = Value::String(new_id);
        }
    }
}

/// The path's literal segments after `/api/v1`, as identifier words.
fn static_segments(path: &str) -> Vec<String> {
    path.split('/')
        .skip(3)
        .filter(|s| !s.is_empty() && !s.starts_with('{'))
        .map(|s| s.replace('-', "_"))
        .collect()
}

/// Every `{id}` in a path is a UUID (tenants, clusters, releases... all
/// are), except where a cluster may be named instead (`/clusters/dc1-a`), as
/// kubectl users expect: there it is a UUID or a cluster's name.
fn uuid_path_ids(doc: &mut Value) {
    for (path, method, op) in operations(doc) {
        let by_name = CLUSTER_BY_NAME.contains(&(method, path.as_str()));
        if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
            for param in params {
                if param["in"] == "path" && param["name"] == "id" {
                    param["schema"] = if by_name {
                        json!({"type": "string", "pattern": UUID_OR_DNS_LABEL, "maxLength": DNS_LABEL_MAX})
                    } else {
                        json!({"type": "string", "format": "uuid"})
                    };
                }
            }
        }
    }
}

/// The operations that find a cluster by its id or its name.
const CLUSTER_BY_NAME: &[(&str, &str)] = &[
    ("get", "/api/v1/clusters/{id}"),
    ("put", "/api/v1/clusters/{id}/settings"),
];

/// A hyphenated UUID or a DNS label (a cluster's name).
const UUID_OR_DNS_LABEL: &str = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)$";

/// Links from a `POST` answering 201 with a schema that has an `id` to the
/// `GET`, `PATCH`, `PUT` and `DELETE` of `.../{id}` paths whose `GET`
/// answers the same schema, and from a create of a noun
/// (`POST .../members`, `POST /tokens`) to the operations on
/// `/api/v1/<noun>/{id}` and below it that take no other path parameter
/// (`DELETE /members/{id}`, `POST /releases/{id}/approve`).
fn link_created_to_reads(doc: &mut Value) {
    let schema_of = |op: &Value, status: &str| -> Option<String> {
        op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .map(str::to_string)
    };
    // (schema, path, method, operationId) of each single-resource operation.
    let mut by_schema: Vec<(String, String, &'static str, String)> = Vec::new();
    let mut reads: BTreeMap<String, String> = BTreeMap::new();
    for (path, method, op) in operations(doc) {
        if method == "get"
            && path.ends_with("/{id}")
            && let Some(schema) = schema_of(op, "200")
        {
            reads.insert(path.clone(), schema);
        }
    }
    for (path, method, op) in operations(doc) {
        if let Some(schema) = reads.get(&path)
            && method != "post"
        {
            let id = op["operationId"].as_str().unwrap_or_default().to_string();
            by_schema.push((schema.clone(), path.clone(), method, id));
        }
    }
    // (noun, method, operationId) of each operation on `/api/v1/<noun>/{id}...`.
    let mut by_noun: Vec<(String, &'static str, String)> = Vec::new();
    for (path, method, op) in operations(doc) {
        let mut segments = path.split('/').skip(3);
        if let (Some(noun), Some("{id}")) = (segments.next(), segments.next())
            && segments.all(|s| !s.starts_with('{'))
        {
            let id = op["operationId"].as_str().unwrap_or_default().to_string();
            by_noun.push((noun.to_string(), method, id));
        }
    }
    for (path, method, op) in operations(doc) {
        if method != "post" {
            continue;
        }
        let Some(created) = schema_of(&*op, "201") else {
            continue;
        };
        let created_noun = path.rsplit('/').next().unwrap_or_default().to_string();
        let mut links = serde_json::Map::new();
        let same_schema = by_schema
            .iter()
            .filter(|(schema, ..)| *schema == created)
            .map(|(_, _, m, id)| (*m, id));
        let same_noun = by_noun
            .iter()
            .filter(|(noun, ..)| *noun == created_noun)
            .map(|(_, m, id)| (*m, id));
        for (target_method, target_id) in same_schema.chain(same_noun) {
            links.insert(
                format!("{target_method}_{target_id}"),
                json!({"operationId": target_id, "parameters": {"id": "$response.body#/id"}}),
            );
        }
        if !links.is_empty() {
            op["responses"]["201"]["links"] = Value::Object(links);
        }
    }
}

/// `GET /api/openapi.json`
pub async fn serve() -> Json<&'static Value> {
    Json(served())
}

/// `GET /api/docs`: the reference, rendered in the browser from the document.
pub async fn reference() -> Html<&'static str> {
    Html(REFERENCE)
}

const REFERENCE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>paas API reference</title>
<style>body{font:15px system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222}h2{border-bottom:1px solid #ccc;padding-bottom:.2em}
.op{margin:.4em 0;padding:.4em .6em;border-left:4px solid #888;background:#f7f7f7}.m{display:inline-block;width:5em;font-weight:bold}
.get{border-color:#2a7}.post{border-color:#27a}.put,.patch{border-color:#a72}.delete{border-color:#a22}code{font-size:90%}</style></head>
<body><h1>paas API reference</h1><p>From <a href="/api/openapi.json">/api/openapi.json</a>. Send <code>Authorization: Bearer &lt;token&gt;</code>.</p>
<div id="ops">Loading…</div>
<script>
fetch('/api/openapi.json').then(r => r.json()).then(doc => {
  const byTag = {};
  for (const [path, item] of Object.entries(doc.paths)) for (const [method, op] of Object.entries(item)) {
    const tag = (op.tags || ['other'])[0]; (byTag[tag] = byTag[tag] || []).push({path, method, op});
  }
  const el = document.getElementById('ops'); el.textContent = '';
  for (const tag of Object.keys(byTag).sort()) {
    const h = document.createElement('h2'); h.textContent = tag; el.appendChild(h);
    for (const {path, method, op} of byTag[tag]) {
      const d = document.createElement('div'); d.className = 'op ' + method;
      const codes = Object.keys(op.responses || {}).join(', ');
      d.innerHTML = '<span class="m"></span><code></code> <small></small>';
      d.children[0].textContent = method.toUpperCase(); d.children[1].textContent = path; d.children[2].textContent = 'responses: ' + codes;
      el.appendChild(d);
    }
  }
});
</script></body></html>"#;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_operation_has_its_own_id() {
        let mut doc = served().clone();
        let mut seen = BTreeSet::new();
        for (path, method, op) in operations(&mut doc) {
            let id = op["operationId"].as_str().unwrap_or_default().to_string();
            assert!(!id.is_empty(), "{method} {path} has no operationId");
            assert!(seen.insert(id.clone()), "{method} {path}: operationId {id} is taken");
        }
    }

    #[test]
    fn every_string_has_a_maximum_length() {
        fn strings_without_bound(value: &Value, at: &str, found: &mut Vec<String>) {
            match value {
                Value::Object(fields) => {
                    if fields.get("type") == Some(&json!("string"))
                        && !fields.contains_key("maxLength")
                        && !fields.contains_key("enum")
                        && fields.get("format").is_none()
                    {
                        found.push(at.to_string());
                    }
                    for (key, v) in fields {
                        // Answers are the server's (the audit's CSV is one
                        // long string); requests and schemas are what is bounded.
                        if !matches!(key.as_str(), "example" | "examples" | "default" | "enum" | "responses") {
                            strings_without_bound(v, &format!("{at}/{key}"), found);
                        }
                    }
                }
                Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        strings_without_bound(v, &format!("{at}/{i}"), found);
                    }
                }
                _ => {}
            }
        }
        let mut found = Vec::new();
        let mut doc = served().clone();
        // Only ever answered: it quotes what it refuses.
        doc["components"]["schemas"].as_object_mut().unwrap().remove("Problem");
        strings_without_bound(&doc, "", &mut found);
        assert!(found.is_empty(), "strings without maxLength: {found:?}");
    }

    /// Properties with these names hold one of a closed set of values
    /// wherever they appear: a route added later is held to it too.
    #[test]
    fn every_state_status_phase_and_kind_is_an_enum() {
        const CLOSED_NAMES: &[&str] = &[
            "state",
            "status",
            "phase",
            "health",
            "kind",
            "trigger",
            "failback",
            "slot",
            "strategy",
            "level",
            "role",
            "network_domain",
            "server_type",
        ];
        let doc = served();
        let mut open = Vec::new();
        for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
            for (property, value) in schema["properties"].as_object().into_iter().flatten() {
                if CLOSED_NAMES.contains(&property.as_str())
                    && string_type(value.get("type"))
                    && value.get("enum").is_none()
                {
                    open.push(format!("{name}.{property}"));
                }
            }
        }
        assert!(open.is_empty(), "closed sets documented as any string: {open:?}");
        let states = |schema: &str, property: &str| -> Vec<String> {
            doc["components"]["schemas"][schema]["properties"][property]["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("{schema}.{property} has no enum"))
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        assert!(states("Release", "phase").contains(&"waiting".to_string()));
        assert!(states("FailoverOperation", "state").contains(&"awaiting-confirmation".to_string()));
        assert!(states("ClusterCondition", "status").contains(&"NotReady".to_string()));
        assert!(states("Binding", "health").contains(&"Degraded".to_string()));
        // An optional request field keeps null, its "leave as it is".
        let status = &doc["components"]["schemas"]["UpdateTenant"]["properties"]["status"];
        assert!(status["enum"].as_array().unwrap().contains(&Value::Null), "{status}");
    }

    #[test]
    fn a_tuple_of_one_type_is_an_array_of_its_length() {
        let pair = &served()["components"]["schemas"]["Whoami"]["properties"]["memberships"]["items"];
        assert_eq!(pair["items"]["type"], "string", "{pair}");
        assert_eq!(
            (pair["minItems"].as_u64(), pair["maxItems"].as_u64()),
            (Some(2), Some(2)),
            "{pair}"
        );
        assert!(pair.get("prefixItems").is_none(), "{pair}");
    }

    #[test]
    fn ids_in_paths_are_uuids() {
        let mut doc = served().clone();
        for (path, method, op) in operations(&mut doc) {
            for param in op["parameters"].as_array().into_iter().flatten() {
                if param["in"] == "path" && param["name"] == "id" {
                    if CLUSTER_BY_NAME.contains(&(method, path.as_str())) {
                        assert_eq!(param["schema"]["pattern"], UUID_OR_DNS_LABEL, "{method} {path}");
                    } else {
                        assert_eq!(param["schema"]["format"], "uuid", "{method} {path}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_created_tenant_links_to_its_read_and_delete() {
        let doc = served();
        let links = &doc["paths"]["/api/v1/tenants"]["post"]["responses"]["201"]["links"];
        let targets: BTreeSet<&str> = links
            .as_object()
            .expect("the create of a tenant has links")
            .values()
            .map(|l| l["operationId"].as_str().unwrap())
            .collect();
        let of = |method: &str| {
            doc["paths"]["/api/v1/tenants/{id}"][method]["operationId"]
                .as_str()
                .unwrap()
        };
        assert!(targets.contains(of("get")), "{links}");
        assert!(targets.contains(of("delete")), "{links}");
    }

    #[test]
    fn a_created_member_links_to_its_delete_and_a_release_to_its_actions() {
        let doc = served();
        let targets = |path: &str| -> BTreeSet<String> {
            doc["paths"][path]["post"]["responses"]["201"]["links"]
                .as_object()
                .unwrap_or_else(|| panic!("POST {path} has no links"))
                .values()
                .map(|l| l["operationId"].as_str().unwrap().to_string())
                .collect()
        };
        let id = |path: &str, method: &str| doc["paths"][path][method]["operationId"].as_str().unwrap().to_string();
        assert!(targets("/api/v1/tenants/{id}/members").contains(&id("/api/v1/members/{id}", "delete")));
        assert!(targets("/api/v1/tokens").contains(&id("/api/v1/tokens/{id}", "delete")));
        let release = targets("/api/v1/applications/{id}/releases");
        assert!(
            release.contains(&id("/api/v1/releases/{id}/approve", "post")),
            "{release:?}"
        );
        // Every link names an operation the document has.
        let mut all = doc.clone();
        let known: BTreeSet<String> = operations(&mut all)
            .into_iter()
            .map(|(_, _, op)| op["operationId"].as_str().unwrap().to_string())
            .collect();
        for (path, _, op) in operations(&mut all) {
            for link in op["responses"]["201"]["links"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(_, l)| l)
            {
                assert!(known.contains(link["operationId"].as_str().unwrap()), "{path}: {link}");
            }
        }
    }

    /// A request form's bounds are tenancy's: what the document allows is taken.
    #[test]
    fn a_request_form_states_tenancys_bounds() {
        let form = &served()["components"]["schemas"]["Form"]["properties"];
        assert_eq!(form["application"]["maxLength"], 128, "{}", form["application"]);
        assert_eq!(form["application"]["minLength"], 1, "{}", form["application"]);
        assert_eq!(form["purpose"]["maxLength"], 2048);
        assert_eq!(
            (form["count"]["minimum"].as_u64(), form["count"]["maximum"].as_u64()),
            (Some(1), Some(10000))
        );
        let storage = regex::Regex::new(form["storage"]["pattern"].as_str().unwrap()).unwrap();
        assert!(storage.is_match("500Gi") && storage.is_match("") && !storage.is_match("lots"));
        let email = regex::Regex::new(form["email"]["pattern"].as_str().unwrap()).unwrap();
        assert!(email.is_match("li.na@example.com") && !email.is_match("li.na") && !email.is_match("@a.b"));
        assert_eq!(
            form["server_type"]["enum"],
            json!(["application-host", "mpp", "hadoop"])
        );
    }

    /// The label patterns the document states are `DnsLabel::parse`'s rule:
    /// a 63-character name the document allows is taken, a 64th refused.
    #[test]
    fn the_documented_label_is_the_label_the_services_parse() {
        let label = regex::Regex::new(DNS_LABEL).unwrap();
        let optional = regex::Regex::new(DNS_LABEL_OR_EMPTY).unwrap();
        let long = "a".repeat(DNS_LABEL_MAX);
        let longer = "a".repeat(DNS_LABEL_MAX + 1);
        let edge = format!("a{}a", "-".repeat(DNS_LABEL_MAX - 2));
        for raw in [
            "a", "team-7", "0abc", &long, &longer, &edge, "", "Acme", "-a", "a-", "a_b", "0.5", "é",
        ] {
            let parsed = kernel::name::DnsLabel::parse("name", raw).is_ok();
            assert_eq!(label.is_match(raw), parsed, "{raw:?}");
            assert_eq!(optional.is_match(raw), parsed || raw.is_empty(), "{raw:?}");
        }
    }

    /// An optional label (the environment of a config set, a filter) may be
    /// left empty, as the services take it; a required one may not.
    #[test]
    fn optional_labels_may_be_empty_and_required_ones_may_not() {
        let doc = served();
        let set = &doc["components"]["schemas"]["NewConfigSet"]["properties"];
        assert_eq!(
            set["environment"]["pattern"], DNS_LABEL_OR_EMPTY,
            "{}",
            set["environment"]
        );
        assert_eq!(set["application"]["pattern"], DNS_LABEL, "{}", set["application"]);
        let params = doc["paths"]["/api/v1/config-sets"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let application = params.iter().find(|p| p["name"] == "application").unwrap();
        assert_eq!(application["schema"]["pattern"], DNS_LABEL_OR_EMPTY, "{application}");
        let params = doc["paths"]["/api/v1/tenants/{id}/effective-config"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let application = params.iter().find(|p| p["name"] == "application").unwrap();
        assert_eq!(application["required"], true, "{application}");
        assert_eq!(application["schema"]["pattern"], DNS_LABEL, "{application}");
    }

    /// Bounds the services apply besides a field's type are stated: what
    /// the document allows is taken (tenancy's 128-character display names,
    /// apps' 1-1000 replicas, releases counted from 1, federation's
    /// 53-character pull-secret names).
    #[test]
    fn the_services_bounds_are_documented() {
        let doc = served();
        let schema = |name: &str, property: &str| doc["components"]["schemas"][name]["properties"][property].clone();
        for (name, property) in [
            ("CreateTenant", "display_name"),
            ("UpdateTenant", "display_name"),
            ("CreateProject", "display_name"),
        ] {
            assert_eq!(schema(name, property)["maxLength"], 128, "{name}.{property}");
        }
        assert_eq!(schema("CreateProject", "description")["maxLength"], 2048);
        // Lists and maps the services refuse empty say so.
        assert_eq!(schema("CreateBinding", "objects")["minItems"], 1);
        assert_eq!(schema("NewRobot", "scopes")["minItems"], 1);
        assert_eq!(schema("Reserve", "amounts")["minProperties"], 1);
        assert_eq!(schema("PublishSpec", "amounts")["minProperties"], 1);
        assert_eq!(schema("UpdateTenant", "display_name")["minLength"], 1);
        // Names of tokens and access keys are any text of 1-128 characters.
        for name in ["CreateToken", "NewAccessKey"] {
            assert_eq!(schema(name, "name")["maxLength"], 128, "{name}");
            assert_eq!(schema(name, "name")["minLength"], 1, "{name}");
        }
        let replicas = schema("Scale", "replicas");
        assert_eq!(
            (replicas["minimum"].as_u64(), replicas["maximum"].as_u64()),
            (Some(1), Some(1000))
        );
        assert_eq!(schema("Rollback", "to_release")["minimum"], 1);
        assert_eq!(schema("ConfigRollback", "to")["minimum"], 1);
        let params = doc["paths"]["/api/v1/partitions/{id}/pull-secrets/{name}"]["put"]["parameters"]
            .as_array()
            .unwrap();
        let name = params.iter().find(|p| p["name"] == "name").unwrap();
        assert_eq!(name["schema"]["maxLength"], 53, "{name}");
        let pattern = regex::Regex::new(name["schema"]["pattern"].as_str().unwrap()).unwrap();
        assert!(pattern.is_match(&"a".repeat(53)) && !pattern.is_match(&"a".repeat(54)));
    }

    /// Rules the fuzzer found the services applying and the document not
    /// stating (Schemathesis' ST201/ST202), each now stated: what matches
    /// is what the service takes.
    #[test]
    fn the_services_input_rules_are_documented() {
        let doc = served();
        let schema = |name: &str, property: &str| doc["components"]["schemas"][name]["properties"][property].clone();
        let param = |path: &str, method: &str, name: &str| {
            let params = doc["paths"][path][method]["parameters"].as_array().unwrap();
            params.iter().find(|p| p["name"] == name).unwrap()["schema"].clone()
        };
        let pattern = |s: &Value| regex::Regex::new(s["pattern"].as_str().unwrap()).unwrap();
        // tenancy trims a request's data centre and parses a label: no
        // padding makes a 64th character fit.
        let data_centre = pattern(&schema("Form", "data_centre"));
        let label = "a".repeat(DNS_LABEL_MAX);
        assert!(data_centre.is_match(&label) && !data_centre.is_match(&format!("{label} ")));
        // A request's clusters are cluster names.
        let cluster = &doc["components"]["schemas"]["StepBody"]["properties"]["clusters"]["items"];
        assert!(pattern(cluster).is_match("dc1-a") && !pattern(cluster).is_match(""));
        // images' policies are per environment kind; tenancy's usage
        // history is per resource it counts, or of all.
        for path in [
            "/api/v1/tenants/{id}/scan-policies/{environment}",
            "/api/v1/tenants/{id}/signature-policies/{environment}",
        ] {
            for method in ["get", "put"] {
                assert_eq!(
                    param(path, method, "environment")["enum"],
                    json!(["production", "test"]),
                    "{path}"
                );
            }
        }
        let resource = param("/api/v1/tenants/{id}/usage/history", "get", "resource");
        let resources = resource["enum"].as_array().unwrap();
        assert!(
            resources.contains(&json!("")) && resources.contains(&json!("pods")),
            "{resource}"
        );
        assert_eq!(resources.len(), kernel::quantity::QUOTA_RESOURCES.len() + 1);
        // configs' item names are file names, not `.` or `..`.
        let item = param("/api/v1/config-sets/{id}/draft/items/{name}", "put", "name");
        let item_name = pattern(&item);
        for (raw, taken) in [
            ("application.properties", true),
            (".env", true),
            ("...", true),
            ("a_b-c", true),
            (".", false),
            ("..", false),
            ("", false),
            ("a/b", false),
            ("a b", false),
        ] {
            assert_eq!(item_name.is_match(raw), taken, "{raw:?}");
        }
        assert!(item_name.is_match(&"a".repeat(253)) && !item_name.is_match(&"a".repeat(254)));
        // federation's pull-secret credentials.
        let server = pattern(&schema("PutPullSecret", "server"));
        assert!(server.is_match("registry.example.com:5000") && !server.is_match("a b") && !server.is_match(""));
        let username = pattern(&schema("PutPullSecret", "username"));
        assert!(username.is_match("robot one") && !username.is_match("a:b") && !username.is_match("a\tb"));
        let password = pattern(&schema("PutPullSecret", "password"));
        assert!(password.is_match("s3cr3t pass") && !password.is_match("") && !password.is_match("a\u{7}"));
        // images' garbage collection: an absolute path, trimmed, or nothing.
        let gc = pattern(&schema("GcConfig", "config"));
        for (raw, taken) in [
            ("", true),
            ("   ", true),
            ("/etc/registry/config.yml", true),
            (" /etc/registry.yml\n", true),
            ("etc/registry.yml", false),
            ("/etc/a\u{1}b", false),
        ] {
            assert_eq!(gc.is_match(raw), taken, "{raw:?}");
        }
        // images' retention: the bounds of each, and one of the two.
        let keep = schema("PutRetentionRule", "keep_last");
        assert_eq!(
            (keep["minimum"].as_u64(), keep["maximum"].as_u64()),
            (Some(1), Some(100_000))
        );
        let days = schema("PutRetentionRule", "untagged_days");
        assert_eq!(
            (days["minimum"].as_u64(), days["maximum"].as_u64()),
            (Some(0), Some(3650))
        );
    }

    /// Amounts name the resources tenancy knows, each a quantity or a
    /// count; a partition's network policy is one of kernel's.
    #[test]
    fn amounts_name_known_resources() {
        let doc = served();
        let hard = &doc["components"]["schemas"]["TenantQuota"]["properties"]["hard"];
        assert_eq!(hard["additionalProperties"], false, "{hard}");
        let names: BTreeSet<&str> = hard["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(names, kernel::quantity::QUOTA_RESOURCES.into_iter().collect());
        let cpu = regex::Regex::new(hard["properties"]["requests.cpu"]["pattern"].as_str().unwrap()).unwrap();
        assert!(cpu.is_match("500m") && cpu.is_match("1.5") && !cpu.is_match(" 1") && !cpu.is_match("-1"));
        let pods = regex::Regex::new(hard["properties"]["pods"]["pattern"].as_str().unwrap()).unwrap();
        assert!(pods.is_match("40") && !pods.is_match("1.5"));
        let by_cluster = &doc["components"]["schemas"]["TenantQuota"]["properties"]["clusters"]["additionalProperties"];
        assert_eq!(by_cluster["properties"], hard["properties"]);
        let reserve = &doc["components"]["schemas"]["Reserve"]["properties"]["amounts"];
        assert_eq!(reserve["minProperties"], 1, "{reserve}");
        let limit = &doc["components"]["schemas"]["LimitItem"]["properties"]["max"]["properties"];
        let names: BTreeSet<&str> = limit.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(names, kernel::quantity::LIMIT_RANGE_RESOURCES.into_iter().collect());
        let policy = &doc["components"]["schemas"]["CreatePartition"]["properties"]["network_policy"]["enum"];
        assert!(policy.as_array().unwrap().contains(&json!("deny-all")), "{policy}");
    }

    /// The rules every request meets are in the document: what a fuzzer
    /// generates from it, the services take.
    #[test]
    fn ids_and_cursors_are_uuids_and_text_excludes_what_is_refused() {
        let doc = served();
        let params = doc["paths"]["/api/v1/tenants"]["get"]["parameters"].as_array().unwrap();
        let cursor = params.iter().find(|p| p["name"] == "cursor").unwrap();
        let cursor = regex::Regex::new(cursor["schema"]["pattern"].as_str().unwrap()).unwrap();
        assert!(cursor.is_match("018f0000-0000-7000-8000-000000000000") && cursor.is_match(""));
        assert!(!cursor.is_match("zzz") && kernel::page::Page::parse(0, "zzz").is_err());
        assert!(kernel::page::Page::parse(0, "").is_ok());
        let create = &doc["components"]["schemas"]["CreateToken"]["properties"];
        assert_eq!(create["tenant_id"]["format"], "uuid");
        // Optional: empty is no project.
        let project = regex::Regex::new(create["project_id"]["pattern"].as_str().unwrap()).unwrap();
        assert!(
            project.is_match("") && !project.is_match("x"),
            "{}",
            create["project_id"]
        );
        let tenant = &doc["components"]["schemas"]["CreateTenant"]["properties"];
        let label = regex::Regex::new(tenant["name"]["pattern"].as_str().unwrap()).unwrap();
        assert!(label.is_match("team-a") && !label.is_match("Team_A") && !label.is_match("-a"));
        let text = regex::Regex::new(tenant["display_name"]["pattern"].as_str().unwrap()).unwrap();
        assert!(text.is_match("Team A, Zürich"));
        for refused in ["a\0b", "a\u{202E}b", "a\u{200B}b", "\u{FEFF}a"] {
            assert!(!text.is_match(refused), "{refused:?}");
            assert!(crate::request::refusal(refused).is_some(), "{refused:?}");
        }
        let params = doc["paths"]["/api/v1/requests"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let state = params.iter().find(|p| p["name"] == "state").unwrap();
        assert!(
            state["schema"]["enum"]
                .as_array()
                .unwrap()
                .contains(&json!("provisioned"))
        );
    }
}
