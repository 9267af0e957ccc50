//! Runs survive a devops restart; a dead runner is noticed; cancellation
//! reaches the running command; logs stream while a step runs.

use std::time::Duration;

use kernel::testkit::eventually;
use paas_proto::v1 as pb;

use crate::helpers::{GitServer, RUN_TIME, World};

async fn start(w: &World, pipeline: &pb::Pipeline) -> pb::Run {
    w.dev()
        .start_run(pb::StartRunRequest {
            pipeline_id: pipeline.id.clone(),
            git_ref: "main".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_devops_restart_mid_run_resumes_the_run() {
    let mut w = World::new().await;
    let git = GitServer::start().await;
    let _runner = w.runner("r1", 1).await;
    let definition = concat!(
        "stages:\n",
        "  - name: a\n",
        "    steps:\n",
        "      - name: slow\n",
        "        kind: run\n",
        "        commands: ['sleep 2', 'echo first done']\n",
        "      - name: after\n",
        "        kind: run\n",
        "        commands: ['echo second done']\n",
    );
    let pipeline = w.pipeline(&git, definition).await;
    git.push("main").await;
    let run = start(&w, &pipeline).await;
    w.step_reaches(&run.id, "slow", "running").await;

    w.restart().await;

    let run = w.run_reaches(&run.id, "succeeded").await;
    assert!(w.step(&run, "slow").await.log.contains("first done"));
    assert!(w.step(&run, "after").await.log.contains("second done"));
}

#[tokio::test]
async fn a_killed_runner_is_detected_and_its_step_retried_on_another() {
    let w = World::new().await;
    let git = GitServer::start().await;
    let definition = concat!(
        "stages:\n",
        "  - name: a\n",
        "    steps:\n",
        "      - name: long\n",
        "        kind: run\n",
        "        retries: 1\n",
        "        commands: ['sleep 3', 'echo finished']\n",
    );
    let pipeline = w.pipeline(&git, definition).await;
    git.push("main").await;
    let doomed = w.runner("doomed", 1).await;
    let run = start(&w, &pipeline).await;
    let first = w.step_reaches(&run.id, "long", "running").await;
    assert_eq!(first.attempt, 1);
    drop(doomed);
    let _survivor = w.runner("survivor", 1).await;

    let run = w.run_reaches(&run.id, "succeeded").await;
    let step = w.step(&run, "long").await;
    assert_eq!(step.attempt, 2, "retried once");
    assert_ne!(step.runner_id, first.runner_id);
    assert!(step.log.contains("stopped answering during attempt 1"), "{}", step.log);
}

#[tokio::test]
async fn a_killed_runner_fails_a_step_that_allows_no_retry() {
    let w = World::new().await;
    let git = GitServer::start().await;
    let definition =
        "stages:\n  - name: a\n    steps:\n      - name: long\n        kind: run\n        commands: ['sleep 30']\n";
    let pipeline = w.pipeline(&git, definition).await;
    git.push("main").await;
    let doomed = w.runner("doomed", 1).await;
    let run = start(&w, &pipeline).await;
    w.step_reaches(&run.id, "long", "running").await;
    drop(doomed);

    let run = w.run_reaches(&run.id, "failed").await;
    let step = w.step(&run, "long").await;
    assert!(step.message.contains("was lost"), "{}", step.message);
}

#[tokio::test]
async fn cancelling_a_run_stops_its_running_command_and_the_log_streams_live() {
    let w = World::new().await;
    let git = GitServer::start().await;
    let _runner = w.runner("r1", 1).await;
    // The command names a marker of its own so the test can find its
    // processes; it writes only in its workspace, as a sandboxed step must.
    let marker = format!("ticker-{}", uuid::Uuid::now_v7());
    let definition = format!(
        concat!(
            "stages:\n",
            "  - name: a\n",
            "    steps:\n",
            "      - name: ticker\n",
            "        kind: run\n",
            "        commands: ['for i in $(seq 1 30); do echo tick $i; echo $i >> ticks; sleep 1; done # {}']\n",
        ),
        marker
    );
    let pipeline = w.pipeline(&git, &definition).await;
    git.push("main").await;
    let run = start(&w, &pipeline).await;
    let step = w.step_reaches(&run.id, "ticker", "running").await;

    let mut stream = w
        .dev()
        .watch_step_log(pb::WatchStepLogRequest {
            id: step.id.clone(),
            offset: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = String::new();
    while !seen.contains("tick 2") {
        let chunk = tokio::time::timeout(RUN_TIME, stream.message())
            .await
            .expect("output arrives while the step runs")
            .unwrap()
            .expect("the stream stays open while the step runs");
        assert_eq!(chunk.offset as usize, seen.chars().count(), "chunks follow each other");
        seen.push_str(&String::from_utf8(chunk.data).unwrap());
    }

    w.dev()
        .cancel_run(pb::CancelRunRequest { id: run.id.clone() })
        .await
        .unwrap();
    let last = loop {
        let chunk = tokio::time::timeout(RUN_TIME, stream.message()).await.unwrap().unwrap();
        match chunk {
            Some(c) => seen.push_str(&String::from_utf8(c.data.clone()).unwrap()),
            None => break seen.clone(),
        }
    };
    let run = w.run(&run.id).await;
    assert_eq!(run.state, "cancelled");
    assert!(!last.contains("tick 30"), "{last}");
    // The runner hears of it at its next heartbeat and kills the command: no
    // process whose command line names the marker is left, well before
    // tick 30.
    let running = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
            std::fs::read(entry.path().join("cmdline"))
                .is_ok_and(|line| String::from_utf8_lossy(&line).contains(&marker))
        })
    };
    eventually(Duration::from_secs(20), "the command to be killed", || async {
        (!running()).then_some(())
    })
    .await;
    let log = w.step(&run, "ticker").await.log;
    assert!(!log.contains("tick 30"), "the command ran to its end: {log}");
}
