//! Applications through the gateway against a kubesim cluster: a composite
//! application deploys in dependency order, upgrades, rolls back, scales and
//! is deleted; production releases wait for a tenant administrator; quota
//! refusal and node-port conflicts leave nothing behind.

use std::time::Duration;

use e2e::Platform;
use kernel::testkit::eventually;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub(crate) struct World {
    pub(crate) p: Platform,
    pub(crate) cluster: String,
    pub(crate) tenant: String,
    pub(crate) clusters: Vec<kubesim::RunningCluster>,
}

async fn world(cpu: &str) -> World {
    world_with(cpu, &[]).await
}

/// A platform with one kubesim cluster and tenant `acme` (project `web`,
/// partition on `dc1-prod`) with `cpu` of quota; `env` adds settings.
pub(crate) async fn world_with(cpu: &str, env: &[(&str, &str)]) -> World {
    let mut vars = vec![
        ("PAAS_FEDERATION_RECONCILE_POLL", "100ms"),
        ("PAAS_APPS_RELEASE_POLL", "100ms"),
    ];
    vars.extend_from_slice(env);
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
    let tenant = t["id"].as_str().unwrap().to_string();
    p.admin(Method::PUT, &format!("/api/v1/tenants/{tenant}/quota"))
        .json(&json!({"hard": {"requests.cpu": cpu}}))
        .send()
        .await
        .unwrap();
    let project: Value = p
        .admin(Method::POST, &format!("/api/v1/tenants/{tenant}/projects"))
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
    eventually(Duration::from_secs(20), "the namespace", || {
        let (http, url) = (p.http.clone(), format!("{cluster}/api/v1/namespaces/acme-web"));
        async move { (http.get(url).send().await.ok()?.status() == StatusCode::OK).then_some(()) }
    })
    .await;
    World {
        p,
        cluster,
        tenant,
        clusters,
    }
}

fn shop(tag: &str) -> Value {
    let container = |name: &str, image: String| json!({"name": name, "image": image, "resources": {"cpu_request": "100m"}, "ports": [{"name": "http", "container_port": 8080, "node_port": 0}]});
    json!({
        "parameters": [{"name": "web_replicas", "type": "integer", "default": 1, "minimum": 1}],
        "services": [
            {"name": "web", "depends_on": ["api"], "replicas": "${web_replicas}", "containers": [container("web", format!("registry.example/web:{tag}"))]},
            {"name": "api", "containers": [{"name": "api", "image": format!("registry.example/api:{tag}"), "resources": {"cpu_request": "100m"}}]}
        ]
    })
}

