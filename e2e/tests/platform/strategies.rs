//! Slotted release strategies through the gateway against a kubesim cluster:
//! blue-green, canary, A/B and shadow, each taken to the end and aborted or
//! rolled back mid-way, asserting on the Deployments, Services and
//! HTTPRoutes written into the cluster; a release driver stopped
//! mid-canary whose successor resumes it; and gray releases over two
//! clusters, by cluster and by partition: waves checked in each kubesim
//! cluster, manual promote, abort and rollback mid-way, a failed health
//! gate, and a driver restarted mid-rollout; strategies per service (a
//! StatefulSet rolls while the Deployments are canaried; only a service with
//! an HTTP port gets an HTTPRoute).

use std::sync::Arc;
use std::time::Duration;

use kernel::testkit::eventually;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::applications::{World, world_with};

const NS: &str = "/api/v1/namespaces/acme-web";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/acme-web/deployments";
const ROUTES: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/acme-web/httproutes";

fn spec(tag: &str) -> Value {
    json!({"services": [{"name": "web", "replicas": 1,
        "containers": [{"name": "web", "image": format!("registry.example/web:{tag}"), "resources": {"cpu_request": "100m"}, "ports": [{"name": "http", "container_port": 8080}]}]}]})
}

fn image(d: &Value) -> String {
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Backend name -> weight of the route's only rule.
fn weights(route: &Value) -> Vec<(String, u64)> {
    route["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| (b["name"].as_str().unwrap().to_string(), b["weight"].as_u64().unwrap()))
        .collect()
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(n, w)| ((*n).to_string(), *w)).collect()
}

impl World {
    /// A template `name` with versions 1 and 2 of one service `web`.
    async fn two_versions(&self, name: &str) -> (String, String) {
        let (_, template) = self
            .send(
                Method::POST,
                "/api/v1/templates",
                Some(json!({"tenant_id": self.tenant, "name": name})),
            )
            .await;
        let template = template["id"].as_str().unwrap().to_string();
        (
            self.version(&template, "1.0.0", spec("1")).await,
            self.version(&template, "2.0.0", spec("2")).await,
        )
    }

    async fn deploy(&self, name: &str, version: &str, strategy: Value) -> String {
        let body = json!({"name": name, "environment": "test", "template_version_id": version, "placement": {"explicit": [{"cluster": "dc1-prod"}]}, "strategy": strategy});
        let (status, app) = self
            .send(
                Method::POST,
                &format!("/api/v1/tenants/{}/applications", self.tenant),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{app}");
        app["id"].as_str().unwrap().to_string()
    }

    pub(crate) async fn new_release(&self, app: &str, body: Value) -> Value {
        let (status, r) = self
            .send(
                Method::POST,
                &format!("/api/v1/applications/{app}/releases"),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{r}");
        r
    }

    async fn act(&self, release: &Value, action: &str) -> (StatusCode, Value) {
        self.send(
            Method::POST,
            &format!("/api/v1/releases/{}/{action}", release["id"].as_str().unwrap()),
            None,
        )
        .await
    }

    /// The latest release once it is `number` in `phase` at `step`.
    async fn phase(&self, app: &str, number: u64, phase: &str, step: u64) -> Value {
        eventually(
            Duration::from_secs(40),
            &format!("release {number} {phase} at step {step}"),
            || async move {
                let (_, a) = self
                    .send(Method::GET, &format!("/api/v1/applications/{app}"), None)
                    .await;
                let latest = a["latest_release"].clone();
                (latest["number"] == number && latest["phase"] == phase && latest["step"] == step).then_some(latest)
            },
        )
        .await
    }

    async fn serving_slot(&self, service: &str) -> String {
        let s = self
            .kube(&format!("{NS}/services/{service}"))
            .await
            .unwrap_or_else(|| panic!("no Service {service}"));
        s["spec"]["selector"]["paas.io/slot"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn route(&self, name: &str) -> Value {
        self.kube(&format!("{ROUTES}/{name}"))
            .await
            .unwrap_or_else(|| panic!("no HTTPRoute {name}"))
    }

    async fn eventually_route(&self, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        eventually(Duration::from_secs(40), what, || async {
            let r = self.kube(&format!("{ROUTES}/{name}")).await?;
            check(&r).then_some(r)
        })
        .await
    }

    async fn gone(&self, path: &str) {
        eventually(Duration::from_secs(20), &format!("{path} removed"), || async {
            self.kube(path).await.is_none().then_some(())
        })
        .await;
    }

    async fn history(&self, app: &str) -> Vec<(u64, String)> {
        let (_, history) = self
            .send(Method::GET, &format!("/api/v1/applications/{app}/releases"), None)
            .await;
        history["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["number"].as_u64().unwrap(), r["state"].as_str().unwrap().to_string()))
            .collect()
    }
}

#[tokio::test]
async fn blue_green_switches_to_the_new_slot_and_keeps_the_old_until_confirmed_aborted_or_rolled_back() {
    let w = world_with("4", &[]).await;
    let (v1, v2) = w.two_versions("bg").await;
    let app = w.deploy("bg", &v1, json!({"type": "blue-green"})).await;
    let first = w.release_state(&app, 1, "succeeded").await;
    assert_eq!(first["latest_release"]["slot"], "blue");
    assert_eq!(
        image(&w.kube(&format!("{DEPLOYMENTS}/bg-web-blue")).await.unwrap()),
        "registry.example/web:1"
    );
    assert_eq!(w.serving_slot("bg-web").await, "blue");
    assert!(
        w.kube(&format!("{ROUTES}/bg-web")).await.is_none(),
        "blue-green switches the Service; it writes no HTTPRoute"
    );

    // Release 2: green deploys beside blue, then the Service switches to it; blue keeps running.
    let r2 = w.new_release(&app, json!({"template_version_id": v2})).await;
    assert_eq!(
        (r2["slot"].as_str(), r2["replaces"].as_u64()),
        (Some("green"), Some(1)),
        "{r2}"
    );
    let (status, early) = w.act(&r2, "confirm").await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "nothing to confirm before the switch: {early}"
    );
    let waiting = w.phase(&app, 2, "waiting", 0).await;
    assert_eq!(waiting["traffic"], 100);
    let green = w.kube(&format!("{DEPLOYMENTS}/bg-web-green")).await.unwrap();
    assert_eq!(
        (image(&green), green["status"]["availableReplicas"].as_u64()),
        ("registry.example/web:2".to_string(), Some(1)),
        "green was Available before the switch"
    );
    assert_eq!(
        image(&w.kube(&format!("{DEPLOYMENTS}/bg-web-blue")).await.unwrap()),
        "registry.example/web:1",
        "blue stays for an instant way back"
    );
    assert_eq!(w.serving_slot("bg-web").await, "green");
    let (status, problem) = w.act(&r2, "promote").await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "blue-green is confirmed, not promoted: {problem}"
    );

    // Abort: blue serves again at once, green goes, release 1 is current again.
    let (status, aborting) = w.act(&r2, "abort").await;
    assert_eq!(
        (status, aborting["phase"].as_str()),
        (StatusCode::OK, Some("aborting")),
        "{aborting}"
    );
    w.release_state(&app, 2, "aborted").await;
    // (The application and its latest release are read one after the other.)
    eventually(Duration::from_secs(5), "release 1 running again", || async {
        let (_, a) = w.send(Method::GET, &format!("/api/v1/applications/{app}"), None).await;
        (a["state"] == "running" && a["current_release"] == 1).then_some(())
    })
    .await;
    assert_eq!(w.serving_slot("bg-web").await, "blue");
    w.gone(&format!("{DEPLOYMENTS}/bg-web-green")).await;
    assert_eq!(
        w.act(&r2, "confirm").await.0,
        StatusCode::CONFLICT,
        "an aborted release stays aborted"
    );

    // Release 3: green again, confirmed: blue goes.
    let r3 = w.new_release(&app, json!({"template_version_id": v2})).await;
    assert_eq!(r3["slot"], "green");
    w.phase(&app, 3, "waiting", 0).await;
    let (status, confirmed) = w.act(&r3, "confirm").await;
    assert_eq!(
        (status, confirmed["phase"].as_str()),
        (StatusCode::OK, Some("finishing")),
        "{confirmed}"
    );
    w.release_state(&app, 3, "succeeded").await;
    w.gone(&format!("{DEPLOYMENTS}/bg-web-blue")).await;
    assert_eq!(w.serving_slot("bg-web").await, "green");

    // Release 4 returns to release 1's version in blue; a rollback to
    // release 3 while it waits switches straight back to green.
    let (status, r4) = w
        .send(
            Method::POST,
            &format!("/api/v1/applications/{app}/rollback"),
            Some(json!({"to_release": 1})),
        )
        .await;
    assert_eq!(
        (status, r4["slot"].as_str(), r4["replaces"].as_u64()),
        (StatusCode::CREATED, Some("blue"), Some(3)),
        "{r4}"
    );
    w.phase(&app, 4, "waiting", 0).await;
    assert_eq!(w.serving_slot("bg-web").await, "blue");
    assert_eq!(
        image(&w.kube(&format!("{DEPLOYMENTS}/bg-web-blue")).await.unwrap()),
        "registry.example/web:1"
    );
    let (status, rolled) = w
        .send(
            Method::POST,
            &format!("/api/v1/applications/{app}/rollback"),
            Some(json!({"to_release": 3})),
        )
        .await;
    assert_eq!(
        (status, rolled["number"].as_u64(), rolled["phase"].as_str()),
        (StatusCode::CREATED, Some(4), Some("aborting")),
        "{rolled}"
    );
    w.release_state(&app, 4, "aborted").await;
    assert_eq!(w.serving_slot("bg-web").await, "green");
    w.gone(&format!("{DEPLOYMENTS}/bg-web-blue")).await;
    assert_eq!(
        image(&w.kube(&format!("{DEPLOYMENTS}/bg-web-green")).await.unwrap()),
        "registry.example/web:2"
    );
    let states: Vec<(u64, String)> = w.history(&app).await;
    assert_eq!(
        states,
        [
            (4, "aborted".into()),
            (3, "succeeded".into()),
            (2, "aborted".into()),
            (1, "superseded".into())
        ]
    );
}

#[tokio::test]
async fn canary_steps_through_weights_pauses_resumes_promotes_and_aborts_back_to_zero() {
    let w = world_with("4", &[]).await;
    let (v1, v2) = w.two_versions("cn").await;
    let app = w
        .deploy(
            "cn",
            &v1,
            json!({"type": "canary", "steps": [10, 50, 100], "pause": true}),
        )
        .await;
    w.release_state(&app, 1, "succeeded").await;
    let route = w.route("cn-web").await;
    assert_eq!(
        route["spec"]["parentRefs"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "paas-system", "name": "paas-gateway"}])
    );
    assert_eq!(
        weights(&route),
        pairs(&[("cn-web-blue", 100)]),
        "the first release takes every request"
    );
    assert_eq!(
        w.kube(&format!("{NS}/services/cn-web-blue")).await.unwrap()["spec"]["selector"]["paas.io/slot"],
        "blue"
    );

    // Release 2 pauses at each step until resumed.
    let r2 = w.new_release(&app, json!({"template_version_id": v2})).await;
    let paused = w.phase(&app, 2, "waiting", 0).await;
    assert_eq!(paused["traffic"], 10);
    assert_eq!(
        weights(&w.route("cn-web").await),
        pairs(&[("cn-web-blue", 90), ("cn-web-green", 10)])
    );
    assert_eq!(
        image(&w.kube(&format!("{DEPLOYMENTS}/cn-web-green")).await.unwrap()),
        "registry.example/web:2"
    );
    assert_eq!(
        w.serving_slot("cn-web").await,
        "blue",
        "in-cluster clients stay on the stable version"
    );
    let (status, resumed) = w.act(&r2, "resume").await;
    assert_eq!(
        (status, resumed["step"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{resumed}"
    );
    w.phase(&app, 2, "waiting", 1).await;
    assert_eq!(
        weights(&w.route("cn-web").await),
        pairs(&[("cn-web-blue", 50), ("cn-web-green", 50)])
    );

    // Abort: back to 0% at once; the canary's Deployment and Service go.
    let (status, _) = w.act(&r2, "abort").await;
    assert_eq!(status, StatusCode::OK);
    w.release_state(&app, 2, "aborted").await;
    assert_eq!(weights(&w.route("cn-web").await), pairs(&[("cn-web-blue", 100)]));
    w.gone(&format!("{DEPLOYMENTS}/cn-web-green")).await;
    w.gone(&format!("{NS}/services/cn-web-green")).await;

    // Release 3 steps on its own, holding each step a second, and ends
    // with the canary as the stable version.
    w.new_release(
        &app,
        json!({"template_version_id": v2, "strategy": {"type": "canary", "steps": [20, 100], "pause_seconds": 1}}),
    )
    .await;
    w.eventually_route("cn-web", "the 20% step", |r| {
        weights(r) == pairs(&[("cn-web-blue", 80), ("cn-web-green", 20)])
    })
    .await;
    w.release_state(&app, 3, "succeeded").await;
    assert_eq!(weights(&w.route("cn-web").await), pairs(&[("cn-web-green", 100)]));
    assert_eq!(w.serving_slot("cn-web").await, "green");
    w.gone(&format!("{DEPLOYMENTS}/cn-web-blue")).await;

    // Release 4 (default steps) is promoted at its first pause.
    let r4 = w
        .new_release(
            &app,
            json!({"template_version_id": v1, "strategy": {"type": "canary", "pause": true}}),
        )
        .await;
    w.phase(&app, 4, "waiting", 0).await;
    assert_eq!(
        weights(&w.route("cn-web").await),
        pairs(&[("cn-web-green", 95), ("cn-web-blue", 5)])
    );
    let (status, promoted) = w.act(&r4, "promote").await;
    assert_eq!(
        (status, promoted["phase"].as_str()),
        (StatusCode::OK, Some("finishing")),
        "{promoted}"
    );
    w.release_state(&app, 4, "succeeded").await;
    assert_eq!(weights(&w.route("cn-web").await), pairs(&[("cn-web-blue", 100)]));
    assert_eq!(
        image(&w.kube(&format!("{DEPLOYMENTS}/cn-web-blue")).await.unwrap()),
        "registry.example/web:1"
    );
    w.gone(&format!("{DEPLOYMENTS}/cn-web-green")).await;
    assert_eq!(
        w.act(&r4, "abort").await.0,
        StatusCode::CONFLICT,
        "a finished release is not aborted; roll back instead"
    );
}

#[tokio::test]
async fn ab_matches_requests_and_shadow_mirrors_them_until_promoted_aborted_or_rolled_back() {
    let w = world_with("4", &[]).await;
    let (v1, v2) = w.two_versions("ab").await;
    let app = w
        .deploy(
            "ab",
            &v1,
            json!({"type": "ab", "match": {"header": {"name": "x-variant", "value": "b"}}}),
        )
        .await;
    w.release_state(&app, 1, "succeeded").await;

    // A/B on a header, promoted.
    let r2 = w.new_release(&app, json!({"template_version_id": v2})).await;
    w.phase(&app, 2, "waiting", 0).await;
    let rules = w.route("ab-web").await["spec"]["rules"].clone();
    assert_eq!(
        rules[0]["matches"],
        json!([{"headers": [{"type": "Exact", "name": "x-variant", "value": "b"}]}])
    );
    assert_eq!(rules[0]["backendRefs"][0]["name"], "ab-web-green");
    assert_eq!(
        rules[1]["backendRefs"],
        json!([{"group": "", "kind": "Service", "name": "ab-web-blue", "port": 8080, "weight": 100}]),
        "everyone else stays on blue"
    );
    let (status, _) = w.act(&r2, "promote").await;
    assert_eq!(status, StatusCode::OK);
    w.release_state(&app, 2, "succeeded").await;
    assert_eq!(weights(&w.route("ab-web").await), pairs(&[("ab-web-green", 100)]));
    assert_eq!(
        w.route("ab-web").await["spec"]["rules"].as_array().unwrap().len(),
        1,
        "no match left"
    );
    w.gone(&format!("{DEPLOYMENTS}/ab-web-blue")).await;

    // Shadow: every request mirrored to the new version, then aborted.
    let r3 = w
        .new_release(&app, json!({"template_version_id": v1, "strategy": {"type": "shadow"}}))
        .await;
    w.phase(&app, 3, "waiting", 0).await;
    let rules = w.route("ab-web").await["spec"]["rules"].clone();
    assert_eq!(
        rules[0]["filters"],
        json!([{"type": "RequestMirror", "requestMirror": {"backendRef": {"group": "", "kind": "Service", "name": "ab-web-blue", "port": 8080}}}])
    );
    assert_eq!(
        weights(&w.route("ab-web").await),
        pairs(&[("ab-web-green", 100)]),
        "answers still come from green"
    );
    let (status, _) = w.act(&r3, "abort").await;
    assert_eq!(status, StatusCode::OK);
    w.release_state(&app, 3, "aborted").await;
    let route = w.route("ab-web").await;
    assert_eq!(
        (weights(&route), route["spec"]["rules"][0].get("filters")),
        (pairs(&[("ab-web-green", 100)]), None),
        "no mirror left: {route}"
    );
    w.gone(&format!("{DEPLOYMENTS}/ab-web-blue")).await;

    // A/B on a cookie, rolled back to release 2 while it waits.
    let r4 = w.new_release(&app, json!({"template_version_id": v1, "strategy": {"type": "ab", "match": {"cookie": {"name": "variant", "value": "b"}}}})).await;
    assert_eq!(
        (r4["slot"].as_str(), r4["replaces"].as_u64()),
        (Some("blue"), Some(2)),
        "{r4}"
    );
    w.phase(&app, 4, "waiting", 0).await;
    let matched = &w.route("ab-web").await["spec"]["rules"][0]["matches"][0]["headers"][0];
    assert_eq!(
        (matched["name"].as_str(), matched["type"].as_str()),
        (Some("Cookie"), Some("RegularExpression")),
        "{matched}"
    );
    let (status, rolled) = w
        .send(
            Method::POST,
            &format!("/api/v1/applications/{app}/rollback"),
            Some(json!({"to_release": 2})),
        )
        .await;
    assert_eq!(
        (status, rolled["number"].as_u64()),
        (StatusCode::CREATED, Some(4)),
        "{rolled}"
    );
    w.release_state(&app, 4, "aborted").await;
    assert_eq!(weights(&w.route("ab-web").await), pairs(&[("ab-web-green", 100)]));
    w.gone(&format!("{DEPLOYMENTS}/ab-web-blue")).await;
    assert_eq!(
        image(&w.kube(&format!("{DEPLOYMENTS}/ab-web-green")).await.unwrap()),
        "registry.example/web:2"
    );
}

#[tokio::test]
async fn a_release_driver_stopped_mid_canary_is_resumed_by_its_successor() {
    // The apps service drives nothing here: the test runs the drivers.
    let w = world_with("4", &[("PAAS_APPS_RELEASE_DRIVER", "false")]).await;
    let start = release_drivers(&w).await;
    let first = tokio_util::sync::CancellationToken::new();
    let running = start(first.clone());

    let (v1, v2) = w.two_versions("rs").await;
    let app = w
        .deploy(
            "rs",
            &v1,
            json!({"type": "canary", "steps": [10, 50, 100], "pause_seconds": 2}),
        )
        .await;
    w.release_state(&app, 1, "succeeded").await;
    w.new_release(&app, json!({"template_version_id": v2})).await;
    w.eventually_route("rs-web", "the 10% step", |r| {
        weights(r) == pairs(&[("rs-web-blue", 90), ("rs-web-green", 10)])
    })
    .await;

    // The driver stops mid-canary; nothing moves, although the step's hold
    // is over and the release is due (a running driver would move it).
    first.cancel();
    running.await.unwrap().unwrap();
    due_past_hold(&w, &app, 2, Duration::from_secs(2)).await;
    assert_eq!(
        weights(&w.route("rs-web").await),
        pairs(&[("rs-web-blue", 90), ("rs-web-green", 10)])
    );
    let (_, a) = w.send(Method::GET, &format!("/api/v1/applications/{app}"), None).await;
    assert_eq!(
        (
            a["latest_release"]["phase"].as_str(),
            a["latest_release"]["step"].as_u64(),
            a["state"].as_str()
        ),
        (Some("traffic"), Some(0), Some("deploying")),
        "{a}"
    );

    // A new driver resumes at that step and finishes.
    let second = tokio_util::sync::CancellationToken::new();
    let resumed = start(second.clone());
    w.eventually_route("rs-web", "the 50% step", |r| {
        weights(r) == pairs(&[("rs-web-blue", 50), ("rs-web-green", 50)])
    })
    .await;
    w.release_state(&app, 2, "succeeded").await;
    assert_eq!(weights(&w.route("rs-web").await), pairs(&[("rs-web-green", 100)]));
    w.gone(&format!("{DEPLOYMENTS}/rs-web-blue")).await;
    assert_eq!(
        w.history(&app).await,
        [(2, "succeeded".to_string()), (1, "superseded".to_string())]
    );
    second.cancel();
    resumed.await.unwrap().unwrap();
}

/// A web Deployment with an HTTP port in front of a db StatefulSet with a
/// TCP port, both at `tag`.
fn web_and_db(tag: &str) -> Value {
    json!({"services": [
        {"name": "db", "controller": "StatefulSet", "replicas": 1,
         "containers": [{"name": "db", "image": format!("registry.example/db:{tag}"), "resources": {"cpu_request": "100m"}, "ports": [{"name": "postgres", "container_port": 5432}]}]},
        {"name": "web", "replicas": 1, "depends_on": ["db"],
         "containers": [{"name": "web", "image": format!("registry.example/web:{tag}"), "resources": {"cpu_request": "100m"}, "ports": [{"name": "http", "container_port": 8080}]}]}
    ]})
}

/// Service -> (strategy, note) of a release as the API reports it.
fn plan(release: &Value) -> Vec<(String, String, String)> {
    release["services"]
        .as_array()
        .unwrap_or_else(|| panic!("no services in {release}"))
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap().to_string(),
                s["strategy"].as_str().unwrap().to_string(),
                s["note"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_canary_rolls_the_stateful_set_in_place_and_routes_only_the_service_with_an_http_port() {
    const SETS: &str = "/apis/apps/v1/namespaces/acme-web/statefulsets";
    let w = world_with("4", &[]).await;
    let (_, template) = w
        .send(
            Method::POST,
            "/api/v1/templates",
            Some(json!({"tenant_id": w.tenant, "name": "mx"})),
        )
        .await;
    let template = template["id"].as_str().unwrap().to_string();
    let v1 = w.version(&template, "1.0.0", web_and_db("1")).await;
    let v2 = w.version(&template, "2.0.0", web_and_db("2")).await;
    let app = w
        .deploy("mx", &v1, json!({"type": "canary", "steps": [50, 100], "pause": true}))
        .await;
    let first = w.release_state(&app, 1, "succeeded").await;
    let rolled = plan(&first["latest_release"]);
    assert_eq!(
        rolled
            .iter()
            .map(|(s, t, _)| (s.as_str(), t.as_str()))
            .collect::<Vec<_>>(),
        [("db", "rolling"), ("web", "canary")],
        "{rolled:?}"
    );
    assert!(rolled[0].2.contains("StatefulSet mx-db"), "{rolled:?}");
    let set = w
        .kube(&format!("{SETS}/mx-db"))
        .await
        .expect("the StatefulSet, unslotted");
    assert_eq!(set["spec"]["updateStrategy"]["type"], "RollingUpdate");
    assert_eq!(set["spec"]["template"]["metadata"]["labels"].get("paas.io/slot"), None);
    assert_eq!(w.serving_slot("mx-db").await, "", "the db Service selects no slot");
    assert!(
        w.kube(&format!("{ROUTES}/mx-db")).await.is_none(),
        "a TCP service gets no HTTPRoute"
    );
    assert_eq!(weights(&w.route("mx-web").await), pairs(&[("mx-web-blue", 100)]));

    // Release 2: db rolls to 2 in place while web is canaried at 50%.
    let r2 = w.new_release(&app, json!({"template_version_id": v2})).await;
    let paused = w.phase(&app, 2, "waiting", 0).await;
    assert_eq!(paused["traffic"], 50);
    assert_eq!(
        weights(&w.route("mx-web").await),
        pairs(&[("mx-web-blue", 50), ("mx-web-green", 50)])
    );
    let set = w.kube(&format!("{SETS}/mx-db")).await.unwrap();
    assert_eq!(image(&set), "registry.example/db:2", "the StatefulSet rolled");
    assert_eq!(set["status"]["readyReplicas"], 1, "{set}");
    for name in ["mx-db-blue", "mx-db-green"] {
        assert!(
            w.kube(&format!("{NS}/services/{name}")).await.is_none(),
            "no slot Service {name}"
        );
    }
    assert!(w.kube(&format!("{ROUTES}/mx-db")).await.is_none());
    let (_, history) = w
        .send(Method::GET, &format!("/api/v1/applications/{app}/releases"), None)
        .await;
    let listed = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["number"] == 2)
        .unwrap()
        .clone();
    assert_eq!(plan(&listed)[0].1, "rolling", "{listed}");

    // Abort: web back on blue at once, db rolled back to 1.
    assert_eq!(w.act(&r2, "abort").await.0, StatusCode::OK);
    w.release_state(&app, 2, "aborted").await;
    assert_eq!(weights(&w.route("mx-web").await), pairs(&[("mx-web-blue", 100)]));
    eventually(Duration::from_secs(40), "db back on 1", || async {
        let set = w.kube(&format!("{SETS}/mx-db")).await?;
        (image(&set) == "registry.example/db:1").then_some(())
    })
    .await;
}

#[tokio::test]
async fn in_production_a_tenant_administrator_confirms_and_an_operator_may_abort() {
    let w = world_with("4", &[]).await;
    let (v1, v2) = w.two_versions("pay").await;
    let body = json!({"name": "pay", "environment": "production", "template_version_id": v1, "placement": {"explicit": [{"cluster": "dc1-prod"}]}, "strategy": {"type": "blue-green"}});
    let (status, app) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let app_id = app["id"].as_str().unwrap().to_string();
    assert_eq!(
        w.approve_as_another(app["latest_release"]["id"].as_str().unwrap())
            .await
            .0,
        StatusCode::OK
    );
    w.release_state(&app_id, 1, "succeeded").await;
    let token = |role: &'static str| {
        let w = &w;
        async move {
            let (_, t) = w
                .send(
                    Method::POST,
                    "/api/v1/tokens",
                    Some(json!({"name": role, "tenant_id": w.tenant, "role": role})),
                )
                .await;
            t["secret"].as_str().unwrap_or_else(|| panic!("{t}")).to_string()
        }
    };
    let (developer, operator) = (token("developer").await, token("operator").await);
    let as_ = |secret: &str, release: &Value, action: &str| {
        w.p.http
            .post(format!(
                "{}/api/v1/releases/{}/{action}",
                w.p.url,
                release["id"].as_str().unwrap()
            ))
            .bearer_auth(secret.to_string())
            .send()
    };

    let r2 = w.new_release(&app_id, json!({"template_version_id": v2})).await;
    assert_eq!(w.approve_as_another(r2["id"].as_str().unwrap()).await.0, StatusCode::OK);
    w.phase(&app_id, 2, "waiting", 0).await;
    assert_eq!(
        as_(&developer, &r2, "confirm").await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "production is confirmed by a tenant administrator"
    );
    assert_eq!(
        as_(&developer, &r2, "abort").await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "developers do not abort production either"
    );
    assert_eq!(
        as_(&operator, &r2, "abort").await.unwrap().status(),
        StatusCode::OK,
        "operators may abort production"
    );
    w.release_state(&app_id, 2, "aborted").await;
    assert_eq!(w.serving_slot("pay-web").await, "blue");

    let r3 = w.new_release(&app_id, json!({"template_version_id": v2})).await;
    assert_eq!(w.approve_as_another(r3["id"].as_str().unwrap()).await.0, StatusCode::OK);
    w.phase(&app_id, 3, "waiting", 0).await;
    assert_eq!(
        w.act(&r3, "confirm").await.0,
        StatusCode::OK,
        "the bootstrap administrator confirms"
    );
    w.release_state(&app_id, 3, "succeeded").await;
    w.gone(&format!("{DEPLOYMENTS}/pay-web-blue")).await;
    assert_eq!(w.serving_slot("pay-web").await, "green");
}

// Gray releases over both simulated clusters (dc1-prod, dc2-dr).

pub(crate) const A: &str = "dc1-prod";
pub(crate) const B: &str = "dc2-dr";

fn gray_spec(tag: &str, cpu: &str) -> Value {
    json!({"services": [{"name": "web", "replicas": 1,
        "containers": [{"name": "web", "image": format!("registry.example/web:{tag}"), "resources": {"cpu_request": cpu}, "ports": [{"name": "http", "container_port": 8080}]}]}]})
}

/// A world whose tenant has a partition (project `web`) in both clusters,
/// both Ready; `env` adds settings.
/// Starts release drivers of the world's apps schema outside the apps
/// service (which runs none here), each until its token is cancelled.
async fn release_drivers(
    w: &World,
) -> impl Fn(tokio_util::sync::CancellationToken) -> tokio::task::JoinHandle<kernel::Result<()>> {
    let pool = kernel::db::connect(&w.p.settings, "apps").await.unwrap();
    let channel = kernel::grpc::channel(&format!("http://{}", w.p.stack.service("federation").unwrap().grpc)).unwrap();
    let federation =
        apps::federation::Federation::new(channel, kernel::caller::CallerKey::new(w.p.settings.caller_key.clone()));
    move |stop| {
        let pacing = apps::driver::Pacing {
            poll: Duration::from_millis(100),
            deadline: Duration::from_secs(60),
        };
        let driver = apps::driver::Driver::new(
            pool.clone(),
            federation.clone(),
            Arc::new(tokio::sync::Notify::new()),
            pacing,
            apps::traffic::GatewayRef::default(),
        );
        tokio::spawn(driver.run(stop))
    }
}

/// Waits until release `number` of `app` is unclaimed, due, and its current
/// phase began more than `hold` ago, by the database's clock: the moment a
/// running driver would move it on.
async fn due_past_hold(w: &World, app: &str, number: i32, hold: Duration) {
    let pool = kernel::db::connect(&w.p.settings, "apps").await.unwrap();
    let app: uuid::Uuid = app.parse().unwrap();
    eventually(Duration::from_secs(20), "the release due past its hold", || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>(
                "SELECT claimed_until IS NULL AND next_check_at <= now()
                        AND phase_started_at + make_interval(secs => $3) <= now()
                 FROM releases WHERE application_id = $1 AND number = $2",
            )
            .bind(app)
            .bind(number)
            .bind(hold.as_secs_f64())
            .fetch_one(&pool)
            .await
            .ok()?
            .then_some(())
        }
    })
    .await;
}

/// Waits until no driver holds release `number` of `app`.
async fn unclaimed(w: &World, app: &str, number: i32) {
    let pool = kernel::db::connect(&w.p.settings, "apps").await.unwrap();
    let app: uuid::Uuid = app.parse().unwrap();
    eventually(Duration::from_secs(20), "the release let go", || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>(
                "SELECT claimed_until IS NULL OR claimed_until < now() FROM releases
                 WHERE application_id = $1 AND number = $2",
            )
            .bind(app)
            .bind(number)
            .fetch_one(&pool)
            .await
            .ok()?
            .then_some(())
        }
    })
    .await;
}

