use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kernel::testkit::eventually;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kubesim::{Fault, WriteOptions, resource};
use serde_json::json;

use crate::helpers::{configmap, spawn};

fn names(store: &reflector::Store<ConfigMap>) -> Vec<String> {
    let mut names: Vec<String> = store.state().iter().filter_map(|c| c.metadata.name.clone()).collect();
    names.sort();
    names
}

/// kube-runtime's watcher (list, then watch from the list's
/// resourceVersion with bookmarks) keeps a reflector in sync through
/// creates, updates and deletes, and relists after a 410 Gone when its
/// resourceVersion has been compacted away.
#[tokio::test]
async fn a_reflector_stays_in_sync_through_changes_and_a_forced_410() {
    let t = spawn().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(cms.clone(), watcher::Config::default().page_size(2)))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));

    for i in 0..3 {
        cms.create(&PostParams::default(), &configmap(&format!("cm-{i}"), &[]))
            .await
            .unwrap();
    }
    let expect = |want: Vec<&str>| {
        let reader = reader.clone();
        let want: Vec<String> = want.into_iter().map(String::from).collect();
        async move {
            eventually(Duration::from_secs(10), &format!("reflector holds {want:?}"), || {
                let reader = reader.clone();
                let want = want.clone();
                async move { (names(&reader) == want).then_some(()) }
            })
            .await;
        }
    };
    expect(vec!["cm-0", "cm-1", "cm-2"]).await;
    cms.patch(
        "cm-1",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "key": "changed" } })),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "update seen", || async {
        reader
            .get(&reflector::ObjectRef::new("cm-1").within("default"))
            .filter(|c| c.data.as_ref().is_some_and(|d| d["key"] == "changed"))
            .map(|_| ())
    })
    .await;
    cms.delete("cm-0", &DeleteParams::default()).await.unwrap();
    expect(vec!["cm-1", "cm-2"]).await;

    // Cut the watch, change things behind its back, compact: the resumed
    // watch gets 410 and the watcher must relist.
    t.cluster.faults().set(Fault::Partition);
    let addr = t.cluster.addr();
    eventually(Duration::from_secs(2), "the partition cutting the port", || async {
        tokio::net::TcpStream::connect(addr).await.is_err().then_some(())
    })
    .await;
    t.cluster
        .store()
        .create(
            resource::CONFIGMAPS,
            "default",
            json!({ "metadata": { "name": "behind" } }),
            &WriteOptions::by("test"),
        )
        .unwrap();
    t.cluster
        .store()
        .delete(resource::CONFIGMAPS, "default", "cm-2", false, false)
        .unwrap();
    t.cluster.store().compact();
    t.cluster.faults().recover();
    expect(vec!["behind", "cm-1"]).await;
    task.abort();
}

/// A watch from a resourceVersion older than the window gets one ERROR event
/// with a 410 Expired Status, as the real watch cache answers.
#[tokio::test]
async fn watching_from_a_compacted_resource_version_gets_an_expired_error_event() {
    let t = spawn().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let first = cms.create(&PostParams::default(), &configmap("a", &[])).await.unwrap();
    cms.create(&PostParams::default(), &configmap("b", &[])).await.unwrap();
    t.cluster.store().compact();
    let rv = first.metadata.resource_version.unwrap();
    let mut events = cms.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    match events.try_next().await {
        Ok(Some(WatchEvent::Error(status))) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
        }
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 410),
        other => panic!("expected a 410 error event, got {other:?}"),
    }
}

/// Watch from a resourceVersion replays later changes in order (ADDED,
/// MODIFIED, DELETED), sends bookmarks when allowed, and ends after
/// timeoutSeconds.
#[tokio::test]
async fn watch_from_a_resource_version_replays_changes_then_bookmarks_and_times_out() {
    let t = spawn().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let start = cms
        .create(&PostParams::default(), &configmap("before", &[]))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    cms.create(&PostParams::default(), &configmap("w", &[("app", "x")]))
        .await
        .unwrap();
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "k": "2" } })),
    )
    .await
    .unwrap();
    cms.delete("w", &DeleteParams::default()).await.unwrap();
    let params = WatchParams::default().labels("app=x").timeout(2);
    let events: Vec<_> = cms.watch(&params, &start).await.unwrap().try_collect().await.unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Bookmark(_) => "BOOKMARK",
            WatchEvent::Error(_) => "ERROR",
        })
        .collect();
    assert_eq!(&kinds[..3], ["ADDED", "MODIFIED", "DELETED"]);
    assert!(
        kinds[3..].iter().all(|k| *k == "BOOKMARK") && kinds.len() > 3,
        "{kinds:?}"
    );
}

