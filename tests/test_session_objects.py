"""What pod mode asks the API server to create, checked before any cluster sees it."""

from __future__ import annotations

import datetime
from typing import Any

from kubectl_istio_remote.deploy.workload import SessionPod, session_pod_objects, session_serve_args


def objects(ttl_seconds: int = 900, revision: str = "") -> dict[str, dict[str, Any]]:
    pod = SessionPod(
        namespace="external-istiod",
        session_id="a1b2c3d4",
        user="alice@example.com",
        ttl_seconds=ttl_seconds,
        image="ghcr.io/kubectl-istio-remote/proxy:0.1.0",
        pull_policy="IfNotPresent",
        pull_secrets=(),
        args=session_serve_args(10.0, revision, "", verbose=False),
    )
    return session_pod_objects(pod, now=datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc))


def test_pod_passes_pod_security_restricted() -> None:
    pod = objects()["Pod"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["readOnlyRootFilesystem"] is True


def test_pod_ends_itself_and_is_not_meshed() -> None:
    pod = objects(ttl_seconds=120)["Pod"]
    assert pod["spec"]["activeDeadlineSeconds"] == 120
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"


def test_aggregator_listens_on_loopback_only_and_discovers_istiods() -> None:
    args = objects(revision="canary")["Pod"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["serve", "--discover"]
    assert args[args.index("--listen") + 1] == "127.0.0.1:15012"
    assert args[args.index("--revision") + 1] == "canary"


def test_every_object_is_labelled_with_session_user_and_expiry() -> None:
    for kind, body in objects().items():
        labels = body["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "kubectl-istio-remote", kind
        assert labels["kubectl-istio-remote/session"] == "a1b2c3d4"
        assert labels["kubectl-istio-remote/user"] == "alice-example.com"
        assert body["metadata"]["annotations"]["kubectl-istio-remote/expires-at"] == "2026-12-01T12:15:00Z"


def test_role_grants_reading_pods_and_nothing_more() -> None:
    built = objects()
    assert built["Role"]["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]
    assert built["RoleBinding"]["subjects"] == [{"kind": "ServiceAccount", "name": "istio-remote-a1b2c3d4", "namespace": "external-istiod"}]
    assert built["Pod"]["spec"]["serviceAccountName"] == "istio-remote-a1b2c3d4"
