"""The sandbox's kubelet for this project's proxy image: run such pods as local processes.

kwok marks every pod Running without running anything. For pods whose image is this project's
proxy image we do what a kubelet would: start the container's command with the pod's argv and
env, POD_NAMESPACE, a real service-account token and an in-cluster-style kubeconfig; stop it when
the pod goes away; fail the pod when its activeDeadlineSeconds passes; write mounted Secrets to
files. The pod's own loopback (127.0.0.1 inside a real pod) becomes a private loopback address
per pod, 127.0.10x.y, which is not the pod IP, and kwok's PortForward points the pod's
port-forward at it; a process listening on all interfaces (0.0.0.0) listens on the pod IP.
Run as `python -m tests.sandbox.podrunner` (started by `up`, stopped by `down`).
"""

from __future__ import annotations

import base64
import datetime
import os
import shutil
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client, watch

from kubectl_istio_remote import IMAGE_REPOSITORY
from tests.sandbox import procs
from tests.sandbox.clusters import KUBECONFIG, api, apply, cluster
from tests.sandbox.mesh import port_forward
from tests.sandbox.paths import STATE, log

CONTEXT = "external"
POD_LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Started:
    process: str
    deadline: datetime.datetime | None


def private_loopback(pod_ip: str) -> str:
    """127.0.1.7 -> 127.0.101.7: per-pod 'localhost', distinct from the pod IP."""
    octets = pod_ip.split(".")
    return f"127.0.{100 + int(octets[2])}.{octets[3]}"


def _is_ours(pod: client.V1Pod) -> bool:
    return any(c.image.startswith(IMAGE_REPOSITORY) for c in pod.spec.containers)


def _env(pod: client.V1Pod, container: client.V1Container) -> dict[str, str]:
    fields = {"metadata.namespace": pod.metadata.namespace, "metadata.name": pod.metadata.name, "status.podIP": pod.status.pod_ip}
    env = {}
    for var in container.env or []:
        if var.value is not None:
            env[var.name] = var.value
        elif var.value_from and var.value_from.field_ref:
            env[var.name] = fields[var.value_from.field_ref.field_path]
    return env


