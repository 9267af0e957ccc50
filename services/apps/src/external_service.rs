//! External services (R5 networking): a service that lives outside the
//! clusters (a mainframe database, a SaaS API) registered by a tenant so that
//! apps in its partitions reach it by a stable in-cluster name, whatever
//! moves behind it. Registered by DNS name it becomes a Service of type
//! `ExternalName` (a CNAME); registered by addresses, a Service without a
//! selector and the Endpoints that list the addresses and ports.
//!
//! Like an application's service, an external service is one federation
//! binding, named like it, placed by a federation placement document; an
//! update applies the binding again (federation changes the objects in place
//! and prunes what is gone, such as the Endpoints when addresses give way to
//! a DNS name) and a delete removes it from every cluster. The name shares
//! the tenant's namespaces with its applications' objects, so neither may
//! take a name the other holds.

use std::collections::BTreeSet;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::event::EventType;
use kernel::name::DnsLabel;
use kernel::outbox::{self, Outbox};
use kernel::page::Page;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::types::Json;
use uuid::Uuid;

use crate::federation::{self, Federation};

/// `apps.external_service.registered`
pub const REGISTERED: EventType = EventType::new("apps", "external_service", "registered");
/// `apps.external_service.updated`
pub const UPDATED: EventType = EventType::new("apps", "external_service", "updated");
/// `apps.external_service.deleted`
pub const DELETED: EventType = EventType::new("apps", "external_service", "deleted");

/// The label naming the external service an object belongs to.
pub const LABEL: &str = "paas.io/external-service";

/// Most addresses one service lists: an Endpoints object holds at most
/// 1000 (Kubernetes truncates beyond that).
pub const MAX_ADDRESSES: usize = 1000;

/// Most characters of a description.
const MAX_DESCRIPTION: usize = 1024;

/// A port as asked for: protocol empty means TCP.
#[derive(Debug, Clone, Default)]
pub struct PortRequest {
    /// DNS label; required when there are several ports.
    pub name: String,
    /// 1-65535.
    pub port: u32,
    /// TCP, UDP or SCTP (any case); empty: TCP.
    pub protocol: String,
}

/// A checked port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// DNS label, or empty for a single unnamed port.
    pub name: String,
    /// 1-65535.
    pub port: u16,
    /// TCP, UDP or SCTP.
    pub protocol: String,
}

/// Where the service is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A DNS name (lower case, no trailing dot) the in-cluster name aliases.
    Dns(String),
    /// Addresses the in-cluster name's Endpoints list.
    Addresses(Vec<IpAddr>),
}

/// What a registration or an update asks for, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// Where the service is.
    pub target: Target,
    /// Its ports (at least one for addresses).
    pub ports: Vec<Port>,
    /// Federation's placement document.
    pub placement: Value,
    /// What it is.
    pub description: String,
}

/// Why Kubernetes refuses `ip` as an endpoint address (its
/// `ValidateNonSpecialIP`), if it does.
fn refused(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("is unspecified");
    }
    if ip.is_loopback() {
        return Some("is a loopback address (127.0.0.0/8, ::1), which would reach the pod itself");
    }
    let (link_local, link_local_multicast) = match ip {
        IpAddr::V4(v4) => (v4.is_link_local(), v4.octets()[..3] == [224, 0, 0]),
        IpAddr::V6(v6) => (
            (v6.segments()[0] & 0xffc0) == 0xfe80,
            (v6.segments()[0] & 0xff0f) == 0xff02,
        ),
    };
    if link_local {
        return Some("is a link-local address (169.254.0.0/16, fe80::/10), which is not routed beyond the node");
    }
    if link_local_multicast {
        return Some("is a link-local multicast address (224.0.0.0/24, ff02::/16)");
    }
    None
}

/// Parses the name: an RFC 1035 label, as Kubernetes requires of Service
/// names (a DNS label that starts with a letter).
///
/// # Errors
/// Names `name`.
pub fn parse_name(raw: &str) -> Result<DnsLabel> {
    let name = DnsLabel::parse("name", raw.trim())?;
    if !name.as_str().starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(Error::invalid(
            "name",
            "must start with a letter (Service names are RFC 1035 labels)",
        ));
    }
    Ok(name)
}

