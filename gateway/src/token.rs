//! API tokens for enterprise integrations and robots: created by a tenant
//! admin (or a platform admin), scoped to a tenant (and optionally one of its
//! projects) with a role no higher than their creator's, expiring, revocable
//! at once, with the last use recorded. Only a SHA-256 of the secret is
//! stored; the secret is shown once.
//!
//! A token looked up is kept in memory for [`CACHE_FOR`], so a busy robot's
//! requests do not each read the database. Revoking evicts it at once in the
//! gateway that revoked it and, through a PostgreSQL notification, in every
//! other gateway ([`Tokens::follow_revocations`]); a gateway that loses its
//! notification connection forgets every cached token, and an entry never
//! outlives [`CACHE_FOR`], in case a revocation was made behind its back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Membership, Role};
use kernel::db::Notice;
use kernel::{Error, Result, id};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Every token starts with this, so the gateway knows what it is looking at
/// (and secret scanners can find leaked ones).
pub const PREFIX: &str = "paas_";
/// The longest a token may live.
pub const MAX_DAYS: u32 = 365;
/// How long a token lives when its creator does not say.
pub const DEFAULT_DAYS: u32 = 90;
/// The longest a looked-up token is trusted without reading it again.
pub const CACHE_FOR: Duration = Duration::from_secs(30);
/// How often a token's last use is written at most.
pub const USE_RECORDED_EVERY: Duration = Duration::from_secs(60);
/// The notification channel revocations are announced on.
const REVOKED: &str = "gateway_token_revoked";
/// Beyond this many cached tokens the cache starts over.
const CACHE_LIMIT: usize = 100_000;

/// A token as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Its id.
    pub id: Uuid,
    /// What it is for.
    pub name: String,
    /// Its first characters.
    pub prefix: String,
    /// The tenant it acts in.
    pub tenant_id: Uuid,
    /// The project it is limited to, if any.
    pub project_id: Option<Uuid>,
    /// Its role.
    pub role: String,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last used.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A validated request for a token.
#[derive(Debug, Clone)]
pub struct NewToken {
    name: String,
    tenant: Uuid,
    project: Option<Uuid>,
    role: Role,
    days: u32,
}

impl NewToken {
    /// Validates raw input; errors name the field.
    ///
    /// # Errors
    /// A field is malformed.
    pub fn parse(name: &str, tenant: &str, project: &str, role: &str, days: Option<u32>) -> Result<Self> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 128 {
            return Err(Error::invalid("name", "must be 1-128 characters"));
        }
        let days = days.unwrap_or(DEFAULT_DAYS);
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(Error::invalid(
                "expires_in_days",
                format!("must be from 1 to {MAX_DAYS}"),
            ));
        }
        Ok(Self {
            name: name.to_string(),
            tenant: id::parse_id("tenant_id", tenant)?,
            project: id::parse_optional_id("project_id", project)?,
            role: Role::parse("role", role)?,
            days,
        })
    }
}

impl NewToken {
    /// The tenant the token acts in.
    pub fn tenant(&self) -> Uuid {
        self.tenant
    }

    /// The project it is limited to, if any.
    pub fn project(&self) -> Option<Uuid> {
        self.project
    }
}

fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A live token as last read.
struct Cached {
    id: Uuid,
    tenant: Uuid,
    caller: Caller,
    expires_at: DateTime<Utc>,
    read_at: Instant,
    use_recorded_at: Option<Instant>,
}

/// Tokens in the gateway's schema.
#[derive(Clone)]
pub struct Tokens {
    pool: PgPool,
    cache: Arc<Mutex<HashMap<Vec<u8>, Cached>>>,
}

impl Tokens {
    /// Tokens stored in `pool`'s schema.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            cache: Arc::default(),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Cached>> {
        // A panic while holding the lock leaves a map that is still valid.
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets the cached token `id`, or every cached token of tenant `id`
    /// (every token with `None`).
    fn forget(&self, id: Option<Uuid>) {
        match id {
            Some(id) => self.cache().retain(|_, c| c.id != id && c.tenant != id),
            None => self.cache().clear(),
        }
    }

    /// Evicts revoked tokens as other gateways announce them, until `stop`.
    ///
    /// # Errors
    /// Never: a lost connection is reopened (forgetting every cached token,
    /// since revocations may have been missed meanwhile).
    pub async fn follow_revocations(self, stop: CancellationToken) -> Result<()> {
        // The payload is a token's id, or a deleted tenant's.
        kernel::db::follow(&self.pool, REVOKED, &stop, |notice| match notice {
            Notice::Payload(id) => {
                self.forget(Some(Uuid::parse_str(&id).unwrap_or_default()).filter(|id| !id.is_nil()));
            }
            Notice::Missed => self.forget(None),
        })
        .await
    }

