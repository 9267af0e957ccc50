//! What kubectl shows: server-side Tables with each kind's columns
//! (`kubectl get`, `-o wide`), discovery categories (`kubectl get all`),
//! schemas (`kubectl explain`), access reviews (`kubectl auth can-i`) and
//! pruning (`kubectl apply --prune`).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kernel::testkit::eventually;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

use crate::helpers::{TestCluster, deployment, kubectl, kubectl_at, kubectl_version, raw_http, spawn};

fn run(t: &TestCluster, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    // Beside the kubeconfig, in the folder the cluster removes when it stops.
    let cache = t.cluster.kubeconfig_path().with_file_name("kubectl-cache");
    let out = kubectl(&t.cluster, &cache, args, stdin);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The header line of kubectl's table output, as words.
fn header(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .next()
        .unwrap_or_default()
        .split("  ")
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

/// The row of the object named `name`, as cells.
fn row<'a>(stdout: &'a str, name: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{stdout}"))
        .split_whitespace()
        .collect()
}

async fn ready_deployment(t: &TestCluster, name: &str, replicas: i32) {
    let deploys: Api<Deployment> = Api::default_namespaced(t.client.clone());
    deploys
        .create(&PostParams::default(), &deployment(name, replicas, "nginx:1"))
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "the deployment to be available", || async {
        let d = deploys.get(name).await.unwrap();
        (d.status.and_then(|s| s.available_replicas) == Some(replicas)).then_some(())
    })
    .await;
}

/// `kubectl get` prints the columns a real cluster prints: pods with READY,
/// STATUS, RESTARTS and (wide) IP and NODE; deployments with READY,
/// UP-TO-DATE, AVAILABLE; nodes, services, configmaps, secrets, quotas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_prints_each_kinds_columns() {
    let t = spawn().await;
    ready_deployment(&t, "web", 2).await;
    let pods: Api<Pod> = Api::default_namespaced(t.client.clone());
    let pod = pods.list(&ListParams::default().labels("app=web")).await.unwrap().items[0].clone();
    let pod_name = pod.metadata.name.clone().unwrap();
    let status = pod.status.unwrap();

    let (ok, out, err) = run(&t, &["get", "pods", "-o", "wide"], None);
    assert!(ok, "{err}");
    assert_eq!(
        &header(&out)[..7],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"],
        "{out}"
    );
    let cells = row(&out, &pod_name);
    assert_eq!(&cells[1..4], ["1/1", "Running", "0"], "{out}");
    assert_eq!(cells[5], status.pod_ip.unwrap());
    assert!(cells[6].starts_with("test-node-"), "{out}");

    let (ok, out, err) = run(&t, &["get", "deployments"], None);
    assert!(ok, "{err}");
    assert_eq!(
        header(&out),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{out}"
    );
    assert_eq!(&row(&out, "web")[1..4], ["2/2", "2", "2"], "{out}");

    let (ok, out, err) = run(&t, &["get", "replicasets"], None);
    assert!(ok, "{err}");
    assert_eq!(header(&out), ["NAME", "DESIRED", "CURRENT", "READY", "AGE"], "{out}");

    let (ok, out, err) = run(&t, &["get", "nodes"], None);
    assert!(ok, "{err}");
    assert_eq!(header(&out), ["NAME", "STATUS", "ROLES", "AGE", "VERSION"], "{out}");
    assert_eq!(row(&out, "test-node-0")[1], "Ready", "{out}");

    let services: Api<Service> = Api::default_namespaced(t.client.clone());
    let svc = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": { "selector": { "app": "web" }, "ports": [{ "port": 80, "targetPort": 8080 }] },
    }))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
    let (ok, out, err) = run(&t, &["get", "services"], None);
    assert!(ok, "{err}");
    assert_eq!(
        header(&out),
        ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
        "{out}"
    );
    let cells = row(&out, "web");
    assert_eq!(
        (cells[1], cells[3], cells[4]),
        ("ClusterIP", "<none>", "80/TCP"),
        "{out}"
    );

    Api::<ConfigMap>::default_namespaced(t.client.clone())
        .create(&PostParams::default(), &crate::helpers::configmap("two", &[]))
        .await
        .unwrap();
    let (ok, out, err) = run(&t, &["get", "configmaps", "two"], None);
    assert!(ok, "{err}");
    assert_eq!(header(&out), ["NAME", "DATA", "AGE"], "{out}");
    assert_eq!(row(&out, "two")[1], "1");

    let (ok, _, err) = run(&t, &["create", "quota", "q", "--hard=pods=10,limits.cpu=4"], None);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&t, &["get", "quota"], None);
    assert!(ok, "{err}");
    assert_eq!(header(&out), ["NAME", "AGE", "REQUEST", "LIMIT"], "{out}");
    let line = out.lines().find(|l| l.starts_with("q ")).unwrap();
    assert!(
        line.contains("pods: ") && line.contains("/10") && line.contains("limits.cpu: "),
        "{out}"
    );
}

