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

async fn publish_n(api: &mut Client, set: &str, n: u64) {
    let draft = api
        .get_draft(pb::GetDraftRequest {
            config_set_id: set.into(),
        })
        .await
        .unwrap()
        .into_inner();
    api.put_draft_item(pb::PutDraftItemRequest {
        config_set_id: set.into(),
        version: draft.version,
        item: Some(pb::ConfigItem {
            name: "a.properties".into(),
            content: format!("n={n}\n"),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    api.publish(pb::PublishRequest {
        config_set_id: set.into(),
        message: format!("release {n}"),
        version: 0,
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_watcher_far_behind_catches_up_from_the_table_then_follows_gray_releases_by_its_labels() {
    let t = TestPlatform::new().await;
    let shutdown = Shutdown::new();
    let settings = configs::Settings::from_env(&t.env, &t.settings).unwrap();
    let running = configs::start_with(&t.settings, settings, Addresses::ephemeral(), &shutdown)
        .await
        .unwrap();
    let key = CallerKey::new(t.settings.caller_key.clone());
    let tenant = Uuid::now_v7();
    let mut api = client(running.grpc, &key, "user:editor", tenant);
    let mut second = client(running.grpc, &key, "user:reviewer", tenant);
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
    // More releases than a shared snapshot holds.
    let total = u64::try_from(configs::watch::WINDOW).unwrap() + 20;
    for n in 1..=total {
        publish_n(&mut api, &set.id, n).await;
    }
    let watch = |labels: &str| pb::WatchRequest {
        config_set_id: set.id.clone(),
        after: 0,
        instance: String::new(),
        labels: labels.into(),
        ip: String::new(),
    };
    let mut canary = api.watch(watch("zone=a")).await.unwrap().into_inner();
    let mut steady = api.watch(watch("zone=b")).await.unwrap().into_inner();
    assert_eq!(next_numbers(&mut canary, total).await, (1..=total).collect::<Vec<_>>());
    assert_eq!(next_numbers(&mut steady, total).await, (1..=total).collect::<Vec<_>>());

    // A gray release for zone=a, then a full one after it is promoted.
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
            content: "n=gray\n".into(),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    let gray = second
        .publish_gray(pb::PublishGrayRequest {
            config_set_id: set.id.clone(),
            message: "canary".into(),
            selector: "zone=a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(gray.number, total + 1);
    let notice = tokio::time::timeout(Duration::from_secs(20), canary.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((notice.number, notice.kind.as_str()), (total + 1, "gray"));
    second
        .promote_gray(pb::DecideGrayRequest {
            config_set_id: set.id.clone(),
            number: total + 1,
        })
        .await
        .unwrap();
    let notice = tokio::time::timeout(Duration::from_secs(20), steady.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((notice.number, notice.kind.as_str()), (total + 1, "promoted"));
    publish_n(&mut api, &set.id, total + 2).await;
    // The canary's next notice is the full release after: nothing twice.
    assert_eq!(next_numbers(&mut canary, total + 2).await, vec![total + 2]);
    assert_eq!(next_numbers(&mut steady, total + 2).await, vec![total + 2]);
    shutdown.trigger();
}

/// The set ids of the next layout on `stream`.
async fn next_layout(stream: &mut tonic::Streaming<pb::Layout>) -> Vec<String> {
    let layout = tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("a layout within 20 s")
        .unwrap()
        .expect("the stream stays open");
    layout.sets.into_iter().map(|s| s.config_set_id).collect()
}

#[tokio::test]
async fn a_layout_watcher_hears_of_sets_created_linked_and_deleted_after_it_started() {
    let t = TestPlatform::new().await;
    let shutdown = Shutdown::new();
    let settings = configs::Settings::from_env(&t.env, &t.settings).unwrap();
    let running = configs::start_with(&t.settings, settings, Addresses::ephemeral(), &shutdown)
        .await
        .unwrap();
    let key = CallerKey::new(t.settings.caller_key.clone());
    let tenant = Uuid::now_v7();
    let mut api = client(running.grpc, &key, "user:editor", tenant);
    let create = |application: &str, environment: &str, shared: bool| pb::CreateConfigSetRequest {
        tenant_id: tenant.to_string(),
        application: application.into(),
        environment: environment.into(),
        shared,
        ..Default::default()
    };
    let base = api
        .create_config_set(create("shop", "", false))
        .await
        .unwrap()
        .into_inner()
        .id;
    let mut layout = api
        .watch_layout(pb::WatchLayoutRequest {
            tenant_id: tenant.to_string(),
            application: "shop".into(),
            environment: "production".into(),
            config_set_ids: vec![base.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // Another application's set is not part of it; the environment level is.
    api.create_config_set(create("billing", "production", false))
        .await
        .unwrap();
    let production = api
        .create_config_set(create("shop", "production", false))
        .await
        .unwrap()
        .into_inner()
        .id;
    assert_eq!(next_layout(&mut layout).await, vec![base.clone(), production.clone()]);

    // A shared set counts once linked, lowest first.
    let common = api
        .create_config_set(create("common", "", true))
        .await
        .unwrap()
        .into_inner()
        .id;
    api.set_shared_links(pb::SetSharedLinksRequest {
        tenant_id: tenant.to_string(),
        application: "shop".into(),
        shared: vec!["common".into()],
    })
    .await
    .unwrap();
    assert_eq!(
        next_layout(&mut layout).await,
        vec![common.clone(), base.clone(), production.clone()]
    );

    // A deleted set leaves it.
    api.delete_config_set(pb::DeleteConfigSetRequest { id: production })
        .await
        .unwrap();
    assert_eq!(next_layout(&mut layout).await, vec![common, base.clone()]);

    // Another tenant cannot watch it.
    let mut stranger = client(running.grpc, &key, "user:stranger", Uuid::now_v7());
    let refused = stranger
        .watch_layout(pb::WatchLayoutRequest {
            tenant_id: tenant.to_string(),
            application: "shop".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound);
    shutdown.trigger();
}
