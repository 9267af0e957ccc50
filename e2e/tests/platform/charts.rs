//! A Helm chart through the gateway: the fixture chart
//! (`services/apps/tests/charts/web`, a web Deployment with a Redis
//! sub-chart) imported as an archive, published and deployed lands in a
//! kubesim cluster with its workloads Available; a broken chart is refused
//! with 422 naming the file.

use std::collections::BTreeMap;
use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::applications::world_with;

fn chart_files() -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = format!("{prefix}{}", path.file_name().unwrap().to_str().unwrap());
            if path.is_dir() {
                walk(&path, &format!("{name}/"), out);
            } else {
                out.insert(name, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../services/apps/tests/charts/web"),
        "",
        &mut out,
    );
    out
}

/// `helm package`'s shape: everything under the chart's folder, gzipped.
fn archive(files: &BTreeMap<String, String>) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (path, text) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("web/{path}"), text.as_bytes())
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

#[tokio::test]
async fn an_imported_chart_deploys_its_objects_and_a_broken_one_is_refused_naming_the_file() {
    let w = world_with("4", &[]).await;
    let import = format!("/api/v1/tenants/{}/templates/import", w.tenant);
    let r =
        w.p.admin(Method::POST, &import)
            .header("content-type", "application/gzip")
            .body(archive(&chart_files()))
            .send()
            .await
            .unwrap();
    let status = r.status();
    let imported: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{imported}");
    assert_eq!(
        (
            imported["template"]["name"].as_str(),
            imported["version"]["version"].as_str()
        ),
        (Some("web"), Some("1.4.0"))
    );
    let version = imported["version"]["id"].as_str().unwrap().to_string();
    let (status, _) = w
        .send(
            Method::POST,
            &format!("/api/v1/template-versions/{version}/publish"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let deploy = json!({"name": "shop", "environment": "test", "template_version_id": version, "placement": {"explicit": [{"cluster": "dc1-prod"}]},
                        "parameters": {"replicaCount": 1, "config": {"LOG_LEVEL": "debug"}}, "strategy": {"type": "rolling", "max_surge": 1, "max_unavailable": 0}});
    let (status, app) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(deploy.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(
        app["latest_release"]["waves"],
        json!([["redis"], ["web"]]),
        "the sub-chart first"
    );
    let id = app["id"].as_str().unwrap().to_string();
    let running = w.release_state(&id, 1, "succeeded").await;
    assert!(
        running["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["health"] == "Healthy"),
        "{running}"
    );

    let web = w
        .kube("/apis/apps/v1/namespaces/acme-web/deployments/shop-web")
        .await
        .expect("the chart's Deployment");
    assert!(
        web["status"]["availableReplicas"].as_i64().unwrap_or(0) >= 1,
        "Available: {}",
        web["status"]
    );
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"], "registry.example/web:2.3.1",
        "the tag defaults to appVersion"
    );
    let redis = w
        .kube("/apis/apps/v1/namespaces/acme-web/statefulsets/shop-redis")
        .await
        .expect("the sub-chart's StatefulSet");
    assert!(
        redis["status"]["availableReplicas"]
            .as_i64()
            .unwrap_or(redis["status"]["readyReplicas"].as_i64().unwrap_or(0))
            >= 1,
        "{}",
        redis["status"]
    );
    let config = w
        .kube("/api/v1/namespaces/acme-web/configmaps/shop-web")
        .await
        .expect("the chart's ConfigMap");
    assert_eq!(
        (
            config["data"]["LOG_LEVEL"].as_str(),
            config["data"]["REDIS_URL"].as_str()
        ),
        (Some("debug"), Some("redis://shop-redis:6379"))
    );
    assert!(w.kube("/api/v1/namespaces/acme-web/services/shop-web").await.is_some());

    // Values the chart's schema refuses are the deploy's error, named.
    let mut bad = deploy.clone();
    bad["name"] = json!("shop2");
    bad["parameters"] = json!({"replicaCount": 0});
    let (status, problem) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(bad),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("values.replicaCount")),
        "{problem}"
    );

    // A template calling an unknown function: 422 naming the file.
    let mut broken = chart_files();
    broken.insert(
        "templates/service.yaml".into(),
        "kind: Service\nname: {{ .Values.x | nosuchfunction }}\n".into(),
    );
    broken.insert(
        "Chart.yaml".into(),
        broken["Chart.yaml"].replace("version: 1.4.0", "version: 1.5.0"),
    );
    let r =
        w.p.admin(Method::POST, &import)
            .json(&json!({"files": broken}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["field"], "web/templates/service.yaml", "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("nosuchfunction"),
        "{problem}"
    );
    let mut missing = chart_files();
    missing.remove("Chart.yaml");
    let r =
        w.p.admin(Method::POST, &import)
            .json(&json!({"files": missing}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "Chart.yaml");
}
