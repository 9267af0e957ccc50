"""core/v1 through the official Python client: namespaces, ConfigMaps,
Secrets, Services and pods, with every verb and every patch type."""

import base64
import uuid

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from support import container, eventually


def test_namespaces_are_created_listed_patched_and_deleted(core):
    name = "py-ns-" + uuid.uuid4().hex[:8]
    created = core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"suite": "python"}))
    )
    assert created.metadata.name == name
    assert created.metadata.uid and created.metadata.resource_version
    # The API server sets no generation on Namespaces, and defaults the phase
    # and the kubernetes.io/metadata.name label.
    assert created.metadata.generation is None
    assert created.status.phase == "Active"
    assert created.metadata.labels["kubernetes.io/metadata.name"] == name
    assert "kubernetes" in created.spec.finalizers

    listed = core.list_namespace(label_selector="suite=python").items
    assert [n.metadata.name for n in listed] == [name]
    assert core.read_namespace(name).metadata.uid == created.metadata.uid

    patched = core.patch_namespace(name, {"metadata": {"labels": {"patched": "yes"}}})
    assert patched.metadata.labels["patched"] == "yes"
    assert patched.metadata.labels["suite"] == "python"

    core.delete_namespace(name)

    def gone():
        try:
            ns = core.read_namespace(name)
            return ns.status.phase == "Terminating" and None
        except ApiException as e:
            return e.status == 404

    eventually("the namespace is gone", gone)


def test_configmaps_serve_every_verb(core, namespace):
    cm = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="settings", labels={"tier": "web"}),
        data={"colour": "blue", "size": "m"},
    )
    created = core.create_namespaced_config_map(namespace, cm)
    assert created.metadata.namespace == namespace
    assert created.data == {"colour": "blue", "size": "m"}

    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map(namespace, cm)
    assert exists.value.status == 409
    assert '"reason":"AlreadyExists"' in exists.value.body.replace(" ", "")

    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("absent", namespace)
    assert missing.value.status == 404

    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="other", labels={"tier": "db"}))
    )
    listed = core.list_namespaced_config_map(namespace, label_selector="tier=web")
    assert [c.metadata.name for c in listed.items] == ["settings"]
    assert listed.metadata.resource_version
    page = core.list_namespaced_config_map(namespace, limit=1)
    assert len(page.items) == 1 and page.metadata._continue
    rest = core.list_namespaced_config_map(namespace, limit=1, _continue=page.metadata._continue)
    assert len(rest.items) == 1 and rest.items[0].metadata.name != page.items[0].metadata.name
    by_field = core.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={namespace}")
    assert sorted(c.metadata.name for c in by_field.items) == ["other", "settings"]

    # Strategic merge (the typed API's default for a dict body).
    patched = core.patch_namespaced_config_map("settings", namespace, {"data": {"size": "l"}})
    assert patched.data == {"colour": "blue", "size": "l"}
    # JSON patch (a list body).
    patched = core.patch_namespaced_config_map(
        "settings", namespace, [{"op": "add", "path": "/data/shape", "value": "round"}]
    )
    assert patched.data["shape"] == "round"
    with pytest.raises(ApiException) as failed_test:
        core.patch_namespaced_config_map(
            "settings", namespace, [{"op": "test", "path": "/data/colour", "value": "red"}]
        )
    assert failed_test.value.status == 422

    # Update with the read resourceVersion, then with a stale one.
    current = core.read_namespaced_config_map("settings", namespace)
    current.data["colour"] = "green"
    replaced = core.replace_namespaced_config_map("settings", namespace, current)
    assert replaced.data["colour"] == "green"
    assert replaced.metadata.resource_version != current.metadata.resource_version
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map("settings", namespace, current)
    assert stale.value.status == 409

    core.delete_namespaced_config_map("settings", namespace)
    with pytest.raises(ApiException) as deleted:
        core.read_namespaced_config_map("settings", namespace)
    assert deleted.value.status == 404
    core.delete_collection_namespaced_config_map(namespace, label_selector="tier=db")
    assert [c.metadata.name for c in core.list_namespaced_config_map(namespace).items] == []


def test_merge_patch_and_server_side_apply_through_the_dynamic_client(dynamic, namespace):
    configmaps = dynamic.resources.get(api_version="v1", kind="ConfigMap")
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "applied", "namespace": namespace},
        "data": {"owner": "python", "level": "1"},
    }
    applied = dynamic.server_side_apply(configmaps, body=manifest, field_manager="python-suite")
    assert applied.data.owner == "python"
    managers = [m.manager for m in applied.metadata.managedFields]
    assert managers == ["python-suite"]

    merged = configmaps.patch(
        name="applied",
        namespace=namespace,
        body={"data": {"level": None, "extra": "x"}},
        content_type="application/merge-patch+json",
    )
    assert merged.data.to_dict() == {"owner": "python", "extra": "x"}

    conflicting = {**manifest, "data": {"owner": "someone else"}}
    with pytest.raises(Exception) as conflict:
        dynamic.server_side_apply(configmaps, body=conflicting, field_manager="intruder")
    assert getattr(conflict.value, "status", None) == 409, conflict.value
    assert "python-suite" in str(conflict.value.body)
    forced = dynamic.server_side_apply(configmaps, body=conflicting, field_manager="intruder", force_conflicts=True)
    assert forced.data.owner == "someone else"
    assert "intruder" in [m.manager for m in forced.metadata.managedFields]


