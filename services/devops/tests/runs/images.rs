//! build-image steps: buildah builds the repository's Containerfile on a real
//! runner and pushes it to a real registry, tagged with the run's version.

use crate::helpers::{BareRegistry, GitServer, World};

const BUILD_AND_PUSH: &str = concat!(
    "stages:\n",
    "  - name: build\n",
    "    steps:\n",
    "      - name: unit\n",
    "        kind: test\n",
    "        commands: [./tests/run.sh]\n",
    "        reports: [reports/junit.xml]\n",
    "      - name: image\n",
    "        kind: build-image\n",
    "        repository: acme/shop/calc\n",
);

#[tokio::test]
async fn a_build_image_step_pushes_the_version_with_its_source_and_revision() {
    let registry = BareRegistry::start().await;
    let w = World::with_registry(registry.settings()).await;
    let git = GitServer::start().await;
    let _runner = w.runner("r1", 1).await;
    let pipeline = w.pipeline(&git, BUILD_AND_PUSH).await;
    git.tag("v1.4.0").await;
    git.push("v1.4.0").await;
    let commit = git.commit("README.md", "the calculator, changed\n", "docs").await;
    git.push("main").await;
    let (hook, secret) = w.webhook(&pipeline).await;

    let answer = w
        .deliver(&hook, &secret, "d-1", "refs/heads/main", &commit)
        .await
        .unwrap();
    let run = w.run_reaches(&answer.run_id, "succeeded").await;

    assert_eq!(run.version, "1.4.1-build.1");
    let image = w.step(&run, "image").await;
    let reference = format!("{}/acme/shop/calc:1.4.1-build.1", registry.host);
    assert_eq!(image.image, reference);
    assert!(image.image_digest.starts_with("sha256:"), "{}", image.image_digest);
    assert!(image.log.contains("buildah build"), "{}", image.log);
    let (manifest, config) = registry.inspect(&reference).await;
    let annotations = &manifest["annotations"];
    assert_eq!(annotations["org.opencontainers.image.source"], git.url.as_str());
    assert_eq!(annotations["org.opencontainers.image.revision"], commit.as_str());
    assert_eq!(
        config["Digest"],
        image.image_digest.as_str(),
        "the digest kept is the one pushed"
    );
    assert_eq!(config["Labels"]["org.opencontainers.image.revision"], commit.as_str());
}

#[tokio::test]
async fn a_build_image_step_without_a_registry_fails_saying_so() {
    let w = World::new().await;
    let git = GitServer::start().await;
    let _runner = w.runner("r1", 1).await;
    let pipeline = w.pipeline(&git, BUILD_AND_PUSH).await;
    let commit = git.push("main").await;
    let (hook, secret) = w.webhook(&pipeline).await;

    let answer = w
        .deliver(&hook, &secret, "d-1", "refs/heads/main", &commit)
        .await
        .unwrap();
    let run = w.run_reaches(&answer.run_id, "failed").await;

    let image = w.step(&run, "image").await;
    assert_eq!(image.state, "failed");
    assert!(
        image.message.contains("no image registry is configured"),
        "{}",
        image.message
    );
    assert!(image.image_digest.is_empty());
}
