//! The resources quotas limit, and lists of amounts of them.

use std::collections::BTreeMap;

use kernel::quantity::{Format, Quantity};
use kernel::{Error, Result};

/// A resource a quota can limit, named as in a Kubernetes ResourceQuota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// `requests.cpu`
    RequestsCpu,
    /// `requests.memory`
    RequestsMemory,
    /// `limits.cpu`
    LimitsCpu,
    /// `limits.memory`
    LimitsMemory,
    /// `requests.storage`
    RequestsStorage,
    /// `pods`
    Pods,
    /// `persistentvolumeclaims`
    PersistentVolumeClaims,
    /// `services`
    Services,
    /// `services.loadbalancers`
    LoadBalancers,
    /// `services.nodeports`
    NodePorts,
    /// `configmaps`
    ConfigMaps,
    /// `secrets`
    Secrets,
    /// `requests.nvidia.com/gpu`, called `gpu` in the API.
    Gpu,
}

/// Each resource with its name, in `kernel::quantity::QUOTA_RESOURCES`'
/// order: the API document lists the same names (a test holds them equal).
const ALL: [(Resource, &str); 13] = {
    use kernel::quantity::QUOTA_RESOURCES as N;
    [
        (Resource::RequestsCpu, N[0]),
        (Resource::RequestsMemory, N[1]),
        (Resource::LimitsCpu, N[2]),
        (Resource::LimitsMemory, N[3]),
        (Resource::RequestsStorage, N[4]),
        (Resource::Pods, N[5]),
        (Resource::PersistentVolumeClaims, N[6]),
        (Resource::Services, N[7]),
        (Resource::LoadBalancers, N[8]),
        (Resource::NodePorts, N[9]),
        (Resource::ConfigMaps, N[10]),
        (Resource::Secrets, N[11]),
        (Resource::Gpu, N[12]),
    ]
};

impl Resource {
    /// The API and stored name.
    pub fn as_str(&self) -> &'static str {
        ALL.iter()
            .find(|(r, _)| r == self)
            .map(|(_, n)| *n)
            .expect("every resource is listed")
    }

    /// Parses a resource name.
    pub fn parse(name: &str) -> Option<Self> {
        ALL.iter().find(|(_, n)| *n == name).map(|(r, _)| *r)
    }

    /// Counted resources are whole numbers (pods, services ...).
    pub fn is_count(&self) -> bool {
        !matches!(
            self,
            Self::RequestsCpu | Self::RequestsMemory | Self::LimitsCpu | Self::LimitsMemory | Self::RequestsStorage
        )
    }

    /// An amount of this resource from milli-units, printing as people write
    /// it: bytes in binary units (`4Gi`), the rest in decimal.
    pub fn amount(&self, milli: i64) -> Quantity {
        match self {
            Self::RequestsMemory | Self::LimitsMemory | Self::RequestsStorage => {
                Quantity::from_milli_as(milli, Format::BinarySi)
            }
            _ => Quantity::from_milli(milli),
        }
    }

    /// The name in a Kubernetes ResourceQuota.
    pub fn kubernetes_name(&self) -> &'static str {
        match self {
            Self::Gpu => "requests.nvidia.com/gpu",
            other => other.as_str(),
        }
    }
}

/// Amounts per resource. Zero amounts are kept: a hard limit of zero forbids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceList(pub BTreeMap<Resource, Quantity>);

impl ResourceList {
    /// Parses `{name: quantity}`; errors name `<field>.<resource>`.
    ///
    /// # Errors
    /// An unknown resource, a malformed or negative amount, or a fractional count.
    pub fn parse<'a>(field: &str, raw: impl IntoIterator<Item = (&'a String, &'a String)>) -> Result<Self> {
        let mut list = BTreeMap::new();
        for (name, amount) in raw {
            let at = format!("{field}.{name}");
            let resource = Resource::parse(name).ok_or_else(|| {
                Error::invalid(
                    &at,
                    format!(
                        "is not a resource; use one of {}",
                        ALL.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            let q = Quantity::parse(&at, amount)?;
            if q.is_negative() {
                return Err(Error::invalid(&at, "must not be negative"));
            }
            if resource.is_count() && q.milli() % 1000 != 0 {
                return Err(Error::invalid(&at, "must be a whole number"));
            }
            list.insert(resource, q);
        }
        Ok(Self(list))
    }

    /// From stored `(resource, milli)` pairs, skipping names no longer known.
    pub fn from_milli(pairs: impl IntoIterator<Item = (String, i64)>) -> Self {
        Self(
            pairs
                .into_iter()
                .filter_map(|(r, m)| {
                    let resource = Resource::parse(&r)?;
                    Some((resource, resource.amount(m)))
                })
                .collect(),
        )
    }

    /// `{name: canonical quantity}` for the API.
    pub fn to_strings(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(r, q)| (r.as_str().to_string(), q.to_string()))
            .collect()
    }

    /// `{name: milli}` for storage.
    pub fn to_milli(&self) -> BTreeMap<String, i64> {
        self.0
            .iter()
            .map(|(r, q)| (r.as_str().to_string(), q.milli()))
            .collect()
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document's list is the parser's: every name parses, the counted
    /// ones are counts, and nothing else is a resource.
    #[test]
    fn kernels_list_is_the_resources() {
        for (i, (resource, name)) in ALL.iter().enumerate() {
            assert_eq!(kernel::quantity::QUOTA_RESOURCES[i], *name);
            assert_eq!(Resource::parse(name), Some(*resource));
            assert_eq!(
                resource.is_count(),
                kernel::quantity::COUNTED_RESOURCES.contains(name),
                "{name}"
            );
        }
    }

    fn raw(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<ResourceList> {
        let owned = raw(pairs);
        ResourceList::parse("quota", owned.iter().map(|(a, b)| (a, b)))
    }

    #[test]
    fn a_list_parses_and_prints_canonically() {
        let list = parse(&[("requests.cpu", "1.5"), ("requests.memory", "2048Mi"), ("pods", "10")]).unwrap();
        assert_eq!(
            list.to_strings(),
            [("pods", "10"), ("requests.cpu", "1500m"), ("requests.memory", "2Gi")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        );
    }

    #[test]
    fn bad_entries_name_the_resource_field() {
        assert_eq!(parse(&[("cpu", "1")]).unwrap_err().field(), Some("quota.cpu"));
        assert_eq!(
            parse(&[("requests.cpu", "lots")]).unwrap_err().field(),
            Some("quota.requests.cpu")
        );
        assert_eq!(
            parse(&[("requests.cpu", "-1")]).unwrap_err().field(),
            Some("quota.requests.cpu")
        );
        assert_eq!(parse(&[("pods", "1.5")]).unwrap_err().field(), Some("quota.pods"));
    }

    #[test]
    fn every_resource_name_round_trips() {
        for (r, n) in ALL {
            assert_eq!(Resource::parse(n), Some(r));
            assert_eq!(r.as_str(), n);
        }
    }
}
