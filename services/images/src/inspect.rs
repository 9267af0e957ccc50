//! Reads an image's metadata from the registry: its manifest (or index, with
//! the platforms it covers) and its config (labels, exposed ports,
//! entrypoint, cmd, user, created), and the build source from the OCI
//! annotations `org.opencontainers.image.source` / `revision` (or labels of
//! the same names, which builders such as buildah write).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kernel::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";
const SOURCE: &str = "org.opencontainers.image.source";
const REVISION: &str = "org.opencontainers.image.revision";

/// One platform of a multi-arch index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePlatform {
    /// `linux`.
    pub os: String,
    /// `amd64`.
    pub architecture: String,
    /// `v8`, or empty.
    #[serde(default)]
    pub variant: String,
}

/// What the catalog shows of an image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageMetadata {
    /// The manifest's (or index's) digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Manifest, config and layers, in bytes (of every platform for an index).
    pub size: i64,
    /// The platforms of an index; one for a single image when its config says.
    pub platforms: Vec<ImagePlatform>,
    /// From the config.
    pub created: Option<DateTime<Utc>>,
    /// Config labels.
    pub labels: BTreeMap<String, String>,
    /// `8080/tcp`, ...
    pub exposed_ports: Vec<String>,
    /// Entrypoint.
    pub entrypoint: Vec<String>,
    /// Cmd.
    pub cmd: Vec<String>,
    /// User.
    pub user: String,
    /// Build source.
    pub source: String,
    /// Build revision.
    pub revision: String,
}

/// A registry to read from, with a bearer token for the repository.
pub struct Reader<'a> {
    http: &'a reqwest::Client,
    base: String,
    repository: &'a str,
    token: String,
}

impl<'a> Reader<'a> {
    /// Reads `repository` at registry `base` with `token`.
    pub fn new(http: &'a reqwest::Client, base: &str, repository: &'a str, token: String) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            repository,
            token,
        }
    }

    async fn get(&self, kind: &str, reference: &str) -> Result<(String, String, Vec<u8>)> {
        let url = format!("{}/v2/{}/{kind}/{reference}", self.base, self.repository);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, ACCEPT)
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("registry: {e}")))?;
        if !response.status().is_success() {
            return Err(Error::Unavailable(format!(
                "registry answered {} for {url}",
                response.status()
            )));
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let (media_type, digest) = (header("content-type"), header("docker-content-digest"));
        let body = response
            .bytes()
            .await
            .map_err(|e| Error::Unavailable(format!("registry: {e}")))?;
        Ok((media_type, digest, body.to_vec()))
    }

    /// The metadata of `reference` (a tag or digest).
    ///
    /// # Errors
    /// The registry does not answer, or answers something that is not a manifest.
    pub async fn metadata(&self, reference: &str) -> Result<ImageMetadata> {
        let (media_type, digest, body) = self.get("manifests", reference).await?;
        let doc: Value = serde_json::from_slice(&body).map_err(|e| Error::Unavailable(format!("manifest: {e}")))?;
        let media_type = doc["mediaType"].as_str().map_or(media_type, str::to_string);
        let mut meta = ImageMetadata {
            digest,
            media_type,
            size: body.len() as i64,
            ..ImageMetadata::default()
        };
        let annotations = doc["annotations"].clone();
        if let Some(manifests) = doc["manifests"].as_array() {
            // An index: its platforms, and the first image's config for the rest.
            let mut first = None;
            for m in manifests {
                let p = &m["platform"];
                let os = p["os"].as_str().unwrap_or_default();
                // Attestation manifests are `unknown/unknown`: not a platform.
                if os.is_empty() || os == "unknown" {
                    continue;
                }
                meta.platforms.push(ImagePlatform {
                    os: os.to_string(),
                    architecture: p["architecture"].as_str().unwrap_or_default().to_string(),
                    variant: p["variant"].as_str().unwrap_or_default().to_string(),
                });
                meta.size += m["size"].as_i64().unwrap_or(0);
                first = first.or_else(|| m["digest"].as_str().map(str::to_string));
            }
            if let Some(child) = first {
                let (_, _, body) = self.get("manifests", &child).await?;
                let child: Value =
                    serde_json::from_slice(&body).map_err(|e| Error::Unavailable(format!("manifest: {e}")))?;
                meta.size += layers_size(&child);
                self.read_config(&child, &mut meta).await?;
                source_from(&child["annotations"], &mut meta);
            }
        } else {
            meta.size += layers_size(&doc);
            self.read_config(&doc, &mut meta).await?;
        }
        source_from(&annotations, &mut meta);
        Ok(meta)
    }

    async fn read_config(&self, manifest: &Value, meta: &mut ImageMetadata) -> Result<()> {
        let Some(digest) = manifest["config"]["digest"].as_str() else {
            return Ok(());
        };
        let (_, _, body) = self.get("blobs", digest).await?;
        let config: Value = serde_json::from_slice(&body).map_err(|e| Error::Unavailable(format!("config: {e}")))?;
        apply_config(&config, meta);
        Ok(())
    }
}

