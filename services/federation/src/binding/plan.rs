//! Planning an apply: what [`Bindings::apply`](super::Bindings::apply)
//! changes, decided without the database, the clusters or tenancy.
//! [`Desired::parse`] reads and checks the request; [`plan`] weighs it
//! against the binding as stored ([`Stored`]) and the clusters as placement
//! sees them, and says which cluster runs how many replicas (placement
//! divides them), which revision of the objects each runs, what quota each
//! needs reserved, or why the apply is refused. The executor only loads
//! these inputs and carries the plan out: it reserves, records, and gives
//! the reservations back if anything fails ([`super::reservation`]).

use std::collections::{BTreeMap, BTreeSet};

use kernel::name::DnsLabel;
use kernel::{Error, Result};
use serde_json::Value;
use uuid::Uuid;

use super::{ApplyRequest, Binding, amounts, default_replicas, parse_objects, per_replica};
use crate::placement::{self, Assignment, Candidate, Demand, Placement, Resources};
use crate::resilience::Resilience;

/// The most replicas a binding may ask for.
pub const MAX_REPLICAS: u32 = 10_000;

/// A binding as the caller wants it: the request read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// The tenant.
    pub tenant: Uuid,
    /// Only this project's partitions.
    pub project: Option<Uuid>,
    /// Unique per tenant.
    pub name: DnsLabel,
    /// The objects as given.
    pub objects: Value,
    /// The placement as given, resilience settings included (as stored).
    pub placement_as_given: Value,
    /// The placement proper.
    pub placement: Placement,
    /// The settings given beside the placement.
    pub resilience: Resilience,
    /// Replicas in all (the objects' own when the request says 0).
    pub replicas: u32,
    /// What one replica requests.
    pub per_replica: Resources,
    /// Pods of one replica (one per workload).
    pub pods_per_replica: u32,
    /// Clusters that keep the revision they run ([`pins`]).
    pub hold: BTreeSet<String>,
}

impl Desired {
    /// Reads and checks a request.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the field: malformed objects or
    /// placement, more than [`MAX_REPLICAS`], a singleton of other than one
    /// replica or holding a DaemonSet, a held cluster that is no name.
    pub fn parse(r: &ApplyRequest) -> Result<Self> {
        let objects = parse_objects(&r.objects_json)?;
        let placement_as_given: Value = serde_json::from_str(&r.placement_json)
            .map_err(|e| Error::invalid("placement", format!("must be JSON: {e}")))?;
        let mut placement_only = placement_as_given.clone();
        let resilience = Resilience::split(&mut placement_only)?;
        let placement: Placement =
            serde_json::from_value(placement_only).map_err(|e| Error::invalid("placement", e.to_string()))?;
        let objects_value: Value =
            serde_json::from_str(&r.objects_json).map_err(|e| Error::invalid("objects", e.to_string()))?;
        let replicas = if r.replicas == 0 {
            default_replicas(&objects)
        } else {
            r.replicas
        };
        if replicas > MAX_REPLICAS {
            return Err(Error::invalid("replicas", format!("must be at most {MAX_REPLICAS}")));
        }
        if resilience.singleton && replicas != 1 {
            return Err(Error::invalid(
                "placement.singleton",
                format!("a singleton runs exactly 1 replica, not {replicas}"),
            ));
        }
        // Fencing stops a singleton by scaling it to 0, which a DaemonSet (one pod per node) cannot be.
        if resilience.singleton
            && let Some(d) = objects.iter().find(|o| o.kind.kind == "DaemonSet")
        {
            return Err(Error::invalid(
                "placement.singleton",
                format!(
                    "a singleton cannot hold DaemonSet {}: it runs a pod on every node and cannot be scaled to 0",
                    d.name
                ),
            ));
        }
        let (per_replica, pods_per_replica) = per_replica(&objects)?;
        let mut hold = BTreeSet::new();
        for (i, cluster) in r.hold.iter().enumerate() {
            hold.insert(DnsLabel::parse(&format!("hold[{i}]"), cluster)?.as_str().to_string());
        }
        Ok(Self {
            tenant: r.tenant,
            project: r.project,
            name: r.name.clone(),
            objects: objects_value,
            placement_as_given,
            placement,
            resilience,
            replicas,
            per_replica,
            pods_per_replica,
            hold,
        })
    }
}

