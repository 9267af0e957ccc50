//! A release as stored, and what each of its services' bindings holds in
//! each view of it (rollout beside the replaced release, a traffic step, the
//! new version alone, back on the replaced one); the waves of a gray
//! release. How a release moves from view to view is [`crate::rollout`];
//! the driver that carries it out is [`crate::driver`].

use chrono::{DateTime, Utc};
use kernel::{Error, Result};
use serde_json::Value;
use uuid::Uuid;

use crate::strategy::{GrayBy, Strategy};
use crate::traffic::{self, GatewayRef, Layout, Route, Side};

/// A release as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Release {
    /// Its id.
    pub id: Uuid,
    /// Its application.
    pub application_id: Uuid,
    /// The application's tenant.
    pub tenant_id: Uuid,
    /// 1, 2, ... per application.
    pub number: i32,
    /// What it deploys.
    pub template_version_id: Uuid,
    /// With these parameters.
    pub parameters: Value,
    /// Where.
    pub placement: Value,
    /// How.
    pub strategy: Value,
    /// The rendered objects: service -> [object].
    pub objects: Value,
    /// Services in deploy order.
    pub waves: Value,
    /// awaiting-approval, deploying, succeeded, failed, superseded, cancelled.
    pub state: String,
    /// The wave being deployed.
    pub wave: i32,
    /// The last wave whose bindings were applied.
    pub applied_wave: i32,
    /// Why it failed, or what it is waiting for.
    pub message: String,
    /// The release it returns to, for a rollback.
    pub rollback_of: Option<i32>,
    /// Who made it.
    pub created_by: String,
    /// Who approved it (production).
    pub approved_by: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When the driver started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its slot (`blue`, `green`) for a slotted strategy.
    pub slot: Option<String>,
    /// The release it replaces (the current one when it was made).
    pub replaces: Option<i32>,
    /// rollout, traffic, waiting, finishing, aborting, done.
    pub phase: String,
    /// Canary: the step being applied.
    pub step: i32,
    /// The last phase/step whose objects were applied.
    pub applied: String,
    /// Percent of requests the new version serves.
    pub traffic: i32,
    /// Canary: the current step holds until then.
    pub hold_until: Option<DateTime<Utc>>,
    /// When the current phase began.
    pub phase_started_at: Option<DateTime<Utc>>,
    /// Gray: the waves, fixed when the rollout started.
    pub gray_waves: Option<Value>,
}

impl Release {
    /// The stored strategy.
    pub fn strategy(&self) -> Strategy {
        serde_json::from_value(self.strategy.clone()).unwrap_or_default()
    }

    /// The services in deploy order.
    pub fn waves(&self) -> Vec<Vec<String>> {
        serde_json::from_value(self.waves.clone()).unwrap_or_default()
    }

    /// Gray: the waves, once the rollout has fixed them.
    pub fn gray_waves(&self) -> Option<Vec<GrayWave>> {
        self.gray_waves
            .as_ref()
            .and_then(|w| serde_json::from_value(w.clone()).ok())
    }
}

/// Which objects of a slotted release a service's binding holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The new slot beside the old one, the old one serving.
    Rollout,
    /// The strategy's traffic step.
    Traffic(usize),
    /// Only the new slot, serving everything.
    Final,
    /// Only the old slot, serving everything (abort).
    Back,
}

