"""Shared fixtures of kubesim's scenario suite for the official Python client.

The suite is run by `tests/conformance/python_client.rs`, which starts a
simulated cluster and passes its kubeconfig in `KUBECONFIG` and its admin
endpoint in `KUBESIM_ADMIN_URL`. Every scenario is written against the
Kubernetes API alone (the admin endpoint only injects faults), so it would
pass against a real cluster too.
"""

import os
import tempfile
import uuid

import pytest
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient


@pytest.fixture(scope="session")
def api():
    configuration = client.Configuration()
    config.load_kube_config(config_file=os.environ["KUBECONFIG"], client_configuration=configuration)
    with client.ApiClient(configuration) as api_client:
        yield api_client


@pytest.fixture(scope="session")
def dynamic(api):
    # The discovery cache goes to a folder of this run, not the shared /tmp file.
    with tempfile.TemporaryDirectory() as cache:
        yield DynamicClient(api, cache_file=os.path.join(cache, "discovery.json"))


@pytest.fixture
def core(api):
    return client.CoreV1Api(api)


@pytest.fixture
def apps(api):
    return client.AppsV1Api(api)


@pytest.fixture
def batch(api):
    return client.BatchV1Api(api)


@pytest.fixture
def namespace(api):
    """A fresh namespace for one scenario, deleted afterwards."""
    core = client.CoreV1Api(api)
    name = "py-" + uuid.uuid4().hex[:10]
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)
