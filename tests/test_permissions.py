"""Which rights each mode asks for before it creates anything, and how they are asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubectl_istio_remote.errors import ForbiddenError
from kubectl_istio_remote.istioctl import Istioctl
from kubectl_istio_remote.kube.kinds import SELF_SUBJECT_ACCESS_REVIEW
from kubectl_istio_remote.session import permissions
from kubectl_istio_remote.session.settings import Mode
from tests.doubles.apiserver import Answer, apiserver

NS = "external-istiod"


def described(mode: Mode, istioctl: Istioctl | None, tmp_path: Path) -> set[str]:
    with apiserver(tmp_path, "mesh") as (mesh, _), apiserver(tmp_path, "external") as (external, _):
        return {need.description for need in permissions.needs(mode, mesh, external, NS, istioctl=istioctl)}


def test_local_mode_only_reads_istiod_pods_forwards_to_them_and_asks_for_a_token(tmp_path: Path) -> None:
    assert described(Mode.local, None, tmp_path) == {
        "get pods in external-istiod (external)",
        "list pods in external-istiod (external)",
        "watch pods in external-istiod (external)",
        "get pods/portforward in external-istiod (external)",
        "create pods/portforward in external-istiod (external)",
        "create serviceaccounts/token 'default' in external-istiod (mesh)",
    }


def test_pod_mode_adds_creating_patching_and_deleting_its_four_objects(tmp_path: Path) -> None:
    extra = described(Mode.pod, None, tmp_path) - described(Mode.local, None, tmp_path)
    assert extra == {
        "create pods in external-istiod (external)",
        "delete pods in external-istiod (external)",
        *(
            f"{verb} {resource} in external-istiod (external)"
            for resource in ("serviceaccounts", "roles", "rolebindings")
            for verb in ("create", "patch", "delete")
        ),
    }


@pytest.mark.parametrize(("version", "watches"), [("1.27.3", False), ("1.28.0", True), ("dev", True)])
def test_istioctl_from_1_28_also_needs_to_watch_webhook_configurations(tmp_path: Path, version: str, watches: bool) -> None:
    rights = described(Mode.local, Istioctl("/usr/bin/istioctl", version), tmp_path)
    webhook_rights = {f"{verb} mutatingwebhookconfigurations cluster-wide (mesh)" for verb in ("list", "watch")}
    assert (webhook_rights <= rights) is watches


def test_each_right_is_one_review_and_every_missing_one_is_named_at_once(tmp_path: Path) -> None:
    with apiserver(tmp_path, "mesh") as (mesh, mesh_script), apiserver(tmp_path, "external") as (external, external_script):
        mesh_script.on("POST", SELF_SUBJECT_ACCESS_REVIEW.path(), Answer(201, {"status": {"allowed": True}}))
        external_script.on("POST", SELF_SUBJECT_ACCESS_REVIEW.path(), Answer(201, {"status": {"allowed": False}}))
        needs = permissions.needs(Mode.local, mesh, external, NS)
        with pytest.raises(ForbiddenError) as raised:
            permissions.refuse_missing(needs, permissions.check(needs))
    assert len(external_script.requests) == 5 and len(mesh_script.requests) == 1
    token_review = mesh_script.requests[0][2]
    assert token_review["spec"]["resourceAttributes"] == {
        "namespace": NS,
        "verb": "create",
        "group": "",
        "resource": "serviceaccounts",
        "subresource": "token",
        "name": "default",
    }
    message = str(raised.value)
    assert message.startswith("missing RBAC rights: get pods in external-istiod (external); ")
    assert "create pods/portforward in external-istiod (external)" in message and "(mesh)" not in message