    /// Makes a token; returns it with its secret, which is never shown again.
    ///
    /// # Errors
    /// The caller is not an admin of the tenant, or asks for a role above its own.
    pub async fn create(&self, caller: &Caller, new: NewToken) -> Result<(Token, String)> {
        caller.require(new.tenant, Role::TenantAdmin, "tenant", new.tenant)?;
        if !caller.platform_admin && caller.role_in(new.tenant).is_none_or(|own| new.role > own) {
            return Err(Error::PermissionDenied(
                "a token cannot hold a role above its creator's".into(),
            ));
        }
        let bytes: [u8; 32] = rand::random();
        let secret = format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        let token = sqlx::query_as!(
            Token,
            "INSERT INTO api_tokens (id, name, hash, prefix, tenant_id, project_id, role, created_by, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(days => $9))
             RETURNING id, name, prefix, tenant_id, project_id, role, created_by, created_at, expires_at, revoked_at,
                       last_used_at",
            id::new_id(),
            new.name,
            digest(&secret),
            &secret[..PREFIX.len() + 6],
            new.tenant,
            new.project,
            new.role.as_str(),
            caller.subject,
            new.days as i32,
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((token, secret))
    }

    /// The tokens of the tenants the caller administers (all for platform admins).
    ///
    /// # Errors
    /// The database fails.
    pub async fn list(&self, caller: &Caller, tenant: Option<Uuid>) -> Result<Vec<Token>> {
        let administered: Option<Vec<Uuid>> = (!caller.platform_admin).then(|| {
            caller
                .memberships
                .iter()
                .filter(|m| m.role == Role::TenantAdmin)
                .map(|m| m.tenant)
                .collect()
        });
        Ok(sqlx::query_as!(
            Token,
            "SELECT id, name, prefix, tenant_id, project_id, role, created_by, created_at, expires_at, revoked_at, last_used_at
             FROM api_tokens
             WHERE ($1::uuid[] IS NULL OR tenant_id = ANY($1)) AND ($2::uuid IS NULL OR tenant_id = $2)
             ORDER BY id",
            administered.as_deref(),
            tenant,
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes a token at once. Admins of its tenant.
    ///
    /// # Errors
    /// Not found for this caller.
    pub async fn revoke(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let tenant = sqlx::query_scalar!("SELECT tenant_id FROM api_tokens WHERE id = $1", id)
            .fetch_optional(&self.pool)
            .await?;
        let tenant = tenant
            .filter(|t| caller.can_see(*t))
            .ok_or_else(|| Error::not_found("token", id))?;
        caller.require(tenant, Role::TenantAdmin, "token", id)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1",
            id
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!("SELECT pg_notify('gateway_token_revoked', $1)", id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.forget(Some(id));
        Ok(())
    }

    /// Revokes every live token of `tenant` at once (the tenant is being
    /// deleted); returns how many.
    ///
    /// # Errors
    /// The database fails.
    pub async fn revoke_tenant(&self, tenant: Uuid) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let revoked = sqlx::query!(
            "UPDATE api_tokens SET revoked_at = now() WHERE tenant_id = $1 AND revoked_at IS NULL",
            tenant
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query!("SELECT pg_notify('gateway_token_revoked', $1)", tenant.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.forget(Some(tenant));
        Ok(revoked)
    }

    /// The caller a presented secret stands for, if it is a live token.
    /// Records the use (at most once a minute per token).
    ///
    /// # Errors
    /// The database fails.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Caller>> {
        if !secret.starts_with(PREFIX) {
            return Ok(None);
        }
        let key = digest(secret);
        let now = Utc::now();
        let mut record_use = None;
        if let Some(hit) = self
            .cache()
            .get_mut(&key)
            .filter(|c| c.read_at.elapsed() < CACHE_FOR && c.expires_at > now)
        {
            if hit.use_recorded_at.is_none_or(|at| at.elapsed() >= USE_RECORDED_EVERY) {
                hit.use_recorded_at = Some(Instant::now());
                record_use = Some(hit.id);
            }
            let caller = hit.caller.clone();
            if let Some(id) = record_use {
                self.record_use(id);
            }
            return Ok(Some(caller));
        }
        let row = sqlx::query!(
            r#"SELECT id, tenant_id, project_id, role, expires_at,
                      last_used_at IS NULL OR last_used_at < now() - interval '1 minute' AS "stale_use!"
               FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL AND expires_at > now()"#,
            key,
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if row.stale_use {
            self.record_use(row.id);
        }
        // A project-scoped token sees its tenant as a viewer only: its role
        // would otherwise reach every project (services do not yet check
        // project roles).
        let role = if row.project_id.is_some() {
            Role::Viewer
        } else {
            Role::parse("role", &row.role).unwrap_or(Role::Viewer)
        };
        let caller = Caller::user(
            format!("token:{}", row.id),
            vec![Membership {
                tenant: row.tenant_id,
                role,
            }],
        );
        let mut cache = self.cache();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(
            key,
            Cached {
                id: row.id,
                tenant: row.tenant_id,
                caller: caller.clone(),
                expires_at: row.expires_at,
                read_at: Instant::now(),
                use_recorded_at: row.stale_use.then(Instant::now),
            },
        );
        Ok(Some(caller))
    }

    /// Records a use off the request's path: it is a write, and busy robots
    /// must not queue on it.
    fn record_use(&self, id: Uuid) {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let _ = sqlx::query!("UPDATE api_tokens SET last_used_at = now() WHERE id = $1", id)
                .execute(&pool)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_request_names_each_bad_field() {
        let t = Uuid::now_v7().to_string();
        assert!(NewToken::parse("ci", &t, "", "operator", None).is_ok());
        assert_eq!(
            NewToken::parse(" ", &t, "", "operator", None).unwrap_err().field(),
            Some("name")
        );
        assert_eq!(
            NewToken::parse("ci", "x", "", "operator", None).unwrap_err().field(),
            Some("tenant_id")
        );
        assert_eq!(
            NewToken::parse("ci", &t, "", "root", None).unwrap_err().field(),
            Some("role")
        );
        assert_eq!(
            NewToken::parse("ci", &t, "", "viewer", Some(0)).unwrap_err().field(),
            Some("expires_in_days")
        );
        assert_eq!(
            NewToken::parse("ci", &t, "", "viewer", Some(366)).unwrap_err().field(),
            Some("expires_in_days")
        );
    }
}
