//! The config center into clusters: configs that templates reference reach
//! both kubesim clusters as ConfigMaps and Secrets with the effective content
//! (a cluster's own set included), follow every publish and rollback, roll
//! the pods with `reload: restart` and leave them with `reload: none`; no
//! secret value is ever in the apps or federation tables in the clear;
//! another tenant's config cannot be referenced; and a gray release pinned
//! to one cluster (or partition) reaches it alone until promoted (then
//! every cluster) or abandoned (then none), as the delivery view shows.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kernel::testkit::eventually;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::applications::{World, world_with};
use crate::strategies::{A, B, two_clusters};

const NS: &str = "/api/v1/namespaces/acme-web";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/acme-web/deployments";
const FIRST_SECRET: &str = "s3cr3t-first-Value";
const SECOND_SECRET: &str = "s3cr3t-second-Value";

fn spec(reload: &str, config: &str) -> Value {
    json!({"services": [{"name": "web", "replicas": 2, "containers": [{
    "name": "web", "image": "registry.example/web:1", "resources": {"cpu_request": "100m"},
    "config_refs": [
        {"config": config, "mount_path": "/etc/shop", "reload": reload},
        {"config": config, "item": "LEVEL", "env": "LOG_LEVEL", "reload": reload},
        {"config": config, "item": "db.password", "env": "DB_PASSWORD", "reload": reload}
    ]}]}]})
}

