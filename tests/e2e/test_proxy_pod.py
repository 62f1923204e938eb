"""Pod mode's pod as the external cluster sees it, while a session is open (issue 6).

The pod was admitted under PodSecurity `restricted` (which the namespace enforces), its
aggregator answers only through the port-forward, never on the pod IP, and its Role grants exactly
what `serve --discover` uses: without any one of its verbs, the aggregator is refused.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from kubectl_istio_remote.aggregator.client import Connection, check_health
from kubectl_istio_remote.deploy.workload import identity_objects
from kubectl_istio_remote.kube.labels import SELECTOR
from tests.e2e.conftest import Sandbox
from tests.e2e.test_plugin import leftovers
from tests.e2e.test_teardown import shell_session, wait_ready
from tests.sandbox.clusters import api, apply
from tests.sandbox.podrunner import token_kubeconfig

PROBE = "rbac-probe"


@dataclass(frozen=True)
class OpenSession:
    address: str  # what istioctl is pointed at: the local end of the port-forward
    pod: client.V1Pod
    role: client.V1Role


@pytest.fixture(scope="module")
def session(sandbox: Sandbox) -> Iterator[OpenSession]:
    """One pod-mode `shell` session, open while the module's tests run; it must end cleanly and leave nothing."""
    with shell_session(sandbox) as process:
        address = wait_ready(process)
        with api("external") as api_client:
            [pod] = client.CoreV1Api(api_client).list_namespaced_pod(sandbox.istio_namespace, label_selector=SELECTOR).items
            role = client.RbacAuthorizationV1Api(api_client).read_namespaced_role(pod.metadata.name, sandbox.istio_namespace)
        yield OpenSession(address, pod, role)
        process.stdin.close()
        assert process.wait(timeout=60) == 0, process.stderr.read()
    assert leftovers(sandbox) == []


def test_the_pod_is_admitted_where_pod_security_restricted_is_enforced(sandbox: Sandbox, session: OpenSession) -> None:
    with api("external") as api_client:
        core = client.CoreV1Api(api_client)
        labels = core.read_namespace(sandbox.istio_namespace).metadata.labels
        # The same pod with one restricted setting relaxed is refused: admission really checks ours.
        relaxed = api_client.sanitize_for_serialization(session.pod.spec)
        relaxed["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "psa-probe"}, "spec": relaxed}
        with pytest.raises(client.ApiException) as refused:
            core.create_namespaced_pod(sandbox.istio_namespace, body, dry_run="All")
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert session.pod.status.phase == "Running"
    assert refused.value.status == 403 and "violates PodSecurity" in refused.value.body, refused.value.body


def test_the_aggregator_answers_through_the_port_forward_only(session: OpenSession) -> None:
    port = session.pod.spec.containers[0].ports[0].container_port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((session.pod.status.pod_ip, port), timeout=5).close()
    assert asyncio.run(check_health(Connection(session.address), timeout=10))


def _grant(sandbox: Sandbox, rules: list[dict]) -> None:
    """ServiceAccount, Role and RoleBinding `rbac-probe`, and wait until the authorizer applies the Role."""
    namespace = sandbox.istio_namespace
    probe = identity_objects({"name": PROBE, "namespace": namespace})  # the aggregator's own objects, other rules
    apply("external", [probe["ServiceAccount"], {**probe["Role"], "rules": rules}, probe["RoleBinding"]])
    with api("external") as api_client:
        granted = rules[0]["verbs"][0]
        review = {
            "spec": {
                "user": f"system:serviceaccount:{namespace}:{PROBE}",
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
                "resourceAttributes": {"namespace": namespace, "verb": granted, "resource": "pods"},
            }
        }
        deadline = time.monotonic() + 30
        while not client.AuthorizationV1Api(api_client).create_subject_access_review(review).status.allowed:
            assert time.monotonic() < deadline, "the probe's Role was not applied within 30 s"
            time.sleep(0.2)


def _revoke(sandbox: Sandbox) -> None:
    with api("external") as api_client:
        core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
        rbac.delete_namespaced_role_binding(PROBE, sandbox.istio_namespace)
        rbac.delete_namespaced_role(PROBE, sandbox.istio_namespace)
        core.delete_namespaced_service_account(PROBE, sandbox.istio_namespace)


def _serve_as_probe(sandbox: Sandbox, kubeconfig: Path) -> tuple[bool, str]:
    """`serve --discover` as the probe's ServiceAccount: did it start listening, and its stderr up to the first refusal."""
    with api("external") as api_client:
        request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
        token = client.CoreV1Api(api_client).create_namespaced_service_account_token(PROBE, sandbox.istio_namespace, request).status.token
    argv = [
        sys.executable,
        "-m",
        "kubectl_istio_remote",
        "serve",
        "--discover",
        "-n",
        sandbox.istio_namespace,
        "--kubeconfig",
        str(token_kubeconfig(token, sandbox.istio_namespace, kubeconfig)),
        "--listen",
        "127.0.0.1:0",
    ]
    process = subprocess.Popen(argv, env=sandbox.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stopper = threading.Timer(30, process.terminate)  # bounds the read below if no refusal ever comes
    stopper.start()
    lines = []
    try:
        for line in process.stderr:
            lines.append(line)
            if "forbidden" in line.lower():
                break
    finally:
        stopper.cancel()
        process.terminate()
        process.wait(timeout=10)
    return "listening on" in process.stdout.read(), "".join(lines)


def test_the_role_grants_exactly_what_discovery_uses(sandbox: Sandbox, session: OpenSession, tmp_path: Path) -> None:
    rules = client.ApiClient().sanitize_for_serialization(session.role.rules)  # every field the server holds
    assert rules == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]
    runs = {}
    for verb in rules[0]["verbs"]:
        _grant(sandbox, [{**rules[0], "verbs": [other for other in rules[0]["verbs"] if other != verb]}])
        try:
            runs[verb] = _serve_as_probe(sandbox, tmp_path / f"without-{verb}.kubeconfig")
        finally:
            _revoke(sandbox)
    # Without list it cannot find the istiods at all; without watch it starts but cannot follow them.
    listening, stderr = runs["list"]
    assert not listening and stderr.startswith("error: cannot list istiod pods in namespace external-istiod: 403"), stderr
    assert "Traceback" not in stderr, "a refusal is one line"
    listening, stderr = runs["watch"]
    assert listening and "warning: watching istiod pods failed: 403 " in stderr and 'cannot watch resource "pods"' in stderr, stderr
