//! LDAP login against a real slapd with a seeded directory.

use e2e::{Platform, Slapd};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn ldap_login(p: &Platform, user: &str, password: &str) -> (StatusCode, Value, Option<String>) {
    let r = p
        .anonymous(Method::POST, "/api/v1/login/ldap")
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let cookie = r
        .headers()
        .get("set-cookie")
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string());
    (status, r.json().await.unwrap(), cookie)
}

async fn whoami(p: &Platform, cookie: &str) -> Value {
    p.anonymous(Method::GET, "/api/v1/session")
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn directory_users_log_in_and_groups_map_to_roles_at_every_login() {
    let slapd = Slapd::start();
    let p = Platform::start_with(|g| g.directory = Some(slapd.settings())).await;
    let tenant: Value = p
        .admin(Method::POST, "/api/v1/tenants")
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tid = tenant["id"].as_str().unwrap();
    let grant =
        json!({"kind": "group", "subject": "ldap:cn=acme-ops,ou=groups,dc=acme,dc=example", "role": "operator"});
    assert_eq!(
        p.admin(Method::POST, &format!("/api/v1/tenants/{tid}/members"))
            .json(&grant)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );

    let (status, body, cookie) = ldap_login(&p, "jdoe", "jdoe-password").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let me = whoami(&p, &cookie.unwrap()).await;
    assert_eq!(me["subject"], "ldap:jdoe");
    assert_eq!(me["platform_admin"], false);
    assert_eq!(me["break_glass"], false, "only the local account is break-glass");
    assert_eq!(
        me["memberships"],
        json!([[tid, "operator"]]),
        "acme-ops maps to operator in acme"
    );

    let (_, _, admin_cookie) = ldap_login(&p, "asmith", "asmith-password").await;
    assert_eq!(
        whoami(&p, &admin_cookie.unwrap()).await["platform_admin"],
        true,
        "platform-admins group"
    );

    // The directory drops jdoe from acme-ops: the next login has no role there.
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(&slapd.url).await.unwrap();
    ldap3::drive!(conn);
    ldap.simple_bind(Slapd::ADMIN_DN, Slapd::ADMIN_PASSWORD)
        .await
        .unwrap()
        .success()
        .unwrap();
    let members = std::collections::HashSet::from(["uid=jdoe,ou=people,dc=acme,dc=example"]);
    ldap.modify(
        "cn=acme-ops,ou=groups,dc=acme,dc=example",
        vec![ldap3::Mod::Delete("member", members)],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    let (_, _, cookie) = ldap_login(&p, "jdoe", "jdoe-password").await;
    assert_eq!(whoami(&p, &cookie.unwrap()).await["memberships"], json!([]));
}

#[tokio::test]
async fn wrong_unknown_disabled_and_injected_logins_are_refused() {
    let slapd = Slapd::start();
    let p = Platform::start_with(|g| g.directory = Some(slapd.settings())).await;
    for (user, password) in [
        ("jdoe", "wrong"),
        ("nobody", "jdoe-password"),
        ("gone", "gone-password"),
        ("jdoe", ""),
        ("*", "jdoe-password"),
        ("jdoe)(uid=*", "jdoe-password"),
        ("*)(|(uid=*", "jdoe-password"),
        ("j*", "jdoe-password"),
    ] {
        let (status, body, cookie) = ldap_login(&p, user, password).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{user:?}: {body}");
        assert!(cookie.is_none());
    }
    // A NUL never reaches the directory: the request is malformed (#14 item 10).
    let (status, body, cookie) = ldap_login(&p, "jdoe\u{0}", "jdoe-password").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "username", "{body}");
    assert!(cookie.is_none());
    // Special characters in a real name are escaped, not refused.
    let (status, body, _) = ldap_login(&p, "o'brien (ops)*", "obrien-password").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let audit: Value = p
        .admin(Method::GET, "/api/v1/audit?action=POST%20/api/v1/login/ldap")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let results: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(results.iter().filter(|r| **r == "401").count(), 8);
    assert_eq!(results.iter().filter(|r| **r == "200").count(), 1);
}

#[tokio::test]
async fn starttls_and_ldaps_trust_the_company_ca_and_nothing_else() {
    let slapd = Slapd::start_with_tls();
    let ca_file = slapd.ca_file.clone().unwrap();
    let starttls = gateway::directory::DirectorySettings {
        starttls: true,
        ca_file: Some(ca_file.clone()),
        ..slapd.settings()
    };
    let ldaps = gateway::directory::DirectorySettings {
        url: slapd.ldaps_url.clone().unwrap(),
        ca_file: Some(ca_file),
        ..slapd.settings()
    };
    for settings in [starttls, ldaps] {
        let url = settings.url.clone();
        let p = Platform::start_with(|g| g.directory = Some(settings)).await;
        let (status, body, cookie) = ldap_login(&p, "jdoe", "jdoe-password").await;
        assert_eq!(status, StatusCode::OK, "{url}: {body}");
        assert_eq!(whoami(&p, &cookie.unwrap()).await["subject"], "ldap:jdoe");
    }
    // Without the company CA the directory's certificate is not trusted:
    // the login fails as unavailable, it never goes through unencrypted.
    let untrusted = [
        gateway::directory::DirectorySettings {
            starttls: true,
            ..slapd.settings()
        },
        gateway::directory::DirectorySettings {
            url: slapd.ldaps_url.clone().unwrap(),
            ..slapd.settings()
        },
    ];
    for settings in untrusted {
        let url = settings.url.clone();
        let p = Platform::start_with(|g| g.directory = Some(settings)).await;
        let (status, body, cookie) = ldap_login(&p, "jdoe", "jdoe-password").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{url}: {body}");
        assert!(cookie.is_none());
    }
}

/// Grants `group` the operator role in a new tenant; returns the tenant's id.
async fn grant_group(p: &Platform, tenant: &str, group: &str) -> String {
    let tenant: Value = p
        .admin(Method::POST, "/api/v1/tenants")
        .json(&json!({"name": tenant}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tid = tenant["id"].as_str().unwrap().to_string();
    let grant = json!({"kind": "group", "subject": group, "role": "operator"});
    let r = p
        .admin(Method::POST, &format!("/api/v1/tenants/{tid}/members"))
        .json(&grant)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    tid
}

#[tokio::test]
async fn the_subject_lockout_and_posix_groups_follow_the_directory_entry_not_the_typed_login() {
    let slapd = Slapd::start();
    let p = Platform::start_with(|g| g.directory = Some(slapd.settings())).await;
    // jdoe is in the posixGroup developers by memberUid.
    let tid = grant_group(&p, "devs", "ldap:cn=developers,ou=groups,dc=acme,dc=example").await;
    for typed in ["JDOE", " jdoe", "JDoe "] {
        let (status, body, cookie) = ldap_login(&p, typed, "jdoe-password").await;
        assert_eq!(status, StatusCode::OK, "{typed:?}: {body}");
        assert_eq!(body["subject"], "ldap:jdoe", "{typed:?}");
        let me = whoami(&p, &cookie.unwrap()).await;
        assert_eq!(me["subject"], "ldap:jdoe");
        assert_eq!(
            me["memberships"],
            json!([[tid, "operator"]]),
            "{typed:?}: memberUid is matched against the entry's uid"
        );
    }
    // One lockout for every spelling of the login.
    for n in 0..5 {
        let (status, body, _) = ldap_login(&p, if n % 2 == 0 { "jdoe" } else { "Jdoe" }, "wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    for typed in ["JDOE", "jdoe", " jdoe "] {
        let (status, body, cookie) = ldap_login(&p, typed, "jdoe-password").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{typed:?}: {body}");
        assert!(cookie.is_none());
    }
}

#[tokio::test]
async fn an_active_directory_layout_logs_in_by_its_login_attribute() {
    let slapd = Slapd::start();
    // As in Active Directory, the login is not the RDN's attribute: here the
    // entry's `cn` ("Anna Smith") is not the login, `uid` (asmith) is; a
    // directory where the login attribute is another one (employeeNumber
    // standing in for sAMAccountName) gives that attribute's value.
    let settings = gateway::directory::DirectorySettings {
        user_filter: "(&(objectClass=inetOrgPerson)(employeeNumber={login}))".into(),
        login_attribute: "employeeNumber".into(),
        ..slapd.settings()
    };
    let p = Platform::start_with(|g| g.directory = Some(settings)).await;
    let (status, body, cookie) = ldap_login(&p, "e1002", "asmith-password").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["subject"], "ldap:E1002",
        "the directory's spelling, not the typed one"
    );
    let me = whoami(&p, &cookie.unwrap()).await;
    assert_eq!(me["platform_admin"], true);
}

/// A client whose requests come from `address` (a loopback address of its
/// own, so its lockout counters are its own).
fn client_from(address: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(address))
        .build()
        .unwrap()
}

async fn concurrent_logins(p: &Platform, from: [u8; 4], logins: Vec<(String, &'static str)>) -> Vec<StatusCode> {
    let client = client_from(from);
    let mut attempts = tokio::task::JoinSet::new();
    for (user, password) in logins {
        let request = client
            .post(format!("{}/api/v1/login/ldap", p.url))
            .json(&json!({"username": user, "password": password}));
        attempts.spawn(async move { request.send().await.unwrap().status() });
    }
    attempts.join_all().await
}

#[tokio::test]
async fn the_lockout_holds_under_concurrent_attempts() {
    let slapd = Slapd::start();
    let p = Platform::start_with(|g| g.directory = Some(slapd.settings())).await;
    let count = |statuses: &[StatusCode], status| statuses.iter().filter(|s| **s == status).count();

    // 30 wrong passwords for one user at once: only 5 reach the directory.
    let statuses = concurrent_logins(&p, [127, 0, 0, 2], vec![("jdoe".to_string(), "wrong"); 30]).await;
    assert_eq!(count(&statuses, StatusCode::UNAUTHORIZED), 5, "{statuses:?}");
    assert_eq!(count(&statuses, StatusCode::TOO_MANY_REQUESTS), 25, "{statuses:?}");

    // 30 wrong passwords for 30 users from one address at once: 20 are checked.
    let users = (0..30).map(|n| (format!("nobody{n}"), "wrong")).collect();
    let statuses = concurrent_logins(&p, [127, 0, 0, 3], users).await;
    assert_eq!(count(&statuses, StatusCode::UNAUTHORIZED), 20, "{statuses:?}");
    assert_eq!(count(&statuses, StatusCode::TOO_MANY_REQUESTS), 10, "{statuses:?}");

    // Successes are not held against the user or the address: more logins
    // than either limit, one after the other, all succeed.
    let client = client_from([127, 0, 0, 4]);
    for n in 0..25 {
        let r = client
            .post(format!("{}/api/v1/login/ldap", p.url))
            .json(&json!({"username": "asmith", "password": "asmith-password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "login {n}");
    }
}

#[tokio::test]
async fn a_hung_directory_fails_the_login_fast_and_says_so() {
    let slapd = Slapd::start();
    let settings = gateway::directory::DirectorySettings {
        timeout: std::time::Duration::from_secs(1),
        ..slapd.settings()
    };
    let p = Platform::start_with(|g| g.directory = Some(settings)).await;
    let paused = slapd.pause();
    let started = std::time::Instant::now();
    let r = p
        .anonymous(Method::POST, "/api/v1/login/ldap")
        .json(&json!({"username": "jdoe", "password": "jdoe-password"}))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("the directory did not answer"),
        "{problem}"
    );
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    let audit: Value = p
        .admin(Method::GET, "/api/v1/audit?action=POST%20/api/v1/login/ldap")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit[0]["result"], "503", "{audit}");
    // Once it answers again, so does the login.
    drop(paused);
    let (status, body, _) = ldap_login(&p, "jdoe", "jdoe-password").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn group_dns_match_however_the_binding_and_the_directory_spell_them() {
    let slapd = Slapd::start();
    let settings = gateway::directory::DirectorySettings {
        admin_groups: vec!["CN=Platform-Admins, OU=Groups, DC=acme, DC=example".into()],
        ..slapd.settings()
    };
    let p = Platform::start_with(|g| g.directory = Some(settings)).await;
    let tid = grant_group(&p, "acme", "ldap:CN=Acme-Ops, OU=Groups,DC=acme,DC=example").await;
    let (status, body, cookie) = ldap_login(&p, "jdoe", "jdoe-password").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        whoami(&p, &cookie.unwrap()).await["memberships"],
        json!([[tid, "operator"]])
    );
    let (_, _, cookie) = ldap_login(&p, "asmith", "asmith-password").await;
    assert_eq!(whoami(&p, &cookie.unwrap()).await["platform_admin"], true);
}

#[tokio::test]
async fn removing_a_member_or_its_tenant_reaches_live_sessions_within_seconds() {
    let slapd = Slapd::start();
    let p = Platform::start_with(|g| g.directory = Some(slapd.settings())).await;
    let kept = grant_group(&p, "kept", "ldap:cn=acme-ops,ou=groups,dc=acme,dc=example").await;
    let deleted = grant_group(&p, "deleted", "ldap:cn=acme-ops,ou=groups,dc=acme,dc=example").await;
    let members: Value = p
        .admin(Method::GET, &format!("/api/v1/tenants/{kept}/members"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let member = members["items"][0]["id"].as_str().unwrap().to_string();
    let (_, _, cookie) = ldap_login(&p, "jdoe", "jdoe-password").await;
    let cookie = cookie.unwrap();
    let mut held = whoami(&p, &cookie).await["memberships"].as_array().unwrap().clone();
    held.sort_by_key(|m| m[0].as_str().unwrap().to_string());
    let mut expected = vec![json!([kept, "operator"]), json!([deleted, "operator"])];
    expected.sort_by_key(|m| m[0].as_str().unwrap().to_string());
    assert_eq!(held, expected);

    let r = p
        .admin(Method::DELETE, &format!("/api/v1/tenants/{deleted}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    kernel::testkit::eventually(
        std::time::Duration::from_secs(10),
        "the deleted tenant's role gone",
        || async { (whoami(&p, &cookie).await["memberships"] == json!([[kept, "operator"]])).then_some(()) },
    )
    .await;

    let r = p
        .admin(Method::DELETE, &format!("/api/v1/members/{member}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    kernel::testkit::eventually(
        std::time::Duration::from_secs(10),
        "the removed member's role gone",
        || async { (whoami(&p, &cookie).await["memberships"] == json!([])).then_some(()) },
    )
    .await;
    // The session itself lives on.
    let me = whoami(&p, &cookie).await;
    assert_eq!(me["subject"], "ldap:jdoe");
}

#[tokio::test]
async fn a_suspended_tenant_makes_its_members_sessions_viewers_at_once() {
    let slapd = Slapd::start();
    let p = Platform::start_with(|g| g.directory = Some(slapd.settings())).await;
    let paused = grant_group(&p, "paused", "ldap:cn=acme-ops,ou=groups,dc=acme,dc=example").await;
    let (_, login, cookie) = ldap_login(&p, "jdoe", "jdoe-password").await;
    let cookie = cookie.unwrap();
    let csrf = login["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(whoami(&p, &cookie).await["memberships"], json!([[paused, "operator"]]));
    let status = |status: &'static str| {
        p.admin(Method::PATCH, &format!("/api/v1/tenants/{paused}"))
            .json(&json!({"status": status}))
            .send()
    };

    assert_eq!(status("suspended").await.unwrap().status(), StatusCode::OK);
    // At once in the gateway that suspended it: no waiting for the event.
    assert_eq!(whoami(&p, &cookie).await["memberships"], json!([[paused, "viewer"]]));
    let write = p
        .anonymous(Method::POST, &format!("/api/v1/tenants/{paused}/external-services"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "db", "dns_name": "db.example.com", "placement": {"explicit": [{"cluster": "c1"}]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::FORBIDDEN, "{}", write.text().await.unwrap());

    assert_eq!(status("active").await.unwrap().status(), StatusCode::OK);
    assert_eq!(whoami(&p, &cookie).await["memberships"], json!([[paused, "operator"]]));
}
