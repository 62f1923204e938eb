"""The pre-flight round (session/preflight.py) against a scripted API server: what it asks, and what it refuses on."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubectl_istio_remote.console import Console
from kubectl_istio_remote.errors import ForbiddenError, UserError
from kubectl_istio_remote.istioctl import Istioctl
from kubectl_istio_remote.kube.cluster import Cluster
from kubectl_istio_remote.kube.labels import EXPIRES_ANNOTATION, MANAGED_BY, SESSION_LABEL, USER_LABEL
from kubectl_istio_remote.session.preflight import check_before_creating
from kubectl_istio_remote.session.settings import Mode, SessionSettings
from tests.doubles.apiserver import Answer, Script, apiserver

NS = "istio-system"
PODS = f"/api/v1/namespaces/{NS}/pods"
REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
WHO_AM_I = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


def pod(name: str, **status: str) -> dict:
    return {"metadata": {"name": name, "namespace": NS}, "status": {"phase": "Running", "podIP": "10.0.0.1", **status}}


def listed(*items: dict, resource_version: str = "7") -> Answer:
    return Answer(200, {"kind": "List", "metadata": {"resourceVersion": resource_version}, "items": list(items)})


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Cluster, Script]]:
    with apiserver(tmp_path, "external") as pinned:
        yield pinned


def settings_for(cluster: Cluster, mode: Mode) -> SessionSettings:
    return SessionSettings(mesh=cluster, external=cluster, istio_namespace=NS, mode=mode)


def review(allowed: bool) -> Answer:
    return Answer(201, {"kind": "SelfSubjectAccessReview", "status": {"allowed": allowed}})


def script_healthy(script: Script, *, leftovers: list[dict] | None = None) -> None:
    script.on("GET", PODS, listed(pod("istiod-0"), pod("istiod-1")))
    script.on("GET", f"{PODS}?*managed-by*", listed(*(leftovers or [])))
    script.on("GET", "/api/v1/namespaces/*/serviceaccounts", listed())
    script.on("GET", "/apis/rbac.authorization.k8s.io/v1/namespaces/*/*", listed())
    script.on("POST", REVIEWS, review(True))
    script.on("POST", WHO_AM_I, Answer(201, {"status": {"userInfo": {"username": "jane@example.com"}}}))


def test_pod_mode_learns_istiod_the_user_and_every_right_in_one_round(cluster: tuple[Cluster, Script]) -> None:
    pinned, script = cluster
    script_healthy(script)
    found = check_before_creating(settings_for(pinned, Mode.pod), Console(stderr=io.StringIO()), istioctl=None)
    assert found.istiods is not None
    assert [p.name for p in found.istiods.pods] == ["istiod-0", "istiod-1"] and found.istiods.resource_version == "7"
    assert found.user == "jane@example.com"
    reviewed = [body["spec"]["resourceAttributes"] for method, path, body in script.requests if path == REVIEWS]
    asked = {(a["verb"], a["resource"], a.get("subresource", "")) for a in reviewed}
    assert {
        ("create", "pods", ""),
        ("delete", "roles", ""),
        ("create", "pods", "portforward"),
        ("create", "serviceaccounts", "token"),
    } <= asked
    assert len(reviewed) == len(asked), "each right is asked once"


def test_every_missing_right_is_named_before_anything_is_created(cluster: tuple[Cluster, Script]) -> None:
    pinned, script = cluster
    script_healthy(script)
    script.on("POST", REVIEWS, *[review(index % 5 != 0) for index in range(30)])
    with pytest.raises(ForbiddenError) as refused:
        check_before_creating(settings_for(pinned, Mode.pod), Console(stderr=io.StringIO()), istioctl=None)
    message = refused.value.one_line()
    assert message.startswith("missing RBAC rights: ") and message.count(" (external)") >= 3
    assert "examples/rbac.yaml" in message
    assert not script.sent("POST", f"/api/v1/namespaces/{NS}/pods"), "nothing is created"


def test_no_istiod_is_said_first_even_when_rights_are_missing(cluster: tuple[Cluster, Script]) -> None:
    pinned, script = cluster
    script_healthy(script)
    script.on("GET", PODS, listed())
    script.on("GET", f"/api/v1/namespaces/{NS}", Answer(200, {"metadata": {"name": NS}}))
    script.on("POST", REVIEWS, review(False))
    with pytest.raises(UserError) as refused:
        check_before_creating(settings_for(pinned, Mode.local), Console(stderr=io.StringIO()), istioctl=None)
    assert refused.value.one_line() == (
        f"no istiod found: no running pods with label app=istiod in namespace {NS} of context external; "
        "set -i/--istio-namespace, --revision or --external-context"
    )


def test_expired_objects_of_earlier_sessions_are_one_warning(cluster: tuple[Cluster, Script]) -> None:
    pinned, script = cluster
    left = {
        "metadata": {
            "name": "istio-remote-0badc0de",
            "namespace": NS,
            "labels": {**MANAGED_BY, SESSION_LABEL: "0badc0de", USER_LABEL: "jane"},
            "annotations": {EXPIRES_ANNOTATION: "2020-01-01T00:00:00Z"},
        },
        "status": {"phase": "Failed"},
    }
    script_healthy(script, leftovers=[left])
    stderr = io.StringIO()
    check_before_creating(settings_for(pinned, Mode.pod), Console(stderr=stderr), istioctl=None)
    assert stderr.getvalue() == (
        f"warning: 1 expired object(s) of earlier sessions (0badc0de) in {NS} of context external: run `kubectl istio-remote cleanup`\n"
    )


def test_shared_mode_asks_the_control_plane_cluster_nothing(cluster: tuple[Cluster, Script]) -> None:
    """Before istioctl runs, the token's right is reviewed (istioctl's own refusal would not say which); a native command
    asks for the token itself, and its refusal names the same right."""
    pinned, script = cluster
    script_healthy(script)
    found = check_before_creating(settings_for(pinned, Mode.shared), Console(stderr=io.StringIO()), istioctl=Istioctl("istioctl", "1.27.0"))
    assert found.istiods is None and found.user == ""
    assert {path for _, path, _ in script.requests} == {REVIEWS}
    (only,) = [body["spec"]["resourceAttributes"] for _, _, body in script.requests]
    assert (only["verb"], only["resource"], only["subresource"], only["name"]) == ("create", "serviceaccounts", "token", "default")
    script.requests.clear()
    check_before_creating(settings_for(pinned, Mode.shared), Console(stderr=io.StringIO()), istioctl=None)
    assert script.requests == []


WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


def injector(url: str) -> dict:
    return {"metadata": {"name": "istio-sidecar-injector"}, "webhooks": [{"name": "sidecar.istio.io", "clientConfig": {"url": url}}]}


def test_the_mesh_clusters_istio_cluster_id_is_read_off_its_injection_webhook(cluster: tuple[Cluster, Script]) -> None:
    """A remote profile's webhook URL names the cluster (`/inject/cluster/ID/net/NETWORK`): istiod reviews its users'
    tokens in that cluster, so the session must name it."""
    pinned, script = cluster
    script_healthy(script)
    script.on("GET", f"{WEBHOOKS}?*", listed(injector("https://istiod.external-istiod.svc:15017/inject/cluster/remote-2/net/network1")))
    found = check_before_creating(settings_for(pinned, Mode.local), Console(stderr=io.StringIO()), istioctl=None)
    assert found.cluster_id == "remote-2"
    assert [path for method, path, _ in script.requests if path.startswith(WEBHOOKS)] == [
        f"{WEBHOOKS}?labelSelector=istio.io%2Frev%3Ddefault"
    ]


def test_a_given_cluster_id_is_not_looked_up_and_an_unreadable_webhook_is_only_a_detail(cluster: tuple[Cluster, Script]) -> None:
    pinned, script = cluster
    script_healthy(script)
    given = dataclasses.replace(settings_for(pinned, Mode.local), cluster_id="east")
    assert check_before_creating(given, Console(stderr=io.StringIO()), istioctl=None).cluster_id == "east"
    assert not script.sent("GET", f"{WEBHOOKS}*")
    script.on("GET", f"{WEBHOOKS}?*", Answer.refusal(403, "mutatingwebhookconfigurations is forbidden"))
    stderr = io.StringIO()
    found = check_before_creating(settings_for(pinned, Mode.local), Console(stderr=stderr, verbose=True), istioctl=None)
    assert found.cluster_id == "" and "--cluster-id" in stderr.getvalue()
