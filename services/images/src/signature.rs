//! Image signatures: tenants' signing keys, signing a tag's digest in
//! cosign's format ([`crate::cosign`]), checking the signatures a repository
//! holds, and each tenant's policy of requiring them per environment.
//!
//! A tenant's keys are either made by the platform (ECDSA P-256, the private
//! half sealed at rest like the token-signing key; only the platform signs
//! with it) or registered by the tenant as a public key (its CI signs with
//! `cosign sign --key`). Every key's public half is shown as PEM, so
//! `cosign verify --key` checks what the platform signed.
//!
//! A check reads `sha256-<hex>.sig` from the master registry and keeps, per
//! repository and digest, `unsigned` (no signature image), `signed` (the key
//! ids of the repository owner's keys with a valid signature) or `invalid`
//! (signatures, none valid with the owner's keys: tampered, made by another
//! key, or naming another digest). Checks run when a signature is pushed (the
//! registry's notification), when the platform signs, and on demand.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::name::DnsLabel;
use kernel::{Error, Result, id};
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::Grant;
use crate::catalog::Tag;
use crate::cosign;
use crate::registry::Registries;
use crate::seal::Sealer;
use crate::signing::Signer;
use crate::transfer::{Endpoint, Manifest, Transfer};

/// Payloads are a few hundred bytes; anything far larger is not one.
const PAYLOAD_LIMIT: usize = 64 * 1024;

/// A tenant's signing key (never its private half).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SigningKey {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// DNS label, unique in the tenant.
    pub name: String,
    /// PEM `PUBLIC KEY`, for `cosign verify --key`.
    pub public_key_pem: String,
    /// Made and held by the platform (it can sign); otherwise registered by the tenant.
    pub platform_held: bool,
    /// Made or registered.
    pub created_at: DateTime<Utc>,
}

/// What a check of one image's signatures found.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Check {
    /// The repository.
    pub repository: String,
    /// The image's digest.
    pub digest: String,
    /// The repository's tenant.
    pub tenant_id: Uuid,
    /// `unsigned`, `signed` or `invalid`.
    pub status: String,
    /// With `signed`: the keys whose signatures are valid.
    pub key_ids: Vec<Uuid>,
    /// With `invalid`: why each signature failed.
    pub message: String,
    /// When.
    pub checked_at: DateTime<Utc>,
}

impl Check {
    /// The status of an image never checked.
    pub fn unchecked(repository: &str, digest: &str, tenant: Uuid) -> Self {
        Self {
            repository: repository.to_string(),
            digest: digest.to_string(),
            tenant_id: tenant,
            status: "unsigned".to_string(),
            key_ids: Vec::new(),
            message: String::new(),
            checked_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }
}

/// Whether `tenant` requires signed images in `environment`.
///
/// # Errors
/// The database fails.
pub async fn required(pool: &PgPool, tenant: Uuid, environment: &str) -> Result<bool> {
    Ok(sqlx::query_scalar::<_, bool>(
        "SELECT required FROM signature_policies WHERE tenant_id = $1 AND environment = $2",
    )
    .bind(tenant)
    .bind(environment)
    .fetch_optional(pool)
    .await?
    .unwrap_or(false))
}

/// The last check of `repository` at `digest`, if any.
///
/// # Errors
/// The database fails.
pub async fn of_digest(pool: &PgPool, repository: &str, digest: &str) -> Result<Option<Check>> {
    Ok(sqlx::query_as::<_, Check>(
        "SELECT repository, digest, tenant_id, status, key_ids, message, checked_at
         FROM signature_checks WHERE repository = $1 AND digest = $2",
    )
    .bind(repository)
    .bind(digest)
    .fetch_optional(pool)
    .await?)
}

/// The signature status of each of `tags` (unchecked images are unsigned).
///
/// # Errors
/// The database fails.
pub async fn of_tags(pool: &PgPool, tags: &[Tag]) -> Result<HashMap<(String, String), Check>> {
    let repositories: Vec<String> = tags.iter().map(|t| t.repository.clone()).collect();
    let digests: Vec<String> = tags.iter().map(|t| t.meta.digest.clone()).collect();
    let checks = sqlx::query_as::<_, Check>(
        "SELECT c.repository, c.digest, c.tenant_id, c.status, c.key_ids, c.message, c.checked_at
         FROM signature_checks c JOIN unnest($1::text[], $2::text[]) AS t (repository, digest)
           ON c.repository = t.repository AND c.digest = t.digest",
    )
    .bind(&repositories)
    .bind(&digests)
    .fetch_all(pool)
    .await?;
    let mut found: HashMap<(String, String), Check> = checks
        .into_iter()
        .map(|c| ((c.repository.clone(), c.digest.clone()), c))
        .collect();
    for t in tags {
        found
            .entry((t.repository.clone(), t.meta.digest.clone()))
            .or_insert_with(|| Check::unchecked(&t.repository, &t.meta.digest, t.tenant_id));
    }
    Ok(found)
}

/// A key as stored, with its private half when the platform holds it.
#[derive(sqlx::FromRow)]
struct StoredKey {
    id: Uuid,
    public_key_pem: String,
    key_sealed: Option<Vec<u8>>,
}

/// Signing keys, signatures and signature policies in the images schema.
#[derive(Clone)]
pub struct Signatures {
    pool: PgPool,
    sealer: Sealer,
    signer: Arc<Signer>,
    registries: Registries,
    transfer: Transfer,
}

impl Signatures {
    /// Signatures stored in `registries`' schema, keys sealed with `sealer`,
    /// registry tokens signed by `signer`.
    pub fn new(registries: Registries, sealer: Sealer, signer: Arc<Signer>, http: reqwest::Client) -> Self {
        Self {
            pool: registries.pool().clone(),
            sealer,
            signer,
            registries,
            transfer: Transfer::new(http),
        }
    }

