use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kernel::testkit::eventually;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::Discovery;
use serde_json::json;

use crate::helpers::{configmap, deployment, spawn, status_of};

/// Discovery: `/version`, `/api` and `/apis` list the served groups and
/// kinds, which is how clients find `apps/v1` Deployments.
#[tokio::test]
async fn discovery_lists_the_served_groups_and_kinds() {
    let t = spawn().await;
    let version = t.client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
    let discovery = Discovery::new(t.client.clone()).run().await.unwrap();
    let apps = discovery.get("apps").expect("apps group");
    assert!(apps.recommended_resources().iter().any(|(r, _)| r.kind == "Deployment"));
    let gateway = discovery.get("gateway.networking.k8s.io").expect("gateway api group");
    assert!(
        gateway
            .recommended_resources()
            .iter()
            .any(|(r, _)| r.kind == "HTTPRoute")
    );
}

/// Create assigns uid, resourceVersion and creationTimestamp; creating the
/// same name again is 409 AlreadyExists; a missing object is 404 NotFound.
#[tokio::test]
async fn create_then_create_again_is_already_exists_and_missing_is_not_found() {
    let t = spawn().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let created = cms.create(&PostParams::default(), &configmap("a", &[])).await.unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.resource_version.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let again = status_of(cms.create(&PostParams::default(), &configmap("a", &[])).await);
    assert_eq!((again.code, again.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(again.message, "configmaps \"a\" already exists");
    let missing = status_of(cms.get("nope").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.details.unwrap().name, "nope");
}

/// generateName: the server appends a random suffix to the prefix.
#[tokio::test]
async fn generate_name_gets_a_random_suffix() {
    let t = spawn().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let mut cm = configmap("", &[]);
    cm.metadata.name = None;
    cm.metadata.generate_name = Some("gen-".into());
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    let name = created.metadata.name.unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
}

/// Label selectors (=, ==, !=, in, notin, exists, !key) and field selectors
/// on metadata.name filter lists.
#[tokio::test]
async fn list_filters_by_label_and_field_selectors() {
    let t = spawn().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    cms.create(
        &PostParams::default(),
        &configmap("web", &[("app", "web"), ("tier", "front")]),
    )
    .await
    .unwrap();
    cms.create(
        &PostParams::default(),
        &configmap("api", &[("app", "api"), ("tier", "back")]),
    )
    .await
    .unwrap();
    cms.create(&PostParams::default(), &configmap("plain", &[]))
        .await
        .unwrap();
    for (selector, want) in [
        ("app=web", vec!["web"]),
        ("app==api", vec!["api"]),
        ("app!=web", vec!["api", "plain"]),
        ("app in (web,api)", vec!["api", "web"]),
        ("app notin (web)", vec!["api", "plain"]),
        ("tier", vec!["api", "web"]),
        ("!tier", vec!["plain"]),
    ] {
        let names: Vec<String> = cms
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        assert_eq!(names, want, "selector {selector}");
    }
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=api"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    let all_ns: Api<ConfigMap> = Api::all(t.client.clone());
    let everywhere = all_ns
        .list(&ListParams::default().fields("metadata.namespace=default"))
        .await
        .unwrap();
    assert_eq!(everywhere.items.len(), 3);
}

/// limit/continue pagination returns every object exactly once, with
/// remainingItemCount, and a list resourceVersion.
#[tokio::test]
async fn pagination_with_limit_and_continue_returns_everything_once() {
    let t = spawn().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    for i in 0..7 {
        cms.create(&PostParams::default(), &configmap(&format!("cm-{i}"), &[]))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut params = ListParams::default().limit(3);
    loop {
        let page = cms.list(&params).await.unwrap();
        assert!(page.metadata.resource_version.is_some());
        seen.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => {
                assert!(page.metadata.remaining_item_count.unwrap() > 0);
                params = params.continue_token(&token);
            }
            _ => break,
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());
}

/// A continue token older than the retained window is 410 Expired.
#[tokio::test]
async fn a_continue_token_from_before_compaction_is_gone() {
    let t = spawn().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    for i in 0..3 {
        cms.create(&PostParams::default(), &configmap(&format!("cm-{i}"), &[]))
            .await
            .unwrap();
    }
    let page = cms.list(&ListParams::default().limit(1)).await.unwrap();
    cms.create(&PostParams::default(), &configmap("later", &[]))
        .await
        .unwrap();
    t.cluster.store().compact();
    let token = page.metadata.continue_.unwrap();
    let gone = status_of(cms.list(&ListParams::default().limit(1).continue_token(&token)).await);
    assert_eq!((gone.code, gone.reason.as_str()), (410, "Expired"));
}

/// Optimistic concurrency: an update carrying a stale resourceVersion is
/// 409 Conflict; generation moves only when the spec changes.
#[tokio::test]
async fn update_with_a_stale_resource_version_is_a_conflict() {
    let t = spawn().await;
    let deploys: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let created = deploys
        .create(&PostParams::default(), &deployment("web", 0, "nginx:1"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    // The controller writes status first; updates must carry the latest resourceVersion.
    let latest = eventually(Duration::from_secs(5), "status observed", || async {
        let d = deploys.get("web").await.unwrap();
        (d.status.as_ref().and_then(|s| s.observed_generation) == Some(1)).then_some(d)
    })
    .await;
    let mut labelled = latest.clone();
    labelled.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    let labelled = deploys.replace("web", &PostParams::default(), &labelled).await.unwrap();
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );
    let mut scaled = labelled.clone();
    scaled.spec.as_mut().unwrap().replicas = Some(2);
    let scaled = deploys.replace("web", &PostParams::default(), &scaled).await.unwrap();
    assert_eq!(scaled.metadata.generation, Some(2), "spec changes bump the generation");
    let stale = status_of(deploys.replace("web", &PostParams::default(), &created).await);
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));
    assert!(
        stale.message.contains("the object has been modified"),
        "{}",
        stale.message
    );
}

/// Finalizers: delete only sets deletionTimestamp; the object goes once its
/// finalizers are removed.
#[tokio::test]
async fn delete_with_finalizers_waits_for_them_to_be_removed() {
    let t = spawn().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let mut cm = configmap("held", &[]);
    cm.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.delete("held", &DeleteParams::default()).await.unwrap();
    let held = cms.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
    )
    .await
    .unwrap();
    assert_eq!(status_of(cms.get("held").await).code, 404);
}

/// Deleting a namespace deletes everything in it; creating in a missing
/// namespace is 404.
#[tokio::test]
async fn deleting_a_namespace_deletes_its_objects() {
    let t = spawn().await;
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": "team-a" } })).unwrap();
    let created = namespaces.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "team-a");
    cms.create(&PostParams::default(), &configmap("x", &[])).await.unwrap();
    namespaces.delete("team-a", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(5), "namespace gone", || async {
        namespaces.get_opt("team-a").await.unwrap().is_none().then_some(())
    })
    .await;
    assert_eq!(status_of(cms.get("x").await).code, 404);
    let missing = status_of(cms.create(&PostParams::default(), &configmap("y", &[])).await);
    assert_eq!(missing.code, 404);
}

