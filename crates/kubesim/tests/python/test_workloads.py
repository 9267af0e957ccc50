"""apps/v1 and autoscaling/v2 through the official Python client:
Deployments rolling out (patches, scale, pause, progress deadline,
minReadySeconds), StatefulSets and an autoscaler."""

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from support import condition, container, deployment, eventually, events_of


def rolled_out(apps, namespace, name):
    """The Deployment once its latest template is available on every replica,
    checked as `kubectl rollout status` does."""

    def probe():
        d = apps.read_namespaced_deployment(name, namespace)
        s = d.status
        done = (
            s.observed_generation == d.metadata.generation
            and (s.updated_replicas or 0) == d.spec.replicas
            and (s.replicas or 0) == d.spec.replicas
            and (s.available_replicas or 0) == d.spec.replicas
        )
        return d if done else None

    return eventually(f"deployment {name} rolled out", probe)


def test_a_deployment_rolls_out_to_available_and_follows_patches(apps, core, namespace):
    created = apps.create_namespaced_deployment(namespace, deployment("web", replicas=2))
    # Defaults as the API server sets them.
    assert created.spec.strategy.type == "RollingUpdate"
    assert created.spec.strategy.rolling_update.max_surge == "25%"
    assert created.spec.revision_history_limit == 10
    assert created.spec.progress_deadline_seconds == 600
    assert created.metadata.generation == 1

    d = rolled_out(apps, namespace, "web")
    available = condition(d, "Available")
    assert available.status == "True" and available.reason == "MinimumReplicasAvailable"
    progressing = condition(d, "Progressing")
    assert progressing.status == "True" and progressing.reason == "NewReplicaSetAvailable"
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 2 and all(p.status.phase == "Running" for p in pods)

    # A strategic-merge patch of the container list merges by name.
    patched = apps.patch_namespaced_deployment(
        "web",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.28"}]}}}},
    )
    assert patched.metadata.generation == 2
    assert patched.spec.template.spec.containers[0].resources.requests["cpu"] == "100m"
    d = rolled_out(apps, namespace, "web")
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    sets = apps.list_namespaced_replica_set(namespace, label_selector="app=web").items
    by_image = {rs.spec.template.spec.containers[0].image: rs.spec.replicas for rs in sets}
    assert by_image == {"nginx:1.27": 0, "nginx:1.28": 2}
    assert all(rs.metadata.owner_references[0].kind == "Deployment" for rs in sets)

    # The scale subresource.
    scale = apps.read_namespaced_deployment_scale("web", namespace)
    assert scale.spec.replicas == 2 and scale.status.selector == "app=web"
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 3}})
    d = rolled_out(apps, namespace, "web")
    assert d.status.ready_replicas == 3

    reasons = [r for r, _, _ in events_of(core, namespace, "Deployment", "web")]
    assert "ScalingReplicaSet" in reasons

    apps.delete_namespaced_deployment("web", namespace)
    eventually(
        "the deployment's pods are collected",
        lambda: not core.list_namespaced_pod(namespace, label_selector="app=web").items,
    )


def test_a_deployment_is_applied_server_side_with_ownership(api, dynamic, apps, namespace):
    deployments = dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    manifest = api.sanitize_for_serialization(deployment("applied", replicas=1))
    manifest.update(apiVersion="apps/v1", kind="Deployment")
    manifest["metadata"]["namespace"] = namespace
    applied = dynamic.server_side_apply(deployments, body=manifest, field_manager="pipeline")
    assert applied.spec.replicas == 1
    rolled_out(apps, namespace, "applied")

    manifest["spec"]["replicas"] = 2
    with pytest.raises(Exception) as conflict:
        dynamic.server_side_apply(deployments, body=manifest, field_manager="other")
    assert getattr(conflict.value, "status", None) == 409
    assert ".spec.replicas" in str(conflict.value.body)
    dynamic.server_side_apply(deployments, body=manifest, field_manager="pipeline")
    assert rolled_out(apps, namespace, "applied").spec.replicas == 2


def test_a_paused_deployment_waits_and_a_stuck_one_exceeds_its_deadline(apps, namespace):
    apps.create_namespaced_deployment(namespace, deployment("paused", replicas=1))
    rolled_out(apps, namespace, "paused")
    apps.patch_namespaced_deployment("paused", namespace, {"spec": {"paused": True}})
    apps.patch_namespaced_deployment(
        "paused",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.28"}]}}}},
    )

    def paused():
        d = apps.read_namespaced_deployment("paused", namespace)
        c = condition(d, "Progressing")
        return c if c and c.reason == "DeploymentPaused" else None

    assert eventually("the deployment reports it is paused", paused).status == "Unknown"
    images = {
        rs.spec.template.spec.containers[0].image
        for rs in apps.list_namespaced_replica_set(namespace, label_selector="app=paused").items
    }
    assert images == {"nginx:1.27"}, "a paused deployment starts no rollout"
    apps.patch_namespaced_deployment("paused", namespace, {"spec": {"paused": False}})
    d = rolled_out(apps, namespace, "paused")
    assert d.spec.template.spec.containers[0].image == "nginx:1.28"

    stuck = deployment("stuck", replicas=1, progress_deadline_seconds=1)
    stuck.spec.template.spec.containers[0].resources.requests["cpu"] = "64"
    apps.create_namespaced_deployment(namespace, stuck)

    def exceeded():
        c = condition(apps.read_namespaced_deployment("stuck", namespace), "Progressing")
        return c if c and c.status == "False" else None

    c = eventually("the deadline is exceeded", exceeded)
    assert c.reason == "ProgressDeadlineExceeded"
    assert c.message.endswith("has timed out progressing.")


