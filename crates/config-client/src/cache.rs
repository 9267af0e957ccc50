//! The local file cache: the last configuration received, written
//! atomically (a temporary file, synced, renamed over the old one, the
//! directory synced), so a crash leaves the old copy or the new one, never
//! half of either.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::snapshot::Snapshot;

/// One configuration's cache file.
#[derive(Debug, Clone)]
pub struct Cache {
    path: PathBuf,
}

fn cache_error(path: &Path, source: std::io::Error) -> Error {
    Error::Cache {
        path: path.display().to_string(),
        source,
    }
}

impl Cache {
    /// The file `name` in `dir`.
    pub fn new(dir: &Path, name: &str) -> Self {
        Self { path: dir.join(name) }
    }

    /// The cached configuration, if there is one.
    ///
    /// # Errors
    /// The file exists but cannot be read or parsed.
    pub async fn load(&self) -> Result<Option<Snapshot>> {
        match tokio::fs::read(&self.path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| cache_error(&self.path, std::io::Error::other(e))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(cache_error(&self.path, e)),
        }
    }

    /// Replaces the cached configuration atomically.
    ///
    /// # Errors
    /// The directory or file cannot be written.
    pub async fn save(&self, snapshot: &Snapshot) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(snapshot).map_err(|e| cache_error(&self.path, std::io::Error::other(e)))?;
        write_atomically(&self.path, &bytes).await
    }
}

/// Writes `bytes` to `path` so readers see the old content or the new, never
/// a mix: a temporary file beside it, synced, renamed over it, the directory
/// synced.
///
/// # Errors
/// Any step fails.
pub async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    tokio::fs::create_dir_all(dir).await.map_err(|e| cache_error(dir, e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("config");
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = async {
        tokio::fs::write(&temporary, bytes).await?;
        tokio::fs::File::open(&temporary).await?.sync_all().await?;
        tokio::fs::rename(&temporary, path).await?;
        // The rename itself survives a crash once the directory is synced.
        tokio::fs::File::open(dir).await?.sync_all().await
    };
    if let Err(e) = write.await {
        let _ = tokio::fs::remove_file(&temporary).await;
        return Err(cache_error(path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::snapshot::{Item, SetRelease};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("config-client-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[tokio::test]
    async fn a_saved_configuration_loads_back_and_no_temporary_file_remains() {
        let dir = scratch("roundtrip");
        let cache = Cache::new(&dir, "shop.json");
        assert_eq!(cache.load().await.unwrap(), None);
        let mut snapshot = Snapshot::default();
        snapshot.items.insert("banner.txt".into(), Item::File("hello".into()));
        snapshot.items.insert(
            "app.properties".into(),
            Item::Keys(BTreeMap::from([("a".to_string(), "1".to_string())])),
        );
        snapshot.sets.insert(
            "s".into(),
            SetRelease {
                origin: "shop/base".into(),
                release: 4,
            },
        );
        cache.save(&snapshot).await.unwrap();
        snapshot.sets.get_mut("s").unwrap().release = 5;
        cache.save(&snapshot).await.unwrap();
        assert_eq!(cache.load().await.unwrap(), Some(snapshot));
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["shop.json".to_string()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_corrupt_cache_is_an_error_not_an_empty_configuration() {
        let dir = scratch("corrupt");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("shop.json"), b"{not json").unwrap();
        assert!(matches!(
            Cache::new(&dir, "shop.json").load().await,
            Err(Error::Cache { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