/// The objects `service`'s binding holds in `view` of `release` (which
/// replaces `old`); `None`: the service has no binding then (a service the
/// old release did not have, on the way back).
///
/// # Errors
/// A layout that cannot be built (a stored release inconsistent with its strategy).
pub fn service_objects(
    release: &Release,
    old: Option<&Release>,
    service: &str,
    view: View,
    gateway: &GatewayRef,
) -> Result<Option<Value>> {
    let empty = Vec::new();
    let new_objects = release.objects.get(service).and_then(Value::as_array).unwrap_or(&empty);
    if release.strategy().gray() && view == View::Back {
        // A gray release returns to what the replaced release ran.
        return match old {
            Some(o) if o.objects.get(service).is_some() => service_objects(o, None, service, View::Final, gateway),
            _ => Ok(None),
        };
    }
    let Some(slot) = release.slot.as_deref() else {
        // An unslotted release rolls out beside the slot it replaces, then
        // holds what it rendered.
        // (A gray release runs its own objects wave by wave and returns to
        // the old ones on abort: no handover.)
        if let (View::Rollout, Some(o)) = (view, old)
            && !release.strategy().gray()
            && let Some(old_slot) = o.slot.as_deref().filter(|_| runs_in_slot(o))
            && let Some(objects) = o
                .objects
                .get(service)
                .and_then(Value::as_array)
                .filter(|objects| traffic::slottable(objects))
        {
            let side = Side {
                objects,
                slot: old_slot,
                adopted: false,
            };
            return Ok(Some(Value::Array(traffic::handover(
                new_objects,
                &side,
                o.strategy().routed(),
                gateway,
            )?)));
        }
        return Ok(Some(Value::Array(new_objects.clone())));
    };
    // A service that cannot run in two slots (a StatefulSet, a DaemonSet)
    // rolls in place: its new objects on the way forward, the replaced
    // release's on the way back.
    let old_objects = old.and_then(|o| o.objects.get(service)).and_then(Value::as_array);
    match (view, old_objects) {
        (View::Back, Some(objects)) if !traffic::slottable(objects) => return Ok(Some(Value::Array(objects.clone()))),
        (View::Back, _) => {}
        _ if !new_objects.is_empty() && !traffic::slottable(new_objects) => {
            return Ok(Some(Value::Array(new_objects.clone())));
        }
        _ => {}
    }
    let strategy = release.strategy();
    let routed = strategy.routed();
    // An unslotted release returned to by an abort runs adopted in its slot.
    let new = Side {
        objects: new_objects,
        slot,
        adopted: !strategy.slotted(),
    };
    let old_slot = old.map(|o| o.slot.clone().unwrap_or_else(|| traffic::FIRST_SLOT.to_string()));
    let old_side = match (old, &old_slot) {
        (Some(o), Some(s)) => o
            .objects
            .get(service)
            .and_then(Value::as_array)
            .filter(|objects| traffic::slottable(objects))
            .map(|objects| Side {
                objects,
                slot: s.as_str(),
                adopted: !o.strategy().slotted(),
            }),
        _ => None,
    };
    let only_new = Layout {
        old: None,
        new: Some(new),
        serving: slot,
        route: routed.then_some(Route::Serving),
        gateway,
    };
    let layout = match (view, old_side) {
        (View::Back, None) => return Ok(None),
        (View::Back, Some(o)) => Layout {
            old: Some(o),
            new: None,
            serving: o.slot,
            route: routed.then_some(Route::Serving),
            gateway,
        },
        (View::Final, _) | (_, None) => only_new,
        (View::Rollout, Some(o)) => Layout {
            old: Some(o),
            new: Some(new),
            serving: o.slot,
            route: routed.then_some(Route::Weighted(0)),
            gateway,
        },
        (View::Traffic(step), Some(o)) => {
            let (serving, route) = match &strategy {
                Strategy::BlueGreen => (slot, None),
                Strategy::Canary { steps, .. } => {
                    (o.slot, Some(Route::Weighted(steps.get(step).copied().unwrap_or(100))))
                }
                Strategy::AB { matches } => (o.slot, Some(Route::Match(matches.clone()))),
                Strategy::Shadow => (o.slot, Some(Route::Mirror)),
                Strategy::Recreate | Strategy::Rolling { .. } | Strategy::Gray { .. } => {
                    return Err(Error::internal("an unslotted strategy has no traffic steps"));
                }
            };
            Layout {
                old: Some(o),
                new: Some(new),
                serving,
                route,
                gateway,
            }
        }
    };
    Ok(Some(Value::Array(traffic::layout(&layout)?)))
}

