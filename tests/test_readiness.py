"""How a pod's status is read while pod mode waits for its aggregator: ready, not yet, or never."""

from __future__ import annotations

from typing import Any

import pytest

from kubectl_istio_remote.errors import UnavailableError
from kubectl_istio_remote.kube.records import Pod
from kubectl_istio_remote.session.readiness import pod_ready


def pod(**status: Any) -> Pod:
    return Pod.of({"metadata": {"name": "istio-remote-1", "namespace": "external-istiod"}, "status": status})


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"containerStatuses": [{"name": "aggregator", "state": {"waiting": {"reason": reason, "message": message}}}]}


def test_pending_and_creating_are_not_ready_yet() -> None:
    assert pod_ready(pod(phase="Pending")) is False
    assert pod_ready(pod(phase="Pending", **waiting("ContainerCreating"))) is False
    assert pod_ready(pod(phase="Running", conditions=[{"type": "Ready", "status": "False"}])) is False


def test_the_ready_condition_is_ready() -> None:
    assert pod_ready(pod(phase="Running", conditions=[{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]))


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CrashLoopBackOff"])
def test_states_that_waiting_will_not_fix_fail_at_once_with_the_servers_words(reason: str) -> None:
    with pytest.raises(UnavailableError) as raised:
        pod_ready(pod(phase="Pending", **waiting(reason, 'failed to pull image "x": not found')))
    assert raised.value.one_line() == (
        f'pod external-istiod/istio-remote-1: {reason}: failed to pull image "x": not found; check --image, --image-pull-secret and --pull-policy'
    )


def test_unschedulable_names_the_schedulers_message() -> None:
    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"}
    with pytest.raises(UnavailableError, match="cannot be scheduled: 0/3 nodes are available"):
        pod_ready(pod(phase="Pending", conditions=[condition]))


def test_an_exited_container_names_reason_and_code() -> None:
    status = {"containerStatuses": [{"state": {"terminated": {"reason": "Error", "exitCode": 5, "message": "cannot list istiod pods"}}}]}
    with pytest.raises(UnavailableError) as raised:
        pod_ready(pod(phase="Failed", **status))
    assert str(raised.value) == "pod external-istiod/istio-remote-1 exited (Error, code 5): cannot list istiod pods"


def test_a_pod_past_its_deadline_says_so() -> None:
    with pytest.raises(UnavailableError) as raised:
        pod_ready(pod(phase="Failed", reason="DeadlineExceeded", message="Pod was active on the node longer than the specified deadline"))
    assert str(raised.value) == (
        "pod external-istiod/istio-remote-1 ended: DeadlineExceeded: Pod was active on the node longer than the specified deadline"
    )
