//! Registries: the OCI distribution registries the platform knows. They are
//! platform resources: every caller may read them, platform administrators
//! change them. At most one is the master others replicate from.

use chrono::{DateTime, Utc};
use kernel::caller::Caller;
use kernel::event::EventType;
use kernel::name::DnsLabel;
use kernel::outbox::{self, Outbox};
use kernel::page::Page;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use uuid::Uuid;

use crate::seal::Sealer;

/// `images.registry.created`
pub const CREATED: EventType = EventType::new("images", "registry", "created");
/// `images.registry.deleted`
pub const DELETED: EventType = EventType::new("images", "registry", "deleted");

/// A registry as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Registry {
    /// Its id.
    pub id: Uuid,
    /// DNS label, unique.
    pub name: String,
    /// Its base URL.
    pub url: String,
    /// Whether others replicate from it.
    pub master: bool,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// The platform's login there (its password is sealed, never read back out).
    pub username: String,
}

/// A validated new registry.
#[derive(Debug, Clone)]
pub struct NewRegistry {
    name: DnsLabel,
    url: url::Url,
    master: bool,
    username: String,
    password: String,
}

impl NewRegistry {
    /// Validates raw input; errors name the field.
    ///
    /// # Errors
    /// A field is malformed.
    pub fn parse(name: &str, url: &str, master: bool) -> Result<Self> {
        Self::parse_with_login(name, url, master, "", "")
    }

    /// [`NewRegistry::parse`] with the platform's login there.
    ///
    /// # Errors
    /// A field is malformed, or a password comes without a user.
    pub fn parse_with_login(name: &str, url: &str, master: bool, username: &str, password: &str) -> Result<Self> {
        if username.chars().any(char::is_control) || username.len() > 255 {
            return Err(Error::invalid(
                "username",
                "at most 255 characters, no control characters",
            ));
        }
        if !password.is_empty() && username.is_empty() {
            return Err(Error::invalid("username", "a password needs its user"));
        }
        if password.len() > 4096 {
            return Err(Error::invalid("password", "at most 4096 bytes"));
        }
        let url = url::Url::parse(url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| Error::invalid("url", "must be an http(s) URL of the registry"))?;
        if url.password().is_some() {
            return Err(Error::invalid("url", "must not carry a password"));
        }
        Ok(Self {
            name: DnsLabel::parse("name", name.trim())?,
            url,
            master,
            username: username.to_string(),
            password: password.to_string(),
        })
    }
}

/// Registries in the images schema.
#[derive(Clone)]
pub struct Registries {
    outbox: Outbox,
    sealer: Sealer,
}

impl Registries {
    /// Registries stored in the outbox's schema.
    pub fn new(outbox: Outbox, sealer: Sealer) -> Self {
        Self { outbox, sealer }
    }

    /// The pool of the images schema.
    pub fn pool(&self) -> &sqlx::PgPool {
        self.outbox.pool()
    }

    /// The master registry's URL, if one is registered.
    ///
    /// # Errors
    /// The database fails.
    pub async fn master_url(&self) -> Result<Option<String>> {
        Ok(sqlx::query_scalar!("SELECT url FROM registries WHERE master")
            .fetch_optional(self.outbox.pool())
            .await?)
    }

    /// Registers a registry. Platform administrators only.
    ///
    /// # Errors
    /// Not allowed, the name is taken, or a master exists and this one claims to be master.
    pub async fn create(&self, caller: &Caller, new: NewRegistry) -> Result<Registry> {
        caller.require_platform_admin()?;
        let mut tx = self.outbox.pool().begin().await?;
        // Both unique indexes (name, one master) answer here: a concurrent
        // master insert cannot slip between a check and the insert.
        let sealed = if new.password.is_empty() {
            None
        } else {
            Some(self.sealer.seal(new.password.as_bytes())?)
        };
        let inserted = sqlx::query_as!(
            Registry,
            "INSERT INTO registries (id, name, url, master, username, password_sealed)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT DO NOTHING RETURNING id, name, url, master, created_at, username",
            id::new_id(),
            new.name.as_str(),
            new.url.as_str().trim_end_matches('/'),
            new.master,
            new.username,
            sealed,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(registry) = inserted else {
            return Err(self.conflict(&new).await?);
        };
        let event = pb::ResourceChanged {
            id: registry.id.to_string(),
            tenant_id: String::new(),
            name: registry.name.clone(),
        };
        outbox::record(&mut tx, CREATED, None, &event).await?;
        self.outbox.commit(tx).await?;
        Ok(registry)
    }

    /// Why `new` conflicts: its name is taken, or it would be a second master.
    async fn conflict(&self, new: &NewRegistry) -> Result<Error> {
        let master = sqlx::query_scalar!("SELECT name FROM registries WHERE master")
            .fetch_optional(self.outbox.pool())
            .await?;
        Ok(match master {
            Some(existing) if new.master && existing != new.name.as_str() => Error::Conflict(format!(
                "{existing} is already the master registry; there can be only one"
            )),
            _ => Error::Conflict(format!("a registry named {} already exists", new.name)),
        })
    }

    /// One registry.
    ///
    /// # Errors
    /// No such registry.
    pub async fn get(&self, id: Uuid) -> Result<Registry> {
        let registry: Option<Registry> = sqlx::query_as!(
            Registry,
            "SELECT id, name, url, master, created_at, username FROM registries WHERE id = $1",
            id
        )
        .fetch_optional(self.outbox.pool())
        .await?;
        registry.ok_or_else(|| Error::not_found("registry", id))
    }

    /// A page of registries.
    ///
    /// # Errors
    /// The database fails.
    pub async fn list(&self, page: Page) -> Result<(Vec<Registry>, String)> {
        let rows = sqlx::query_as!(
            Registry,
            "SELECT id, name, url, master, created_at, username FROM registries
             WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2",
            page.after,
            page.fetch(),
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(page.finish(rows, |r| r.id))
    }

    /// Removes a registry. Platform administrators only.
    ///
    /// # Errors
    /// Not allowed, or no such registry.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<()> {
        caller.require_platform_admin()?;
        let mut tx = self.outbox.pool().begin().await?;
        let name = sqlx::query_scalar!("DELETE FROM registries WHERE id = $1 RETURNING name", id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::not_found("registry", id))?;
        outbox::record(
            &mut tx,
            DELETED,
            None,
            &pb::ResourceChanged {
                id: id.to_string(),
                tenant_id: String::new(),
                name,
            },
        )
        .await?;
        self.outbox.commit(tx).await
    }
}

/// Where a sub-registry sits: the data centre or the cluster whose members
/// pull from it (both empty: the master, or a registry outside the platform's
/// placement). Replication sends a tenant's images only to the registries of
/// its partitions' data centres and clusters.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Placement {
    /// Data centre name, or empty.
    pub data_centre: String,
    /// Cluster name, or empty.
    pub cluster: String,
}

