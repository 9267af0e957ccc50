//! Push -> webhook -> run -> steps on a runner, and what must not happen.

use kernel::caller::Role;
use paas_proto::v1 as pb;
use tonic::Code;

use crate::helpers::{GitServer, World, member};

#[tokio::test]
async fn a_push_and_its_webhook_run_the_repository_pipeline_on_a_real_runner() {
    let w = World::new().await;
    let git = GitServer::start().await;
    let _runner = w.runner("r1", 2).await;
    let pipeline = w.pipeline(&git, "").await;
    let (hook, secret) = w.webhook(&pipeline).await;
    let commit = git.push("main").await;

    let answer = w
        .deliver(&hook, &secret, "d-1", "refs/heads/main", &commit)
        .await
        .unwrap();
    assert_eq!(answer.outcome, "queued");
    let run = w.run_reaches(&answer.run_id, "succeeded").await;

    assert_eq!(run.commit, commit);
    assert_eq!(run.branch, "main");
    assert_eq!(run.version, "0.0.0-build.1");
    let names: Vec<&str> = run.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["build", "verify"], "the production stage is for v* tags only");
    let compile = w.step(&run, "compile").await;
    assert!(compile.log.contains("built calc 0.0.0-build.1 from"), "{}", compile.log);
    let unit = w.step(&run, "unit").await;
    assert_eq!(unit.state, "succeeded");
    assert_eq!((unit.tests_total, unit.tests_failed), (Some(3), Some(0)));
    assert!(unit.log.contains("ok   adds_negative_numbers"), "{}", unit.log);
    let events = w.events().await;
    for subject in [
        "devops.run.queued",
        "devops.run.started",
        "devops.stage.succeeded",
        "devops.step.succeeded",
        "devops.run.succeeded",
    ] {
        assert!(events.iter().any(|e| e == subject), "{subject} in {events:?}");
    }
}

#[tokio::test]
async fn a_failing_unit_test_stops_the_run_before_later_stages() {
    let w = World::new().await;
    let git = GitServer::start().await;
    let _runner = w.runner("r1", 1).await;
    let pipeline = w.pipeline(&git, "").await;
    let (hook, secret) = w.webhook(&pipeline).await;
    git.commit("calc.sh", "#!/bin/sh\necho $(( $1 - $2 ))\n", "subtract by mistake")
        .await;
    git.tag("v1.0.0").await;
    let commit = git.push("v1.0.0").await;

    let answer = w
        .deliver(&hook, &secret, "d-1", "refs/tags/v1.0.0", &commit)
        .await
        .unwrap();
    let run = w.run_reaches(&answer.run_id, "failed").await;

    assert_eq!(run.version, "1.0.0", "a v* tag builds its own version");
    let unit = w.step(&run, "unit").await;
    assert_eq!(unit.state, "failed");
    assert_eq!(
        (unit.tests_total, unit.tests_failed),
        (Some(3), Some(2)),
        "7 - 0 is still 7"
    );
    assert_eq!(unit.test_failures[0].name, "calc.adds_small_numbers");
    assert_eq!(unit.test_failures[0].message, "expected 5, got -1");
    assert!(run.message.contains("verify/unit failed"), "{}", run.message);
    let production = run.stages.iter().find(|s| s.name == "production").unwrap();
    assert_eq!(production.state, "skipped");
    assert!(production.steps.iter().all(|s| s.state == "skipped"));
}

#[tokio::test]
async fn a_replayed_delivery_runs_nothing_twice_and_a_bad_signature_is_refused_and_recorded() {
    let w = World::new().await;
    let git = GitServer::start().await;
    let pipeline = w.pipeline(&git, "").await;
    let (hook, secret) = w.webhook(&pipeline).await;
    let commit = git.push("main").await;

    let first = w
        .deliver(&hook, &secret, "same", "refs/heads/main", &commit)
        .await
        .unwrap();
    let again = w
        .deliver(&hook, &secret, "same", "refs/heads/main", &commit)
        .await
        .unwrap();
    assert_eq!(first.outcome, "queued");
    assert_eq!(again.outcome, "duplicate");
    assert_eq!(again.run_id, first.run_id);

    let forged = w
        .deliver(&hook, "not-the-secret", "other", "refs/heads/main", &commit)
        .await;
    assert_eq!(forged.unwrap_err().code(), Code::Unauthenticated);
    let refused: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE outcome = 'refused'")
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert_eq!(refused, 1, "the refusal is recorded");

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
    assert_eq!(
        runs.len(),
        1,
        "one run for the delivery, none for its replay or the forgery"
    );
}

#[tokio::test]
async fn a_manual_run_passes_its_parameters_and_another_tenant_sees_nothing_of_it() {
    let w = World::new().await;
    let git = GitServer::start().await;
    let _runner = w.runner("r1", 1).await;
    let definition = concat!(
        "stages:\n",
        "  - name: greet\n",
        "    steps:\n",
        "      - name: hello\n",
        "        kind: run\n",
        "        commands: ['echo \"greeting=$GREETING from $PAAS_GIT_REF\"', 'test -z \"$HOME_SECRET\"']\n",
    );
    let pipeline = w.pipeline(&git, definition).await;
    git.push("main").await;
    // A variable of the test process must not reach the step.
    let run = w
        .dev()
        .start_run(pb::StartRunRequest {
            pipeline_id: pipeline.id.clone(),
            git_ref: "main".into(),
            commit: String::new(),
            parameters: [("GREETING".to_string(), "hej".to_string())].into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(run.trigger, "manual");
    assert_eq!(run.triggered_by, "dev");
    let run = w.run_reaches(&run.id, "succeeded").await;
    assert_eq!(
        run.commit,
        git.head().await,
        "the ref's commit is resolved when the run is planned"
    );
    let hello = w.step(&run, "hello").await;
    assert!(hello.log.contains("greeting=hej from refs/heads/main"), "{}", hello.log);

    let stranger = w.client(&member(uuid::Uuid::now_v7(), "eve", Role::TenantAdmin));
    let mut s = stranger.clone();
    assert_eq!(
        s.get_run(pb::GetRunRequest { id: run.id.clone() })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        s.get_step(pb::GetStepRequest { id: hello.id.clone() })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let listed = s
        .list_runs(pb::ListRunsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert!(listed.is_empty());
    let started = s
        .start_run(pb::StartRunRequest {
            pipeline_id: pipeline.id.clone(),
            git_ref: "main".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(started.unwrap_err().code(), Code::NotFound);
    let runners = s
        .list_runners(pb::ListRunnersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .runners;
    assert!(runners.is_empty());
}

#[tokio::test]
async fn a_definition_is_refused_naming_the_path_of_its_wrong_field() {
    let w = World::new().await;
    let git = GitServer::start().await;
    let bad = concat!(
        "stages:\n",
        "  - name: a\n",
        "    steps:\n",
        "      - name: first\n",
        "        kind: run\n",
        "        commands: ['true']\n",
        "  - name: b\n",
        "    steps:\n",
        "      - name: second\n",
        "        kind: run\n",
        "        image: 'Bad Image'\n",
        "        commands: ['true']\n",
    );
    let err = w
        .dev()
        .create_pipeline(pb::CreatePipelineRequest {
            tenant_id: w.tenant.to_string(),
            name: "sample".into(),
            repository: git.url.clone(),
            definition: bad.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let field = err
        .metadata()
        .get(kernel::error::FIELD_METADATA)
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(field, "definition.stages[1].steps[0].image");
}
