//! Pipelines' routes (R8), forwarded to the devops service: pipelines and
//! their definitions, webhook endpoints (the secret shown once; deliveries
//! come in on a public route, authenticated by their signature), runs
//! (manual start with parameters, filters, cancel), steps with their logs
//! (live as Server-Sent Events), approvals, and runners.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use kernel::caller::{Caller, Role};
use kernel::grpc::time;
use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use crate::AppState;
use crate::json::Body;
use crate::page::{ListQuery, Page};
use crate::problem::{ApiError, Problems};
use crate::rbac::Permission;
use crate::request::{Path, Query};
use crate::route::Routes;
use crate::upstream::{Devops, Signed};

/// The routes, each with who may call it.
pub fn routes() -> Routes {
    let dev = Permission::Role(Role::Developer);
    Routes::new()
        .route(dev, routes!(create_pipeline))
        .route(Permission::Authenticated, routes!(list_pipelines))
        .route(Permission::Authenticated, routes!(get_pipeline))
        .route(dev, routes!(delete_pipeline))
        .route(dev, routes!(set_definition))
        .route(dev, routes!(create_webhook))
        .route(Permission::Authenticated, routes!(list_webhooks))
        .route(Permission::Public, routes!(deliver))
        .route(dev, routes!(start_run))
        .route(Permission::Authenticated, routes!(list_runs))
        .route(Permission::Authenticated, routes!(get_run))
        .route(dev, routes!(cancel_run))
        .route(Permission::Authenticated, routes!(get_step))
        .route(Permission::Authenticated, routes!(step_log))
        // Approvers may hold any role: the step names them, devops checks.
        .route(Permission::Authenticated, routes!(decide))
        .route(dev, routes!(create_runner))
        .route(Permission::Authenticated, routes!(list_runners))
        .route(dev, routes!(drain_runner))
}

/// Whether a request path is a log stream that stays open while its step runs.
pub fn holds_open(path: &str) -> bool {
    path.starts_with("/api/v1/steps/") && path.ends_with("/log")
}

/// Where a pipeline's definition comes from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum DefinitionSource {
    /// The definition stored in the platform.
    #[default]
    Platform,
    /// `.paas/pipeline.yaml` at the commit built.
    Repository,
}

impl DefinitionSource {
    fn as_str(self) -> &'static str {
        match self {
            Self::Platform => "platform",
            Self::Repository => "repository",
        }
    }
}

/// Body of `POST /pipelines`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPipeline {
    /// The tenant.
    #[schema(format = Uuid)]
    tenant_id: String,
    /// DNS label, unique in the tenant.
    name: String,
    /// The Git repository (https://, ssh://, git:// or user@host:path).
    repository: String,
    /// The application it delivers.
    #[serde(default)]
    #[schema(format = Uuid)]
    application_id: String,
    /// The YAML definition (stages and steps).
    #[serde(default)]
    definition: String,
    /// Which definition wins.
    #[serde(default)]
    definition_source: DefinitionSource,
}

/// A pipeline.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Pipeline {
    /// Its id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Its tenant.
    #[schema(format = Uuid)]
    pub tenant_id: String,
    /// Its name.
    pub name: String,
    /// The repository it builds.
    pub repository: String,
    /// The application it delivers; empty: none.
    pub application_id: String,
    /// The stored YAML definition; empty: none.
    pub definition: String,
    /// Which definition wins: platform or repository.
    pub definition_source: String,
    /// Runs started so far (the next build number is one more).
    pub builds: u64,
    /// Created.
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::Pipeline> for Pipeline {
    fn from(p: pb::Pipeline) -> Self {
        Self {
            id: p.id,
            tenant_id: p.tenant_id,
            name: p.name,
            repository: p.repository,
            application_id: p.application_id,
            definition: p.definition,
            definition_source: p.definition_source,
            builds: p.builds,
            created_at: time(p.created_at),
        }
    }
}

/// Filters of `GET /pipelines` and `GET /runners`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantFilter {
    /// Only this tenant's.
    #[serde(default)]
    #[param(format = Uuid)]
    tenant_id: String,
}

