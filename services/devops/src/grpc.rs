//! The devops gRPC API.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use kernel::grpc::{caller, timestamp};
use kernel::id::{parse_id, parse_optional_id};
use kernel::name::DnsLabel;
use kernel::outbox::Outbox;
use kernel::page::Page;
use paas_proto::v1 as pb;
use paas_proto::v1::devops_service_server::DevopsService;
use tonic::{Request, Response, Status};

use crate::conductor::Wake;
use crate::definition::GitRef;
use crate::image_trigger::{ImageTrigger, ImageTriggers, NewImageTrigger};
use crate::notification::{NewTarget, Notification, Notifications, Target};
use crate::pipeline::{DefinitionChoice, NewPipeline, Pipeline, Pipelines};
use crate::run::{Run, RunFilter, Runs, Stage, Step};
use crate::runner::{Runner, Runners};
use crate::step::{StepView, Steps};
use crate::trigger::{Outcome, Triggers, Webhook, parse_commit};
use crate::webhook::Format;

/// How often a log watch looks for new output: live enough for a person
/// reading along, cheap enough for many watchers.
pub const LOG_POLL: Duration = Duration::from_millis(250);

/// The gRPC face of the devops service.
pub struct Devops {
    pipelines: Pipelines,
    triggers: Triggers,
    runs: Runs,
    steps: Steps,
    runners: Runners,
    notifications: Notifications,
    image_triggers: ImageTriggers,
}

impl Devops {
    /// The API over the devops schema of `outbox`, taking e-mail
    /// notification targets only when `email` (an SMTP server is set).
    pub fn new(outbox: Outbox, wake: Wake, email: bool) -> Self {
        let pipelines = Pipelines::new(outbox.clone());
        Self {
            notifications: Notifications::new(outbox.pool().clone(), pipelines.clone(), email),
            image_triggers: ImageTriggers::new(outbox.pool().clone(), pipelines),
            pipelines: Pipelines::new(outbox.clone()),
            triggers: Triggers::new(outbox.clone(), wake.clone()),
            runs: Runs::new(outbox.clone()),
            steps: Steps::new(outbox.clone()),
            runners: Runners::new(outbox, wake),
        }
    }
}

fn opt_id(id: Option<uuid::Uuid>) -> String {
    id.map(|i| i.to_string()).unwrap_or_default()
}

fn to_pb(p: Pipeline) -> pb::Pipeline {
    pb::Pipeline {
        id: p.id.to_string(),
        tenant_id: p.tenant_id.to_string(),
        name: p.name,
        repository: p.repository,
        created_at: timestamp(p.created_at),
        application_id: opt_id(p.application_id),
        definition: p.definition.unwrap_or_default(),
        definition_source: p.definition_source,
        builds: u64::try_from(p.builds).unwrap_or(0),
    }
}

fn webhook_pb(w: Webhook) -> pb::Webhook {
    pb::Webhook {
        id: w.id.to_string(),
        tenant_id: w.tenant_id.to_string(),
        pipeline_id: w.pipeline_id.to_string(),
        format: w.format,
        created_at: timestamp(w.created_at),
    }
}

fn run_pb(r: Run, layout: Vec<(Stage, Vec<Step>)>) -> pb::Run {
    let parameters = r
        .parameters
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    pb::Run {
        id: r.id.to_string(),
        tenant_id: r.tenant_id.to_string(),
        pipeline_id: r.pipeline_id.to_string(),
        application_id: opt_id(r.application_id),
        number: u64::try_from(r.number).unwrap_or(0),
        git_ref: r.git_ref,
        branch: r.branch,
        commit: r.commit_sha,
        version: r.version,
        trigger: r.trigger,
        triggered_by: r.triggered_by,
        parameters,
        state: r.state,
        message: r.message,
        created_at: timestamp(r.created_at),
        started_at: r.started_at.and_then(timestamp),
        finished_at: r.finished_at.and_then(timestamp),
        stages: layout
            .into_iter()
            .map(|(stage, steps)| pb::Stage {
                id: stage.id.to_string(),
                state: stage.state,
                steps: steps.into_iter().map(|s| step_pb(s, &stage.name)).collect(),
                name: stage.name,
            })
            .collect(),
    }
}

