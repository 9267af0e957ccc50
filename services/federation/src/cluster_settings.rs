//! Per-cluster settings a platform administrator manages (R2): the storage
//! classes and ingress classes a cluster offers, the default of each, and
//! its NodePort range. They are given at registration and replaced later
//! ([`crate::cluster::set_settings`]); the propagator fits every object to
//! its target cluster with them ([`ClusterSettings::fit`]): a
//! PersistentVolumeClaim (or a StatefulSet's
//! volumeClaimTemplate) without a storage class gets the cluster's default,
//! an Ingress without a class gets the default ingress class, and a class
//! the cluster does not offer is refused before anything is applied.
//! The apps service reads the NodePort range to draw node ports every
//! target cluster accepts. A registry mirror (the sub-registry of the
//! cluster's data centre) makes the propagator point the platform
//! registry's images at it ([`crate::registry_mirror`]).
//!
//! An empty class list means the platform does not manage that kind of
//! class in the cluster: objects pass as given (the cluster's own default
//! applies).

use std::fmt;

use kernel::{Error, Result};
use paas_proto::v1 as pb;
use serde_json::Value;
use sqlx::PgPool;

/// Kubernetes' default `--service-node-port-range`.
pub const DEFAULT_NODE_PORTS: NodePortRange = NodePortRange {
    first: 30000,
    last: 32767,
};

/// A cluster's NodePort range, `first..=last`, inside 1-65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePortRange {
    /// The lowest port.
    pub first: u16,
    /// The highest port.
    pub last: u16,
}

impl NodePortRange {
    /// Parses a range; both 0 is the default range. Errors name
    /// `<prefix>node_port_range.first` or `.last`.
    ///
    /// # Errors
    /// A bound outside 1-65535, or `first` above `last`.
    pub fn parse(prefix: &str, first: u32, last: u32) -> Result<Self> {
        if first == 0 && last == 0 {
            return Ok(DEFAULT_NODE_PORTS);
        }
        let bound = |name: &str, v: u32| -> Result<u16> {
            u16::try_from(v).ok().filter(|p| *p >= 1).ok_or_else(|| {
                Error::invalid(
                    format!("{prefix}node_port_range.{name}"),
                    format!("{v} is not a port (1-65535)"),
                )
            })
        };
        let (first, last) = (bound("first", first)?, bound("last", last)?);
        if first > last {
            return Err(Error::invalid(
                format!("{prefix}node_port_range.first"),
                format!("{first} is above last ({last})"),
            ));
        }
        Ok(Self { first, last })
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl fmt::Display for NodePortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// The classes of one kind a cluster offers and which is the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classes {
    /// Offered classes, as given (no duplicates); empty: not managed.
    pub offered: Vec<String>,
    /// The default, one of `offered`.
    pub default: Option<String>,
}

/// Kubernetes object names of classes: DNS subdomains.
fn class_name(field: &str, raw: &str) -> Result<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 253
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && raw.starts_with(|c: char| c.is_ascii_alphanumeric())
        && raw.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(raw.to_string())
    } else {
        Err(Error::invalid(
            field,
            format!("{raw:?} is not a class name (lower-case letters, digits, '-' and '.', at most 253)"),
        ))
    }
}

impl Classes {
    /// Parses a list and its default; errors name `<prefix><list>[i]` or `<prefix><default>`.
    ///
    /// # Errors
    /// A malformed or repeated name, or a default not in the list.
    pub fn parse(prefix: &str, list: &str, default_field: &str, offered: Vec<String>, default: String) -> Result<Self> {
        let mut names: Vec<String> = Vec::with_capacity(offered.len());
        for (i, raw) in offered.iter().enumerate() {
            let field = format!("{prefix}{list}[{i}]");
            let name = class_name(&field, raw.trim())?;
            if names.contains(&name) {
                return Err(Error::invalid(field, format!("{name} is listed twice")));
            }
            names.push(name);
        }
        let default = match default.trim() {
            "" => None,
            d if names.iter().any(|n| n == d) => Some(d.to_string()),
            d => {
                return Err(Error::invalid(
                    format!("{prefix}{default_field}"),
                    format!("{d} is not one of {list}"),
                ));
            }
        };
        Ok(Self {
            offered: names,
            default,
        })
    }

