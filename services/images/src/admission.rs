//! Production admission and digest pinning: what a release may run.
//!
//! Apps asks at every release ([`Admission::admit`]) with each container's
//! image. In `production` every image must pass the rules below, in order,
//! and the first one failing refuses the release naming the rule and the
//! image's field (`services[0].containers[0].image`):
//!
//! 1. `own-repository`: in the platform's registry, in a repository of the
//!    tenant itself or of the platform's base images ([`BASE_NAMESPACE`]);
//! 2. `pinned`: by a version tag (never `latest`, never untagged) or a digest;
//! 3. `released`: the tag (or a tag of the digest) is in the `released` state;
//! 4. `exposed-ports`: every port the template declares is exposed by the image;
//! 5. `entrypoint`: the image has an entrypoint or cmd (or the template sets a command);
//! 6. `scan-severity`: when the tenant's scan policy for production sets a
//!    highest severity, the image's finished scan finds nothing above it;
//! 7. `signature`: when the tenant's signature policy for production requires
//!    signatures, the image's digest carries a valid cosign signature by one
//!    of its repository owner's keys ([`crate::signature`]).
//!
//! Everywhere, an image found in the catalog is resolved to its digest and
//! the rendered objects carry `repo:tag@sha256:...`: a later push of the same
//! tag changes nothing that runs. Other environments are not refused.

use kernel::{Error, Result};
use sqlx::PgPool;
use uuid::Uuid;

/// The namespace of the platform's base images: repositories named
/// `platform/<project>/<name>`, pushed by the platform's own tenant of that
/// name, usable by every tenant in production.
pub const BASE_NAMESPACE: &str = "platform";

/// The only environment whose releases are refused.
pub const PRODUCTION: &str = "production";

/// An admission rule, named in refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// From the tenant's own repositories or the platform's base images.
    OwnRepository,
    /// A version tag or a digest.
    Pinned,
    /// In the `released` state.
    Released,
    /// Exposes the template's ports.
    ExposedPorts,
    /// Has an entrypoint or cmd.
    Entrypoint,
    /// Scanned, with nothing above the policy's severity.
    ScanSeverity,
    /// Signed by a key of the repository's owner.
    Signature,
}

impl Rule {
    /// The rule's name as refusals give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OwnRepository => "own-repository",
            Self::Pinned => "pinned",
            Self::Released => "released",
            Self::ExposedPorts => "exposed-ports",
            Self::Entrypoint => "entrypoint",
            Self::ScanSeverity => "scan-severity",
            Self::Signature => "signature",
        }
    }

    fn refuse(self, field: &str, image: &str, why: impl std::fmt::Display) -> Error {
        Error::invalid(field, format!("admission rule {}: image {image} {why}", self.as_str()))
    }
}

/// An image reference: `[host[:port]/]path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The registry host, if written.
    pub host: Option<String>,
    /// The repository path.
    pub repository: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The digest, if any (`sha256:...`).
    pub digest: Option<String>,
}

impl Reference {
    /// Parses a reference as container runtimes read it.
    ///
    /// # Errors
    /// Not a reference (empty parts, a malformed digest); names `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let bad = |why: &str| Error::invalid(field, format!("{raw} is not an image reference: {why}"));
        let (rest, digest) = match raw.split_once('@') {
            Some((rest, digest)) => {
                let hex = digest
                    .strip_prefix("sha256:")
                    .ok_or_else(|| bad("the digest is not sha256"))?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("the digest is not 64 hex digits"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (raw, None),
        };
        let (host, path) = match rest.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                (Some(first.to_string()), path)
            }
            _ => (None, rest),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) => (repository, Some(tag.to_string())),
            None => (path, None),
        };
        if repository.is_empty() || repository.split('/').any(str::is_empty) || tag.as_deref() == Some("") {
            return Err(bad("an empty part"));
        }
        Ok(Self {
            host,
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// The reference pinned to `digest`: `repo:tag@digest`, or `repo@digest`.
    pub fn pinned(&self, digest: &str) -> String {
        let host = self.host.as_ref().map_or(String::new(), |h| format!("{h}/"));
        let tag = self.tag.as_ref().map_or(String::new(), |t| format!(":{t}"));
        format!("{host}{}{tag}@{digest}", self.repository)
    }

    /// Whether its tag names a version (`1.4.2`, `v2`, `2026.12.01`) rather
    /// than a moving pointer (`latest`, `stable`, `main`).
    pub fn version_tagged(&self) -> bool {
        let Some(tag) = &self.tag else { return false };
        let tag = tag.strip_prefix('v').unwrap_or(tag);
        tag.starts_with(|c: char| c.is_ascii_digit())
    }
}

/// A container's image as a release uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    /// Its field (`services[0].containers[0].image`).
    pub field: String,
    /// The reference written.
    pub image: String,
    /// Ports declared, `8080/tcp`.
    pub ports: Vec<String>,
    /// The template sets the command.
    pub has_command: bool,
}

