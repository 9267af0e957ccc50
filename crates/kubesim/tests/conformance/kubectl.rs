use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kernel::testkit::eventually;
use kube::api::{Api, ListParams, PostParams};

use crate::helpers::{configmap, kubectl_at, kubectl_version, spawn};

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: app
        image: nginx:1
";

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// kubectl, an independent client, works against kubesim as against a real
/// cluster: get/describe, server-side apply and its conflict, diff, rollout
/// status, scale, logs, get -w and delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drives_a_simulated_cluster() {
    drive(Path::new("kubectl")).await;
}

/// The same scenario with every kubectl minor version installed side by
/// side: 1.27 to 1.31 send JSON, 1.32 and later protobuf.
macro_rules! drives_with {
    ($($name:ident => $minor:literal),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            drive(&kubectl_version($minor)).await;
        }
    )*};
}

drives_with! {
    kubectl_1_27_drives_a_simulated_cluster => "1.27",
    kubectl_1_28_drives_a_simulated_cluster => "1.28",
    kubectl_1_29_drives_a_simulated_cluster => "1.29",
    kubectl_1_30_drives_a_simulated_cluster => "1.30",
    kubectl_1_31_drives_a_simulated_cluster => "1.31",
    kubectl_1_32_drives_a_simulated_cluster => "1.32",
    kubectl_1_33_drives_a_simulated_cluster => "1.33",
}

async fn drive(program: &Path) {
    let t = spawn().await;
    // Beside the kubeconfig, in the folder the cluster removes when it stops.
    let cache_dir = t.cluster.kubeconfig_path().with_file_name("kubectl-cache");
    let cache = cache_dir.as_path();
    let run = |args: &[&str], stdin: Option<&str>| kubectl_at(program, &t.cluster, cache, args, stdin);

    let out = run(&["get", "nodes"], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "get nodes: {stderr}");
    assert!(stdout.contains("test-node-0"), "{stdout}");

    let out = run(&["apply", "--server-side", "-f", "-"], Some(DEPLOYMENT));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "apply: {stderr}");
    assert!(stdout.contains("deployment.apps/web serverside-applied"), "{stdout}");

    let out = run(&["rollout", "status", "deployment/web", "--timeout=30s"], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "rollout status: {stdout} {stderr}");
    assert!(stdout.contains("successfully rolled out"), "{stdout}");

    let out = run(&["describe", "deployment", "web"], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "describe: {stderr}");
    assert!(stdout.contains("Replicas:") && stdout.contains("nginx:1"), "{stdout}");

    let conflicting = DEPLOYMENT.replace("replicas: 2", "replicas: 5");
    let out = run(
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        Some(&conflicting),
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "a conflicting apply must fail");
    assert!(
        stderr.contains("conflict with \"kubectl\"") && stderr.contains(".spec.replicas"),
        "{stderr}"
    );

    let changed = DEPLOYMENT.replace("nginx:1", "nginx:2");
    let out = run(&["diff", "--server-side", "-f", "-"], Some(&changed));
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "diff exits 1 when there are differences: {stdout} {stderr}"
    );
    let changed_line = |sign: char, image: &str| {
        stdout
            .lines()
            .any(|l| l.starts_with(sign) && l.contains(&format!("image: {image}")))
    };
    assert!(changed_line('-', "nginx:1") && changed_line('+', "nginx:2"), "{stdout}");

    let out = run(&["scale", "deployment/web", "--replicas=3"], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "scale: {stderr}");
    assert!(stdout.contains("scaled"), "{stdout}");
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let pod = eventually(Duration::from_secs(10), "3 pods", || async {
        let list = pods.list(&ListParams::default().labels("app=web")).await.unwrap();
        (list.items.len() == 3).then(|| list.items[0].metadata.name.clone().unwrap())
    })
    .await;

    let out = eventually(Duration::from_secs(10), "logs", || async {
        let out = run(&["logs", &pod, "--tail=2"], None);
        out.status.success().then_some(out)
    })
    .await;
    assert_eq!(text(&out).0.lines().count(), 2);

    // `get -w` lists, then watches from the list's resourceVersion: once the
    // listed "before" is printed, "watched" created afterwards must arrive.
    let cms = Api::<ConfigMap>::namespaced(t.client.clone(), "default");
    cms.create(&PostParams::default(), &configmap("before", &[]))
        .await
        .unwrap();
    let mut child = std::process::Command::new(program)
        .arg("--kubeconfig")
        .arg(t.cluster.kubeconfig_path())
        .arg("--cache-dir")
        .arg(cache)
        .args(["get", "configmaps", "-w"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl is required for this test");
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = async |name: &str, seen: &mut Vec<String>| {
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines_rx.recv().await {
                let found = line.split_whitespace().next() == Some(name);
                seen.push(line);
                if found {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("kubectl get -w did not print {name}: {seen:?}"));
    };
    wait_for("before", &mut seen).await;
    cms.create(&PostParams::default(), &configmap("watched", &[]))
        .await
        .unwrap();
    wait_for("watched", &mut seen).await;
    let _ = child.kill();
    let _ = child.wait();

    let out = run(&["delete", "deployment", "web"], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "delete: {stderr}");
    assert!(stdout.contains("deployment.apps \"web\" deleted"), "{stdout}");
}
