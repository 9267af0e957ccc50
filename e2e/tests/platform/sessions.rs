//! The break-glass login, browser sessions, CSRF, logout and lockout.

use e2e::{LOCAL_ADMIN_PASSWORD, Platform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Session {
    cookie: String,
    csrf: String,
}

async fn login(p: &Platform, password: &str) -> Result<Session, (StatusCode, Value)> {
    let r = p
        .anonymous(Method::POST, "/api/v1/login/local")
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let set_cookie = r.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_string());
    let body: Value = r.json().await.unwrap();
    if status != StatusCode::OK {
        return Err((status, body));
    }
    let set_cookie = set_cookie.expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    Ok(Session {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
    })
}

fn with(p: &Platform, s: &Session, method: Method, path: &str) -> reqwest::RequestBuilder {
    p.anonymous(method, path).header("cookie", &s.cookie)
}

#[tokio::test]
async fn the_break_glass_admin_logs_in_and_cookie_writes_need_the_csrf_token() {
    let p = Platform::start().await;
    let s = login(&p, LOCAL_ADMIN_PASSWORD).await.unwrap();
    let me: Value = with(&p, &s, Method::GET, "/api/v1/session")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            me["subject"].as_str(),
            me["platform_admin"].as_bool(),
            me["break_glass"].as_bool()
        ),
        (Some("local:admin"), Some(true), Some(true))
    );

    let without = with(&p, &s, Method::POST, "/api/v1/tenants")
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let wrong = with(&p, &s, Method::POST, "/api/v1/tenants")
        .header("x-csrf-token", "nope")
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let right = with(&p, &s, Method::POST, "/api/v1/tenants")
        .header("x-csrf-token", &s.csrf)
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::CREATED);

    let again = login(&p, LOCAL_ADMIN_PASSWORD).await.unwrap();
    assert_ne!(again.cookie, s.cookie, "every login gets a new session id");
    let out = with(&p, &s, Method::POST, "/api/v1/logout")
        .header("x-csrf-token", &s.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        with(&p, &s, Method::GET, "/api/v1/tenants")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED,
        "the ended session"
    );
    assert_eq!(
        with(&p, &again, Method::GET, "/api/v1/tenants")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "the other session lives"
    );

    let third = login(&p, LOCAL_ADMIN_PASSWORD).await.unwrap();
    let everywhere = with(&p, &third, Method::POST, "/api/v1/logout/everywhere")
        .header("x-csrf-token", &third.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(everywhere.status(), StatusCode::NO_CONTENT);
    for gone in [&again, &third] {
        assert_eq!(
            with(&p, gone, Method::GET, "/api/v1/tenants")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn wrong_passwords_are_audited_and_lock_the_account_for_a_while() {
    let p = Platform::start().await;
    for _ in 0..5 {
        let (status, problem) = login(&p, "not the password").await.err().unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    }
    let (status, problem) = login(&p, LOCAL_ADMIN_PASSWORD)
        .await
        .err()
        .expect("locked even with the right password");
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("urn:paas:problem:locked-out"))
    );
    let locked = p
        .anonymous(Method::POST, "/api/v1/login/local")
        .json(&json!({"username": "admin", "password": "x"}))
        .send()
        .await
        .unwrap();
    let retry_after: u64 = locked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=15 * 60).contains(&retry_after), "Retry-After {retry_after}");
    let audit: Value = p
        .admin(Method::GET, "/api/v1/audit?action=POST%20/api/v1/login")
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
    assert_eq!(results.iter().filter(|r| **r == "401").count(), 5, "{results:?}");
    assert_eq!(results.iter().filter(|r| **r == "429").count(), 2);
    assert!(audit.as_array().unwrap().iter().all(|r| r["actor"] == "local:admin"));
}

#[tokio::test]
async fn a_disabled_or_unknown_account_cannot_log_in() {
    let p = Platform::start().await;
    let unknown = p
        .anonymous(Method::POST, "/api/v1/login/local")
        .json(&json!({"username": "root", "password": LOCAL_ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let pool = kernel::db::connect(&p.settings, "gateway").await.unwrap();
    sqlx::query("UPDATE local_users SET disabled = true")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        login(&p, LOCAL_ADMIN_PASSWORD).await.err().unwrap().0,
        StatusCode::UNAUTHORIZED
    );
    let stored: String = sqlx::query_scalar("SELECT password_hash FROM local_users WHERE username = 'admin'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$") && !stored.contains(LOCAL_ADMIN_PASSWORD));
}

#[tokio::test]
async fn sessions_end_after_their_idle_timeout_and_their_absolute_timeout() {
    let p = Platform::start_with(|g| {
        g.sessions = gateway::session::Timeouts {
            idle: std::time::Duration::from_secs(1),
            absolute: std::time::Duration::from_secs(3),
        }
    })
    .await;
    let status = |s: &Session| with(&p, s, Method::GET, "/api/v1/session").send();

    // Unused for longer than the idle timeout: ended.
    let idle = login(&p, LOCAL_ADMIN_PASSWORD).await.unwrap();
    assert_eq!(status(&idle).await.unwrap().status(), StatusCode::OK);
    // The one wait on the clock that stays: what is tested is time passing
    // with no use, so nothing may be polled meanwhile (a poll is a use).
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert_eq!(
        status(&idle).await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "idle timeout"
    );

    // Used every half second, it lives past the idle timeout but not past
    // the absolute one.
    let busy = login(&p, LOCAL_ADMIN_PASSWORD).await.unwrap();
    let started = std::time::Instant::now();
    let mut last_ok = std::time::Duration::ZERO;
    while started.elapsed() < std::time::Duration::from_secs(6) {
        if status(&busy).await.unwrap().status() != StatusCode::OK {
            break;
        }
        last_ok = started.elapsed();
        // The pace of use, not a wait for work.
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
    assert!(
        last_ok >= std::time::Duration::from_millis(1500),
        "kept alive past the idle timeout by use ({last_ok:?})"
    );
    assert!(
        last_ok < std::time::Duration::from_secs(4),
        "ended by the absolute timeout ({last_ok:?})"
    );
    assert_eq!(status(&busy).await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

async fn session_cookie(p: &Platform) -> String {
    let r = p
        .anonymous(Method::POST, "/api/v1/login/local")
        .json(&json!({"username": "admin", "password": LOCAL_ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.headers()["set-cookie"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn cookies_are_secure_when_browsers_come_over_https_and_usable_over_plain_http() {
    let https = Platform::start_with(|g| g.public_url = Some("https://paas.corp.example".into())).await;
    let cookie = session_cookie(&https).await;
    assert!(cookie.contains("; Secure"), "{cookie}");
    // A browser on http://10.0.0.5:8080 drops a Secure cookie: it would never
    // finish a login.
    let http = Platform::start_with(|g| g.public_url = Some("http://10.0.0.5:8080".into())).await;
    let cookie = session_cookie(&http).await;
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}
