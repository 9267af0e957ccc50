//! Placement: which member clusters run a binding, in which of the tenant's
//! partitions, and with how many replicas each. [`place`] is a pure function
//! of the placement, the replicas and what is known of the clusters, so it
//! is deterministic (the same inputs give the same assignment, whatever the
//! order of the candidates) and property-tested below.
//!
//! - Explicit: the caller names clusters (and optionally the partition and
//!   replicas of each).
//! - Policy: ordered affinity groups (the first group that yields a valid
//!   placement wins: primary, then backup), each by labels, data centres,
//!   regions, zones, network domains and environments; excluded clusters;
//!   a spread constraint (at least `min`, at most `max` distinct regions,
//!   zones or data centres); and a division of the replicas: duplicated
//!   (each cluster runs them all), static weights, or dynamic by free
//!   capacity (allocatable minus what is already placed). Only Ready
//!   clusters where the tenant has a partition are candidates.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a binding goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Placement {
    /// Clusters chosen by the caller.
    Explicit(Vec<ExplicitTarget>),
    /// Clusters chosen by policy.
    Policy(Policy),
}

impl Placement {
    /// Whether placing needs each cluster's free capacity (only dynamic
    /// division weighs it), which costs a sum over every placed target.
    pub fn weighs_capacity(&self) -> bool {
        matches!(
            self,
            Self::Policy(Policy {
                division: Division::Dynamic,
                ..
            })
        )
    }
}

/// One cluster of an explicit placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplicitTarget {
    /// The cluster's name.
    pub cluster: String,
    /// The tenant's partition there; needed only when it has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_id: Option<Uuid>,
    /// Replicas there; the binding's replicas when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
}

/// A placement policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Affinity groups in order of preference; none means every cluster.
    #[serde(default)]
    pub groups: Vec<Affinity>,
    /// Clusters never used.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// How widely to spread.
    #[serde(default)]
    pub spread: Option<Spread>,
    /// How to divide the replicas.
    #[serde(default)]
    pub division: Division,
}

/// Which clusters an affinity group admits; an empty list admits any value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Affinity {
    /// Every one of these labels must be on the cluster.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Data centres.
    #[serde(default)]
    pub data_centres: Vec<String>,
    /// Regions.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Zones.
    #[serde(default)]
    pub zones: Vec<String>,
    /// Network domains (`core`, `dmz`, `internet`).
    #[serde(default)]
    pub network_domains: Vec<String>,
    /// Environments (`production`, `test`, `dr`).
    #[serde(default)]
    pub environments: Vec<String>,
}

/// A spread constraint: the number of distinct groups used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spread {
    /// What a group is.
    pub by: SpreadBy,
    /// At least this many groups.
    #[serde(default)]
    pub min: u32,
    /// At most this many groups (0: no limit).
    #[serde(default)]
    pub max: u32,
}

/// What clusters are grouped by for spreading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpreadBy {
    /// Region.
    Region,
    /// Zone.
    Zone,
    /// Data centre.
    DataCentre,
}

/// How replicas are divided among the chosen clusters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Division {
    /// Every cluster runs all the replicas.
    #[default]
    Duplicated,
    /// In proportion to static weights per cluster name (unweighted: 0).
    Weighted(BTreeMap<String, u32>),
    /// In proportion to how many replicas each cluster has room for.
    Dynamic,
}

/// Resources in thousandths (cpu in millicores, memory in milli-bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// cpu, thousandths of a core.
    pub cpu_milli: i64,
    /// memory, thousandths of a byte.
    pub memory_milli: i64,
}

impl Resources {
    /// How many times `per` fits in `self` (unbounded: `u64::MAX`).
    pub fn fits(&self, per: &Resources) -> u64 {
        let one = |free: i64, need: i64| {
            if need <= 0 {
                u64::MAX
            } else {
                (free.max(0) / need) as u64
            }
        };
        one(self.cpu_milli, per.cpu_milli).min(one(self.memory_milli, per.memory_milli))
    }
}

/// One of the tenant's partitions in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRef {
    /// Its id in tenancy.
    pub id: Uuid,
    /// Its namespace in the cluster.
    pub namespace: String,
    /// Its project.
    pub project: Option<Uuid>,
}

