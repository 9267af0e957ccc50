use std::sync::atomic::Ordering;
use std::time::Duration;

use federation::health::ProbeSettings;
use federation::lease::{self, Lease};
use kernel::testkit::eventually;
use kubesim::Fault;
use paas_proto::v1 as pb;

use crate::helpers::{Fed, PROBES, Running, cluster};

#[tokio::test]
async fn each_fault_makes_a_ready_cluster_notready_then_unknown_and_the_first_good_probe_makes_it_ready() {
    let fed = Fed::start().await;
    let cases = [
        ("down", Fault::Down, "Unreachable"),
        ("blackhole", Fault::Blackhole, "ProbeTimeout"),
        ("slow", Fault::Slow { ms: 4000 }, "ProbeTimeout"),
        ("flaky", Fault::Flaky { share: 1.0 }, "ReadyzFailed"),
        ("partition", Fault::Partition, "Unreachable"),
    ];
    let mut clusters = Vec::new();
    for (name, _, _) in &cases {
        let c = cluster(name).await;
        // One data centre each, so no data-centre event mixes in.
        fed.register(&c, &format!("dc-{name}"), "").await;
        clusters.push(c);
    }
    // The reason of a fast failure is checked, so a loaded machine must not
    // turn a quick "not ready" answer into a timeout: a longer timeout than
    // the other tests need, and a Slow fault well beyond it.
    let probes = ProbeSettings {
        timeout: Duration::from_millis(1500),
        lease_ttl: Duration::from_millis(4000),
        ..PROBES
    };
    let monitor = Running::monitor(fed.monitor(probes));
    for (name, _, _) in &cases {
        assert_eq!(fed.until_status(name, "Ready").await, "ProbeSucceeded");
    }
    for ((name, fault, reason), c) in cases.iter().zip(&clusters) {
        c.faults().set(*fault);
        assert_eq!(&fed.until_status(name, "NotReady").await, reason, "{name}");
        assert_eq!(fed.until_status(name, "Unknown").await, "NoContact", "{name}");
        c.faults().recover();
        assert_eq!(fed.until_status(name, "Ready").await, "ProbeSucceeded", "{name}");
    }
    monitor.stop().await;

    let events: Vec<pb::ClusterHealthChanged> = fed.events("federation.cluster.health_changed").await;
    for (name, _, reason) in &cases {
        let mine: Vec<(&str, &str, &str)> = events
            .iter()
            .filter(|e| e.name == *name)
            .map(|e| (e.from.as_str(), e.to.as_str(), e.reason.as_str()))
            .collect();
        assert_eq!(
            mine,
            [
                ("Unknown", "Ready", "ProbeSucceeded"),
                ("Ready", "NotReady", *reason),
                ("NotReady", "Unknown", "NoContact"),
                ("Unknown", "Ready", "ProbeSucceeded")
            ],
            "{name}"
        );
    }
    // Times are stored with the condition.
    let times = sqlx::query!("SELECT last_probe_at, last_transition_at FROM clusters WHERE name = 'down'")
        .fetch_one(fed.pool())
        .await
        .unwrap();
    assert!(times.last_probe_at.unwrap() >= times.last_transition_at);
}

#[tokio::test]
async fn fewer_misses_than_the_threshold_leave_a_ready_cluster_ready() {
    let fed = Fed::start().await;
    let c = cluster("blip").await;
    fed.register(&c, "dc1", "").await;
    // Threshold far above what a short outage costs.
    let monitor = Running::monitor(fed.monitor(ProbeSettings { misses: 1000, ..PROBES }));
    fed.until_status("blip", "Ready").await;
    c.faults().set(Fault::Down);
    let misses = eventually(Duration::from_secs(10), "misses counted", || async {
        let m = sqlx::query_scalar!("SELECT misses FROM clusters WHERE name = 'blip'")
            .fetch_one(fed.pool())
            .await
            .unwrap();
        (m >= 3).then_some(m)
    })
    .await;
    assert!(misses >= 3);
    assert_eq!(fed.condition("blip").await.0, "Ready");
    c.faults().recover();
    eventually(Duration::from_secs(10), "misses reset", || async {
        let m = sqlx::query_scalar!("SELECT misses FROM clusters WHERE name = 'blip'")
            .fetch_one(fed.pool())
            .await
            .unwrap();
        (m == 0).then_some(())
    })
    .await;
    monitor.stop().await;
    let events: Vec<pb::ClusterHealthChanged> = fed.events("federation.cluster.health_changed").await;
    assert_eq!(events.len(), 1, "only the first Ready: {events:?}");
}