/// What a release will run for one [`ImageUse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// Its field.
    pub field: String,
    /// The reference to render: pinned when found in the catalog.
    pub image: String,
    /// The digest, when resolved.
    pub digest: Option<String>,
}

/// A tag of the catalog, as admission reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Found {
    tenant_id: Uuid,
    repository: String,
    tag: String,
    digest: String,
    state: String,
    exposed_ports: Vec<String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
}

/// Admission over the catalog.
#[derive(Clone)]
pub struct Admission {
    pool: PgPool,
    hosts: Vec<String>,
    enforce: bool,
}

impl Admission {
    /// Admission reading the catalog in `pool`. `hosts` are the addresses
    /// the platform's registry is reached at (`registry.example.com`); empty
    /// takes any host naming a catalog repository, which is safe because the
    /// image is then pinned to the catalog's digest wherever it is pulled from.
    pub fn new(pool: PgPool, hosts: Vec<String>) -> Self {
        Self {
            pool,
            hosts,
            enforce: true,
        }
    }

    /// Whether production releases are refused (`false`: only pinned).
    #[must_use]
    pub fn enforcing(mut self, enforce: bool) -> Self {
        self.enforce = enforce;
        self
    }

    fn platform_host(&self, reference: &Reference) -> bool {
        self.hosts.is_empty() || reference.host.as_ref().is_some_and(|h| self.hosts.contains(h))
    }

