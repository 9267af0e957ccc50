//! Applications and their releases (R5). A deploy names a published template
//! version, its parameters, a placement (federation's: explicit clusters or a
//! policy) and a strategy; it creates the application and release 1. Every
//! later change (upgrade, rollback) is a new numbered release, kept with who
//! made it and when. A release into production waits for a tenant
//! administrator's approval. What a release does in the clusters is driven
//! by [`crate::driver::Driver`].
//!
//! Each service of an application becomes one federation binding, named like
//! the service's objects; federation reserves the binding's quota in tenancy
//! before it applies anything.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::event::EventType;
use kernel::name::DnsLabel;
use kernel::outbox::{self, Outbox};
use kernel::page::Page;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::configs::Configs;
use crate::federation::{self, Federation, FederationClient};
use crate::node_port;
use crate::release::{Release, View, service_objects};
use crate::render::{Release as RenderRelease, SERVICE_LABEL, object_name, render};
use crate::strategy::Strategy;
use crate::traffic;
use crate::version::Versions;

/// `apps.application.deployed`
pub const DEPLOYED: EventType = EventType::new("apps", "application", "deployed");
/// `apps.application.deleted`
pub const DELETED: EventType = EventType::new("apps", "application", "deleted");
/// `apps.release.created`
pub const RELEASE_CREATED: EventType = EventType::new("apps", "release", "created");
/// `apps.application.scaled`
pub const SCALED: EventType = EventType::new("apps", "application", "scaled");

/// An application as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Application {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Its project, if any.
    pub project_id: Option<Uuid>,
    /// DNS label, unique in the tenant.
    pub name: String,
    /// `production` or `test`.
    pub environment: String,
    /// awaiting-approval, deploying, running, failed, stopped.
    pub state: String,
    /// The last release that succeeded.
    pub current_release: Option<i32>,
    /// service -> replicas set by scaling.
    pub replicas: Value,
    /// service -> federation binding id.
    pub bindings: Value,
    /// Who deployed it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A change of a service's replica count.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ScaleEvent {
    /// Its id.
    pub id: Uuid,
    /// The service.
    pub service: String,
    /// The count before (`None`: the spec's).
    pub from_replicas: Option<i32>,
    /// The count after.
    pub to_replicas: i32,
    /// Why (`manual`).
    pub reason: String,
    /// Who.
    pub actor: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// What a deploy or a new release asks for.
#[derive(Debug, Clone)]
pub struct Blueprint {
    /// A published template version.
    pub template_version_id: Uuid,
    /// Parameter values.
    pub parameters: BTreeMap<String, Value>,
    /// Federation's placement document.
    pub placement: Value,
    /// The strategy.
    pub strategy: Strategy,
}

/// The newest release of `app`, on the caller's connection.
async fn latest_in(conn: &mut sqlx::PgConnection, app: &Application) -> Result<Option<Release>> {
    Ok(sqlx::query_as!(
        Release,
        "SELECT id, application_id, tenant_id, number, template_version_id, parameters, placement, strategy,
                objects, waves, state, wave, applied_wave, message, rollback_of, created_by, approved_by,
                created_at, started_at, finished_at, slot, replaces, phase, step, applied, traffic,
                hold_until, phase_started_at, gray_waves
         FROM releases WHERE application_id = $1 AND tenant_id = $2 ORDER BY number DESC LIMIT 1",
        app.id,
        app.tenant_id,
    )
    .fetch_optional(conn)
    .await?)
}

