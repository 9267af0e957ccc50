//! The local break-glass administrator: usable when the directory and the
//! OIDC providers are not, created from a setting at first start with an
//! argon2id-hashed password, and able to be disabled.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use kernel::settings::Secret;
use kernel::{Error, Result};
use sqlx::PgPool;

/// The break-glass account's name.
pub const USERNAME: &str = "admin";

/// Local accounts in the gateway's schema.
#[derive(Clone)]
pub struct LocalAdmin {
    pool: PgPool,
}

impl LocalAdmin {
    /// Accounts stored in `pool`'s schema.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Creates the account from `password` if it does not exist yet (first
    /// start; later changes of the setting do not overwrite it), and sets
    /// whether it is disabled.
    ///
    /// # Errors
    /// The database fails.
    pub async fn ensure(&self, password: Option<&Secret>, disabled: bool) -> Result<()> {
        if let Some(password) = password {
            let hash = hash(password.expose())?;
            sqlx::query!(
                "INSERT INTO local_users (username, password_hash) VALUES ($1, $2) ON CONFLICT (username) DO NOTHING",
                USERNAME,
                hash,
            )
            .execute(&self.pool)
            .await?;
        }
        sqlx::query!(
            "UPDATE local_users SET disabled = $2 WHERE username = $1",
            USERNAME,
            disabled
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether `username` and `password` name an enabled local account.
    /// The hash is checked even for unknown users, so timing does not tell
    /// which usernames exist.
    ///
    /// # Errors
    /// The database fails.
    pub async fn verify(&self, username: &str, password: &str) -> Result<bool> {
        let row = sqlx::query!(
            "SELECT password_hash, disabled FROM local_users WHERE username = $1",
            username
        )
        .fetch_optional(&self.pool)
        .await?;
        let (stored, disabled) = match row {
            Some(r) => (r.password_hash, r.disabled),
            None => (
                DECOY.get_or_init(|| hash("decoy").expect("hashing works")).clone(),
                true,
            ),
        };
        let parsed = PasswordHash::new(&stored).map_err(|e| Error::internal(e.to_string()))?;
        let matches = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        Ok(matches && !disabled)
    }
}

static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn hash(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| Error::internal(e.to_string()))?
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_salted() {
        let a = hash("correct horse").unwrap();
        let b = hash("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b);
        let parsed = PasswordHash::new(&a).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"wrong", &parsed).is_err());
    }
}
