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
    let grant = json!({"kind": "group", "subject": "cn=acme-ops,ou=groups,dc=acme,dc=example", "role": "operator"});
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
        ("jdoe\u{0}", "jdoe-password"),
        ("j*", "jdoe-password"),
    ] {
        let (status, body, cookie) = ldap_login(&p, user, password).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{user:?}: {body}");
        assert!(cookie.is_none());
    }
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
    assert_eq!(results.iter().filter(|r| **r == "401").count(), 9);
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
