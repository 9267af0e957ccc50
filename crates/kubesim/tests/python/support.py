"""Helpers of kubesim's Python scenario suite: waiting for a signal and
building the objects the scenarios create."""

import time

from kubernetes import client


def eventually(what, probe, within=30.0, every=0.1):
    """Polls `probe` until it returns something truthy and returns that;
    fails naming `what` and the last answer if `within` seconds pass."""
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {within}s (last: {last!r})")


def condition(obj, kind):
    """The condition of type `kind` in a typed object's status, or None."""
    for c in (obj.status.conditions or []) if obj.status else []:
        if c.type == kind:
            return c
    return None


def container(name="app", image="nginx:1.27", **extra):
    return client.V1Container(
        name=name,
        image=image,
        resources=client.V1ResourceRequirements(requests={"cpu": "100m", "memory": "64Mi"}),
        **extra,
    )


def deployment(name, replicas=2, image="nginx:1.27", **spec):
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[container(image=image)]),
            ),
            **spec,
        ),
    )


def events_of(core, namespace, kind, name):
    """(reason, message, type) of the core/v1 Events about one object."""
    selector = f"involvedObject.kind={kind},involvedObject.name={name}"
    events = core.list_namespaced_event(namespace, field_selector=selector).items
    return [(e.reason, e.message, e.type) for e in events]