    /// Fits the class slot `field` of `object` (what the refusal names):
    /// absent -> the default (if any); present -> must be offered (when the
    /// list is managed). `""` is Kubernetes' explicit "no class" and passes.
    fn fit(
        &self,
        cluster: &str,
        what: &str,
        object: &str,
        slot: &mut serde_json::Map<String, Value>,
        field: &str,
    ) -> Result<(), String> {
        match slot.get(field) {
            None | Some(Value::Null) => {
                if let Some(d) = &self.default {
                    slot.insert(field.into(), Value::String(d.clone()));
                }
                Ok(())
            }
            Some(Value::String(c)) if c.is_empty() || self.offered.is_empty() || self.offered.contains(c) => Ok(()),
            Some(Value::String(c)) => Err(format!(
                "{object}: {what} class {c} is not offered by cluster {cluster} (it offers: {})",
                self.offered.join(", ")
            )),
            Some(_) => Err(format!("{object}: {field} must be a string")),
        }
    }
}

/// A cluster's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Storage classes.
    pub storage: Classes,
    /// Ingress classes.
    pub ingress: Classes,
    /// NodePort range.
    pub node_ports: NodePortRange,
    /// The sub-registry (host[:port]) serving the cluster; none: the
    /// platform registry itself.
    pub registry_mirror: Option<String>,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            storage: Classes::default(),
            ingress: Classes::default(),
            node_ports: DEFAULT_NODE_PORTS,
            registry_mirror: None,
        }
    }
}

impl ClusterSettings {
    /// Validates settings as given; absent: the defaults. Errors name the
    /// field under `prefix` (`settings.` at registration, nothing when the
    /// settings are the whole request body).
    ///
    /// # Errors
    /// A malformed field.
    pub fn parse(prefix: &str, s: Option<pb::ClusterSettings>) -> Result<Self> {
        let Some(s) = s else { return Ok(Self::default()) };
        Ok(Self {
            storage: Classes::parse(
                prefix,
                "storage_classes",
                "default_storage_class",
                s.storage_classes,
                s.default_storage_class,
            )?,
            ingress: Classes::parse(
                prefix,
                "ingress_classes",
                "default_ingress_class",
                s.ingress_classes,
                s.default_ingress_class,
            )?,
            node_ports: NodePortRange::parse(prefix, s.node_port_first, s.node_port_last)?,
            registry_mirror: registry_host(&format!("{prefix}registry_mirror"), &s.registry_mirror)?,
        })
    }