fn parse_dns_name(raw: &str) -> Result<String> {
    let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<IpAddr>().is_ok() {
        return Err(Error::invalid(
            "dns_name",
            "is an IP address; register it under addresses (an ExternalName is a DNS alias)",
        ));
    }
    if name.is_empty() || name.len() > 253 {
        return Err(Error::invalid(
            "dns_name",
            "must be a DNS name of 1-253 characters, such as db.mainframe.example.com",
        ));
    }
    for label in name.split('.') {
        DnsLabel::parse("dns_name", label).map_err(|_| Error::invalid("dns_name", format!("label {label:?} must be 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit")))?;
    }
    Ok(name)
}

fn parse_addresses(raw: &[String]) -> Result<Vec<IpAddr>> {
    if raw.len() > MAX_ADDRESSES {
        return Err(Error::invalid(
            "addresses",
            format!("must list at most {MAX_ADDRESSES} addresses"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        let field = format!("addresses[{i}]");
        let ip: IpAddr = text
            .trim()
            .parse()
            .map_err(|_| Error::invalid(field.clone(), format!("{text:?} is not an IPv4 or IPv6 address")))?;
        if let Some(why) = refused(ip) {
            return Err(Error::invalid(
                field,
                format!("{ip} {why}; Kubernetes refuses it as an endpoint"),
            ));
        }
        if !seen.insert(ip) {
            return Err(Error::invalid(field, format!("{ip} is listed twice")));
        }
        out.push(ip);
    }
    Ok(out)
}

fn parse_ports(raw: &[PortRequest]) -> Result<Vec<Port>> {
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, p) in raw.iter().enumerate() {
        let field = |f: &str| format!("ports[{i}].{f}");
        let port = u16::try_from(p.port)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| Error::invalid(field("port"), format!("must be between 1 and 65535, not {}", p.port)))?;
        let protocol = match p.protocol.trim().to_ascii_uppercase().as_str() {
            "" | "TCP" => "TCP",
            "UDP" => "UDP",
            "SCTP" => "SCTP",
            _ => {
                return Err(Error::invalid(
                    field("protocol"),
                    format!("must be TCP, UDP or SCTP, not {:?}", p.protocol),
                ));
            }
        };
        let name = p.name.trim().to_string();
        if name.is_empty() {
            if raw.len() > 1 {
                return Err(Error::invalid(
                    field("name"),
                    "is required when there are several ports",
                ));
            }
        } else {
            DnsLabel::parse(&field("name"), &name)?;
            if !names.insert(name.clone()) {
                return Err(Error::invalid(field("name"), format!("{name} names two ports")));
            }
        }
        out.push(Port {
            name,
            port,
            protocol: protocol.to_string(),
        });
    }
    Ok(out)
}

impl Definition {
    /// Checks a definition: exactly one of a DNS name and addresses, ports
    /// (at least one with addresses), a placement document.
    ///
    /// # Errors
    /// Names the failing field (`dns_name`, `addresses[2]`, `ports[0].port`, `placement`...).
    pub fn parse(
        dns_name: &str,
        addresses: &[String],
        ports: &[PortRequest],
        placement: &str,
        description: &str,
    ) -> Result<Self> {
        let target = match (dns_name.trim().is_empty(), addresses.is_empty()) {
            (true, true) => {
                return Err(Error::invalid(
                    "dns_name",
                    "give the service's DNS name, or its addresses",
                ));
            }
            (false, false) => {
                return Err(Error::invalid(
                    "addresses",
                    "give either a DNS name or addresses, not both",
                ));
            }
            (false, true) => Target::Dns(parse_dns_name(dns_name)?),
            (true, false) => Target::Addresses(parse_addresses(addresses)?),
        };
        let ports = parse_ports(ports)?;
        if matches!(target, Target::Addresses(_)) && ports.is_empty() {
            return Err(Error::invalid("ports", "addresses need at least one port"));
        }
        if description.len() > MAX_DESCRIPTION {
            return Err(Error::invalid(
                "description",
                format!("must be at most {MAX_DESCRIPTION} characters"),
            ));
        }
        Ok(Self {
            target,
            ports,
            placement: federation::parse_placement(placement)?,
            description: description.to_string(),
        })
    }

    /// The objects written into each partition, named `name`: an
    /// ExternalName Service, or a Service without a selector (so no
    /// controller writes its Endpoints) and its Endpoints.
    pub fn objects(&self, name: &str) -> Vec<Value> {
        let metadata = json!({"name": name, "labels": {LABEL: name}});
        let port = |p: &Port, target: bool| {
            let mut out = json!({"port": p.port, "protocol": p.protocol});
            if !p.name.is_empty() {
                out["name"] = json!(p.name);
            }
            if target {
                out["targetPort"] = json!(p.port);
            }
            out
        };
        match &self.target {
            Target::Dns(dns) => {
                let mut spec = json!({"type": "ExternalName", "externalName": dns});
                if !self.ports.is_empty() {
                    spec["ports"] = self.ports.iter().map(|p| port(p, false)).collect();
                }
                vec![json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec})]
            }
            Target::Addresses(ips) => vec![
                json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata,
                       "spec": {"type": "ClusterIP", "ports": self.ports.iter().map(|p| port(p, true)).collect::<Vec<_>>()}}),
                json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": metadata,
                       "subsets": [{"addresses": ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect::<Vec<_>>(),
                                    "ports": self.ports.iter().map(|p| port(p, false)).collect::<Vec<_>>()}]}),
            ],
        }
    }
}