/// The binding as stored, as much as an apply weighs.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// The binding of that name, if there is one.
    pub binding: Option<Binding>,
    /// Its targets, removed ones included.
    pub targets: Vec<StoredTarget>,
    /// Its stored revisions (needed only when the apply holds clusters).
    pub revisions: Vec<StoredRevision>,
}

/// A target as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredTarget {
    /// Cluster name.
    pub cluster: String,
    /// The partition its objects are in.
    pub partition_id: Uuid,
    /// Replicas assigned.
    pub replicas: i32,
    /// No longer assigned.
    pub removing: bool,
    /// The quota held for it.
    pub amounts: sqlx::types::Json<BTreeMap<String, String>>,
    /// The revision it is held at; `None` follows the newest.
    pub objects_revision: Option<i64>,
}

/// A revision of a binding's objects as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredRevision {
    /// Its number.
    pub revision: i64,
    /// The objects.
    pub objects: sqlx::types::Json<Value>,
}

/// What an apply does.
#[derive(Debug, Clone)]
pub enum Plan<'a> {
    /// The same request again: nothing changes.
    Unchanged(&'a Binding),
    /// A new generation of the binding.
    Change(Change),
}

/// A new generation of a binding: what to reserve, then what to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The binding's id (a new one when it is created).
    pub id: Uuid,
    /// Whether the binding is created (else updated).
    pub create: bool,
    /// The generation recorded.
    pub generation: i64,
    /// The newest revision of the objects (the ones given).
    pub revision: i64,
    /// Whether that revision is new (the objects changed).
    pub new_revision: bool,
    /// The clusters, sorted by name; any other target is removed.
    pub targets: Vec<Assignment>,
    /// Each target's revision: `Some` held at an older one, `None` the newest.
    pub pins: BTreeMap<String, Option<i64>>,
    /// The quota to reserve, before anything is recorded: every target whose amounts change.
    pub quota: Vec<Quota>,
}

/// Quota one target needs reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// The target's cluster.
    pub cluster: String,
    /// The partition reserved in.
    pub partition_id: Uuid,
    /// Tenancy resource names -> quantities ([`amounts`]).
    pub amounts: BTreeMap<String, String>,
    /// The idempotency key of the reservation.
    pub key: String,
}

impl Quota {
    /// The quota `target` needs for replicas requesting `per_replica` (and
    /// that many pods each) when its target now holds `held`: none when it
    /// requests nothing or holds that already.
    pub fn needed(
        target: &Assignment,
        (per_replica, pods): (Resources, u32),
        held: Option<&BTreeMap<String, String>>,
        key: String,
    ) -> Option<Self> {
        let want = amounts(per_replica, pods, target.replicas);
        if want.is_empty() || held == Some(&want) {
            return None;
        }
        Some(Self {
            cluster: target.cluster.clone(),
            partition_id: target.partition_id,
            amounts: want,
            key,
        })
    }
}

