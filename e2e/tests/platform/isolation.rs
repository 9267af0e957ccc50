//! API tokens, and tenant isolation through the gateway: a caller of tenant B
//! gets 404 for every tenant-A resource, whatever the route.

use e2e::Platform;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Calls the gateway with a bearer token; the answer as JSON (a string when
/// it is not JSON, null when empty).
pub(crate) async fn send(
    p: &Platform,
    bearer: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = p.anonymous(method, path).bearer_auth(bearer);
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
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        },
    )
}

struct Tenant {
    id: String,
    project: String,
    partition: String,
}

async fn tenant(p: &Platform, name: &str) -> Tenant {
    let admin = p.admin_token.clone();
    let (_, t) = send(p, &admin, Method::POST, "/api/v1/tenants", Some(json!({"name": name}))).await;
    let id = t["id"].as_str().unwrap().to_string();
    send(
        p,
        &admin,
        Method::PUT,
        &format!("/api/v1/tenants/{id}/quota"),
        Some(json!({"hard": {"requests.cpu": "4"}})),
    )
    .await;
    let (_, project) = send(
        p,
        &admin,
        Method::POST,
        &format!("/api/v1/tenants/{id}/projects"),
        Some(json!({"name": "web"})),
    )
    .await;
    let project = project["id"].as_str().unwrap().to_string();
    let (_, part) = send(
        p,
        &admin,
        Method::POST,
        &format!("/api/v1/projects/{project}/partitions"),
        Some(json!({"cluster": "c1", "data_centre": "dc1"})),
    )
    .await;
    Tenant {
        id,
        project,
        partition: part["id"].as_str().unwrap().to_string(),
    }
}