def test_watching_configmaps_reports_each_change(core, namespace):
    listed = core.list_namespaced_config_map(namespace)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="watched"), data={"a": "1"})
    )
    core.patch_namespaced_config_map("watched", namespace, {"data": {"a": "2"}})
    core.delete_namespaced_config_map("watched", namespace)

    seen = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=20,
    ):
        seen.append((event["type"], event["object"].metadata.name, (event["object"].data or {}).get("a")))
        if event["type"] == "DELETED":
            w.stop()
    assert seen == [("ADDED", "watched", "1"), ("MODIFIED", "watched", "2"), ("DELETED", "watched", "2")]


def test_secrets_merge_string_data_and_default_their_type(core, namespace):
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name="creds"),
        string_data={"password": "s3cret"},
        data={"user": base64.b64encode(b"admin").decode()},
    )
    created = core.create_namespaced_secret(namespace, secret)
    assert created.type == "Opaque"
    assert created.string_data is None
    assert base64.b64decode(created.data["password"]) == b"s3cret"
    assert base64.b64decode(created.data["user"]) == b"admin"

    patched = core.patch_namespaced_secret("creds", namespace, {"stringData": {"password": "changed"}})
    assert base64.b64decode(patched.data["password"]) == b"changed"
    tls = core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="tls"),
            type="kubernetes.io/tls",
            string_data={"tls.crt": "cert", "tls.key": "key"},
        ),
    )
    assert tls.type == "kubernetes.io/tls"
    names = sorted(s.metadata.name for s in core.list_namespaced_secret(namespace).items)
    assert {"creds", "tls"} <= set(names)
    core.delete_namespaced_secret("creds", namespace)
    assert "creds" not in [s.metadata.name for s in core.list_namespaced_secret(namespace).items]


def test_services_get_a_cluster_ip_and_their_ports(core, namespace):
    service = client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(
            selector={"app": "web"},
            ports=[client.V1ServicePort(name="http", port=80, target_port=8080)],
        ),
    )
    created = core.create_namespaced_service(namespace, service)
    assert created.spec.type == "ClusterIP"
    assert created.spec.cluster_ip and created.spec.cluster_ip != "None"
    assert created.spec.ports[0].protocol == "TCP"
    assert created.spec.ports[0].target_port == 8080

    patched = core.patch_namespaced_service("web", namespace, {"spec": {"type": "NodePort"}})
    assert patched.spec.type == "NodePort"
    assert 30000 <= patched.spec.ports[0].node_port <= 32767
    assert patched.spec.cluster_ip == created.spec.cluster_ip

    listed = core.list_namespaced_service(namespace)
    assert [s.metadata.name for s in listed.items] == ["web"]
    core.delete_namespaced_service("web", namespace)
    assert core.list_namespaced_service(namespace).items == []


def test_a_pod_runs_logs_follows_and_terminates_gracefully(core, namespace):
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="server"),
        spec=client.V1PodSpec(containers=[container()], termination_grace_period_seconds=5),
    )
    core.create_namespaced_pod(namespace, pod)

    def running():
        p = core.read_namespaced_pod("server", namespace)
        ready = [c for c in (p.status.conditions or []) if c.type == "Ready" and c.status == "True"]
        return p if p.status.phase == "Running" and ready else None

    running_pod = eventually("the pod runs and is ready", running)
    assert running_pod.spec.node_name
    assert running_pod.status.pod_ip
    assert running_pod.status.container_statuses[0].ready
    assert running_pod.status.container_statuses[0].state.running.started_at

    log = core.read_namespaced_pod_log("server", namespace, tail_lines=3)
    assert len(log.splitlines()) == 3

    # Following (the documented way, a Watch over the log): the stream stays
    # open and new lines arrive as the container writes them.
    follower = watch.Watch()
    lines = []
    for line in follower.stream(
        core.read_namespaced_pod_log, "server", namespace, tail_lines=1, _request_timeout=30
    ):
        lines.append(line)
        if len(lines) == 3:
            follower.stop()
            break
    numbers = [int(line.rsplit(" ", 1)[1]) for line in lines]
    assert numbers == sorted(set(numbers)), lines

    # Graceful deletion: the pod is marked for deletion, then goes.
    marked = core.delete_namespaced_pod("server", namespace, grace_period_seconds=2)
    assert marked.metadata.deletion_timestamp is not None
    assert marked.metadata.deletion_grace_period_seconds == 2

    def gone():
        try:
            core.read_namespaced_pod("server", namespace)
            return False
        except ApiException as e:
            return e.status == 404

    eventually("the pod is removed", gone, within=15)
