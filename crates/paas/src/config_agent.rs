//! `paas config-agent`: keeps a directory of configuration files current for
//! a program in any language, as a sidecar would. It reads the application's
//! effective configuration with [`config_client`], writes one file per item
//! (a key/value item as a properties file), each atomically, and after a
//! change runs a reload command once the changes settle (debounced). While
//! the config center is unreachable the files stay as they are (at start, from
//! the client's cache); once it is back the agent catches up from the
//! releases it holds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use config_client::{ConfigClient, Snapshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long changes must settle before the reload command runs, so a burst
/// of releases (base and environment published together) reloads once.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(500);
/// The first wait after a failed request; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between attempts while the config center is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the agent does.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The client's settings (gateway, credential, configuration, identity, cache).
    pub client: config_client::Settings,
    /// The directory the files are written to.
    pub dir: PathBuf,
    /// A shell command run after a change (`sh -c`), with `PAAS_CONFIG_DIR` set.
    pub reload: Option<String>,
    /// How long changes must settle before the reload.
    pub debounce: Duration,
}

/// Runs the agent until `stop`.
///
/// # Errors
/// The first configuration cannot be had (refused, or unreachable with
/// nothing cached, after retrying until `stop`), or the directory cannot be written.
pub async fn run(settings: AgentSettings, stop: CancellationToken) -> anyhow::Result<()> {
    let mut client = ConfigClient::new(settings.client.clone())?;
    let mut backoff = FIRST_BACKOFF;
    loop {
        match client.start().await {
            Ok(_) => break,
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "no configuration yet; retrying");
                if pause(&stop, &mut backoff).await {
                    return Ok(());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut written = BTreeSet::new();
    write_files(&settings.dir, client.current(), &mut written).await?;
    tracing::info!(
        dir = %settings.dir.display(),
        items = written.len(),
        source = ?client.source(),
        "config files written"
    );
    let mut backoff = FIRST_BACKOFF;
    let mut reload_at: Option<Instant> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep_until(reload_at.unwrap_or_else(Instant::now)), if reload_at.is_some() => {
                reload_at = None;
                if let Some(command) = &settings.reload {
                    reload(command, &settings.dir).await;
                }
            }
            polled = client.poll() => match polled {
                Ok(changes) if changes.is_empty() => backoff = FIRST_BACKOFF,
                Ok(changes) => {
                    backoff = FIRST_BACKOFF;
                    write_files(&settings.dir, client.current(), &mut written).await?;
                    let paths: Vec<String> = changes.iter().map(config_client::Change::path).collect();
                    tracing::info!(changed = ?paths, "config files updated");
                    reload_at = Some(Instant::now() + settings.debounce);
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "config center unreachable; the files stay as they are");
                    if pause(&stop, &mut backoff).await {
                        return Ok(());
                    }
                }
                Err(e) => {
                    // A refused credential may be fixed behind our back; keep trying slowly.
                    tracing::error!(error = %e, "config center refused the agent");
                    if pause(&stop, &mut backoff).await {
                        return Ok(());
                    }
                }
            },
        }
    }
}

/// Waits `backoff` (then doubles it, up to [`MAX_BACKOFF`]); true when stopped meanwhile.
async fn pause(stop: &CancellationToken, backoff: &mut Duration) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(wait) => false,
    }
}

/// Whether an item's name can be a file in the directory: one plain path
/// component, not hidden (the agent keeps nothing else there).
fn is_file_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0'])
}

/// Writes every item whose content differs from its file and removes the
/// files of items gone since (only files this agent wrote, listed in `written`).
async fn write_files(dir: &Path, snapshot: &Snapshot, written: &mut BTreeSet<String>) -> anyhow::Result<()> {
    tokio::fs::create_dir_all(dir)
        .await
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let mut now = BTreeSet::new();
    for (name, item) in &snapshot.items {
        if !is_file_name(name) {
            tracing::warn!(item = %name, "item name is not a plain file name; not written");
            continue;
        }
        let path = dir.join(name);
        let content = item.render();
        let same = tokio::fs::read(&path).await.is_ok_and(|old| old == content.as_bytes());
        if !same {
            config_client::write_atomically(&path, content.as_bytes()).await?;
        }
        now.insert(name.clone());
    }
    for gone in written.difference(&now) {
        match tokio::fs::remove_file(dir.join(gone)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {gone}")),
        }
    }
    *written = now;
    Ok(())
}

/// Runs the reload command and logs how it ended.
async fn reload(command: &str, dir: &Path) {
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("PAAS_CONFIG_DIR", dir)
        .status()
        .await;
    match status {
        Ok(s) if s.success() => tracing::info!(%command, "reload command ran"),
        Ok(s) => tracing::warn!(%command, status = %s, "reload command failed"),
        Err(e) => tracing::warn!(%command, error = %e, "reload command could not start"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use config_client::Item;

    use super::*;

    #[test]
    fn only_plain_names_become_files() {
        assert!(is_file_name("application.properties"));
        assert!(!is_file_name("../etc/passwd"));
        assert!(!is_file_name("a/b"));
        assert!(!is_file_name(".hidden"));
        assert!(!is_file_name(""));
    }

    #[tokio::test]
    async fn files_follow_the_configuration_and_stale_ones_go() {
        let dir = std::env::temp_dir().join(format!("config-agent-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut written = BTreeSet::new();
        let mut snapshot = Snapshot::default();
        snapshot.items.insert("banner.txt".into(), Item::File("hello".into()));
        snapshot.items.insert(
            "app.properties".into(),
            Item::Keys(BTreeMap::from([("a".to_string(), "1".to_string())])),
        );
        write_files(&dir, &snapshot, &mut written).await.unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("app.properties")).unwrap(), "a=1\n");
        assert_eq!(std::fs::read_to_string(dir.join("banner.txt")).unwrap(), "hello");
        std::fs::write(dir.join("mine.txt"), "not the agent's").unwrap();
        snapshot.items.remove("banner.txt");
        write_files(&dir, &snapshot, &mut written).await.unwrap();
        assert!(!dir.join("banner.txt").exists());
        assert!(dir.join("mine.txt").exists(), "a file the agent did not write stays");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