/// What applying `desired` to the binding `stored` changes, placed on
/// `clusters`; `new_id` is the binding's id if it is created.
///
/// Every target runs the newest revision of the objects unless the apply
/// holds its cluster ([`pins`]); a held target's quota is its revision's.
/// A target is reserved for only when its amounts change, under a key of
/// the binding, the generation and the cluster.
///
/// # Errors
/// Conflict when the binding is being deleted; the placement's refusals
/// ([`placement::PlacementError`]): invalid, unsatisfiable, no capacity;
/// InvalidArgument when a held revision's stored objects do not parse.
pub fn plan<'a>(desired: &Desired, stored: &'a Stored, clusters: &[Candidate], new_id: Uuid) -> Result<Plan<'a>> {
    let existing = stored.binding.as_ref();
    if let Some(b) = existing
        && b.deleted
    {
        return Err(Error::Conflict(format!("binding {} is being deleted", b.name)));
    }
    let targets = placement::place(
        &desired.placement,
        &Demand {
            replicas: desired.replicas,
            per_replica: desired.per_replica,
            project: desired.project,
        },
        clusters,
    )?;
    let id = existing.map_or(new_id, |b| b.id);
    // Revisions: new objects are the next one; held clusters keep theirs.
    let new_revision = existing.is_none_or(|b| b.objects.0 != desired.objects);
    let revision = match existing {
        Some(b) if new_revision => b.revision + 1,
        Some(b) => b.revision,
        None => 1,
    };
    let live = || stored.targets.iter().filter(|t| !t.removing);
    let running: BTreeMap<String, i64> = live()
        .map(|t| {
            (
                t.cluster.clone(),
                t.objects_revision
                    .unwrap_or_else(|| existing.map_or(revision, |b| b.revision)),
            )
        })
        .collect();
    let pinned = pins(&targets, &desired.hold, &running, revision);
    if let Some(b) = existing {
        let same_targets = live().count() == targets.len()
            && targets.iter().all(|a| {
                live().any(|t| {
                    t.cluster == a.cluster
                        && t.partition_id == a.partition_id
                        && t.replicas == a.replicas as i32
                        && pinned.get(&a.cluster) == Some(&t.objects_revision)
                })
            });
        if same_targets
            && b.objects.0 == desired.objects
            && b.placement.0 == desired.placement_as_given
            && b.replicas == desired.replicas as i32
            && b.project_id == desired.project
        {
            return Ok(Plan::Unchanged(b));
        }
    }
    let generation = existing.map_or(1, |b| b.generation + 1);
    // What one replica requests in each held revision: their quota is the held objects'.
    let held_revisions: BTreeSet<i64> = pinned.values().flatten().copied().collect();
    let mut requests_of: BTreeMap<i64, (Resources, u32)> = BTreeMap::new();
    for r in stored.revisions.iter().filter(|r| held_revisions.contains(&r.revision)) {
        requests_of.insert(r.revision, per_replica(&parse_objects(&r.objects.0.to_string())?)?);
    }
    let quota = targets
        .iter()
        .filter_map(|a| {
            let requests = pinned
                .get(&a.cluster)
                .copied()
                .flatten()
                .and_then(|rev| requests_of.get(&rev).copied())
                .unwrap_or((desired.per_replica, desired.pods_per_replica));
            let held = live()
                .find(|t| t.cluster == a.cluster && t.partition_id == a.partition_id)
                .map(|t| &t.amounts.0);
            Quota::needed(a, requests, held, format!("binding:{id}:{generation}:{}", a.cluster))
        })
        .collect();
    Ok(Plan::Change(Change {
        id,
        create: existing.is_none(),
        generation,
        revision,
        new_revision,
        targets,
        pins: pinned,
        quota,
    }))
}

