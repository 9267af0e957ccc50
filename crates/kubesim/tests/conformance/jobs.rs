//! batch/v1 Jobs and CronJobs, checked against what the real Job and
//! CronJob controllers do. Pod outcomes are chosen with the
//! `kubesim.io/exit-code` and `kubesim.io/run-seconds` annotations; on a real
//! cluster the same specs behave alike with images that exit that way.

use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Pod};
use kernel::testkit::eventually;
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::helpers::{TestCluster, kubectl, spawn, spawn_with, status_of};

fn job(name: &str, annotations: Value, spec: Value, command: Value) -> Job {
    let mut job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": { "name": name },
        "spec": {
            "template": {
                "metadata": { "annotations": annotations },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "step", "image": "busybox:1.36", "command": command,
                        "env": [{ "name": "GREETING", "value": "hello" }],
                    }],
                },
            },
        },
    });
    for (k, v) in spec.as_object().unwrap() {
        if k == "restartPolicy" {
            job["spec"]["template"]["spec"]["restartPolicy"] = v.clone();
        } else {
            job["spec"][k] = v.clone();
        }
    }
    serde_json::from_value(job).unwrap()
}

fn condition(j: &Job, kind: &str) -> Option<(String, String)> {
    j.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

async fn pods_of(t: &TestCluster, job: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(t.client.clone(), "default")
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .unwrap()
        .items
}

/// `(reason, message, count)` of the events about `name`, oldest first.
async fn events_of(t: &TestCluster, kind: &str, name: &str) -> Vec<(String, String, i32)> {
    let list = Api::<Event>::namespaced(t.client.clone(), "default")
        .list(&ListParams::default().fields(&format!("involvedObject.kind={kind},involvedObject.name={name}")))
        .await
        .unwrap();
    let mut items = list.items;
    items.sort_by(|a, b| a.first_timestamp.cmp(&b.first_timestamp));
    items
        .into_iter()
        .map(|e| {
            (
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
                e.count.unwrap_or(0),
            )
        })
        .collect()
}

async fn wait_condition(jobs: &Api<Job>, name: &str, kind: &str) -> (Job, (String, String)) {
    eventually(Duration::from_secs(20), &format!("job {name} {kind}"), || async {
        let j = jobs.get(name).await.unwrap();
        condition(&j, kind).map(|c| (j, c))
    })
    .await
}

/// A Job with completions 3 and parallelism 2 runs its pods (never more than
/// two at once), each echoing its command's words to its log, and completes
/// with the real conditions, counts and events.
#[tokio::test]
async fn a_job_runs_pods_to_its_completions_and_their_logs_carry_what_they_echo() {
    let t = spawn().await;
    let jobs: Api<Job> = Api::namespaced(t.client.clone(), "default");
    let created = jobs
        .create(
            &PostParams::default(),
            &job(
                "greet",
                json!({ "kubesim.io/run-seconds": "0.3" }),
                json!({ "completions": 3, "parallelism": 2 }),
                json!(["sh", "-c", "echo \"$GREETING from ${GREETING}s\" && echo done"]),
            ),
        )
        .await
        .unwrap();
    let spec = created.spec.clone().unwrap();
    assert_eq!(spec.backoff_limit, Some(6));
    let uid = created.metadata.uid.clone().unwrap();
    assert_eq!(
        spec.selector.unwrap().match_labels.unwrap()["batch.kubernetes.io/controller-uid"],
        uid
    );
    let most_active = std::cell::Cell::new(0);
    let (done, (reason, message)) = eventually(Duration::from_secs(20), "job complete", || {
        let jobs = jobs.clone();
        let most = &most_active;
        async move {
            let j = jobs.get("greet").await.unwrap();
            most.set(most.get().max(j.status.as_ref().and_then(|s| s.active).unwrap_or(0)));
            condition(&j, "Complete").map(|c| (j, c))
        }
    })
    .await;
    let most_active = most_active.get();
    assert!(
        most_active <= 2,
        "at most parallelism pods run at once, saw {most_active}"
    );
    assert_eq!(
        (reason.as_str(), message.as_str()),
        ("CompletionsReached", "Reached expected number of succeeded pods")
    );
    assert!(condition(&done, "SuccessCriteriaMet").is_some());
    let status = done.status.unwrap();
    assert_eq!((status.succeeded, status.failed, status.active), (Some(3), None, None));
    assert!(status.start_time.is_some() && status.completion_time.is_some());

    let pods = pods_of(&t, "greet").await;
    assert_eq!(pods.len(), 3);
    let api: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    for p in &pods {
        let s = p.status.as_ref().unwrap();
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        let terminated = s.container_statuses.as_ref().unwrap()[0]
            .state
            .as_ref()
            .unwrap()
            .terminated
            .clone()
            .unwrap();
        assert_eq!(
            (terminated.exit_code, terminated.reason.as_deref()),
            (0, Some("Completed"))
        );
        let log = api
            .logs(p.metadata.name.as_deref().unwrap(), &LogParams::default())
            .await
            .unwrap();
        assert_eq!(log, "hello from hellos\ndone\n");
    }
    let events = events_of(&t, "Job", "greet").await;
    let creates = events
        .iter()
        .filter(|(r, m, _)| r == "SuccessfulCreate" && m.starts_with("Created pod: greet-"));
    assert_eq!(creates.count(), 3, "{events:?}");
    assert!(
        events.iter().any(|(r, m, _)| r == "Completed" && m == "Job completed"),
        "{events:?}"
    );
}

/// Failed pods are replaced until `backoffLimit` is passed; then the Job
/// fails with BackoffLimitExceeded. Under `OnFailure` the container restarts
/// in its pod and the restarts count.
#[tokio::test]
async fn a_failing_job_retries_until_its_backoff_limit_then_fails() {
    let t = spawn_with(|mut c| {
        c.job_backoff = Duration::from_millis(50);
        c
    })
    .await;
    let jobs: Api<Job> = Api::namespaced(t.client.clone(), "default");
    let failing = json!({ "kubesim.io/exit-code": "3", "kubesim.io/run-seconds": "0.1" });
    jobs.create(
        &PostParams::default(),
        &job("never", failing.clone(), json!({ "backoffLimit": 2 }), json!(["false"])),
    )
    .await
    .unwrap();
    jobs.create(
        &PostParams::default(),
        &job(
            "onfailure",
            failing,
            json!({ "backoffLimit": 1, "restartPolicy": "OnFailure" }),
            json!(["false"]),
        ),
    )
    .await
    .unwrap();

    let (failed, (reason, message)) = wait_condition(&jobs, "never", "Failed").await;
    assert_eq!(
        (reason.as_str(), message.as_str()),
        ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    );
    assert_eq!(failed.status.unwrap().failed, Some(3));
    let pods = pods_of(&t, "never").await;
    assert_eq!(pods.len(), 3, "the first pod and two retries");
    for p in &pods {
        let s = p.status.as_ref().unwrap();
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let terminated = s.container_statuses.as_ref().unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!((terminated.exit_code, terminated.reason.as_deref()), (3, Some("Error")));
    }
    let events = events_of(&t, "Job", "never").await;
    assert!(
        events
            .iter()
            .any(|(r, m, _)| r == "BackoffLimitExceeded" && m.contains("backoff limit")),
        "{events:?}"
    );

    let (_, (reason, _)) = wait_condition(&jobs, "onfailure", "Failed").await;
    assert_eq!(reason, "BackoffLimitExceeded");
    let restarted = eventually(Duration::from_secs(5), "the restarted pod", || async {
        let list = Api::<Pod>::namespaced(t.client.clone(), "default")
            .list(&ListParams::default().labels("job-name=onfailure"))
            .await
            .unwrap();
        // The failed Job's running pod is deleted; until then it shows its restarts.
        Some(list.items.len())
    })
    .await;
    assert!(restarted <= 1, "OnFailure restarts in one pod instead of creating more");
}

/// `activeDeadlineSeconds` fails a Job that runs too long and removes its
/// pods; a suspended Job has no pods until it is resumed; a finished Job
/// with `ttlSecondsAfterFinished` is deleted with its pods.
#[tokio::test]
async fn deadlines_suspension_and_ttl_behave_as_the_job_controller() {
    let t = spawn().await;
    let jobs: Api<Job> = Api::namespaced(t.client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job(
            "slow",
            json!({ "kubesim.io/run-seconds": "600" }),
            json!({ "activeDeadlineSeconds": 1 }),
            json!(["sleep", "600"]),
        ),
    )
    .await
    .unwrap();
    jobs.create(
        &PostParams::default(),
        &job(
            "paused",
            json!({ "kubesim.io/run-seconds": "0.1" }),
            json!({ "suspend": true, "ttlSecondsAfterFinished": 1 }),
            json!(["echo", "resumed"]),
        ),
    )
    .await
    .unwrap();

    let (_, (reason, message)) = wait_condition(&jobs, "paused", "Suspended").await;
    assert_eq!((reason.as_str(), message.as_str()), ("JobSuspended", "Job suspended"));
    assert!(pods_of(&t, "paused").await.is_empty());

    let (failed, (reason, message)) = wait_condition(&jobs, "slow", "Failed").await;
    assert_eq!(
        (reason.as_str(), message.as_str()),
        ("DeadlineExceeded", "Job was active longer than specified deadline")
    );
    assert_eq!(failed.status.unwrap().active, None);
    eventually(Duration::from_secs(5), "the slow job's pods deleted", || async {
        pods_of(&t, "slow").await.is_empty().then_some(())
    })
    .await;

    jobs.patch(
        "paused",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "suspend": false } })),
    )
    .await
    .unwrap();
    wait_condition(&jobs, "paused", "Complete").await;
    let events = events_of(&t, "Job", "paused").await;
    assert!(events.iter().any(|(r, _, _)| r == "Resumed"), "{events:?}");
    eventually(
        Duration::from_secs(10),
        "the finished job deleted after its TTL",
        || async { jobs.get_opt("paused").await.unwrap().is_none().then_some(()) },
    )
    .await;
    eventually(Duration::from_secs(5), "its pods collected", || async {
        pods_of(&t, "paused").await.is_empty().then_some(())
    })
    .await;
}