fn layers_size(manifest: &Value) -> i64 {
    let config = manifest["config"]["size"].as_i64().unwrap_or(0);
    let layers: i64 = manifest["layers"]
        .as_array()
        .map_or(0, |l| l.iter().filter_map(|l| l["size"].as_i64()).sum());
    config + layers
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Fills `meta` from an image config document.
pub fn apply_config(config: &Value, meta: &mut ImageMetadata) {
    let c = &config["config"];
    meta.created = config["created"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    meta.labels = c["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    meta.exposed_ports = c["ExposedPorts"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    meta.entrypoint = strings(&c["Entrypoint"]);
    meta.cmd = strings(&c["Cmd"]);
    meta.user = c["User"].as_str().unwrap_or_default().to_string();
    if meta.platforms.is_empty()
        && let Some(os) = config["os"].as_str()
    {
        meta.platforms.push(ImagePlatform {
            os: os.to_string(),
            architecture: config["architecture"].as_str().unwrap_or_default().to_string(),
            variant: config["variant"].as_str().unwrap_or_default().to_string(),
        });
    }
    let labels = serde_json::to_value(&meta.labels).unwrap_or_default();
    source_from(&labels, meta);
}

/// Annotations win over labels: they are set per manifest at push time.
fn source_from(annotations: &Value, meta: &mut ImageMetadata) {
    if let Some(s) = annotations[SOURCE].as_str() {
        meta.source = s.to_string();
    }
    if let Some(r) = annotations[REVISION].as_str() {
        meta.revision = r.to_string();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_config_gives_ports_entrypoint_user_labels_and_source() {
        let mut meta = ImageMetadata::default();
        apply_config(
            &json!({
                "created": "2026-12-01T10:00:00Z", "os": "linux", "architecture": "arm64", "variant": "v8",
                "config": {
                    "ExposedPorts": {"8080/tcp": {}}, "Entrypoint": ["/bin/web"], "Cmd": ["--port", "8080"],
                    "User": "1000", "Labels": {"team": "shop", SOURCE: "https://git/x", REVISION: "abc"}
                }
            }),
            &mut meta,
        );
        assert_eq!(meta.exposed_ports, vec!["8080/tcp"]);
        assert_eq!(meta.entrypoint, vec!["/bin/web"]);
        assert_eq!(meta.cmd, vec!["--port", "8080"]);
        assert_eq!(meta.user, "1000");
        assert_eq!(meta.labels["team"], "shop");
        assert_eq!((meta.source.as_str(), meta.revision.as_str()), ("https://git/x", "abc"));
        assert_eq!(meta.platforms[0].architecture, "arm64");
        assert!(meta.created.is_some());
        source_from(&json!({SOURCE: "https://git/y"}), &mut meta);
        assert_eq!(meta.source, "https://git/y");
    }
}
