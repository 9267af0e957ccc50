use e2e::Platform;
use kernel::testkit::eventually;
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

    let listed: Value = p
        .admin(Method::GET, "/api/v1/clusters")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = listed["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dc1-prod", "dc2-dr"]);
    for (item, cluster) in items.iter().zip(&again) {
        assert_eq!(
            item["api_endpoint"].as_str().unwrap().trim_end_matches('/'),
            cluster.url().trim_end_matches('/')
        );
        let ready = p
            .http
            .get(format!("{}/readyz", cluster.url().trim_end_matches('/')))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
    }
    assert_eq!(items[1]["environment"], "dr");
    drop(clusters);
}

#[tokio::test]
async fn a_cluster_registered_with_a_token_shows_its_health_and_discovery_but_never_the_token() {
    let p = Platform::start().await;
    let cluster = kubesim::Cluster::start(kubesim::ClusterConfig::named("dc3-a"))
        .await
        .unwrap();
    let token = "e2e-bearer-token-that-must-not-leak";
    let body =
        serde_json::json!({"name": "dc3-a", "api_endpoint": cluster.url(), "data_centre": "dc3", "token": token});
    let created = p
        .admin(Method::POST, "/api/v1/clusters")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let text = created.text().await.unwrap();
    assert!(!text.contains(token), "{text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(created["has_credentials"], true);

    // Readable by name; Ready and discovered once the monitor has probed it.
    let shown = eventually(
        std::time::Duration::from_secs(20),
        "the cluster Ready and discovered",
        || async {
            let r = p.admin(Method::GET, "/api/v1/clusters/dc3-a").send().await.ok()?;
            let text = r.text().await.ok()?;
            assert!(!text.contains(token), "{text}");
            let v: Value = serde_json::from_str(&text).ok()?;
            (v["condition"]["status"] == "Ready" && v["discovery"]["nodes"] == 3).then_some(v)
        },
    )
    .await;
    assert_eq!(shown["id"], created["id"]);
    assert_eq!(shown["condition"]["reason"], "ProbeSucceeded");
    assert!(shown["condition"]["last_probe_time"].is_string());
    assert_eq!(shown["discovery"]["kubernetes_version"], "v1.35.0-kubesim");
    assert_eq!(shown["discovery"]["allocatable"]["cpu"], "12");
    let listed = p
        .admin(Method::GET, "/api/v1/clusters")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!listed.contains(token));

    let dcs: Value = p
        .admin(Method::GET, "/api/v1/datacenters")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dc3 = dcs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "dc3")
        .expect("dc3 listed");
    assert_eq!(dc3["state"], "Ready");
    assert_eq!(dc3["clusters"][0]["name"], "dc3-a");
    assert_eq!(dc3["clusters"][0]["condition"]["status"], "Ready");

    // A bad kubeconfig is the caller's error, naming the field.
    let bad = serde_json::json!({"name": "dc3-b", "data_centre": "dc3", "kubeconfig": "clusters: [nope"});
    let r = p
        .admin(Method::POST, "/api/v1/clusters")
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("kubeconfig"));
}

#[tokio::test]
async fn cluster_settings_round_trip_name_their_bad_fields_and_only_platform_admins_change_them() {
    let p = Platform::start().await;
    let cluster = kubesim::Cluster::start(kubesim::ClusterConfig::named("dc4-a"))
        .await
        .unwrap();
    let settings = serde_json::json!({"storage_classes": ["fast", "slow"], "default_storage_class": "fast", "node_port_range": {"first": 31000, "last": 31999}});
    let body =
        serde_json::json!({"name": "dc4-a", "api_endpoint": cluster.url(), "data_centre": "dc4", "settings": settings});
    let created = p
        .admin(Method::POST, "/api/v1/clusters")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let expected = serde_json::json!({"storage_classes": ["fast", "slow"], "default_storage_class": "fast", "ingress_classes": [], "default_ingress_class": null,
                                      "node_port_range": {"first": 31000, "last": 31999}, "registry_mirror": null});
    assert_eq!(created["settings"], expected);
    let read: Value = p
        .admin(Method::GET, "/api/v1/clusters/dc4-a")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["settings"], expected);

    // Replaced: what is left out goes back to its default.
    let replaced = p
        .admin(Method::PUT, "/api/v1/clusters/dc4-a/settings")
        .json(&serde_json::json!({"ingress_classes": ["nginx", "internal"], "default_ingress_class": "nginx"}))
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), StatusCode::OK);
    let replaced: Value = replaced.json().await.unwrap();
    assert_eq!(
        replaced["settings"]["ingress_classes"],
        serde_json::json!(["nginx", "internal"])
    );
    assert_eq!(replaced["settings"]["storage_classes"], serde_json::json!([]));
    assert_eq!(
        replaced["settings"]["node_port_range"],
        serde_json::json!({"first": 30000, "last": 32767})
    );
    let listed: Value = p
        .admin(Method::GET, "/api/v1/clusters")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let item = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "dc4-a")
        .unwrap()
        .clone();
    assert_eq!(item["settings"], replaced["settings"]);

    // Bad input: 400 naming the field, nothing changed.
    for (body, field) in [
        (
            serde_json::json!({"node_port_range": {"first": 32000, "last": 31000}}),
            "node_port_range.first",
        ),
        (
            serde_json::json!({"node_port_range": {"first": 30000, "last": 70000}}),
            "node_port_range.last",
        ),
        (
            serde_json::json!({"node_port_range": {"first": 0, "last": 100}}),
            "node_port_range.first",
        ),
        (
            serde_json::json!({"storage_classes": ["fast"], "default_storage_class": "gold"}),
            "default_storage_class",
        ),
        (
            serde_json::json!({"ingress_classes": ["nginx", "Not A Class"]}),
            "ingress_classes[1]",
        ),
    ] {
        let r = p
            .admin(Method::PUT, "/api/v1/clusters/dc4-a/settings")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["field"], field, "{problem}");
    }
    let bad_registration = serde_json::json!({"name": "dc4-b", "api_endpoint": cluster.url(), "data_centre": "dc4", "settings": {"storage_classes": ["a", "a"]}});
    let r = p
        .admin(Method::POST, "/api/v1/clusters")
        .json(&bad_registration)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "settings.storage_classes[1]");
    let unchanged: Value = p
        .admin(Method::GET, "/api/v1/clusters/dc4-a")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unchanged["settings"], replaced["settings"]);

    // A tenant administrator may read clusters but not change their settings.
    let t: Value = p
        .admin(Method::POST, "/api/v1/tenants")
        .json(&serde_json::json!({"name": "acme"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token: Value = p
        .admin(Method::POST, "/api/v1/tokens")
        .json(&serde_json::json!({"name": "ta", "tenant_id": t["id"], "role": "tenant-admin"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = token["secret"].as_str().unwrap();
    let denied = p
        .http
        .put(format!("{}/api/v1/clusters/dc4-a/settings", p.url))
        .bearer_auth(secret)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let read = p
        .http
        .get(format!("{}/api/v1/clusters/dc4-a", p.url))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let unchanged: Value = p
        .admin(Method::GET, "/api/v1/clusters/dc4-a")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unchanged["settings"], replaced["settings"]);
}
