use std::time::Duration;

use crate::helpers::Scratch;

const WITHIN: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_committed_change_is_delivered_once_and_a_rolled_back_one_never() {
    let s = Scratch::new().await;
    let (count, _) = s.spawn_consumer("once");
    s.spawn_relay();

    let kept = s.write_note("kept", true).await;
    s.write_note("rolled back", false).await;

    let handled = s.until_handled(1, WITHIN).await;
    // Everything published has been handled before judging.
    s.until_settled("once", WITHIN).await;
    assert_eq!(handled, vec![(kept, "kept".to_string())]);
    assert_eq!(s.handled().await.len(), 1);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_event_committed_while_the_relay_is_down_is_delivered_when_it_returns() {
    let s = Scratch::new().await;
    let (_, _) = s.spawn_consumer("late-relay");
    let id = s.write_note("waiting", true).await;
    // The consumer is up and pulling before judging that it got nothing.
    kernel::testkit::eventually(WITHIN, "the durable consumer", || async {
        let stream = s.bus.ensure_stream().await.unwrap();
        stream.consumer_info("late-relay").await.ok().map(|_| ())
    })
    .await;
    assert!(s.handled().await.is_empty(), "nothing can be delivered without a relay");
    assert_eq!(s.relay().backlog().await.unwrap(), 1);

    s.spawn_relay();
    assert_eq!(s.until_handled(1, WITHIN).await, vec![(id, "waiting".to_string())]);
    assert_eq!(s.relay().backlog().await.unwrap(), 0);
}

#[tokio::test]
async fn a_relay_killed_between_publish_and_mark_delivers_exactly_once_after_restart() {
    let s = Scratch::new().await;
    let (count, _) = s.spawn_consumer("killed-relay");
    let ids = [s.write_note("a", true).await, s.write_note("b", true).await];

    // The relay publishes, then dies before it marks the rows sent: its
    // transaction is dropped, so the rows are still unsent.
    let relay = s.relay();
    let claim = relay.claim().await.unwrap();
    assert_eq!(claim.len(), 2);
    claim.publish(&s.bus).await.unwrap();
    drop(claim);
    assert_eq!(relay.backlog().await.unwrap(), 2, "the dead relay marked nothing");

    // A new relay publishes the same rows again.
    s.spawn_relay();
    let handled = s.until_handled(2, WITHIN).await;
    s.until_settled("killed-relay", WITHIN).await;

    let mut got: Vec<_> = s.handled().await.into_iter().map(|(id, _)| id).collect();
    got.sort();
    let mut want = ids.to_vec();
    want.sort();
    assert_eq!(got, want, "each event handled exactly once: {handled:?}");
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(
        s.stream_messages().await,
        2,
        "JetStream dropped the second publication by Nats-Msg-Id"
    );
    assert_eq!(relay.backlog().await.unwrap(), 0);
}

#[tokio::test]
async fn a_redelivered_event_is_absorbed_by_the_inbox() {
    let s = Scratch::new().await;
    let (count, stop) = s.spawn_consumer("restarted-consumer");
    s.spawn_relay();
    let first = s.write_note("first", true).await;
    s.until_handled(1, WITHIN).await;

    // The consumer stops; a second durable on the same inbox name starts from
    // the beginning of the stream, as a consumer recreated after its
    // JetStream state was lost would.
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stream = s.bus.ensure_stream().await.unwrap();
    stream.delete_consumer("restarted-consumer").await.unwrap();
    let (count2, _) = s.spawn_consumer("restarted-consumer");
    let second = s.write_note("second", true).await;

    let handled = s.until_handled(2, WITHIN).await;
    s.until_settled("restarted-consumer", WITHIN).await;
    assert_eq!(s.handled().await.len(), 2, "{handled:?}");
    assert_eq!(
        handled.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![first, second]
    );
    use std::sync::atomic::Ordering::SeqCst;
    assert_eq!(count.load(SeqCst) + count2.load(SeqCst), 2);
}

#[tokio::test]
async fn events_keep_commit_order_through_the_relay() {
    let s = Scratch::new().await;
    s.spawn_consumer("ordered");
    s.spawn_relay();
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(s.write_note(&format!("n{i}"), true).await);
    }
    let handled = s.until_handled(50, WITHIN).await;
    assert_eq!(handled.into_iter().map(|(id, _)| id).collect::<Vec<_>>(), ids);
}

#[tokio::test]
async fn a_failing_event_is_retried_alone_while_its_batch_commits_and_poison_is_dropped() {
    let s = Scratch::new().await;
    // Write first, relay afterwards, so they tend to arrive in one batch.
    let ids = [
        s.write_note("a", true).await,
        s.write_note("fail-twice", true).await,
        s.write_note("poison", true).await,
        s.write_note("b", true).await,
    ];
    let (count, _) = s.spawn_consumer("failing");
    s.spawn_relay();

    let handled = s.until_handled(3, WITHIN).await;
    // The retried event and the poison are settled (acked or terminated).
    s.until_settled("failing", WITHIN).await;
    let handled_now = s.handled().await;
    assert_eq!(handled_now.len(), 3, "no partial writes and no poison: {handled_now:?}");
    let texts: Vec<&str> = handled.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        ["a", "b", "fail-twice"],
        "the failed event came back after the others committed"
    );
    assert!(!handled_now.iter().any(|(id, _)| *id == ids[2]));
    // "a" also ran in the rolled-back batch; only its committed run counts.
    assert!(count.load(std::sync::atomic::Ordering::SeqCst) >= 3);
}
