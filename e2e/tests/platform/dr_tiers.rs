//! An application's placement as its services' bindings get it: the DR tier
//! (for the whole application, and per service) kept by every later release,
//! scale and rollback; the bindings changed only through the application; a
//! scale that a fixed per-cluster placement cannot take refused; logs read
//! across every cluster the application runs in.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::applications::World;
use crate::strategies::{A, B, two_clusters};

/// The federation binding of `app`'s service `web`.
async fn web_binding(w: &World, app: &str) -> Value {
    let (_, a) = w.send(Method::GET, &format!("/api/v1/applications/{app}"), None).await;
    let name = format!("{}-web", a["name"].as_str().unwrap());
    let (_, bindings) = w
        .send(Method::GET, &format!("/api/v1/tenants/{}/bindings", w.tenant), None)
        .await;
    bindings["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name.as_str())
        .unwrap_or_else(|| panic!("no binding {name}: {bindings}"))
        .clone()
}

/// What of a binding's DR settings the test follows.
fn tier(b: &Value) -> (Value, Value, Value, Value, Value) {
    (
        b["placement"]["dr_tier"].clone(),
        b["placement"]["toleration_seconds"].clone(),
        b["failback"].clone(),
        b["priority"].clone(),
        b["placement"]["explicit"].clone(),
    )
}

#[tokio::test]
async fn an_applications_dr_tier_reaches_its_bindings_and_survives_scale_release_and_rollback() {
    let w = two_clusters(&[]).await;
    let (v1, v2) = w.gray_versions("dr").await;

    // Refused when the release is made, naming the field.
    for (placement, field) in [
        (
            json!({"explicit": [{"cluster": A}], "dr_tier": "sometimes"}),
            "placement.dr_tier",
        ),
        (
            json!({"explicit": [{"cluster": A}], "services": {"cache": {"singleton": true}}}),
            "placement.services.cache",
        ),
        (
            json!({"explicit": [{"cluster": A}], "services": {"web": {"toleration_seconds": -1}}}),
            "placement.services.web.toleration_seconds",
        ),
    ] {
        let (status, problem) = w
            .send(
                Method::POST,
                &format!("/api/v1/tenants/{}/applications", w.tenant),
                Some(json!({"name": "bad", "environment": "test", "template_version_id": v1,
                            "placement": placement})),
            )
            .await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{problem}"
        );
    }

    // The application-wide tier, with the service's own priority and clusters laid over it.
    let placement = json!({"explicit": [{"cluster": A}, {"cluster": B}], "dr_tier": "auto-failover",
        "toleration_seconds": 5, "services": {"web": {"explicit": [{"cluster": A}], "priority": 3}}});
    let (status, app) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(json!({"name": "dr", "environment": "test", "template_version_id": v1,
                        "placement": placement})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let app = app["id"].as_str().unwrap().to_string();
    w.release_state(&app, 1, "succeeded").await;
    let want = (
        json!("auto-failover"),
        json!(5),
        json!("automatic"),
        json!(3),
        json!([{"cluster": A}]),
    );
    assert_eq!(tier(&web_binding(&w, &app).await), want, "release 1");

    // A scale keeps it (it once came back as the manual tier).
    let (status, scaled) = w
        .send(
            Method::POST,
            &format!("/api/v1/applications/{app}/scale"),
            Some(json!({"service": "web", "replicas": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{scaled}");
    let b = web_binding(&w, &app).await;
    assert_eq!(
        (tier(&b), b["replicas"].as_u64()),
        (want.clone(), Some(2)),
        "after the scale"
    );

    // A new release without a placement starts from the latest one.
    w.new_release(&app, json!({"template_version_id": v2})).await;
    w.release_state(&app, 2, "succeeded").await;
    assert_eq!(tier(&web_binding(&w, &app).await), want, "release 2");

    // A rollback returns to release 1's placement, which had the same tier.
    let (status, r3) = w
        .send(
            Method::POST,
            &format!("/api/v1/applications/{app}/rollback"),
            Some(json!({"to_release": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r3}");
    w.release_state(&app, 3, "succeeded").await;
    assert_eq!(tier(&web_binding(&w, &app).await), want, "the rollback");

    // Stopped and started again: the same tier.
    for (action, state) in [("stop", "stopped"), ("start", "running")] {
        let (status, a) = w
            .send(Method::POST, &format!("/api/v1/applications/{app}/{action}"), None)
            .await;
        assert_eq!((status, a["state"].as_str()), (StatusCode::OK, Some(state)), "{a}");
        assert_eq!(tier(&web_binding(&w, &app).await), want, "after {action}");
    }

    // A release that changes the placement changes the tier.
    w.new_release(
        &app,
        json!({"placement": {"explicit": [{"cluster": A}], "dr_tier": "manual"}}),
    )
    .await;
    w.release_state(&app, 4, "succeeded").await;
    let b = web_binding(&w, &app).await;
    assert_eq!(
        (
            b["placement"]["dr_tier"].as_str(),
            b["failback"].as_str(),
            b["priority"].as_i64()
        ),
        (Some("manual"), Some("manual"), Some(0))
    );
}

#[tokio::test]
async fn an_applications_binding_changes_only_through_the_application_or_by_breaking_glass() {
    let w = two_clusters(&[]).await;
    let (v1, _) = w.gray_versions("sd").await;
    let (status, app) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(json!({"name": "sd", "environment": "test", "template_version_id": v1,
                        "placement": {"explicit": [{"cluster": A}]}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let app = app["id"].as_str().unwrap().to_string();
    w.release_state(&app, 1, "succeeded").await;
    let b = web_binding(&w, &app).await;
    let id = b["id"].as_str().unwrap().to_string();
    let generation = b["generation"].as_i64();
    let change = json!({"objects": b["objects"], "placement": {"explicit": [{"cluster": A}]}, "replicas": 3});

    // Every door but the application's is shut, for the platform admin too.
    let (status, problem) = w
        .send(Method::PUT, &format!("/api/v1/bindings/{id}"), Some(change.clone()))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("application sd") && detail.contains("/scale"),
        "{detail}"
    );
    let mut same_name = change.clone();
    same_name["name"] = b["name"].clone();
    let (status, _) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/bindings", w.tenant),
            Some(same_name),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a create under the same name");
    let (status, _) = w.send(Method::DELETE, &format!("/api/v1/bindings/{id}"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "a delete");

    // An operator may not break glass; a reason is required.
    let (_, operator) = w
        .send(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "op", "tenant_id": w.tenant, "role": "operator"})),
        )
        .await;
    let mut glass = change.clone();
    glass["reason"] = json!("INC-42: hot fix while the release pipeline is down");
    let by_operator =
        w.p.http
            .put(format!("{}/api/v1/bindings/{id}/break-glass", w.p.url))
            .bearer_auth(operator["secret"].as_str().unwrap())
            .json(&glass)
            .send()
            .await
            .unwrap();
    assert_eq!(by_operator.status(), StatusCode::FORBIDDEN);
    let mut blank = change.clone();
    blank["reason"] = json!("  ");
    let (status, problem) = w
        .send(Method::PUT, &format!("/api/v1/bindings/{id}/break-glass"), Some(blank))
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("reason"))
    );
    let after: Value = w.send(Method::GET, &format!("/api/v1/bindings/{id}"), None).await.1;
    assert_eq!(
        after["generation"].as_i64(),
        generation,
        "nothing changed by the refusals"
    );

    // The platform admin breaking glass changes it, and the audit log says so.
    let (status, changed) = w
        .send(Method::PUT, &format!("/api/v1/bindings/{id}/break-glass"), Some(glass))
        .await;
    assert_eq!(
        (status, changed["replicas"].as_u64()),
        (StatusCode::OK, Some(3)),
        "{changed}"
    );
    let (_, audit) = w.send(Method::GET, "/api/v1/audit", None).await;
    assert!(
        audit.as_array().unwrap().iter().any(|r| {
            let action = r["action"].as_str().unwrap_or_default();
            action.starts_with("PUT ") && action.ends_with("/break-glass") && r["result"] == "200"
        }),
        "{audit}"
    );
}

#[tokio::test]
async fn a_scale_that_per_cluster_replicas_leave_nothing_to_divide_is_refused_with_the_reason() {
    let w = two_clusters(&[]).await;
    let (v1, _) = w.gray_versions("fx").await;
    let placement = json!({"explicit": [{"cluster": A, "replicas": 2}, {"cluster": B, "replicas": 1}]});
    let (status, app) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(json!({"name": "fx", "environment": "test", "template_version_id": v1, "placement": placement})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let app = app["id"].as_str().unwrap().to_string();
    w.release_state(&app, 1, "succeeded").await;
    let before = web_binding(&w, &app).await;

    let (status, problem) = w
        .send(
            Method::POST,
            &format!("/api/v1/applications/{app}/scale"),
            Some(json!({"service": "web", "replicas": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("dc1-prod: 2, dc2-dr: 1"), "{detail}");
    let after = web_binding(&w, &app).await;
    assert_eq!(
        (after["generation"].clone(), after["replicas"].clone()),
        (before["generation"].clone(), before["replicas"].clone()),
        "nothing changed"
    );
    let (_, events) = w
        .send(Method::GET, &format!("/api/v1/applications/{app}/scale-events"), None)
        .await;
    assert_eq!(events["items"], json!([]), "no scale recorded");
}

#[tokio::test]
async fn logs_without_a_cluster_or_pod_come_from_every_pod_in_every_cluster_each_line_prefixed() {
    let w = two_clusters(&[]).await;
    let (v1, _) = w.gray_versions("lg").await;
    let placement = json!({"explicit": [{"cluster": A, "replicas": 2}, {"cluster": B, "replicas": 1}]});
    let (status, app) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(json!({"name": "lg", "environment": "test", "template_version_id": v1, "placement": placement})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let app = app["id"].as_str().unwrap().to_string();
    w.release_state(&app, 1, "succeeded").await;

    let (status, log) = w
        .send(
            Method::GET,
            &format!("/api/v1/applications/{app}/logs?service=web&tail=2"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let text = log["text"].as_str().unwrap();
    let mut sources: Vec<&str> = text.lines().filter_map(|l| l.split(' ').next()).collect();
    sources.dedup();
    assert_eq!(sources.len(), 3, "three pods, two lines each:\n{text}");
    assert_eq!(
        (
            sources.iter().filter(|s| s.starts_with("dc1-prod/lg-web-")).count(),
            sources.iter().filter(|s| s.starts_with("dc2-dr/lg-web-")).count()
        ),
        (2, 1),
        "{text}"
    );
    assert_eq!(text.lines().count(), 6, "{text}");

    // One cluster only.
    let (_, log) = w
        .send(
            Method::GET,
            &format!("/api/v1/applications/{app}/logs?service=web&cluster={B}&tail=2"),
            None,
        )
        .await;
    let text = log["text"].as_str().unwrap();
    assert!(
        text.lines().count() == 2 && text.lines().all(|l| l.starts_with("dc2-dr/")),
        "{text}"
    );
    let (status, problem) = w
        .send(
            Method::GET,
            &format!("/api/v1/applications/{app}/logs?service=web&cluster=elsewhere"),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("cluster"))
    );
}
