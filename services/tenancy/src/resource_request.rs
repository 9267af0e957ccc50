//! Resource specifications (products platform admins offer, "2 CPU / 4 GiB")
//! and the requests tenants file for them with the R1 form. A request moves
//! draft -> submitted -> approved | rejected, and approved -> provisioned,
//! which raises the tenant's (and its project's) quota by spec x count and
//! creates the project's partitions. Every step is recorded with who and when
//! and announced as `tenancy.resource_request.changed`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::event::EventType;
use kernel::name::DnsLabel;
use kernel::outbox::{self, Outbox};
use kernel::page::Page;
use kernel::quantity::Quantity;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::partition::{LimitItem, LimitRange, NewPartition};
use crate::project::NewProject;
use crate::quota::{self, lock_tenant};
use crate::resource::{Resource, ResourceList};

/// `tenancy.resource_request.changed`
pub const CHANGED: EventType = EventType::new("tenancy", "resource_request", "changed");

/// A product: amounts per unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Its id.
    pub id: Uuid,
    /// DNS label, unique.
    pub name: String,
    /// Shown in the portal ("2 CPU / 4 GiB").
    pub display_name: String,
    /// Per unit.
    pub amounts: ResourceList,
    /// Whether it can be requested.
    pub active: bool,
}

struct SpecRow {
    id: Uuid,
    name: String,
    display_name: String,
    amounts: sqlx::types::Json<BTreeMap<String, i64>>,
    active: bool,
}

impl From<SpecRow> for Spec {
    fn from(r: SpecRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            display_name: r.display_name,
            amounts: ResourceList::from_milli(r.amounts.0),
            active: r.active,
        }
    }
}

/// Where a request is in its workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Being written by the tenant.
    Draft,
    /// Waiting for a platform administrator.
    Submitted,
    /// Accepted, waiting to be provisioned.
    Approved,
    /// Turned down, with a reason.
    Rejected,
    /// Quota raised and partitions created.
    Provisioned,
}

impl State {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Submitted => "submitted",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Provisioned => "provisioned",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "submitted" => Self::Submitted,
            "approved" => Self::Approved,
            "rejected" => Self::Rejected,
            "provisioned" => Self::Provisioned,
            _ => Self::Draft,
        }
    }
}

/// A step of the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The tenant hands it in.
    Submit,
    /// A platform administrator accepts it.
    Approve,
    /// A platform administrator turns it down.
    Reject,
    /// A platform administrator carries it out.
    Provision,
}

impl Step {
    /// Where `step` takes a request in `from`, and who may take it.
    ///
    /// # Errors
    /// [`Error::FailedPrecondition`] when the step is not allowed from `from`.
    pub fn apply(self, from: State) -> Result<(State, Who)> {
        match (self, from) {
            (Self::Submit, State::Draft) => Ok((State::Submitted, Who::TenantAdmin)),
            (Self::Approve, State::Submitted) => Ok((State::Approved, Who::PlatformAdmin)),
            (Self::Reject, State::Submitted) => Ok((State::Rejected, Who::PlatformAdmin)),
            (Self::Provision, State::Approved) => Ok((State::Provisioned, Who::PlatformAdmin)),
            (step, from) => Err(Error::FailedPrecondition(format!(
                "a {} request cannot be {}",
                from.as_str(),
                step.done()
            ))),
        }
    }

    fn done(&self) -> &'static str {
        match self {
            Self::Submit => "submitted",
            Self::Approve => "approved",
            Self::Reject => "rejected",
            Self::Provision => "provisioned",
        }
    }
}

/// Who may take a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The tenant's administrators.
    TenantAdmin,
    /// Platform administrators.
    PlatformAdmin,
}

/// The R1 request form, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    /// The project the resources are for (created at provisioning if new).
    pub project_name: String,
    /// Who asks.
    pub applicant: String,
    /// Their phone.
    pub phone: String,
    /// Their e-mail.
    pub email: String,
    /// The application that will run there.
    pub application: String,
    /// Base services needed (MySQL, shared storage, Kafka, Redis ...).
    pub base_services: Vec<String>,
    /// What for.
    pub purpose: String,
    /// application-host, mpp or hadoop.
    pub server_type: String,
    /// Whether Oracle is needed.
    pub oracle_needed: bool,
    /// Storage wanted (a quantity, e.g. 500Gi), if any.
    pub storage: String,
    /// Network bandwidth wanted (e.g. 100Mbps), if any.
    pub bandwidth: String,
    /// Where.
    pub data_centre: String,
    /// Which product.
    pub spec_id: Uuid,
    /// How many units of it.
    pub count: i32,
    /// Anything else.
    pub remarks: String,
    /// Whether spec x count is also kept for failover in each other data
    /// centre provisioned into (see [`Carving`]).
    pub dr_reserve: bool,
}