/// Merge patch (RFC 7386) and JSON patch (RFC 6902); a failing JSON patch
/// `test` op is 422.
#[tokio::test]
async fn merge_and_json_patches_apply() {
    let t = spawn().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    cms.create(&PostParams::default(), &configmap("p", &[])).await.unwrap();
    let merged = cms
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "extra": "1", "key": null } })),
        )
        .await
        .unwrap();
    let data = merged.data.unwrap();
    assert_eq!(data.get("extra").map(String::as_str), Some("1"));
    assert!(!data.contains_key("key"));
    let ops: json_patch_ops::Patch =
        serde_json::from_value(json!([{ "op": "replace", "path": "/data/extra", "value": "2" }])).unwrap();
    let patched = cms
        .patch("p", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["extra"], "2");
    let failing: json_patch_ops::Patch =
        serde_json::from_value(json!([{ "op": "test", "path": "/data/extra", "value": "9" }])).unwrap();
    let err = status_of(
        cms.patch("p", &PatchParams::default(), &Patch::<()>::Json(failing))
            .await,
    );
    assert_eq!(err.code, 422);
}

use json_patch as json_patch_ops;

/// Server-side apply: a second manager changing a field the first owns is a
/// 409 naming the first manager and the field; `force` takes ownership.
#[tokio::test]
async fn server_side_apply_conflicts_name_the_other_manager_and_force_takes_ownership() {
    let t = spawn().await;
    let deploys: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let first = deploys
        .patch(
            "web",
            &PatchParams::apply("first"),
            &Patch::Apply(deployment("web", 2, "nginx:1")),
        )
        .await
        .unwrap();
    let fields = first.metadata.managed_fields.unwrap();
    assert_eq!(fields[0].manager.as_deref(), Some("first"));
    assert_eq!(fields[0].operation.as_deref(), Some("Apply"));
    let owned = &fields[0].fields_v1.as_ref().unwrap().0;
    assert!(owned["f:spec"]["f:replicas"].is_object(), "{owned}");
    assert!(owned["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]["f:image"].is_object());

    let conflict = status_of(
        deploys
            .patch(
                "web",
                &PatchParams::apply("second"),
                &Patch::Apply(deployment("web", 3, "nginx:1")),
            )
            .await,
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(
        conflict
            .message
            .starts_with("Apply failed with 1 conflict: conflict with \"first\""),
        "{}",
        conflict.message
    );
    assert!(conflict.message.ends_with(".spec.replicas"), "{}", conflict.message);

    let forced = deploys
        .patch(
            "web",
            &PatchParams::apply("second").force(),
            &Patch::Apply(deployment("web", 3, "nginx:1")),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.unwrap().replicas, Some(3));
    let fields = forced.metadata.managed_fields.unwrap();
    let first_entry = fields.iter().find(|f| f.manager.as_deref() == Some("first")).unwrap();
    assert!(
        first_entry.fields_v1.as_ref().unwrap().0["f:spec"]
            .get("f:replicas")
            .is_none()
    );
}

/// Apply requires a fieldManager (400 BadRequest without one).
#[tokio::test]
async fn apply_without_a_field_manager_is_a_bad_request() {
    let t = spawn().await;
    let request = http::Request::patch(format!("{}/api/v1/namespaces/default/configmaps/x", t.cluster.url()))
        .header("content-type", "application/apply-patch+yaml")
        .body(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n".to_vec())
        .unwrap();
    let err = status_of(t.client.request::<ConfigMap>(request).await);
    assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));
}

/// An apply body may be YAML, as kubectl and other clients send it.
#[tokio::test]
async fn apply_accepts_a_yaml_body() {
    let t = spawn().await;
    let request = http::Request::patch(format!(
        "{}/api/v1/namespaces/default/configmaps/x?fieldManager=yaml",
        t.cluster.url()
    ))
    .header("content-type", "application/apply-patch+yaml")
    .body(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  k: v\n".to_vec())
    .unwrap();
    let cm = t.client.request::<ConfigMap>(request).await.unwrap();
    assert_eq!(cm.data.unwrap()["k"], "v");
}

/// Names must be RFC 1123 subdomains: 422 Invalid with a field cause.
#[tokio::test]
async fn an_invalid_name_is_unprocessable() {
    let t = spawn().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let err = status_of(cms.create(&PostParams::default(), &configmap("Bad_Name", &[])).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message
            .starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value"),
        "{}",
        err.message
    );
    let cause = &err.details.unwrap().causes[0];
    assert_eq!(cause.field, "metadata.name");
}

/// The status subresource changes only status; the main resource ignores
/// status; the scale subresource reads and writes spec.replicas.
#[tokio::test]
async fn status_and_scale_subresources_touch_only_their_part() {
    let t = spawn().await;
    let deploys: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("web", 0, "nginx:1"))
        .await
        .unwrap();
    let scale = deploys.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(0));
    deploys
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 2 } })),
        )
        .await
        .unwrap();
    assert_eq!(deploys.get("web").await.unwrap().spec.unwrap().replicas, Some(2));
    let ignored = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "collisionCount": 7 } })),
        )
        .await
        .unwrap();
    assert_ne!(ignored.status.and_then(|s| s.collision_count), Some(7));
    let stored = deploys
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "collisionCount": 7 } })),
        )
        .await
        .unwrap();
    assert_eq!(stored.status.unwrap().collision_count, Some(7));
}

