//! Credentials of member clusters: read from a registration (endpoint + CA +
//! token or client certificate, or a kubeconfig document), sealed with
//! ChaCha20-Poly1305 under the federation key before they are stored, and
//! opened only to build a kube client. The API never returns them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use kernel::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::settings::SecretKey;

const NONCE_LEN: usize = 12;

/// What authenticates the platform to a member cluster. `Debug` hides it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// PEM of the CA that signs the API server's certificate; empty: the system roots.
    #[serde(default)]
    pub ca_pem: String,
    /// Bearer token.
    #[serde(default)]
    pub token: String,
    /// Client certificate (PEM).
    #[serde(default)]
    pub client_cert_pem: String,
    /// Its private key (PEM).
    #[serde(default)]
    pub client_key_pem: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(***)")
    }
}

impl Credentials {
    /// Whether there is anything to store.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the shapes: PEM blocks where PEM is expected, a certificate
    /// only with its key.
    ///
    /// # Errors
    /// The first malformed field.
    pub fn validate(&self) -> Result<()> {
        for (field, pem) in [
            ("ca_pem", &self.ca_pem),
            ("client_cert_pem", &self.client_cert_pem),
            ("client_key_pem", &self.client_key_pem),
        ] {
            if !pem.is_empty() && !pem.trim_start().starts_with("-----BEGIN ") {
                return Err(Error::invalid(field, "must be a PEM document"));
            }
        }
        if self.client_cert_pem.is_empty() != self.client_key_pem.is_empty() {
            return Err(Error::invalid(
                "client_key_pem",
                "a client certificate needs its key, and a key its certificate",
            ));
        }
        if self.token.chars().any(char::is_control) {
            return Err(Error::invalid("token", "must not contain control characters"));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Kubeconfig {
    #[serde(rename = "current-context", default)]
    current_context: String,
    #[serde(default)]
    contexts: Vec<NamedContext>,
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    users: Vec<NamedUser>,
}
#[derive(Deserialize)]
struct NamedContext {
    name: String,
    context: ContextEntry,
}
#[derive(Deserialize)]
struct ContextEntry {
    cluster: String,
    #[serde(default)]
    user: String,
}
#[derive(Deserialize)]
struct NamedCluster {
    name: String,
    cluster: ClusterEntry,
}
#[derive(Deserialize)]
struct ClusterEntry {
    server: String,
    #[serde(rename = "certificate-authority-data", default)]
    ca_data: Option<String>,
    #[serde(rename = "certificate-authority", default)]
    ca_file: Option<String>,
}
#[derive(Deserialize)]
struct NamedUser {
    name: String,
    user: UserEntry,
}
#[derive(Deserialize, Default)]
struct UserEntry {
    #[serde(default)]
    token: Option<String>,
    #[serde(rename = "client-certificate-data", default)]
    cert_data: Option<String>,
    #[serde(rename = "client-key-data", default)]
    key_data: Option<String>,
    #[serde(rename = "client-certificate", default)]
    cert_file: Option<String>,
    #[serde(rename = "tokenFile", default)]
    token_file: Option<String>,
    #[serde(default)]
    exec: Option<serde_json::Value>,
}

fn pem_from_data(field: &str, data: &str) -> Result<String> {
    let bytes = B64
        .decode(data.trim())
        .map_err(|_| Error::invalid(field, "is not base64"))?;
    String::from_utf8(bytes).map_err(|_| Error::invalid(field, "is not PEM text"))
}

/// Reads the server and credentials of a kubeconfig's current context (the
/// only context when none is current). Everything must be inline: the
/// platform cannot read files or run commands named by someone's laptop.
///
/// # Errors
/// Not a kubeconfig, no usable context, or credentials by reference.
pub fn from_kubeconfig(text: &str) -> Result<(String, Credentials)> {
    const F: &str = "kubeconfig";
    let kc: Kubeconfig =
        serde_saphyr::from_str(text).map_err(|e| Error::invalid(F, format!("is not a kubeconfig document: {e}")))?;
    let context = if kc.current_context.is_empty() {
        match kc.contexts.as_slice() {
            [only] => only,
            _ => return Err(Error::invalid(F, "has no current-context")),
        }
    } else {
        kc.contexts
            .iter()
            .find(|c| c.name == kc.current_context)
            .ok_or_else(|| {
                Error::invalid(
                    F,
                    format!("current-context {} is not among its contexts", kc.current_context),
                )
            })?
    };
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == context.context.cluster)
        .ok_or_else(|| {
            Error::invalid(
                F,
                format!("cluster {} of the current context is missing", context.context.cluster),
            )
        })?;
    if cluster.cluster.ca_file.is_some() {
        return Err(Error::invalid(
            F,
            "certificate-authority must be inline (certificate-authority-data)",
        ));
    }
    let user = if context.context.user.is_empty() {
        UserEntry::default()
    } else {
        let u = kc.users.into_iter().find(|u| u.name == context.context.user);
        u.ok_or_else(|| {
            Error::invalid(
                F,
                format!("user {} of the current context is missing", context.context.user),
            )
        })?
        .user
    };
    if user.cert_file.is_some() || user.token_file.is_some() || user.exec.is_some() {
        return Err(Error::invalid(
            F,
            "the user's credentials must be inline (token or client-certificate-data and client-key-data)",
        ));
    }
    let credentials = Credentials {
        ca_pem: cluster
            .cluster
            .ca_data
            .as_deref()
            .map(|d| pem_from_data("kubeconfig.certificate-authority-data", d))
            .transpose()?
            .unwrap_or_default(),
        token: user.token.unwrap_or_default(),
        client_cert_pem: user
            .cert_data
            .as_deref()
            .map(|d| pem_from_data("kubeconfig.client-certificate-data", d))
            .transpose()?
            .unwrap_or_default(),
        client_key_pem: user
            .key_data
            .as_deref()
            .map(|d| pem_from_data("kubeconfig.client-key-data", d))
            .transpose()?
            .unwrap_or_default(),
    };
    credentials.validate()?;
    Ok((cluster.cluster.server.clone(), credentials))
}

/// Encrypts credentials for cluster `name` (bound to it as associated data,
/// so a record copied to another cluster's row does not open): a random
/// nonce followed by the ciphertext.
pub fn seal(key: &SecretKey, name: &str, credentials: &Credentials) -> Vec<u8> {
    seal_bytes(
        key,
        name.as_bytes(),
        &serde_json::to_vec(credentials).expect("credentials serialise"),
    )
}

/// Encrypts `plain` bound to `aad` (what it belongs to): a random nonce
/// followed by the ciphertext. Every secret federation keeps at rest is
/// sealed this way.
pub fn seal_bytes(key: &SecretKey, aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key.0));
    let nonce: [u8; NONCE_LEN] = rand::random();
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
        .expect("in-memory encryption does not fail");
    [nonce.as_slice(), &sealed].concat()
}

