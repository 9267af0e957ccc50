//! The steps devops executes itself rather than on a runner: `deploy`
//! (a release of the environment's application through apps, watched until
//! Healthy), `security-scan` (the image catalog's scanner as a gate, see
//! [`crate::scan_gate`]) and `promote` (the image's lifecycle moved in the
//! catalog, then the same template version and digest released into the next
//! environment).
//!
//! The conductor marks such a step `running`; each pass [`Delivery::drive`]
//! looks at every running one and does the next thing. What was started
//! elsewhere (the release apps made, the scan requested) is written to
//! `step_operations` before anything waits on it, and a release is made by
//! a caller named after the step (`pipeline-step:<id>`), so after a devops
//! restart the step finds its release again (by id, or by its author when
//! devops stopped between apps' answer and the write) and never makes a
//! second one. The step's `timeout` bounds the whole wait.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, CallerKey, Membership, Role};
use kernel::grpc::{Outgoing, channel};
use kernel::outbox::Outbox;
use kernel::settings::{Env, SettingError};
use kernel::{Error, Result};
use paas_proto::v1 as pb;
use paas_proto::v1::apps_service_client::AppsServiceClient;
use paas_proto::v1::images_service_client::ImagesServiceClient;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::definition::{self, Action, Definition, Environment, Flow, GitRef, Target};
use crate::environment;
use crate::run::{self, announce};
use crate::scan_gate;

/// Where apps' gRPC API is, which makes the releases.
pub const APPS_URL: &str = "PAAS_APPS_URL";
/// Apps' default address (its default gRPC port on loopback).
pub const APPS_URL_DEFAULT: &str = "http://127.0.0.1:7103";
/// Whether this process executes deploy, security-scan and promote steps
/// (default true). Several devops replicas may all do so (each step is
/// recorded under a row lock); `false` leaves them to another process.
pub const DELIVERY: &str = "PAAS_DEVOPS_DELIVERY";
/// Conductor-owned steps looked at per pass.
const BATCH: i64 = 32;
/// Pages of applications or releases read when looking one up by name or
/// author: a tenant's applications, a step's release among the newest.
const PAGES: usize = 20;

type Apps = AppsServiceClient<InterceptedService<Channel, Outgoing>>;
type Images = ImagesServiceClient<InterceptedService<Channel, Outgoing>>;

/// Where the services devops delivers through are.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Apps' gRPC URL.
    pub apps_url: String,
    /// The image catalog's gRPC URL; `None`: scans and promotions fail
    /// saying there is no catalog.
    pub images_url: Option<String>,
    /// Whether this process executes the steps.
    pub deliver: bool,
}

impl Settings {
    /// Reads [`APPS_URL`], [`DELIVERY`] and the image catalog's [`crate::registry::IMAGES_URL`].
    ///
    /// # Errors
    /// A malformed value.
    pub fn from_env(env: &Env) -> Result<Self, SettingError> {
        let images = env.or(
            crate::registry::IMAGES_URL,
            crate::registry::IMAGES_URL_DEFAULT.to_string(),
        )?;
        Ok(Self {
            apps_url: env.or(APPS_URL, APPS_URL_DEFAULT.to_string())?,
            images_url: (images != "none").then_some(images),
            deliver: env.or(DELIVERY, true)?,
        })
    }
}

/// Where a conductor-owned step stands after a look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not done; the message says what it waits for.
    Waiting(String),
    /// Done, passed or not, and why.
    Done {
        /// Whether the step succeeded.
        passed: bool,
        /// What happened.
        message: String,
    },
}

fn failed(message: impl Into<String>) -> Progress {
    Progress::Done {
        passed: false,
        message: message.into(),
    }
}

/// A refusal that asking again will not change fails the step; anything
/// else (a service down, a conflict that passes) is waited out, within the
/// step's timeout.
fn answer(status: &tonic::Status, what: &str) -> Progress {
    let message = format!("{what}: {}", status.message());
    match status.code() {
        Code::InvalidArgument | Code::PermissionDenied | Code::NotFound | Code::Unauthenticated => failed(message),
        _ => Progress::Waiting(message),
    }
}

