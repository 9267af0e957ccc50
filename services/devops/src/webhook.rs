//! Git webhooks: what a Git server tells us about a push, in the two formats
//! servers speak. GitLab sends a shared token in `X-Gitlab-Token`;
//! GitHub and Gitea sign the body with HMAC-SHA256 in `X-Hub-Signature-256`.
//! Both send a delivery id, so a replayed delivery is recognised and runs
//! nothing twice. This module only reads and verifies; storing and queueing
//! happen in [`crate::trigger`].

use hmac::{Hmac, Mac};
use kernel::{Error, Result};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::definition::GitRef;

/// The webhook formats a hook speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// GitLab: `X-Gitlab-Token`, `X-Gitlab-Event`, `X-Gitlab-Event-UUID`.
    Gitlab,
    /// GitHub and Gitea: `X-Hub-Signature-256`, `X-GitHub-Event` /
    /// `X-Gitea-Event`, `X-GitHub-Delivery` / `X-Gitea-Delivery`.
    Github,
}

impl Format {
    /// Parses `gitlab` or `github` (Gitea speaks the GitHub format).
    ///
    /// # Errors
    /// Another word.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        match raw {
            "gitlab" => Ok(Self::Gitlab),
            "github" | "gitea" => Ok(Self::Github),
            _ => Err(Error::invalid(field, "must be gitlab, github or gitea")),
        }
    }

    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gitlab => "gitlab",
            Self::Github => "github",
        }
    }
}

/// The headers a delivery carries, by lower-case name.
pub trait Headers {
    /// The value of `name`, if present and text.
    fn get(&self, name: &str) -> Option<&str>;
}

impl Headers for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }
}

/// Why a delivery was refused; recorded with the delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No token or signature header.
    #[error("the delivery carries no {0} header")]
    Unsigned(&'static str),
    /// The token or signature does not match the hook's secret.
    #[error("the delivery's {0} does not match the hook's secret")]
    BadSignature(&'static str),
}

/// Checks that `body` came from a server knowing `secret`.
///
/// # Errors
/// The [`Refusal`], in constant time with respect to the secret.
pub fn verify(format: Format, secret: &str, headers: &(impl Headers + ?Sized), body: &[u8]) -> Result<(), Refusal> {
    match format {
        Format::Gitlab => {
            let token = headers
                .get("x-gitlab-token")
                .ok_or(Refusal::Unsigned("X-Gitlab-Token"))?;
            if bool::from(token.as_bytes().ct_eq(secret.as_bytes())) {
                Ok(())
            } else {
                Err(Refusal::BadSignature("X-Gitlab-Token"))
            }
        }
        Format::Github => {
            let header = "X-Hub-Signature-256";
            let sig = headers.get(header).ok_or(Refusal::Unsigned(header))?;
            let hex = sig.strip_prefix("sha256=").ok_or(Refusal::BadSignature(header))?;
            let given = decode_hex(hex).ok_or(Refusal::BadSignature(header))?;
            let mut mac =
                Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| Refusal::BadSignature(header))?;
            mac.update(body);
            mac.verify_slice(&given).map_err(|_| Refusal::BadSignature(header))
        }
    }
}

/// The `X-Hub-Signature-256` value a GitHub server sends for `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What a verified delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Commits pushed to a branch or a tag created.
    Push {
        /// The ref.
        git_ref: GitRef,
        /// The commit now at the ref.
        commit: String,
    },
    /// A branch or tag was deleted.
    Deleted {
        /// The ref.
        git_ref: GitRef,
    },
    /// A merge (pull) request from a branch was merged.
    Merged {
        /// The merged branch.
        git_ref: GitRef,
    },
    /// Something a pipeline does not act on (a ping, an issue comment).
    Ignored(String),
}

/// A verified delivery, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The server's delivery id (deduplication key).
    pub id: String,
    /// The event name as sent.
    pub event: String,
    /// What it asks for.
    pub change: Change,
}

const ZERO_COMMIT: &str = "0000000000000000000000000000000000000000";

#[derive(Deserialize)]
struct PushBody {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    #[serde(default)]
    deleted: bool,
}

#[derive(Deserialize)]
struct MergeRequestBody {
    object_attributes: MergeRequestAttributes,
}

#[derive(Deserialize)]
struct MergeRequestAttributes {
    source_branch: String,
    last_commit: LastCommit,
    #[serde(default)]
    state: String,
}

#[derive(Deserialize)]
struct LastCommit {
    id: String,
}