/// Decrypts what [`seal_bytes`] produced for `aad`; `None` for another key,
/// another owner's record or tampered bytes.
pub fn open_bytes(key: &SecretKey, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() <= NONCE_LEN {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key.0));
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .ok()
}

/// Decrypts what [`seal`] produced for `name`.
///
/// # Errors
/// Another key, another cluster's record, or tampered bytes.
pub fn open(key: &SecretKey, name: &str, sealed: &[u8]) -> Result<Credentials> {
    let unreadable = || {
        Error::FailedPrecondition(format!(
            "the stored credentials of cluster {name} cannot be decrypted with the configured key"
        ))
    };
    let plain = open_bytes(key, name.as_bytes(), sealed).ok_or_else(unreadable)?;
    serde_json::from_slice(&plain).map_err(|_| unreadable())
}

/// Builds a kube client for `endpoint` with `credentials`, through kube's own
/// kubeconfig loader so TLS and authentication work as for `kubectl`.
///
/// # Errors
/// The credentials do not make a valid client configuration.
pub async fn client(name: &str, endpoint: &str, credentials: &Credentials) -> Result<kube::Client> {
    let mut cluster = json!({"server": endpoint});
    if !credentials.ca_pem.is_empty() {
        cluster["certificate-authority-data"] = json!(B64.encode(&credentials.ca_pem));
    }
    let mut user = json!({});
    if !credentials.token.is_empty() {
        user["token"] = json!(credentials.token);
    }
    if !credentials.client_cert_pem.is_empty() {
        user["client-certificate-data"] = json!(B64.encode(&credentials.client_cert_pem));
        user["client-key-data"] = json!(B64.encode(&credentials.client_key_pem));
    }
    let doc = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
    });
    let bad =
        |e: &dyn fmt::Display| Error::FailedPrecondition(format!("cluster {name}: unusable client configuration: {e}"));
    let kubeconfig: kube::config::Kubeconfig = serde_json::from_value(doc).map_err(|e| bad(&e))?;
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| bad(&e))?;
    config.connect_timeout = Some(Duration::from_secs(2));
    config.read_timeout = Some(Duration::from_secs(10));
    kube::Client::try_from(config).map_err(|e| bad(&e))
}

/// A cached client and the fingerprint of the endpoint and sealed credentials it was built from.
type Cached = ([u8; 32], kube::Client);

/// Kube clients per cluster, built from the stored endpoint and credentials
/// and rebuilt when either changes (re-registration). Cheap to clone.
#[derive(Clone)]
pub struct Clients {
    pool: PgPool,
    key: SecretKey,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

impl Clients {
    /// Clients for the clusters in `pool`'s registry, opened with `key`.
    pub fn new(pool: PgPool, key: SecretKey) -> Self {
        Self {
            pool,
            key,
            cache: Arc::default(),
        }
    }

