//! The shapes of the JSON documents the gateway passes through to a service
//! as they are (a placement, a release strategy, a binding's Kubernetes
//! objects, a template spec): the gateway's types hold them as
//! `serde_json::Value`, so utoipa can only say "an object". These schemas
//! say what the services parse (`federation::placement`,
//! `kernel::resilience`, `apps::placement`, `apps::strategy`,
//! `apps::spec`, `federation::binding::KINDS`), so a client (or a fuzzer)
//! reads the rule instead of learning it from a 400. What no schema can say
//! (a cluster that exists, a canary's steps in order, a service that
//! another depends on) stays the services' to refuse, naming the field.

use serde_json::{Map, Value, json};

/// A DNS label (RFC 1123), as `kernel::name::DnsLabel` parses it.
const LABEL: &str = super::DNS_LABEL;

/// `kernel::resilience::Resilience`: the failover settings beside a placement.
fn resilience() -> Map<String, Value> {
    let Value::Object(settings) = json!({
        "dr_tier": {"type": "string", "enum": ["active-active", "auto-failover", "manual"],
                    "description": "The disaster-recovery tier (default manual)."},
        "toleration_seconds": {"type": "number", "minimum": 0, "maximum": 86400,
                               "description": "How long a cluster may be out of Ready before replicas move (default 10)."},
        "singleton": {"type": "boolean", "description": "Never two copies at once."},
        "failback": {"type": "string", "enum": ["automatic", "manual"],
                     "description": "Whether replicas return by themselves (default: automatic for the tiers that fail over by themselves)."},
        "priority": {"type": "integer", "minimum": -1000, "maximum": 1000,
                     "description": "Order of automatic failbacks: higher first."},
        "failback_confirmation": {"type": "string", "enum": ["required", "none"],
                                  "description": "Whether a singleton's automatic failback waits for a confirmation."}
    }) else {
        unreachable!("an object literal")
    };
    settings
}