/// The Table answer itself, as any client reads it: column definitions with
/// priorities, one row per object, each with its metadata.
#[tokio::test]
async fn a_table_answer_has_column_definitions_rows_and_row_metadata() {
    let t = spawn().await;
    Api::<ConfigMap>::default_namespaced(t.client.clone())
        .create(&PostParams::default(), &crate::helpers::configmap("one", &[("a", "b")]))
        .await
        .unwrap();
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let (status, _, body) = raw_http(
        &t.cluster,
        "GET",
        "/api/v1/namespaces/default/configmaps?limit=500",
        &[("Accept", accept)],
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let table: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (table["kind"].as_str(), table["apiVersion"].as_str()),
        (Some("Table"), Some("meta.k8s.io/v1"))
    );
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Name", "Data", "Age"]);
    assert!(table["metadata"]["resourceVersion"].is_string());
    let row = &table["rows"][0];
    assert_eq!(row["cells"][0], "one");
    assert_eq!(row["cells"][1], 1);
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(row["object"]["metadata"]["labels"]["a"], "b");
}

/// `kubectl get all` lists the kinds in the `all` category, and `kubectl
/// explain` reads the served OpenAPI v3 schemas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_all_and_explain_use_discovery_and_schemas() {
    let t = spawn().await;
    ready_deployment(&t, "web", 1).await;
    let (ok, out, err) = run(&t, &["get", "all"], None);
    assert!(ok, "{err}");
    for expected in ["pod/web-", "deployment.apps/web", "replicaset.apps/web-"] {
        assert!(out.contains(expected), "{expected} missing from:\n{out}");
    }

    let (ok, out, err) = run(&t, &["explain", "deployment.spec.replicas"], None);
    assert!(ok, "{err}");
    assert!(out.contains("KIND:") && out.contains("Deployment"), "{out}");
    assert!(out.contains("replicas") && out.contains("<integer>"), "{out}");
    assert!(out.contains("Number of desired pods"), "{out}");
}

/// `/openapi/v2` carries the Swagger 2.0 definitions (in gnostic's protobuf,
/// as kubectl asks): `kubectl explain --output=plaintext-openapiv2` walks
/// them through references, with kubectl 1.27 and 1.33.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_explain_reads_the_openapi_v2_definitions() {
    let t = spawn().await;
    for minor in ["1.27", "1.33"] {
        let cache = t
            .cluster
            .kubeconfig_path()
            .with_file_name(format!("kubectl-cache-v2-{minor}"));
        let explain = |path: &str| {
            let out = kubectl_at(
                &kubectl_version(minor),
                &t.cluster,
                &cache,
                &["explain", path, "--output=plaintext-openapiv2"],
                None,
            );
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{minor}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            text
        };
        let replicas = explain("deployment.spec.replicas");
        assert!(replicas.contains("VERSION:  apps/v1"), "{minor}: {replicas}");
        assert!(replicas.contains("FIELD:    replicas <integer>"), "{minor}: {replicas}");
        assert!(replicas.contains("Number of desired pods"), "{minor}: {replicas}");
        let ports = explain("pods.spec.containers.ports");
        assert!(ports.contains("ports <[]Object>"), "{minor}: {ports}");
        assert!(ports.contains("containerPort"), "{minor}: {ports}");
        let schedule = explain("cronjobs.spec.schedule");
        assert!(schedule.contains("schedule <string>"), "{minor}: {schedule}");
    }
    let (status, _, body) = raw_http(&t.cluster, "GET", "/openapi/v2", &[("Accept", "application/json")], &[]).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let spec = &doc["definitions"]["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"];
    assert_eq!(
        spec["$ref"], "#/definitions/io.k8s.api.apps.v1.DeploymentSpec",
        "{spec}"
    );
}

/// `kubectl auth can-i` is answered yes (kubesim has no RBAC) by a
/// SelfSubjectAccessReview, which says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_can_i_is_allowed_with_a_reason() {
    let t = spawn().await;
    let (ok, out, err) = run(&t, &["auth", "can-i", "create", "pods"], None);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "yes");
    let review = json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": { "resourceAttributes": { "verb": "delete", "resource": "deployments", "group": "apps" } },
    });
    let (status, _, body) = raw_http(
        &t.cluster,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        &[("Content-Type", "application/json")],
        review.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 201);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["status"]["allowed"], true);
    assert!(answer["status"]["reason"].as_str().unwrap().contains("RBAC"));
}

/// `kubectl apply --prune` deletes what the new set no longer has; its
/// allow-list resolves ReplicationControllers, which kubectl's default
/// allow-list names. (The default list also names batch/v1 Jobs and
/// CronJobs and PersistentVolumes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_prune_resolves_replication_controllers() {
    let t = spawn().await;
    let cm = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels:\n    set: pruned\ndata:\n  k: v\n"
        )
    };
    let apply = [
        "apply",
        "-l",
        "set=pruned",
        "--prune",
        "--prune-allowlist=core/v1/ConfigMap",
        "--prune-allowlist=core/v1/ReplicationController",
        "-f",
        "-",
    ];
    let (ok, _, err) = run(&t, &apply, Some(&cm("first")));
    assert!(ok, "{err}");
    let (ok, out, err) = run(&t, &apply, Some(&cm("second")));
    assert!(ok, "{err}");
    assert!(out.contains("configmap/first pruned"), "{out}");
    let cms: Api<ConfigMap> = Api::default_namespaced(t.client.clone());
    assert!(cms.get_opt("first").await.unwrap().is_none());
    assert!(cms.get_opt("second").await.unwrap().is_some());
    let (ok, _, err) = run(&t, &["get", "replicationcontrollers"], None);
    assert!(ok, "{err}");
}