/// What placement knows of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Name.
    pub name: String,
    /// Data centre.
    pub data_centre: String,
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Network domain.
    pub network_domain: String,
    /// Environment.
    pub environment: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Whether the health monitor says Ready.
    pub ready: bool,
    /// The tenant's partitions there.
    pub partitions: Vec<PartitionRef>,
    /// Allocatable minus what is placed there.
    pub free: Resources,
}

/// What is being placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// Replicas in all.
    pub replicas: u32,
    /// What one replica requests.
    pub per_replica: Resources,
    /// Only this project's partitions, if set.
    pub project: Option<Uuid>,
}

/// One cluster's share of a binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Cluster name.
    pub cluster: String,
    /// The partition the objects go into.
    pub partition_id: Uuid,
    /// Its namespace.
    pub namespace: String,
    /// Replicas there.
    pub replicas: u32,
}

/// Why nothing could be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// The placement names something wrong; `field` says what.
    #[error("{field}: {reason}")]
    Invalid {
        /// The part of the placement.
        field: String,
        /// Why.
        reason: String,
    },
    /// No cluster satisfies the policy now.
    #[error("no placement: {0}")]
    Unsatisfiable(String),
    /// The eligible clusters have no room for the replicas.
    #[error("not enough free capacity: {0}")]
    NoCapacity(String),
}

impl From<PlacementError> for kernel::Error {
    fn from(e: PlacementError) -> Self {
        match e {
            PlacementError::Invalid { field, reason } => kernel::Error::invalid(format!("placement.{field}"), reason),
            PlacementError::Unsatisfiable(m) => kernel::Error::FailedPrecondition(format!("no placement: {m}")),
            PlacementError::NoCapacity(m) => kernel::Error::ResourceExhausted(format!("not enough free capacity: {m}")),
        }
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> PlacementError {
    PlacementError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The partition of `c` the binding uses: the one named, or the only one
/// (of the project, if the demand names one).
fn partition_of(
    c: &Candidate,
    wanted: Option<Uuid>,
    project: Option<Uuid>,
) -> Result<Option<&PartitionRef>, PlacementError> {
    let mut mine: Vec<&PartitionRef> = c
        .partitions
        .iter()
        .filter(|p| project.is_none() || p.project == project)
        .collect();
    mine.sort_by_key(|p| p.id);
    match wanted {
        Some(id) => Ok(mine.into_iter().find(|p| p.id == id)),
        None if mine.len() > 1 => Err(invalid(
            "partition_id",
            format!(
                "the tenant has {} partitions in cluster {}; name one",
                mine.len(),
                c.name
            ),
        )),
        None => Ok(mine.into_iter().next()),
    }
}

impl Affinity {
    fn admits(&self, c: &Candidate) -> bool {
        let any = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        self.labels.iter().all(|(k, v)| c.labels.get(k) == Some(v))
            && any(&self.data_centres, &c.data_centre)
            && any(&self.regions, &c.region)
            && any(&self.zones, &c.zone)
            && any(&self.network_domains, &c.network_domain)
            && any(&self.environments, &c.environment)
    }
}

impl SpreadBy {
    fn key<'a>(&self, c: &'a Candidate) -> &'a str {
        match self {
            Self::Region => &c.region,
            Self::Zone => &c.zone,
            Self::DataCentre => &c.data_centre,
        }
    }
}

/// Divides `total` in proportion to `weights` by largest remainder; ties go
/// to the earlier index. The shares sum to `total` exactly when any weight is
/// above zero; a zero weight gets nothing.
pub fn divide(total: u32, weights: &[u64]) -> Vec<u32> {
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<(u128, u128)> = weights
        .iter()
        .map(|&w| {
            (
                u128::from(total) * u128::from(w) / sum,
                u128::from(total) * u128::from(w) % sum,
            )
        })
        .collect();
    let mut shares: Vec<u32> = exact.iter().map(|(q, _)| *q as u32).collect();
    let mut left = total - shares.iter().sum::<u32>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Largest remainder first; the stable sort keeps earlier indices first on ties.
    order.sort_by(|a, b| exact[*b].1.cmp(&exact[*a].1));
    for i in order {
        if left == 0 {
            break;
        }
        if weights[i] > 0 {
            shares[i] += 1;
            left -= 1;
        }
    }
    shares
}

/// Resolves a placement to per-cluster assignments, sorted by cluster name.
///
/// # Errors
/// [`PlacementError::Invalid`] when the placement names an unknown cluster or
/// partition; [`PlacementError::Unsatisfiable`] when no affinity group has
/// eligible clusters within the spread; [`PlacementError::NoCapacity`] when a
/// dynamic division does not fit.
pub fn place(
    placement: &Placement,
    demand: &Demand,
    candidates: &[Candidate],
) -> Result<Vec<Assignment>, PlacementError> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    match placement {
        Placement::Explicit(targets) => explicit(targets, demand, &sorted),
        Placement::Policy(policy) => by_policy(policy, demand, &sorted),
    }
}

