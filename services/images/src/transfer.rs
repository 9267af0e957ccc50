//! Copying one image between OCI distribution registries: its manifest,
//! the manifests an image index lists, and every blob they reference.
//!
//! A copy is planned from the source first (manifests are small and read
//! whole, each checked against its digest), then executed on the target:
//! blobs the target already has are skipped (`HEAD`), blobs it holds in
//! another repository are mounted (`POST ?mount=&from=`), the others stream
//! from source to target chunk by chunk (a layer is never held in memory
//! whole) and are hashed on the way; manifests are put children first, so
//! the target never holds an index whose images are missing, and the digest
//! the target answers must be the one copied.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kernel::{Error, Result};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The manifest media types asked for (indexes included: copies keep every platform).
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// A registry and the bearer token to use there.
#[derive(Debug, Clone)]
pub struct Endpoint {
    base: String,
    token: String,
}

impl Endpoint {
    /// Registry `base` (`http(s)://host:port`) with `token`.
    pub fn new(base: &str, token: String) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            token,
        }
    }

    fn url(&self, repository: &str, rest: &str) -> String {
        format!("{}/v2/{repository}/{rest}", self.base)
    }

    /// A `Location` the registry answered, made absolute (registries with
    /// `relativeurls` answer paths).
    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base)
        }
    }
}

/// A manifest read from the source and checked against its digest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// `sha256:...`.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its bytes, exactly as the source holds them.
    pub body: bytes::Bytes,
}

/// A blob an image needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Blob {
    /// `sha256:...`.
    pub digest: String,
    /// Bytes, as the manifest says.
    pub size: i64,
}

/// Everything one image is made of, read from the source.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Manifests, children before the index that lists them; the last is the image's.
    pub manifests: Vec<Manifest>,
    /// The blobs of every manifest, once each.
    pub blobs: Vec<Blob>,
}

impl Plan {
    /// The image's own digest.
    pub fn digest(&self) -> &str {
        self.manifests.last().map_or("", |m| m.digest.as_str())
    }
}

/// What executing a plan did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    /// Bytes streamed (blobs and manifests).
    pub bytes: i64,
    /// Blobs streamed.
    pub blobs_copied: usize,
    /// Blobs the target already had.
    pub blobs_present: usize,
    /// Blobs mounted from another repository of the target.
    pub blobs_mounted: usize,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("{what}: {e}"))
}

/// The `sha256:` digest of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    format!("sha256:{}", hash.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn is_index(media_type: &str, doc: &Value) -> bool {
    media_type.contains("image.index") || media_type.contains("manifest.list") || doc.get("manifests").is_some()
}

/// Copies images between registries over one HTTP client.
#[derive(Clone)]
pub struct Transfer {
    http: reqwest::Client,
}

