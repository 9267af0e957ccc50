//! Template versions: a draft is edited until it is published, then it never
//! changes (the database refuses it too). Each version holds a [`Spec`],
//! checked when saved; rendering a version previews the objects a deploy
//! would write.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kernel::caller::Caller;
use kernel::event::EventType;
use kernel::outbox::{self, Outbox};
use kernel::page::Page;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use serde_json::Value;
use uuid::Uuid;

use crate::chart::{self, Chart};
use crate::render::{Release, render};
use crate::spec::Spec;
use crate::template::{Templates, require_writer};

/// `apps.template_version.created`
pub const CREATED: EventType = EventType::new("apps", "template_version", "created");
/// `apps.template_version.published`
pub const PUBLISHED: EventType = EventType::new("apps", "template_version", "published");

/// The longest note, in characters.
pub const MAX_NOTE: usize = 2048;

/// A version as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Version {
    /// Its id.
    pub id: Uuid,
    /// Its template.
    pub template_id: Uuid,
    /// The template's tenant (`None`: the catalog).
    pub tenant_id: Option<Uuid>,
    /// `MAJOR.MINOR.PATCH[-pre]`, unique in the template.
    pub version: String,
    /// What changed.
    pub note: String,
    /// The spec document.
    pub spec: Value,
    /// `draft` or `published`.
    pub state: String,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last edited.
    pub updated_at: DateTime<Utc>,
    /// When it was published.
    pub published_at: Option<DateTime<Utc>>,
}

impl Version {
    /// Whether it can no longer change.
    pub fn published(&self) -> bool {
        self.state == "published"
    }

    /// Its chart, for a version imported from one.
    ///
    /// # Errors
    /// The stored chart no longer loads (a bug).
    pub fn chart(&self) -> Result<Option<Chart>> {
        let Some(files) = self.spec.get("chart").and_then(|c| c.get("files")) else {
            return Ok(None);
        };
        let files: BTreeMap<String, String> = serde_json::from_value(files.clone()).map_err(Error::internal)?;
        Chart::stored(&files)
            .map(Some)
            .map_err(|e| Error::internal(format!("a stored chart does not load: {e}")))
    }

    /// Its spec, as checked when it was saved.
    ///
    /// # Errors
    /// The stored spec no longer checks (a bug).
    pub fn spec(&self) -> Result<Spec> {
        Spec::stored(self.spec.clone())
    }
}

/// A template or chart version number: SemVer `MAJOR.MINOR.PATCH`, an
/// optional `-prerelease` and an optional `+build` (each part at most 9
/// digits, no leading zeros). It orders as SemVer says: by precedence, with
/// build metadata ignored (`1.0.0+a` equals `1.0.0+b`).
#[derive(Debug, Clone)]
pub struct VersionNumber(semver::Version);

impl VersionNumber {
    /// Reads a version number.
    ///
    /// # Errors
    /// Names `version`.
    pub fn parse(raw: &str) -> Result<Self> {
        let raw = raw.trim();
        let invalid = || {
            Error::invalid(
                "version",
                "must be MAJOR.MINOR.PATCH, optionally with -prerelease and +build (e.g. 1.4.0, 2.0.0-rc.1, 1.0.0+1)",
            )
        };
        let v = semver::Version::parse(raw).map_err(|_| invalid())?;
        let small = [v.major, v.minor, v.patch].iter().all(|n| *n < 1_000_000_000);
        if !small || v.pre.len() > 40 || v.build.len() > 40 {
            return Err(invalid());
        }
        Ok(Self(v))
    }

    /// The version as SemVer.
    pub fn semver(&self) -> &semver::Version {
        &self.0
    }
}

impl std::fmt::Display for VersionNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for VersionNumber {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for VersionNumber {}

impl PartialOrd for VersionNumber {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for VersionNumber {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp_precedence(&other.0)
    }
}

/// Checks a version number (see [`VersionNumber`]) and returns it as written.
///
/// # Errors
/// Names `version`.
pub fn parse_version(raw: &str) -> Result<String> {
    VersionNumber::parse(raw).map(|v| v.to_string())
}

fn parse_note(note: &str) -> Result<String> {
    let note = note.trim();
    if note.chars().count() > MAX_NOTE {
        return Err(Error::invalid("note", format!("must be at most {MAX_NOTE} characters")));
    }
    Ok(note.to_string())
}

/// Template versions in the apps schema.
#[derive(Clone)]
pub struct Versions {
    outbox: Outbox,
    templates: Templates,
}

fn announce(v: &Version) -> pb::ResourceChanged {
    pb::ResourceChanged {
        id: v.id.to_string(),
        tenant_id: v.tenant_id.map(|t| t.to_string()).unwrap_or_default(),
        name: v.version.clone(),
    }
}

impl Versions {
    /// Versions stored in the outbox's schema.
    pub fn new(outbox: Outbox) -> Self {
        Self {
            templates: Templates::new(outbox.clone()),
            outbox,
        }
    }

