//! Image pull secrets of partitions. Every partition's namespace gets a
//! `kubernetes.io/dockerconfigjson` Secret for the platform registry (when
//! the settings name one) and one for each registry credential a tenant
//! administrator adds to the partition; the namespace's `default`
//! ServiceAccount lists them all in `imagePullSecrets`, so pods pull without
//! naming them. The partition reconciler writes them with the partition's
//! other objects (and so repairs their drift) and deletes the Secrets of
//! credentials that were removed. Passwords are sealed at rest with the
//! cluster-credentials key and never leave the service except into the
//! member cluster's Secret. In a cluster with a registry mirror
//! ([`crate::registry_mirror`]), every Secret that logs in to the platform
//! registry (the platform's, and a tenant's own robot credential for it)
//! logs in to the mirror with the same credential too: the sub-registries
//! take the platform's registry tokens, which the credential is exchanged for.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::name::DnsLabel;
use kernel::{Error, Result};
use paas_proto::v1 as pb;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::credentials;
use crate::settings::{Registry, SecretKey};

/// Label on every pull secret federation writes, so removed ones are found.
pub const PULL_SECRET_LABEL: &str = "paas.io/pull-secret";
/// The Secret of the platform registry in every namespace.
pub const PLATFORM_SECRET: &str = "paas-registry";
/// The ServiceAccount pods run as unless they name another.
pub const SERVICE_ACCOUNT: &str = "default";

/// The Secret name of a tenant's credential `name`.
pub fn secret_name(name: &str) -> String {
    format!("paas-pull-{name}")
}

/// A registry credential of a partition, without its password.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PullSecret {
    /// The partition.
    pub partition_id: Uuid,
    /// DNS label, unique in the partition.
    pub name: String,
    /// Registry host[:port].
    pub server: String,
    /// User.
    pub username: String,
    /// Added.
    pub created_at: DateTime<Utc>,
    /// Last replaced.
    pub updated_at: DateTime<Utc>,
}

/// A validated credential to store.
#[derive(Clone)]
pub struct NewPullSecret {
    /// The partition.
    pub partition: Uuid,
    /// Its name.
    pub name: DnsLabel,
    /// Registry host[:port] (or a URL, as docker config keys may be).
    pub server: String,
    /// User.
    pub username: String,
    /// Password; sealed before it is stored.
    pub password: kernel::settings::Secret,
}

impl NewPullSecret {
    /// Validates a request; errors name the field.
    ///
    /// # Errors
    /// A field missing or malformed.
    pub fn parse(r: pb::PutPullSecretRequest) -> Result<Self> {
        let partition = kernel::id::parse_id("partition_id", &r.partition_id)?;
        let name = DnsLabel::parse("name", r.name.trim())?;
        // Secret names carry a 10-character prefix; 63 keeps them labels too.
        if name.as_str().len() > 53 {
            return Err(Error::invalid("name", "must be at most 53 characters"));
        }
        let server = r.server.trim().to_string();
        if server.is_empty() || server.len() > 253 || server.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid(
                "server",
                "must be a registry host[:port], without spaces",
            ));
        }
        let username = r.username.trim().to_string();
        if username.is_empty() || username.contains(':') || username.chars().any(char::is_control) {
            return Err(Error::invalid(
                "username",
                "is required and must not contain ':' or control characters",
            ));
        }
        if r.password.is_empty() || r.password.chars().any(char::is_control) {
            return Err(Error::invalid(
                "password",
                "is required and must not contain control characters",
            ));
        }
        Ok(Self {
            partition,
            name,
            server,
            username,
            password: kernel::settings::Secret::new(r.password),
        })
    }
}

/// What the sealed password is bound to: a record copied to another
/// partition or name does not open.
fn aad(partition: Uuid, name: &str) -> Vec<u8> {
    format!("pull-secret\0{partition}\0{name}").into_bytes()
}

/// The tenant of a partition federation knows (and has not deleted).
async fn tenant_of(pool: &PgPool, partition: Uuid) -> Result<Uuid> {
    let tenant = sqlx::query_scalar!(
        "SELECT tenant_id FROM partitions WHERE partition_id = $1 AND NOT deleted",
        partition,
    )
    .fetch_optional(pool)
    .await?;
    tenant.ok_or_else(|| Error::not_found("partition", partition))
}

