//! Slots and traffic: what one service's federation binding holds while a
//! slotted release (blue-green, canary, A/B, shadow) runs.
//!
//! A slotted release runs its version in a slot (`blue` or `green`) beside
//! the version it replaces, which keeps the other slot. A slot's Deployment
//! (and HPA) is named `<name>-<slot>` and carries the label `paas.io/slot`
//! on itself, its selector and its pods. The service's own Service (`<name>`)
//! selects the slot that serves; routed strategies add a ClusterIP Service
//! per slot (`<name>-<slot>`) and an HTTPRoute `<name>` attached to the
//! platform's Gateway, whose rules weight, match or mirror requests between
//! the slot Services. PVCs and Ingresses are shared by both slots.
//!
//! An unslotted (rolling, recreate) release runs Deployment `<name>`. When a
//! slotted release replaces it, that Deployment is adopted as the first slot
//! rather than renamed (a rename would prune the running pods and start the
//! slot from nothing): it keeps its name and its selector (immutable in
//! Kubernetes) and only its pods gain the slot label, rolled in by [`adopt`]
//! without losing a ready pod while the Service still selects them without
//! it. The other way, an unslotted release replacing a slot keeps the slot's
//! Deployment beside its own until its own is Available ([`handover`]).
//!
//! [`layout`] is pure: the release driver asks it for the objects of each
//! step and applies them as the service's binding, so federation adds what
//! is new and prunes what the step no longer has.

use kernel::{Error, Result};
use serde_json::{Value, json};

use crate::strategy::RequestMatch;

/// The label naming a workload's slot.
pub const SLOT_LABEL: &str = "paas.io/slot";
/// The slot of a first slotted release, and of an unslotted version that a
/// slotted release replaces.
pub const FIRST_SLOT: &str = "blue";

/// The slot a release takes when the version it replaces has `slot`.
pub fn other_slot(slot: &str) -> &'static str {
    if slot == "blue" { "green" } else { "blue" }
}

/// The Gateway HTTPRoutes attach to (a platform setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl GatewayRef {
    /// Parses `namespace/name`.
    ///
    /// # Errors
    /// Not two DNS labels separated by `/`.
    pub fn parse(text: &str) -> Result<Self> {
        let valid = |s: &str| kernel::name::DnsLabel::parse("gateway", s).is_ok();
        match text.split_once('/') {
            Some((namespace, name)) if valid(namespace) && valid(name) => Ok(Self {
                namespace: namespace.into(),
                name: name.into(),
            }),
            _ => Err(Error::invalid(
                "gateway",
                "must be namespace/name, such as paas-system/paas-gateway",
            )),
        }
    }
}

impl Default for GatewayRef {
    fn default() -> Self {
        Self {
            namespace: "paas-system".into(),
            name: "paas-gateway".into(),
        }
    }
}

/// One version of a service: its rendered objects and the slot it runs in.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// The release's rendered objects of this service.
    pub objects: &'a [Value],
    /// `blue` or `green`.
    pub slot: &'a str,
    /// An unslotted release's workloads adopted into the slot: they keep
    /// their names and selectors; only their pods carry the slot label.
    pub adopted: bool,
}

/// How the HTTPRoute splits requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This percentage to the new version, the rest to the old.
    Weighted(u32),
    /// Matching requests to the new version, the rest to the old.
    Match(RequestMatch),
    /// Every request to the old version and a mirror of it to the new.
    Mirror,
    /// Every request to the serving slot.
    Serving,
}

/// What a service's binding holds at one step.
#[derive(Debug, Clone)]
pub struct Layout<'a> {
    /// The version being replaced, while it still runs.
    pub old: Option<Side<'a>>,
    /// The new version, once it runs.
    pub new: Option<Side<'a>>,
    /// The slot the Service `<name>` selects.
    pub serving: &'a str,
    /// The HTTPRoute, for routed strategies.
    pub route: Option<Route>,
    /// Where HTTPRoutes attach.
    pub gateway: &'a GatewayRef,
}

fn kind(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}

/// Whether a service's objects can run in two slots side by side: only a
/// Deployment can. A StatefulSet's pods own their identity and volumes and a
/// DaemonSet runs one pod per node, so such a service rolls in place while
/// a slotted release moves the others.
pub fn slottable(objects: &[Value]) -> bool {
    objects.iter().any(|o| kind(o) == "Deployment")
}

