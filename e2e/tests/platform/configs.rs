//! The config center through the gateway: drafts, releases, inheritance,
//! four-eyes publishing, secrets, tenant isolation and watches.

use std::time::Duration;

use e2e::Platform;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::isolation::send;

/// A tenant and tokens of two operators, a developer and a viewer in it.
pub(crate) struct Tenant {
    pub(crate) id: String,
    pub(crate) operator: String,
    pub(crate) second_operator: String,
    pub(crate) developer: String,
    pub(crate) viewer: String,
}

async fn token(p: &Platform, tenant: &str, name: &str, role: &str) -> String {
    let (status, created) = send(
        p,
        &p.admin_token,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": name, "tenant_id": tenant, "role": role})),
    )
    .await;
    assert!(status.is_success(), "{created}");
    created["secret"].as_str().unwrap().to_string()
}

pub(crate) async fn tenant(p: &Platform, name: &str) -> Tenant {
    let (status, t) = send(
        p,
        &p.admin_token,
        Method::POST,
        "/api/v1/tenants",
        Some(json!({"name": name})),
    )
    .await;
    assert!(status.is_success(), "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    Tenant {
        operator: token(p, &id, "ops-1", "operator").await,
        second_operator: token(p, &id, "ops-2", "operator").await,
        developer: token(p, &id, "dev", "developer").await,
        viewer: token(p, &id, "viewer", "viewer").await,
        id,
    }
}

