//! An application's pods, their logs, a rolling restart, and stop/start
//! (every service scaled to zero, its replica counts remembered, and back):
//! each service's federation binding asked for them. Reads are for anyone
//! who can see the application; changes need an operator (any developer
//! outside production).

use kernel::caller::{Caller, Role};
use kernel::outbox;
use kernel::{Error, Result};
use paas_proto::v1 as pb;
use serde_json::Value;
use uuid::Uuid;

use crate::application::{Application, Applications, SCALED};

fn binding_of(app: &Application, service: &str) -> Result<String> {
    app.bindings
        .get(service)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            Error::invalid(
                "service",
                format!("{service} is not a deployed service of {}", app.name),
            )
        })
}

fn federation_error(s: tonic::Status) -> Error {
    match s.code() {
        tonic::Code::InvalidArgument => Error::invalid(
            s.metadata()
                .get(kernel::error::FIELD_METADATA)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("pod")
                .to_string(),
            s.message(),
        ),
        tonic::Code::NotFound => Error::FailedPrecondition(format!("federation no longer has it: {}", s.message())),
        _ => Error::Unavailable(format!("federation: {}", s.message())),
    }
}

impl Applications {
    /// The pods of every service, and the clusters that could not be read.
    ///
    /// # Errors
    /// Not visible; federation unreachable.
    pub async fn pods(&self, caller: &Caller, id: Uuid) -> Result<pb::ListApplicationPodsResponse> {
        let app = self.get(caller, id).await?;
        let mut federation = self.federation().client();
        let mut answer = pb::ListApplicationPodsResponse::default();
        for (service, binding) in app.bindings.as_object().into_iter().flatten() {
            let Some(binding) = binding.as_str() else { continue };
            let r = federation
                .list_binding_pods(pb::ListBindingPodsRequest {
                    binding_id: binding.to_string(),
                })
                .await
                .map_err(federation_error)?
                .into_inner();
            answer.pods.extend(r.pods.into_iter().map(|pod| pb::ApplicationPod {
                service: service.clone(),
                pod: Some(pod),
            }));
            answer.unreachable.extend(r.unreachable);
        }
        Ok(answer)
    }

    /// The tail of one container's log.
    ///
    /// # Errors
    /// An unknown service, cluster, pod or container (named); not visible.
    pub async fn logs(&self, caller: &Caller, id: Uuid, r: pb::GetApplicationLogsRequest) -> Result<String> {
        let app = self.get(caller, id).await?;
        let binding_id = binding_of(&app, &r.service)?;
        let request = pb::GetPodLogsRequest {
            binding_id,
            cluster: r.cluster,
            pod: r.pod,
            container: r.container,
            tail_lines: r.tail_lines,
        };
        Ok(self
            .federation()
            .client()
            .get_pod_logs(request)
            .await
            .map_err(federation_error)?
            .into_inner()
            .text)
    }