/// HorizontalPodAutoscaler (autoscaling/v2) keeps its spec; its status
/// (currentMetrics) is written through the status subresource, as the HPA
/// controller writes it.
#[tokio::test]
async fn hpa_status_metrics_are_set_through_the_status_subresource() {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    let t = spawn().await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(t.client.clone(), "default");
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
            "minReplicas": 1, "maxReplicas": 5,
            "metrics": [{ "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 60 } } }],
        },
    }))
    .unwrap();
    hpas.create(&PostParams::default(), &hpa).await.unwrap();
    let status = json!({ "status": {
        "currentReplicas": 2, "desiredReplicas": 3,
        "currentMetrics": [{ "type": "Resource", "resource": { "name": "cpu", "current": { "averageUtilization": 85 } } }],
    } });
    hpas.patch_status("web", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    let read = hpas.get("web").await.unwrap();
    assert_eq!(read.spec.unwrap().max_replicas, 5);
    let metrics = read.status.unwrap().current_metrics.unwrap();
    assert_eq!(
        metrics[0].resource.as_ref().unwrap().current.average_utilization,
        Some(85)
    );
}

/// A Deployment's selector is immutable in `apps/v1`: changing it (even
/// with matching template labels) is 422 naming `spec.selector`, and the
/// Deployment keeps running as it was.
#[tokio::test]
async fn a_deployment_selector_cannot_change() {
    let t = spawn().await;
    let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    deployments
        .create(&PostParams::default(), &deployment("web", 1, "web:1"))
        .await
        .unwrap();
    let change = json!({"spec": {"selector": {"matchLabels": {"app": "web", "slot": "blue"}}, "template": {"metadata": {"labels": {"app": "web", "slot": "blue"}}}}});
    let err = status_of(
        deployments
            .patch("web", &PatchParams::default(), &Patch::Merge(&change))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"), "{}", err.message);
    assert!(err.message.contains("field is immutable"), "{}", err.message);
    assert_eq!(err.details.unwrap().causes[0].field, "spec.selector");
    // Template labels may grow while the selector stays.
    let grow = json!({"spec": {"template": {"metadata": {"labels": {"app": "web", "slot": "blue"}}}}});
    let grown = deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&grow))
        .await
        .unwrap();
    assert_eq!(grown.spec.unwrap().selector.match_labels.unwrap().len(), 1);
}

