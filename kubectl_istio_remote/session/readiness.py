"""Reading a pod's status as a kubelet reports it: ready, not yet, or never (fail at once with the server's reason)."""

from __future__ import annotations

from kubectl_istio_remote.errors import UnavailableError
from kubectl_istio_remote.kube.records import Pod

#: Container states that will not become Ready by waiting.
HOPELESS_WAITING = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "CrashLoopBackOff"}
)


def pod_ready(pod: Pod) -> bool:
    """True once ready, False while it may still become so; raises on states that waiting will not fix."""
    for condition in pod.conditions:
        if condition.type == "PodScheduled" and condition.status == "False" and condition.reason == "Unschedulable":
            raise UnavailableError(f"pod {pod.full_name} cannot be scheduled: {condition.message}", "check node capacity and taints")
        if condition.type == "Ready" and condition.status == "True":
            return True
    for container in pod.containers:
        if container.waiting_reason in HOPELESS_WAITING:
            raise UnavailableError(
                f"pod {pod.full_name}: {container.waiting_reason}: {container.waiting_message or 'no message'}",
                "check --image, --image-pull-secret and --pull-policy",
            )
        if container.terminated:
            exited = f"pod {pod.full_name} exited ({container.terminated_reason}, code {container.exit_code})"
            raise UnavailableError(
                f"{exited}: {container.terminated_message}" if container.terminated_message else exited,
                "run with -v, or look at `kubectl logs` before the pod is removed",
            )
    if pod.ended:
        ended = f"pod {pod.full_name} ended: {pod.reason or pod.phase}"
        raise UnavailableError(f"{ended}: {pod.message}" if pod.message else ended)
    return False
