"""Our Kubernetes adapter against a scripted stand-in API server: errors a user can act on, and removal that waits out a restart."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from kubectl_istio_remote.console import Console
from kubectl_istio_remote.errors import UnavailableError
from kubectl_istio_remote.kube.api_errors import ApiError, UnreachableError
from kubectl_istio_remote.kube.kinds import POD, ROLE, ROLE_BINDING, SERVICE_ACCOUNT
from kubectl_istio_remote.kube.removal import ObjectRef, delete_objects
from kubectl_istio_remote.status import ExitStatus
from tests.doubles.apiserver import Answer, apiserver

NS = "external-istiod"
OK = Answer(200, {"kind": "Status", "status": "Success"})


def refs(*kinds_and_names: tuple) -> list[ObjectRef]:
    return [ObjectRef(kind, name) for kind, name in kinds_and_names]


def test_delete_removes_everything_at_once_and_does_not_report_what_was_already_gone(tmp_path: Path) -> None:
    with apiserver(tmp_path) as (cluster, script):
        script.on("DELETE", POD.path(NS, "p"), OK)
        script.on("DELETE", ROLE.path(NS, "p"), Answer.refusal(404, 'roles.rbac.authorization.k8s.io "p" not found'))
        script.on("DELETE", SERVICE_ACCOUNT.path(NS, "p"), OK)
        removed = delete_objects(
            cluster, NS, refs((POD, "p"), (ROLE, "p"), (SERVICE_ACCOUNT, "p")), time.monotonic() + 10, Console(), hint="h"
        )
    assert removed == ["Pod/p", "ServiceAccount/p"]
    assert sorted(path for method, path, _ in script.requests) == [
        "/api/v1/namespaces/external-istiod/pods/p?gracePeriodSeconds=0",
        "/api/v1/namespaces/external-istiod/serviceaccounts/p",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/external-istiod/roles/p",
    ]


def test_delete_retries_a_restarting_api_server_and_says_so_once(tmp_path: Path) -> None:
    stderr = io.StringIO()
    with apiserver(tmp_path) as (cluster, script):
        unavailable = Answer.refusal(503, "apiserver is shutting down")
        script.on("DELETE", ROLE_BINDING.path(NS, "p"), unavailable, unavailable, OK)
        removed = delete_objects(cluster, NS, refs((ROLE_BINDING, "p")), time.monotonic() + 20, Console(stderr=stderr), hint="h")
    assert removed == ["RoleBinding/p"]
    warnings = stderr.getvalue().splitlines()
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("warning: the API server of context stand-in (http://127.0.0.1:")
    assert "503 apiserver is shutting down" in warnings[0] and "retrying to remove RoleBinding/p" in warnings[0]


def test_delete_that_outlasts_the_deadline_names_what_is_left_and_the_next_step(tmp_path: Path) -> None:
    with apiserver(tmp_path) as (cluster, script):
        script.on("DELETE", POD.path(NS, "p"), Answer.refusal(503, "down"))
        script.on("DELETE", SERVICE_ACCOUNT.path(NS, "p"), Answer.refusal(503, "down"))
        with pytest.raises(UnavailableError) as raised:
            delete_objects(
                cluster, NS, refs((POD, "p"), (SERVICE_ACCOUNT, "p")), time.monotonic() + 1.5, Console(stderr=io.StringIO()), hint="run X"
            )
    assert "left Pod/p, ServiceAccount/p in namespace external-istiod" in str(raised.value)
    assert raised.value.hint == "run X" and raised.value.exit_status == ExitStatus.UNAVAILABLE


def test_a_signal_during_the_wait_ends_it_at_once(tmp_path: Path) -> None:
    with apiserver(tmp_path) as (cluster, script):
        script.on("DELETE", POD.path(NS, "p"), Answer.refusal(503, "down"))
        started = time.monotonic()
        with pytest.raises(UnavailableError):
            delete_objects(
                cluster, NS, refs((POD, "p")), time.monotonic() + 60, Console(stderr=io.StringIO()), hint="h", stop_waiting=lambda: True
            )
    assert time.monotonic() - started < 30


def test_a_refused_delete_is_forbidden_with_the_verb_to_ask_for(tmp_path: Path) -> None:
    with apiserver(tmp_path) as (cluster, script):
        script.on("DELETE", POD.path(NS, "p"), Answer.refusal(403, 'pods "p" is forbidden: User "alice" cannot delete resource "pods"'))
        with pytest.raises(ApiError) as raised:
            delete_objects(cluster, NS, refs((POD, "p")), time.monotonic() + 10, Console(), hint="h")
    error = raised.value
    assert error.exit_status == ExitStatus.FORBIDDEN
    assert error.one_line() == (
        "forbidden: cannot delete pods in namespace external-istiod of context stand-in: "
        'pods "p" is forbidden: User "alice" cannot delete resource "pods"; '
        "ask for RBAC 'delete' on 'pods', or run `kubectl istio-remote doctor`"
    )


@pytest.mark.parametrize(
    ("status", "message", "expected", "exit_status"),
    [
        (
            404,
            'namespaces "nowhere" not found',
            "namespace nowhere not found in context stand-in; check -i/--istio-namespace",
            ExitStatus.ERROR,
        ),
        (
            404,
            'roles.rbac.authorization.k8s.io "r" not found',
            'cannot list pods in namespace nowhere of context stand-in: roles.rbac.authorization.k8s.io "r" not found',
            ExitStatus.ERROR,
        ),
        (
            500,
            "etcdserver: request timed out",
            "cannot list pods in namespace nowhere of context stand-in: etcdserver: request timed out",
            ExitStatus.ERROR,
        ),
    ],
)
def test_api_errors_name_verb_resource_namespace_and_context(
    tmp_path: Path, status: int, message: str, expected: str, exit_status: int
) -> None:
    with apiserver(tmp_path) as (cluster, script):
        script.on("GET", POD.path("nowhere"), Answer.refusal(status, message))
        with pytest.raises(ApiError) as raised:
            cluster.list_objects(POD, "nowhere")
    assert raised.value.one_line() == expected
    assert raised.value.exit_status == exit_status


def test_rejected_credentials_name_the_context_and_logging_in(tmp_path: Path) -> None:
    with apiserver(tmp_path) as (cluster, script):
        script.on("GET", POD.path(NS), Answer.refusal(401, "Unauthorized"))
        with pytest.raises(ApiError) as raised:
            cluster.list_objects(POD, NS)
    line = raised.value.one_line()
    assert line.startswith("the API server of context stand-in (http://127.0.0.1:") and "rejected the credentials: Unauthorized" in line
    assert line.endswith("; log in again, or check the user of context stand-in in your kubeconfig")


def test_admission_refusals_are_told_apart_from_missing_rights(tmp_path: Path) -> None:
    with apiserver(tmp_path) as (cluster, script):
        script.on(
            "POST",
            POD.path(NS),
            Answer.refusal(403, 'pods "p" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true'),
        )
        with pytest.raises(ApiError) as raised:
            cluster.create(POD, NS, {"apiVersion": "v1", "kind": "Pod"})
    assert raised.value.refused_by_admission
    refusal = raised.value.as_admission_refusal()
    assert refusal.one_line().startswith('the API server refused the pod: pods "p" is forbidden: violates PodSecurity')


def test_an_api_server_that_does_not_listen_is_unreachable_with_its_address(tmp_path: Path) -> None:
    with apiserver(tmp_path) as (cluster, _):
        pass  # stopped: nothing listens there any more
    with pytest.raises(UnreachableError) as raised:
        cluster.read(POD, NS, "p")
    assert str(raised.value).startswith(f"cannot reach the API server of context stand-in ({cluster.host}): ")
    assert raised.value.exit_status == ExitStatus.UNAVAILABLE


def test_the_request_carries_the_kubeconfigs_token_and_json_body(tmp_path: Path) -> None:
    with apiserver(tmp_path) as (cluster, script):
        script.on("POST", SERVICE_ACCOUNT.path(NS, "default", "token"), Answer(201, {"status": {"token": "t"}}))
        answer = cluster.create(SERVICE_ACCOUNT, NS, {"spec": {"audiences": ["istio-ca"]}}, name="default", subresource="token")
    assert answer == {"status": {"token": "t"}}
    assert script.requests == [
        ("POST", "/api/v1/namespaces/external-istiod/serviceaccounts/default/token", {"spec": {"audiences": ["istio-ca"]}})
    ]
    assert script.credentials == ["Bearer stand-in-token"]
