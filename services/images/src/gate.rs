//! Where the registry meets the platform's policy: registry tokens issued for
//! what a subject's roles allow, the `/v2/` proxy's questions (released tags
//! are immutable, a tenant's storage is bounded), and the registry's
//! notifications turned into catalog entries.

use std::collections::BTreeSet;
use std::sync::Arc;

use kernel::caller::Caller;
use kernel::outbox::Outbox;
use kernel::{Error, Result};
use sqlx::PgPool;

use crate::access::{self, Action, Grant, Scope, Subject};
use crate::catalog::Catalog;
use crate::inspect::Reader;
use crate::notification::{self, Recorded};
use crate::registry::Registries;
use crate::robot::{self, Robots};
use crate::signing::{self, Claims, Signer};
use crate::tenancy::Tenancy;

/// A refusal of the `/v2/` proxy, in the registry's error vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Registry error code (`DENIED`).
    pub code: &'static str,
    /// Why.
    pub message: String,
}

/// What the proxy should do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `None`: forward it.
    pub refusal: Option<Refusal>,
    /// Where to forward it.
    pub upstream: String,
    /// Who asks, if its token is genuine.
    pub subject: String,
}

/// A `/v2/` request as the proxy describes it.
#[derive(Debug, Clone)]
pub struct ProxiedRequest<'a> {
    /// The method.
    pub method: &'a str,
    /// The path.
    pub path: &'a str,
    /// The Authorization header.
    pub authorization: &'a str,
    /// The body's length, if known.
    pub content_length: Option<i64>,
}

/// The registry side of the images service.
#[derive(Clone)]
pub struct Gate {
    pool: PgPool,
    outbox: Outbox,
    signer: Arc<Signer>,
    robots: Robots,
    catalog: Catalog,
    registries: Registries,
    tenancy: Tenancy,
    http: reqwest::Client,
    replications: crate::replication::Replications,
    signatures: crate::signature::Signatures,
}

impl Gate {
    /// A gate over the images schema.
    pub fn new(outbox: &Outbox, sealer: crate::seal::Sealer, signer: Arc<Signer>, tenancy: Tenancy) -> Self {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("a TLS backend");
        Self {
            signatures: crate::signature::Signatures::new(
                Registries::new(outbox.clone(), sealer.clone()),
                sealer.clone(),
                signer.clone(),
                http.clone(),
            ),
            pool: outbox.pool().clone(),
            outbox: outbox.clone(),
            signer,
            robots: Robots::new(outbox.pool().clone()),
            catalog: Catalog::new(outbox.clone()),
            registries: Registries::new(outbox.clone(), sealer.clone()),
            replications: crate::replication::Replications::new(
                outbox.clone(),
                Registries::new(outbox.clone(), sealer),
                tenancy.clone(),
            ),
            tenancy,
            http,
        }
    }

    /// The certificate registries must trust.
    pub fn certificate_pem(&self) -> &str {
        &self.signer.certificate_pem
    }

    /// The subject of a robot's credentials.
    ///
    /// # Errors
    /// Unknown robot or wrong secret (unauthenticated).
    pub async fn robot(&self, name: &str, secret: &str) -> Result<Subject> {
        let robot = self
            .robots
            .authenticate(name, secret)
            .await?
            .ok_or_else(|| Error::Unauthenticated("unknown robot or wrong secret".to_string()))?;
        Ok(Subject::Robot {
            actions: robot.actions(),
            name: robot.name,
            tenant: robot.tenant_id,
            project: robot.project_id,
        })
    }

    /// A token for `subject` granting, of each scope, what its roles allow.
    /// A scope the subject may not have is granted with no actions, so the
    /// registry answers 401/403 for that repository alone.
    ///
    /// # Errors
    /// Another service name, a malformed scope, or tenancy did not answer.
    pub async fn issue(&self, subject: &Subject, service: &str, scopes: &[String]) -> Result<(String, Claims)> {
        if !service.is_empty() && service != signing::SERVICE {
            return Err(Error::invalid(
                "service",
                format!("this platform issues tokens for {}", signing::SERVICE),
            ));
        }
        let mut access: Vec<Grant> = Vec::new();
        // While the registry's garbage is collected nothing may write.
        let frozen = crate::retention::writes_frozen(&self.pool).await?;
        for raw in scopes.iter().flat_map(|s| s.split(' ')).filter(|s| !s.is_empty()) {
            let Some(scope) = Scope::parse(raw)? else { continue };
            let allowed = match self
                .tenancy
                .resolve(scope.repository.tenant(), scope.repository.project())
                .await?
            {
                Some((tenant, project)) => subject.allowed(tenant, project),
                None => BTreeSet::new(),
            };
            let allowed = if frozen {
                allowed.into_iter().filter(|a| *a == Action::Pull).collect()
            } else {
                allowed
            };
            let grant = access::grant(&scope, &allowed);
            if !grant.actions.is_empty() {
                access.push(grant);
            }
        }
        self.signer.issue(subject.name(), access)
    }

