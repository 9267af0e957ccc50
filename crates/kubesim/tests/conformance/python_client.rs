//! The official Kubernetes Python client (`kubernetes` on PyPI, pinned in
//! `tests/python/requirements.txt`) drives a simulated cluster through the
//! scenario suite in `tests/python`: each test here starts a cluster, hands
//! its kubeconfig to one pytest file and fails with pytest's report when a
//! scenario fails.
//!
//! The suite runs in the virtual environment `scripts/deps` makes
//! (`$HOME/.cache/paas/venv-kubesim`, or `$KUBESIM_PYTHON_VENV`). Outside CI
//! a machine without it skips the suite and says so; in CI (`CI` set) a
//! missing environment fails the test, so CI never skips it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::helpers::spawn_with;

/// The Python of the suite's virtual environment, if it is there.
fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var_os("KUBESIM_PYTHON_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/paas/venv-kubesim")))?;
    Some(venv.join("bin/python")).filter(|p| p.exists())
}

async fn run_scenarios(file: &str) {
    let Some(python) = venv_python() else {
        let missing = "the Python client's virtual environment is missing: run scripts/deps \
                       (it makes $HOME/.cache/paas/venv-kubesim) or set KUBESIM_PYTHON_VENV";
        assert!(std::env::var_os("CI").is_none(), "{missing}");
        eprintln!("SKIPPED tests/python/{file}: {missing}");
        return;
    };
    let t = spawn_with(|mut c| {
        // The real Job back-off is 10 s; the failing-Job scenario needs only one retry.
        c.job_backoff = Duration::from_millis(200);
        c
    })
    .await;
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let mut pytest = std::process::Command::new(python);
    pytest
        .args(["-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", "--color=no"])
        .arg(suite.join(file))
        .current_dir(&suite)
        .env("KUBECONFIG", t.cluster.kubeconfig_path())
        .env("KUBESIM_ADMIN_URL", t.cluster.admin_url())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null());
    // Every scenario bounds its own waits, so the suite ends by itself; the
    // cluster keeps serving on this runtime while it runs.
    let out = tokio::task::spawn_blocking(move || pytest.output())
        .await
        .unwrap()
        .expect("the suite's Python starts");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "tests/python/{file} failed:\n{report}");
    println!("{report}");
}

macro_rules! python_scenarios {
    ($($name:ident => $file:literal),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            run_scenarios($file).await;
        }
    )*};
}

python_scenarios! {
    python_client_core_scenarios => "test_core.py",
    python_client_workload_scenarios => "test_workloads.py",
    python_client_batch_scenarios => "test_batch.py",
    python_client_machinery_scenarios => "test_machinery.py",
    python_client_kind_scenarios => "test_kinds.py",
}