fn explicit(
    targets: &[ExplicitTarget],
    demand: &Demand,
    sorted: &[&Candidate],
) -> Result<Vec<Assignment>, PlacementError> {
    if targets.is_empty() {
        return Err(invalid("explicit", "must name at least one cluster"));
    }
    let mut out = Vec::with_capacity(targets.len());
    let mut seen = BTreeSet::new();
    for (i, t) in targets.iter().enumerate() {
        let field = format!("explicit[{i}]");
        if !seen.insert(t.cluster.as_str()) {
            return Err(invalid(
                format!("{field}.cluster"),
                format!("cluster {} is named twice", t.cluster),
            ));
        }
        let c = sorted
            .iter()
            .find(|c| c.name == t.cluster)
            .ok_or_else(|| invalid(format!("{field}.cluster"), format!("no cluster {}", t.cluster)))?;
        let p = partition_of(c, t.partition_id, demand.project)?.ok_or_else(|| {
            invalid(
                format!("{field}.partition_id"),
                format!("the tenant has no such partition in cluster {}", c.name),
            )
        })?;
        out.push(Assignment {
            cluster: c.name.clone(),
            partition_id: p.id,
            namespace: p.namespace.clone(),
            replicas: t.replicas.unwrap_or(demand.replicas),
        });
    }
    out.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    Ok(out)
}