    /// Creates a draft version of a template the caller may write.
    ///
    /// # Errors
    /// A bad field (named), the template not visible, not allowed, or the
    /// version taken.
    pub async fn create(
        &self,
        caller: &Caller,
        template_id: Uuid,
        version: &str,
        note: &str,
        spec: &str,
    ) -> Result<Version> {
        let template = self.templates.get(caller, template_id).await?;
        require_writer(caller, template.tenant_id, "template", template_id)?;
        let (version, note, spec) = (parse_version(version)?, parse_note(note)?, Spec::check(spec)?);
        self.insert(caller, &template, &version, &note, spec.raw()).await
    }

    /// Imports a Helm chart (its files, rooted) as a draft version of the
    /// template named like the chart in `tenant_id` (created when there is
    /// none): version and note from `Chart.yaml`, parameters = its values.
    ///
    /// # Errors
    /// The chart does not load or render with its own values (the error
    /// names the file), not allowed, or the version exists.
    pub async fn import(
        &self,
        caller: &Caller,
        tenant_id: &str,
        files: BTreeMap<String, String>,
    ) -> Result<(crate::template::Template, Version)> {
        let chart = Chart::check(&files)?;
        let new =
            crate::template::NewTemplate::parse(tenant_id, &chart.meta.name, &chart.meta.description).map_err(|e| {
                Error::invalid(
                    "Chart.yaml",
                    format!("the chart's name or description does not make a template: {e}"),
                )
            })?;
        let tenant = new.tenant();
        require_writer(caller, tenant, "tenant", tenant.unwrap_or_default())?;
        let template = match self.templates.named(tenant, &chart.meta.name).await? {
            Some(t) => t,
            None => match self.templates.create(caller, new).await {
                Ok(t) => t,
                // Imported at the same moment by someone else.
                Err(Error::Conflict(_)) => self
                    .templates
                    .named(tenant, &chart.meta.name)
                    .await?
                    .ok_or_else(|| Error::Conflict("the template was deleted meanwhile".into()))?,
                Err(e) => return Err(e),
            },
        };
        let note = parse_note(&chart.meta.description)?;
        let version = self
            .insert(
                caller,
                &template,
                &chart.meta.version,
                &note,
                &serde_json::json!({"chart": {"files": files}}),
            )
            .await?;
        Ok((template, version))
    }

    async fn insert(
        &self,
        caller: &Caller,
        template: &crate::template::Template,
        version: &str,
        note: &str,
        spec: &Value,
    ) -> Result<Version> {
        let mut tx = self.outbox.pool().begin().await?;
        let created = sqlx::query_as!(
            Version,
            "INSERT INTO template_versions (id, template_id, tenant_id, version, note, spec, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING
             RETURNING id, template_id, tenant_id, version, note, spec, state, created_by, created_at,
            updated_at, published_at",
            id::new_id(),
            template.id,
            template.tenant_id,
            version,
            note,
            spec,
            caller.subject,
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::Conflict(format!("{} already has a version {version}", template.name)))?;
        outbox::record(&mut tx, CREATED, created.tenant_id, &announce(&created)).await?;
        self.outbox.commit(tx).await?;
        Ok(created)
    }

    /// A version the caller can see.
    ///
    /// # Errors
    /// Not found or not visible (the same answer).
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Version> {
        let mut conn = self.outbox.pool().acquire().await?;
        Self::get_in(&mut conn, caller, id).await
    }

    /// [`Self::get`] on a connection the caller holds (inside its
    /// transaction: a second connection per request would starve the pool
    /// under load).
    ///
    /// # Errors
    /// Not found or not visible (the same answer).
    pub async fn get_in(conn: &mut sqlx::PgConnection, caller: &Caller, id: Uuid) -> Result<Version> {
        let visible = caller.visible_tenants();
        let found = sqlx::query_as!(
            Version,
            "SELECT id, template_id, tenant_id, version, note, spec, state, created_by, created_at,
             updated_at, published_at
             FROM template_versions WHERE id = $1 AND (tenant_id IS NULL OR $2::uuid[] IS NULL OR tenant_id = ANY($2))",
            id,
            visible.as_deref(),
        )
        .fetch_optional(conn)
        .await?;
        found.ok_or_else(|| Error::not_found("template version", id))
    }

    /// Edits a draft: its note and/or spec.
    ///
    /// # Errors
    /// Published (failed precondition), a bad field, not visible or not allowed.
    pub async fn update(&self, caller: &Caller, id: Uuid, note: Option<&str>, spec: Option<&str>) -> Result<Version> {
        let current = self.get(caller, id).await?;
        require_writer(caller, current.tenant_id, "template version", id)?;
        if current.published() {
            return Err(Error::FailedPrecondition(format!(
                "version {} is published and cannot change; create a new version",
                current.version
            )));
        }
        let note = note.map(parse_note).transpose()?;
        let spec = spec.map(Spec::check).transpose()?;
        let updated = sqlx::query_as!(
            Version,
            "UPDATE template_versions SET note = coalesce($2, note), spec = coalesce($3, spec), updated_at = now()
             WHERE id = $1 AND state = 'draft'
             RETURNING id, template_id, tenant_id, version, note, spec, state, created_by, created_at,
            updated_at, published_at",
            id,
            note,
            spec.as_ref().map(Spec::raw),
        )
        .fetch_optional(self.outbox.pool())
        .await?;
        updated.ok_or_else(|| Error::FailedPrecondition(format!("version {} was published meanwhile", current.version)))
    }

