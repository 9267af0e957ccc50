//! An application's placement: where federation puts each service and how
//! it survives a lost cluster. One document for the whole application, with
//! optional per-service settings that override it:
//!
//! ```json
//! {"explicit": [{"cluster": "dc1-prod"}, {"cluster": "dc2-dr"}],
//!  "dr_tier": "active-active", "toleration_seconds": 30,
//!  "services": {"db": {"explicit": [{"cluster": "dc1-prod"}],
//!                      "dr_tier": "auto-failover", "singleton": true}}}
//! ```
//!
//! The DR settings (`dr_tier`, `toleration_seconds`, `singleton`, `failback`,
//! `priority`) are federation's binding settings ([`kernel::resilience`]); a
//! service's binding gets the application's placement with the service's
//! overrides laid over it ([`for_service`]). The document is stored with each
//! release and a later release, scale, rollback or restart starts from the
//! latest one, so the tier holds until a release changes it.

use kernel::resilience::{self, Resilience};
use kernel::{Error, Result};
use serde_json::{Map, Value};

/// Parses an application's placement (the whole document, per-service
/// settings included), refusing what federation would refuse later.
///
/// # Errors
/// Names the field (`placement.services.db.dr_tier`).
pub fn parse(text: &str) -> Result<Value> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| Error::invalid("placement", format!("is not JSON: {e}")))?;
    let Some(map) = value.as_object() else {
        return Err(Error::invalid("placement", "must be an object"));
    };
    check_level(map, "placement", true)?;
    if let Some(services) = map.get("services") {
        let Some(services) = services.as_object() else {
            return Err(Error::invalid(
                "placement.services",
                "must map service names to their settings",
            ));
        };
        for (service, settings) in services {
            let at = format!("placement.services.{service}");
            let Some(settings) = settings.as_object() else {
                return Err(Error::invalid(at, "must be an object"));
            };
            check_level(settings, &at, false)?;
        }
    }
    Ok(value)
}

