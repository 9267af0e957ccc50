//! Notifications (signed webhooks, e-mail through a real SMTP server) and
//! image push triggers.

use std::time::Duration;

use devops::image_trigger::TagPushes;
use kernel::caller::Role;
use kernel::event::{Event, EventType};
use kernel::inbox::Handler;
use kernel::testkit::eventually;
use paas_proto::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{GitServer, HookReceiver, Received, SmtpSink, World, member};

/// A gate only bob passes, then a step that fails.
const GATE_THEN_FAIL: &str = concat!(
    "stages:\n",
    "  - name: verify\n",
    "    steps:\n",
    "      - name: gate\n",
    "        kind: approval\n",
    "        approvers: {users: [bob]}\n",
    "      - name: broken\n",
    "        kind: run\n",
    "        commands: ['echo about to fail', 'exit 3']\n",
);

/// Build everywhere, and a production stage for `v*` tags with no deploy
/// step of its own.
const TAGS_TO_PRODUCTION: &str = concat!(
    "stages:\n",
    "  - name: build\n",
    "    steps:\n",
    "      - name: compile\n",
    "        kind: run\n",
    "        commands: [./build.sh]\n",
    "  - name: production\n",
    "    environment: production\n",
    "    when:\n",
    "      tags: ['v*']\n",
    "    steps:\n",
    "      - name: publish\n",
    "        kind: run\n",
    "        commands: ['echo published']\n",
);

/// Whether a webhook request's signature is the body's HMAC under `secret`.
fn signed(request: &Received, secret: &str) -> bool {
    request.header("x-paas-signature-256") == Some(devops::webhook::sign(secret, &request.body).as_str())
}

