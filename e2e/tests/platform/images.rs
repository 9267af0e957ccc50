//! The image catalog end to end with a real registry: Debian's
//! `docker-registry` (distribution 2.8) configured to take the platform's
//! tokens and post its notifications to the gateway, and `skopeo` pushing
//! and pulling through the gateway's `/v2/` as robot accounts. Without the
//! registry or skopeo installed these tests pass as skipped, unless `CI` is
//! set: there a missing binary fails them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use e2e::Platform;
use kernel::testkit::eventually;
use paas::master_registry::MasterRegistry;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::isolation::send;

/// A platform with a master registry, and two tenants with a project and a
/// pushing robot each.
struct World {
    p: Platform,
    _registry: MasterRegistry,
    acme: Tenant,
    other: Tenant,
    /// The gateway's `host:port`, the registry address clients use.
    host: String,
    dir: PathBuf,
}

pub(crate) struct Tenant {
    pub(crate) id: String,
    pub(crate) robot: String,
    pub(crate) secret: String,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn installed(binary: &str) -> bool {
    std::process::Command::new(binary).arg("--version").output().is_ok()
}

/// The world, or `None` (skipped) where the registry tools are missing
/// outside CI.
async fn world() -> Option<World> {
    world_with(&[]).await
}

/// [`world`] with settings of the platform's services.
async fn world_with(env: &[(&str, &str)]) -> Option<World> {
    let missing: Vec<&str> = ["skopeo"].into_iter().filter(|b| !installed(b)).collect();
    let registry_missing = paas::master_registry::binary().is_none();
    if !missing.is_empty() || registry_missing {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs docker-registry and skopeo (scripts/deps installs them)"
        );
        eprintln!("skipped: docker-registry or skopeo is not installed");
        return None;
    }
    let p = Platform::start_with_env(env, |_| {}).await;
    let registry = paas::master_registry::start(&p.settings, &p.stack)
        .await
        .expect("the registry starts")
        .expect("installed");
    let acme = tenant(&p, "acme", "shop").await;
    let other = tenant(&p, "other", "web").await;
    let host = p.url.trim_start_matches("http://").to_string();
    let dir = std::env::temp_dir().join(format!("paas-images-e2e-{:016x}", rand_u64()));
    std::fs::create_dir_all(&dir).unwrap();
    Some(World {
        p,
        _registry: registry,
        acme,
        other,
        host,
        dir,
    })
}

pub(crate) fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