    /// The key credentials are sealed with.
    pub fn key(&self) -> &SecretKey {
        &self.key
    }

    /// Forgets the clients of clusters for which `keep` is false (deregistered).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.cache.lock().expect("not poisoned").retain(|name, _| keep(name));
    }

    /// The client of registered cluster `name`.
    ///
    /// # Errors
    /// Not registered, or its credentials cannot be opened.
    pub async fn by_name(&self, name: &str) -> Result<kube::Client> {
        let row = sqlx::query!("SELECT api_endpoint, credentials FROM clusters WHERE name = $1", name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::FailedPrecondition(format!("cluster {name} is not registered")))?;
        self.get(name, &row.api_endpoint, row.credentials.as_deref()).await
    }

    /// The client for `name` at `endpoint` with `sealed` credentials.
    ///
    /// # Errors
    /// The credentials cannot be opened or make no valid client.
    pub async fn get(&self, name: &str, endpoint: &str, sealed: Option<&[u8]>) -> Result<kube::Client> {
        let mut h = Sha256::new();
        h.update(endpoint.as_bytes());
        h.update([0]);
        h.update(sealed.unwrap_or_default());
        let fingerprint: [u8; 32] = h.finalize().into();
        if let Some((f, c)) = self.cache.lock().expect("not poisoned").get(name)
            && *f == fingerprint
        {
            return Ok(c.clone());
        }
        let credentials = sealed
            .map(|s| open(&self.key, name, s))
            .transpose()?
            .unwrap_or_default();
        let client = client(name, endpoint, &credentials).await?;
        self.cache
            .lock()
            .expect("not poisoned")
            .insert(name.to_string(), (fingerprint, client.clone()));
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn kubeconfig(user: &str) -> String {
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: other
  cluster:
    server: https://other.example:6443
- name: east
  cluster:
    server: https://east.example:6443
    certificate-authority-data: {ca}
contexts:
- name: east-admin
  context:
    cluster: east
    user: admin
current-context: east-admin
users:
- name: admin
  user:
{user}
",
            ca = B64.encode(CA)
        )
    }

    #[test]
    fn a_kubeconfig_gives_the_current_contexts_server_ca_and_token() {
        let (server, c) = from_kubeconfig(&kubeconfig("    token: s3cr3t-token")).unwrap();
        assert_eq!(server, "https://east.example:6443");
        assert_eq!(c.ca_pem, CA);
        assert_eq!(c.token, "s3cr3t-token");
        assert!(c.client_cert_pem.is_empty());
    }

    #[test]
    fn a_kubeconfig_gives_client_certificates() {
        let user = format!(
            "    client-certificate-data: {}\n    client-key-data: {}",
            B64.encode("-----BEGIN CERTIFICATE-----\nX\n"),
            B64.encode("-----BEGIN PRIVATE KEY-----\nY\n")
        );
        let (_, c) = from_kubeconfig(&kubeconfig(&user)).unwrap();
        assert!(c.client_cert_pem.starts_with("-----BEGIN CERTIFICATE"));
        assert!(c.client_key_pem.starts_with("-----BEGIN PRIVATE KEY"));
    }

    #[test]
    fn credentials_by_reference_or_garbage_are_refused() {
        assert!(from_kubeconfig(&kubeconfig("    tokenFile: /var/run/token")).is_err());
        assert!(from_kubeconfig(&kubeconfig("    exec:\n      command: aws")).is_err());
        assert!(from_kubeconfig("not: [a, kubeconfig").is_err());
        let e = from_kubeconfig(
            &kubeconfig("    token: x").replace("current-context: east-admin", "current-context: nope"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("nope"));
    }

    #[test]
    fn sealed_credentials_open_only_with_the_same_key_and_cluster() {
        let key = SecretKey::new([1; 32]);
        let c = Credentials {
            token: "s3cr3t-token".into(),
            ..Default::default()
        };
        let sealed = seal(&key, "east", &c);
        assert!(!sealed.windows(c.token.len()).any(|w| w == c.token.as_bytes()));
        assert_ne!(seal(&key, "east", &c), sealed, "a fresh nonce each time");
        assert_eq!(open(&key, "east", &sealed).unwrap(), c);
        assert!(open(&SecretKey::new([2; 32]), "east", &sealed).is_err());
        assert!(open(&key, "west", &sealed).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(open(&key, "east", &tampered).is_err());
        assert_eq!(format!("{c:?}"), "Credentials(***)");
    }

    #[test]
    fn a_certificate_needs_its_key() {
        let c = Credentials {
            client_cert_pem: "-----BEGIN CERTIFICATE-----\n".into(),
            ..Default::default()
        };
        assert!(c.validate().is_err());
        assert!(
            Credentials {
                ca_pem: "nope".into(),
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }
}