/// A look-up apps or the catalog did not answer; the step waits and asks again.
fn unanswered(status: &tonic::Status) -> Error {
    Error::Unavailable(format!("{:?}: {}", status.code(), status.message()))
}

/// One conductor-owned step of a running run.
struct Work {
    step_id: Uuid,
    tenant: Uuid,
    run_id: Uuid,
    pipeline_id: Uuid,
    git_ref: GitRef,
    step: definition::Step,
    started_at: DateTime<Utc>,
    definition: Definition,
    message: String,
}

/// What the step started elsewhere.
#[derive(Debug, Clone)]
struct Operation {
    application_id: Option<Uuid>,
    release_id: Option<Uuid>,
}

/// The image the run built and pushed.
#[derive(Debug, Clone)]
struct Built {
    /// The catalog repository (`acme/shop/calc`).
    repository: String,
    /// The tag pushed.
    tag: String,
    /// `registry/repository:tag`.
    image: String,
    /// `sha256:...`.
    digest: String,
}

impl Built {
    /// The reference releases run: the tag, pinned by digest.
    fn pinned(&self) -> String {
        format!("{}@{}", self.image, self.digest)
    }
}

/// Executes deploy, security-scan and promote steps.
#[derive(Clone)]
pub struct Delivery {
    settings: Settings,
    key: CallerKey,
    outbox: Outbox,
}

impl Delivery {
    /// A delivery over the outbox's schema, calling apps and the image
    /// catalog with callers signed by `key`.
    pub fn new(settings: Settings, key: CallerKey, outbox: Outbox) -> Self {
        Self { settings, key, outbox }
    }

    /// Looks at every running deploy, security-scan and promote step once,
    /// and records what changed. Returns whether a step ended (the run may
    /// move on).
    ///
    /// # Errors
    /// The database fails. A service that does not answer is waited out.
    pub async fn drive(&self) -> Result<bool> {
        let rows = sqlx::query!(
            "SELECT s.id, s.tenant_id, s.run_id, s.spec, s.started_at, s.message, s.name, g.name AS stage,
                    r.pipeline_id, r.git_ref, r.definition
             FROM steps s JOIN stages g ON g.id = s.stage_id JOIN runs r ON r.id = s.run_id
             WHERE s.state = 'running' AND s.kind IN ('deploy', 'security-scan', 'promote')
                   AND r.state = 'running' AND s.tenant_id = r.tenant_id
             ORDER BY s.id LIMIT $1",
            BATCH
        )
        .fetch_all(self.outbox.pool())
        .await?;
        let mut ended = false;
        for row in rows {
            let step: definition::Step = serde_json::from_value(row.spec).map_err(Error::internal)?;
            let definition: Definition = row
                .definition
                .map(serde_json::from_value)
                .transpose()
                .map_err(Error::internal)?
                .ok_or_else(|| Error::internal(std::io::Error::other("a running run has no definition")))?;
            let work = Work {
                step_id: row.id,
                tenant: row.tenant_id,
                run_id: row.run_id,
                pipeline_id: row.pipeline_id,
                git_ref: GitRef::parse("git_ref", &row.git_ref)?,
                step,
                started_at: row.started_at.unwrap_or_else(Utc::now),
                definition,
                message: row.message,
            };
            let progress = match self.progress(&work).await {
                Ok(p) => p,
                Err(e) => Progress::Waiting(format!("retrying after: {e}")),
            };
            ended |= self.record(&work, &row.stage, &row.name, progress).await?;
        }
        Ok(ended)
    }

