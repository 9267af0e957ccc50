//! Failover through the gateway: an operator moves a manual-tier binding off
//! a cluster that went down; the persisted operation is listed with its
//! timed steps to the tenant's members and the platform administrator, not
//! to another tenant; a viewer may not trigger one.

use std::time::Duration;

use e2e::Platform;
use kernel::testkit::eventually;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

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
async fn an_operator_fails_a_binding_over_to_the_dr_cluster_and_the_operation_is_visible_to_its_tenant_only() {
    let p = Platform::start_with_env(
        &[
            ("PAAS_FEDERATION_RECONCILE_POLL", "100ms"),
            ("PAAS_FEDERATION_PROBE_PERIOD", "200ms"),
            ("PAAS_FEDERATION_PROBE_TIMEOUT", "150ms"),
        ],
        |_| {},
    )
    .await;
    let key = kernel::caller::CallerKey::new(p.settings.caller_key.clone());
    let clusters = paas::member_clusters::start(&key, p.stack.service("federation").unwrap())
        .await
        .unwrap();

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
        .json(&json!({"hard": {"requests.cpu": "4"}}))
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
    for (cluster, dc) in [("dc1-prod", "dc1"), ("dc2-dr", "dc2")] {
        let r = p
            .admin(
                Method::POST,
                &format!("/api/v1/projects/{}/partitions", project["id"].as_str().unwrap()),
            )
            .json(&json!({"cluster": cluster, "data_centre": dc}))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "partition in {cluster}: {}",
            r.text().await.unwrap()
        );
    }
    for c in &clusters {
        let url = format!("{}/api/v1/namespaces/acme-web", c.url().trim_end_matches('/'));
        eventually(Duration::from_secs(20), "the namespaces", || {
            let (http, url) = (p.http.clone(), url.clone());
            async move { (http.get(url).send().await.ok()?.status() == StatusCode::OK).then_some(()) }
        })
        .await;
    }
    let objects = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "shop"}},
                 "template": {"metadata": {"labels": {"app": "shop"}}, "spec": {"containers": [{"name": "shop", "image": "nginx", "resources": {"requests": {"cpu": "250m"}}}]}}}}]);
    let placement =
        json!({"policy": {"groups": [{"data_centres": ["dc1"]}, {"data_centres": ["dc2"]}]}, "dr_tier": "manual"});
    // Placement takes Ready clusters only: wait for the monitor's first probes.
    for name in ["dc1-prod", "dc2-dr"] {
        eventually(Duration::from_secs(20), "the cluster Ready", || {
            let r = p.admin(Method::GET, &format!("/api/v1/clusters/{name}"));
            async move {
                r.send()
                    .await
                    .ok()?
                    .json::<Value>()
                    .await
                    .ok()
                    .filter(|c| c["condition"]["status"] == "Ready")
            }
        })
        .await;
    }
    let created = p
        .admin(Method::POST, &format!("/api/v1/tenants/{tid}/bindings"))
        .json(&json!({"name": "shop", "objects": objects, "placement": placement}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    let b: Value = created.json().await.unwrap();
    let id = b["id"].as_str().unwrap().to_string();
    assert_eq!(b["clusters"][0]["cluster"], "dc1-prod", "{b}");
    assert_eq!(
        (b["failback"].as_str(), b["priority"].as_i64()),
        (Some("manual"), Some(0)),
        "the manual tier's failback: {b}"
    );
    eventually(Duration::from_secs(20), "Healthy in dc1-prod", || {
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

    let viewer = token(&p, &tid, "viewer").await;
    let operator = token(&p, &tid, "operator").await;
    clusters[0].faults().set(kubesim::Fault::Down);
    let denied = p
        .anonymous(Method::POST, &format!("/api/v1/bindings/{id}/failover"))
        .bearer_auth(&viewer)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    // Accepted once the monitor has seen dc1-prod go (before, every cluster is Ready: 400-class).
    let op: Value = eventually(Duration::from_secs(20), "the failover accepted", || {
        let r = p
            .anonymous(Method::POST, &format!("/api/v1/bindings/{id}/failover"))
            .bearer_auth(&operator)
            .json(&json!({}));
        async move {
            let r = r.send().await.ok()?;
            if r.status() != StatusCode::OK {
                assert!(r.status().is_client_error(), "{}", r.status());
                return None;
            }
            r.json::<Value>().await.ok()
        }
    })
    .await;
    assert_eq!(
        (op["kind"].as_str(), op["trigger"].as_str(), op["from_cluster"].as_str()),
        (Some("failover"), Some("operator"), Some("dc1-prod"))
    );
    // A binding made directly belongs to no application.
    assert_eq!(
        (op["binding_name"].as_str(), op.get("application")),
        (Some("shop"), None)
    );
    let done: Value = eventually(Duration::from_secs(20), "the failover available", || {
        let r = p
            .anonymous(Method::GET, &format!("/api/v1/failovers?binding_id={id}"))
            .bearer_auth(&viewer);
        async move {
            r.send().await.ok()?.json::<Value>().await.ok()?["items"]
                .as_array()?
                .first()
                .filter(|o| o["state"] == "available")
                .cloned()
        }
    })
    .await;
    assert_eq!(done["to_clusters"], json!(["dc2-dr"]));
    assert!(done["available_at"].is_string() && done["replaced_at"].is_string());
    let steps: Vec<(&str, &str)> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["at"].as_str().unwrap()))
        .collect();
    let names: Vec<&str> = steps.iter().map(|s| s.0).collect();
    assert_eq!(
        names,
        [
            "opened by an operator: failover off dc1-prod",
            "placing: 2 in dc2-dr",
            "applied: quota reserved and the new targets written",
            "available in dc2-dr"
        ]
    );
    let times: Vec<chrono::DateTime<chrono::Utc>> = steps.iter().map(|s| s.1.parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
    let dr = format!(
        "{}/apis/apps/v1/namespaces/acme-web/deployments/shop",
        clusters[1].url().trim_end_matches('/')
    );
    let deployed: Value = p.http.get(dr).send().await.unwrap().json().await.unwrap();
    assert_eq!(deployed["status"]["availableReplicas"], 2);

    let all: Value = p
        .admin(Method::GET, "/api/v1/failovers")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    let other: Value = p
        .admin(Method::POST, "/api/v1/tenants")
        .json(&json!({"name": "beta"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let beta = token(&p, other["id"].as_str().unwrap(), "tenant-admin").await;
    let theirs: Value = p
        .anonymous(Method::GET, "/api/v1/failovers")
        .bearer_auth(&beta)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(theirs["items"].as_array().unwrap().is_empty(), "{theirs}");
    let foreign = p
        .anonymous(Method::POST, &format!("/api/v1/bindings/{id}/failback"))
        .bearer_auth(&token(&p, other["id"].as_str().unwrap(), "operator").await)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    drop(clusters);
}
