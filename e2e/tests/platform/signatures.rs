//! Cosign signatures end to end: a real registry behind the gateway's `/v2/`,
//! images pushed with skopeo, signatures made by the platform (checked here
//! independently with `openssl`, since cosign is not packaged for Debian) or
//! made with `openssl` as a tenant's CI would with `cosign sign --key` and
//! pushed in cosign's layout, and production admission refusing unsigned
//! images when the tenant requires signatures. Without the registry,
//! skopeo or openssl these tests pass as skipped, unless `CI` is set.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kernel::testkit::eventually;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::admission::{WEB, World, image_and_port, refused, world};

const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

async fn signing_world() -> Option<World> {
    if std::process::Command::new("openssl").arg("version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI needs openssl");
        eprintln!("skipped: openssl is not installed");
        return None;
    }
    // The admission world skips without skopeo or the registry.
    world().await
}

fn digest_of(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

fn signature_tag(digest: &str) -> String {
    format!("sha256-{}.sig", digest.trim_start_matches("sha256:"))
}

/// Runs openssl in `dir`; its stdout.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A P-256 key made by openssl, as a CI's `cosign generate-key-pair` would: (private file, public PEM).
fn ci_key(dir: &Path, name: &str) -> (String, String) {
    let key = format!("{name}.key");
    openssl(
        dir,
        &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key],
    );
    openssl(dir, &["ec", "-in", &key, "-pubout", "-out", &format!("{name}.pub")]);
    (key, std::fs::read_to_string(dir.join(format!("{name}.pub"))).unwrap())
}

/// Cosign's simple signing payload for `digest`.
fn payload(reference: &str, digest: &str) -> Vec<u8> {
    json!({
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": null
    })
    .to_string()
    .into_bytes()
}

/// The base64 ECDSA-SHA256 signature (DER) openssl makes of `payload` with `key`.
fn openssl_sign(dir: &Path, key: &str, payload: &[u8]) -> String {
    let name = format!("payload-{}", uuid::Uuid::new_v4());
    std::fs::write(dir.join(&name), payload).unwrap();
    openssl(
        dir,
        &["dgst", "-sha256", "-sign", key, "-out", &format!("{name}.sig"), &name],
    );
    B64.encode(std::fs::read(dir.join(format!("{name}.sig"))).unwrap())
}

