//! The gRPC watch against a running configs service: every release once, in
//! order, from wherever the watcher resumes.

use std::time::Duration;

use kernel::caller::{Caller, CallerKey, Membership, Role};
use kernel::grpc::{Outgoing, channel, uri};
use kernel::service::Addresses;
use kernel::shutdown::Shutdown;
use kernel::testkit::TestPlatform;
use paas_proto::v1 as pb;
use paas_proto::v1::configs_service_client::ConfigsServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

type Client = ConfigsServiceClient<InterceptedService<Channel, Outgoing>>;

fn client(addr: std::net::SocketAddr, key: &CallerKey, who: &str, tenant: Uuid) -> Client {
    let caller = Caller::user(
        who,
        vec![Membership {
            tenant,
            role: Role::Operator,
        }],
    );
    ConfigsServiceClient::with_interceptor(channel(&uri(addr)).unwrap(), Outgoing::new(key, &caller))
}

async fn next_numbers(stream: &mut tonic::Streaming<pb::ReleaseNotice>, until: u64) -> Vec<u64> {
    let mut seen = Vec::new();
    while seen.last() != Some(&until) {
        let notice = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("a release within 20 s")
            .unwrap()
            .expect("the stream stays open");
        seen.push(notice.number);
    }
    seen
}

#[tokio::test]
async fn a_watcher_gets_every_release_once_in_order_and_resumes_after_its_last() {
    let t = TestPlatform::new().await;
    let shutdown = Shutdown::new();
    let settings = configs::Settings::from_env(&t.env, &t.settings).unwrap();
    let running = configs::start_with(&t.settings, settings, Addresses::ephemeral(), &shutdown)
        .await
        .unwrap();
    let key = CallerKey::new(t.settings.caller_key.clone());
    let tenant = Uuid::now_v7();
    let mut api = client(running.grpc, &key, "user:editor", tenant);
    let set = api
        .create_config_set(pb::CreateConfigSetRequest {
            tenant_id: tenant.to_string(),
            application: "shop".into(),
            environment: "qa".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut from_start = api
        .watch(pb::WatchRequest {
            config_set_id: set.id.clone(),
            after: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for n in 1..=15u64 {
        let draft = api
            .get_draft(pb::GetDraftRequest {
                config_set_id: set.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        api.put_draft_item(pb::PutDraftItemRequest {
            config_set_id: set.id.clone(),
            version: draft.version,
            item: Some(pb::ConfigItem {
                name: "a.properties".into(),
                content: format!("n={n}\n"),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
        let release = api
            .publish(pb::PublishRequest {
                config_set_id: set.id.clone(),
                message: format!("release {n}"),
                version: 0,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(release.number, n);
    }
    assert_eq!(next_numbers(&mut from_start, 15).await, (1..=15).collect::<Vec<_>>());
    let mut resumed = api
        .watch(pb::WatchRequest {
            config_set_id: set.id.clone(),
            after: 12,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_numbers(&mut resumed, 15).await, vec![13, 14, 15]);
    // A rollback is a release like any other.
    api.rollback(pb::RollbackRequest {
        config_set_id: set.id.clone(),
        to: 3,
        message: String::new(),
    })
    .await
    .unwrap();
    assert_eq!(next_numbers(&mut from_start, 16).await, vec![16]);
    assert_eq!(next_numbers(&mut resumed, 16).await, vec![16]);

    // Another tenant cannot watch it.
    let mut stranger = client(running.grpc, &key, "user:stranger", Uuid::now_v7());
    let refused = stranger
        .watch(pb::WatchRequest {
            config_set_id: set.id.clone(),
            after: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound);
    shutdown.trigger();
}