/// Bad Jobs and CronJobs are refused with the API server's 422 causes.
#[tokio::test]
async fn invalid_jobs_and_cron_jobs_are_refused_naming_the_field() {
    let t = spawn().await;
    let jobs: Api<Job> = Api::namespaced(t.client.clone(), "default");
    let mut always = job("always", json!({}), json!({}), json!(["true"]));
    always
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .restart_policy = Some("Always".into());
    let status = status_of(jobs.create(&PostParams::default(), &always).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status
            .message
            .contains("spec.template.spec.restartPolicy: Unsupported value: \"Always\""),
        "{}",
        status.message
    );
    let cron: Api<CronJob> = Api::namespaced(t.client.clone(), "default");
    let bad = cron_job("bad", "every minute", "Allow", json!({}));
    let status = status_of(cron.create(&PostParams::default(), &bad).await);
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("spec.schedule: Invalid value"),
        "{}",
        status.message
    );
    let mars = cron_job("mars", "0 9 * * *", "Allow", json!({ "timeZone": "Mars/Olympus_Mons" }));
    let status = status_of(cron.create(&PostParams::default(), &mars).await);
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("spec.timeZone: Invalid value: \"Mars/Olympus_Mons\": unknown time zone Mars/Olympus_Mons"),
        "{}",
        status.message
    );
    let tokyo = cron_job("tokyo", "0 9 * * *", "Allow", json!({ "timeZone": "Asia/Tokyo" }));
    cron.create(&PostParams::default(), &tokyo).await.unwrap();
}

