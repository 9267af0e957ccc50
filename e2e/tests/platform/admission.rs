//! Production admission, digest pinning, image triggers and scanning end to
//! end: a real registry behind the gateway's `/v2/`, images pushed with
//! skopeo as the tenant's robot, applications deployed into a kubesim
//! cluster, and a scanner adapter double (a small HTTP server speaking
//! Harbor's scanner adapter API with configured findings). Without the
//! registry or skopeo these tests pass as skipped, unless `CI` is set.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kernel::testkit::eventually;
use paas::master_registry::MasterRegistry;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::applications::{World as Apps, world_with};

const FIELD: &str = "services[0].containers[0].image";
const REPORT_MIME: &str = "application/vnd.security.vulnerability.report; version=1.1";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/acme-web/deployments";

/// Applications (tenant `acme`, project `web`, cluster `dc1-prod`) with
/// production admission enforced, a master registry, and a pushing robot
/// for `acme/web`.
pub(crate) struct World {
    pub(crate) w: Apps,
    _registry: MasterRegistry,
    /// The gateway's `host:port`: the registry address in image references.
    pub(crate) host: String,
    pub(crate) robot: (String, String),
    pub(crate) dir: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn installed(binary: &str) -> bool {
    std::process::Command::new(binary).arg("--version").output().is_ok()
}

pub(crate) async fn world() -> Option<World> {
    if !installed("skopeo") || paas::master_registry::binary().is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs docker-registry and skopeo (scripts/deps installs them)"
        );
        eprintln!("skipped: docker-registry or skopeo is not installed");
        return None;
    }
    let w = world_with("4", &[("PAAS_IMAGES_ADMISSION", "enforce")]).await;
    let registry = paas::master_registry::start(&w.p.settings, &w.p.stack)
        .await
        .expect("the registry starts")
        .expect("installed");
    let robot = robot(&w, &w.tenant, "web").await;
    let host = w.p.url.trim_start_matches("http://").to_string();
    let dir = std::env::temp_dir().join(format!("paas-admission-e2e-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    Some(World {
        w,
        _registry: registry,
        host,
        robot,
        dir,
    })
}

/// A pushing robot of `tenant`'s project `project`: (name, secret).
pub(crate) async fn robot(w: &Apps, tenant: &str, project: &str) -> (String, String) {
    let (_, projects) = w
        .send(Method::GET, &format!("/api/v1/tenants/{tenant}/projects"), None)
        .await;
    let project_id = projects["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == project)
        .unwrap_or_else(|| panic!("{projects}"))["id"]
        .clone();
    let (status, robot) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/robots"),
            Some(json!({"project_id": project_id, "name": "ci", "scopes": ["pull", "push"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{robot}");
    (
        robot["robot"]["name"].as_str().unwrap().to_string(),
        robot["secret"].as_str().unwrap().to_string(),
    )
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// What an image's config says.
pub(crate) struct Config<'a> {
    ports: &'a [&'a str],
    entrypoint: bool,
}

pub(crate) const WEB: Config<'static> = Config {
    ports: &["8080/tcp"],
    entrypoint: true,
};

/// An OCI layout holding one image tagged `latest`: a layer with `content`,
/// a config exposing `config.ports`, with an entrypoint or none.
fn layout(dir: &Path, content: &str, config: &Config<'_>) -> PathBuf {
    let layout = dir.join(format!("layout-{}", sha256(content.as_bytes())));
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let blob = |bytes: &[u8]| -> (String, usize) {
        let hex = sha256(bytes);
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o755);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, "web", content.as_bytes()).unwrap();
    let layer = tar.into_inner().unwrap();
    let (layer_digest, layer_size) = blob(&layer);
    let exposed: serde_json::Map<String, Value> = config.ports.iter().map(|p| (p.to_string(), json!({}))).collect();
    let mut image_config = json!({"ExposedPorts": exposed, "User": "1000"});
    if config.entrypoint {
        image_config["Entrypoint"] = json!(["/web"]);
    }
    let config = json!({
        "created": "2026-12-01T10:00:00Z", "architecture": "amd64", "os": "linux",
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]}
    });
    let (config_digest, config_size) = blob(config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}]
    });
    let (manifest_digest, manifest_size) = blob(manifest.to_string().as_bytes());
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": manifest_size,
        "annotations": {"org.opencontainers.image.ref.name": "latest"}
    }]});
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    layout
}

