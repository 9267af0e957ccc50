//! Replication end to end with real registries: a master the platform
//! proxies and two sub-registries (`docker-registry`, token authentication
//! by the platform), one in a data centre where the tenant has a partition
//! and one where it has none; `skopeo` pushes through the gateway and
//! inspects the copies. Without the registry or skopeo installed these tests
//! pass as skipped, unless `CI` is set.

use std::path::PathBuf;
use std::time::Duration;

use e2e::Platform;
use kernel::testkit::eventually;
use paas::master_registry::MasterRegistry;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::images::{Tenant, image_layout, installed, rand_u64, tenant};
use crate::isolation::send;

struct World {
    p: Platform,
    _master: MasterRegistry,
    /// In `dc-near`, where acme has a partition.
    near: MasterRegistry,
    near_id: String,
    /// In `dc-far`, where it has none.
    far: MasterRegistry,
    far_id: String,
    acme: Tenant,
    host: String,
    dir: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn world() -> Option<World> {
    if !installed("skopeo") || paas::master_registry::binary().is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs docker-registry and skopeo (scripts/deps installs them)"
        );
        eprintln!("skipped: docker-registry or skopeo is not installed");
        return None;
    }
    let p = Platform::start().await;
    let master = paas::master_registry::start(&p.settings, &p.stack)
        .await
        .expect("the master starts")
        .expect("installed");
    let (near, near_id) = paas::master_registry::start_sub(&p.settings, &p.stack, "near", "dc-near")
        .await
        .expect("the near registry starts")
        .expect("installed");
    let (far, far_id) = paas::master_registry::start_sub(&p.settings, &p.stack, "far", "dc-far")
        .await
        .expect("the far registry starts")
        .expect("installed");
    let acme = tenant(&p, "acme", "shop").await;
    let admin = p.admin_token.clone();
    let (_, projects) = send(
        &p,
        &admin,
        Method::GET,
        &format!("/api/v1/tenants/{}/projects", acme.id),
        None,
    )
    .await;
    let project = projects["items"][0]["id"].as_str().unwrap().to_string();
    let (status, part) = send(
        &p,
        &admin,
        Method::POST,
        &format!("/api/v1/projects/{project}/partitions"),
        Some(json!({"cluster": "near-1", "data_centre": "dc-near"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{part}");
    let host = p.url.trim_start_matches("http://").to_string();
    let dir = std::env::temp_dir().join(format!("paas-replication-e2e-{:016x}", rand_u64()));
    std::fs::create_dir_all(&dir).unwrap();
    Some(World {
        p,
        _master: master,
        near,
        near_id,
        far,
        far_id,
        acme,
        host,
        dir,
    })
}

/// Runs skopeo with its own home; `Ok(stdout)` or `Err(stderr)`.
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

async fn push(w: &World, content: &str, reference: &str) {
    let layout = image_layout(&w.dir, content);
    let creds = format!("{}:{}", w.acme.robot, w.acme.secret);
    skopeo(
        w,
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &format!("oci:{}:latest", layout.display()),
            &format!("docker://{}/{reference}", w.host),
        ],
    )
    .await
    .expect("the push is accepted");
}

/// The digest of `reference` at `registry` (`host:port`), as skopeo reads it
/// with acme's robot (every registry takes the platform's tokens).
async fn digest_at(w: &World, registry: &str, reference: &str) -> Result<String, String> {
    let creds = format!("{}:{}", w.acme.robot, w.acme.secret);
    let out = skopeo(
        w,
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            &creds,
            &format!("docker://{registry}/{reference}"),
        ],
    )
    .await?;
    let doc: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
    Ok(doc["Digest"].as_str().unwrap_or_default().to_string())
}

fn host_of(r: &MasterRegistry) -> String {
    r.addr.to_string()
}

async fn create_rule(w: &World, registries: &[&str]) -> (StatusCode, Value) {
    send(
        &w.p,
        &w.p.admin_token,
        Method::POST,
        &format!("/api/v1/tenants/{}/replication-rules", w.acme.id),
        Some(json!({"name": "to-dcs", "repositories": "acme/shop/*", "registry_ids": registries})),
    )
    .await
}

/// The rule's newest run once `done` says it is where the test waits for.
async fn newest_run(w: &World, rule: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let admin = w.p.admin_token.clone();
    eventually(Duration::from_secs(120), what, || {
        let admin = admin.clone();
        let done = &done;
        async move {
            let (_, runs) = send(
                &w.p,
                &admin,
                Method::GET,
                &format!("/api/v1/replication-rules/{rule}/runs"),
                None,
            )
            .await;
            let id = runs["items"].as_array()?.first()?["id"].as_str()?.to_string();
            let (_, run) = send(
                &w.p,
                &admin,
                Method::GET,
                &format!("/api/v1/replication-runs/{id}"),
                None,
            )
            .await;
            done(&run).then_some(run)
        }
    })
    .await
}

#[tokio::test]
async fn a_push_lands_in_the_tenants_data_centre_registry_and_not_in_another() {
    let Some(w) = world().await else { return };
    let (status, refused) = create_rule(&w, &[&w.near_id, &w.far_id]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused.to_string().contains("registry_ids"), "{refused}");
    let (status, rule) = create_rule(&w, &[&w.near_id]).await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let rule = rule["id"].as_str().unwrap().to_string();

    push(&w, "#!/bin/sh\necho replicated\n", "acme/shop/web:1.0").await;
    let run = newest_run(&w, &rule, "the push's run succeeding", |r| r["state"] == "succeeded").await;
    assert_eq!(run["trigger"], "push", "{run}");
    assert_eq!(run["items"][0]["state"], "copied", "{run}");

    let at_master = digest_at(&w, &w.host, "acme/shop/web:1.0").await.unwrap();
    let at_near = digest_at(&w, &host_of(&w.near), "acme/shop/web:1.0").await.unwrap();
    assert_eq!(at_near, at_master);
    assert_eq!(run["items"][0]["digest"], at_master.as_str());
    assert!(
        digest_at(&w, &host_of(&w.far), "acme/shop/web:1.0").await.is_err(),
        "nothing reaches a data centre the tenant is not in"
    );

    // A manual run finds the copy in place and streams nothing.
    let (status, manual) = send(
        &w.p,
        &w.p.admin_token,
        Method::POST,
        &format!("/api/v1/replication-rules/{rule}/runs"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{manual}");
    let again = newest_run(&w, &rule, "the manual run succeeding", |r| {
        r["trigger"] == "manual" && r["state"] == "succeeded"
    })
    .await;
    assert_eq!(again["bytes"], 0, "{again}");
    let (_, status_now) = send(
        &w.p,
        &w.p.admin_token,
        Method::GET,
        &format!("/api/v1/replication-rules/{rule}"),
        None,
    )
    .await;
    assert_eq!(status_now["status"]["last_run_state"], "succeeded", "{status_now}");
    assert_eq!(status_now["status"]["lag_seconds"], 0, "{status_now}");
}

#[tokio::test]
async fn a_run_whose_target_is_down_resumes_and_completes_when_it_is_back() {
    let Some(mut w) = world().await else { return };
    let (status, rule) = create_rule(&w, &[&w.near_id]).await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let rule = rule["id"].as_str().unwrap().to_string();

    w.near.pause();
    push(&w, "#!/bin/sh\necho while the target was down\n", "acme/shop/api:2.0").await;
    let waiting = newest_run(&w, &rule, "an attempt failing on the stopped target", |r| {
        r["attempts"].as_i64() >= Some(1) && r["state"] == "queued" && r["items"][0]["state"] == "failed"
    })
    .await;
    assert!(waiting["message"].as_str().unwrap().contains("not copied"), "{waiting}");
    let (_, lagging) = send(
        &w.p,
        &w.p.admin_token,
        Method::GET,
        &format!("/api/v1/replication-rules/{rule}"),
        None,
    )
    .await;
    assert_eq!(lagging["status"]["pending_items"], 1, "{lagging}");

    w.near.resume().await.expect("the target starts again");
    let done = newest_run(&w, &rule, "the run completing after the target is back", |r| {
        r["state"] == "succeeded"
    })
    .await;
    assert!(done["attempts"].as_i64() >= Some(2), "{done}");
    let at_master = digest_at(&w, &w.host, "acme/shop/api:2.0").await.unwrap();
    let at_near = digest_at(&w, &host_of(&w.near), "acme/shop/api:2.0").await.unwrap();
    assert_eq!(at_near, at_master);
}
