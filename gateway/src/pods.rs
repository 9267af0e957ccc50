//! `/api/v1/applications/{id}/pods`, `/logs`, `/restart`, `/stop`, `/start`:
//! an application's pods in its clusters, a container's log (or every pod's,
//! followed as Server-Sent Events with `follow=true`), a rolling
//! restart, and stopping (scaled to zero, replicas remembered) and starting, forwarded
//! to the apps service (which asks federation, which asks the clusters).

use std::convert::Infallible;

use axum::Json;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use kernel::caller::Role;
use paas_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use crate::json::Body;
use crate::problem::{ApiError, Problems};
use crate::rbac::Permission;
use crate::request::{Path, Query};
use crate::route::Routes;
use crate::upstream::{Apps, Signed};

/// The routes, each with who may call it.
pub fn routes() -> Routes {
    Routes::new()
        .route(Permission::Authenticated, routes!(list))
        .route(Permission::Authenticated, routes!(logs))
        .route(Permission::Role(Role::Developer), routes!(restart))
        .route(Permission::Role(Role::Developer), routes!(stop))
        .route(Permission::Role(Role::Developer), routes!(start))
}

/// A pod of an application.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Pod {
    /// The application's service.
    pub service: String,
    /// The cluster.
    pub cluster: String,
    /// The partition's namespace there.
    pub namespace: String,
    /// The pod.
    pub name: String,
    /// `Kind/name` of its workload.
    pub workload: String,
    /// Pending, Running, Succeeded, Failed, Unknown.
    pub phase: String,
    /// Every container ready.
    pub ready: bool,
    /// Container restarts.
    pub restarts: i32,
    /// Its node.
    pub node: String,
    /// Its containers.
    pub containers: Vec<String>,
}

/// A cluster that could not be read.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Unreachable {
    /// The cluster.
    pub cluster: String,
    /// Why.
    pub message: String,
}

/// The pods of an application.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Pods {
    /// Its pods, per service and cluster.
    pub items: Vec<Pod>,
    /// Clusters whose pods could not be read.
    pub unreachable: Vec<Unreachable>,
}

/// Which log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// The service.
    service: String,
    /// The cluster (default: every cluster the service runs in).
    #[serde(default)]
    cluster: String,
    /// The pod (default: every pod of the service; each line is then
    /// prefixed with `cluster/pod`, as `kubectl logs -l` does).
    #[serde(default)]
    pod: String,
    /// The container (default: the first).
    #[serde(default)]
    container: String,
    /// How many lines from the end (default 100, at most 10,000).
    #[serde(default)]
    tail: i64,
    /// Keep the answer open and stream each new line as a Server-Sent
    /// Event (`text/event-stream`; `data:` is `cluster/pod line`) until
    /// every log ends or the client goes away.
    #[serde(default)]
    follow: bool,
}

/// A container's log.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Log {
    /// Its last lines.
    pub text: String,
}

/// Body of a restart.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    /// Only this service (default: all).
    #[serde(default)]
    service: String,
}

/// What a restart touched.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Restarted {
    /// Service -> workloads restarted over its clusters.
    pub restarted: std::collections::BTreeMap<String, u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/applications/{id}/pods",
    tag = "applications",
    params(("id" = String, Path, description = "the application")),
    responses((status = 200, body = Pods), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn list(Signed(mut apps): Signed<Apps>, Path(id): Path<String>) -> Result<Json<Pods>, ApiError> {
    let r = apps
        .list_application_pods(pb::ListApplicationPodsRequest { application_id: id })
        .await?
        .into_inner();
    let items = r
        .pods
        .into_iter()
        .filter_map(|p| {
            let pod = p.pod?;
            Some(Pod {
                service: p.service,
                cluster: pod.cluster,
                namespace: pod.namespace,
                name: pod.name,
                workload: pod.workload,
                phase: pod.phase,
                ready: pod.ready,
                restarts: pod.restarts,
                node: pod.node,
                containers: pod.containers,
            })
        })
        .collect();
    Ok(Json(Pods {
        items,
        unreachable: r
            .unreachable
            .into_iter()
            .map(|u| Unreachable {
                cluster: u.cluster,
                message: u.message,
            })
            .collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/applications/{id}/logs",
    tag = "applications",
    params(("id" = String, Path, description = "the application"), LogQuery),
    responses(
        (status = 200, description = "the latest lines; with `follow=true`, a stream of Server-Sent Events, one per line (`data: cluster/pod line`), ending when every log ends",
         content((Log = "application/json"), (String = "text/event-stream"))),
        Problems
    ),
    security(("bearer" = []))
)]
pub(crate) async fn logs(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let request = pb::GetApplicationLogsRequest {
        application_id: id,
        service: q.service,
        cluster: q.cluster,
        pod: q.pod,
        container: q.container,
        tail_lines: q.tail,
    };
    if !q.follow {
        let text = apps.get_application_logs(request).await?.into_inner().text;
        return Ok(Json(Log { text }).into_response());
    }
    // Errors before the first line (unknown service, pod, not visible) are
    // answered as problems; the stream starts only once the logs are open.
    let lines = apps.follow_application_logs(request).await?.into_inner();
    let events = lines.map(|line| {
        Ok::<_, Infallible>(match line {
            Ok(l) if l.pod.is_empty() => Event::default().data(format!("{} {}", l.cluster, l.line)),
            Ok(l) => Event::default().data(format!("{}/{} {}", l.cluster, l.pod, l.line)),
            Err(status) => Event::default().event("error").data(status.message()),
        })
    });
    // Dropping the response body (the client went away) drops the call to
    // the apps service and, through it, the reads of the clusters' logs;
    // the keep-alive comments find a silent client gone.
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(FOLLOW_KEEP_ALIVE))
        .into_response())
}

/// How often a followed log with nothing new sends a comment, so a client
/// that went away is noticed and its follow ended.
const FOLLOW_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(10);

#[utoipa::path(
    post,
    path = "/api/v1/applications/{id}/restart",
    tag = "applications",
    params(("id" = String, Path, description = "the application")),
    request_body = Restart,
    responses((status = 200, body = Restarted), Problems),
    security(("bearer" = []))
)]
pub(crate) async fn restart(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
    Body(b): Body<Restart>,
) -> Result<Json<Restarted>, ApiError> {
    let r = apps
        .restart_application(pb::RestartApplicationRequest {
            application_id: id,
            service: b.service,
        })
        .await?
        .into_inner();
    Ok(Json(Restarted {
        restarted: r.restarted.into_iter().collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/applications/{id}/stop",
    tag = "applications",
    params(("id" = String, Path, description = "the application")),
    responses(
        (status = 200, body = crate::applications::Application, description = "stopped: every service at zero, its \
            replicas remembered"),
        Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn stop(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
) -> Result<Json<crate::applications::Application>, ApiError> {
    Ok(Json(
        apps.stop_application(pb::StopApplicationRequest { application_id: id })
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/applications/{id}/start",
    tag = "applications",
    params(("id" = String, Path, description = "the application")),
    responses(
        (status = 200, body = crate::applications::Application, description = "running again with the replicas it had"),
        Problems,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn start(
    Signed(mut apps): Signed<Apps>,
    Path(id): Path<String>,
) -> Result<Json<crate::applications::Application>, ApiError> {
    Ok(Json(
        apps.start_application(pb::StartApplicationRequest { application_id: id })
            .await?
            .into_inner()
            .into(),
    ))
}
