//! OIDC login against a real node-oidc-provider, driven through its own login
//! and consent pages as a browser would: redirects followed one by one, forms
//! posted.

use e2e::{OidcClient, OidcProvider, Platform};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

/// A browser: provider cookies in a jar, the gateway's cookies kept by hand.
struct Browser {
    http: reqwest::Client,
    gateway: String,
    flow_cookie: Option<String>,
}

/// Where a browser stopped: the gateway's answer to the provider's callback.
struct Landing {
    status: StatusCode,
    location: Option<String>,
    session_cookie: Option<String>,
    body: Value,
}

impl Browser {
    fn new(p: &Platform) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .unwrap();
        Self {
            http,
            gateway: p.url.clone(),
            flow_cookie: None,
        }
    }

    /// Starts a login at the gateway; returns the provider URL it sends to.
    async fn begin(&mut self, provider: &str) -> String {
        let r = self
            .http
            .get(format!(
                "{}/api/v1/login/oidc/{provider}?return_to=/portal/apps",
                self.gateway
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
        let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/api/v1/login/oidc"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        self.flow_cookie = Some(cookie.split(';').next().unwrap().to_string());
        r.headers()["location"].to_str().unwrap().to_string()
    }

    /// Follows the provider's pages from `url`, signing in as `login` when
    /// asked and consenting, until the provider sends the browser back to
    /// the gateway; returns that callback URL.
    async fn through_provider(&self, mut url: String, login: &str, password: &str) -> String {
        for _ in 0..12 {
            if url.starts_with(&self.gateway) {
                return url;
            }
            let r = self.http.get(&url).send().await.unwrap();
            let here = r.url().clone();
            if r.status().is_redirection() {
                url = here
                    .join(r.headers()["location"].to_str().unwrap())
                    .unwrap()
                    .to_string();
                continue;
            }
            let page = r.text().await.unwrap();
            let (action, form): (&str, Vec<(&str, &str)>) = if page.contains("id=\"login\"") {
                ("login", vec![("login", login), ("password", password)])
            } else if page.contains("id=\"consent\"") {
                ("confirm", vec![])
            } else {
                panic!("unexpected provider page at {url}: {page}");
            };
            let uid = here
                .path()
                .trim_start_matches("/interaction/")
                .trim_end_matches('/')
                .to_string();
            let posted = self
                .http
                .post(here.join(&format!("/interaction/{uid}/{action}")).unwrap())
                .form(&form)
                .send()
                .await
                .unwrap();
            assert!(
                posted.status().is_redirection(),
                "posting {action} at {url}: {} {}",
                posted.status(),
                posted.text().await.unwrap()
            );
            url = here
                .join(posted.headers()["location"].to_str().unwrap())
                .unwrap()
                .to_string();
        }
        panic!("the provider never sent the browser back");
    }

    /// Calls the gateway's callback as the browser (with its flow cookie).
    async fn land(&self, callback: &str) -> Landing {
        let mut request = self.http.get(callback);
        if let Some(cookie) = &self.flow_cookie {
            request = request.header("cookie", cookie);
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_string());
        let session_cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|c| c.starts_with("paas_session=") && !c.starts_with("paas_session=;"))
            .map(|c| c.split(';').next().unwrap().to_string());
        let body = r.json().await.unwrap_or(Value::Null);
        Landing {
            status,
            location,
            session_cookie,
            body,
        }
    }

    async fn login(&mut self, provider: &str, login: &str, password: &str) -> Landing {
        let start = self.begin(provider).await;
        let callback = self.through_provider(start, login, password).await;
        self.land(&callback).await
    }
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

fn with_query(url: &str, name: &str, value: &str) -> String {
    let mut url = Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            if k == name {
                (k.into_owned(), value.to_string())
            } else {
                (k.into_owned(), v.into_owned())
            }
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.to_string()
}

fn query(url: &str, name: &str) -> String {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

/// A platform with providers `corp` (and `stale`, whose ID tokens expire in
/// a second and arrive three seconds late) at one running provider.
async fn platform_with_provider() -> (Platform, OidcProvider) {
    let issuer = OidcProvider::reserve_issuer();
    let p = Platform::start_with(|g| {
        g.oidc = vec![
            OidcProvider::settings(&issuer, "corp"),
            OidcProvider::settings(&issuer, "stale"),
        ];
    })
    .await;
    let corp = OidcClient::for_gateway(&p.url, "corp");
    let stale = OidcClient {
        id_token_ttl: Some(1),
        token_delay_ms: Some(3000),
        ..OidcClient::for_gateway(&p.url, "stale")
    };
    let provider = OidcProvider::start(&issuer, &[corp, stale]);
    (p, provider)
}

#[tokio::test]
async fn a_code_and_pkce_round_trip_logs_in_maps_groups_at_every_login_and_logs_out_at_the_provider() {
    let (p, provider) = platform_with_provider().await;
    let listed: Value = p
        .anonymous(Method::GET, "/api/v1/login/oidc")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["corp", "stale"],
        "providers side by side"
    );

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
    let grant = json!({"kind": "group", "subject": "oidc:corp:acme-developers", "role": "developer"});
    assert_eq!(
        p.admin(Method::POST, &format!("/api/v1/tenants/{tid}/members"))
            .json(&grant)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );

    let mut browser = Browser::new(&p);
    let start = browser.begin("corp").await;
    for (name, value) in [
        ("response_type", "code"),
        ("code_challenge_method", "S256"),
        ("client_id", "paas-corp"),
    ] {
        assert_eq!(query(&start, name), value);
    }
    let landing = browser
        .land(&browser.through_provider(start, "alice", "alice-password").await)
        .await;
    assert_eq!(
        (landing.status, landing.location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/portal/apps")),
        "{}",
        landing.body
    );
    let cookie = landing.session_cookie.expect("a session");
    let me = whoami(&p, &cookie).await;
    assert_eq!(me["subject"], "oidc:corp:alice");
    assert_eq!(me["platform_admin"], false);
    assert_eq!(
        me["memberships"],
        json!([[tid, "developer"]]),
        "the acme-developers claim maps to developer in acme"
    );
    let csrf = me["csrf_token"]
        .as_str()
        .expect("the page learns its CSRF token from /session")
        .to_string();
    let write = p
        .anonymous(Method::POST, "/api/v1/logout/everywhere")
        .header("cookie", &cookie)
        .header("x-csrf-token", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(
        write.status(),
        StatusCode::FORBIDDEN,
        "cookie writes still need the CSRF token"
    );

    // The directory behind the provider drops alice from the group: her next
    // login carries no role in acme; and the provider's admin group maps to
    // platform administrator.
    provider.set_groups("alice", &[]);
    let mut again = Browser::new(&p);
    let landing = again.login("corp", "alice", "alice-password").await;
    assert_eq!(
        whoami(&p, &landing.session_cookie.unwrap()).await["memberships"],
        json!([])
    );
    let root = Browser::new(&p).login("corp", "root", "root-password").await;
    assert_eq!(whoami(&p, &root.session_cookie.unwrap()).await["platform_admin"], true);

    // Logging out answers the provider's end-session URL; following it ends
    // the session at the provider too, so the next login asks for a password.
    let out = p
        .anonymous(Method::POST, "/api/v1/logout")
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    let end_session_url = out.json::<Value>().await.unwrap()["end_session_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(end_session_url.starts_with(&provider.issuer), "{end_session_url}");
    assert_eq!(
        query(&end_session_url, "post_logout_redirect_uri"),
        format!("{}/", p.url)
    );
    assert!(!query(&end_session_url, "id_token_hint").is_empty());
    assert_eq!(whoami(&p, &cookie).await["status"], 401, "the platform session ended");
    let confirm = browser.http.get(&end_session_url).send().await.unwrap();
    assert_eq!(confirm.status(), StatusCode::OK);
    let page = confirm.text().await.unwrap();
    let action = page
        .split("action=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let xsrf = page
        .split("name=\"xsrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let done = browser
        .http
        .post(Url::parse(&provider.issuer).unwrap().join(&action).unwrap())
        .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
        .send()
        .await
        .unwrap();
    assert!(done.status().is_redirection(), "{}", done.status());
    assert_eq!(
        done.headers()["location"].to_str().unwrap(),
        format!("{}/", p.url),
        "back to the platform"
    );
    let start = browser.begin("corp").await;
    let page = browser.http.get(&start).send().await.unwrap();
    let interaction = Url::parse(&start)
        .unwrap()
        .join(page.headers()["location"].to_str().unwrap())
        .unwrap();
    let page = browser
        .http
        .get(interaction)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("id=\"login\""),
        "the provider asks for the password again: {page}"
    );
}

#[tokio::test]
async fn tampered_state_replayed_codes_wrong_nonces_and_expired_id_tokens_are_refused() {
    let (p, _provider) = platform_with_provider().await;

    // A changed state is refused and leaves the real one usable once.
    let mut browser = Browser::new(&p);
    let start = browser.begin("corp").await;
    let callback = browser.through_provider(start, "alice", "alice-password").await;
    let state = query(&callback, "state");
    let tampered = browser
        .land(&with_query(&callback, "state", &format!("{state}x")))
        .await;
    assert_eq!(tampered.status, StatusCode::UNAUTHORIZED, "{}", tampered.body);
    assert!(tampered.session_cookie.is_none());
    let mut other_browser = Browser::new(&p);
    other_browser.begin("corp").await;
    let elsewhere = other_browser.land(&callback).await;
    assert_eq!(
        elsewhere.status,
        StatusCode::UNAUTHORIZED,
        "a callback in a browser that did not start the login (login CSRF)"
    );
    let good = browser.land(&callback).await;
    assert_eq!(good.status, StatusCode::SEE_OTHER, "{}", good.body);
    assert!(good.session_cookie.is_some());

    // The same callback again: the state is used up.
    let replayed = browser.land(&callback).await;
    assert_eq!(replayed.status, StatusCode::UNAUTHORIZED);
    assert!(
        replayed.body["detail"].as_str().unwrap().contains("used"),
        "{}",
        replayed.body
    );

    // The used code under a fresh login's state: the provider refuses it.
    let code = query(&callback, "code");
    let fresh = browser.begin("corp").await;
    let fresh_state = query(&fresh, "state");
    let mut replay = Url::parse(&callback).unwrap();
    replay
        .query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", &fresh_state);
    let replayed_code = browser.land(replay.as_str()).await;
    assert_eq!(replayed_code.status, StatusCode::UNAUTHORIZED, "{}", replayed_code.body);
    assert!(
        replayed_code.body["detail"]
            .as_str()
            .unwrap()
            .contains("refused the code"),
        "{}",
        replayed_code.body
    );
    assert!(replayed_code.session_cookie.is_none());

    // A nonce changed on the way to the provider comes back in the ID token,
    // which the gateway then refuses.
    let start = browser.begin("corp").await;
    let callback = browser
        .through_provider(
            with_query(&start, "nonce", "not-the-gateways-nonce"),
            "alice",
            "alice-password",
        )
        .await;
    let wrong_nonce = browser.land(&callback).await;
    assert_eq!(wrong_nonce.status, StatusCode::UNAUTHORIZED, "{}", wrong_nonce.body);
    assert!(
        wrong_nonce.body["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("nonce"),
        "{}",
        wrong_nonce.body
    );
    assert!(wrong_nonce.session_cookie.is_none());

    // An ID token that expired before the gateway saw it.
    let expired = browser.login("stale", "alice", "alice-password").await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED, "{}", expired.body);
    assert!(
        expired.body["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("expire"),
        "{}",
        expired.body
    );
    assert!(expired.session_cookie.is_none());

    // Wrong password at the provider never reaches the gateway; an unknown
    // provider is 404; a callback without code is 400 naming the field.
    assert_eq!(
        p.anonymous(Method::GET, "/api/v1/login/oidc/nobody")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let r = browser
        .http
        .get(format!("{}/api/v1/login/oidc/corp/callback?state=x", p.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "code");

    // Every callback was audited with its outcome and who it was.
    let audit: Value = p
        .admin(
            Method::GET,
            "/api/v1/audit?action=GET%20/api/v1/login/oidc/%7Bprovider%7D/callback",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = audit.as_array().unwrap();
    let outcome = |result: &str| rows.iter().filter(|r| r["result"] == result).count();
    assert_eq!((outcome("200"), outcome("401"), outcome("400")), (1, 6, 1), "{audit}");
    assert!(
        rows.iter()
            .any(|r| r["result"] == "200" && r["actor"] == "oidc:corp:alice"),
        "{audit}"
    );
}

#[tokio::test]
async fn a_rotated_signing_key_is_fetched_at_its_first_use() {
    let (p, provider) = platform_with_provider().await;
    let landing = Browser::new(&p).login("corp", "alice", "alice-password").await;
    assert_eq!(landing.status, StatusCode::SEE_OTHER, "{}", landing.body);
    // The gateway now holds the provider's keys; the provider replaces them.
    provider.rotate_keys().await;
    let landing = Browser::new(&p).login("corp", "alice", "alice-password").await;
    assert_eq!(
        landing.status,
        StatusCode::SEE_OTHER,
        "the ID token signed with the new key: {}",
        landing.body
    );
    assert!(landing.session_cookie.is_some());
    // A second rotation at once is not fetched again (the refetch is rate
    // limited), so a login signed with a key still unknown is refused.
    provider.rotate_keys().await;
    let landing = Browser::new(&p).login("corp", "alice", "alice-password").await;
    assert_eq!(landing.status, StatusCode::UNAUTHORIZED, "{}", landing.body);
    assert!(
        landing.body["detail"]
            .as_str()
            .unwrap()
            .contains("ID token is not valid"),
        "{}",
        landing.body
    );
}

#[tokio::test]
async fn the_profile_comes_from_userinfo_when_the_id_token_lacks_it() {
    // node-oidc-provider puts profile claims in the ID token only for
    // implicit flows: with the code flow, name and e-mail are in userinfo.
    let (p, _provider) = platform_with_provider().await;
    let landing = Browser::new(&p).login("corp", "alice", "alice-password").await;
    assert_eq!(landing.status, StatusCode::SEE_OTHER, "{}", landing.body);
    let me = whoami(&p, &landing.session_cookie.unwrap()).await;
    let pool = sqlx::PgPool::connect(p.settings.database_url.expose()).await.unwrap();
    let (name, email): (String, String) =
        sqlx::query_as("SELECT display_name, email FROM tenancy.users WHERE subject = $1")
            .bind(me["subject"].as_str().unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((name.as_str(), email.as_str()), ("Alice Example", "alice@acme.example"));
}

#[tokio::test]
async fn a_group_of_one_provider_grants_nothing_to_a_same_named_group_of_another() {
    // Two providers, each its own instance of the fixture with the same
    // accounts (so both say alice is in acme-developers).
    let corp_issuer = OidcProvider::reserve_issuer();
    let partner_issuer = OidcProvider::reserve_issuer();
    let p = Platform::start_with(|g| {
        g.oidc = vec![
            OidcProvider::settings(&corp_issuer, "corp"),
            OidcProvider::settings(&partner_issuer, "partner"),
        ];
    })
    .await;
    let _corp = OidcProvider::start(&corp_issuer, &[OidcClient::for_gateway(&p.url, "corp")]);
    let _partner = OidcProvider::start(&partner_issuer, &[OidcClient::for_gateway(&p.url, "partner")]);
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
    let path = format!("/api/v1/tenants/{tid}/members");
    let unqualified = p
        .admin(Method::POST, &path)
        .json(&json!({"kind": "group", "subject": "acme-developers", "role": "developer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unqualified.status(), StatusCode::BAD_REQUEST);
    let problem: Value = unqualified.json().await.unwrap();
    assert_eq!(problem["field"], "subject", "{problem}");
    let r = p
        .admin(Method::POST, &path)
        .json(&json!({"kind": "group", "subject": "oidc:corp:acme-developers", "role": "developer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let landing = Browser::new(&p).login("partner", "alice", "alice-password").await;
    assert_eq!(landing.status, StatusCode::SEE_OTHER, "{}", landing.body);
    let me = whoami(&p, &landing.session_cookie.unwrap()).await;
    assert!(me["subject"].as_str().unwrap().starts_with("oidc:partner:"), "{me}");
    assert_eq!(me["memberships"], json!([]), "partner's acme-developers is not corp's");

    let landing = Browser::new(&p).login("corp", "alice", "alice-password").await;
    let me = whoami(&p, &landing.session_cookie.unwrap()).await;
    assert_eq!(me["memberships"], json!([[tid, "developer"]]));
}

#[tokio::test]
async fn a_provider_that_does_not_answer_is_a_503_saying_which() {
    // Its issuer's port is reserved and nothing ever listens there.
    let issuer = OidcProvider::reserve_issuer();
    let p = Platform::start_with(|g| g.oidc = vec![OidcProvider::settings(&issuer, "corp")]).await;
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/api/v1/login/oidc/corp?return_to=/portal/apps", p.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: Value = r.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("identity provider corp cannot be discovered"),
        "the answer names the provider that did not answer: {problem}"
    );
}
