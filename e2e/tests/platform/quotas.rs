use e2e::Platform;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn send(p: &Platform, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    let r = p.admin(method, path).json(&body).send().await.unwrap();
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
async fn quota_flows_from_tenant_to_partition_and_admission_refuses_with_a_named_level() {
    let p = Platform::start().await;
    let (_, tenant) = send(&p, Method::POST, "/api/v1/tenants", json!({"name": "acme"})).await;
    let tid = tenant["id"].as_str().unwrap();
    let (status, _) = send(
        &p,
        Method::PUT,
        &format!("/api/v1/tenants/{tid}/quota"),
        json!({"hard": {"requests.cpu": "8", "requests.memory": "16Gi"}, "dr_reserve": {"requests.cpu": "2"}}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, project) = send(
        &p,
        Method::POST,
        &format!("/api/v1/tenants/{tid}/projects"),
        json!({"name": "web"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let pid = project["id"].as_str().unwrap();
    let (status, body) = send(
        &p,
        Method::PUT,
        &format!("/api/v1/projects/{pid}/quota"),
        json!({"hard": {"requests.cpu": "9"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "hard.requests.cpu");
    assert_eq!(
        body["detail"],
        "hard.requests.cpu: tenant acme has 8 of requests.cpu; its projects would hold 9"
    );
    send(
        &p,
        Method::PUT,
        &format!("/api/v1/projects/{pid}/quota"),
        json!({"hard": {"requests.cpu": "4"}}),
    )
    .await;

    let (status, partition) = send(
        &p,
        Method::POST,
        &format!("/api/v1/projects/{pid}/partitions"),
        json!({"cluster": "dc1-prod", "data_centre": "dc1", "network_policy": "deny-all"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{partition}");
    assert_eq!(partition["namespace"], "acme-web");
    let part = partition["id"].as_str().unwrap();
    let limit_range =
        json!({"container": {"defaultRequest": {"cpu": "100m"}, "default": {"cpu": "0.5"}, "max": {"cpu": "2"}}});
    let (status, body) = send(
        &p,
        Method::PUT,
        &format!("/api/v1/partitions/{part}/quota"),
        json!({"hard": {"requests.cpu": "2", "pods": "10"}, "limit_range": limit_range}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, read) = send(&p, Method::GET, &format!("/api/v1/partitions/{part}"), Value::Null).await;
    assert_eq!(read["limit_range"]["container"]["default"]["cpu"], "500m");

    let (status, r) = send(
        &p,
        Method::POST,
        "/api/v1/reservations",
        json!({"partition_id": part, "amounts": {"requests.cpu": "1500m", "pods": "2"}, "idempotency_key": "deploy-1"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(r["state"], "reserved");
    let (status, refusal) = send(
        &p,
        Method::POST,
        "/api/v1/reservations",
        json!({"partition_id": part, "amounts": {"requests.cpu": "1"}, "idempotency_key": "deploy-2"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refusal["type"], "urn:paas:problem:quota-exceeded");
    assert_eq!(
        refusal["detail"],
        "partition acme-web in dc1-prod quota exceeded for requests.cpu: asked 1, 500m left of 2"
    );

    let rid = r["id"].as_str().unwrap();
    let (_, committed) = send(
        &p,
        Method::POST,
        &format!("/api/v1/reservations/{rid}/commit"),
        Value::Null,
    )
    .await;
    assert_eq!(committed["state"], "committed");
    let (_, usage) = send(&p, Method::GET, &format!("/api/v1/tenants/{tid}/usage"), Value::Null).await;
    let tenant_cpu = usage["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["level"] == "tenant")
        .unwrap()["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["resource"] == "requests.cpu")
        .cloned()
        .unwrap();
    assert_eq!(
        (tenant_cpu["hard"].as_str(), tenant_cpu["used"].as_str()),
        (Some("8"), Some("1500m"))
    );
    let (_, released) = send(
        &p,
        Method::POST,
        &format!("/api/v1/reservations/{rid}/release"),
        Value::Null,
    )
    .await;
    assert_eq!(released["state"], "released");
    let (status, history) = send(
        &p,
        Method::GET,
        &format!("/api/v1/tenants/{tid}/usage/history?resource=requests.cpu"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert!(history.is_array());
}

#[tokio::test]
async fn malformed_quotas_are_400s_naming_the_resource() {
    let p = Platform::start().await;
    let (_, tenant) = send(&p, Method::POST, "/api/v1/tenants", json!({"name": "acme"})).await;
    let tid = tenant["id"].as_str().unwrap();
    for (body, field) in [
        (json!({"hard": {"requests.cpu": "two"}}), "hard.requests.cpu"),
        (json!({"hard": {"cpu": "2"}}), "hard.cpu"),
        (json!({"hard": {"pods": "1.5"}}), "hard.pods"),
        (
            json!({"hard": {}, "dr_reserve": {"requests.cpu": "1"}}),
            "dr_reserve.requests.cpu",
        ),
        (json!({"hard": {}, "clusters": {"DC1": {}}}), "clusters.DC1"),
    ] {
        let (status, problem) = send(&p, Method::PUT, &format!("/api/v1/tenants/{tid}/quota"), body.clone()).await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body} -> {problem}"
        );
    }
    let (_, project) = send(
        &p,
        Method::POST,
        &format!("/api/v1/tenants/{tid}/projects"),
        json!({"name": "web"}),
    )
    .await;
    let (_, part) = send(
        &p,
        Method::POST,
        &format!("/api/v1/projects/{}/partitions", project["id"].as_str().unwrap()),
        json!({"cluster": "c1", "data_centre": "dc1"}),
    )
    .await;
    let bad_range =
        json!({"hard": {}, "limit_range": {"container": {"default": {"cpu": "1"}, "max": {"cpu": "500m"}}}});
    let (status, problem) = send(
        &p,
        Method::PUT,
        &format!("/api/v1/partitions/{}/quota", part["id"].as_str().unwrap()),
        bad_range,
    )
    .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("limit_range.container.default.cpu"))
    );
}

#[tokio::test]
async fn a_partition_under_a_project_without_a_limit_is_carved_from_the_tenant() {
    let p = Platform::start().await;
    let (_, tenant) = send(&p, Method::POST, "/api/v1/tenants", json!({"name": "acme"})).await;
    let tid = tenant["id"].as_str().unwrap();
    let (status, _) = send(
        &p,
        Method::PUT,
        &format!("/api/v1/tenants/{tid}/quota"),
        json!({"hard": {"pods": "40"}}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, project) = send(
        &p,
        Method::POST,
        &format!("/api/v1/tenants/{tid}/projects"),
        json!({"name": "web"}),
    )
    .await;
    let pid = project["id"].as_str().unwrap();
    let (status, partition) = send(
        &p,
        Method::POST,
        &format!("/api/v1/projects/{pid}/partitions"),
        json!({"cluster": "dc1-prod", "data_centre": "dc1"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{partition}");
    let part = partition["id"].as_str().unwrap();
    let quota = |pods: &str| json!({"hard": {"pods": pods}, "limit_range": {}});
    let (status, body) = send(
        &p,
        Method::PUT,
        &format!("/api/v1/partitions/{part}/quota"),
        quota("1000"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "hard.pods");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("tenant acme has 40 of pods") && detail.contains("project web sets no pods limit"),
        "{detail}"
    );
    let (status, body) = send(
        &p,
        Method::PUT,
        &format!("/api/v1/partitions/{part}/quota"),
        quota("40"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, usage) = send(&p, Method::GET, &format!("/api/v1/tenants/{tid}/usage"), Value::Null).await;
    let partition_pods = usage["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["level"] == "partition")
        .and_then(|u| u["lines"].as_array()?.iter().find(|l| l["resource"] == "pods").cloned())
        .unwrap_or_else(|| panic!("{usage}"));
    assert_eq!(partition_pods["hard"], "40", "the stored limits hold together");
}