/// Body of `PUT /pipelines/{id}/definition`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetDefinition {
    /// The YAML definition; errors name its path (`definition.stages[2].steps[0].image`).
    #[serde(default)]
    definition: String,
    /// Which definition wins.
    #[serde(default)]
    definition_source: DefinitionSource,
}

/// A webhook format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// `X-Gitlab-Token`.
    Gitlab,
    /// `X-Hub-Signature-256` (HMAC-SHA256).
    Github,
    /// Gitea's (the GitHub format).
    Gitea,
}

/// Body of `POST /pipelines/{id}/webhooks`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// How the Git server signs its deliveries.
    format: WebhookFormat,
}

/// A webhook endpoint.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Webhook {
    /// Its id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Its pipeline.
    #[schema(format = Uuid)]
    pub pipeline_id: String,
    /// gitlab or github.
    pub format: String,
    /// The path the Git server posts to.
    pub url: String,
    /// Created.
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::Webhook> for Webhook {
    fn from(w: pb::Webhook) -> Self {
        Self {
            url: format!("/api/v1/webhooks/{}", w.id),
            id: w.id,
            pipeline_id: w.pipeline_id,
            format: w.format,
            created_at: time(w.created_at),
        }
    }
}

/// A new webhook endpoint with its secret, shown this once.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookCreated {
    /// The endpoint.
    pub webhook: Webhook,
    /// The secret to give the Git server (token or HMAC key).
    pub secret: String,
}

/// The pipeline's webhook endpoints.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Webhooks {
    /// All of them.
    pub items: Vec<Webhook>,
}

/// What a delivery did.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryAnswer {
    /// queued, duplicate or ignored.
    pub outcome: String,
    /// The run it queued (or the earlier one, for a duplicate).
    pub run_id: String,
    /// Why nothing was queued.
    pub reason: String,
}

/// Body of `POST /pipelines/{id}/runs`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRun {
    /// A branch name, `refs/heads/<branch>` or `refs/tags/<tag>`.
    #[serde(rename = "ref")]
    git_ref: String,
    /// A full commit id; absent: the ref's current commit.
    #[serde(default)]
    commit: String,
    /// Variables given to every step.
    #[serde(default)]
    parameters: BTreeMap<String, String>,
}

/// A run's state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Waiting to be planned.
    Queued,
    /// Planned and moving.
    Running,
    /// Every stage passed.
    Succeeded,
    /// A step failed.
    Failed,
    /// Someone cancelled it.
    Cancelled,
}

/// Filters of `GET /runs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunFilter {
    /// Only this tenant's.
    #[serde(default)]
    #[param(format = Uuid)]
    tenant_id: String,
    /// Only this pipeline's.
    #[serde(default)]
    #[param(format = Uuid)]
    pipeline_id: String,
    /// Only this application's.
    #[serde(default)]
    #[param(format = Uuid)]
    application_id: String,
    /// Only this branch's (or tag's).
    #[serde(default)]
    branch: String,
    /// Only runs in this state.
    #[serde(default)]
    #[param(inline)]
    state: Option<RunState>,
}

/// A failed test.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TestFailure {
    /// `classname.name`.
    pub name: String,
    /// The failure's message.
    pub message: String,
}

/// An approver's decision.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Decision {
    /// Who.
    pub approver: String,
    /// approved or rejected.
    pub decision: String,
    /// Why.
    pub comment: String,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
}

