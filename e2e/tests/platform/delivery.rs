//! Delivery end to end: the sample repository's pipeline (its
//! `.paas/pipeline.yaml`) from a `git push` of a `v*` tag through build,
//! unit tests, the image (buildah on a real runner, pushed through the
//! gateway into the tenant's catalog), a deploy to the dev application,
//! the four-eyes gate, the security gate (the catalog's scanner, a Harbor
//! adapter double) and the production release with apps' own approval, the
//! image pinned by digest in the kubesim cluster; then a `feature-x` branch
//! getting an application of its own and losing it when the branch is deleted.
//! The deploy steps are executed by a second devops process (the platform's
//! own has `PAAS_DEVOPS_DELIVERY=false`), stopped while the production
//! release waits for apps' approval and started again: the new process
//! finds the release and finishes the step without making another. A
//! `promote` step takes what dev runs (template version and image) to
//! production after the gates, and is refused without a passed scan.

use std::time::Duration;

use kernel::grpc::uri;
use kernel::service::Addresses;
use kernel::shutdown::Shutdown;
use kernel::testkit::eventually;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::admission::{ScannerDouble, scanner_double};
use crate::applications::{World, world_with};
use crate::isolation::send;
use crate::pipelines::{git, git_server, installed};

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/acme-web/deployments";
const ZERO: &str = "0000000000000000000000000000000000000000";