/// Checks one level: exactly one of `explicit`/`policy` (optional for a
/// service, which may take the application's), valid DR settings, and no
/// unknown key.
fn check_level(map: &Map<String, Value>, at: &str, top: bool) -> Result<()> {
    let kinds = ["explicit", "policy"].iter().filter(|k| map.contains_key(**k)).count();
    if kinds > 1 || (top && kinds == 0) {
        return Err(Error::invalid(
            at,
            "must have one of {\"explicit\": [...]} or {\"policy\": {...}}",
        ));
    }
    if let Some(explicit) = map.get("explicit")
        && !explicit.is_array()
    {
        return Err(Error::invalid(format!("{at}.explicit"), "must be a list of clusters"));
    }
    if let Some(policy) = map.get("policy")
        && !policy.is_object()
    {
        return Err(Error::invalid(format!("{at}.policy"), "must be an object"));
    }
    for key in map.keys() {
        let known = ["explicit", "policy"].contains(&key.as_str())
            || resilience::KEYS.contains(&key.as_str())
            || (top && key == "services");
        if !known {
            return Err(Error::invalid(
                format!("{at}.{key}"),
                format!(
                    "is not a placement setting (explicit, policy, {}{})",
                    resilience::KEYS.join(", "),
                    if top { ", services" } else { "" }
                ),
            ));
        }
    }
    let mut settings = Value::Object(
        map.iter()
            .filter(|(k, _)| resilience::KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    Resilience::split_at(&mut settings, at)?;
    Ok(())
}

/// Refuses per-service settings for a service the release does not have.
///
/// # Errors
/// Names `placement.services.<name>` and the services there are.
pub fn check_services<'a>(placement: &Value, services: impl Iterator<Item = &'a String> + Clone) -> Result<()> {
    let Some(given) = placement.get("services").and_then(Value::as_object) else {
        return Ok(());
    };
    for name in given.keys() {
        if !services.clone().any(|s| s == name) {
            let known: Vec<&str> = services.clone().map(String::as_str).collect();
            return Err(Error::invalid(
                format!("placement.services.{name}"),
                format!("is not a service of this release (it has {})", known.join(", ")),
            ));
        }
    }
    Ok(())
}

/// The placement federation gets for `service`'s binding: the
/// application's, with the service's own placement and DR settings laid
/// over it, and no `services` map.
pub fn for_service(placement: &Value, service: &str) -> Value {
    let Some(base) = placement.as_object() else {
        return placement.clone();
    };
    let mut out: Map<String, Value> = base
        .iter()
        .filter(|(k, _)| k.as_str() != "services")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(own) = placement["services"][service].as_object() {
        if own.contains_key("explicit") || own.contains_key("policy") {
            out.remove("explicit");
            out.remove("policy");
        }
        for (k, v) in own {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// The placement federation gets for `service`'s binding in an application
/// of `environment`: [`for_service`], with the singleton failback
/// confirmation the environment asks for. Production always requires an
/// operator's confirmation (or the maintenance window) before a singleton's
/// failback, a planned move with a gap; elsewhere it fails back by itself
/// unless the placement asks for confirmation.
pub fn for_binding(placement: &Value, service: &str, environment: &str) -> Value {
    let mut out = for_service(placement, service);
    if let Some(map) = out.as_object_mut() {
        if environment == "production" {
            map.insert("failback_confirmation".into(), Value::from("required"));
        } else {
            map.entry("failback_confirmation")
                .or_insert_with(|| Value::from("none"));
        }
    }
    out
}

/// The per-cluster replicas an explicit placement fixes (`dc1-prod: 2,
/// dc2-dr: 1`), if it fixes any: such a placement leaves no total to divide,
/// so a scale would change nothing.
pub fn fixed_replicas(placement: &Value) -> Option<String> {
    let fixed: Vec<String> = placement["explicit"]
        .as_array()?
        .iter()
        .filter_map(|t| Some(format!("{}: {}", t["cluster"].as_str()?, t.get("replicas")?)))
        .collect();
    (!fixed.is_empty()).then(|| fixed.join(", "))
}

/// Every cluster any service may be placed on, as one placement: a policy
/// when any service places by policy (it may go anywhere), else the union
/// of the explicit lists. NodePorts are drawn for all of them.
pub fn reach(placement: &Value) -> Value {
    let services = placement["services"].as_object();
    let levels = std::iter::once(placement).chain(services.into_iter().flat_map(|s| s.values()));
    let mut clusters: Vec<Value> = Vec::new();
    for level in levels {
        if level.get("policy").is_some() {
            return serde_json::json!({"policy": {}});
        }
        if let Some(list) = level["explicit"].as_array() {
            for target in list {
                if !clusters.iter().any(|c| c["cluster"] == target["cluster"]) {
                    clusters.push(serde_json::json!({"cluster": target["cluster"]}));
                }
            }
        }
    }
    serde_json::json!({ "explicit": clusters })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn dr_settings_are_taken_for_the_application_and_per_service() {
        let text = json!({"explicit": [{"cluster": "a"}, {"cluster": "b"}], "dr_tier": "active-active",
            "services": {"db": {"explicit": [{"cluster": "a"}], "dr_tier": "auto-failover", "singleton": true}}})
        .to_string();
        let p = parse(&text).unwrap();
        assert_eq!(
            for_service(&p, "web"),
            json!({"explicit": [{"cluster": "a"}, {"cluster": "b"}], "dr_tier": "active-active"})
        );
        assert_eq!(
            for_service(&p, "db"),
            json!({"explicit": [{"cluster": "a"}], "dr_tier": "auto-failover", "singleton": true})
        );
        assert_eq!(reach(&p), json!({"explicit": [{"cluster": "a"}, {"cluster": "b"}]}));
        // A service may keep the application's clusters and change only its tier.
        let p = parse(&json!({"policy": {}, "services": {"db": {"singleton": true}}}).to_string()).unwrap();
        assert_eq!(for_service(&p, "db"), json!({"policy": {}, "singleton": true}));
        // Production always confirms a singleton's failback; elsewhere only when asked.
        assert_eq!(for_binding(&p, "db", "production")["failback_confirmation"], "required");
        assert_eq!(for_binding(&p, "db", "test")["failback_confirmation"], "none");
        let asked = json!({"policy": {}, "failback_confirmation": "none"});
        assert_eq!(
            for_binding(&asked, "db", "production")["failback_confirmation"],
            "required"
        );
        let asked = json!({"policy": {}, "failback_confirmation": "required"});
        assert_eq!(for_binding(&asked, "db", "test")["failback_confirmation"], "required");
        assert_eq!(reach(&p), json!({"policy": {}}));
        assert_eq!(fixed_replicas(&p), None);
        let fixed = json!({"explicit": [{"cluster": "a", "replicas": 2}, {"cluster": "b", "replicas": 1}]});
        assert_eq!(fixed_replicas(&fixed).as_deref(), Some("a: 2, b: 1"));
    }

    #[test]
    fn a_bad_placement_names_the_field() {
        let field = |v: Value| parse(&v.to_string()).unwrap_err().field().map(str::to_string);
        assert_eq!(field(json!({"dr_tier": "auto-failover"})).as_deref(), Some("placement"));
        assert_eq!(
            field(json!({"policy": {}, "dr_tier": "sometimes"})).as_deref(),
            Some("placement.dr_tier")
        );
        assert_eq!(
            field(json!({"policy": {}, "services": {"db": {"toleration_seconds": -1}}})).as_deref(),
            Some("placement.services.db.toleration_seconds")
        );
        assert_eq!(
            field(json!({"policy": {}, "services": {"db": {"policy": {}, "explicit": []}}})).as_deref(),
            Some("placement.services.db")
        );
        assert_eq!(
            field(json!({"policy": {}, "services": {"db": {"services": {}}}})).as_deref(),
            Some("placement.services.db.services")
        );
        assert_eq!(
            field(json!({"policy": {}, "region": "x"})).as_deref(),
            Some("placement.region")
        );
        let p = parse(&json!({"policy": {}, "services": {"cache": {}}}).to_string()).unwrap();
        let services = ["web".to_string(), "db".to_string()];
        assert_eq!(
            check_services(&p, services.iter()).unwrap_err().field(),
            Some("placement.services.cache")
        );
    }
}
