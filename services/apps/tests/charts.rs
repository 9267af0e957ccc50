//! The fixture chart `tests/charts/web` (a web Deployment, Service, Ingress
//! and ConfigMap with `_helpers.tpl`, and a Redis sub-chart enabled by a
//! condition) must render exactly `web.<case>.yaml` for the values in
//! `web.<case>.values.json`: what Helm gives for those values. Every object
//! must also read as its Kubernetes type.

use std::collections::BTreeMap;
use std::path::Path;

use apps::chart::{Chart, Release};
use serde_json::{Map, Value};

fn files(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = format!("{prefix}{}", path.file_name().unwrap().to_str().unwrap());
        if path.is_dir() {
            files(&path, &format!("{name}/"), out);
        } else {
            out.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
}

fn fixture() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/charts/web"),
        "",
        &mut out,
    );
    out
}

/// The rendered objects as Helm prints them: `# Source:` and the YAML.
fn manifest(chart: &Chart, values: &Map<String, Value>) -> String {
    let rendered = chart
        .render(
            &Release {
                name: "shop".into(),
                revision: 1,
            },
            values,
        )
        .expect("renders");
    rendered
        .iter()
        .map(|r| {
            format!(
                "---\n# Source: {}\n{}",
                r.file,
                serde_yaml_neo::to_string(&r.object).unwrap()
            )
        })
        .collect()
}

fn as_kubernetes_type(object: &Value) {
    use k8s_openapi::api::{apps::v1 as apps, core::v1 as core, networking::v1 as networking};
    let v = object.clone();
    let kind = object["kind"].as_str().unwrap();
    let read = match kind {
        "Deployment" => serde_json::from_value::<apps::Deployment>(v).map(|_| ()),
        "StatefulSet" => serde_json::from_value::<apps::StatefulSet>(v).map(|_| ()),
        "Service" => serde_json::from_value::<core::Service>(v).map(|_| ()),
        "ConfigMap" => serde_json::from_value::<core::ConfigMap>(v).map(|_| ()),
        "Ingress" => serde_json::from_value::<networking::Ingress>(v).map(|_| ()),
        other => panic!("unexpected kind {other}"),
    };
    read.unwrap_or_else(|e| panic!("{kind} {} is not a valid {kind}: {e}", object["metadata"]["name"]));
}

