//! Rendering: a resolved [`Application`] becomes the Kubernetes objects of
//! one release. Every object carries the platform's labels (so federation can
//! find and remove what it owns) and no namespace: federation places them in
//! each assigned partition's namespace. Names are `<app>-<service>` (just
//! `<app>` when the service is named like the application).
//!
//! Per service, in this order: a headless Service (StatefulSet), the Service
//! (when a container has ports), PersistentVolumeClaims (claims of a
//! Deployment or DaemonSet; a StatefulSet gets volumeClaimTemplates), the
//! workload, a HorizontalPodAutoscaler, an Ingress.

use std::collections::BTreeMap;

use kernel::quantity::Quantity;
use kernel::{Error, Result};
use serde_json::{Map, Value, json};

use crate::spec::{Application, Autoscaling, Container, Controller, Probe, Protocol, ProxyMode, Service};

/// The label federation and the platform find an application's objects by.
pub const APP_LABEL: &str = "paas.io/app";
/// The label naming the service of the application.
pub const SERVICE_LABEL: &str = "paas.io/service";
/// The annotation recording the release that wrote an object.
pub const RELEASE_ANNOTATION: &str = "paas.io/release";
/// The annotation on a workload listing the configs its pods use (JSON:
/// `[{"config", "name", "reload"}]`); [`crate::config_delivery`] reads it to
/// place their ConfigMaps and Secrets beside it whichever release view is applied.
pub const CONFIGS_ANNOTATION: &str = "paas.io/configs";

/// What a release adds to the application: its name, its number, and the
/// node ports drawn from the pool for ports that asked for one (`0`).
#[derive(Debug, Clone, Default)]
pub struct Release {
    /// The application's name (a DNS label).
    pub app: String,
    /// The release number.
    pub number: u64,
    /// (service, container port) -> node port drawn for it.
    pub node_ports: BTreeMap<(String, u16), u16>,
}

/// The objects of one release.
///
/// # Errors
/// A name would exceed Kubernetes' 63 characters (`app`).
pub fn render(app: &Application, release: &Release) -> Result<Vec<Value>> {
    let mut objects = Vec::new();
    for service in &app.services {
        let name = object_name(&release.app, &service.name)?;
        let labels = labels(&release.app, service);
        let selector = json!({APP_LABEL: release.app, SERVICE_LABEL: service.name});
        let meta = |object_name: &str| json!({"name": object_name, "labels": labels, "annotations": {RELEASE_ANNOTATION: release.number.to_string()}});
        let ports: Vec<Value> = service_ports(service, release);
        if service.controller == Controller::StatefulSet {
            objects.push(json!({
                "apiVersion": "v1", "kind": "Service", "metadata": meta(&format!("{name}-headless")),
                "spec": {"clusterIP": "None", "selector": selector, "ports": ports, "publishNotReadyAddresses": true}
            }));
        }
        if !ports.is_empty() {
            let node_port = service
                .containers
                .iter()
                .flat_map(|c| &c.ports)
                .any(|p| p.node_port.is_some());
            objects.push(json!({
                "apiVersion": "v1", "kind": "Service", "metadata": meta(&name),
                "spec": {
                    "type": if node_port { "NodePort" } else { "ClusterIP" },
                    "selector": selector,
                    "ports": ports,
                    "sessionAffinity": match service.proxy_mode { ProxyMode::RoundRobin => "None", ProxyMode::SessionAffinity => "ClientIP" },
                }
            }));
        }
        let claims: Vec<(&str, &crate::spec::Claim)> = service
            .volumes
            .iter()
            .filter_map(|v| v.pvc.as_ref().map(|c| (v.name.as_str(), c)))
            .collect();
        if service.controller != Controller::StatefulSet {
            for (volume, claim) in &claims {
                objects.push(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta(&format!("{name}-{volume}")), "spec": claim_spec(claim)?}));
            }
        }
        objects.push(workload(service, &name, &selector, meta(&name), &labels, &claims)?);
        if let Some(a) = &service.autoscaling {
            objects.push(json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta(&name), "spec": autoscaler(a, service.controller, &name)?}));
        }
        if !service.ingress.is_empty() {
            objects.push(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta(&name), "spec": ingress(service, &name)}));
        }
    }
    Ok(objects)
}