/// `federation::placement::Placement`'s two forms.
fn placement_forms() -> Map<String, Value> {
    let Value::Object(forms) = json!({
        "explicit": {
            "type": "array",
            "description": "Clusters chosen by the caller, each once: clusters the platform has, where the tenant has a partition.",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": false,
                "required": ["cluster"],
                "properties": {
                    "cluster": {"type": "string", "pattern": LABEL, "maxLength": 63, "description": "The cluster's name."},
                    "partition_id": {"type": "string", "format": "uuid",
                                     "description": "The tenant's partition there; needed only when it has several."},
                    "replicas": {"type": "integer", "minimum": 0, "maximum": 4_294_967_295_u64,
                                 "description": "Replicas there; the binding's when absent."}
                }
            }
        },
        "policy": {
            "type": "object",
            "description": "Clusters chosen by policy.",
            "additionalProperties": false,
            "properties": {
                "groups": {
                    "type": "array",
                    "description": "Affinity groups in order of preference; none admits every cluster.",
                    "items": {
                        "type": "object",
                        "additionalProperties": false,
                        "properties": {
                            "labels": {"type": "object", "additionalProperties": {"type": "string"},
                                       "description": "Every one of these labels must be on the cluster."},
                            "data_centres": {"type": "array", "items": {"type": "string"}},
                            "regions": {"type": "array", "items": {"type": "string"}},
                            "zones": {"type": "array", "items": {"type": "string"}},
                            "network_domains": {"type": "array", "items": {"type": "string", "enum": ["core", "dmz", "internet"]}},
                            "environments": {"type": "array", "items": {"type": "string", "enum": ["production", "test", "dr"]}}
                        }
                    }
                },
                "exclude": {"type": "array", "items": {"type": "string"}, "description": "Clusters never used."},
                "spread": {
                    "type": ["object", "null"],
                    "additionalProperties": false,
                    "required": ["by"],
                    "properties": {
                        "by": {"type": "string", "enum": ["region", "zone", "data_centre"]},
                        "min": {"type": "integer", "minimum": 0, "maximum": 4_294_967_295_u64},
                        "max": {"type": "integer", "minimum": 0, "maximum": 4_294_967_295_u64,
                                "description": "0: no limit."}
                    }
                },
                "division": {
                    "description": "How replicas are divided: each cluster runs them all (duplicated, the default), by free capacity (dynamic), or by static weights per cluster.",
                    "oneOf": [
                        {"type": "string", "enum": ["duplicated", "dynamic"]},
                        {"type": "object", "additionalProperties": false, "required": ["weighted"],
                         "properties": {"weighted": {"type": "object",
                                                     "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 4_294_967_295_u64}}}}
                    ]
                }
            }
        }
    }) else {
        unreachable!("an object literal")
    };
    forms
}

/// One of `explicit` and `policy`, required (`exactly`) or optional.
fn one_form(exactly: bool) -> Value {
    if exactly {
        json!([{"required": ["explicit"]}, {"required": ["policy"]}])
    } else {
        json!([{"not": {"required": ["explicit", "policy"]}}])
    }
}

/// A binding's placement: a form and the failover settings beside it.
fn binding_placement() -> Value {
    let mut properties = placement_forms();
    properties.extend(resilience());
    json!({
        "type": "object",
        "description": "`{\"explicit\": [...]}` or `{\"policy\": {...}}`, with the failover settings beside it.",
        "additionalProperties": false,
        "properties": properties,
        "oneOf": one_form(true)
    })
}

/// An application's placement (`apps::placement`): a binding's, and per
/// service the same settings, each optional (a service without a form
/// takes the application's).
fn application_placement() -> Value {
    let mut service = placement_forms();
    service.extend(resilience());
    let mut properties = service.clone();
    properties.insert(
        "services".into(),
        json!({
            "type": "object",
            "description": "Per-service settings laid over the application's, by service name.",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": false,
                "properties": service,
                "allOf": one_form(false)
            }
        }),
    );
    json!({
        "type": "object",
        "description": "`{\"explicit\": [...]}` or `{\"policy\": {...}}` with the failover settings beside it, and per service (`services`) the same, overriding them.",
        "additionalProperties": false,
        "properties": properties,
        "oneOf": one_form(true)
    })
}

/// An external service's placement (`apps::federation::parse_placement`):
/// a form alone.
fn external_placement() -> Value {
    json!({
        "type": "object",
        "description": "`{\"explicit\": [...]}` or `{\"policy\": {...}}`: the partitions it is written into.",
        "additionalProperties": false,
        "properties": placement_forms(),
        "oneOf": one_form(true)
    })
}

/// `apps::strategy::Strategy`, tagged by `type`.
fn strategy() -> Value {
    let int_or_percent = json!({
        "description": "A count of pods or a percentage (`\"25%\"`).",
        "oneOf": [
            {"type": "integer", "minimum": 0, "maximum": 4_294_967_295_u64},
            {"type": "string", "pattern": "^([0-9]|[1-9][0-9]|100)%$"}
        ]
    });
    // A header or query parameter: a token name and a printable value; a
    // cookie's value also without `;`, `,` or spaces.
    let token = json!({"type": "string", "pattern": "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,256}$", "maxLength": 256});
    let name_value = |value: &str| {
        json!({
            "type": "object", "additionalProperties": false, "required": ["name", "value"],
            "properties": {"name": token, "value": {"type": "string", "pattern": value, "maxLength": 1024}}
        })
    };
    let printable = "^[^\\u0000-\\u001F\\u007F-\\u009F]{1,1024}$";
    let cookie = "^[^\\u0000-\\u001F\\u007F-\\u009F;, ]{1,1024}$";
    let tagged = |kind: &str, description: &str, mut properties: Map<String, Value>, required: &[&str]| {
        properties.insert("type".into(), json!({"type": "string", "enum": [kind]}));
        let mut required: Vec<&str> = required.to_vec();
        required.insert(0, "type");
        json!({"type": "object", "title": kind, "description": description, "additionalProperties": false,
               "required": required, "properties": properties})
    };
    let props = |v: Value| match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    json!({
        "description": "How a release replaces the running version (default rolling 25%/25%).",
        "oneOf": [
            tagged("recreate", "Old pods stop, then new ones start.", Map::new(), &[]),
            tagged("rolling", "New pods replace old ones a few at a time; max_surge and max_unavailable are not both zero.",
                   props(json!({"max_surge": int_or_percent, "max_unavailable": int_or_percent})), &[]),
            tagged("blue-green", "The new version in the other slot, switched to once Available.", Map::new(), &[]),
            tagged("canary", "A growing share of requests, step by step (ascending percentages up to 100).",
                   props(json!({
                       "steps": {"type": "array", "minItems": 1, "maxItems": 100, "uniqueItems": true,
                                 "description": "Ascending.",
                                 "items": {"type": "integer", "minimum": 1, "maximum": 100}},
                       "pause_seconds": {"type": "integer", "minimum": 0, "maximum": 86400},
                       "pause": {"type": "boolean"}
                   })), &[]),
            tagged("ab", "Requests matching a header, cookie or query parameter go to the new version.",
                   props(json!({"match": {
                       "type": "object", "additionalProperties": false, "minProperties": 1, "maxProperties": 1,
                       "properties": {"header": name_value(printable), "cookie": name_value(cookie),
                                      "query": name_value(printable)}
                   }})), &["match"]),
            tagged("shadow", "Every request mirrored to the new version.", Map::new(), &[]),
            tagged("gray", "One cluster (or partition) at a time.",
                   props(json!({
                       "by": {"type": "string", "enum": ["cluster", "partition"]},
                       "order": {"type": "array", "uniqueItems": true,
                                 "description": "Cluster names (by cluster) or partition ids (by partition).",
                                 "items": {"anyOf": [{"type": "string", "pattern": LABEL, "maxLength": 63},
                                                     {"type": "string", "format": "uuid"}]}},
                       "pause": {"oneOf": [{"type": "integer", "minimum": 0, "maximum": 86400},
                                           {"type": "string", "enum": ["manual"]}]},
                       "deadline_seconds": {"type": ["integer", "null"], "minimum": 1, "maximum": 86400}
                   })), &[])
        ]
    })
}

/// `federation::binding::KINDS`: each kind with its `apiVersion`.
const KUBERNETES_KINDS: &[(&str, &str)] = &[
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("v1", "Service"),
    ("v1", "Endpoints"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "PersistentVolumeClaim"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("networking.k8s.io/v1", "Ingress"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
];

/// A Kubernetes object a binding may hold: one of the kinds, named by a DNS
/// label; the rest of it is Kubernetes' own schema for the kind.
fn kubernetes_object() -> Value {
    let kinds: Vec<Value> = KUBERNETES_KINDS
        .iter()
        .map(|(api_version, kind)| {
            json!({
                "type": "object",
                "title": kind,
                "required": ["apiVersion", "kind", "metadata"],
                "properties": {
                    "apiVersion": {"type": "string", "enum": [api_version]},
                    "kind": {"type": "string", "enum": [kind]},
                    "metadata": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string", "pattern": LABEL, "maxLength": 63}}
                    }
                }
            })
        })
        .collect();
    json!({
        "description": "A Kubernetes object of a kind bindings hold, named by a DNS label (two of a kind not alike); the rest is Kubernetes' schema for the kind.",
        "oneOf": kinds
    })
}

/// `apps::spec::Spec` as written: parameters and services.
fn template_spec() -> Value {
    let quantity = json!({"type": "string", "pattern": kernel::quantity::DOCUMENTED_QUANTITY});
    let port = json!({"type": "integer", "minimum": 1, "maximum": 65535});
    let commands = json!({"type": "array", "items": {"type": "string"}});
    let whole = json!({"type": "integer", "minimum": 0, "maximum": 4_294_967_295_u64});
    let positive = json!({"type": "integer", "minimum": 1, "maximum": 4_294_967_295_u64});
    let absolute = json!({"type": "string", "pattern": "^/[^\\u0000]*$"});
    let env_name = json!({"type": "string", "pattern": "^[A-Za-z_.-][A-Za-z0-9_.-]*$"});
    let probe = json!({
        "type": ["object", "null"], "additionalProperties": false,
        "description": "Exactly one of http_get, tcp and exec.",
        "properties": {
            "http_get": {"type": "object", "additionalProperties": false, "required": ["path", "port"],
                         "properties": {"path": absolute, "port": port,
                                        "scheme": {"type": "string", "enum": ["HTTP", "HTTPS"]}}},
            "tcp": {"type": "object", "additionalProperties": false, "required": ["port"], "properties": {"port": port}},
            "exec": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "initial_delay_seconds": whole,
            "timeout_seconds": positive,
            "period_seconds": positive,
            "success_threshold": {"type": "integer", "minimum": 1, "maximum": 4_294_967_295_u64,
                                  "description": "1 for a liveness probe."},
            "failure_threshold": positive
        }
    });
    let container = json!({
        "type": "object", "additionalProperties": false, "required": ["name", "image"],
        "properties": {
            "name": {"type": "string", "pattern": LABEL, "maxLength": 63},
            "image": {"type": "string", "pattern": "^[^\\s$]+$", "description": "An image reference."},
            "resources": {"type": "object", "additionalProperties": false, "description": "A request is not above its limit.",
                          "properties": {"cpu_request": quantity, "cpu_limit": quantity,
                                         "memory_request": quantity, "memory_limit": quantity}},
            "ports": {"type": "array", "items": {
                "type": "object", "additionalProperties": false, "required": ["container_port"],
                "properties": {"name": {"type": "string", "pattern": LABEL, "maxLength": 15}, "container_port": port,
                               "protocol": {"type": "string", "enum": ["TCP", "UDP"]},
                               "node_port": {"type": ["integer", "null"], "description": "0: drawn from the cluster's pool.",
                                             "anyOf": [{"enum": [0]}, {"minimum": 1024, "maximum": 65535}]}}}},
            "env": {"type": "array", "items": {
                "type": "object", "additionalProperties": false, "required": ["name"],
                "properties": {"name": env_name, "value": {"type": "string"}}}},
            "config_refs": {"type": "array", "items": {
                "type": "object", "additionalProperties": false, "required": ["config"],
                "description": "A config item mounted as a file (mount_path) or read into a variable (env, with item).",
                "properties": {"config": {"type": "string", "pattern": LABEL, "maxLength": 63},
                               "item": {"type": ["string", "null"], "pattern": "^[-A-Za-z0-9_.]{1,253}$", "maxLength": 253},
                               "mount_path": absolute, "env": env_name,
                               "reload": {"type": "string", "enum": ["restart", "none"]}}}},
            "volume_mounts": {"type": "array", "items": {
                "type": "object", "additionalProperties": false, "required": ["volume", "path"],
                "description": "Mounts a volume of the service at an absolute path.",
                "properties": {"volume": {"type": "string", "pattern": LABEL, "maxLength": 63},
                               "path": absolute,
                               "read_only": {"type": "boolean"}}}},
            "command": commands,
            "pre_stop": commands,
            "liveness": probe,
            "readiness": probe
        }
    });
    let volume = json!({
        "type": "object", "additionalProperties": false, "required": ["name"],
        "description": "Exactly one of empty_dir, host_path and pvc.",
        "properties": {
            "name": {"type": "string", "pattern": LABEL, "maxLength": 63},
            "empty_dir": {"type": ["object", "null"], "additionalProperties": false,
                          "properties": {"memory": {"type": "boolean"}, "size_limit": quantity}},
            "host_path": {"type": ["object", "null"], "additionalProperties": false, "required": ["path"],
                          "properties": {"path": absolute}},
            "pvc": {"type": ["object", "null"], "additionalProperties": false, "required": ["size"],
                    "properties": {"size": quantity, "storage_class": {"type": ["string", "null"]},
                                   "access_mode": {"type": "string", "enum": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]}}}
        }
    });
    let service = json!({
        "type": "object", "additionalProperties": false, "required": ["name", "containers"],
        "properties": {
            "name": {"type": "string", "pattern": LABEL, "maxLength": 63, "description": "Unique in the application."},
            "controller": {"type": "string", "enum": ["Deployment", "StatefulSet", "DaemonSet"]},
            "replicas": {"type": "integer", "minimum": 0, "maximum": 1000},
            "proxy_mode": {"type": "string", "enum": ["round_robin", "session_affinity"]},
            "labels": {"type": "object", "description": "Not under the platform's prefixes (paas.io/, app.kubernetes.io/).",
                       "propertyNames": {"minLength": 1, "maxLength": 253},
                       "additionalProperties": {"type": "string", "maxLength": 63}},
            "host_network": {"type": "boolean"},
            "depends_on": {"type": "array", "items": {"type": "string", "pattern": LABEL, "maxLength": 63},
                           "description": "Other services of the application, without a cycle."},
            "containers": {"type": "array", "minItems": 1, "items": container},
            "volumes": {"type": "array", "items": volume},
            "autoscaling": {"type": ["object", "null"], "additionalProperties": false,
                            "required": ["min_replicas", "max_replicas"],
                            "description": "On CPU utilisation or a custom metric; min_replicas is not above max_replicas.",
                            "properties": {"min_replicas": positive, "max_replicas": positive,
                                           "cpu_utilization": {"type": ["integer", "null"], "minimum": 1, "maximum": 100},
                                           "metric": {"type": ["object", "null"], "additionalProperties": false,
                                                      "required": ["name", "target_average_value"],
                                                      "properties": {"name": {"type": "string", "minLength": 1},
                                                                     "target_average_value": quantity}}}},
            "ingress": {"type": "array", "items": {
                "type": "object", "additionalProperties": false, "required": ["port"],
                "properties": {"host": {"type": ["string", "null"], "maxLength": 253,
                                        "pattern": "^(\\*\\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"},
                               "path": absolute, "port": port}}}
        }
    });
    let parameter = json!({
        "type": "object", "additionalProperties": false, "required": ["name", "type"],
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,63}$", "description": "How placeholders name it: `${name}`."},
            "type": {"type": "string", "enum": ["string", "integer", "number", "boolean"]},
            "default": {"description": "A value of the parameter's type, within its bounds."},
            "required": {"type": "boolean"},
            "description": {"type": "string"},
            "minimum": {"type": ["number", "null"]},
            "maximum": {"type": ["number", "null"]},
            "max_length": {"type": ["integer", "null"], "minimum": 0},
            "enum": {"type": "array"}
        }
    });
    json!({
        "type": "object",
        "description": "One service or several with dependencies, and the typed parameters a deploy fills in. Any string may name a parameter as `${name}` (a string that is only a placeholder takes the parameter's typed value). At most 256 KiB of JSON.",
        "additionalProperties": false,
        "required": ["services"],
        "properties": {
            "parameters": {"type": "array", "items": parameter, "description": "Names unique."},
            "services": {"type": "array", "minItems": 1, "items": service}
        }
    })
}