/// Server types a request can ask for.
pub const SERVER_TYPES: [&str; 3] = ["application-host", "mpp", "hadoop"];

fn text(field: &str, raw: &str, max: usize, required: bool) -> Result<String> {
    let t = raw.trim();
    if required && t.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if t.chars().count() > max {
        return Err(Error::invalid(field, format!("must be at most {max} characters")));
    }
    Ok(t.to_string())
}

impl Form {
    /// Validates a form; each error names its field.
    ///
    /// # Errors
    /// A field is missing or malformed.
    pub fn parse(raw: &pb::ResourceRequestForm) -> Result<Self> {
        let email = text("email", &raw.email, 254, true)?;
        if !email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
        {
            return Err(Error::invalid("email", "must be an e-mail address"));
        }
        let phone = text("phone", &raw.phone, 32, false)?;
        if !phone.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c)) {
            return Err(Error::invalid("phone", "may hold digits, spaces and + - ( )"));
        }
        if !SERVER_TYPES.contains(&raw.server_type.as_str()) {
            return Err(Error::invalid(
                "server_type",
                format!("must be one of {}", SERVER_TYPES.join(", ")),
            ));
        }
        let storage = text("storage", &raw.storage, 32, false)?;
        if !storage.is_empty() {
            kernel::quantity::Quantity::parse("storage", &storage)?;
        }
        if !(1..=10_000).contains(&raw.count) {
            return Err(Error::invalid("count", "must be from 1 to 10000"));
        }
        let base_services = raw
            .base_services
            .iter()
            .map(|s| text("base_services", s, 64, true))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            project_name: DnsLabel::parse("project_name", raw.project_name.trim())?.to_string(),
            applicant: text("applicant", &raw.applicant, 128, true)?,
            phone,
            email,
            application: text("application", &raw.application, 128, true)?,
            base_services,
            purpose: text("purpose", &raw.purpose, 2048, false)?,
            server_type: raw.server_type.clone(),
            oracle_needed: raw.oracle_needed,
            storage,
            bandwidth: text("bandwidth", &raw.bandwidth, 32, false)?,
            data_centre: DnsLabel::parse("data_centre", raw.data_centre.trim())?.to_string(),
            spec_id: id::parse_id("spec_id", &raw.spec_id)?,
            count: raw.count,
            remarks: text("remarks", &raw.remarks, 2048, false)?,
            dr_reserve: raw.dr_reserve,
        })
    }
}

/// A request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Its id.
    pub id: Uuid,
    /// The tenant asking.
    pub tenant_id: Uuid,
    /// The form.
    pub form: Form,
    /// Where it is.
    pub state: State,
    /// Who filed it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Its steps so far.
    pub steps: Vec<StepRecord>,
}

/// One recorded step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    /// From (none for the creation).
    pub from_state: Option<String>,
    /// To.
    pub to_state: String,
    /// Who.
    pub actor: String,
    /// Why (rejections).
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}

struct Row {
    id: Uuid,
    tenant_id: Uuid,
    project_name: String,
    applicant: String,
    phone: String,
    email: String,
    application: String,
    base_services: Vec<String>,
    purpose: String,
    server_type: String,
    oracle_needed: bool,
    storage: String,
    bandwidth: String,
    data_centre: String,
    spec_id: Uuid,
    count: i32,
    remarks: String,
    dr_reserve: bool,
    state: String,
    created_by: String,
    created_at: DateTime<Utc>,
}

impl Row {
    fn into_request(self, steps: Vec<StepRecord>) -> Request {
        Request {
            id: self.id,
            tenant_id: self.tenant_id,
            form: Form {
                project_name: self.project_name,
                applicant: self.applicant,
                phone: self.phone,
                email: self.email,
                application: self.application,
                base_services: self.base_services,
                purpose: self.purpose,
                server_type: self.server_type,
                oracle_needed: self.oracle_needed,
                storage: self.storage,
                bandwidth: self.bandwidth,
                data_centre: self.data_centre,
                spec_id: self.spec_id,
                count: self.count,
                remarks: self.remarks,
                dr_reserve: self.dr_reserve,
            },
            state: State::parse(&self.state),
            created_by: self.created_by,
            created_at: self.created_at,
            steps,
        }
    }
}

