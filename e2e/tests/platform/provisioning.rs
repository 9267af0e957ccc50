//! Provisioning from the request form (R1) on the two clusters of `paas up`,
//! `dc1-prod` in dc1 and `dc2-dr` in dc2: each partition in its cluster's
//! data centre, with its share of the quota, the default LimitRange and the
//! DR reserve in the member clusters at once; usage per cluster and data
//! centre; and the fault addresses `paas up` prints for a DR drill.

use std::time::Duration;

use e2e::Platform;
use kernel::testkit::eventually;
use kubesim::RunningCluster;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn send(p: &Platform, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut r = p.admin(method, path);
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
            serde_json::from_str(&text).unwrap()
        },
    )
}

/// The platform with the two clusters of `paas up`, reconciling quickly.
async fn platform(extra: &[(&str, &str)]) -> (Platform, Vec<RunningCluster>) {
    let mut vars = vec![("PAAS_FEDERATION_RECONCILE_POLL", "100ms")];
    vars.extend_from_slice(extra);
    let p = Platform::start_with_env(&vars, |_| {}).await;
    let key = kernel::caller::CallerKey::new(p.settings.caller_key.clone());
    let clusters = paas::member_clusters::start(&key, p.stack.service("federation").unwrap())
        .await
        .unwrap();
    (p, clusters)
}