impl World {
    /// Pushes `content` as `repository:tag` with `robot`; the catalog's tag once recorded.
    pub(crate) async fn push_as(
        &self,
        robot: &(String, String),
        content: &str,
        config: &Config<'_>,
        repository: &str,
        tag: &str,
    ) -> Value {
        let before = self.tag(repository, tag).await.map(|t| t["digest"].clone());
        let layout = layout(&self.dir, content, config);
        let args = vec![
            "--insecure-policy".to_string(),
            "copy".to_string(),
            "--dest-tls-verify=false".to_string(),
            "--dest-creds".to_string(),
            format!("{}:{}", robot.0, robot.1),
            format!("oci:{}:latest", layout.display()),
            format!("docker://{}/{repository}:{tag}", self.host),
        ];
        let dir = self.dir.clone();
        // On the blocking pool: the platform it talks to runs on this test's runtime.
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("skopeo")
                .args(&args)
                .env("HOME", &dir)
                .env("XDG_RUNTIME_DIR", &dir)
                .output()
                .expect("skopeo runs")
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        eventually(Duration::from_secs(30), "the tag in the catalog", || {
            let before = before.clone();
            async move {
                let t = self.tag(repository, tag).await?;
                (Some(&t["digest"]) != before.as_ref()).then_some(t)
            }
        })
        .await
    }

    pub(crate) async fn push(&self, content: &str, config: &Config<'_>, repository: &str, tag: &str) -> Value {
        self.push_as(&self.robot, content, config, repository, tag).await
    }

    pub(crate) async fn tag(&self, repository: &str, tag: &str) -> Option<Value> {
        let (_, repos) = self
            .w
            .send(Method::GET, &format!("/api/v1/repositories?q={repository}"), None)
            .await;
        let id = repos["items"].as_array()?.iter().find(|r| r["name"] == repository)?["id"]
            .as_str()?
            .to_string();
        let (status, t) = self
            .w
            .send(Method::GET, &format!("/api/v1/repositories/{id}/tags/{tag}"), None)
            .await;
        (status == StatusCode::OK).then_some(t)
    }

