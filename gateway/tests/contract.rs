//! The HTTP contract the gateway keeps before any service is asked: every
//! refusal is problem+json (axum's extractor rejections, an unsupported
//! method, the size limits), names the field it refuses, and text that no
//! name or value may hold (NUL, direction overrides, zero-width characters)
//! is refused at the door. The services behind are unreachable here: each
//! request below is answered by the gateway itself.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use gateway::{AppState, SCHEMA};
use kernel::caller::CallerKey;
use kernel::settings::Secret;
use kernel::testkit::TestPlatform;
use serde_json::Value;
use tower::ServiceExt;

const ADMIN: &str = "contract-test-admin-token-0123456789abcdef";

struct Gateway {
    router: axum::Router,
    _platform: TestPlatform,
}

impl Gateway {
    async fn start() -> Self {
        let t = TestPlatform::new().await;
        let pool = kernel::db::connect(&t.settings, SCHEMA).await.unwrap();
        kernel::db::migrate(&pool, &gateway::MIGRATIONS).await.unwrap();
        let tokens = gateway::token::Tokens::new(pool.clone());
        let nowhere = gateway::settings::Upstreams {
            tenancy: "http://127.0.0.1:1".into(),
            federation: "http://127.0.0.1:1".into(),
            apps: "http://127.0.0.1:1".into(),
            configs: "http://127.0.0.1:1".into(),
            images: "http://127.0.0.1:1".into(),
            devops: "http://127.0.0.1:1".into(),
        };
        let key = CallerKey::new(t.settings.caller_key.clone());
        let upstream = gateway::upstream::Upstream::connect(&nowhere).unwrap();
        let state = AppState {
            memberships: gateway::membership::Memberships::new(upstream.clone(), key.clone()),
            key,
            upstream,
            auth: gateway::auth::Authenticator::new(
                Some(Secret::new(ADMIN)),
                tokens.clone(),
                gateway::access_keys::AccessKeys::new(pool.clone()),
            ),
            access_keys: gateway::access_keys::AccessKeys::new(pool.clone()),
            tokens,
            audit: gateway::audit::AuditLog::new(pool.clone()),
            sessions: gateway::session::Sessions::connect(
                t.settings.redis_url.as_str(),
                t.settings.event_prefix.as_str(),
                gateway::session::Timeouts::default(),
            )
            .await
            .unwrap(),
            local_admin: gateway::local_admin::LocalAdmin::new(pool),
            directory: None,
            oidc: gateway::oidc::Providers::new(&[], "http://127.0.0.1").unwrap(),
            secure_cookies: false,
            registry: gateway::registry::RegistryFace::new(t.settings.caller_key.expose()),
        };
        Self {
            router: gateway::router(state),
            _platform: t,
        }
    }

    async fn send(&self, request: Request<Body>) -> Response {
        self.router.clone().oneshot(request).await.unwrap()
    }

    async fn call(&self, method: &str, uri: &str) -> Response {
        self.send(admin(method, uri).body(Body::empty()).unwrap()).await
    }

    async fn post(&self, uri: &str, content_type: &str, body: impl Into<Body>) -> Response {
        self.send(
            admin("POST", uri)
                .header(header::CONTENT_TYPE, content_type)
                .body(body.into())
                .unwrap(),
        )
        .await
    }
}

fn admin(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
}

/// The problem document of an error answer, checked to be one.
async fn problem(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap()),
        Some("application/problem+json"),
        "{status} is not problem+json"
    );
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["type"].as_str().unwrap().starts_with("urn:paas:problem:"),
        "{body}"
    );
    (status, body)
}

#[tokio::test]
async fn an_unsupported_method_is_a_405_problem_listing_the_allowed_ones() {
    let gw = Gateway::start().await;
    for (method, path, allowed) in [
        ("PUT", "/api/v1/tenants", "GET, POST, HEAD"),
        ("DELETE", "/api/v1/tenants", "GET, POST, HEAD"),
        ("POST", "/api/v1/clusters/018f0000-0000-7000-8000-000000000000", ""),
    ] {
        let response = gw.call(method, path).await;
        let allow = response
            .headers()
            .get(header::ALLOW)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let (status, body) = problem(response).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {body}");
        assert!(!allow.is_empty(), "{method} {path}: no Allow header");
        if !allowed.is_empty() {
            let mut got: Vec<&str> = allow.split(',').map(str::trim).collect();
            let mut want: Vec<&str> = allowed.split(", ").collect();
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want, "{method} {path}");
        }
        assert!(!allow.contains(method), "{method} {path}: Allow {allow}");
    }
}

