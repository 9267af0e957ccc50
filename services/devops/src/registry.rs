//! The image registry `build-image` steps push to: the platform's `/v2/`
//! (the gateway in front of the master registry), reached with a registry
//! token devops asks the image catalog for when it hands the step to a
//! runner. The token names the run as its subject, carries the run's tenant
//! as a developer, and covers that one repository (`pull,push`) only, so a
//! runner never holds anything that outlives the run or reaches another
//! repository; the catalog grants nothing for another tenant's repository.

use std::sync::{Arc, RwLock};

use kernel::caller::{Caller, CallerKey, Membership, Role};
use kernel::grpc::{Outgoing, channel};
use kernel::settings::{Env, SettingError};
use kernel::{Error, Result};
use paas_proto::v1 as pb;
use paas_proto::v1::images_service_client::ImagesServiceClient;
use uuid::Uuid;

use crate::definition::Action;
use crate::runner::Job;

/// Host (and port) of the platform's registry as runners reach it
/// (`registry.example.com`, `127.0.0.1:8080`). Unset: `build-image` steps
/// fail saying no registry is configured, since there is nowhere to push.
pub const REGISTRY: &str = "PAAS_DEVOPS_REGISTRY";
/// `true` when runners reach the registry over plain HTTP (a loopback
/// gateway in development and tests). Default false.
pub const REGISTRY_INSECURE: &str = "PAAS_DEVOPS_REGISTRY_INSECURE";
/// Where the image catalog's gRPC API is, which issues the push tokens.
/// `none`: push without credentials (a bare registry of a test).
pub const IMAGES_URL: &str = "PAAS_IMAGES_URL";
/// The image catalog's default address (its default gRPC port on loopback).
pub const IMAGES_URL_DEFAULT: &str = "http://127.0.0.1:7105";

/// Where `build-image` steps push.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The registry's host as runners reach it; `None`: no registry.
    pub registry: Option<String>,
    /// Plain HTTP to the registry.
    pub insecure: bool,
    /// The image catalog's gRPC URL; `None`: push without credentials.
    pub images_url: Option<String>,
}

impl Settings {
    /// Reads [`REGISTRY`], [`REGISTRY_INSECURE`] and [`IMAGES_URL`].
    ///
    /// # Errors
    /// A malformed value.
    pub fn from_env(env: &Env) -> Result<Self, SettingError> {
        let images = env.or(IMAGES_URL, IMAGES_URL_DEFAULT.to_string())?;
        Ok(Self {
            registry: env.optional::<String>(REGISTRY)?.filter(|r| !r.is_empty()),
            insecure: env.or(REGISTRY_INSECURE, false)?,
            images_url: (images != "none").then_some(images),
        })
    }
}

/// Issues what a runner needs to push one step's image.
#[derive(Clone)]
pub struct Registry {
    settings: Arc<RwLock<Settings>>,
    key: CallerKey,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("settings", &self.settings()).finish()
    }
}

impl Registry {
    /// A registry of `settings`, asking the catalog with callers signed by `key`.
    pub fn new(settings: Settings, key: CallerKey) -> Self {
        Self {
            settings: Arc::new(RwLock::new(settings)),
            key,
        }
    }

    /// Whether a registry host is set.
    pub fn has_registry(&self) -> bool {
        self.settings().registry.is_some()
    }

    /// Points pushes at `host` from now on: a platform in one process knows
    /// its gateway's address only once the gateway is up, after devops.
    pub fn point_at(&self, host: String, insecure: bool) {
        let mut settings = self.settings.write().expect("the registry settings are never poisoned");
        settings.registry = Some(host);
        settings.insecure = insecure;
    }

    fn settings(&self) -> Settings {
        self.settings
            .read()
            .expect("the registry settings are never poisoned")
            .clone()
    }