#[derive(Deserialize)]
struct PullRequestBody {
    action: String,
    pull_request: PullRequest,
}

#[derive(Deserialize)]
struct PullRequest {
    head: PullRequestHead,
    #[serde(default)]
    merged: bool,
}

#[derive(Deserialize)]
struct PullRequestHead {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
}

fn commit_id(field: &str, raw: &str) -> Result<String> {
    let ok = (raw.len() == 40 || raw.len() == 64) && raw.chars().all(|c| c.is_ascii_hexdigit());
    if ok {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err(Error::invalid(field, "is not a Git commit id"))
    }
}

fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body)).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            format!("body.{path}")
        };
        Error::invalid(field, e.into_inner().to_string())
    })
}

fn push(body: &[u8]) -> Result<Change> {
    let p: PushBody = json(body)?;
    let git_ref = GitRef::parse("body.ref", &p.git_ref)?;
    if p.deleted || p.after == ZERO_COMMIT {
        return Ok(Change::Deleted { git_ref });
    }
    Ok(Change::Push {
        git_ref,
        commit: commit_id("body.after", &p.after)?,
    })
}

/// Reads a verified delivery.
///
/// # Errors
/// No delivery id, or a body that is not what its event promises; the error
/// names the header or the body field.
pub fn read(format: Format, headers: &(impl Headers + ?Sized), body: &[u8]) -> Result<Delivery> {
    let (id_header, event) = match format {
        Format::Gitlab => ("x-gitlab-event-uuid", headers.get("x-gitlab-event")),
        Format::Github => (
            if headers.get("x-github-delivery").is_some() {
                "x-github-delivery"
            } else {
                "x-gitea-delivery"
            },
            headers.get("x-github-event").or_else(|| headers.get("x-gitea-event")),
        ),
    };
    let id = headers
        .get(id_header)
        .filter(|v| !v.trim().is_empty() && v.len() <= 128)
        .ok_or_else(|| Error::invalid(id_header, "is required: it identifies the delivery"))?
        .to_string();
    let event = event
        .ok_or_else(|| Error::invalid("x-github-event", "is required"))?
        .to_string();
    let change = match (format, event.as_str()) {
        (Format::Gitlab, "Push Hook" | "Tag Push Hook") | (Format::Github, "push") => push(body)?,
        (Format::Gitlab, "Merge Request Hook") => {
            let mr: MergeRequestBody = json(body)?;
            let git_ref = GitRef::parse(
                "body.object_attributes.source_branch",
                &mr.object_attributes.source_branch,
            )?;
            if mr.object_attributes.state == "merged" {
                Change::Merged { git_ref }
            } else {
                Change::Push {
                    git_ref,
                    commit: commit_id(
                        "body.object_attributes.last_commit.id",
                        &mr.object_attributes.last_commit.id,
                    )?,
                }
            }
        }
        (Format::Github, "pull_request") => {
            let pr: PullRequestBody = json(body)?;
            if matches!(pr.action.as_str(), "opened" | "synchronize" | "reopened") {
                Change::Push {
                    git_ref: GitRef::parse("body.pull_request.head.ref", &pr.pull_request.head.git_ref)?,
                    commit: commit_id("body.pull_request.head.sha", &pr.pull_request.head.sha)?,
                }
            } else if pr.action == "closed" && pr.pull_request.merged {
                Change::Merged {
                    git_ref: GitRef::parse("body.pull_request.head.ref", &pr.pull_request.head.git_ref)?,
                }
            } else {
                Change::Ignored(format!("pull_request {}", pr.action))
            }
        }
        (_, other) => Change::Ignored(other.to_string()),
    };
    Ok(Delivery { id, event, change })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "9fceb02d0ae598e95dc970b74767f19372d61af8";

    fn github_push(git_ref: &str) -> Vec<u8> {
        format!(r#"{{"ref":"{git_ref}","before":"{ZERO_COMMIT}","after":"{SHA}","repository":{{}}}}"#).into_bytes()
    }

    #[test]
    fn a_github_signature_over_the_body_is_accepted_and_any_change_refused() {
        let body = github_push("refs/heads/main");
        let sig = sign("s3cret", &body);
        let headers: &[(&str, &str)] = &[("X-Hub-Signature-256", &sig)];
        assert_eq!(verify(Format::Github, "s3cret", headers, &body), Ok(()));
        assert!(matches!(
            verify(Format::Github, "other", headers, &body),
            Err(Refusal::BadSignature(_))
        ));
        let mut tampered = body.clone();
        tampered[3] ^= 1;
        assert!(verify(Format::Github, "s3cret", headers, &tampered).is_err());
        let none: &[(&str, &str)] = &[];
        assert!(matches!(
            verify(Format::Github, "s3cret", none, &body),
            Err(Refusal::Unsigned(_))
        ));
        let junk: &[(&str, &str)] = &[("x-hub-signature-256", "sha256=zz")];
        assert!(verify(Format::Github, "s3cret", junk, &body).is_err());
    }

    #[test]
    fn a_gitlab_token_must_equal_the_secret() {
        let ok: &[(&str, &str)] = &[("X-Gitlab-Token", "tok")];
        let bad: &[(&str, &str)] = &[("X-Gitlab-Token", "tok2")];
        assert_eq!(verify(Format::Gitlab, "tok", ok, b"{}"), Ok(()));
        assert!(verify(Format::Gitlab, "tok", bad, b"{}").is_err());
    }

    #[test]
    fn pushes_tags_deletions_and_merge_requests_are_read() {
        let h: &[(&str, &str)] = &[("X-GitHub-Delivery", "d-1"), ("X-GitHub-Event", "push")];
        let d = read(Format::Github, h, &github_push("refs/tags/v1.2.0")).unwrap();
        assert_eq!(d.id, "d-1");
        assert_eq!(
            d.change,
            Change::Push {
                git_ref: GitRef::Tag("v1.2.0".into()),
                commit: SHA.into()
            }
        );
        let gone = format!(r#"{{"ref":"refs/heads/feature-x","after":"{ZERO_COMMIT}","deleted":true}}"#);
        let h: &[(&str, &str)] = &[("X-Gitea-Delivery", "d-2"), ("X-Gitea-Event", "push")];
        assert_eq!(
            read(Format::Github, h, gone.as_bytes()).unwrap().change,
            Change::Deleted {
                git_ref: GitRef::Branch("feature-x".into())
            }
        );
        let mr = format!(
            r#"{{"object_kind":"merge_request","object_attributes":{{"source_branch":"feature-y","last_commit":{{"id":"{SHA}"}}}}}}"#
        );
        let h: &[(&str, &str)] = &[("X-Gitlab-Event-UUID", "u-1"), ("X-Gitlab-Event", "Merge Request Hook")];
        assert!(matches!(
            read(Format::Gitlab, h, mr.as_bytes()).unwrap().change,
            Change::Push { git_ref: GitRef::Branch(b), .. } if b == "feature-y"
        ));
        let merged = mr.replace(r#""source_branch""#, r#""state":"merged","source_branch""#);
        assert_eq!(
            read(Format::Gitlab, h, merged.as_bytes()).unwrap().change,
            Change::Merged {
                git_ref: GitRef::Branch("feature-y".into())
            }
        );
        let pr = format!(
            r#"{{"action":"closed","pull_request":{{"merged":true,"head":{{"ref":"feature-z","sha":"{SHA}"}}}}}}"#
        );
        let h: &[(&str, &str)] = &[("X-GitHub-Delivery", "d-4"), ("X-GitHub-Event", "pull_request")];
        assert_eq!(
            read(Format::Github, h, pr.as_bytes()).unwrap().change,
            Change::Merged {
                git_ref: GitRef::Branch("feature-z".into())
            }
        );
        let h: &[(&str, &str)] = &[("X-GitHub-Delivery", "d-3"), ("X-GitHub-Event", "ping")];
        assert_eq!(
            read(Format::Github, h, b"{}").unwrap().change,
            Change::Ignored("ping".into())
        );
    }

    #[test]
    fn a_delivery_without_an_id_or_with_a_bad_body_names_what_is_wrong() {
        let h: &[(&str, &str)] = &[("X-GitHub-Event", "push")];
        assert_eq!(
            read(Format::Github, h, &github_push("refs/heads/main"))
                .unwrap_err()
                .field(),
            Some("x-gitea-delivery")
        );
        let h: &[(&str, &str)] = &[("X-GitHub-Delivery", "d"), ("X-GitHub-Event", "push")];
        let bad = br#"{"ref":"refs/heads/main","after":"not-a-sha"}"#;
        assert_eq!(read(Format::Github, h, bad).unwrap_err().field(), Some("body.after"));
        assert_eq!(read(Format::Github, h, b"{}").unwrap_err().field(), Some("body"));
    }
}
