//! The runners' gRPC API, served on its own port: runners are outside the
//! platform's trust boundary and authenticate with their token, not with a
//! caller token signed by the gateway.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use kernel::id::parse_id;
use kernel::shutdown::Shutdown;
use kernel::{Error, Result};
use paas_proto::v1 as pb;
use paas_proto::v1::runner_service_server::{RunnerService, RunnerServiceServer};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::conductor::Wake;
use crate::grpc::runner_pb;
use crate::registry::Registry;
use crate::runner::{self, Job, Outcome, Runner, Runners};

/// How often an idle job stream looks for queued steps anyway: steps queued
/// by another devops replica ring no bell here.
pub const JOB_POLL: Duration = Duration::from_millis(500);

/// The runners' API.
pub struct RunnerApi {
    runners: Runners,
    wake: Wake,
    registry: Registry,
}

type JobStream = Pin<Box<dyn Stream<Item = Result<pb::Job, Status>> + Send>>;

impl RunnerApi {
    /// The API over `runners`; `registry` issues what build-image steps push with.
    pub fn new(runners: Runners, wake: Wake, registry: Registry) -> Self {
        Self {
            runners,
            wake,
            registry,
        }
    }

    async fn runner<T>(&self, request: &Request<T>) -> Result<Runner, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::from(Error::Unauthenticated("no runner token".into())))?;
        Ok(self.runners.authenticate(token).await?)
    }
}

fn job_pb(job: Job, push: Option<pb::ImagePush>) -> pb::Job {
    let (commands, reports) = runner::commands_of(&job.step);
    let mut env = job.step.env.clone();
    if let Some(params) = job.parameters.as_object() {
        for (k, v) in params {
            env.entry(k.clone())
                .or_insert_with(|| v.as_str().unwrap_or_default().to_string());
        }
    }
    pb::Job {
        step_id: job.step_id.to_string(),
        attempt: u32::try_from(job.attempt).unwrap_or(0),
        run_id: job.run_id.to_string(),
        kind: job.step.action.kind().to_string(),
        repository: job.repository,
        git_ref: job.git_ref,
        commit: job.commit,
        version: job.version,
        commands,
        reports,
        env: env.into_iter().collect(),
        timeout_seconds: job.step.timeout.as_secs(),
        image: job.step.image.unwrap_or_default(),
        push,
    }
}

fn attempt(raw: u32) -> Result<i32, Status> {
    i32::try_from(raw).map_err(|_| Status::from(Error::invalid("attempt", "is out of range")))
}

#[tonic::async_trait]
impl RunnerService for RunnerApi {
    async fn register(&self, request: Request<pb::RegisterRunnerRequest>) -> Result<Response<pb::Runner>, Status> {
        let runner = self.runner(&request).await?;
        let r = request.into_inner();
        let runner = self.runners.register(&runner, r.concurrency, &r.sandbox).await?;
        tracing::info!(runner = %runner.id, name = %runner.name, concurrency = runner.concurrency, "runner registered");
        Ok(Response::new(runner_pb(runner)))
    }

    type TakeJobsStream = JobStream;

    async fn take_jobs(&self, request: Request<pb::TakeJobsRequest>) -> Result<Response<JobStream>, Status> {
        let runner = self.runner(&request).await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<pb::Job, Status>>(16);
        let runners = self.runners.clone();
        let registry = self.registry.clone();
        let bell = self.wake.dispatch.clone();
        tokio::spawn(async move {
            loop {
                // Listen before looking, so a step queued in between still rings.
                let rung = bell.notified();
                match runners.claim(runner.id).await {
                    Ok(jobs) => {
                        for job in jobs {
                            // Push credentials are issued as the step leaves, so
                            // their short life starts when the work does.
                            let push = match registry.push_for(runner.tenant_id, &job).await {
                                Ok(push) => push,
                                Err(e) => {
                                    let (step, attempt) = (job.step_id, job.attempt);
                                    let outcome = Outcome {
                                        exit_code: -1,
                                        message: e.to_string(),
                                        ..Outcome::default()
                                    };
                                    if let Err(e) = runners.finish(runner.id, step, attempt, outcome).await {
                                        tracing::warn!(step = %step, error = %e, "cannot fail the step");
                                    }
                                    continue;
                                }
                            };
                            if tx.send(Ok(job_pb(job, push))).await.is_err() {
                                // The runner went away; its lease will run out.
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(runner = %runner.id, error = %e, "cannot hand out jobs");
                    }
                }
                tokio::select! {
                    () = rung => {}
                    () = tokio::time::sleep(JOB_POLL) => {}
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let runner = self.runner(&request).await?;
        let ids = request
            .get_ref()
            .step_ids
            .iter()
            .map(|s| parse_id("step_ids", s))
            .collect::<Result<Vec<_>>>()?;
        let cancel = self.runners.heartbeat(runner.id, &ids).await?;
        Ok(Response::new(pb::HeartbeatResponse {
            cancel_step_ids: cancel.into_iter().map(|s| s.to_string()).collect(),
        }))
    }

    async fn append_output(
        &self,
        request: Request<pb::AppendOutputRequest>,
    ) -> Result<Response<pb::AppendOutputResponse>, Status> {
        let runner = self.runner(&request).await?;
        let r = request.into_inner();
        let step = parse_id("step_id", &r.step_id)?;
        let text = String::from_utf8_lossy(&r.data).replace('\0', "");
        let cancel = self.runners.append(runner.id, step, attempt(r.attempt)?, &text).await?;
        Ok(Response::new(pb::AppendOutputResponse { cancel }))
    }

    async fn finish_step(
        &self,
        request: Request<pb::FinishStepRequest>,
    ) -> Result<Response<pb::FinishStepResponse>, Status> {
        let runner = self.runner(&request).await?;
        let r = request.into_inner();
        let step = parse_id("step_id", &r.step_id)?;
        let tests = r
            .tests_total
            .map(|t| (t, r.tests_failed.unwrap_or(0), r.tests_skipped.unwrap_or(0)));
        let outcome = Outcome {
            exit_code: r.exit_code,
            succeeded: r.succeeded,
            message: r.message,
            tests,
            failures: r.test_failures.into_iter().map(|f| (f.name, f.message)).collect(),
            image: r.image,
            image_digest: r.image_digest,
        };
        self.runners
            .finish(runner.id, step, attempt(r.attempt)?, outcome)
            .await?;
        Ok(Response::new(pb::FinishStepResponse {}))
    }
}

/// Serves the runners' API on `addr` until shutdown; returns the bound address.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(addr: SocketAddr, api: RunnerApi, shutdown: &Shutdown) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Unavailable(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener.local_addr().map_err(Error::internal)?;
    let router = tonic::transport::Server::builder()
        .layer(kernel::grpc::trace_layer())
        .add_service(RunnerServiceServer::new(api));
    let stop = shutdown.token();
    shutdown.spawn("runner api", async move {
        router
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                stop.cancelled_owned(),
            )
            .await
    });
    tracing::info!(%bound, "runner api listening");
    Ok(bound)
}
