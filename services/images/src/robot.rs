//! Robot accounts: credentials of one tenant's project for CI and clusters,
//! named `robot$<tenant>+<project>+<name>`, with the actions they may take
//! there. The secret is shown once at creation; only its SHA-256 is kept
//! (it is 256 random bits, so a slow hash adds nothing).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::name::DnsLabel;
use kernel::page::Page;
use kernel::{Error, Result, id};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::access::Action;

/// The prefix of every robot's name, so token requests can tell robots from API tokens.
pub const PREFIX: &str = "robot$";

/// A robot as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Robot {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Its project.
    pub project_id: Uuid,
    /// `robot$<tenant>+<project>+<name>`.
    pub name: String,
    /// `pull`, `push`.
    pub scopes: Vec<String>,
    /// Made.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Robot {
    /// Its actions.
    pub fn actions(&self) -> BTreeSet<Action> {
        self.scopes
            .iter()
            .filter_map(|s| match s.as_str() {
                "pull" => Some(Action::Pull),
                "push" => Some(Action::Push),
                _ => None,
            })
            .collect()
    }
}

/// A validated new robot.
#[derive(Debug, Clone)]
pub struct NewRobot {
    /// Its tenant.
    pub tenant: Uuid,
    /// Its project.
    pub project: Uuid,
    name: DnsLabel,
    scopes: Vec<String>,
    days: u32,
}

/// The longest a robot may be made to last, in days (0 is "never expires").
pub const MAX_DAYS: u32 = 3650;

impl NewRobot {
    /// Validates raw input; errors name the field.
    ///
    /// # Errors
    /// A malformed field.
    pub fn parse(tenant: &str, project: &str, name: &str, scopes: &[String], days: u32) -> Result<Self> {
        let tenant = kernel::id::parse_id("tenant_id", tenant)?;
        let project = kernel::id::parse_id("project_id", project)?;
        let name = DnsLabel::parse("name", name.trim())?;
        if scopes.is_empty() {
            return Err(Error::invalid("scopes", "name at least one of pull, push"));
        }
        let mut set = BTreeSet::new();
        for s in scopes {
            match s.as_str() {
                "pull" | "push" => {
                    set.insert(s.clone());
                }
                other => return Err(Error::invalid("scopes", format!("{other} is not pull or push"))),
            }
        }
        if days > MAX_DAYS {
            return Err(Error::invalid("days", format!("at most {MAX_DAYS}")));
        }
        Ok(Self {
            tenant,
            project,
            name,
            scopes: set.into_iter().collect(),
            days,
        })
    }
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Robots in the images schema.
#[derive(Clone)]
pub struct Robots {
    pool: PgPool,
}

impl Robots {
    /// Robots stored in `pool`'s schema.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Makes a robot named after `tenant_name`/`project_name`; returns it and
    /// its secret, which is never shown again. Tenant administrators only.
    ///
    /// # Errors
    /// Not allowed, or the name is taken.
    pub async fn create(
        &self,
        caller: &Caller,
        new: NewRobot,
        tenant_name: &str,
        project_name: &str,
    ) -> Result<(Robot, String)> {
        caller.require(new.tenant, Role::TenantAdmin, "tenant", new.tenant)?;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("{PREFIX}{tenant_name}+{project_name}+{}", new.name);
        let expires_at = (new.days > 0).then(|| Utc::now() + chrono::Duration::days(i64::from(new.days)));
        let robot = sqlx::query_as!(
            Robot,
            "INSERT INTO robots (id, tenant_id, project_id, name, secret_hash, scopes, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING
             RETURNING id, tenant_id, project_id, name, scopes, created_at, expires_at",
            id::new_id(),
            new.tenant,
            new.project,
            name,
            hash(&secret),
            &new.scopes,
            expires_at,
        )
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::Conflict(format!("a robot named {name} already exists")))?;
        Ok((robot, secret))
    }

    /// A page of a tenant's robots. Tenant administrators only.
    ///
    /// # Errors
    /// Not allowed.
    pub async fn list(&self, caller: &Caller, tenant: Uuid, page: Page) -> Result<(Vec<Robot>, String)> {
        caller.require(tenant, Role::TenantAdmin, "tenant", tenant)?;
        let rows = sqlx::query_as!(
            Robot,
            "SELECT id, tenant_id, project_id, name, scopes, created_at, expires_at FROM robots
             WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
            tenant,
            page.after,
            page.fetch(),
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(page.finish(rows, |r| r.id))
    }

    /// Removes a robot; its tokens already issued lapse within their short life.
    ///
    /// # Errors
    /// No such robot the caller administers.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let tenant = sqlx::query_scalar!("SELECT tenant_id FROM robots WHERE id = $1", id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::not_found("robot", id))?;
        caller.require(tenant, Role::TenantAdmin, "robot", id)?;
        sqlx::query!("DELETE FROM robots WHERE id = $1 AND tenant_id = $2", id, tenant)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The robot whose name and secret these are, if it exists and is current.
    ///
    /// # Errors
    /// The database fails.
    pub async fn authenticate(&self, name: &str, secret: &str) -> Result<Option<Robot>> {
        let row = sqlx::query!(
            "SELECT id, tenant_id, project_id, name, scopes, created_at, expires_at, secret_hash
             FROM robots WHERE name = $1 AND (expires_at IS NULL OR expires_at > now())",
            name
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .filter(|r| bool::from(r.secret_hash.as_slice().ct_eq(hash(secret).as_slice())))
            .map(|r| Robot {
                id: r.id,
                tenant_id: r.tenant_id,
                project_id: r.project_id,
                name: r.name,
                scopes: r.scopes,
                created_at: r.created_at,
                expires_at: r.expires_at,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_field_is_named() {
        let t = Uuid::now_v7().to_string();
        let ok = NewRobot::parse(&t, &t, "ci", &["push".into(), "pull".into()], 30).unwrap();
        assert_eq!(ok.scopes, vec!["pull", "push"]);
        let field = |r: Result<NewRobot>| r.unwrap_err().field().map(str::to_string);
        assert_eq!(
            field(NewRobot::parse("x", &t, "ci", &["pull".into()], 0)).as_deref(),
            Some("tenant_id")
        );
        assert_eq!(
            field(NewRobot::parse(&t, &t, "CI!", &["pull".into()], 0)).as_deref(),
            Some("name")
        );
        assert_eq!(field(NewRobot::parse(&t, &t, "ci", &[], 0)).as_deref(), Some("scopes"));
        assert_eq!(
            field(NewRobot::parse(&t, &t, "ci", &["delete".into()], 0)).as_deref(),
            Some("scopes")
        );
        assert_eq!(
            field(NewRobot::parse(&t, &t, "ci", &["pull".into()], 99_999)).as_deref(),
            Some("days")
        );
    }
}