    /// Moves a pushed tag through tested to released.
    pub(crate) async fn release(&self, tag: &Value) {
        for state in ["tested", "released"] {
            let (status, moved) = self
                .w
                .send(
                    Method::PUT,
                    &format!(
                        "/api/v1/repositories/{}/tags/{}/state",
                        tag["repository_id"].as_str().unwrap(),
                        tag["name"].as_str().unwrap()
                    ),
                    Some(json!({"state": state})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{moved}");
        }
    }

    /// A published template version: one service `web` whose image is
    /// `image` (placeholders allowed) and which declares `port`.
    pub(crate) async fn template(&self, name: &str, image: &str, parameters: Value) -> String {
        let (_, template) = self
            .w
            .send(
                Method::POST,
                "/api/v1/templates",
                Some(json!({"tenant_id": self.w.tenant, "name": name})),
            )
            .await;
        let template = template["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{template}"))
            .to_string();
        let spec = json!({
            "parameters": parameters,
            "services": [{"name": "web", "containers": [{"name": "web", "image": image,
                "resources": {"cpu_request": "100m"}, "ports": [{"name": "http", "container_port": "${port}"}]}]}]
        });
        self.w.version(&template, "1.0.0", spec).await
    }

    pub(crate) async fn deploy(
        &self,
        name: &str,
        environment: &str,
        version: &str,
        parameters: Value,
    ) -> (StatusCode, Value) {
        self.w
            .send(
                Method::POST,
                &format!("/api/v1/tenants/{}/applications", self.w.tenant),
                Some(
                    json!({"name": name, "environment": environment, "template_version_id": version,
                            "parameters": parameters, "placement": {"explicit": [{"cluster": "dc1-prod"}]}}),
                ),
            )
            .await
    }

    /// The image the Deployment of `app`'s service `web` runs, once it exists.
    async fn deployed_image(&self, app: &str) -> String {
        eventually(Duration::from_secs(40), "the Deployment", || async move {
            let d = self.w.kube(&format!("{DEPLOYMENTS}/{app}-web")).await?;
            Some(
                d["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()?
                    .to_string(),
            )
        })
        .await
    }
}

pub(crate) fn image_and_port() -> Value {
    json!([{"name": "image", "type": "string"}, {"name": "port", "type": "integer", "default": 8080}])
}

/// Asserts a 400 problem naming the image's field and `rule`.
pub(crate) fn refused(status: StatusCode, problem: &Value, rule: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["field"], FIELD, "{problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(&format!("admission rule {rule}:")), "{problem}");
}

#[tokio::test]
async fn each_production_admission_refusal_names_its_rule_and_the_image() {
    let Some(w) = world().await else { return };
    let shop = format!("{}/acme/web/shop", w.host);
    let tag = w.push("shop 1.0", &WEB, "acme/web/shop", "1.0").await;
    let version = w.template("shop", "${image}", image_and_port()).await;
    let deploy = |image: String, port: u16| {
        let version = version.clone();
        let w = &w;
        async move {
            w.deploy("shop", "production", &version, json!({"image": image, "port": port}))
                .await
        }
    };

    let (status, p) = deploy("docker.io/library/nginx:1.25".to_string(), 8080).await;
    refused(status, &p, "own-repository");
    // Another tenant's repository is not the tenant's own.
    let other =
        w.w.send(Method::POST, "/api/v1/tenants", Some(json!({"name": "other"})))
            .await
            .1;
    let other = other["id"].as_str().unwrap().to_string();
    w.w.send(
        Method::POST,
        &format!("/api/v1/tenants/{other}/projects"),
        Some(json!({"name": "app"})),
    )
    .await;
    let other_robot = robot(&w.w, &other, "app").await;
    let theirs = w
        .push_as(&other_robot, "theirs 1.0", &WEB, "other/app/web", "1.0")
        .await;
    w.release(&theirs).await;
    let (status, p) = deploy(format!("{}/other/app/web:1.0", w.host), 8080).await;
    refused(status, &p, "own-repository");

    let (status, p) = deploy(format!("{shop}:latest"), 8080).await;
    refused(status, &p, "pinned");
    let (status, p) = deploy(shop.clone(), 8080).await;
    refused(status, &p, "pinned");

    let (status, p) = deploy(format!("{shop}:1.0"), 8080).await;
    refused(status, &p, "released");
    assert!(p["detail"].as_str().unwrap().contains("is pushed, not released"), "{p}");

    w.release(&tag).await;
    let (status, p) = deploy(format!("{shop}:1.0"), 9090).await;
    refused(status, &p, "exposed-ports");
    assert!(p["detail"].as_str().unwrap().contains("9090/tcp"), "{p}");

    let bare = w
        .push(
            "bare 1.0",
            &Config {
                ports: &["8080/tcp"],
                entrypoint: false,
            },
            "acme/web/bare",
            "1.0",
        )
        .await;
    w.release(&bare).await;
    let (status, p) = deploy(format!("{}/acme/web/bare:1.0", w.host), 8080).await;
    refused(status, &p, "entrypoint");

    // Refusals leave nothing behind: the name is free for the release that passes.
    let digest = tag["digest"].as_str().unwrap();
    for image in [format!("{shop}:1.0"), format!("{shop}@{digest}")] {
        let name = if image.contains('@') { "shop-by-digest" } else { "shop" };
        let (status, app) = w
            .deploy(name, "production", &version, json!({"image": image, "port": 8080}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{app}");
        assert_eq!(app["latest_release"]["state"], "awaiting-approval", "{app}");
    }
}

#[tokio::test]
async fn releases_carry_the_digest_resolved_at_deploy_so_a_later_push_of_the_tag_changes_nothing() {
    let Some(w) = world().await else { return };
    let first = w.push("web 2.0, first", &WEB, "acme/web/shop", "2.0").await;
    let first_digest = first["digest"].as_str().unwrap().to_string();
    let version = w
        .template(
            "shop",
            &format!("{}/acme/web/shop:${{tag}}", w.host),
            json!([
                {"name": "tag", "type": "string"}, {"name": "port", "type": "integer", "default": 8080}
            ]),
        )
        .await;
    let (status, app) = w.deploy("shop", "test", &version, json!({"tag": "2.0"})).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let expected = format!("{}/acme/web/shop:2.0@{first_digest}", w.host);
    assert_eq!(w.deployed_image("shop").await, expected);

    // The same tag pushed again with other content: the catalog moves, what runs does not.
    let second = w.push("web 2.0, second", &WEB, "acme/web/shop", "2.0").await;
    assert_ne!(second["digest"], first["digest"]);
    w.w.release_state(app["id"].as_str().unwrap(), 1, "succeeded").await;
    assert_eq!(w.deployed_image("shop").await, expected);
    let pods = w.w.kube("/api/v1/namespaces/acme-web/pods").await.unwrap();
    let images: Vec<&str> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["spec"]["containers"][0]["image"].as_str())
        .collect();
    assert!(
        !images.is_empty() && images.iter().all(|i| *i == expected),
        "{images:?}"
    );

    // In production the tag must be released, and then it is immutable.
    w.release(&second).await;
    let (status, prod) = w
        .deploy("shop-prod", "production", &version, json!({"tag": "2.0"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{prod}");
}

async fn releases(w: &World, app: &str) -> Vec<Value> {
    let (_, page) =
        w.w.send(Method::GET, &format!("/api/v1/applications/{app}/releases"), None)
            .await;
    page["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_pushed_tag_matching_a_trigger_releases_test_at_once_and_production_for_approval() {
    let Some(w) = world().await else { return };
    let v1 = w.push("web 1.0", &WEB, "acme/web/shop", "1.0").await;
    w.release(&v1).await;
    let version = w
        .template(
            "shop",
            &format!("{}/acme/web/shop:${{tag}}", w.host),
            json!([
                {"name": "tag", "type": "string"}, {"name": "port", "type": "integer", "default": 8080}
            ]),
        )
        .await;
    let mut apps = Vec::new();
    for (name, environment) in [("shop-test", "test"), ("shop-prod", "production")] {
        let (status, app) = w.deploy(name, environment, &version, json!({"tag": "1.0"})).await;
        assert_eq!(status, StatusCode::CREATED, "{app}");
        let id = app["id"].as_str().unwrap().to_string();
        let (status, trigger) =
            w.w.send(
                Method::POST,
                &format!("/api/v1/applications/{id}/image-triggers"),
                Some(json!({"repository": "acme/web/shop", "tags": "^1.1", "parameter": "tag"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{trigger}");
        apps.push(id);
    }
    let (test, prod) = (apps[0].clone(), apps[1].clone());
    let (status, bad) =
        w.w.send(
            Method::POST,
            &format!("/api/v1/applications/{test}/image-triggers"),
            Some(json!({"repository": "acme/web/shop", "tags": "not a range", "parameter": "tag"})),
        )
        .await;
    assert_eq!(
        (status, bad["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("tags")),
        "{bad}"
    );
    w.w.release_state(&test, 1, "succeeded").await;
    let first = releases(&w, &prod).await[0]["id"].as_str().unwrap().to_string();
    let (status, approved) = w.w.approve_as_another(&first).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    w.w.release_state(&prod, 1, "succeeded").await;

    // 2.0 matches no rule; 1.1 does.
    w.push("web 2.0", &WEB, "acme/web/shop", "2.0").await;
    let v11 = w.push("web 1.1", &WEB, "acme/web/shop", "1.1").await;
    let a = w.w.release_state(&test, 2, "succeeded").await;
    assert_eq!(a["latest_release"]["parameters"]["tag"], "1.1", "{a}");
    assert_eq!(
        w.deployed_image("shop-test").await,
        format!("{}/acme/web/shop:1.1@{}", w.host, v11["digest"].as_str().unwrap())
    );
    // The same tag pushed again makes no second release.
    let v11 = w.push("web 1.1, again", &WEB, "acme/web/shop", "1.1").await;
    // Production takes the tag once it is released, as a release awaiting approval.
    assert_eq!(releases(&w, &prod).await.len(), 1);
    w.release(&v11).await;
    let p = w.w.release_state(&prod, 2, "awaiting-approval").await;
    assert_eq!(p["latest_release"]["parameters"]["tag"], "1.1", "{p}");
    // The next tag makes the next release (and 1.1's second push none before it).
    w.push("web 1.2", &WEB, "acme/web/shop", "1.2").await;
    let a = w.w.release_state(&test, 3, "succeeded").await;
    assert_eq!(a["latest_release"]["parameters"]["tag"], "1.2", "{a}");
    assert_eq!(releases(&w, &test).await.len(), 3);
    let (_, triggers) =
        w.w.send(
            Method::GET,
            &format!("/api/v1/applications/{test}/image-triggers"),
            None,
        )
        .await;
    let fired: Vec<&str> = triggers["items"][0]["firings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["tag"].as_str())
        .collect();
    assert_eq!(fired, ["1.2", "1.1"], "{triggers}");
}

/// A scanner adapter double: Harbor's adapter API over HTTP, answering
/// every scan with `findings` after one "not yet" (302), and keeping the
/// scan requests it received.
pub(crate) struct ScannerDouble {
    pub(crate) url: String,
    pub(crate) requests: Arc<Mutex<Vec<Value>>>,
}

pub(crate) async fn scanner_double(findings: Value) -> ScannerDouble {
    use axum::extract::Path as UrlPath;
    use axum::routing::{get, post};
    let requests: Arc<Mutex<Vec<Value>>> = Arc::default();
    let asked: Arc<Mutex<std::collections::HashMap<String, u32>>> = Arc::default();
    let kept = requests.clone();
    let app = axum::Router::new()
        .route(
            "/api/v1/metadata",
            get(|| async {
                axum::Json(json!({
                    "scanner": {"name": "double", "vendor": "paas-tests", "version": "1.0"},
                    "capabilities": [{"consumes_mime_types": ["application/vnd.oci.image.manifest.v1+json"],
                                      "produces_mime_types": [REPORT_MIME]}],
                    "properties": {}
                }))
            }),
        )
        .route(
            "/api/v1/scan",
            post(move |body: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    kept.lock().unwrap().push(request);
                    (
                        axum::http::StatusCode::ACCEPTED,
                        axum::Json(json!({"id": uuid::Uuid::new_v4().to_string()})),
                    )
                }
            }),
        )
        .route(
            "/api/v1/scan/{id}/report",
            get(move |UrlPath(id): UrlPath<String>| {
                let (asked, findings) = (asked.clone(), findings.clone());
                async move {
                    let n = {
                        let mut asked = asked.lock().unwrap();
                        let n = asked.entry(id).or_insert(0);
                        *n += 1;
                        *n
                    };
                    if n == 1 {
                        return axum::response::IntoResponse::into_response((
                            axum::http::StatusCode::FOUND,
                            [("Refresh-After", "1")],
                        ));
                    }
                    axum::response::IntoResponse::into_response(axum::Json(json!({
                        "generated_at": "2026-12-07T00:00:00Z",
                        "scanner": {"name": "double", "vendor": "paas-tests", "version": "1.0"},
                        "severity": "High",
                        "vulnerabilities": findings
                    })))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    ScannerDouble { url, requests }
}

#[tokio::test]
async fn a_scan_above_the_production_policy_blocks_the_deploy() {
    let Some(w) = world().await else { return };
    let double = scanner_double(json!([
        {"id": "CVE-2026-0001", "severity": "High", "package": "openssl", "version": "3.0.1", "fix_version": "3.0.9"},
        {"id": "CVE-2026-0002", "severity": "Low", "package": "zlib", "version": "1.2.11", "fix_version": ""}
    ]))
    .await;
    let (status, scanner) = w
        .w
        .send(
            Method::POST,
            "/api/v1/scanners",
            Some(json!({"name": "double", "url": double.url, "authorization": "Bearer adapter-secret", "scan_on_push": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{scanner}");
    assert_eq!(
        (scanner["adapter_vendor"].as_str(), scanner["is_default"].as_bool()),
        (Some("paas-tests"), Some(true))
    );
    let (status, policy) =
        w.w.send(
            Method::PUT,
            &format!("/api/v1/tenants/{}/scan-policies/production", w.w.tenant),
            Some(json!({"max_severity": "medium"})),
        )
        .await;
    assert_eq!(
        (status, policy["max_severity"].as_str()),
        (StatusCode::OK, Some("medium")),
        "{policy}"
    );
    for policies in ["scan-policies", "signature-policies"] {
        let path = format!("/api/v1/tenants/{}/{policies}/staging", w.w.tenant);
        let (status, p) = w.w.send(Method::GET, &path, None).await;
        assert_eq!(
            (status, p["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("environment")),
            "a policy is for production or test only: {p}"
        );
    }

    // Scanned on push: the adapter got the registry, a pull token and the artifact.
    let tag = w.push("web 3.0", &WEB, "acme/web/shop", "3.0").await;
    w.release(&tag).await;
    let scan_path = format!(
        "/api/v1/repositories/{}/tags/3.0/scan",
        tag["repository_id"].as_str().unwrap()
    );
    let scan = eventually(Duration::from_secs(30), "the scan done", || async {
        let (status, scan) = w.w.send(Method::GET, &scan_path, None).await;
        (status == StatusCode::OK && scan["status"] == "done").then_some(scan)
    })
    .await;
    assert_eq!(scan["highest_severity"], "high", "{scan}");
    assert_eq!(
        (scan["summary"]["high"].as_i64(), scan["summary"]["low"].as_i64()),
        (Some(1), Some(1))
    );
    let request = double.requests.lock().unwrap()[0].clone();
    assert_eq!(request["artifact"]["repository"], "acme/web/shop", "{request}");
    assert_eq!(request["artifact"]["digest"], tag["digest"], "{request}");
    assert!(
        request["registry"]["authorization"]
            .as_str()
            .unwrap()
            .starts_with("Bearer "),
        "{request}"
    );

    let version = w
        .template(
            "shop",
            &format!("{}/acme/web/shop:${{tag}}", w.host),
            json!([
                {"name": "tag", "type": "string"}, {"name": "port", "type": "integer", "default": 8080}
            ]),
        )
        .await;
    let (status, p) = w.deploy("shop", "production", &version, json!({"tag": "3.0"})).await;
    refused(status, &p, "scan-severity");
    assert!(
        p["detail"].as_str().unwrap().contains("has high vulnerabilities"),
        "{p}"
    );
    // Test is not production: the policy there is unset.
    let (status, app) = w.deploy("shop-test", "test", &version, json!({"tag": "3.0"})).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");

    // Scanned on demand: asking again starts it over, and it ends the same.
    let (status, again) = w.w.send(Method::POST, &scan_path, None).await;
    assert_eq!(
        (status, again["status"].as_str()),
        (StatusCode::ACCEPTED, Some("queued")),
        "{again}"
    );
    w.w.send(
        Method::PUT,
        &format!("/api/v1/tenants/{}/scan-policies/production", w.w.tenant),
        Some(json!({"max_severity": "high"})),
    )
    .await;
    let (status, p) = w.deploy("shop", "production", &version, json!({"tag": "3.0"})).await;
    if status == StatusCode::BAD_REQUEST {
        // The on-demand scan may still run: no finished scan blocks too.
        refused(status, &p, "scan-severity");
        assert!(p["detail"].as_str().unwrap().contains("no finished scan"), "{p}");
        eventually(Duration::from_secs(30), "the new scan done", || async {
            let (_, scan) = w.w.send(Method::GET, &scan_path, None).await;
            (scan["status"] == "done").then_some(())
        })
        .await;
        let (status, app) = w.deploy("shop", "production", &version, json!({"tag": "3.0"})).await;
        assert_eq!(status, StatusCode::CREATED, "{app}");
    } else {
        assert_eq!(status, StatusCode::CREATED, "{p}");
    }
}
