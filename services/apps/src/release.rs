//! The release driver: advances every deploying release, one step at a
//! time, with its state in the database so a restart resumes where it
//! stood. A step applies the current wave's services as federation bindings
//! (once per wave), then waits until each is Healthy before the next wave;
//! after the last wave the release has succeeded, the one before is
//! superseded, and services the new release no longer has are removed.
//!
//! Several apps replicas may run drivers: a release is claimed for a short
//! while (`claimed_until`) with `FOR UPDATE SKIP LOCKED`, so each step runs
//! once.

use std::sync::Arc;
use std::time::Duration;

use kernel::{Error, Result};
use paas_proto::v1 as pb;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::application::{Application, Federation, FederationClient, Release, release_columns};
use crate::render::object_name;

/// How the driver paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// How often a release waiting for its services is looked at again.
    pub poll: Duration,
    /// A release whose services are not all Healthy after this has failed.
    pub deadline: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Self { poll: Duration::from_millis(500), deadline: Duration::from_secs(600) }
    }
}

/// Drives releases.
pub struct Driver {
    pool: PgPool,
    federation: Federation,
    wake: Arc<Notify>,
    pacing: Pacing,
}

/// The workload kinds whose replicas a scale sets.
const WORKLOADS: [&str; 2] = ["Deployment", "StatefulSet"];

/// Applies one service of `release` as its federation binding; `replicas`
/// overrides the spec's (scaling). Records the binding's id on the
/// application.
///
/// # Errors
/// Federation refuses (quota, placement: the message says why) or is unreachable.
pub async fn apply_service(federation: &mut FederationClient, app: &Application, release: &Release, service: &str, objects: &Value, replicas: Option<u32>) -> Result<pb::Binding> {
    let mut objects = objects.clone();
    if let Some(n) = replicas
        && let Some(list) = objects.as_array_mut()
    {
        for o in list.iter_mut().filter(|o| WORKLOADS.contains(&o["kind"].as_str().unwrap_or_default()) && o["spec"].get("replicas").is_some()) {
            o["spec"]["replicas"] = json!(n);
        }
    }
    let request = pb::ApplyBindingRequest {
        tenant_id: app.tenant_id.to_string(),
        project_id: app.project_id.map(|p| p.to_string()).unwrap_or_default(),
        name: object_name(&app.name, service)?,
        objects_json: objects.to_string(),
        placement_json: release.placement.to_string(),
        replicas: replicas.unwrap_or(0),
    };
    federation.apply_binding(request).await.map(tonic::Response::into_inner).map_err(|s| match s.code() {
        tonic::Code::InvalidArgument => Error::invalid(format!("placement ({service})"), s.message()),
        tonic::Code::ResourceExhausted => Error::ResourceExhausted(s.message().to_string()),
        tonic::Code::FailedPrecondition | tonic::Code::NotFound | tonic::Code::PermissionDenied => Error::FailedPrecondition(s.message().to_string()),
        _ => Error::Unavailable(format!("federation: {}", s.message())),
    })
}

enum Step {
    /// Look again after the poll interval.
    Wait,
    /// Look again at once (the next wave).
    Next,
    /// Done, one way or the other.
    Finished,
}

impl Driver {
    /// A driver over the apps schema in `pool`.
    pub fn new(pool: PgPool, federation: Federation, wake: Arc<Notify>, pacing: Pacing) -> Self {
        Self { pool, federation, wake, pacing }
    }

