//! Following an application's logs through the gateway: every pod of the
//! service in both clusters streamed as Server-Sent Events, each line
//! prefixed `cluster/pod`, new lines as the pods write them, and every read
//! of the clusters' logs ended once the client goes away.

use std::time::Duration;

use kernel::testkit::eventually;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::strategies::{A, B, two_clusters};

/// How many followed logs the platform still reads (started minus ended).
fn logs_being_followed() -> i64 {
    let metrics = kernel::telemetry::render_metrics();
    let count = |event: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("paas_federation_log_follows_total{{event=\"{event}\"}}")))
            .and_then(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
            .unwrap_or(0)
    };
    count("started") - count("ended")
}

#[tokio::test]
async fn following_logs_streams_every_pods_new_lines_as_events_until_the_client_goes_away() {
    let w = two_clusters(&[]).await;
    let (v1, _) = w.gray_versions("lf").await;
    let placement = json!({"explicit": [{"cluster": A, "replicas": 1}, {"cluster": B, "replicas": 1}]});
    let (status, app) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(json!({"name": "lf", "environment": "test", "template_version_id": v1, "placement": placement})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let app = app["id"].as_str().unwrap().to_string();
    w.release_state(&app, 1, "succeeded").await;

    let (status, problem) = w
        .send(
            Method::GET,
            &format!("/api/v1/applications/{app}/logs?service=nope&follow=true"),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("service")),
        "a bad request is a problem, not a stream"
    );

    let mut r =
        w.p.admin(
            Method::GET,
            &format!("/api/v1/applications/{app}/logs?service=web&tail=1&follow=true"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap(),
        "text/event-stream"
    );
    // Each event's data is `cluster/pod line`; the simulated servers write
    // 20 lines when they start, then one a second while followed.
    let mut text = String::new();
    let mut events: Vec<String> = Vec::new();
    let enough = |events: &[String]| {
        let from = |cluster: &str| events.iter().any(|e| e.starts_with(&format!("{cluster}/lf-web-")));
        let new = events
            .iter()
            .filter(|e| !e.contains("simulated log line 20") && e.contains("simulated log line"))
            .count();
        from(A) && from(B) && new >= 2
    };
    tokio::time::timeout(Duration::from_secs(30), async {
        while !enough(&events) {
            let chunk = r.chunk().await.unwrap().expect("the stream stays open");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                events.extend(
                    event
                        .lines()
                        .filter_map(|l| l.strip_prefix("data: "))
                        .map(str::to_string),
                );
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not every pod's new lines within 30s: {events:#?}"));
    assert!(
        events
            .iter()
            .all(|e| e.starts_with(&format!("{A}/lf-web-")) || e.starts_with(&format!("{B}/lf-web-"))),
        "every line is prefixed cluster/pod: {events:#?}"
    );
    assert!(
        events.iter().any(|e| e.contains("simulated log line 20")),
        "the tail comes first: {events:#?}"
    );
    assert_eq!(logs_being_followed(), 2, "one log per pod is being read");

    drop(r);
    eventually(Duration::from_secs(30), "every followed log ended", || async {
        (logs_being_followed() == 0).then_some(())
    })
    .await;
}
