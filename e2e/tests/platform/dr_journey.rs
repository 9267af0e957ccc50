//! Disaster recovery from the application's point of view (#13 items 2-6),
//! through the gateway on two kubesim clusters in two data centres: dc1 is
//! lost, the application moves to dc2 and says so (Degraded, the lost copies
//! Unknown), each move is in its activity with timed steps, a scale during
//! the outage survives the failback, the singleton's stale copy is stopped
//! on the first contact with dc1 before dc1 counts as Ready, and the
//! singleton's failback waits for an operator's confirmation with its
//! expected gap (in production, or when the placement asks; elsewhere it
//! fails back by itself, still reporting the gap). Then the DR drill: the whole journey from the request form,
//! with its timings printed.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kernel::testkit::eventually;
use kubesim::{Fault, RunningCluster};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::applications::World;
use crate::strategies::{A, B, two_clusters};

/// Fast probes and a short stabilisation, so a drill takes seconds.
const FAST: &[(&str, &str)] = &[
    ("PAAS_FEDERATION_PROBE_PERIOD", "200ms"),
    ("PAAS_FEDERATION_PROBE_TIMEOUT", "150ms"),
    ("PAAS_FEDERATION_FAILBACK_STABILISATION", "1s"),
    ("PAAS_FEDERATION_PROPAGATION_TIMEOUT", "2s"),
];

/// web (HTTP, two replicas) at `web` and db (no port, one replica: the singleton) at `db`.
fn spec(web: &str, db: &str) -> Value {
    json!({"services": [
        {"name": "web", "replicas": 2, "containers": [{"name": "web", "image": format!("registry.example/web:{web}"),
            "resources": {"cpu_request": "100m", "memory_request": "64Mi"}, "ports": [{"name": "http", "container_port": 8080}]}]},
        {"name": "db", "replicas": 1, "containers": [{"name": "db", "image": format!("registry.example/db:{db}"),
            "resources": {"cpu_request": "100m", "memory_request": "64Mi"}}]}
    ]})
}

/// dc1 first, dc2 when dc1 is lost; db never runs twice.
fn placement() -> Value {
    json!({"policy": {"groups": [{"data_centres": ["dc1"]}, {"data_centres": ["dc2"]}]},
           "dr_tier": "auto-failover", "toleration_seconds": 2, "services": {"db": {"singleton": true}}})
}