fn cron_job(name: &str, schedule: &str, policy: &str, extra: Value) -> CronJob {
    let mut cj = json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": { "name": name },
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": policy,
            "jobTemplate": {
                "metadata": { "labels": { "cron": name } },
                "spec": { "template": {
                    "metadata": { "annotations": { "kubesim.io/run-seconds": "0.2" } },
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{ "name": "tick", "image": "busybox:1.36", "command": ["echo", "tick"] }],
                    },
                } },
            },
        },
    });
    for (k, v) in extra.as_object().unwrap() {
        cj["spec"][k] = v.clone();
    }
    serde_json::from_value(cj).unwrap()
}

/// A Job a CronJob owns, as `kubectl create job --from=cronjob/<name>` makes it.
fn owned_job(cj: &CronJob, name: &str, run_seconds: &str) -> Job {
    let mut j = job(
        name,
        json!({ "kubesim.io/run-seconds": run_seconds }),
        json!({}),
        json!(["echo", "manual"]),
    );
    j.metadata.annotations = Some([("cronjob.kubernetes.io/instantiate".to_string(), "manual".to_string())].into());
    j.metadata.owner_references = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "batch/v1".into(),
        kind: "CronJob".into(),
        name: cj.metadata.name.clone().unwrap(),
        uid: cj.metadata.uid.clone().unwrap(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    j
}

/// Finished Jobs beyond `successfulJobsHistoryLimit` are deleted, oldest
/// first, and the CronJob reports the completed ones it saw.
#[tokio::test]
async fn a_cron_job_keeps_only_its_history_limit_of_finished_jobs() {
    let t = spawn().await;
    let crons: Api<CronJob> = Api::namespaced(t.client.clone(), "default");
    let cj = crons
        .create(
            &PostParams::default(),
            &cron_job(
                "nightly",
                "0 3 1 1 *",
                "Allow",
                json!({ "successfulJobsHistoryLimit": 1 }),
            ),
        )
        .await
        .unwrap();
    let spec = cj.spec.clone().unwrap();
    assert_eq!((spec.failed_jobs_history_limit, spec.suspend), (Some(1), Some(false)));
    let jobs: Api<Job> = Api::namespaced(t.client.clone(), "default");
    for name in ["nightly-manual-1", "nightly-manual-2", "nightly-manual-3"] {
        jobs.create(&PostParams::default(), &owned_job(&cj, name, "0.1"))
            .await
            .unwrap();
        wait_condition(&jobs, name, "Complete").await;
    }
    eventually(Duration::from_secs(10), "only the newest finished job kept", || async {
        let names: Vec<String> = jobs
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|j| j.metadata.name)
            .collect();
        (names == ["nightly-manual-3"]).then_some(())
    })
    .await;
    let events = events_of(&t, "CronJob", "nightly").await;
    assert!(
        events
            .iter()
            .any(|(r, m, _)| r == "SuccessfulDelete" && m == "Deleted job nightly-manual-1"),
        "{events:?}"
    );
    assert!(
        crons
            .get("nightly")
            .await
            .unwrap()
            .status
            .unwrap()
            .last_successful_time
            .is_some()
    );
}

