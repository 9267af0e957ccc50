"""The remaining served kinds through the official Python client: nodes,
DaemonSets, ReplicaSets, service accounts, quotas and limit ranges,
Ingresses, network policies, leases, ReplicationControllers, HTTPRoutes
as custom objects, and manifests applied with `utils.create_from_yaml`."""

import datetime
import os
import tempfile

import pytest
from kubernetes import client, utils
from kubernetes.client.rest import ApiException

from support import container, eventually


def test_nodes_report_capacity_and_readiness(core):
    nodes = core.list_node().items
    assert nodes
    node = core.read_node(nodes[0].metadata.name)
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert ready.status == "True"
    assert node.status.allocatable["cpu"] and node.status.capacity["pods"]
    assert node.status.node_info.kubelet_version.startswith("v1.")
    assert node.metadata.labels["kubernetes.io/hostname"] == node.metadata.name


def test_a_daemonset_runs_a_pod_per_node(api, core, namespace):
    apps = client.AppsV1Api(api)
    labels = {"app": "agent"}
    ds = client.V1DaemonSet(
        metadata=client.V1ObjectMeta(name="agent"),
        spec=client.V1DaemonSetSpec(
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[container(image="fluent-bit:3")]),
            ),
        ),
    )
    created = apps.create_namespaced_daemon_set(namespace, ds)
    assert created.spec.update_strategy.type == "RollingUpdate"
    nodes = len(core.list_node().items)

    def all_ready():
        s = apps.read_namespaced_daemon_set("agent", namespace).status
        return s.desired_number_scheduled == nodes and s.number_ready == nodes

    eventually("a ready pod on every node", all_ready)
    pods = core.list_namespaced_pod(namespace, label_selector="app=agent").items
    assert sorted(p.spec.node_name for p in pods) == sorted(n.metadata.name for n in core.list_node().items)


def test_a_replicaset_keeps_its_replicas(api, core, namespace):
    apps = client.AppsV1Api(api)
    labels = {"app": "rs"}
    rs = client.V1ReplicaSet(
        metadata=client.V1ObjectMeta(name="rs"),
        spec=client.V1ReplicaSetSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels), spec=client.V1PodSpec(containers=[container()])
            ),
        ),
    )
    apps.create_namespaced_replica_set(namespace, rs)
    eventually(
        "2 ready replicas",
        lambda: apps.read_namespaced_replica_set("rs", namespace).status.ready_replicas == 2,
    )
    victim = core.list_namespaced_pod(namespace, label_selector="app=rs").items[0].metadata.name
    core.delete_namespaced_pod(victim, namespace, grace_period_seconds=0)

    def replaced():
        names = [p.metadata.name for p in core.list_namespaced_pod(namespace, label_selector="app=rs").items]
        return len(names) == 2 and victim not in names

    eventually("the deleted pod is replaced", replaced)
    apps.patch_namespaced_replica_set_scale("rs", namespace, {"spec": {"replicas": 0}})
    eventually("scaled to zero", lambda: not core.list_namespaced_pod(namespace, label_selector="app=rs").items)


def test_service_accounts_quotas_and_limit_ranges(core, namespace):
    sa = core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="builder"))
    )
    assert sa.metadata.name == "builder"
    assert "builder" in [s.metadata.name for s in core.list_namespaced_service_account(namespace).items]

    core.create_namespaced_limit_range(
        namespace,
        client.V1LimitRange(
            metadata=client.V1ObjectMeta(name="limits"),
            spec=client.V1LimitRangeSpec(
                limits=[client.V1LimitRangeItem(type="Container", default_request={"cpu": "50m"})]
            ),
        ),
    )
    assert [lr.metadata.name for lr in core.list_namespaced_limit_range(namespace).items] == ["limits"]

    core.create_namespaced_resource_quota(
        namespace,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="quota"),
            spec=client.V1ResourceQuotaSpec(hard={"pods": "1", "configmaps": "10"}),
        ),
    )
    quota = eventually(
        "the quota reports its use",
        lambda: (lambda q: q if q.status and q.status.used else None)(
            core.read_namespaced_resource_quota("quota", namespace)
        ),
    )
    assert quota.status.hard["pods"] == "1"
    core.create_namespaced_pod(
        namespace, client.V1Pod(metadata=client.V1ObjectMeta(name="one"), spec=client.V1PodSpec(containers=[container()]))
    )
    eventually(
        "the pod is counted",
        lambda: core.read_namespaced_resource_quota("quota", namespace).status.used.get("pods") == "1",
    )
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(
            namespace,
            client.V1Pod(metadata=client.V1ObjectMeta(name="two"), spec=client.V1PodSpec(containers=[container()])),
        )
    assert refused.value.status == 403
    assert "exceeded quota: quota" in refused.value.body


