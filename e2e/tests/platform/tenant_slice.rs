use std::time::Duration;

use e2e::Platform;
use kernel::testkit::eventually;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn a_tenant_created_at_the_gateway_is_stored_read_back_and_learned_by_federation() {
    let p = Platform::start().await;
    let created = p
        .admin(Method::POST, "/api/v1/tenants")
        .json(&json!({"name": "acme", "display_name": "ACME Corp", "contact": "ops@acme.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let tenant: Value = created.json().await.unwrap();
    let id = tenant["id"].as_str().unwrap().to_string();
    assert_eq!(tenant["name"], "acme");
    assert_eq!(tenant["status"], "active");

    let read: Value = p
        .admin(Method::GET, &format!("/api/v1/tenants/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read, tenant);

    // tenancy -> outbox -> relay -> JetStream -> federation's inbox.
    let known: Value = eventually(Duration::from_secs(15), "federation learning of the tenant", || async {
        let r = p
            .admin(Method::GET, &format!("/api/v1/tenants/{id}/federation"))
            .send()
            .await
            .unwrap();
        (r.status() == StatusCode::OK).then_some(r.json().await.unwrap())
    })
    .await;
    assert_eq!(known["tenant_id"], id.as_str());
    assert_eq!(known["name"], "acme");
}

#[tokio::test]
async fn tenants_list_in_pages_and_filter_by_name() {
    let p = Platform::start().await;
    for name in ["alpha", "beta", "bravo"] {
        let r = p
            .admin(Method::POST, "/api/v1/tenants")
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let first: Value = p
        .admin(Method::GET, "/api/v1/tenants?limit=2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second: Value = p
        .admin(Method::GET, &format!("/api/v1/tenants?limit=2&cursor={cursor}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta", "bravo"]);
    assert!(second.get("next_cursor").is_none());

    let b: Value = p
        .admin(Method::GET, "/api/v1/tenants?name_prefix=b")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["beta", "bravo"]);
}

#[tokio::test]
async fn a_tenant_update_checks_its_version_and_a_delete_removes_it() {
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
    let id = t["id"].as_str().unwrap();
    let path = format!("/api/v1/tenants/{id}");

    let updated: Value = p
        .admin(Method::PATCH, &path)
        .json(&json!({"display_name": "Acme", "status": "suspended", "expected_version": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            updated["display_name"].as_str(),
            updated["status"].as_str(),
            updated["version"].as_i64()
        ),
        (Some("Acme"), Some("suspended"), Some(2))
    );

    let stale = p
        .admin(Method::PATCH, &path)
        .json(&json!({"display_name": "x", "expected_version": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    let still: Value = p.admin(Method::GET, &path).send().await.unwrap().json().await.unwrap();
    assert_eq!(still["display_name"], "Acme", "a refused update changes nothing");

    assert_eq!(
        p.admin(Method::DELETE, &path).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        p.admin(Method::GET, &path).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn clusters_register_and_list_by_data_centre() {
    let p = Platform::start().await;
    for (name, dc) in [("dc1-prod", "dc1"), ("dc2-dr", "dc2")] {
        let r = p
            .admin(Method::POST, "/api/v1/clusters")
            .json(&json!({"name": name, "api_endpoint": "https://127.0.0.1:6443", "data_centre": dc, "environment": if dc == "dc2" {"dr"} else {"production"}, "labels": {"tier": "gold"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    }
    let dc2: Value = p
        .admin(Method::GET, "/api/v1/clusters?data_centre=dc2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = dc2["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["name"], "dc2-dr");
    assert_eq!(items[0]["environment"], "dr");
    assert_eq!(items[0]["labels"]["tier"], "gold");
}

#[tokio::test]
async fn members_are_granted_listed_and_removed() {
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
    let path = format!("/api/v1/tenants/{}/members", t["id"].as_str().unwrap());
    let r = p
        .admin(Method::POST, &path)
        .json(&json!({"kind": "group", "subject": "ldap:cn=acme-ops,ou=groups,dc=acme", "role": "operator"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let m: Value = r.json().await.unwrap();
    let bad = p
        .admin(Method::POST, &path)
        .json(&json!({"kind": "user", "subject": "x", "role": "owner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let listed: Value = p
        .admin(Method::GET, &format!("{path}?kind=group"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["role"], "operator");
    let gone = p
        .admin(
            Method::DELETE,
            &format!("/api/v1/members/{}", m["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    let listed: Value = p.admin(Method::GET, &path).send().await.unwrap().json().await.unwrap();
    assert!(listed["items"].as_array().unwrap().is_empty());
}