/// How one service of a release is replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    /// The service.
    pub service: String,
    /// The strategy it follows: the release's, or `rolling` for a service
    /// that cannot run in two slots.
    pub strategy: String,
    /// Why it differs from the release's strategy (empty when it does not).
    pub note: String,
}

/// How each service of `release` is replaced. Strategies are per service:
/// under a slotted strategy a StatefulSet or DaemonSet rolls in place while
/// the Deployments run in slots, and under a routed one (canary, A/B,
/// shadow) a service without an HTTP port gets no HTTPRoute and switches to
/// the new slot when the release finishes.
pub fn plan(release: &Release) -> Vec<ServicePlan> {
    let strategy = release.strategy();
    let name = serde_json::to_value(&strategy)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_string))
        .unwrap_or_default();
    let mut out = Vec::new();
    for (service, objects) in release.objects.as_object().into_iter().flatten() {
        let objects = objects.as_array().map(Vec::as_slice).unwrap_or_default();
        let workload = objects
            .iter()
            .find(|o| matches!(o["kind"].as_str(), Some("Deployment" | "StatefulSet" | "DaemonSet")));
        let described = |w: &Value| {
            format!(
                "{} {}",
                w["kind"].as_str().unwrap_or_default(),
                w["metadata"]["name"].as_str().unwrap_or_default()
            )
        };
        let (strategy, note) = match workload {
            Some(w) if strategy.slotted() && !traffic::slottable(objects) => (
                "rolling".to_string(),
                format!(
                    "{} updates by rolling in place (only a Deployment runs in two slots); the other services follow {name}",
                    described(w)
                ),
            ),
            _ if strategy.routed()
                && !objects
                    .iter()
                    .any(|o| o["kind"] == "Service" && traffic::http_port(o).is_some()) =>
            {
                (
                    name.clone(),
                    "no HTTP port: no HTTPRoute; its Service switches to the new version when the release finishes"
                        .to_string(),
                )
            }
            _ => (name.clone(), String::new()),
        };
        out.push(ServicePlan {
            service: service.clone(),
            strategy,
            note,
        });
    }
    out
}

/// Whether `release`'s workloads run renamed into its slot (`<name>-<slot>`):
/// a slotted release's do; an unslotted one's keep their names, adopted or not.
pub(crate) fn runs_in_slot(release: &Release) -> bool {
    release.slot.is_some() && release.strategy().slotted()
}

/// The percentage of requests the new version serves at `step` of `strategy`.
pub(crate) fn traffic_at(strategy: &Strategy, step: usize) -> i32 {
    match strategy {
        Strategy::BlueGreen => 100,
        Strategy::Canary { steps, .. } => steps.get(step).copied().unwrap_or(100) as i32,
        _ => 0,
    }
}

/// One wave of a gray release: a cluster, or a partition's clusters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GrayWave {
    /// The cluster name or partition id the wave is named by.
    pub name: String,
    /// The clusters it upgrades.
    pub clusters: Vec<String>,
}

/// The waves of a gray release: `targets` ((cluster, partition id) where
/// the application's bindings run, each cluster once) grouped by cluster or
/// partition, the ones `order` names first, in that order, then the rest in
/// the placement's order (an explicit placement's list, then by name).
///
/// # Errors
/// An `order` entry where nothing of the application runs (the message says which).
pub fn gray_waves(
    by: GrayBy,
    order: &[String],
    placement: &Value,
    targets: &[(String, String)],
) -> std::result::Result<Vec<GrayWave>, String> {
    let listed: Vec<&str> = placement["explicit"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["cluster"].as_str())
        .collect();
    let mut clusters: Vec<&(String, String)> = targets.iter().collect();
    clusters.sort_by_key(|(c, _)| (listed.iter().position(|l| l == c).unwrap_or(usize::MAX), c.clone()));
    let key = |(cluster, partition): &(String, String)| match by {
        GrayBy::Cluster => cluster.clone(),
        GrayBy::Partition => partition.clone(),
    };
    let mut waves: Vec<GrayWave> = Vec::new();
    for name in order {
        if !clusters.iter().any(|t| key(t) == *name) {
            let what = if by == GrayBy::Cluster { "cluster" } else { "partition" };
            return Err(format!(
                "strategy.order names {what} {name}, where the application runs nothing"
            ));
        }
        waves.push(GrayWave {
            name: name.clone(),
            clusters: Vec::new(),
        });
    }
    for target in clusters {
        let name = key(target);
        let (cluster, _) = target;
        match waves.iter_mut().find(|w| w.name == name) {
            Some(w) => w.clusters.push(cluster.clone()),
            None => waves.push(GrayWave {
                name,
                clusters: vec![cluster.clone()],
            }),
        }
    }
    Ok(waves)
}

