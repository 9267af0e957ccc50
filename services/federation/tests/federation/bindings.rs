//! Bindings against kubesim clusters: placement kinds, propagation into the
//! partitions' namespaces, drift repair, re-placement, a dead cluster, quota
//! refusal and status.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use federation::binding::{Admission, ApplyRequest, Bindings, Health};
use federation::propagation::{PropagateSettings, Propagator};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kernel::caller::Caller;
use kernel::testkit::eventually;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kubesim::{Cluster, ClusterConfig, Fault};
use paas_proto::v1 as pb;
use prost::Message;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Fed, PROBES, Running, cluster};

/// Tenancy's admission as these tests need it: a cap on `requests.cpu` in
/// millicores over everything reserved and not released. (Tenancy's real
/// reservations are exercised end to end in e2e/tests/platform/bindings.rs.)
#[derive(Default)]
pub struct CpuCap {
    pub cap_milli: i64,
    pub held: Mutex<BTreeMap<Uuid, i64>>,
}

fn milli(q: &str) -> i64 {
    kernel::quantity::Quantity::parse("cpu", q).unwrap().milli()
}

impl Admission for CpuCap {
    fn reserve<'a>(
        &'a self,
        _partition: Uuid,
        amounts: &'a BTreeMap<String, String>,
        _key: &'a str,
    ) -> Pin<Box<dyn Future<Output = kernel::Result<Uuid>> + Send + 'a>> {
        Box::pin(async move {
            let want = amounts.get("requests.cpu").map_or(0, |q| milli(q));
            let mut held = self.held.lock().unwrap();
            let used: i64 = held.values().sum();
            if used + want > self.cap_milli {
                return Err(kernel::Error::ResourceExhausted(format!(
                    "requests.cpu: asked {want}m, {}m left",
                    self.cap_milli - used
                )));
            }
            let id = Uuid::now_v7();
            held.insert(id, want);
            Ok(id)
        })
    }
    fn commit(&self, _r: Uuid) -> Pin<Box<dyn Future<Output = kernel::Result<()>> + Send + '_>> {
        Box::pin(async { Ok(()) })
    }
    fn release(&self, r: Uuid) -> Pin<Box<dyn Future<Output = kernel::Result<()>> + Send + '_>> {
        Box::pin(async move {
            self.held.lock().unwrap().remove(&r);
            Ok(())
        })
    }
}

pub const TENANT: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);

/// A partition of TENANT in `cluster` (namespace acme-web), and TENANT, recorded as tenancy's events would.
pub async fn partition(fed: &Fed, cluster: &str) {
    let p = pb::PartitionChanged {
        partition_id: Uuid::now_v7().to_string(),
        tenant_id: TENANT.to_string(),
        cluster: cluster.into(),
        namespace: "acme-web".into(),
        network_policy: "allow-all-ingress".into(),
        ..Default::default()
    };
    sqlx::query!(
        "INSERT INTO partitions (partition_id, tenant_id, cluster, namespace, desired) VALUES ($1, $2, $3, $4, $5)",
        Uuid::parse_str(&p.partition_id).unwrap(),
        TENANT,
        cluster,
        &p.namespace,
        p.encode_to_vec(),
    )
    .execute(fed.pool())
    .await
    .unwrap();
    // Federation places nothing for a tenant it has not learned of.
    sqlx::query!(
        "INSERT INTO known_tenants (tenant_id, name, event_id) VALUES ($1, 'acme', $2) ON CONFLICT DO NOTHING",
        TENANT,
        Uuid::now_v7(),
    )
    .execute(fed.pool())
    .await
    .unwrap();
}

pub fn app(cpu: &str) -> String {
    json!([
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "web", "image": "nginx", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    ])
    .to_string()
}

pub fn request(objects: String, placement: Value, replicas: u32) -> ApplyRequest {
    ApplyRequest {
        tenant: TENANT,
        project: None,
        name: kernel::name::DnsLabel::parse("name", "shop").unwrap(),
        objects_json: objects,
        placement_json: placement.to_string(),
        replicas,
        hold: Vec::new(),
    }
}