async fn record_step(
    tx: &mut PgConnection,
    request: &Request,
    from: Option<State>,
    to: State,
    actor: &str,
    reason: &str,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO resource_request_steps (request_id, from_state, to_state, actor, reason) VALUES ($1, $2, $3, $4, $5)",
        request.id,
        from.map(|s| s.as_str()),
        to.as_str(),
        actor,
        reason,
    )
    .execute(&mut *tx)
    .await?;
    let event = pb::ResourceRequestChanged {
        request_id: request.id.to_string(),
        tenant_id: request.tenant_id.to_string(),
        from_state: from.map(|s| s.as_str().to_string()).unwrap_or_default(),
        to_state: to.as_str().into(),
        actor: actor.into(),
        reason: reason.into(),
    };
    outbox::record(tx, CHANGED, Some(request.tenant_id), &event).await?;
    Ok(())
}

/// Resource specs and requests in the tenancy schema.
#[derive(Clone)]
pub struct ResourceRequests {
    outbox: Outbox,
}

impl ResourceRequests {
    /// Stored in the outbox's schema.
    pub fn new(outbox: Outbox) -> Self {
        Self { outbox }
    }

    /// Publishes a spec. Platform administrators only.
    ///
    /// # Errors
    /// Not allowed, a bad name or no amounts, or the name is taken.
    pub async fn publish_spec(
        &self,
        caller: &Caller,
        name: &str,
        display_name: &str,
        amounts: ResourceList,
    ) -> Result<Spec> {
        caller.require_platform_admin()?;
        let name = DnsLabel::parse("name", name.trim())?;
        if amounts.is_empty() {
            return Err(Error::invalid("amounts", "must name at least one resource"));
        }
        let display = text("display_name", display_name, 128, false)?;
        let display = if display.is_empty() { name.to_string() } else { display };
        let id = id::new_id();
        let inserted = sqlx::query!(
            "INSERT INTO resource_specs (id, name, display_name, amounts) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING",
            id,
            name.as_str(),
            display,
            sqlx::types::Json(amounts.to_milli()) as _,
        )
        .execute(self.outbox.pool())
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(Error::Conflict(format!("a spec named {name} already exists")));
        }
        Ok(Spec {
            id,
            name: name.to_string(),
            display_name: display,
            amounts,
            active: true,
        })
    }

    /// A page of the specs on offer (every caller may read them).
    ///
    /// # Errors
    /// The database fails.
    pub async fn specs(&self, page: Page, active_only: bool) -> Result<(Vec<Spec>, String)> {
        let rows = sqlx::query_as!(
            SpecRow,
            r#"SELECT id, name, display_name, amounts AS "amounts: _", active FROM resource_specs
               WHERE ($1::uuid IS NULL OR id > $1) AND (active OR NOT $2) ORDER BY id LIMIT $3"#,
            page.after,
            active_only,
            page.fetch(),
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(page.finish(rows.into_iter().map(Spec::from).collect(), |s| s.id))
    }

    async fn spec(&self, tx: &mut PgConnection, id: Uuid) -> Result<Spec> {
        let row = sqlx::query_as!(
            SpecRow,
            r#"SELECT id, name, display_name, amounts AS "amounts: _", active FROM resource_specs WHERE id = $1"#,
            id,
        )
        .fetch_optional(&mut *tx)
        .await?;
        row.map(Spec::from)
            .ok_or_else(|| Error::invalid("spec_id", "is not a published spec"))
    }

    /// Files a draft request for a tenant. Its administrators.
    ///
    /// # Errors
    /// Not allowed, no such tenant, or the spec is unknown or withdrawn.
    pub async fn file(&self, caller: &Caller, tenant: Uuid, form: Form) -> Result<Request> {
        caller.require(tenant, Role::TenantAdmin, "tenant", tenant)?;
        let mut tx = self.outbox.pool().begin().await?;
        if !self.spec(&mut tx, form.spec_id).await?.active {
            return Err(Error::invalid("spec_id", "is withdrawn"));
        }
        crate::tenant::require_exists(&mut *tx, tenant).await?;
        let row = sqlx::query_as!(
            Row,
            "INSERT INTO resource_requests (id, tenant_id, project_name, applicant, phone, email, application, base_services,
                 purpose, server_type, oracle_needed, storage, bandwidth, data_centre, spec_id, count, remarks, dr_reserve,
                 state, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, 'draft', $19)
             RETURNING id, tenant_id, project_name, applicant, phone, email, application, base_services, purpose,
                       server_type, oracle_needed, storage, bandwidth, data_centre, spec_id, count, remarks, dr_reserve,
                       state, created_by, created_at",
            id::new_id(),
            tenant,
            form.project_name,
            form.applicant,
            form.phone,
            form.email,
            form.application,
            &form.base_services,
            form.purpose,
            form.server_type,
            form.oracle_needed,
            form.storage,
            form.bandwidth,
            form.data_centre,
            form.spec_id,
            form.count,
            form.remarks,
            form.dr_reserve,
            caller.subject,
        )
        .fetch_one(&mut *tx)
        .await?;
        let request = row.into_request(vec![]);
        record_step(&mut tx, &request, None, State::Draft, &caller.subject, "").await?;
        self.outbox.commit(tx).await?;
        self.get(caller, request.id).await
    }

    /// A request with its steps.
    ///
    /// # Errors
    /// Not found or not visible (the same answer).
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Request> {
        let row = sqlx::query_as!(
            Row,
            "SELECT id, tenant_id, project_name, applicant, phone, email, application, base_services, purpose,
                    server_type, oracle_needed, storage, bandwidth, data_centre, spec_id, count, remarks, dr_reserve,
                    state, created_by, created_at
             FROM resource_requests WHERE id = $1",
            id,
        )
        .fetch_optional(self.outbox.pool())
        .await?;
        let row = row
            .filter(|r| caller.can_see(r.tenant_id))
            .ok_or_else(|| Error::not_found("resource request", id))?;
        let steps = sqlx::query_as!(
            StepRecord,
            "SELECT from_state, to_state, actor, reason, at FROM resource_request_steps WHERE request_id = $1 ORDER BY seq",
            id,
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(row.into_request(steps))
    }

    /// A page of requests the caller can see, optionally of one tenant and state.
    ///
    /// # Errors
    /// The database fails.
    pub async fn list(
        &self,
        caller: &Caller,
        page: Page,
        tenant: Option<Uuid>,
        state: Option<State>,
    ) -> Result<(Vec<Request>, String)> {
        if let Some(tenant) = tenant {
            crate::tenant::require_visible(self.outbox.pool(), caller, tenant).await?;
        }
        let visible = caller.visible_tenants();
        let rows = sqlx::query_as!(
            Row,
            "SELECT id, tenant_id, project_name, applicant, phone, email, application, base_services, purpose,
                    server_type, oracle_needed, storage, bandwidth, data_centre, spec_id, count, remarks, dr_reserve,
                    state, created_by, created_at
             FROM resource_requests
             WHERE ($1::uuid IS NULL OR id > $1) AND ($2::uuid[] IS NULL OR tenant_id = ANY($2))
               AND ($3::uuid IS NULL OR tenant_id = $3) AND ($4::text IS NULL OR state = $4)
             ORDER BY id LIMIT $5",
            page.after,
            visible.as_deref(),
            tenant,
            state.map(|s| s.as_str()),
            page.fetch(),
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(page.finish(rows.into_iter().map(|r| r.into_request(vec![])).collect(), |r| r.id))
    }

    /// Takes a step of the workflow. Rejections need a reason; provisioning
    /// takes the clusters to create the project's partitions in, each with
    /// its data centre (as federation registered it).
    ///
    /// # Errors
    /// Not visible or not allowed, a step not allowed from the current state,
    /// a rejection without reason, clusters the request cannot be carved
    /// into (see [`Carving`]), or provisioning over a quota rule.
    pub async fn step(
        &self,
        caller: &Caller,
        id: Uuid,
        step: Step,
        reason: &str,
        clusters: &[(String, String)],
    ) -> Result<Request> {
        let seen = self.get(caller, id).await?;
        let reason = text("reason", reason, 2048, step == Step::Reject)?;
        let clusters = clusters
            .iter()
            .map(|(c, dc)| {
                Ok((
                    DnsLabel::parse("clusters", c)?,
                    DnsLabel::parse(&format!("data_centres.{c}"), dc)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut tx = self.outbox.pool().begin().await?;
        lock_tenant(&mut tx, seen.tenant_id).await?;
        // Re-read under the lock: two administrators may act at once.
        let current = State::parse(
            &sqlx::query_scalar!("SELECT state FROM resource_requests WHERE id = $1 FOR UPDATE", id)
                .fetch_one(&mut *tx)
                .await?,
        );
        let (next, who) = step.apply(current)?;
        match who {
            Who::TenantAdmin => caller.require(seen.tenant_id, Role::TenantAdmin, "resource request", id)?,
            Who::PlatformAdmin => caller.require_platform_admin()?,
        }
        if step == Step::Provision {
            self.provision(&mut tx, &seen, &clusters).await?;
        }
        sqlx::query!(
            "UPDATE resource_requests SET state = $2, updated_at = now() WHERE id = $1",
            id,
            next.as_str(),
        )
        .execute(&mut *tx)
        .await?;
        record_step(&mut tx, &seen, Some(current), next, &caller.subject, &reason).await?;
        self.outbox.commit(tx).await?;
        self.get(caller, id).await
    }

    /// Carves spec x count (see [`Carving`]) into the tenant, the project
    /// (created if new) and a partition per cluster, each partition with its
    /// ResourceQuota and the default LimitRange from the start; sets the DR
    /// reserve asked for. Runs under the tenant's lock and refuses anything
    /// that would over-commit a level.
    async fn provision(
        &self,
        tx: &mut PgConnection,
        request: &Request,
        clusters: &[(DnsLabel, DnsLabel)],
    ) -> Result<()> {
        let spec = self.spec(tx, request.form.spec_id).await?;
        let carving = Carving::new(&request.form, clusters)?;
        let tenant = request.tenant_id;
        let tenant_name = sqlx::query_scalar!("SELECT name FROM tenants WHERE id = $1", tenant)
            .fetch_one(&mut *tx)
            .await?;
        let existing = sqlx::query_scalar!(
            "SELECT id FROM projects WHERE tenant_id = $1 AND name = $2",
            tenant,
            request.form.project_name,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let (project, new_project) = match existing {
            Some(p) => (p, false),
            None => {
                let new = NewProject::parse(&request.form.project_name, "", &request.form.application)?;
                (
                    crate::project::insert(tx, tenant, &new)
                        .await?
                        .expect("checked absent under the lock")
                        .id,
                    true,
                )
            }
        };
        let total = units_of(&spec.amounts, carving.total_units)?;
        quota::raise(tx, tenant, quota::Level::Tenant, tenant, &total, true).await?;
        if carving.reserve_units > 0 {
            let reserve = units_of(&spec.amounts, carving.reserve_units)?;
            quota::raise(tx, tenant, quota::Level::DrReserve, tenant, &reserve, true).await?;
        }
        quota::raise(tx, tenant, quota::Level::Project, project, &total, new_project).await?;
        let limit_range = default_limit_range(&spec.amounts)?;
        for share in &carving.shares {
            let hard = units_of(&spec.amounts, share.units)?;
            let new = NewPartition::parse(
                share.cluster.as_str(),
                share.data_centre.as_str(),
                "",
                BTreeMap::new(),
                "",
            )?;
            let namespace = new.namespace_in(&tenant_name, &request.form.project_name)?;
            crate::partition::provision(tx, tenant, project, &new, &namespace, &hard, &limit_range).await?;
        }
        quota::verify(tx, tenant).await
    }
}

/// Amounts of `units` units of a spec.
fn units_of(per_unit: &ResourceList, units: i64) -> Result<ResourceList> {
    let mut list = per_unit.clone();
    for (resource, q) in &mut list.0 {
        *q = resource.amount(
            q.milli()
                .checked_mul(units)
                .ok_or_else(|| Error::invalid("count", "makes the amounts too large"))?,
        );
    }
    Ok(list)
}

/// Per container when a pod names none: requests 100m CPU and 128Mi, limits
/// 500m and 512Mi, so pods without resources still fit a namespace whose
/// ResourceQuota limits CPU and memory.
const DEFAULT_REQUEST: [(&str, &str); 2] = [("cpu", "100m"), ("memory", "128Mi")];
/// See [`DEFAULT_REQUEST`].
const DEFAULT_LIMIT: [(&str, &str); 2] = [("cpu", "500m"), ("memory", "512Mi")];

/// The LimitRange a provisioned partition starts with: the container
/// defaults above, and no container larger than one unit of the spec (its
/// limits, or its requests where it sets no limit); a default above that
/// bound is lowered to it.
fn default_limit_range(per_unit: &ResourceList) -> Result<LimitRange> {
    let bound =
        |limit: Resource, request: Resource| per_unit.0.get(&limit).or_else(|| per_unit.0.get(&request)).copied();
    let max: BTreeMap<&str, Quantity> = [
        ("cpu", bound(Resource::LimitsCpu, Resource::RequestsCpu)),
        ("memory", bound(Resource::LimitsMemory, Resource::RequestsMemory)),
    ]
    .into_iter()
    .filter_map(|(r, q)| Some((r, q?)))
    .collect();
    let capped = |defaults: [(&str, &str); 2]| -> Result<BTreeMap<String, String>> {
        defaults
            .into_iter()
            .map(|(r, d)| {
                let d = Quantity::parse(r, d)?;
                let q = max.get(r).map_or(d, |m| d.min(*m));
                Ok((r.to_string(), q.to_string()))
            })
            .collect()
    };
    LimitRange::parse(LimitRange {
        container: LimitItem {
            max: max.iter().map(|(r, q)| (r.to_string(), q.to_string())).collect(),
            default: capped(DEFAULT_LIMIT)?,
            default_request: capped(DEFAULT_REQUEST)?,
            ..LimitItem::default()
        },
        pod: LimitItem::default(),
    })
}

/// Clusters that together divide the whole count: named by their data
/// centre when the request keeps a DR reserve.
type Group<'a> = (Option<String>, Vec<&'a (DnsLabel, DnsLabel)>);

/// One partition's share of a provisioned request, in spec units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The cluster.
    pub cluster: DnsLabel,
    /// Its data centre.
    pub data_centre: DnsLabel,
    /// Units of the spec its ResourceQuota holds.
    pub units: i64,
}

/// How provisioning divides spec x count, in whole units of the spec (a
/// unit is never split: "2 CPU / 4 GiB" stays one server's worth):
///
/// - Without a DR reserve, the count is divided evenly over the clusters;
///   the first clusters (in the order given) take one more unit each when
///   it does not divide. Tenant and project grow by the count.
/// - With a DR reserve, the clusters in the request's data centre divide
///   the count as above, and so do the clusters of each other data centre,
///   each data centre holding a full copy so that everything can fail over
///   to it. Tenant and project grow by count x (1 + other data centres), and
///   the tenant's DR reserve by count x (other data centres), so normal
///   deploys still get exactly the count and failover gets the rest.
/// - Every cluster gets at least one unit; without clusters only the tenant
///   and the project grow (and a DR reserve cannot be placed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carving {
    /// Per cluster, in the order given.
    pub shares: Vec<Share>,
    /// Units the tenant and the project grow by.
    pub total_units: i64,
    /// Units the tenant's DR reserve grows by.
    pub reserve_units: i64,
}

impl Carving {
    /// Divides `form`'s count over `clusters` (name, data centre).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `clusters`: a cluster named twice, more
    /// clusters in a data centre than units, or a DR reserve without a
    /// cluster in the request's data centre and one outside it.
    pub fn new(form: &Form, clusters: &[(DnsLabel, DnsLabel)]) -> Result<Self> {
        for (i, (c, _)) in clusters.iter().enumerate() {
            if clusters[..i].iter().any(|(earlier, _)| earlier == c) {
                return Err(Error::invalid("clusters", format!("names cluster {c} twice")));
            }
        }
        let count = i64::from(form.count);
        // One group, or one per data centre with a DR reserve.
        let mut groups: Vec<Group<'_>> = Vec::new();
        if form.dr_reserve {
            for cluster in clusters {
                let dc = cluster.1.to_string();
                match groups.iter_mut().find(|(d, _)| d.as_ref() == Some(&dc)) {
                    Some((_, members)) => members.push(cluster),
                    None => groups.push((Some(dc), vec![cluster])),
                }
            }
            if !groups.iter().any(|(dc, _)| dc.as_ref() == Some(&form.data_centre)) {
                return Err(Error::invalid(
                    "clusters",
                    format!(
                        "a DR reserve needs a cluster in the request's data centre {}",
                        form.data_centre
                    ),
                ));
            }
            if groups.len() < 2 {
                return Err(Error::invalid(
                    "clusters",
                    format!("a DR reserve needs a cluster outside data centre {}", form.data_centre),
                ));
            }
        } else if !clusters.is_empty() {
            groups.push((None, clusters.iter().collect()));
        }
        let mut shares = Vec::new();
        for (dc, members) in &groups {
            let n = i64::try_from(members.len()).expect("few clusters");
            if n > count {
                return Err(Error::invalid(
                    "clusters",
                    format!(
                        "{count} unit(s) of the spec cannot give each of the {n} clusters{} a whole unit",
                        dc.as_ref().map(|d| format!(" in {d}")).unwrap_or_default()
                    ),
                ));
            }
            for (i, (cluster, data_centre)) in members.iter().enumerate() {
                let extra = i64::from(i64::try_from(i).expect("few clusters") < count % n);
                shares.push(Share {
                    cluster: cluster.clone(),
                    data_centre: data_centre.clone(),
                    units: count / n + extra,
                });
            }
        }
        let others = i64::try_from(groups.len().saturating_sub(1)).expect("few data centres");
        let reserve_units = if form.dr_reserve { count * others } else { 0 };
        // Shares keep the order the clusters were given in.
        shares.sort_by_key(|s| clusters.iter().position(|(c, _)| *c == s.cluster));
        Ok(Self {
            shares,
            total_units: count + reserve_units,
            reserve_units,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workflow_allows_only_its_steps() {
        assert_eq!(
            Step::Submit.apply(State::Draft).unwrap(),
            (State::Submitted, Who::TenantAdmin)
        );
        assert_eq!(Step::Approve.apply(State::Submitted).unwrap().0, State::Approved);
        assert_eq!(Step::Reject.apply(State::Submitted).unwrap().0, State::Rejected);
        assert_eq!(Step::Provision.apply(State::Approved).unwrap().0, State::Provisioned);
        for (step, from) in [
            (Step::Approve, State::Draft),
            (Step::Approve, State::Approved),
            (Step::Provision, State::Submitted),
            (Step::Submit, State::Submitted),
            (Step::Reject, State::Approved),
            (Step::Provision, State::Provisioned),
            (Step::Approve, State::Rejected),
        ] {
            let err = step.apply(from).unwrap_err();
            assert!(matches!(err, Error::FailedPrecondition(_)), "{step:?} from {from:?}");
        }
        assert_eq!(
            Step::Approve.apply(State::Draft).unwrap_err().to_string(),
            "a draft request cannot be approved"
        );
    }

    fn form() -> pb::ResourceRequestForm {
        pb::ResourceRequestForm {
            project_name: "billing".into(),
            applicant: "Jane Doe".into(),
            phone: "+49 30 1234".into(),
            email: "jane@acme.example".into(),
            application: "billing-api".into(),
            base_services: vec!["MySQL".into(), "Kafka".into()],
            purpose: "new billing system".into(),
            server_type: "application-host".into(),
            oracle_needed: false,
            storage: "500Gi".into(),
            bandwidth: "100Mbps".into(),
            data_centre: "dc1".into(),
            spec_id: Uuid::now_v7().to_string(),
            count: 4,
            remarks: String::new(),
            dr_reserve: false,
        }
    }

    #[test]
    fn a_form_names_each_bad_field() {
        assert!(Form::parse(&form()).is_ok());
        let cases: Vec<(pb::ResourceRequestForm, &str)> = vec![
            (
                pb::ResourceRequestForm {
                    email: "jane".into(),
                    ..form()
                },
                "email",
            ),
            (
                pb::ResourceRequestForm {
                    phone: "call me".into(),
                    ..form()
                },
                "phone",
            ),
            (
                pb::ResourceRequestForm {
                    server_type: "mainframe".into(),
                    ..form()
                },
                "server_type",
            ),
            (
                pb::ResourceRequestForm {
                    storage: "lots".into(),
                    ..form()
                },
                "storage",
            ),
            (pb::ResourceRequestForm { count: 0, ..form() }, "count"),
            (
                pb::ResourceRequestForm {
                    project_name: "Billing".into(),
                    ..form()
                },
                "project_name",
            ),
            (
                pb::ResourceRequestForm {
                    applicant: " ".into(),
                    ..form()
                },
                "applicant",
            ),
            (
                pb::ResourceRequestForm {
                    spec_id: "x".into(),
                    ..form()
                },
                "spec_id",
            ),
            (
                pb::ResourceRequestForm {
                    data_centre: String::new(),
                    ..form()
                },
                "data_centre",
            ),
        ];
        for (raw, field) in cases {
            assert_eq!(Form::parse(&raw).unwrap_err().field(), Some(field));
        }
    }

    fn clusters(pairs: &[(&str, &str)]) -> Vec<(DnsLabel, DnsLabel)> {
        pairs
            .iter()
            .map(|(c, d)| (DnsLabel::parse("c", c).unwrap(), DnsLabel::parse("d", d).unwrap()))
            .collect()
    }

    fn units(c: &Carving) -> Vec<(&str, &str, i64)> {
        c.shares
            .iter()
            .map(|s| (s.cluster.as_str(), s.data_centre.as_str(), s.units))
            .collect()
    }

    #[test]
    fn without_a_dr_reserve_the_count_is_divided_over_the_clusters_in_whole_units() {
        let f = Form::parse(&pb::ResourceRequestForm { count: 5, ..form() }).unwrap();
        let c = Carving::new(&f, &clusters(&[("dc1-prod", "dc1"), ("dc2-dr", "dc2")])).unwrap();
        assert_eq!(units(&c), [("dc1-prod", "dc1", 3), ("dc2-dr", "dc2", 2)]);
        assert_eq!((c.total_units, c.reserve_units), (5, 0));
        let none = Carving::new(&f, &[]).unwrap();
        assert_eq!((none.shares.len(), none.total_units), (0, 5));
        let one = Form::parse(&pb::ResourceRequestForm { count: 1, ..form() }).unwrap();
        let err = Carving::new(&one, &clusters(&[("a", "dc1"), ("b", "dc1")])).unwrap_err();
        assert_eq!(err.field(), Some("clusters"));
        let twice = Carving::new(&f, &clusters(&[("a", "dc1"), ("a", "dc1")])).unwrap_err();
        assert_eq!(twice.to_string(), "clusters: names cluster a twice");
    }

    #[test]
    fn a_dr_reserve_gives_each_other_data_centre_a_full_copy_kept_for_failover() {
        let f = Form::parse(&pb::ResourceRequestForm {
            count: 4,
            dr_reserve: true,
            ..form()
        })
        .unwrap();
        let c = Carving::new(&f, &clusters(&[("dc2-dr", "dc2"), ("dc1-a", "dc1"), ("dc1-b", "dc1")])).unwrap();
        assert_eq!(
            units(&c),
            [("dc2-dr", "dc2", 4), ("dc1-a", "dc1", 2), ("dc1-b", "dc1", 2)]
        );
        assert_eq!((c.total_units, c.reserve_units), (8, 4));
        for only in [&[("dc1-a", "dc1")][..], &[("dc2-dr", "dc2")][..], &[][..]] {
            let err = Carving::new(&f, &clusters(only)).unwrap_err();
            assert_eq!(err.field(), Some("clusters"), "{only:?}");
        }
    }

    #[test]
    fn the_default_limit_range_fits_within_one_unit() {
        let unit = |pairs: &[(&str, &str)]| {
            let owned: Vec<(String, String)> = pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
            ResourceList::parse("amounts", owned.iter().map(|(a, b)| (a, b))).unwrap()
        };
        let big = default_limit_range(&unit(&[
            ("requests.cpu", "2"),
            ("limits.cpu", "4"),
            ("requests.memory", "4Gi"),
        ]))
        .unwrap();
        assert_eq!(big.container.max["cpu"], "4");
        assert_eq!(big.container.max["memory"], "4Gi");
        assert_eq!(big.container.default["cpu"], "500m");
        assert_eq!(big.container.default_request["memory"], "128Mi");
        let tiny = default_limit_range(&unit(&[("requests.cpu", "200m"), ("pods", "1")])).unwrap();
        assert_eq!(tiny.container.default["cpu"], "200m");
        assert_eq!(tiny.container.default_request["cpu"], "100m");
        assert!(!tiny.container.max.contains_key("memory"));
    }
}