/// Port names that say HTTP, by the convention service meshes and Gateway
/// implementations read (`http`, `http-web`, `grpc-api`, ...).
const HTTP_NAMES: [&str; 5] = ["http", "https", "http2", "grpc", "h2c"];
/// `appProtocol` values that say HTTP (IANA names and Kubernetes' own).
const HTTP_APP_PROTOCOLS: [&str; 7] = [
    "http",
    "https",
    "h2c",
    "grpc",
    "kubernetes.io/h2c",
    "kubernetes.io/ws",
    "kubernetes.io/wss",
];

/// The first HTTP port of a Service: a TCP port whose `appProtocol`, or
/// else whose name, says HTTP. An HTTPRoute can only steer requests to such
/// a port; a database's TCP port gets none.
pub fn http_port(service: &Value) -> Option<&Value> {
    service["spec"]["ports"].as_array()?.iter().find(|p| {
        let tcp = p["protocol"].as_str().is_none_or(|t| t == "TCP");
        let said = match p["appProtocol"].as_str() {
            Some(app) => HTTP_APP_PROTOCOLS.contains(&app.to_ascii_lowercase().as_str()),
            None => p["name"].as_str().is_some_and(|name| {
                HTTP_NAMES
                    .iter()
                    .any(|h| name == *h || name.strip_prefix(h).is_some_and(|rest| rest.starts_with('-')))
            }),
        };
        tcp && said
    })
}

fn name(o: &Value) -> String {
    o["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

/// The objects of one service at one step of a slotted release.
///
/// # Errors
/// Neither side given, a weighted, matching or mirroring route without both
/// sides, or a slot that is neither side's.
pub fn layout(l: &Layout) -> Result<Vec<Value>> {
    let Some(base) = l.new.or(l.old) else {
        return Err(Error::internal("a layout needs a version"));
    };
    if !l.new.iter().chain(l.old.iter()).any(|s| s.slot == l.serving) {
        return Err(Error::internal(format!("slot {} serves but does not run", l.serving)));
    }
    let main = base
        .objects
        .iter()
        .find(|o| kind(o) == "Service" && !name(o).ends_with("-headless"))
        .cloned();
    let mut out = Vec::new();
    if let Some(mut service) = main.clone() {
        service["spec"]["selector"][SLOT_LABEL] = json!(l.serving);
        out.push(service);
    }
    // Shared by both slots: claims, Ingresses (which point at the Service).
    out.extend(
        base.objects
            .iter()
            .filter(|o| !matches!(kind(o), "Service" | "Deployment" | "HorizontalPodAutoscaler"))
            .cloned(),
    );
    // Only a Service with an HTTP port is steered by an HTTPRoute; without
    // one the service switches with the Service `<name>` (to the new slot
    // when the release finishes), as blue-green does.
    let routed = main.as_ref().filter(|s| http_port(s).is_some());
    for side in l.old.iter().chain(l.new.iter()) {
        out.extend(slot_objects(side, routed.filter(|_| l.route.is_some())));
    }
    if let (Some(route), Some(service)) = (&l.route, routed) {
        out.push(http_route(l, route, service)?);
    }
    Ok(out)
}

/// A side's Deployments and HPAs renamed into its slot, and its slot
/// Service when `service` is given.
fn slot_objects(side: &Side, service: Option<&Value>) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(service) = service {
        let mut s = service.clone();
        s["metadata"]["name"] = json!(format!("{}-{}", name(service), side.slot));
        s["metadata"]["labels"][SLOT_LABEL] = json!(side.slot);
        s["spec"]["selector"][SLOT_LABEL] = json!(side.slot);
        s["spec"]["type"] = json!("ClusterIP");
        if let Some(ports) = s["spec"]["ports"].as_array_mut() {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                p.remove("nodePort");
            }
        }
        out.push(s);
    }
    for o in side.objects {
        match kind(o) {
            "Deployment" if side.adopted => {
                let mut d = o.clone();
                d["metadata"]["labels"][SLOT_LABEL] = json!(side.slot);
                d["spec"]["template"]["metadata"]["labels"][SLOT_LABEL] = json!(side.slot);
                // Its pods roll to gain the label one surge pod at a time,
                // whatever the release's own strategy (recreate would stop
                // them all).
                d["spec"]["strategy"] =
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}});
                out.push(d);
            }
            "HorizontalPodAutoscaler" if side.adopted => {
                let mut h = o.clone();
                h["metadata"]["labels"][SLOT_LABEL] = json!(side.slot);
                out.push(h);
            }
            "Deployment" => {
                let mut d = o.clone();
                d["metadata"]["name"] = json!(format!("{}-{}", name(o), side.slot));
                d["metadata"]["labels"][SLOT_LABEL] = json!(side.slot);
                d["spec"]["selector"]["matchLabels"][SLOT_LABEL] = json!(side.slot);
                d["spec"]["template"]["metadata"]["labels"][SLOT_LABEL] = json!(side.slot);
                out.push(d);
            }
            "HorizontalPodAutoscaler" => {
                let mut h = o.clone();
                h["metadata"]["name"] = json!(format!("{}-{}", name(o), side.slot));
                h["metadata"]["labels"][SLOT_LABEL] = json!(side.slot);
                let target = h["spec"]["scaleTargetRef"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                h["spec"]["scaleTargetRef"]["name"] = json!(format!("{target}-{}", side.slot));
                out.push(h);
            }
            _ => {}
        }
    }
    out
}