#[tokio::test]
async fn a_data_centre_losing_every_cluster_is_one_event_and_its_return_another() {
    let fed = Fed::start().await;
    let a = cluster("dc1-a").await;
    let b = cluster("dc1-b").await;
    let other = cluster("dc2-a").await;
    fed.register(&a, "dc1", "").await;
    fed.register(&b, "dc1", "").await;
    fed.register(&other, "dc2", "").await;
    let monitor = Running::monitor(fed.monitor(PROBES));
    for n in ["dc1-a", "dc1-b", "dc2-a"] {
        fed.until_status(n, "Ready").await;
    }
    let state = |name: &'static str| {
        let pool = fed.pool().clone();
        async move {
            federation::data_centre::data_centres(&pool)
                .await
                .unwrap()
                .into_iter()
                .find(|d| d.name == name)
                .unwrap()
                .state
        }
    };
    assert_eq!(state("dc1").await, "Ready");

    a.faults().set(Fault::Down);
    fed.until_status("dc1-a", "NotReady").await;
    assert_eq!(state("dc1").await, "Degraded");
    assert!(
        fed.events::<pb::DataCentreHealthChanged>("federation.datacentre.health_changed")
            .await
            .is_empty()
    );

    b.faults().set(Fault::Partition);
    fed.until_status("dc1-b", "NotReady").await;
    assert_eq!(state("dc1").await, "Lost");
    assert_eq!(state("dc2").await, "Ready");
    // NotReady -> Unknown keeps it lost: no second event.
    fed.until_status("dc1-a", "Unknown").await;
    fed.until_status("dc1-b", "Unknown").await;

    b.faults().recover();
    fed.until_status("dc1-b", "Ready").await;
    assert_eq!(state("dc1").await, "Degraded");
    monitor.stop().await;

    let dc: Vec<pb::DataCentreHealthChanged> = fed.events("federation.datacentre.health_changed").await;
    let seen: Vec<(&str, bool)> = dc.iter().map(|e| (e.data_centre.as_str(), e.lost)).collect();
    assert_eq!(seen, [("dc1", true), ("dc1", false)]);
    assert_eq!(dc[0].clusters, ["dc1-a", "dc1-b"]);
}

#[tokio::test]
async fn a_second_monitor_stands_by_while_the_first_holds_the_lease_and_takes_over_when_it_stops() {
    let fed = Fed::start().await;
    let c = cluster("leased").await;
    fed.register(&c, "dc1", "").await;
    // A lease far longer than a renewal takes, even on a loaded machine.
    let settings = ProbeSettings {
        lease_ttl: Duration::from_secs(2),
        ..PROBES
    };
    let first = fed.monitor(settings);
    let (first_holder, first_probes) = (first.holder().to_string(), first.probes());
    let first = Running::monitor(first);
    eventually(Duration::from_secs(10), "the first monitor probing", || async {
        (first_probes.load(Ordering::Relaxed) > 0).then_some(())
    })
    .await;

    let second = fed.monitor(settings);
    let (second_holder, second_probes) = (second.holder().to_string(), second.probes());
    let second = Running::monitor(second);
    // The standby asks again after the lease it first found would have
    // expired: the first has kept renewing it.
    let expires = sqlx::query_scalar!("SELECT expires_at FROM leases WHERE name = $1", lease::HEALTH_MONITOR)
        .fetch_one(fed.pool())
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the first lease term over", || async {
        sqlx::query_scalar!(r#"SELECT now() > $1 AS "past!""#, expires)
            .fetch_one(fed.pool())
            .await
            .unwrap()
            .then_some(())
    })
    .await;
    second.looked("a standby turn after the first lease term").await;
    assert_eq!(second_probes.load(Ordering::Relaxed), 0, "the standby probed");
    assert_eq!(
        Lease::current(fed.pool(), lease::HEALTH_MONITOR)
            .await
            .unwrap()
            .as_deref(),
        Some(first_holder.as_str())
    );

    first.stop().await;
    let before = first_probes.load(Ordering::Relaxed);
    eventually(Duration::from_secs(10), "the standby taking over", || async {
        (second_probes.load(Ordering::Relaxed) > 0).then_some(())
    })
    .await;
    assert_eq!(
        Lease::current(fed.pool(), lease::HEALTH_MONITOR)
            .await
            .unwrap()
            .as_deref(),
        Some(second_holder.as_str())
    );
    // Three rounds of the new leader: time in which the stopped one would have probed too.
    let now = second_probes.load(Ordering::Relaxed);
    eventually(Duration::from_secs(10), "three rounds of the new leader", || async {
        (second_probes.load(Ordering::Relaxed) >= now + 3).then_some(())
    })
    .await;
    assert_eq!(first_probes.load(Ordering::Relaxed), before, "a stopped monitor probed");

    // A leader that dies without releasing: the next one waits for expiry.
    second.task.abort();
    let third = fed.monitor(settings);
    let third_probes = third.probes();
    let third = Running::monitor(third);
    // Its first turn found the dead leader's lease unexpired and stood by.
    eventually(Duration::from_secs(10), "the third monitor's first turn", || async {
        (third.turns.load(Ordering::Acquire) > 0).then_some(())
    })
    .await;
    assert_eq!(
        third_probes.load(Ordering::Relaxed),
        0,
        "took a lease that had not expired"
    );
    eventually(Duration::from_secs(10), "a new leader after expiry", || async {
        (third_probes.load(Ordering::Relaxed) > 0).then_some(())
    })
    .await;
    // The cluster stayed observed throughout.
    assert_eq!(fed.condition("leased").await.0, "Ready");
}
