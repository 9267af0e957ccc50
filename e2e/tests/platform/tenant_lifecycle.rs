//! What a tenant's deletion and suspension do to its API tokens and members,
//! and that nothing is made or listed under a tenant that does not exist
//! (#14 items 12, 13).

use e2e::Platform;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn send(p: &Platform, bearer: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut r = p.anonymous(method, path).bearer_auth(bearer);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn tenant(p: &Platform, name: &str) -> String {
    let (status, t) = send(
        p,
        &p.admin_token,
        Method::POST,
        "/api/v1/tenants",
        Some(json!({"name": name})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    t["id"].as_str().unwrap().to_string()
}

async fn project(p: &Platform, bearer: &str, tenant: &str, name: &str) -> (StatusCode, Value) {
    send(
        p,
        bearer,
        Method::POST,
        &format!("/api/v1/tenants/{tenant}/projects"),
        Some(json!({"name": name})),
    )
    .await
}

/// A token minted by `bearer`: its status, and its secret when made.
async fn mint(p: &Platform, bearer: &str, tenant: &str, role: &str) -> (StatusCode, Option<String>) {
    let (status, created) = send(
        p,
        bearer,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": format!("{role} robot"), "tenant_id": tenant, "role": role})),
    )
    .await;
    (status, created["secret"].as_str().map(str::to_string))
}

#[tokio::test]
async fn a_deleted_tenants_tokens_stop_at_once_and_cannot_mint_tokens() {
    let p = Platform::start().await;
    let doomed = tenant(&p, "doomed").await;
    let (status, robot) = mint(&p, &p.admin_token, &doomed, "tenant-admin").await;
    assert_eq!(status, StatusCode::CREATED);
    let robot = robot.unwrap();
    let (status, _) = mint(&p, &robot, &doomed, "viewer").await;
    assert_eq!(status, StatusCode::CREATED, "a live tenant's admin token mints tokens");

    let (status, _) = send(
        &p,
        &p.admin_token,
        Method::DELETE,
        &format!("/api/v1/tenants/{doomed}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, _) = send(&p, &robot, Method::GET, "/api/v1/tenants", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the deleted tenant's token");
    let (status, _) = mint(&p, &robot, &doomed, "viewer").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no token minted for a deleted tenant");
    let (status, tokens) = send(&p, &p.admin_token, Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(status, StatusCode::OK);
    let of_doomed: Vec<&Value> = tokens
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["tenant_id"] == doomed.as_str())
        .collect();
    assert_eq!(of_doomed.len(), 2, "{tokens}");
    assert!(
        of_doomed.iter().all(|t| t["revoked_at"].is_string()),
        "every token of the deleted tenant is revoked: {tokens}"
    );
}

#[tokio::test]
async fn a_suspended_tenant_is_read_only_for_its_tokens_until_reactivated() {
    let p = Platform::start().await;
    let paused = tenant(&p, "paused").await;
    let (_, robot) = mint(&p, &p.admin_token, &paused, "tenant-admin").await;
    let robot = robot.unwrap();
    let (status, _) = project(&p, &robot, &paused, "before").await;
    assert_eq!(status, StatusCode::CREATED);

    let path = format!("/api/v1/tenants/{paused}");
    let suspend = |status: &'static str| {
        send(
            &p,
            &p.admin_token,
            Method::PATCH,
            &path,
            Some(json!({"status": status})),
        )
    };
    let (status, body) = suspend("suspended").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, projects) = send(
        &p,
        &robot,
        Method::GET,
        &format!("/api/v1/tenants/{paused}/projects"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "reads go on: {projects}");
    assert_eq!(projects["items"].as_array().unwrap().len(), 1);
    let (status, _) = send(&p, &robot, Method::GET, &format!("/api/v1/tenants/{paused}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = project(&p, &robot, &paused, "during").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no writes while suspended: {body}");
    let (status, _) = mint(&p, &robot, &paused, "viewer").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a suspended tenant's token mints no tokens"
    );
    let (status, _) = send(
        &p,
        &robot,
        Method::PATCH,
        &format!("/api/v1/tenants/{paused}"),
        Some(json!({"display_name": "Back"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) = suspend("active").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = project(&p, &robot, &paused, "after").await;
    assert_eq!(status, StatusCode::CREATED, "writes again once reactivated: {body}");
}

#[tokio::test]
async fn nothing_is_made_or_listed_under_a_tenant_that_does_not_exist() {
    let p = Platform::start().await;
    let admin = p.admin_token.clone();
    let real = tenant(&p, "real").await;
    let other = tenant(&p, "other").await;
    let (_, foreign) = project(&p, &admin, &other, "foreign").await;
    let foreign = foreign["id"].as_str().unwrap().to_string();
    let missing = uuid::Uuid::now_v7().to_string();

    // A body field naming a missing tenant (or another tenant's project): 400 naming it.
    let refused_field = [
        (
            "/api/v1/tokens",
            json!({"name": "ci", "tenant_id": missing, "role": "viewer"}),
            "tenant_id",
        ),
        (
            "/api/v1/tokens",
            json!({"name": "ci", "tenant_id": real, "project_id": foreign, "role": "viewer"}),
            "project_id",
        ),
        (
            "/api/v1/tokens",
            json!({"name": "ci", "tenant_id": real, "project_id": missing, "role": "viewer"}),
            "project_id",
        ),
        (
            "/api/v1/templates",
            json!({"tenant_id": missing, "name": "web"}),
            "tenant_id",
        ),
    ];
    for (path, body, field) in refused_field {
        let (status, problem) = send(&p, &admin, Method::POST, path, Some(body.clone())).await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "POST {path} {body}: {problem}"
        );
    }

    // A path under a missing tenant: 404 for the tenant.
    let t = format!("/api/v1/tenants/{missing}");
    let creates = [
        (Method::POST, format!("{t}/projects"), json!({"name": "web"})),
        (
            Method::POST,
            format!("{t}/members"),
            json!({"kind": "user", "subject": "ldap:jdoe", "role": "viewer"}),
        ),
        (
            Method::POST,
            format!("{t}/templates/import"),
            json!({"files": {"Chart.yaml": "apiVersion: v2\nname: web\nversion: 1.0.0\n"}}),
        ),
        (
            Method::POST,
            format!("{t}/external-services"),
            json!({"name": "db", "dns_name": "db.example.com", "placement": {"explicit": [{"cluster": "c1"}]}}),
        ),
        (
            Method::POST,
            format!("{t}/bindings"),
            json!({"name": "web", "objects": [], "placement": {"explicit": [{"cluster": "c1"}]}}),
        ),
        (
            Method::POST,
            format!("{t}/applications"),
            json!({"name": "web", "environment": "dev", "template_version_id": uuid::Uuid::now_v7().to_string(),
                   "placement": {"explicit": [{"cluster": "c1"}]}}),
        ),
        (
            Method::PUT,
            format!("{t}/quota"),
            json!({"hard": {"requests.cpu": "1"}}),
        ),
    ];
    for (method, path, body) in creates {
        let (status, problem) = send(&p, &admin, method.clone(), &path, Some(body)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {problem}");
    }
    let lists = [
        format!("{t}/projects"),
        format!("{t}/members"),
        format!("{t}/usage"),
        format!("{t}/usage/history"),
        format!("{t}/applications"),
        format!("{t}/external-services"),
        format!("{t}/bindings"),
        format!("{t}/federation"),
        format!("/api/v1/requests?tenant_id={missing}"),
        format!("/api/v1/templates?tenant_id={missing}"),
        format!("/api/v1/tokens?tenant_id={missing}"),
    ];
    for path in lists {
        let (status, problem) = send(&p, &admin, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "GET {path}: {problem}");
    }
    // The lists of a tenant that exists are still lists.
    let (status, _) = send(
        &p,
        &admin,
        Method::GET,
        &format!("/api/v1/tenants/{real}/members"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
