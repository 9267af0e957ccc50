"""API machinery through the official Python client: discovery and
categories, Events in both schemas, the watch window (410 Gone and the
relist a client does), access reviews, storage binding and a cluster that
answers while it is not ready."""

import json
import os
import urllib.request

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from support import container, deployment, eventually


def test_discovery_serves_versions_groups_and_categories(api, dynamic):
    version = client.VersionApi(api).get_code()
    assert version.major == "1" and version.git_version.startswith("v1.")
    groups = {g.name: g.preferred_version.group_version for g in client.ApisApi(api).get_api_versions().groups}
    for group in ["apps", "batch", "autoscaling", "networking.k8s.io", "storage.k8s.io", "authorization.k8s.io"]:
        assert group in groups, groups
    assert groups["batch"] == "batch/v1"
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]

    resources = {r.name: r for r in client.CoreV1Api(api).get_api_resources().resources}
    assert "all" in resources["pods"].categories
    assert "po" in resources["pods"].short_names
    assert resources["pods/log"].verbs == ["get"]
    batch = {r.name: r for r in client.BatchV1Api(api).get_api_resources().resources}
    assert "all" in batch["cronjobs"].categories and batch["cronjobs"].short_names == ["cj"]

    # The dynamic client resolves kinds through discovery.
    jobs = dynamic.resources.get(api_version="batch/v1", kind="Job")
    assert jobs.namespaced and jobs.name == "jobs"
    assert dynamic.resources.get(api_version="v1", kind="ReplicationController").name == "replicationcontrollers"


def test_events_are_listed_in_both_schemas(dynamic, apps, core, namespace):
    apps.create_namespaced_deployment(namespace, deployment("web", replicas=1))
    pod = eventually(
        "a running pod",
        lambda: next(
            (p for p in core.list_namespaced_pod(namespace).items if p.status.phase == "Running"),
            None,
        ),
    )
    name = pod.metadata.name

    def reasons():
        events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        found = {e.reason: e for e in events}
        return found if {"Scheduled", "Pulled", "Created", "Started"} <= set(found) else None

    found = eventually("the pod's events", reasons)
    scheduled = found["Scheduled"]
    assert scheduled.type == "Normal"
    assert scheduled.source.component == "default-scheduler"
    assert scheduled.message == f"Successfully assigned {namespace}/{name} to {pod.spec.node_name}"
    assert scheduled.involved_object.uid == pod.metadata.uid
    assert found["Started"].involved_object.field_path == "spec.containers{app}"
    assert found["Started"].count >= 1 and found["Started"].first_timestamp

    every = core.list_event_for_all_namespaces(field_selector=f"metadata.namespace={namespace}").items
    assert {"ScalingReplicaSet", "SuccessfulCreate"} <= {e.reason for e in every}

    # events.k8s.io/v1: the same events in the new schema. Read through the
    # dynamic client: the typed model requires eventTime, which events from
    # the legacy recorders (kubelet, controllers) lack on a real cluster too.
    events_v1 = dynamic.resources.get(api_version="events.k8s.io/v1", kind="Event")
    listed = events_v1.get(namespace=namespace).items
    scheduled_v1 = next(e for e in listed if e.reason == "Scheduled" and e.regarding.name == name)
    assert scheduled_v1.note == scheduled.message
    assert scheduled_v1.regarding.uid == pod.metadata.uid
    assert scheduled_v1.reportingController == "default-scheduler"
    assert scheduled_v1.deprecatedCount >= 1


def test_a_watch_from_a_compacted_version_is_gone_and_a_relist_resumes(core, namespace):
    # kubesim compacts its history after start-up, as etcd does: version 1 is gone.
    w = watch.Watch()
    with pytest.raises(ApiException) as gone:
        for _ in w.stream(core.list_namespaced_config_map, namespace, resource_version="1"):
            pass
    assert gone.value.status == 410
    assert "too old resource version" in gone.value.reason

    # What a client does then: list, and watch from the list's version.
    listed = core.list_namespaced_config_map(namespace)
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="after")))
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map, namespace, resource_version=listed.metadata.resource_version, timeout_seconds=20
    ):
        assert (event["type"], event["object"].metadata.name) == ("ADDED", "after")
        w.stop()
        break
    else:
        raise AssertionError("the watch from the relist saw nothing")