/// A tenant `acme` and a spec; returns (tenant id, spec id).
async fn tenant_and_spec(p: &Platform, amounts: Value) -> (String, String) {
    let (_, tenant) = send(p, Method::POST, "/api/v1/tenants", Some(json!({"name": "acme"}))).await;
    let (status, spec) = send(
        p,
        Method::POST,
        "/api/v1/specs",
        Some(json!({"name": "app-host", "amounts": amounts})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{spec}");
    (
        tenant["id"].as_str().unwrap().to_string(),
        spec["id"].as_str().unwrap().to_string(),
    )
}

/// Files, submits and approves a request; returns its id.
async fn approved(p: &Platform, tenant: &str, spec: &str, project: &str, count: i32, dr_reserve: bool) -> String {
    let form = json!({
        "project_name": project, "applicant": "Jane Doe", "email": "jane@acme.example", "application": "billing-api",
        "server_type": "application-host", "data_centre": "dc1", "spec_id": spec, "count": count, "dr_reserve": dr_reserve
    });
    let (status, request) = send(
        p,
        Method::POST,
        &format!("/api/v1/tenants/{tenant}/requests"),
        Some(form),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    assert_eq!(request["form"]["dr_reserve"], dr_reserve);
    let id = request["id"].as_str().unwrap().to_string();
    for step in ["submit", "approve"] {
        let (status, body) = send(p, Method::POST, &format!("/api/v1/requests/{id}/{step}"), None).await;
        assert_eq!(status, StatusCode::OK, "{step}: {body}");
    }
    id
}

async fn provision(p: &Platform, request: &str, clusters: &[&str]) -> (StatusCode, Value) {
    send(
        p,
        Method::POST,
        &format!("/api/v1/requests/{request}/provision"),
        Some(json!({ "clusters": clusters })),
    )
    .await
}

/// The project's partitions by cluster.
async fn partitions(p: &Platform, tenant: &str, project: &str) -> Vec<Value> {
    let (_, projects) = send(
        p,
        Method::GET,
        &format!("/api/v1/tenants/{tenant}/projects?name_prefix={project}"),
        None,
    )
    .await;
    let pid = projects["items"][0]["id"].as_str().unwrap();
    let (_, list) = send(p, Method::GET, &format!("/api/v1/projects/{pid}/partitions"), None).await;
    let mut items = list["items"].as_array().unwrap().clone();
    items.sort_by_key(|i| i["cluster"].as_str().unwrap().to_string());
    items
}

/// `hard` and `used` of one resource at one scope of the tenant's usage.
fn line(usage: &Value, level: &str, owner_or_key: &str, resource: &str) -> (Value, Value) {
    let scope = usage["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["level"] == level && (s["owner_id"] == owner_or_key || s["key"] == owner_or_key))
        .unwrap_or_else(|| panic!("no {level} {owner_or_key} in {usage}"));
    let l = scope["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["resource"] == resource)
        .unwrap_or_else(|| panic!("no {resource} at {level} {owner_or_key}"));
    (l["hard"].clone(), l["used"].clone())
}

async fn get(p: &Platform, url: String) -> Option<Value> {
    let r = p.http.get(url).send().await.ok()?;
    if r.status() == StatusCode::OK {
        r.json().await.ok()
    } else {
        None
    }
}

async fn reserve(p: &Platform, partition: &str, amounts: Value, key: &str, failover: bool) -> (StatusCode, Value) {
    send(
        p,
        Method::POST,
        "/api/v1/reservations",
        Some(json!({"partition_id": partition, "amounts": amounts, "idempotency_key": key, "failover": failover})),
    )
    .await
}

#[tokio::test]
async fn a_request_with_a_dr_reserve_gives_each_data_centre_its_partition_quota_limits_and_reserve_at_once() {
    let (p, clusters) = platform(&[]).await;
    let spec =
        json!({"requests.cpu": "2", "limits.cpu": "4", "requests.memory": "4Gi", "limits.memory": "8Gi", "pods": "10"});
    let (tid, spec) = tenant_and_spec(&p, spec).await;
    let request = approved(&p, &tid, &spec, "billing", 2, true).await;
    let (status, done) = provision(&p, &request, &["dc1-prod", "dc2-dr"]).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "provisioned");

    // Item 10: each partition carries its own cluster's data centre.
    let parts = partitions(&p, &tid, "billing").await;
    let placed: Vec<(&str, &str)> = parts
        .iter()
        .map(|p| (p["cluster"].as_str().unwrap(), p["data_centre"].as_str().unwrap()))
        .collect();
    assert_eq!(placed, [("dc1-prod", "dc1"), ("dc2-dr", "dc2")]);

    // Item 11: 2 units in dc1 for normal work and a full copy in dc2 for
    // failover; the copy is the tenant's DR reserve.
    let (_, usage) = send(&p, Method::GET, &format!("/api/v1/tenants/{tid}/usage"), None).await;
    assert_eq!(line(&usage, "tenant", &tid, "requests.cpu").0, "8");
    assert_eq!(line(&usage, "dr_reserve", &tid, "requests.cpu").0, "4");
    assert_eq!(
        line(&usage, "project", parts[0]["project_id"].as_str().unwrap(), "pods").0,
        "40"
    );
    for part in &parts {
        let id = part["id"].as_str().unwrap();
        assert_eq!(line(&usage, "partition", id, "requests.cpu").0, "4");
        assert_eq!(line(&usage, "partition", id, "pods").0, "20");
        assert_eq!(part["limit_range"]["container"]["default"]["cpu"], "500m");
    }

    // In each member cluster the namespace gets its ResourceQuota and
    // LimitRange with the carved values, without anyone setting them.
    for cluster in &clusters {
        let base = format!("{}/api/v1/namespaces/acme-billing", cluster.url().trim_end_matches('/'));
        let (quota, limits) = eventually(
            Duration::from_secs(20),
            "the ResourceQuota and LimitRange in the cluster",
            || async {
                let quota = get(&p, format!("{base}/resourcequotas/paas-quota")).await?;
                let limits = get(&p, format!("{base}/limitranges/paas-limits")).await?;
                Some((quota, limits))
            },
        )
        .await;
        let hard = &quota["spec"]["hard"];
        assert_eq!(
            (
                &hard["requests.cpu"],
                &hard["limits.cpu"],
                &hard["requests.memory"],
                &hard["pods"]
            ),
            (&json!("4"), &json!("8"), &json!("8Gi"), &json!("20")),
            "{} {quota}",
            cluster.name()
        );
        let container = &limits["spec"]["limits"][0];
        assert_eq!(container["type"], "Container");
        assert_eq!(
            (
                &container["default"]["cpu"],
                &container["defaultRequest"]["memory"],
                &container["max"]["cpu"]
            ),
            (&json!("500m"), &json!("128Mi"), &json!("4")),
            "{limits}"
        );
        assert_eq!(container["max"]["memory"], "8Gi");
    }

    // The reserve works: normal work gets the 4 CPUs asked for, failover the rest.
    let (dc1, dc2) = (parts[0]["id"].as_str().unwrap(), parts[1]["id"].as_str().unwrap());
    let (status, held) = reserve(&p, dc1, json!({"requests.cpu": "4"}), "web-1", false).await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    let (status, refused) = reserve(&p, dc2, json!({"requests.cpu": "1"}), "web-2", false).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("kept for failover"),
        "{refused}"
    );
    let (status, moved) = reserve(&p, dc2, json!({"requests.cpu": "4"}), "failover-1", true).await;
    assert_eq!(status, StatusCode::CREATED, "{moved}");
    drop(clusters);
}

#[tokio::test]
async fn provisioning_refuses_clusters_it_cannot_carve_the_request_into_naming_the_field() {
    let (p, clusters) = platform(&[]).await;
    let (tid, spec) = tenant_and_spec(&p, json!({"requests.cpu": "2"})).await;
    let request = approved(&p, &tid, &spec, "billing", 1, true).await;
    for (targets, says) in [
        (&["dc1-prod"][..], "outside data centre dc1"),
        (&["dc2-dr"][..], "in the request's data centre dc1"),
        (&["dc1-prod", "nowhere"][..], "nowhere is not a registered cluster"),
        (&["dc1-prod", "dc1-prod", "dc2-dr"][..], "names cluster dc1-prod twice"),
    ] {
        let (status, problem) = provision(&p, &request, targets).await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("clusters")),
            "{targets:?}: {problem}"
        );
        assert!(problem["detail"].as_str().unwrap().contains(says), "{problem}");
    }
    // Nothing was provisioned by the refusals.
    let (_, still) = send(&p, Method::GET, &format!("/api/v1/requests/{request}"), None).await;
    assert_eq!(still["state"], "approved");
    let (status, done) = provision(&p, &request, &["dc1-prod", "dc2-dr"]).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    drop(clusters);
}

#[tokio::test]
async fn usage_is_reported_per_cluster_and_per_data_centre() {
    let (p, clusters) = platform(&[("PAAS_FEDERATION_RESYNC_PERIOD", "300ms")]).await;
    let (tid, spec) = tenant_and_spec(&p, json!({"requests.cpu": "2", "pods": "10"})).await;
    let request = approved(&p, &tid, &spec, "billing", 2, false).await;
    let (status, done) = provision(&p, &request, &["dc1-prod", "dc2-dr"]).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let parts = partitions(&p, &tid, "billing").await;
    let (dc1, dc2) = (parts[0]["id"].as_str().unwrap(), parts[1]["id"].as_str().unwrap());

    // 3 pods in dc1, 8 in dc2: 11 in all, never 11 in one data centre.
    let (status, held) = reserve(&p, dc1, json!({"pods": "3"}), "dc1-pods", false).await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    let (status, held) = reserve(&p, dc2, json!({"pods": "8"}), "dc2-pods", false).await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    let (_, usage) = send(&p, Method::GET, &format!("/api/v1/tenants/{tid}/usage"), None).await;
    assert_eq!(line(&usage, "tenant", &tid, "pods"), (json!("20"), json!("11")));
    assert_eq!(line(&usage, "cluster", "dc1-prod", "pods").1, "3");
    assert_eq!(line(&usage, "cluster", "dc2-dr", "pods").1, "8");
    assert_eq!(line(&usage, "data_centre", "dc1", "pods").1, "3");
    assert_eq!(line(&usage, "data_centre", "dc2", "pods").1, "8");
    assert_eq!(line(&usage, "partition", dc1, "pods"), (json!("10"), json!("3")));
    assert_eq!(line(&usage, "partition", dc2, "pods"), (json!("10"), json!("8")));

    // What the clusters report: 1 pod running in dc1, 2 in dc2.
    for (cluster, pods) in clusters.iter().zip([1, 2]) {
        for i in 0..pods {
            let half_cpu = json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "500m"}});
            let pod = json!({"apiVersion": "v1", "kind": "Pod",
                             "metadata": {"name": format!("worker-{i}"), "namespace": "acme-billing"},
                             "spec": {"containers": [{"name": "c", "image": "busybox", "resources": half_cpu}]}});
            let url = format!(
                "{}/api/v1/namespaces/acme-billing/pods",
                cluster.url().trim_end_matches('/')
            );
            // The namespace appears once federation has applied the partition.
            eventually(Duration::from_secs(20), "the pod created", || async {
                p.http
                    .post(&url)
                    .json(&pod)
                    .send()
                    .await
                    .ok()?
                    .status()
                    .is_success()
                    .then_some(())
            })
            .await;
        }
    }
    let usage = eventually(
        Duration::from_secs(20),
        "the observed usage per data centre",
        || async {
            let (_, usage) = send(&p, Method::GET, &format!("/api/v1/tenants/{tid}/usage"), None).await;
            let by_dc = &usage["observed_by_data_centre"];
            (by_dc["dc1"]["pods"] == "1" && by_dc["dc2"]["pods"] == "2").then_some(usage)
        },
    )
    .await;
    assert_eq!(usage["observed_by_data_centre"]["dc2"]["requests.cpu"], "1");
    assert_eq!(usage["observed_by_cluster"]["dc1-prod"]["pods"], "1");
    assert_eq!(usage["observed_by_cluster"]["dc2-dr"]["requests.cpu"], "1");
    assert_eq!(usage["observed"][dc2]["pods"], "2");
    drop(clusters);
}