/// An external service as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ExternalService {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Its project: only that project's partitions, if any.
    pub project_id: Option<Uuid>,
    /// The in-cluster name.
    pub name: String,
    /// What it is.
    pub description: String,
    /// Its DNS name, when registered by one.
    pub dns_name: Option<String>,
    /// Its addresses, when registered by them.
    pub addresses: Vec<String>,
    /// Its ports.
    pub ports: Json<Vec<Port>>,
    /// Federation's placement document.
    pub placement: Value,
    /// Federation's binding.
    pub binding_id: Option<Uuid>,
    /// Who registered it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Where federation placed an external service.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    /// Healthy, Progressing, Degraded or Unknown (federation not asked).
    pub health: String,
    /// Why.
    pub reason: String,
    /// Per cluster: cluster, namespace, health, last error.
    pub clusters: Value,
}

fn event(s: &ExternalService) -> pb::ResourceChanged {
    pb::ResourceChanged {
        id: s.id.to_string(),
        tenant_id: s.tenant_id.to_string(),
        name: s.name.clone(),
    }
}

/// External services in the apps schema.
#[derive(Clone)]
pub struct ExternalServices {
    outbox: Outbox,
    federation: Federation,
}

impl ExternalServices {
    /// External services stored in the outbox's schema, written into the clusters through `federation`.
    pub fn new(outbox: Outbox, federation: Federation) -> Self {
        Self { outbox, federation }
    }

    /// Applies the service's binding: federation places it and writes (or
    /// changes) its objects in every assigned partition.
    async fn apply(&self, tenant: Uuid, project: Option<Uuid>, name: &str, definition: &Definition) -> Result<Uuid> {
        let request = pb::ApplyBindingRequest {
            tenant_id: tenant.to_string(),
            project_id: project.map(|p| p.to_string()).unwrap_or_default(),
            name: name.to_string(),
            objects_json: Value::Array(definition.objects(name)).to_string(),
            placement_json: definition.placement.to_string(),
            replicas: 0,
            hold: Vec::new(),
            break_glass: String::new(),
        };
        let binding = self
            .federation
            .client()
            .apply_binding(request)
            .await
            .map_err(|s| match s.code() {
                tonic::Code::InvalidArgument => Error::invalid("placement", s.message()),
                tonic::Code::ResourceExhausted => Error::ResourceExhausted(s.message().to_string()),
                tonic::Code::FailedPrecondition | tonic::Code::NotFound | tonic::Code::PermissionDenied => {
                    Error::FailedPrecondition(s.message().to_string())
                }
                tonic::Code::AlreadyExists => Error::Conflict(s.message().to_string()),
                _ => Error::Unavailable(format!("federation: {}", s.message())),
            })?;
        parse_binding_id(&binding.into_inner().id)
    }