/// Parameter values by name, as a deploy or a render gives them.
fn parameter_values() -> Value {
    json!({
        "type": "object",
        "description": "Values by parameter name: each of its parameter's type and within its bounds.",
        "propertyNames": {"pattern": "^[A-Za-z0-9_]{1,63}$"},
        "additionalProperties": {"type": ["string", "number", "integer", "boolean"]}
    })
}

/// Where each shape goes: (schema, property, component), and the components.
const PLACES: &[(&str, &str, &str)] = &[
    ("CreateBinding", "placement", "BindingPlacement"),
    ("UpdateBinding", "placement", "BindingPlacement"),
    ("BreakGlassUpdate", "placement", "BindingPlacement"),
    ("Deploy", "placement", "ApplicationPlacement"),
    ("NewRelease", "placement", "ApplicationPlacement"),
    ("Register", "placement", "ExternalPlacement"),
    ("Update", "placement", "ExternalPlacement"),
    ("Deploy", "strategy", "Strategy"),
    ("NewRelease", "strategy", "Strategy"),
    ("CreateVersion", "spec", "TemplateSpec"),
    ("UpdateVersion", "spec", "TemplateSpec"),
    ("Deploy", "parameters", "ParameterValues"),
    ("NewRelease", "parameters", "ParameterValues"),
    ("RenderRequest", "parameters", "ParameterValues"),
];