    /// Follows one service's logs: every pod of it across its clusters (or
    /// the cluster and pod named), each line with its cluster and pod,
    /// until every log ends. Dropping the stream (the caller went away)
    /// drops the federation call, which stops reading the clusters.
    ///
    /// # Errors
    /// An unknown service, cluster, pod or container (named); not visible.
    pub async fn follow_logs(
        &self,
        caller: &Caller,
        id: Uuid,
        r: pb::GetApplicationLogsRequest,
    ) -> Result<futures::stream::BoxStream<'static, Result<pb::PodLogLine>>> {
        use futures::StreamExt;
        let app = self.get(caller, id).await?;
        let binding_id = binding_of(&app, &r.service)?;
        let request = pb::GetPodLogsRequest {
            binding_id,
            cluster: r.cluster,
            pod: r.pod,
            container: r.container,
            tail_lines: r.tail_lines,
        };
        let lines = self
            .federation()
            .client()
            .follow_pod_logs(request)
            .await
            .map_err(federation_error)?
            .into_inner();
        Ok(lines.map(|l| l.map_err(federation_error)).boxed())
    }

    /// Restarts one service (or all), rolling, in every cluster.
    ///
    /// # Errors
    /// An unknown service (named), not allowed, federation unreachable.
    pub async fn restart(&self, caller: &Caller, id: Uuid, service: &str) -> Result<Vec<(String, u32)>> {
        let app = self.get(caller, id).await?;
        caller.require(
            app.tenant_id,
            if app.environment == "production" {
                Role::Operator
            } else {
                Role::Developer
            },
            "application",
            app.id,
        )?;
        let services: Vec<String> = match service {
            "" => app
                .bindings
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
            s => vec![s.to_string()],
        };
        let mut federation = self.federation().client();
        let mut restarted = Vec::new();
        for service in services {
            let binding_id = binding_of(&app, &service)?;
            let r = federation
                .restart_binding(pb::RestartBindingRequest { binding_id })
                .await
                .map_err(federation_error)?
                .into_inner();
            restarted.push((service, r.restarted.values().sum()));
        }
        Ok(restarted)
    }

    /// Stops every service: its pods go (replicas 0 in every cluster) and
    /// its replica count is remembered for [`Self::start`]. DaemonSets,
    /// which run one pod per node, are left running.
    ///
    /// # Errors
    /// Not running, not allowed, federation refuses or is unreachable.
    pub async fn stop(&self, caller: &Caller, id: Uuid) -> Result<Application> {
        self.power(caller, id, false).await
    }

    /// Starts a stopped application with the replica counts it had.
    ///
    /// # Errors
    /// Not stopped, not allowed, federation refuses or is unreachable.
    pub async fn start(&self, caller: &Caller, id: Uuid) -> Result<Application> {
        self.power(caller, id, true).await
    }

    async fn power(&self, caller: &Caller, id: Uuid, on: bool) -> Result<Application> {
        let app = self.get(caller, id).await?;
        caller.require(
            app.tenant_id,
            if app.environment == "production" {
                Role::Operator
            } else {
                Role::Developer
            },
            "application",
            app.id,
        )?;
        let wanted = if on { "stopped" } else { "running" };
        if app.state != wanted {
            return Err(Error::FailedPrecondition(format!(
                "{} is {}; only a {wanted} application can be {}",
                app.name,
                app.state,
                if on { "started" } else { "stopped" }
            )));
        }
        let release = self.serving(&app).await?;
        let remembered = sqlx::query_scalar!(
            "SELECT stopped_replicas FROM applications WHERE id = $1 AND tenant_id = $2",
            app.id,
            app.tenant_id,
        )
        .fetch_one(self.outbox().pool())
        .await?;
        let remembered = remembered.unwrap_or(Value::Null);
        let mut federation = self.federation().client();
        let mut counts = serde_json::Map::new();
        for service in release
            .objects
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>()
        {
            let objects = self.final_objects(&release, &service)?;
            let spec_count = objects
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["spec"]["replicas"].as_u64())
                .max();
            let Some(spec_count) = spec_count else { continue };
            let current = app.replicas.get(&service).and_then(Value::as_u64).unwrap_or(spec_count);
            counts.insert(service.clone(), current.into());
            let replicas = if on {
                remembered.get(&service).and_then(Value::as_u64).unwrap_or(current)
            } else {
                0
            };
            crate::application::apply_service(
                &mut federation,
                self.outbox().pool(),
                &app,
                &release,
                &service,
                &objects,
                Some(replicas as u32),
                &[],
            )
            .await?;
        }
        let mut tx = self.outbox().pool().begin().await?;
        let state = if on { "running" } else { "stopped" };
        let remember = if on { Value::Null } else { Value::Object(counts.clone()) };
        sqlx::query!(
            "UPDATE applications SET state = $2, stopped_replicas = $3, updated_at = now()
             WHERE id = $1 AND tenant_id = $4",
            app.id,
            state,
            if on { None } else { Some(remember) },
            app.tenant_id,
        )
        .execute(&mut *tx)
        .await?;
        for (service, count) in &counts {
            let count = count.as_u64().unwrap_or(0) as i32;
            let (from, to) = if on {
                (
                    0,
                    remembered
                        .get(service)
                        .and_then(Value::as_u64)
                        .map_or(count, |n| n as i32),
                )
            } else {
                (count, 0)
            };
            crate::application::record_scale(
                &mut tx,
                &app,
                service,
                Some(from),
                to,
                if on { "start" } else { "stop" },
                &caller.subject,
            )
            .await?;
        }
        let announced = pb::ResourceChanged {
            id: app.id.to_string(),
            tenant_id: app.tenant_id.to_string(),
            name: app.name.clone(),
        };
        outbox::record(&mut tx, SCALED, Some(app.tenant_id), &announced).await?;
        self.outbox().commit(tx).await?;
        self.get(caller, id).await
    }
}