pub(crate) async fn tenant(p: &Platform, name: &str, project: &str) -> Tenant {
    let admin = p.admin_token.clone();
    let (status, t) = send(p, &admin, Method::POST, "/api/v1/tenants", Some(json!({"name": name}))).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    let (status, pr) = send(
        p,
        &admin,
        Method::POST,
        &format!("/api/v1/tenants/{id}/projects"),
        Some(json!({"name": project})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{pr}");
    let (status, robot) = send(
        p,
        &admin,
        Method::POST,
        &format!("/api/v1/tenants/{id}/robots"),
        Some(json!({"project_id": pr["id"], "name": "ci", "scopes": ["pull", "push"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{robot}");
    assert_eq!(robot["robot"]["name"], format!("robot${name}+{project}+ci"));
    Tenant {
        id,
        robot: robot["robot"]["name"].as_str().unwrap().to_string(),
        secret: robot["secret"].as_str().unwrap().to_string(),
    }
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes an OCI image layout holding one image tagged `latest`: a layer with
/// `content` as `/web`, a config exposing 8080 with an entrypoint, a user and
/// a label, and the build source as manifest annotations.
pub(crate) fn image_layout(dir: &Path, content: &str) -> PathBuf {
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
    let config = json!({
        "created": "2026-12-01T10:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "ExposedPorts": {"8080/tcp": {}},
            "Entrypoint": ["/web"],
            "Cmd": ["--port", "8080"],
            "User": "1000",
            "Labels": {"team": "shop", "tier": "frontend"}
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]}
    });
    let (config_digest, config_size) = blob(config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
        "annotations": {
            "org.opencontainers.image.source": "https://git.example.com/acme/web",
            "org.opencontainers.image.revision": "0123abcd"
        }
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

/// Runs skopeo with its own blob-info cache; `Ok(stdout)` or `Err(stderr)`.
/// On the blocking pool: the platform it talks to runs on this test's runtime.
async fn skopeo(w: &World, args: &[&str]) -> Result<String, String> {
    let args: Vec<String> = args.iter().map(ToString::to_string).collect();
    let dir = w.dir.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("skopeo")
            .args(["--insecure-policy", "--command-timeout", "120s"])
            .args(&args)
            .env("HOME", &dir)
            .env("XDG_RUNTIME_DIR", &dir)
            .output()
            .expect("skopeo runs")
    })
    .await
    .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Pushes an image with `content` as `repository:tag` with `who`'s robot.
async fn push(w: &World, who: &Tenant, content: &str, repository: &str, tag: &str) -> Result<String, String> {
    let layout = image_layout(&w.dir, content);
    let creds = format!("{}:{}", who.robot, who.secret);
    skopeo(
        w,
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &format!("oci:{}:latest", layout.display()),
            &format!("docker://{}/{repository}:{tag}", w.host),
        ],
    )
    .await
}

async fn inspect(w: &World, who: &Tenant, repository: &str, tag: &str) -> Result<String, String> {
    let creds = format!("{}:{}", who.robot, who.secret);
    skopeo(
        w,
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &creds,
            &format!("docker://{}/{repository}:{tag}", w.host),
        ],
    )
    .await
}

/// The catalog's tag once it has arrived from the registry's notification.
async fn catalog_tag(w: &World, repository: &str, tag: &str, digest_not: Option<&str>) -> Value {
    let admin = w.p.admin_token.clone();
    eventually(Duration::from_secs(30), "the tag reaching the catalog", || {
        let admin = admin.clone();
        async move {
            let (_, repos) = send(
                &w.p,
                &admin,
                Method::GET,
                &format!("/api/v1/repositories?q={repository}"),
                None,
            )
            .await;
            let id = repos["items"].as_array()?.iter().find(|r| r["name"] == repository)?["id"]
                .as_str()?
                .to_string();
            let (status, t) = send(
                &w.p,
                &admin,
                Method::GET,
                &format!("/api/v1/repositories/{id}/tags/{tag}"),
                None,
            )
            .await;
            (status == StatusCode::OK && Some(t["digest"].as_str()?) != digest_not).then_some(t)
        }
    })
    .await
}

async fn move_tag(w: &World, bearer: &str, tag: &Value, state: &str) -> (StatusCode, Value) {
    send(
        &w.p,
        bearer,
        Method::PUT,
        &format!(
            "/api/v1/repositories/{}/tags/{}/state",
            tag["repository_id"].as_str().unwrap(),
            tag["name"].as_str().unwrap()
        ),
        Some(json!({"state": state})),
    )
    .await
}

#[tokio::test]
async fn a_robot_pushes_through_the_gateway_and_the_catalog_reads_the_image() {
    let Some(w) = world().await else { return };
    push(&w, &w.acme, "v1", "acme/shop/web", "1.0")
        .await
        .expect("the robot pushes through the gateway");
    let tag = catalog_tag(&w, "acme/shop/web", "1.0", None).await;
    assert_eq!(tag["state"], "pushed");
    assert_eq!(tag["tenant_id"], w.acme.id);
    assert_eq!(tag["exposed_ports"], json!(["8080/tcp"]));
    assert_eq!(tag["entrypoint"], json!(["/web"]));
    assert_eq!(tag["cmd"], json!(["--port", "8080"]));
    assert_eq!(tag["user"], "1000");
    assert_eq!(tag["labels"]["team"], "shop");
    assert_eq!(tag["source"], "https://git.example.com/acme/web");
    assert_eq!(tag["revision"], "0123abcd");
    assert_eq!(
        tag["platforms"],
        json!([{"os": "linux", "architecture": "amd64", "variant": ""}])
    );
    assert!(tag["digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(tag["size"].as_i64().unwrap() > 0);

    // Pulled back by the same robot, byte for byte the manifest pushed.
    let manifest = inspect(&w, &w.acme, "acme/shop/web", "1.0")
        .await
        .expect("the robot pulls");
    assert_eq!(
        format!("sha256:{}", sha256(manifest.as_bytes())),
        tag["digest"].as_str().unwrap()
    );

    // Search by label, and the push in the audit log under the robot's name.
    let admin = w.p.admin_token.clone();
    let (_, found) = send(
        &w.p,
        &admin,
        Method::GET,
        "/api/v1/repositories?label=tier=frontend",
        None,
    )
    .await;
    assert_eq!(found["items"][0]["name"], "acme/shop/web", "{found}");
    let (_, none) = send(
        &w.p,
        &admin,
        Method::GET,
        "/api/v1/repositories?label=tier=backend",
        None,
    )
    .await;
    assert_eq!(none["items"], json!([]));
    let world = &w;
    let audit = eventually(Duration::from_secs(10), "the push in the audit log", || {
        let admin = admin.clone();
        async move {
            let w = world;
            let (_, log) = send(&w.p, &admin, Method::GET, "/api/v1/audit?action=registry%20push", None).await;
            log.as_array()?
                .iter()
                .find(|r| {
                    r["target"]
                        .as_str()
                        .is_some_and(|t| t.contains("acme/shop/web,tag=1.0"))
                })
                .cloned()
        }
    })
    .await;
    assert_eq!(audit["actor"], w.acme.robot);
    assert_eq!(audit["tenant_id"], w.acme.id);
}

#[tokio::test]
async fn another_tenant_can_neither_push_to_nor_pull_from_a_tenants_repository() {
    let Some(w) = world().await else { return };
    push(&w, &w.acme, "v1", "acme/shop/web", "1.0")
        .await
        .expect("its own robot pushes");
    catalog_tag(&w, "acme/shop/web", "1.0", None).await;

    let pushed = push(&w, &w.other, "evil", "acme/shop/web", "1.0").await;
    assert!(pushed.is_err(), "another tenant's robot pushed into acme's repository");
    let pulled = inspect(&w, &w.other, "acme/shop/web", "1.0").await;
    assert!(pulled.is_err(), "another tenant's robot pulled acme's image");
    assert!(inspect(&w, &w.acme, "acme/shop/web", "1.0").await.is_ok());

    // The token it gets for acme's repository grants nothing.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", w.other.robot, w.other.secret));
    let answer: Value =
        w.p.anonymous(
            Method::GET,
            "/service/token?service=paas-registry&scope=repository:acme/shop/web:pull,push",
        )
        .header("Authorization", format!("Basic {basic}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let payload = answer["token"].as_str().unwrap().split('.').nth(1).unwrap().to_string();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["access"], json!([]), "{claims}");
    assert_eq!(claims["sub"], w.other.robot);

    // A wrong secret is no login at all.
    let wrong = base64::engine::general_purpose::STANDARD.encode(format!("{}:nope", w.acme.robot));
    let refused =
        w.p.anonymous(Method::GET, "/service/token?service=paas-registry")
            .header("Authorization", format!("Basic {wrong}"))
            .send()
            .await
            .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_released_tag_cannot_be_overwritten_and_tags_move_one_step_at_a_time() {
    let Some(w) = world().await else { return };
    push(&w, &w.acme, "v1", "acme/shop/web", "1.0")
        .await
        .expect("first push");
    let tag = catalog_tag(&w, "acme/shop/web", "1.0", None).await;
    let admin = w.p.admin_token.clone();

    // Skipping a step, or going back, is refused naming the states.
    let (status, refused) = move_tag(&w, &admin, &tag, "released").await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("next state is tested"),
        "{refused}"
    );
    let (status, bad) = move_tag(&w, &admin, &tag, "golden").await;
    assert!(status.is_client_error() && status != StatusCode::NOT_FOUND, "{bad}");

    // A viewer may not release.
    let (status, viewer) = send(
        &w.p,
        &admin,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "viewer", "tenant_id": w.acme.id, "role": "viewer"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{viewer}");
    let viewer = viewer["secret"].as_str().unwrap().to_string();
    let (status, _) = move_tag(&w, &viewer, &tag, "tested").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, tested) = move_tag(&w, &admin, &tag, "tested").await;
    assert_eq!((status, tested["state"].as_str()), (StatusCode::OK, Some("tested")));
    let (status, released) = move_tag(&w, &admin, &tag, "released").await;
    assert_eq!((status, released["state"].as_str()), (StatusCode::OK, Some("released")));
    let (status, _) = move_tag(&w, &admin, &tag, "tested").await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Pushing another image over the released tag is refused by the proxy...
    let overwrite = push(&w, &w.acme, "v2", "acme/shop/web", "1.0")
        .await
        .expect_err("a released tag was overwritten");
    assert!(overwrite.contains("immutable"), "{overwrite}");
    // ...and the tag still names the first image; a new tag is fine.
    let manifest = inspect(&w, &w.acme, "acme/shop/web", "1.0").await.unwrap();
    assert_eq!(
        format!("sha256:{}", sha256(manifest.as_bytes())),
        tag["digest"].as_str().unwrap()
    );
    push(&w, &w.acme, "v2", "acme/shop/web", "1.1")
        .await
        .expect("a new tag");
    let next = catalog_tag(&w, "acme/shop/web", "1.1", None).await;
    assert_ne!(next["digest"], tag["digest"]);
}

#[tokio::test]
async fn notifications_replayed_twice_are_recorded_once() {
    let Some(w) = world().await else { return };
    let event_id = format!("replayed-{:016x}", rand_u64());
    let envelope = json!({"events": [{
        "id": event_id,
        "timestamp": "2026-12-07T01:00:00Z",
        "action": "pull",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": 500, "digest": "sha256:0000", "repository": "acme/shop/web", "tag": "1.0"
        },
        "actor": {"name": w.acme.robot}
    }]});
    let token = gateway::registry::notification_token(w.p.settings.caller_key.expose());
    for _ in 0..2 {
        let r =
            w.p.anonymous(Method::POST, "/service/notifications")
                .bearer_auth(&token)
                .json(&envelope)
                .send()
                .await
                .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let forged =
        w.p.anonymous(Method::POST, "/service/notifications")
            .bearer_auth("not-the-token")
            .json(&envelope)
            .send()
            .await
            .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    let admin = w.p.admin_token.clone();
    let (_, log) = send(&w.p, &admin, Method::GET, "/api/v1/audit?action=registry%20pull", None).await;
    let records: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["request_id"] == event_id.as_str())
        .collect();
    assert_eq!(records.len(), 1, "{log}");
    assert_eq!(records[0]["actor"], w.acme.robot);
    assert_eq!(records[0]["tenant_id"], w.acme.id);
}

#[tokio::test]
async fn an_upload_past_the_tenants_storage_quota_is_refused() {
    let Some(w) = world().await else { return };
    let admin = w.p.admin_token.clone();
    push(&w, &w.acme, "v1", "acme/shop/web", "1.0")
        .await
        .expect("within the quota");
    catalog_tag(&w, "acme/shop/web", "1.0", None).await;
    let world = &w;
    let used = eventually(Duration::from_secs(10), "the layers counted", || {
        let admin = admin.clone();
        async move {
            let w = world;
            let (_, q) = send(
                &w.p,
                &admin,
                Method::GET,
                &format!("/api/v1/tenants/{}/image-storage", w.acme.id),
                None,
            )
            .await;
            q["used_bytes"].as_i64().filter(|u| *u > 0)
        }
    })
    .await;
    let (status, q) = send(
        &w.p,
        &admin,
        Method::PUT,
        &format!("/api/v1/tenants/{}/image-storage", w.acme.id),
        Some(json!({"limit_bytes": used})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{q}");
    let refused = push(&w, &w.acme, "a bigger v2 than v1", "acme/shop/web", "2.0")
        .await
        .expect_err("past the quota");
    assert!(refused.contains("quota"), "{refused}");
    // Another tenant's storage is its own.
    push(&w, &w.other, "v1", "other/web/site", "1.0")
        .await
        .expect("another tenant pushes");
}

/// The repository's retention `path` (under `/api/v1/repositories/{id}/retention`) as the admin.
async fn retention(
    w: &World,
    method: Method,
    repository: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let admin = w.p.admin_token.clone();
    send(
        &w.p,
        &admin,
        method,
        &format!("/api/v1/repositories/{repository}/retention{path}"),
        body,
    )
    .await
}

#[tokio::test]
async fn retention_deletes_exactly_what_it_previewed_keeps_released_tags_and_the_registry_collects() {
    let Some(w) = world_with(&[
        ("PAAS_IMAGES_RETENTION_POLL", "200ms"),
        ("PAAS_IMAGES_GC_DELAY", "0s"),
        ("PAAS_IMAGES_GC_DRAIN", "0s"),
    ])
    .await
    else {
        return;
    };
    let admin = w.p.admin_token.clone();
    const REPO: &str = "acme/shop/kept";
    // Oldest first: 1.0 (to be released), 1.1, 1.2, 1.3; then 1.3 again with
    // another image, which leaves the first 1.3 untagged.
    let mut tags = Vec::new();
    for (content, tag) in [("r0", "1.0"), ("r1", "1.1"), ("r2", "1.2"), ("r3", "1.3")] {
        push(&w, &w.acme, content, REPO, tag).await.expect("pushed");
        tags.push(catalog_tag(&w, REPO, tag, None).await);
    }
    let first_13 = tags[3]["digest"].as_str().unwrap().to_string();
    push(&w, &w.acme, "r3-again", REPO, "1.3").await.expect("pushed again");
    catalog_tag(&w, REPO, "1.3", Some(&first_13)).await;
    for state in ["tested", "released"] {
        let (status, moved) = move_tag(&w, &admin, &tags[0], state).await;
        assert_eq!(status, StatusCode::OK, "{moved}");
    }
    let repository = tags[0]["repository_id"].as_str().unwrap().to_string();

    // No rule yet; a rule that deletes nothing names its field.
    let (status, _) = retention(&w, Method::GET, &repository, "", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, problem) = retention(&w, Method::PUT, &repository, "", Some(json!({"keep_released": true}))).await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("keep_last")),
        "{problem}"
    );
    let (status, rule) = retention(
        &w,
        Method::PUT,
        &repository,
        "",
        Some(json!({"keep_last": 2, "keep_released": true, "untagged_days": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rule}");
    assert_eq!(
        (rule["keep_last"].as_u64(), rule["untagged_days"].as_u64()),
        (Some(2), Some(0))
    );

    // The registry's configuration, so the collection after the run runs here.
    let (_, registries) = send(&w.p, &admin, Method::GET, "/api/v1/registries", None).await;
    let master = registries["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["master"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let config = w._registry.dir.join("config.yml");
    let (status, body) = send(
        &w.p,
        &admin,
        Method::PUT,
        &format!("/api/v1/registries/{master}/garbage-collection"),
        Some(json!({"config": config.display().to_string()})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // The preview: 1.1 (beyond the last two, not released) and the first 1.3
    // (untagged); 1.0 is released and stays.
    let (status, preview) = retention(&w, Method::GET, &repository, "/preview", None).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let planned = preview["deletions"].as_array().unwrap().clone();
    let digests: std::collections::BTreeSet<&str> = planned.iter().map(|d| d["digest"].as_str().unwrap()).collect();
    let expected = [tags[1]["digest"].as_str().unwrap(), first_13.as_str()]
        .into_iter()
        .collect();
    assert_eq!(digests, expected, "{preview}");
    assert!(planned.iter().any(|d| d["tags"] == json!(["1.1"])), "{preview}");

    // The run deletes exactly that.
    let (status, run) = retention(&w, Method::POST, &repository, "/runs", None).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["cause"], "manual");
    assert_eq!(run["deleted"], json!(planned), "the preview is what the run deleted");
    assert_eq!(run["skipped"], json!([]));
    let (_, runs) = retention(&w, Method::GET, &repository, "/runs", None).await;
    assert_eq!(runs["items"][0]["id"], run["id"], "{runs}");

    // The catalog and the registry agree: 1.1 deleted, the others there.
    let (_, gone) = send(
        &w.p,
        &admin,
        Method::GET,
        &format!("/api/v1/repositories/{repository}/tags/1.1"),
        None,
    )
    .await;
    assert_eq!(gone["state"], "deleted", "{gone}");
    assert!(
        inspect(&w, &w.acme, REPO, "1.1").await.is_err(),
        "1.1 is gone from the registry"
    );
    for tag in ["1.0", "1.2", "1.3"] {
        inspect(&w, &w.acme, REPO, tag)
            .await
            .unwrap_or_else(|e| panic!("{tag} kept: {e}"));
    }
    let (_, released) = send(
        &w.p,
        &admin,
        Method::GET,
        &format!("/api/v1/repositories/{repository}/tags/1.0"),
        None,
    )
    .await;
    assert_eq!(released["state"], "released");
    // The registry's own word of the deletion, in the audit log under the run.
    let actor = format!("retention:{}", run["id"].as_str().unwrap());
    let world = &w;
    eventually(Duration::from_secs(20), "the deletion in the audit log", || {
        let (admin, actor) = (admin.clone(), actor.clone());
        async move {
            let (_, log) = send(
                &world.p,
                &admin,
                Method::GET,
                "/api/v1/audit?action=registry%20delete",
                None,
            )
            .await;
            log.as_array()?.iter().find(|r| r["actor"] == actor.as_str()).cloned()
        }
    })
    .await;

    // The run queued a collection of the master, which ran and freed space.
    let gc = eventually(Duration::from_secs(60), "the garbage collection", || {
        let admin = admin.clone();
        let path = format!("/api/v1/registries/{master}/garbage-collections");
        async move {
            let (_, page) = send(&world.p, &admin, Method::GET, &path, None).await;
            let gc = page["items"].as_array()?.first()?.clone();
            matches!(gc["state"].as_str(), Some("succeeded" | "failed" | "skipped")).then_some(gc)
        }
    })
    .await;
    assert_eq!(
        (gc["state"].as_str(), gc["cause"].as_str()),
        (Some("succeeded"), Some("retention")),
        "{gc}"
    );
    assert!(gc["blobs_deleted"].as_i64().unwrap() >= 2, "{gc}");
    assert!(gc["freed_bytes"].as_i64().unwrap() > 0, "{gc}");
    // Writes resumed: a push works again, and what was kept still pulls.
    push(&w, &w.acme, "after-gc", REPO, "1.4")
        .await
        .expect("pushes after the collection");
    inspect(&w, &w.acme, REPO, "1.0")
        .await
        .expect("the released tag survives the collection");

    // Another tenant's administrator: none of it exists.
    let (_, token) = send(
        &w.p,
        &admin,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "stranger", "tenant_id": w.other.id, "role": "tenant-admin"})),
    )
    .await;
    let stranger = token["secret"].as_str().unwrap().to_string();
    for (method, path) in [
        (Method::GET, ""),
        (Method::GET, "/preview"),
        (Method::GET, "/runs"),
        (Method::POST, "/runs"),
        (Method::DELETE, ""),
    ] {
        let full = format!("/api/v1/repositories/{repository}/retention{path}");
        let (status, body) = send(&w.p, &stranger, method, &full, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{full}: {body}");
    }
}