def test_watch_bookmarks_carry_a_resource_version(core, namespace):
    listed = core.list_namespaced_config_map(namespace)
    w = watch.Watch()
    stream = w.stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=listed.metadata.resource_version,
        allow_watch_bookmarks=True,
        timeout_seconds=20,
    )
    for event in stream:
        if event["type"] == "BOOKMARK":
            assert int(event["raw_object"]["metadata"]["resourceVersion"]) >= int(listed.metadata.resource_version)
            w.stop()
            break
    else:
        raise AssertionError("no bookmark arrived")


def test_access_reviews_are_allowed_with_a_reason(api, namespace):
    authz = client.AuthorizationV1Api(api)
    review = authz.create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace, verb="create", group="apps", resource="deployments"
                )
            )
        )
    )
    assert review.status.allowed is True
    assert review.status.reason
    assert review.spec.resource_attributes.resource == "deployments"

    subject = authz.create_subject_access_review(
        client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user="alice", non_resource_attributes=client.V1NonResourceAttributes(path="/healthz", verb="get")
            )
        )
    )
    assert subject.status.allowed is True
    local = authz.create_namespaced_local_subject_access_review(
        namespace,
        client.V1LocalSubjectAccessReview(
            metadata=client.V1ObjectMeta(namespace=namespace),
            spec=client.V1SubjectAccessReviewSpec(
                user="bob", resource_attributes=client.V1ResourceAttributes(namespace=namespace, verb="get", resource="pods")
            ),
        ),
    )
    assert local.status.allowed is True
    rules = authz.create_self_subject_rules_review(
        client.V1SelfSubjectRulesReview(spec=client.V1SelfSubjectRulesReviewSpec(namespace=namespace))
    )
    assert rules.status.incomplete is False
    assert rules.status.resource_rules[0].verbs == ["*"]

    with pytest.raises(ApiException) as invalid:
        authz.create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec())
        )
    assert invalid.value.status == 422


def test_claims_bind_to_the_default_storage_class(api, core, namespace):
    storage = client.StorageV1Api(api)
    classes = storage.list_storage_class().items
    default = [
        c for c in classes if (c.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
    ]
    assert len(default) == 1
    claim = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="data"),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
        ),
    )
    created = core.create_namespaced_persistent_volume_claim(namespace, claim)
    assert created.spec.storage_class_name == default[0].metadata.name

    bound = eventually(
        "the claim is bound",
        lambda: (
            lambda c: c if c.status.phase == "Bound" else None
        )(core.read_namespaced_persistent_volume_claim("data", namespace)),
    )
    volume = core.read_persistent_volume(bound.spec.volume_name)
    assert volume.status.phase == "Bound"
    assert volume.spec.claim_ref.name == "data" and volume.spec.claim_ref.namespace == namespace
    assert bound.status.capacity["storage"] == "1Gi"


def test_a_not_ready_cluster_fails_readyz_and_still_answers(api, core):
    admin = os.environ["KUBESIM_ADMIN_URL"]

    def fault(name):
        request = urllib.request.Request(
            f"{admin}/_kubesim/fault",
            data=json.dumps({"fault": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).read()

    def readyz():
        try:
            _, status, _ = api.call_api("/readyz", "GET", auth_settings=["BearerToken"], _preload_content=False)
            return status
        except ApiException as e:
            return e.status

    assert readyz() == 200
    fault("notready")
    try:
        assert readyz() == 500
        assert core.list_namespace().items, "the API answers while the cluster is not ready"
        _, livez, _ = api.call_api("/livez", "GET", auth_settings=["BearerToken"], _preload_content=False)
        assert livez == 200
    finally:
        fault("recover")
    assert readyz() == 200


def test_a_pod_that_does_not_fit_stays_pending_with_a_warning(core, namespace):
    big = client.V1Pod(
        metadata=client.V1ObjectMeta(name="huge"),
        spec=client.V1PodSpec(containers=[container()]),
    )
    big.spec.containers[0].resources.requests["cpu"] = "64"
    core.create_namespaced_pod(namespace, big)

    def unschedulable():
        p = core.read_namespaced_pod("huge", namespace)
        c = next((c for c in (p.status.conditions or []) if c.type == "PodScheduled"), None)
        return c if c and c.reason == "Unschedulable" else None

    c = eventually("the pod is unschedulable", unschedulable)
    assert c.status == "False"
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=huge,reason=FailedScheduling")
    assert events.items and events.items[0].type == "Warning"
    assert "Insufficient cpu" in events.items[0].message
