//! Partitions reach the member cluster: tenancy -> event -> federation ->
//! server-side apply into a kubesim cluster.

use std::time::Duration;

use e2e::Platform;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn a_partition_becomes_a_namespace_with_quota_limits_and_policy_in_its_cluster_and_goes_away_with_it() {
    let p = Platform::start().await;
    let key = kernel::caller::CallerKey::new(p.settings.caller_key.clone());
    let clusters = paas::member_clusters::start(&key, p.stack.service("federation").unwrap()).await.unwrap();
    let cluster = clusters[0].url().trim_end_matches('/').to_string();

    let t: Value = p.admin(Method::POST, "/api/v1/tenants").json(&json!({"name": "acme"})).send().await.unwrap().json().await.unwrap();
    let tid = t["id"].as_str().unwrap();
    p.admin(Method::PUT, &format!("/api/v1/tenants/{tid}/quota")).json(&json!({"hard": {"requests.cpu": "8"}})).send().await.unwrap();
    let project: Value = p.admin(Method::POST, &format!("/api/v1/tenants/{tid}/projects")).json(&json!({"name": "web"})).send().await.unwrap().json().await.unwrap();
    let part: Value = p
        .admin(Method::POST, &format!("/api/v1/projects/{}/partitions", project["id"].as_str().unwrap()))
        .json(&json!({"cluster": "dc1-prod", "data_centre": "dc1", "network_policy": "deny-all"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pid = part["id"].as_str().unwrap();
    let limit_range = json!({"container": {"defaultRequest": {"cpu": "100m"}, "default": {"cpu": "500m"}}});
    let set = p.admin(Method::PUT, &format!("/api/v1/partitions/{pid}/quota")).json(&json!({"hard": {"requests.cpu": "2", "pods": "10"}, "limit_range": limit_range})).send().await.unwrap();
    assert_eq!(set.status(), StatusCode::NO_CONTENT);

    let get = |path: String| {
        let http = p.http.clone();
        async move {
            let r = http.get(path).send().await.ok()?;
            if r.status() == StatusCode::OK { r.json::<Value>().await.ok() } else { None }
        }
    };
    let quota = Platform::eventually(Duration::from_secs(20), "the ResourceQuota in the cluster", || {
        let url = format!("{cluster}/api/v1/namespaces/acme-web/resourcequotas/paas-quota");
        async move { get(url).await.filter(|q| q["spec"]["hard"]["requests.cpu"] == "2") }
    })
    .await;
    assert_eq!(quota["spec"]["hard"]["pods"], "10");
    assert_eq!(quota["metadata"]["managedFields"][0]["manager"], "paas-federation");
    let ns = get(format!("{cluster}/api/v1/namespaces/acme-web")).await.expect("the namespace");
    assert_eq!(ns["metadata"]["labels"]["paas.io/partition"], pid);
    let limits = get(format!("{cluster}/api/v1/namespaces/acme-web/limitranges/paas-limits")).await.expect("the LimitRange");
    assert_eq!(limits["spec"]["limits"][0]["default"]["cpu"], "500m");
    let policy = get(format!("{cluster}/apis/networking.k8s.io/v1/namespaces/acme-web/networkpolicies/paas-deny-all")).await.expect("the NetworkPolicy");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));

    assert_eq!(p.admin(Method::DELETE, &format!("/api/v1/partitions/{pid}")).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    Platform::eventually(Duration::from_secs(20), "the namespace to go", || {
        let url = format!("{cluster}/api/v1/namespaces/acme-web");
        let http = p.http.clone();
        async move {
            let r = http.get(url).send().await.ok()?;
            // Gone, or terminating (deletionTimestamp set) as Kubernetes does.
            (r.status() == StatusCode::NOT_FOUND || r.json::<Value>().await.ok()?["metadata"]["deletionTimestamp"].is_string()).then_some(())
        }
    })
    .await;
    drop(clusters);
}

#[tokio::test]
async fn the_quota_usage_observed_in_the_cluster_reaches_tenancy_at_each_resync() {
    let p = Platform::start_with_env(&[("PAAS_FEDERATION_RESYNC_PERIOD", "300ms"), ("PAAS_FEDERATION_RECONCILE_POLL", "100ms")], |_| {}).await;
    let key = kernel::caller::CallerKey::new(p.settings.caller_key.clone());
    let clusters = paas::member_clusters::start(&key, p.stack.service("federation").unwrap()).await.unwrap();
    let cluster = clusters[0].url().trim_end_matches('/').to_string();

    let t: Value = p.admin(Method::POST, "/api/v1/tenants").json(&json!({"name": "acme"})).send().await.unwrap().json().await.unwrap();
    let tid = t["id"].as_str().unwrap().to_string();
    p.admin(Method::PUT, &format!("/api/v1/tenants/{tid}/quota")).json(&json!({"hard": {"requests.cpu": "8", "pods": "20"}})).send().await.unwrap();
    let project: Value = p.admin(Method::POST, &format!("/api/v1/tenants/{tid}/projects")).json(&json!({"name": "web"})).send().await.unwrap().json().await.unwrap();
    let part: Value = p
        .admin(Method::POST, &format!("/api/v1/projects/{}/partitions", project["id"].as_str().unwrap()))
        .json(&json!({"cluster": "dc1-prod", "data_centre": "dc1", "network_policy": "deny-all"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pid = part["id"].as_str().unwrap().to_string();
    let set = p.admin(Method::PUT, &format!("/api/v1/partitions/{pid}/quota")).json(&json!({"hard": {"requests.cpu": "2", "pods": "10"}})).send().await.unwrap();
    assert_eq!(set.status(), StatusCode::NO_CONTENT);
    Platform::eventually(Duration::from_secs(20), "the ResourceQuota in the cluster", || {
        let http = p.http.clone();
        let url = format!("{cluster}/api/v1/namespaces/acme-web/resourcequotas/paas-quota");
        async move { http.get(url).send().await.ok()?.json::<Value>().await.ok().filter(|q| q["spec"]["hard"]["requests.cpu"] == "2") }
    })
    .await;

    // A workload someone runs in the namespace uses part of the quota.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "worker", "namespace": "acme-web"},
                     "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "500m"}}}]}});
    let created = p.http.post(format!("{cluster}/api/v1/namespaces/acme-web/pods")).json(&pod).send().await.unwrap();
    assert!(created.status().is_success(), "{}", created.text().await.unwrap());

    let observed = Platform::eventually(Duration::from_secs(20), "the observed usage in tenancy", || {
        let (p, tid, pid) = (&p, tid.clone(), pid.clone());
        async move {
            let usage: Value = p.admin(Method::GET, &format!("/api/v1/tenants/{tid}/usage")).send().await.ok()?.json().await.ok()?;
            let seen = usage["observed"][&pid].clone();
            (seen["requests.cpu"] == "500m").then_some(seen)
        }
    })
    .await;
    assert_eq!(observed["pods"], "1");
    drop(clusters);
}