/// The name of a service's objects.
///
/// # Errors
/// Longer than a DNS label allows.
pub fn object_name(app: &str, service: &str) -> Result<String> {
    let name = if app == service {
        app.to_string()
    } else {
        format!("{app}-{service}")
    };
    // Room for the longest suffix added (`-headless`).
    if name.len() + "-headless".len() > 63 {
        return Err(Error::invalid(
            "app",
            format!("{name} is too long for Kubernetes names; use a shorter application or service name"),
        ));
    }
    Ok(name)
}

fn labels(app: &str, service: &Service) -> Map<String, Value> {
    let mut labels: Map<String, Value> = service.labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    labels.insert("app.kubernetes.io/name".into(), json!(service.name));
    labels.insert("app.kubernetes.io/instance".into(), json!(app));
    labels.insert("app.kubernetes.io/managed-by".into(), json!("paas"));
    labels.insert(APP_LABEL.into(), json!(app));
    labels.insert(SERVICE_LABEL.into(), json!(service.name));
    labels
}

fn canonical(field: &str, raw: &str) -> Result<String> {
    Ok(Quantity::parse(field, raw)?.to_string())
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::TCP => "TCP",
        Protocol::UDP => "UDP",
    }
}

fn service_ports(service: &Service, release: &Release) -> Vec<Value> {
    service
        .containers
        .iter()
        .flat_map(|c| &c.ports)
        .map(|p| {
            let mut port = json!({
                "name": p.name.clone().unwrap_or_else(|| format!("{}-{}", protocol(p.protocol).to_lowercase(), p.container_port)),
                "port": p.container_port,
                "targetPort": p.container_port,
                "protocol": protocol(p.protocol),
            });
            let drawn = release.node_ports.get(&(service.name.clone(), p.container_port)).copied();
            if let Some(n) = p.node_port.filter(|n| *n != 0).or(drawn) {
                port["nodePort"] = json!(n);
            }
            port
        })
        .collect()
}

fn claim_spec(claim: &crate::spec::Claim) -> Result<Value> {
    let mut spec = json!({"accessModes": [claim.access_mode], "resources": {"requests": {"storage": canonical("pvc.size", &claim.size)?}}});
    if let Some(class) = &claim.storage_class {
        spec["storageClassName"] = json!(class);
    }
    Ok(spec)
}