/// A step of a run.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunStep {
    /// Its id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Its run.
    #[schema(format = Uuid)]
    pub run_id: String,
    /// Its stage.
    pub stage: String,
    /// Its name.
    pub name: String,
    /// run, test, approval, deploy, build-image, security-scan or promote.
    pub kind: String,
    /// pending, queued, running, waiting, succeeded, failed, cancelled or skipped.
    pub state: String,
    /// Attempts so far.
    pub attempt: u32,
    /// The runner executing it.
    pub runner_id: String,
    /// The last command's exit code.
    pub exit_code: Option<i32>,
    /// Why it ended so.
    pub message: String,
    /// JUnit test cases (test steps).
    pub tests_total: Option<u32>,
    /// Failed test cases.
    pub tests_failed: Option<u32>,
    /// Skipped test cases.
    pub tests_skipped: Option<u32>,
    /// The failed cases.
    pub test_failures: Vec<TestFailure>,
    /// Started.
    pub started_at: Option<DateTime<Utc>>,
    /// Ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The kept tail of its output (on `GET /steps/{id}` only).
    pub log: String,
    /// Characters of output ever written.
    pub log_length: u64,
    /// Approval decisions (on `GET /steps/{id}` only).
    pub approvals: Vec<Decision>,
    /// What a build-image step pushed: `registry/tenant/project/name:version`.
    pub image: String,
    /// The pushed manifest's digest (`sha256:...`), the run's artifact.
    pub image_digest: String,
}

impl From<pb::Step> for RunStep {
    fn from(s: pb::Step) -> Self {
        Self {
            id: s.id,
            run_id: s.run_id,
            stage: s.stage,
            name: s.name,
            kind: s.kind,
            state: s.state,
            attempt: s.attempt,
            runner_id: s.runner_id,
            exit_code: s.exit_code,
            message: s.message,
            tests_total: s.tests_total,
            tests_failed: s.tests_failed,
            tests_skipped: s.tests_skipped,
            test_failures: s
                .test_failures
                .into_iter()
                .map(|f| TestFailure {
                    name: f.name,
                    message: f.message,
                })
                .collect(),
            started_at: time(s.started_at),
            finished_at: time(s.finished_at),
            log: s.log,
            log_length: s.log_length,
            image: s.image,
            image_digest: s.image_digest,
            approvals: s
                .approvals
                .into_iter()
                .map(|a| Decision {
                    approver: a.approver,
                    decision: a.decision,
                    comment: a.comment,
                    decided_at: time(a.decided_at),
                })
                .collect(),
        }
    }
}

/// A stage of a run.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunStage {
    /// Its id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Its name.
    pub name: String,
    /// pending, running, succeeded, failed, cancelled or skipped.
    pub state: String,
    /// Its steps, in order.
    pub steps: Vec<RunStep>,
}

/// A run of a pipeline.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Run {
    /// Its id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Its tenant.
    #[schema(format = Uuid)]
    pub tenant_id: String,
    /// Its pipeline.
    #[schema(format = Uuid)]
    pub pipeline_id: String,
    /// The application the pipeline delivers.
    pub application_id: String,
    /// Its build number in the pipeline.
    pub number: u64,
    /// The full ref built.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The branch or tag.
    pub branch: String,
    /// The commit built.
    pub commit: String,
    /// Its semantic version (`1.4.1-build.17`, or the tag's).
    pub version: String,
    /// webhook, manual or schedule.
    pub trigger: String,
    /// Who or what started it.
    pub triggered_by: String,
    /// Its parameters.
    pub parameters: BTreeMap<String, String>,
    /// Its state.
    pub state: RunState,
    /// Why it failed or was cancelled.
    pub message: String,
    /// Queued.
    pub created_at: Option<DateTime<Utc>>,
    /// Planned.
    pub started_at: Option<DateTime<Utc>>,
    /// Ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its stages and steps (on `GET /runs/{id}` only).
    pub stages: Vec<RunStage>,
}

fn run_state(raw: &str) -> RunState {
    match raw {
        "running" => RunState::Running,
        "succeeded" => RunState::Succeeded,
        "failed" => RunState::Failed,
        "cancelled" => RunState::Cancelled,
        _ => RunState::Queued,
    }
}

fn state_word(s: RunState) -> &'static str {
    match s {
        RunState::Queued => "queued",
        RunState::Running => "running",
        RunState::Succeeded => "succeeded",
        RunState::Failed => "failed",
        RunState::Cancelled => "cancelled",
    }
}