    /// Runs until `stop`.
    ///
    /// # Errors
    /// Never: failures are recorded on releases or retried.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        while !stop.is_cancelled() {
            let busy = match self.tick().await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "release driver tick failed");
                    false
                }
            };
            if busy {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.pacing.poll) => {}
            }
        }
        Ok(())
    }

    /// Steps every due release once; returns how many went straight on.
    async fn tick(&self) -> Result<usize> {
        let due: Vec<Release> = sqlx::query_as(concat!(
            "UPDATE releases SET claimed_until = now() + interval '30 seconds', started_at = coalesce(started_at, now())
             WHERE id IN (SELECT id FROM releases WHERE state = 'deploying' AND next_check_at <= now()
                          AND (claimed_until IS NULL OR claimed_until < now()) ORDER BY next_check_at LIMIT 32 FOR UPDATE SKIP LOCKED)
             RETURNING ",
            release_columns!()
        ))
        .fetch_all(&self.pool)
        .await?;
        // Releases wait on federation, not on the CPU: step them together.
        let steps = due.into_iter().map(|release| async move {
            let id = release.id;
            let step = match self.step(release).await {
                Ok(step) => step,
                Err(e) => {
                    tracing::warn!(error = %e, release = %id, "release step failed; retrying");
                    Step::Wait
                }
            };
            let delay = match step {
                Step::Next => Duration::ZERO,
                Step::Wait | Step::Finished => self.pacing.poll,
            };
            sqlx::query("UPDATE releases SET claimed_until = NULL, next_check_at = now() + make_interval(secs => $2) WHERE id = $1")
                .bind(id)
                .bind(delay.as_secs_f64())
                .execute(&self.pool)
                .await?;
            Ok::<bool, Error>(matches!(step, Step::Next))
        });
        let mut again = 0;
        for went_on in futures::future::join_all(steps).await {
            again += usize::from(went_on?);
        }
        Ok(again)
    }

    async fn application(&self, release: &Release) -> Result<Application> {
        Ok(sqlx::query_as(
            "SELECT id, tenant_id, project_id, name, environment, state, current_release, replicas, bindings, created_by, created_at, updated_at
             FROM applications WHERE id = $1 AND tenant_id = $2",
        )
        .bind(release.application_id)
        .bind(release.tenant_id)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn fail(&self, release: &Release, message: &str) -> Result<Step> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE releases SET state = 'failed', message = $2, finished_at = now() WHERE id = $1 AND state = 'deploying'")
            .bind(release.id)
            .bind(message)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE applications SET state = 'failed', updated_at = now() WHERE id = $1").bind(release.application_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Step::Finished)
    }

    async fn step(&self, release: Release) -> Result<Step> {
        let waves = release.waves();
        let app = self.application(&release).await?;
        let mut federation = self.federation.client();
        let Some(wave) = waves.get(release.wave as usize) else { return self.succeed(&release, &app, &mut federation).await };
        if release.started_at.is_some_and(|s| chrono::Utc::now() - s > chrono::Duration::from_std(self.pacing.deadline).unwrap_or_default()) {
            return self.fail(&release, &format!("not every service was Healthy within {:?}", self.pacing.deadline)).await;
        }
        let mut bindings: serde_json::Map<String, Value> = app.bindings.as_object().cloned().unwrap_or_default();
        if release.applied_wave < release.wave {
            for service in wave {
                let objects = release.objects.get(service).cloned().unwrap_or(Value::Array(Vec::new()));
                let replicas = app.replicas.get(service).and_then(Value::as_u64).map(|n| n as u32);
                let binding = match apply_service(&mut federation, &app, &release, service, &objects, replicas).await {
                    Ok(b) => b,
                    Err(Error::Unavailable(m)) => return Err(Error::Unavailable(m)),
                    Err(e) => return self.fail(&release, &format!("{service}: {e}")).await,
                };
                bindings.insert(service.clone(), json!(binding.id));
            }
            let mut tx = self.pool.begin().await?;
            sqlx::query("UPDATE applications SET bindings = $2, updated_at = now() WHERE id = $1").bind(app.id).bind(Value::Object(bindings.clone())).execute(&mut *tx).await?;
            sqlx::query("UPDATE releases SET applied_wave = wave, message = $2 WHERE id = $1")
                .bind(release.id)
                .bind(format!("waiting for {} to be Healthy", wave.join(", ")))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        for service in wave {
            let Some(id) = bindings.get(service).and_then(Value::as_str) else { return Ok(Step::Wait) };
            let binding = match federation.get_binding(pb::GetBindingRequest { id: id.to_string() }).await {
                Ok(b) => b.into_inner(),
                Err(s) if s.code() == tonic::Code::NotFound => return self.fail(&release, &format!("{service}: its binding disappeared")).await,
                Err(s) => return Err(Error::Unavailable(format!("federation: {}", s.message()))),
            };
            if binding.health != "Healthy" {
                return Ok(Step::Wait);
            }
        }
        sqlx::query("UPDATE releases SET wave = wave + 1 WHERE id = $1 AND state = 'deploying'").bind(release.id).execute(&self.pool).await?;
        Ok(Step::Next)
    }

    async fn succeed(&self, release: &Release, app: &Application, federation: &mut FederationClient) -> Result<Step> {
        // Services an earlier release had and this one has not are removed.
        let mut bindings: serde_json::Map<String, Value> = app.bindings.as_object().cloned().unwrap_or_default();
        let gone: Vec<String> = bindings.keys().filter(|s| release.objects.get(s.as_str()).is_none()).cloned().collect();
        for service in gone {
            if let Some(id) = bindings.get(&service).and_then(Value::as_str) {
                match federation.delete_binding(pb::DeleteBindingRequest { id: id.to_string() }).await {
                    Ok(_) => {}
                    Err(s) if s.code() == tonic::Code::NotFound => {}
                    Err(s) => return Err(Error::Unavailable(format!("federation: {}", s.message()))),
                }
            }
            bindings.remove(&service);
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE releases SET state = 'superseded' WHERE application_id = $1 AND state = 'succeeded' AND number < $2")
            .bind(app.id)
            .bind(release.number)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE releases SET state = 'succeeded', message = '', finished_at = now() WHERE id = $1 AND state = 'deploying'").bind(release.id).execute(&mut *tx).await?;
        sqlx::query("UPDATE applications SET state = 'running', current_release = $2, bindings = $3, updated_at = now() WHERE id = $1")
            .bind(app.id)
            .bind(release.number)
            .bind(Value::Object(bindings))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Step::Finished)
    }
}
