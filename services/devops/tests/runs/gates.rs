//! Approval gates: who may decide, four-eyes in production, rejection; the
//! security gate before production.

use kernel::caller::Role;
use paas_proto::v1 as pb;
use tonic::Code;

use crate::helpers::{GitServer, World, member};

/// A production stage with its approval gate and a deploy, but no build and
/// no security-scan before it.
const UNSCANNED: &str = concat!(
    "environments:\n",
    "  production: {application: calc}\n",
    "stages:\n",
    "  - name: production\n",
    "    environment: production\n",
    "    steps:\n",
    "      - name: release-gate\n",
    "        kind: approval\n",
    "        approvers: {groups: [tenant-admin]}\n",
    "      - name: ship\n",
    "        kind: deploy\n",
);

#[tokio::test]
async fn a_production_gate_needs_two_approvers_and_an_unscanned_deploy_is_refused_by_the_security_gate() {
    let w = World::new().await;
    let git = GitServer::start().await;
    let pipeline = w.pipeline(&git, UNSCANNED).await;
    git.tag("v2.0.0").await;
    git.push("v2.0.0").await;
    let alice = member(w.tenant, "alice", Role::TenantAdmin);
    let run = w
        .client(&alice)
        .start_run(pb::StartRunRequest {
            pipeline_id: pipeline.id.clone(),
            git_ref: "refs/tags/v2.0.0".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let gate = w.step_reaches(&run.id, "release-gate", "waiting").await;
    let decide = |who: &kernel::caller::Caller, approve: bool| {
        let mut c = w.client(who);
        let id = gate.id.clone();
        async move {
            c.decide_approval(pb::DecideApprovalRequest {
                step_id: id,
                approve,
                comment: "looks right".into(),
            })
            .await
        }
    };

    let own = decide(&alice, true).await.unwrap_err();
    assert_eq!(own.code(), Code::PermissionDenied, "{}", own.message());
    let dev = decide(&member(w.tenant, "dan", Role::Developer), true)
        .await
        .unwrap_err();
    assert_eq!(
        dev.code(),
        Code::PermissionDenied,
        "developers are not in the tenant-admin group"
    );
    let one = decide(&member(w.tenant, "bob", Role::TenantAdmin), true)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.approvals.len(), 1);
    let still = w.run(&run.id).await;
    let step = still
        .stages
        .iter()
        .flat_map(|s| &s.steps)
        .find(|s| s.name == "release-gate")
        .unwrap();
    assert_eq!(step.state, "waiting", "one approval of two");
    decide(&member(w.tenant, "carol", Role::TenantAdmin), true)
        .await
        .unwrap();

    w.step_reaches(&run.id, "release-gate", "succeeded").await;
    let run = w.run_reaches(&run.id, "failed").await;
    let ship = w.step(&run, "ship").await;
    assert_eq!(ship.state, "failed");
    assert!(
        ship.message.contains("refused by the security gate"),
        "{}",
        ship.message
    );
    assert!(
        ship.message.contains(devops::scan_gate::PRODUCTION_RULE),
        "the refusal names its rule: {}",
        ship.message
    );
    assert!(run.message.contains("production/ship failed"), "{}", run.message);
    let released: i64 = sqlx::query_scalar("SELECT count(*) FROM step_operations WHERE release_id IS NOT NULL")
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert_eq!(released, 0, "nothing was released");
}

#[tokio::test]
async fn a_rejection_fails_the_gate_with_the_approvers_comment() {
    let w = World::new().await;
    let git = GitServer::start().await;
    let definition = "stages:\n  - name: qa\n    steps:\n      - name: sign-off\n        kind: approval\n        approvers: {users: [quinn]}\n";
    let pipeline = w.pipeline(&git, definition).await;
    git.push("main").await;
    let run = w
        .dev()
        .start_run(pb::StartRunRequest {
            pipeline_id: pipeline.id.clone(),
            git_ref: "main".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let gate = w.step_reaches(&run.id, "sign-off", "waiting").await;
    w.client(&member(w.tenant, "quinn", Role::Viewer))
        .decide_approval(pb::DecideApprovalRequest {
            step_id: gate.id.clone(),
            approve: false,
            comment: "the changelog is missing".into(),
        })
        .await
        .unwrap();
    let run = w.run_reaches(&run.id, "failed").await;
    assert!(
        run.message.contains("rejected by quinn: the changelog is missing"),
        "{}",
        run.message
    );
}