impl From<pb::Run> for Run {
    fn from(r: pb::Run) -> Self {
        Self {
            state: run_state(&r.state),
            id: r.id,
            tenant_id: r.tenant_id,
            pipeline_id: r.pipeline_id,
            application_id: r.application_id,
            number: r.number,
            git_ref: r.git_ref,
            branch: r.branch,
            commit: r.commit,
            version: r.version,
            trigger: r.trigger,
            triggered_by: r.triggered_by,
            parameters: r.parameters.into_iter().collect(),
            message: r.message,
            created_at: time(r.created_at),
            started_at: time(r.started_at),
            finished_at: time(r.finished_at),
            stages: r
                .stages
                .into_iter()
                .map(|s| RunStage {
                    id: s.id,
                    name: s.name,
                    state: s.state,
                    steps: s.steps.into_iter().map(RunStep::from).collect(),
                })
                .collect(),
        }
    }
}

/// Body of `POST /steps/{id}/approval`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decide {
    /// Approve (true) or reject (false).
    approve: bool,
    /// Why.
    #[serde(default)]
    comment: String,
}

/// Query of `GET /steps/{id}/log`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Characters of output already seen; `Last-Event-ID` wins.
    #[param(pattern = "^[0-9]{0,19}$")]
    offset: Option<String>,
}

/// A piece of a step's output, as an SSE `output` event's data.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogChunk {
    /// Where `text` starts in all output ever written.
    pub offset: u64,
    /// The text.
    pub text: String,
    /// Output before `offset` was dropped (only the tail is kept).
    pub truncated: bool,
    /// The step's state.
    pub state: String,
}

/// Body of `POST /runners`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRunner {
    /// The tenant whose steps it runs.
    #[schema(format = Uuid)]
    tenant_id: String,
    /// DNS label, unique in the tenant.
    name: String,
}

/// A runner.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Runner {
    /// Its id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Its tenant.
    #[schema(format = Uuid)]
    pub tenant_id: String,
    /// Its name.
    pub name: String,
    /// active or draining.
    pub state: String,
    /// Steps it runs at once.
    pub concurrency: u32,
    /// bwrap or none.
    pub sandbox: String,
    /// Whether it called within its lease.
    pub online: bool,
    /// Its last call.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::Runner> for Runner {
    fn from(r: pb::Runner) -> Self {
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            name: r.name,
            state: r.state,
            concurrency: r.concurrency,
            sandbox: r.sandbox,
            online: r.online,
            last_seen_at: time(r.last_seen_at),
            created_at: time(r.created_at),
        }
    }
}

/// A new runner with its token, shown this once (`PAAS_RUNNER_TOKEN`).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunnerCreated {
    /// The runner.
    pub runner: Runner,
    /// Its token.
    pub token: String,
}

#[utoipa::path(post, path = "/api/v1/pipelines", tag = "pipelines", request_body = NewPipeline,
    responses((status = 201, body = Pipeline), Problems), security(("bearer" = [])))]
async fn create_pipeline(
    Signed(mut devops): Signed<Devops>,
    Body(b): Body<NewPipeline>,
) -> Result<(StatusCode, Json<Pipeline>), ApiError> {
    let request = pb::CreatePipelineRequest {
        tenant_id: b.tenant_id,
        name: b.name,
        repository: b.repository,
        application_id: b.application_id,
        definition: b.definition,
        definition_source: b.definition_source.as_str().into(),
    };
    let p = devops.create_pipeline(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(p.into())))
}

#[utoipa::path(get, path = "/api/v1/pipelines", tag = "pipelines", params(ListQuery, TenantFilter),
    responses((status = 200, body = Page<Pipeline>), Problems), security(("bearer" = [])))]
async fn list_pipelines(
    Signed(mut devops): Signed<Devops>,
    Query(page): Query<ListQuery>,
    Query(filter): Query<TenantFilter>,
) -> Result<Json<Page<Pipeline>>, ApiError> {
    let request = pb::ListPipelinesRequest {
        page: page.request(),
        tenant_id: filter.tenant_id,
    };
    let r = devops.list_pipelines(request).await?.into_inner();
    Ok(Json(Page::new(
        r.pipelines.into_iter().map(Pipeline::from).collect(),
        r.page,
    )))
}

