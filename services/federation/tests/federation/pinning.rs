//! Per-target pinning: one binding runs two revisions of its objects at
//! once, a held cluster keeping what it runs while the others take the new
//! objects, with quota reserved for what each cluster runs.

use std::sync::Arc;
use std::time::Duration;

use federation::binding::{Bindings, Target};
use k8s_openapi::api::apps::v1::Deployment;
use kernel::caller::Caller;
use kernel::testkit::eventually;
use kube::api::Api;
use serde_json::json;

use crate::bindings::{CpuCap, fleet, propagator, request};
use crate::helpers::Fed;

/// A Deployment `web` running `image` with `cpu` requested per replica.
fn version(image: &str, cpu: &str) -> String {
    json!([{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": image, "resources": {"requests": {"cpu": cpu}}}]}}}}])
    .to_string()
}

/// The image and the Deployment's generation in `cluster`.
async fn running(fed: &Fed, cluster: &str) -> Option<(String, i64)> {
    let api: Api<Deployment> = Api::namespaced(fed.clients.by_name(cluster).await.ok()?, "acme-web");
    let d = api.get_opt("web").await.ok()??;
    let image = d.spec?.template.spec?.containers[0].image.clone()?;
    Some((image, d.metadata.generation.unwrap_or(0)))
}

fn revisions(targets: &[Target]) -> Vec<(&str, i64)> {
    targets
        .iter()
        .map(|t| (t.cluster.as_str(), t.objects_revision))
        .collect()
}

#[tokio::test]
async fn new_objects_reach_one_cluster_while_the_held_one_keeps_its_revision_until_released() {
    let fed = Fed::start().await;
    let (_clusters, _m, _p) = fleet(&fed, &["pa", "pb"]).await;
    let admission = Arc::new(CpuCap {
        cap_milli: 100_000,
        ..Default::default()
    });
    let _prop = propagator(&fed, admission.clone(), Duration::from_secs(3600));
    let bindings = Bindings::new(fed.pool(), &*admission);
    let admin = Caller::platform_admin("t");
    let both = json!({"explicit": [{"cluster": "pa"}, {"cluster": "pb"}]});
    let held_cpu = || admission.held.lock().unwrap().values().sum::<i64>();

    let (b, targets) = bindings
        .apply(&admin, request(version("web:1", "100m"), both.clone(), 1))
        .await
        .unwrap();
    assert_eq!((b.revision, revisions(&targets)), (1, vec![("pa", 1), ("pb", 1)]));
    eventually(Duration::from_secs(10), "web:1 in both", || async {
        (running(&fed, "pa").await?.0 == "web:1" && running(&fed, "pb").await?.0 == "web:1").then_some(())
    })
    .await;
    let pb_before = running(&fed, "pb").await.unwrap();

    // Revision 2 goes to pa only; pb is held at revision 1.
    let mut v2 = request(version("web:2", "200m"), both.clone(), 1);
    v2.hold = vec!["pb".into()];
    let (b, targets) = bindings.apply(&admin, v2).await.unwrap();
    assert_eq!((b.revision, revisions(&targets)), (2, vec![("pa", 2), ("pb", 1)]));
    eventually(Duration::from_secs(10), "web:2 in pa", || async {
        (running(&fed, "pa").await?.0 == "web:2").then_some(())
    })
    .await;
    // pb has applied that generation too (its own objects again).
    eventually(
        Duration::from_secs(10),
        "both targets at the binding's generation",
        || async {
            let (b, targets) = bindings.get(&admin, b.id).await.ok()?;
            targets
                .iter()
                .all(|t| t.applied_generation == b.generation)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        running(&fed, "pb").await.unwrap(),
        pb_before,
        "the held cluster's Deployment is untouched"
    );
    // Quota follows what each cluster runs: 200m in pa, 100m in pb.
    eventually(Duration::from_secs(5), "quota of each revision", || async {
        (held_cpu() == 300).then_some(())
    })
    .await;

    // Revision 3 (an update while pb is held): pa takes it, pb still runs revision 1, and revision 2 is forgotten.
    let mut v3 = request(version("web:3", "200m"), both.clone(), 1);
    v3.hold = vec!["pb".into()];
    let (b, targets) = bindings.apply(&admin, v3).await.unwrap();
    assert_eq!((b.revision, revisions(&targets)), (3, vec![("pa", 3), ("pb", 1)]));
    eventually(Duration::from_secs(10), "web:3 in pa", || async {
        (running(&fed, "pa").await?.0 == "web:3").then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "generation applied", || async {
        let (b, targets) = bindings.get(&admin, b.id).await.ok()?;
        targets
            .iter()
            .all(|t| t.applied_generation == b.generation)
            .then_some(())
    })
    .await;
    assert_eq!(
        running(&fed, "pb").await.unwrap(),
        pb_before,
        "an update does not touch the held cluster"
    );
    let kept: Vec<i64> = sqlx::query_scalar!(
        "SELECT revision FROM binding_revisions WHERE binding_id = $1 ORDER BY revision",
        b.id
    )
    .fetch_all(fed.pool())
    .await
    .unwrap();
    assert_eq!(kept, [1, 3], "only revisions some cluster runs are kept");
    // The same request again changes nothing, the pin included.
    let mut again = request(version("web:3", "200m"), both.clone(), 1);
    again.hold = vec!["pb".into()];
    let (same, _) = bindings.apply(&admin, again).await.unwrap();
    assert_eq!(same.generation, b.generation);

    // Applied without a hold: pb takes the newest too.
    let (b, targets) = bindings
        .apply(&admin, request(version("web:3", "200m"), both.clone(), 1))
        .await
        .unwrap();
    assert_eq!(
        (b.revision, revisions(&targets)),
        (3, vec![("pa", 3), ("pb", 3)]),
        "the objects did not change: no new revision"
    );
    eventually(Duration::from_secs(10), "web:3 in pb", || async {
        (running(&fed, "pb").await?.0 == "web:3").then_some(())
    })
    .await;
    eventually(Duration::from_secs(5), "quota of revision 3 in both", || async {
        (held_cpu() == 400).then_some(())
    })
    .await;
    let kept: Vec<i64> = sqlx::query_scalar!("SELECT revision FROM binding_revisions WHERE binding_id = $1", b.id)
        .fetch_all(fed.pool())
        .await
        .unwrap();
    assert_eq!(kept, [3]);

    // A hold names clusters: anything else is refused with the field.
    let mut bad = request(version("web:3", "200m"), both, 1);
    bad.hold = vec!["Not A Cluster".into()];
    let e = bindings.apply(&admin, bad).await.unwrap_err();
    assert_eq!(e.field(), Some("hold[0]"), "{e}");
}
