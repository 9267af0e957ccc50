//! Templates, their versions and the catalog through the gateway: drafts are
//! edited, published versions are immutable, specs are checked when saved
//! (naming the field), rendering previews the objects, and one tenant never
//! sees another's templates.

use e2e::Platform;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn send(p: &Platform, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut r = p.admin(method, path);
    if let Some(body) = body {
        r = r.json(&body);
    }
    let r = r.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn web_spec(image: &str) -> Value {
    json!({
        "parameters": [{"name": "replicas", "type": "integer", "default": 2, "minimum": 1, "maximum": 10}],
        "services": [{
            "name": "web",
            "replicas": "${replicas}",
            "containers": [{"name": "web", "image": image, "resources": {"cpu_request": "100m"}, "ports": [{"name": "http", "container_port": 8080}]}],
            "ingress": [{"host": "web.acme.example", "port": 8080}]
        }]
    })
}

#[tokio::test]
async fn versions_are_drafted_checked_published_immutable_and_rendered() {
    let p = Platform::start().await;
    let (_, tenant) = send(&p, Method::POST, "/api/v1/tenants", Some(json!({"name": "acme"}))).await;
    let tid = tenant["id"].as_str().unwrap();
    let (status, template) = send(
        &p,
        Method::POST,
        "/api/v1/templates",
        Some(json!({"tenant_id": tid, "name": "web", "description": "the shop front"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    let template_id = template["id"].as_str().unwrap();

    // A spec with a bad quantity is refused naming the field; nothing is stored.
    let mut bad = web_spec("registry.example/web:1");
    bad["services"][0]["containers"][0]["resources"]["cpu_request"] = json!("a lot");
    let (status, problem) = send(
        &p,
        Method::POST,
        &format!("/api/v1/templates/{template_id}/versions"),
        Some(json!({"version": "1.0.0", "spec": bad})),
    )
    .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("spec.services[0].containers[0].resources.cpu_request")
        ),
        "{problem}"
    );
    let (status, problem) = send(
        &p,
        Method::POST,
        &format!("/api/v1/templates/{template_id}/versions"),
        Some(json!({"version": "one", "spec": web_spec("w")})),
    )
    .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("version"))
    );
    let (_, versions) = send(
        &p,
        Method::GET,
        &format!("/api/v1/templates/{template_id}/versions"),
        None,
    )
    .await;
    assert_eq!(versions["items"], json!([]), "refused drafts leave nothing behind");

    let (status, draft) = send(
        &p,
        Method::POST,
        &format!("/api/v1/templates/{template_id}/versions"),
        Some(json!({"version": "1.0.0", "note": "first", "spec": web_spec("registry.example/web:1")})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{draft}");
    assert_eq!(draft["state"], "draft");
    let vid = draft["id"].as_str().unwrap();
    let (status, _) = send(
        &p,
        Method::POST,
        &format!("/api/v1/templates/{template_id}/versions"),
        Some(json!({"version": "1.0.0", "spec": web_spec("w")})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "a version number is used once");

    // Drafts are edited; the render shows the change.
    let (status, edited) = send(
        &p,
        Method::PATCH,
        &format!("/api/v1/template-versions/{vid}"),
        Some(json!({"spec": web_spec("registry.example/web:2")})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    let (status, rendered) = send(
        &p,
        Method::POST,
        &format!("/api/v1/template-versions/{vid}/render"),
        Some(json!({"app": "shop", "parameters": {"replicas": 4}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rendered}");
    let kinds: Vec<&str> = rendered["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Service", "Deployment", "Ingress"]);
    let deployment = &rendered["objects"][1];
    assert_eq!(
        (
            deployment["metadata"]["name"].as_str(),
            deployment["spec"]["replicas"].as_u64()
        ),
        (Some("shop-web"), Some(4))
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/web:2"
    );
    assert_eq!(rendered["waves"], json!([["web"]]));
    let (status, problem) = send(
        &p,
        Method::POST,
        &format!("/api/v1/template-versions/{vid}/render"),
        Some(json!({"app": "shop", "parameters": {"replicas": 11}})),
    )
    .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("parameters.replicas"))
    );

    // Published: immutable, whatever is asked.
    let (status, published) = send(
        &p,
        Method::POST,
        &format!("/api/v1/template-versions/{vid}/publish"),
        None,
    )
    .await;
    assert_eq!(
        (status, published["state"].as_str()),
        (StatusCode::OK, Some("published"))
    );
    assert!(published["published_at"].is_string());
    let (status, problem) = send(
        &p,
        Method::PATCH,
        &format!("/api/v1/template-versions/{vid}"),
        Some(json!({"note": "sneaky"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let (status, _) = send(
        &p,
        Method::POST,
        &format!("/api/v1/template-versions/{vid}/publish"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, read) = send(&p, Method::GET, &format!("/api/v1/template-versions/{vid}"), None).await;
    assert_eq!(
        (
            read["note"].as_str(),
            read["spec"]["services"][0]["containers"][0]["image"].as_str()
        ),
        (Some("first"), Some("registry.example/web:2"))
    );

    // The database itself refuses to change a published version.
    let pool = sqlx::PgPool::connect(p.settings.database_url.expose()).await.unwrap();
    let refused = sqlx::query("UPDATE apps.template_versions SET note = 'direct' WHERE id = $1::uuid")
        .bind(vid)
        .execute(&pool)
        .await;
    assert!(
        refused.unwrap_err().to_string().contains("published"),
        "the trigger guards immutability"
    );
}

#[tokio::test]
async fn the_catalog_is_shared_and_tenant_templates_are_not() {
    let p = Platform::start().await;
    let mut tenants = Vec::new();
    for name in ["acme", "globex"] {
        let (_, t) = send(&p, Method::POST, "/api/v1/tenants", Some(json!({"name": name}))).await;
        tenants.push(t["id"].as_str().unwrap().to_string());
    }
    let (_, mysql) = send(
        &p,
        Method::POST,
        "/api/v1/templates",
        Some(json!({"name": "mysql", "description": "a managed MySQL"})),
    )
    .await;
    let (_, private) = send(
        &p,
        Method::POST,
        "/api/v1/templates",
        Some(json!({"tenant_id": tenants[0], "name": "billing"})),
    )
    .await;
    let (_, version) = send(
        &p,
        Method::POST,
        &format!("/api/v1/templates/{}/versions", private["id"].as_str().unwrap()),
        Some(json!({"version": "0.1.0", "spec": web_spec("b")})),
    )
    .await;

    // A developer of globex: sees the catalog, not acme's template or version.
    let (_, token) = send(
        &p,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "dev", "tenant_id": tenants[1], "role": "developer"})),
    )
    .await;
    let token = token["secret"].as_str().unwrap().to_string();
    let as_globex =
        |method: Method, path: String| p.http.request(method, format!("{}{path}", p.url)).bearer_auth(&token);
    let listed: Value = as_globex(Method::GET, "/api/v1/templates".into())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mysql"]);
    for path in [
        format!("/api/v1/templates/{}", private["id"].as_str().unwrap()),
        format!("/api/v1/template-versions/{}", version["id"].as_str().unwrap()),
    ] {
        assert_eq!(
            as_globex(Method::GET, path).send().await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
    }
    let r = as_globex(
        Method::POST,
        format!("/api/v1/template-versions/{}/publish", version["id"].as_str().unwrap()),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "no write across tenants either");
    // Catalog versions are the platform's to write.
    let r = as_globex(
        Method::POST,
        format!("/api/v1/templates/{}/versions", mysql["id"].as_str().unwrap()),
    )
    .json(&json!({"version": "8.0.0", "spec": web_spec("mysql:8")}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}