    /// What the proxy should do with a request the registry alone cannot
    /// police: a push over a released tag, an upload past the tenant's quota.
    ///
    /// # Errors
    /// No master registry is registered, or the database fails.
    pub async fn authorize(&self, request: &ProxiedRequest<'_>) -> Result<Decision> {
        let upstream = self
            .registries
            .master_url()
            .await?
            .ok_or_else(|| Error::Unavailable("no master registry is registered".to_string()))?;
        let claims = request
            .authorization
            .strip_prefix("Bearer ")
            .and_then(|t| self.signer.verify(t.trim()));
        let mut decision = Decision {
            refusal: None,
            upstream,
            subject: claims.as_ref().map(|c| c.sub.clone()).unwrap_or_default(),
        };
        let Some((repository, rest)) = split_path(request.path) else {
            return Ok(decision);
        };
        if matches!(request.method, "PUT" | "POST" | "PATCH" | "DELETE")
            && crate::retention::writes_frozen(&self.pool).await?
        {
            decision.refusal = Some(Refusal {
                status: 503,
                code: "UNAVAILABLE",
                message: "the registry's garbage collection is under way: writes resume when it ends".into(),
            });
            return Ok(decision);
        }
        if let Some(reference) = rest.strip_prefix("manifests/")
            && request.method == "PUT"
            && !reference.starts_with("sha256:")
            && let Some(state) = self.catalog.state_of(repository, reference).await?
            && state.immutable()
        {
            decision.refusal = Some(Refusal {
                status: 403,
                code: "DENIED",
                message: format!(
                    "{repository}:{reference} is {} and immutable; push a new tag",
                    state.as_str()
                ),
            });
        } else if rest.starts_with("blobs/uploads")
            && matches!(request.method, "POST" | "PATCH" | "PUT")
            && let Some((tenant, project)) = notification::owner_names(repository)
            && let Some((tenant, _)) = self.tenancy.resolve(&tenant, &project).await?
        {
            let (limit, used) = self.catalog.storage(tenant).await?;
            let incoming = request.content_length.unwrap_or(0).max(0);
            // A full quota refuses every upload, even one whose length is not
            // announced (a chunked PATCH).
            if limit > 0 && (used >= limit || used + incoming > limit) {
                decision.refusal = Some(Refusal {
                    status: 403,
                    code: "DENIED",
                    message: format!(
                        "the tenant's image storage quota is exhausted: {used} of {limit} bytes used, \
                         this upload adds {incoming}"
                    ),
                });
            }
        }
        Ok(decision)
    }

    /// Records the registry's events once each; returns those recorded now.
    ///
    /// # Errors
    /// A malformed envelope, the registry or tenancy unreachable (the
    /// registry retries), or the database fails.
    pub async fn record(&self, body: &[u8]) -> Result<Vec<Recorded>> {
        let mut recorded = Vec::new();
        for event in notification::parse(body)? {
            let known = sqlx::query_scalar!("SELECT id FROM registry_events WHERE id = $1", event.id)
                .fetch_optional(&self.pool)
                .await?;
            if known.is_some() {
                continue;
            }
            let owner = match notification::owner_names(&event.target.repository) {
                Some((t, p)) => self.tenancy.resolve(&t, &p).await?,
                None => None,
            };
            // The metadata is read before the transaction: it is a call to the registry.
            let meta = match (&event.action[..], owner) {
                ("push", Some(_)) if event.is_manifest() && !event.target.tag.is_empty() => {
                    Some(self.inspect(&event.target.repository, &event.target.digest).await?)
                }
                _ => None,
            };
            let mut tx = self.pool.begin().await?;
            let inserted = sqlx::query_scalar!(
                "INSERT INTO registry_events (id, action, repository, tag, digest, size, actor, tenant_id, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING RETURNING id",
                event.id,
                event.action,
                event.target.repository,
                event.target.tag,
                event.target.digest,
                event.target.size,
                event.actor.name,
                owner.map(|o| o.0),
                event.timestamp,
            )
            .fetch_optional(&mut *tx)
            .await?;
            if inserted.is_none() {
                continue;
            }
            if let Some(owner) = owner {
                match &event.action[..] {
                    "push" | "mount" if !event.is_manifest() => {
                        self.catalog
                            .blob_stored(&mut tx, owner.0, &event.target.digest, event.target.size)
                            .await?;
                    }
                    "push" => {
                        if let Some(meta) = &meta {
                            self.catalog
                                .pushed(&mut tx, owner, &event.target.repository, &event.target.tag, meta)
                                .await?;
                            // Replication on push is queued with the push itself: it survives a crash.
                            let image = crate::replication::Image {
                                repository: event.target.repository.clone(),
                                tag: event.target.tag.clone(),
                                digest: event.target.digest.clone(),
                            };
                            self.replications.pushed(&mut tx, owner.0, &image).await?;
                        }
                    }
                    "delete" => {
                        self.catalog
                            .deleted(&mut tx, &event.target.repository, &event.target.digest)
                            .await?;
                    }
                    _ => {}
                }
            }
            self.outbox.commit(tx).await?;
            if let Some(owner) = owner {
                self.check_signatures_on_push(owner.0, &event).await;
            }
            // Blob traffic is for the quota; the audit log shows what people do with images.
            if event.is_manifest() && matches!(&event.action[..], "push" | "pull" | "delete") {
                recorded.push(Recorded {
                    id: event.id,
                    action: event.action,
                    repository: event.target.repository,
                    tag: event.target.tag,
                    digest: event.target.digest,
                    actor: event.actor.name,
                    tenant: owner.map(|o| o.0),
                });
            }
        }
        Ok(recorded)
    }