/// An unslotted release's objects with its Deployments adopted into `slot`:
/// their pods roll to carry the slot label while its Service, unchanged,
/// selects them with and without it.
pub fn adopt(objects: &[Value], slot: &str) -> Vec<Value> {
    let mut out: Vec<Value> = objects
        .iter()
        .filter(|o| !matches!(kind(o), "Deployment" | "HorizontalPodAutoscaler"))
        .cloned()
        .collect();
    out.extend(slot_objects(
        &Side {
            objects,
            slot,
            adopted: true,
        },
        None,
    ));
    out
}

/// An unslotted release's objects beside the slot `old` it replaces: the
/// slot's workloads (and, for a routed strategy, its slot Service and an
/// HTTPRoute that sends it every request) stay until the new Deployments
/// are Available; the new Service, which selects no slot, selects both.
///
/// # Errors
/// None in practice: the route has the slot it needs.
pub fn handover(new: &[Value], old: &Side, routed: bool, gateway: &GatewayRef) -> Result<Vec<Value>> {
    let mut out = new.to_vec();
    let service = old
        .objects
        .iter()
        .find(|o| kind(o) == "Service" && !name(o).ends_with("-headless"))
        .filter(|s| http_port(s).is_some());
    let route_to = if routed { service } else { None };
    out.extend(slot_objects(old, route_to));
    if let Some(service) = route_to {
        let l = Layout {
            old: Some(*old),
            new: None,
            serving: old.slot,
            route: Some(Route::Serving),
            gateway,
        };
        out.push(http_route(&l, &Route::Serving, service)?);
    }
    Ok(out)
}

fn http_route(l: &Layout, route: &Route, service: &Value) -> Result<Value> {
    let base = name(service);
    let port = http_port(service).map_or(Value::Null, |p| p["port"].clone());
    let backend = |slot: &str| json!({"group": "", "kind": "Service", "name": format!("{base}-{slot}"), "port": port});
    let weighted = |slot: &str, weight: u32| {
        let mut b = backend(slot);
        b["weight"] = json!(weight);
        b
    };
    let both = || match (l.old, l.new) {
        (Some(old), Some(new)) => Ok((old.slot, new.slot)),
        _ => Err(Error::internal("this route needs the old and the new version running")),
    };
    let rules = match route {
        Route::Serving => json!([{"backendRefs": [weighted(l.serving, 100)]}]),
        Route::Weighted(percent) => {
            let (old, new) = both()?;
            let percent = (*percent).min(100);
            json!([{"backendRefs": [weighted(old, 100 - percent), weighted(new, percent)]}])
        }
        Route::Match(m) => {
            let (old, new) = both()?;
            let matched = match m {
                RequestMatch::Header(nv) => json!({"headers": [{"type": "Exact", "name": nv.name, "value": nv.value}]}),
                RequestMatch::Query(nv) => {
                    json!({"queryParams": [{"type": "Exact", "name": nv.name, "value": nv.value}]})
                }
                RequestMatch::Cookie(nv) => {
                    json!({"headers": [{"type": "RegularExpression", "name": "Cookie", "value": cookie_pattern(&nv.name, &nv.value)}]})
                }
            };
            json!([{"matches": [matched], "backendRefs": [weighted(new, 100)]}, {"backendRefs": [weighted(old, 100)]}])
        }
        Route::Mirror => {
            let (old, new) = both()?;
            json!([{"filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": backend(new)}}], "backendRefs": [weighted(old, 100)]}])
        }
    };
    let mut labels = service["metadata"]["labels"].clone();
    if let Some(map) = labels.as_object_mut() {
        map.remove(SLOT_LABEL);
    }
    Ok(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": base, "labels": labels, "annotations": service["metadata"]["annotations"]},
        "spec": {
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": l.gateway.namespace, "name": l.gateway.name}],
            "rules": rules,
        }
    }))
}