async fn webhook_target(
    w: &World,
    pipeline: &pb::Pipeline,
    url: &str,
    events: &[&str],
) -> (pb::NotificationTarget, String) {
    let created = w
        .dev()
        .create_notification_target(pb::CreateNotificationTargetRequest {
            pipeline_id: pipeline.id.clone(),
            kind: "webhook".into(),
            url: url.into(),
            events: events.iter().map(|e| (*e).to_string()).collect(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    (created.target.unwrap(), created.secret)
}

#[tokio::test]
async fn a_waiting_gate_and_a_failed_run_reach_a_signed_webhook_retried_and_an_email() {
    let smtp = SmtpSink::start().await;
    let hooks = HookReceiver::start(1).await;
    let w = World::with_smtp(smtp.settings()).await;
    let git = GitServer::start().await;
    let _runner = w.runner("r1", 1).await;
    let pipeline = w.pipeline(&git, GATE_THEN_FAIL).await;
    git.push("main").await;
    let (target, secret) = webhook_target(&w, &pipeline, &hooks.url, &["approval.needed", "run.failed"]).await;
    assert_eq!(secret.len(), 48, "the secret is shown at creation");
    let admin = member(w.tenant, "ada", Role::TenantAdmin);
    let mail = w
        .client(&admin)
        .create_notification_target(pb::CreateNotificationTargetRequest {
            tenant_id: w.tenant.to_string(),
            kind: "email".into(),
            address: "ops@example.com".into(),
            events: vec!["run.failed".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .target
        .unwrap();
    assert!(mail.pipeline_id.is_empty(), "a tenant-wide target");

    let run = w
        .dev()
        .start_run(pb::StartRunRequest {
            pipeline_id: pipeline.id.clone(),
            git_ref: "refs/heads/main".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let gate = w.step_reaches(&run.id, "gate", "waiting").await;

    // The first POST is answered 500; the retry is delivered.
    let requests = eventually(
        Duration::from_secs(30),
        "approval.needed delivered after a retry",
        || async {
            let r = hooks.requests();
            (r.len() >= 2).then_some(r)
        },
    )
    .await;
    for r in &requests[..2] {
        assert_eq!(r.header("x-paas-event"), Some("approval.needed"));
        assert!(signed(r, &secret), "signed with the target's secret");
        assert_eq!(r.json()["run_id"], run.id.as_str());
        assert_eq!(r.json()["step"], "gate");
    }
    assert_eq!(
        requests[0].header("x-paas-delivery"),
        requests[1].header("x-paas-delivery"),
        "a retry is the same delivery"
    );
    // The receiver answers before the courier records the outcome.
    let sent = eventually(Duration::from_secs(30), "the delivery is recorded", || async {
        let sent = w
            .dev()
            .list_notifications(pb::ListNotificationsRequest {
                target_id: target.id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .notifications;
        (sent.len() == 1 && sent[0].state == "delivered").then_some(sent)
    })
    .await;
    assert_eq!(sent[0].attempts, 2);
    assert!(sent[0].last_error.is_empty());

    w.client(&member(w.tenant, "bob", Role::Developer))
        .decide_approval(pb::DecideApprovalRequest {
            step_id: gate.id,
            approve: true,
            comment: "go".into(),
        })
        .await
        .unwrap();
    let failed = w.run_reaches(&run.id, "failed").await;

    let requests = eventually(Duration::from_secs(30), "run.failed delivered", || async {
        let r = hooks.requests();
        (r.len() >= 3).then_some(r)
    })
    .await;
    let last = &requests[2];
    assert_eq!(last.header("x-paas-event"), Some("run.failed"));
    assert!(signed(last, &secret));
    assert_eq!(last.json()["message"], failed.message.as_str());
    let message = eventually(Duration::from_secs(30), "the mail arrives", || async {
        smtp.messages().into_iter().next()
    })
    .await;
    assert!(message.contains("To: ops@example.com"), "{message}");
    assert!(message.contains("From: paas@example.com"), "{message}");
    assert!(message.contains("Subject: [paas] sample #1"), "{message}");
    assert!(message.contains("failed"), "{message}");
    assert!(message.contains(&run.id), "{message}");
    // Nothing else is sent: the mail target takes failures only.
    eventually(Duration::from_secs(10), "the courier is idle", || async {
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications WHERE state <> 'delivered'")
            .fetch_one(&w.pool)
            .await
            .unwrap();
        (pending == 0).then_some(())
    })
    .await;
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(hooks.requests().len(), 3);
}

#[tokio::test]
async fn a_tag_reaching_production_tells_of_the_deploy_and_nothing_else() {
    let hooks = HookReceiver::start(0).await;
    let w = World::new().await;
    let git = GitServer::start().await;
    let _runner = w.runner("r1", 2).await;
    let pipeline = w.pipeline(&git, TAGS_TO_PRODUCTION).await;
    let (_, secret) = webhook_target(&w, &pipeline, &hooks.url, &[]).await;
    git.tag("v1.2.0").await;
    let commit = git.push("v1.2.0").await;
    git.push("main").await;

    let start = |git_ref: &str| {
        let mut c = w.dev();
        let request = pb::StartRunRequest {
            pipeline_id: pipeline.id.clone(),
            git_ref: git_ref.into(),
            ..Default::default()
        };
        async move { c.start_run(request).await.unwrap().into_inner() }
    };
    let branch = start("refs/heads/main").await;
    w.run_reaches(&branch.id, "succeeded").await;
    let tag = start("refs/tags/v1.2.0").await;
    w.run_reaches(&tag.id, "succeeded").await;

    let request = eventually(Duration::from_secs(30), "production.deployed delivered", || async {
        hooks.requests().into_iter().next()
    })
    .await;
    assert_eq!(request.header("x-paas-event"), Some("production.deployed"));
    assert!(signed(&request, &secret));
    let body = request.json();
    assert_eq!(body["run_id"], tag.id.as_str());
    assert_eq!(body["version"], "1.2.0");
    assert_eq!(body["commit"], commit.as_str());
    eventually(Duration::from_secs(10), "every event was looked at", || async {
        let handled: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE consumer = 'devops-notifications'")
            .fetch_one(&w.pool)
            .await
            .unwrap();
        let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE subject LIKE 'devops.%'")
            .fetch_one(&w.pool)
            .await
            .unwrap();
        (handled >= recorded).then_some(())
    })
    .await;
    assert_eq!(hooks.requests().len(), 1, "the main branch's run deployed nothing");
}

#[tokio::test]
async fn targets_are_checked_scoped_to_their_tenant_and_need_smtp_for_mail() {
    let w = World::new().await;
    let git = GitServer::start().await;
    let pipeline = w.pipeline(&git, TAGS_TO_PRODUCTION).await;
    let create = |kind: &str, url: &str, address: &str, events: Vec<String>| pb::CreateNotificationTargetRequest {
        pipeline_id: pipeline.id.clone(),
        kind: kind.into(),
        url: url.into(),
        address: address.into(),
        events,
        ..Default::default()
    };
    let bad = w
        .dev()
        .create_notification_target(create("webhook", "file:///etc/passwd", "", vec![]))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("url"), "{}", bad.message());
    let bad = w
        .dev()
        .create_notification_target(create("webhook", "http://h.example/x", "", vec!["run.started".into()]))
        .await
        .unwrap_err();
    assert!(bad.message().contains("events[0]"), "{}", bad.message());
    let no_smtp = w
        .dev()
        .create_notification_target(create("email", "", "ops@example.com", vec![]))
        .await
        .unwrap_err();
    assert_eq!(no_smtp.code(), Code::FailedPrecondition, "{}", no_smtp.message());
    let tenant_wide = w
        .dev()
        .create_notification_target(pb::CreateNotificationTargetRequest {
            tenant_id: w.tenant.to_string(),
            kind: "webhook".into(),
            url: "http://h.example/x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        tenant_wide.code(),
        Code::PermissionDenied,
        "tenant-wide targets are for administrators"
    );
    let target = w
        .dev()
        .create_notification_target(create("webhook", "http://h.example/x", "", vec![]))
        .await
        .unwrap()
        .into_inner()
        .target
        .unwrap();
    assert_eq!(target.events, ["run.failed", "approval.needed", "production.deployed"]);

    let stranger = w.client(&member(Uuid::now_v7(), "eve", Role::TenantAdmin));
    let hidden = stranger
        .clone()
        .list_notification_targets(pb::ListNotificationTargetsRequest {
            pipeline_id: pipeline.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    let unfiltered = pb::ListNotificationTargetsRequest::default();
    let seen = stranger
        .clone()
        .list_notification_targets(unfiltered.clone())
        .await
        .unwrap()
        .into_inner()
        .targets;
    assert!(
        seen.is_empty(),
        "without a filter a stranger sees none of the tenant's targets: {seen:?}"
    );
    let seen = w
        .dev()
        .list_notification_targets(unfiltered)
        .await
        .unwrap()
        .into_inner()
        .targets;
    assert_eq!(
        seen.len(),
        1,
        "without a filter a member sees its tenant's pipeline targets too"
    );
    let hidden = stranger
        .clone()
        .delete_notification_target(pb::DeleteNotificationTargetRequest { id: target.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    let hidden = stranger
        .clone()
        .list_notifications(pb::ListNotificationsRequest {
            target_id: target.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    let listed = w
        .dev()
        .list_notification_targets(pb::ListNotificationTargetsRequest {
            pipeline_id: pipeline.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .targets;
    assert_eq!(listed.len(), 1);
    w.dev()
        .delete_notification_target(pb::DeleteNotificationTargetRequest { id: target.id })
        .await
        .unwrap();
}

/// Records an `images.tag.pushed` event as the image catalog's outbox does,
/// published by the relay to the same JetStream stream; returns its id.
async fn announce_push(w: &World, tenant: Uuid, repository: &str, tag: &str) -> Uuid {
    let outbox = kernel::outbox::Outbox::new(w.pool.clone());
    let mut tx = w.pool.begin().await.unwrap();
    let pushed = pb::TagChanged {
        tenant_id: tenant.to_string(),
        repository: repository.into(),
        tag: tag.into(),
        digest: format!("sha256:{:064x}", tag.len()),
        state: pb::TagState::Pushed as i32,
        previous_state: 0,
    };
    let id = kernel::outbox::record(
        &mut tx,
        EventType::new("images", "tag", "pushed"),
        Some(tenant),
        &pushed,
    )
    .await
    .unwrap();
    outbox.commit(tx).await.unwrap();
    id
}

const ECHO_IMAGE: &str = concat!(
    "stages:\n",
    "  - name: rebuild\n",
    "    steps:\n",
    "      - name: show\n",
    "        kind: run\n",
    "        commands: ['echo rebuilding on $IMAGE_REPOSITORY:$IMAGE_TAG']\n",
);

#[tokio::test]
async fn an_image_push_runs_the_pipelines_whose_trigger_matches_once_per_event() {
    let w = World::new().await;
    let git = GitServer::start().await;
    let _runner = w.runner("r1", 2).await;
    let pipeline = w.pipeline(&git, ECHO_IMAGE).await;
    git.push("main").await;
    let bad = w
        .dev()
        .create_pipeline_image_trigger(pb::CreatePipelineImageTriggerRequest {
            pipeline_id: pipeline.id.clone(),
            repository: "acme base".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(bad.message().contains("repository"), "{}", bad.message());
    let trigger = w
        .dev()
        .create_pipeline_image_trigger(pb::CreatePipelineImageTriggerRequest {
            pipeline_id: pipeline.id.clone(),
            repository: "acme/base/*".into(),
            tags: "1.*".into(),
            git_ref: "main".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(trigger.git_ref, "refs/heads/main");

    let matching = announce_push(&w, w.tenant, "acme/base/debian", "1.4").await;
    announce_push(&w, w.tenant, "acme/base/debian", "2.0").await;
    announce_push(&w, w.tenant, "acme/shop/web", "1.4").await;
    announce_push(&w, Uuid::now_v7(), "acme/base/debian", "1.5").await;

    let runs = eventually(Duration::from_secs(30), "the image run", || async {
        let runs = w
            .dev()
            .list_runs(pb::ListRunsRequest {
                pipeline_id: pipeline.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .runs;
        (!runs.is_empty()).then_some(runs)
    })
    .await;
    let run = w.run_reaches(&runs[0].id, "succeeded").await;
    assert_eq!(run.trigger, "image");
    assert_eq!(run.triggered_by, "image:acme/base/debian:1.4");
    assert_eq!(run.parameters["IMAGE_TAG"], "1.4");
    let show = w.step(&run, "show").await;
    assert!(show.log.contains("rebuilding on acme/base/debian:1.4"), "{}", show.log);

    // The same event again (a redelivery past the inbox, say) starts nothing.
    let envelope: Vec<u8> = sqlx::query_scalar("SELECT envelope FROM outbox WHERE id = $1")
        .bind(matching)
        .fetch_one(&w.pool)
        .await
        .unwrap();
    let event = Event::decode(&envelope).unwrap();
    let mut tx = w.pool.begin().await.unwrap();
    TagPushes.handle(&mut tx, &event).await.unwrap();
    tx.commit().await.unwrap();
    eventually(Duration::from_secs(10), "all four events were handled", || async {
        let handled: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE consumer = 'devops-image-triggers'")
            .fetch_one(&w.pool)
            .await
            .unwrap();
        (handled >= 4).then_some(())
    })
    .await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE pipeline_id = $1")
        .bind(pipeline.id.parse::<Uuid>().unwrap())
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "one matching push, one run");
    let firings: i64 = sqlx::query_scalar("SELECT count(*) FROM image_trigger_firings")
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert_eq!(firings, 1);
}