pub(crate) async fn two_clusters(env: &[(&str, &str)]) -> World {
    let world = world_with("40", env).await;
    let w = &world;
    let (_, projects) = w
        .send(Method::GET, &format!("/api/v1/tenants/{}/projects", w.tenant), None)
        .await;
    let project = projects["items"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{projects}"))
        .to_string();
    let (status, p) = w
        .send(
            Method::POST,
            &format!("/api/v1/projects/{project}/partitions"),
            Some(json!({"cluster": B, "data_centre": "dc2"})),
        )
        .await;
    assert!(status.is_success(), "{p}");
    for name in [A, B] {
        eventually(
            Duration::from_secs(20),
            &format!("{name} Ready with the namespace"),
            || async move {
                let (_, c) = w.send(Method::GET, &format!("/api/v1/clusters/{name}"), None).await;
                (c["condition"]["status"] == "Ready" && w.kube_in(name, NS).await.is_some()).then_some(())
            },
        )
        .await;
    }
    world
}

impl World {
    pub(crate) fn member(&self, name: &str) -> String {
        let i = if name == A { 0 } else { 1 };
        self.clusters[i].url().trim_end_matches('/').to_string()
    }

    pub(crate) async fn kube_in(&self, cluster: &str, path: &str) -> Option<Value> {
        let r = self
            .p
            .http
            .get(format!("{}{path}", self.member(cluster)))
            .send()
            .await
            .ok()?;
        if r.status() != StatusCode::OK {
            return None;
        }
        r.json().await.ok()
    }

    /// The image of Deployment `name` in `cluster` (empty when absent).
    async fn image_in(&self, cluster: &str, name: &str) -> String {
        self.kube_in(cluster, &format!("{DEPLOYMENTS}/{name}"))
            .await
            .map(|d| image(&d))
            .unwrap_or_default()
    }

    /// Waits until Deployment `name` runs `tag` Available in `cluster`.
    async fn runs(&self, cluster: &str, name: &str, tag: &str) {
        let want = format!("registry.example/web:{tag}");
        eventually(
            Duration::from_secs(40),
            &format!("{name} {tag} Available in {cluster}"),
            || {
                let want = want.clone();
                async move {
                    let d = self.kube_in(cluster, &format!("{DEPLOYMENTS}/{name}")).await?;
                    let s = &d["status"];
                    (image(&d) == want
                        && s["updatedReplicas"] == 1
                        && s["availableReplicas"] == 1
                        && s["observedGeneration"] == d["metadata"]["generation"])
                        .then_some(())
                }
            },
        )
        .await;
    }

    async fn gray_deploy(&self, name: &str, version: &str, strategy: Value) -> String {
        let body = json!({"name": name, "environment": "test", "template_version_id": version,
                          "placement": {"explicit": [{"cluster": A}, {"cluster": B}]}, "strategy": strategy});
        let (status, app) = self
            .send(
                Method::POST,
                &format!("/api/v1/tenants/{}/applications", self.tenant),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{app}");
        app["id"].as_str().unwrap().to_string()
    }

    /// Each cluster's revision of `service`'s binding as the application reports it.
    async fn revisions(&self, app: &str) -> Vec<(String, i64)> {
        let (_, a) = self
            .send(Method::GET, &format!("/api/v1/applications/{app}"), None)
            .await;
        let mut out: Vec<(String, i64)> = a["services"][0]["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["cluster"].as_str().unwrap().to_string(),
                    c["revision"].as_i64().unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }

    pub(crate) async fn gray_versions(&self, name: &str) -> (String, String) {
        let (_, template) = self
            .send(
                Method::POST,
                "/api/v1/templates",
                Some(json!({"tenant_id": self.tenant, "name": name})),
            )
            .await;
        let template = template["id"].as_str().unwrap().to_string();
        (
            self.version(&template, "1.0.0", gray_spec("1", "100m")).await,
            self.version(&template, "2.0.0", gray_spec("2", "100m")).await,
        )
    }
}

#[tokio::test]
async fn gray_by_cluster_upgrades_one_cluster_waits_for_promote_aborts_back_and_rolls_back() {
    let w = two_clusters(&[]).await;
    let (v1, v2) = w.gray_versions("gy").await;
    let app = w
        .gray_deploy("gy", &v1, json!({"type": "gray", "by": "cluster", "pause": "manual"}))
        .await;
    // Nothing to replace: release 1 goes everywhere at once.
    let first = w.release_state(&app, 1, "succeeded").await;
    assert!(first["latest_release"].get("gray_waves").is_none(), "{first}");
    w.runs(A, "gy-web", "1").await;
    w.runs(B, "gy-web", "1").await;

    // Release 2: wave 1 is dc1-prod (the placement's order); dc2-dr keeps release 1.
    let r2 = w.new_release(&app, json!({"template_version_id": v2})).await;
    assert_eq!((r2["slot"].as_str(), r2["replaces"].as_u64()), (None, Some(1)), "{r2}");
    let waiting = w.phase(&app, 2, "waiting", 0).await;
    assert_eq!(
        waiting["gray_waves"],
        json!([{"name": A, "clusters": [A]}, {"name": B, "clusters": [B]}]),
        "{waiting}"
    );
    assert!(waiting["message"].as_str().unwrap().contains("promote"), "{waiting}");
    w.runs(A, "gy-web", "2").await;
    assert_eq!(
        w.image_in(B, "gy-web").await,
        "registry.example/web:1",
        "the second wave has not started"
    );
    let held = w.revisions(&app).await;
    assert!(
        held[0].1 > held[1].1,
        "dc1-prod runs a newer revision than dc2-dr: {held:?}"
    );
    assert_eq!(
        w.act(&r2, "confirm").await.0,
        StatusCode::CONFLICT,
        "a gray release is promoted, not confirmed"
    );

    // Abort: dc1-prod returns to release 1; dc2-dr never left it.
    let (status, aborting) = w.act(&r2, "abort").await;
    assert_eq!(
        (status, aborting["phase"].as_str()),
        (StatusCode::OK, Some("aborting")),
        "{aborting}"
    );
    w.release_state(&app, 2, "aborted").await;
    w.runs(A, "gy-web", "1").await;
    assert_eq!(w.image_in(B, "gy-web").await, "registry.example/web:1");
    let back = w.revisions(&app).await;
    assert_eq!(back[0].1, back[1].1, "one revision everywhere again: {back:?}");
    eventually(Duration::from_secs(5), "release 1 running again", || async {
        let (_, a) = w.send(Method::GET, &format!("/api/v1/applications/{app}"), None).await;
        (a["state"] == "running" && a["current_release"] == 1).then_some(())
    })
    .await;

    // Release 3, in the order given: dc2-dr first, promoted through.
    let r3 = w
        .new_release(
            &app,
            json!({"template_version_id": v2, "strategy": {"type": "gray", "order": [B], "pause": "manual"}}),
        )
        .await;
    w.phase(&app, 3, "waiting", 0).await;
    w.runs(B, "gy-web", "2").await;
    assert_eq!(w.image_in(A, "gy-web").await, "registry.example/web:1");
    let (status, promoted) = w.act(&r3, "promote").await;
    assert_eq!(
        (status, promoted["phase"].as_str(), promoted["step"].as_u64()),
        (StatusCode::OK, Some("rollout"), Some(1)),
        "{promoted}"
    );
    w.release_state(&app, 3, "succeeded").await;
    w.runs(A, "gy-web", "2").await;
    assert_eq!(w.image_in(B, "gy-web").await, "registry.example/web:2");
    assert_eq!(
        w.act(&r3, "promote").await.0,
        StatusCode::CONFLICT,
        "a finished release is not promoted"
    );

    // A rollback to release 1 goes out the same way; rolling back to release
    // 3 while it waits is its abort.
    let (status, r4) = w
        .send(
            Method::POST,
            &format!("/api/v1/applications/{app}/rollback"),
            Some(json!({"to_release": 1})),
        )
        .await;
    assert_eq!(
        (status, r4["replaces"].as_u64()),
        (StatusCode::CREATED, Some(3)),
        "{r4}"
    );
    w.phase(&app, 4, "waiting", 0).await;
    w.runs(A, "gy-web", "1").await;
    assert_eq!(w.image_in(B, "gy-web").await, "registry.example/web:2");
    let (status, rolled) = w
        .send(
            Method::POST,
            &format!("/api/v1/applications/{app}/rollback"),
            Some(json!({"to_release": 3})),
        )
        .await;
    assert_eq!(
        (status, rolled["number"].as_u64(), rolled["phase"].as_str()),
        (StatusCode::CREATED, Some(4), Some("aborting")),
        "{rolled}"
    );
    w.release_state(&app, 4, "aborted").await;
    w.runs(A, "gy-web", "2").await;
    assert_eq!(
        w.history(&app).await,
        [
            (4, "aborted".into()),
            (3, "succeeded".into()),
            (2, "aborted".into()),
            (1, "superseded".into())
        ]
    );
}

#[tokio::test]
async fn gray_by_partition_goes_in_the_order_given_and_a_failed_health_gate_stops_with_the_rest_on_the_old_version() {
    let w = two_clusters(&[]).await;
    let (_, template) = w
        .send(
            Method::POST,
            "/api/v1/templates",
            Some(json!({"tenant_id": w.tenant, "name": "gp"})),
        )
        .await;
    let template = template["id"].as_str().unwrap().to_string();
    let v1 = w.version(&template, "1.0.0", gray_spec("1", "100m")).await;
    let v2 = w.version(&template, "2.0.0", gray_spec("2", "100m")).await;
    // 5 cpu per pod: within the tenant's quota, but no 4-cpu node takes it.
    let too_big = w.version(&template, "3.0.0", gray_spec("3", "5")).await;
    let (_, projects) = w
        .send(Method::GET, &format!("/api/v1/tenants/{}/projects", w.tenant), None)
        .await;
    let (_, partitions) = w
        .send(
            Method::GET,
            &format!(
                "/api/v1/projects/{}/partitions",
                projects["items"][0]["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    let partition_of = |cluster: &str| {
        partitions["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["cluster"] == cluster)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (pa, pb) = (partition_of(A), partition_of(B));

    let app = w
        .gray_deploy(
            "gp",
            &v1,
            json!({"type": "gray", "by": "partition", "order": [pb], "pause": "manual"}),
        )
        .await;
    w.release_state(&app, 1, "succeeded").await;
    let r2 = w.new_release(&app, json!({"template_version_id": v2})).await;
    let waiting = w.phase(&app, 2, "waiting", 0).await;
    assert_eq!(
        waiting["gray_waves"],
        json!([{"name": pb, "clusters": [B]}, {"name": pa, "clusters": [A]}]),
        "{waiting}"
    );
    w.runs(B, "gp-web", "2").await;
    assert_eq!(
        w.image_in(A, "gp-web").await,
        "registry.example/web:1",
        "dc1-prod's partition waits for the promote"
    );
    assert_eq!(w.act(&r2, "promote").await.0, StatusCode::OK);
    w.release_state(&app, 2, "succeeded").await;
    w.runs(A, "gp-web", "2").await;

    // A version that never becomes Available: the first wave's gate fails
    // at the deadline; the release fails with the reason and the second
    // partition keeps release 2.
    w.new_release(&app, json!({"template_version_id": too_big, "strategy": {"type": "gray", "by": "partition", "order": [pa], "pause": 1, "deadline_seconds": 3}})).await;
    let failed = w.release_state(&app, 3, "failed").await;
    let message = failed["latest_release"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("wave 1 of 2 ({pa}) was not Available within 3s"))
            && message.contains(&format!("{B} keep release 2")),
        "{message}"
    );
    assert_eq!(failed["state"], "failed");
    assert_eq!(
        w.image_in(A, "gp-web").await,
        "registry.example/web:3",
        "the first wave was written"
    );
    assert_eq!(
        w.image_in(B, "gp-web").await,
        "registry.example/web:2",
        "the second wave stays on the old version"
    );
    // The step that failed the release has let go of it, and a failed
    // release is never claimed again: nothing can go on from here.
    unclaimed(&w, &app, 3).await;
    assert_eq!(
        w.image_in(B, "gp-web").await,
        "registry.example/web:2",
        "nothing goes on after a failed gate"
    );

    // A rollback to release 2 (with release 2's strategy: dc2-dr's partition
    // first, then a promote) brings dc1-prod's partition back.
    let (status, r4) = w
        .send(
            Method::POST,
            &format!("/api/v1/applications/{app}/rollback"),
            Some(json!({"to_release": 2})),
        )
        .await;
    assert_eq!(
        (status, r4["replaces"].as_u64()),
        (StatusCode::CREATED, Some(2)),
        "{r4}"
    );
    w.phase(&app, 4, "waiting", 0).await;
    assert_eq!(
        w.image_in(A, "gp-web").await,
        "registry.example/web:3",
        "dc1-prod's partition waits for the promote"
    );
    assert_eq!(w.act(&r4, "promote").await.0, StatusCode::OK);
    w.release_state(&app, 4, "succeeded").await;
    w.runs(A, "gp-web", "2").await;
    w.runs(B, "gp-web", "2").await;
}

#[tokio::test]
async fn a_release_driver_stopped_mid_gray_rollout_is_resumed_by_its_successor() {
    // The apps service drives nothing here: the test runs the drivers.
    let w = two_clusters(&[("PAAS_APPS_RELEASE_DRIVER", "false")]).await;
    let start = release_drivers(&w).await;
    let first = tokio_util::sync::CancellationToken::new();
    let running = start(first.clone());

    let (v1, v2) = w.gray_versions("gr").await;
    let app = w.gray_deploy("gr", &v1, json!({"type": "gray", "pause": 2})).await;
    w.release_state(&app, 1, "succeeded").await;
    w.new_release(&app, json!({"template_version_id": v2})).await;
    w.runs(A, "gr-web", "2").await;

    // The driver stops during the first wave's pause; nothing moves, although
    // the pause is over and the release is due.
    first.cancel();
    running.await.unwrap().unwrap();
    due_past_hold(&w, &app, 2, Duration::from_secs(2)).await;
    assert_eq!(w.image_in(B, "gr-web").await, "registry.example/web:1");
    let (_, a) = w.send(Method::GET, &format!("/api/v1/applications/{app}"), None).await;
    assert_eq!(
        (
            a["latest_release"]["phase"].as_str(),
            a["latest_release"]["step"].as_u64(),
            a["state"].as_str()
        ),
        (Some("rollout"), Some(0), Some("deploying")),
        "{a}"
    );

    // A new driver goes on with the second wave and finishes.
    let second = tokio_util::sync::CancellationToken::new();
    let resumed = start(second.clone());
    w.release_state(&app, 2, "succeeded").await;
    w.runs(B, "gr-web", "2").await;
    assert_eq!(w.image_in(A, "gr-web").await, "registry.example/web:2");
    assert_eq!(
        w.history(&app).await,
        [(2, "succeeded".to_string()), (1, "superseded".to_string())]
    );
    second.cancel();
    resumed.await.unwrap().unwrap();
}

/// What the cluster showed at one moment of a switch: the release being
/// driven, the slot the Service `<name>` selects (empty: none), how many
/// ready pods it selects, and how many ready pods run the old image.
#[derive(Debug, Clone)]
struct Sample {
    at: &'static str,
    slot: String,
    serving: usize,
    old: usize,
}

fn ready(pod: &Value) -> bool {
    pod["metadata"].get("deletionTimestamp").is_none()
        && pod["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

impl World {
    /// One look at Service `service` and the pods of the namespace.
    async fn sample(&self, at: &'static str, service: &str, old_image: &str) -> Option<Sample> {
        let s = self.kube(&format!("{NS}/services/{service}")).await?;
        let pods = self.kube(&format!("{NS}/pods")).await?;
        let selector = s["spec"]["selector"].as_object().cloned().unwrap_or_default();
        let pods: Vec<&Value> = pods["items"].as_array()?.iter().filter(|p| ready(p)).collect();
        let serving = pods
            .iter()
            .filter(|p| !selector.is_empty() && selector.iter().all(|(k, v)| p["metadata"]["labels"][k] == *v))
            .count();
        let old = pods
            .iter()
            .filter(|p| p["spec"]["containers"][0]["image"] == old_image)
            .count();
        Some(Sample {
            at,
            slot: s["spec"]["selector"]["paas.io/slot"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            serving,
            old,
        })
    }
}

#[tokio::test]
async fn switching_between_unslotted_and_slotted_strategies_never_leaves_the_service_without_ready_pods() {
    let w = world_with("4", &[]).await;
    let (v1, v2) = w.two_versions("sw").await;
    let app = w.deploy("sw", &v1, json!({"type": "rolling"})).await;
    w.release_state(&app, 1, "succeeded").await;
    let first = w
        .kube(&format!("{DEPLOYMENTS}/sw-web"))
        .await
        .expect("the rolling release runs Deployment sw-web");
    let at = std::sync::Mutex::new("1 rolling");
    let done = std::sync::atomic::AtomicBool::new(false);
    let samples = std::sync::Mutex::new(Vec::<Sample>::new());

    // Samples the cluster every few milliseconds while the releases run.
    let sampler = async {
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let label = *at.lock().unwrap();
            if let Some(s) = w.sample(label, "sw-web", "registry.example/web:1").await {
                samples.lock().unwrap().push(s);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let releases = async {
        let step = |label: &'static str| *at.lock().unwrap() = label;
        // Rolling -> blue-green: the running Deployment becomes the blue slot.
        step("2 blue-green rollout");
        let r2 = w
            .new_release(
                &app,
                json!({"template_version_id": v2, "strategy": {"type": "blue-green"}}),
            )
            .await;
        assert_eq!(
            (r2["slot"].as_str(), r2["replaces"].as_u64()),
            (Some("green"), Some(1)),
            "{r2}"
        );
        w.phase(&app, 2, "waiting", 0).await;
        // Rolled back while it waits: an abort back to release 1.
        step("2 aborted back to rolling");
        let (status, rolled) = w
            .send(
                Method::POST,
                &format!("/api/v1/applications/{app}/rollback"),
                Some(json!({"to_release": 1})),
            )
            .await;
        assert_eq!(
            (status, rolled["phase"].as_str()),
            (StatusCode::CREATED, Some("aborting")),
            "{rolled}"
        );
        w.release_state(&app, 2, "aborted").await;
        w.gone(&format!("{DEPLOYMENTS}/sw-web-green")).await;
        let kept = w
            .kube(&format!("{DEPLOYMENTS}/sw-web"))
            .await
            .expect("release 1's Deployment still runs");
        assert_eq!(
            kept["metadata"]["uid"], first["metadata"]["uid"],
            "release 1's Deployment was never replaced"
        );

        // Blue-green again, confirmed.
        step("3 blue-green");
        let r3 = w
            .new_release(
                &app,
                json!({"template_version_id": v2, "strategy": {"type": "blue-green"}}),
            )
            .await;
        w.phase(&app, 3, "waiting", 0).await;
        step("3 confirmed");
        assert_eq!(w.act(&r3, "confirm").await.0, StatusCode::OK);
        w.release_state(&app, 3, "succeeded").await;
        w.gone(&format!("{DEPLOYMENTS}/sw-web")).await;

        // Rolled back to the rolling release 1: a new unslotted release.
        step("4 rolling after blue-green");
        let (status, r4) = w
            .send(
                Method::POST,
                &format!("/api/v1/applications/{app}/rollback"),
                Some(json!({"to_release": 1})),
            )
            .await;
        assert_eq!((status, r4["slot"].as_str()), (StatusCode::CREATED, None), "{r4}");
        w.release_state(&app, 4, "succeeded").await;
        w.gone(&format!("{DEPLOYMENTS}/sw-web-green")).await;

        // Rolling -> canary to the end.
        step("5 canary");
        w.new_release(
            &app,
            json!({"template_version_id": v2, "strategy": {"type": "canary", "steps": [50, 100]}}),
        )
        .await;
        w.release_state(&app, 5, "succeeded").await;
        step("done");
        // A few samples of the settled state before the sampler stops.
        let settled = samples.lock().unwrap().len() + 10;
        eventually(Duration::from_secs(10), "samples after the last release", || async {
            (samples.lock().unwrap().len() >= settled).then_some(())
        })
        .await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    tokio::join!(sampler, releases);

    let samples = samples.into_inner().unwrap();
    assert!(samples.len() > 100, "the sampler kept up: {} samples", samples.len());
    let empty: Vec<&Sample> = samples.iter().filter(|s| s.serving == 0).collect();
    assert!(
        empty.is_empty(),
        "the Service selected no ready pod {} times, first: {:?}",
        empty.len(),
        empty.iter().take(5).collect::<Vec<_>>()
    );
    let old_gone: Vec<&Sample> = samples.iter().filter(|s| s.at.starts_with('2') && s.old == 0).collect();
    assert!(
        old_gone.is_empty(),
        "release 1's pods stopped being ready before the switch back: {:?}",
        old_gone.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        samples.iter().any(|s| s.slot == "green") && samples.iter().any(|s| s.slot == "blue"),
        "the Service switched slots"
    );

    // Where it ended: a canary in green serving everything.
    assert_eq!(w.serving_slot("sw-web").await, "green");
    assert_eq!(weights(&w.route("sw-web").await), pairs(&[("sw-web-green", 100)]));
    assert_eq!(
        image(&w.kube(&format!("{DEPLOYMENTS}/sw-web-green")).await.unwrap()),
        "registry.example/web:2"
    );
    w.gone(&format!("{DEPLOYMENTS}/sw-web")).await;
}
