//! Steps under bubblewrap: the workspace is the only place they write.

use crate::helpers::{GitServer, World};

#[tokio::test]
async fn a_step_cannot_write_outside_its_workspace() {
    let w = World::new().await;
    if w.sandbox != devops::agent::Sandbox::Bubblewrap {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs bubblewrap (scripts/deps installs it)"
        );
        eprintln!("skipped: bwrap is not installed or does not work here");
        return;
    }
    let git = GitServer::start().await;
    let _runner = w.runner("r1", 1).await;
    let outside = tempfile::tempdir().unwrap();
    let system = format!("/etc/paas-escape-{}", uuid::Uuid::now_v7());
    let definition = format!(
        concat!(
            "stages:\n",
            "  - name: a\n",
            "    steps:\n",
            "      - name: confined\n",
            "        kind: run\n",
            "        commands:\n",
            "          - echo kept > inside && cat inside\n",
            "          - if echo x > {system} || echo x > {outside}/escaped; then echo ESCAPED; exit 1; fi\n",
            "          - echo contained\n",
        ),
        system = system,
        outside = outside.path().display(),
    );
    let pipeline = w.pipeline(&git, &definition).await;
    git.push("main").await;
    let run = w
        .dev()
        .start_run(paas_proto::v1::StartRunRequest {
            pipeline_id: pipeline.id.clone(),
            git_ref: "main".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let run = w.run_reaches(&run.id, "succeeded").await;

    let step = w.step(&run, "confined").await;
    assert!(step.log.contains("kept"), "the workspace is writable: {}", step.log);
    assert!(step.log.contains("contained"), "{}", step.log);
    assert!(!std::path::Path::new(&system).exists(), "the step wrote {system}");
    assert!(
        !outside.path().join("escaped").exists(),
        "the step wrote outside its workspace"
    );
}