impl World {
    async fn config_set(&self, application: &str, environment: &str, cluster: &str) -> String {
        let (status, set) = self
            .send(
                Method::POST,
                "/api/v1/config-sets",
                Some(json!({"tenant_id": self.tenant, "application": application,
                            "environment": environment, "cluster": cluster})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{set}");
        set["id"].as_str().unwrap().to_string()
    }

    /// Puts `items` (name, content, secret) on the set's draft and publishes it.
    async fn release_config(&self, set: &str, items: &[(&str, &str, bool)]) {
        for (name, content, secret) in items {
            let (_, draft) = self
                .send(Method::GET, &format!("/api/v1/config-sets/{set}/draft"), None)
                .await;
            let (status, draft) = self
                .send(
                    Method::PUT,
                    &format!("/api/v1/config-sets/{set}/draft/items/{name}"),
                    Some(json!({"version": draft["version"], "content": content, "secret": secret})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{draft}");
        }
        let (status, release) = self
            .send(
                Method::POST,
                &format!("/api/v1/config-sets/{set}/releases"),
                Some(json!({"message": "config for the clusters"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{release}");
    }

    async fn deploy_to_both(&self, name: &str, spec: Value) -> String {
        let (_, template) = self
            .send(
                Method::POST,
                "/api/v1/templates",
                Some(json!({"tenant_id": self.tenant, "name": name})),
            )
            .await;
        let version = self
            .version(
                template["id"].as_str().unwrap_or_else(|| panic!("{template}")),
                "1.0.0",
                spec,
            )
            .await;
        let body = json!({"name": name, "environment": "test", "template_version_id": version,
                          "placement": {"explicit": [{"cluster": A}, {"cluster": B}]}});
        let (status, app) = self
            .send(
                Method::POST,
                &format!("/api/v1/tenants/{}/applications", self.tenant),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{app}");
        let id = app["id"].as_str().unwrap().to_string();
        self.release_state(&id, 1, "succeeded").await;
        id
    }

    /// Waits until `kind` `name` in `cluster` passes `check`.
    async fn object_in(&self, cluster: &str, kind: &str, name: &str, check: impl Fn(&Value) -> bool) -> Value {
        let path = match kind {
            "Deployment" => format!("{DEPLOYMENTS}/{name}"),
            "ConfigMap" => format!("{NS}/configmaps/{name}"),
            _ => format!("{NS}/secrets/{name}"),
        };
        eventually(
            Duration::from_secs(40),
            &format!("{kind} {name} as expected in {cluster}"),
            || async {
                let o = self.kube_in(cluster, &path).await?;
                check(&o).then_some(o)
            },
        )
        .await
    }

    /// The names of application `app`'s pods in `cluster`.
    async fn pod_names(&self, cluster: &str, app: &str) -> BTreeSet<String> {
        let pods = self
            .kube_in(cluster, &format!("{NS}/pods?labelSelector=paas.io/app%3D{app}"))
            .await
            .unwrap_or(Value::Null);
        pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
            .collect()
    }
}

impl World {
    /// Puts `LEVEL` = `level` on the set's draft and publishes it as a gray
    /// release pinned to `targets` (cluster, partition); its number.
    async fn gray_level(&self, set: &str, level: &str, targets: &[(&str, &str)]) -> u64 {
        let (_, draft) = self
            .send(Method::GET, &format!("/api/v1/config-sets/{set}/draft"), None)
            .await;
        let (status, draft) = self
            .send(
                Method::PUT,
                &format!("/api/v1/config-sets/{set}/draft/items/LEVEL"),
                Some(json!({"version": draft["version"], "content": level})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{draft}");
        let targets: Vec<Value> = targets
            .iter()
            .map(|(cluster, partition)| json!({"cluster": cluster, "partition": partition}))
            .collect();
        let (status, gray) = self
            .send(
                Method::POST,
                &format!("/api/v1/config-sets/{set}/gray-releases"),
                Some(json!({"message": format!("LEVEL {level} first"), "targets": targets})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{gray}");
        gray["number"].as_u64().unwrap()
    }

    /// GETs `path` as the administrator of another tenant.
    async fn send_as_stranger(&self, path: &str) -> (StatusCode, Value) {
        let (status, other) = self
            .send(Method::POST, "/api/v1/tenants", Some(json!({"name": "globex"})))
            .await;
        assert!(status.is_success(), "{other}");
        let (_, token) = self
            .send(
                Method::POST,
                "/api/v1/tokens",
                Some(json!({"name": "stranger", "tenant_id": other["id"], "role": "tenant-admin"})),
            )
            .await;
        let r = self
            .p
            .http
            .get(format!("{}{path}", self.p.url))
            .bearer_auth(token["secret"].as_str().unwrap_or_else(|| panic!("{token}")))
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    /// Promotes or abandons (`step`) gray release `number` of `set`.
    async fn decide_gray(&self, set: &str, number: u64, step: &str) {
        let (status, r) = self
            .send(
                Method::POST,
                &format!("/api/v1/config-sets/{set}/gray-releases/{number}/{step}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{r}");
    }

    /// Waits until the delivery view of `app` is in sync and its first
    /// config's targets pass `check` (target -> gray); the view.
    async fn delivered(&self, app: &str, check: impl Fn(&[(String, bool)]) -> bool) -> Value {
        eventually(
            Duration::from_secs(40),
            &format!("the config delivery of {app} as expected"),
            || async {
                let (status, view) = self
                    .send(
                        Method::GET,
                        &format!("/api/v1/applications/{app}/config-deliveries"),
                        None,
                    )
                    .await;
                let targets: Vec<(String, bool)> = view["items"][0]["targets"]
                    .as_array()?
                    .iter()
                    .map(|t| (t["target"].as_str().unwrap_or_default().to_string(), t["gray"] == true))
                    .collect();
                (status == StatusCode::OK && view["in_sync"] == true && check(&targets)).then_some(view)
            },
        )
        .await
    }
}

fn decoded(secret: &Value, key: &str) -> String {
    String::from_utf8(
        B64.decode(secret["data"][key].as_str().unwrap_or_default())
            .unwrap_or_default(),
    )
    .unwrap_or_default()
}

/// Every row `select` (of `schema`) reads, as text.
async fn table_text(w: &World, schema: &str, select: &'static str) -> String {
    let pool = kernel::db::connect(&w.p.settings, schema).await.unwrap();
    let rows: Vec<String> = sqlx::query_scalar(select).fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows.join("\n")
}

#[tokio::test]
async fn configs_reach_both_clusters_follow_each_release_and_roll_pods_only_when_asked() {
    let w = two_clusters(&[]).await;
    // The effective config for (app, test, cluster): base, test level, and
    // dc2-dr's own LEVEL.
    let base = w.config_set("shop", "", "").await;
    let test = w.config_set("shop", "test", "").await;
    let dr = w.config_set("shop", "test", B).await;
    w.release_config(
        &base,
        &[
            ("app.properties", "pool=10\ntimeout=5s\n", false),
            ("LEVEL", "info", false),
            ("db.password", FIRST_SECRET, true),
        ],
    )
    .await;
    w.release_config(&test, &[("app.properties", "pool=20\n", false)]).await;
    w.release_config(&dr, &[("LEVEL", "debug", false)]).await;

    let rs = w.deploy_to_both("rs", spec("restart", "shop")).await;
    let rn = w.deploy_to_both("rn", spec("none", "shop")).await;
    for (app, cluster, level) in [
        ("rs", A, "info"),
        ("rs", B, "debug"),
        ("rn", A, "info"),
        ("rn", B, "debug"),
    ] {
        let name = format!("{app}-web-config-shop");
        let cm = w
            .object_in(cluster, "ConfigMap", &name, |cm| cm["data"]["LEVEL"] == level)
            .await;
        assert_eq!(cm["data"]["app.properties"], "pool=20\ntimeout=5s\n", "{cm}");
        assert!(
            cm["data"].get("db.password").is_none(),
            "a secret item in a ConfigMap: {cm}"
        );
        let secret = w.object_in(cluster, "Secret", &name, |s| s["data"].is_object()).await;
        assert_eq!(decoded(&secret, "db.password"), FIRST_SECRET);
        let d = w
            .object_in(cluster, "Deployment", &format!("{app}-web"), |d| {
                d["status"]["availableReplicas"] == 2
            })
            .await;
        let env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env[1]["valueFrom"]["secretKeyRef"]["name"], name.as_str(), "{env}");
        assert_eq!(env[0]["valueFrom"]["configMapKeyRef"]["key"], "LEVEL", "{env}");
    }
    let rs_before = (w.pod_names(A, "rs").await, w.pod_names(B, "rs").await);
    let rn_before = (w.pod_names(A, "rn").await, w.pod_names(B, "rn").await);
    assert_eq!((rs_before.0.len(), rn_before.1.len()), (2, 2));
    let rn_generation = w.kube_in(A, &format!("{DEPLOYMENTS}/rn-web")).await.unwrap()["metadata"]["generation"].clone();

    // A publish reaches both clusters for both applications.
    w.release_config(
        &base,
        &[
            ("app.properties", "pool=10\ntimeout=9s\n", false),
            ("db.password", SECOND_SECRET, true),
        ],
    )
    .await;
    for app in ["rs", "rn"] {
        for cluster in [A, B] {
            let name = format!("{app}-web-config-shop");
            w.object_in(cluster, "ConfigMap", &name, |cm| {
                cm["data"]["app.properties"] == "pool=20\ntimeout=9s\n"
            })
            .await;
            w.object_in(cluster, "Secret", &name, |s| decoded(s, "db.password") == SECOND_SECRET)
                .await;
        }
    }
    // reload: restart rolls every pod in both clusters...
    for (cluster, before) in [(A, &rs_before.0), (B, &rs_before.1)] {
        eventually(
            Duration::from_secs(40),
            &format!("rs's pods rolled in {cluster}"),
            || async {
                let now = w.pod_names(cluster, "rs").await;
                (now.len() == 2 && now.is_disjoint(before)).then_some(())
            },
        )
        .await;
    }
    // ...reload: none leaves them (same pods, same Deployment generation).
    assert_eq!((w.pod_names(A, "rn").await, w.pod_names(B, "rn").await), rn_before);
    let rn_now = w.kube_in(A, &format!("{DEPLOYMENTS}/rn-web")).await.unwrap();
    assert_eq!(rn_now["metadata"]["generation"], rn_generation);
    assert!(
        rn_now["spec"]["template"]["metadata"]["annotations"]
            .get("config.paas.io/shop")
            .is_none()
    );

    // A rollback is delivered too.
    let (status, rolled) = w
        .send(
            Method::POST,
            &format!("/api/v1/config-sets/{base}/rollback"),
            Some(json!({"to": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rolled}");
    for cluster in [A, B] {
        w.object_in(cluster, "Secret", "rs-web-config-shop", |s| {
            decoded(s, "db.password") == FIRST_SECRET
        })
        .await;
    }

    // Never in the clear (nor merely base64-encoded) in apps' or federation's tables.
    for (schema, table) in [
        ("apps", "SELECT t::text FROM config_deliveries t"),
        ("apps", "SELECT t::text FROM releases t"),
        ("federation", "SELECT t::text FROM bindings t"),
        ("federation", "SELECT t::text FROM binding_revisions t"),
    ] {
        let text = table_text(&w, schema, table).await;
        for secret in [FIRST_SECRET, SECOND_SECRET] {
            assert!(!text.contains(secret), "{secret} in {schema}.{table}");
            assert!(
                !text.contains(&B64.encode(secret)),
                "{secret} (base64) in {schema}.{table}"
            );
        }
    }
    let _ = (rs, rn);
}

#[tokio::test]
async fn another_tenants_config_cannot_be_referenced() {
    let w = world_with("4", &[]).await;
    let (status, other) = w
        .send(Method::POST, "/api/v1/tenants", Some(json!({"name": "globex"})))
        .await;
    assert!(status.is_success(), "{other}");
    let (status, set) = w
        .send(
            Method::POST,
            "/api/v1/config-sets",
            Some(json!({"tenant_id": other["id"], "application": "vault"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{set}");
    let (_, template) = w
        .send(
            Method::POST,
            "/api/v1/templates",
            Some(json!({"tenant_id": w.tenant, "name": "thief"})),
        )
        .await;
    let version = w
        .version(template["id"].as_str().unwrap(), "1.0.0", spec("restart", "vault"))
        .await;
    let (status, problem) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(
                json!({"name": "thief", "environment": "test", "template_version_id": version,
                        "placement": {"explicit": [{"cluster": "dc1-prod"}]}}),
            ),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("services[0].containers[0].config_refs[0].config")
        ),
        "{problem}"
    );
    let (_, apps) = w
        .send(Method::GET, &format!("/api/v1/tenants/{}/applications", w.tenant), None)
        .await;
    assert_eq!(apps["items"].as_array().map(Vec::len), Some(0), "{apps}");
}

/// Runs a config delivery reconciler of the world's apps schema outside the
/// apps service (which runs none here), asking configs at `configs_url`,
/// until the returned token is cancelled.
async fn reconciler(w: &World, configs_url: &str) -> tokio_util::sync::CancellationToken {
    let pool = kernel::db::connect(&w.p.settings, "apps").await.unwrap();
    let key = kernel::caller::CallerKey::new(w.p.settings.caller_key.clone());
    let channel = |url: &str| kernel::grpc::channel(url).unwrap();
    let federation = apps::federation::Federation::new(
        channel(&format!("http://{}", w.p.stack.service("federation").unwrap().grpc)),
        key.clone(),
    );
    let configs = apps::configs::Configs::new(channel(configs_url), key);
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let applications = apps::application::Applications::new(
        kernel::outbox::Outbox::new(pool.clone()),
        federation,
        configs.clone(),
        wake.clone(),
        apps::traffic::GatewayRef::default(),
    );
    let pacing = apps::config_delivery::Pacing {
        poll: Duration::from_millis(200),
        resync: Duration::from_secs(60),
        settle: Duration::from_millis(500),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let r = apps::config_delivery::Reconciler::new(pool, configs, applications, wake, pacing);
    tokio::spawn(r.run(stop.clone()));
    stop
}

#[tokio::test]
async fn a_release_made_while_delivery_was_down_reaches_every_cluster_when_it_returns() {
    let w = two_clusters(&[("PAAS_APPS_CONFIG_DELIVERY", "false")]).await;
    let base = w.config_set("shop", "", "").await;
    w.release_config(
        &base,
        &[
            ("app.properties", "pool=10\n", false),
            ("LEVEL", "info", false),
            ("db.password", FIRST_SECRET, true),
        ],
    )
    .await;
    // The deploy places the configs itself (every apply does).
    let app = w.deploy_to_both("late", spec("restart", "shop")).await;
    for cluster in [A, B] {
        w.object_in(cluster, "ConfigMap", "late-web-config-shop", |cm| {
            cm["data"]["LEVEL"] == "info"
        })
        .await;
    }
    w.release_config(&base, &[("LEVEL", "warn", false), ("db.password", SECOND_SECRET, true)])
        .await;

    // A reconciler that cannot reach configs records why and delivers nothing.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let first = reconciler(&w, &dead).await;
    let pool = kernel::db::connect(&w.p.settings, "apps").await.unwrap();
    let id: uuid::Uuid = app.parse().unwrap();
    eventually(Duration::from_secs(20), "the failed delivery recorded", || {
        let pool = pool.clone();
        async move {
            let (failures, error): (i32, Option<String>) =
                sqlx::query_as("SELECT failures, last_error FROM config_delivery_states WHERE application_id = $1")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .ok()?;
            (failures > 0 && error.is_some_and(|e| e.contains("configs"))).then_some(())
        }
    })
    .await;
    first.cancel();
    for cluster in [A, B] {
        let cm = w
            .kube_in(cluster, &format!("{NS}/configmaps/late-web-config-shop"))
            .await
            .unwrap();
        assert_eq!(cm["data"]["LEVEL"], "info", "delivered without configs? {cm}");
    }

    // The next one (apps back, configs reachable) takes it from the table.
    let second = reconciler(&w, &format!("http://{}", w.p.stack.service("configs").unwrap().grpc)).await;
    for cluster in [A, B] {
        w.object_in(cluster, "ConfigMap", "late-web-config-shop", |cm| {
            cm["data"]["LEVEL"] == "warn"
        })
        .await;
        w.object_in(cluster, "Secret", "late-web-config-shop", |s| {
            decoded(s, "db.password") == SECOND_SECRET
        })
        .await;
        w.object_in(cluster, "Deployment", "late-web", |d| {
            d["status"]["updatedReplicas"] == 2 && d["status"]["observedGeneration"] == d["metadata"]["generation"]
        })
        .await;
    }
    let delivered: String =
        sqlx::query_scalar("SELECT delivered FROM config_delivery_states WHERE application_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!delivered.is_empty());
    second.cancel();
}

#[tokio::test]
async fn a_gray_release_pinned_to_one_cluster_reaches_it_alone_until_promoted_or_abandoned() {
    let w = two_clusters(&[]).await;
    let base = w.config_set("shop", "", "").await;
    w.release_config(&base, &[("LEVEL", "info", false), ("db.password", FIRST_SECRET, true)])
        .await;
    let app = w.deploy_to_both("gr", spec("restart", "shop")).await;
    const CM: &str = "gr-web-config-shop";
    for cluster in [A, B] {
        w.object_in(cluster, "ConfigMap", CM, |cm| cm["data"]["LEVEL"] == "info")
            .await;
    }

    // Gray to B only: B gets it, A keeps the full release.
    let first = w.gray_level(&base, "warn", &[(B, "")]).await;
    let view = w
        .delivered(&app, |t| t.iter().any(|(target, gray)| target == B && *gray))
        .await;
    let releases = &view["items"][0]["targets"];
    assert_eq!(view["items"][0]["config"], "shop", "{view}");
    assert!(releases.to_string().contains("(gray)"), "{view}");
    assert!(view.get("last_error").is_none(), "{view}");
    assert!(view["delivered_at"].is_string(), "{view}");
    w.object_in(B, "ConfigMap", CM, |cm| cm["data"]["LEVEL"] == "warn")
        .await;
    let a = w.kube_in(A, &format!("{NS}/configmaps/{CM}")).await.unwrap();
    assert_eq!(a["data"]["LEVEL"], "info", "the gray release left its target: {a}");
    let pinned = w.kube_in(B, &format!("{DEPLOYMENTS}/gr-web")).await.unwrap();
    let kept = w.kube_in(A, &format!("{DEPLOYMENTS}/gr-web")).await.unwrap();
    let checksum = |d: &Value| d["spec"]["template"]["metadata"]["annotations"]["config.paas.io/shop"].clone();
    assert_ne!(
        checksum(&pinned),
        checksum(&kept),
        "reload: restart rolls the target only"
    );

    // Promote: every cluster gets it, no target has content of its own.
    w.decide_gray(&base, first, "promote").await;
    w.delivered(&app, |t| t.len() == 1).await;
    for cluster in [A, B] {
        w.object_in(cluster, "ConfigMap", CM, |cm| cm["data"]["LEVEL"] == "warn")
            .await;
    }

    // Abandon, here pinned to A's partition (its namespace): A returns to
    // the full release, B never saw it.
    let second = w.gray_level(&base, "debug", &[(A, "acme-web")]).await;
    let key = format!("{A}/acme-web");
    w.delivered(&app, |t| t.iter().any(|(target, gray)| *target == key && *gray))
        .await;
    w.object_in(A, "ConfigMap", CM, |cm| cm["data"]["LEVEL"] == "debug")
        .await;
    let b = w.kube_in(B, &format!("{NS}/configmaps/{CM}")).await.unwrap();
    assert_eq!(b["data"]["LEVEL"], "warn", "{b}");
    w.decide_gray(&base, second, "abandon").await;
    w.delivered(&app, |t| t.len() == 1).await;
    for cluster in [A, B] {
        w.object_in(cluster, "ConfigMap", CM, |cm| cm["data"]["LEVEL"] == "warn")
            .await;
    }

    // Another tenant sees no delivery of this application.
    let (status, problem) = w
        .send_as_stranger(&format!("/api/v1/applications/{app}/config-deliveries"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
}