/// Marks the partition behind so the reconciler writes its pull secrets soon.
async fn touch(tx: &mut sqlx::PgConnection, partition: Uuid) -> Result<()> {
    sqlx::query!(
        "UPDATE partitions SET generation = generation + 1, next_attempt_at = now(), updated_at = now()
         WHERE partition_id = $1",
        partition,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Adds or replaces a credential. Tenant administrators of the partition's tenant.
///
/// # Errors
/// No such partition (or not the caller's), or not a tenant administrator.
pub async fn put(pool: &PgPool, key: &SecretKey, caller: &Caller, new: NewPullSecret) -> Result<PullSecret> {
    let tenant = tenant_of(pool, new.partition).await?;
    caller.require(tenant, Role::TenantAdmin, "partition", new.partition)?;
    let sealed = credentials::seal_bytes(
        key,
        &aad(new.partition, new.name.as_str()),
        new.password.expose().as_bytes(),
    );
    let mut tx = pool.begin().await?;
    let row = sqlx::query_as!(
        PullSecret,
        "INSERT INTO pull_secrets (partition_id, tenant_id, name, server, username, password)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (partition_id, name) DO UPDATE SET
             server = EXCLUDED.server, username = EXCLUDED.username, password = EXCLUDED.password, updated_at = now()
         RETURNING partition_id, name, server, username, created_at, updated_at",
        new.partition,
        tenant,
        new.name.as_str(),
        &new.server,
        &new.username,
        sealed,
    )
    .fetch_one(&mut *tx)
    .await?;
    touch(&mut tx, new.partition).await?;
    tx.commit().await?;
    Ok(row)
}

/// The partition's credentials (never their passwords). Any member of its tenant.
///
/// # Errors
/// No such partition, or not the caller's.
pub async fn list(pool: &PgPool, caller: &Caller, partition: Uuid) -> Result<Vec<PullSecret>> {
    let tenant = tenant_of(pool, partition).await?;
    caller.require(tenant, Role::Viewer, "partition", partition)?;
    Ok(sqlx::query_as!(
        PullSecret,
        "SELECT partition_id, name, server, username, created_at, updated_at FROM pull_secrets
         WHERE partition_id = $1 AND tenant_id = $2 ORDER BY name",
        partition,
        tenant,
    )
    .fetch_all(pool)
    .await?)
}

/// Removes a credential; the reconciler deletes its Secret from the cluster.
/// Tenant administrators.
///
/// # Errors
/// No such partition or credential, or not allowed.
pub async fn delete(pool: &PgPool, caller: &Caller, partition: Uuid, name: &str) -> Result<()> {
    let tenant = tenant_of(pool, partition).await?;
    caller.require(tenant, Role::TenantAdmin, "partition", partition)?;
    let mut tx = pool.begin().await?;
    let gone = sqlx::query!(
        "DELETE FROM pull_secrets WHERE partition_id = $1 AND tenant_id = $2 AND name = $3",
        partition,
        tenant,
        name,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if gone == 0 {
        return Err(Error::not_found("pull secret", name));
    }
    touch(&mut tx, partition).await?;
    tx.commit().await?;
    Ok(())
}

/// A `kubernetes.io/dockerconfigjson` Secret body for one registry login,
/// valid at each of `servers`.
pub fn secret_object(
    namespace: &str,
    secret: &str,
    labels: &Value,
    servers: &[&str],
    username: &str,
    password: &str,
) -> Value {
    let auth = B64.encode(format!("{username}:{password}"));
    let login = json!({"username": username, "password": password, "auth": auth});
    let auths: serde_json::Map<String, Value> = servers.iter().map(|s| ((*s).to_string(), login.clone())).collect();
    let config = json!({ "auths": auths });
    let mut labels = labels.clone();
    labels[PULL_SECRET_LABEL] = json!("true");
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
           "metadata": {"name": secret, "namespace": namespace, "labels": labels},
           "data": {".dockerconfigjson": B64.encode(config.to_string())}})
}

/// The pull Secrets partition `partition` should have in `namespace`, in
/// order: the platform registry's first, then the tenant's by name. With a
/// `mirror` (the cluster's sub-registry), those for the platform registry
/// log in there too.
///
/// # Errors
/// The database fails, or a stored password does not open with `key`.
pub async fn wanted(
    pool: &PgPool,
    key: &SecretKey,
    partition: Uuid,
    namespace: &str,
    labels: &Value,
    platform: Option<&Registry>,
    mirror: Option<&str>,
) -> Result<Vec<(String, Value)>> {
    let servers_of = |server: &str| -> Vec<String> {
        let mut servers = vec![server.to_string()];
        if let (Some(p), Some(m)) = (platform, mirror)
            && p.server == server
            && m != server
        {
            servers.push(m.to_string());
        }
        servers
    };
    let mut secrets = Vec::new();
    if let Some(r) = platform {
        let servers = servers_of(&r.server);
        secrets.push((
            PLATFORM_SECRET.to_string(),
            secret_object(
                namespace,
                PLATFORM_SECRET,
                labels,
                &servers.iter().map(String::as_str).collect::<Vec<_>>(),
                &r.username,
                r.password.expose(),
            ),
        ));
    }
    let rows = sqlx::query!(
        "SELECT name, server, username, password FROM pull_secrets WHERE partition_id = $1 ORDER BY name",
        partition,
    )
    .fetch_all(pool)
    .await?;
    for r in rows {
        let (name, server, username) = (r.name, r.server, r.username);
        let password = credentials::open_bytes(key, &aad(partition, &name), &r.password)
            .and_then(|p| String::from_utf8(p).ok())
            .ok_or_else(|| {
                Error::FailedPrecondition(format!(
                    "the stored password of pull secret {name} cannot be decrypted with the configured key"
                ))
            })?;
        let secret = secret_name(&name);
        let servers = servers_of(&server);
        let servers: Vec<&str> = servers.iter().map(String::as_str).collect();
        let body = secret_object(namespace, &secret, labels, &servers, &username, &password);
        secrets.push((secret, body));
    }
    Ok(secrets)
}

/// The `default` ServiceAccount as federation applies it: only the list of
/// pull secrets (the rest of it is the cluster's).
pub fn service_account(namespace: &str, secrets: &[String]) -> Value {
    let names: Vec<Value> = secrets.iter().map(|s| json!({"name": s})).collect();
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace}, "imagePullSecrets": names})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str, server: &str, username: &str, password: &str) -> pb::PutPullSecretRequest {
        pb::PutPullSecretRequest {
            partition_id: Uuid::now_v7().to_string(),
            name: name.into(),
            server: server.into(),
            username: username.into(),
            password: password.into(),
        }
    }

    fn field(e: Error) -> String {
        match e {
            Error::InvalidArgument { field, .. } => field,
            e => panic!("not an invalid argument: {e}"),
        }
    }

    #[test]
    fn a_credential_needs_a_label_name_a_server_a_user_and_a_password() {
        assert!(NewPullSecret::parse(request("harbor", "harbor.example:443", "robot", "s3cret")).is_ok());
        assert_eq!(
            field(NewPullSecret::parse(request("Harbor", "h", "u", "p")).err().unwrap()),
            "name"
        );
        assert_eq!(
            field(NewPullSecret::parse(request("h", "has space", "u", "p")).err().unwrap()),
            "server"
        );
        assert_eq!(
            field(NewPullSecret::parse(request("h", "h", "a:b", "p")).err().unwrap()),
            "username"
        );
        assert_eq!(
            field(NewPullSecret::parse(request("h", "h", "u", "")).err().unwrap()),
            "password"
        );
        let mut r = request("h", "h", "u", "p");
        r.partition_id = "nope".into();
        assert_eq!(field(NewPullSecret::parse(r).err().unwrap()), "partition_id");
    }

    #[test]
    fn the_secret_is_a_dockerconfigjson_for_its_registry() {
        let s = secret_object(
            "acme-web",
            "paas-pull-harbor",
            &json!({"paas.io/managed-by": "paas"}),
            &["harbor.example", "harbor-dc1.example:5000"],
            "robot",
            "s3cret",
        );
        assert_eq!(s["type"], "kubernetes.io/dockerconfigjson");
        assert_eq!(s["metadata"]["labels"][PULL_SECRET_LABEL], "true");
        let config: Value =
            serde_json::from_slice(&B64.decode(s["data"][".dockerconfigjson"].as_str().unwrap()).unwrap()).unwrap();
        let login = &config["auths"]["harbor.example"];
        assert_eq!(
            (login["username"].as_str(), login["password"].as_str()),
            (Some("robot"), Some("s3cret"))
        );
        assert_eq!(B64.decode(login["auth"].as_str().unwrap()).unwrap(), b"robot:s3cret");
        // The same login at the mirror.
        assert_eq!(&config["auths"]["harbor-dc1.example:5000"], login);
    }

    #[test]
    fn a_sealed_password_opens_only_for_its_partition_and_name() {
        let key = SecretKey::new([3; 32]);
        let p = Uuid::now_v7();
        let sealed = credentials::seal_bytes(&key, &aad(p, "harbor"), b"s3cret");
        assert_eq!(
            credentials::open_bytes(&key, &aad(p, "harbor"), &sealed).unwrap(),
            b"s3cret"
        );
        assert!(credentials::open_bytes(&key, &aad(p, "other"), &sealed).is_none());
        assert!(credentials::open_bytes(&key, &aad(Uuid::now_v7(), "harbor"), &sealed).is_none());
    }
}