def test_min_ready_seconds_delays_availability(apps, namespace):
    apps.create_namespaced_deployment(namespace, deployment("slow", replicas=1, min_ready_seconds=2))

    def ready_not_available():
        s = apps.read_namespaced_deployment("slow", namespace).status
        return (s.ready_replicas or 0) == 1 and (s.available_replicas or 0) == 0

    eventually("ready but not yet available", ready_not_available)
    d = rolled_out(apps, namespace, "slow")
    assert d.status.available_replicas == 1


def test_a_statefulset_gets_ordinal_pods_and_rolling_update_defaults(apps, core, namespace):
    labels = {"app": "db"}
    sts = client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name="db"),
        spec=client.V1StatefulSetSpec(
            replicas=2,
            service_name="db",
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[container(image="postgres:17")]),
            ),
        ),
    )
    created = apps.create_namespaced_stateful_set(namespace, sts)
    assert created.spec.update_strategy.type == "RollingUpdate"
    assert created.spec.update_strategy.rolling_update.partition == 0
    assert created.spec.pod_management_policy == "OrderedReady"

    def ready(replicas):
        def probe():
            s = apps.read_namespaced_stateful_set("db", namespace).status
            return (s.ready_replicas or 0) == replicas and (s.available_replicas or 0) == replicas

        return probe

    eventually("2 ready replicas", ready(2))
    names = sorted(p.metadata.name for p in core.list_namespaced_pod(namespace, label_selector="app=db").items)
    assert names == ["db-0", "db-1"]

    apps.patch_namespaced_stateful_set_scale("db", namespace, {"spec": {"replicas": 3}})
    eventually("3 ready replicas", ready(3))
    assert apps.read_namespaced_stateful_set("db", namespace).status.current_revision

    listed = apps.list_namespaced_stateful_set(namespace).items
    assert [s.metadata.name for s in listed] == ["db"]
    apps.delete_namespaced_stateful_set("db", namespace)
    eventually(
        "the statefulset's pods are collected",
        lambda: not core.list_namespaced_pod(namespace, label_selector="app=db").items,
    )


def test_an_autoscaler_keeps_its_target_within_bounds(api, apps, core, namespace):
    autoscaling = client.AutoscalingV2Api(api)
    apps.create_namespaced_deployment(namespace, deployment("scaled", replicas=1))
    hpa = client.V2HorizontalPodAutoscaler(
        metadata=client.V1ObjectMeta(name="scaled"),
        spec=client.V2HorizontalPodAutoscalerSpec(
            scale_target_ref=client.V2CrossVersionObjectReference(api_version="apps/v1", kind="Deployment", name="scaled"),
            min_replicas=2,
            max_replicas=4,
            metrics=[
                client.V2MetricSpec(
                    type="Resource",
                    resource=client.V2ResourceMetricSource(
                        name="cpu", target=client.V2MetricTarget(type="Utilization", average_utilization=80)
                    ),
                )
            ],
        ),
    )
    autoscaling.create_namespaced_horizontal_pod_autoscaler(namespace, hpa)
    eventually(
        "the autoscaler raises the replicas to its minimum",
        lambda: apps.read_namespaced_deployment("scaled", namespace).spec.replicas == 2,
    )
    status = eventually(
        "the autoscaler reports its status",
        lambda: autoscaling.read_namespaced_horizontal_pod_autoscaler("scaled", namespace).status.desired_replicas,
    )
    assert status == 2
    reasons = [r for r, _, _ in events_of(core, namespace, "HorizontalPodAutoscaler", "scaled")]
    assert "SuccessfulRescale" in reasons


def test_watching_deployments_sees_the_rollout(apps, namespace):
    listed = apps.list_namespaced_deployment(namespace)
    apps.create_namespaced_deployment(namespace, deployment("watched", replicas=1))
    w = watch.Watch()
    kinds = []
    for event in w.stream(
        apps.list_namespaced_deployment,
        namespace,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=30,
    ):
        kinds.append(event["type"])
        if (event["object"].status.available_replicas or 0) == 1:
            w.stop()
    assert kinds[0] == "ADDED" and kinds[-1] == "MODIFIED", kinds
    with pytest.raises(ApiException) as missing:
        apps.read_namespaced_deployment("absent", namespace)
    assert missing.value.status == 404