/// An ExternalName Service is a DNS alias: it needs `spec.externalName` (an
/// RFC 1123 subdomain, a trailing dot allowed), gets no cluster IP and may
/// not be given one; turning a ClusterIP Service into one drops the IP it
/// was given, and turning it back gives it a new one.
#[tokio::test]
async fn an_external_name_service_is_a_dns_alias_without_a_cluster_ip() {
    let t = spawn().await;
    let services: Api<DynamicObject> = Api::namespaced_with(
        t.client.clone(),
        "default",
        &ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&()),
    );
    let service = |name: &str, spec: serde_json::Value| {
        serde_json::from_value::<DynamicObject>(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}),
        )
        .unwrap()
    };
    let alias = services
        .create(
            &PostParams::default(),
            &service(
                "db",
                json!({"type": "ExternalName", "externalName": "db.mainframe.example.com."}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(alias.data["spec"].get("clusterIP"), None, "{:?}", alias.data);
    for (spec, field) in [
        (json!({"type": "ExternalName"}), "spec.externalName"),
        (
            json!({"type": "ExternalName", "externalName": "Not_A_Name"}),
            "spec.externalName",
        ),
        (
            json!({"type": "ExternalName", "externalName": "db.example.com", "clusterIP": "10.96.0.50"}),
            "spec.clusterIPs",
        ),
        (json!({"ports": [{"port": 0}]}), "spec.ports[0].port"),
        (json!({"ports": [{"port": 80}, {"port": 81}]}), "spec.ports[0].name"),
        (
            json!({"ports": [{"name": "a", "port": 80, "protocol": "HTTP"}]}),
            "spec.ports[0].protocol",
        ),
    ] {
        let err = status_of(
            services
                .create(&PostParams::default(), &service("bad", spec.clone()))
                .await,
        );
        assert_eq!(err.code, 422, "{spec}: {}", err.message);
        assert_eq!(err.details.unwrap().causes[0].field, field, "{spec}");
    }
    let params = PatchParams::apply("test").force();
    let plain = services
        .patch(
            "api",
            &params,
            &Patch::Apply(service("api", json!({"ports": [{"name": "http", "port": 80}]}))),
        )
        .await
        .unwrap();
    assert!(
        plain.data["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.96.")),
        "{:?}",
        plain.data
    );
    assert_eq!(
        plain.data["spec"]["ports"][0]["targetPort"], 80,
        "the target port defaults to the port"
    );
    let aliased = services.patch("api", &params, &Patch::Apply(service("api", json!({"type": "ExternalName", "externalName": "api.example.com", "ports": [{"name": "http", "port": 80}]})))).await.unwrap();
    assert_eq!(
        (
            aliased.data["spec"].get("clusterIP"),
            aliased.data["spec"].get("clusterIPs")
        ),
        (None, None),
        "{:?}",
        aliased.data
    );
    let back = services
        .patch(
            "api",
            &params,
            &Patch::Apply(service("api", json!({"ports": [{"name": "http", "port": 80}]}))),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            back.data["spec"]["type"].as_str(),
            back.data["spec"].get("externalName")
        ),
        (Some("ClusterIP"), None),
        "{:?}",
        back.data
    );
    assert!(back.data["spec"]["clusterIP"].is_string(), "{:?}", back.data);
}