/// A regular expression matching a `Cookie` header that carries
/// `name=value` as one of its cookies.
fn cookie_pattern(name: &str, value: &str) -> String {
    let escape = |s: &str| {
        s.chars().fold(String::new(), |mut out, c| {
            if !c.is_ascii_alphanumeric() && c != '_' && c != '-' {
                out.push('\\');
            }
            out.push(c);
            out
        })
    };
    format!("(^|;\\s*){}={}(;|$)", escape(name), escape(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::NameValue;

    fn version(image: &str) -> Vec<Value> {
        let labels = json!({"paas.io/app": "shop", "paas.io/service": "web"});
        vec![
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop-web", "labels": labels, "annotations": {"paas.io/release": "1"}},
                   "spec": {"type": "NodePort", "selector": labels, "ports": [{"name": "http", "port": 8080, "targetPort": 8080, "nodePort": 30000}]}}),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "shop-web-data", "labels": labels}, "spec": {}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop-web", "labels": labels},
                   "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": image}]}}}}),
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "shop-web", "labels": labels},
                   "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop-web"}}}),
        ]
    }

    fn find<'a>(objects: &'a [Value], kind_: &str, name_: &str) -> &'a Value {
        objects
            .iter()
            .find(|o| kind(o) == kind_ && name(o) == name_)
            .unwrap_or_else(|| panic!("no {kind_} {name_} in {objects:#?}"))
    }

    fn names(objects: &[Value]) -> Vec<String> {
        let mut n: Vec<String> = objects.iter().map(|o| format!("{}/{}", kind(o), name(o))).collect();
        n.sort();
        n
    }

    #[test]
    fn blue_green_runs_both_slots_and_the_service_selects_the_serving_one() {
        let (old, new) = (version("web:1"), version("web:2"));
        let gateway = GatewayRef::default();
        let l = Layout {
            old: Some(Side {
                objects: &old,
                slot: "blue",
                adopted: false,
            }),
            new: Some(Side {
                objects: &new,
                slot: "green",
                adopted: false,
            }),
            serving: "blue",
            route: None,
            gateway: &gateway,
        };
        let objects = layout(&l).unwrap();
        assert_eq!(
            names(&objects),
            [
                "Deployment/shop-web-blue",
                "Deployment/shop-web-green",
                "HorizontalPodAutoscaler/shop-web-blue",
                "HorizontalPodAutoscaler/shop-web-green",
                "PersistentVolumeClaim/shop-web-data",
                "Service/shop-web"
            ]
        );
        assert_eq!(
            find(&objects, "Service", "shop-web")["spec"]["selector"][SLOT_LABEL],
            "blue"
        );
        assert_eq!(
            find(&objects, "Service", "shop-web")["spec"]["ports"][0]["nodePort"],
            30000,
            "the Service keeps its node port"
        );
        let green = find(&objects, "Deployment", "shop-web-green");
        assert_eq!(green["spec"]["selector"]["matchLabels"][SLOT_LABEL], "green");
        assert_eq!(green["spec"]["template"]["metadata"]["labels"][SLOT_LABEL], "green");
        assert_eq!(green["spec"]["template"]["spec"]["containers"][0]["image"], "web:2");
        assert_eq!(
            find(&objects, "Deployment", "shop-web-blue")["spec"]["template"]["spec"]["containers"][0]["image"],
            "web:1"
        );
        assert_eq!(
            find(&objects, "HorizontalPodAutoscaler", "shop-web-green")["spec"]["scaleTargetRef"]["name"],
            "shop-web-green"
        );

        let switched = layout(&Layout {
            serving: "green",
            ..l.clone()
        })
        .unwrap();
        assert_eq!(
            find(&switched, "Service", "shop-web")["spec"]["selector"][SLOT_LABEL],
            "green"
        );
        let confirmed = layout(&Layout {
            old: None,
            serving: "green",
            ..l.clone()
        })
        .unwrap();
        assert!(
            !names(&confirmed).contains(&"Deployment/shop-web-blue".to_string()),
            "{:?}",
            names(&confirmed)
        );
        assert!(
            layout(&Layout {
                old: None,
                serving: "blue",
                ..l
            })
            .is_err(),
            "a slot that does not run cannot serve"
        );
    }

    #[test]
    fn canary_weights_requests_between_slot_services_behind_the_gateway() {
        let (old, new) = (version("web:1"), version("web:2"));
        let gateway = GatewayRef::parse("edge/public").unwrap();
        let l = Layout {
            old: Some(Side {
                objects: &old,
                slot: "green",
                adopted: false,
            }),
            new: Some(Side {
                objects: &new,
                slot: "blue",
                adopted: false,
            }),
            serving: "green",
            route: Some(Route::Weighted(25)),
            gateway: &gateway,
        };
        let objects = layout(&l).unwrap();
        let stable = find(&objects, "Service", "shop-web-green");
        assert_eq!(
            (
                stable["spec"]["type"].as_str(),
                stable["spec"]["selector"][SLOT_LABEL].as_str()
            ),
            (Some("ClusterIP"), Some("green"))
        );
        assert_eq!(
            stable["spec"]["ports"][0].get("nodePort"),
            None,
            "node ports stay on the Service"
        );
        assert_eq!(
            find(&objects, "Service", "shop-web-blue")["spec"]["selector"][SLOT_LABEL],
            "blue"
        );
        let route = find(&objects, "HTTPRoute", "shop-web");
        assert_eq!(
            route["spec"]["parentRefs"][0],
            json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "edge", "name": "public"})
        );
        let backends = &route["spec"]["rules"][0]["backendRefs"];
        assert_eq!(
            *backends,
            json!([{"group": "", "kind": "Service", "name": "shop-web-green", "port": 8080, "weight": 75}, {"group": "", "kind": "Service", "name": "shop-web-blue", "port": 8080, "weight": 25}])
        );
        assert_eq!(route["metadata"]["labels"]["paas.io/app"], "shop");

        let promoted = layout(&Layout {
            old: None,
            serving: "blue",
            route: Some(Route::Serving),
            ..l.clone()
        })
        .unwrap();
        assert_eq!(
            find(&promoted, "HTTPRoute", "shop-web")["spec"]["rules"],
            json!([{"backendRefs": [{"group": "", "kind": "Service", "name": "shop-web-blue", "port": 8080, "weight": 100}]}])
        );
        assert!(
            !names(&promoted).iter().any(|n| n.ends_with("-green")),
            "{:?}",
            names(&promoted)
        );
        assert!(
            layout(&Layout {
                old: None,
                serving: "blue",
                route: Some(Route::Weighted(5)),
                ..l
            })
            .is_err(),
            "a weight needs both versions"
        );
    }

    #[test]
    fn ab_matches_headers_cookies_and_query_parameters_and_shadow_mirrors() {
        let (old, new) = (version("web:1"), version("web:2"));
        let gateway = GatewayRef::default();
        let nv = NameValue {
            name: "variant".into(),
            value: "b".into(),
        };
        let l = |route| Layout {
            old: Some(Side {
                objects: &old,
                slot: "blue",
                adopted: false,
            }),
            new: Some(Side {
                objects: &new,
                slot: "green",
                adopted: false,
            }),
            serving: "blue",
            route: Some(route),
            gateway: &gateway,
        };
        let rules = |route| find(&layout(&l(route)).unwrap(), "HTTPRoute", "shop-web")["spec"]["rules"].clone();
        let header = rules(Route::Match(RequestMatch::Header(nv.clone())));
        assert_eq!(
            header[0]["matches"],
            json!([{"headers": [{"type": "Exact", "name": "variant", "value": "b"}]}])
        );
        assert_eq!(header[0]["backendRefs"][0]["name"], "shop-web-green");
        assert_eq!(
            header[1],
            json!({"backendRefs": [{"group": "", "kind": "Service", "name": "shop-web-blue", "port": 8080, "weight": 100}]}),
            "the rest stays on the stable version"
        );
        let query = rules(Route::Match(RequestMatch::Query(nv.clone())));
        assert_eq!(
            query[0]["matches"],
            json!([{"queryParams": [{"type": "Exact", "name": "variant", "value": "b"}]}])
        );
        let cookie = rules(Route::Match(RequestMatch::Cookie(nv)));
        assert_eq!(cookie[0]["matches"][0]["headers"][0]["name"], "Cookie");
        assert_eq!(cookie[0]["matches"][0]["headers"][0]["type"], "RegularExpression");
        let mirror = rules(Route::Mirror);
        assert_eq!(
            mirror,
            json!([{"filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"group": "", "kind": "Service", "name": "shop-web-green", "port": 8080}}}],
                                   "backendRefs": [{"group": "", "kind": "Service", "name": "shop-web-blue", "port": 8080, "weight": 100}]}])
        );
    }

    #[test]
    fn an_adopted_deployment_keeps_its_name_and_selector_and_its_pods_gain_the_slot() {
        let (old, new) = (version("web:1"), version("web:2"));
        let adopted = adopt(&old, "blue");
        assert_eq!(names(&adopted), names(&old), "nothing is renamed, nothing pruned");
        let d = find(&adopted, "Deployment", "shop-web");
        assert_eq!(
            d["spec"]["selector"], old[2]["spec"]["selector"],
            "a Deployment's selector is immutable"
        );
        assert_eq!(d["spec"]["template"]["metadata"]["labels"][SLOT_LABEL], "blue");
        assert_eq!(
            d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0,
            "no ready pod is given up for the label"
        );
        assert_eq!(
            find(&adopted, "Service", "shop-web")["spec"]["selector"].get(SLOT_LABEL),
            None,
            "the Service selects the pods with and without the label"
        );

        let gateway = GatewayRef::default();
        let l = Layout {
            old: Some(Side {
                objects: &old,
                slot: "blue",
                adopted: true,
            }),
            new: Some(Side {
                objects: &new,
                slot: "green",
                adopted: false,
            }),
            serving: "blue",
            route: None,
            gateway: &gateway,
        };
        let objects = layout(&l).unwrap();
        assert_eq!(
            names(&objects),
            [
                "Deployment/shop-web",
                "Deployment/shop-web-green",
                "HorizontalPodAutoscaler/shop-web",
                "HorizontalPodAutoscaler/shop-web-green",
                "PersistentVolumeClaim/shop-web-data",
                "Service/shop-web"
            ]
        );
        assert_eq!(
            find(&objects, "Deployment", "shop-web"),
            d,
            "the adopted Deployment is the same object in every step"
        );
        assert_eq!(
            find(&objects, "HorizontalPodAutoscaler", "shop-web")["spec"]["scaleTargetRef"]["name"],
            "shop-web"
        );
    }

    #[test]
    fn a_handover_keeps_the_slot_running_beside_the_unslotted_version() {
        let (old, new) = (version("web:1"), version("web:2"));
        let gateway = GatewayRef::default();
        let side = Side {
            objects: &old,
            slot: "green",
            adopted: false,
        };
        let plain = handover(&new, &side, false, &gateway).unwrap();
        assert_eq!(
            names(&plain),
            [
                "Deployment/shop-web",
                "Deployment/shop-web-green",
                "HorizontalPodAutoscaler/shop-web",
                "HorizontalPodAutoscaler/shop-web-green",
                "PersistentVolumeClaim/shop-web-data",
                "Service/shop-web"
            ]
        );
        assert_eq!(
            find(&plain, "Service", "shop-web")["spec"]["selector"].get(SLOT_LABEL),
            None,
            "the Service selects both versions"
        );
        let routed = handover(&new, &side, true, &gateway).unwrap();
        assert_eq!(
            find(&routed, "HTTPRoute", "shop-web")["spec"]["rules"],
            json!([{"backendRefs": [{"group": "", "kind": "Service", "name": "shop-web-green", "port": 8080, "weight": 100}]}])
        );
        assert_eq!(
            find(&routed, "Service", "shop-web-green")["spec"]["selector"][SLOT_LABEL],
            "green"
        );
    }

    #[test]
    fn a_service_without_an_http_port_gets_no_http_route_and_switches_with_its_service() {
        let tcp = |image: &str| {
            let mut objects = version(image);
            objects[0]["spec"]["ports"] =
                json!([{"name": "postgres", "port": 5432, "targetPort": 5432, "protocol": "TCP"}]);
            objects
        };
        let (old, new) = (tcp("db:1"), tcp("db:2"));
        let gateway = GatewayRef::default();
        let objects = layout(&Layout {
            old: Some(Side {
                objects: &old,
                slot: "blue",
                adopted: false,
            }),
            new: Some(Side {
                objects: &new,
                slot: "green",
                adopted: false,
            }),
            serving: "blue",
            route: Some(Route::Weighted(25)),
            gateway: &gateway,
        })
        .unwrap();
        assert_eq!(
            names(&objects),
            [
                "Deployment/shop-web-blue",
                "Deployment/shop-web-green",
                "HorizontalPodAutoscaler/shop-web-blue",
                "HorizontalPodAutoscaler/shop-web-green",
                "PersistentVolumeClaim/shop-web-data",
                "Service/shop-web"
            ],
            "no HTTPRoute and no slot Services for a TCP port"
        );
        assert_eq!(
            find(&objects, "Service", "shop-web")["spec"]["selector"][SLOT_LABEL],
            "blue"
        );
        let side = Side {
            objects: &old,
            slot: "green",
            adopted: false,
        };
        assert!(
            !names(&handover(&new, &side, true, &gateway).unwrap())
                .iter()
                .any(|n| n.starts_with("HTTPRoute")),
            "nor on the way back to an unslotted release"
        );
    }

    #[test]
    fn http_ports_are_named_or_declared_as_http() {
        let service = |ports: Value| json!({"spec": {"ports": ports}});
        let port = |s: &Value| http_port(s).map(|p| p["port"].as_u64().unwrap());
        assert_eq!(
            port(&service(
                json!([{"name": "tcp-5432", "port": 5432}, {"name": "http-api", "port": 8080}])
            )),
            Some(8080),
            "the HTTP port, not the first"
        );
        for name in ["http", "https", "grpc", "h2c", "http2-web"] {
            assert!(port(&service(json!([{"name": name, "port": 1}]))).is_some(), "{name}");
        }
        for name in ["tcp-80", "postgres", "httpd", "redis"] {
            assert!(port(&service(json!([{"name": name, "port": 1}]))).is_none(), "{name}");
        }
        assert_eq!(
            port(&service(
                json!([{"name": "web", "appProtocol": "kubernetes.io/h2c", "port": 9}])
            )),
            Some(9)
        );
        assert_eq!(
            port(&service(json!([{"name": "http", "appProtocol": "mysql", "port": 9}]))),
            None,
            "appProtocol wins over the name"
        );
        assert_eq!(
            port(&service(json!([{"name": "http", "protocol": "UDP", "port": 9}]))),
            None
        );
        assert!(slottable(&version("web:1")));
        assert!(!slottable(&[
            json!({"kind": "StatefulSet"}),
            json!({"kind": "Service"})
        ]));
    }

    #[test]
    fn a_cookie_pattern_matches_the_cookie_among_others_only() {
        assert_eq!(cookie_pattern("variant", "b"), "(^|;\\s*)variant=b(;|$)");
        assert_eq!(cookie_pattern("a.b", "x+y"), "(^|;\\s*)a\\.b=x\\+y(;|$)");
    }

    #[test]
    fn gateway_references_parse() {
        assert_eq!(
            GatewayRef::parse("paas-system/paas-gateway").unwrap(),
            GatewayRef::default()
        );
        assert_eq!(GatewayRef::parse("paas-gateway").unwrap_err().field(), Some("gateway"));
        assert_eq!(GatewayRef::parse("A/b").unwrap_err().field(), Some("gateway"));
        assert_eq!(other_slot("blue"), "green");
        assert_eq!(other_slot("green"), "blue");
    }
}
