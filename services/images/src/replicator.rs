//! The worker that executes replication runs ([`crate::replication`]): it
//! queues runs of rules whose schedule is due, leases one run at a time,
//! copies its pending items from the master registry to their target
//! registries ([`crate::transfer`]) several at once, and ends the attempt:
//! succeeded, or queued again with a backoff while a target is down.
//!
//! The platform signs its own registry tokens for this (subject
//! `service:images`): pull on the source repository; pull and push on the
//! target repository, and pull on the target's repositories of the same
//! tenant that blobs are mounted from, so a mount never crosses tenants.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kernel::{Error, Result};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::access::Grant;
use crate::replication::{Item, Replications, Run};
use crate::signing::Signer;
use crate::transfer::{Endpoint, Transfer};

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct Pace {
    /// How often it looks for due schedules and runs when nothing wakes it.
    pub poll: Duration,
    /// How long a run is leased: a worker that dies lets another resume it after this.
    pub lease: Duration,
    /// Images copied at once within a run.
    pub parallel_images: usize,
    /// Blobs streamed at once within an image.
    pub parallel_blobs: usize,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            // Pushes and manual runs wake the worker at once; this only bounds schedules and retries.
            poll: Duration::from_secs(2),
            lease: Duration::from_secs(120),
            // Two images and four blobs at once keep a registry's disk and one link busy
            // without starving the rest of the platform on small machines.
            parallel_images: 2,
            parallel_blobs: 4,
        }
    }
}

/// Executes replication runs.
#[derive(Clone)]
pub struct Replicator {
    replications: Replications,
    signer: Arc<Signer>,
    transfer: Transfer,
    pace: Pace,
    wake: Arc<Notify>,
}

#[derive(sqlx::FromRow)]
struct Target {
    id: Uuid,
    url: String,
}

fn repository_grant(repository: &str, actions: &[&str]) -> Grant {
    Grant {
        kind: "repository".to_string(),
        name: repository.to_string(),
        actions: actions.iter().map(|a| (*a).to_string()).collect(),
    }
}