    /// Registers an external service and writes it into the partitions its
    /// placement chooses. Developers and above.
    ///
    /// # Errors
    /// A bad name (named), the name taken by another external service or by
    /// an application's objects (conflict), federation refusing the
    /// placement, not allowed. Nothing is recorded unless federation took it.
    pub async fn register(
        &self,
        caller: &Caller,
        tenant: Uuid,
        project: Option<Uuid>,
        name: &str,
        definition: Definition,
    ) -> Result<ExternalService> {
        let name = parse_name(name)?;
        caller.require(tenant, Role::Developer, "tenant", tenant)?;
        let mut tx = self.outbox.pool().begin().await?;
        let held_by = sqlx::query_scalar!(
            "SELECT a.name FROM applications a JOIN releases r ON r.application_id = a.id
              WHERE a.tenant_id = $1 AND r.tenant_id = $1
                AND EXISTS (SELECT 1 FROM jsonb_each(r.objects) s, jsonb_array_elements(s.value) o
                             WHERE $2 IN (o->'metadata'->>'name', (o->'metadata'->>'name') || '-blue',
                                          (o->'metadata'->>'name') || '-green'))
              LIMIT 1",
            tenant,
            name.as_str(),
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(app) = held_by {
            return Err(Error::Conflict(format!(
                "application {app} has objects named {name}; choose another name"
            )));
        }
        let row = sqlx::query_as!(
            ExternalService,
            r#"INSERT INTO external_services (id, tenant_id, project_id, name, description, dns_name, addresses, ports,
                                            placement, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING
             RETURNING id, tenant_id, project_id, name, description, dns_name, addresses,
                    ports AS "ports: Json<Vec<Port>>", placement, binding_id, created_by, created_at, updated_at"#,
            id::new_id(),
            tenant,
            project,
            name.as_str(),
            definition.description,
            dns_of(&definition),
            &addresses_of(&definition),
            Json(&definition.ports) as _,
            definition.placement,
            caller.subject,
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::Conflict(format!("the tenant already has an external service named {name}")))?;
        let binding = self.apply(tenant, project, name.as_str(), &definition).await?;
        let row = sqlx::query_as!(
            ExternalService,
            r#"UPDATE external_services SET binding_id = $2 WHERE id = $1 AND tenant_id = $3
             RETURNING id, tenant_id, project_id, name, description, dns_name, addresses,
                    ports AS "ports: Json<Vec<Port>>", placement, binding_id, created_by, created_at, updated_at"#,
            row.id,
            binding,
            tenant,
        )
        .fetch_one(&mut *tx)
        .await?;
        outbox::record(&mut tx, REGISTERED, Some(tenant), &event(&row)).await?;
        self.outbox.commit(tx).await?;
        Ok(row)
    }

    /// An external service the caller can see.
    ///
    /// # Errors
    /// Not found or not visible (the same answer).
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<ExternalService> {
        let visible = caller.visible_tenants();
        let found = sqlx::query_as!(
            ExternalService,
            r#"SELECT id, tenant_id, project_id, name, description, dns_name, addresses,
                    ports AS "ports: Json<Vec<Port>>", placement, binding_id, created_by, created_at, updated_at
             FROM external_services WHERE id = $1 AND ($2::uuid[] IS NULL OR tenant_id = ANY($2))"#,
            id,
            visible.as_deref(),
        )
        .fetch_optional(self.outbox.pool())
        .await?;
        found.ok_or_else(|| Error::not_found("external service", id))
    }

    /// A page of a tenant's external services, by id.
    ///
    /// # Errors
    /// The tenant is not visible.
    pub async fn list(&self, caller: &Caller, tenant: Uuid, page: Page) -> Result<(Vec<ExternalService>, String)> {
        if !caller.can_see(tenant) {
            return Err(Error::not_found("tenant", tenant));
        }
        let rows = sqlx::query_as!(
            ExternalService,
            r#"SELECT id, tenant_id, project_id, name, description, dns_name, addresses,
                    ports AS "ports: Json<Vec<Port>>", placement, binding_id, created_by, created_at, updated_at
             FROM external_services WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"#,
            tenant,
            page.after,
            page.fetch(),
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(page.finish(rows, |s| s.id))
    }

    /// Replaces what an external service points at, its ports, placement
    /// and description; its name (the in-cluster name) stays. Federation
    /// changes the objects in place.
    ///
    /// # Errors
    /// Bad fields (named), federation refusing, not visible, not allowed.
    pub async fn update(&self, caller: &Caller, id: Uuid, definition: Definition) -> Result<ExternalService> {
        let found = self.get(caller, id).await?;
        caller.require(found.tenant_id, Role::Developer, "external service", id)?;
        let mut tx = self.outbox.pool().begin().await?;
        // Serialises changes of one service, so the binding ends as the row says.
        let current = sqlx::query_as!(
            ExternalService,
            r#"SELECT id, tenant_id, project_id, name, description, dns_name, addresses,
                    ports AS "ports: Json<Vec<Port>>", placement, binding_id, created_by, created_at, updated_at
             FROM external_services WHERE id = $1 AND tenant_id = $2 FOR UPDATE"#,
            found.id,
            found.tenant_id,
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::not_found("external service", id))?;
        let binding = self
            .apply(current.tenant_id, current.project_id, &current.name, &definition)
            .await?;
        let row = sqlx::query_as!(
            ExternalService,
            r#"UPDATE external_services SET description = $3, dns_name = $4, addresses = $5, ports = $6, placement = $7,
                    binding_id = $8, updated_at = now()
             WHERE id = $1 AND tenant_id = $2
             RETURNING id, tenant_id, project_id, name, description, dns_name, addresses,
                    ports AS "ports: Json<Vec<Port>>", placement, binding_id, created_by, created_at, updated_at"#,
            current.id,
            current.tenant_id,
            definition.description,
            dns_of(&definition),
            &addresses_of(&definition),
            Json(&definition.ports) as _,
            definition.placement,
            binding,
        )
        .fetch_one(&mut *tx)
        .await?;
        outbox::record(&mut tx, UPDATED, Some(row.tenant_id), &event(&row)).await?;
        self.outbox.commit(tx).await?;
        Ok(row)
    }

    /// Deletes an external service: federation removes its objects from
    /// every cluster first.
    ///
    /// # Errors
    /// Federation unreachable (nothing is deleted then), not visible, not allowed.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let found = self.get(caller, id).await?;
        caller.require(found.tenant_id, Role::Developer, "external service", id)?;
        if let Some(binding) = found.binding_id {
            federation::delete_binding(&mut self.federation.client(), &binding.to_string()).await?;
        }
        let mut tx = self.outbox.pool().begin().await?;
        sqlx::query!(
            "DELETE FROM external_services WHERE id = $1 AND tenant_id = $2",
            found.id,
            found.tenant_id,
        )
        .execute(&mut *tx)
        .await?;
        outbox::record(&mut tx, DELETED, Some(found.tenant_id), &event(&found)).await?;
        self.outbox.commit(tx).await
    }

    /// Where federation placed the service (Unknown when federation cannot be asked).
    pub async fn placed(&self, service: &ExternalService) -> Placed {
        let Some(binding) = service.binding_id else {
            return Placed {
                health: "Unknown".into(),
                reason: "not placed".into(),
                clusters: json!([]),
            };
        };
        match self
            .federation
            .client()
            .get_binding(pb::GetBindingRequest {
                id: binding.to_string(),
            })
            .await
        {
            Ok(b) => {
                let b = b.into_inner();
                let clusters = b.targets.iter().map(|t| json!({"cluster": t.cluster, "namespace": t.namespace, "health": t.health, "last_error": t.last_error})).collect();
                Placed {
                    health: b.health,
                    reason: b.health_reason,
                    clusters: Value::Array(clusters),
                }
            }
            Err(s) => Placed {
                health: "Unknown".into(),
                reason: s.message().to_string(),
                clusters: json!([]),
            },
        }
    }
}

/// Refuses an application whose objects would take a name an external
/// service of the tenant holds (both live in the tenant's namespaces).
///
/// # Errors
/// The conflict, naming the external service.
pub(crate) async fn refuse_taken(tx: &mut sqlx::PgConnection, tenant: Uuid, names: &[String]) -> Result<()> {
    let taken = sqlx::query_scalar!(
        "SELECT name FROM external_services WHERE tenant_id = $1 AND name = ANY($2) LIMIT 1",
        tenant,
        names,
    )
    .fetch_optional(tx)
    .await?;
    match taken {
        Some(name) => Err(Error::Conflict(format!(
            "external service {name} holds that name in the tenant's namespaces; rename the application or the service"
        ))),
        None => Ok(()),
    }
}

fn parse_binding_id(raw: &str) -> Result<Uuid> {
    raw.parse()
        .map_err(|_| Error::internal(format!("federation answered a binding id that is not a UUID: {raw}")))
}

fn dns_of(d: &Definition) -> Option<&str> {
    match &d.target {
        Target::Dns(name) => Some(name),
        Target::Addresses(_) => None,
    }
}

fn addresses_of(d: &Definition) -> Vec<String> {
    match &d.target {
        Target::Dns(_) => Vec::new(),
        Target::Addresses(ips) => ips.iter().map(ToString::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACEMENT: &str = r#"{"explicit": [{"cluster": "dc1-prod"}]}"#;

    fn port(name: &str, port: u32, protocol: &str) -> PortRequest {
        PortRequest {
            name: name.into(),
            port,
            protocol: protocol.into(),
        }
    }

    fn field(r: Result<Definition>) -> String {
        r.unwrap_err().field().unwrap_or("-").to_string()
    }

    #[test]
    fn a_dns_name_becomes_an_external_name_service() {
        let d = Definition::parse(
            "DB.Mainframe.example.com.",
            &[],
            &[port("sql", 5432, "")],
            PLACEMENT,
            "the ledger",
        )
        .unwrap();
        assert_eq!(d.target, Target::Dns("db.mainframe.example.com".into()));
        let objects = d.objects("ledger");
        assert_eq!(objects.len(), 1);
        assert_eq!(
            objects[0],
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ledger", "labels": {LABEL: "ledger"}},
                   "spec": {"type": "ExternalName", "externalName": "db.mainframe.example.com", "ports": [{"name": "sql", "port": 5432, "protocol": "TCP"}]}})
        );
    }

    #[test]
    fn addresses_become_a_service_without_selector_and_its_endpoints() {
        let addresses = vec!["10.20.0.5".to_string(), "2001:db8::7".to_string()];
        let d = Definition::parse(
            "",
            &addresses,
            &[port("sql", 5432, "tcp"), port("metrics", 9100, "UDP")],
            PLACEMENT,
            "",
        )
        .unwrap();
        let objects = d.objects("ledger");
        assert_eq!(
            objects[0]["spec"].get("selector"),
            None,
            "no controller may write its Endpoints"
        );
        assert_eq!(
            objects[0]["spec"]["ports"],
            json!([{"name": "sql", "port": 5432, "protocol": "TCP", "targetPort": 5432}, {"name": "metrics", "port": 9100, "protocol": "UDP", "targetPort": 9100}])
        );
        assert_eq!(objects[1]["kind"], "Endpoints");
        assert_eq!(
            objects[1]["metadata"]["name"], "ledger",
            "Endpoints belong to the Service of their name"
        );
        assert_eq!(
            objects[1]["subsets"],
            json!([{"addresses": [{"ip": "10.20.0.5"}, {"ip": "2001:db8::7"}], "ports": [{"name": "sql", "port": 5432, "protocol": "TCP"}, {"name": "metrics", "port": 9100, "protocol": "UDP"}]}])
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let one = [port("", 5432, "")];
        let ips = |list: &[&str]| list.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
        assert_eq!(field(Definition::parse("", &[], &one, PLACEMENT, "")), "dns_name");
        assert_eq!(
            field(Definition::parse(
                "db.example.com",
                &ips(&["10.0.0.1"]),
                &one,
                PLACEMENT,
                ""
            )),
            "addresses"
        );
        assert_eq!(
            field(Definition::parse("db_1.example.com", &[], &one, PLACEMENT, "")),
            "dns_name"
        );
        assert_eq!(
            field(Definition::parse("10.1.2.3", &[], &one, PLACEMENT, "")),
            "dns_name",
            "an IP is not an alias"
        );
        assert_eq!(
            field(Definition::parse(&"a.".repeat(130), &[], &one, PLACEMENT, "")),
            "dns_name"
        );
        for bad in [
            "10.0.0",
            "127.0.0.1",
            "::1",
            "169.254.169.254",
            "fe80::1",
            "224.0.0.251",
            "0.0.0.0",
        ] {
            assert_eq!(
                field(Definition::parse("", &ips(&["10.0.0.1", bad]), &one, PLACEMENT, "")),
                "addresses[1]",
                "{bad}"
            );
        }
        assert_eq!(
            field(Definition::parse(
                "",
                &ips(&["10.0.0.1", "10.0.0.1"]),
                &one,
                PLACEMENT,
                ""
            )),
            "addresses[1]"
        );
        assert_eq!(
            field(Definition::parse("", &ips(&["10.0.0.1"]), &[], PLACEMENT, "")),
            "ports"
        );
        assert_eq!(
            field(Definition::parse(
                "",
                &ips(&["10.0.0.1"]),
                &[port("", 0, "")],
                PLACEMENT,
                ""
            )),
            "ports[0].port"
        );
        assert_eq!(
            field(Definition::parse(
                "",
                &ips(&["10.0.0.1"]),
                &[port("", 65536, "")],
                PLACEMENT,
                ""
            )),
            "ports[0].port"
        );
        assert_eq!(
            field(Definition::parse(
                "",
                &ips(&["10.0.0.1"]),
                &[port("", 80, "http")],
                PLACEMENT,
                ""
            )),
            "ports[0].protocol"
        );
        assert_eq!(
            field(Definition::parse(
                "",
                &ips(&["10.0.0.1"]),
                &[port("a", 80, ""), port("", 81, "")],
                PLACEMENT,
                ""
            )),
            "ports[1].name"
        );
        assert_eq!(
            field(Definition::parse(
                "",
                &ips(&["10.0.0.1"]),
                &[port("a", 80, ""), port("a", 81, "")],
                PLACEMENT,
                ""
            )),
            "ports[1].name"
        );
        assert_eq!(
            field(Definition::parse(
                "",
                &ips(&["10.0.0.1"]),
                &[port("Web", 80, "")],
                PLACEMENT,
                ""
            )),
            "ports[0].name"
        );
        assert_eq!(
            field(Definition::parse("db.example.com", &[], &[], "{}", "")),
            "placement"
        );
        assert_eq!(
            parse_name("1db").unwrap_err().field(),
            Some("name"),
            "Service names start with a letter"
        );
        assert_eq!(parse_name("Db").unwrap_err().field(), Some("name"));
        assert_eq!(parse_name("ledger-db").unwrap().as_str(), "ledger-db");
        assert!(
            Definition::parse("db.example.com", &[], &[], PLACEMENT, "").is_ok(),
            "an alias needs no ports"
        );
    }
}