impl Transfer {
    /// Copies over `http`.
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    /// The digest `reference` has in `repository` at `at`, if it is there.
    ///
    /// # Errors
    /// The registry does not answer, or answers something unexpected.
    pub async fn head_manifest(&self, at: &Endpoint, repository: &str, reference: &str) -> Result<Option<String>> {
        let url = at.url(repository, &format!("manifests/{reference}"));
        let response = self
            .http
            .head(&url)
            .bearer_auth(&at.token)
            .header(ACCEPT, ACCEPT_MANIFESTS)
            .send()
            .await
            .map_err(|e| unavailable("target registry", e))?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)),
            s => Err(Error::Unavailable(format!("registry answered {s} for HEAD {url}"))),
        }
    }

    async fn get_manifest(&self, from: &Endpoint, repository: &str, digest: &str) -> Result<(Manifest, Value)> {
        let url = from.url(repository, &format!("manifests/{digest}"));
        let response = self
            .http
            .get(&url)
            .bearer_auth(&from.token)
            .header(ACCEPT, ACCEPT_MANIFESTS)
            .send()
            .await
            .map_err(|e| unavailable("source registry", e))?;
        if !response.status().is_success() {
            return Err(Error::Unavailable(format!(
                "source registry answered {} for {url}",
                response.status()
            )));
        }
        let header_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response.bytes().await.map_err(|e| unavailable("source registry", e))?;
        let actual = sha256_digest(&body);
        if actual != digest {
            return Err(Error::FailedPrecondition(format!(
                "the source's manifest {digest} hashes to {actual}"
            )));
        }
        let doc: Value =
            serde_json::from_slice(&body).map_err(|e| Error::FailedPrecondition(format!("manifest {digest}: {e}")))?;
        let media_type = doc["mediaType"].as_str().map_or(header_type, str::to_string);
        Ok((
            Manifest {
                digest: digest.to_string(),
                media_type,
                body,
            },
            doc,
        ))
    }

    /// Reads image `digest` of `repository` at `from`: its manifest, an
    /// index's manifests, and the blobs they reference.
    ///
    /// # Errors
    /// The source does not answer, or a manifest does not match its digest.
    pub async fn plan(&self, from: &Endpoint, repository: &str, digest: &str) -> Result<Plan> {
        let (top, doc) = self.get_manifest(from, repository, digest).await?;
        let mut manifests = Vec::new();
        let mut blobs = BTreeSet::new();
        if is_index(&top.media_type, &doc) {
            for child in doc["manifests"].as_array().into_iter().flatten() {
                let Some(d) = child["digest"].as_str() else { continue };
                let (m, child_doc) = self.get_manifest(from, repository, d).await?;
                collect_blobs(&child_doc, &mut blobs);
                manifests.push(m);
            }
        } else {
            collect_blobs(&doc, &mut blobs);
        }
        manifests.push(top);
        Ok(Plan {
            manifests,
            blobs: blobs.into_iter().collect(),
        })
    }

    /// Puts `plan` into `repository` at `to`, tagged `tag` (or by digest
    /// alone when `tag` is empty), streaming blobs from `source` (the same
    /// repository at the source registry). `mount_from` names, per blob
    /// digest, a repository of the target that holds it; `parallel` blobs
    /// stream at once.
    ///
    /// # Errors
    /// Either registry fails or refuses, or a digest does not match.
    pub async fn execute(
        &self,
        (from, source_repository): (&Endpoint, &str),
        (to, repository): (&Endpoint, &str),
        plan: &Plan,
        tag: &str,
        mount_from: &std::collections::HashMap<String, String>,
        parallel: usize,
    ) -> Result<Copied> {
        // Futures made up front: a stream mapping a borrowing closure is not provably `Send`.
        let copies: Vec<_> = plan
            .blobs
            .iter()
            .map(|blob| {
                self.blob(
                    from,
                    source_repository,
                    to,
                    repository,
                    blob,
                    mount_from.get(&blob.digest),
                )
            })
            .collect();
        let results: Vec<Result<Copied>> = futures::stream::iter(copies)
            .buffer_unordered(parallel.max(1))
            .collect()
            .await;
        let mut copied = Copied::default();
        for r in results {
            let r = r?;
            copied.bytes += r.bytes;
            copied.blobs_copied += r.blobs_copied;
            copied.blobs_present += r.blobs_present;
            copied.blobs_mounted += r.blobs_mounted;
        }
        let last = plan.manifests.len().saturating_sub(1);
        for (i, m) in plan.manifests.iter().enumerate() {
            let reference = if i == last && !tag.is_empty() { tag } else { &m.digest };
            self.put_manifest(to, repository, reference, m).await?;
            copied.bytes += i64::try_from(m.body.len()).unwrap_or(i64::MAX);
        }
        Ok(copied)
    }

    /// Puts manifest `m` into `repository` at `to` as `reference` (a tag or its digest).
    ///
    /// # Errors
    /// The registry fails or refuses, or stores it under another digest.
    pub async fn put_manifest(&self, to: &Endpoint, repository: &str, reference: &str, m: &Manifest) -> Result<()> {
        let url = to.url(repository, &format!("manifests/{reference}"));
        let response = self
            .http
            .put(&url)
            .bearer_auth(&to.token)
            .header(CONTENT_TYPE, &m.media_type)
            .body(m.body.clone())
            .send()
            .await
            .map_err(|e| unavailable("target registry", e))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(Error::Unavailable(format!(
                "target registry answered {status} for manifest {}: {}",
                m.digest,
                text.chars().take(300).collect::<String>()
            )));
        }
        let answered = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !answered.is_empty() && answered != m.digest {
            return Err(Error::FailedPrecondition(format!(
                "the target stored manifest {} as {answered}",
                m.digest
            )));
        }
        Ok(())
    }

    /// The manifest `reference` (a tag or digest) names in `repository` at
    /// `at`, read whole (manifests are small), if it is there.
    ///
    /// # Errors
    /// The registry does not answer, answers something unexpected, or a
    /// manifest asked by digest hashes otherwise.
    pub async fn manifest_at(&self, at: &Endpoint, repository: &str, reference: &str) -> Result<Option<Manifest>> {
        let url = at.url(repository, &format!("manifests/{reference}"));
        let response = self
            .http
            .get(&url)
            .bearer_auth(&at.token)
            .header(ACCEPT, ACCEPT_MANIFESTS)
            .send()
            .await
            .map_err(|e| unavailable("registry", e))?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            s => return Err(Error::Unavailable(format!("registry answered {s} for GET {url}"))),
        }
        let media_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response.bytes().await.map_err(|e| unavailable("registry", e))?;
        let digest = sha256_digest(&body);
        if reference.starts_with("sha256:") && digest != reference {
            return Err(Error::FailedPrecondition(format!(
                "manifest {reference} hashes to {digest}"
            )));
        }
        Ok(Some(Manifest {
            digest,
            media_type,
            body,
        }))
    }

    /// Blob `digest` of `repository` at `at`, read whole and checked against
    /// its digest; for small blobs only (at most `limit` bytes).
    ///
    /// # Errors
    /// The registry fails, the blob is larger than `limit`, or it hashes otherwise.
    pub async fn small_blob(
        &self,
        at: &Endpoint,
        repository: &str,
        digest: &str,
        limit: usize,
    ) -> Result<bytes::Bytes> {
        let url = at.url(repository, &format!("blobs/{digest}"));
        let response = self
            .http
            .get(&url)
            .bearer_auth(&at.token)
            .send()
            .await
            .map_err(|e| unavailable("registry", e))?;
        if !response.status().is_success() {
            return Err(Error::Unavailable(format!(
                "registry answered {} for blob {digest}",
                response.status()
            )));
        }
        if response
            .content_length()
            .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
        {
            return Err(Error::FailedPrecondition(format!(
                "blob {digest} is over {limit} bytes"
            )));
        }
        let body = response.bytes().await.map_err(|e| unavailable("registry", e))?;
        if body.len() > limit {
            return Err(Error::FailedPrecondition(format!(
                "blob {digest} is over {limit} bytes"
            )));
        }
        let actual = sha256_digest(&body);
        if actual != digest {
            return Err(Error::FailedPrecondition(format!("blob {digest} hashes to {actual}")));
        }
        Ok(body)
    }

    /// Uploads `body` as a blob of `repository` at `to` in one request
    /// (small blobs only); returns its digest.
    ///
    /// # Errors
    /// The registry fails or refuses.
    pub async fn put_small_blob(&self, to: &Endpoint, repository: &str, body: Vec<u8>) -> Result<String> {
        let digest = sha256_digest(&body);
        let started = self
            .http
            .post(to.url(repository, "blobs/uploads/"))
            .bearer_auth(&to.token)
            .header(CONTENT_LENGTH, 0)
            .send()
            .await
            .map_err(|e| unavailable("registry", e))?;
        if started.status() != StatusCode::ACCEPTED {
            return Err(Error::Unavailable(format!(
                "registry answered {} to an upload of {digest}",
                started.status()
            )));
        }
        let location = started
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| to.absolute(l))
            .ok_or_else(|| Error::Unavailable("the registry's upload has no Location".to_string()))?;
        let separator = if location.contains('?') { '&' } else { '?' };
        let response = self
            .http
            .put(format!("{location}{separator}digest={digest}"))
            .bearer_auth(&to.token)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, body.len())
            .body(body)
            .send()
            .await
            .map_err(|e| unavailable("registry", e))?;
        if response.status() != StatusCode::CREATED {
            return Err(Error::Unavailable(format!(
                "registry answered {} for blob {digest}",
                response.status()
            )));
        }
        Ok(digest)
    }

    async fn blob(
        &self,
        from: &Endpoint,
        source_repository: &str,
        to: &Endpoint,
        repository: &str,
        blob: &Blob,
        mount_from: Option<&String>,
    ) -> Result<Copied> {
        let head = self
            .http
            .head(to.url(repository, &format!("blobs/{}", blob.digest)))
            .bearer_auth(&to.token)
            .send()
            .await
            .map_err(|e| unavailable("target registry", e))?;
        if head.status().is_success() {
            return Ok(Copied {
                blobs_present: 1,
                ..Copied::default()
            });
        }
        let start = match mount_from.filter(|r| *r != repository) {
            Some(other) => to.url(
                repository,
                &format!("blobs/uploads/?mount={}&from={other}", blob.digest),
            ),
            None => to.url(repository, "blobs/uploads/"),
        };
        let started = self
            .http
            .post(&start)
            .bearer_auth(&to.token)
            .header(CONTENT_LENGTH, 0)
            .send()
            .await
            .map_err(|e| unavailable("target registry", e))?;
        match started.status() {
            StatusCode::CREATED => {
                return Ok(Copied {
                    blobs_mounted: 1,
                    ..Copied::default()
                });
            }
            StatusCode::ACCEPTED => {}
            s => {
                return Err(Error::Unavailable(format!(
                    "target registry answered {s} to an upload of {}",
                    blob.digest
                )));
            }
        }
        let location = started
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| to.absolute(l))
            .ok_or_else(|| Error::Unavailable("the target's upload has no Location".to_string()))?;
        let bytes = self.stream_blob(from, source_repository, to, &location, blob).await?;
        Ok(Copied {
            bytes,
            blobs_copied: 1,
            ..Copied::default()
        })
    }

    /// Streams one blob from the source into an upload session at the
    /// target, hashing it on the way.
    async fn stream_blob(
        &self,
        from: &Endpoint,
        source_repository: &str,
        to: &Endpoint,
        location: &str,
        blob: &Blob,
    ) -> Result<i64> {
        let source = self
            .http
            .get(from.url(source_repository, &format!("blobs/{}", blob.digest)))
            .bearer_auth(&from.token)
            .send()
            .await
            .map_err(|e| unavailable("source registry", e))?;
        if !source.status().is_success() {
            return Err(Error::Unavailable(format!(
                "source registry answered {} for blob {}",
                source.status(),
                blob.digest
            )));
        }
        let length = source.content_length();
        let hasher = Arc::new(Mutex::new((Sha256::new(), 0_i64)));
        let seen = hasher.clone();
        let body = source.bytes_stream().map(move |chunk| {
            if let Ok(c) = &chunk {
                let mut h = seen.lock().expect("not poisoned");
                h.0.update(c);
                h.1 += i64::try_from(c.len()).unwrap_or(i64::MAX);
            }
            chunk
        });
        let separator = if location.contains('?') { '&' } else { '?' };
        let mut put = self
            .http
            .put(format!("{location}{separator}digest={}", blob.digest))
            .bearer_auth(&to.token)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap_stream(body));
        if let Some(n) = length {
            put = put.header(CONTENT_LENGTH, n);
        }
        let response = put.send().await.map_err(|e| unavailable("blob copy", e))?;
        if response.status() != StatusCode::CREATED {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(Error::Unavailable(format!(
                "target registry answered {status} for blob {}: {}",
                blob.digest,
                text.chars().take(300).collect::<String>()
            )));
        }
        let (hash, bytes) = {
            let h = hasher.lock().expect("not poisoned");
            (h.0.clone().finalize(), h.1)
        };
        let actual = format!("sha256:{}", hash.iter().map(|b| format!("{b:02x}")).collect::<String>());
        if actual != blob.digest {
            return Err(Error::FailedPrecondition(format!(
                "blob {} streamed as {actual}",
                blob.digest
            )));
        }
        Ok(bytes)
    }
}