fn step_pb(s: Step, stage: &str) -> pb::Step {
    let count = |n: Option<i32>| n.map(|v| u32::try_from(v).unwrap_or(0));
    pb::Step {
        id: s.id.to_string(),
        run_id: s.run_id.to_string(),
        tenant_id: s.tenant_id.to_string(),
        stage: stage.to_string(),
        name: s.name,
        kind: s.kind,
        state: s.state,
        attempt: u32::try_from(s.attempt).unwrap_or(0),
        runner_id: opt_id(s.runner_id),
        exit_code: s.exit_code,
        message: s.message,
        tests_total: count(s.tests_total),
        tests_failed: count(s.tests_failed),
        tests_skipped: count(s.tests_skipped),
        test_failures: s
            .test_failures
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| pb::TestFailure {
                        name: f["name"].as_str().unwrap_or_default().to_string(),
                        message: f["message"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        started_at: s.started_at.and_then(timestamp),
        finished_at: s.finished_at.and_then(timestamp),
        log: String::new(),
        log_length: u64::try_from(s.log_length).unwrap_or(0),
        approvals: Vec::new(),
        image: s.image,
        image_digest: s.image_digest,
    }
}

fn view_pb(v: StepView) -> pb::Step {
    let mut step = step_pb(v.step, &v.stage);
    step.log = v.log;
    step.approvals = v
        .decisions
        .into_iter()
        .map(|d| pb::Approval {
            approver: d.approver,
            decision: d.decision,
            comment: d.comment,
            decided_at: timestamp(d.decided_at),
        })
        .collect();
    step
}

/// A runner as the API shows it.
pub fn runner_pb(r: Runner) -> pb::Runner {
    pb::Runner {
        id: r.id.to_string(),
        tenant_id: r.tenant_id.to_string(),
        online: r.online(),
        name: r.name,
        state: r.state,
        concurrency: u32::try_from(r.concurrency).unwrap_or(0),
        sandbox: r.sandbox,
        last_seen_at: r.last_seen_at.and_then(timestamp),
        created_at: timestamp(r.created_at),
    }
}

type LogStream = Pin<Box<dyn Stream<Item = Result<pb::LogChunk, Status>> + Send>>;

#[tonic::async_trait]
impl DevopsService for Devops {
    async fn create_pipeline(
        &self,
        request: Request<pb::CreatePipelineRequest>,
    ) -> Result<Response<pb::Pipeline>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let new = NewPipeline::parse(&r.tenant_id, &r.name, &r.repository)?
            .with_application(&r.application_id)?
            .with_definition(DefinitionChoice::parse(&r.definition, &r.definition_source)?);
        let pipeline = self.pipelines.create(&caller, new).await?;
        self.triggers.reschedule(&pipeline).await?;
        Ok(Response::new(to_pb(pipeline)))
    }

    async fn get_pipeline(&self, request: Request<pb::GetPipelineRequest>) -> Result<Response<pb::Pipeline>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(to_pb(self.pipelines.get(&caller, id).await?)))
    }

    async fn list_pipelines(
        &self,
        request: Request<pb::ListPipelinesRequest>,
    ) -> Result<Response<pb::ListPipelinesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let p = r.page.unwrap_or_default();
        let tenant = kernel::id::parse_optional_id("tenant_id", &r.tenant_id)?;
        let (pipelines, next) = self
            .pipelines
            .list(&caller, Page::parse(p.limit, &p.cursor)?, tenant)
            .await?;
        Ok(Response::new(pb::ListPipelinesResponse {
            pipelines: pipelines.into_iter().map(to_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn delete_pipeline(
        &self,
        request: Request<pb::DeletePipelineRequest>,
    ) -> Result<Response<pb::DeletePipelineResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.pipelines.delete(&caller, id).await?;
        Ok(Response::new(pb::DeletePipelineResponse {}))
    }

    async fn set_pipeline_definition(
        &self,
        request: Request<pb::SetPipelineDefinitionRequest>,
    ) -> Result<Response<pb::Pipeline>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("id", &r.id)?;
        let choice = DefinitionChoice::parse(&r.definition, &r.definition_source)?;
        let pipeline = self.pipelines.set_definition(&caller, id, choice).await?;
        self.triggers.reschedule(&pipeline).await?;
        Ok(Response::new(to_pb(pipeline)))
    }

    async fn create_webhook(
        &self,
        request: Request<pb::CreateWebhookRequest>,
    ) -> Result<Response<pb::WebhookCreated>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let pipeline = parse_id("pipeline_id", &r.pipeline_id)?;
        let format = Format::parse("format", &r.format)?;
        let (hook, secret) = self.triggers.create_webhook(&caller, pipeline, format).await?;
        Ok(Response::new(pb::WebhookCreated {
            webhook: Some(webhook_pb(hook)),
            secret,
        }))
    }

    async fn list_webhooks(
        &self,
        request: Request<pb::ListWebhooksRequest>,
    ) -> Result<Response<pb::ListWebhooksResponse>, Status> {
        let caller = caller(&request)?;
        let pipeline = parse_id("pipeline_id", &request.get_ref().pipeline_id)?;
        let hooks = self.triggers.webhooks(&caller, pipeline).await?;
        Ok(Response::new(pb::ListWebhooksResponse {
            webhooks: hooks.into_iter().map(webhook_pb).collect(),
        }))
    }

    async fn deliver_webhook(
        &self,
        request: Request<pb::DeliverWebhookRequest>,
    ) -> Result<Response<pb::DeliverWebhookResponse>, Status> {
        caller(&request)?;
        let r = request.into_inner();
        let hook = parse_id("webhook_id", &r.webhook_id)?;
        let headers: Vec<(&str, &str)> = r.headers.iter().map(|h| (h.name.as_str(), h.value.as_str())).collect();
        let answer = match self.triggers.deliver(hook, &headers, &r.body).await? {
            Outcome::Queued(run) => pb::DeliverWebhookResponse {
                outcome: "queued".into(),
                run_id: run.to_string(),
                reason: String::new(),
            },
            Outcome::Duplicate(run) => pb::DeliverWebhookResponse {
                outcome: "duplicate".into(),
                run_id: opt_id(run),
                reason: "this delivery id was received before".into(),
            },
            Outcome::Ignored(reason) => pb::DeliverWebhookResponse {
                outcome: "ignored".into(),
                run_id: String::new(),
                reason,
            },
        };
        Ok(Response::new(answer))
    }

    async fn start_run(&self, request: Request<pb::StartRunRequest>) -> Result<Response<pb::Run>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let pipeline = parse_id("pipeline_id", &r.pipeline_id)?;
        // Named as the API names it (`ref`).
        let git_ref = GitRef::parse("ref", &r.git_ref)?;
        let commit = parse_commit(&r.commit)?;
        let run = self
            .triggers
            .start(&caller, pipeline, git_ref, commit, r.parameters.into_iter().collect())
            .await?;
        Ok(Response::new(run_pb(run, Vec::new())))
    }

    async fn get_run(&self, request: Request<pb::GetRunRequest>) -> Result<Response<pb::Run>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let run = self.runs.get(&caller, id).await?;
        let layout = self.runs.layout(&run).await?;
        Ok(Response::new(run_pb(run, layout)))
    }

    async fn list_runs(&self, request: Request<pb::ListRunsRequest>) -> Result<Response<pb::ListRunsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let p = r.page.unwrap_or_default();
        let filter = RunFilter::parse(&r.tenant_id, &r.pipeline_id, &r.application_id, &r.branch, &r.state)?;
        let (runs, next) = self
            .runs
            .list(&caller, Page::parse(p.limit, &p.cursor)?, filter)
            .await?;
        Ok(Response::new(pb::ListRunsResponse {
            runs: runs.into_iter().map(|r| run_pb(r, Vec::new())).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn cancel_run(&self, request: Request<pb::CancelRunRequest>) -> Result<Response<pb::Run>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let run = self.runs.cancel(&caller, id).await?;
        let layout = self.runs.layout(&run).await?;
        Ok(Response::new(run_pb(run, layout)))
    }

    async fn get_step(&self, request: Request<pb::GetStepRequest>) -> Result<Response<pb::Step>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(view_pb(self.steps.get(&caller, id).await?)))
    }

    type WatchStepLogStream = LogStream;

    async fn watch_step_log(
        &self,
        request: Request<pb::WatchStepLogRequest>,
    ) -> Result<Response<Self::WatchStepLogStream>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("id", &r.id)?;
        let steps = self.steps.clone();
        // Refuse an invisible step before the stream starts.
        steps.log_since(&caller, id, r.offset).await?;
        let stream = futures::stream::unfold(Some(r.offset), move |offset| {
            let (steps, caller) = (steps.clone(), caller.clone());
            async move {
                let offset = offset?;
                loop {
                    let piece = match steps.log_since(&caller, id, offset).await {
                        Ok(p) => p,
                        Err(e) => return Some((Err(Status::from(e)), None)),
                    };
                    let sent = piece.text.chars().count() as u64;
                    // The last chunk carries the final state, with or without text.
                    if sent > 0 || piece.finished {
                        let next = (!piece.finished || sent > 0).then_some(piece.offset + sent);
                        let chunk = pb::LogChunk {
                            offset: piece.offset,
                            data: piece.text.into_bytes(),
                            truncated: piece.truncated,
                            state: piece.state,
                        };
                        return Some((Ok(chunk), next));
                    }
                    tokio::time::sleep(LOG_POLL).await;
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn decide_approval(&self, request: Request<pb::DecideApprovalRequest>) -> Result<Response<pb::Step>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = parse_id("step_id", &r.step_id)?;
        let view = self.steps.decide(&caller, id, r.approve, &r.comment).await?;
        Ok(Response::new(view_pb(view)))
    }

    async fn create_runner(
        &self,
        request: Request<pb::CreateRunnerRequest>,
    ) -> Result<Response<pb::RunnerCreated>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_id("tenant_id", &r.tenant_id)?;
        let name = DnsLabel::parse("name", r.name.trim())?;
        let (runner, token) = self.runners.create(&caller, tenant, &name).await?;
        Ok(Response::new(pb::RunnerCreated {
            runner: Some(runner_pb(runner)),
            token,
        }))
    }

    async fn list_runners(
        &self,
        request: Request<pb::ListRunnersRequest>,
    ) -> Result<Response<pb::ListRunnersResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let p = r.page.unwrap_or_default();
        let tenant = kernel::id::parse_optional_id("tenant_id", &r.tenant_id)?;
        let (runners, next) = self
            .runners
            .list(&caller, Page::parse(p.limit, &p.cursor)?, tenant)
            .await?;
        Ok(Response::new(pb::ListRunnersResponse {
            runners: runners.into_iter().map(runner_pb).collect(),
            page: Some(pb::PageInfo { next_cursor: next }),
        }))
    }

    async fn drain_runner(&self, request: Request<pb::DrainRunnerRequest>) -> Result<Response<pb::Runner>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(runner_pb(self.runners.drain(&caller, id).await?)))
    }

    async fn create_notification_target(
        &self,
        request: Request<pb::CreateNotificationTargetRequest>,
    ) -> Result<Response<pb::NotificationTargetCreated>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = parse_optional_id("tenant_id", &r.tenant_id)?;
        let pipeline = parse_optional_id("pipeline_id", &r.pipeline_id)?;
        let new = NewTarget::parse(&r.kind, &r.url, &r.address, &r.events)?;
        let (target, secret) = self.notifications.create(&caller, tenant, pipeline, new).await?;
        Ok(Response::new(pb::NotificationTargetCreated {
            target: Some(target_pb(target)),
            secret,
        }))
    }

    async fn list_notification_targets(
        &self,
        request: Request<pb::ListNotificationTargetsRequest>,
    ) -> Result<Response<pb::ListNotificationTargetsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.get_ref();
        let tenant = parse_optional_id("tenant_id", &r.tenant_id)?;
        let pipeline = parse_optional_id("pipeline_id", &r.pipeline_id)?;
        let targets = self.notifications.list(&caller, tenant, pipeline).await?;
        Ok(Response::new(pb::ListNotificationTargetsResponse {
            targets: targets.into_iter().map(target_pb).collect(),
        }))
    }

    async fn delete_notification_target(
        &self,
        request: Request<pb::DeleteNotificationTargetRequest>,
    ) -> Result<Response<pb::DeleteNotificationTargetResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.notifications.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteNotificationTargetResponse {}))
    }

    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        let caller = caller(&request)?;
        let target = parse_id("target_id", &request.get_ref().target_id)?;
        let sent = self.notifications.sent(&caller, target).await?;
        Ok(Response::new(pb::ListNotificationsResponse {
            notifications: sent.into_iter().map(notification_pb).collect(),
        }))
    }

    async fn create_pipeline_image_trigger(
        &self,
        request: Request<pb::CreatePipelineImageTriggerRequest>,
    ) -> Result<Response<pb::PipelineImageTrigger>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let pipeline = parse_id("pipeline_id", &r.pipeline_id)?;
        let new = NewImageTrigger::parse(&r.repository, &r.tags, &r.git_ref)?;
        let trigger = self.image_triggers.create(&caller, pipeline, new).await?;
        Ok(Response::new(image_trigger_pb(trigger)))
    }

    async fn list_pipeline_image_triggers(
        &self,
        request: Request<pb::ListPipelineImageTriggersRequest>,
    ) -> Result<Response<pb::ListPipelineImageTriggersResponse>, Status> {
        let caller = caller(&request)?;
        let pipeline = parse_id("pipeline_id", &request.get_ref().pipeline_id)?;
        let triggers = self.image_triggers.list(&caller, pipeline).await?;
        Ok(Response::new(pb::ListPipelineImageTriggersResponse {
            triggers: triggers.into_iter().map(image_trigger_pb).collect(),
        }))
    }

    async fn delete_pipeline_image_trigger(
        &self,
        request: Request<pb::DeletePipelineImageTriggerRequest>,
    ) -> Result<Response<pb::DeletePipelineImageTriggerResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.image_triggers.delete(&caller, id).await?;
        Ok(Response::new(pb::DeletePipelineImageTriggerResponse {}))
    }
}

