//! Graceful shutdown: one signal future per process, a drain token handed to
//! every server and task, and a bounded grace period after which the process
//! stops anyway.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long tasks get to finish after the stop signal.
pub const GRACE: Duration = Duration::from_secs(10);

/// The stop signal and the tasks that must end before the process does.
#[derive(Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tasks: TaskTracker,
}

impl Shutdown {
    /// A new, untriggered shutdown.
    pub fn new() -> Self {
        Self::default()
    }

    /// A token that is cancelled when shutdown begins; hand it to servers and loops.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// A child shutdown: stopping it stops only its own tasks, while stopping
    /// the parent stops it too (one service inside `paas up`, say).
    pub fn child(&self) -> Self {
        Self {
            token: self.token.child_token(),
            tasks: TaskTracker::new(),
        }
    }

    /// Begins shutdown.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when shutdown begins.
    pub async fn triggered(&self) {
        self.token.cancelled().await;
    }

    /// Runs a named task that shutdown waits for; logs when it ends and why.
    pub fn spawn<F, E>(&self, name: &'static str, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let token = self.token.clone();
        self.tasks.spawn(async move {
            match task.await {
                Ok(()) if token.is_cancelled() => tracing::debug!(task = name, "task stopped"),
                Ok(()) => tracing::warn!(task = name, "task ended before shutdown"),
                Err(e) => tracing::error!(task = name, error = %e, "task failed"),
            }
        });
    }

    /// Triggers shutdown on SIGINT or SIGTERM.
    pub fn on_signals(&self) {
        let token = self.token.clone();
        tokio::spawn(async move {
            let terminate = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received, shutting down"),
                _ = terminate => tracing::info!("terminate received, shutting down"),
                _ = token.cancelled() => return,
            }
            token.cancel();
        });
    }

    /// Waits for shutdown to be triggered, then for every task, at most [`GRACE`].
    /// Returns false when some task outlived the grace period.
    pub async fn wait(&self) -> bool {
        self.token.cancelled().await;
        self.drain(GRACE).await
    }

    /// Waits up to `grace` for the tasks after shutdown was triggered.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.tasks.close();
        let done = tokio::time::timeout(grace, self.tasks.wait()).await.is_ok();
        if !done {
            tracing::warn!(
                remaining = self.tasks.len(),
                "tasks still running after the grace period"
            );
        }
        done
    }
}