impl Placement {
    /// Validates raw input; errors name the field.
    ///
    /// # Errors
    /// A name is not a DNS label.
    pub fn parse(data_centre: &str, cluster: &str) -> Result<Self> {
        let label = |field: &str, raw: &str| -> Result<String> {
            let raw = raw.trim();
            if raw.is_empty() {
                return Ok(String::new());
            }
            Ok(DnsLabel::parse(field, raw)?.as_str().to_string())
        };
        Ok(Self {
            data_centre: label("data_centre", data_centre)?,
            cluster: label("cluster", cluster)?,
        })
    }

    /// Whether it is placed at all.
    pub fn is_placed(&self) -> bool {
        !self.data_centre.is_empty() || !self.cluster.is_empty()
    }
}

impl Registries {
    /// Places registry `id` in a data centre or beside a cluster. Platform
    /// administrators only.
    ///
    /// # Errors
    /// Not allowed, no such registry, or it is the master (which replicates
    /// to others and belongs to none).
    pub async fn place(&self, caller: &Caller, id: Uuid, placement: &Placement) -> Result<()> {
        caller.require_platform_admin()?;
        let master: Option<bool> = sqlx::query_scalar("SELECT master FROM registries WHERE id = $1")
            .bind(id)
            .fetch_optional(self.outbox.pool())
            .await?;
        match master {
            None => return Err(Error::not_found("registry", id)),
            Some(true) if placement.is_placed() => {
                return Err(Error::invalid(
                    "data_centre",
                    "the master registry belongs to no data centre",
                ));
            }
            Some(_) => {}
        }
        sqlx::query("UPDATE registries SET data_centre = $2, cluster = $3 WHERE id = $1")
            .bind(id)
            .bind(&placement.data_centre)
            .bind(&placement.cluster)
            .execute(self.outbox.pool())
            .await?;
        Ok(())
    }

    /// The placements of `ids` (unknown ids are left out).
    ///
    /// # Errors
    /// The database fails.
    pub async fn placements(&self, ids: &[Uuid]) -> Result<std::collections::HashMap<Uuid, Placement>> {
        let rows: Vec<(Uuid, String, String)> =
            sqlx::query_as("SELECT id, data_centre, cluster FROM registries WHERE id = ANY($1)")
                .bind(ids)
                .fetch_all(self.outbox.pool())
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, data_centre, cluster)| (id, Placement { data_centre, cluster }))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_field_is_named() {
        assert!(NewRegistry::parse("harbor", "https://harbor.example.com", true).is_ok());
        assert_eq!(
            NewRegistry::parse("Harbor", "https://h", false).unwrap_err().field(),
            Some("name")
        );
        assert_eq!(
            NewRegistry::parse("harbor", "harbor.example.com", false)
                .unwrap_err()
                .field(),
            Some("url")
        );
        assert_eq!(
            NewRegistry::parse("harbor", "ftp://h", false).unwrap_err().field(),
            Some("url")
        );
        assert_eq!(
            NewRegistry::parse("harbor", "https://admin:secret@h", false)
                .unwrap_err()
                .field(),
            Some("url")
        );
        assert_eq!(
            NewRegistry::parse("", "https://h", false).unwrap_err().field(),
            Some("name")
        );
        assert_eq!(
            NewRegistry::parse_with_login("h", "https://h", false, "", "pw")
                .unwrap_err()
                .field(),
            Some("username")
        );
    }
}
