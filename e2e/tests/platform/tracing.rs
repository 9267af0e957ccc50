use e2e::Platform;
use kernel::testkit::eventually;
use prost::Message;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn the_callers_trace_flows_from_the_gateway_through_grpc_into_the_event() {
    let p = Platform::start().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = p
        .admin(Method::POST, "/api/v1/tenants")
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({"name": "traced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let tenant: Value = r.json().await.unwrap();

    let bus = kernel::event::Bus::connect(&p.settings).await.unwrap();
    let stream = bus.ensure_stream().await.unwrap();
    let subject = bus.subject("tenancy.tenant.created");
    let message = eventually(
        std::time::Duration::from_secs(15),
        "the event reaching JetStream",
        || async { stream.get_last_raw_message_by_subject(&subject).await.ok() },
    )
    .await;
    let envelope = paas_proto::v1::EventEnvelope::decode(message.payload.as_ref()).unwrap();
    assert_eq!(envelope.tenant_id, tenant["id"].as_str().unwrap());
    assert!(
        envelope.traceparent.starts_with(&format!("00-{trace_id}-")),
        "the event carries the caller's trace: {}",
        envelope.traceparent
    );
    let header = message
        .headers
        .get("traceparent")
        .map(std::string::ToString::to_string)
        .unwrap_or_default();
    assert!(
        header.starts_with(&format!("00-{trace_id}-")),
        "and so does its header: {header}"
    );
}
