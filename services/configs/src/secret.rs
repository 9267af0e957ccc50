//! Secrets at rest: envelope encryption. Each tenant has a data key that seals
//! its secret items (ChaCha20-Poly1305, a fresh nonce per value, the tenant
//! and item name as associated data so a sealed value cannot be moved to
//! another item or tenant). The data key itself is stored sealed by the
//! platform's master key. Rotating the master key re-seals the data keys
//! only ([`Sealer::rewrap`]); no value is re-encrypted.
//!
//! Secret values are never answered in full: [`mask`] keeps the last four
//! characters of long values and nothing of short ones.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use kernel::settings::Secret;
use kernel::{Error, Result};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

const NONCE_LEN: usize = 12;

/// A platform master key. `Debug` shows only its id.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    key: Key,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// The key derived from a configured secret; its id is a digest of the
    /// key, so stored data keys name the master key that sealed them without
    /// revealing it.
    pub fn from_secret(secret: &Secret) -> Self {
        let key: [u8; 32] = Sha256::digest(secret.expose().as_bytes()).into();
        let id = Sha256::digest(key).iter().take(8).map(|b| format!("{b:02x}")).collect();
        Self {
            id,
            key: Key::from(key),
        }
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The current master key and those it replaced (still able to open data
/// keys not yet re-sealed).
#[derive(Debug, Clone)]
pub struct Keyring {
    /// Seals new and re-wrapped data keys.
    pub current: MasterKey,
    /// Open data keys sealed before a rotation.
    pub previous: Vec<MasterKey>,
}

impl Keyring {
    fn find(&self, id: &str) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
    }
}

fn seal_with(key: &Key, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let nonce_bytes: [u8; NONCE_LEN] = rand::random();
    let sealed = ChaCha20Poly1305::new(key)
        .encrypt(Nonce::from_slice(&nonce_bytes), Payload { msg: plaintext, aad })
        .map_err(|_| Error::internal("sealing failed"))?;
    let mut out = nonce_bytes.to_vec();
    out.extend(sealed);
    Ok(out)
}

fn open_with(key: &Key, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return Err(Error::internal("a sealed value is truncated"));
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    ChaCha20Poly1305::new(key)
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .map_err(|_| Error::internal("a sealed value does not open with its key"))
}

fn value_aad(tenant: Uuid, item: &str) -> Vec<u8> {
    let mut aad = tenant.as_bytes().to_vec();
    aad.extend(item.as_bytes());
    aad
}

/// Seals and opens secret values with per-tenant data keys.
#[derive(Clone)]
pub struct Sealer {
    pool: PgPool,
    keyring: Arc<Keyring>,
    /// Opened data keys: a data key never changes (rotation re-seals it), so
    /// a cached one stays valid.
    opened: Arc<Mutex<HashMap<Uuid, Key>>>,
}

impl Sealer {
    /// A sealer keeping data keys in `pool`'s schema.
    pub fn new(pool: PgPool, keyring: Keyring) -> Self {
        Self {
            pool,
            keyring: Arc::new(keyring),
            opened: Arc::default(),
        }
    }

    async fn data_key(&self, tenant: Uuid) -> Result<Key> {
        if let Some(key) = self.opened.lock().expect("not poisoned").get(&tenant) {
            return Ok(*key);
        }
        let fresh: [u8; 32] = rand::random();
        let sealed = seal_with(&self.keyring.current.key, tenant.as_bytes(), &fresh)?;
        // Two first secrets of a tenant at once: the first insert wins and both read it.
        sqlx::query!(
            "INSERT INTO tenant_data_keys (tenant_id, master_key_id, sealed) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id) DO NOTHING",
            tenant,
            self.keyring.current.id,
            sealed,
        )
        .execute(&self.pool)
        .await?;
        let row = sqlx::query!(
            "SELECT master_key_id, sealed FROM tenant_data_keys WHERE tenant_id = $1",
            tenant
        )
        .fetch_one(&self.pool)
        .await?;
        let master = self.keyring.find(&row.master_key_id).ok_or_else(|| {
            Error::internal(format!(
                "tenant {tenant}'s data key is sealed by master key {}, which is not configured",
                row.master_key_id
            ))
        })?;
        let bytes = open_with(&master.key, tenant.as_bytes(), &row.sealed)?;
        let key = Key::clone_from_slice(&bytes);
        self.opened.lock().expect("not poisoned").insert(tenant, key);
        Ok(key)
    }

    /// Seals `plaintext`, the content of item `item` of `tenant`.
    ///
    /// # Errors
    /// The database fails or the tenant's data key cannot be opened.
    pub async fn seal(&self, tenant: Uuid, item: &str, plaintext: &str) -> Result<Vec<u8>> {
        let key = self.data_key(tenant).await?;
        seal_with(&key, &value_aad(tenant, item), plaintext.as_bytes())
    }

    /// Opens what [`Self::seal`] sealed.
    ///
    /// # Errors
    /// The data key cannot be opened, or the value was tampered with.
    pub async fn open(&self, tenant: Uuid, item: &str, sealed: &[u8]) -> Result<String> {
        let key = self.data_key(tenant).await?;
        let bytes = open_with(&key, &value_aad(tenant, item), sealed)?;
        String::from_utf8(bytes).map_err(Error::internal)
    }

    /// Re-seals every data key sealed by an older master key under the
    /// current one; returns how many. Values are untouched.
    ///
    /// # Errors
    /// A data key's master key is not configured, or the database fails.
    pub async fn rewrap(&self) -> Result<u64> {
        let stale = sqlx::query!(
            "SELECT tenant_id, master_key_id, sealed FROM tenant_data_keys WHERE master_key_id <> $1",
            self.keyring.current.id
        )
        .fetch_all(&self.pool)
        .await?;
        let mut rewrapped = 0;
        for row in stale {
            let master = self.keyring.find(&row.master_key_id).ok_or_else(|| {
                Error::FailedPrecondition(format!(
                    "tenant {}'s data key is sealed by master key {}, which is neither the current nor a previous one",
                    row.tenant_id, row.master_key_id
                ))
            })?;
            let key = open_with(&master.key, row.tenant_id.as_bytes(), &row.sealed)?;
            let sealed = seal_with(&self.keyring.current.key, row.tenant_id.as_bytes(), &key)?;
            rewrapped += sqlx::query!(
                "UPDATE tenant_data_keys SET master_key_id = $2, sealed = $3, rewrapped_at = now()
                 WHERE tenant_id = $1 AND master_key_id = $4",
                row.tenant_id,
                self.keyring.current.id,
                sealed,
                row.master_key_id,
            )
            .execute(&self.pool)
            .await?
            .rows_affected();
        }
        Ok(rewrapped)
    }
}

/// What the API shows of a secret value: its last four characters when it is
/// long enough that they give little away, else nothing.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() >= 12 {
        format!("****{}", chars[chars.len() - 4..].iter().collect::<String>())
    } else {
        "****".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_at_most_four_characters() {
        assert_eq!(mask("short"), "****");
        assert_eq!(mask("a-long-password-1234"), "****1234");
        assert_eq!(mask(""), "****");
    }

    #[test]
    fn a_value_opens_only_for_its_tenant_and_item() {
        let key = MasterKey::from_secret(&Secret::new("m".repeat(32))).key;
        let t = Uuid::now_v7();
        let sealed = seal_with(&key, &value_aad(t, "db.properties"), b"password=x").unwrap();
        assert_eq!(
            open_with(&key, &value_aad(t, "db.properties"), &sealed).unwrap(),
            b"password=x"
        );
        assert!(open_with(&key, &value_aad(t, "other.properties"), &sealed).is_err());
        assert!(open_with(&key, &value_aad(Uuid::now_v7(), "db.properties"), &sealed).is_err());
    }

    #[test]
    fn master_key_ids_name_the_key_without_showing_it() {
        let a = MasterKey::from_secret(&Secret::new("a".repeat(32)));
        let b = MasterKey::from_secret(&Secret::new("b".repeat(32)));
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().len(), 16);
        assert!(!format!("{a:?}").contains("aaaa"));
    }
}