    /// Writes the step's progress, unless another pass ended it meanwhile.
    async fn record(&self, work: &Work, stage: &str, name: &str, progress: Progress) -> Result<bool> {
        let mut tx = self.outbox.pool().begin().await?;
        let locked = sqlx::query_scalar!(
            "SELECT id FROM steps WHERE id = $1 AND tenant_id = $2 AND state = 'running' FOR UPDATE SKIP LOCKED",
            work.step_id,
            work.tenant
        )
        .fetch_optional(&mut *tx)
        .await?;
        if locked.is_none() {
            return Ok(false);
        }
        match progress {
            Progress::Waiting(message) => {
                if message != work.message {
                    sqlx::query!("UPDATE steps SET message = $2 WHERE id = $1", work.step_id, message)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(false)
            }
            Progress::Done { passed, message } => {
                let state = if passed { "succeeded" } else { "failed" };
                crate::conductor::set_step(&mut tx, work.step_id, state, &message).await?;
                if let Some(run) = run::load(&mut *tx, work.run_id).await? {
                    announce(&mut tx, &run, Some(stage), Some(name), state).await?;
                }
                self.outbox.commit(tx).await?;
                Ok(true)
            }
        }
    }

    async fn progress(&self, w: &Work) -> Result<Progress> {
        let deadline = chrono::Duration::from_std(w.step.timeout)
            .ok()
            .and_then(|t| w.started_at.checked_add_signed(t));
        if deadline.is_some_and(|d| Utc::now() > d) {
            let last = if w.message.is_empty() {
                String::new()
            } else {
                format!(" (last: {})", w.message)
            };
            return Ok(failed(format!(
                "{} did not finish within its timeout of {}s{last}",
                w.step.action.kind(),
                w.step.timeout.as_secs()
            )));
        }
        let op = self.operation(w).await?;
        match &w.step.action {
            Action::SecurityScan { max_severity } => self.scan(w, op.as_ref(), max_severity).await,
            Action::Deploy { environment } => self.deploy(w, op.as_ref(), *environment, None).await,
            Action::Promote { to } => self.promote(w, op.as_ref(), *to).await,
            other => Ok(failed(format!("devops does not execute {} steps itself", other.kind()))),
        }
    }

    fn caller(&self, w: &Work, role: Role) -> Caller {
        Caller::user(
            format!("pipeline-step:{}", w.step_id),
            vec![Membership { tenant: w.tenant, role }],
        )
    }

    fn apps(&self, caller: &Caller) -> Result<Apps> {
        Ok(AppsServiceClient::with_interceptor(
            channel(&self.settings.apps_url)?,
            Outgoing::new(&self.key, caller),
        ))
    }

    fn images(&self, caller: &Caller) -> Result<Option<Images>> {
        let Some(url) = &self.settings.images_url else {
            return Ok(None);
        };
        Ok(Some(ImagesServiceClient::with_interceptor(
            channel(url)?,
            Outgoing::new(&self.key, caller),
        )))
    }

    async fn operation(&self, w: &Work) -> Result<Option<Operation>> {
        let op = sqlx::query_as!(
            Operation,
            "SELECT application_id, release_id FROM step_operations WHERE step_id = $1 AND tenant_id = $2",
            w.step_id,
            w.tenant
        )
        .fetch_optional(self.outbox.pool())
        .await?;
        Ok(op)
    }

    /// The image the run's last successful build-image step pushed.
    async fn built(&self, w: &Work) -> Result<Option<Built>> {
        let row = sqlx::query!(
            "SELECT spec, image, image_digest FROM steps
             WHERE run_id = $1 AND tenant_id = $2 AND kind = 'build-image' AND state = 'succeeded'
                   AND image_digest <> ''
             ORDER BY finished_at DESC LIMIT 1",
            w.run_id,
            w.tenant
        )
        .fetch_optional(self.outbox.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let step: definition::Step = serde_json::from_value(row.spec).map_err(Error::internal)?;
        let Action::BuildImage { repository, .. } = step.action else {
            return Ok(None);
        };
        let tag = row
            .image
            .rsplit_once(':')
            .map(|(_, t)| t.to_string())
            .unwrap_or_default();
        Ok(Some(Built {
            repository,
            tag,
            image: row.image,
            digest: row.image_digest,
        }))
    }

    /// The catalog's id of `repository`, once the catalog lists it.
    async fn repository_id(&self, images: &mut Images, tenant: Uuid, repository: &str) -> Result<Option<String>> {
        let found = images
            .list_repositories(pb::ListRepositoriesRequest {
                tenant_id: tenant.to_string(),
                query: repository.to_string(),
                label: String::new(),
                page: Some(pb::PageRequest {
                    limit: 100,
                    cursor: String::new(),
                }),
            })
            .await
            .map_err(|s| unanswered(&s))?
            .into_inner();
        Ok(found
            .repositories
            .into_iter()
            .find(|r| r.name == repository)
            .map(|r| r.id))
    }

    async fn scan(&self, w: &Work, op: Option<&Operation>, max_severity: &str) -> Result<Progress> {
        let Some(built) = self.built(w).await? else {
            return Ok(failed("no build-image step of this run pushed an image to scan"));
        };
        let Some(mut images) = self.images(&self.caller(w, Role::Developer))? else {
            return Ok(failed("no image catalog is configured to scan with"));
        };
        let Some(repository_id) = self.repository_id(&mut images, w.tenant, &built.repository).await? else {
            return Ok(Progress::Waiting(format!(
                "waiting for the catalog to list {}",
                built.repository
            )));
        };
        if op.is_none() {
            let request = pb::ScanTagRequest {
                repository_id,
                tag: built.tag.clone(),
            };
            if let Err(status) = images.scan_tag(request).await {
                return Ok(answer(&status, "the image catalog did not scan the image"));
            }
            sqlx::query!(
                "INSERT INTO step_operations (step_id, tenant_id, run_id, kind, image, digest)
                 VALUES ($1, $2, $3, 'security-scan', $4, $5) ON CONFLICT (step_id) DO NOTHING",
                w.step_id,
                w.tenant,
                w.run_id,
                built.image,
                built.digest,
            )
            .execute(self.outbox.pool())
            .await?;
            return Ok(Progress::Waiting(format!("scan of {} requested", built.digest)));
        }
        let scan = match images
            .get_tag_scan(pb::GetTagScanRequest {
                repository_id,
                tag: built.tag.clone(),
            })
            .await
        {
            Ok(scan) => scan.into_inner(),
            Err(status) if status.code() == Code::NotFound => {
                return Ok(Progress::Waiting("the scan is queued".into()));
            }
            Err(status) => return Ok(answer(&status, "the image catalog gave no scan")),
        };
        if scan.digest != built.digest {
            return Ok(failed(format!(
                "{} now points at {}, not at the digest this run built ({})",
                built.tag, scan.digest, built.digest
            )));
        }
        match scan.status.as_str() {
            "done" => {}
            "failed" => return Ok(failed(format!("the scanner failed: {}", scan.message))),
            other => return Ok(Progress::Waiting(format!("the scan is {other}"))),
        }
        let findings: Vec<(String, String)> = scan
            .vulnerabilities
            .iter()
            .map(|v| (v.id.clone(), v.severity.clone()))
            .collect();
        let verdict = scan_gate::verdict(&scan.highest_severity, max_severity, &findings);
        sqlx::query!(
            "UPDATE step_operations SET severity = $3, passed = $4, updated_at = now()
             WHERE step_id = $1 AND tenant_id = $2",
            w.step_id,
            w.tenant,
            scan.highest_severity,
            verdict.is_none(),
        )
        .execute(self.outbox.pool())
        .await?;
        Ok(match verdict {
            Some(why) => failed(why),
            None => Progress::Done {
                passed: true,
                message: format!(
                    "{} passed the scan: highest severity {} within max_severity {max_severity}",
                    built.digest,
                    if scan.highest_severity.is_empty() {
                        "none"
                    } else {
                        scan.highest_severity.as_str()
                    }
                ),
            },
        })
    }

    /// The application `target` names: its id, or its name in the tenant.
    async fn application(&self, apps: &mut Apps, tenant: Uuid, target: &Target) -> Result<Result<Uuid, String>> {
        if let Ok(id) = Uuid::parse_str(&target.application) {
            return Ok(Ok(id));
        }
        let found = self.named(apps, tenant, &target.application).await?;
        Ok(match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(format!("the tenant has no application named {}", target.application)),
            _ => Err(format!(
                "{} names applications in several projects: name it by id",
                target.application
            )),
        })
    }

    async fn named(&self, apps: &mut Apps, tenant: Uuid, name: &str) -> Result<Vec<Uuid>> {
        let mut found = Vec::new();
        let mut cursor = String::new();
        for _ in 0..PAGES {
            let page = apps
                .list_applications(pb::ListApplicationsRequest {
                    tenant_id: tenant.to_string(),
                    page: Some(pb::PageRequest { limit: 100, cursor }),
                })
                .await
                .map_err(|s| unanswered(&s))?
                .into_inner();
            found.extend(
                page.applications
                    .iter()
                    .filter(|a| a.name == name)
                    .filter_map(|a| Uuid::parse_str(&a.id).ok()),
            );
            cursor = page.page.map(|p| p.next_cursor).unwrap_or_default();
            if cursor.is_empty() {
                break;
            }
        }
        Ok(found)
    }

    /// The release of `application` made by `author`, among the newest.
    async fn release_by(&self, apps: &mut Apps, application: Uuid, author: &str) -> Result<Option<pb::Release>> {
        let mut cursor = String::new();
        for _ in 0..PAGES {
            let page = apps
                .list_releases(pb::ListReleasesRequest {
                    application_id: application.to_string(),
                    page: Some(pb::PageRequest { limit: 100, cursor }),
                })
                .await
                .map_err(|s| unanswered(&s))?
                .into_inner();
            if let Some(r) = page.releases.into_iter().find(|r| r.created_by == author) {
                return Ok(Some(r));
            }
            cursor = page.page.map(|p| p.next_cursor).unwrap_or_default();
            if cursor.is_empty() {
                break;
            }
        }
        Ok(None)
    }

    async fn release(&self, apps: &mut Apps, application: Uuid, release: Uuid) -> Result<Option<pb::Release>> {
        let mut cursor = String::new();
        let id = release.to_string();
        for _ in 0..PAGES {
            let page = apps
                .list_releases(pb::ListReleasesRequest {
                    application_id: application.to_string(),
                    page: Some(pb::PageRequest { limit: 100, cursor }),
                })
                .await
                .map_err(|s| unanswered(&s))?
                .into_inner();
            if let Some(r) = page.releases.into_iter().find(|r| r.id == id) {
                return Ok(Some(r));
            }
            cursor = page.page.map(|p| p.next_cursor).unwrap_or_default();
            if cursor.is_empty() {
                break;
            }
        }
        Ok(None)
    }

    async fn remember(
        &self,
        w: &Work,
        environment: Environment,
        application: Uuid,
        release: &pb::Release,
        built: &Built,
    ) -> Result<()> {
        sqlx::query!(
            "INSERT INTO step_operations (step_id, tenant_id, run_id, kind, environment, application_id, release_id,
                                          template_version_id, image, digest)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (step_id) DO UPDATE SET application_id = EXCLUDED.application_id,
                 release_id = EXCLUDED.release_id, template_version_id = EXCLUDED.template_version_id,
                 environment = EXCLUDED.environment, image = EXCLUDED.image, digest = EXCLUDED.digest,
                 updated_at = now()",
            w.step_id,
            w.tenant,
            w.run_id,
            w.step.action.kind(),
            environment.as_str(),
            application,
            Uuid::parse_str(&release.id).map_err(Error::internal)?,
            release.template_version_id,
            built.image,
            built.digest,
        )
        .execute(self.outbox.pool())
        .await?;
        sqlx::query!(
            "UPDATE steps SET image = $3, image_digest = $4 WHERE id = $1 AND tenant_id = $2",
            w.step_id,
            w.tenant,
            built.image,
            built.digest
        )
        .execute(self.outbox.pool())
        .await?;
        Ok(())
    }