#[utoipa::path(get, path = "/api/v1/pipelines/{id}", tag = "pipelines",
    params(("id" = uuid::Uuid, Path, description = "the pipeline")),
    responses((status = 200, body = Pipeline), Problems), security(("bearer" = [])))]
async fn get_pipeline(Signed(mut devops): Signed<Devops>, Path(id): Path<String>) -> Result<Json<Pipeline>, ApiError> {
    let p = devops.get_pipeline(pb::GetPipelineRequest { id }).await?.into_inner();
    Ok(Json(p.into()))
}

#[utoipa::path(delete, path = "/api/v1/pipelines/{id}", tag = "pipelines",
    params(("id" = uuid::Uuid, Path, description = "the pipeline")),
    responses((status = 204, description = "deleted with its runs and webhooks"), Problems),
    security(("bearer" = [])))]
async fn delete_pipeline(Signed(mut devops): Signed<Devops>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    devops.delete_pipeline(pb::DeletePipelineRequest { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/api/v1/pipelines/{id}/definition", tag = "pipelines",
    params(("id" = uuid::Uuid, Path, description = "the pipeline")), request_body = SetDefinition,
    responses((status = 200, body = Pipeline), Problems), security(("bearer" = [])))]
async fn set_definition(
    Signed(mut devops): Signed<Devops>,
    Path(id): Path<String>,
    Body(b): Body<SetDefinition>,
) -> Result<Json<Pipeline>, ApiError> {
    let request = pb::SetPipelineDefinitionRequest {
        id,
        definition: b.definition,
        definition_source: b.definition_source.as_str().into(),
    };
    Ok(Json(devops.set_pipeline_definition(request).await?.into_inner().into()))
}

#[utoipa::path(post, path = "/api/v1/pipelines/{id}/webhooks", tag = "pipelines",
    params(("id" = uuid::Uuid, Path, description = "the pipeline")), request_body = NewWebhook,
    responses((status = 201, body = WebhookCreated), Problems), security(("bearer" = [])))]
async fn create_webhook(
    Signed(mut devops): Signed<Devops>,
    Path(id): Path<String>,
    Body(b): Body<NewWebhook>,
) -> Result<(StatusCode, Json<WebhookCreated>), ApiError> {
    let format = match b.format {
        WebhookFormat::Gitlab => "gitlab",
        WebhookFormat::Github => "github",
        WebhookFormat::Gitea => "gitea",
    };
    let created = devops
        .create_webhook(pb::CreateWebhookRequest {
            pipeline_id: id,
            format: format.into(),
        })
        .await?
        .into_inner();
    let webhook = created
        .webhook
        .ok_or_else(|| ApiError::from(kernel::Error::internal("no webhook in the answer")))?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated {
            webhook: webhook.into(),
            secret: created.secret,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/pipelines/{id}/webhooks", tag = "pipelines",
    params(("id" = uuid::Uuid, Path, description = "the pipeline")),
    responses((status = 200, body = Webhooks), Problems), security(("bearer" = [])))]
async fn list_webhooks(Signed(mut devops): Signed<Devops>, Path(id): Path<String>) -> Result<Json<Webhooks>, ApiError> {
    let r = devops
        .list_webhooks(pb::ListWebhooksRequest { pipeline_id: id })
        .await?
        .into_inner();
    Ok(Json(Webhooks {
        items: r.webhooks.into_iter().map(Webhook::from).collect(),
    }))
}

/// Headers a delivery may carry that devops reads; the rest stay here.
const DELIVERY_HEADERS: &[&str] = &[
    "x-gitlab-token",
    "x-gitlab-event",
    "x-gitlab-event-uuid",
    "x-hub-signature-256",
    "x-github-event",
    "x-github-delivery",
    "x-gitea-event",
    "x-gitea-delivery",
];

