//! Gray releases by labels through the gateway: only the watchers whose
//! labels match get the gray release; promote gives it to everyone, abandon
//! sends its watchers back; the instances view shows who holds what; four
//! eyes apply; another tenant sees nothing.

use std::time::Duration;

use e2e::Platform;
use kernel::testkit::eventually;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::configs::{Tenant, config_set, numbers, publish, put, tenant};
use crate::isolation::send;

/// A watcher that names itself and its labels on the long poll.
struct Watcher {
    instance: &'static str,
    /// `k=v,k=v`, already URL-encoded.
    labels: &'static str,
}

const CANARY: Watcher = Watcher {
    instance: "web-1",
    labels: "zone%3Da%2Ccanary%3Dtrue",
};
const STEADY: Watcher = Watcher {
    instance: "web-2",
    labels: "zone%3Db",
};

impl Watcher {
    fn path(&self, set: &str, after: u64, timeout: u64) -> String {
        format!(
            "/api/v1/config-sets/{set}/watch?after={after}&timeout={timeout}&instance={}&labels={}",
            self.instance, self.labels
        )
    }

    /// A long poll: (status, release numbers, kinds).
    async fn poll(
        &self,
        p: &Platform,
        t: &Tenant,
        set: &str,
        after: u64,
        timeout: u64,
    ) -> (StatusCode, Vec<u64>, Vec<String>) {
        let (status, answer) = send(p, &t.viewer, Method::GET, &self.path(set, after, timeout), None).await;
        if status != StatusCode::OK {
            return (status, Vec::new(), Vec::new());
        }
        let kinds = answer["releases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap().to_string())
            .collect();
        (status, numbers(&answer), kinds)
    }

    /// A long poll held in the background.
    fn hold(
        &self,
        p: &Platform,
        t: &Tenant,
        set: &str,
        after: u64,
    ) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
        tokio::spawn(
            p.anonymous(Method::GET, &self.path(set, after, 25))
                .bearer_auth(&t.viewer)
                .send(),
        )
    }
}

async fn held_numbers(held: tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>) -> Vec<u64> {
    let answer: Value = held.await.unwrap().unwrap().json().await.unwrap();
    numbers(&answer)
}