async fn data_centre_state(p: &Platform, dc: &str) -> Option<String> {
    let (_, dcs) = send(p, Method::GET, "/api/v1/datacenters", None).await;
    dcs["items"]
        .as_array()?
        .iter()
        .find(|d| d["name"] == dc)
        .and_then(|d| d["state"].as_str().map(str::to_string))
}

async fn data_centre_becomes(p: &Platform, dc: &str, wanted: &str) {
    eventually(
        Duration::from_secs(30),
        &format!("data centre {dc} {wanted}"),
        || async { (data_centre_state(p, dc).await.as_deref() == Some(wanted)).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn the_fault_addresses_paas_up_prints_take_a_data_centre_down_and_bring_it_back() {
    let (p, clusters) = platform(&[
        ("PAAS_FEDERATION_PROBE_PERIOD", "200ms"),
        ("PAAS_FEDERATION_PROBE_TIMEOUT", "200ms"),
    ])
    .await;
    let faults = paas::member_clusters::fault_urls(&clusters);
    assert_eq!(faults.len(), 2);
    data_centre_becomes(&p, "dc1", "Ready").await;

    // What the README's drill does: curl -X POST -d '{"fault":"down"}' <dc1-prod's address>.
    let down = p
        .http
        .post(&faults[0])
        .json(&json!({"fault": "down"}))
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), StatusCode::OK);
    assert_eq!(get(&p, faults[0].clone()).await.unwrap()["fault"], "down");
    data_centre_becomes(&p, "dc1", "Lost").await;
    assert_eq!(data_centre_state(&p, "dc2").await.as_deref(), Some("Ready"));

    let back = p
        .http
        .post(&faults[0])
        .json(&json!({"fault": "recover"}))
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), StatusCode::OK);
    data_centre_becomes(&p, "dc1", "Ready").await;
    drop(clusters);
}
