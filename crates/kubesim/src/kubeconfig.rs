//! kubeconfig files for simulated clusters, so kube-rs and kubectl connect to
//! them exactly as to a real cluster.

use std::path::Path;

use crate::status::{Error, Result};

/// The kubeconfig text for a cluster named `name` served at `url`.
pub fn render(name: &str, url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster:
    server: {url}
contexts:
- name: {name}
  context:
    cluster: {name}
    user: {name}-admin
    namespace: default
current-context: {name}
users:
- name: {name}-admin
  user:
    token: kubesim-{name}
preferences: {{}}
"
    )
}

/// Writes the kubeconfig of a cluster to `path`.
///
/// # Errors
/// The I/O error if the file cannot be written.
pub fn write(path: &Path, name: &str, url: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            context: format!("creating {}", dir.display()),
            source,
        })?;
    }
    std::fs::write(path, render(name, url)).map_err(|source| Error::Io {
        context: format!("writing {}", path.display()),
        source,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_the_cluster_server_and_context() {
        let text = super::render("east", "http://127.0.0.1:1234");
        assert!(text.contains("server: http://127.0.0.1:1234"));
        assert!(text.contains("current-context: east"));
    }
}