impl Replicator {
    /// A worker over `replications`, signing tokens with `signer`.
    pub fn new(replications: Replications, signer: Arc<Signer>, pace: Pace) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // A stalled registry must not hold a run past its lease.
            .read_timeout(pace.lease / 2)
            .build()
            .unwrap_or_default();
        Self {
            replications,
            signer,
            transfer: Transfer::new(http),
            pace,
            wake: Arc::default(),
        }
    }

    /// What wakes the worker before its next poll (a push, a manual run).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs until `stop`: due schedules, then every run that can be taken.
    ///
    /// # Errors
    /// Never: failures are logged and retried at the next poll.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        loop {
            if let Err(e) = self.schedule_due().await {
                tracing::warn!(error = %e, "replication schedules not checked");
            }
            if let Err(e) = self.drain(&stop).await {
                tracing::warn!(error = %e, "replication runs not taken up");
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.pace.poll) => {}
            }
        }
    }

    async fn schedule_due(&self) -> Result<()> {
        self.replications.schedule_due().await?;
        Ok(())
    }

    /// Executes runs until none is due; returns how many attempts it made.
    ///
    /// # Errors
    /// The database fails.
    pub async fn drain(&self, stop: &CancellationToken) -> Result<usize> {
        let mut attempts = 0;
        while !stop.is_cancelled() {
            let Some(run) = self.replications.claim(self.pace.lease).await? else {
                break;
            };
            self.attempt(&run).await?;
            attempts += 1;
        }
        Ok(attempts)
    }

    /// One attempt at `run`: its pending items, then its new state.
    ///
    /// # Errors
    /// The database fails (copy failures are recorded on the items).
    pub async fn attempt(&self, run: &Run) -> Result<String> {
        let items = self.replications.items(run.id).await?;
        let master: Option<String> = sqlx::query_scalar("SELECT url FROM registries WHERE master")
            .fetch_optional(self.replications.pool())
            .await?;
        let targets: Vec<Target> = sqlx::query_as("SELECT id, url FROM registries WHERE NOT master")
            .fetch_all(self.replications.pool())
            .await?;
        let targets: HashMap<Uuid, String> = targets.into_iter().map(|t| (t.id, t.url)).collect();
        // One read of the source per image, then a copy to each of its targets.
        let mut images: BTreeMap<(String, String, String), Vec<Item>> = BTreeMap::new();
        for item in items.into_iter().filter(|i| i.state != "copied") {
            images
                .entry((item.repository.clone(), item.tag.clone(), item.digest.clone()))
                .or_default()
                .push(item);
        }
        // Futures made up front: a stream mapping a borrowing closure is not provably `Send`.
        let work: Vec<_> = images
            .into_iter()
            .map(|((repository, tag, digest), items)| {
                let master = master.clone();
                let targets = &targets;
                async move {
                    let result = match master {
                        Some(m) => {
                            self.image(
                                run,
                                &m,
                                targets,
                                (repository.as_str(), tag.as_str(), digest.as_str()),
                                &items,
                            )
                            .await
                        }
                        None => Err(Error::Unavailable("no master registry is registered".to_string())),
                    };
                    if let Err(e) = result {
                        for item in &items {
                            self.replications.item_failed(item.id, &e.to_string()).await?;
                        }
                    }
                    self.replications.renew(run.id, self.pace.lease).await
                }
            })
            .collect();
        let results: Vec<Result<()>> = futures::stream::iter(work)
            .buffer_unordered(self.pace.parallel_images.max(1))
            .collect()
            .await;
        results.into_iter().collect::<Result<()>>()?;
        let state = self.replications.finish_attempt(run).await?;
        tracing::info!(run = %run.id, state = %state, "replication attempt ended");
        Ok(state)
    }

    /// Copies one image to each item's target; failures of one target are
    /// recorded on its item and do not stop the others.
    async fn image(
        &self,
        run: &Run,
        master: &str,
        targets: &HashMap<Uuid, String>,
        (repository, tag, digest): (&str, &str, &str),
        items: &[Item],
    ) -> Result<()> {
        let sub = format!("service:{}", crate::NAME);
        let (source_token, _) = self.signer.issue(&sub, vec![repository_grant(repository, &["pull"])])?;
        let source = Endpoint::new(master, source_token);
        let plan = self.transfer.plan(&source, repository, digest).await?;
        let digests: Vec<String> = plan.blobs.iter().map(|b| b.digest.clone()).collect();
        for item in items {
            let Some(url) = targets.get(&item.registry_id) else {
                self.replications
                    .item_failed(item.id, "the target registry is no longer registered")
                    .await?;
                continue;
            };
            let mounts = self
                .replications
                .blob_locations(item.registry_id, run.tenant_id, &digests)
                .await?;
            let mut grants = vec![repository_grant(repository, &["pull", "push"])];
            let mut from: Vec<&String> = mounts.values().filter(|r| r.as_str() != repository).collect();
            from.sort();
            from.dedup();
            grants.extend(from.into_iter().map(|r| repository_grant(r, &["pull"])));
            let (token, _) = self.signer.issue(&sub, grants)?;
            let target = Endpoint::new(url, token);
            let copied = match self.transfer.head_manifest(&target, repository, tag).await {
                // Already there with this digest: nothing to stream.
                Ok(Some(d)) if d == digest => Ok(crate::transfer::Copied::default()),
                Ok(_) => {
                    self.transfer
                        .execute(
                            (&source, repository),
                            (&target, repository),
                            &plan,
                            tag,
                            &mounts,
                            self.pace.parallel_blobs,
                        )
                        .await
                }
                Err(e) => Err(e),
            };
            match copied {
                Ok(c) => {
                    self.replications
                        .blobs_held(item.registry_id, run.tenant_id, repository, &digests)
                        .await?;
                    self.replications.copied(item.id, c.bytes).await?;
                }
                Err(e) => {
                    tracing::info!(run = %run.id, repository, tag, error = %e, "replication item failed");
                    self.replications.item_failed(item.id, &e.to_string()).await?;
                }
            }
        }
        Ok(())
    }
}