/// Records a change of a service's replica count (`from`: `None` when it
/// was the spec's).
pub(crate) async fn record_scale(
    tx: &mut sqlx::PgConnection,
    app: &Application,
    service: &str,
    from: Option<i32>,
    to: i32,
    reason: &str,
    actor: &str,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO scale_events (id, application_id, tenant_id, service, from_replicas, to_replicas,
                 reason, actor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        id::new_id(),
        app.id,
        app.tenant_id,
        service,
        from,
        to,
        reason,
        actor,
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// Parses a JSON object of parameter values.
///
/// # Errors
/// Names `parameters`.
pub fn parse_parameters(text: &str) -> Result<BTreeMap<String, Value>> {
    match text.trim() {
        "" => Ok(BTreeMap::new()),
        t => serde_json::from_str(t)
            .map_err(|e| Error::invalid("parameters", format!("must be a JSON object of parameter values: {e}"))),
    }
}

/// The workload kinds whose replicas a scale sets.
const WORKLOADS: [&str; 2] = ["Deployment", "StatefulSet"];

/// Applies one service of `app` as its federation binding, placed as
/// `release` is; `replicas` overrides the spec's (scaling); the clusters in
/// `hold` keep the objects they run (a gray release's later waves). The
/// configs its workloads use go with them, as stored in `pool`
/// ([`crate::config_delivery::attach`]).
///
/// # Errors
/// Federation refuses (quota, placement: the message says why) or is
/// unreachable ([`Error::Unavailable`]).
#[allow(clippy::too_many_arguments)]
pub async fn apply_service(
    federation: &mut FederationClient,
    pool: &sqlx::PgPool,
    app: &Application,
    release: &Release,
    service: &str,
    objects: &Value,
    replicas: Option<u32>,
    hold: &[String],
) -> Result<pb::Binding> {
    let mut objects = objects.clone();
    // The configs its workloads use, at their newest rendered content.
    if let Some(list) = objects.as_array_mut()
        && list.iter().any(|o| !crate::config_delivery::used_by(o).is_empty())
    {
        let rendered = crate::config_delivery::load(pool, app).await?;
        crate::config_delivery::attach(list, &rendered);
    }
    if let Some(n) = replicas
        && let Some(list) = objects.as_array_mut()
    {
        for o in list.iter_mut().filter(|o| {
            WORKLOADS.contains(&o["kind"].as_str().unwrap_or_default()) && o["spec"].get("replicas").is_some()
        }) {
            o["spec"]["replicas"] = json!(n);
        }
    }
    let request = pb::ApplyBindingRequest {
        tenant_id: app.tenant_id.to_string(),
        project_id: app.project_id.map(|p| p.to_string()).unwrap_or_default(),
        name: object_name(&app.name, service)?,
        objects_json: objects.to_string(),
        placement_json: crate::placement::for_binding(&release.placement, service, &app.environment).to_string(),
        replicas: replicas.unwrap_or(0),
        hold: hold.to_vec(),
        break_glass: String::new(),
    };
    federation::apply_binding(federation, request, service).await
}

/// Applications in the apps schema.
#[derive(Clone)]
pub struct Applications {
    outbox: Outbox,
    federation: Federation,
    configs: Configs,
    wake: std::sync::Arc<tokio::sync::Notify>,
    gateway: traffic::GatewayRef,
    images: Option<crate::images::Images>,
}

/// What a person does to a running slotted release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Blue-green: the new slot stays, the old one goes.
    Confirm,
    /// Canary paused at a step: go on to the next.
    Resume,
    /// Canary, A/B, shadow: the new version takes every request now;
    /// gray waiting between waves: the next wave goes out.
    Promote,
    /// Any slotted release: the replaced release serves again at once and
    /// the new slot goes; a gray release: every cluster returns to the
    /// replaced release's objects in one step.
    Abort,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Resume => "resume",
            Self::Promote => "promote",
            Self::Abort => "abort",
        }
    }
}

/// `apps.release.acted` (confirm, resume, promote, abort)
pub const RELEASE_ACTED: EventType = EventType::new("apps", "release", "acted");

fn event(app: &Application) -> pb::ResourceChanged {
    pb::ResourceChanged {
        id: app.id.to_string(),
        tenant_id: app.tenant_id.to_string(),
        name: app.name.clone(),
    }
}

/// The role a change of an application needs: production is the tenant
/// administrators' to change; developers and operators deploy elsewhere.
fn writer_role(environment: &str) -> Role {
    if environment == "production" {
        Role::TenantAdmin
    } else {
        Role::Developer
    }
}

impl Applications {
    /// Applications stored in the outbox's schema; `wake` nudges the release driver.
    /// HTTPRoutes attach to `gateway`; the configs templates reference come from `configs`.
    pub fn new(
        outbox: Outbox,
        federation: Federation,
        configs: Configs,
        wake: std::sync::Arc<tokio::sync::Notify>,
        gateway: traffic::GatewayRef,
    ) -> Self {
        Self {
            outbox,
            federation,
            configs,
            wake,
            gateway,
            images: None,
        }
    }

    /// Applications whose releases ask `images` for admission and digests.
    #[must_use]
    pub fn with_images(mut self, images: crate::images::Images) -> Self {
        self.images = Some(images);
        self
    }

