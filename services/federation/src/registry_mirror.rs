//! Member clusters pull from their data centre's sub-registry. The images
//! service replicates a tenant's repositories from the platform (master)
//! registry to the sub-registries of its clusters' data centres, under the
//! same names and digests; a cluster whose settings name a registry mirror
//! ([`crate::cluster_settings::ClusterSettings::registry_mirror`]) gets
//! every container image of the platform registry rewritten to the mirror
//! as its objects are applied there: `<platform>/<repository>@sha256:..`
//! becomes `<mirror>/<repository>@sha256:..`, so the digest an image was
//! pinned to at deploy is what the cluster pulls, from the nearer copy.
//! The pod templates also name the namespace's pull secrets that log in to
//! the mirror ([`crate::pull_secret::wanted`] extends the platform
//! registry's credentials to it), so a workload running under its own
//! ServiceAccount pulls too. Images of other registries pass unchanged, and
//! so does everything in a cluster without a mirror.

use serde_json::Value;

/// Where the pod spec of a workload object is, by kind (none: no pods).
fn pod_spec(body: &mut Value) -> Option<&mut Value> {
    let kind = body["kind"].as_str().unwrap_or_default().to_string();
    let spec = match kind.as_str() {
        "Pod" => body.get_mut("spec")?,
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            body.get_mut("spec")?.get_mut("template")?.get_mut("spec")?
        }
        "CronJob" => body
            .get_mut("spec")?
            .get_mut("jobTemplate")?
            .get_mut("spec")?
            .get_mut("template")?
            .get_mut("spec")?,
        _ => return None,
    };
    spec.is_object().then_some(spec)
}

/// `image` on the mirror, if it is an image of `platform` (`host[:port]`).
pub fn mirrored(image: &str, platform: &str, mirror: &str) -> Option<String> {
    let path = image.strip_prefix(platform)?.strip_prefix('/')?;
    (!path.is_empty()).then(|| format!("{mirror}/{path}"))
}

/// Points the platform registry's images of `body`'s pods at `mirror` and,
/// when any moved, adds `secrets` to the pod spec's `imagePullSecrets`
/// (after the ones it names). Answers how many images moved.
pub fn pull_from_mirror(body: &mut Value, platform: &str, mirror: &str, secrets: &[String]) -> usize {
    let Some(spec) = pod_spec(body) else { return 0 };
    let mut moved = 0;
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers {
            let Some(image) = c.get("image").and_then(Value::as_str) else {
                continue;
            };
            if let Some(there) = mirrored(image, platform, mirror) {
                c["image"] = Value::String(there);
                moved += 1;
            }
        }
    }
    if moved > 0 && !secrets.is_empty() {
        let named = spec
            .as_object_mut()
            .expect("pod_spec answers objects")
            .entry("imagePullSecrets")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(named) = named.as_array_mut() {
            for s in secrets {
                if !named.iter().any(|n| n["name"].as_str() == Some(s.as_str())) {
                    named.push(serde_json::json!({ "name": s }));
                }
            }
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn only_images_of_the_platform_registry_move_and_keep_their_digest() {
        let image = format!("registry.paas:5000/acme/shop/web@{DIGEST}");
        assert_eq!(
            mirrored(&image, "registry.paas:5000", "dc1.registry:5000"),
            Some(format!("dc1.registry:5000/acme/shop/web@{DIGEST}"))
        );
        // Another port, another host that starts alike, or no path: not the platform's.
        assert_eq!(mirrored(&image, "registry.paas", "m"), None);
        assert_eq!(mirrored("registry.paas:50001/a/b:1", "registry.paas:5000", "m"), None);
        assert_eq!(mirrored("docker.io/library/busybox:1", "registry.paas:5000", "m"), None);
        assert_eq!(mirrored("registry.paas:5000/", "registry.paas:5000", "m"), None);
    }

    #[test]
    fn every_container_list_of_a_workload_moves_and_names_the_pull_secrets_once() {
        let mut deployment = json!({
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"template": {"spec": {
                "initContainers": [{"name": "migrate", "image": format!("reg:5000/acme/shop/db@{DIGEST}")}],
                "containers": [
                    {"name": "web", "image": format!("reg:5000/acme/shop/web@{DIGEST}")},
                    {"name": "proxy", "image": "docker.io/envoyproxy/envoy:v1.30"}
                ],
                "imagePullSecrets": [{"name": "own"}, {"name": "paas-registry"}]
            }}}
        });
        let secrets = ["paas-registry".to_string(), "paas-pull-robot".to_string()];
        assert_eq!(pull_from_mirror(&mut deployment, "reg:5000", "dc1:5000", &secrets), 2);
        let spec = &deployment["spec"]["template"]["spec"];
        assert_eq!(
            spec["initContainers"][0]["image"],
            format!("dc1:5000/acme/shop/db@{DIGEST}")
        );
        assert_eq!(
            spec["containers"][0]["image"],
            format!("dc1:5000/acme/shop/web@{DIGEST}")
        );
        assert_eq!(spec["containers"][1]["image"], "docker.io/envoyproxy/envoy:v1.30");
        assert_eq!(
            spec["imagePullSecrets"],
            json!([{"name": "own"}, {"name": "paas-registry"}, {"name": "paas-pull-robot"}])
        );
    }

    #[test]
    fn cron_jobs_move_and_objects_without_platform_images_are_left_alone() {
        let mut cron = json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "reg:5000/a/b/c:1.0"}]}}}}}});
        assert_eq!(pull_from_mirror(&mut cron, "reg:5000", "m:1", &[]), 1);
        assert_eq!(
            cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"],
            "m:1/a/b/c:1.0"
        );
        let mut other = json!({"kind": "Deployment", "spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "quay.io/a/b:1"}]}}}});
        let before = other.clone();
        assert_eq!(pull_from_mirror(&mut other, "reg:5000", "m:1", &["s".to_string()]), 0);
        assert_eq!(other, before, "no pull secrets added where nothing moved");
        let mut config = json!({"kind": "ConfigMap", "data": {"image": "reg:5000/a/b/c:1"}});
        assert_eq!(pull_from_mirror(&mut config, "reg:5000", "m:1", &[]), 0);
    }
}