/// A pull+push registry token of the tenant's robot for `repository`.
async fn registry_token(w: &World, repository: &str) -> String {
    let basic = B64.encode(format!("{}:{}", w.robot.0, w.robot.1));
    let r: Value =
        w.w.p
            .anonymous(
                Method::GET,
                &format!("/service/token?service=paas-registry&scope=repository:{repository}:pull,push"),
            )
            .header("Authorization", format!("Basic {basic}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    r["token"].as_str().unwrap_or_else(|| panic!("{r}")).to_string()
}

fn v2(w: &World, token: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    let url = if path.starts_with("http") {
        path.to_string()
    } else {
        format!("{}{path}", w.w.p.url)
    };
    w.w.p.http.request(method, url).bearer_auth(token)
}

async fn put_blob(w: &World, token: &str, repository: &str, body: &[u8]) -> String {
    let digest = digest_of(body);
    let started = v2(w, token, Method::POST, &format!("/v2/{repository}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let location = started.headers()["location"].to_str().unwrap().to_string();
    let separator = if location.contains('?') { '&' } else { '?' };
    let put = v2(w, token, Method::PUT, &format!("{location}{separator}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED, "{}", put.text().await.unwrap());
    digest
}

/// Pushes a signature image in cosign's layout for `digest`: one layer per (payload, signature).
async fn push_signature(w: &World, repository: &str, digest: &str, signatures: &[(Vec<u8>, String)]) {
    let token = registry_token(w, repository).await;
    let mut layers = Vec::new();
    for (payload, signature) in signatures {
        let d = put_blob(w, &token, repository, payload).await;
        layers.push(
            json!({"mediaType": PAYLOAD_MEDIA_TYPE, "size": payload.len(), "digest": d,
                           "annotations": {SIGNATURE_ANNOTATION: signature}}),
        );
    }
    let diff_ids: Vec<&Value> = layers.iter().map(|l| &l["digest"]).collect();
    let config = json!({"architecture": "", "os": "", "config": {},
                        "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    .to_string();
    let config_digest = put_blob(w, &token, repository, config.as_bytes()).await;
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest},
        "layers": layers
    });
    let put = v2(
        w,
        &token,
        Method::PUT,
        &format!("/v2/{repository}/manifests/{}", signature_tag(digest)),
    )
    .header("content-type", OCI_MANIFEST)
    .body(manifest.to_string())
    .send()
    .await
    .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED, "{}", put.text().await.unwrap());
}

/// The catalog's tag once its signature status is `status`.
async fn signature_becomes(w: &World, repository: &str, tag: &str, status: &str) -> Value {
    eventually(
        Duration::from_secs(30),
        &format!("{repository}:{tag} {status}"),
        || async move {
            let t = w.tag(repository, tag).await?;
            (t["signature"]["status"] == status).then_some(t)
        },
    )
    .await
}

#[tokio::test]
async fn a_tag_signed_by_the_platform_is_in_cosigns_layout_and_production_can_require_it() {
    let Some(w) = signing_world().await else { return };
    let tenant = w.w.tenant.clone();
    let repository = "acme/web/signed";
    let tag = w.push("signed 1.0", &WEB, repository, "1.0").await;
    w.release(&tag).await;
    assert_eq!(tag["signature"]["status"], "unsigned", "{tag}");
    let digest = tag["digest"].as_str().unwrap().to_string();

    // Signatures are not required by default; a tenant administrator requires them in production.
    let policy = format!("/api/v1/tenants/{tenant}/signature-policies/production");
    let (_, p) = w.w.send(Method::GET, &policy, None).await;
    assert_eq!(p["required"], false, "{p}");
    let (status, p) = w.w.send(Method::PUT, &policy, Some(json!({"required": true}))).await;
    assert_eq!((status, &p["required"]), (StatusCode::OK, &json!(true)), "{p}");
    let (status, p) =
        w.w.send(
            Method::PUT,
            &format!("/api/v1/tenants/{tenant}/signature-policies/staging"),
            Some(json!({"required": true})),
        )
        .await;
    assert_eq!(
        (status, &p["field"]),
        (StatusCode::BAD_REQUEST, &json!("environment")),
        "{p}"
    );

    let version = w.template("signed", "${image}", image_and_port()).await;
    let image = format!("{}/{repository}:1.0", w.host);
    let (status, p) = w
        .deploy("signed", "production", &version, json!({"image": image, "port": 8080}))
        .await;
    refused(status, &p, "signature");
    assert!(p["detail"].as_str().unwrap().contains("is not signed"), "{p}");

    // A key made and held by the platform; its public half is shown.
    let (status, key) =
        w.w.send(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/signing-keys"),
            Some(json!({"name": "release"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    assert_eq!(key["platform_held"], true);
    let public_pem = key["public_key_pem"].as_str().unwrap().to_string();
    assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{key}");
    let key_id = key["id"].as_str().unwrap().to_string();

    let (status, signed) =
        w.w.send(
            Method::POST,
            &format!(
                "/api/v1/repositories/{}/tags/1.0/signatures",
                tag["repository_id"].as_str().unwrap()
            ),
            Some(json!({"key_id": key_id})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{signed}");
    assert_eq!(
        (&signed["status"], &signed["key_ids"]),
        (&json!("signed"), &json!([key_id]))
    );
    let shown = signature_becomes(&w, repository, "1.0", "signed").await;
    assert_eq!(shown["signature"]["key_ids"], json!([key_id]));

    // Cosign's layout, read back from the registry and checked with openssl
    // against the public key shown: what `cosign verify --key` does.
    let token = registry_token(&w, repository).await;
    let manifest: Value = v2(
        &w,
        &token,
        Method::GET,
        &format!("/v2/{repository}/manifests/{}", signature_tag(&digest)),
    )
    .header("accept", OCI_MANIFEST)
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(manifest["mediaType"], OCI_MANIFEST, "{manifest}");
    let layer = &manifest["layers"][0];
    assert_eq!(layer["mediaType"], PAYLOAD_MEDIA_TYPE, "{manifest}");
    let signature = B64
        .decode(layer["annotations"][SIGNATURE_ANNOTATION].as_str().unwrap())
        .unwrap();
    let body = v2(
        &w,
        &token,
        Method::GET,
        &format!("/v2/{repository}/blobs/{}", layer["digest"].as_str().unwrap()),
    )
    .send()
    .await
    .unwrap()
    .bytes()
    .await
    .unwrap();
    let claims: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(claims["critical"]["image"]["docker-manifest-digest"], digest.as_str());
    assert_eq!(claims["critical"]["type"], "cosign container image signature");
    assert!(
        claims["critical"]["identity"]["docker-reference"]
            .as_str()
            .unwrap()
            .ends_with(repository),
        "{claims}"
    );
    std::fs::write(w.dir.join("platform.pub"), &public_pem).unwrap();
    std::fs::write(w.dir.join("payload.json"), &body).unwrap();
    std::fs::write(w.dir.join("payload.sig"), &signature).unwrap();
    let verified = openssl(
        &w.dir,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "platform.pub",
            "-signature",
            "payload.sig",
            "payload.json",
        ],
    );
    assert!(verified.contains("Verified OK"), "{verified}");

    // Signed, the image is admitted.
    let (status, app) = w
        .deploy("signed", "production", &version, json!({"image": image, "port": 8080}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");

    // A deleted key's signatures no longer count.
    let (status, _) =
        w.w.send(
            Method::DELETE,
            &format!("/api/v1/tenants/{tenant}/signing-keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let t = w.tag(repository, "1.0").await.unwrap();
    assert_eq!(t["signature"]["status"], "invalid", "{t}");
}

#[tokio::test]
async fn signatures_by_other_keys_or_tampered_are_invalid_and_other_tenants_cannot_use_keys() {
    let Some(w) = signing_world().await else { return };
    let tenant = w.w.tenant.clone();
    let repository = "acme/web/ci";
    let tag = w.push("ci 1.0", &WEB, repository, "1.0").await;
    let digest = tag["digest"].as_str().unwrap().to_string();
    let reference = format!("{}/{repository}", w.host);

    // Signed by the CI's own key, which the tenant has not registered yet: invalid.
    let (ci, ci_pub) = ci_key(&w.dir, "ci");
    let body = payload(&reference, &digest);
    let good = openssl_sign(&w.dir, &ci, &body);
    push_signature(&w, repository, &digest, &[(body.clone(), good.clone())]).await;
    let t = signature_becomes(&w, repository, "1.0", "invalid").await;
    assert!(
        t["signature"]["message"]
            .as_str()
            .unwrap()
            .contains("not made by any of the tenant's keys"),
        "{t}"
    );

    // Registered, the same signature counts (checked on demand).
    let (status, key) =
        w.w.send(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/signing-keys"),
            Some(json!({"name": "ci", "public_key_pem": ci_pub})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    assert_eq!(key["platform_held"], false);
    let key_id = key["id"].as_str().unwrap().to_string();
    let check = format!(
        "/api/v1/repositories/{}/tags/1.0/signatures/check",
        tag["repository_id"].as_str().unwrap()
    );
    let (status, checked) = w.w.send(Method::POST, &check, None).await;
    assert_eq!(status, StatusCode::OK, "{checked}");
    assert_eq!(
        (&checked["status"], &checked["key_ids"]),
        (&json!("signed"), &json!([key_id]))
    );

    // The platform holds only its public half: it cannot sign with it.
    let sign = format!(
        "/api/v1/repositories/{}/tags/1.0/signatures",
        tag["repository_id"].as_str().unwrap()
    );
    let (status, p) = w.w.send(Method::POST, &sign, Some(json!({"key_id": key_id}))).await;
    assert_eq!(
        (status, &p["field"]),
        (StatusCode::BAD_REQUEST, &json!("key_id")),
        "{p}"
    );

    // Tampered: the payload changed after signing, or a signature of another image.
    let second = w.push("ci 1.1", &WEB, repository, "1.1").await;
    let second_digest = second["digest"].as_str().unwrap().to_string();
    let mut tampered = payload(&reference, &second_digest);
    let signature = openssl_sign(&w.dir, &ci, &tampered);
    let at = tampered.len() - 3;
    tampered[at] = b' ';
    push_signature(&w, repository, &second_digest, &[(tampered, signature)]).await;
    signature_becomes(&w, repository, "1.1", "invalid").await;
    push_signature(&w, repository, &second_digest, &[(body, good)]).await;
    let (w, digest) = (&w, &digest);
    let t = eventually(
        Duration::from_secs(30),
        "the other image's signature refused",
        || async move {
            let t = w.tag(repository, "1.1").await?;
            let message = t["signature"]["message"].as_str()?.to_string();
            message.contains(&format!("signs {digest}")).then_some(t)
        },
    )
    .await;
    assert_eq!(t["signature"]["status"], "invalid", "{t}");

    // Malformed keys are refused naming the field.
    let (status, p) =
        w.w.send(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/signing-keys"),
            Some(
                json!({"name": "bad", "public_key_pem": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}),
            ),
        )
        .await;
    assert_eq!(
        (status, &p["field"]),
        (StatusCode::BAD_REQUEST, &json!("public_key_pem")),
        "{p}"
    );

    // Another tenant's administrator can neither see the keys nor sign.
    let (_, other) =
        w.w.send(Method::POST, "/api/v1/tenants", Some(json!({"name": "other"})))
            .await;
    let other = other["id"].as_str().unwrap().to_string();
    let (status, token) =
        w.w.send(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "other-admin", "tenant_id": other, "role": "tenant-admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    let token = token["secret"].as_str().unwrap().to_string();
    let as_other = |method: Method, path: String, body: Option<Value>| {
        let token = token.clone();
        let w = &w;
        async move {
            let mut r = w.w.p.anonymous(method, &path).bearer_auth(token);
            if let Some(b) = body {
                r = r.json(&b);
            }
            r.send().await.unwrap().status()
        }
    };
    let keys = format!("/api/v1/tenants/{tenant}/signing-keys");
    for status in [
        as_other(Method::GET, keys.clone(), None).await,
        as_other(Method::POST, keys.clone(), Some(json!({"name": "theirs"}))).await,
        as_other(Method::POST, sign.clone(), Some(json!({"key_id": key_id}))).await,
        as_other(
            Method::PUT,
            format!("/api/v1/tenants/{tenant}/signature-policies/production"),
            Some(json!({"required": false})),
        )
        .await,
    ] {
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
            "{status}"
        );
    }
    // Its own platform-held key cannot sign the tenant's images either.
    let (status, theirs) =
        w.w.send(
            Method::POST,
            &format!("/api/v1/tenants/{other}/signing-keys"),
            Some(json!({"name": "theirs"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    let (status, p) =
        w.w.send(Method::POST, &sign, Some(json!({"key_id": theirs["id"]})))
            .await;
    assert_eq!(
        (status, &p["field"]),
        (StatusCode::BAD_REQUEST, &json!("key_id")),
        "{p}"
    );
}
