use e2e::Platform;
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[tokio::test]
async fn the_simulated_member_clusters_of_paas_up_are_registered_and_answer() {
    let p = Platform::start().await;
    let key = kernel::caller::CallerKey::new(p.settings.caller_key.clone());
    let federation = p.stack.service("federation").unwrap();
    let clusters = paas::member_clusters::start(&key, federation).await.unwrap();
    // A second start (paas up run again) replaces the registrations.
    let again = paas::member_clusters::start(&key, federation).await.unwrap();

    let listed: Value = p.admin(Method::GET, "/api/v1/clusters").send().await.unwrap().json().await.unwrap();
    let items = listed["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dc1-prod", "dc2-dr"]);
    for (item, cluster) in items.iter().zip(&again) {
        assert_eq!(item["api_endpoint"].as_str().unwrap().trim_end_matches('/'), cluster.url().trim_end_matches('/'));
        let ready = p.http.get(format!("{}/readyz", cluster.url().trim_end_matches('/'))).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
    }
    assert_eq!(items[1]["environment"], "dr");
    drop(clusters);
}

#[tokio::test]
async fn a_cluster_registered_with_a_token_shows_its_health_and_discovery_but_never_the_token() {
    let p = Platform::start().await;
    let cluster = kubesim::Cluster::start(kubesim::ClusterConfig::named("dc3-a")).await.unwrap();
    let token = "e2e-bearer-token-that-must-not-leak";
    let body = serde_json::json!({"name": "dc3-a", "api_endpoint": cluster.url(), "data_centre": "dc3", "token": token});
    let created = p.admin(Method::POST, "/api/v1/clusters").json(&body).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let text = created.text().await.unwrap();
    assert!(!text.contains(token), "{text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(created["has_credentials"], true);

    // Readable by name; Ready and discovered once the monitor has probed it.
    let shown = Platform::eventually(std::time::Duration::from_secs(20), "the cluster Ready and discovered", || async {
        let r = p.admin(Method::GET, "/api/v1/clusters/dc3-a").send().await.ok()?;
        let text = r.text().await.ok()?;
        assert!(!text.contains(token), "{text}");
        let v: Value = serde_json::from_str(&text).ok()?;
        (v["condition"]["status"] == "Ready" && v["discovery"]["nodes"] == 3).then_some(v)
    })
    .await;
    assert_eq!(shown["id"], created["id"]);
    assert_eq!(shown["condition"]["reason"], "ProbeSucceeded");
    assert!(shown["condition"]["last_probe_time"].is_string());
    assert_eq!(shown["discovery"]["kubernetes_version"], "v1.35.0-kubesim");
    assert_eq!(shown["discovery"]["allocatable"]["cpu"], "12");
    let listed = p.admin(Method::GET, "/api/v1/clusters").send().await.unwrap().text().await.unwrap();
    assert!(!listed.contains(token));

    let dcs: Value = p.admin(Method::GET, "/api/v1/datacenters").send().await.unwrap().json().await.unwrap();
    let dc3 = dcs["items"].as_array().unwrap().iter().find(|d| d["name"] == "dc3").expect("dc3 listed");
    assert_eq!(dc3["state"], "Ready");
    assert_eq!(dc3["clusters"][0]["name"], "dc3-a");
    assert_eq!(dc3["clusters"][0]["condition"]["status"], "Ready");

    // A bad kubeconfig is the caller's error, naming the field.
    let bad = serde_json::json!({"name": "dc3-b", "data_centre": "dc3", "kubeconfig": "clusters: [nope"});
    let r = p.admin(Method::POST, "/api/v1/clusters").json(&bad).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("kubeconfig"));
}