fn collect_blobs(doc: &Value, blobs: &mut BTreeSet<Blob>) {
    let config = doc.get("config").into_iter();
    let layers = doc["layers"].as_array().into_iter().flatten();
    for d in config.chain(layers) {
        if let Some(digest) = d["digest"].as_str() {
            blobs.insert(Blob {
                digest: digest.to_string(),
                size: d["size"].as_i64().unwrap_or(0),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_manifest_lists_its_config_and_layers_once() {
        let doc = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": "sha256:c", "size": 2},
            "layers": [{"digest": "sha256:a", "size": 5}, {"digest": "sha256:a", "size": 5}]
        });
        let mut blobs = BTreeSet::new();
        collect_blobs(&doc, &mut blobs);
        let digests: Vec<_> = blobs.iter().map(|b| b.digest.as_str()).collect();
        assert_eq!(digests, ["sha256:a", "sha256:c"]);
        assert!(!is_index("application/vnd.oci.image.manifest.v1+json", &doc));
        assert!(is_index(
            "application/vnd.oci.image.index.v1+json",
            &serde_json::json!({})
        ));
    }

    #[test]
    fn relative_locations_are_made_absolute() {
        let e = Endpoint::new("http://127.0.0.1:5000/", String::new());
        assert_eq!(
            e.absolute("/v2/a/blobs/uploads/x?_state=y"),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=y"
        );
        assert_eq!(e.absolute("https://r/v2/x"), "https://r/v2/x");
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
