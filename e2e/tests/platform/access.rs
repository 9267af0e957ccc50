//! Access control through the gateway: the authorisation matrix over every
//! route, and the audit log.

use e2e::Platform;
use gateway::rbac::{Permission, rule};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// How a caller of the matrix authenticates.
enum Credential<'a> {
    Bearer(&'a str),
    /// A browser session: its cookie and CSRF token.
    Session(&'a str, &'a str),
}

async fn call(p: &Platform, credential: Option<&Credential<'_>>, method: &str, path: &str) -> StatusCode {
    let mut r = p.anonymous(Method::from_bytes(method.as_bytes()).unwrap(), path);
    match credential {
        Some(Credential::Bearer(b)) => r = r.bearer_auth(b),
        Some(Credential::Session(cookie, csrf)) => r = r.header("cookie", *cookie).header("x-csrf-token", *csrf),
        None => {}
    }
    if method != "GET" && method != "DELETE" {
        r = r.json(&json!({}));
    }
    r.send().await.unwrap().status()
}

async fn token(p: &Platform, tenant: &str, role: &str) -> String {
    let created: Value = p
        .admin(Method::POST, "/api/v1/tokens")
        .json(&json!({"name": role, "tenant_id": tenant, "role": role}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["secret"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_route_allows_and_denies_exactly_as_its_rule_says() {
    let p = Platform::start().await;
    let t: Value = p
        .admin(Method::POST, "/api/v1/tenants")
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tenant = t["id"].as_str().unwrap();
    let viewer = token(&p, tenant, "viewer").await;
    let developer = token(&p, tenant, "developer").await;
    let operator = token(&p, tenant, "operator").await;
    let tenant_admin = token(&p, tenant, "tenant-admin").await;
    // A project-scoped token acts as a viewer of its tenant.
    let project: Value = p
        .admin(Method::POST, &format!("/api/v1/tenants/{tenant}/projects"))
        .json(&json!({"name": "web"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let scoped: Value = p
        .admin(Method::POST, "/api/v1/tokens")
        .json(&json!({"name": "scoped", "tenant_id": tenant, "project_id": project["id"], "role": "operator"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let scoped = scoped["secret"].as_str().unwrap().to_string();
    // The break-glass administrator through a browser session.
    let login = p
        .anonymous(Method::POST, "/api/v1/login/local")
        .json(&json!({"username": "admin", "password": e2e::LOCAL_ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = login.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let some_id = "018f0000-0000-7000-8000-000000000000";
    // Every route the served OpenAPI document lists.
    let doc: Value = p
        .anonymous(Method::GET, "/api/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut routes = Vec::new();
    for (route, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.push((method.to_uppercase(), route.clone()));
        }
    }
    assert_eq!(routes.len(), gateway::route_table().len());
    for (method, route) in &routes {
        let (method, route) = (method.as_str(), route.as_str());
        let path = route.replace("{id}", some_id).replace("{step}", "submit");
        let rule = rule(method, route).unwrap_or_else(|| panic!("{method} {route} has no row in the access table"));
        if route == "/api/v1/logout" || route == "/api/v1/logout/everywhere" {
            // They end the sessions the matrix itself uses; sessions.rs covers them.
            continue;
        }
        let anonymous = call(&p, None, method, &path).await;
        if rule == Permission::Public {
            assert_ne!(anonymous, StatusCode::UNAUTHORIZED, "anonymous {method} {route}");
        } else {
            assert_eq!(anonymous, StatusCode::UNAUTHORIZED, "anonymous {method} {route}");
        }
        use kernel::caller::Role;
        let reads = matches!(rule, Permission::Public | Permission::Authenticated);
        for (who, credential, allowed) in [
            ("viewer", Credential::Bearer(&viewer), reads),
            ("project-scoped token", Credential::Bearer(&scoped), reads),
            (
                "developer",
                Credential::Bearer(&developer),
                reads || matches!(rule, Permission::Role(Role::Viewer | Role::Developer)),
            ),
            (
                "operator",
                Credential::Bearer(&operator),
                reads || matches!(rule, Permission::Role(Role::Operator | Role::Viewer | Role::Developer)),
            ),
            (
                "tenant admin",
                Credential::Bearer(&tenant_admin),
                rule != Permission::PlatformAdmin,
            ),
            ("platform admin", Credential::Bearer(&p.admin_token), true),
            ("platform admin session", Credential::Session(&cookie, &csrf), true),
        ] {
            let status = call(&p, Some(&credential), method, &path).await;
            let denied = status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED;
            assert_eq!(!denied, allowed, "{who} {method} {route} -> {status}");
        }
    }
}

#[tokio::test]
async fn the_reference_page_renders_the_document() {
    let p = Platform::start().await;
    let page = p.anonymous(Method::GET, "/api/docs").send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("/api/openapi.json"));
}

#[tokio::test]
async fn writes_are_audited_with_their_outcome_and_tenant_admins_read_only_their_own() {
    let p = Platform::start().await;
    let created = p
        .admin(Method::POST, "/api/v1/tenants")
        .header("user-agent", "audit-test/1")
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    let request_id = created.headers()["x-request-id"].to_str().unwrap().to_string();
    let tenant = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other: Value = p
        .admin(Method::POST, "/api/v1/tenants")
        .json(&json!({"name": "beta"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let acme_admin = token(&p, &tenant, "tenant-admin").await;
    let acme_viewer = token(&p, &tenant, "viewer").await;
    let beta_admin = token(&p, other["id"].as_str().unwrap(), "tenant-admin").await;
    // A refused write, an anonymous write and a read.
    assert_eq!(
        call(
            &p,
            Some(&Credential::Bearer(&acme_viewer)),
            "POST",
            &format!("/api/v1/tenants/{tenant}/projects")
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&p, None, "POST", "/api/v1/tenants").await,
        StatusCode::UNAUTHORIZED
    );
    p.anonymous(Method::POST, &format!("/api/v1/tenants/{tenant}/projects"))
        .bearer_auth(&acme_admin)
        .json(&json!({"name": "web"}))
        .send()
        .await
        .unwrap();
    p.admin(Method::GET, "/api/v1/tenants").send().await.unwrap();

    let all: Value = p
        .admin(Method::GET, "/api/v1/audit")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let all = all.as_array().unwrap();
    assert!(
        all.iter()
            .all(|r| r["action"].as_str().unwrap().split(' ').next() != Some("GET")),
        "reads are not audited"
    );
    let create = all
        .iter()
        .find(|r| r["request_id"] == request_id.as_str())
        .expect("the tenant creation is on file");
    assert_eq!(
        (
            create["action"].as_str(),
            create["result"].as_str(),
            create["actor"].as_str()
        ),
        (Some("POST /api/v1/tenants"), Some("201"), Some("local:bootstrap-admin"))
    );
    assert_eq!(create["user_agent"], "audit-test/1");
    assert_eq!(create["source_ip"], "127.0.0.1");
    assert!(all.iter().any(|r| r["actor"] == "anonymous" && r["result"] == "401"));
    let refused = all
        .iter()
        .find(|r| r["result"] == "403")
        .expect("the refused write is on file");
    assert_eq!(
        (refused["tenant_id"].as_str(), refused["target"].as_str()),
        (Some(tenant.as_str()), Some(format!("id={tenant}").as_str()))
    );

    let own: Value = p
        .anonymous(Method::GET, "/api/v1/audit")
        .bearer_auth(&acme_admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let own = own.as_array().unwrap();
    assert!(
        !own.is_empty() && own.iter().all(|r| r["tenant_id"] == tenant.as_str()),
        "{own:?}"
    );
    let theirs: Value = p
        .anonymous(Method::GET, "/api/v1/audit")
        .bearer_auth(&beta_admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        theirs
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["tenant_id"] != tenant.as_str())
    );
    assert_eq!(
        p.anonymous(Method::GET, "/api/v1/audit")
            .bearer_auth(&acme_viewer)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );

    let csv = p
        .admin(Method::GET, "/api/v1/audit?format=csv&action=POST%20/api/v1/tenants")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    assert!(
        text.starts_with("id,at,actor,tenant_id,action,target,request_id"),
        "{text}"
    );
    assert!(text.contains(&request_id));
}
