//! Pipelines: a tenant's build-and-deploy flow for one source repository.
//! Developers of the tenant create and delete them; its members read.

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::event::EventType;
use kernel::name::DnsLabel;
use kernel::outbox::{self, Outbox};
use kernel::page::Page;
use kernel::{Error, Result, id};
use paas_proto::v1 as pb;
use uuid::Uuid;

use crate::definition::Definition;

/// `devops.pipeline.created`
pub const CREATED: EventType = EventType::new("devops", "pipeline", "created");
/// `devops.pipeline.updated`
pub const UPDATED: EventType = EventType::new("devops", "pipeline", "updated");
/// `devops.pipeline.deleted`
pub const DELETED: EventType = EventType::new("devops", "pipeline", "deleted");

/// A pipeline as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Pipeline {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// DNS label, unique in the tenant.
    pub name: String,
    /// The Git repository it builds.
    pub repository: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The application it delivers, if any.
    pub application_id: Option<Uuid>,
    /// The stored YAML definition, if any.
    pub definition: Option<String>,
    /// Which definition wins: `platform` (the stored one) or `repository`
    /// (`.paas/pipeline.yaml` at the commit built).
    pub definition_source: String,
    /// Runs started so far: the build number of the next version.
    pub builds: i64,
}

/// Checks a Git remote: `http(s)://` or `ssh://` URLs, or scp-like
/// `user@host:path`. Passwords in the URL are refused: credentials belong in
/// a secret, not in a pipeline everyone in the tenant reads.
fn git_remote(raw: &str) -> Result<String> {
    let r = raw.trim();
    let bad = || {
        Error::invalid(
            "repository",
            "must be a Git URL (https://, ssh://, git:// or user@host:path)",
        )
    };
    if let Ok(url) = url::Url::parse(r) {
        if url.password().is_some() {
            return Err(Error::invalid("repository", "must not carry a password"));
        }
        return if matches!(url.scheme(), "http" | "https" | "ssh" | "git")
            && url.host().is_some()
            && url.path().len() > 1
        {
            Ok(r.to_string())
        } else {
            Err(bad())
        };
    }
    let (user_host, path) = r.split_once(':').ok_or_else(bad)?;
    let (user, host) = user_host.split_once('@').ok_or_else(bad)?;
    let ok = !user.is_empty()
        && !host.is_empty()
        && !path.is_empty()
        && !r.contains(char::is_whitespace)
        && !host.contains('/');
    if ok { Ok(r.to_string()) } else { Err(bad()) }
}

/// Where a pipeline's definition comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionChoice {
    /// The stored YAML, checked (kept as written, for the user to read back).
    pub stored: Option<String>,
    /// `platform` or `repository`.
    pub source: &'static str,
}

impl DefinitionChoice {
    /// Checks the stored YAML (if any) and the source word.
    ///
    /// # Errors
    /// The YAML is not a valid definition (the error names its path under
    /// `definition`), the source is another word, or a platform source has
    /// no stored definition.
    pub fn parse(definition: &str, source: &str) -> Result<Self> {
        let stored = if definition.trim().is_empty() {
            None
        } else {
            Definition::parse("definition", definition)?;
            Some(definition.to_string())
        };
        let source = match source {
            "" | "platform" => "platform",
            "repository" => "repository",
            _ => return Err(Error::invalid("definition_source", "must be platform or repository")),
        };
        if source == "platform" && stored.is_none() && !definition.is_empty() {
            return Err(Error::invalid("definition", "is empty"));
        }
        Ok(Self { stored, source })
    }
}

/// A validated new pipeline.
#[derive(Debug, Clone)]
pub struct NewPipeline {
    tenant: Uuid,
    name: DnsLabel,
    repository: String,
    application: Option<Uuid>,
    definition: DefinitionChoice,
}

impl NewPipeline {
    /// Validates raw input; errors name the field.
    ///
    /// # Errors
    /// A field is malformed.
    pub fn parse(tenant_id: &str, name: &str, repository: &str) -> Result<Self> {
        Ok(Self {
            tenant: id::parse_id("tenant_id", tenant_id)?,
            name: DnsLabel::parse("name", name.trim())?,
            repository: git_remote(repository)?,
            application: None,
            definition: DefinitionChoice {
                stored: None,
                source: "platform",
            },
        })
    }

    /// With the application it delivers (`""`: none).
    ///
    /// # Errors
    /// The id is malformed.
    pub fn with_application(mut self, application_id: &str) -> Result<Self> {
        self.application = id::parse_optional_id("application_id", application_id)?;
        Ok(self)
    }

    /// With its definition.
    pub fn with_definition(mut self, definition: DefinitionChoice) -> Self {
        self.definition = definition;
        self
    }
}

/// Pipelines in the devops schema.
#[derive(Clone)]
pub struct Pipelines {
    outbox: Outbox,
}

impl Pipelines {
    /// Pipelines stored in the outbox's schema.
    pub fn new(outbox: Outbox) -> Self {
        Self { outbox }
    }