async fn token(p: &Platform, tenant: &str, role: &str) -> (String, String) {
    let (status, created) = send(
        p,
        &p.admin_token,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": format!("{role} robot"), "tenant_id": tenant, "role": role})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (
        created["id"].as_str().unwrap().to_string(),
        created["secret"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_caller_of_tenant_b_gets_404_for_every_tenant_a_resource() {
    let p = Platform::start().await;
    let a = tenant(&p, "alpha").await;
    let b = tenant(&p, "beta").await;
    let admin = p.admin_token.clone();
    let (_, reservation) = send(
        &p,
        &admin,
        Method::POST,
        "/api/v1/reservations",
        Some(json!({"partition_id": a.partition, "amounts": {"requests.cpu": "1"}, "idempotency_key": "k"})),
    )
    .await;
    let (_, member) = send(
        &p,
        &admin,
        Method::POST,
        &format!("/api/v1/tenants/{}/members", a.id),
        Some(json!({"kind": "user", "subject": "ldap:ann", "role": "viewer"})),
    )
    .await;
    let (_, spec) = send(
        &p,
        &admin,
        Method::POST,
        "/api/v1/specs",
        Some(json!({"name": "small", "amounts": {"requests.cpu": "1"}})),
    )
    .await;
    let form = json!({"project_name": "web", "applicant": "Ann", "email": "ann@alpha.example", "application": "shop", "server_type": "mpp", "data_centre": "dc1", "spec_id": spec["id"], "count": 1});
    let (_, request) = send(
        &p,
        &admin,
        Method::POST,
        &format!("/api/v1/tenants/{}/requests", a.id),
        Some(form.clone()),
    )
    .await;
    let (a_token_id, _) = token(&p, &a.id, "viewer").await;
    let (_, b_admin) = token(&p, &b.id, "tenant-admin").await;
    let (_, template) = send(
        &p,
        &admin,
        Method::POST,
        "/api/v1/templates",
        Some(json!({"tenant_id": a.id, "name": "billing"})),
    )
    .await;
    let tpl = template["id"].as_str().unwrap().to_string();
    let app_spec = json!({"services": [{"name": "svc", "containers": [{"name": "c", "image": "nginx"}]}]});
    let (_, version) = send(
        &p,
        &admin,
        Method::POST,
        &format!("/api/v1/templates/{tpl}/versions"),
        Some(json!({"version": "1.0.0", "spec": app_spec})),
    )
    .await;
    let ver = version["id"].as_str().unwrap().to_string();
    send(
        &p,
        &admin,
        Method::POST,
        &format!("/api/v1/template-versions/{ver}/publish"),
        None,
    )
    .await;
    let deploy = json!({"name": "billing", "environment": "production", "template_version_id": ver, "placement": {"explicit": [{"cluster": "c1"}]}});
    let (status, app) = send(
        &p,
        &admin,
        Method::POST,
        &format!("/api/v1/tenants/{}/applications", a.id),
        Some(deploy.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let (app_id, release_id) = (
        app["id"].as_str().unwrap().to_string(),
        app["latest_release"]["id"].as_str().unwrap().to_string(),
    );

    let (r, m, q) = (
        reservation["id"].as_str().unwrap(),
        member["id"].as_str().unwrap(),
        request["id"].as_str().unwrap(),
    );
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/tenants/{}", a.id), None),
        (
            Method::PATCH,
            format!("/api/v1/tenants/{}", a.id),
            Some(json!({"display_name": "pwned"})),
        ),
        (Method::GET, format!("/api/v1/tenants/{}/projects", a.id), None),
        (
            Method::POST,
            format!("/api/v1/tenants/{}/projects", a.id),
            Some(json!({"name": "mine"})),
        ),
        (Method::GET, format!("/api/v1/projects/{}", a.project), None),
        (Method::DELETE, format!("/api/v1/projects/{}", a.project), None),
        (Method::GET, format!("/api/v1/projects/{}/partitions", a.project), None),
        (
            Method::POST,
            format!("/api/v1/projects/{}/partitions", a.project),
            Some(json!({"cluster": "c2", "data_centre": "dc1"})),
        ),
        (Method::GET, format!("/api/v1/partitions/{}", a.partition), None),
        (Method::DELETE, format!("/api/v1/partitions/{}", a.partition), None),
        (
            Method::PUT,
            format!("/api/v1/projects/{}/quota", a.project),
            Some(json!({"hard": {"requests.cpu": "1"}})),
        ),
        (
            Method::PUT,
            format!("/api/v1/partitions/{}/quota", a.partition),
            Some(json!({"hard": {"requests.cpu": "1"}})),
        ),
        (Method::GET, format!("/api/v1/tenants/{}/usage", a.id), None),
        (Method::GET, format!("/api/v1/tenants/{}/usage/history", a.id), None),
        (
            Method::POST,
            "/api/v1/reservations".into(),
            Some(json!({"partition_id": a.partition, "amounts": {"requests.cpu": "1"}, "idempotency_key": "x"})),
        ),
        (Method::GET, format!("/api/v1/reservations/{r}"), None),
        (Method::POST, format!("/api/v1/reservations/{r}/release"), None),
        (Method::GET, format!("/api/v1/tenants/{}/members", a.id), None),
        (
            Method::POST,
            format!("/api/v1/tenants/{}/members", a.id),
            Some(json!({"kind": "user", "subject": "ldap:eve", "role": "tenant-admin"})),
        ),
        (Method::DELETE, format!("/api/v1/members/{m}"), None),
        (Method::POST, format!("/api/v1/tenants/{}/requests", a.id), Some(form)),
        (Method::GET, format!("/api/v1/requests/{q}"), None),
        (Method::POST, format!("/api/v1/requests/{q}/submit"), None),
        (Method::GET, format!("/api/v1/tenants/{}/federation", a.id), None),
        (Method::DELETE, format!("/api/v1/tokens/{a_token_id}"), None),
        (
            Method::POST,
            "/api/v1/tokens".into(),
            Some(json!({"name": "x", "tenant_id": a.id, "role": "viewer"})),
        ),
        (
            Method::POST,
            "/api/v1/templates".into(),
            Some(json!({"tenant_id": a.id, "name": "mine"})),
        ),
        (Method::GET, format!("/api/v1/templates/{tpl}"), None),
        (Method::DELETE, format!("/api/v1/templates/{tpl}"), None),
        (Method::GET, format!("/api/v1/templates/{tpl}/versions"), None),
        (
            Method::POST,
            format!("/api/v1/templates/{tpl}/versions"),
            Some(json!({"version": "2.0.0", "spec": app_spec})),
        ),
        (Method::GET, format!("/api/v1/template-versions/{ver}"), None),
        (
            Method::PATCH,
            format!("/api/v1/template-versions/{ver}"),
            Some(json!({"note": "pwned"})),
        ),
        (Method::POST, format!("/api/v1/template-versions/{ver}/publish"), None),
        (
            Method::POST,
            format!("/api/v1/template-versions/{ver}/render"),
            Some(json!({"app": "x"})),
        ),
        (Method::GET, format!("/api/v1/tenants/{}/applications", a.id), None),
        (
            Method::POST,
            format!("/api/v1/tenants/{}/applications", a.id),
            Some(deploy),
        ),
        (Method::GET, format!("/api/v1/applications/{app_id}"), None),
        (Method::DELETE, format!("/api/v1/applications/{app_id}"), None),
        (Method::GET, format!("/api/v1/applications/{app_id}/releases"), None),
        (
            Method::POST,
            format!("/api/v1/applications/{app_id}/releases"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/api/v1/applications/{app_id}/rollback"),
            Some(json!({"to_release": 1})),
        ),
        (
            Method::POST,
            format!("/api/v1/applications/{app_id}/scale"),
            Some(json!({"service": "svc", "replicas": 2})),
        ),
        (Method::GET, format!("/api/v1/applications/{app_id}/scale-events"), None),
        (Method::POST, format!("/api/v1/releases/{release_id}/approve"), None),
    ];
    for (method, path, body) in cases {
        let (status, answer) = send(&p, &b_admin, method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path} -> {answer}");
        assert!(
            !answer.to_string().contains("alpha"),
            "{method} {path} leaked: {answer}"
        );
    }
    // Lists show only the caller's own tenant.
    let (_, tenants) = send(&p, &b_admin, Method::GET, "/api/v1/tenants", None).await;
    let names: Vec<&str> = tenants["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["beta"]);
    let (_, requests) = send(&p, &b_admin, Method::GET, "/api/v1/requests", None).await;
    assert!(requests["items"].as_array().unwrap().is_empty());
    let (_, tokens) = send(&p, &b_admin, Method::GET, "/api/v1/tokens", None).await;
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["tenant_id"] == b.id.as_str())
    );
    // The untouched tenant is untouched.
    let (_, still) = send(&p, &admin, Method::GET, &format!("/api/v1/tenants/{}", a.id), None).await;
    assert_eq!(still["display_name"], "alpha");
    let (_, still) = send(&p, &admin, Method::GET, &format!("/api/v1/applications/{app_id}"), None).await;
    assert_eq!(
        still["latest_release"]["state"], "awaiting-approval",
        "B's approval attempt did nothing"
    );
}

#[tokio::test]
async fn a_token_acts_with_its_role_and_stops_at_once_when_revoked_or_expired() {
    let p = Platform::start().await;
    let b = tenant(&p, "beta").await;
    let (id, viewer) = token(&p, &b.id, "viewer").await;
    assert!(viewer.starts_with("paas_"));
    let (status, _) = send(
        &p,
        &viewer,
        Method::GET,
        &format!("/api/v1/tenants/{}/projects", b.id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(
        &p,
        &viewer,
        Method::POST,
        &format!("/api/v1/tenants/{}/projects", b.id),
        Some(json!({"name": "new"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a viewer may not create");
    let (status, _) = send(
        &p,
        &viewer,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "x", "tenant_id": b.id, "role": "tenant-admin"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "nor mint a stronger token");

    let (_, listed) = send(
        &p,
        &p.admin_token,
        Method::GET,
        &format!("/api/v1/tokens?tenant_id={}", b.id),
        None,
    )
    .await;
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap()
        .clone();
    assert!(
        entry.get("secret").is_none() && entry["last_used_at"].is_string(),
        "{entry}"
    );

    assert_eq!(
        send(
            &p,
            &p.admin_token,
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (status, problem) = send(
        &p,
        &viewer,
        Method::GET,
        &format!("/api/v1/tenants/{}/projects", b.id),
        None,
    )
    .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("urn:paas:problem:unauthenticated"))
    );

    let (expiring_id, expiring) = token(&p, &b.id, "operator").await;
    let pool = kernel::db::connect(&p.settings, "gateway").await.unwrap();
    sqlx::query("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1::uuid")
        .bind(&expiring_id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        send(&p, &expiring, Method::GET, &format!("/api/v1/tenants/{}", b.id), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}