/// A propagator polling every 50 ms; status of targets in watched clusters
/// is polled only every `resync` (the watches record it).
pub fn propagator(fed: &Fed, admission: Arc<CpuCap>, resync: Duration) -> Running {
    propagator_with(fed, admission, settings(resync))
}

/// A test propagator's settings: quick turns, status polled every `resync`.
pub fn settings(resync: Duration) -> PropagateSettings {
    PropagateSettings {
        poll: Duration::from_millis(50),
        resync,
        watched_poll: resync,
        lease_ttl: Duration::from_secs(2),
        parallelism: 8,
        timeout: Duration::from_secs(3),
    }
}

pub fn propagator_with(fed: &Fed, admission: Arc<CpuCap>, settings: PropagateSettings) -> Running {
    Running::propagator(Propagator::new(
        fed.pool().clone(),
        fed.clients.clone(),
        settings,
        admission,
    ))
}

pub async fn replicas(fed: &Fed, cluster: &str) -> Option<i32> {
    let api: Api<Deployment> = Api::namespaced(fed.clients.by_name(cluster).await.ok()?, "acme-web");
    api.get_opt("web").await.ok()??.spec?.replicas
}

pub async fn health(fed: &Fed, admission: &CpuCap, id: Uuid) -> (Health, String) {
    let (b, targets) = Bindings::new(fed.pool(), admission)
        .get(&Caller::platform_admin("t"), id)
        .await
        .unwrap();
    federation::binding::overall(&b, &targets)
}

/// Three Ready clusters with a partition each, the partition reconciler and monitor running.
pub async fn fleet(fed: &Fed, names: &[&str]) -> (Vec<kubesim::RunningCluster>, Running, Running) {
    let mut clusters = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let c = cluster(n).await;
        fed.register(&c, &format!("dc{i}"), "").await;
        partition(fed, n).await;
        clusters.push(c);
    }
    let monitor = Running::monitor(fed.monitor(PROBES));
    let partitions = Running::reconciler(fed.reconciler(Duration::from_secs(3600)));
    for n in names {
        fed.until_status(n, "Ready").await;
    }
    (clusters, monitor, partitions)
}

