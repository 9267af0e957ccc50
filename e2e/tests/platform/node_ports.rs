//! Node ports follow each target cluster's NodePort range (cluster settings):
//! a fixed port outside it is refused naming the field and the cluster, a
//! drawn port lands inside it.

use std::time::Duration;

use kernel::testkit::eventually;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::applications::world_with;

#[tokio::test]
async fn a_node_port_outside_a_target_clusters_range_is_refused_and_drawn_ports_land_inside_it() {
    let w = world_with("4", &[]).await;
    let (status, cluster) = w
        .send(
            Method::PUT,
            "/api/v1/clusters/dc1-prod/settings",
            Some(json!({"node_port_range": {"first": 31000, "last": 31099}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cluster}");
    assert_eq!(
        cluster["settings"]["node_port_range"],
        json!({"first": 31000, "last": 31099})
    );
    let (_, template) = w
        .send(
            Method::POST,
            "/api/v1/templates",
            Some(json!({"tenant_id": w.tenant, "name": "ports"})),
        )
        .await;
    let template = template["id"].as_str().unwrap().to_string();
    let spec = |node_port: u16| json!({"services": [{"name": "svc", "containers": [{"name": "svc", "image": "nginx", "resources": {"cpu_request": "100m"}, "ports": [{"container_port": 80, "node_port": node_port}]}]}]});
    let deploy = |name: &str, version: &str| json!({"name": name, "environment": "test", "template_version_id": version, "placement": {"explicit": [{"cluster": "dc1-prod"}]}});

    // 30500 is in Kubernetes' default range but not in dc1-prod's.
    let outside = w.version(&template, "1.0.0", spec(30500)).await;
    let (status, problem) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(deploy("outside", &outside)),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(
        problem["field"], "spec.services[0].containers[0].ports[0].node_port",
        "{problem}"
    );
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("dc1-prod") && detail.contains("31000-31099"),
        "{detail}"
    );
    let (_, apps) = w
        .send(Method::GET, &format!("/api/v1/tenants/{}/applications", w.tenant), None)
        .await;
    assert!(
        apps["items"].as_array().unwrap().is_empty(),
        "the refused deploy left nothing"
    );

    // Drawn: the lowest free port of the cluster's range, not of the default one.
    let drawn = w.version(&template, "2.0.0", spec(0)).await;
    let (status, app) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(deploy("drawn", &drawn)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let service = eventually(Duration::from_secs(40), "the Service", || async {
        w.kube("/api/v1/namespaces/acme-web/services/drawn-svc").await
    })
    .await;
    assert_eq!(service["spec"]["ports"][0]["nodePort"], 31000, "{service}");

    // A fixed port inside the range is still refused when taken, naming who holds it.
    let taken = w.version(&template, "3.0.0", spec(31000)).await;
    let (status, problem) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(deploy("taken", &taken)),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("drawn"), "{problem}");
}