    /// Publishes a draft: from now on it is immutable and deployable.
    ///
    /// # Errors
    /// Already published, not visible or not allowed.
    pub async fn publish(&self, caller: &Caller, id: Uuid) -> Result<Version> {
        let current = self.get(caller, id).await?;
        require_writer(caller, current.tenant_id, "template version", id)?;
        let mut tx = self.outbox.pool().begin().await?;
        let published = sqlx::query_as!(
            Version,
            "UPDATE template_versions SET state = 'published', published_at = now(), updated_at = now()
             WHERE id = $1 AND state = 'draft'
             RETURNING id, template_id, tenant_id, version, note, spec, state, created_by, created_at,
            updated_at, published_at",
            id,
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::FailedPrecondition(format!("version {} is already published", current.version)))?;
        outbox::record(&mut tx, PUBLISHED, published.tenant_id, &announce(&published)).await?;
        self.outbox.commit(tx).await?;
        Ok(published)
    }

    /// A page of a visible template's versions, oldest first.
    ///
    /// # Errors
    /// The template is not visible.
    pub async fn list(&self, caller: &Caller, template_id: Uuid, page: Page) -> Result<(Vec<Version>, String)> {
        let template = self.templates.get(caller, template_id).await?;
        let rows = sqlx::query_as!(
            Version,
            "SELECT id, template_id, tenant_id, version, note, spec, state, created_by, created_at,
             updated_at, published_at
             FROM template_versions
             WHERE template_id = $1 AND tenant_id IS NOT DISTINCT FROM $2 AND ($3::uuid IS NULL OR id > $3)
             ORDER BY id LIMIT $4",
            template_id,
            template.tenant_id,
            page.after,
            page.fetch(),
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(page.finish(rows, |v| v.id))
    }

    /// The objects a version renders for application `app` with
    /// `parameters`, and the services' deploy order.
    ///
    /// # Errors
    /// Bad parameters or app name (named), not visible.
    pub async fn render(
        &self,
        caller: &Caller,
        id: Uuid,
        app: &str,
        parameters: &str,
    ) -> Result<(Vec<Value>, Vec<Vec<String>>)> {
        let app = kernel::name::DnsLabel::parse("app", app.trim())?;
        let values: BTreeMap<String, Value> = match parameters.trim() {
            "" => BTreeMap::new(),
            text => serde_json::from_str(text)
                .map_err(|e| Error::invalid("parameters", format!("must be a JSON object of parameter values: {e}")))?,
        };
        let version = self.get(caller, id).await?;
        if let Some(chart) = version.chart()? {
            let (objects, waves) = chart::release_objects(&chart, app.as_str(), 0, &values.into_iter().collect())?;
            return Ok((objects.into_values().flatten().collect(), waves));
        }
        let application = version.spec()?.resolve(&values)?;
        let objects = render(
            &application,
            &Release {
                app: app.as_str().to_string(),
                number: 0,
                node_ports: BTreeMap::new(),
            },
        )?;
        Ok((objects, application.deploy_order()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_semantic() {
        for good in ["1.0.0", "0.1.12", "2.0.0-rc.1", "10.20.30-beta-2"] {
            assert_eq!(parse_version(good).unwrap(), good);
        }
        for bad in ["1.0", "1.0.0.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0-ä", "", "1..0"] {
            assert_eq!(parse_version(bad).unwrap_err().field(), Some("version"), "{bad}");
        }
    }

    #[test]
    fn versions_may_carry_build_metadata() {
        for good in ["1.0.0+1", "1.2.3-rc.1+build.5", "2.0.0+20260101.sha-abc"] {
            assert_eq!(parse_version(good).unwrap(), good);
        }
        for bad in ["1.0.0+", "1.0.0+ä", "1.0.0+a..b", "1000000000.0.0"] {
            assert_eq!(parse_version(bad).unwrap_err().field(), Some("version"), "{bad}");
        }
    }

    #[test]
    fn versions_order_by_precedence_ignoring_build_metadata() {
        let v = |s: &str| VersionNumber::parse(s).unwrap();
        assert_eq!(v("1.0.0+a"), v("1.0.0+b"));
        assert_eq!(v("1.0.0+a"), v("1.0.0"));
        assert!(v("1.0.0-rc.1+z") < v("1.0.0+a"));
        assert!(v("1.0.0-alpha") < v("1.0.0-alpha.1"));
        assert!(v("1.0.0-beta.2") < v("1.0.0-beta.11"));
        assert!(v("1.9.0") < v("1.10.0+0"));
        assert_eq!(v(" 1.2.3+x ").to_string(), "1.2.3+x");
    }
}
