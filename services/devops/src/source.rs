//! What devops itself reads from a repository when it plans a run: the commit
//! a ref points at, the tags (for the version) and `.paas/pipeline.yaml` at
//! the commit. It drives the `git` CLI, which speaks every transport a Git
//! server offers (`git://`, HTTP, SSH); runners fetch the full source.

use std::process::Stdio;
use std::time::Duration;

use kernel::{Error, Result};
use tokio::process::Command;

use crate::definition::{GitRef, REPOSITORY_FILE};

/// How long one Git command may take: a remote that does not answer fails
/// the run's planning instead of holding it forever.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `git args` in `dir` (or the current directory) with a clean
/// environment: no user config, no credential prompts.
async fn git(dir: Option<&std::path::Path>, args: &[&str]) -> Result<std::process::Output> {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = tokio::time::timeout(GIT_TIMEOUT, cmd.output())
        .await
        .map_err(|_| Error::Unavailable(format!("git {} took longer than {GIT_TIMEOUT:?}", args[0])))?
        .map_err(|e| Error::Unavailable(format!("cannot run git: {e}")))?;
    if out.status.success() {
        Ok(out)
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(Error::Unavailable(format!("git {} failed: {}", args[0], err.trim())))
    }
}

/// The refs the remote advertises: `(name, commit)`.
async fn ls_remote(repository: &str, args: &[&str]) -> Result<Vec<(String, String)>> {
    let mut all = vec!["ls-remote", "--quiet"];
    all.extend_from_slice(args);
    all.push("--");
    all.push(repository);
    let out = git(None, &all).await?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(sha, name)| (name.to_string(), sha.to_string()))
        .collect())
}

/// The commit `git_ref` points at now.
///
/// # Errors
/// The remote is unreachable or has no such ref.
pub async fn resolve(repository: &str, git_ref: &GitRef) -> Result<String> {
    let full = git_ref.full();
    ls_remote(repository, &["--refs"])
        .await?
        .into_iter()
        .find(|(name, _)| *name == full)
        .map(|(_, sha)| sha)
        .ok_or_else(|| Error::FailedPrecondition(format!("the repository has no {full}")))
}

/// The tag names of the remote.
///
/// # Errors
/// The remote is unreachable.
pub async fn tags(repository: &str) -> Result<Vec<String>> {
    Ok(ls_remote(repository, &["--tags", "--refs"])
        .await?
        .into_iter()
        .filter_map(|(name, _)| name.strip_prefix("refs/tags/").map(str::to_string))
        .collect())
}

/// `.paas/pipeline.yaml` at `commit` of `git_ref`, if the commit has one.
///
/// # Errors
/// The remote is unreachable or the commit is not on the ref.
pub async fn definition_at(repository: &str, git_ref: &GitRef, commit: &str) -> Result<Option<String>> {
    let dir = tempfile::tempdir().map_err(Error::internal)?;
    git(Some(dir.path()), &["init", "--quiet", "--bare"]).await?;
    let full = git_ref.full();
    git(
        Some(dir.path()),
        &["fetch", "--quiet", "--no-tags", "--", repository, &full],
    )
    .await?;
    let spec = format!("{commit}:{REPOSITORY_FILE}");
    match git(Some(dir.path()), &["cat-file", "-e", commit]).await {
        Ok(_) => {}
        Err(_) => {
            return Err(Error::FailedPrecondition(format!("commit {commit} is not on {full}")));
        }
    }
    match git(Some(dir.path()), &["show", &spec]).await {
        Ok(out) => Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned())),
        Err(_) => Ok(None),
    }
}
