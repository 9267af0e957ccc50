//! Delivering configuration to clients: application access keys, the watch
//! over several sets at once, and `paas config-agent` keeping a directory of
//! files current through a configs outage.

use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::Platform;
use kernel::service::Addresses;
use kernel::shutdown::Shutdown;
use kernel::testkit::eventually;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::configs::{Tenant, config_set, publish, put, tenant};
use crate::isolation::send;

/// An access key of `application` in tenant `t`, made by its operator.
async fn access_key(p: &Platform, t: &Tenant, application: &str) -> (String, Value) {
    let (status, created) = send(
        p,
        &t.operator,
        Method::POST,
        &format!("/api/v1/tenants/{}/config-access-keys", t.id),
        Some(json!({"application": application, "name": format!("{application} agent")})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (created["secret"].as_str().unwrap().to_string(), created)
}

/// A shared set of tenant `t`.
async fn shared_set(p: &Platform, t: &Tenant, name: &str) -> String {
    let (status, set) = send(
        p,
        &t.operator,
        Method::POST,
        "/api/v1/config-sets",
        Some(json!({"tenant_id": t.id, "application": name, "shared": true})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{set}");
    set["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_access_key_reads_its_application_and_linked_shared_sets_only() {
    let p = Platform::start().await;
    let a = tenant(&p, "acme").await;
    let b = tenant(&p, "globex").await;
    let shop = config_set(&p, &a, "shop", "", "").await;
    let cart = config_set(&p, &a, "cart", "", "").await;
    let common = shared_set(&p, &a, "common").await;
    let unlinked = shared_set(&p, &a, "payments").await;
    let other_tenants_shop = config_set(&p, &b, "shop", "", "").await;
    let (status, links) = send(
        &p,
        &a.developer,
        Method::PUT,
        &format!("/api/v1/tenants/{}/config-links/shop", a.id),
        Some(json!({"shared": ["common"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{links}");
    put(&p, &a.developer, &shop, "app.properties", json!({"content": "a=1\n"})).await;
    assert_eq!(publish(&p, &a.operator, &shop, "first").await.0, StatusCode::CREATED);
    let (key, created) = access_key(&p, &a, "shop").await;
    assert!(key.starts_with("paasak_"), "{created}");

    let watch = |sets: String| format!("/api/v1/config-watch?sets={sets}&timeout=1");
    // Its own set and the shared set it links.
    let (status, answer) = send(&p, &key, Method::GET, &watch(format!("{shop}:0,{common}:0")), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["releases"][0]["config_set_id"], json!(shop));
    let (status, _) = send(&p, &key, Method::GET, &watch(format!("{common}:0")), None).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    // Not another application's set, an unlinked shared set or another tenant's set.
    for set in [&cart, &unlinked, &other_tenants_shop] {
        let (status, problem) = send(&p, &key, Method::GET, &watch(format!("{set}:0")), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
        let (status, _) = send(
            &p,
            &key,
            Method::GET,
            &format!("/api/v1/config-sets/{set}/watch?timeout=0"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let effective = |tenant: &str, application: &str| {
        format!("/api/v1/tenants/{tenant}/effective-config?application={application}")
    };
    let (status, config) = send(&p, &key, Method::GET, &effective(&a.id, "shop"), None).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    assert_eq!(config["entries"][0]["value"], json!("1"));
    let sets: Vec<&str> = config["sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["config_set_id"].as_str().unwrap())
        .collect();
    assert_eq!(sets, vec![common.as_str(), shop.as_str()], "{config}");
    assert_eq!(
        send(&p, &key, Method::GET, &effective(&a.id, "cart"), None).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&p, &key, Method::GET, &effective(&b.id, "shop"), None).await.0,
        StatusCode::FORBIDDEN
    );
    // Reading and watching only: no writes, no other reads.
    let (status, _) = publish(&p, &key, &shop, "sneaky").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for path in [
        "/api/v1/config-sets".to_string(),
        format!("/api/v1/config-sets/{shop}/draft"),
        "/api/v1/tenants".into(),
    ] {
        assert_eq!(
            send(&p, &key, Method::GET, &path, None).await.0,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }

    // Listed without its secret; operators only; bad input names the field.
    let keys = format!("/api/v1/tenants/{}/config-access-keys", a.id);
    let (status, listed) = send(&p, &a.operator, Method::GET, &format!("{keys}?application=shop"), None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["id"], created["id"]);
    assert!(listed["items"][0].get("secret").is_none(), "{listed}");
    assert!(listed["items"][0]["last_used_at"].is_string(), "{listed}");
    assert_eq!(
        send(&p, &a.viewer, Method::GET, &keys, None).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = send(&p, &b.operator, Method::GET, &keys, None).await;
    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
        "{status}"
    );
    let (status, problem) = send(
        &p,
        &a.operator,
        Method::POST,
        &keys,
        Some(json!({"application": "Not A Label", "name": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["field"], json!("application"), "{problem}");
    let (status, problem) = send(&p, &key, Method::GET, &watch("nope".into()), None).await;
    assert_eq!(
        (status, problem["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("sets"))
    );

    // Revoked: refused at once.
    let (status, _) = send(
        &p,
        &a.operator,
        Method::DELETE,
        &format!("{keys}/{}", created["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        send(&p, &key, Method::GET, &effective(&a.id, "shop"), None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// A configs service that can be stopped and started again on the same
/// address, behind a second gateway (the platform's own configs service
/// keeps running beside it, on the same database, so releases can still be
/// published while this one is down).
struct Restartable {
    settings: kernel::settings::Platform,
    grpc: std::net::SocketAddr,
    shutdown: Option<Shutdown>,
    gateway_url: String,
    gateway_shutdown: Shutdown,
}

impl Restartable {
    async fn start(p: &Platform) -> Self {
        let shutdown = Shutdown::new();
        let running = Self::configs(p.settings.clone(), Addresses::ephemeral(), &shutdown).await;
        let gateway_shutdown = Shutdown::new();
        let find = |name: &str| kernel::grpc::uri(p.stack.service(name).unwrap().grpc);
        let settings = gateway::Settings {
            addr: "127.0.0.1:0".parse().unwrap(),
            admin_token: None,
            upstream: gateway::settings::Upstreams {
                tenancy: find("tenancy"),
                federation: find("federation"),
                apps: find("apps"),
                configs: kernel::grpc::uri(running.grpc),
                images: find("images"),
                devops: find("devops"),
            },
            local_admin_password: None,
            local_admin_disabled: false,
            directory: None,
            oidc: Vec::new(),
            public_url: None,
            sessions: gateway::session::Timeouts::default(),
        };
        let addr = gateway::start(&p.settings, settings, &gateway_shutdown).await.unwrap();
        Self {
            settings: p.settings.clone(),
            grpc: running.grpc,
            shutdown: Some(shutdown),
            gateway_url: format!("http://{addr}"),
            gateway_shutdown,
        }
    }

    async fn configs(
        settings: kernel::settings::Platform,
        addresses: Addresses,
        shutdown: &Shutdown,
    ) -> kernel::service::Running {
        let env = kernel::settings::Env::default();
        let configs_settings = configs::Settings::from_env(&env, &settings).unwrap();
        configs::start_with(&settings, configs_settings, addresses, shutdown)
            .await
            .unwrap()
    }

    async fn stop(&mut self) {
        let shutdown = self.shutdown.take().expect("running");
        shutdown.trigger();
        assert!(shutdown.drain(Duration::from_secs(10)).await, "configs stopped");
    }

    async fn restart(&mut self) {
        let shutdown = Shutdown::new();
        let addresses = Addresses {
            grpc: self.grpc,
            http: "127.0.0.1:0".parse().unwrap(),
        };
        Self::configs(self.settings.clone(), addresses, &shutdown).await;
        self.shutdown = Some(shutdown);
    }

    async fn get(&self, bearer: &str, path: &str) -> (StatusCode, Value) {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.gateway_url))
            .bearer_auth(bearer)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

impl Drop for Restartable {
    fn drop(&mut self) {
        if let Some(s) = &self.shutdown {
            s.trigger();
        }
        self.gateway_shutdown.trigger();
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("paas-e2e-{name}-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn reloads(log: &Path) -> usize {
    read(log).map_or(0, |l| l.lines().count())
}

/// Publishes `content` as `app.properties` of `set`; the release number.
async fn release(p: &Platform, t: &Tenant, set: &str, content: &str) -> u64 {
    put(p, &t.developer, set, "app.properties", json!({"content": content})).await;
    let (status, release) = publish(p, &t.operator, set, "next").await;
    assert_eq!(status, StatusCode::CREATED, "{release}");
    release["number"].as_u64().unwrap()
}

#[tokio::test]
async fn the_agent_keeps_its_files_through_a_configs_outage_and_catches_up_with_no_missed_release() {
    let p = Platform::start().await;
    let t = tenant(&p, "acme").await;
    let base = config_set(&p, &t, "shop", "", "").await;
    let production = config_set(&p, &t, "shop", "production", "").await;
    assert_eq!(release(&p, &t, &base, "greeting=hello\ncolour=blue\n").await, 1);
    put(&p, &t.developer, &base, "banner.txt", json!({"content": "Welcome"})).await;
    assert_eq!(publish(&p, &t.operator, &base, "banner").await.0, StatusCode::CREATED);
    let (key, _) = access_key(&p, &t, "shop").await;
    let mut configs = Restartable::start(&p).await;

    let work = scratch("config-agent");
    let files = work.join("files");
    let log = work.join("reloads.log");
    let settings = paas::config_agent::AgentSettings {
        client: config_client::Settings::new(&configs.gateway_url, &key, &t.id, "shop")
            .environment("production")
            .instance("agent-1")
            .label("zone", "a")
            .cache_dir(work.join("cache"))
            .poll(Duration::from_secs(20)),
        dir: files.clone(),
        reload: Some(format!("echo reloaded >> {}", log.display())),
        debounce: Duration::from_millis(200),
    };
    let stop = CancellationToken::new();
    let agent = tokio::spawn(paas::config_agent::run(settings, stop.clone()));
    let properties = files.join("app.properties");
    eventually(Duration::from_secs(20), "the agent writes the files", || async {
        (read(&properties).as_deref() == Some("colour=blue\ngreeting=hello\n")
            && read(&files.join("banner.txt")).as_deref() == Some("Welcome"))
        .then_some(())
    })
    .await;

    // A release at the environment level overrides one key: the file changes
    // and the reload command runs.
    release(&p, &t, &production, "greeting=hi\n").await;
    eventually(
        Duration::from_secs(20),
        "the file changes and the agent reloads",
        || async {
            (read(&properties).as_deref() == Some("colour=blue\ngreeting=hi\n") && reloads(&log) == 1).then_some(())
        },
    )
    .await;

    // The configs service goes down; releases are published meanwhile
    // (through the platform's other configs instance).
    configs.stop().await;
    let (status, _) = configs
        .get(
            &key,
            &format!("/api/v1/tenants/{}/effective-config?application=shop", t.id),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the agent's config center is down"
    );
    assert_eq!(release(&p, &t, &production, "greeting=three\n").await, 2);
    assert_eq!(release(&p, &t, &production, "greeting=four\nfarewell=bye\n").await, 3);
    // The agent keeps serving the files it has.
    assert_eq!(read(&properties).as_deref(), Some("colour=blue\ngreeting=hi\n"));
    assert_eq!(read(&files.join("banner.txt")).as_deref(), Some("Welcome"));

    configs.restart().await;
    // A watch resuming from release 1 gets exactly the releases published meanwhile.
    let (status, answer) = eventually(Duration::from_secs(20), "the configs service is back", || async {
        let answer = configs
            .get(&key, &format!("/api/v1/config-watch?sets={production}:1&timeout=5"))
            .await;
        (answer.0 != StatusCode::SERVICE_UNAVAILABLE).then_some(answer)
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let numbers: Vec<u64> = answer["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![2, 3]);
    // The agent catches up to the latest, and reloads.
    eventually(Duration::from_secs(40), "the agent catches up", || async {
        (read(&properties).as_deref() == Some("colour=blue\nfarewell=bye\ngreeting=four\n") && reloads(&log) >= 2)
            .then_some(())
    })
    .await;

    // The config center knows which instance holds which release.
    let pool = kernel::db::connect(&p.settings, "configs").await.unwrap();
    let recorded: (String, i64, Value) = eventually(Duration::from_secs(40), "the instance is recorded", || {
        let pool = pool.clone();
        let production = uuid::Uuid::parse_str(&production).unwrap();
        async move {
            let row: Option<(String, i64, Value)> =
                sqlx::query_as("SELECT instance, release_number, labels FROM instances WHERE config_set_id = $1")
                    .bind(production)
                    .fetch_optional(&pool)
                    .await
                    .unwrap();
            row.filter(|r| r.1 == 3)
        }
    })
    .await;
    assert_eq!(recorded.0, "agent-1");
    assert_eq!(recorded.2, json!({"zone": "a"}));

    stop.cancel();
    agent.await.unwrap().unwrap();
    std::fs::remove_dir_all(&work).unwrap();
}

#[tokio::test]
async fn an_agent_started_while_the_config_center_is_down_serves_its_cache() {
    let p = Platform::start().await;
    let t = tenant(&p, "acme").await;
    let base = config_set(&p, &t, "shop", "", "").await;
    release(&p, &t, &base, "greeting=hello\n").await;
    let (key, _) = access_key(&p, &t, "shop").await;
    let mut configs = Restartable::start(&p).await;
    let work = scratch("config-agent-cache");
    let client = config_client::Settings::new(&configs.gateway_url, &key, &t.id, "shop")
        .instance("agent-2")
        .cache_dir(work.join("cache"))
        .poll(Duration::from_secs(20));
    // A first run fills the cache.
    let mut first = config_client::ConfigClient::new(client.clone()).unwrap();
    first.start().await.unwrap();
    assert_eq!(first.source(), config_client::Source::Server);

    configs.stop().await;
    release(&p, &t, &base, "greeting=while-down\n").await;
    let files = work.join("files");
    let stop = CancellationToken::new();
    let settings = paas::config_agent::AgentSettings {
        client,
        dir: files.clone(),
        reload: None,
        debounce: Duration::from_millis(100),
    };
    let agent = tokio::spawn(paas::config_agent::run(settings, stop.clone()));
    eventually(Duration::from_secs(20), "the agent writes the cached files", || async {
        (read(&files.join("app.properties")).as_deref() == Some("greeting=hello\n")).then_some(())
    })
    .await;
    configs.restart().await;
    eventually(
        Duration::from_secs(40),
        "the agent catches up after the restart",
        || async { (read(&files.join("app.properties")).as_deref() == Some("greeting=while-down\n")).then_some(()) },
    )
    .await;
    stop.cancel();
    agent.await.unwrap().unwrap();
    std::fs::remove_dir_all(&work).unwrap();
}

/// One poll of `client`, which must answer well within its hold (a minute).
async fn answered(client: &mut config_client::ConfigClient) -> Vec<config_client::Change> {
    tokio::time::timeout(Duration::from_secs(30), client.poll())
        .await
        .expect("the poll answers before its hold ends")
        .expect("the poll succeeds")
}

#[tokio::test]
async fn a_set_created_or_linked_after_the_client_started_is_watched_at_once() {
    let p = Platform::start().await;
    let t = tenant(&p, "acme").await;
    let base = config_set(&p, &t, "shop", "", "").await;
    release(&p, &t, &base, "greeting=hello\n").await;
    let (key, _) = access_key(&p, &t, "shop").await;
    // The full re-read is far off: only the watch can tell of the new sets.
    let settings = config_client::Settings::new(&p.url, &key, &t.id, "shop")
        .environment("production")
        .poll(Duration::from_secs(60))
        .refresh(Duration::from_secs(3600));
    let mut client = config_client::ConfigClient::new(settings).unwrap();
    client.start().await.unwrap();
    assert_eq!(client.current().sets.len(), 1);

    // An environment level created while the client polls: the poll answers.
    let (_, production) = tokio::join!(answered(&mut client), config_set(&p, &t, "shop", "production", ""));
    assert!(
        client.current().sets.contains_key(&production),
        "{:?}",
        client.current().sets
    );
    // It is watched from then on: its first release is a change.
    let (changes, _) = tokio::join!(
        answered(&mut client),
        release(&p, &t, &production, "greeting=hello from production\n")
    );
    assert!(!changes.is_empty());
    assert_eq!(
        client.current().value("app.properties", "greeting"),
        Some("hello from production")
    );

    // A shared set linked while the client polls: its items arrive at once.
    let common = shared_set(&p, &t, "common").await;
    release(&p, &t, &common, "region=eu\n").await;
    let link = async {
        let (status, links) = send(
            &p,
            &t.developer,
            Method::PUT,
            &format!("/api/v1/tenants/{}/config-links/shop", t.id),
            Some(json!({"shared": ["common"]})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{links}");
    };
    let (changes, ()) = tokio::join!(answered(&mut client), link);
    assert!(!changes.is_empty());
    assert!(client.current().sets.contains_key(&common));
    assert_eq!(client.current().value("app.properties", "region"), Some("eu"));
}

/// One Server-Sent Event.
#[derive(Debug)]
struct ServerEvent {
    name: String,
    id: String,
    data: Value,
}

/// An event stream of `path` as `bearer`, resuming from `last` if given.
async fn event_stream(p: &Platform, bearer: &str, path: &str, last: Option<&str>) -> (reqwest::Response, String) {
    let mut request = p.anonymous(Method::GET, path).bearer_auth(bearer);
    if let Some(last) = last {
        request = request.header("last-event-id", last);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    (response, String::new())
}

/// The next event of a stream (keep-alive comments skipped).
async fn next_event((stream, buffer): &mut (reqwest::Response, String)) -> ServerEvent {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
            };
            if let Some(name) = field("event:") {
                return ServerEvent {
                    name,
                    id: field("id:").unwrap_or_default(),
                    data: serde_json::from_str(&field("data:").unwrap_or_default()).unwrap(),
                };
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(20), stream.chunk())
            .await
            .expect("an event within 20 s")
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

/// An event's name, set and release number.
fn told(event: &ServerEvent) -> (String, String, u64) {
    (
        event.name.clone(),
        event.data["config_set_id"].as_str().unwrap().to_string(),
        event.data["number"].as_u64().unwrap(),
    )
}

/// A watcher's position as event ids give it: sets in id order.
fn position(sets: &[(&str, u64)]) -> String {
    let mut sets: Vec<(uuid::Uuid, u64)> = sets
        .iter()
        .map(|(id, n)| (uuid::Uuid::parse_str(id).unwrap(), *n))
        .collect();
    sets.sort();
    sets.iter()
        .map(|(id, n)| format!("{id}:{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test]
async fn the_event_stream_tells_of_sets_joining_and_leaving_and_resumes_exactly() {
    let p = Platform::start().await;
    let t = tenant(&p, "acme").await;
    let base = config_set(&p, &t, "shop", "", "").await;
    release(&p, &t, &base, "greeting=hello\n").await;
    let (key, _) = access_key(&p, &t, "shop").await;
    let path = format!(
        "/api/v1/config-watch/events?sets={base}:1&tenant={}&application=shop&environment=production&instance=pod-1",
        t.id
    );
    let mut stream = event_stream(&p, &key, &path, None).await;

    // An environment level created while it streams: it joins at release 0.
    let production = config_set(&p, &t, "shop", "production", "").await;
    let joined = next_event(&mut stream).await;
    assert_eq!(told(&joined), ("joined".into(), production.clone(), 0), "{joined:?}");
    assert_eq!(joined.data["kind"], json!("joined"));
    assert_eq!(joined.id, position(&[(&base, 1), (&production, 0)]));
    // Watched from then on, beside the base.
    release(&p, &t, &production, "greeting=hello from production\n").await;
    let first = next_event(&mut stream).await;
    assert_eq!(told(&first), ("release".into(), production.clone(), 1), "{first:?}");
    assert_eq!(first.id, position(&[(&base, 1), (&production, 1)]));
    release(&p, &t, &base, "greeting=hi\n").await;
    let second = next_event(&mut stream).await;
    assert_eq!(told(&second), ("release".into(), base.clone(), 2), "{second:?}");
    assert_eq!(second.id, position(&[(&base, 2), (&production, 1)]));

    // Reconnecting from the `joined` event's id: both releases once, and no
    // second `joined` (the position already holds the set).
    let mut resumed = event_stream(&p, &key, &path, Some(&joined.id)).await;
    let (a, b) = (next_event(&mut resumed).await, next_event(&mut resumed).await);
    let mut heard = vec![told(&a), told(&b)];
    heard.sort();
    let mut expected = vec![
        ("release".to_string(), base.clone(), 2),
        ("release".to_string(), production.clone(), 1),
    ];
    expected.sort();
    assert_eq!(heard, expected);
    assert_eq!(b.id, second.id);

    // Deleted: it leaves, once, on both streams, and is watched no more.
    let (status, body) = send(
        &p,
        &t.operator,
        Method::DELETE,
        &format!("/api/v1/config-sets/{production}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for stream in [&mut stream, &mut resumed] {
        let left = next_event(stream).await;
        assert_eq!(told(&left), ("left".into(), production.clone(), 1), "{left:?}");
        assert_eq!(left.id, position(&[(&base, 2)]));
    }
    release(&p, &t, &base, "greeting=hey\n").await;
    for stream in [&mut stream, &mut resumed] {
        let next = next_event(stream).await;
        assert_eq!(told(&next), ("release".into(), base.clone(), 3), "{next:?}");
        assert_eq!(next.id, position(&[(&base, 3)]));
    }

    // Started from nothing, a named configuration's sets all arrive as `joined`.
    let path = format!(
        "/api/v1/config-watch/events?sets=&tenant={}&application=shop&environment=production",
        t.id
    );
    let mut fresh = event_stream(&p, &key, &path, None).await;
    let all = next_event(&mut fresh).await;
    assert_eq!(told(&all), ("joined".into(), base.clone(), 3), "{all:?}");
    assert_eq!(all.id, position(&[(&base, 3)]));
}
