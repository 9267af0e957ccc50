use std::time::Duration;

use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kernel::testkit::eventually;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kubesim::Fault;
use paas_proto::v1 as pb;
use prost::Message;
use serde_json::json;

use crate::helpers::{Fed, PROBES, Running, cluster};

async fn add_partition(fed: &Fed, cluster: &str) {
    let p = pb::PartitionChanged {
        partition_id: uuid::Uuid::now_v7().to_string(),
        tenant_id: uuid::Uuid::now_v7().to_string(),
        cluster: cluster.into(),
        namespace: "acme-web".into(),
        network_policy: "deny-all".into(),
        hard: [("requests.cpu".to_string(), "2".to_string())].into(),
        ..Default::default()
    };
    sqlx::query!(
        "INSERT INTO partitions (partition_id, tenant_id, cluster, namespace, desired) VALUES ($1, $2, $3, $4, $5)",
        uuid::Uuid::parse_str(&p.partition_id).unwrap(),
        uuid::Uuid::parse_str(&p.tenant_id).unwrap(),
        cluster,
        &p.namespace,
        p.encode_to_vec(),
    )
    .execute(fed.pool())
    .await
    .unwrap();
}

async fn hard_cpu(quotas: &Api<ResourceQuota>) -> Option<String> {
    let q = quotas.get_opt("paas-quota").await.ok()??;
    q.spec?.hard?.get("requests.cpu").map(|q| q.0.clone())
}

#[tokio::test]
async fn an_edited_quota_and_a_deleted_network_policy_are_put_back_by_the_periodic_resync() {
    let fed = Fed::start().await;
    let c = cluster("drifty").await;
    fed.register(&c, "dc1", "").await;
    add_partition(&fed, "drifty").await;
    let _reconciler = Running::reconciler(fed.reconciler(Duration::from_millis(300)));
    let client = fed.clients.by_name("drifty").await.unwrap();
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "acme-web");
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), "acme-web");
    eventually(Duration::from_secs(10), "the quota applied", || async {
        (hard_cpu(&quotas).await.as_deref() == Some("2")).then_some(())
    })
    .await;

    // Someone else raises the quota and removes the policy.
    let edit = json!({"spec": {"hard": {"requests.cpu": "64"}}});
    quotas
        .patch("paas-quota", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    assert_eq!(hard_cpu(&quotas).await.as_deref(), Some("64"));
    policies
        .delete("paas-deny-all", &DeleteParams::default())
        .await
        .unwrap();

    eventually(Duration::from_secs(10), "the quota repaired", || async {
        (hard_cpu(&quotas).await.as_deref() == Some("2")).then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "the policy recreated", || async {
        policies.get_opt("paas-deny-all").await.ok()?.map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn a_cluster_back_from_notready_has_its_partitions_resynced_at_once() {
    let fed = Fed::start().await;
    let c = cluster("returning").await;
    fed.register(&c, "dc1", "").await;
    add_partition(&fed, "returning").await;
    // A resync period far beyond the test: only the recovery can repair.
    let _reconciler = Running::reconciler(fed.reconciler(Duration::from_secs(3600)));
    let _monitor = Running::monitor(fed.monitor(PROBES));
    let client = fed.clients.by_name("returning").await.unwrap();
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), "acme-web");
    eventually(Duration::from_secs(10), "the policy applied", || async {
        policies.get_opt("paas-deny-all").await.ok()?.map(|_| ())
    })
    .await;
    fed.until_status("returning", "Ready").await;

    // Cut off; meanwhile the policy goes inside the cluster (its simulation carries on).
    c.faults().set(Fault::Partition);
    fed.until_status("returning", "NotReady").await;
    let np = kubesim::resource::find("networking.k8s.io", "v1", "networkpolicies").unwrap();
    c.store().delete(np, "acme-web", "paas-deny-all", false, false).unwrap();
    c.faults().recover();

    fed.until_status("returning", "Ready").await;
    eventually(Duration::from_secs(10), "the policy recreated on recovery", || async {
        policies.get_opt("paas-deny-all").await.ok()?.map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn a_cluster_out_of_contact_does_not_hold_up_the_partitions_of_others_and_gets_its_own_when_back() {
    let fed = Fed::start().await;
    let dead = cluster("dead").await;
    let alive = cluster("alive").await;
    fed.register(&dead, "dc1", "").await;
    fed.register(&alive, "dc2", "").await;
    let _monitor = Running::monitor(fed.monitor(PROBES));
    fed.until_status("alive", "Ready").await;
    // A black hole: every request to it would wait for the client's timeouts.
    dead.faults().set(Fault::Blackhole);
    fed.until_status("dead", "NotReady").await;
    add_partition(&fed, "dead").await;
    add_partition(&fed, "alive").await;
    let _reconciler = Running::reconciler(fed.reconciler(Duration::from_secs(3600)));

    let quotas: Api<ResourceQuota> = Api::namespaced(fed.clients.by_name("alive").await.unwrap(), "acme-web");
    // Well under the 2 s connect / 10 s read timeouts one request to the black hole would cost.
    eventually(Duration::from_secs(4), "the live cluster's quota", || async {
        (hard_cpu(&quotas).await.as_deref() == Some("2")).then_some(())
    })
    .await;

    dead.faults().recover();
    fed.until_status("dead", "Ready").await;
    let quotas: Api<ResourceQuota> = Api::namespaced(fed.clients.by_name("dead").await.unwrap(), "acme-web");
    eventually(Duration::from_secs(10), "the returning cluster's quota", || async {
        (hard_cpu(&quotas).await.as_deref() == Some("2")).then_some(())
    })
    .await;
}
