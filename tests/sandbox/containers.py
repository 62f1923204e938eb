"""The pod runner's container runtime: a pod's container run with podman from the pod's own image, as a kubelet would.

The image is pulled by the pod's image reference (through the sandbox's registry for ghcr.io names)
as its pull policy says; the pod's securityContext becomes podman's flags; the ServiceAccount token,
ca.crt and namespace are projected at the standard path with KUBERNETES_SERVICE_HOST/PORT, so the
in-cluster configuration is what runs. Containers share the host's network: every pod IP of the
sandbox is a loopback address. A memory limit becomes the container's cgroup limit. Each container
carries the label below, so `down` removes any left.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from kubernetes import client

from kubectl_istio_remote.aggregator.load import parse_size
from tests.sandbox import image

LABEL = "kubectl-istio-remote.sandbox=pod"
TOKEN_DIRECTORY = "/var/run/secrets/kubernetes.io/serviceaccount"


def pull(reference: str, policy: str | None) -> str:
    """ "" once the image is there, else the pull error in one line (a kubelet's ErrImagePull message)."""
    present = image.podman("image", "exists", reference, check=False).returncode == 0
    if policy == "Never" or (present and policy != "Always"):
        return "" if present else f'image "{reference}" is not present with pull policy of Never'
    pulled = image.podman("pull", "--quiet", reference, check=False, timeout=120)
    if pulled.returncode == 0:
        return ""
    lines = [line for line in pulled.stderr.strip().splitlines() if line.startswith("Error")] or [pulled.stderr.strip() or "pull failed"]
    return f'failed to pull image "{reference}": {lines[-1].removeprefix("Error: ")}'


def security_flags(pod: client.V1Pod, container: client.V1Container) -> list[str]:
    """The securityContext of pod and container, as podman flags; the container's fields win, as in Kubernetes."""
    pod_context = pod.spec.security_context or client.V1PodSecurityContext()
    context = container.security_context or client.V1SecurityContext()
    user = context.run_as_user if context.run_as_user is not None else pod_context.run_as_user
    group = context.run_as_group if context.run_as_group is not None else pod_context.run_as_group
    flags = [f"--user={user}:{group if group is not None else user}"] if user is not None else []
    if context.read_only_root_filesystem:
        flags.append("--read-only")
    flags += [f"--cap-drop={capability}" for capability in (context.capabilities.drop or [] if context.capabilities else [])]
    flags += [f"--cap-add={capability}" for capability in (context.capabilities.add or [] if context.capabilities else [])]
    if context.allow_privilege_escalation is False:
        flags.append("--security-opt=no-new-privileges")
    seccomp = context.seccomp_profile or pod_context.seccomp_profile
    if seccomp is not None and seccomp.type == "Unconfined":
        flags.append("--security-opt=seccomp=unconfined")  # RuntimeDefault is podman's own default profile
    return flags


def projected_token(directory: Path, token: str, ca_file: str, namespace: str) -> Path:
    """The files a kubelet projects for the ServiceAccount, readable by the container's non-root user."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in (("token", token.encode()), ("ca.crt", Path(ca_file).read_bytes()), ("namespace", namespace.encode())):
        (directory / name).write_bytes(content)
        (directory / name).chmod(0o644)
    return directory


def run(
    name: str, pod: client.V1Pod, container: client.V1Container, args: list[str], env: dict[str, str], mounts: dict[str, str], log: Path
) -> None:
    """Start the container detached, its output kept in `log` (a kubelet's container log); raises image.ImageError
    with podman's message when it cannot."""
    argv = ["run", "-d", "--name", name, "--label", LABEL, "--network=host", "--pull=never", *security_flags(pod, container)]
    argv += ["--log-driver=k8s-file", f"--log-opt=path={log}"]
    limits = (container.resources.limits or {}) if container.resources else {}
    if "memory" in limits:
        argv.append(f"--memory={parse_size(limits['memory'])}")  # the kubelet's cgroup limit, which serve reads
    if container.command:
        argv.append(f"--entrypoint={json.dumps(container.command)}")
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    for inside, outside in mounts.items():
        argv += ["-v", f"{outside}:{inside}:ro"]
    image.podman(*argv, container.image, *args, timeout=60)


def exit_code(name: str) -> int | None:
    """The container's exit code once it has exited; None while it runs (or when it is gone)."""
    inspected = image.podman("container", "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name, check=False)
    status, _, code = inspected.stdout.strip().partition(" ")
    return int(code) if inspected.returncode == 0 and status in ("exited", "stopped") else None


def stop(name: str, grace: int = 3) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds, and the container removed."""
    image.podman("rm", "-f", "-t", str(grace), name, check=False, timeout=grace + 60)


def stop_soon(name: str, grace: int) -> threading.Thread:
    """`stop` in a thread, as a kubelet gives a deleted pod its terminationGracePeriodSeconds without waiting on it."""
    stopping = threading.Thread(target=stop, args=(name, grace), name=f"stop {name}", daemon=True)
    stopping.start()
    return stopping


def names() -> list[str]:
    """Every sandbox pod container there now, running or stopping."""
    return image.podman("ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.Names}}", check=False).stdout.split()


def remove_all() -> list[str]:
    """Every sandbox pod container still there (a runner that was killed): removed; their names."""
    names_left = names()
    for name in names_left:
        stop(name)
    return names_left