    async fn deploy(
        &self,
        w: &Work,
        op: Option<&Operation>,
        environment: Environment,
        template_version: Option<String>,
    ) -> Result<Progress> {
        let built = self.built(w).await?;
        if environment == Environment::Production {
            let digest = built.as_ref().map(|b| b.digest.as_str()).unwrap_or_default();
            let mut conn = self.outbox.pool().acquire().await?;
            if let Some(refusal) = scan_gate::production_refusal(&mut conn, w.run_id, digest).await? {
                return Ok(failed(refusal));
            }
        }
        let Some(built) = built else {
            return Ok(failed("no build-image step of this run pushed an image to deploy"));
        };
        let Some(target) = w.definition.environments.get(&environment) else {
            return Ok(failed(format!(
                "environments.{} names no application",
                environment.as_str()
            )));
        };
        let role = if environment == Environment::Production {
            Role::TenantAdmin
        } else {
            Role::Developer
        };
        let caller = self.caller(w, role);
        let mut apps = self.apps(&caller)?;
        if let Some(Operation {
            application_id: Some(application),
            release_id: Some(release),
        }) = op
        {
            return self.watch(&mut apps, *application, *release).await;
        }
        let application = match (w.git_ref.flow(), environment) {
            (Flow::Feature(feature), Environment::Dev) => {
                match self
                    .branch_environment(w, &mut apps, target, &feature, &built, template_version.as_deref())
                    .await?
                {
                    Ok(id) => id,
                    Err(progress) => return Ok(progress),
                }
            }
            _ => match self.application(&mut apps, w.tenant, target).await? {
                Ok(id) => id,
                Err(why) => return Ok(failed(format!("environments.{}: {why}", environment.as_str()))),
            },
        };
        if let Some(release) = self.release_by(&mut apps, application, &caller.subject).await? {
            self.remember(w, environment, application, &release, &built).await?;
            return Ok(Progress::Waiting(format!("release {} made", release.number)));
        }
        let app = match apps
            .get_application(pb::GetApplicationRequest {
                id: application.to_string(),
            })
            .await
        {
            Ok(a) => a.into_inner(),
            Err(status) => return Ok(answer(&status, "apps did not give the application")),
        };
        let current = app.latest_release.as_ref().map(|r| r.parameters_json.as_str());
        let parameters = with_image(current, &target.image_parameter, &built.pinned())?;
        let created = apps
            .create_release(pb::CreateReleaseRequest {
                application_id: application.to_string(),
                template_version_id: template_version.unwrap_or_default(),
                parameters_json: Some(parameters),
                placement_json: None,
                strategy_json: None,
            })
            .await;
        match created {
            Ok(release) => {
                let release = release.into_inner();
                self.remember(w, environment, application, &release, &built).await?;
                Ok(Progress::Waiting(format!(
                    "release {} of {} made with {}",
                    release.number,
                    app.name,
                    built.pinned()
                )))
            }
            Err(status) if status.code() == Code::FailedPrecondition => Ok(Progress::Waiting(format!(
                "{} cannot take a release yet: {}",
                app.name,
                status.message()
            ))),
            Err(status) => Ok(answer(&status, &format!("apps refused a release of {}", app.name))),
        }
    }

