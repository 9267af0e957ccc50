//! An application's pods, their logs and a rolling restart: each service's
//! federation binding asked for them. Reads are for anyone who can see the
//! application; a restart needs an operator (any developer outside
//! production).

use kernel::caller::{Caller, Role};
use kernel::{Error, Result};
use paas_proto::v1 as pb;
use serde_json::Value;
use uuid::Uuid;

use crate::application::{Application, Applications};

fn binding_of(app: &Application, service: &str) -> Result<String> {
    app.bindings
        .get(service)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::invalid("service", format!("{service} is not a deployed service of {}", app.name)))
}

fn federation_error(s: tonic::Status) -> Error {
    match s.code() {
        tonic::Code::InvalidArgument => Error::invalid(s.metadata().get(kernel::error::FIELD_METADATA).and_then(|v| v.to_str().ok()).unwrap_or("pod").to_string(), s.message()),
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
            let r = federation.list_binding_pods(pb::ListBindingPodsRequest { binding_id: binding.to_string() }).await.map_err(federation_error)?.into_inner();
            answer.pods.extend(r.pods.into_iter().map(|pod| pb::ApplicationPod { service: service.clone(), pod: Some(pod) }));
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
        let request = pb::GetPodLogsRequest { binding_id, cluster: r.cluster, pod: r.pod, container: r.container, tail_lines: r.tail_lines };
        Ok(self.federation().client().get_pod_logs(request).await.map_err(federation_error)?.into_inner().text)
    }

    /// Restarts one service (or all), rolling, in every cluster.
    ///
    /// # Errors
    /// An unknown service (named), not allowed, federation unreachable.
    pub async fn restart(&self, caller: &Caller, id: Uuid, service: &str) -> Result<Vec<(String, u32)>> {
        let app = self.get(caller, id).await?;
        caller.require(app.tenant_id, if app.environment == "production" { Role::Operator } else { Role::Developer }, "application", app.id)?;
        let services: Vec<String> = match service {
            "" => app.bindings.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default(),
            s => vec![s.to_string()],
        };
        let mut federation = self.federation().client();
        let mut restarted = Vec::new();
        for service in services {
            let binding_id = binding_of(&app, &service)?;
            let r = federation.restart_binding(pb::RestartBindingRequest { binding_id }).await.map_err(federation_error)?.into_inner();
            restarted.push((service, r.restarted.values().sum()));
        }
        Ok(restarted)
    }
}