def test_ingresses_and_network_policies(api, namespace):
    networking = client.NetworkingV1Api(api)
    ingress = client.V1Ingress(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1IngressSpec(
            rules=[
                client.V1IngressRule(
                    host="web.example.com",
                    http=client.V1HTTPIngressRuleValue(
                        paths=[
                            client.V1HTTPIngressPath(
                                path="/",
                                path_type="Prefix",
                                backend=client.V1IngressBackend(
                                    service=client.V1IngressServiceBackend(
                                        name="web", port=client.V1ServiceBackendPort(number=80)
                                    )
                                ),
                            )
                        ]
                    ),
                )
            ]
        ),
    )
    created = networking.create_namespaced_ingress(namespace, ingress)
    assert created.spec.rules[0].host == "web.example.com"
    assert [i.metadata.name for i in networking.list_namespaced_ingress(namespace).items] == ["web"]
    policy = client.V1NetworkPolicy(
        metadata=client.V1ObjectMeta(name="deny"),
        spec=client.V1NetworkPolicySpec(pod_selector=client.V1LabelSelector(), policy_types=["Ingress"]),
    )
    networking.create_namespaced_network_policy(namespace, policy)
    patched = networking.patch_namespaced_network_policy(
        "deny", namespace, {"metadata": {"labels": {"kind": "default-deny"}}}
    )
    assert patched.metadata.labels == {"kind": "default-deny"}
    networking.delete_namespaced_ingress("web", namespace)
    assert networking.list_namespaced_ingress(namespace).items == []


def test_leases_for_leader_election(api, namespace):
    coordination = client.CoordinationV1Api(api)
    now = datetime.datetime.now(datetime.timezone.utc)
    lease = client.V1Lease(
        metadata=client.V1ObjectMeta(name="leader"),
        spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15, acquire_time=now, renew_time=now),
    )
    created = coordination.create_namespaced_lease(namespace, lease)
    assert created.spec.holder_identity == "a"
    created.spec.holder_identity = "b"
    renewed = coordination.replace_namespaced_lease("leader", namespace, created)
    assert renewed.spec.holder_identity == "b"
    assert renewed.spec.renew_time is not None
    with pytest.raises(ApiException) as stale:
        coordination.replace_namespaced_lease("leader", namespace, created)
    assert stale.value.status == 409


def test_replication_controllers_are_served(core, namespace):
    rc = client.V1ReplicationController(
        metadata=client.V1ObjectMeta(name="legacy"),
        spec=client.V1ReplicationControllerSpec(
            replicas=0,
            selector={"app": "legacy"},
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "legacy"}), spec=client.V1PodSpec(containers=[container()])
            ),
        ),
    )
    created = core.create_namespaced_replication_controller(namespace, rc)
    assert created.status.replicas == 0
    listed = core.list_namespaced_replication_controller(namespace).items
    assert [r.metadata.name for r in listed] == ["legacy"]


def test_http_routes_as_custom_objects(api, namespace):
    custom = client.CustomObjectsApi(api)
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web"},
        "spec": {"hostnames": ["web.example.com"], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]},
    }
    created = custom.create_namespaced_custom_object("gateway.networking.k8s.io", "v1", namespace, "httproutes", route)
    assert created["metadata"]["uid"]
    got = custom.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", namespace, "httproutes", "web")
    assert got["spec"]["hostnames"] == ["web.example.com"]
    patched = custom.patch_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", "web", {"spec": {"hostnames": ["new.example.com"]}}
    )
    assert patched["spec"]["hostnames"] == ["new.example.com"]
    listed = custom.list_namespaced_custom_object("gateway.networking.k8s.io", "v1", namespace, "httproutes")
    assert [r["metadata"]["name"] for r in listed["items"]] == ["web"]
    custom.delete_namespaced_custom_object("gateway.networking.k8s.io", "v1", namespace, "httproutes", "web")
    with pytest.raises(ApiException) as gone:
        custom.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", namespace, "httproutes", "web")
    assert gone.value.status == 404


MANIFESTS = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: from-yaml
data:
  key: value
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: from-yaml
spec:
  replicas: 1
  selector:
    matchLabels: {app: from-yaml}
  template:
    metadata:
      labels: {app: from-yaml}
    spec:
      containers:
      - name: app
        image: nginx:1.27
"""


def test_manifests_are_created_from_yaml(api, namespace):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "manifests.yaml")
        with open(path, "w") as f:
            f.write(MANIFESTS)
        created = utils.create_from_yaml(api, path, namespace=namespace)
    kinds = sorted(type(o).__name__ for group in created for o in group)
    assert kinds == ["V1ConfigMap", "V1Deployment"]
    apps = client.AppsV1Api(api)
    eventually(
        "the deployment from YAML is available",
        lambda: apps.read_namespaced_deployment("from-yaml", namespace).status.available_replicas == 1,
    )