    /// The application of a feature branch's own environment, made from the
    /// dev application on the branch's first deploy; `Err` carries what the
    /// step should report instead.
    async fn branch_environment(
        &self,
        w: &Work,
        apps: &mut Apps,
        target: &Target,
        feature: &str,
        built: &Built,
        template_version: Option<&str>,
    ) -> Result<Result<Uuid, Progress>> {
        let branch = w.git_ref.name().to_string();
        let mut conn = self.outbox.pool().acquire().await?;
        if let Some(env) = environment::of_branch(&mut conn, w.tenant, w.pipeline_id, &branch).await? {
            return Ok(Ok(env.application_id));
        }
        let base = match self.application(apps, w.tenant, target).await? {
            Ok(id) => id,
            Err(why) => return Ok(Err(failed(format!("environments.dev: {why}")))),
        };
        let base = match apps
            .get_application(pb::GetApplicationRequest { id: base.to_string() })
            .await
        {
            Ok(a) => a.into_inner(),
            Err(status) => return Ok(Err(answer(&status, "apps did not give the dev application"))),
        };
        let Some(latest) = base.latest_release.clone() else {
            return Ok(Err(failed(format!(
                "the dev application {} has no release to copy for {branch}",
                base.name
            ))));
        };
        let name = environment::branch_application(&base.name, feature);
        let parameters = with_image(Some(&latest.parameters_json), &target.image_parameter, &built.pinned())?;
        let made = apps
            .deploy_application(pb::DeployApplicationRequest {
                tenant_id: w.tenant.to_string(),
                project_id: base.project_id.clone(),
                name: name.clone(),
                environment: Environment::Dev.apps_environment().into(),
                template_version_id: template_version.unwrap_or(&latest.template_version_id).to_string(),
                parameters_json: parameters,
                placement_json: latest.placement_json.clone(),
                strategy_json: latest.strategy_json.clone(),
            })
            .await;
        let application = match made {
            Ok(app) => Uuid::parse_str(&app.into_inner().id).map_err(Error::internal)?,
            // Made before a restart, or by another replica's pass.
            Err(status) if status.code() == Code::AlreadyExists => match self.named(apps, w.tenant, &name).await?[..] {
                [id] => id,
                _ => return Ok(Err(answer(&status, &format!("apps did not make {name}")))),
            },
            Err(status) => return Ok(Err(answer(&status, &format!("apps did not make {name}")))),
        };
        environment::record(&mut conn, w.tenant, w.pipeline_id, &branch, application, &name).await?;
        Ok(Ok(application))
    }

