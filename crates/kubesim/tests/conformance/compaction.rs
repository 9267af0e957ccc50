//! The watch window as a real API server keeps it: compacted after
//! start-up and periodically, so a watch from an older resourceVersion gets
//! 410 Gone "too old resource version", and kube-runtime's watcher relists
//! and carries on.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kernel::testkit::eventually;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};

use crate::helpers::{configmap, spawn, spawn_with};

async fn first_event(cms: &Api<ConfigMap>, rv: &str) -> Result<Option<WatchEvent<ConfigMap>>, kube::Error> {
    let mut events = cms.watch(&WatchParams::default().timeout(1), rv).await?.boxed();
    events.try_next().await
}

fn is_gone(result: &Result<Option<WatchEvent<ConfigMap>>, kube::Error>) -> bool {
    match result {
        Ok(Some(WatchEvent::Error(status))) => {
            status.code == 410 && status.reason == "Expired" && status.message.starts_with("too old resource version")
        }
        Err(kube::Error::Api(status)) => status.code == 410,
        _ => false,
    }
}

/// Start-up is compacted: a watch from resourceVersion 1 does not replay
/// the cluster's creation but gets 410.
#[tokio::test]
async fn a_watch_from_before_start_up_is_too_old() {
    let t = spawn().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let result = first_event(&cms, "1").await;
    assert!(is_gone(&result), "{result:?}");
}

/// Every compaction interval the history up to the previous compaction goes:
/// a resourceVersion that was fine becomes too old, while a reflector keeps
/// up through the relist.
#[tokio::test]
async fn periodic_compaction_expires_old_resource_versions_and_watchers_relist() {
    let t = spawn_with(|mut c| {
        c.compaction_interval = Some(Duration::from_millis(300));
        c
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(cms.clone(), watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));

    let old = cms
        .create(&PostParams::default(), &configmap("early", &[]))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    assert!(
        !is_gone(&first_event(&cms, &old).await),
        "fresh resourceVersions are served"
    );
    cms.create(&PostParams::default(), &configmap("late", &[]))
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "the old resourceVersion compacted", || async {
        is_gone(&first_event(&cms, &old).await).then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "the reflector holds both", || async {
        let mut names: Vec<String> = reader.state().iter().filter_map(|c| c.metadata.name.clone()).collect();
        names.sort();
        (names == ["early", "late"]).then_some(())
    })
    .await;
    task.abort();
}