    /// Makes a key for `tenant` (its private half sealed) or, with
    /// `public_key_pem`, registers the tenant's own. Tenant administrators.
    ///
    /// # Errors
    /// Not allowed, a malformed name or key, or the name taken.
    pub async fn create_key(
        &self,
        caller: &Caller,
        tenant: Uuid,
        name: &str,
        public_key_pem: Option<&str>,
    ) -> Result<SigningKey> {
        caller.require(tenant, Role::TenantAdmin, "tenant", tenant)?;
        let name = DnsLabel::parse("name", name)?;
        let (public_pem, sealed) = match public_key_pem {
            Some(pem) => {
                // Stored in its canonical form: what `cosign public-key` prints.
                let point = cosign::parse_public_key_pem("public_key_pem", pem)?;
                (cosign::public_key_pem(&point), None)
            }
            None => {
                let made = cosign::generate()?;
                (made.public_pem, Some(self.sealer.seal(&made.pkcs8)?))
            }
        };
        sqlx::query_as::<_, SigningKey>(
            "INSERT INTO tenant_signing_keys (id, tenant_id, name, public_key_pem, key_sealed)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, name) DO NOTHING
             RETURNING id, tenant_id, name, public_key_pem, key_sealed IS NOT NULL AS platform_held, created_at",
        )
        .bind(id::new_id())
        .bind(tenant)
        .bind(name.as_str())
        .bind(&public_pem)
        .bind(sealed)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::Conflict(format!("the tenant already has a signing key named {}", name.as_str())))
    }