    async fn watch(&self, apps: &mut Apps, application: Uuid, release: Uuid) -> Result<Progress> {
        let Some(r) = self.release(apps, application, release).await? else {
            return Ok(failed(format!(
                "release {release} is gone from application {application}"
            )));
        };
        let name = match apps
            .get_application(pb::GetApplicationRequest {
                id: application.to_string(),
            })
            .await
        {
            Ok(a) => a.into_inner().name,
            Err(_) => application.to_string(),
        };
        Ok(match r.state.as_str() {
            "succeeded" => Progress::Done {
                passed: true,
                message: format!("release {} of {name} is Healthy", r.number),
            },
            "awaiting-approval" => Progress::Waiting(format!(
                "release {} of {name} awaits a tenant administrator's approval in apps",
                r.number
            )),
            "deploying" => Progress::Waiting(format!(
                "release {} of {name} is deploying ({})",
                r.number,
                if r.phase.is_empty() {
                    "rollout"
                } else {
                    r.phase.as_str()
                }
            )),
            other => failed(format!(
                "release {} of {name} {other}{}",
                r.number,
                if r.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", r.message)
                }
            )),
        })
    }

    async fn promote(&self, w: &Work, op: Option<&Operation>, to: Environment) -> Result<Progress> {
        if op.is_none() {
            let Some(built) = self.built(w).await? else {
                return Ok(failed("no build-image step of this run pushed an image to promote"));
            };
            if to == Environment::Production {
                // The gate comes before the lifecycle: a refused image is not released.
                let mut conn = self.outbox.pool().acquire().await?;
                if let Some(refusal) = scan_gate::production_refusal(&mut conn, w.run_id, &built.digest).await? {
                    return Ok(failed(refusal));
                }
            }
            let role = if to == Environment::Production {
                Role::TenantAdmin
            } else {
                Role::Developer
            };
            if let Some(stop) = self.move_lifecycle(w, role, &built, to).await? {
                return Ok(stop);
            }
        }
        let from = sqlx::query_scalar!(
            "SELECT template_version_id FROM step_operations
             WHERE run_id = $1 AND tenant_id = $2 AND kind IN ('deploy', 'promote') AND release_id IS NOT NULL
                   AND step_id <> $3 AND template_version_id <> ''
             ORDER BY updated_at DESC LIMIT 1",
            w.run_id,
            w.tenant,
            w.step_id
        )
        .fetch_optional(self.outbox.pool())
        .await?;
        if from.is_none() {
            return Ok(failed(
                "nothing to promote: no earlier deploy of this run made a release",
            ));
        }
        self.deploy(w, op, to, from).await
    }

    /// Moves the image forward to tested (and to released for production);
    /// `Some` when the step must stop or wait instead.
    async fn move_lifecycle(&self, w: &Work, role: Role, built: &Built, to: Environment) -> Result<Option<Progress>> {
        let Some(mut images) = self.images(&self.caller(w, role))? else {
            return Ok(Some(failed("no image catalog is configured to promote in")));
        };
        let Some(repository_id) = self.repository_id(&mut images, w.tenant, &built.repository).await? else {
            return Ok(Some(Progress::Waiting(format!(
                "waiting for the catalog to list {}",
                built.repository
            ))));
        };
        let goal = if to == Environment::Production {
            pb::TagState::Released
        } else {
            pb::TagState::Tested
        };
        let tag = match images
            .get_tag(pb::GetTagRequest {
                repository_id: repository_id.clone(),
                tag: built.tag.clone(),
            })
            .await
        {
            Ok(t) => t.into_inner(),
            Err(status) => return Ok(Some(answer(&status, "the catalog did not give the tag"))),
        };
        if tag.digest != built.digest {
            return Ok(Some(failed(format!(
                "{} now points at {}, not at the digest this run built ({})",
                built.tag, tag.digest, built.digest
            ))));
        }
        let mut state = tag.state();
        if matches!(state, pb::TagState::Deprecated | pb::TagState::Deleted) {
            return Ok(Some(failed(format!(
                "{} is {}: it is not promoted",
                built.tag,
                state.as_str_name()
            ))));
        }
        for next in [pb::TagState::Tested, pb::TagState::Released] {
            if (state as i32) >= (next as i32) || (next as i32) > (goal as i32) {
                continue;
            }
            let moved = images
                .move_tag(pb::MoveTagRequest {
                    repository_id: repository_id.clone(),
                    tag: built.tag.clone(),
                    state: next as i32,
                })
                .await;
            match moved {
                Ok(_) => state = next,
                Err(status) => {
                    return Ok(Some(answer(
                        &status,
                        &format!("the catalog did not move {} to {}", built.tag, next.as_str_name()),
                    )));
                }
            }
        }
        Ok(None)
    }

    /// Deletes the applications of environments whose branch is gone.
    ///
    /// # Errors
    /// The database fails; apps refusing is retried next pass.
    pub async fn remove_retired(&self) -> Result<()> {
        let retired = sqlx::query!(
            "SELECT id, tenant_id, application_id, application FROM branch_environments
             WHERE state = 'removing' ORDER BY created_at LIMIT 16"
        )
        .fetch_all(self.outbox.pool())
        .await?;
        for env in retired {
            let caller = Caller::user(
                format!("pipeline-environment:{}", env.id),
                vec![Membership {
                    tenant: env.tenant_id,
                    role: Role::Developer,
                }],
            );
            let deleted = self
                .apps(&caller)?
                .delete_application(pb::DeleteApplicationRequest {
                    id: env.application_id.to_string(),
                })
                .await;
            match deleted {
                Ok(_) => {}
                Err(status) if status.code() == Code::NotFound => {}
                Err(status) => {
                    tracing::warn!(application = %env.application, error = %status.message(),
                        "the branch environment's application is not deleted yet; retrying");
                    continue;
                }
            }
            sqlx::query!(
                "UPDATE branch_environments SET state = 'removed', removed_at = now()
                 WHERE id = $1 AND tenant_id = $2 AND state = 'removing'",
                env.id,
                env.tenant_id
            )
            .execute(self.outbox.pool())
            .await?;
        }
        Ok(())
    }
}