    /// Creates a pipeline. Developers of the tenant.
    ///
    /// # Errors
    /// Not allowed, or the name is taken in the tenant.
    pub async fn create(&self, caller: &Caller, new: NewPipeline) -> Result<Pipeline> {
        caller.require(new.tenant, Role::Developer, "tenant", new.tenant)?;
        let mut tx = self.outbox.pool().begin().await?;
        let pipeline = sqlx::query_as!(
            Pipeline,
            "INSERT INTO pipelines (id, tenant_id, name, repository, application_id, definition, definition_source)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT DO NOTHING RETURNING id, tenant_id, name, repository, created_at,
                 application_id, definition, definition_source, builds",
            id::new_id(),
            new.tenant,
            new.name.as_str(),
            &new.repository,
            new.application,
            new.definition.stored,
            new.definition.source,
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::Conflict(format!("the tenant already has a pipeline named {}", new.name)))?;
        let event = pb::ResourceChanged {
            id: pipeline.id.to_string(),
            tenant_id: pipeline.tenant_id.to_string(),
            name: pipeline.name.clone(),
        };
        outbox::record(&mut tx, CREATED, Some(pipeline.tenant_id), &event).await?;
        self.outbox.commit(tx).await?;
        Ok(pipeline)
    }

    /// A pipeline the caller can see.
    ///
    /// # Errors
    /// Not found or not visible (the same answer).
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Pipeline> {
        let pipeline: Option<Pipeline> = sqlx::query_as!(
            Pipeline,
            "SELECT id, tenant_id, name, repository, created_at, application_id, definition, definition_source, builds
             FROM pipelines WHERE id = $1",
            id
        )
        .fetch_optional(self.outbox.pool())
        .await?;
        pipeline
            .filter(|p| caller.can_see(p.tenant_id))
            .ok_or_else(|| Error::not_found("pipeline", id))
    }

    /// A page of the pipelines the caller can see, optionally of one tenant.
    ///
    /// # Errors
    /// The database fails.
    pub async fn list(&self, caller: &Caller, page: Page, tenant: Option<Uuid>) -> Result<(Vec<Pipeline>, String)> {
        let visible = caller.visible_tenants();
        let rows = sqlx::query_as!(
            Pipeline,
            "SELECT id, tenant_id, name, repository, created_at, application_id, definition, definition_source, builds
             FROM pipelines WHERE ($1::uuid IS NULL OR id > $1) AND ($2::uuid[] IS NULL OR tenant_id = ANY($2))
               AND ($3::uuid IS NULL OR tenant_id = $3) ORDER BY id LIMIT $4",
            page.after,
            visible.as_deref(),
            tenant,
            page.fetch(),
        )
        .fetch_all(self.outbox.pool())
        .await?;
        Ok(page.finish(rows, |p| p.id))
    }

    /// Replaces a pipeline's definition. Developers of the tenant.
    ///
    /// # Errors
    /// Not visible or not allowed.
    pub async fn set_definition(&self, caller: &Caller, id: Uuid, choice: DefinitionChoice) -> Result<Pipeline> {
        let pipeline = self.get(caller, id).await?;
        caller.require(pipeline.tenant_id, Role::Developer, "pipeline", id)?;
        let mut tx = self.outbox.pool().begin().await?;
        let pipeline = sqlx::query_as!(
            Pipeline,
            "UPDATE pipelines SET definition = $3, definition_source = $4 WHERE id = $1 AND tenant_id = $2
             RETURNING id, tenant_id, name, repository, created_at, application_id, definition, definition_source, builds",
            id,
            pipeline.tenant_id,
            choice.stored,
            choice.source,
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::not_found("pipeline", id))?;
        let event = pb::ResourceChanged {
            id: id.to_string(),
            tenant_id: pipeline.tenant_id.to_string(),
            name: pipeline.name.clone(),
        };
        outbox::record(&mut tx, UPDATED, Some(pipeline.tenant_id), &event).await?;
        self.outbox.commit(tx).await?;
        Ok(pipeline)
    }

    /// Deletes a pipeline. Developers of the tenant.
    ///
    /// # Errors
    /// Not visible, not allowed, or already gone.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let pipeline = self.get(caller, id).await?;
        caller.require(pipeline.tenant_id, Role::Developer, "pipeline", id)?;
        let mut tx = self.outbox.pool().begin().await?;
        if sqlx::query!(
            "DELETE FROM pipelines WHERE id = $1 AND tenant_id = $2",
            id,
            pipeline.tenant_id
        )
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 0
        {
            return Err(Error::not_found("pipeline", id));
        }
        let event = pb::ResourceChanged {
            id: id.to_string(),
            tenant_id: pipeline.tenant_id.to_string(),
            name: pipeline.name,
        };
        outbox::record(&mut tx, DELETED, Some(pipeline.tenant_id), &event).await?;
        self.outbox.commit(tx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_remotes_of_every_usual_form_are_accepted() {
        for ok in [
            "https://git.example.com/acme/shop.git",
            "ssh://git@git.example.com/acme/shop.git",
            "git@git.example.com:acme/shop.git",
            "git://127.0.0.1:9418/shop.git",
        ] {
            assert_eq!(git_remote(ok).unwrap(), ok);
        }
        for bad in [
            "",
            "shop",
            "ftp://x/y",
            "https://host",
            "https://u:secret@host/a.git",
            "git@:path",
            "@host:path",
            "git@host/x:y z",
        ] {
            assert_eq!(git_remote(bad).unwrap_err().field(), Some("repository"), "{bad}");
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        let t = Uuid::now_v7().to_string();
        assert!(NewPipeline::parse(&t, "shop-ci", "git@h:a/b").is_ok());
        assert_eq!(
            NewPipeline::parse("x", "shop-ci", "git@h:a/b").unwrap_err().field(),
            Some("tenant_id")
        );
        assert_eq!(
            NewPipeline::parse(&t, "Shop CI", "git@h:a/b").unwrap_err().field(),
            Some("name")
        );
        assert_eq!(
            NewPipeline::parse(&t, "shop-ci", "h:a/b").unwrap_err().field(),
            Some("repository")
        );
    }
}