impl World {
    pub(crate) async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut r = self.p.admin(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn version(&self, template: &str, version: &str, spec: Value) -> String {
        let (_, v) = self
            .send(
                Method::POST,
                &format!("/api/v1/templates/{template}/versions"),
                Some(json!({"version": version, "spec": spec})),
            )
            .await;
        let id = v["id"].as_str().unwrap_or_else(|| panic!("{v}")).to_string();
        let (status, _) = self
            .send(Method::POST, &format!("/api/v1/template-versions/{id}/publish"), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        id
    }

    pub(crate) async fn kube(&self, path: &str) -> Option<Value> {
        let r = self.p.http.get(format!("{}{path}", self.cluster)).send().await.ok()?;
        if r.status() != StatusCode::OK {
            return None;
        }
        r.json().await.ok()
    }

    /// Approves `release` as a tenant administrator other than the one who
    /// made it (a fresh tenant-admin token), as four eyes require.
    pub(crate) async fn approve_as_another(&self, release: &str) -> (StatusCode, Value) {
        let (_, token) = self
            .send(
                Method::POST,
                "/api/v1/tokens",
                Some(json!({"name": "approver", "tenant_id": self.tenant, "role": "tenant-admin"})),
            )
            .await;
        let r = self
            .p
            .http
            .post(format!("{}/api/v1/releases/{release}/approve", self.p.url))
            .bearer_auth(token["secret"].as_str().unwrap_or_else(|| panic!("{token}")))
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn release_state(&self, app: &str, number: u64, state: &str) -> Value {
        eventually(
            Duration::from_secs(40),
            &format!("release {number} {state}"),
            || async move {
                let (_, a) = self
                    .send(Method::GET, &format!("/api/v1/applications/{app}"), None)
                    .await;
                let latest = &a["latest_release"];
                (latest["number"] == number && latest["state"] == state).then_some(a)
            },
        )
        .await
    }
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/acme-web/deployments";

#[tokio::test]
async fn a_composite_application_deploys_in_order_upgrades_rolls_back_scales_and_is_deleted() {
    let w = world("4").await;
    let (_, template) = w
        .send(
            Method::POST,
            "/api/v1/templates",
            Some(json!({"tenant_id": w.tenant, "name": "shop"})),
        )
        .await;
    let template = template["id"].as_str().unwrap().to_string();
    let v1 = w.version(&template, "1.0.0", shop("1")).await;
    let v2 = w.version(&template, "1.1.0", shop("2")).await;

    let deploy = json!({"name": "shop", "environment": "test", "template_version_id": v1, "placement": {"explicit": [{"cluster": "dc1-prod"}]},
                        "strategy": {"type": "rolling", "max_surge": 1, "max_unavailable": 0}});
    let (status, app) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(deploy),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(app["latest_release"]["waves"], json!([["api"], ["web"]]));
    let id = app["id"].as_str().unwrap().to_string();

    // web depends on api: when web first appears, api is already available.
    let api_when_web_appeared = eventually(Duration::from_secs(40), "web's Deployment", || async {
        w.kube(&format!("{DEPLOYMENTS}/shop-web")).await?;
        Some(w.kube(&format!("{DEPLOYMENTS}/shop-api")).await)
    })
    .await
    .expect("api exists before web");
    assert!(
        api_when_web_appeared["status"]["availableReplicas"]
            .as_i64()
            .unwrap_or(0)
            >= 1,
        "api was Available first: {}",
        api_when_web_appeared["status"]
    );
    let running = w.release_state(&id, 1, "succeeded").await;
    assert_eq!(
        (running["state"].as_str(), running["current_release"].as_u64()),
        (Some("running"), Some(1))
    );
    assert!(
        running["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["health"] == "Healthy"),
        "{running}"
    );
    let web = w.kube(&format!("{DEPLOYMENTS}/shop-web")).await.unwrap();
    assert_eq!(
        web["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    );
    let service = w.kube("/api/v1/namespaces/acme-web/services/shop-web").await.unwrap();
    assert_eq!(service["spec"]["ports"][0]["nodePort"], 30000, "drawn from the pool");

    // Upgrade to 1.1.0, then roll back to release 1.
    let (status, r2) = w
        .send(
            Method::POST,
            &format!("/api/v1/applications/{id}/releases"),
            Some(json!({"template_version_id": v2})),
        )
        .await;
    assert_eq!((status, r2["number"].as_u64()), (StatusCode::CREATED, Some(2)), "{r2}");
    let (status, _) = w
        .send(
            Method::POST,
            &format!("/api/v1/applications/{id}/releases"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "one release at a time");
    w.release_state(&id, 2, "succeeded").await;
    let image = |d: &Value| {
        d["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        image(&w.kube(&format!("{DEPLOYMENTS}/shop-web")).await.unwrap()),
        "registry.example/web:2"
    );
    let (status, r3) = w
        .send(
            Method::POST,
            &format!("/api/v1/applications/{id}/rollback"),
            Some(json!({"to_release": 1})),
        )
        .await;
    assert_eq!(
        (status, r3["rollback_of"].as_u64()),
        (StatusCode::CREATED, Some(1)),
        "{r3}"
    );
    w.release_state(&id, 3, "succeeded").await;
    assert_eq!(
        image(&w.kube(&format!("{DEPLOYMENTS}/shop-web")).await.unwrap()),
        "registry.example/web:1"
    );
    let (_, history) = w
        .send(Method::GET, &format!("/api/v1/applications/{id}/releases"), None)
        .await;
    let states: Vec<(u64, &str)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["number"].as_u64().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [(3, "succeeded"), (2, "superseded"), (1, "superseded")]);

    // Scale web; the next release keeps the scale.
    let (status, scaled) = w
        .send(
            Method::POST,
            &format!("/api/v1/applications/{id}/scale"),
            Some(json!({"service": "web", "replicas": 3})),
        )
        .await;
    assert_eq!(
        (status, scaled["replicas"]["web"].as_u64()),
        (StatusCode::OK, Some(3)),
        "{scaled}"
    );
    eventually(Duration::from_secs(20), "3 web replicas", || async {
        (w.kube(&format!("{DEPLOYMENTS}/shop-web")).await?["spec"]["replicas"] == 3).then_some(())
    })
    .await;
    let (_, events) = w
        .send(Method::GET, &format!("/api/v1/applications/{id}/scale-events"), None)
        .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1, "{events}");
    let event = &events["items"][0];
    assert_eq!(
        (
            event["service"].as_str(),
            event["to_replicas"].as_u64(),
            event["reason"].as_str(),
            event["actor"].as_str()
        ),
        (Some("web"), Some(3), Some("manual"), Some("local:bootstrap-admin"))
    );
    let (status, problem) = w
        .send(
            Method::POST,
            &format!("/api/v1/applications/{id}/scale"),
            Some(json!({"service": "db", "replicas": 3})),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("service"))
    );

    // Pods per service and cluster, a container's log, a rolling restart.
    // (The scaled-out pod must be running before its log can be read.)
    let pods = eventually(Duration::from_secs(20), "every pod ready", || async {
        let (status, pods) = w
            .send(Method::GET, &format!("/api/v1/applications/{id}/pods"), None)
            .await;
        (status == StatusCode::OK && pods["items"].as_array()?.iter().all(|p| p["ready"] == true)).then_some(pods)
    })
    .await;
    let items = pods["items"].as_array().unwrap();
    let count = |service: &str| {
        items
            .iter()
            .filter(|p| p["service"] == service && p["cluster"] == "dc1-prod" && p["namespace"] == "acme-web")
            .count()
    };
    assert_eq!((count("web"), count("api")), (3, 1), "{pods}");
    let web_pod = items.iter().find(|p| p["service"] == "web").unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, log) = w
        .send(
            Method::GET,
            &format!("/api/v1/applications/{id}/logs?service=web&cluster=dc1-prod&pod={web_pod}&tail=3"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(log["text"].as_str().unwrap().lines().count(), 3);
    assert!(log["text"].as_str().unwrap().contains(&format!("{web_pod}/web")));
    let (status, problem) = w
        .send(
            Method::GET,
            &format!("/api/v1/applications/{id}/logs?service=web&cluster=dc1-prod&pod=someone-else"),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("pod")),
        "only the application's own pods"
    );
    let (status, restarted) = w
        .send(
            Method::POST,
            &format!("/api/v1/applications/{id}/restart"),
            Some(json!({"service": "web"})),
        )
        .await;
    assert_eq!(
        (status, restarted["restarted"]["web"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{restarted}"
    );
    let web = w.kube(&format!("{DEPLOYMENTS}/shop-web")).await.unwrap();
    assert!(
        web["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string(),
        "{}",
        web["spec"]["template"]
    );

    // Stop: no pods, replicas remembered; no release meanwhile; start: back as it was.
    let (status, stopped) = w
        .send(Method::POST, &format!("/api/v1/applications/{id}/stop"), None)
        .await;
    assert_eq!(
        (status, stopped["state"].as_str()),
        (StatusCode::OK, Some("stopped")),
        "{stopped}"
    );
    eventually(Duration::from_secs(20), "no web or api replicas", || async {
        let web = w.kube(&format!("{DEPLOYMENTS}/shop-web")).await?;
        let api = w.kube(&format!("{DEPLOYMENTS}/shop-api")).await?;
        (web["spec"]["replicas"] == 0 && api["spec"]["replicas"] == 0).then_some(())
    })
    .await;
    let (status, _) = w
        .send(
            Method::POST,
            &format!("/api/v1/applications/{id}/releases"),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a stopped application is started before it is released"
    );
    let (status, started) = w
        .send(Method::POST, &format!("/api/v1/applications/{id}/start"), None)
        .await;
    assert_eq!(
        (status, started["state"].as_str()),
        (StatusCode::OK, Some("running")),
        "{started}"
    );
    eventually(Duration::from_secs(20), "web back at 3, api at 1", || async {
        let web = w.kube(&format!("{DEPLOYMENTS}/shop-web")).await?;
        let api = w.kube(&format!("{DEPLOYMENTS}/shop-api")).await?;
        (web["spec"]["replicas"] == 3 && api["spec"]["replicas"] == 1).then_some(())
    })
    .await;
    let (_, events) = w
        .send(Method::GET, &format!("/api/v1/applications/{id}/scale-events"), None)
        .await;
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.iter().filter(|r| **r == "stop").count(), 2, "{events}");
    assert_eq!(reasons.iter().filter(|r| **r == "start").count(), 2, "{events}");

    // Delete: everything it created goes.
    let (status, _) = w
        .send(Method::DELETE, &format!("/api/v1/applications/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    eventually(Duration::from_secs(20), "the deployments removed", || async {
        let list = w.kube(DEPLOYMENTS).await?;
        list["items"].as_array()?.is_empty().then_some(())
    })
    .await;
    let (status, _) = w.send(Method::GET, &format!("/api/v1/applications/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn production_waits_for_approval_and_quota_or_port_conflicts_leave_nothing_behind() {
    let w = world("1").await;
    let (_, template) = w
        .send(
            Method::POST,
            "/api/v1/templates",
            Some(json!({"tenant_id": w.tenant, "name": "svc"})),
        )
        .await;
    let template = template["id"].as_str().unwrap().to_string();
    let spec = |node_port: u16| {
        json!({"parameters": [{"name": "replicas", "type": "integer", "default": 1}],
               "services": [{"name": "svc", "replicas": "${replicas}",
                             "containers": [{"name": "svc", "image": "nginx", "resources": {"cpu_request": "200m"}, "ports": [{"container_port": 80, "node_port": node_port}]}]}]})
    };
    let fixed = w.version(&template, "1.0.0", spec(31000)).await;
    let placement = json!({"explicit": [{"cluster": "dc1-prod"}]});
    let deploy = |name: &str, environment: &str, version: &str, parameters: Value| json!({"name": name, "environment": environment, "template_version_id": version, "parameters": parameters, "placement": placement});

    // Production: nothing happens until a tenant administrator approves.
    let (status, app) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(deploy("billing", "production", &fixed, json!({}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(
        (app["state"].as_str(), app["latest_release"]["state"].as_str()),
        (Some("awaiting-approval"), Some("awaiting-approval"))
    );
    let release = app["latest_release"]["id"].as_str().unwrap().to_string();
    // Work reaches a cluster only through a federation binding, which a
    // release makes only once claimed by a driver, which only claims
    // deploying releases: no binding and an unstarted release mean nothing is
    // on its way.
    let (_, bindings) = w
        .send(Method::GET, &format!("/api/v1/tenants/{}/bindings", w.tenant), None)
        .await;
    assert_eq!(bindings["items"], json!([]), "no binding before approval");
    let (_, awaiting) = w
        .send(
            Method::GET,
            &format!("/api/v1/applications/{}", app["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        (
            awaiting["latest_release"]["state"].as_str(),
            &awaiting["latest_release"]["started_at"]
        ),
        (Some("awaiting-approval"), &Value::Null),
        "{awaiting}"
    );
    assert!(
        w.kube(&format!("{DEPLOYMENTS}/billing")).await.is_none(),
        "not applied before approval"
    );
    let (_, dev) = w
        .send(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "dev", "tenant_id": w.tenant, "role": "developer"})),
        )
        .await;
    let by_developer =
        w.p.http
            .post(format!("{}/api/v1/releases/{release}/approve", w.p.url))
            .bearer_auth(dev["secret"].as_str().unwrap())
            .send()
            .await
            .unwrap();
    assert_eq!(
        by_developer.status(),
        StatusCode::FORBIDDEN,
        "developers do not approve production"
    );
    // Four eyes: the administrator who deployed it may not approve it.
    let (status, refused) = w
        .send(Method::POST, &format!("/api/v1/releases/{release}/approve"), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("four-eyes rule"),
        "{refused}"
    );
    let (status, approved) = w.approve_as_another(&release).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert!(
        approved["approved_by"].as_str().unwrap().starts_with("token:"),
        "{approved}"
    );
    w.release_state(app["id"].as_str().unwrap(), 1, "succeeded").await;

    // The fixed node port is held: a second application is refused naming the holder.
    let (status, problem) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(deploy("copy", "test", &fixed, json!({}))),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("billing"), "{problem}");
    let (_, apps) = w
        .send(Method::GET, &format!("/api/v1/tenants/{}/applications", w.tenant), None)
        .await;
    assert_eq!(
        apps["items"].as_array().unwrap().len(),
        1,
        "the refused deploy left no application"
    );

    // Over the tenant's 1 cpu (200m already used): the release fails with
    // tenancy's reason and nothing reaches the cluster.
    let drawn = w.version(&template, "2.0.0", spec(0)).await;
    let (status, big) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(deploy("big", "test", &drawn, json!({"replicas": 8}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{big}");
    let failed = w.release_state(big["id"].as_str().unwrap(), 1, "failed").await;
    assert!(
        failed["latest_release"]["message"]
            .as_str()
            .unwrap()
            .contains("requests.cpu"),
        "{failed}"
    );
    let big_id = big["id"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(5), "the application failed", || async {
        (w.send(Method::GET, &format!("/api/v1/applications/{big_id}"), None)
            .await
            .1["state"]
            == "failed")
            .then_some(())
    })
    .await;
    assert!(w.kube(&format!("{DEPLOYMENTS}/big")).await.is_none());

    // Autoscaling on CPU without a CPU request is refused when the version is saved.
    let no_request = json!({"services": [{"name": "svc", "containers": [{"name": "svc", "image": "nginx"}], "autoscaling": {"min_replicas": 1, "max_replicas": 3, "cpu_utilization": 60}}]});
    let (status, problem) = w
        .send(
            Method::POST,
            &format!("/api/v1/templates/{template}/versions"),
            Some(json!({"version": "3.0.0", "spec": no_request})),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("spec.services[0].containers[0].resources.cpu_request")
        )
    );
}
