//! Bindings through the gateway: tenancy's quota admits or refuses them
//! (422, nothing applied), federation applies them into the partition's
//! namespace of a kubesim cluster and reports them Healthy; another tenant
//! sees none of it.

use std::time::Duration;

use e2e::Platform;
use kernel::testkit::eventually;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn app(replicas: u32) -> Value {
    json!([
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop"},
         "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "shop"}},
                  "template": {"metadata": {"labels": {"app": "shop"}},
                               "spec": {"containers": [{"name": "shop", "image": "nginx", "resources": {"requests": {"cpu": "500m"}}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop"}, "spec": {"selector": {"app": "shop"}, "ports": [{"port": 80}]}}
    ])
}

#[tokio::test]
async fn a_binding_within_quota_is_applied_and_healthy_one_over_it_is_refused_with_nothing_applied() {
    let p = Platform::start_with_env(&[("PAAS_FEDERATION_RECONCILE_POLL", "100ms")], |_| {}).await;
    let key = kernel::caller::CallerKey::new(p.settings.caller_key.clone());
    let clusters = paas::member_clusters::start(&key, p.stack.service("federation").unwrap())
        .await
        .unwrap();
    let cluster = clusters[0].url().trim_end_matches('/').to_string();

    let t: Value = p
        .admin(Method::POST, "/api/v1/tenants")
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tid = t["id"].as_str().unwrap().to_string();
    p.admin(Method::PUT, &format!("/api/v1/tenants/{tid}/quota"))
        .json(&json!({"hard": {"requests.cpu": "2"}}))
        .send()
        .await
        .unwrap();
    let project: Value = p
        .admin(Method::POST, &format!("/api/v1/tenants/{tid}/projects"))
        .json(&json!({"name": "web"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    p.admin(
        Method::POST,
        &format!("/api/v1/projects/{}/partitions", project["id"].as_str().unwrap()),
    )
    .json(&json!({"cluster": "dc1-prod", "data_centre": "dc1"}))
    .send()
    .await
    .unwrap();
    // Federation learns of the partition from tenancy's event and makes the namespace.
    eventually(Duration::from_secs(20), "the namespace", || {
        let http = p.http.clone();
        let url = format!("{cluster}/api/v1/namespaces/acme-web");
        async move { (http.get(url).send().await.ok()?.status() == StatusCode::OK).then_some(()) }
    })
    .await;
    let placement = json!({"explicit": [{"cluster": "dc1-prod"}]});

    // 5 x 500m is over the tenant's 2 cpu: refused, and nothing reaches the cluster.
    let refused = p
        .admin(Method::POST, &format!("/api/v1/tenants/{tid}/bindings"))
        .json(&json!({"name": "shop", "objects": app(5), "placement": placement}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("requests.cpu"),
        "{problem}"
    );
    // Refused at admission, so nothing was stored to propagate (the list below
    // is empty); the Deployment's generation after the admitted binding
    // proves no earlier version ever reached the cluster.
    let absent = p
        .http
        .get(format!("{cluster}/apis/apps/v1/namespaces/acme-web/deployments/shop"))
        .send()
        .await
        .unwrap();
    assert_eq!(absent.status(), StatusCode::NOT_FOUND);
    let listed: Value = p
        .admin(Method::GET, &format!("/api/v1/tenants/{tid}/bindings"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed["items"].as_array().unwrap().is_empty());

    let created = p
        .admin(Method::POST, &format!("/api/v1/tenants/{tid}/bindings"))
        .json(&json!({"name": "shop", "objects": app(2), "placement": placement}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    let b: Value = created.json().await.unwrap();
    let id = b["id"].as_str().unwrap().to_string();
    assert_eq!(b["clusters"][0]["namespace"], "acme-web");
    let healthy = eventually(Duration::from_secs(20), "Healthy", || {
        let r = p.admin(Method::GET, &format!("/api/v1/bindings/{id}"));
        async move {
            r.send()
                .await
                .ok()?
                .json::<Value>()
                .await
                .ok()
                .filter(|b| b["health"] == "Healthy")
        }
    })
    .await;
    assert_eq!(healthy["clusters"][0]["workloads"][0]["available"], 2);
    let deployed: Value = p
        .http
        .get(format!("{cluster}/apis/apps/v1/namespaces/acme-web/deployments/shop"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deployed["metadata"]["labels"]["paas.io/binding"], id.as_str());
    assert_eq!(
        (
            deployed["metadata"]["generation"].as_i64(),
            deployed["spec"]["replicas"].as_i64()
        ),
        (Some(1), Some(2)),
        "the refused 5 replicas were never applied"
    );
    assert_eq!(
        (healthy["failback"].as_str(), healthy["priority"].as_i64()),
        (Some("manual"), Some(0)),
        "the defaults of the manual tier"
    );
    // The failback settings go beside the placement and come back in effect.
    let tiered = json!({"explicit": [{"cluster": "dc1-prod"}], "dr_tier": "auto-failover", "priority": 7});
    let updated = p
        .admin(Method::PUT, &format!("/api/v1/bindings/{id}"))
        .json(&json!({"objects": app(2), "placement": tiered}))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(
        (updated["failback"].as_str(), updated["priority"].as_i64()),
        (Some("automatic"), Some(7)),
        "auto-failover fails back by itself: {updated}"
    );
    let listed: Value = p
        .admin(Method::GET, &format!("/api/v1/tenants/{tid}/bindings"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            listed["items"][0]["failback"].as_str(),
            listed["items"][0]["priority"].as_i64()
        ),
        (Some("automatic"), Some(7)),
        "{listed}"
    );
    let bad = p
        .admin(Method::PUT, &format!("/api/v1/bindings/{id}"))
        .json(
            &json!({"objects": app(2), "placement": {"explicit": [{"cluster": "dc1-prod"}], "failback": "sometimes"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(bad.json::<Value>().await.unwrap()["field"], "placement.failback");
    // Another tenant's administrator sees none of it.
    let other: Value = p
        .admin(Method::POST, "/api/v1/tenants")
        .json(&json!({"name": "beta"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token: Value = p
        .admin(Method::POST, "/api/v1/tokens")
        .json(&json!({"name": "beta admin", "tenant_id": other["id"], "role": "tenant-admin"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let beta = token["secret"].as_str().unwrap();
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/bindings/{id}"), None),
        (
            Method::PUT,
            format!("/api/v1/bindings/{id}"),
            Some(json!({"objects": app(1), "placement": placement})),
        ),
        (Method::DELETE, format!("/api/v1/bindings/{id}"), None),
        (Method::GET, format!("/api/v1/tenants/{tid}/bindings"), None),
        (
            Method::POST,
            format!("/api/v1/tenants/{tid}/bindings"),
            Some(json!({"name": "x", "objects": app(1), "placement": placement})),
        ),
    ] {
        let mut r = p.anonymous(method.clone(), &path).bearer_auth(beta);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }

    assert_eq!(
        p.admin(Method::DELETE, &format!("/api/v1/bindings/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    eventually(Duration::from_secs(20), "the deployment gone", || {
        let http = p.http.clone();
        let url = format!("{cluster}/apis/apps/v1/namespaces/acme-web/deployments/shop");
        async move {
            let r = http.get(url).send().await.ok()?;
            (r.status() == StatusCode::NOT_FOUND
                || r.json::<Value>().await.ok()?["metadata"]["deletionTimestamp"].is_string())
            .then_some(())
        }
    })
    .await;
    drop(clusters);
}