/// Endpoints of a Service without a selector are the caller's: kubesim runs
/// no endpoints controller, so nothing overwrites them. Their addresses are
/// refused where Kubernetes refuses them (`ValidateNonSpecialIP`):
/// unspecified, loopback, link-local, link-local multicast, or not an IP.
#[tokio::test]
async fn endpoints_refuse_special_addresses_and_keep_what_was_written() {
    let t = spawn().await;
    let endpoints: Api<DynamicObject> = Api::namespaced_with(
        t.client.clone(),
        "default",
        &ApiResource::erase::<k8s_openapi::api::core::v1::Endpoints>(&()),
    );
    let body = |ip: &str| {
        serde_json::from_value::<DynamicObject>(
            json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "db"},
        "subsets": [{"addresses": [{"ip": "10.20.0.5"}, {"ip": ip}], "ports": [{"name": "sql", "port": 5432}]}]}),
        )
        .unwrap()
    };
    for (ip, why) in [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.5", "link-local multicast"),
        ("0.0.0.0", "unspecified"),
        ("10.0.0", "valid IP"),
    ] {
        let err = status_of(endpoints.create(&PostParams::default(), &body(ip)).await);
        assert_eq!(err.code, 422, "{ip}");
        assert!(err.message.contains(why), "{ip}: {}", err.message);
        assert_eq!(
            err.details.unwrap().causes[0].field,
            "subsets[0].addresses[1].ip",
            "{ip}"
        );
    }
    let written = endpoints
        .create(&PostParams::default(), &body("2001:db8::7"))
        .await
        .unwrap();
    assert_eq!(
        written.data["subsets"][0]["ports"][0]["protocol"], "TCP",
        "the protocol defaults to TCP"
    );
    // A simulation round that started after the write: any controller that
    // would overwrite the endpoints has had its turn.
    let deploys: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("tick", 1, "nginx"))
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "a simulation round", || async {
        let d = deploys.get("tick").await.unwrap();
        (d.status.as_ref().and_then(|s| s.observed_generation) == Some(1)).then_some(())
    })
    .await;
    assert_eq!(
        endpoints.get("db").await.unwrap().data["subsets"],
        written.data["subsets"]
    );
}