async fn token(w: &World, name: &str, role: &str) -> String {
    let (status, created) = w
        .send(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": name, "tenant_id": w.tenant, "role": role})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["secret"].as_str().unwrap().to_string()
}

/// An application of template `version` in project `web` on `dc1-prod`,
/// running its first release (approved by another administrator in production).
async fn application(w: &World, name: &str, environment: &str, version: &str) -> String {
    let (status, app) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(
                json!({"name": name, "environment": environment, "template_version_id": version,
                        "parameters": {"image": "registry.example/calc:0"},
                        "placement": {"explicit": [{"cluster": "dc1-prod"}]}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let id = app["id"].as_str().unwrap().to_string();
    if environment == "production" {
        let release = app["latest_release"]["id"].as_str().unwrap();
        let (status, approved) = w.approve_as_another(release).await;
        assert_eq!(status, StatusCode::OK, "{approved}");
    }
    w.release_state(&id, 1, "succeeded").await;
    id
}

/// A devops process that executes deploy, security-scan and promote steps
/// against the platform's apps and image catalog, until its shutdown.
async fn deliverer(w: &World) -> Shutdown {
    let service = |name: &str| uri(w.p.stack.service(name).unwrap().grpc);
    let delivery = devops::deployment::Settings {
        apps_url: service("apps"),
        images_url: Some(service("images")),
        deliver: true,
    };
    let shutdown = Shutdown::new();
    devops::start_delivering(
        &w.p.settings,
        devops::registry::Settings::default(),
        delivery,
        Addresses::ephemeral(),
        "127.0.0.1:0".parse().unwrap(),
        &shutdown,
    )
    .await
    .expect("the delivering devops starts");
    shutdown
}

async fn run_of(w: &World, dev: &str, id: &str) -> Value {
    send(&w.p, dev, Method::GET, &format!("/api/v1/runs/{id}"), None)
        .await
        .1
}

fn find_step<'a>(run: &'a Value, name: &str) -> Option<&'a Value> {
    run["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["steps"].as_array().into_iter().flatten())
        .find(|s| s["name"] == name)
}

fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    find_step(run, name).unwrap_or_else(|| panic!("no step {name} in {run}"))
}

/// Waits until `check` holds for the run; fails at once when the run fails.
async fn run_until(w: &World, dev: &str, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    eventually(Duration::from_secs(180), what, || async {
        let run = run_of(w, dev, id).await;
        assert_ne!(run["state"], "failed", "{run}");
        check(&run).then_some(run)
    })
    .await
}

/// What both delivery tests stand on: a platform whose deploy, scan and
/// promote steps a second devops process runs (`delivering`), the master
/// registry, a scanner double reporting one finding of `severity`, and the
/// tenant's `calc` template.
struct Delivery {
    w: World,
    delivering: Shutdown,
    double: ScannerDouble,
    template: String,
    _registry: paas::master_registry::MasterRegistry,
}

impl Delivery {
    /// `None` (the test skipped) where the registry, buildah or skopeo is
    /// not installed, which CI never allows.
    async fn start(severity: &str) -> Option<Self> {
        if paas::master_registry::binary().is_none() || !installed("buildah") || !installed("skopeo") {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI needs docker-registry, buildah and skopeo (scripts/deps installs them)"
            );
            eprintln!("skipped: docker-registry, buildah or skopeo is not installed");
            return None;
        }
        let w = world_with("4", &[("PAAS_DEVOPS_DELIVERY", "false")]).await;
        let delivering = deliverer(&w).await;
        let registry = paas::master_registry::start(&w.p.settings, &w.p.stack)
            .await
            .expect("the registry starts")
            .expect("installed");
        let double = scanner_double(json!([
            {"id": "CVE-2026-0101", "severity": severity, "package": "busybox", "version": "1.36", "fix_version": "1.37"}
        ]))
        .await;
        let (status, scanner) = w
            .send(
                Method::POST,
                "/api/v1/scanners",
                Some(json!({"name": "double", "url": double.url, "authorization": "Bearer adapter-secret"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{scanner}");
        let (_, template) = w
            .send(
                Method::POST,
                "/api/v1/templates",
                Some(json!({"tenant_id": w.tenant, "name": "calc"})),
            )
            .await;
        let template = template["id"].as_str().unwrap().to_string();
        Some(Self {
            w,
            delivering,
            double,
            template,
            _registry: registry,
        })
    }
}

/// The `calc` template's spec: one web service whose image is a parameter.
fn calc_spec() -> Value {
    json!({"parameters": [{"name": "image", "type": "string"}],
           "services": [{"name": "web", "containers": [{"name": "web", "image": "${image}",
               "resources": {"cpu_request": "100m"}, "ports": [{"name": "http", "container_port": 8080}]}]}]})
}

/// A `paas runner` of the tenant (`builder`, two slots) registered by `dev`,
/// running until the guard drops (with its work directory).
async fn builder(w: &World, dev: &str) -> (tempfile::TempDir, tokio_util::sync::DropGuard) {
    let (status, runner) = send(
        &w.p,
        dev,
        Method::POST,
        "/api/v1/runners",
        Some(json!({"tenant_id": w.tenant, "name": "builder"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{runner}");
    let work_dir = tempfile::tempdir().unwrap();
    let settings = devops::agent::Settings {
        url: format!("http://{}", w.p.stack.runners.unwrap()),
        token: kernel::settings::Secret::new(runner["token"].as_str().unwrap()),
        concurrency: 2,
        work_dir: work_dir.path().to_path_buf(),
        sandbox: devops::agent::Sandbox::detect().await,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let guard = stop.clone().drop_guard();
    tokio::spawn(devops::agent::run(settings, stop));
    (work_dir, guard)
}

/// Two tenant administrators (`alice<suffix>`, `bob<suffix>`) approve `gate`.
async fn four_eyes(w: &World, gate: &str, suffix: &str) {
    for who in ["alice", "bob"] {
        let admin = token(w, &format!("{who}{suffix}"), "tenant-admin").await;
        let (status, decided) = send(
            &w.p,
            &admin,
            Method::POST,
            &format!("/api/v1/steps/{gate}/approval"),
            Some(json!({"approve": true, "comment": "ship it"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{decided}");
    }
}

/// Waits until production's deployment runs `pinned` (`image@sha256:...`);
/// the image it runs.
async fn production_runs(w: &World, pinned: &str) -> String {
    eventually(Duration::from_secs(40), "production running the image", || async {
        let d = w.kube(&format!("{DEPLOYMENTS}/calc-web")).await?;
        let image = d["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()?
            .to_string();
        (image == pinned).then_some(image)
    })
    .await
}

#[tokio::test]
async fn a_tag_goes_from_push_to_production_through_dev_the_gates_and_the_scan_and_a_feature_branch_gets_its_own_environment()
 {
    let Some(Delivery {
        w,
        delivering,
        double,
        template,
        _registry,
    }) = Delivery::start("Low").await
    else {
        return;
    };
    let version = w.version(&template, "1.0.0", calc_spec()).await;
    let dev_app = application(&w, "calc-dev", "test", &version).await;
    let production = application(&w, "calc", "production", &version).await;

    let dir = tempfile::tempdir().unwrap();
    let (url, work, _daemon) = git_server(dir.path()).await;
    let dev = token(&w, "ci", "developer").await;
    let (status, pipeline) = send(
        &w.p,
        &dev,
        Method::POST,
        "/api/v1/pipelines",
        Some(json!({"tenant_id": w.tenant, "name": "calc", "repository": url, "definition_source": "repository"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{pipeline}");
    let pipeline = pipeline["id"].as_str().unwrap().to_string();
    let (status, hook) = send(
        &w.p,
        &dev,
        Method::POST,
        &format!("/api/v1/pipelines/{pipeline}/webhooks"),
        Some(json!({"format": "gitea"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_string();
    let hook_url = hook["webhook"]["url"].as_str().unwrap().to_string();
    let deliver = |delivery: &str, body: Value| {
        let body = body.to_string();
        w.p.anonymous(Method::POST, &hook_url)
            .header("Content-Type", "application/json")
            .header("X-Gitea-Event", "push")
            .header("X-Gitea-Delivery", delivery)
            .header("X-Hub-Signature-256", devops::webhook::sign(&secret, body.as_bytes()))
            .body(body)
            .send()
    };
    let _builder = builder(&w, &dev).await;

    // A v* tag: the production path.
    git(&work, &["tag", "v1.0.0"]).await;
    git(&work, &["push", "--quiet", &url, "main", "v1.0.0"]).await;
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&work)
        .output()
        .unwrap();
    let commit = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let accepted = deliver("d-1", json!({"ref": "refs/tags/v1.0.0", "after": commit}))
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let run_id = accepted.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();

    let run = run_until(&w, &dev, &run_id, "the release gate waiting", |r| {
        find_step(r, "release-gate").is_some_and(|s| s["state"] == "waiting")
    })
    .await;
    let image = step(&run, "image");
    let digest = image["image_digest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{image}");
    let pinned = format!("{}@{digest}", image["image"].as_str().unwrap());
    let deployed = step(&run, "deploy-dev");
    assert_eq!(deployed["state"], "succeeded", "{deployed}");
    assert!(
        deployed["message"].as_str().unwrap().contains("is Healthy"),
        "{deployed}"
    );
    let (_, a) = w
        .send(Method::GET, &format!("/api/v1/applications/{dev_app}"), None)
        .await;
    assert_eq!(a["latest_release"]["parameters"]["image"], pinned.as_str(), "{a}");
    assert_eq!(a["latest_release"]["number"], 2, "{a}");

    // Four eyes: two tenant administrators; the webhook started the run.
    let gate = step(&run, "release-gate")["id"].as_str().unwrap().to_string();
    four_eyes(&w, &gate, "").await;

    // The scan passes (a low finding, max_severity high); the production
    // release then waits for apps' own approval.
    let run = run_until(&w, &dev, &run_id, "the production release awaiting approval", |r| {
        find_step(r, "ship").is_some_and(|s| s["message"].as_str().is_some_and(|m| m.contains("approval in apps")))
    })
    .await;
    let scan = step(&run, "scan");
    assert_eq!(scan["state"], "succeeded", "{scan}");
    assert!(scan["message"].as_str().unwrap().contains(&digest), "{scan}");
    let requested = double.requests.lock().unwrap().clone();
    assert!(
        requested.iter().any(|r| r["artifact"]["digest"] == digest.as_str()),
        "the scanner saw the digest built: {requested:?}"
    );
    let (_, p) = w
        .send(Method::GET, &format!("/api/v1/applications/{production}"), None)
        .await;
    assert_eq!(p["latest_release"]["state"], "awaiting-approval", "{p}");
    assert_eq!(p["latest_release"]["number"], 2, "{p}");

    // devops stops mid-deploy; the release goes on in apps meanwhile.
    delivering.trigger();
    delivering.drain(Duration::from_secs(10)).await;
    let (status, approved) = w.approve_as_another(p["latest_release"]["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    w.release_state(&production, 2, "succeeded").await;
    let run = run_of(&w, &dev, &run_id).await;
    assert_eq!(
        step(&run, "ship")["state"],
        "running",
        "nobody delivers while devops is down: {run}"
    );
    let _delivering = deliverer(&w).await;
    let run = run_until(&w, &dev, &run_id, "the run succeeding", |r| r["state"] == "succeeded").await;
    assert!(
        step(&run, "ship")["message"]
            .as_str()
            .unwrap()
            .contains("calc is Healthy"),
        "{run}"
    );
    let running = production_runs(&w, &pinned).await;
    assert!(running.ends_with(&digest));
    let (_, p) = w
        .send(Method::GET, &format!("/api/v1/applications/{production}"), None)
        .await;
    assert_eq!(
        p["latest_release"]["number"], 2,
        "the restarted devops made no second release: {p}"
    );

    // A feature branch: an application of its own, gone with the branch.
    git(&work, &["checkout", "--quiet", "-b", "feature-x"]).await;
    std::fs::write(work.join("NOTES"), "feature x\n").unwrap();
    git(&work, &["add", "NOTES"]).await;
    git(&work, &["commit", "--quiet", "-m", "feature x"]).await;
    git(&work, &["push", "--quiet", &url, "feature-x"]).await;
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&work)
        .output()
        .unwrap();
    let commit = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let accepted = deliver("d-2", json!({"ref": "refs/heads/feature-x", "after": commit}))
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let feature_run = accepted.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let run = run_until(&w, &dev, &feature_run, "the feature run succeeding", |r| {
        r["state"] == "succeeded"
    })
    .await;
    assert!(
        step(&run, "deploy-dev")["message"]
            .as_str()
            .unwrap()
            .contains("calc-dev-x is Healthy"),
        "{run}"
    );
    let (_, apps) = w
        .send(Method::GET, &format!("/api/v1/tenants/{}/applications", w.tenant), None)
        .await;
    let own = apps["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "calc-dev-x")
        .unwrap_or_else(|| panic!("{apps}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, a) = w.send(Method::GET, &format!("/api/v1/applications/{own}"), None).await;
    assert_eq!(a["environment"], "test", "{a}");
    let (_, a) = w
        .send(Method::GET, &format!("/api/v1/applications/{dev_app}"), None)
        .await;
    assert_eq!(
        a["latest_release"]["number"], 2,
        "the dev application is untouched: {a}"
    );

    git(&work, &["push", "--quiet", &url, "--delete", "feature-x"]).await;
    let gone = deliver(
        "d-3",
        json!({"ref": "refs/heads/feature-x", "before": commit, "after": ZERO, "deleted": true}),
    )
    .await
    .unwrap();
    assert_eq!(gone.status(), StatusCode::ACCEPTED);
    eventually(Duration::from_secs(40), "the branch's application deleted", || async {
        let (status, _) = w.send(Method::GET, &format!("/api/v1/applications/{own}"), None).await;
        (status == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
}

/// A stored pipeline that promotes what dev runs into production: the image
/// built, deployed to dev, then the four-eyes gate, the security gate and a
/// `promote` step (not a second deploy).
const PROMOTION: &str = concat!(
    "environments:\n",
    "  dev:\n",
    "    application: calc-dev\n",
    "  production:\n",
    "    application: calc\n",
    "stages:\n",
    "  - name: image\n",
    "    steps:\n",
    "      - name: image\n",
    "        kind: build-image\n",
    "        repository: REPOSITORY\n",
    "  - name: dev\n",
    "    environment: dev\n",
    "    steps:\n",
    "      - name: deploy-dev\n",
    "        kind: deploy\n",
    "        timeout: 5m\n",
    "  - name: production\n",
    "    environment: production\n",
    "    steps:\n",
    "      - name: release-gate\n",
    "        kind: approval\n",
    "        approvers:\n",
    "          groups: [tenant-admin]\n",
    "        timeout: 24h\n",
    "      - name: scan\n",
    "        kind: security-scan\n",
    "        max_severity: high\n",
    "        timeout: 5m\n",
    "      - name: promote\n",
    "        kind: promote\n",
    "        to: production\n",
    "        timeout: 10m\n",
);
/// [`PROMOTION`]'s security gate, which the unscanned pipeline leaves out.
const SCAN: &str = concat!(
    "      - name: scan\n",
    "        kind: security-scan\n",
    "        max_severity: high\n",
    "        timeout: 5m\n",
);

/// A stored pipeline of the sample repository at `url`; its id.
async fn stored_pipeline(w: &World, dev: &str, name: &str, url: &str, definition: &str) -> String {
    let (status, pipeline) = send(
        &w.p,
        dev,
        Method::POST,
        "/api/v1/pipelines",
        Some(json!({"tenant_id": w.tenant, "name": name, "repository": url,
                    "definition": definition, "definition_source": "platform"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{pipeline}");
    pipeline["id"].as_str().unwrap().to_string()
}

async fn start_run(w: &World, dev: &str, pipeline: &str, git_ref: &str) -> String {
    let (status, run) = send(
        &w.p,
        dev,
        Method::POST,
        &format!("/api/v1/pipelines/{pipeline}/runs"),
        Some(json!({"ref": git_ref})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    run["id"].as_str().unwrap().to_string()
}

/// The catalog's tag `tag` of `repository`, as the platform administrator reads it.
async fn catalog_tag(w: &World, repository: &str, tag: &str) -> Value {
    let admin = w.p.admin_token.clone();
    let (_, repos) = send(
        &w.p,
        &admin,
        Method::GET,
        &format!("/api/v1/repositories?q={repository}"),
        None,
    )
    .await;
    let id = repos["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == repository)
        .unwrap_or_else(|| panic!("no repository {repository} in {repos}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, t) = send(
        &w.p,
        &admin,
        Method::GET,
        &format!("/api/v1/repositories/{id}/tags/{tag}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{t}");
    t
}

#[tokio::test]
async fn a_promote_step_takes_what_dev_runs_to_production_after_the_gates_and_not_without_a_scan() {
    let Some(Delivery {
        w,
        delivering: _delivering,
        double: _double,
        template,
        _registry,
    }) = Delivery::start("Medium").await
    else {
        return;
    };
    let old = w.version(&template, "1.0.0", calc_spec()).await;
    let new = w.version(&template, "1.1.0", calc_spec()).await;
    // Dev already runs the new template version; production the old one.
    let dev_app = application(&w, "calc-dev", "test", &new).await;
    let production = application(&w, "calc", "production", &old).await;

    let dir = tempfile::tempdir().unwrap();
    let (url, work, _daemon) = git_server(dir.path()).await;
    git(&work, &["tag", "v1.0.0"]).await;
    git(&work, &["push", "--quiet", &url, "main", "v1.0.0"]).await;
    let dev = token(&w, "ci", "developer").await;
    let _builder = builder(&w, &dev).await;

    // Without a security-scan step the promotion to production is refused
    // before the image's lifecycle moves or a release is made.
    let unscanned = PROMOTION
        .replace(SCAN, "")
        .replace("REPOSITORY", "acme/web/calc-unscanned");
    let unscanned = stored_pipeline(&w, &dev, "calc-unscanned", &url, &unscanned).await;
    let refused = start_run(&w, &dev, &unscanned, "refs/tags/v1.0.0").await;
    let gate = run_until(&w, &dev, &refused, "the unscanned run's gate waiting", |r| {
        find_step(r, "release-gate").is_some_and(|s| s["state"] == "waiting")
    })
    .await;
    let gate = step(&gate, "release-gate")["id"].as_str().unwrap().to_string();
    four_eyes(&w, &gate, "-unscanned").await;
    let run = eventually(Duration::from_secs(180), "the unscanned run failing", || async {
        let run = run_of(&w, &dev, &refused).await;
        (run["state"] == "failed").then_some(run)
    })
    .await;
    let promote = step(&run, "promote");
    assert_eq!(promote["state"], "failed", "{run}");
    let why = promote["message"].as_str().unwrap();
    assert!(why.contains("refused by the security gate"), "{why}");
    assert!(why.contains(devops::scan_gate::PRODUCTION_RULE), "{why}");
    let unscanned_image = step(&run, "image")["image_digest"].as_str().unwrap().to_string();
    let tag = catalog_tag(&w, "acme/web/calc-unscanned", "1.0.0").await;
    assert_eq!(tag["digest"], unscanned_image.as_str(), "{tag}");
    assert_ne!(tag["state"], "released", "a refused image is not released: {tag}");
    let (_, p) = w
        .send(Method::GET, &format!("/api/v1/applications/{production}"), None)
        .await;
    assert_eq!(p["latest_release"]["number"], 1, "nothing reached production: {p}");

    // With the scan: dev first, then the gates, then the promotion.
    let scanned = PROMOTION.replace("REPOSITORY", "acme/web/calc");
    let pipeline = stored_pipeline(&w, &dev, "calc", &url, &scanned).await;
    let run_id = start_run(&w, &dev, &pipeline, "refs/tags/v1.0.0").await;
    let run = run_until(&w, &dev, &run_id, "the release gate waiting", |r| {
        find_step(r, "release-gate").is_some_and(|s| s["state"] == "waiting")
    })
    .await;
    let image = step(&run, "image");
    let digest = image["image_digest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{image}");
    let pinned = format!("{}@{digest}", image["image"].as_str().unwrap());
    assert_eq!(step(&run, "deploy-dev")["state"], "succeeded", "{run}");
    let (_, a) = w
        .send(Method::GET, &format!("/api/v1/applications/{dev_app}"), None)
        .await;
    assert_eq!(a["latest_release"]["parameters"]["image"], pinned.as_str(), "{a}");
    assert_eq!(a["latest_release"]["template_version_id"], new.as_str(), "{a}");
    assert_eq!(
        step(&run, "promote")["state"],
        "pending",
        "nothing is promoted before the gate: {run}"
    );

    let gate = step(&run, "release-gate")["id"].as_str().unwrap().to_string();
    four_eyes(&w, &gate, "").await;

    // The scan passes (a medium finding, max_severity high); the promotion
    // releases the image and makes production's release, which waits for
    // apps' own approval.
    let run = run_until(&w, &dev, &run_id, "the promoted release awaiting approval", |r| {
        find_step(r, "promote").is_some_and(|s| s["message"].as_str().is_some_and(|m| m.contains("approval in apps")))
    })
    .await;
    let scan = step(&run, "scan");
    assert_eq!(scan["state"], "succeeded", "{scan}");
    assert!(scan["message"].as_str().unwrap().contains(&digest), "{scan}");
    let tag = catalog_tag(&w, "acme/web/calc", "1.0.0").await;
    assert_eq!(tag["digest"], digest.as_str(), "{tag}");
    assert_eq!(
        tag["state"], "released",
        "the promotion moved the image's lifecycle: {tag}"
    );
    let (_, p) = w
        .send(Method::GET, &format!("/api/v1/applications/{production}"), None)
        .await;
    let release = &p["latest_release"];
    assert_eq!(release["state"], "awaiting-approval", "{p}");
    assert_eq!(release["number"], 2, "{p}");
    assert_eq!(
        release["template_version_id"],
        new.as_str(),
        "production gets the template version dev runs: {p}"
    );
    assert_eq!(release["parameters"]["image"], pinned.as_str(), "{p}");

    let (status, approved) = w.approve_as_another(release["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    w.release_state(&production, 2, "succeeded").await;
    let run = run_until(&w, &dev, &run_id, "the run succeeding", |r| r["state"] == "succeeded").await;
    assert!(
        step(&run, "promote")["message"]
            .as_str()
            .unwrap()
            .contains("calc is Healthy"),
        "{run}"
    );
    let running = production_runs(&w, &pinned).await;
    assert!(running.ends_with(&digest));
}
