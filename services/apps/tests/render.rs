//! Golden-file tests of rendering: each `tests/render/<case>.input.json`
//! (a spec, parameters and a release) must render exactly
//! `<case>.objects.json`, and every object must read as its Kubernetes type.
//! `UPDATE_GOLDEN=1 cargo nextest run -p paas-apps golden` rewrites the
//! expected files; review their diff before committing.

use std::collections::BTreeMap;
use std::path::Path;

use apps::render::{Release, render};
use apps::spec::Spec;
use serde_json::Value;

fn render_case(input: &Value) -> Vec<Value> {
    let spec = Spec::check(&input["spec"].to_string()).expect("the case's spec checks");
    let parameters: BTreeMap<String, Value> = input["parameters"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let app = spec.resolve(&parameters).expect("the case's parameters resolve");
    let node_ports = input["node_ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    (
                        (p[0].as_str().unwrap().to_string(), p[1].as_u64().unwrap() as u16),
                        p[2].as_u64().unwrap() as u16,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let release = Release {
        app: input["app"].as_str().unwrap().to_string(),
        number: input["release"].as_u64().unwrap(),
        node_ports,
    };
    render(&app, &release).expect("renders")
}

/// Reads `object` as the Kubernetes type its kind names, so a field of the
/// wrong shape (a port as text, a quantity as a number) fails here.
fn as_kubernetes_type(object: &Value) {
    use k8s_openapi::api::{
        apps::v1 as apps, autoscaling::v2 as autoscaling, core::v1 as core, networking::v1 as networking,
    };
    let value = object.clone();
    let kind = object["kind"].as_str().unwrap();
    let read = match kind {
        "Deployment" => serde_json::from_value::<apps::Deployment>(value).map(|_| ()),
        "StatefulSet" => serde_json::from_value::<apps::StatefulSet>(value).map(|_| ()),
        "DaemonSet" => serde_json::from_value::<apps::DaemonSet>(value).map(|_| ()),
        "Service" => serde_json::from_value::<core::Service>(value).map(|_| ()),
        "PersistentVolumeClaim" => serde_json::from_value::<core::PersistentVolumeClaim>(value).map(|_| ()),
        "HorizontalPodAutoscaler" => serde_json::from_value::<autoscaling::HorizontalPodAutoscaler>(value).map(|_| ()),
        "Ingress" => serde_json::from_value::<networking::Ingress>(value).map(|_| ()),
        other => panic!("unexpected kind {other}"),
    };
    read.unwrap_or_else(|e| panic!("{kind} {} is not a valid {kind}: {e}", object["metadata"]["name"]));
}

#[test]
fn golden_renders_match_and_are_kubernetes_objects() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/render");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(case) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".input.json"))
        else {
            continue;
        };
        cases += 1;
        let input: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let objects = render_case(&input);
        objects.iter().for_each(as_kubernetes_type);
        let rendered = serde_json::to_string_pretty(&objects).unwrap() + "\n";
        let golden = dir.join(format!("{case}.objects.json"));
        if update {
            std::fs::write(&golden, &rendered).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden)
            .unwrap_or_else(|_| panic!("{} is missing: run with UPDATE_GOLDEN=1", golden.display()));
        assert!(
            rendered == expected,
            "{case} renders differently from {}; diff it with UPDATE_GOLDEN=1 and git diff",
            golden.display()
        );
    }
    assert!(cases >= 4, "the golden cases were not found");
}

#[test]
fn every_object_carries_the_platform_labels_and_no_namespace() {
    let input: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/render/composite.input.json"))
            .unwrap(),
    )
    .unwrap();
    for object in render_case(&input) {
        let meta = &object["metadata"];
        assert_eq!(meta["labels"]["paas.io/app"], "blog", "{object}");
        assert_eq!(meta["annotations"]["paas.io/release"], "2");
        assert!(meta.get("namespace").is_none(), "federation chooses the namespace");
    }
}