/// Which revision each cluster of `assignment` is held at after an apply
/// whose objects are revision `newest`: a cluster named in `hold` that runs
/// an older revision (`running`: cluster -> revision, live targets only)
/// keeps it; every other cluster follows the newest (`None`). A held cluster
/// that runs nothing of the binding yet has nothing to keep and takes the
/// newest too, as does a held cluster already at the newest.
pub fn pins(
    assignment: &[Assignment],
    hold: &BTreeSet<String>,
    running: &BTreeMap<String, i64>,
    newest: i64,
) -> BTreeMap<String, Option<i64>> {
    assignment
        .iter()
        .map(|a| {
            let pin = if hold.contains(&a.cluster) {
                running.get(&a.cluster).copied().filter(|r| *r != newest)
            } else {
                None
            };
            (a.cluster.clone(), pin)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use kernel::quantity::Quantity;
    use serde_json::json;

    use super::*;
    use crate::placement::PartitionRef;
    use crate::resilience::{DrTier, Failback};

    const TENANT: Uuid = Uuid::from_u128(0xac3e);
    const NEW_ID: Uuid = Uuid::from_u128(0xb1);

    /// A Deployment `web` running `image`, each replica requesting `cpu`.
    fn web(image: &str, cpu: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "web", "image": image, "resources": {"requests": {"cpu": cpu}}}]}}}})
    }

    fn service() -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
    }

    fn daemon_set() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"}, "spec": {}})
    }

    fn request(objects: &[Value], placement: Value, replicas: u32) -> ApplyRequest {
        ApplyRequest {
            tenant: TENANT,
            project: None,
            name: DnsLabel::parse("name", "shop").unwrap(),
            objects_json: Value::from(objects.to_vec()).to_string(),
            placement_json: placement.to_string(),
            replicas,
            hold: Vec::new(),
        }
    }

    fn desired(objects: &[Value], placement: Value, replicas: u32) -> Desired {
        Desired::parse(&request(objects, placement, replicas)).unwrap()
    }

    fn holding(mut d: Desired, clusters: &[&str]) -> Desired {
        d.hold = clusters.iter().map(ToString::to_string).collect();
        d
    }

    fn partition(cluster: &str) -> Uuid {
        Uuid::from_u128(cluster.bytes().fold(0x1000, |h, b| h * 31 + u128::from(b)))
    }

    /// A Ready cluster in data centre `dc` with one partition of the tenant and `free_cpu` millicores free.
    fn cluster(name: &str, dc: &str, free_cpu: i64) -> Candidate {
        Candidate {
            name: name.into(),
            data_centre: dc.into(),
            region: "r1".into(),
            zone: "r1-a".into(),
            network_domain: "core".into(),
            environment: "production".into(),
            labels: BTreeMap::new(),
            ready: true,
            partitions: vec![PartitionRef {
                id: partition(name),
                namespace: format!("acme-{name}"),
                project: None,
            }],
            free: Resources {
                cpu_milli: free_cpu,
                memory_milli: i64::MAX / 4,
            },
        }
    }

    fn fleet() -> Vec<Candidate> {
        vec![
            cluster("a", "dc1", 1000),
            cluster("b", "dc1", 4000),
            cluster("c", "dc2", 2000),
        ]
    }

    fn change(p: Plan<'_>) -> Change {
        match p {
            Plan::Change(c) => c,
            Plan::Unchanged(b) => panic!("expected a change, the plan keeps generation {}", b.generation),
        }
    }

    /// `(cluster, replicas)` of each target.
    fn shares(c: &Change) -> Vec<(&str, u32)> {
        c.targets.iter().map(|a| (a.cluster.as_str(), a.replicas)).collect()
    }

    /// `(cluster, requests.cpu)` of each reservation.
    fn cpu(c: &Change) -> Vec<(&str, &str)> {
        c.quota
            .iter()
            .map(|q| (q.cluster.as_str(), q.amounts["requests.cpu"].as_str()))
            .collect()
    }

    /// What recording `change` leaves stored after `before` (as `Bindings::record` writes it).
    fn recorded(before: &Stored, d: &Desired, change: &Change) -> Stored {
        let previous = before.binding.as_ref();
        let binding = Binding {
            id: change.id,
            tenant_id: d.tenant,
            project_id: d.project,
            name: d.name.as_str().into(),
            objects: sqlx::types::Json(d.objects.clone()),
            placement: sqlx::types::Json(d.placement_as_given.clone()),
            replicas: d.replicas as i32,
            generation: change.generation,
            deleted: false,
            failover_error: None,
            dr_tier: d.resilience.tier.as_str().into(),
            toleration_ms: d.resilience.toleration.as_millis() as i64,
            singleton: d.resilience.singleton,
            revision: change.revision,
            failback: d.resilience.failback.as_str().into(),
            priority: d.resilience.priority,
            created_at: previous.map_or_else(Utc::now, |b| b.created_at),
            updated_at: Utc::now(),
        };
        let mut targets: Vec<StoredTarget> = before
            .targets
            .iter()
            .filter(|t| !change.targets.iter().any(|a| a.cluster == t.cluster))
            .map(|t| StoredTarget {
                removing: true,
                ..t.clone()
            })
            .collect();
        for a in &change.targets {
            let kept = before
                .targets
                .iter()
                .find(|t| t.cluster == a.cluster)
                .map(|t| t.amounts.0.clone());
            let amounts = change
                .quota
                .iter()
                .find(|q| q.cluster == a.cluster)
                .map(|q| q.amounts.clone())
                .or(kept)
                .unwrap_or_default();
            targets.push(StoredTarget {
                cluster: a.cluster.clone(),
                partition_id: a.partition_id,
                replicas: a.replicas as i32,
                removing: false,
                amounts: sqlx::types::Json(amounts),
                objects_revision: change.pins[&a.cluster],
            });
        }
        let mut revisions = before.revisions.clone();
        if change.new_revision {
            revisions.push(StoredRevision {
                revision: change.revision,
                objects: sqlx::types::Json(d.objects.clone()),
            });
        }
        revisions.retain(|r| {
            r.revision == change.revision || targets.iter().any(|t| t.objects_revision == Some(r.revision))
        });
        Stored {
            binding: Some(binding),
            targets,
            revisions,
        }
    }

    /// `d` planned on `clusters` and recorded after `before`.
    fn applied(before: &Stored, d: &Desired, clusters: &[Candidate]) -> Stored {
        let c = change(plan(d, before, clusters, NEW_ID).unwrap());
        recorded(before, d, &c)
    }

    #[test]
    fn a_request_is_read_with_its_defaults_and_its_resilience_taken_out_of_the_placement() {
        let d = desired(
            &[web("web:1", "100m"), service()],
            json!({"policy": {}, "dr_tier": "active-active", "toleration_seconds": 30, "priority": 5}),
            0,
        );
        assert_eq!(d.replicas, 3, "0 replicas: the objects' own");
        assert_eq!((d.per_replica.cpu_milli, d.pods_per_replica), (100, 1));
        assert_eq!(d.placement, Placement::Policy(placement::Policy::default()));
        assert_eq!(
            (
                d.resilience.tier,
                d.resilience.toleration.as_secs(),
                d.resilience.failback,
                d.resilience.priority
            ),
            (DrTier::ActiveActive, 30, Failback::Automatic, 5)
        );
        assert_eq!(
            d.placement_as_given["dr_tier"], "active-active",
            "stored as given, resilience included"
        );
        let singleton = desired(&[web("web:1", "100m")], json!({"policy": {}, "singleton": true}), 1);
        assert!(singleton.resilience.singleton);
    }

    #[test]
    fn a_request_is_refused_naming_the_field_and_why() {
        let one = [web("web:1", "100m")];
        let with_agent = [web("web:1", "100m"), daemon_set()];
        let bad_hold = ApplyRequest {
            hold: vec!["pa".into(), "Not A Cluster".into()],
            ..request(&one, json!({"policy": {}}), 1)
        };
        let cases: [(&str, ApplyRequest, &str, &str); 7] = [
            (
                "too many replicas",
                request(&one, json!({"policy": {}}), 10_001),
                "replicas",
                "must be at most 10000",
            ),
            (
                "a singleton of two",
                request(&one, json!({"policy": {}, "singleton": true}), 2),
                "placement.singleton",
                "a singleton runs exactly 1 replica, not 2",
            ),
            (
                "a singleton of the objects' three",
                request(&one, json!({"policy": {}, "singleton": true}), 0),
                "placement.singleton",
                "not 3",
            ),
            (
                "a singleton with a DaemonSet",
                request(&with_agent, json!({"policy": {}, "singleton": true}), 1),
                "placement.singleton",
                "cannot hold DaemonSet agent",
            ),
            (
                "a placement that is not JSON",
                ApplyRequest {
                    placement_json: "{policy".into(),
                    ..request(&one, json!({}), 1)
                },
                "placement",
                "must be JSON",
            ),
            (
                "a misspelt placement",
                request(&one, json!({"policy": {"divison": "dynamic"}}), 1),
                "placement",
                "divison",
            ),
            ("a held cluster that is no name", bad_hold, "hold[1]", ""),
        ];
        for (case, r, field, why) in cases {
            let e = Desired::parse(&r).expect_err(case);
            assert_eq!(e.field(), Some(field), "{case}: {e}");
            assert!(e.to_string().contains(why), "{case}: {e}");
        }
    }

    #[test]
    fn a_new_binding_is_placed_and_reserved_for_in_every_target() {
        let objects = [web("web:1", "100m"), service()];
        // (case, placement, replicas, (cluster, replicas) placed)
        type Case = (&'static str, Value, u32, Vec<(&'static str, u32)>);
        let cases: [Case; 7] = [
            (
                "explicit, with and without replicas of its own",
                json!({"explicit": [{"cluster": "c", "replicas": 1}, {"cluster": "a"}]}),
                3,
                vec![("a", 3), ("c", 1)],
            ),
            (
                "policy, duplicated everywhere",
                json!({"policy": {}}),
                2,
                vec![("a", 2), ("b", 2), ("c", 2)],
            ),
            (
                "policy, weighted",
                json!({"policy": {"division": {"weighted": {"a": 1, "c": 2}}}}),
                6,
                vec![("a", 2), ("c", 4)],
            ),
            (
                "policy, dynamic by free capacity (room for 10, 40 and 20)",
                json!({"policy": {"division": "dynamic"}}),
                30,
                vec![("a", 5), ("b", 15), ("c", 10)],
            ),
            (
                "the first affinity group that places wins",
                json!({"policy": {"groups": [{"data_centres": ["dc9"]}, {"data_centres": ["dc2"]}, {}]}}),
                2,
                vec![("c", 2)],
            ),
            (
                "spread over at most one data centre",
                json!({"policy": {"spread": {"by": "data_centre", "min": 1, "max": 1}}}),
                1,
                vec![("a", 1), ("b", 1)],
            ),
            (
                "a singleton, excluded clusters skipped",
                json!({"policy": {"exclude": ["a"], "division": {"weighted": {"a": 5, "b": 1, "c": 1}}}, "singleton": true}),
                1,
                vec![("b", 1)],
            ),
        ];
        for (case, placement, replicas, want) in cases {
            let d = desired(&objects, placement, replicas);
            let c = change(plan(&d, &Stored::default(), &fleet(), NEW_ID).unwrap());
            assert_eq!(shares(&c), want, "{case}");
            assert_eq!(
                (c.id, c.create, c.generation, c.revision, c.new_revision),
                (NEW_ID, true, 1, 1, true),
                "{case}"
            );
            assert!(
                c.pins.values().all(Option::is_none),
                "{case}: a new binding runs its one revision"
            );
            let reserved: Vec<(String, String, String)> = c
                .quota
                .iter()
                .map(|q| {
                    (
                        q.cluster.clone(),
                        q.amounts["requests.cpu"].clone(),
                        q.amounts["pods"].clone(),
                    )
                })
                .collect();
            let expected: Vec<(String, String, String)> = want
                .iter()
                .map(|(cl, n)| {
                    let cpu = Quantity::from_milli(100 * i64::from(*n));
                    ((*cl).to_string(), cpu.to_string(), n.to_string())
                })
                .collect();
            assert_eq!(
                reserved, expected,
                "{case}: each target's replicas times one replica's requests"
            );
            for (q, a) in c.quota.iter().zip(&c.targets) {
                assert_eq!(q.partition_id, a.partition_id, "{case}");
                assert_eq!(q.key, format!("binding:{NEW_ID}:1:{}", a.cluster), "{case}");
            }
        }
    }

    #[test]
    fn objects_that_request_nothing_reserve_nothing() {
        let d = desired(&[service()], json!({"policy": {}}), 2);
        let c = change(plan(&d, &Stored::default(), &fleet(), NEW_ID).unwrap());
        assert_eq!(shares(&c).len(), 3);
        assert!(c.quota.is_empty());
    }

    #[test]
    fn what_cannot_be_placed_is_refused_with_the_reason() {
        let objects = [web("web:1", "100m")];
        let mut down = fleet();
        for c in &mut down {
            c.ready = false;
        }
        let mut two_partitions = fleet();
        two_partitions[0].partitions.push(PartitionRef {
            id: Uuid::from_u128(7),
            namespace: "acme-other".into(),
            project: None,
        });
        let deleted = {
            let mut s = applied(
                &Stored::default(),
                &desired(&objects, json!({"policy": {}}), 1),
                &fleet(),
            );
            s.binding.as_mut().unwrap().deleted = true;
            s
        };
        // (case, placement, replicas, clusters, stored, why)
        type Case = (&'static str, Value, u32, Vec<Candidate>, Stored, &'static str);
        let cases: [Case; 6] = [
            (
                "an unknown cluster",
                json!({"explicit": [{"cluster": "z"}]}),
                1,
                fleet(),
                Stored::default(),
                "placement.explicit[0].cluster: no cluster z",
            ),
            (
                "a cluster named twice",
                json!({"explicit": [{"cluster": "a"}, {"cluster": "a"}]}),
                1,
                fleet(),
                Stored::default(),
                "placement.explicit[1].cluster: cluster a is named twice",
            ),
            (
                "a partition to choose",
                json!({"explicit": [{"cluster": "a"}]}),
                1,
                two_partitions,
                Stored::default(),
                "placement.partition_id: the tenant has 2 partitions in cluster a; name one",
            ),
            (
                "no Ready cluster",
                json!({"policy": {}}),
                1,
                down,
                Stored::default(),
                "no placement: group 0: no Ready cluster with a partition of the tenant matches",
            ),
            (
                "no room",
                json!({"policy": {"division": "dynamic"}}),
                71,
                fleet(),
                Stored::default(),
                "not enough free capacity: room for 70 of 71 replicas",
            ),
            (
                "a binding being deleted",
                json!({"policy": {}}),
                1,
                fleet(),
                deleted,
                "binding shop is being deleted",
            ),
        ];
        for (case, placement, replicas, clusters, stored, why) in cases {
            let e = plan(&desired(&objects, placement, replicas), &stored, &clusters, NEW_ID).unwrap_err();
            assert_eq!(e.to_string(), why, "{case}");
            let kind_fits = match case {
                "no Ready cluster" => matches!(e, Error::FailedPrecondition(_)),
                "no room" => matches!(e, Error::ResourceExhausted(_)),
                "a binding being deleted" => matches!(e, Error::Conflict(_)),
                _ => matches!(e, Error::InvalidArgument { .. }),
            };
            assert!(kind_fits, "{case}: {e:?}");
        }
    }

    #[test]
    fn the_same_request_again_changes_nothing_and_any_difference_is_a_new_generation() {
        let objects = [web("web:1", "100m")];
        let weighted = json!({"policy": {"division": {"weighted": {"a": 1, "b": 1}}}});
        let mut fleet = fleet();
        for c in &mut fleet {
            c.partitions[0].project = Some(Uuid::from_u128(5));
        }
        let first = desired(&objects, weighted.clone(), 2);
        let stored = applied(&Stored::default(), &first, &fleet);
        assert!(matches!(
            plan(&first, &stored, &fleet, Uuid::from_u128(99)).unwrap(),
            Plan::Unchanged(b) if b.id == NEW_ID && b.generation == 1
        ));

        let other_project = Desired {
            project: Some(Uuid::from_u128(5)),
            ..first.clone()
        };
        // (case, request, new revision, reserved (cluster, cpu))
        type Case = (&'static str, Desired, bool, Vec<(&'static str, &'static str)>);
        let cases: [Case; 5] = [
            (
                "more replicas",
                desired(&objects, weighted.clone(), 4),
                false,
                vec![("a", "200m"), ("b", "200m")],
            ),
            (
                "new objects requesting more",
                desired(&[web("web:2", "200m")], weighted.clone(), 2),
                true,
                vec![("a", "200m"), ("b", "200m")],
            ),
            (
                "new objects requesting the same",
                desired(&[web("web:2", "100m")], weighted.clone(), 2),
                true,
                vec![],
            ),
            (
                "another tier beside the same placement",
                desired(
                    &objects,
                    json!({"policy": {"division": {"weighted": {"a": 1, "b": 1}}}, "dr_tier": "auto-failover"}),
                    2,
                ),
                false,
                vec![],
            ),
            ("only the project's partitions", other_project, false, vec![]),
        ];
        for (case, d, new_revision, reserved) in cases {
            let c = change(plan(&d, &stored, &fleet, Uuid::from_u128(99)).unwrap());
            assert_eq!(shares(&c), [("a", d.replicas / 2), ("b", d.replicas / 2)], "{case}");
            assert_eq!(
                (c.id, c.create, c.generation),
                (NEW_ID, false, 2),
                "{case}: the same binding's next generation"
            );
            assert_eq!(
                (c.revision, c.new_revision),
                (if new_revision { 2 } else { 1 }, new_revision),
                "{case}"
            );
            assert_eq!(cpu(&c), reserved, "{case}: reserved only where the amounts change");
            for q in &c.quota {
                assert_eq!(q.key, format!("binding:{NEW_ID}:2:{}", q.cluster), "{case}");
            }
        }
    }

    #[test]
    fn a_target_moved_removed_or_brought_back_is_reserved_for_only_when_its_amounts_change() {
        let objects = [web("web:1", "100m")];
        let explicit = |clusters: &[(&str, u32)]| {
            let targets: Vec<Value> = clusters
                .iter()
                .map(|(c, n)| json!({"cluster": c, "replicas": n}))
                .collect();
            desired(&objects, json!({ "explicit": targets }), 1)
        };
        let stored = applied(&Stored::default(), &explicit(&[("a", 2), ("b", 1)]), &fleet());
        // b leaves: a keeps its quota, nothing is reserved.
        let c = change(plan(&explicit(&[("a", 2)]), &stored, &fleet(), NEW_ID).unwrap());
        assert_eq!((shares(&c), cpu(&c)), (vec![("a", 2)], vec![]));
        let without_b = recorded(&stored, &explicit(&[("a", 2)]), &c);
        assert!(without_b.targets.iter().any(|t| t.cluster == "b" && t.removing));
        // b comes back as it was: what a removed target held no longer counts.
        let back = change(plan(&explicit(&[("a", 2), ("b", 1)]), &without_b, &fleet(), NEW_ID).unwrap());
        assert_eq!(cpu(&back), vec![("b", "100m")]);
        // a in another partition: reserved there anew.
        let mut moved = fleet();
        moved[0].partitions[0].id = Uuid::from_u128(77);
        let c = change(plan(&explicit(&[("a", 2), ("b", 1)]), &stored, &moved, NEW_ID).unwrap());
        assert_eq!(cpu(&c), vec![("a", "200m")]);
        assert_eq!(c.quota[0].partition_id, Uuid::from_u128(77));
    }

    #[test]
    fn a_held_cluster_keeps_its_revision_and_the_quota_of_what_it_runs() {
        let both = json!({"explicit": [{"cluster": "a"}, {"cluster": "b"}]});
        let v1 = desired(&[web("web:1", "100m")], both.clone(), 1);
        let at_v1 = applied(&Stored::default(), &v1, &fleet());

        // Revision 2 goes to a; b is held at revision 1 and keeps its 100m.
        let v2 = holding(desired(&[web("web:2", "200m")], both.clone(), 1), &["b"]);
        let c = change(plan(&v2, &at_v1, &fleet(), NEW_ID).unwrap());
        assert_eq!((c.revision, c.new_revision), (2, true));
        assert_eq!(c.pins, BTreeMap::from([("a".into(), None), ("b".into(), Some(1))]));
        assert_eq!(cpu(&c), vec![("a", "200m")]);
        let at_v2 = recorded(&at_v1, &v2, &c);
        assert!(
            matches!(plan(&v2, &at_v2, &fleet(), NEW_ID).unwrap(), Plan::Unchanged(_)),
            "the same hold again"
        );

        // Revision 3 while b is still held: b stays at 1, its quota that of revision 1's objects.
        let v3 = holding(desired(&[web("web:3", "300m")], both.clone(), 2), &["b"]);
        let c = change(plan(&v3, &at_v2, &fleet(), NEW_ID).unwrap());
        assert_eq!((c.revision, c.pins["b"]), (3, Some(1)));
        assert_eq!(cpu(&c), vec![("a", "600m"), ("b", "200m")]);
        // Without revision 1's objects stored, b is reserved for as the newest.
        let forgotten = Stored {
            revisions: Vec::new(),
            ..at_v2.clone()
        };
        let c = change(plan(&v3, &forgotten, &fleet(), NEW_ID).unwrap());
        assert_eq!(cpu(&c), vec![("a", "600m"), ("b", "600m")]);
        // Stored objects that no longer read are refused rather than guessed at.
        let mut broken = at_v2.clone();
        for r in &mut broken.revisions {
            r.objects = sqlx::types::Json(json!({"not": "a list"}));
        }
        assert_eq!(
            plan(&v3, &broken, &fleet(), NEW_ID).unwrap_err().field(),
            Some("objects")
        );

        // Released: b takes the newest and its quota.
        let released = desired(&[web("web:2", "200m")], both.clone(), 1);
        let c = change(plan(&released, &at_v2, &fleet(), NEW_ID).unwrap());
        assert_eq!(
            (c.revision, c.new_revision),
            (2, false),
            "the same objects: no new revision"
        );
        assert!(c.pins.values().all(Option::is_none));
        assert_eq!(cpu(&c), vec![("b", "200m")]);

        // A held cluster placed anew has nothing to keep.
        let three = holding(
            desired(
                &[web("web:2", "200m")],
                json!({"explicit": [{"cluster": "a"}, {"cluster": "b"}, {"cluster": "c"}]}),
                1,
            ),
            &["b", "c"],
        );
        let c = change(plan(&three, &at_v2, &fleet(), NEW_ID).unwrap());
        assert_eq!(
            c.pins,
            BTreeMap::from([("a".into(), None), ("b".into(), Some(1)), ("c".into(), None)])
        );
        assert_eq!(cpu(&c), vec![("c", "200m")]);
    }

    #[test]
    fn held_clusters_keep_an_older_revision_and_everything_else_follows_the_newest() {
        let at = |c: &str| Assignment {
            cluster: c.into(),
            partition_id: Uuid::nil(),
            namespace: "ns".into(),
            replicas: 1,
        };
        let assignment = [at("a"), at("b"), at("c"), at("new")];
        let running: BTreeMap<String, i64> = [("a".to_string(), 1), ("b".to_string(), 1), ("c".to_string(), 2)].into();
        let hold: BTreeSet<String> = ["b", "c", "new", "elsewhere"].map(String::from).into();
        let pinned = pins(&assignment, &hold, &running, 2);
        assert_eq!(pinned["a"], None, "not held: takes the newest");
        assert_eq!(pinned["b"], Some(1), "held: keeps what it runs");
        assert_eq!(pinned["c"], None, "held at the newest already: nothing to pin");
        assert_eq!(pinned["new"], None, "runs nothing yet: nothing to keep");
        assert!(!pinned.contains_key("elsewhere"), "only assigned clusters are pinned");
        assert!(
            pins(&assignment, &BTreeSet::new(), &running, 3)
                .values()
                .all(Option::is_none),
            "no hold: every cluster on the newest"
        );
    }
}
