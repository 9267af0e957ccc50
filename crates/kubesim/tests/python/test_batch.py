"""batch/v1 through the official Python client: Jobs that complete and Jobs
that exhaust their back-off limit, their pods' logs and events, and
CronJobs running on schedule.

A simulated container runs the `echo`/`printf`/`sleep`/`exit` of its
command (see `kubesim.io/exit-code` and `kubesim.io/run-seconds` in the
kubesim crate); on a real cluster the same scripts do the same."""

import datetime

from kubernetes import client, watch

from support import condition, eventually, events_of


def job(name, script, backoff_limit=6, completions=None, parallelism=None, annotations=None, env=None):
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(
            backoff_limit=backoff_limit,
            completions=completions,
            parallelism=parallelism,
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(annotations=annotations),
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    containers=[
                        client.V1Container(
                            name="step",
                            image="busybox:1.36",
                            command=["sh", "-c", script],
                            env=[client.V1EnvVar(name=k, value=v) for k, v in (env or {}).items()],
                        )
                    ],
                ),
            ),
        ),
    )


def finished(batch, namespace, name, kind):
    def probe():
        j = batch.read_namespaced_job(name, namespace)
        c = condition(j, kind)
        return (j, c) if c and c.status == "True" else None

    return eventually(f"job {name} {kind}", probe)


def test_a_job_runs_to_completion_and_its_pods_log_what_they_echo(batch, core, namespace):
    created = batch.create_namespaced_job(
        namespace, job("hello", "echo hello from $WHO; sleep 0.2; echo done", completions=2, parallelism=1, env={"WHO": "python"})
    )
    # Defaults as the API server sets them.
    assert created.spec.completion_mode == "NonIndexed"
    assert created.spec.suspend is False
    uid_label = created.spec.selector.match_labels["batch.kubernetes.io/controller-uid"]
    assert uid_label == created.metadata.uid

    j, complete = finished(batch, namespace, "hello", "Complete")
    assert complete.reason == "CompletionsReached"
    assert j.status.succeeded == 2 and not j.status.failed
    assert j.status.start_time and j.status.completion_time
    assert j.status.completion_time >= j.status.start_time

    pods = core.list_namespaced_pod(namespace, label_selector="job-name=hello").items
    assert len(pods) == 2 and all(p.status.phase == "Succeeded" for p in pods)
    terminated = pods[0].status.container_statuses[0].state.terminated
    assert terminated.exit_code == 0 and terminated.reason == "Completed"
    log = core.read_namespaced_pod_log(pods[0].metadata.name, namespace)
    assert log == "hello from python\ndone\n", repr(log)

    reasons = [r for r, _, _ in events_of(core, namespace, "Job", "hello")]
    assert "SuccessfulCreate" in reasons and "Completed" in reasons
    listed = batch.list_namespaced_job(namespace).items
    assert [x.metadata.name for x in listed] == ["hello"]
    batch.delete_namespaced_job("hello", namespace, propagation_policy="Foreground")


def test_a_failing_job_fails_once_its_backoff_limit_is_exceeded(batch, core, namespace):
    batch.create_namespaced_job(namespace, job("broken", "echo trying; exit 3", backoff_limit=1))
    j, failed = finished(batch, namespace, "broken", "Failed")
    assert failed.reason == "BackoffLimitExceeded"
    assert failed.message == "Job has reached the specified backoff limit"
    assert j.status.failed == 2 and not j.status.succeeded
    assert condition(j, "Complete") is None

    pods = core.list_namespaced_pod(namespace, label_selector="job-name=broken").items
    assert len(pods) == 2
    for p in pods:
        assert p.status.phase == "Failed"
        terminated = p.status.container_statuses[0].state.terminated
        assert terminated.exit_code == 3 and terminated.reason == "Error"
    warnings = [(r, t) for r, _, t in events_of(core, namespace, "Job", "broken")]
    assert ("BackoffLimitExceeded", "Warning") in warnings


def test_a_job_is_watched_until_complete(batch, namespace):
    listed = batch.list_namespaced_job(namespace)
    batch.create_namespaced_job(namespace, job("watched", "echo hi", annotations={"kubesim.io/run-seconds": "0.3"}))
    w = watch.Watch()
    for event in w.stream(
        batch.list_namespaced_job, namespace, resource_version=listed.metadata.resource_version, timeout_seconds=30
    ):
        c = condition(event["object"], "Complete")
        if c and c.status == "True":
            w.stop()
            break
    else:
        raise AssertionError("the watch ended before the job completed")


def test_a_cron_job_creates_its_job_on_schedule(batch, namespace):
    cron = client.V1CronJob(
        metadata=client.V1ObjectMeta(name="tick"),
        spec=client.V1CronJobSpec(
            schedule="* * * * *",
            job_template=client.V1JobTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"cron": "tick"}),
                spec=job("unused", "echo tick").spec,
            ),
        ),
    )
    created = batch.create_namespaced_cron_job(namespace, cron)
    # Defaults as the API server sets them.
    assert created.spec.concurrency_policy == "Allow"
    assert created.spec.suspend is False
    assert created.spec.successful_jobs_history_limit == 3
    assert created.spec.failed_jobs_history_limit == 1

    patched = batch.patch_namespaced_cron_job("tick", namespace, {"spec": {"startingDeadlineSeconds": 100}})
    assert patched.spec.starting_deadline_seconds == 100
    assert [c.metadata.name for c in batch.list_namespaced_cron_job(namespace).items] == ["tick"]

    # The next minute boundary, as on a real cluster.
    scheduled = eventually(
        "the cron job is scheduled",
        lambda: batch.read_namespaced_cron_job("tick", namespace).status.last_schedule_time,
        within=75,
        every=0.5,
    )
    assert scheduled.second == 0
    minutes = int(scheduled.timestamp()) // 60
    run = batch.read_namespaced_job(f"tick-{minutes}", namespace)
    assert run.metadata.labels["cron"] == "tick"
    assert run.metadata.owner_references[0].kind == "CronJob"
    assert run.metadata.owner_references[0].name == "tick"
    finished(batch, namespace, f"tick-{minutes}", "Complete")
    last = eventually(
        "the cron job records the success",
        lambda: batch.read_namespaced_cron_job("tick", namespace).status.last_successful_time,
    )
    assert last >= scheduled
    assert datetime.datetime.now(datetime.timezone.utc) - last < datetime.timedelta(minutes=2)

    batch.patch_namespaced_cron_job("tick", namespace, {"spec": {"suspend": True}})
    assert batch.read_namespaced_cron_job("tick", namespace).spec.suspend is True
    batch.delete_namespaced_cron_job("tick", namespace)