/// With a label selector, an object whose labels stop matching is DELETED
/// for the watch and one that starts matching is ADDED, as the API server's
/// watch cache reports them.
#[tokio::test]
async fn objects_leaving_and_entering_a_selector_are_deleted_and_added() {
    let t = spawn().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let start = cms
        .create(&PostParams::default(), &configmap("m", &[("app", "x")]))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    cms.patch(
        "m",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "app": "y" } } })),
    )
    .await
    .unwrap();
    cms.patch(
        "m",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "app": "x" } } })),
    )
    .await
    .unwrap();
    let params = WatchParams::default().labels("app=x").timeout(1).disable_bookmarks();
    let events: Vec<_> = cms.watch(&params, &start).await.unwrap().try_collect().await.unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Modified(_) => "MODIFIED",
            _ => "OTHER",
        })
        .collect();
    assert_eq!(kinds, ["DELETED", "ADDED"]);
}

/// A cluster-wide watch with a label selector (`GET /api/v1/configmaps?watch=1&labelSelector=...`,
/// as kube-runtime's `watcher` over `Api::all` makes it) lists and then
/// streams the matching objects of every namespace and nothing else, as
/// the API server does for namespaced kinds watched across namespaces.
#[tokio::test]
async fn a_cluster_wide_watcher_with_a_label_selector_sees_matching_objects_in_every_namespace() {
    let t = spawn().await;
    let all: Api<ConfigMap> = Api::all(t.client.clone());
    let default: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let system: Api<ConfigMap> = Api::namespaced(t.client.clone(), "kube-system");
    default
        .create(&PostParams::default(), &configmap("before", &[("owner", "fed")]))
        .await
        .unwrap();
    default
        .create(&PostParams::default(), &configmap("other", &[("owner", "else")]))
        .await
        .unwrap();
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(all, watcher::Config::default().labels("owner=fed")))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    system
        .create(&PostParams::default(), &configmap("after", &[("owner", "fed")]))
        .await
        .unwrap();
    system
        .create(&PostParams::default(), &configmap("unlabelled", &[]))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "both namespaces' labelled objects", || async {
        let mut seen: Vec<(String, String)> = reader
            .state()
            .iter()
            .map(|c| {
                (
                    c.metadata.namespace.clone().unwrap_or_default(),
                    c.metadata.name.clone().unwrap_or_default(),
                )
            })
            .collect();
        seen.sort();
        (seen
            == [
                ("default".to_string(), "before".to_string()),
                ("kube-system".to_string(), "after".to_string()),
            ])
        .then_some(())
    })
    .await;
    task.abort();
}

/// Under the `NoWatch` fault (a proxy that does not pass long-lived
/// streams) watches get 503 and open ones end, while lists and gets are
/// served.
#[tokio::test]
async fn the_no_watch_fault_refuses_watches_and_serves_everything_else() {
    let t = spawn().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    cms.create(&PostParams::default(), &configmap("a", &[])).await.unwrap();
    let mut open = cms.watch(&WatchParams::default(), "0").await.unwrap().boxed();
    assert!(matches!(open.try_next().await, Ok(Some(WatchEvent::Added(_)))));
    t.cluster.faults().set(Fault::NoWatch);
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = open.try_next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the open watch ended");
    // Without the client's retries of 503s, to see the answer itself.
    let kc = kube::config::Kubeconfig::read_from(t.cluster.kubeconfig_path()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    config.default_retry = false;
    let once: Api<ConfigMap> = Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
    match once.watch(&WatchParams::default(), "0").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 503),
        Ok(_) => panic!("a watch was served under NoWatch"),
        Err(other) => panic!("expected a 503, got {other}"),
    }
    assert_eq!(cms.list(&Default::default()).await.unwrap().items.len(), 1);
    assert!(cms.get("a").await.is_ok());
}
