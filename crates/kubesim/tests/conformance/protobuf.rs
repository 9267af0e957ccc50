//! The protobuf encoding (`application/vnd.kubernetes.protobuf`): kubectl
//! 1.32+ creates objects with protobuf bodies and no JSON fallback, older
//! kubectl with JSON; clients that ask for protobuf in `Accept` get it.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ResourceQuota, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_pb::api::apps::v1 as pb_apps;
use k8s_pb::api::core::v1 as pb_core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use kube::api::Api;
use prost::Message;

use crate::helpers::{header, kubectl_at, kubectl_version, raw_http, spawn};

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = b"k8s\0".to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

fn open_envelope(bytes: &[u8]) -> Unknown {
    assert!(
        bytes.starts_with(b"k8s\0"),
        "no protobuf magic: {:?}",
        String::from_utf8_lossy(bytes)
    );
    Unknown::decode(&bytes[4..]).expect("a runtime.Unknown")
}

/// `kubectl create namespace|configmap|secret|serviceaccount|service|
/// deployment|ingress|quota` works with kubectl 1.27-1.31 (JSON bodies) and
/// 1.32+ (protobuf bodies), and the objects carry what was asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_works_with_json_and_protobuf_clients() {
    let t = spawn().await;
    for minor in ["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"] {
        let kubectl = kubectl_version(minor);
        let cache = t
            .cluster
            .kubeconfig_path()
            .with_file_name(format!("kubectl-cache-{minor}"));
        let ns = format!("create-{}", minor.replace('.', "-"));
        let creates: Vec<Vec<&str>> = vec![
            vec!["create", "namespace", &ns],
            vec!["create", "configmap", "cm", "--from-literal=greeting=hello", "-n", &ns],
            vec![
                "create",
                "secret",
                "generic",
                "pw",
                "--from-literal=password=hunter2",
                "-n",
                &ns,
            ],
            vec!["create", "serviceaccount", "robot", "-n", &ns],
            vec!["create", "service", "clusterip", "web", "--tcp=80:8080", "-n", &ns],
            vec![
                "create",
                "deployment",
                "web",
                "--image=nginx:1",
                "--replicas=2",
                "-n",
                &ns,
            ],
            vec!["create", "ingress", "web", "--rule=example.com/=web:80", "-n", &ns],
            vec!["create", "quota", "q", "--hard=pods=10,requests.cpu=2", "-n", &ns],
        ];
        let mut sent_protobuf = false;
        for args in creates {
            let mut verbose = args.clone();
            verbose.push("-v=8");
            let out = kubectl_at(&kubectl, &t.cluster, &cache, &verbose, None);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "kubectl {minor} {args:?}: {stderr}");
            sent_protobuf |= stderr.contains(&format!("Content-Type: {PROTOBUF}"));
        }
        // The premise: 1.32 and later send protobuf bodies, earlier ones JSON.
        assert_eq!(sent_protobuf, minor >= "1.32", "kubectl {minor} request encoding");

        let c = t.client.clone();
        Api::<Namespace>::all(c.clone()).get(&ns).await.unwrap();
        let cm = Api::<ConfigMap>::namespaced(c.clone(), &ns).get("cm").await.unwrap();
        assert_eq!(cm.data.unwrap()["greeting"], "hello");
        let secret = Api::<Secret>::namespaced(c.clone(), &ns).get("pw").await.unwrap();
        assert_eq!(secret.data.unwrap()["password"], ByteString(b"hunter2".to_vec()));
        Api::<ServiceAccount>::namespaced(c.clone(), &ns)
            .get("robot")
            .await
            .unwrap();
        let svc = Api::<Service>::namespaced(c.clone(), &ns).get("web").await.unwrap();
        let port = &svc.spec.unwrap().ports.unwrap()[0];
        assert_eq!(
            (port.port, port.target_port.clone()),
            (80, Some(IntOrString::Int(8080)))
        );
        let deploy = Api::<Deployment>::namespaced(c.clone(), &ns).get("web").await.unwrap();
        let spec = deploy.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(
            spec.template.spec.unwrap().containers[0].image.as_deref(),
            Some("nginx:1")
        );
        let ing = Api::<Ingress>::namespaced(c.clone(), &ns).get("web").await.unwrap();
        let rule = &ing.spec.unwrap().rules.unwrap()[0];
        assert_eq!(rule.host.as_deref(), Some("example.com"));
        let quota = Api::<ResourceQuota>::namespaced(c.clone(), &ns).get("q").await.unwrap();
        let hard = quota.spec.unwrap().hard.unwrap();
        assert_eq!((hard["pods"].0.as_str(), hard["requests.cpu"].0.as_str()), ("10", "2"));
    }
}

