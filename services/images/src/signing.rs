//! The platform's registry-token signing key: an ECDSA P-256 key and a
//! self-signed certificate, made once and kept in the schema with the key
//! sealed. Registries trust the certificate (`auth.token.rootcertbundle`);
//! tokens are ES256 JWTs carrying the certificate in `x5c`, as the Docker
//! registry token specification allows.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use kernel::{Error, Result, id};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::access::Grant;
use crate::seal::Sealer;

/// The `iss` of every token, which registries are configured to expect.
pub const ISSUER: &str = "paas";
/// The `aud`: the registry service name registries are configured with.
pub const SERVICE: &str = "paas-registry";
/// How long a token lives: long enough for a large layer's upload to start,
/// short enough that a leaked token soon stops working; clients ask again.
pub const TOKEN_TTL_SECONDS: i64 = 300;

/// A token's claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// The subject (user, API token or robot).
    pub sub: String,
    /// The registry service.
    pub aud: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Not before.
    pub nbf: i64,
    /// Issued at.
    pub iat: i64,
    /// Unique id.
    pub jti: String,
    /// What it grants.
    pub access: Vec<Grant>,
}

/// Signs and verifies registry tokens.
pub struct Signer {
    key: EcdsaKeyPair,
    certificate_der: Vec<u8>,
    /// The certificate registries trust.
    pub certificate_pem: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(***)")
    }
}

impl Signer {
    /// The key stored in `pool`'s schema, made and stored first if there is
    /// none. Concurrent first starts agree: the oldest key wins.
    ///
    /// # Errors
    /// The database fails, or the stored key does not open with this
    /// platform's key.
    pub async fn load_or_create(pool: &PgPool, sealer: &Sealer) -> Result<Self> {
        if let Some(signer) = Self::load(pool, sealer).await? {
            return Ok(signer);
        }
        let key = rcgen::KeyPair::generate().map_err(Error::internal)?;
        let mut params =
            rcgen::CertificateParams::new(vec!["paas-registry-token".to_string()]).map_err(Error::internal)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "paas registry token issuer");
        let cert = params.self_signed(&key).map_err(Error::internal)?;
        sqlx::query!(
            "INSERT INTO signing_keys (id, key_sealed, certificate_pem) VALUES ($1, $2, $3)",
            id::new_id(),
            sealer.seal(&key.serialize_der())?,
            cert.pem(),
        )
        .execute(pool)
        .await?;
        Self::load(pool, sealer)
            .await?
            .ok_or_else(|| Error::internal("the signing key just stored is gone"))
    }

    async fn load(pool: &PgPool, sealer: &Sealer) -> Result<Option<Self>> {
        let row = sqlx::query!("SELECT key_sealed, certificate_pem FROM signing_keys ORDER BY created_at, id LIMIT 1")
            .fetch_optional(pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let pkcs8 = sealer.open(&row.key_sealed)?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &SystemRandom::new())
            .map_err(|e| Error::internal(format!("stored signing key: {e}")))?;
        let certificate_der = pem_body(&row.certificate_pem)?;
        Ok(Some(Self {
            key,
            certificate_der,
            certificate_pem: row.certificate_pem,
        }))
    }

    /// A signed token for `sub` granting `access`.
    ///
    /// # Errors
    /// Signing fails (never in practice).
    pub fn issue(&self, sub: &str, access: Vec<Grant>) -> Result<(String, Claims)> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.to_string(),
            sub: sub.to_string(),
            aud: SERVICE.to_string(),
            exp: now + TOKEN_TTL_SECONDS,
            // A little slack for registries whose clock runs behind.
            nbf: now - 10,
            iat: now,
            jti: id::new_id().to_string(),
            access,
        };
        let header = serde_json::json!({
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [B64.encode(&self.certificate_der)],
        });
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(serde_json::to_vec(&claims).map_err(Error::internal)?)
        );
        let signature = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| Error::internal("signing failed"))?;
        Ok((format!("{signing_input}.{}", B64URL.encode(signature.as_ref())), claims))
    }

    /// The claims of a token this signer issued, if it is genuine and current.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let (signing_input, signature) = token.rsplit_once('.')?;
        let signature = B64URL.decode(signature).ok()?;
        ring::signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref())
            .verify(signing_input.as_bytes(), &signature)
            .ok()?;
        let (_, payload) = signing_input.split_once('.')?;
        let claims: Claims = serde_json::from_slice(&B64URL.decode(payload).ok()?).ok()?;
        let now = chrono::Utc::now().timestamp();
        (claims.iss == ISSUER && claims.aud == SERVICE && claims.exp > now && claims.nbf <= now).then_some(claims)
    }
}

fn pem_body(pem: &str) -> Result<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    B64.decode(body.trim()).map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["t".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        Signer {
            key: EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &key.serialize_der(),
                &SystemRandom::new(),
            )
            .unwrap(),
            certificate_der: cert.der().to_vec(),
            certificate_pem: cert.pem(),
        }
    }

    #[test]
    fn issued_tokens_verify_and_tampered_ones_do_not() {
        let s = signer();
        assert_eq!(pem_body(&s.certificate_pem).unwrap(), s.certificate_der);
        let (token, claims) = s.issue("robot$a+b+c", Vec::new()).unwrap();
        assert_eq!(s.verify(&token).unwrap().sub, claims.sub);
        let mut forged = token.clone();
        forged.insert(token.find('.').unwrap() + 2, 'x');
        assert!(s.verify(&forged).is_none());
        assert!(signer().verify(&token).is_none(), "another key's token");
    }
}
