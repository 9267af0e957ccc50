//! The standalone server (`paas kubesim`, here its `kubesim-standalone`
//! twin over the same `run_standalone`): it stops on SIGTERM or SIGINT and
//! leaves no temporary kubeconfig folder behind.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use kernel::testkit::eventually;

async fn stops_cleanly_on(signal: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubesim-standalone"))
        .args(["--clusters", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the standalone server starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let kubeconfigs: Vec<PathBuf> = (0..2)
        .map(|_| {
            let line = lines.next().expect("a line per cluster").unwrap();
            let path = line.split("kubeconfig=").nth(1).expect("a kubeconfig path");
            PathBuf::from(path)
        })
        .collect();
    for k in &kubeconfigs {
        assert!(k.exists(), "{} is written", k.display());
    }
    let killed = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = eventually(Duration::from_secs(10), "the server to exit", || {
        let exited = child.try_wait().unwrap();
        async move { exited }
    })
    .await;
    assert!(status.success(), "exit after {signal}: {status:?}");
    for k in &kubeconfigs {
        assert!(
            !k.parent().unwrap().exists(),
            "{} is removed after {signal}",
            k.display()
        );
    }
}

/// SIGTERM (what service managers and `docker stop` send) removes the folders.
#[tokio::test]
async fn sigterm_removes_the_temporary_kubeconfig_folders() {
    stops_cleanly_on("-TERM").await;
}

/// SIGINT (Ctrl-C) removes them too.
#[tokio::test]
async fn sigint_removes_the_temporary_kubeconfig_folders() {
    stops_cleanly_on("-INT").await;
}
