//! Config sets: one level of an application's configuration in a tenant.
//! A set is addressed by application (or, for a shared set that many
//! applications link, its name), environment and cluster: an empty
//! environment is the base level, an empty cluster the environment level.
//! Operators of the tenant create and delete them; its members read.

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::event::EventType;
use kernel::name::DnsLabel;
use kernel::outbox::{self, Outbox};
use kernel::page::Page;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use uuid::Uuid;

/// `configs.config_set.created`
pub const CREATED: EventType = EventType::new("configs", "config_set", "created");
/// `configs.config_set.deleted`
pub const DELETED: EventType = EventType::new("configs", "config_set", "deleted");

/// A config set as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConfigSet {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// The application it configures (DNS label).
    pub application: String,
    /// The environment (DNS label: `dev`, `qa`, `production` ...); empty: the base level.
    pub environment: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The cluster; empty: the whole environment.
    pub cluster: String,
    /// Whether it is a shared set that applications link.
    pub shared: bool,
    /// The latest release's number, 0 before the first.
    pub latest_release: i64,
}

impl ConfigSet {
    /// How people name it: `shop/base`, `shop/production`, `shop/production/eu-1`.
    pub fn address(&self) -> String {
        match (self.environment.as_str(), self.cluster.as_str()) {
            ("", _) => format!("{}/base", self.application),
            (env, "") => format!("{}/{env}", self.application),
            (env, cluster) => format!("{}/{env}/{cluster}", self.application),
        }
    }
}

/// A validated new config set.
#[derive(Debug, Clone)]
pub struct NewConfigSet {
    tenant: Uuid,
    application: DnsLabel,
    environment: Option<DnsLabel>,
    cluster: Option<DnsLabel>,
    shared: bool,
}

impl NewConfigSet {
    /// Validates raw input; errors name the field.
    ///
    /// # Errors
    /// A field is malformed.
    pub fn parse(tenant_id: &str, application: &str, environment: &str, cluster: &str, shared: bool) -> Result<Self> {
        let label = |field: &str, raw: &str| {
            let raw = raw.trim();
            (!raw.is_empty()).then(|| DnsLabel::parse(field, raw)).transpose()
        };
        let environment = label("environment", environment)?;
        let cluster = label("cluster", cluster)?;
        if cluster.is_some() && environment.is_none() {
            return Err(Error::invalid(
                "cluster",
                "a cluster level belongs to an environment: give the environment too",
            ));
        }
        Ok(Self {
            tenant: id::parse_id("tenant_id", tenant_id)?,
            application: DnsLabel::parse("application", application.trim())?,
            environment,
            cluster,
            shared,
        })
    }
}

/// Config sets in the configs schema.
#[derive(Clone)]
pub struct ConfigSets {
    outbox: Outbox,
}

impl ConfigSets {
    /// Config sets stored in the outbox's schema.
    pub fn new(outbox: Outbox) -> Self {
        Self { outbox }
    }