    /// `tenant`'s keys, for a caller who may see the tenant.
    ///
    /// # Errors
    /// Not allowed, or the database fails.
    pub async fn keys(&self, caller: &Caller, tenant: Uuid) -> Result<Vec<SigningKey>> {
        caller.require(tenant, Role::Viewer, "tenant", tenant)?;
        Ok(sqlx::query_as::<_, SigningKey>(
            "SELECT id, tenant_id, name, public_key_pem, key_sealed IS NOT NULL AS platform_held, created_at
             FROM tenant_signing_keys WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes one of `tenant`'s keys: signatures it made no longer count.
    /// Tenant administrators.
    ///
    /// # Errors
    /// Not allowed, or no such key of the tenant.
    pub async fn delete_key(&self, caller: &Caller, tenant: Uuid, key: Uuid) -> Result<()> {
        caller.require(tenant, Role::TenantAdmin, "tenant", tenant)?;
        let gone = sqlx::query("DELETE FROM tenant_signing_keys WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(key)
            .execute(&self.pool)
            .await?;
        if gone.rows_affected() == 0 {
            return Err(Error::not_found("signing key", key));
        }
        // Its signatures no longer count: the checks naming it are stale.
        sqlx::query(
            "UPDATE signature_checks SET key_ids = array_remove(key_ids, $2),
                 status = CASE WHEN cardinality(array_remove(key_ids, $2)) = 0 THEN 'invalid' ELSE status END,
                 message = CASE WHEN cardinality(array_remove(key_ids, $2)) = 0
                                THEN 'the key that signed it was deleted' ELSE message END
             WHERE tenant_id = $1 AND $2 = ANY (key_ids)",
        )
        .bind(tenant)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Signs `tag`'s digest with the platform-held key `key` of the tag's
    /// tenant, writing cosign's signature image next to it, and checks it.
    /// Operators and tenant administrators.
    ///
    /// # Errors
    /// Not allowed, the key is not the tenant's or not held by the platform,
    /// or the registry fails.
    pub async fn sign(&self, caller: &Caller, tag: &Tag, key: Uuid) -> Result<Check> {
        caller.require(tag.tenant_id, Role::Operator, "tag", &tag.name)?;
        let stored = sqlx::query_as::<_, StoredKey>(
            "SELECT id, public_key_pem, key_sealed FROM tenant_signing_keys WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tag.tenant_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::invalid("key_id", format!("the tenant has no signing key {key}")))?;
        let sealed = stored.key_sealed.ok_or_else(|| {
            Error::invalid(
                "key_id",
                "the key was registered by the tenant; the platform holds only its public half and cannot sign with it",
            )
        })?;
        let pkcs8 = self.sealer.open(&sealed)?;
        let (master, at) = self.master(&tag.repository, &["pull", "push"]).await?;
        let signature_tag = cosign::signature_tag(&tag.meta.digest)?;
        let payload = cosign::payload(&format!("{}/{}", host_of(&master), tag.repository), &tag.meta.digest);
        let signature = cosign::sign(&pkcs8, &payload)?;
        // Signatures already there stay: one image may be signed by several keys.
        let mut layers = match self.transfer.manifest_at(&at, &tag.repository, &signature_tag).await? {
            Some(m) => serde_json::from_slice(&m.body).map_or_else(|_| Vec::new(), |doc| cosign::layers(&doc)),
            None => Vec::new(),
        };
        let size = i64::try_from(payload.len()).unwrap_or(i64::MAX);
        let digest = self.transfer.put_small_blob(&at, &tag.repository, payload).await?;
        layers.push(cosign::Layer {
            digest,
            size,
            signature,
        });
        let (config, manifest) = cosign::manifest(&layers);
        self.transfer.put_small_blob(&at, &tag.repository, config).await?;
        let manifest = Manifest {
            digest: crate::transfer::sha256_digest(&manifest),
            media_type: cosign::MANIFEST_MEDIA_TYPE.to_string(),
            body: manifest.into(),
        };
        self.transfer
            .put_manifest(&at, &tag.repository, &signature_tag, &manifest)
            .await?;
        tracing::info!(repository = %tag.repository, digest = %tag.meta.digest, key = %stored.id, "image signed");
        self.check_with(&at, tag.tenant_id, &tag.repository, &tag.meta.digest)
            .await
    }

    /// Checks the signatures of `repository` at `digest` (owned by `tenant`)
    /// against the tenant's keys, and keeps the result.
    ///
    /// # Errors
    /// The registry or the database fails.
    pub async fn check(&self, tenant: Uuid, repository: &str, digest: &str) -> Result<Check> {
        let (_, at) = self.master(repository, &["pull"]).await?;
        self.check_with(&at, tenant, repository, digest).await
    }

    async fn check_with(&self, at: &Endpoint, tenant: Uuid, repository: &str, digest: &str) -> Result<Check> {
        let keys = sqlx::query_as::<_, StoredKey>(
            "SELECT id, public_key_pem, NULL::bytea AS key_sealed FROM tenant_signing_keys WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        let points: Vec<(Uuid, Vec<u8>)> = keys
            .into_iter()
            .filter_map(|k| Some((k.id, cosign::parse_public_key_pem("key", &k.public_key_pem).ok()?)))
            .collect();
        let signature_tag = cosign::signature_tag(digest)?;
        let layers = match self.transfer.manifest_at(at, repository, &signature_tag).await? {
            Some(m) => match serde_json::from_slice(&m.body) {
                Ok(doc) => cosign::layers(&doc),
                Err(_) => Vec::new(),
            },
            None => Vec::new(),
        };
        let mut valid = Vec::new();
        let mut failures = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            let payload = match self
                .transfer
                .small_blob(at, repository, &layer.digest, PAYLOAD_LIMIT)
                .await
            {
                Ok(p) => p,
                Err(e @ Error::Unavailable(_)) => return Err(e),
                Err(e) => {
                    failures.push(format!("signature {}: {e}", i + 1));
                    continue;
                }
            };
            if let Some(why) = cosign::payload_mismatch(&payload, digest) {
                failures.push(format!("signature {}: {why}", i + 1));
                continue;
            }
            let signers: Vec<Uuid> = points
                .iter()
                .filter(|(_, point)| cosign::verify(point, &payload, &layer.signature))
                .map(|(id, _)| *id)
                .collect();
            if signers.is_empty() {
                failures.push(format!(
                    "signature {}: not made by any of the tenant's keys (or tampered with)",
                    i + 1
                ));
            }
            valid.extend(signers);
        }
        valid.sort();
        valid.dedup();
        let (status, message) = match (valid.is_empty(), layers.is_empty()) {
            (false, _) => ("signed", String::new()),
            (true, true) => ("unsigned", String::new()),
            (true, false) => ("invalid", failures.join("; ")),
        };
        let check = sqlx::query_as::<_, Check>(
            "INSERT INTO signature_checks (repository, digest, tenant_id, status, key_ids, message, checked_at)
             VALUES ($1, $2, $3, $4, $5, $6, now())
             ON CONFLICT (repository, digest) DO UPDATE SET tenant_id = $3, status = $4, key_ids = $5,
                 message = $6, checked_at = now()
             RETURNING repository, digest, tenant_id, status, key_ids, message, checked_at",
        )
        .bind(repository)
        .bind(digest)
        .bind(tenant)
        .bind(status)
        .bind(&valid)
        .bind(&message)
        .fetch_one(&self.pool)
        .await?;
        tracing::info!(repository, digest, status, "image signatures checked");
        Ok(check)
    }

    /// The master registry's URL and an endpoint there for `repository` with `actions`.
    async fn master(&self, repository: &str, actions: &[&str]) -> Result<(String, Endpoint)> {
        let master = self
            .registries
            .master_url()
            .await?
            .ok_or_else(|| Error::Unavailable("no master registry is registered".to_string()))?;
        let (token, _) = self.signer.issue(
            &format!("service:{}", crate::NAME),
            vec![Grant {
                kind: "repository".to_string(),
                name: repository.to_string(),
                actions: actions.iter().map(|a| (*a).to_string()).collect(),
            }],
        )?;
        let at = Endpoint::new(&master, token);
        Ok((master, at))
    }

    /// Sets whether `tenant` requires signed images in `environment`.
    /// Tenant administrators.
    ///
    /// # Errors
    /// Not allowed, or an unknown environment.
    pub async fn set_policy(&self, caller: &Caller, tenant: Uuid, environment: &str, required: bool) -> Result<()> {
        caller.require(tenant, Role::TenantAdmin, "tenant", tenant)?;
        crate::scan::policy_environment(environment)?;
        sqlx::query(
            "INSERT INTO signature_policies (tenant_id, environment, required) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, environment) DO UPDATE SET required = $3, updated_at = now()",
        )
        .bind(tenant)
        .bind(environment)
        .bind(required)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether `tenant` requires signed images in `environment`, for a caller who may see it.
    ///
    /// # Errors
    /// Not allowed, or the database fails.
    pub async fn policy(&self, caller: &Caller, tenant: Uuid, environment: &str) -> Result<bool> {
        caller.require(tenant, Role::Viewer, "tenant", tenant)?;
        crate::scan::policy_environment(environment)?;
        required(&self.pool, tenant, environment).await
    }

    /// The pool checks are kept in.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// `host[:port]` of a registry URL.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts_drop_scheme_and_path() {
        assert_eq!(host_of("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(host_of("https://registry.example/"), "registry.example");
        assert_eq!(host_of("registry.example:443"), "registry.example:443");
    }
}
