//! Pipelines through the gateway: a real `git push` to `git daemon`, the Git
//! server's signed webhook on the public route, a real `paas runner` (in
//! process) executing the sample repository's build and JUnit tests, the
//! log as Server-Sent Events, and another tenant seeing none of it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use e2e::Platform;
use kernel::testkit::eventually;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::isolation::send;

pub(crate) async fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `git daemon` with an empty bare repository that takes pushes, and the
/// sample repository committed in a work tree.
pub(crate) async fn git_server(dir: &Path) -> (String, PathBuf, Child) {
    let srv = dir.join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    git(&srv, &["init", "--quiet", "--bare", "-b", "main", "sample.git"]).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let daemon = Command::new("git")
        .args([
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
            "--listen=127.0.0.1",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", srv.display()))
        .arg(&srv)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let work = dir.join("work");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pipeline-sample"),
        &work,
    );
    git(&work, &["init", "--quiet", "-b", "main"]).await;
    git(&work, &["add", "-A"]).await;
    git(&work, &["commit", "--quiet", "-m", "sample"]).await;
    let url = format!("git://127.0.0.1:{port}/sample.git");
    let probe = url.clone();
    eventually(Duration::from_secs(10), "git daemon answers", || {
        let url = probe.clone();
        async move {
            Command::new("git")
                .args(["ls-remote", &url])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .ok()
                .filter(std::process::ExitStatus::success)
        }
    })
    .await;
    (url, work, daemon)
}

async fn developer(p: &Platform, name: &str) -> (String, String) {
    let (_, t) = send(
        p,
        &p.admin_token,
        Method::POST,
        "/api/v1/tenants",
        Some(json!({"name": name})),
    )
    .await;
    let tenant = t["id"].as_str().unwrap().to_string();
    let (status, created) = send(
        p,
        &p.admin_token,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "ci", "tenant_id": tenant, "role": "developer"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (tenant, created["secret"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn a_push_to_git_runs_the_pipeline_on_a_runner_through_the_gateway() {
    let p = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (url, work, _daemon) = git_server(dir.path()).await;
    let (tenant, dev) = developer(&p, "shop").await;

    let (status, pipeline) = send(
        &p,
        &dev,
        Method::POST,
        "/api/v1/pipelines",
        Some(json!({"tenant_id": tenant, "name": "sample", "repository": url, "definition_source": "repository"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{pipeline}");
    let pipeline_id = pipeline["id"].as_str().unwrap();
    let (status, hook) = send(
        &p,
        &dev,
        Method::POST,
        &format!("/api/v1/pipelines/{pipeline_id}/webhooks"),
        Some(json!({"format": "gitea"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_string();
    let hook_url = hook["webhook"]["url"].as_str().unwrap().to_string();
    let (_, listed) = send(
        &p,
        &dev,
        Method::GET,
        &format!("/api/v1/pipelines/{pipeline_id}/webhooks"),
        None,
    )
    .await;
    assert!(listed.to_string().find(&secret).is_none(), "the secret is shown once");

    let (status, runner) = send(
        &p,
        &dev,
        Method::POST,
        "/api/v1/runners",
        Some(json!({"tenant_id": tenant, "name": "builder"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{runner}");
    let work_dir = tempfile::tempdir().unwrap();
    let settings = devops::agent::Settings {
        url: format!("http://{}", p.stack.runners.unwrap()),
        token: kernel::settings::Secret::new(runner["token"].as_str().unwrap()),
        concurrency: 2,
        work_dir: work_dir.path().to_path_buf(),
        sandbox: devops::agent::Sandbox::None,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    tokio::spawn(devops::agent::run(settings, stop));

    git(&work, &["push", "--quiet", &url, "main"]).await;
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&work)
        .output()
        .await
        .unwrap();
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let body = json!({"ref": "refs/heads/main", "after": commit, "repository": {"name": "sample"}}).to_string();
    let deliver = |secret: &str, delivery: &str| {
        p.anonymous(Method::POST, &hook_url)
            .header("Content-Type", "application/json")
            .header("X-Gitea-Event", "push")
            .header("X-Gitea-Delivery", delivery)
            .header("X-Hub-Signature-256", devops::webhook::sign(secret, body.as_bytes()))
            .body(body.clone())
            .send()
    };
    let forged = deliver("wrong", "d-0").await.unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let accepted = deliver(&secret, "d-1").await.unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let accepted: Value = accepted.json().await.unwrap();
    assert_eq!(accepted["outcome"], "queued");
    let run_id = accepted["run_id"].as_str().unwrap().to_string();

    let run = eventually(Duration::from_secs(90), "the run succeeds", || {
        let (p, dev, run_id) = (&p, &dev, &run_id);
        async move {
            let (_, run) = send(p, dev, Method::GET, &format!("/api/v1/runs/{run_id}"), None).await;
            assert_ne!(run["state"], "failed", "{run}");
            (run["state"] == "succeeded").then_some(run)
        }
    })
    .await;
    assert_eq!(run["version"], "0.0.0-build.1");
    assert_eq!(run["commit"], commit.as_str());
    let unit = run["stages"][1]["steps"][0].clone();
    assert_eq!(unit["name"], "unit");
    assert_eq!(unit["tests_total"], 3);
    assert_eq!(unit["tests_failed"], 0);

    let (_, runs) = send(&p, &dev, Method::GET, "/api/v1/runs?branch=main&state=succeeded", None).await;
    assert_eq!(runs["items"].as_array().unwrap().len(), 1, "{runs}");
    let (status, bad) = send(&p, &dev, Method::GET, "/api/v1/runs?state=sleeping", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");

    // The finished step's log as an event stream: its output, then the end.
    let unit_id = unit["id"].as_str().unwrap();
    let sse = p
        .anonymous(Method::GET, &format!("/api/v1/steps/{unit_id}/log"))
        .bearer_auth(&dev)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), StatusCode::OK);
    let text = sse.text().await.unwrap();
    assert!(text.contains("event: output"), "{text}");
    assert!(text.contains("ok   adds_small_numbers"), "{text}");
    assert!(text.contains("event: end"), "{text}");

    let (_, stranger) = developer(&p, "rival").await;
    for path in [
        format!("/api/v1/runs/{run_id}"),
        format!("/api/v1/steps/{unit_id}"),
        format!("/api/v1/pipelines/{pipeline_id}"),
    ] {
        let (status, _) = send(&p, &stranger, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, theirs) = send(&p, &stranger, Method::GET, "/api/v1/runs", None).await;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
}

pub(crate) fn installed(binary: &str) -> bool {
    std::process::Command::new(binary).arg("--version").output().is_ok()
}

const BUILD_IMAGE: &str = concat!(
    "stages:\n",
    "  - name: build\n",
    "    steps:\n",
    "      - name: image\n",
    "        kind: build-image\n",
    "        repository: REPOSITORY\n",
);

async fn run_ends(p: &Platform, dev: &str, pipeline: &str) -> Value {
    let (status, run) = send(
        p,
        dev,
        Method::POST,
        &format!("/api/v1/pipelines/{pipeline}/runs"),
        Some(json!({"ref": "main"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let run_id = run["id"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(120), "the run ends", || {
        let run_id = run_id.clone();
        async move {
            let (_, run) = send(p, dev, Method::GET, &format!("/api/v1/runs/{run_id}"), None).await;
            matches!(run["state"].as_str(), Some("succeeded" | "failed")).then_some(run)
        }
    })
    .await
}

/// build-image through the platform: buildah on a runner, the push through
/// the gateway's `/v2/` into the master registry with the token devops had
/// the catalog issue for the run, the tag in the tenant's catalog with its
/// source and revision; a repository of another tenant is refused.
#[tokio::test]
async fn a_build_image_step_pushes_through_the_gateway_into_the_tenants_catalog() {
    if paas::master_registry::binary().is_none() || !installed("buildah") || !installed("skopeo") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs docker-registry, buildah and skopeo (scripts/deps installs them)"
        );
        eprintln!("skipped: docker-registry, buildah or skopeo is not installed");
        return;
    }
    let p = Platform::start().await;
    let _registry = paas::master_registry::start(&p.settings, &p.stack)
        .await
        .expect("the registry starts")
        .expect("installed");
    let dir = tempfile::tempdir().unwrap();
    let (url, work, _daemon) = git_server(dir.path()).await;
    let (tenant, dev) = developer(&p, "acme").await;
    let (other, _) = developer(&p, "other").await;
    for (t, project) in [(&tenant, "shop"), (&other, "web")] {
        let (status, created) = send(
            &p,
            &p.admin_token,
            Method::POST,
            &format!("/api/v1/tenants/{t}/projects"),
            Some(json!({"name": project})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    let mut pipelines = Vec::new();
    for (name, repository) in [("calc", "acme/shop/calc"), ("stray", "other/web/calc")] {
        let (status, pipeline) = send(
            &p,
            &dev,
            Method::POST,
            "/api/v1/pipelines",
            Some(json!({
                "tenant_id": tenant, "name": name, "repository": url,
                "definition": BUILD_IMAGE.replace("REPOSITORY", repository), "definition_source": "platform",
            })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{pipeline}");
        pipelines.push(pipeline["id"].as_str().unwrap().to_string());
    }
    let (status, runner) = send(
        &p,
        &dev,
        Method::POST,
        "/api/v1/runners",
        Some(json!({"tenant_id": tenant, "name": "builder"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{runner}");
    let work_dir = tempfile::tempdir().unwrap();
    let settings = devops::agent::Settings {
        url: format!("http://{}", p.stack.runners.unwrap()),
        token: kernel::settings::Secret::new(runner["token"].as_str().unwrap()),
        concurrency: 2,
        work_dir: work_dir.path().to_path_buf(),
        sandbox: devops::agent::Sandbox::detect().await,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    tokio::spawn(devops::agent::run(settings, stop));
    git(&work, &["push", "--quiet", &url, "main"]).await;
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&work)
        .output()
        .await
        .unwrap();
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let run = run_ends(&p, &dev, &pipelines[0]).await;
    assert_eq!(run["state"], "succeeded", "{run}");
    let step = &run["stages"][0]["steps"][0];
    let host = p.url.trim_start_matches("http://");
    assert_eq!(step["image"], format!("{host}/acme/shop/calc:0.0.0-build.1"));
    let digest = step["image_digest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{step}");
    let admin = p.admin_token.clone();
    let tag = eventually(Duration::from_secs(30), "the tag reaching the catalog", || {
        let admin = admin.clone();
        let p = &p;
        async move {
            let (_, repos) = send(p, &admin, Method::GET, "/api/v1/repositories?q=acme/shop/calc", None).await;
            let id = repos["items"]
                .as_array()?
                .iter()
                .find(|r| r["name"] == "acme/shop/calc")?["id"]
                .as_str()?
                .to_string();
            let path = format!("/api/v1/repositories/{id}/tags/0.0.0-build.1");
            let (status, t) = send(p, &admin, Method::GET, &path, None).await;
            (status == StatusCode::OK).then_some(t)
        }
    })
    .await;
    assert_eq!(tag["digest"], digest.as_str());
    assert_eq!(tag["tenant_id"], tenant.as_str());
    assert_eq!(tag["source"], url.as_str());
    assert_eq!(tag["revision"], commit.as_str());

    let stray = run_ends(&p, &dev, &pipelines[1]).await;
    assert_eq!(
        stray["state"], "failed",
        "the token covers no other tenant's repository: {stray}"
    );
    let step = &stray["stages"][0]["steps"][0];
    assert!(step["image_digest"].as_str().unwrap().is_empty(), "{step}");
}