/// Adds the components and points the request fields at them, keeping each
/// field's description and whether it may be `null`.
pub(super) fn document(doc: &mut Value) {
    let components = [
        ("BindingPlacement", binding_placement()),
        ("ApplicationPlacement", application_placement()),
        ("ExternalPlacement", external_placement()),
        ("Strategy", strategy()),
        ("TemplateSpec", template_spec()),
        ("ParameterValues", parameter_values()),
        ("KubernetesObject", kubernetes_object()),
    ];
    if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for (name, schema) in components {
            schemas.insert(name.into(), schema);
        }
    }
    for (schema, property, component) in PLACES {
        let Some(target) = doc.pointer_mut(&format!("/components/schemas/{schema}/properties/{property}")) else {
            continue;
        };
        let nullable = target["type"]
            .as_array()
            .is_some_and(|ts| ts.iter().any(|t| t == "null"));
        let description = target.get("description").cloned();
        let reference = json!({"$ref": format!("#/components/schemas/{component}")});
        let mut shape = if nullable {
            json!({"oneOf": [{"type": "null"}, reference]})
        } else {
            json!({"allOf": [reference]})
        };
        if let Some(description) = description {
            shape["description"] = description;
        }
        *target = shape;
    }
    for schema in ["CreateBinding", "UpdateBinding", "BreakGlassUpdate"] {
        if let Some(items) = doc.pointer_mut(&format!("/components/schemas/{schema}/properties/objects/items")) {
            *items = json!({"$ref": "#/components/schemas/KubernetesObject"});
        }
    }
}