/// The instances view as `instance -> (release, gray)`, once it shows `want`.
async fn instances_show(p: &Platform, t: &Tenant, set: &str, want: &[(&str, u64, bool)]) -> Value {
    eventually(Duration::from_secs(10), "the instances view", || async {
        let (status, page) = send(
            p,
            &t.viewer,
            Method::GET,
            &format!("/api/v1/config-sets/{set}/instances"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        want.iter()
            .all(|(name, release, gray)| {
                items
                    .iter()
                    .any(|i| i["instance"] == *name && i["release_number"] == *release && i["gray"] == *gray)
            })
            .then(|| page.clone())
    })
    .await
}

async fn publish_gray(p: &Platform, who: &str, set: &str, body: Value) -> (StatusCode, Value) {
    send(
        p,
        who,
        Method::POST,
        &format!("/api/v1/config-sets/{set}/gray-releases"),
        Some(body),
    )
    .await
}

async fn decide(p: &Platform, who: &str, set: &str, number: u64, verb: &str) -> (StatusCode, Value) {
    send(
        p,
        who,
        Method::POST,
        &format!("/api/v1/config-sets/{set}/gray-releases/{number}/{verb}"),
        None,
    )
    .await
}

#[tokio::test]
async fn a_gray_release_reaches_only_matching_watchers_then_everyone_on_promote_or_goes_back_on_abandon() {
    let p = Platform::start().await;
    let t = tenant(&p, "acme").await;
    let set = config_set(&p, &t, "shop", "qa", "").await;
    put(
        &p,
        &t.developer,
        &set,
        "app.properties",
        json!({"content": "pool=10\n"}),
    )
    .await;
    assert_eq!(publish(&p, &t.operator, &set, "first").await.0, StatusCode::CREATED);
    // Both watchers start with release 1 and register.
    for w in [&CANARY, &STEADY] {
        assert_eq!(w.poll(&p, &t, &set, 0, 5).await.1, vec![1]);
    }
    instances_show(&p, &t, &set, &[("web-1", 1, false), ("web-2", 1, false)]).await;

    let canary = CANARY.hold(&p, &t, &set, 1);
    let steady = STEADY.hold(&p, &t, &set, 1);
    put(
        &p,
        &t.developer,
        &set,
        "app.properties",
        json!({"content": "pool=20\n"}),
    )
    .await;
    let (status, gray) = publish_gray(
        &p,
        &t.operator,
        &set,
        json!({"message": "bigger pool for the canaries", "selector": "zone=a,canary=true",
               "targets": [{"cluster": "eu-1"}, {"cluster": "us-1", "partition": "blue"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{gray}");
    assert_eq!(
        (gray["number"].as_u64(), gray["kind"].as_str()),
        (Some(2), Some("gray"))
    );
    assert_eq!(gray["gray"]["state"], "active");
    assert_eq!(gray["gray"]["base"], 1);
    assert_eq!(gray["gray"]["selector"], "zone=a,canary=true");
    assert_eq!(
        gray["gray"]["targets"][1],
        json!({"cluster": "us-1", "partition": "blue"})
    );

    // The canary's held poll returns with the gray release.
    assert_eq!(held_numbers(canary).await, vec![2]);
    // The other one's did not: once the canary was told, a fresh poll of its
    // own still has nothing after 1.
    assert_eq!(STEADY.poll(&p, &t, &set, 1, 1).await.0, StatusCode::NOT_MODIFIED);
    assert!(!steady.is_finished());
    // The gray watcher polling again holds too (it has its release).
    assert_eq!(CANARY.poll(&p, &t, &set, 2, 1).await.0, StatusCode::NOT_MODIFIED);
    instances_show(&p, &t, &set, &[("web-1", 2, true), ("web-2", 1, false)]).await;
    // Everyone else's configuration is still release 1's.
    let (_, effective) = send(
        &p,
        &t.viewer,
        Method::GET,
        &format!(
            "/api/v1/tenants/{}/effective-config?application=shop&environment=qa",
            t.id
        ),
        None,
    )
    .await;
    assert_eq!(effective["entries"][0]["origin_release"], 1, "{effective}");
    // No full release while the gray one is in flight.
    let (status, problem) = publish(&p, &t.operator, &set, "meanwhile").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    // Promote: the other watcher gets it; the canary already has it.
    let (status, promoted) = decide(&p, &t.operator, &set, 2, "promote").await;
    assert_eq!(status, StatusCode::OK, "{promoted}");
    assert_eq!(promoted["gray"]["state"], "promoted");
    assert_eq!(held_numbers(steady).await, vec![2]);
    assert_eq!(CANARY.poll(&p, &t, &set, 2, 1).await.0, StatusCode::NOT_MODIFIED);
    let (_, set_now) = send(&p, &t.viewer, Method::GET, &format!("/api/v1/config-sets/{set}"), None).await;
    assert_eq!(set_now["latest_release"], 2);
    instances_show(&p, &t, &set, &[("web-1", 2, false), ("web-2", 2, false)]).await;

    // A second gray release, abandoned: the canary goes back to release 2.
    put(
        &p,
        &t.developer,
        &set,
        "app.properties",
        json!({"content": "pool=99\n"}),
    )
    .await;
    let (status, gray) = publish_gray(
        &p,
        &t.operator,
        &set,
        json!({"message": "too big?", "selector": "zone in (a,c)"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{gray}");
    assert_eq!(gray["number"], 3);
    let (status, _, kinds) = CANARY.poll(&p, &t, &set, 2, 5).await;
    assert_eq!((status, kinds), (StatusCode::OK, vec!["gray".to_string()]));
    let canary = CANARY.hold(&p, &t, &set, 3);
    let (status, abandoned) = decide(&p, &t.operator, &set, 3, "abandon").await;
    assert_eq!(status, StatusCode::OK, "{abandoned}");
    assert_eq!(abandoned["gray"]["state"], "abandoned");
    assert_eq!(held_numbers(canary).await, vec![2]);
    assert_eq!(STEADY.poll(&p, &t, &set, 2, 1).await.0, StatusCode::NOT_MODIFIED);
    instances_show(&p, &t, &set, &[("web-1", 2, false)]).await;
    // Abandoned twice, or promoted after: there is no gray release in flight.
    assert_eq!(
        decide(&p, &t.operator, &set, 3, "promote").await.0,
        StatusCode::NOT_FOUND
    );
    // The draft still holds the withdrawn change, to fix and publish again.
    let (status, release) = publish(&p, &t.second_operator, &set, "after all").await;
    assert_eq!(
        (status, release["number"].as_u64()),
        (StatusCode::CREATED, Some(4)),
        "{release}"
    );
    // Rolling back to an abandoned gray release is refused, naming `to`.
    let (status, problem) = send(
        &p,
        &t.operator,
        Method::POST,
        &format!("/api/v1/config-sets/{set}/rollback"),
        Some(json!({"to": 3})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");

    // The rules, shown.
    let (status, rules) = send(
        &p,
        &t.viewer,
        Method::GET,
        &format!("/api/v1/config-sets/{set}/gray-releases"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rules}");
    let states: Vec<(u64, String)> = rules["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["number"].as_u64().unwrap(), r["state"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(states, vec![(2, "promoted".to_string()), (3, "abandoned".to_string())]);
}

#[tokio::test]
async fn a_gray_release_in_production_needs_a_second_person_to_publish_and_to_promote() {
    let p = Platform::start().await;
    let t = tenant(&p, "acme").await;
    let set = config_set(&p, &t, "shop", "production", "").await;
    put(&p, &t.operator, &set, "app.properties", json!({"content": "pool=10\n"})).await;
    assert_eq!(
        publish(&p, &t.second_operator, &set, "first").await.0,
        StatusCode::CREATED
    );
    put(&p, &t.operator, &set, "app.properties", json!({"content": "pool=20\n"})).await;
    let body = json!({"message": "canary", "selector": "canary"});
    let (status, problem) = publish_gray(&p, &t.operator, &set, body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    // A developer may edit but not publish, gray or not.
    let (status, _) = publish_gray(&p, &t.developer, &set, body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, gray) = publish_gray(&p, &t.second_operator, &set, body).await;
    assert_eq!(status, StatusCode::CREATED, "{gray}");
    // The editor cannot promote their own change either.
    let (status, problem) = decide(&p, &t.operator, &set, 2, "promote").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(
        decide(&p, &t.developer, &set, 2, "promote").await.0,
        StatusCode::FORBIDDEN
    );
    let (status, promoted) = decide(&p, &t.second_operator, &set, 2, "promote").await;
    assert_eq!(status, StatusCode::OK, "{promoted}");
}

#[tokio::test]
async fn gray_rules_and_instances_are_the_tenants_own_and_bad_input_names_the_field() {
    let p = Platform::start().await;
    let t = tenant(&p, "acme").await;
    let other = tenant(&p, "globex").await;
    let set = config_set(&p, &t, "shop", "qa", "").await;
    put(
        &p,
        &t.developer,
        &set,
        "app.properties",
        json!({"content": "pool=10\n"}),
    )
    .await;
    // Before any full release there is nothing for the others to keep.
    let (status, problem) = publish_gray(&p, &t.operator, &set, json!({"message": "m", "selector": "a=b"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(publish(&p, &t.operator, &set, "first").await.0, StatusCode::CREATED);
    assert_eq!(CANARY.poll(&p, &t, &set, 0, 5).await.1, vec![1]);
    instances_show(&p, &t, &set, &[("web-1", 1, false)]).await;
    put(
        &p,
        &t.developer,
        &set,
        "app.properties",
        json!({"content": "pool=20\n"}),
    )
    .await;

    for (body, field) in [
        (json!({"message": "m", "selector": "zone in a"}), "selector"),
        (json!({"message": "m"}), "selector"),
        (
            json!({"message": "m", "selector": "a=b", "targets": [{"cluster": "Not A Name"}]}),
            "targets[0].cluster",
        ),
        (json!({"message": "", "selector": "a=b"}), "message"),
    ] {
        let (status, problem) = publish_gray(&p, &t.operator, &set, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }
    let (status, problem) = send(
        &p,
        &t.viewer,
        Method::GET,
        &format!("/api/v1/config-sets/{set}/watch?after=1&timeout=1&labels=zone"),
        None,
    )
    .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("labels")),
        "{problem}"
    );

    let (status, gray) = publish_gray(&p, &t.operator, &set, json!({"message": "m", "selector": "zone=a"})).await;
    assert_eq!(status, StatusCode::CREATED, "{gray}");
    // Another tenant's operator: none of it exists.
    for (method, path) in [
        (Method::GET, format!("/api/v1/config-sets/{set}/instances")),
        (Method::GET, format!("/api/v1/config-sets/{set}/gray-releases")),
        (
            Method::POST,
            format!("/api/v1/config-sets/{set}/gray-releases/2/promote"),
        ),
        (
            Method::POST,
            format!("/api/v1/config-sets/{set}/gray-releases/2/abandon"),
        ),
        (
            Method::GET,
            format!("/api/v1/config-sets/{set}/watch?after=0&timeout=1&instance=spy&labels=zone%3Da"),
        ),
    ] {
        let (status, body) = send(&p, &other.operator, method, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, _) = publish_gray(&p, &other.operator, &set, json!({"message": "m", "selector": "a=b"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A viewer of the tenant reads, but cannot decide.
    assert_eq!(decide(&p, &t.viewer, &set, 2, "abandon").await.0, StatusCode::FORBIDDEN);
    // The spy was never recorded.
    let page = instances_show(&p, &t, &set, &[("web-1", 1, false)]).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
}
