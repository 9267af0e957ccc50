//! Partitions reach the member cluster: tenancy -> event -> federation ->
//! server-side apply into a kubesim cluster.

use std::time::Duration;

use e2e::Platform;
use kernel::testkit::eventually;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn a_partition_becomes_a_namespace_with_quota_limits_and_policy_in_its_cluster_and_goes_away_with_it() {
    let p = Platform::start().await;
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
    let tid = t["id"].as_str().unwrap();
    p.admin(Method::PUT, &format!("/api/v1/tenants/{tid}/quota"))
        .json(&json!({"hard": {"requests.cpu": "8"}}))
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
    let part: Value = p
        .admin(
            Method::POST,
            &format!("/api/v1/projects/{}/partitions", project["id"].as_str().unwrap()),
        )
        .json(&json!({"cluster": "dc1-prod", "data_centre": "dc1", "network_policy": "deny-all"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pid = part["id"].as_str().unwrap();
    let limit_range = json!({"container": {"defaultRequest": {"cpu": "100m"}, "default": {"cpu": "500m"}}});
    let set = p
        .admin(Method::PUT, &format!("/api/v1/partitions/{pid}/quota"))
        .json(&json!({"hard": {"requests.cpu": "2", "pods": "10"}, "limit_range": limit_range}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::NO_CONTENT);

    let get = |path: String| {
        let http = p.http.clone();
        async move {
            let r = http.get(path).send().await.ok()?;
            if r.status() == StatusCode::OK {
                r.json::<Value>().await.ok()
            } else {
                None
            }
        }
    };
    let quota = eventually(Duration::from_secs(20), "the ResourceQuota in the cluster", || {
        let url = format!("{cluster}/api/v1/namespaces/acme-web/resourcequotas/paas-quota");
        async move { get(url).await.filter(|q| q["spec"]["hard"]["requests.cpu"] == "2") }
    })
    .await;
    assert_eq!(quota["spec"]["hard"]["pods"], "10");
    assert_eq!(quota["metadata"]["managedFields"][0]["manager"], "paas-federation");
    let ns = get(format!("{cluster}/api/v1/namespaces/acme-web"))
        .await
        .expect("the namespace");
    assert_eq!(ns["metadata"]["labels"]["paas.io/partition"], pid);
    let limits = get(format!("{cluster}/api/v1/namespaces/acme-web/limitranges/paas-limits"))
        .await
        .expect("the LimitRange");
    assert_eq!(limits["spec"]["limits"][0]["default"]["cpu"], "500m");
    let policy = get(format!(
        "{cluster}/apis/networking.k8s.io/v1/namespaces/acme-web/networkpolicies/paas-deny-all"
    ))
    .await
    .expect("the NetworkPolicy");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));

    assert_eq!(
        p.admin(Method::DELETE, &format!("/api/v1/partitions/{pid}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    eventually(Duration::from_secs(20), "the namespace to go", || {
        let url = format!("{cluster}/api/v1/namespaces/acme-web");
        let http = p.http.clone();
        async move {
            let r = http.get(url).send().await.ok()?;
            // Gone, or terminating (deletionTimestamp set) as Kubernetes does.
            (r.status() == StatusCode::NOT_FOUND
                || r.json::<Value>().await.ok()?["metadata"]["deletionTimestamp"].is_string())
            .then_some(())
        }
    })
    .await;
    drop(clusters);
}

#[tokio::test]
async fn the_quota_usage_observed_in_the_cluster_reaches_tenancy_at_each_resync() {
    let p = Platform::start_with_env(
        &[
            ("PAAS_FEDERATION_RESYNC_PERIOD", "300ms"),
            ("PAAS_FEDERATION_RECONCILE_POLL", "100ms"),
        ],
        |_| {},
    )
    .await;
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
        .json(&json!({"hard": {"requests.cpu": "8", "pods": "20"}}))
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
    let part: Value = p
        .admin(
            Method::POST,
            &format!("/api/v1/projects/{}/partitions", project["id"].as_str().unwrap()),
        )
        .json(&json!({"cluster": "dc1-prod", "data_centre": "dc1", "network_policy": "deny-all"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pid = part["id"].as_str().unwrap().to_string();
    let set = p
        .admin(Method::PUT, &format!("/api/v1/partitions/{pid}/quota"))
        .json(&json!({"hard": {"requests.cpu": "2", "pods": "10"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::NO_CONTENT);
    eventually(Duration::from_secs(20), "the ResourceQuota in the cluster", || {
        let http = p.http.clone();
        let url = format!("{cluster}/api/v1/namespaces/acme-web/resourcequotas/paas-quota");
        async move {
            http.get(url)
                .send()
                .await
                .ok()?
                .json::<Value>()
                .await
                .ok()
                .filter(|q| q["spec"]["hard"]["requests.cpu"] == "2")
        }
    })
    .await;

    // A workload someone runs in the namespace uses part of the quota.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "worker", "namespace": "acme-web"},
                     "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "500m"}}}]}});
    let created = p
        .http
        .post(format!("{cluster}/api/v1/namespaces/acme-web/pods"))
        .json(&pod)
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.text().await.unwrap());

    let observed = eventually(Duration::from_secs(20), "the observed usage in tenancy", || {
        let (p, tid, pid) = (&p, tid.clone(), pid.clone());
        async move {
            let usage: Value = p
                .admin(Method::GET, &format!("/api/v1/tenants/{tid}/usage"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let seen = usage["observed"][&pid].clone();
            (seen["requests.cpu"] == "500m").then_some(seen)
        }
    })
    .await;
    assert_eq!(observed["pods"], "1");
    drop(clusters);
}

#[tokio::test]
async fn pull_secrets_reach_the_partitions_namespace_and_their_passwords_are_never_returned() {
    let vars = [
        ("PAAS_FEDERATION_RECONCILE_POLL", "100ms"),
        ("PAAS_FEDERATION_REGISTRY_SERVER", "registry.paas.example"),
        ("PAAS_FEDERATION_REGISTRY_USERNAME", "platform"),
        ("PAAS_FEDERATION_REGISTRY_PASSWORD", "platform-password-never-shown"),
    ];
    let p = Platform::start_with_env(&vars, |_| {}).await;
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
    let tid = t["id"].as_str().unwrap();
    let project: Value = p
        .admin(Method::POST, &format!("/api/v1/tenants/{tid}/projects"))
        .json(&json!({"name": "web"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let part: Value = p
        .admin(
            Method::POST,
            &format!("/api/v1/projects/{}/partitions", project["id"].as_str().unwrap()),
        )
        .json(&json!({"cluster": "dc1-prod", "data_centre": "dc1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pid = part["id"].as_str().unwrap().to_string();
    let password = "tenant-password-never-shown";
    let path = format!("/api/v1/partitions/{pid}/pull-secrets/harbor");
    let body = json!({"server": "harbor.acme.example", "username": "robot", "password": password});
    // Federation learns of the partition from tenancy's event: until then it is not found.
    let text = eventually(Duration::from_secs(20), "the pull secret accepted", || async {
        let r = p.admin(Method::PUT, &path).json(&body).send().await.ok()?;
        (r.status() == StatusCode::OK).then_some(())?;
        r.text().await.ok()
    })
    .await;
    assert!(!text.contains(password), "{text}");
    let put: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (
            put["name"].as_str(),
            put["secret_name"].as_str(),
            put["username"].as_str()
        ),
        (Some("harbor"), Some("paas-pull-harbor"), Some("robot"))
    );
    let listed = p
        .admin(Method::GET, &format!("/api/v1/partitions/{pid}/pull-secrets"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !listed.contains(password) && !listed.contains("platform-password"),
        "{listed}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&listed).unwrap()["items"][0]["server"],
        "harbor.acme.example"
    );

    // In the cluster: both Secrets, listed by the namespace's default ServiceAccount.
    let get = |url: String| {
        let http = p.http.clone();
        async move {
            let r = http.get(url).send().await.ok()?;
            if r.status() == StatusCode::OK {
                r.json::<Value>().await.ok()
            } else {
                None
            }
        }
    };
    let account = eventually(
        Duration::from_secs(20),
        "the default ServiceAccount listing both",
        || {
            let url = format!("{cluster}/api/v1/namespaces/acme-web/serviceaccounts/default");
            async move {
                get(url)
                    .await
                    .filter(|a| a["imagePullSecrets"].as_array().is_some_and(|l| l.len() == 2))
            }
        },
    )
    .await;
    assert_eq!(
        account["imagePullSecrets"],
        json!([{"name": "paas-registry"}, {"name": "paas-pull-harbor"}])
    );
    let secret = get(format!("{cluster}/api/v1/namespaces/acme-web/secrets/paas-pull-harbor"))
        .await
        .expect("the tenant's Secret");
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    assert!(
        get(format!("{cluster}/api/v1/namespaces/acme-web/secrets/paas-registry"))
            .await
            .is_some(),
        "the platform registry's Secret"
    );

    // Bad input names the field; a developer may not add credentials.
    let bad = p
        .admin(Method::PUT, &path)
        .json(&json!({"server": "has space", "username": "robot", "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(bad.json::<Value>().await.unwrap()["field"], "server");
    let dev: Value = p
        .admin(Method::POST, "/api/v1/tokens")
        .json(&json!({"name": "dev", "tenant_id": tid, "role": "developer"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let by_developer = p
        .http
        .put(format!("{}{path}", p.url))
        .bearer_auth(dev["secret"].as_str().unwrap())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(by_developer.status(), StatusCode::FORBIDDEN);

    // Removed: its Secret leaves the cluster, the platform's stays.
    assert_eq!(
        p.admin(Method::DELETE, &path).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    eventually(Duration::from_secs(20), "the removed Secret deleted", || {
        let url = format!("{cluster}/api/v1/namespaces/acme-web/secrets/paas-pull-harbor");
        let http = p.http.clone();
        async move { (http.get(url).send().await.ok()?.status() == StatusCode::NOT_FOUND).then_some(()) }
    })
    .await;
    assert!(
        get(format!("{cluster}/api/v1/namespaces/acme-web/secrets/paas-registry"))
            .await
            .is_some()
    );
    assert_eq!(
        p.admin(Method::DELETE, &path).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    drop(clusters);
}