#[utoipa::path(post, path = "/api/v1/webhooks/{id}", tag = "pipelines",
    params(("id" = uuid::Uuid, Path, description = "the webhook endpoint")),
    request_body(content = String, description = "the Git server's JSON event, as it signed it",
        content_type = "application/json"),
    responses((status = 202, body = DeliveryAnswer), Problems))]
async fn deliver(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<DeliveryAnswer>), ApiError> {
    let headers = DELIVERY_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            Some(pb::Header {
                name: (*name).into(),
                value: value.into(),
            })
        })
        .collect();
    // The endpoint's secret authenticates the delivery, so devops is called
    // as the gateway itself.
    let mut devops = state.upstream.devops(&state.key, &Caller::service("gateway"));
    let r = devops
        .deliver_webhook(pb::DeliverWebhookRequest {
            webhook_id: id,
            headers,
            body: body.to_vec(),
        })
        .await?
        .into_inner();
    Ok((
        StatusCode::ACCEPTED,
        Json(DeliveryAnswer {
            outcome: r.outcome,
            run_id: r.run_id,
            reason: r.reason,
        }),
    ))
}

#[utoipa::path(post, path = "/api/v1/pipelines/{id}/runs", tag = "pipelines",
    params(("id" = uuid::Uuid, Path, description = "the pipeline")), request_body = NewRun,
    responses((status = 201, body = Run), Problems), security(("bearer" = [])))]
async fn start_run(
    Signed(mut devops): Signed<Devops>,
    Path(id): Path<String>,
    Body(b): Body<NewRun>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let request = pb::StartRunRequest {
        pipeline_id: id,
        git_ref: b.git_ref,
        commit: b.commit,
        parameters: b.parameters.into_iter().collect(),
    };
    Ok((
        StatusCode::CREATED,
        Json(devops.start_run(request).await?.into_inner().into()),
    ))
}

#[utoipa::path(get, path = "/api/v1/runs", tag = "pipelines", params(ListQuery, RunFilter),
    responses((status = 200, body = Page<Run>), Problems), security(("bearer" = [])))]
async fn list_runs(
    Signed(mut devops): Signed<Devops>,
    Query(page): Query<ListQuery>,
    Query(filter): Query<RunFilter>,
) -> Result<Json<Page<Run>>, ApiError> {
    let request = pb::ListRunsRequest {
        page: page.request(),
        tenant_id: filter.tenant_id,
        pipeline_id: filter.pipeline_id,
        application_id: filter.application_id,
        branch: filter.branch,
        state: filter.state.map(state_word).unwrap_or_default().into(),
    };
    let r = devops.list_runs(request).await?.into_inner();
    Ok(Json(Page::new(r.runs.into_iter().map(Run::from).collect(), r.page)))
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "pipelines",
    params(("id" = uuid::Uuid, Path, description = "the run")),
    responses((status = 200, body = Run), Problems), security(("bearer" = [])))]