fn workload(
    service: &Service,
    name: &str,
    selector: &Value,
    meta: Value,
    labels: &Map<String, Value>,
    claims: &[(&str, &crate::spec::Claim)],
) -> Result<Value> {
    let kind = match service.controller {
        Controller::Deployment => "Deployment",
        Controller::StatefulSet => "StatefulSet",
        Controller::DaemonSet => "DaemonSet",
    };
    let mut volumes: Vec<Value> = Vec::new();
    for v in &service.volumes {
        if let Some(e) = &v.empty_dir {
            let mut source = Map::new();
            if e.memory {
                source.insert("medium".into(), json!("Memory"));
            }
            if let Some(limit) = &e.size_limit {
                source.insert("sizeLimit".into(), json!(canonical("empty_dir.size_limit", limit)?));
            }
            volumes.push(json!({"name": v.name, "emptyDir": source}));
        } else if let Some(h) = &v.host_path {
            volumes.push(json!({"name": v.name, "hostPath": {"path": h.path}}));
        } else if v.pvc.is_some() && service.controller != Controller::StatefulSet {
            volumes.push(json!({"name": v.name, "persistentVolumeClaim": {"claimName": format!("{name}-{}", v.name)}}));
        }
    }
    // One volume per config mounted: its ConfigMap and Secret projected into
    // one directory (either may be absent: a config without secret items has
    // no Secret).
    let mut configs: Vec<(&str, &str)> = service
        .containers
        .iter()
        .flat_map(|c| &c.config_refs)
        .map(|r| (r.config.as_str(), r.reload.as_str()))
        .collect();
    configs.sort_unstable();
    configs.dedup();
    let mut used = Vec::new();
    for (config, reload) in &configs {
        let object = config_object_name(name, config)?;
        used.push(json!({"config": config, "name": object, "reload": reload}));
    }
    let mut mounted: Vec<&str> = service
        .containers
        .iter()
        .flat_map(|c| &c.config_refs)
        .filter(|r| r.mount_path.is_some())
        .map(|r| r.config.as_str())
        .collect();
    mounted.sort_unstable();
    mounted.dedup();
    for config in mounted {
        let object = config_object_name(name, config)?;
        volumes.push(json!({"name": format!("config-{config}"), "projected": {"sources": [
            {"configMap": {"name": object, "optional": true}},
            {"secret": {"name": object, "optional": true}},
        ]}}));
    }
    let containers = service
        .containers
        .iter()
        .map(|c| container(c, name))
        .collect::<Result<Vec<_>>>()?;
    let mut pod = json!({"containers": containers});
    if !volumes.is_empty() {
        pod["volumes"] = json!(volumes);
    }
    if service.host_network {
        pod["hostNetwork"] = json!(true);
        pod["dnsPolicy"] = json!("ClusterFirstWithHostNet");
    }
    let mut spec =
        json!({"selector": {"matchLabels": selector}, "template": {"metadata": {"labels": labels}, "spec": pod}});
    // An autoscaler owns the replica count; writing it here would fight it
    // at every apply.
    if service.controller != Controller::DaemonSet && service.autoscaling.is_none() {
        spec["replicas"] = json!(service.replicas);
    }
    if service.controller == Controller::StatefulSet {
        spec["serviceName"] = json!(format!("{name}-headless"));
        if !claims.is_empty() {
            let templates = claims
                .iter()
                .map(|(volume, claim)| Ok(json!({"metadata": {"name": volume}, "spec": claim_spec(claim)?})))
                .collect::<Result<Vec<_>>>()?;
            spec["volumeClaimTemplates"] = json!(templates);
        }
    }
    let mut meta = meta;
    if !used.is_empty() {
        meta["annotations"][CONFIGS_ANNOTATION] = json!(Value::Array(used).to_string());
    }
    Ok(json!({"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}))
}

/// The name of the ConfigMap (and Secret) carrying `config` for the
/// workload `workload`.
///
/// # Errors
/// Longer than a DNS label allows (`config_refs.config`).
pub fn config_object_name(workload: &str, config: &str) -> Result<String> {
    let name = format!("{workload}-config-{config}");
    if name.len() > 63 {
        return Err(Error::invalid(
            "config_refs.config",
            format!("{name} is too long for Kubernetes names; use a shorter config, application or service name"),
        ));
    }
    Ok(name)
}

fn container(c: &Container, workload: &str) -> Result<Value> {
    let mut out = json!({"name": c.name, "image": c.image});
    if !c.command.is_empty() {
        out["command"] = json!(c.command);
    }
    let mut env: Vec<Value> = c
        .env
        .iter()
        .map(|e| json!({"name": e.name, "value": e.value}))
        .collect();
    for r in &c.config_refs {
        if let (Some(var), Some(item)) = (&r.env, &r.item) {
            // A secret item's variable becomes a secretKeyRef when the config is placed.
            let name = config_object_name(workload, &r.config)?;
            env.push(json!({"name": var, "valueFrom": {"configMapKeyRef": {"name": name, "key": item}}}));
        }
    }
    if !env.is_empty() {
        out["env"] = json!(env);
    }
    if !c.ports.is_empty() {
        out["ports"] = json!(
            c.ports
                .iter()
                .map(|p| {
                    let mut port = json!({"containerPort": p.container_port, "protocol": protocol(p.protocol)});
                    if let Some(name) = &p.name {
                        port["name"] = json!(name);
                    }
                    port
                })
                .collect::<Vec<_>>()
        );
    }
    let r = &c.resources;
    let amounts = |pairs: [(&str, &Option<String>); 2]| -> Result<Map<String, Value>> {
        let mut map = Map::new();
        for (key, raw) in pairs {
            if let Some(raw) = raw {
                map.insert(key.into(), json!(canonical(key, raw)?));
            }
        }
        Ok(map)
    };
    let requests = amounts([("cpu", &r.cpu_request), ("memory", &r.memory_request)])?;
    let limits = amounts([("cpu", &r.cpu_limit), ("memory", &r.memory_limit)])?;
    let mut resources = Map::new();
    if !requests.is_empty() {
        resources.insert("requests".into(), Value::Object(requests));
    }
    if !limits.is_empty() {
        resources.insert("limits".into(), Value::Object(limits));
    }
    if !resources.is_empty() {
        out["resources"] = Value::Object(resources);
    }
    let mut mounts: Vec<Value> = c
        .volume_mounts
        .iter()
        .map(|m| json!({"name": m.volume, "mountPath": m.path, "readOnly": m.read_only}))
        .collect();
    mounts.extend(c.config_refs.iter().filter_map(|r| {
        r.mount_path.as_ref().map(|path| {
            let mut mount = json!({"name": format!("config-{}", r.config), "mountPath": path, "readOnly": true});
            if let Some(item) = &r.item {
                mount["subPath"] = json!(item);
            }
            mount
        })
    }));
    if !mounts.is_empty() {
        out["volumeMounts"] = json!(mounts);
    }
    if let Some(p) = &c.liveness {
        out["livenessProbe"] = probe(p);
    }
    if let Some(p) = &c.readiness {
        out["readinessProbe"] = probe(p);
    }
    if !c.pre_stop.is_empty() {
        out["lifecycle"] = json!({"preStop": {"exec": {"command": c.pre_stop}}});
    }
    Ok(out)
}

fn probe(p: &Probe) -> Value {
    let mut out = json!({
        "initialDelaySeconds": p.initial_delay_seconds,
        "timeoutSeconds": p.timeout_seconds,
        "periodSeconds": p.period_seconds,
        "successThreshold": p.success_threshold,
        "failureThreshold": p.failure_threshold,
    });
    if let Some(h) = &p.http_get {
        out["httpGet"] = json!({"path": h.path, "port": h.port, "scheme": h.scheme});
    } else if let Some(t) = &p.tcp {
        out["tcpSocket"] = json!({"port": t.port});
    } else if let Some(command) = &p.exec {
        out["exec"] = json!({"command": command});
    }
    out
}

fn autoscaler(a: &Autoscaling, controller: Controller, name: &str) -> Result<Value> {
    let kind = if controller == Controller::StatefulSet {
        "StatefulSet"
    } else {
        "Deployment"
    };
    let metric = match (&a.cpu_utilization, &a.metric) {
        (Some(cpu), _) => {
            json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}})
        }
        (None, Some(m)) => json!({
            "type": "Pods",
            "pods": {"metric": {"name": m.name}, "target": {"type": "AverageValue", "averageValue": canonical("autoscaling.metric.target_average_value", &m.target_average_value)?}}
        }),
        (None, None) => return Err(Error::invalid("autoscaling", "must have cpu_utilization or metric")),
    };
    Ok(json!({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": name},
        "minReplicas": a.min_replicas,
        "maxReplicas": a.max_replicas,
        "metrics": [metric],
    }))
}

fn ingress(service: &Service, name: &str) -> Value {
    let backend = |port: u16| json!({"service": {"name": name, "port": {"number": port}}});
    let mut spec = Map::new();
    // Rules grouped by host, in the order written; a rule with neither host
    // nor path is the default backend.
    let mut hosts: Vec<(Option<String>, Vec<Value>)> = Vec::new();
    for rule in &service.ingress {
        if rule.host.is_none() && rule.path.is_none() {
            spec.insert("defaultBackend".into(), backend(rule.port));
            continue;
        }
        let path = json!({"path": rule.path.clone().unwrap_or_else(|| "/".into()), "pathType": "Prefix", "backend": backend(rule.port)});
        match hosts.iter_mut().find(|(h, _)| *h == rule.host) {
            Some((_, paths)) => paths.push(path),
            None => hosts.push((rule.host.clone(), vec![path])),
        }
    }
    if !hosts.is_empty() {
        let rules: Vec<Value> = hosts
            .into_iter()
            .map(|(host, paths)| {
                let mut rule = json!({"http": {"paths": paths}});
                if let Some(host) = host {
                    rule["host"] = json!(host);
                }
                rule
            })
            .collect();
        spec.insert("rules".into(), json!(rules));
    }
    Value::Object(spec)
}