/// Pods of `app`'s `service` in the cluster's own store (readable whatever
/// fault its API has): (all, terminating ones included; ready).
fn pods(c: &RunningCluster, app: &str, service: &str) -> (usize, usize) {
    let mine: Vec<_> = c
        .store()
        .all(kubesim::resource::PODS)
        .into_iter()
        .filter(|p| {
            p["metadata"]["labels"]["paas.io/app"] == app && p["metadata"]["labels"]["paas.io/service"] == service
        })
        .collect();
    let ready = mine
        .iter()
        .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
        .filter(|p| {
            p["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        })
        .count();
    (mine.len(), ready)
}

impl World {
    fn cluster(&self, name: &str) -> &RunningCluster {
        self.clusters.iter().find(|c| c.name() == name).unwrap()
    }

    /// The application as the gateway shows it.
    async fn app(&self, app: &str) -> Value {
        self.send(Method::GET, &format!("/api/v1/applications/{app}"), None)
            .await
            .1
    }

    /// The binding of `app`'s `service`.
    async fn binding(&self, app: &str, service: &str) -> String {
        let a = self.app(app).await;
        a["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == service)
            .and_then(|s| s["binding_id"].as_str())
            .unwrap_or_else(|| panic!("no service {service}: {a}"))
            .to_string()
    }

    /// The binding's newest operation of `kind` once it is in `state`.
    async fn operation(&self, binding: &str, kind: &str, state: &str, within: Duration) -> Value {
        eventually(within, &format!("a {kind} of {binding} {state}"), || async move {
            let (_, ops) = self
                .send(Method::GET, &format!("/api/v1/failovers?binding_id={binding}"), None)
                .await;
            ops["items"]
                .as_array()?
                .iter()
                .filter(|o| o["kind"] == kind)
                .max_by_key(|o| o["created_at"].as_str().unwrap_or_default().to_string())
                .filter(|o| o["state"] == state)
                .cloned()
        })
        .await
    }

    async fn condition(&self, cluster: &str) -> Value {
        self.send(Method::GET, &format!("/api/v1/clusters/{cluster}"), None)
            .await
            .1["condition"]
            .clone()
    }
}

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap_or_else(|| panic!("no time: {v}")).parse().unwrap()
}

/// The time of the operation's first step whose name starts with `prefix`.
fn step_at(op: &Value, prefix: &str) -> DateTime<Utc> {
    let step = op["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no step {prefix}: {op}"));
    at(&step["at"])
}

/// Watches db's pods in both clusters until `done`: the longest run
/// without a ready db pod, and the samples with a pod in each cluster
/// while the first also counted as Ready (`ready_a` says so).
struct SingletonWatch {
    samples: usize,
    twice_in_contact: usize,
    longest_gap: Duration,
}

async fn watch_singleton<T>(
    w: &World,
    app: &str,
    check_contact: bool,
    done: impl std::future::Future<Output = T>,
) -> (T, SingletonWatch) {
    tokio::pin!(done);
    let mut out = SingletonWatch {
        samples: 0,
        twice_in_contact: 0,
        longest_gap: Duration::ZERO,
    };
    let mut gap_since: Option<Instant> = None;
    loop {
        // The condition first: a Ready read before the pods bounds when fencing finished.
        let ready_a = check_contact && w.condition(A).await["status"] == "Ready";
        let ((in_a, ready_in_a), (in_b, ready_in_b)) = (pods(w.cluster(A), app, "db"), pods(w.cluster(B), app, "db"));
        if (!check_contact || ready_a) && in_a > 0 && in_b > 0 {
            out.twice_in_contact += 1;
            eprintln!("db twice: {in_a} pod(s) in {A} (Ready: {ready_a}), {in_b} in {B}");
        }
        match (ready_in_a + ready_in_b, gap_since) {
            (0, None) => gap_since = Some(Instant::now()),
            (n, Some(since)) if n > 0 => {
                out.longest_gap = out.longest_gap.max(since.elapsed());
                gap_since = None;
            }
            _ => {}
        }
        out.samples += 1;
        tokio::select! {
            r = &mut done => return (r, out),
            () = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
}

#[tokio::test]
async fn a_lost_data_centre_moves_the_application_shows_it_degraded_fences_the_stale_singleton_and_fails_back_keeping_the_scale()
 {
    let w = two_clusters(FAST).await;
    let (_, template) = w
        .send(
            Method::POST,
            "/api/v1/templates",
            Some(json!({"tenant_id": w.tenant, "name": "shop"})),
        )
        .await;
    let v1 = w
        .version(template["id"].as_str().unwrap(), "1.0.0", spec("1", "1"))
        .await;
    // Outside production a singleton's failback needs no confirmation unless
    // the placement asks for it, as this one does (production always does).
    let mut confirmed = placement();
    confirmed["services"]["db"]["failback_confirmation"] = json!("required");
    let (status, app) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(json!({"name": "shop", "environment": "test", "template_version_id": v1, "placement": confirmed})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let app = app["id"].as_str().unwrap().to_string();
    w.release_state(&app, 1, "succeeded").await;
    let (web, db) = (w.binding(&app, "web").await, w.binding(&app, "db").await);
    eventually(Duration::from_secs(30), "web 2/2 and db 1/1 in dc1", || async {
        (pods(w.cluster(A), "shop", "web").1 == 2 && pods(w.cluster(A), "shop", "db").1 == 1).then_some(())
    })
    .await;

    // dc1 goes down: its pods keep running, cut off (kubesim's `down`).
    w.cluster(A).faults().set(Fault::Down);
    let lost_at = Utc::now();
    let web_over = w
        .operation(&web, "failover", "available", Duration::from_secs(60))
        .await;
    let db_over = w.operation(&db, "failover", "available", Duration::from_secs(60)).await;
    assert_eq!(web_over["to_clusters"], json!([B]), "{web_over}");
    assert_eq!(db_over["to_clusters"], json!([B]), "{db_over}");
    println!(
        "dc1 lost at {lost_at}; web available in dc2 at {}, db at {}",
        web_over["available_at"], db_over["available_at"]
    );

    // Item 5: the truth after the failover.
    let degraded = eventually(Duration::from_secs(20), "the application Degraded", || async {
        let a = w.app(&app).await;
        (a["health"] == "Degraded").then_some(a)
    })
    .await;
    let reason = degraded["health_reason"].as_str().unwrap();
    assert!(reason.contains(&format!("running in {B} only")), "{degraded}");
    assert!(!reason.contains("removing from clusters"), "{degraded}");
    let web_view = degraded["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "web")
        .unwrap();
    let lost_copy = web_view["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster"] == A)
        .unwrap_or_else(|| panic!("dc1's copy is not shown: {web_view}"));
    assert_eq!(
        (lost_copy["health"].as_str(), &lost_copy["available"]),
        (Some("Unknown"), &Value::Null),
        "{lost_copy}"
    );
    assert!(
        lost_copy["health_reason"].as_str().unwrap().contains("last seen"),
        "{lost_copy}"
    );

    // Item 6: each move in the application's activity, with its steps.
    let activity = eventually(Duration::from_secs(20), "both failovers in the activity", || async {
        let (_, a) = w
            .send(Method::GET, &format!("/api/v1/applications/{app}/activity"), None)
            .await;
        let items = a["items"].as_array()?.clone();
        (items.len() == 2
            && items
                .iter()
                .all(|i| i["kind"] == "failover" && i["state"] == "available"))
        .then_some(items)
    })
    .await;
    let mut services: Vec<&str> = activity.iter().map(|i| i["service"].as_str().unwrap()).collect();
    services.sort_unstable();
    assert_eq!(services, ["db", "web"]);
    for i in &activity {
        let steps = i["steps"].as_array().unwrap();
        assert!(steps[0]["name"].as_str().unwrap().starts_with("opened"), "{i}");
        assert_eq!(steps.last().unwrap()["name"], format!("available in {B}"), "{i}");
        assert_eq!(i["from_cluster"], A);
    }

    // Item 2: a scale while dc1 is down goes to dc2 and is kept by the failback.
    let (status, scaled) = w
        .send(
            Method::POST,
            &format!("/api/v1/applications/{app}/scale"),
            Some(json!({"service": "web", "replicas": 3})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{scaled}");
    eventually(Duration::from_secs(30), "web 3/3 in dc2", || async {
        (pods(w.cluster(B), "shop", "web").1 == 3).then_some(())
    })
    .await;

    // Item 3: dc1 returns; its stale db copy is stopped before dc1 counts as Ready.
    assert_eq!(pods(w.cluster(A), "shop", "db").0, 1, "the cut-off copy still there");
    w.cluster(A).faults().set(Fault::Healthy);
    let back = Instant::now();
    let ((), watch) = watch_singleton(&w, "shop", true, async {
        eventually(Duration::from_secs(30), "dc1 Ready", || async {
            (w.condition(A).await["status"] == "Ready").then_some(())
        })
        .await;
    })
    .await;
    let ready_after = back.elapsed();
    let condition = w.condition(A).await;
    println!(
        "two-copies window while dc1 counted as Ready: {} of {} samples (0 ms); dc1 Ready {ready_after:?} after its return: {}",
        watch.twice_in_contact, watch.samples, condition["message"]
    );
    assert_eq!(watch.twice_in_contact, 0);
    assert_eq!(pods(w.cluster(A), "shop", "db").0, 0, "the stale copy is gone");
    assert!(
        condition["message"].as_str().unwrap().contains("stale singleton"),
        "{condition}"
    );

    // Item 2: web fails back by itself with its 3 replicas.
    let web_back = w
        .operation(&web, "failback", "available", Duration::from_secs(60))
        .await;
    let healthy = eventually(Duration::from_secs(30), "web Healthy in dc1 alone", || async {
        let a = w.app(&app).await;
        let s = a["services"].as_array()?.iter().find(|s| s["name"] == "web")?.clone();
        (s["health"] == "Healthy" && s["clusters"].as_array()?.len() == 1).then_some(s)
    })
    .await;
    assert_eq!(
        (pods(w.cluster(A), "shop", "web").1, pods(w.cluster(B), "shop", "web").0),
        (3, 0),
        "{healthy} {web_back}"
    );

    // Item 4: the singleton's failback waits for an operator, with the expected gap.
    let waiting = w
        .operation(&db, "failback", "awaiting-confirmation", Duration::from_secs(30))
        .await;
    assert!(
        waiting["reason"].as_str().unwrap().contains("expected gap"),
        "{waiting}"
    );
    // It names the application and the service's binding, as the console lists it.
    assert_eq!(
        (waiting["application"].as_str(), waiting["binding_name"].as_str()),
        (Some("shop"), Some("shop-db")),
        "{waiting}"
    );
    let id = waiting["id"].as_str().unwrap();
    assert!(
        waiting["reason"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/v1/failovers/{id}/confirm")),
        "the reason names the route to confirm it: {waiting}"
    );
    assert_eq!(pods(w.cluster(B), "shop", "db").1, 1, "db stays in dc2 until confirmed");
    let viewer = w.token(&w.tenant, "viewer").await;
    let operator = w.token(&w.tenant, "operator").await;
    let confirm = |token: String| {
        let r =
            w.p.anonymous(
                Method::POST,
                &format!("/api/v1/failovers/{}/confirm", waiting["id"].as_str().unwrap()),
            )
            .bearer_auth(token)
            .json(&json!({}));
        async move { r.send().await.unwrap().status() }
    };
    assert_eq!(confirm(viewer).await, StatusCode::FORBIDDEN);
    assert_eq!(confirm(operator.clone()).await, StatusCode::OK);
    assert_eq!(confirm(operator).await, StatusCode::CONFLICT);
    let (db_back, watch) = watch_singleton(
        &w,
        "shop",
        false,
        w.operation(&db, "failback", "available", Duration::from_secs(60)),
    )
    .await;
    println!(
        "db failback: expected ({}) / measured gap {:?}; db in both clusters in {} of {} samples",
        waiting["reason"], watch.longest_gap, watch.twice_in_contact, watch.samples
    );
    assert_eq!(watch.twice_in_contact, 0, "db ran twice during its failback");
    assert!(step_at(&db_back, "confirmed by") >= step_at(&db_back, "awaiting confirmation"));
    eventually(Duration::from_secs(30), "db 1/1 in dc1", || async {
        (pods(w.cluster(A), "shop", "db").1 == 1 && pods(w.cluster(B), "shop", "db").0 == 0).then_some(())
    })
    .await;

    // The failbacks are in the activity too.
    eventually(Duration::from_secs(20), "the failbacks in the activity", || async {
        let (_, a) = w
            .send(Method::GET, &format!("/api/v1/applications/{app}/activity"), None)
            .await;
        let items = a["items"].as_array()?.clone();
        (items
            .iter()
            .filter(|i| i["kind"] == "failback" && i["state"] == "available")
            .count()
            == 2)
            .then_some(())
    })
    .await;
    let a = eventually(Duration::from_secs(20), "the application Healthy", || async {
        let a = w.app(&app).await;
        (a["health"] == "Healthy").then_some(a)
    })
    .await;
    assert_eq!(a["replicas"]["web"], 3, "{a}");
}

#[tokio::test]
async fn a_singleton_outside_production_fails_back_by_itself_reporting_its_expected_gap() {
    let w = two_clusters(FAST).await;
    let (_, template) = w
        .send(
            Method::POST,
            "/api/v1/templates",
            Some(json!({"tenant_id": w.tenant, "name": "lab"})),
        )
        .await;
    let v1 = w
        .version(template["id"].as_str().unwrap(), "1.0.0", spec("1", "1"))
        .await;
    let (status, app) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(json!({"name": "lab", "environment": "test", "template_version_id": v1, "placement": placement()})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let app = app["id"].as_str().unwrap().to_string();
    w.release_state(&app, 1, "succeeded").await;
    let db = w.binding(&app, "db").await;
    let (_, binding) = w.send(Method::GET, &format!("/api/v1/bindings/{db}"), None).await;
    assert_eq!(
        binding["placement"]["failback_confirmation"], "none",
        "apps tells federation a test application's singleton needs no confirmation: {binding}"
    );
    eventually(Duration::from_secs(30), "db 1/1 in dc1", || async {
        (pods(w.cluster(A), "lab", "db").1 == 1).then_some(())
    })
    .await;

    w.cluster(A).faults().set(Fault::Down);
    w.operation(&db, "failover", "available", Duration::from_secs(60)).await;
    w.cluster(A).faults().set(Fault::Healthy);
    // No one confirms: the failback completes by itself.
    let back = w.operation(&db, "failback", "available", Duration::from_secs(60)).await;
    let steps: Vec<&str> = back["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    let planned = steps
        .iter()
        .find(|s| s.contains("expected gap about"))
        .unwrap_or_else(|| panic!("the expected gap is reported: {back}"));
    assert!(planned.starts_with("planned move (no confirmation"), "{planned}");
    assert!(
        !steps
            .iter()
            .any(|s| s.starts_with("awaiting confirmation") || s.starts_with("confirmed by")),
        "{back}"
    );
    eventually(Duration::from_secs(30), "db 1/1 back in dc1 only", || async {
        (pods(w.cluster(A), "lab", "db").1 == 1 && pods(w.cluster(B), "lab", "db").0 == 0).then_some(())
    })
    .await;
    println!("lab db failback without confirmation: {planned}");
}

/// Approves the application's latest release as a second tenant
/// administrator, after its author's own approval is refused (four eyes).
async fn approve(w: &World, app: Value) {
    let id = app["latest_release"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{app}"))
        .to_string();
    let (status, self_approved) = w
        .send(Method::POST, &format!("/api/v1/releases/{id}/approve"), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "four eyes: {self_approved}");
    let (status, approved) = w.approve_as_another(&id).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
}

/// One sample of the drill's watcher: ready pods per service in the
/// clusters that can be reached (a cluster behind a fault serves nobody),
/// and db's pods in each cluster.
#[derive(Debug, Clone)]
struct Sample {
    at: DateTime<Utc>,
    web_ready: usize,
    db_ready: usize,
    db_in_a: usize,
    db_in_b: usize,
    a_reachable: bool,
    a_counted_ready: bool,
}

/// The moments (first sample, how long) when `bad` held.
fn moments(samples: &[Sample], bad: impl Fn(&Sample) -> bool) -> Vec<(DateTime<Utc>, chrono::Duration)> {
    let mut out = Vec::new();
    let mut since: Option<DateTime<Utc>> = None;
    for s in samples {
        match (bad(s), since) {
            (true, None) => since = Some(s.at),
            (false, Some(from)) => {
                out.push((from, s.at - from));
                since = None;
            }
            _ => {}
        }
    }
    if let (Some(from), Some(last)) = (since, samples.last()) {
        out.push((from, last.at - from));
    }
    out
}

fn ms(d: chrono::Duration) -> i64 {
    d.num_milliseconds()
}

/// The whole journey, with fast probes, polls and a 2 s toleration so it
/// takes seconds. With `PAAS_DR_DRILL_DEFAULTS=1` it runs with the
/// platform's default settings instead (no setting overridden, the default
/// toleration), so the printed timings are what a real platform would show:
/// `PAAS_DR_DRILL_DEFAULTS=1 cargo nextest run -p paas-e2e dr_drill --no-capture`.
#[tokio::test]
async fn dr_drill_from_the_request_form_to_failback_prints_its_timings_and_never_runs_the_singleton_twice() {
    let defaults = std::env::var("PAAS_DR_DRILL_DEFAULTS").is_ok_and(|v| v == "1");
    let mut vars = Vec::new();
    if !defaults {
        vars.extend_from_slice(&[
            ("PAAS_FEDERATION_RECONCILE_POLL", "100ms"),
            ("PAAS_APPS_RELEASE_POLL", "100ms"),
        ]);
        vars.extend_from_slice(FAST);
    }
    println!(
        "DR drill with {} settings",
        if defaults { "the platform's default" } else { "fast" }
    );
    let p = e2e::Platform::start_with_env(&vars, |_| {}).await;
    let key = kernel::caller::CallerKey::new(p.settings.caller_key.clone());
    let clusters = paas::member_clusters::start(&key, p.stack.service("federation").unwrap())
        .await
        .unwrap();
    let (_, tenant) = {
        let r = p
            .admin(Method::POST, "/api/v1/tenants")
            .json(&json!({"name": "acme"}))
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    let world = World {
        cluster: clusters[0].url().trim_end_matches('/').to_string(),
        tenant: tenant["id"].as_str().unwrap().to_string(),
        p,
        clusters,
    };
    let w = &world;
    let started = Utc::now();

    // Request -> approval -> provisioning into both data centres.
    let (status, spec_) = w
        .send(
            Method::POST,
            "/api/v1/specs",
            Some(json!({"name": "app-host", "amounts": {"requests.cpu": "4", "requests.memory": "8Gi"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{spec_}");
    let form = json!({"project_name": "web", "applicant": "Jane Doe", "email": "jane@acme.example",
        "application": "shop", "server_type": "application-host", "data_centre": "dc1",
        "spec_id": spec_["id"], "count": 2, "dr_reserve": true});
    let (status, request) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/requests", w.tenant),
            Some(form),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    let request = request["id"].as_str().unwrap().to_string();
    for step in ["submit", "approve"] {
        let (status, body) = w
            .send(Method::POST, &format!("/api/v1/requests/{request}/{step}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{step}: {body}");
    }
    let (status, provisioned) = w
        .send(
            Method::POST,
            &format!("/api/v1/requests/{request}/provision"),
            Some(json!({"clusters": [A, B]})),
        )
        .await;
    assert!(status.is_success(), "{provisioned}");
    let (_, projects) = w
        .send(
            Method::GET,
            &format!("/api/v1/tenants/{}/projects?name_prefix=web", w.tenant),
            None,
        )
        .await;
    let project = projects["items"][0]["id"].as_str().unwrap().to_string();
    for name in [A, B] {
        eventually(
            Duration::from_secs(30),
            &format!("{name} Ready with the namespace"),
            || async move {
                let url = format!(
                    "{}/api/v1/namespaces/acme-web",
                    w.cluster(name).url().trim_end_matches('/')
                );
                let ns = w.p.http.get(url).send().await.ok()?.status() == StatusCode::OK;
                (w.condition(name).await["status"] == "Ready" && ns).then_some(())
            },
        )
        .await;
    }

    // Deploy to production with auto-failover: web active-active in both
    // data centres, db a singleton in dc1 with dc2 as its backup.
    let (_, template) = w
        .send(
            Method::POST,
            "/api/v1/templates",
            Some(json!({"tenant_id": w.tenant, "name": "shop"})),
        )
        .await;
    let template = template["id"].as_str().unwrap().to_string();
    let v1 = w.version(&template, "1.0.0", spec("1", "1")).await;
    let v2 = w.version(&template, "1.1.0", spec("2", "1")).await;
    let mut placement = json!({"explicit": [{"cluster": A}, {"cluster": B}], "dr_tier": "active-active",
        "services": {"db": {"policy": {"groups": [{"data_centres": ["dc1"]}, {"data_centres": ["dc2"]}]},
                            "dr_tier": "auto-failover", "singleton": true}}});
    if !defaults {
        placement["toleration_seconds"] = json!(2);
    }
    let (status, app) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(
                json!({"name": "shop", "project_id": project, "environment": "production",
                        "template_version_id": v1, "placement": placement}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let app = app["id"].as_str().unwrap().to_string();
    approve(w, w.release_state(&app, 1, "awaiting-approval").await).await;
    w.release_state(&app, 1, "succeeded").await;

    // A canary of web 2 (db unchanged), approved by a second administrator.
    let (status, r2) = w
        .send(
            Method::POST,
            &format!("/api/v1/applications/{app}/releases"),
            Some(json!({"template_version_id": v2, "strategy": {"type": "canary", "steps": [50, 100]}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r2}");
    approve(w, w.release_state(&app, 2, "awaiting-approval").await).await;
    w.release_state(&app, 2, "succeeded").await;
    let (web, db) = (w.binding(&app, "web").await, w.binding(&app, "db").await);
    eventually(
        Duration::from_secs(30),
        "web in both data centres, db in dc1",
        || async {
            (pods(w.cluster(A), "shop", "web").1 == 2
                && pods(w.cluster(B), "shop", "web").1 == 2
                && pods(w.cluster(A), "shop", "db").1 == 1)
                .then_some(())
        },
    )
    .await;
    let deployed = Utc::now();

    // The watcher: both clusters' pods as often as it can (10 ms apart), and whether dc1 counts as Ready.
    let stop = tokio_util::sync::CancellationToken::new();
    let watcher = {
        let stop = stop.clone();
        async move {
            let mut samples = Vec::new();
            while !stop.is_cancelled() {
                let a_counted_ready = w.condition(A).await["status"] == "Ready";
                let a_reachable = w.cluster(A).faults().get() == Fault::Healthy;
                let reach = |c: &RunningCluster, s: &str| {
                    if c.name() == A && !a_reachable {
                        0
                    } else {
                        pods(c, "shop", s).1
                    }
                };
                samples.push(Sample {
                    at: Utc::now(),
                    web_ready: reach(w.cluster(A), "web") + reach(w.cluster(B), "web"),
                    db_ready: reach(w.cluster(A), "db") + reach(w.cluster(B), "db"),
                    db_in_a: pods(w.cluster(A), "shop", "db").0,
                    db_in_b: pods(w.cluster(B), "shop", "db").0,
                    a_reachable,
                    a_counted_ready,
                });
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            samples
        }
    };
    let drill = async {
        // dc1 down.
        w.cluster(A).faults().set(Fault::Down);
        let fault = Utc::now();
        let detected = eventually(Duration::from_secs(30), "dc1 out of Ready", || async {
            let c = w.condition(A).await;
            (c["status"] != "Ready").then(|| at(&c["last_transition_time"]))
        })
        .await;
        let web_over = w
            .operation(&web, "failover", "available", Duration::from_secs(90))
            .await;
        let db_over = w.operation(&db, "failover", "available", Duration::from_secs(90)).await;
        eventually(Duration::from_secs(30), "web 4/4 and db 1/1 in dc2", || async {
            (pods(w.cluster(B), "shop", "web").1 == 4 && pods(w.cluster(B), "shop", "db").1 == 1).then_some(())
        })
        .await;
        let available_elsewhere = Utc::now();
        // Recover dc1; the failbacks follow (db's once an operator confirms it).
        w.cluster(A).faults().set(Fault::Healthy);
        let recovered = Utc::now();
        eventually(Duration::from_secs(30), "dc1 Ready", || async {
            (w.condition(A).await["status"] == "Ready").then_some(())
        })
        .await;
        let back_ready = Utc::now();
        let web_back = w
            .operation(&web, "failback", "available", Duration::from_secs(90))
            .await;
        let waiting = w
            .operation(&db, "failback", "awaiting-confirmation", Duration::from_secs(60))
            .await;
        let confirmed_at = Utc::now();
        let (status, confirmed) = w
            .send(
                Method::POST,
                &format!("/api/v1/failovers/{}/confirm", waiting["id"].as_str().unwrap()),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{confirmed}");
        let db_back = w.operation(&db, "failback", "available", Duration::from_secs(90)).await;
        eventually(Duration::from_secs(30), "web 2+2 and db 1/1 in dc1 again", || async {
            (pods(w.cluster(A), "shop", "web").1 == 2
                && pods(w.cluster(B), "shop", "web").1 == 2
                && pods(w.cluster(A), "shop", "db").1 == 1
                && pods(w.cluster(B), "shop", "db").0 == 0)
                .then_some(())
        })
        .await;
        stop.cancel();
        (
            fault,
            detected,
            web_over,
            db_over,
            available_elsewhere,
            recovered,
            back_ready,
            web_back,
            waiting,
            confirmed_at,
            db_back,
        )
    };
    let (
        samples,
        (
            fault,
            detected,
            web_over,
            db_over,
            available_elsewhere,
            recovered,
            back_ready,
            web_back,
            waiting,
            confirmed_at,
            db_back,
        ),
    ) = tokio::join!(watcher, drill);

    let web_zero = moments(&samples, |s| s.web_ready == 0);
    let db_zero = moments(&samples, |s| s.db_ready == 0);
    let twice_reachable = moments(&samples, |s| s.a_reachable && s.db_in_a > 0 && s.db_in_b > 0);
    let twice_counted = moments(&samples, |s| s.a_counted_ready && s.db_in_a > 0 && s.db_in_b > 0);
    let planned = (confirmed_at, at(&db_back["available_at"]));
    let db_unplanned: Vec<_> = db_zero
        .iter()
        .filter(|(from, _)| {
            let within = |a: DateTime<Utc>, b: DateTime<Utc>| a <= *from && *from <= b;
            !(within(planned.0, planned.1) || within(fault, available_elsewhere))
        })
        .collect();
    let span = samples.last().unwrap().at - samples[0].at;
    println!(
        "DR drill timings ({} samples, one per {} ms on average):",
        samples.len(),
        ms(span) / i64::try_from(samples.len()).unwrap()
    );
    println!(
        "  request filed -> production app deployed, canaried and approved: {} ms",
        ms(deployed - started)
    );
    println!("  fault (dc1 down) at {fault}");
    println!("  detection (dc1 out of Ready):          +{} ms", ms(detected - fault));
    println!(
        "  failover start (web):                  +{} ms",
        ms(at(&web_over["created_at"]) - fault)
    );
    println!(
        "  failover start (db):                   +{} ms",
        ms(at(&db_over["created_at"]) - fault)
    );
    println!(
        "  web available in dc2 (4/4):            +{} ms",
        ms(at(&web_over["available_at"]) - fault)
    );
    println!(
        "  db available in dc2:                   +{} ms",
        ms(at(&db_over["available_at"]) - fault)
    );
    println!(
        "  everything Available in dc2:           +{} ms (target <= 60000 ms with the default settings; {})",
        ms(available_elsewhere - fault),
        if defaults {
            "these are the defaults"
        } else {
            "these are fast probes"
        }
    );
    println!(
        "  dc1 recovered at +{} ms, Ready again after {} ms (stale singleton fenced first)",
        ms(recovered - fault),
        ms(back_ready - recovered)
    );
    println!(
        "  web failback available:                +{} ms after recovery",
        ms(at(&web_back["available_at"]) - recovered)
    );
    println!("  db failback: {}", waiting["reason"]);
    println!(
        "  db failback confirmed -> available:    {} ms",
        ms(at(&db_back["available_at"]) - confirmed_at)
    );
    println!("  web zero-ready moments: {web_zero:?}");
    println!(
        "  db zero-ready moments: {db_zero:?} (unplanned, outside the outage and the confirmed failback: {db_unplanned:?})"
    );
    println!("  db in both clusters while dc1 counted Ready: {twice_counted:?}");
    println!(
        "  db in both clusters while dc1 was reachable (before its first contact; the member-side agent's part): {twice_reachable:?}"
    );
    assert!(samples.len() > 20, "the watcher kept up: {} samples", samples.len());
    assert!(
        web_zero.is_empty(),
        "web (active-active) had no ready pod: {web_zero:?}"
    );
    assert!(twice_counted.is_empty(), "db ran twice: {twice_counted:?}");
}
