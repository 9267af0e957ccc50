//! The configs service's own settings, read from the environment beside the
//! platform's.

use kernel::settings::{Env, Platform, Secret, SettingError};
use sha2::{Digest, Sha256};

use crate::secret::{Keyring, MasterKey};

/// The platform master key that seals every tenant's data key (at least 32
/// bytes). Unset: a key derived from `PAAS_CALLER_KEY`, which every process
/// of a platform already shares (fine for a laptop; set it in production so
/// the gateway's key cannot open secrets).
pub const MASTER_KEY: &str = "PAAS_CONFIGS_MASTER_KEY";
/// Master keys replaced by a rotation, comma-separated: data keys they
/// sealed still open and are re-sealed under the current key at start.
pub const PREVIOUS_MASTER_KEYS: &str = "PAAS_CONFIGS_PREVIOUS_MASTER_KEYS";

/// The configs service's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The master keys.
    pub keyring: Keyring,
    /// Seals secret items delivered into clusters (federation opens them).
    pub delivery: kernel::seal::DeliveryKey,
}

impl Settings {
    /// Reads the settings.
    ///
    /// # Errors
    /// A master key shorter than 32 bytes.
    pub fn from_env(env: &Env, platform: &Platform) -> Result<Self, SettingError> {
        let current = match env.raw(MASTER_KEY) {
            Some(_) => env.secret(MASTER_KEY, 32)?,
            None => {
                let mut h = Sha256::new();
                h.update(b"paas-configs-master-key\0");
                h.update(platform.caller_key.expose().as_bytes());
                let derived: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
                Secret::new(derived)
            }
        };
        let mut previous = Vec::new();
        for raw in env.raw(PREVIOUS_MASTER_KEYS).unwrap_or_default().split(',') {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            if raw.len() < 32 {
                return Err(SettingError {
                    variable: PREVIOUS_MASTER_KEYS.into(),
                    expected: "comma-separated secrets of at least 32 bytes each".into(),
                    found: Some(format!("one of {} bytes", raw.len())),
                });
            }
            previous.push(MasterKey::from_secret(&Secret::new(raw)));
        }
        Ok(Self {
            keyring: Keyring {
                current: MasterKey::from_secret(&current),
                previous,
            },
            delivery: kernel::seal::DeliveryKey::from_caller_key(&platform.caller_key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform() -> Platform {
        Platform::from_env(&Env::from_pairs([(kernel::settings::CALLER_KEY, "c".repeat(32))])).unwrap()
    }

    #[test]
    fn the_master_key_defaults_to_one_derived_from_the_caller_key() {
        let a = Settings::from_env(&Env::default(), &platform()).unwrap();
        let b = Settings::from_env(&Env::default(), &platform()).unwrap();
        assert_eq!(a.keyring.current.id(), b.keyring.current.id());
        let set = Settings::from_env(&Env::from_pairs([(MASTER_KEY, "m".repeat(32))]), &platform()).unwrap();
        assert_ne!(set.keyring.current.id(), a.keyring.current.id());
    }

    #[test]
    fn short_keys_are_refused_without_showing_them() {
        let e = Settings::from_env(&Env::from_pairs([(MASTER_KEY, "hunter2")]), &platform()).unwrap_err();
        assert_eq!(e.variable, MASTER_KEY);
        assert!(!e.to_string().contains("hunter2"));
        let e = Settings::from_env(
            &Env::from_pairs([(PREVIOUS_MASTER_KEYS, format!("{},short", "p".repeat(32)))]),
            &platform(),
        )
        .unwrap_err();
        assert_eq!(e.variable, PREVIOUS_MASTER_KEYS);
        assert!(!e.to_string().contains("short"));
    }
}