    /// Where and with what the job's image is pushed; `None` for jobs that
    /// push nothing.
    ///
    /// # Errors
    /// No registry is configured, or the catalog refuses or does not answer.
    pub async fn push_for(&self, tenant: Uuid, job: &Job) -> Result<Option<pb::ImagePush>> {
        let Action::BuildImage {
            containerfile,
            repository,
        } = &job.step.action
        else {
            return Ok(None);
        };
        let settings = self.settings();
        let Some(registry) = &settings.registry else {
            return Err(Error::FailedPrecondition(format!(
                "no image registry is configured for build-image steps (set {REGISTRY})"
            )));
        };
        let registry_token = match &settings.images_url {
            Some(url) => self.token(url, tenant, job.run_id, repository).await?,
            None => String::new(),
        };
        Ok(Some(pb::ImagePush {
            containerfile: containerfile.clone(),
            reference: format!("{registry}/{repository}:{}", job.version),
            registry_token,
            insecure: settings.insecure,
            source: job.repository.clone(),
            revision: job.commit.clone(),
        }))
    }

    /// A registry token for `repository`, on behalf of the run: a developer
    /// of its tenant and nothing more.
    async fn token(&self, url: &str, tenant: Uuid, run: Uuid, repository: &str) -> Result<String> {
        let caller = Caller::user(
            format!("pipeline-run:{run}"),
            vec![Membership {
                tenant,
                role: Role::Developer,
            }],
        );
        let mut images = ImagesServiceClient::with_interceptor(channel(url)?, Outgoing::new(&self.key, &caller));
        let token = images
            .issue_registry_token(pb::IssueRegistryTokenRequest {
                service: String::new(),
                scopes: vec![format!("repository:{repository}:pull,push")],
                robot_name: String::new(),
                robot_secret: String::new(),
            })
            .await
            .map_err(|s| Error::Unavailable(format!("the image catalog issued no push token: {}", s.message())))?;
        Ok(token.into_inner().token)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::definition::Step;

    fn job(action: Action) -> Job {
        Job {
            step_id: Uuid::now_v7(),
            attempt: 1,
            run_id: Uuid::now_v7(),
            repository: "git://git.example.com/calc.git".into(),
            git_ref: "refs/heads/main".into(),
            commit: "0123abcd".into(),
            version: "1.4.1-build.7".into(),
            step: Step {
                name: "image".into(),
                image: None,
                env: Default::default(),
                timeout: Duration::from_secs(60),
                retries: 0,
                action,
            },
            parameters: serde_json::Value::Null,
        }
    }

    fn build() -> Action {
        Action::BuildImage {
            containerfile: "docker/Containerfile".into(),
            repository: "acme/shop/calc".into(),
        }
    }

    fn registry(settings: Settings) -> Registry {
        Registry::new(settings, CallerKey::new(kernel::settings::Secret::new("k".repeat(32))))
    }

    #[tokio::test]
    async fn a_build_image_job_pushes_the_run_version_to_the_catalog_repository() {
        let r = registry(Settings {
            registry: Some("registry.example.com".into()),
            insecure: false,
            images_url: None,
        });
        let push = r.push_for(Uuid::now_v7(), &job(build())).await.unwrap().unwrap();
        assert_eq!(push.reference, "registry.example.com/acme/shop/calc:1.4.1-build.7");
        assert_eq!(push.containerfile, "docker/Containerfile");
        assert_eq!(
            (push.source.as_str(), push.revision.as_str()),
            ("git://git.example.com/calc.git", "0123abcd")
        );
        assert!(push.registry_token.is_empty(), "no catalog, no token");
        let run = job(Action::Run {
            commands: vec!["make".into()],
        });
        assert_eq!(r.push_for(Uuid::now_v7(), &run).await.unwrap(), None);
    }

    #[tokio::test]
    async fn without_a_registry_a_build_image_job_is_refused_until_one_is_pointed_at() {
        let r = registry(Settings::default());
        let err = r.push_for(Uuid::now_v7(), &job(build())).await.unwrap_err();
        assert!(err.to_string().contains(REGISTRY), "{err}");
        r.point_at("127.0.0.1:8080".into(), true);
        let push = r.push_for(Uuid::now_v7(), &job(build())).await.unwrap().unwrap();
        assert!(push.insecure);
        assert!(push.reference.starts_with("127.0.0.1:8080/acme/shop/calc:"));
    }
}