/// A Deployment encoded by k8s-pb (an independent protobuf implementation)
/// is created from a protobuf body, and the answer, asked for in protobuf,
/// decodes with k8s-pb to the created object.
#[tokio::test]
async fn protobuf_bodies_and_answers_match_the_upstream_messages() {
    let t = spawn().await;
    let labels = BTreeMap::from([("app".to_string(), "pb".to_string())]);
    let deployment = pb_apps::Deployment {
        metadata: Some(pb_meta::ObjectMeta {
            name: Some("pb".into()),
            labels: labels.clone(),
            ..Default::default()
        }),
        spec: Some(pb_apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(pb_meta::LabelSelector {
                match_labels: labels.clone(),
                ..Default::default()
            }),
            template: Some(pb_core::PodTemplateSpec {
                metadata: Some(pb_meta::ObjectMeta {
                    labels,
                    ..Default::default()
                }),
                spec: Some(pb_core::PodSpec {
                    containers: vec![pb_core::Container {
                        name: Some("app".into()),
                        image: Some("nginx:1".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let body = envelope("apps/v1", "Deployment", deployment.encode_to_vec());
    let (status, headers, answer) = raw_http(
        &t.cluster,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        &[
            ("Content-Type", PROTOBUF),
            ("Accept", &format!("{PROTOBUF}, application/json")),
        ],
        &body,
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(header(&headers, "content-type"), Some(PROTOBUF));
    let unknown = open_envelope(&answer);
    let type_meta = unknown.type_meta.unwrap();
    assert_eq!(
        (type_meta.api_version.as_deref(), type_meta.kind.as_deref()),
        (Some("apps/v1"), Some("Deployment"))
    );
    let created = pb_apps::Deployment::decode(unknown.raw.unwrap().as_slice()).unwrap();
    let meta = created.metadata.unwrap();
    assert_eq!(meta.name.as_deref(), Some("pb"));
    assert!(meta.uid.is_some_and(|u| !u.is_empty()));
    assert!(meta.creation_timestamp.is_some_and(|t| t.seconds.unwrap_or(0) > 0));
    let spec = created.spec.unwrap();
    assert_eq!(spec.replicas, Some(0), "an explicit zero survives");
    assert_eq!(
        spec.template.unwrap().spec.unwrap().containers[0].image.as_deref(),
        Some("nginx:1")
    );

    // kube-rs reads the same object as JSON.
    let json = Api::<Deployment>::default_namespaced(t.client.clone())
        .get("pb")
        .await
        .unwrap();
    assert_eq!(json.spec.unwrap().replicas, Some(0));

    // A list asked for in protobuf is a DeploymentList.
    let (status, _, answer) = raw_http(
        &t.cluster,
        "GET",
        "/apis/apps/v1/namespaces/default/deployments",
        &[("Accept", PROTOBUF)],
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let unknown = open_envelope(&answer);
    assert_eq!(unknown.type_meta.unwrap().kind.as_deref(), Some("DeploymentList"));
    let list = pb_apps::DeploymentList::decode(unknown.raw.unwrap().as_slice()).unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.unwrap().resource_version.is_some());
}

/// Custom resources have no protobuf form: a protobuf body is refused with
/// 415 and a protobuf-only `Accept` with 406, as on a real API server.
#[tokio::test]
async fn custom_resources_refuse_protobuf() {
    let t = spawn().await;
    let body = envelope("gateway.networking.k8s.io/v1", "HTTPRoute", Vec::new());
    let path = "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes";
    let (status, _, answer) = raw_http(&t.cluster, "POST", path, &[("Content-Type", PROTOBUF)], &body).await;
    assert_eq!(status, 415, "{}", String::from_utf8_lossy(&answer));
    let (status, _, _) = raw_http(&t.cluster, "GET", path, &[("Accept", PROTOBUF)], &[]).await;
    assert_eq!(status, 406);
    // A malformed protobuf body is a 400, not a 500.
    let (status, _, _) = raw_http(
        &t.cluster,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[("Content-Type", PROTOBUF)],
        b"k8s\0\x0a\xff\xff",
    )
    .await;
    assert_eq!(status, 400);
}

/// A watch asked for in protobuf streams length-prefixed frames, each a
/// WatchEvent whose object is itself protobuf, as k8s-pb decodes them.
#[tokio::test]
async fn a_protobuf_watch_streams_framed_watch_events() {
    let t = spawn().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(t.client.clone());
    for name in ["one", "two"] {
        cms.create(&Default::default(), &crate::helpers::configmap(name, &[]))
            .await
            .unwrap();
    }
    let (status, headers, body) = raw_http(
        &t.cluster,
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1",
        &[(
            "Accept",
            "application/vnd.kubernetes.protobuf;stream=watch, application/json",
        )],
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/vnd.kubernetes.protobuf;stream=watch")
    );
    let mut rest = body.as_slice();
    let mut seen = Vec::new();
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let frame = &rest[4..4 + len];
        rest = &rest[4 + len..];
        let unknown = open_envelope(frame);
        assert_eq!(unknown.type_meta.unwrap().kind.as_deref(), Some("WatchEvent"));
        let event = pb_meta::WatchEvent::decode(unknown.raw.unwrap().as_slice()).unwrap();
        let object = open_envelope(&event.object.unwrap().raw.unwrap());
        assert_eq!(object.type_meta.unwrap().kind.as_deref(), Some("ConfigMap"));
        let cm = pb_core::ConfigMap::decode(object.raw.unwrap().as_slice()).unwrap();
        seen.push((event.r#type.unwrap(), cm.metadata.unwrap().name.unwrap()));
    }
    assert!(rest.is_empty(), "a partial frame is left: {rest:?}");
    assert_eq!(
        seen,
        [
            ("ADDED".to_string(), "one".to_string()),
            ("ADDED".to_string(), "two".to_string())
        ]
    );
}

/// Errors come in the representation the client negotiated, as the API
/// server writes them: a protobuf `Status` when `Accept` prefers protobuf
/// (kubectl 1.32+ decodes it to "Error from server (AlreadyExists)"), JSON
/// otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_protobuf_status_objects_when_the_client_prefers_protobuf() {
    let t = spawn().await;
    let path = "/api/v1/namespaces/default/configmaps/absent";
    let (status, headers, answer) = raw_http(
        &t.cluster,
        "GET",
        path,
        &[("Accept", &format!("{PROTOBUF}, application/json"))],
        &[],
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(header(&headers, "content-type"), Some(PROTOBUF));
    let unknown = open_envelope(&answer);
    let type_meta = unknown.type_meta.unwrap();
    assert_eq!(
        (type_meta.api_version.as_deref(), type_meta.kind.as_deref()),
        (Some("v1"), Some("Status"))
    );
    let not_found = pb_meta::Status::decode(unknown.raw.unwrap().as_slice()).unwrap();
    assert_eq!(not_found.code, Some(404));
    assert_eq!(not_found.reason.as_deref(), Some("NotFound"));
    assert_eq!(not_found.status.as_deref(), Some("Failure"));
    assert_eq!(not_found.message.as_deref(), Some("configmaps \"absent\" not found"));
    let details = not_found.details.unwrap();
    assert_eq!(
        (details.name.as_deref(), details.kind.as_deref()),
        (Some("absent"), Some("configmaps"))
    );

    // An invalid object: the causes name the fields.
    let bad = pb_core::ConfigMap {
        metadata: Some(pb_meta::ObjectMeta {
            name: Some("Not_Valid".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (status, headers, answer) = raw_http(
        &t.cluster,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[("Content-Type", PROTOBUF), ("Accept", PROTOBUF)],
        &envelope("v1", "ConfigMap", bad.encode_to_vec()),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(header(&headers, "content-type"), Some(PROTOBUF));
    let invalid = pb_meta::Status::decode(open_envelope(&answer).raw.unwrap().as_slice()).unwrap();
    assert_eq!(invalid.reason.as_deref(), Some("Invalid"));
    let causes = invalid.details.unwrap().causes;
    assert_eq!(causes[0].field.as_deref(), Some("metadata.name"), "{causes:?}");

    // A client preferring JSON gets JSON.
    let (status, headers, answer) = raw_http(
        &t.cluster,
        "GET",
        path,
        &[("Accept", &format!("application/json, {PROTOBUF}"))],
        &[],
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(json["reason"], "NotFound");

    // kubectl 1.33 creates with protobuf and reads the protobuf error.
    let kubectl = kubectl_version("1.33");
    let cache = t.cluster.kubeconfig_path().with_file_name("kubectl-cache-errors");
    let create = ["create", "configmap", "twice", "--from-literal=a=b"];
    let first = kubectl_at(&kubectl, &t.cluster, &cache, &create, None);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let again = kubectl_at(&kubectl, &t.cluster, &cache, &create, None);
    assert!(!again.status.success());
    assert_eq!(
        String::from_utf8_lossy(&again.stderr).trim(),
        "error: failed to create configmap: configmaps \"twice\" already exists"
    );
}