pub(crate) async fn config_set(
    p: &Platform,
    t: &Tenant,
    application: &str,
    environment: &str,
    cluster: &str,
) -> String {
    let (status, set) = send(
        p,
        &t.operator,
        Method::POST,
        "/api/v1/config-sets",
        Some(json!({"tenant_id": t.id, "application": application, "environment": environment, "cluster": cluster})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{set}");
    set["id"].as_str().unwrap().to_string()
}

/// Puts an item as `who` on the draft's current version; returns the draft.
pub(crate) async fn put(p: &Platform, who: &str, set: &str, name: &str, body: Value) -> Value {
    let (_, draft) = send(p, who, Method::GET, &format!("/api/v1/config-sets/{set}/draft"), None).await;
    let mut body = body;
    body["version"] = draft["version"].clone();
    let (status, draft) = send(
        p,
        who,
        Method::PUT,
        &format!("/api/v1/config-sets/{set}/draft/items/{name}"),
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{draft}");
    draft
}

pub(crate) async fn publish(p: &Platform, who: &str, set: &str, message: &str) -> (StatusCode, Value) {
    send(
        p,
        who,
        Method::POST,
        &format!("/api/v1/config-sets/{set}/releases"),
        Some(json!({"message": message})),
    )
    .await
}

#[tokio::test]
async fn releases_inherit_by_level_and_diff_roll_back_and_page_through_history() {
    let p = Platform::start().await;
    let t = tenant(&p, "acme").await;
    let base = config_set(&p, &t, "shop", "", "").await;
    let qa = config_set(&p, &t, "shop", "qa", "").await;
    let eu = config_set(&p, &t, "shop", "qa", "eu-1").await;
    put(
        &p,
        &t.developer,
        &base,
        "app.properties",
        json!({"content": "pool=10\ntimeout=5s\nregion=none\n"}),
    )
    .await;
    put(&p, &t.developer, &base, "log.yaml", json!({"content": "level: info\n"})).await;
    put(&p, &t.developer, &qa, "app.properties", json!({"content": "pool=20\n"})).await;
    put(
        &p,
        &t.developer,
        &eu,
        "app.properties",
        json!({"content": "region=eu-1\n"}),
    )
    .await;
    for set in [&base, &qa, &eu] {
        let (status, release) = publish(&p, &t.operator, set, "first").await;
        assert_eq!(status, StatusCode::CREATED, "{release}");
        assert_eq!(release["number"], 1);
    }
    let (status, effective) = send(
        &p,
        &t.viewer,
        Method::GET,
        &format!(
            "/api/v1/tenants/{}/effective-config?application=shop&environment=qa&cluster=eu-1",
            t.id
        ),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{effective}");
    let entries: Vec<(String, String, String, String)> = effective["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["item"].as_str().unwrap().into(),
                e["key"].as_str().unwrap().into(),
                e["value"].as_str().unwrap().into(),
                e["origin"].as_str().unwrap().into(),
            )
        })
        .collect();
    let own = |i: &str, k: &str, v: &str, o: &str| (i.to_string(), k.to_string(), v.to_string(), o.to_string());
    assert_eq!(
        entries,
        vec![
            own("app.properties", "pool", "20", "shop/qa"),
            own("app.properties", "region", "eu-1", "shop/qa/eu-1"),
            own("app.properties", "timeout", "5s", "shop/base"),
            own("log.yaml", "", "level: info\n", "shop/base"),
        ]
    );

    // A second release of the base, then a diff per item and per key.
    put(
        &p,
        &t.developer,
        &base,
        "app.properties",
        json!({"content": "pool=10\ntimeout=9s\nretries=3\n"}),
    )
    .await;
    let (status, _) = publish(&p, &t.operator, &base, "slower").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, diff) = send(
        &p,
        &t.viewer,
        Method::GET,
        &format!("/api/v1/config-sets/{base}/diff?from=1&to=2"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    assert_eq!(diff["items"].as_array().unwrap().len(), 1);
    let keys: Vec<(String, String)> = diff["items"][0]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["key"].as_str().unwrap().into(), k["change"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("region".into(), "removed".into()),
            ("retries".into(), "added".into()),
            ("timeout".into(), "changed".into())
        ]
    );

    // Rollback is a new release with the old items, and the draft follows.
    let (status, rolled) = send(
        &p,
        &t.operator,
        Method::POST,
        &format!("/api/v1/config-sets/{base}/rollback"),
        Some(json!({"to": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{rolled}");
    assert_eq!(
        (rolled["number"].as_u64(), rolled["kind"].as_str()),
        (Some(3), Some("rollback"))
    );
    assert_eq!(rolled["restores"], 1);
    // A release the set does not have is not found; its latest is no rollback.
    for (to, refused) in [(9, StatusCode::NOT_FOUND), (3, StatusCode::CONFLICT)] {
        let (status, problem) = send(
            &p,
            &t.operator,
            Method::POST,
            &format!("/api/v1/config-sets/{base}/rollback"),
            Some(json!({"to": to})),
        )
        .await;
        assert_eq!(status, refused, "rollback to {to}: {problem}");
    }
    let (_, diff) = send(
        &p,
        &t.viewer,
        Method::GET,
        &format!("/api/v1/config-sets/{base}/diff?from=1&to=3"),
        None,
    )
    .await;
    assert!(diff["items"].as_array().unwrap().is_empty(), "{diff}");
    let (_, draft) = send(
        &p,
        &t.viewer,
        Method::GET,
        &format!("/api/v1/config-sets/{base}/draft"),
        None,
    )
    .await;
    assert!(
        draft["items"][0]["content"].as_str().unwrap().contains("timeout=5s"),
        "{draft}"
    );
    assert_eq!(draft["last_editor"], "");

    // History, a page at a time.
    let (_, page) = send(
        &p,
        &t.viewer,
        Method::GET,
        &format!("/api/v1/config-sets/{base}/releases?limit=2"),
        None,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = send(
        &p,
        &t.viewer,
        Method::GET,
        &format!("/api/v1/config-sets/{base}/releases?limit=2&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(rest["items"][0]["number"], 3);
    assert!(rest.get("next_cursor").is_none(), "{rest}");

    // Editing and publishing are separate rights.
    let (status, _) = publish(&p, &t.developer, &qa, "not mine to publish").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(
        &p,
        &t.viewer,
        Method::PUT,
        &format!("/api/v1/config-sets/{qa}/draft/items/x.txt"),
        Some(json!({"version": 0, "content": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_stale_edit_is_a_conflict_and_a_bad_yaml_names_the_item_and_line() {
    let p = Platform::start().await;
    let t = tenant(&p, "acme").await;
    let set = config_set(&p, &t, "shop", "qa", "").await;
    let path = format!("/api/v1/config-sets/{set}/draft/items/app.yaml");
    let (status, first) = send(
        &p,
        &t.developer,
        Method::PUT,
        &path,
        Some(json!({"version": 0, "content": "a: 1\n"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["version"], 1);
    // A second editor still on version 0.
    let (status, conflict) = send(
        &p,
        &t.operator,
        Method::PUT,
        &path,
        Some(json!({"version": 0, "content": "a: 2\n"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    let (status, bad) = send(
        &p,
        &t.developer,
        Method::PUT,
        &path,
        Some(json!({"version": 1, "content": "a: 1\nb:\n  - x\n  c: [\n"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    assert_eq!(bad["field"], "items.app.yaml.content");
    assert!(bad["detail"].as_str().unwrap().contains("line "), "{bad}");
    let (status, bad) = send(&p, &t.developer, Method::PUT, &path, Some(json!({"content": "a: 1\n"}))).await;
    assert_eq!(
        (status, bad["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("version"))
    );
    // A publish names the version it reviewed: a later edit makes it stale.
    let (status, stale) = send(
        &p,
        &t.operator,
        Method::POST,
        &format!("/api/v1/config-sets/{set}/releases"),
        Some(json!({"message": "m", "version": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "version 0 skips the check: {stale}");
    let (status, nothing) = publish(&p, &t.operator, &set, "again").await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing to publish: {nothing}");
}

#[tokio::test]
async fn production_needs_a_second_person_to_publish_and_the_rule_is_per_environment() {
    let p = Platform::start().await;
    let t = tenant(&p, "acme").await;
    let prod = config_set(&p, &t, "shop", "production", "").await;
    let qa = config_set(&p, &t, "shop", "qa", "").await;
    put(&p, &t.operator, &prod, "a.properties", json!({"content": "x=1\n"})).await;
    let (status, refused) = publish(&p, &t.operator, &prod, "mine").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("four-eyes"), "{refused}");
    let (status, release) = publish(&p, &t.second_operator, &prod, "reviewed").await;
    assert_eq!(status, StatusCode::CREATED, "{release}");
    // QA has no such rule by default ...
    put(&p, &t.operator, &qa, "a.properties", json!({"content": "x=1\n"})).await;
    assert_eq!(publish(&p, &t.operator, &qa, "mine").await.0, StatusCode::CREATED);
    // ... until a tenant administrator turns it on.
    let admin = token(&p, &t.id, "admin", "tenant-admin").await;
    let path = format!("/api/v1/tenants/{}/config-environments/qa", t.id);
    assert_eq!(
        send(&p, &t.operator, Method::PUT, &path, Some(json!({"four_eyes": true})))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (status, policy) = send(&p, &admin, Method::PUT, &path, Some(json!({"four_eyes": true}))).await;
    assert_eq!((status, policy["four_eyes"].as_bool()), (StatusCode::OK, Some(true)));
    put(&p, &t.operator, &qa, "a.properties", json!({"content": "x=2\n"})).await;
    assert_eq!(publish(&p, &t.operator, &qa, "mine").await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_secret_is_never_answered_in_full_nor_stored_in_plain_text() {
    let p = Platform::start().await;
    let t = tenant(&p, "acme").await;
    let set = config_set(&p, &t, "shop", "qa", "").await;
    let password = "s3cr3t-Pa55w0rd-that-ends-WXYZ";
    let draft = put(
        &p,
        &t.developer,
        &set,
        "db.properties",
        json!({"content": format!("user=shop\npassword={password}\n"), "secret": true}),
    )
    .await;
    let (_, release) = publish(&p, &t.operator, &set, "db").await;
    put(
        &p,
        &t.developer,
        &set,
        "db.properties",
        json!({"content": format!("user=shop\npassword={password}-2\n"), "secret": true}),
    )
    .await;
    publish(&p, &t.operator, &set, "db 2").await;
    let mut answers = vec![draft, release];
    for path in [
        format!("/api/v1/config-sets/{set}/draft"),
        format!("/api/v1/config-sets/{set}/releases/1"),
        format!("/api/v1/config-sets/{set}/diff?from=1&to=2"),
        format!(
            "/api/v1/tenants/{}/effective-config?application=shop&environment=qa",
            t.id
        ),
    ] {
        let (status, body) = send(&p, &p.admin_token, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        answers.push(body);
    }
    for answer in &answers {
        let text = answer.to_string();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(!text.contains("user=shop"), "{text}");
    }
    assert_eq!(
        answers[0]["items"][0]["masked"], "****XYZ\n",
        "the last four characters of the file"
    );
    let effective = &answers[5]["entries"];
    let pw = effective
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "password")
        .unwrap();
    assert_eq!(
        (pw["value"].as_str(), pw["secret"].as_bool()),
        (Some("****YZ-2"), Some(true))
    );

    // At rest: nothing of it in any column of the draft, the releases or the keys.
    let pool = kernel::db::connect(&p.settings, "configs").await.unwrap();
    let rows: Vec<(Option<String>, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT content, sealed FROM config_draft_items UNION ALL SELECT content, sealed FROM config_release_items",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    for (content, sealed) in rows {
        assert_eq!(content, None);
        let sealed = sealed.unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("s3cr3t"));
        assert!(!sealed.windows(4).any(|w| w == b"user"));
    }
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM tenant_data_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(keys, 1, "one data key for the tenant");
    // Platform administrators can re-seal data keys; nothing is stale here.
    let (status, rewrapped) = send(&p, &p.admin_token, Method::POST, "/api/v1/config-keys/rewrap", None).await;
    assert_eq!((status, rewrapped["rewrapped"].as_u64()), (StatusCode::OK, Some(0)));
}

#[tokio::test]
async fn another_tenants_token_sees_nothing_of_a_tenants_configuration() {
    let p = Platform::start().await;
    let a = tenant(&p, "acme").await;
    let b = tenant(&p, "beta").await;
    let set = config_set(&p, &a, "shop", "qa", "").await;
    put(&p, &a.developer, &set, "a.properties", json!({"content": "x=1\n"})).await;
    publish(&p, &a.operator, &set, "one").await;
    for path in [
        format!("/api/v1/config-sets/{set}"),
        format!("/api/v1/config-sets/{set}/draft"),
        format!("/api/v1/config-sets/{set}/releases"),
        format!("/api/v1/config-sets/{set}/releases/1"),
        format!("/api/v1/config-sets/{set}/diff?from=0&to=1"),
        format!("/api/v1/config-sets/{set}/watch?timeout=0"),
        format!("/api/v1/config-sets/{set}/events"),
        format!(
            "/api/v1/tenants/{}/effective-config?application=shop&environment=qa",
            a.id
        ),
    ] {
        let (status, body) = send(&p, &b.operator, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, body) = send(
        &p,
        &b.developer,
        Method::PUT,
        &format!("/api/v1/config-sets/{set}/draft/items/a.properties"),
        Some(json!({"version": 1, "content": "x=2\n"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(publish(&p, &b.operator, &set, "theirs").await.0, StatusCode::NOT_FOUND);
    let (_, list) = send(&p, &b.viewer, Method::GET, "/api/v1/config-sets", None).await;
    assert!(list["items"].as_array().unwrap().is_empty(), "{list}");
    let (_, list) = send(&p, &a.viewer, Method::GET, "/api/v1/config-sets", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

pub(crate) fn numbers(answer: &Value) -> Vec<u64> {
    answer["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["number"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn watchers_hear_of_each_release_once_and_resume_where_they_left_off() {
    let p = Platform::start().await;
    let t = tenant(&p, "acme").await;
    let set = config_set(&p, &t, "shop", "qa", "").await;
    let release = |n: u32| {
        let (p, t, set) = (&p, &t, set.clone());
        async move {
            put(
                p,
                &t.developer,
                &set,
                "a.properties",
                json!({"content": format!("n={n}\n")}),
            )
            .await;
            assert_eq!(publish(p, &t.operator, &set, "next").await.0, StatusCode::CREATED);
        }
    };
    release(1).await;
    let watch = |after: u64, timeout: u64| format!("/api/v1/config-sets/{set}/watch?after={after}&timeout={timeout}");
    // Behind: answered at once (a 60 s hold would outlast the client's 30 s timeout).
    let (status, answer) = send(&p, &t.viewer, Method::GET, &watch(0, 60), None).await;
    assert_eq!((status, numbers(&answer)), (StatusCode::OK, vec![1]));
    // Up to date: held, then 304.
    let (status, _) = send(&p, &t.viewer, Method::GET, &watch(1, 1), None).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    // A held poll returns when the next release lands.
    let held = {
        let request = p.anonymous(Method::GET, &watch(1, 25)).bearer_auth(&t.viewer).send();
        tokio::spawn(request)
    };
    // The same wait through Server-Sent Events, from the start.
    let mut sse = p
        .anonymous(Method::GET, &format!("/api/v1/config-sets/{set}/events?after=0"))
        .bearer_auth(&t.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), StatusCode::OK);
    release(2).await;
    let answer: Value = held.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(numbers(&answer), vec![2]);
    release(3).await;
    release(4).await;
    // A watcher that was away gets everything it missed, once, in order. A
    // poll arriving before release 4's notification is answered at once from
    // the snapshot it finds ([3]; the service does not hold an answer it has
    // for a read still under way), so it polls again from there as clients do.
    let mut missed = Vec::new();
    while missed.last() != Some(&4) {
        let after = missed.last().copied().unwrap_or(2);
        let (status, answer) = send(&p, &t.viewer, Method::GET, &watch(after, 5), None).await;
        assert_eq!(status, StatusCode::OK, "release 4 never reached a poll after {after}");
        missed.extend(numbers(&answer));
    }
    assert_eq!(missed, vec![3, 4]);

    let mut seen = Vec::new();
    let mut buffer = String::new();
    while seen.last() != Some(&4) {
        let chunk = tokio::time::timeout(Duration::from_secs(20), sse.chunk())
            .await
            .expect("an event within 20 s")
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if let Some(id) = event.lines().find_map(|l| l.strip_prefix("id:")) {
                seen.push(id.trim().parse::<u64>().unwrap());
            }
        }
    }
    assert_eq!(seen, vec![1, 2, 3, 4]);

    // An EventSource reconnecting with Last-Event-ID resumes after it.
    let mut resumed = p
        .anonymous(Method::GET, &format!("/api/v1/config-sets/{set}/events"))
        .bearer_auth(&t.viewer)
        .header("last-event-id", "3")
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();
    while !buffer.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(20), resumed.chunk())
            .await
            .expect("an event within 20 s")
            .unwrap()
            .unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(buffer.contains("id:4") || buffer.contains("id: 4"), "{buffer}");
    assert!(!buffer.contains("id:3") && !buffer.contains("id: 3"), "{buffer}");
}