    /// Renders a blueprint for `app`'s release `number`, with node ports
    /// drawn for it: service -> objects (strategy written in), and waves.
    async fn prepare(
        &self,
        caller: &Caller,
        tx: &mut sqlx::PgConnection,
        tenant: Uuid,
        app: &Application,
        number: i32,
        b: &Blueprint,
    ) -> Result<(Value, Vec<Vec<String>>)> {
        let version = Versions::get_in(&mut *tx, caller, b.template_version_id).await?;
        if version.tenant_id.is_some_and(|t| t != tenant) {
            return Err(Error::not_found("template version", b.template_version_id));
        }
        if !version.published() {
            return Err(Error::invalid(
                "template_version_id",
                format!("version {} is a draft; publish it before deploying", version.version),
            ));
        }
        if let Some(chart) = version.chart()? {
            if b.strategy.slotted() {
                return Err(Error::invalid(
                    "strategy.type",
                    "a chart deploys by rolling or recreate (its objects are the chart's, not two slots of them)",
                ));
            }
            let values = b.parameters.clone().into_iter().collect();
            let (mut by_service, waves) = crate::chart::release_objects(&chart, &app.name, number as u64, &values)?;
            for object in by_service.values_mut().flatten() {
                b.strategy.apply_to(object)?;
            }
            crate::placement::check_services(&b.placement, by_service.keys())?;
            return Ok((json!(by_service), waves));
        }
        let mut application = version.spec()?.resolve(&b.parameters)?;
        // Production admission, and every catalog image pinned to its digest.
        if let Some(images) = &self.images {
            images.admit(tenant, &app.environment, &mut application).await?;
        }
        let wants_node_ports = application
            .services
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| &c.ports)
            .any(|p| p.node_port.is_some());
        let ranges = if wants_node_ports {
            self.federation
                .node_port_ranges(&crate::placement::reach(&b.placement))
                .await?
        } else {
            Vec::new()
        };
        let node_ports = node_port::claim(tx, tenant, app.id, &application, &ranges).await?;
        // Every config referenced must be the tenant's; its content is
        // stored now so the first apply places it.
        let configs =
            crate::config_delivery::render_for_deploy(&self.configs, tenant, &app.environment, &application).await?;
        crate::config_delivery::store(tx, app, &configs, false).await?;
        let objects = render(
            &application,
            &RenderRelease {
                app: app.name.clone(),
                number: number as u64,
                node_ports,
            },
        )?;
        // Its objects (and their slots) share the tenant's namespaces with external services.
        let names: Vec<String> = objects
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str())
            .flat_map(|n| [n.to_string(), format!("{n}-blue"), format!("{n}-green")])
            .collect();
        crate::external_service::refuse_taken(tx, tenant, &names).await?;
        let mut by_service: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for mut object in objects {
            b.strategy.apply_to(&mut object)?;
            let service = object["metadata"]["labels"][SERVICE_LABEL]
                .as_str()
                .unwrap_or_default()
                .to_string();
            by_service.entry(service).or_default().push(object);
        }
        crate::placement::check_services(&b.placement, by_service.keys())?;
        Ok((json!(by_service), application.deploy_order()?))
    }

    /// Deploys a new application: the application and its release 1.
    ///
    /// # Errors
    /// A bad field (named), the version not visible or a draft, the name
    /// taken, a node port held, not allowed.
    pub async fn deploy(
        &self,
        caller: &Caller,
        tenant: Uuid,
        project: Option<Uuid>,
        name: &str,
        environment: &str,
        blueprint: Blueprint,
    ) -> Result<(Application, Release)> {
        let name = DnsLabel::parse("name", name.trim())?;
        if !matches!(environment, "production" | "test") {
            return Err(Error::invalid("environment", "must be production or test"));
        }
        caller.require(tenant, writer_role("test"), "tenant", tenant)?;
        let production = environment == "production";
        let state = if production { "awaiting-approval" } else { "deploying" };
        let mut tx = self.outbox.pool().begin().await?;
        let app = sqlx::query_as!(
            Application,
            "INSERT INTO applications (id, tenant_id, project_id, name, environment, state, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT DO NOTHING
             RETURNING id, tenant_id, project_id, name, environment, state, current_release, replicas, bindings,
                    created_by, created_at, updated_at",
            id::new_id(),
            tenant,
            project,
            name.as_str(),
            environment,
            state,
            caller.subject,
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::Conflict(format!("the tenant already has an application named {name}")))?;
        object_name(&app.name, "x")?;
        let release = self
            .insert_release(caller, &mut tx, &app, 1, &blueprint, None, production)
            .await?;
        outbox::record(&mut tx, DEPLOYED, Some(tenant), &event(&app)).await?;
        self.outbox.commit(tx).await?;
        self.wake.notify_one();
        Ok((app, release))
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_release(
        &self,
        caller: &Caller,
        tx: &mut sqlx::PgConnection,
        app: &Application,
        number: i32,
        b: &Blueprint,
        rollback_of: Option<i32>,
        needs_approval: bool,
    ) -> Result<Release> {
        let (objects, waves) = self.prepare(caller, tx, app.tenant_id, app, number, b).await?;
        let state = if needs_approval {
            "awaiting-approval"
        } else {
            "deploying"
        };
        let message = if needs_approval {
            "a tenant administrator must approve this production release"
        } else {
            ""
        };
        // A slotted release takes the slot the current version does not run in.
        let replaced_slot: Option<Option<String>> = match app.current_release {
            Some(n) => Some(
                sqlx::query_scalar!(
                    "SELECT slot FROM releases WHERE application_id = $1 AND tenant_id = $2 AND number = $3",
                    app.id,
                    app.tenant_id,
                    n,
                )
                .fetch_one(&mut *tx)
                .await?,
            ),
            None => None,
        };
        let slot = b.strategy.slotted().then(|| match &replaced_slot {
            Some(old) => traffic::other_slot(old.as_deref().unwrap_or(traffic::FIRST_SLOT)),
            None => traffic::FIRST_SLOT,
        });
        let strategy = serde_json::to_value(&b.strategy).map_err(Error::internal)?;
        let release = sqlx::query_as!(
            Release,
            "INSERT INTO releases (id, application_id, tenant_id, number, template_version_id, parameters, placement,
                                   strategy, objects, waves, state, message, rollback_of, created_by, slot, replaces)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             RETURNING id, application_id, tenant_id, number, template_version_id, parameters, placement, strategy,
                    objects, waves, state, wave, applied_wave, message, rollback_of, created_by, approved_by,
                    created_at, started_at, finished_at, slot, replaces, phase, step, applied, traffic,
                    hold_until, phase_started_at, gray_waves",
            id::new_id(),
            app.id,
            app.tenant_id,
            number,
            b.template_version_id,
            json!(b.parameters),
            b.placement,
            strategy,
            objects,
            json!(waves),
            state,
            message,
            rollback_of,
            caller.subject,
            slot,
            app.current_release,
        )
        .fetch_one(&mut *tx)
        .await?;
        let announced = pb::ResourceChanged {
            id: release.id.to_string(),
            tenant_id: app.tenant_id.to_string(),
            name: format!("{}#{}", app.name, number),
        };
        outbox::record(tx, RELEASE_CREATED, Some(app.tenant_id), &announced).await?;
        Ok(release)
    }

    /// An application the caller can see.
    ///
    /// # Errors
    /// Not found or not visible (the same answer).
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Application> {
        let visible = caller.visible_tenants();
        let found = sqlx::query_as!(
            Application,
            "SELECT id, tenant_id, project_id, name, environment, state, current_release, replicas, bindings,
                    created_by, created_at, updated_at
             FROM applications WHERE id = $1 AND ($2::uuid[] IS NULL OR tenant_id = ANY($2))",
            id,
            visible.as_deref(),
        )
        .fetch_optional(self.outbox.pool())
        .await?;
        found.ok_or_else(|| Error::not_found("application", id))
    }

    /// Application `id` of `tenant`, for the platform's own reconcilers.
    ///
    /// # Errors
    /// The database fails.
    pub(crate) async fn by_id(&self, tenant: Uuid, id: Uuid) -> Result<Option<Application>> {
        Ok(sqlx::query_as!(
            Application,
            "SELECT id, tenant_id, project_id, name, environment, state, current_release, replicas, bindings,
                    created_by, created_at, updated_at
             FROM applications WHERE id = $1 AND tenant_id = $2",
            id,
            tenant,
        )
        .fetch_optional(self.outbox.pool())
        .await?)
    }

    /// Applies again every service of `app` whose workloads use configs,
    /// as its settled release runs them, with the newest stored config
    /// content (a config release). A stopped application stays at 0.
    ///
    /// # Errors
    /// Its release has not settled; federation refuses or is unreachable.
    pub(crate) async fn redeliver(&self, app: &Application) -> Result<()> {
        let release = self.serving(app).await?;
        let services: Vec<String> = release
            .objects
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let mut federation = self.federation.client();
        for service in services {
            let objects = self.final_objects(&release, &service)?;
            let uses_configs = objects
                .as_array()
                .is_some_and(|list| list.iter().any(|o| !crate::config_delivery::used_by(o).is_empty()));
            if !uses_configs || app.bindings.get(&service).is_none() {
                continue;
            }
            let replicas = if app.state == "stopped" {
                Some(0)
            } else {
                app.replicas
                    .get(&service)
                    .and_then(Value::as_u64)
                    .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            };
            apply_service(
                &mut federation,
                self.outbox.pool(),
                app,
                &release,
                &service,
                &objects,
                replicas,
                &[],
            )
            .await?;
        }
        Ok(())
    }

    /// A page of a tenant's applications.
    ///
    /// # Errors
    /// The tenant is not visible.
    pub async fn list(
        &self,
        caller: &Caller,
        tenant: Uuid,
        page: Page,
    ) -> Result<(Vec<(Application, Option<Release>)>, String)> {
        if !caller.can_see(tenant) {
            return Err(Error::not_found("tenant", tenant));
        }
        // One snapshot for the page and its latest releases, read in two
        // queries whatever the page's size.
        let mut tx = self.outbox.pool().begin().await?;
        sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query_as!(
            Application,
            "SELECT id, tenant_id, project_id, name, environment, state, current_release, replicas, bindings,
                    created_by, created_at, updated_at
             FROM applications WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
            tenant,
            page.after,
            page.fetch(),
        )
        .fetch_all(&mut *tx)
        .await?;
        let ids: Vec<Uuid> = rows.iter().map(|a| a.id).collect();
        let latest = sqlx::query_as!(
            Release,
            "SELECT DISTINCT ON (application_id)
                    id, application_id, tenant_id, number, template_version_id, parameters, placement, strategy,
                    objects, waves, state, wave, applied_wave, message, rollback_of, created_by, approved_by,
                    created_at, started_at, finished_at, slot, replaces, phase, step, applied, traffic,
                    hold_until, phase_started_at, gray_waves
             FROM releases WHERE tenant_id = $1 AND application_id = ANY($2) ORDER BY application_id, number DESC",
            tenant,
            &ids,
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut latest: std::collections::HashMap<Uuid, Release> =
            latest.into_iter().map(|r| (r.application_id, r)).collect();
        let (rows, next) = page.finish(rows, |a| a.id);
        Ok((
            rows.into_iter()
                .map(|a| {
                    let r = latest.remove(&a.id);
                    (a, r)
                })
                .collect(),
            next,
        ))
    }

    /// An application and its newest release as of one moment (the release
    /// driver changes both in one transaction; two separate reads could
    /// show a succeeded release of a still deploying application).
    ///
    /// # Errors
    /// The database fails.
    pub async fn snapshot(&self, app: &Application) -> Result<(Application, Option<Release>)> {
        let mut tx = self.outbox.pool().begin().await?;
        sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let now = sqlx::query_as!(
            Application,
            "SELECT id, tenant_id, project_id, name, environment, state, current_release, replicas, bindings,
                    created_by, created_at, updated_at
             FROM applications WHERE id = $1 AND tenant_id = $2",
            app.id,
            app.tenant_id,
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::not_found("application", app.id))?;
        let latest = latest_in(&mut tx, app).await?;
        tx.commit().await?;
        Ok((now, latest))
    }

    /// The newest release of an application.
    ///
    /// # Errors
    /// The database fails.
    pub async fn latest_release(&self, app: &Application) -> Result<Option<Release>> {
        let mut conn = self.outbox.pool().acquire().await?;
        latest_in(&mut conn, app).await
    }

    /// A release the caller can see.
    ///
    /// # Errors
    /// Not found or not visible (the same answer).
    async fn visible_release(&self, caller: &Caller, id: Uuid) -> Result<Release> {
        let visible = caller.visible_tenants();
        let found = sqlx::query_as!(
            Release,
            "SELECT id, application_id, tenant_id, number, template_version_id, parameters, placement, strategy,
                    objects, waves, state, wave, applied_wave, message, rollback_of, created_by, approved_by,
                    created_at, started_at, finished_at, slot, replaces, phase, step, applied, traffic,
                    hold_until, phase_started_at, gray_waves
             FROM releases WHERE id = $1 AND ($2::uuid[] IS NULL OR tenant_id = ANY($2))",
            id,
            visible.as_deref(),
        )
        .fetch_optional(self.outbox.pool())
        .await?;
        found.ok_or_else(|| Error::not_found("release", id))
    }

    /// A page of an application's releases, newest first.
    ///
    /// # Errors
    /// The application is not visible.
    pub async fn releases(&self, caller: &Caller, app: Uuid, page: Page) -> Result<(Vec<Release>, String)> {
        let app = self.get(caller, app).await?;
        let rows = sqlx::query_as!(
            Release,
            "SELECT id, application_id, tenant_id, number, template_version_id, parameters, placement, strategy,
                    objects, waves, state, wave, applied_wave, message, rollback_of, created_by, approved_by,
                    created_at, started_at, finished_at, slot, replaces, phase, step, applied, traffic,
                    hold_until, phase_started_at, gray_waves
             FROM releases WHERE application_id = $1 AND tenant_id = $2 AND ($3::uuid IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
            app.id,
            app.tenant_id,
            page.after,
            page.fetch(),
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(page.finish(rows, |r| r.id))
    }

    /// A new release of an application: another version, parameters,
    /// placement or strategy (each defaulting to the latest release's).
    ///
    /// # Errors
    /// A release still in progress (conflict), bad fields, not allowed.
    pub async fn release(
        &self,
        caller: &Caller,
        app: Uuid,
        change: impl FnOnce(Blueprint) -> Result<Blueprint>,
        rollback_of: Option<i32>,
    ) -> Result<Release> {
        let app = self.get(caller, app).await?;
        caller.require(app.tenant_id, writer_role("test"), "application", app.id)?;
        // Rolling back to the release a slotted or gray release replaces,
        // while it runs, is its abort: the old version serves again at once.
        if let (Some(n), Some(latest)) = (rollback_of, self.latest_release(&app).await?)
            && latest.state == "deploying"
            && (latest.slot.is_some() || latest.strategy().gray())
            && latest.replaces == Some(n)
        {
            return self.act(caller, latest.id, Action::Abort).await;
        }
        let mut tx = self.outbox.pool().begin().await?;
        // Serialises releases of one application.
        let app = sqlx::query_as!(
            Application,
            "SELECT id, tenant_id, project_id, name, environment, state, current_release, replicas, bindings,
                    created_by, created_at, updated_at
             FROM applications WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
            app.id,
            app.tenant_id,
        )
        .fetch_one(&mut *tx)
        .await?;
        let latest = sqlx::query_as!(
            Release,
            "SELECT id, application_id, tenant_id, number, template_version_id, parameters, placement, strategy,
                    objects, waves, state, wave, applied_wave, message, rollback_of, created_by, approved_by,
                    created_at, started_at, finished_at, slot, replaces, phase, step, applied, traffic,
                    hold_until, phase_started_at, gray_waves
             FROM releases WHERE application_id = $1 AND tenant_id = $2 ORDER BY number DESC LIMIT 1",
            app.id,
            app.tenant_id,
        )
        .fetch_one(&mut *tx)
        .await?;
        if app.state == "stopped" {
            return Err(Error::FailedPrecondition(format!(
                "{} is stopped; start it before releasing",
                app.name
            )));
        }
        if matches!(latest.state.as_str(), "deploying" | "awaiting-approval") {
            return Err(Error::FailedPrecondition(format!(
                "release {} is still {}; wait for it or let it fail first",
                latest.number, latest.state
            )));
        }
        let base = match rollback_of {
            Some(n) => sqlx::query_as!(
                Release,
                "SELECT id, application_id, tenant_id, number, template_version_id, parameters, placement, strategy,
                        objects, waves, state, wave, applied_wave, message, rollback_of, created_by, approved_by,
                        created_at, started_at, finished_at, slot, replaces, phase, step, applied, traffic,
                        hold_until, phase_started_at, gray_waves
                 FROM releases WHERE application_id = $1 AND tenant_id = $2 AND number = $3",
                app.id,
                app.tenant_id,
                n,
            )
            .fetch_optional(&mut *tx)
            .await?
            .filter(|r| matches!(r.state.as_str(), "succeeded" | "superseded"))
            .ok_or_else(|| {
                Error::invalid(
                    "to_release",
                    format!("release {n} of {} never succeeded; roll back to one that did", app.name),
                )
            })?,
            None => latest.clone(),
        };
        let blueprint = change(Blueprint {
            template_version_id: base.template_version_id,
            parameters: serde_json::from_value(base.parameters.clone()).unwrap_or_default(),
            placement: base.placement.clone(),
            strategy: serde_json::from_value(base.strategy.clone()).unwrap_or_default(),
        })?;
        let release = self
            .insert_release(
                caller,
                &mut tx,
                &app,
                latest.number + 1,
                &blueprint,
                rollback_of,
                app.environment == "production",
            )
            .await?;
        sqlx::query!(
            "UPDATE applications SET state = CASE WHEN $3 THEN 'awaiting-approval' ELSE 'deploying' END,
                     updated_at = now() WHERE id = $1 AND tenant_id = $2",
            app.id,
            app.tenant_id,
            release.state == "awaiting-approval",
        )
        .execute(&mut *tx)
        .await?;
        self.outbox.commit(tx).await?;
        self.wake.notify_one();
        Ok(release)
    }

    /// Approves a production release awaiting it. Tenant administrators.
    ///
    /// # Errors
    /// Not awaiting approval, not visible, not allowed.
    pub async fn approve(&self, caller: &Caller, release: Uuid) -> Result<Release> {
        let found = self.visible_release(caller, release).await?;
        caller.require(found.tenant_id, Role::TenantAdmin, "release", release)?;
        // Four eyes: only production releases wait for approval, and there
        // the one who made the change may not also let it through.
        if found.created_by == caller.subject {
            return Err(Error::PermissionDenied(format!(
                "four-eyes rule: release {} was made by {}, so another tenant-admin of tenant {} approves it",
                found.number, found.created_by, found.tenant_id
            )));
        }
        let approved = sqlx::query_as!(
            Release,
            "UPDATE releases SET state = 'deploying', approved_by = $3, message = '', next_check_at = now()
             WHERE id = $1 AND tenant_id = $2 AND state = 'awaiting-approval'
             RETURNING id, application_id, tenant_id, number, template_version_id, parameters, placement, strategy,
                    objects, waves, state, wave, applied_wave, message, rollback_of, created_by, approved_by,
                    created_at, started_at, finished_at, slot, replaces, phase, step, applied, traffic,
                    hold_until, phase_started_at, gray_waves",
            release,
            found.tenant_id,
            caller.subject,
        )
        .fetch_optional(self.outbox.pool())
        .await?;
        let approved = approved.ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "release {} is {}, not awaiting approval",
                found.number, found.state
            ))
        })?;
        sqlx::query!(
            "UPDATE applications SET state = 'deploying', updated_at = now() WHERE id = $1 AND tenant_id = $2",
            approved.application_id,
            approved.tenant_id,
        )
        .execute(self.outbox.pool())
        .await?;
        self.wake.notify_one();
        Ok(approved)
    }

    /// Confirms, resumes, promotes or aborts a running slotted release.
    /// Production releases are their tenant administrators' to confirm,
    /// resume and promote; operators may abort them too.
    ///
    /// # Errors
    /// The release's strategy or phase does not allow the action (the
    /// message says what it waits for), not visible, not allowed.
    pub async fn act(&self, caller: &Caller, release: Uuid, action: Action) -> Result<Release> {
        let found = self.visible_release(caller, release).await?;
        let app = self.get(caller, found.application_id).await?;
        let role = match (action, app.environment.as_str()) {
            (Action::Abort, "production") => Role::Operator,
            (_, environment) => writer_role(environment),
        };
        caller.require(found.tenant_id, role, "release", release)?;
        let strategy = found.strategy();
        let refuse = |why: String| {
            Err(Error::FailedPrecondition(format!(
                "cannot {} release {}: {why}",
                action.verb(),
                found.number
            )))
        };
        if found.state != "deploying" {
            return refuse(format!("it is {}", found.state));
        }
        if (found.slot.is_none() && !strategy.gray()) || found.replaces.is_none() {
            return refuse("only a blue-green, canary, A/B, shadow or gray release that replaces another can be confirmed, resumed, promoted or aborted".into());
        }
        // (phases it may be in, phase it moves to, step it moves to, message)
        let (from, to, step, message): (&[&str], &str, i32, String) = match (action, &strategy) {
            (Action::Confirm, Strategy::BlueGreen) => (
                &["waiting"],
                "finishing",
                found.step,
                format!("confirmed by {}; removing the old slot", caller.subject),
            ),
            (Action::Resume, Strategy::Canary { .. }) => (
                &["waiting"],
                "traffic",
                found.step + 1,
                format!("resumed by {}", caller.subject),
            ),
            // A gray release waiting between waves goes on to the next wave.
            (Action::Promote, Strategy::Gray { .. }) => (
                &["waiting"],
                "rollout",
                found.step + 1,
                format!("promoted by {}; the next wave goes out", caller.subject),
            ),
            (Action::Promote, s) if s.routed() => (
                &["traffic", "waiting"],
                "finishing",
                found.step,
                format!("promoted by {}; the new version takes every request", caller.subject),
            ),
            (Action::Abort, _) => (
                &["rollout", "traffic", "waiting"],
                "aborting",
                found.step,
                format!(
                    "aborted by {}; returning to release {}",
                    caller.subject,
                    found.replaces.unwrap_or(0)
                ),
            ),
            (Action::Confirm, _) => return refuse("confirm applies to blue-green releases".into()),
            (Action::Resume, _) => return refuse("resume applies to paused canary releases".into()),
            (Action::Promote, _) => {
                return refuse(
                    "promote applies to canary, A/B, shadow and gray releases; a blue-green release is confirmed"
                        .into(),
                );
            }
        };
        let mut tx = self.outbox.pool().begin().await?;
        let moved = sqlx::query_as!(
            Release,
            "UPDATE releases SET phase = $3, step = $4, message = $5, hold_until = NULL, phase_started_at = now(),
                    next_check_at = now()
             WHERE id = $1 AND tenant_id = $2 AND state = 'deploying' AND phase = ANY($6)
             RETURNING id, application_id, tenant_id, number, template_version_id, parameters, placement, strategy,
                    objects, waves, state, wave, applied_wave, message, rollback_of, created_by, approved_by,
                    created_at, started_at, finished_at, slot, replaces, phase, step, applied, traffic,
                    hold_until, phase_started_at, gray_waves",
            found.id,
            found.tenant_id,
            to,
            step,
            message,
            &from.iter().map(ToString::to_string).collect::<Vec<_>>(),
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(moved) = moved else {
            let why = match found.phase.as_str() {
                "rollout" => "the new version is still rolling out".to_string(),
                "traffic" => "a traffic step is being applied".to_string(),
                "waiting" => format!("it waits: {}", found.message),
                other => format!("it is {other}"),
            };
            return refuse(why);
        };
        let announced = pb::ResourceChanged {
            id: moved.id.to_string(),
            tenant_id: moved.tenant_id.to_string(),
            name: format!("{}#{} {}", app.name, moved.number, action.verb()),
        };
        outbox::record(&mut tx, RELEASE_ACTED, Some(moved.tenant_id), &announced).await?;
        self.outbox.commit(tx).await?;
        self.wake.notify_one();
        Ok(moved)
    }

    /// The release whose objects run now: the latest, or the one an abort
    /// returned to.
    ///
    /// # Errors
    /// It has not succeeded (nothing settled runs yet).
    pub(crate) async fn serving(&self, app: &Application) -> Result<Release> {
        let Some(mut release) = self.latest_release(app).await? else {
            return Err(Error::not_found("application", app.id));
        };
        if release.state == "aborted"
            && let Some(n) = app.current_release
        {
            // The release an abort returned to runs.
            release = sqlx::query_as!(
                Release,
                "SELECT id, application_id, tenant_id, number, template_version_id, parameters, placement, strategy,
                        objects, waves, state, wave, applied_wave, message, rollback_of, created_by, approved_by,
                        created_at, started_at, finished_at, slot, replaces, phase, step, applied, traffic,
                        hold_until, phase_started_at, gray_waves
                 FROM releases WHERE application_id = $1 AND tenant_id = $2 AND number = $3",
                app.id,
                app.tenant_id,
                n,
            )
            .fetch_one(self.outbox.pool())
            .await?;
        }
        if !matches!(release.state.as_str(), "succeeded") {
            return Err(Error::FailedPrecondition(format!(
                "release {} is {}; wait until it has succeeded",
                release.number, release.state
            )));
        }
        Ok(release)
    }

    /// What `service`'s binding holds once `release` has settled (a slotted
    /// release: its slot only).
    ///
    /// # Errors
    /// The release's objects do not make a layout (a bug).
    pub(crate) fn final_objects(&self, release: &Release, service: &str) -> Result<Value> {
        Ok(service_objects(release, None, service, View::Final, &self.gateway)?.unwrap_or(Value::Array(Vec::new())))
    }

    /// Sets one service's replicas (divided over its clusters by the
    /// placement), at once and for every later release.
    ///
    /// # Errors
    /// Unknown service (named), not running, not allowed.
    pub async fn scale(&self, caller: &Caller, app: Uuid, service: &str, replicas: u32) -> Result<Application> {
        let app = self.get(caller, app).await?;
        caller.require(
            app.tenant_id,
            if app.environment == "production" {
                Role::Operator
            } else {
                Role::Developer
            },
            "application",
            app.id,
        )?;
        if replicas > 1000 {
            return Err(Error::invalid("replicas", "must be at most 1000"));
        }
        let release = self.serving(&app).await?;
        if release.objects.get(service).is_none() {
            return Err(Error::invalid(
                "service",
                format!("{service} is not a service of {}", app.name),
            ));
        }
        // Federation keeps the counts an explicit placement gives per
        // cluster, so a total would be recorded and change nothing.
        if let Some(fixed) =
            crate::placement::fixed_replicas(&crate::placement::for_service(&release.placement, service))
        {
            return Err(Error::FailedPrecondition(format!(
                "{service}'s placement fixes its replicas per cluster ({fixed}); \
                 change them with a release that gives a new placement"
            )));
        }
        let objects = self.final_objects(&release, service)?;
        if replicas == 0 {
            return Err(Error::invalid("replicas", "must be at least 1"));
        }
        let mut federation = self.federation.client();
        apply_service(
            &mut federation,
            self.outbox.pool(),
            &app,
            &release,
            service,
            &objects,
            Some(replicas),
            &[],
        )
        .await?;
        let mut tx = self.outbox.pool().begin().await?;
        let updated = sqlx::query_as!(
            Application,
            "UPDATE applications SET replicas = replicas || jsonb_build_object($3::text, $4::int), updated_at = now()
             WHERE id = $1 AND tenant_id = $2
             RETURNING id, tenant_id, project_id, name, environment, state, current_release, replicas, bindings,
                    created_by, created_at, updated_at",
            app.id,
            app.tenant_id,
            service,
            replicas as i32,
        )
        .fetch_one(&mut *tx)
        .await?;
        let from = app.replicas.get(service).and_then(Value::as_u64);
        record_scale(
            &mut tx,
            &app,
            service,
            from.map(|f| f as i32),
            replicas as i32,
            "manual",
            &caller.subject,
        )
        .await?;
        outbox::record(&mut tx, SCALED, Some(app.tenant_id), &event(&app)).await?;
        self.outbox.commit(tx).await?;
        Ok(updated)
    }

    /// A page of an application's scale events, newest first.
    ///
    /// # Errors
    /// The application is not visible.
    pub async fn scale_events(&self, caller: &Caller, app: Uuid, page: Page) -> Result<(Vec<ScaleEvent>, String)> {
        let app = self.get(caller, app).await?;
        let rows = sqlx::query_as!(
            ScaleEvent,
            "SELECT id, service, from_replicas, to_replicas, reason, actor, at FROM scale_events
              WHERE application_id = $1 AND tenant_id = $2 AND ($3::uuid IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
            app.id,
            app.tenant_id,
            page.after,
            page.fetch(),
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(page.finish(rows, |e| e.id))
    }

    /// Deletes an application: federation removes every object it placed
    /// (and releases their quota); node ports return to the pool.
    ///
    /// # Errors
    /// Federation unreachable (nothing is deleted then), not allowed.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let app = self.get(caller, id).await?;
        caller.require(app.tenant_id, writer_role(&app.environment), "application", app.id)?;
        let mut federation = self.federation.client();
        for binding in app
            .bindings
            .as_object()
            .map(|m| {
                m.values()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
        {
            federation::delete_binding(&mut federation, &binding).await?;
        }
        let mut tx = self.outbox.pool().begin().await?;
        sqlx::query!(
            "DELETE FROM applications WHERE id = $1 AND tenant_id = $2",
            app.id,
            app.tenant_id,
        )
        .execute(&mut *tx)
        .await?;
        outbox::record(&mut tx, DELETED, Some(app.tenant_id), &event(&app)).await?;
        self.outbox.commit(tx).await
    }

    /// Reaches federation as the apps service.
    pub(crate) fn federation(&self) -> &Federation {
        &self.federation
    }

    /// The apps schema and its outbox.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Each service's binding as federation reports it (Unknown when
    /// federation cannot be asked).
    pub async fn services(&self, app: &Application) -> Vec<pb::ServiceStatus> {
        let mut federation = self.federation.client();
        let mut out = Vec::new();
        for (service, binding) in app.bindings.as_object().into_iter().flatten() {
            let binding = binding.as_str().unwrap_or_default().to_string();
            let status = match federation
                .get_binding(pb::GetBindingRequest { id: binding.clone() })
                .await
            {
                Ok(b) => {
                    let b = b.into_inner();
                    let targets: Vec<Value> = b
                        .targets
                        .iter()
                        .map(|t| {
                            // What a cluster out of contact last reported is no longer known: not shown as available.
                            let known = t.health != "Unknown";
                            let count = |n: i32| if known { json!(n) } else { Value::Null };
                            json!({"cluster": t.cluster, "namespace": t.namespace, "replicas": t.replicas, "health": t.health,
                                   "health_reason": t.health_reason, "removing": t.removing, "last_error": t.last_error,
                                   "ready": count(t.workloads.iter().map(|w| w.ready).sum::<i32>()),
                                   "available": count(t.workloads.iter().map(|w| w.available).sum::<i32>()),
                                   "revision": t.objects_revision})
                        })
                        .collect();
                    pb::ServiceStatus {
                        name: service.clone(),
                        binding_id: binding,
                        health: b.health,
                        health_reason: b.health_reason,
                        targets_json: Value::Array(targets).to_string(),
                    }
                }
                Err(s) => pb::ServiceStatus {
                    name: service.clone(),
                    binding_id: binding,
                    health: "Unknown".into(),
                    health_reason: s.message().to_string(),
                    targets_json: "[]".into(),
                },
            };
            out.push(status);
        }
        out
    }
}

/// An application's health: the worst of its services' (Healthy,
/// Progressing, Unknown, Degraded in that order), with the reasons of the
/// services in that state; empty without services.
pub fn overall_health(services: &[pb::ServiceStatus]) -> (String, String) {
    let rank = |h: &str| match h {
        "Healthy" => 0,
        "Progressing" => 1,
        "Unknown" => 2,
        _ => 3,
    };
    let Some(worst) = services.iter().map(|s| s.health.as_str()).max_by_key(|h| rank(h)) else {
        return (String::new(), String::new());
    };
    let reason = services
        .iter()
        .filter(|s| rank(&s.health) == rank(worst))
        .map(|s| format!("{}: {}", s.name, s.health_reason))
        .collect::<Vec<_>>()
        .join("; ");
    (worst.to_string(), reason)
}