async fn get_run(Signed(mut devops): Signed<Devops>, Path(id): Path<String>) -> Result<Json<Run>, ApiError> {
    Ok(Json(
        devops.get_run(pb::GetRunRequest { id }).await?.into_inner().into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "pipelines",
    params(("id" = uuid::Uuid, Path, description = "the run")),
    responses((status = 200, body = Run), Problems), security(("bearer" = [])))]
async fn cancel_run(Signed(mut devops): Signed<Devops>, Path(id): Path<String>) -> Result<Json<Run>, ApiError> {
    Ok(Json(
        devops
            .cancel_run(pb::CancelRunRequest { id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(get, path = "/api/v1/steps/{id}", tag = "pipelines",
    params(("id" = uuid::Uuid, Path, description = "the step")),
    responses((status = 200, body = RunStep), Problems), security(("bearer" = [])))]
async fn get_step(Signed(mut devops): Signed<Devops>, Path(id): Path<String>) -> Result<Json<RunStep>, ApiError> {
    Ok(Json(
        devops.get_step(pb::GetStepRequest { id }).await?.into_inner().into(),
    ))
}

#[utoipa::path(get, path = "/api/v1/steps/{id}/log", tag = "pipelines",
    params(("id" = uuid::Uuid, Path, description = "the step"), LogQuery),
    responses((status = 200, description = "text/event-stream: `output` events (LogChunk, the end offset as id) while the step runs, then one `end` event with its state"), Problems),
    security(("bearer" = [])))]
async fn step_log(
    Signed(mut devops): Signed<Devops>,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // A reconnecting EventSource sends the last id it saw: the offset it reached.
    let raw = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(q.offset)
        .unwrap_or_default();
    let offset = if raw.trim().is_empty() {
        0
    } else {
        raw.trim()
            .parse()
            .map_err(|_| ApiError::invalid("offset", "must be a whole number"))?
    };
    let stream = devops
        .watch_step_log(pb::WatchStepLogRequest { id, offset })
        .await?
        .into_inner();
    let events = stream.scan((), |_, chunk| std::future::ready(chunk.ok())).map(|c| {
        let text = String::from_utf8_lossy(&c.data).into_owned();
        let end = c.offset + text.chars().count() as u64;
        let finished = text.is_empty();
        let chunk = LogChunk {
            offset: c.offset,
            text,
            truncated: c.truncated,
            state: c.state,
        };
        Event::default()
            .event(if finished { "end" } else { "output" })
            .id(end.to_string())
            .json_data(chunk)
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

#[utoipa::path(post, path = "/api/v1/steps/{id}/approval", tag = "pipelines",
    params(("id" = uuid::Uuid, Path, description = "the approval step")), request_body = Decide,
    responses((status = 200, body = RunStep), Problems), security(("bearer" = [])))]
async fn decide(
    Signed(mut devops): Signed<Devops>,
    Path(id): Path<String>,
    Body(b): Body<Decide>,
) -> Result<Json<RunStep>, ApiError> {
    let request = pb::DecideApprovalRequest {
        step_id: id,
        approve: b.approve,
        comment: b.comment,
    };
    Ok(Json(devops.decide_approval(request).await?.into_inner().into()))
}

#[utoipa::path(post, path = "/api/v1/runners", tag = "pipelines", request_body = NewRunner,
    responses((status = 201, body = RunnerCreated), Problems), security(("bearer" = [])))]
async fn create_runner(
    Signed(mut devops): Signed<Devops>,
    Body(b): Body<NewRunner>,
) -> Result<(StatusCode, Json<RunnerCreated>), ApiError> {
    let created = devops
        .create_runner(pb::CreateRunnerRequest {
            tenant_id: b.tenant_id,
            name: b.name,
        })
        .await?
        .into_inner();
    let runner = created
        .runner
        .ok_or_else(|| ApiError::from(kernel::Error::internal("no runner in the answer")))?;
    Ok((
        StatusCode::CREATED,
        Json(RunnerCreated {
            runner: runner.into(),
            token: created.token,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/runners", tag = "pipelines", params(ListQuery, TenantFilter),
    responses((status = 200, body = Page<Runner>), Problems), security(("bearer" = [])))]
async fn list_runners(
    Signed(mut devops): Signed<Devops>,
    Query(page): Query<ListQuery>,
    Query(filter): Query<TenantFilter>,
) -> Result<Json<Page<Runner>>, ApiError> {
    let r = devops
        .list_runners(pb::ListRunnersRequest {
            page: page.request(),
            tenant_id: filter.tenant_id,
        })
        .await?
        .into_inner();
    Ok(Json(Page::new(
        r.runners.into_iter().map(Runner::from).collect(),
        r.page,
    )))
}

#[utoipa::path(post, path = "/api/v1/runners/{id}/drain", tag = "pipelines",
    params(("id" = uuid::Uuid, Path, description = "the runner")),
    responses((status = 200, body = Runner), Problems), security(("bearer" = [])))]
async fn drain_runner(Signed(mut devops): Signed<Devops>, Path(id): Path<String>) -> Result<Json<Runner>, ApiError> {
    Ok(Json(
        devops
            .drain_runner(pb::DrainRunnerRequest { id })
            .await?
            .into_inner()
            .into(),
    ))
}
