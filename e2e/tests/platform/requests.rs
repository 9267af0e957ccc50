use e2e::Platform;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn send(p: &Platform, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut r = p.admin(method, path);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        },
    )
}

#[tokio::test]
async fn a_resource_request_is_filed_reviewed_and_provisioned_over_rest() {
    let p = Platform::start().await;
    let key = kernel::caller::CallerKey::new(p.settings.caller_key.clone());
    let clusters = paas::member_clusters::start(&key, p.stack.service("federation").unwrap())
        .await
        .unwrap();
    let (_, tenant) = send(&p, Method::POST, "/api/v1/tenants", Some(json!({"name": "acme"}))).await;
    let tid = tenant["id"].as_str().unwrap();
    let (status, spec) = send(&p, Method::POST, "/api/v1/specs", Some(json!({"name": "medium", "display_name": "4 CPU / 32 GiB", "amounts": {"requests.cpu": "4", "requests.memory": "32Gi"}}))).await;
    assert_eq!(status, StatusCode::CREATED, "{spec}");
    let form = json!({
        "project_name": "billing", "applicant": "Jane Doe", "phone": "+49 30 1234", "email": "jane@acme.example",
        "application": "billing-api", "base_services": ["MySQL", "Kafka"], "purpose": "new billing", "server_type": "application-host",
        "storage": "500Gi", "bandwidth": "100Mbps", "data_centre": "dc1", "spec_id": spec["id"], "count": 2
    });
    let (status, request) = send(
        &p,
        Method::POST,
        &format!("/api/v1/tenants/{tid}/requests"),
        Some(form.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    let rid = request["id"].as_str().unwrap();

    let (status, problem) = send(&p, Method::POST, &format!("/api/v1/requests/{rid}/approve"), None).await;
    assert_eq!(
        (status, problem["detail"].as_str()),
        (StatusCode::CONFLICT, Some("a draft request cannot be approved"))
    );
    assert_eq!(
        send(&p, Method::POST, &format!("/api/v1/requests/{rid}/submit"), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        send(&p, Method::POST, &format!("/api/v1/requests/{rid}/approve"), None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, done) = send(
        &p,
        Method::POST,
        &format!("/api/v1/requests/{rid}/provision"),
        Some(json!({"clusters": ["dc1-prod"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "provisioned");
    assert_eq!(done["steps"].as_array().unwrap().len(), 4);

    let (_, usage) = send(&p, Method::GET, &format!("/api/v1/tenants/{tid}/usage"), None).await;
    let tenant_memory = usage["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["level"] == "tenant")
        .unwrap()["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["resource"] == "requests.memory")
        .cloned()
        .unwrap();
    assert_eq!(tenant_memory["hard"], "64Gi");

    let mut bad = form.clone();
    bad["server_type"] = json!("mainframe");
    let (status, problem) = send(&p, Method::POST, &format!("/api/v1/tenants/{tid}/requests"), Some(bad)).await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("server_type"))
    );
    let (status, problem) = send(&p, Method::POST, &format!("/api/v1/requests/{rid}/explode"), None).await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("step"))
    );
    let (_, listed) = send(&p, Method::GET, "/api/v1/requests?state=provisioned", None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    drop(clusters);
}