#[test]
fn the_fixture_chart_renders_what_helm_gives_for_each_case() {
    let chart = Chart::check(&fixture()).expect("the fixture chart checks");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/charts");
    let mut cases = 0;
    for case in ["default", "overrides"] {
        cases += 1;
        let values: Map<String, Value> =
            serde_json::from_str(&std::fs::read_to_string(dir.join(format!("web.{case}.values.json"))).unwrap())
                .unwrap();
        let rendered = chart
            .render(
                &Release {
                    name: "shop".into(),
                    revision: 1,
                },
                &values,
            )
            .unwrap();
        rendered.iter().for_each(|r| as_kubernetes_type(&r.object));
        let text = manifest(&chart, &values);
        let golden = dir.join(format!("web.{case}.yaml"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &text).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap();
        assert!(
            text == expected,
            "{case} renders differently from {}:\n{text}",
            golden.display()
        );
    }
    assert_eq!(cases, 2);
}

#[test]
fn a_deploy_groups_the_chart_by_workload_with_the_sub_chart_first() {
    let chart = Chart::check(&fixture()).unwrap();
    let (services, waves) = apps::chart::release_objects(&chart, "shop", 3, &Map::new()).unwrap();
    let kinds = |s: &str| {
        services[s]
            .iter()
            .map(|o| o["kind"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(kinds("web"), ["ConfigMap", "Service", "Deployment"]);
    assert_eq!(kinds("redis"), ["Service", "StatefulSet"]);
    assert_eq!(
        waves,
        vec![vec!["redis".to_string()], vec!["web".to_string()]],
        "the sub-chart is up before the chart that uses it"
    );
    for o in services.values().flatten() {
        assert_eq!(o["metadata"]["labels"]["paas.io/app"], "shop");
        assert_eq!(o["metadata"]["annotations"]["paas.io/release"], "3");
        assert!(o["metadata"].get("namespace").is_none());
    }
}

#[test]
fn the_condition_turns_the_sub_chart_off_and_the_schema_refuses_bad_values() {
    let chart = Chart::check(&fixture()).unwrap();
    let off: Map<String, Value> = serde_json::from_str(r#"{"redis": {"enabled": false}}"#).unwrap();
    let rendered = chart
        .render(
            &Release {
                name: "shop".into(),
                revision: 1,
            },
            &off,
        )
        .unwrap();
    assert!(
        rendered.iter().all(|r| !r.file.contains("charts/redis")),
        "redis is disabled"
    );
    assert!(!rendered.iter().any(|r| r.object["data"].get("REDIS_URL").is_some()));
    let bad: Map<String, Value> = serde_json::from_str(r#"{"replicaCount": 0}"#).unwrap();
    let err = chart
        .render(
            &Release {
                name: "shop".into(),
                revision: 1,
            },
            &bad,
        )
        .unwrap_err();
    assert_eq!(err.field(), Some("values.replicaCount"), "{err}");
    assert!(err.to_string().contains("web/values.schema.json"), "{err}");
}

#[test]
fn a_broken_chart_is_refused_naming_the_file() {
    let mut missing = fixture();
    missing.remove("Chart.yaml");
    assert_eq!(Chart::check(&missing).unwrap_err().field(), Some("Chart.yaml"));
    let mut bad = fixture();
    bad.insert(
        "templates/service.yaml".into(),
        "kind: Service\nname: {{ .Values.x | nosuchfunction }}\n".into(),
    );
    let err = Chart::check(&bad).unwrap_err();
    assert_eq!(err.field(), Some("web/templates/service.yaml"), "{err}");
    assert!(err.to_string().contains("nosuchfunction"), "{err}");
    let mut failing = fixture();
    failing.insert(
        "templates/configmap.yaml".into(),
        "a: 1\n\n{{ required \"config.name is required\" .Values.config.name }}\n".into(),
    );
    let err = Chart::check(&failing).unwrap_err();
    assert_eq!(err.field(), Some("web/templates/configmap.yaml"), "{err}");
    assert!(err.to_string().contains(":3:"), "the line is named: {err}");
    let mut secret = fixture();
    secret.insert(
        "templates/secret.yaml".into(),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n".into(),
    );
    assert_eq!(
        Chart::check(&secret).unwrap_err().field(),
        Some("web/templates/secret.yaml")
    );
}

#[test]
fn an_archive_with_a_nested_sub_chart_archive_unpacks_to_the_same_chart() {
    fn tgz(files: &BTreeMap<String, String>, top: &str) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        for (path, text) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, format!("{top}/{path}"), text.as_bytes())
                .unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }
    let all = fixture();
    let redis: BTreeMap<String, String> = all
        .iter()
        .filter_map(|(p, t)| p.strip_prefix("charts/redis/").map(|p| (p.to_string(), t.clone())))
        .collect();
    let mut outer: BTreeMap<String, String> = all
        .iter()
        .filter(|(p, _)| !p.starts_with("charts/"))
        .map(|(p, t)| (p.clone(), t.clone()))
        .collect();
    let nested = tgz(&redis, "redis");
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (path, text) in std::mem::take(&mut outer)
        .into_iter()
        .map(|(p, t)| (p, t.into_bytes()))
        .chain([("charts/redis-0.3.0.tgz".to_string(), nested)])
    {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive
            .append_data(&mut header, format!("web/{path}"), text.as_slice())
            .unwrap();
    }
    let bytes = archive.into_inner().unwrap().finish().unwrap();
    assert_eq!(apps::chart::unpack(&bytes).unwrap(), all);
    assert_eq!(
        apps::chart::unpack(b"not an archive").unwrap_err().field(),
        Some("chart")
    );
}