    /// The catalog's tag for `reference`: the tag named, or for a digest
    /// alone a tag of that digest (a released one first).
    async fn find(&self, reference: &Reference) -> Result<Option<Found>> {
        let found = sqlx::query_as::<_, Found>(
            "SELECT r.tenant_id, r.name AS repository, t.name AS tag, t.digest, t.state, t.exposed_ports,
                    t.entrypoint, t.cmd
             FROM tags t JOIN repositories r ON r.id = t.repository_id
             WHERE r.name = $1 AND t.state <> 'deleted'
               AND (($2::text IS NOT NULL AND t.name = $2 AND ($3::text IS NULL OR t.digest = $3))
                    OR ($2::text IS NULL AND t.digest = $3))
             ORDER BY (t.state = 'released') DESC, t.pushed_at DESC LIMIT 1",
        )
        .bind(&reference.repository)
        .bind(&reference.tag)
        .bind(&reference.digest)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found)
    }

    async fn repository_tenant(&self, repository: &str) -> Result<Option<Uuid>> {
        Ok(
            sqlx::query_scalar::<_, Uuid>("SELECT tenant_id FROM repositories WHERE name = $1")
                .bind(repository)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Checks and pins the images of a release of `tenant` into `environment`.
    ///
    /// # Errors
    /// In production, the first rule an image breaks, naming the rule and the
    /// image's field; anywhere, a reference that does not parse.
    pub async fn admit(&self, tenant: Uuid, environment: &str, uses: &[ImageUse]) -> Result<Vec<Admitted>> {
        let production = self.enforce && environment == PRODUCTION;
        let mut admitted = Vec::with_capacity(uses.len());
        for u in uses {
            let reference = match Reference::parse(&u.field, &u.image) {
                Ok(r) => r,
                Err(e) if production => return Err(e),
                Err(_) => {
                    admitted.push(Admitted {
                        field: u.field.clone(),
                        image: u.image.clone(),
                        digest: None,
                    });
                    continue;
                }
            };
            let ours = self.platform_host(&reference) && reference.repository.split('/').count() == 3;
            let found = if ours { self.find(&reference).await? } else { None };
            if production {
                self.check(tenant, u, &reference, ours, found.as_ref()).await?;
            }
            admitted.push(match found {
                Some(f) => Admitted {
                    field: u.field.clone(),
                    image: reference.pinned(&f.digest),
                    digest: Some(f.digest),
                },
                None => Admitted {
                    field: u.field.clone(),
                    image: u.image.clone(),
                    digest: None,
                },
            });
        }
        Ok(admitted)
    }

    async fn check(
        &self,
        tenant: Uuid,
        u: &ImageUse,
        reference: &Reference,
        ours: bool,
        found: Option<&Found>,
    ) -> Result<()> {
        let (field, image) = (u.field.as_str(), u.image.as_str());
        if !ours {
            return Err(Rule::OwnRepository.refuse(field, image, "is not in the platform's registry"));
        }
        let owner = match found {
            Some(f) => Some(f.tenant_id),
            None => self.repository_tenant(&reference.repository).await?,
        };
        let base = reference.repository.split('/').next() == Some(BASE_NAMESPACE);
        match owner {
            None => {
                return Err(Rule::OwnRepository.refuse(field, image, "is not in the platform's registry"));
            }
            Some(owner) if owner != tenant && !base => {
                return Err(Rule::OwnRepository.refuse(
                    field,
                    image,
                    format!("is another tenant's; use the tenant's own or the base images ({BASE_NAMESPACE}/...)"),
                ));
            }
            Some(_) => {}
        }
        if reference.digest.is_none() && !reference.version_tagged() {
            let why = match &reference.tag {
                None => "is untagged; pin it by a version tag or a digest".to_string(),
                Some(t) => format!("is tagged {t}, which moves; pin it by a version tag or a digest"),
            };
            return Err(Rule::Pinned.refuse(field, image, why));
        }
        let Some(found) = found else {
            return Err(Rule::Released.refuse(field, image, "is not in the catalog"));
        };
        if found.state != "released" {
            return Err(Rule::Released.refuse(
                field,
                image,
                format!("is {}, not released ({}:{})", found.state, found.repository, found.tag),
            ));
        }
        let missing: Vec<&str> = u
            .ports
            .iter()
            .filter(|p| !found.exposed_ports.iter().any(|e| e.eq_ignore_ascii_case(p)))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Rule::ExposedPorts.refuse(
                field,
                image,
                format!(
                    "does not expose {} (it exposes {})",
                    missing.join(", "),
                    if found.exposed_ports.is_empty() {
                        "nothing".to_string()
                    } else {
                        found.exposed_ports.join(", ")
                    }
                ),
            ));
        }
        if found.entrypoint.is_empty() && found.cmd.is_empty() && !u.has_command {
            return Err(Rule::Entrypoint.refuse(
                field,
                image,
                "sets neither an entrypoint nor a cmd, and the template sets no command",
            ));
        }
        if let Some(max) = crate::scan::max_severity(&self.pool, tenant, PRODUCTION).await? {
            let scan = crate::scan::of_digest(&self.pool, &found.repository, &found.digest).await?;
            match scan {
                Some(s) if s.status == "done" => {
                    if let Some(highest) = s.highest.filter(|h| *h > max) {
                        return Err(Rule::ScanSeverity.refuse(
                            field,
                            image,
                            format!(
                                "has {} vulnerabilities; production accepts {} at most",
                                highest.as_str(),
                                max.as_str()
                            ),
                        ));
                    }
                }
                Some(s) => {
                    return Err(Rule::ScanSeverity.refuse(
                        field,
                        image,
                        format!("has no finished scan (it is {}); production needs one", s.status),
                    ));
                }
                None => {
                    return Err(Rule::ScanSeverity.refuse(
                        field,
                        image,
                        "has not been scanned; production needs a finished scan",
                    ));
                }
            }
        }
        if crate::signature::required(&self.pool, tenant, PRODUCTION).await? {
            let check = crate::signature::of_digest(&self.pool, &found.repository, &found.digest).await?;
            match check {
                Some(c) if c.status == "signed" => {}
                Some(c) if c.status == "invalid" => {
                    return Err(Rule::Signature.refuse(
                        field,
                        image,
                        format!("has no valid signature ({}); production requires one", c.message),
                    ));
                }
                _ => {
                    return Err(Rule::Signature.refuse(
                        field,
                        image,
                        format!(
                            "is not signed ({}:{} at {}); production requires a signature by one of the tenant's keys",
                            found.repository, found.tag, found.digest
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_parse_as_runtimes_read_them() {
        let r = Reference::parse("image", "127.0.0.1:5000/acme/shop/web:1.2").unwrap();
        assert_eq!(r.host.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(r.repository, "acme/shop/web");
        assert_eq!(r.tag.as_deref(), Some("1.2"));
        assert_eq!(r.pinned(DIGEST), format!("127.0.0.1:5000/acme/shop/web:1.2@{DIGEST}"));
        let r = Reference::parse("image", &format!("acme/shop/web@{DIGEST}")).unwrap();
        assert_eq!((r.host, r.tag, r.digest.as_deref()), (None, None, Some(DIGEST)));
        let r = Reference::parse("image", "nginx").unwrap();
        assert_eq!((r.repository.as_str(), r.tag), ("nginx", None));
        assert_eq!(Reference::parse("f", "web@sha256:12").unwrap_err().field(), Some("f"));
        assert!(Reference::parse("f", "reg.io/:1").is_err());
    }

    #[test]
    fn only_version_tags_pin() {
        let tagged = |raw: &str| Reference::parse("image", raw).unwrap().version_tagged();
        assert!(tagged("a/b/c:1.4.2") && tagged("a/b/c:v2") && tagged("a/b/c:2026.12.01"));
        assert!(!tagged("a/b/c:latest") && !tagged("a/b/c:stable") && !tagged("a/b/c"));
    }

    #[test]
    fn refusals_name_the_rule_and_the_field() {
        let e = Rule::Pinned.refuse("services[0].containers[0].image", "a/b/c:latest", "moves");
        assert_eq!(e.field(), Some("services[0].containers[0].image"));
        assert!(
            e.to_string().contains("admission rule pinned: image a/b/c:latest"),
            "{e}"
        );
    }
}
