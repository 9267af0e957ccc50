use e2e::Platform;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn problem(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn bad_input_is_a_400_problem_naming_the_field_and_stores_nothing() {
    let p = Platform::start().await;
    let cases = [
        (json!({"name": "Not A Label"}), "name"),
        (json!({"display_name": "no name"}), "name"),
        (json!({"name": "ok", "display_name": 7}), "display_name"),
        (json!({"name": "ok", "contact": "not-an-email"}), "contact"),
        (json!({"name": "ok", "colour": "red"}), "colour"),
    ];
    for (body, field) in cases {
        let (status, p_json) = problem(
            p.admin(Method::POST, "/api/v1/tenants")
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(p_json["field"], field, "{body} -> {p_json}");
        assert_eq!(p_json["type"], "urn:paas:problem:invalid-argument");
        assert!(p_json["request_id"].is_string(), "{p_json}");
    }
    let list: Value = p
        .admin(Method::GET, "/api/v1/tenants")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["items"].as_array().unwrap().is_empty());

    let (status, body) = problem(p.admin(Method::GET, "/api/v1/tenants/not-a-uuid").send().await.unwrap()).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("id")));
    let (status, body) = problem(
        p.admin(Method::GET, "/api/v1/tenants?limit=100000")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("limit"))
    );
    let (status, body) = problem(
        p.admin(Method::POST, "/api/v1/clusters")
            .json(&json!({"name": "c", "api_endpoint": "ftp://x", "data_centre": "dc1"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("api_endpoint"))
    );
}

#[tokio::test]
async fn a_taken_name_is_a_409_and_an_unknown_tenant_a_404() {
    let p = Platform::start().await;
    assert_eq!(
        p.admin(Method::POST, "/api/v1/tenants")
            .json(&json!({"name": "acme"}))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    let (status, body) = problem(
        p.admin(Method::POST, "/api/v1/tenants")
            .json(&json!({"name": "acme"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["detail"].as_str().unwrap().contains("acme"));
    let (status, _) = problem(
        p.admin(Method::GET, "/api/v1/tenants/018f0000-0000-7000-8000-000000000000")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = problem(p.admin(Method::GET, "/api/v1/no-such-route").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401_problems() {
    let p = Platform::start().await;
    let (status, body) = problem(p.anonymous(Method::GET, "/api/v1/tenants").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["type"], "urn:paas:problem:unauthenticated");
    let wrong = p
        .anonymous(Method::POST, "/api/v1/tenants")
        .bearer_auth("x".repeat(64))
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(wrong).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn services_refuse_grpc_calls_without_a_caller_token() {
    let p = Platform::start().await;
    let tenancy = p.stack.service("tenancy").unwrap();
    let mut client =
        paas_proto::v1::tenancy_service_client::TenancyServiceClient::connect(kernel::grpc::uri(tenancy.grpc))
            .await
            .unwrap();
    let err = client
        .list_tenants(paas_proto::v1::ListTenantsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // A token signed with another key is refused as well.
    let forged = kernel::caller::CallerKey::new(kernel::settings::Secret::new("f".repeat(64)))
        .sign(&kernel::caller::Caller::platform_admin("mallory"));
    let mut request = tonic::Request::new(paas_proto::v1::ListTenantsRequest::default());
    request
        .metadata_mut()
        .insert(kernel::caller::CALLER_METADATA, forged.parse().unwrap());
    assert_eq!(
        client.list_tenants(request).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
}

#[tokio::test]
async fn every_service_and_the_gateway_answer_health_and_metrics() {
    let p = Platform::start().await;
    let mut urls = vec![p.url.clone()];
    urls.extend(p.stack.services.iter().map(|s| format!("http://{}", s.http)));
    for base in urls {
        for path in ["/healthz", "/readyz"] {
            let r = p.http.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{base}{path}");
        }
        let metrics = p
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(metrics.is_empty() || metrics.contains("# TYPE"), "{base}/metrics");
    }
    let r = p.http.get(format!("{}/healthz", p.url)).send().await.unwrap();
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.headers().contains_key("x-request-id"));
}

/// Issue 14 item 10: these were 500s, with a viewer's token for the first.
#[tokio::test]
async fn nul_characters_and_a_missing_tenant_are_problems_naming_the_field_not_500s() {
    let p = Platform::start().await;
    let missing = "018f0000-0000-7000-8000-000000000000";
    let (status, body) = problem(
        p.admin(Method::POST, &format!("/api/v1/tenants/{missing}/members"))
            .json(&json!({"kind": "user", "subject": "alice", "role": "viewer"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("tenant"), "{body}");

    for (method, path, body, field) in [
        (Method::GET, "/api/v1/tenants?name_prefix=a%00b", None, "name_prefix"),
        (Method::GET, "/api/v1/clusters/%00", None, "id"),
        (
            Method::POST,
            "/api/v1/tenants",
            Some(json!({"name": "acme", "display_name": "Ac\u{0}me"})),
            "display_name",
        ),
    ] {
        let mut request = p.admin(method.clone(), path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, problem) = problem(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {problem}");
        assert_eq!(problem["field"], field, "{method} {path}: {problem}");
    }
}