/// At the next minute a `* * * * *` CronJob creates its Job
/// `<name>-<minutes since the epoch>`; with a Job still running, Forbid
/// skips the run (JobAlreadyActive) and Replace deletes the running Job
/// first. Waits for a minute boundary, as on a real cluster.
#[tokio::test]
async fn cron_jobs_run_on_schedule_by_their_concurrency_policy() {
    let t = spawn().await;
    let crons: Api<CronJob> = Api::namespaced(t.client.clone(), "default");
    let jobs: Api<Job> = Api::namespaced(t.client.clone(), "default");
    let mut made = Vec::new();
    for (name, policy) in [("every", "Allow"), ("forbid", "Forbid"), ("replace", "Replace")] {
        made.push(
            crons
                .create(&PostParams::default(), &cron_job(name, "* * * * *", policy, json!({})))
                .await
                .unwrap(),
        );
    }
    for cj in &made[1..] {
        let name = format!("{}-running", cj.metadata.name.as_deref().unwrap());
        jobs.create(&PostParams::default(), &owned_job(cj, &name, "600"))
            .await
            .unwrap();
    }
    let scheduled = eventually(Duration::from_secs(75), "the scheduled job", || async {
        let cj = crons.get("every").await.unwrap();
        cj.status?.last_schedule_time.map(|t| t.0)
    })
    .await;
    let expected = format!("every-{}", scheduled.as_second() / 60);
    let run = jobs.get(&expected).await.unwrap();
    assert_eq!(
        run.metadata.annotations.unwrap()["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        scheduled.to_string()
    );
    assert_eq!(run.metadata.labels.unwrap()["cron"], "every");
    wait_condition(&jobs, &expected, "Complete").await;

    let replaced = eventually(Duration::from_secs(10), "replace runs its job", || async {
        let cj = crons.get("replace").await.unwrap();
        cj.status?.last_schedule_time.map(|t| t.0)
    })
    .await;
    assert_eq!(replaced, scheduled);
    eventually(Duration::from_secs(10), "the running job replaced", || async {
        jobs.get_opt("replace-running").await.unwrap().is_none().then_some(())
    })
    .await;
    jobs.get(&format!("replace-{}", scheduled.as_second() / 60))
        .await
        .unwrap();

    let events = eventually(Duration::from_secs(10), "forbid skips its run", || async {
        let events = events_of(&t, "CronJob", "forbid").await;
        events.iter().any(|(r, _, _)| r == "JobAlreadyActive").then_some(events)
    })
    .await;
    assert!(
        events.iter().any(
            |(_, m, _)| m == "Not starting job because prior execution is running and concurrency policy is Forbid"
        ),
        "{events:?}"
    );
    assert!(
        jobs.get_opt(&format!("forbid-{}", scheduled.as_second() / 60))
            .await
            .unwrap()
            .is_none()
    );
    jobs.get("forbid-running").await.unwrap();
    let every_events = events_of(&t, "CronJob", "every").await;
    assert!(
        every_events
            .iter()
            .any(|(r, m, _)| r == "SuccessfulCreate" && *m == format!("Created job {expected}")),
        "{every_events:?}"
    );
}

/// kubectl: apply a Job, wait for it with `kubectl wait`, read its log with
/// `kubectl logs job/<name>`, and see its events in `kubectl describe`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_runs_a_job_and_reads_its_log() {
    let t = spawn().await;
    let cache = std::env::temp_dir().join(format!("kubesim-kubectl-jobs-{}", t.cluster.addr().port()));
    let run = |args: &[&str], stdin: Option<&str>| kubectl(&t.cluster, &cache, args, stdin);
    let manifest = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: hello
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: hello
        image: busybox:1.36
        command: ["sh", "-c", "echo 'hi there'; printf 'step %s\n' one two"]
"#;
    let out = run(&["apply", "-f", "-"], Some(manifest));
    assert!(out.status.success(), "apply: {}", String::from_utf8_lossy(&out.stderr));
    let out = run(
        &["wait", "--for=condition=complete", "job/hello", "--timeout=30s"],
        None,
    );
    assert!(out.status.success(), "wait: {}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["logs", "job/hello"], None);
    assert!(out.status.success(), "logs: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi there\nstep one\nstep two\n");
    let out = run(&["describe", "job", "hello"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "describe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("SuccessfulCreate") && text.contains("Completed") && text.contains("Job completed"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(cache);
}

/// `podFailurePolicy`: a pod failing with an exit code of a `FailJob` rule
/// fails the Job at once (reason PodFailurePolicy, no retries despite the
/// backoffLimit); one matching an `Ignore` rule is replaced without being
/// counted, even with a backoffLimit of 0.
#[tokio::test]
async fn a_pod_failure_policy_fails_the_job_or_ignores_the_failure() {
    let t = spawn().await;
    let jobs: Api<Job> = Api::namespaced(t.client.clone(), "default");
    let policy = |action: &str, code: i64| json!({ "rules": [{ "action": action, "onExitCodes": { "operator": "In", "values": [code] } }] });
    let fatal = job(
        "fatal",
        json!({ "kubesim.io/exit-code": "42", "kubesim.io/run-seconds": "0.1" }),
        json!({ "backoffLimit": 6, "podFailurePolicy": policy("FailJob", 42) }),
        json!(["sh", "-c", "exit 42"]),
    );
    jobs.create(&PostParams::default(), &fatal).await.unwrap();
    let (j, (reason, message)) = wait_condition(&jobs, "fatal", "Failed").await;
    assert_eq!(reason, "PodFailurePolicy");
    let pod = pods_of(&t, "fatal").await[0].metadata.name.clone().unwrap();
    assert_eq!(
        message,
        format!("Container step for pod default/{pod} failed with exit code 42 matching FailJob rule at index 0")
    );
    assert_eq!(j.status.unwrap().failed, Some(1), "no retries");

    let ignored = job(
        "ignored",
        json!({ "kubesim.io/exit-code": "3", "kubesim.io/run-seconds": "0.2" }),
        json!({ "backoffLimit": 0, "podFailurePolicy": policy("Ignore", 3) }),
        json!(["sh", "-c", "exit 3"]),
    );
    jobs.create(&PostParams::default(), &ignored).await.unwrap();
    eventually(Duration::from_secs(10), "two ignored failures", || async {
        let failed = pods_of(&t, "ignored")
            .await
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
            .count();
        (failed >= 2).then_some(())
    })
    .await;
    let j = jobs.get("ignored").await.unwrap();
    assert!(
        condition(&j, "Failed").is_none(),
        "ignored failures do not fail the job"
    );
    assert_eq!(j.status.unwrap().failed, None);

    let mut on_failure = fatal.clone();
    on_failure.metadata.name = Some("onfailure".into());
    on_failure
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .restart_policy = Some("OnFailure".into());
    let status = status_of(jobs.create(&PostParams::default(), &on_failure).await);
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("only \"Never\" is supported when podFailurePolicy is specified"),
        "{}",
        status.message
    );
}

/// An Indexed Job gives each pod its completion index (annotation, label,
/// `JOB_COMPLETION_INDEX`, hostname `<job>-<index>`) and completes once
/// every index succeeded, reporting `completedIndexes`.
#[tokio::test]
async fn an_indexed_job_runs_one_completion_per_index() {
    let t = spawn().await;
    let jobs: Api<Job> = Api::namespaced(t.client.clone(), "default");
    let indexed = job(
        "shards",
        json!({ "kubesim.io/run-seconds": "0.2" }),
        json!({ "completionMode": "Indexed", "completions": 3, "parallelism": 2 }),
        json!(["sh", "-c", "echo shard $JOB_COMPLETION_INDEX"]),
    );
    jobs.create(&PostParams::default(), &indexed).await.unwrap();
    let (j, (reason, _)) = wait_condition(&jobs, "shards", "Complete").await;
    assert_eq!(reason, "CompletionsReached");
    let status = j.status.unwrap();
    assert_eq!(status.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!(status.succeeded, Some(3));
    let pods = pods_of(&t, "shards").await;
    assert_eq!(pods.len(), 3);
    let api = Api::<Pod>::namespaced(t.client.clone(), "default");
    let mut seen = Vec::new();
    for p in pods {
        let index = p.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"].clone();
        assert_eq!(
            p.metadata.labels.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"],
            index
        );
        let name = p.metadata.name.clone().unwrap();
        assert!(name.starts_with(&format!("shards-{index}-")), "{name}");
        assert_eq!(
            p.spec.as_ref().unwrap().hostname.as_deref(),
            Some(format!("shards-{index}").as_str())
        );
        let log = api.logs(&name, &LogParams::default()).await.unwrap();
        assert_eq!(log, format!("shard {index}\n"));
        seen.push(index);
    }
    seen.sort();
    assert_eq!(seen, ["0", "1", "2"]);

    let mut open_ended = indexed.clone();
    open_ended.metadata.name = Some("open".into());
    let spec = open_ended.spec.as_mut().unwrap();
    spec.completions = None;
    let status = status_of(jobs.create(&PostParams::default(), &open_ended).await);
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("spec.completions: Required value: when completion mode is Indexed"),
        "{}",
        status.message
    );
}