    /// Fits one object (a server-side apply body) for `cluster`: default
    /// storage class into PersistentVolumeClaims and StatefulSet
    /// volumeClaimTemplates that name none, default ingress class into
    /// Ingresses that name none (neither `spec.ingressClassName` nor the
    /// legacy `kubernetes.io/ingress.class` annotation).
    ///
    /// # Errors
    /// The reason, when the object names a class the cluster does not offer.
    pub fn fit(&self, cluster: &str, body: &mut Value) -> Result<(), String> {
        let kind = body["kind"].as_str().unwrap_or_default().to_string();
        let name = format!("{kind} {}", body["metadata"]["name"].as_str().unwrap_or_default());
        match kind.as_str() {
            "PersistentVolumeClaim" => {
                if let Some(spec) = spec_of(body) {
                    self.storage.fit(cluster, "storage", &name, spec, "storageClassName")?;
                }
            }
            "StatefulSet" => {
                if let Some(templates) = body["spec"]["volumeClaimTemplates"].as_array_mut() {
                    for t in templates {
                        let claim = format!(
                            "{name} volumeClaimTemplate {}",
                            t["metadata"]["name"].as_str().unwrap_or_default()
                        );
                        if let Some(spec) = spec_of(t) {
                            self.storage.fit(cluster, "storage", &claim, spec, "storageClassName")?;
                        }
                    }
                }
            }
            "Ingress" => {
                let annotated = body["metadata"]["annotations"]["kubernetes.io/ingress.class"]
                    .as_str()
                    .map(str::to_string);
                if let Some(c) = annotated {
                    // The legacy annotation names the class; it is checked, not overridden.
                    let mut slot = serde_json::Map::from_iter([("ingressClassName".to_string(), Value::String(c))]);
                    return self
                        .ingress
                        .fit(cluster, "ingress", &name, &mut slot, "ingressClassName");
                }
                if let Some(spec) = spec_of(body) {
                    self.ingress.fit(cluster, "ingress", &name, spec, "ingressClassName")?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A registry's `host[:port]` as image references begin with it (no scheme,
/// no path); empty: none.
///
/// # Errors
/// Anything else, naming `field`.
pub fn registry_host(field: &str, raw: &str) -> Result<Option<String>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let (host, port) = match raw.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (raw, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok = port.is_none_or(|p| !p.starts_with('0') && p.parse::<u16>().is_ok_and(|p| p > 0));
    if host_ok && port_ok {
        Ok(Some(raw.to_string()))
    } else {
        Err(Error::invalid(
            field,
            format!("{raw:?} is not a registry host[:port] (lower-case DNS name or IPv4 address, no scheme or path)"),
        ))
    }
}

/// `spec` as an object, created when absent.
fn spec_of(body: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    let o = body.as_object_mut()?;
    o.entry("spec")
        .or_insert_with(|| Value::Object(Default::default()))
        .as_object_mut()
}

/// The settings columns of a cluster as stored.
pub(crate) struct Row {
    pub(crate) storage_classes: sqlx::types::Json<Vec<String>>,
    pub(crate) default_storage_class: String,
    pub(crate) ingress_classes: sqlx::types::Json<Vec<String>>,
    pub(crate) default_ingress_class: String,
    pub(crate) node_port_first: i32,
    pub(crate) node_port_last: i32,
    pub(crate) registry_mirror: String,
}

impl From<Row> for ClusterSettings {
    fn from(r: Row) -> Self {
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        Self {
            storage: Classes {
                offered: r.storage_classes.0,
                default: non_empty(r.default_storage_class),
            },
            ingress: Classes {
                offered: r.ingress_classes.0,
                default: non_empty(r.default_ingress_class),
            },
            // Checked by the table.
            node_ports: NodePortRange {
                first: r.node_port_first as u16,
                last: r.node_port_last as u16,
            },
            registry_mirror: non_empty(r.registry_mirror),
        }
    }
}

/// The settings of the registered clusters among `names`, in one query
/// (the propagator reads them once per round, not once per target).
///
/// # Errors
/// The database fails.
pub async fn of_clusters(
    pool: &PgPool,
    names: &[String],
) -> Result<std::collections::HashMap<String, ClusterSettings>> {
    let rows = sqlx::query!(
        r#"SELECT name, storage_classes AS "storage_classes: sqlx::types::Json<Vec<String>>", default_storage_class,
                  ingress_classes AS "ingress_classes: sqlx::types::Json<Vec<String>>", default_ingress_class,
                  node_port_first, node_port_last, registry_mirror
           FROM clusters WHERE name = ANY($1)"#,
        names,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let settings = Row {
                storage_classes: r.storage_classes,
                default_storage_class: r.default_storage_class,
                ingress_classes: r.ingress_classes,
                default_ingress_class: r.default_ingress_class,
                node_port_first: r.node_port_first,
                node_port_last: r.node_port_last,
                registry_mirror: r.registry_mirror,
            };
            (r.name, ClusterSettings::from(settings))
        })
        .collect())
}

impl ClusterSettings {
    /// Fits `bodies` for `cluster`: the one place the propagator adjusts
    /// objects per cluster.
    ///
    /// # Errors
    /// [`Error::FailedPrecondition`] with the reason when an object names a
    /// class the cluster does not offer (nothing is applied then).
    pub fn fit_all(&self, cluster: &str, mut bodies: Vec<Value>) -> Result<Vec<Value>> {
        for body in &mut bodies {
            self.fit(cluster, body).map_err(Error::FailedPrecondition)?;
        }
        Ok(bodies)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn settings(storage: &[&str], default_storage: &str, ingress: &[&str], default_ingress: &str) -> ClusterSettings {
        let list = |l: &[&str]| l.iter().map(std::string::ToString::to_string).collect();
        ClusterSettings::parse(
            "",
            Some(pb::ClusterSettings {
                storage_classes: list(storage),
                default_storage_class: default_storage.into(),
                ingress_classes: list(ingress),
                default_ingress_class: default_ingress.into(),
                ..Default::default()
            }),
        )
        .unwrap()
    }

    fn field(e: Error) -> String {
        match e {
            Error::InvalidArgument { field, .. } => field,
            e => panic!("not an invalid argument: {e}"),
        }
    }

    #[test]
    fn absent_settings_are_unmanaged_classes_and_the_kubernetes_node_port_range() {
        let s = ClusterSettings::parse("settings.", None).unwrap();
        assert_eq!(s, ClusterSettings::default());
        assert_eq!(s.node_ports.to_string(), "30000-32767");
        assert_eq!(NodePortRange::parse("", 0, 0).unwrap(), DEFAULT_NODE_PORTS);
    }

    #[test]
    fn a_registry_mirror_is_a_host_and_port_and_anything_else_names_the_field() {
        let mirror = |raw: &str| {
            ClusterSettings::parse(
                "settings.",
                Some(pb::ClusterSettings {
                    registry_mirror: raw.into(),
                    ..Default::default()
                }),
            )
        };
        assert_eq!(mirror("").unwrap().registry_mirror, None);
        for ok in ["registry.dc1.example:5000", "10.0.0.7:5000", "mirror", " reg-1.dc2 "] {
            assert_eq!(mirror(ok).unwrap().registry_mirror.as_deref(), Some(ok.trim()), "{ok}");
        }
        for bad in [
            "https://registry.example",
            "registry.example/path",
            "Registry.example",
            "reg:0",
            "reg:70000",
            "reg:",
            "-reg.example",
            "reg..example",
            "reg example",
        ] {
            assert_eq!(field(mirror(bad).unwrap_err()), "settings.registry_mirror", "{bad}");
        }
    }

    #[test]
    fn a_node_port_range_must_be_ports_in_order_and_errors_name_the_bound() {
        assert_eq!(
            NodePortRange::parse("", 31000, 31999).unwrap(),
            NodePortRange {
                first: 31000,
                last: 31999
            }
        );
        assert_eq!(
            NodePortRange::parse("", 5, 5).unwrap(),
            NodePortRange { first: 5, last: 5 }
        );
        assert_eq!(
            field(NodePortRange::parse("settings.", 0, 100).unwrap_err()),
            "settings.node_port_range.first"
        );
        assert_eq!(
            field(NodePortRange::parse("", 100, 70000).unwrap_err()),
            "node_port_range.last"
        );
        assert_eq!(
            field(NodePortRange::parse("", 32000, 31000).unwrap_err()),
            "node_port_range.first"
        );
    }

    #[test]
    fn class_lists_refuse_bad_names_repeats_and_a_default_they_do_not_hold() {
        let parse = |list: &[&str], default: &str| {
            Classes::parse(
                "settings.",
                "storage_classes",
                "default_storage_class",
                list.iter().map(std::string::ToString::to_string).collect(),
                default.into(),
            )
        };
        assert_eq!(
            parse(&["fast", "standard.csi"], "fast").unwrap().default.as_deref(),
            Some("fast")
        );
        assert_eq!(parse(&[], "").unwrap(), Classes::default());
        assert_eq!(
            field(parse(&["fast", "Bad_Name"], "").unwrap_err()),
            "settings.storage_classes[1]"
        );
        assert_eq!(
            field(parse(&["fast", "fast"], "").unwrap_err()),
            "settings.storage_classes[1]"
        );
        assert_eq!(
            field(parse(&["fast"], "slow").unwrap_err()),
            "settings.default_storage_class"
        );
        assert_eq!(field(parse(&[], "fast").unwrap_err()), "settings.default_storage_class");
    }

    #[test]
    fn claims_and_claim_templates_without_a_class_get_the_default_and_named_ones_are_kept() {
        let s = settings(&["fast", "slow"], "fast", &[], "");
        let mut pvc = json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "data"}, "spec": {"resources": {}}});
        s.fit("east", &mut pvc).unwrap();
        assert_eq!(pvc["spec"]["storageClassName"], "fast");
        let mut named =
            json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "d"}, "spec": {"storageClassName": "slow"}});
        s.fit("east", &mut named).unwrap();
        assert_eq!(named["spec"]["storageClassName"], "slow");
        let mut sts = json!({"kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"volumeClaimTemplates": [{"metadata": {"name": "a"}, "spec": {}}, {"metadata": {"name": "b"}, "spec": {"storageClassName": "slow"}}]}});
        s.fit("east", &mut sts).unwrap();
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"],
            "fast"
        );
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][1]["spec"]["storageClassName"],
            "slow"
        );
    }

    #[test]
    fn a_class_the_cluster_does_not_offer_is_refused_naming_object_class_and_cluster() {
        let s = settings(&["fast"], "", &["nginx"], "nginx");
        let mut pvc = json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "data"}, "spec": {"storageClassName": "gold"}});
        let why = s.fit("east", &mut pvc).unwrap_err();
        assert!(
            why.contains("PersistentVolumeClaim data")
                && why.contains("gold")
                && why.contains("cluster east")
                && why.contains("fast"),
            "{why}"
        );
        let mut sts = json!({"kind": "StatefulSet", "metadata": {"name": "db"}, "spec": {"volumeClaimTemplates": [{"metadata": {"name": "a"}, "spec": {"storageClassName": "gold"}}]}});
        assert!(s.fit("east", &mut sts).unwrap_err().contains("volumeClaimTemplate a"));
        let mut ing = json!({"kind": "Ingress", "metadata": {"name": "web"}, "spec": {"ingressClassName": "traefik"}});
        assert!(s.fit("east", &mut ing).unwrap_err().contains("ingress class traefik"));
        let mut legacy = json!({"kind": "Ingress", "metadata": {"name": "web", "annotations": {"kubernetes.io/ingress.class": "haproxy"}}, "spec": {}});
        assert!(s.fit("east", &mut legacy).is_err());
    }

    #[test]
    fn ingresses_get_the_default_class_unless_they_name_one_and_unmanaged_lists_pass_anything() {
        let s = settings(&[], "", &["nginx", "internal"], "nginx");
        let mut ing = json!({"kind": "Ingress", "metadata": {"name": "web"}, "spec": {"rules": []}});
        s.fit("east", &mut ing).unwrap();
        assert_eq!(ing["spec"]["ingressClassName"], "nginx");
        let mut legacy = json!({"kind": "Ingress", "metadata": {"name": "web", "annotations": {"kubernetes.io/ingress.class": "internal"}}, "spec": {}});
        s.fit("east", &mut legacy).unwrap();
        assert!(
            legacy["spec"].get("ingressClassName").is_none(),
            "the annotation already names the class"
        );
        // Storage is not managed in this cluster: any class passes, none is added.
        let mut pvc = json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "d"}, "spec": {"storageClassName": "anything"}});
        s.fit("east", &mut pvc).unwrap();
        let mut bare = json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "d"}, "spec": {}});
        s.fit("east", &mut bare).unwrap();
        assert!(bare["spec"].get("storageClassName").is_none());
        let mut deployment = json!({"kind": "Deployment", "metadata": {"name": "d"}, "spec": {}});
        s.fit("east", &mut deployment).unwrap();
        assert_eq!(
            deployment,
            json!({"kind": "Deployment", "metadata": {"name": "d"}, "spec": {}})
        );
    }
}