def _in_cluster_kubeconfig(pod: client.V1Pod, core: client.CoreV1Api) -> str:
    """A kubeconfig carrying a real bound token of the pod's ServiceAccount, as kubelet would mount."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(
            audiences=[],
            expiration_seconds=3600,
            bound_object_ref=client.V1BoundObjectReference(kind="Pod", api_version="v1", name=pod.metadata.name, uid=pod.metadata.uid),
        )
    )
    token = core.create_namespaced_service_account_token(pod.spec.service_account_name, pod.metadata.namespace, request).status.token
    path = STATE / "pods" / f"{pod.metadata.namespace}-{pod.metadata.name}.kubeconfig"
    return str(token_kubeconfig(token, pod.metadata.namespace, path))


def token_kubeconfig(token: str, namespace: str, path: Path) -> Path:
    """An in-cluster-style kubeconfig for the external cluster that authenticates with `token` only."""
    ca = yaml.safe_load(KUBECONFIG.read_text())["clusters"][0]["cluster"]["certificate-authority"]
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": {"server": cluster(CONTEXT).server, "certificate-authority": ca}}],
        "users": [{"name": "pod", "user": {"token": token}}],
        "contexts": [{"name": "in-cluster", "context": {"cluster": "in-cluster", "user": "pod", "namespace": namespace}}],
        "current-context": "in-cluster",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return path


ALL_INTERFACES = "0.0.0.0"


def _argv(container: client.V1Container, addresses: dict[str, str]) -> list[str]:
    """The container's command, with the pod's own addresses and mount paths replaced by this host's."""
    command = list(container.command or []) + list(container.args or [])
    # The image's PATH holds the plugin; here it is this Python's environment, even if PATH lacks it.
    executable = shutil.which(command[0], path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if executable is None:
        raise FileNotFoundError(f"{command[0]} is not on PATH of the sandbox pod runner")
    args = command[1:]
    for inside, outside in addresses.items():
        args = [arg.replace(inside, outside) for arg in args]
    return [executable, *args]


def _secret_volumes(pod: client.V1Pod, core: client.CoreV1Api) -> dict[str, str]:
    """Write each mounted Secret's keys to files, as kubelet does; {mountPath: local directory}."""
    secrets = {volume.name: volume.secret.secret_name for volume in pod.spec.volumes or [] if volume.secret}
    mounted = {}
    for mount in pod.spec.containers[0].volume_mounts or []:
        if mount.name not in secrets:
            continue
        directory = STATE / "pods" / f"{pod.metadata.namespace}-{pod.metadata.name}" / mount.name
        directory.mkdir(parents=True, exist_ok=True)
        for key, value in (core.read_namespaced_secret(secrets[mount.name], pod.metadata.namespace).data or {}).items():
            (directory / key).write_bytes(base64.b64decode(value))
            (directory / key).chmod(0o400)
        mounted[mount.mount_path] = str(directory)
    return mounted


def _start(pod: client.V1Pod, core: client.CoreV1Api) -> Started:
    container = pod.spec.containers[0]
    loopback = private_loopback(pod.status.pod_ip)
    # Inside a pod, 127.0.0.1 is the pod's own loopback and 0.0.0.0 includes the pod IP, which
    # Services route to; port-forward reaches whichever the process listens on.
    serves_pod_ip = any(f"{ALL_INTERFACES}:" in arg for arg in container.args or [])
    forward_to = pod.status.pod_ip if serves_pod_ip else loopback
    ports = tuple(p.container_port for p in container.ports or [])
    apply(CONTEXT, [port_forward(pod.metadata.name, pod.metadata.namespace, forward_to, ports, pod.metadata.uid)])
    env = {**_env(pod, container), "KUBECONFIG": _in_cluster_kubeconfig(pod, core)}
    addresses = {f"{POD_LOOPBACK}:": f"{loopback}:", f"{ALL_INTERFACES}:": f"{pod.status.pod_ip}:", **_secret_volumes(pod, core)}
    name = f"pod-{pod.metadata.namespace}-{pod.metadata.name}"
    procs.start(name, _argv(container, addresses), env=env)
    log(f"pod runner: started {pod.metadata.namespace}/{pod.metadata.name} on {forward_to}")
    deadline = None
    if pod.spec.active_deadline_seconds and pod.status.start_time:
        deadline = pod.status.start_time + datetime.timedelta(seconds=pod.spec.active_deadline_seconds)
    return Started(name, deadline)


def _fail_past_deadline(pod_key: tuple[str, str], core: client.CoreV1Api) -> None:
    """What kubelet does at activeDeadlineSeconds: kill the containers, mark the pod Failed."""
    namespace, name = pod_key
    status = {
        "status": {
            "phase": "Failed",
            "reason": "DeadlineExceeded",
            "message": "Pod was active on the node longer than the specified deadline",
        }
    }
    try:
        core.patch_namespaced_pod_status(name, namespace, status)
    except client.ApiException as error:
        log(f"pod runner: could not fail {namespace}/{name}: {error.reason}")


def run(stop: threading.Event) -> None:
    started: dict[tuple[str, str], Started] = {}
    with api(CONTEXT) as api_client:
        core = client.CoreV1Api(api_client)
        while not stop.is_set():
            stream = watch.Watch()
            seen: set[tuple[str, str]] = set()
            try:
                for event in stream.stream(core.list_pod_for_all_namespaces, timeout_seconds=5):
                    _handle(event["type"], event["object"], started, core)
                    seen.add((event["object"].metadata.namespace, event["object"].metadata.name))
                # Each window opens with every existing pod: one not seen was deleted while the API server was away.
                for key in started.keys() - seen:
                    procs.stop(started.pop(key).process)
                    log(f"pod runner: stopped {key[0]}/{key[1]}, gone while the watch was down")
            except client.ApiException as error:
                log(f"pod runner: watch failed: {error.reason}")
                stop.wait(1)
            except Exception as error:
                log(f"pod runner: {type(error).__name__}: {error}")
                stop.wait(1)
            now = datetime.datetime.now(datetime.timezone.utc)
            for key, entry in list(started.items()):
                if entry.deadline and now >= entry.deadline:
                    procs.stop(entry.process)
                    _fail_past_deadline(key, core)
                    started[key] = Started(entry.process, None)
    for entry in started.values():
        procs.stop(entry.process)


def _handle(kind: str, pod: client.V1Pod, started: dict[tuple[str, str], Started], core: client.CoreV1Api) -> None:
    if not _is_ours(pod):
        return
    key = (pod.metadata.namespace, pod.metadata.name)
    gone = kind == "DELETED" or pod.metadata.deletion_timestamp is not None or pod.status.phase in ("Failed", "Succeeded")
    if gone:
        entry = started.pop(key, None)
        if entry:
            procs.stop(entry.process)
            log(f"pod runner: stopped {key[0]}/{key[1]}")
        return
    if key not in started and pod.status.phase == "Running" and pod.status.pod_ip:
        started[key] = _start(pod, core)


def main() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log("pod runner: watching pods of image " + IMAGE_REPOSITORY)
    run(stop)
    sys.exit(0)


if __name__ == "__main__":
    main()