/// The release parameters: the current ones with `parameter` set to `image`.
fn with_image(current: Option<&str>, parameter: &str, image: &str) -> Result<String> {
    let mut parameters: BTreeMap<String, serde_json::Value> = match current {
        Some(text) if !text.trim().is_empty() => serde_json::from_str(text).map_err(Error::internal)?,
        _ => BTreeMap::new(),
    };
    parameters.insert(parameter.to_string(), serde_json::Value::String(image.to_string()));
    serde_json::to_string(&parameters).map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_parameter_is_set_and_the_others_kept() {
        let out = with_image(
            Some(r#"{"port": 8080, "image": "old"}"#),
            "image",
            "r/a/b/c:1@sha256:ab",
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["port"], 8080);
        assert_eq!(v["image"], "r/a/b/c:1@sha256:ab");
        let fresh = with_image(None, "web_image", "x").unwrap();
        assert_eq!(fresh, r#"{"web_image":"x"}"#);
    }

    #[test]
    fn only_refusals_that_stay_refusals_fail_a_step() {
        let bad = answer(&tonic::Status::invalid_argument("no"), "apps");
        assert!(matches!(bad, Progress::Done { passed: false, .. }));
        let down = answer(&tonic::Status::unavailable("down"), "apps");
        assert_eq!(down, Progress::Waiting("apps: down".into()));
    }
}