#[tokio::test]
async fn rejected_paths_and_query_strings_are_problems_naming_the_parameter() {
    let gw = Gateway::start().await;
    for (uri, field) in [
        // axum's own rejections: a query value of the wrong type, broken UTF-8.
        ("/api/v1/tenants?limit=abc", "limit"),
        ("/api/v1/clusters/%FF%FE", "id"),
        // NUL, which PostgreSQL cannot store (this was a 500).
        ("/api/v1/tenants?name_prefix=a%00b", "name_prefix"),
        ("/api/v1/clusters/%00", "id"),
        // Text that displays other than it reads.
        ("/api/v1/tenants?name_prefix=a%E2%80%AEb", "name_prefix"),
        ("/api/v1/clusters/a%E2%80%8Bb", "id"),
    ] {
        let (status, body) = problem(gw.call("GET", uri).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["field"], field, "{uri}: {body}");
    }
}

#[tokio::test]
async fn json_bodies_are_read_strictly() {
    let gw = Gateway::start().await;
    let bad = [
        (r#"{"name": "acme"} trailing"#, "application/json", 400, "body"),
        (r#"{"name": "acme"}{"name": "evil"}"#, "application/json", 400, "body"),
        (r#"{"name": "acme"}"#, "application/jsonx", 415, "Content-Type"),
        (
            r#"{"name": "acme"}"#,
            "application/json; charset=utf-16",
            415,
            "Content-Type",
        ),
        (r#"{"name": "acme"}"#, "text/plain", 415, "Content-Type"),
        (r#"{"name": "a\u0000"}"#, "application/json", 400, "name"),
        (
            r#"{"name": "acme", "display_name": "x\u202egnp.exe"}"#,
            "application/json",
            400,
            "display_name",
        ),
        (
            r#"{"name": "acme", "labels": {"t\u200beam": "x"}}"#,
            "application/json",
            400,
            "labels.t\u{200b}eam",
        ),
    ];
    // A key too long for any name is refused by its parent's path (a service's
    // error naming it would not fit in its answer's metadata).
    let long_key = format!(r#"{{"name": "acme", "labels": {{"{}": "x"}}}}"#, "k".repeat(5000));
    let bad = bad.into_iter().map(|(b, c, s, f)| (b.to_string(), c, s, f)).chain([(
        long_key,
        "application/json",
        400,
        "labels",
    )]);
    for (body, content_type, want, field) in bad {
        let body = body.as_str();
        let (status, problem) = problem(gw.post("/api/v1/tenants", content_type, body.to_string()).await).await;
        assert_eq!(status.as_u16(), want, "{content_type} {body}: {problem}");
        assert_eq!(problem["field"], field, "{content_type} {body}: {problem}");
    }
    // JSON's media type is case-insensitive and may say its charset; such a
    // body reaches the handler (which finds tenancy unreachable here).
    for content_type in [
        "APPLICATION/JSON",
        "application/json; charset=UTF-8",
        "application/json;charset=\"utf-8\"",
    ] {
        let response = gw.post("/api/v1/tenants", content_type, r#"{"name": "acme"}"#).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{content_type}");
    }
}

#[tokio::test]
async fn the_size_limits_answer_413_and_431_problems() {
    let gw = Gateway::start().await;
    let big = format!(
        r#"{{"name": "acme", "display_name": "{}"}}"#,
        "x".repeat(gateway::MAX_BODY)
    );
    let (status, _) = problem(gw.post("/api/v1/tenants", "application/json", big.clone()).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Streamed without a length, the limit is met while reading.
    let stream = futures::stream::iter(
        big.into_bytes()
            .chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let (status, _) = problem(
        gw.send(
            admin("POST", "/api/v1/tenants")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(stream))
                .unwrap(),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let (status, _) = problem(
        gw.send(
            admin("GET", "/api/v1/tenants")
                .header("x-padding", "p".repeat(gateway::request::MAX_HEADER_BYTES))
                .body(Body::empty())
                .unwrap(),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let gw = Gateway::start().await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = gw
            .send(
                Request::builder()
                    .uri("/api/v1/tenants?limit=abc")
                    .header(header::AUTHORIZATION, format!("{scheme} {ADMIN}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        // Past authentication: the query is what is refused.
        let (status, body) = problem(response).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("limit")),
            "{scheme}"
        );
    }
}