#[tokio::test]
async fn weighted_objects_reach_their_clusters_become_healthy_and_leave_clusters_no_longer_assigned() {
    let fed = Fed::start().await;
    let (_clusters, _m, _p) = fleet(&fed, &["wa", "wb", "wc"]).await;
    let admission = Arc::new(CpuCap {
        cap_milli: 100_000,
        ..Default::default()
    });
    let _prop = propagator(&fed, admission.clone(), Duration::from_secs(3600));
    let bindings = Bindings::new(fed.pool(), &*admission);
    let weighted = json!({"policy": {"division": {"weighted": {"wa": 2, "wb": 1}}}});
    let (b, targets) = bindings
        .apply(&Caller::platform_admin("t"), request(app("100m"), weighted.clone(), 3))
        .await
        .unwrap();
    assert_eq!(
        targets
            .iter()
            .map(|t| (t.cluster.as_str(), t.replicas))
            .collect::<Vec<_>>(),
        [("wa", 2), ("wb", 1)]
    );
    // Applying the same again changes nothing.
    let (again, _) = bindings
        .apply(&Caller::platform_admin("t"), request(app("100m"), weighted, 3))
        .await
        .unwrap();
    assert_eq!((again.id, again.generation), (b.id, b.generation));

    eventually(Duration::from_secs(10), "2 replicas in wa, 1 in wb", || async {
        (replicas(&fed, "wa").await == Some(2) && replicas(&fed, "wb").await == Some(1)).then_some(())
    })
    .await;
    assert_eq!(replicas(&fed, "wc").await, None);
    let svc: Api<Service> = Api::namespaced(fed.clients.by_name("wa").await.unwrap(), "acme-web");
    let labels = svc.get("web").await.unwrap().metadata.labels.unwrap();
    assert_eq!(
        (
            labels["paas.io/managed-by"].as_str(),
            labels["paas.io/binding"].as_str()
        ),
        ("federation", b.id.to_string().as_str())
    );
    let deploy: Api<Deployment> = Api::namespaced(fed.clients.by_name("wa").await.unwrap(), "acme-web");
    let managers: Vec<String> = deploy
        .get("web")
        .await
        .unwrap()
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"paas-federation".to_string()), "{managers:?}");
    eventually(Duration::from_secs(10), "Healthy", || async {
        (health(&fed, &admission, b.id).await.0 == Health::Healthy).then_some(())
    })
    .await;

    // Re-placed on wc alone: wa and wb lose the objects, wc gets them.
    let explicit = json!({"explicit": [{"cluster": "wc", "replicas": 2}]});
    bindings
        .apply(&Caller::platform_admin("t"), request(app("100m"), explicit, 3))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "moved to wc", || async {
        let svc_wa: Api<Service> = Api::namespaced(fed.clients.by_name("wa").await.ok()?, "acme-web");
        (replicas(&fed, "wc").await == Some(2)
            && replicas(&fed, "wa").await.is_none()
            && replicas(&fed, "wb").await.is_none()
            && svc_wa.get_opt("web").await.ok()?.is_none())
        .then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "Healthy again", || async {
        (health(&fed, &admission, b.id).await.0 == Health::Healthy).then_some(())
    })
    .await;
    // The quota of the clusters left behind is given back: only wc's 2 x 100m is held.
    eventually(Duration::from_secs(5), "quota released", || async {
        (admission.held.lock().unwrap().values().sum::<i64>() == 200).then_some(())
    })
    .await;

    // Deleted: gone everywhere, and forgotten.
    bindings.delete(&Caller::platform_admin("t"), b.id).await.unwrap();
    eventually(Duration::from_secs(10), "deleted", || async {
        replicas(&fed, "wc").await.is_none().then_some(())
    })
    .await;
    eventually(Duration::from_secs(5), "forgotten", || async {
        let n: i64 = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM bindings"#)
            .fetch_one(fed.pool())
            .await
            .unwrap();
        (n == 0 && admission.held.lock().unwrap().is_empty()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn dynamic_division_follows_free_capacity_and_duplicated_runs_everything_everywhere() {
    let fed = Fed::start().await;
    let small = Cluster::start(ClusterConfig {
        nodes: 1,
        ..ClusterConfig::named("small")
    })
    .await
    .unwrap();
    let large = Cluster::start(ClusterConfig {
        nodes: 3,
        ..ClusterConfig::named("large")
    })
    .await
    .unwrap();
    fed.register(&small, "dc1", "").await;
    fed.register(&large, "dc2", "").await;
    partition(&fed, "small").await;
    partition(&fed, "large").await;
    let _m = Running::monitor(fed.monitor(PROBES));
    let _p = Running::reconciler(fed.reconciler(Duration::from_secs(3600)));
    fed.until_status("small", "Ready").await;
    fed.until_status("large", "Ready").await;
    eventually(Duration::from_secs(10), "both discovered", || async {
        let n: i64 = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM clusters WHERE allocatable ? 'cpu'"#)
            .fetch_one(fed.pool())
            .await
            .unwrap();
        (n == 2).then_some(())
    })
    .await;
    let admission = Arc::new(CpuCap {
        cap_milli: 100_000,
        ..Default::default()
    });
    let bindings = Bindings::new(fed.pool(), &*admission);
    // 4 and 12 cpu free; 8 replicas of 1 cpu: room for 4 and 8, divided 8 x 4/12 and 8 x 8/12.
    let (_, targets) = bindings
        .apply(
            &Caller::platform_admin("t"),
            request(app("1"), json!({"policy": {"division": "dynamic"}}), 8),
        )
        .await
        .unwrap();
    assert_eq!(
        targets
            .iter()
            .map(|t| (t.cluster.as_str(), t.replicas))
            .collect::<Vec<_>>(),
        [("large", 5), ("small", 3)]
    );
    // What is placed counts: another 9 such replicas do not fit in the 8 cpu left.
    let mut other = request(app("1"), json!({"policy": {"division": "dynamic"}}), 9);
    other.name = kernel::name::DnsLabel::parse("name", "other").unwrap();
    let e = bindings.apply(&Caller::platform_admin("t"), other).await.unwrap_err();
    assert!(matches!(e, kernel::Error::ResourceExhausted(_)), "{e}");

    let mut dup = request(
        app("100m"),
        json!({"policy": {"division": "duplicated", "groups": [{"data_centres": ["dc2"]}, {}]}}),
        2,
    );
    dup.name = kernel::name::DnsLabel::parse("name", "dup").unwrap();
    let (_, targets) = bindings.apply(&Caller::platform_admin("t"), dup).await.unwrap();
    assert_eq!(
        targets
            .iter()
            .map(|t| (t.cluster.as_str(), t.replicas))
            .collect::<Vec<_>>(),
        [("large", 2)],
        "the first affinity group wins"
    );
}

#[tokio::test]
async fn edits_and_deletions_in_a_member_cluster_are_repaired_and_a_refused_quota_applies_nothing() {
    let fed = Fed::start().await;
    let (_clusters, _m, _p) = fleet(&fed, &["da"]).await;
    let admission = Arc::new(CpuCap {
        cap_milli: 1000,
        ..Default::default()
    });
    let prop = propagator(&fed, admission.clone(), Duration::from_millis(300));
    let bindings = Bindings::new(fed.pool(), &*admission);

    // 4 x 500m against room for 1 cpu: refused, nothing recorded or applied.
    let e = bindings
        .apply(
            &Caller::platform_admin("t"),
            request(app("500m"), json!({"explicit": [{"cluster": "da"}]}), 4),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, kernel::Error::ResourceExhausted(_)), "{e}");
    let n = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM bindings"#)
        .fetch_one(fed.pool())
        .await
        .unwrap();
    assert_eq!(n, 0);
    prop.looked("a propagation turn after the refusal").await;
    assert_eq!(replicas(&fed, "da").await, None);

    bindings
        .apply(
            &Caller::platform_admin("t"),
            request(app("500m"), json!({"explicit": [{"cluster": "da"}]}), 2),
        )
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "applied", || async {
        (replicas(&fed, "da").await == Some(2)).then_some(())
    })
    .await;
    let client = fed.clients.by_name("da").await.unwrap();
    let deploy: Api<Deployment> = Api::namespaced(client.clone(), "acme-web");
    let svc: Api<Service> = Api::namespaced(client, "acme-web");
    deploy
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 7}})),
        )
        .await
        .unwrap();
    svc.delete("web", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(10), "repaired", || async {
        (replicas(&fed, "da").await == Some(2) && svc.get_opt("web").await.ok()?.is_some()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_dead_cluster_does_not_hold_up_the_others_and_converges_when_it_returns() {
    let fed = Fed::start().await;
    let (clusters, _m, _p) = fleet(&fed, &["xa", "xb"]).await;
    let admission = Arc::new(CpuCap {
        cap_milli: 100_000,
        ..Default::default()
    });
    let bindings = Bindings::new(fed.pool(), &*admission);
    // A black hole the monitor has not yet noticed: requests to it hang.
    clusters[0].faults().set(Fault::Blackhole);
    let (b, _) = bindings
        .apply(
            &Caller::platform_admin("t"),
            request(
                app("100m"),
                json!({"explicit": [{"cluster": "xa"}, {"cluster": "xb"}]}),
                2,
            ),
        )
        .await
        .unwrap();
    let _prop = propagator(&fed, admission.clone(), Duration::from_secs(3600));
    // Well under the 3 s the stuck target may take.
    eventually(Duration::from_secs(2), "xb applied meanwhile", || async {
        (replicas(&fed, "xb").await == Some(2)).then_some(())
    })
    .await;
    fed.until_status("xa", "NotReady").await;
    let (h, reason) = health(&fed, &admission, b.id).await;
    assert_eq!(h, Health::Unknown, "{reason}");

    clusters[0].faults().recover();
    fed.until_status("xa", "Ready").await;
    eventually(Duration::from_secs(10), "xa converged", || async {
        (replicas(&fed, "xa").await == Some(2)).then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "Healthy", || async {
        (health(&fed, &admission, b.id).await.0 == Health::Healthy).then_some(())
    })
    .await;
}