fn target_pb(t: Target) -> pb::NotificationTarget {
    pb::NotificationTarget {
        id: t.id.to_string(),
        tenant_id: t.tenant_id.to_string(),
        pipeline_id: opt_id(t.pipeline_id),
        kind: t.kind,
        url: t.url,
        address: t.address,
        events: t.events,
        created_by: t.created_by,
        created_at: timestamp(t.created_at),
    }
}

fn notification_pb(n: Notification) -> pb::Notification {
    pb::Notification {
        id: n.id.to_string(),
        target_id: n.target_id.to_string(),
        run_id: n.run_id.to_string(),
        event: n.event,
        payload: n.payload.to_string(),
        state: n.state,
        attempts: n.attempts,
        last_error: n.last_error,
        created_at: timestamp(n.created_at),
        delivered_at: n.delivered_at.and_then(timestamp),
    }
}

fn image_trigger_pb(t: ImageTrigger) -> pb::PipelineImageTrigger {
    pb::PipelineImageTrigger {
        id: t.id.to_string(),
        tenant_id: t.tenant_id.to_string(),
        pipeline_id: t.pipeline_id.to_string(),
        repository: t.repository,
        tags: t.tags,
        git_ref: t.git_ref,
        created_by: t.created_by,
        created_at: timestamp(t.created_at),
    }
}