    /// Creates a config set. Operators of the tenant.
    ///
    /// # Errors
    /// Not allowed, or the tenant already has one for that application and environment.
    pub async fn create(&self, caller: &Caller, new: NewConfigSet) -> Result<ConfigSet> {
        caller.require(new.tenant, Role::Operator, "tenant", new.tenant)?;
        let mut tx = self.outbox.pool().begin().await?;
        let environment = new.environment.as_ref().map_or("", DnsLabel::as_str);
        let cluster = new.cluster.as_ref().map_or("", DnsLabel::as_str);
        // A name is either an application's or a shared set's, at every level.
        let other_kind = sqlx::query_scalar!(
            "SELECT EXISTS (SELECT 1 FROM config_sets WHERE tenant_id = $1 AND application = $2 AND shared <> $3)",
            new.tenant,
            new.application.as_str(),
            new.shared,
        )
        .fetch_one(&mut *tx)
        .await?;
        if other_kind == Some(true) {
            return Err(Error::Conflict(format!(
                "{} is already the name of {} config set",
                new.application,
                if new.shared { "an application's" } else { "a shared" }
            )));
        }
        let set = sqlx::query_as!(
            ConfigSet,
            "INSERT INTO config_sets (id, tenant_id, application, environment, cluster, shared)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT DO NOTHING
             RETURNING id, tenant_id, application, environment, created_at, cluster, shared, latest_release",
            id::new_id(),
            new.tenant,
            new.application.as_str(),
            environment,
            cluster,
            new.shared,
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            Error::Conflict(format!(
                "{} already has a config set at {}",
                new.application,
                match (environment, cluster) {
                    ("", _) => "the base level".to_string(),
                    (e, "") => format!("environment {e}"),
                    (e, c) => format!("environment {e}, cluster {c}"),
                }
            ))
        })?;
        let event = pb::ResourceChanged {
            id: set.id.to_string(),
            tenant_id: set.tenant_id.to_string(),
            name: set.address(),
        };
        outbox::record(&mut tx, CREATED, Some(set.tenant_id), &event).await?;
        layout_changed(&mut tx, set.tenant_id).await?;
        self.outbox.commit(tx).await?;
        Ok(set)
    }

    /// A config set the caller can see.
    ///
    /// # Errors
    /// Not found or not visible (the same answer).
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<ConfigSet> {
        let set = sqlx::query_as!(
            ConfigSet,
            "SELECT id, tenant_id, application, environment, created_at, cluster, shared, latest_release
             FROM config_sets WHERE id = $1",
            id
        )
        .fetch_optional(self.outbox.pool())
        .await?;
        set.filter(|s| caller.can_see(s.tenant_id))
            .ok_or_else(|| Error::not_found("config set", id))
    }

    /// A page of the config sets the caller can see, optionally of one tenant.
    ///
    /// # Errors
    /// The database fails.
    pub async fn list(
        &self,
        caller: &Caller,
        page: Page,
        tenant: Option<Uuid>,
        application: Option<&str>,
    ) -> Result<(Vec<ConfigSet>, String)> {
        let visible = caller.visible_tenants();
        let rows = sqlx::query_as!(
            ConfigSet,
            "SELECT id, tenant_id, application, environment, created_at, cluster, shared, latest_release
             FROM config_sets
             WHERE ($1::uuid IS NULL OR id > $1) AND ($2::uuid[] IS NULL OR tenant_id = ANY($2))
               AND ($3::uuid IS NULL OR tenant_id = $3) AND ($4::text IS NULL OR application = $4)
             ORDER BY id LIMIT $5",
            page.after,
            visible.as_deref(),
            tenant,
            application,
            page.fetch(),
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(page.finish(rows, |s| s.id))
    }

    /// Deletes a config set. Operators of the tenant.
    ///
    /// # Errors
    /// Not visible, not allowed, or already gone.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let set = self.get(caller, id).await?;
        caller.require(set.tenant_id, Role::Operator, "config set", id)?;
        let mut tx = self.outbox.pool().begin().await?;
        if sqlx::query!(
            "DELETE FROM config_sets WHERE id = $1 AND tenant_id = $2",
            id,
            set.tenant_id
        )
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 0
        {
            return Err(Error::not_found("config set", id));
        }
        let event = pb::ResourceChanged {
            id: id.to_string(),
            tenant_id: set.tenant_id.to_string(),
            name: set.address(),
        };
        outbox::record(&mut tx, DELETED, Some(set.tenant_id), &event).await?;
        // Its watchers end (on every instance) and no new one is let in by a
        // feed that still holds its tenant.
        let deleted = format!("{}{id}", crate::watch::DELETED_PREFIX);
        sqlx::query!("SELECT pg_notify($1, $2)", crate::release::NOTIFY_CHANNEL, deleted)
            .execute(&mut *tx)
            .await?;
        layout_changed(&mut tx, set.tenant_id).await?;
        self.outbox.commit(tx).await
    }
}

/// Tells every instance's layout watchers of `tenant`, at commit, that the
/// sets its applications' configurations are built from may have changed
/// ([`crate::watch::Watchers::spawn_layout`]).
///
/// # Errors
/// The database fails.
pub(crate) async fn layout_changed(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, tenant: Uuid) -> Result<()> {
    let payload = format!("{}{tenant}", crate::watch::LAYOUT_PREFIX);
    sqlx::query!("SELECT pg_notify($1, $2)", crate::release::NOTIFY_CHANNEL, payload)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_field_is_named() {
        let t = Uuid::now_v7().to_string();
        let parse = |t: &str, app: &str, env: &str, cluster: &str| NewConfigSet::parse(t, app, env, cluster, false);
        assert!(parse(&t, "shop", "qa", "").is_ok());
        assert!(parse(&t, "shop", "", "").is_ok(), "the base level");
        assert!(parse(&t, "shop", "qa", "eu-1").is_ok());
        assert_eq!(parse("", "shop", "qa", "").unwrap_err().field(), Some("tenant_id"));
        assert_eq!(parse(&t, "Shop", "qa", "").unwrap_err().field(), Some("application"));
        assert_eq!(
            parse(&t, "shop", "prod_eu", "").unwrap_err().field(),
            Some("environment")
        );
        assert_eq!(parse(&t, "shop", "", "eu-1").unwrap_err().field(), Some("cluster"));
        assert_eq!(parse(&t, "shop", "qa", "EU").unwrap_err().field(), Some("cluster"));
    }
}
