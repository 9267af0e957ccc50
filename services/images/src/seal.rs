//! Secrets at rest: the token-signing key and registry passwords are sealed
//! with ChaCha20-Poly1305 under a key derived from the platform's caller key,
//! which every process of one platform shares, so any replica can open them.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use kernel::{Error, Result};
use rand::RngCore;
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 12;

/// Seals and opens the service's secrets.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

impl Sealer {
    /// The sealer of a platform whose caller key is `caller_key`.
    pub fn derived_from(caller_key: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"paas-images-seal\0");
        h.update(caller_key.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// `nonce || ciphertext` of `plain`.
    ///
    /// # Errors
    /// Never in practice (the cipher refuses only absurd lengths).
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain)
            .map_err(|_| Error::internal("sealing failed"))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    /// The plain text of what [`Sealer::seal`] made.
    ///
    /// # Errors
    /// Sealed under another key, or tampered with.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return Err(Error::internal("sealed value too short"));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), body)
            .map_err(|_| Error::internal("a sealed value does not open with this platform's key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_under_the_same_key() {
        let a = Sealer::derived_from("a-caller-key-of-at-least-32-bytes!!");
        let b = Sealer::derived_from("another-caller-key-of-32-bytes-or-more");
        let sealed = a.seal(b"secret").unwrap();
        assert_ne!(&sealed[NONCE_LEN..], b"secret");
        assert_eq!(a.open(&sealed).unwrap(), b"secret");
        assert!(b.open(&sealed).is_err());
    }
}