fn by_policy(policy: &Policy, demand: &Demand, sorted: &[&Candidate]) -> Result<Vec<Assignment>, PlacementError> {
    if let Some(s) = policy.spread
        && s.max != 0
        && s.max < s.min
    {
        return Err(invalid("policy.spread.max", "must be at least min"));
    }
    if let Division::Weighted(w) = &policy.division
        && w.is_empty()
    {
        return Err(invalid("policy.division.weighted", "must weigh at least one cluster"));
    }
    let every = [Affinity::default()];
    let groups: &[Affinity] = if policy.groups.is_empty() {
        &every
    } else {
        &policy.groups
    };
    let mut why = Vec::new();
    for (g, affinity) in groups.iter().enumerate() {
        let mut eligible: Vec<(&Candidate, &PartitionRef)> = Vec::new();
        for c in sorted {
            if !c.ready || policy.exclude.contains(&c.name) || !affinity.admits(c) {
                continue;
            }
            if let Some(p) = partition_of(c, None, demand.project)? {
                eligible.push((c, p));
            }
        }
        if eligible.is_empty() {
            why.push(format!(
                "group {g}: no Ready cluster with a partition of the tenant matches"
            ));
            continue;
        }
        if let Some(spread) = policy.spread {
            let keys: BTreeSet<&str> = eligible.iter().map(|(c, _)| spread.by.key(c)).collect();
            if (keys.len() as u32) < spread.min {
                why.push(format!(
                    "group {g}: {} distinct {:?} groups, spread needs {}",
                    keys.len(),
                    spread.by,
                    spread.min
                ));
                continue;
            }
            if spread.max != 0 && keys.len() as u32 > spread.max {
                let kept: BTreeSet<&str> = keys.into_iter().take(spread.max as usize).collect();
                eligible.retain(|(c, _)| kept.contains(spread.by.key(c)));
            }
        }
        let shares: Vec<u32> = match &policy.division {
            Division::Duplicated => vec![demand.replicas; eligible.len()],
            Division::Weighted(w) => {
                let weights: Vec<u64> = eligible
                    .iter()
                    .map(|(c, _)| u64::from(w.get(&c.name).copied().unwrap_or(0)))
                    .collect();
                if weights.iter().all(|&w| w == 0) {
                    why.push(format!("group {g}: no weighted cluster is eligible"));
                    continue;
                }
                divide(demand.replicas, &weights)
            }
            Division::Dynamic => {
                let room: Vec<u64> = eligible
                    .iter()
                    .map(|(c, _)| c.free.fits(&demand.per_replica).min(u64::from(demand.replicas)))
                    .collect();
                let total: u128 = room.iter().map(|&r| u128::from(r)).sum();
                if total < u128::from(demand.replicas) {
                    if g + 1 == groups.len() && why.is_empty() {
                        return Err(PlacementError::NoCapacity(format!(
                            "room for {total} of {} replicas",
                            demand.replicas
                        )));
                    }
                    why.push(format!("group {g}: room for {total} of {} replicas", demand.replicas));
                    continue;
                }
                divide(demand.replicas, &room)
            }
        };
        let keep_zero = demand.replicas == 0;
        let out: Vec<Assignment> = eligible
            .iter()
            .zip(shares)
            .filter(|(_, n)| *n > 0 || keep_zero)
            .map(|((c, p), n)| Assignment {
                cluster: c.name.clone(),
                partition_id: p.id,
                namespace: p.namespace.clone(),
                replicas: n,
            })
            .collect();
        if let Some(spread) = policy.spread {
            let used: BTreeSet<&str> = out
                .iter()
                .filter_map(|a| eligible.iter().find(|(c, _)| c.name == a.cluster))
                .map(|(c, _)| spread.by.key(c))
                .collect();
            if (used.len() as u32) < spread.min {
                why.push(format!(
                    "group {g}: the division uses {} distinct {:?} groups, spread needs {}",
                    used.len(),
                    spread.by,
                    spread.min
                ));
                continue;
            }
        }
        return Ok(out);
    }
    Err(PlacementError::Unsatisfiable(why.join("; ")))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cluster(name: &str, dc: &str, region: &str, free_cpu: i64) -> Candidate {
        Candidate {
            name: name.into(),
            data_centre: dc.into(),
            region: region.into(),
            zone: format!("{region}-a"),
            network_domain: "core".into(),
            environment: "production".into(),
            labels: BTreeMap::from([("tier".to_string(), "gold".to_string())]),
            ready: true,
            partitions: vec![PartitionRef {
                id: Uuid::from_u128(name.len() as u128 + 7),
                namespace: format!("acme-{name}"),
                project: None,
            }],
            free: Resources {
                cpu_milli: free_cpu,
                memory_milli: i64::MAX / 4,
            },
        }
    }

    fn demand(replicas: u32) -> Demand {
        Demand {
            replicas,
            per_replica: Resources {
                cpu_milli: 500,
                memory_milli: 0,
            },
            project: None,
        }
    }

    fn policy(division: Division) -> Placement {
        Placement::Policy(Policy {
            division,
            ..Default::default()
        })
    }

    fn shares(a: &[Assignment]) -> Vec<(&str, u32)> {
        a.iter().map(|a| (a.cluster.as_str(), a.replicas)).collect()
    }

    #[test]
    fn the_json_form_reads_as_documented() {
        let p: Placement = serde_json::from_str(
            r#"{"policy": {"groups": [{"data_centres": ["dc1"]}, {"environments": ["dr"]}], "exclude": ["c9"],
                "spread": {"by": "region", "min": 1, "max": 2}, "division": {"weighted": {"c1": 2}}}}"#,
        )
        .unwrap();
        let Placement::Policy(p) = p else { panic!("a policy") };
        assert_eq!(p.groups.len(), 2);
        assert_eq!(p.division, Division::Weighted(BTreeMap::from([("c1".to_string(), 2)])));
        let e: Placement = serde_json::from_str(r#"{"explicit": [{"cluster": "c1", "replicas": 3}]}"#).unwrap();
        assert_eq!(
            e,
            Placement::Explicit(vec![ExplicitTarget {
                cluster: "c1".into(),
                partition_id: None,
                replicas: Some(3)
            }])
        );
        assert!(
            serde_json::from_str::<Placement>(r#"{"policy": {"divison": "dynamic"}}"#).is_err(),
            "misspelt fields are refused"
        );
        assert_eq!(
            serde_json::from_str::<Division>(r#""dynamic""#).unwrap(),
            Division::Dynamic
        );
    }

    #[test]
    fn explicit_places_on_the_named_clusters_with_their_replicas() {
        let cs = [cluster("a", "dc1", "r1", 0), cluster("b", "dc2", "r2", 0)];
        let p = Placement::Explicit(vec![
            ExplicitTarget {
                cluster: "b".into(),
                partition_id: None,
                replicas: Some(1),
            },
            ExplicitTarget {
                cluster: "a".into(),
                partition_id: None,
                replicas: None,
            },
        ]);
        assert_eq!(shares(&place(&p, &demand(3), &cs).unwrap()), [("a", 3), ("b", 1)]);
        let unknown = Placement::Explicit(vec![ExplicitTarget {
            cluster: "z".into(),
            partition_id: None,
            replicas: None,
        }]);
        assert!(
            matches!(place(&unknown, &demand(1), &cs), Err(PlacementError::Invalid { field, .. }) if field == "explicit[0].cluster")
        );
    }

    #[test]
    fn a_policy_skips_clusters_not_ready_excluded_or_without_a_partition() {
        let mut down = cluster("down", "dc1", "r1", 0);
        down.ready = false;
        let mut bare = cluster("bare", "dc1", "r1", 0);
        bare.partitions.clear();
        let cs = [cluster("a", "dc1", "r1", 0), cluster("x", "dc1", "r1", 0), down, bare];
        let p = Placement::Policy(Policy {
            exclude: vec!["x".into()],
            ..Default::default()
        });
        assert_eq!(shares(&place(&p, &demand(2), &cs).unwrap()), [("a", 2)]);
    }

    #[test]
    fn affinity_groups_are_tried_in_order() {
        let mut dr = cluster("dr", "dc2", "r2", 0);
        dr.environment = "dr".into();
        let cs = [cluster("a", "dc1", "r1", 0), dr];
        let groups = vec![
            Affinity {
                data_centres: vec!["dc9".into()],
                ..Default::default()
            },
            Affinity {
                environments: vec!["dr".into()],
                ..Default::default()
            },
        ];
        let p = Placement::Policy(Policy {
            groups,
            ..Default::default()
        });
        assert_eq!(shares(&place(&p, &demand(2), &cs).unwrap()), [("dr", 2)]);
        let labels = Placement::Policy(Policy {
            groups: vec![Affinity {
                labels: BTreeMap::from([("tier".into(), "silver".into())]),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert!(matches!(
            place(&labels, &demand(1), &cs),
            Err(PlacementError::Unsatisfiable(_))
        ));
    }

    #[test]
    fn weights_divide_exactly_and_dynamic_follows_free_capacity() {
        let cs = [
            cluster("a", "dc1", "r1", 4000),
            cluster("b", "dc2", "r2", 1000),
            cluster("c", "dc3", "r3", 0),
        ];
        let w = Division::Weighted(BTreeMap::from([("a".into(), 2), ("b".into(), 1)]));
        assert_eq!(
            shares(&place(&policy(w), &demand(7), &cs).unwrap()),
            [("a", 5), ("b", 2)]
        );
        // a has room for 8 replicas of 500m, b for 2, c for none.
        assert_eq!(
            shares(&place(&policy(Division::Dynamic), &demand(5), &cs).unwrap()),
            [("a", 4), ("b", 1)]
        );
        assert!(matches!(
            place(&policy(Division::Dynamic), &demand(11), &cs),
            Err(PlacementError::NoCapacity(_))
        ));
    }

    #[test]
    fn spread_bounds_the_number_of_groups() {
        let cs = [
            cluster("a", "dc1", "r1", 0),
            cluster("b", "dc2", "r2", 0),
            cluster("c", "dc3", "r3", 0),
        ];
        let spread = |min, max| {
            Placement::Policy(Policy {
                spread: Some(Spread {
                    by: SpreadBy::DataCentre,
                    min,
                    max,
                }),
                ..Default::default()
            })
        };
        assert_eq!(
            shares(&place(&spread(1, 2), &demand(1), &cs).unwrap()),
            [("a", 1), ("b", 1)]
        );
        assert!(matches!(
            place(&spread(4, 0), &demand(1), &cs),
            Err(PlacementError::Unsatisfiable(_))
        ));
        assert!(matches!(
            place(&spread(3, 2), &demand(1), &cs),
            Err(PlacementError::Invalid { .. })
        ));
    }

    fn arb_candidates() -> impl Strategy<Value = Vec<Candidate>> {
        prop::collection::vec((0u8..4, 0u8..3, 0i64..20_000, any::<bool>(), any::<bool>()), 1..12).prop_map(|rows| {
            rows.into_iter()
                .enumerate()
                .map(|(i, (dc, region, cpu, ready, partition))| {
                    let mut c = cluster(&format!("c{i:02}"), &format!("dc{dc}"), &format!("r{region}"), cpu);
                    c.ready = ready || i == 0;
                    if !partition && i != 0 {
                        c.partitions.clear();
                    }
                    c
                })
                .collect()
        })
    }

    fn arb_division() -> impl Strategy<Value = Division> {
        prop_oneof![
            Just(Division::Duplicated),
            Just(Division::Dynamic),
            prop::collection::btree_map((0usize..12).prop_map(|i| format!("c{i:02}")), 0u32..10, 1..6)
                .prop_map(Division::Weighted),
        ]
    }

    proptest! {
        #[test]
        fn divide_sums_exactly_and_gives_nothing_to_zero_weights(total in 0u32..10_000, weights in prop::collection::vec(0u64..1_000_000, 1..20)) {
            let shares = divide(total, &weights);
            if weights.iter().any(|&w| w > 0) {
                prop_assert_eq!(shares.iter().sum::<u32>(), total);
            }
            for (s, w) in shares.iter().zip(&weights) {
                if *w == 0 { prop_assert_eq!(*s, 0); }
            }
        }

        #[test]
        fn placements_honour_division_spread_and_capacity_and_are_deterministic(
            candidates in arb_candidates(),
            division in arb_division(),
            replicas in 0u32..40,
            spread in prop::option::of((0u32..4, 0u32..4)),
            seed in any::<u64>(),
        ) {
            let spread = spread.map(|(min, extra)| Spread { by: SpreadBy::DataCentre, min, max: if extra == 0 { 0 } else { min + extra } });
            let p = Placement::Policy(Policy { spread, division: division.clone(), ..Default::default() });
            let d = demand(replicas);
            let first = place(&p, &d, &candidates);
            // The order of the candidates does not matter.
            let mut shuffled = candidates.clone();
            let n = shuffled.len();
            for i in 0..n { shuffled.swap(i, (seed as usize).wrapping_add(i * 7) % n); }
            prop_assert_eq!(&first, &place(&p, &d, &shuffled));
            let Ok(out) = first else { return Ok(()) };
            prop_assert!(!out.is_empty());
            for a in &out {
                let c = candidates.iter().find(|c| c.name == a.cluster).unwrap();
                prop_assert!(c.ready && !c.partitions.is_empty());
            }
            match &division {
                Division::Duplicated => for a in &out { prop_assert_eq!(a.replicas, replicas); },
                Division::Weighted(w) => {
                    prop_assert_eq!(out.iter().map(|a| a.replicas).sum::<u32>(), replicas);
                    if replicas > 0 { for a in &out { prop_assert!(w.get(&a.cluster).copied().unwrap_or(0) > 0); } }
                }
                Division::Dynamic => {
                    prop_assert_eq!(out.iter().map(|a| a.replicas).sum::<u32>(), replicas);
                    for a in &out {
                        let c = candidates.iter().find(|c| c.name == a.cluster).unwrap();
                        prop_assert!(u64::from(a.replicas) <= c.free.fits(&d.per_replica));
                    }
                }
            }
            if let Some(s) = spread {
                let groups: BTreeSet<&str> = out.iter().map(|a| candidates.iter().find(|c| c.name == a.cluster).unwrap().data_centre.as_str()).collect();
                prop_assert!(s.max == 0 || groups.len() as u32 <= s.max);
                prop_assert!(groups.len() as u32 >= s.min);
            }
        }
    }
}