#[cfg(test)]
impl Release {
    /// A deploying release of `shop` with one service, `web` (a Service and a
    /// Deployment running `image`), in `slot`, by `strategy`.
    pub(crate) fn test(number: i32, slot: Option<&str>, strategy: Value, image: &str) -> Self {
        let labels = serde_json::json!({"paas.io/app": "shop", "paas.io/service": "web"});
        let objects = serde_json::json!({"web": [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop-web", "labels": labels}, "spec": {"selector": labels, "ports": [{"name": "http", "port": 80}]}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop-web", "labels": labels},
             "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": image}]}}}}
        ]});
        let now = chrono::Utc::now();
        Self {
            id: uuid::Uuid::nil(),
            application_id: uuid::Uuid::nil(),
            tenant_id: uuid::Uuid::nil(),
            number,
            template_version_id: uuid::Uuid::nil(),
            parameters: serde_json::json!({}),
            placement: serde_json::json!({}),
            strategy,
            objects,
            waves: serde_json::json!([["web"]]),
            state: "deploying".into(),
            wave: 0,
            applied_wave: -1,
            message: String::new(),
            rollback_of: None,
            created_by: "test".into(),
            approved_by: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            slot: slot.map(str::to_string),
            replaces: None,
            phase: "rollout".into(),
            step: 0,
            applied: String::new(),
            traffic: 0,
            hold_until: None,
            phase_started_at: None,
            gray_waves: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn summary(objects: Option<Value>) -> Vec<String> {
        let mut out: Vec<String> = objects
            .expect("objects")
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let slot = o["spec"]["selector"]["paas.io/slot"]
                    .as_str()
                    .or(o["spec"]["template"]["metadata"]["labels"]["paas.io/slot"].as_str())
                    .unwrap_or("-");
                let weights: Vec<String> = o["spec"]["rules"][0]["backendRefs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|b| format!("{}={}", b["name"].as_str().unwrap(), b["weight"]))
                    .collect();
                format!(
                    "{} {} {slot}{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap(),
                    if weights.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", weights.join(","))
                    }
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn each_phase_of_a_canary_holds_the_objects_it_promises() {
        let gateway = GatewayRef::default();
        let old = Release::test(1, None, json!({"type": "rolling"}), "web:1");
        let new = Release::test(2, Some("green"), json!({"type": "canary", "steps": [10, 100]}), "web:2");
        let view = |v| summary(service_objects(&new, Some(&old), "web", v, &gateway).unwrap());
        assert_eq!(
            view(View::Rollout),
            [
                "Deployment shop-web blue",
                "Deployment shop-web-green green",
                "HTTPRoute shop-web - shop-web-blue=100,shop-web-green=0",
                "Service shop-web blue",
                "Service shop-web-blue blue",
                "Service shop-web-green green"
            ],
            "an unslotted release replaced runs adopted in blue (its Deployment keeps its name); the new one waits at 0%"
        );
        assert!(
            view(View::Traffic(0)).contains(&"HTTPRoute shop-web - shop-web-blue=90,shop-web-green=10".to_string())
        );
        assert_eq!(
            view(View::Final),
            [
                "Deployment shop-web-green green",
                "HTTPRoute shop-web - shop-web-green=100",
                "Service shop-web green",
                "Service shop-web-green green"
            ]
        );
        assert_eq!(
            view(View::Back),
            [
                "Deployment shop-web blue",
                "HTTPRoute shop-web - shop-web-blue=100",
                "Service shop-web blue",
                "Service shop-web-blue blue"
            ]
        );
        assert_eq!(traffic_at(&new.strategy(), 0), 10);
    }

    /// `release` with a second service, `db`: a StatefulSet behind a TCP port.
    fn with_db(mut release: Release, image: &str) -> Release {
        let labels = json!({"paas.io/app": "shop", "paas.io/service": "db"});
        release.objects["db"] = json!([
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop-db-headless", "labels": labels}, "spec": {"clusterIP": "None", "selector": labels, "ports": [{"name": "tcp-5432", "port": 5432}]}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop-db", "labels": labels}, "spec": {"selector": labels, "ports": [{"name": "tcp-5432", "port": 5432}]}},
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "shop-db", "labels": labels},
             "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "db", "image": image}]}}}}
        ]);
        release.waves = json!([["db"], ["web"]]);
        release
    }

    #[test]
    fn under_a_canary_a_stateful_set_rolls_in_place_while_the_deployment_is_canaried() {
        let gateway = GatewayRef::default();
        let old = with_db(Release::test(1, None, json!({"type": "rolling"}), "web:1"), "db:1");
        let new = with_db(
            Release::test(2, Some("green"), json!({"type": "canary", "steps": [10, 100]}), "web:2"),
            "db:2",
        );
        for view in [View::Rollout, View::Traffic(0), View::Final] {
            assert_eq!(
                service_objects(&new, Some(&old), "db", view, &gateway)
                    .unwrap()
                    .unwrap(),
                new.objects["db"],
                "{view:?}: the StatefulSet as rendered, no slot, no HTTPRoute"
            );
        }
        assert_eq!(
            service_objects(&new, Some(&old), "db", View::Back, &gateway)
                .unwrap()
                .unwrap(),
            old.objects["db"],
            "an abort rolls it back"
        );
        assert!(
            summary(service_objects(&new, Some(&old), "web", View::Traffic(0), &gateway).unwrap())
                .contains(&"HTTPRoute shop-web - shop-web-blue=90,shop-web-green=10".to_string()),
            "web is canaried beside it"
        );
        let plan = plan(&new);
        assert_eq!(
            plan.iter()
                .map(|p| (p.service.as_str(), p.strategy.as_str()))
                .collect::<Vec<_>>(),
            [("db", "rolling"), ("web", "canary")]
        );
        assert!(plan[0].note.contains("StatefulSet shop-db"), "{}", plan[0].note);
        assert_eq!(plan[1].note, "");
        let rolling = with_db(Release::test(3, None, json!({"type": "rolling"}), "web:3"), "db:3");
        assert_eq!(
            service_objects(&rolling, Some(&new), "db", View::Rollout, &gateway)
                .unwrap()
                .unwrap(),
            rolling.objects["db"],
            "no handover for a service that never ran in a slot"
        );
    }

    #[test]
    fn blue_green_switches_the_service_and_an_unslotted_release_keeps_its_objects() {
        let gateway = GatewayRef::default();
        let old = Release::test(1, Some("blue"), json!({"type": "blue-green"}), "web:1");
        let new = Release::test(2, Some("green"), json!({"type": "blue-green"}), "web:2");
        let view = |v| summary(service_objects(&new, Some(&old), "web", v, &gateway).unwrap());
        assert_eq!(
            view(View::Rollout),
            [
                "Deployment shop-web-blue blue",
                "Deployment shop-web-green green",
                "Service shop-web blue"
            ]
        );
        assert_eq!(
            view(View::Traffic(0)),
            [
                "Deployment shop-web-blue blue",
                "Deployment shop-web-green green",
                "Service shop-web green"
            ]
        );
        assert_eq!(
            view(View::Back),
            ["Deployment shop-web-blue blue", "Service shop-web blue"]
        );
        assert_eq!(
            service_objects(&new, Some(&old), "cache", View::Back, &gateway).unwrap(),
            None,
            "a service the old release lacked has no binding on the way back"
        );
        let rolling = Release::test(3, None, json!({"type": "rolling"}), "web:3");
        assert_eq!(
            summary(service_objects(&rolling, Some(&new), "web", View::Rollout, &gateway).unwrap()),
            [
                "Deployment shop-web -",
                "Deployment shop-web-green green",
                "Service shop-web -"
            ],
            "an unslotted release rolls out beside the slot it replaces, its Service selecting both"
        );
        assert_eq!(
            service_objects(&rolling, Some(&new), "web", View::Final, &gateway)
                .unwrap()
                .unwrap(),
            rolling.objects["web"],
            "then it holds what it rendered"
        );
        let after_rolling = Release::test(4, None, json!({"type": "recreate"}), "web:4");
        assert_eq!(
            service_objects(&after_rolling, Some(&rolling), "web", View::Rollout, &gateway)
                .unwrap()
                .unwrap(),
            after_rolling.objects["web"],
            "one Deployment, rolled in place"
        );
    }

    #[test]
    fn gray_waves_follow_the_order_given_then_the_placement() {
        let targets = [
            ("dc1".to_string(), "p1".to_string()),
            ("dc2".to_string(), "p2".to_string()),
            ("dc3".to_string(), "p1".to_string()),
        ];
        let explicit = json!({"explicit": [{"cluster": "dc3"}, {"cluster": "dc1"}, {"cluster": "dc2"}]});
        let names = |w: Vec<GrayWave>| {
            w.into_iter()
                .map(|w| format!("{}:{}", w.name, w.clusters.join("+")))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(gray_waves(GrayBy::Cluster, &[], &explicit, &targets).unwrap()),
            ["dc3:dc3", "dc1:dc1", "dc2:dc2"],
            "an explicit placement's order"
        );
        assert_eq!(
            names(gray_waves(GrayBy::Cluster, &["dc2".into()], &json!({"policy": {}}), &targets).unwrap()),
            ["dc2:dc2", "dc1:dc1", "dc3:dc3"],
            "named first, the rest by name"
        );
        assert_eq!(
            names(gray_waves(GrayBy::Partition, &[], &explicit, &targets).unwrap()),
            ["p1:dc3+dc1", "p2:dc2"],
            "a partition's clusters go together"
        );
        assert_eq!(
            names(gray_waves(GrayBy::Partition, &["p2".into()], &explicit, &targets).unwrap()),
            ["p2:dc2", "p1:dc3+dc1"]
        );
        let e = gray_waves(GrayBy::Cluster, &["dc9".into()], &explicit, &targets).unwrap_err();
        assert!(e.contains("dc9"), "{e}");
    }

    #[test]
    fn a_gray_release_applies_its_own_objects_and_returns_to_what_the_replaced_release_ran() {
        let gateway = GatewayRef::default();
        let old = Release::test(1, Some("blue"), json!({"type": "blue-green"}), "web:1");
        let new = Release::test(2, None, json!({"type": "gray", "pause": "manual"}), "web:2");
        assert_eq!(
            service_objects(&new, Some(&old), "web", View::Rollout, &gateway)
                .unwrap()
                .unwrap(),
            new.objects["web"]
        );
        assert_eq!(
            summary(service_objects(&new, Some(&old), "web", View::Back, &gateway).unwrap()),
            ["Deployment shop-web-blue blue", "Service shop-web blue"],
            "back to the slot the old release served from"
        );
        assert_eq!(
            service_objects(&new, Some(&old), "cache", View::Back, &gateway).unwrap(),
            None
        );
        let rolling = Release::test(1, None, json!({"type": "rolling"}), "web:1");
        assert_eq!(
            service_objects(&new, Some(&rolling), "web", View::Back, &gateway)
                .unwrap()
                .unwrap(),
            rolling.objects["web"]
        );
    }
}
