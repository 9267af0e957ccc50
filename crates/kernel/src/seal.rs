//! Values sealed for delivery into member clusters. Secret configuration
//! travels from the config center, through the apps and federation services'
//! tables, to the member cluster's Secret: it is sealed by the service that
//! holds it in the clear (configs) and opened only by the one that writes it
//! into the cluster (federation), so no table in between holds it plain.
//!
//! The key is derived from the platform's caller key: every service already
//! holds it, and whoever holds it can act as any service (and so read the
//! configuration anyway), so the derived key widens no one's reach.
//! ChaCha20-Poly1305 with the tenant as associated data (a sealed value cannot
//! be moved into another tenant's objects). The nonce is derived from the
//! value (an HMAC), so sealing the same value twice gives the same text and an
//! unchanged configuration never looks changed to the reconcilers that
//! compare objects; it reveals only that two values are equal.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::settings::Secret;
use crate::{Error, Result};

/// What starts every sealed value.
pub const PREFIX: &str = "sealed:v1:";

const NONCE_LEN: usize = 12;

/// The key values are sealed with for delivery. `Debug` shows nothing of it.
#[derive(Clone)]
pub struct DeliveryKey {
    key: [u8; 32],
}

impl std::fmt::Debug for DeliveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeliveryKey(***)")
    }
}

impl DeliveryKey {
    /// The key derived from the platform's caller key.
    pub fn from_caller_key(caller_key: &Secret) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(caller_key.expose().as_bytes()).expect("any key length");
        mac.update(b"paas delivery seal v1");
        Self {
            key: mac.finalize().into_bytes().into(),
        }
    }

    fn mac(&self, label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(label);
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// Seals `plaintext` for `tenant`'s objects: `sealed:v1:<base64>`.
    pub fn seal(&self, tenant: &str, plaintext: &[u8]) -> String {
        let nonce: [u8; NONCE_LEN] = self.mac(b"nonce", &[tenant.as_bytes(), plaintext])[..NONCE_LEN]
            .try_into()
            .expect("12 bytes");
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.key));
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: tenant.as_bytes(),
                },
            )
            .expect("encryption of a bounded value cannot fail");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        format!("{PREFIX}{}", B64.encode(out))
    }

    /// Opens what [`Self::seal`] sealed for `tenant`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `field` when the text is not a value
    /// sealed with this key for this tenant.
    pub fn open(&self, tenant: &str, field: &str, sealed: &str) -> Result<Vec<u8>> {
        let refused = || Error::invalid(field, "is not a value sealed by the platform for this tenant");
        let raw = sealed.strip_prefix(PREFIX).ok_or_else(refused)?;
        let bytes = B64.decode(raw).map_err(|_| refused())?;
        if bytes.len() < NONCE_LEN {
            return Err(refused());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        ChaCha20Poly1305::new(Key::from_slice(&self.key))
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: tenant.as_bytes(),
                },
            )
            .map_err(|_| refused())
    }

    /// A checksum of `content` that reveals nothing of it (keyed, so a short
    /// secret cannot be guessed from it): hex, 64 characters.
    pub fn checksum(&self, content: &[u8]) -> String {
        let digest = self.mac(b"checksum", &[content]);
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Whether `text` is a sealed value.
pub fn is_sealed(text: &str) -> bool {
    text.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str) -> DeliveryKey {
        DeliveryKey::from_caller_key(&Secret::new(raw))
    }

    #[test]
    fn a_sealed_value_opens_for_its_tenant_only() {
        let k = key("a caller key of at least thirty-two bytes");
        let sealed = k.seal("tenant-a", b"hunter2");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(k.open("tenant-a", "data", &sealed).unwrap(), b"hunter2");
        assert!(k.open("tenant-b", "data", &sealed).is_err());
        assert!(
            key("another caller key, also long enough!!")
                .open("tenant-a", "data", &sealed)
                .is_err()
        );
    }

    #[test]
    fn sealing_is_repeatable_and_tampering_is_refused() {
        let k = key("a caller key of at least thirty-two bytes");
        assert_eq!(k.seal("t", b"v"), k.seal("t", b"v"));
        assert_ne!(k.seal("t", b"v"), k.seal("t", b"w"));
        let mut sealed = k.seal("t", b"value");
        sealed.pop();
        sealed.push('A');
        assert!(k.open("t", "data", &sealed).is_err());
        assert!(k.open("t", "data", "plain").is_err());
    }

    #[test]
    fn checksums_differ_with_content_and_hide_it() {
        let k = key("a caller key of at least thirty-two bytes");
        assert_eq!(k.checksum(b"a").len(), 64);
        assert_ne!(k.checksum(b"a"), k.checksum(b"b"));
    }
}