    /// A pushed signature image (`sha256-<hex>.sig`) is checked at once, as
    /// is a pushed image whose signatures were checked before (a push may
    /// follow its signature, or replace a tag's digest). A failed check is
    /// logged, not refused: the push happened, and the check can be asked again.
    async fn check_signatures_on_push(&self, tenant: uuid::Uuid, event: &notification::Event) {
        if event.action != "push" || !event.is_manifest() {
            return;
        }
        let repository = &event.target.repository;
        let digest = match crate::cosign::signed_digest(&event.target.tag) {
            Some(signed) => signed,
            None => match crate::signature::of_digest(&self.pool, repository, &event.target.digest).await {
                Ok(Some(_)) => event.target.digest.clone(),
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(repository = %repository, error = %e, "signature check skipped");
                    return;
                }
            },
        };
        if let Err(e) = self.signatures.check(tenant, repository, &digest).await {
            tracing::warn!(repository = %repository, digest = %digest, error = %e, "signature check failed");
        }
    }

    async fn inspect(&self, repository: &str, digest: &str) -> Result<crate::inspect::ImageMetadata> {
        let upstream = self
            .registries
            .master_url()
            .await?
            .ok_or_else(|| Error::Unavailable("no master registry is registered".to_string()))?;
        let (token, _) = self.signer.issue(
            &format!("service:{}", crate::NAME),
            vec![access::grant(
                &Scope {
                    repository: access::RepositoryName::parse("repository", repository)?,
                    actions: [Action::Pull].into(),
                },
                &[Action::Pull].into(),
            )],
        )?;
        Reader::new(&self.http, &upstream, repository, token)
            .metadata(digest)
            .await
    }

    /// Signing keys, signatures and signature policies.
    pub fn signatures(&self) -> &crate::signature::Signatures {
        &self.signatures
    }

    /// Robots.
    pub fn robots(&self) -> &Robots {
        &self.robots
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Tenancy.
    pub fn tenancy(&self) -> &Tenancy {
        &self.tenancy
    }

    /// A caller as a token subject.
    pub fn subject(caller: Caller) -> Subject {
        Subject::Caller(caller)
    }

    /// Whether `name` is a robot's.
    pub fn is_robot(name: &str) -> bool {
        name.starts_with(robot::PREFIX)
    }
}

/// `/v2/<repository>/<rest>` split where the registry API's own words begin.
fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v2/")?;
    ["/manifests/", "/blobs/", "/tags/"]
        .iter()
        .filter_map(|m| rest.find(m).map(|i| (&rest[..i], &rest[i + 1..])))
        .min_by_key(|(repo, _)| repo.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_at_the_registry_api_words() {
        assert_eq!(
            split_path("/v2/acme/shop/web/manifests/1.0"),
            Some(("acme/shop/web", "manifests/1.0"))
        );
        assert_eq!(
            split_path("/v2/acme/shop/web/blobs/uploads/abc"),
            Some(("acme/shop/web", "blobs/uploads/abc"))
        );
        assert_eq!(split_path("/v2/"), None);
        assert_eq!(split_path("/v2/_catalog"), None);
    }
}
