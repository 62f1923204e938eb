"""The sandbox's kubelet for the plugin's pods: run them as containers of their image.

kwok marks every pod Running without running anything. For every pod the plugin makes (labelled
as a session's or the install's, whatever its image) and any pod of this project's image we do
what a kubelet would (tests/sandbox/containers.py): pull the pod's image (a
failed pull is ErrImagePull, then ImagePullBackOff, in the pod's status), run it with the pod's
args, env, securityContext, a real bound service-account token projected at the standard path and
mounted Secrets (updated atomically, as a kubelet does, when the Secret changes); report its exit in the pod's status; stop it when the pod goes away; fail the pod
when its activeDeadlineSeconds passes. The pod's own loopback (127.0.0.1 inside a real pod) becomes a private loopback address
per pod, 127.0.10x.y, which is not the pod IP, and kwok's PortForward points the pod's
port-forward at it; a process listening on all interfaces (0.0.0.0) listens on the pod IP.
Run as `python -m tests.sandbox.podrunner` (started by `up`, stopped by `down`).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client, watch

from kubectl_istio_remote import IMAGE_REPOSITORY
from kubectl_istio_remote.deploy.install import NAME as INSTALL_NAME
from kubectl_istio_remote.kube.labels import MANAGED_BY
from tests.sandbox import containers, volumes
from tests.sandbox.clusters import KUBECONFIG, api, apply, cluster
from tests.sandbox.objects import port_forward
from tests.sandbox.paths import STATE, log
from tests.sandbox.probes import ReadinessProber
from tests.sandbox.procs import LOGS

CONTEXT = "external"
#: A pod's terminationGracePeriodSeconds when it sets none, as in Kubernetes.
DEFAULT_GRACE_SECONDS = 30
POD_LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Started:
    container: str
    deadline: datetime.datetime | None
    #: The image could not be pulled: nothing runs, and the status says why.
    pull_error: str = ""
    #: Its status is final (backing off a failed pull, or exited): nothing more to report.
    settled: bool = False
    #: Each mounted Secret's local directory and the Secret's name: updated when the Secret changes.
    secrets: tuple[tuple[str, str], ...] = ()
    pod_ip: str = ""
    #: Marks the pod Ready when its readinessProbe passes (None: kwok marked it Ready).
    prober: ReadinessProber | None = None


#: Containers of deleted pods still in their grace period, by pod IP. kwok gives a freed IP to the next pod
#: at once, where a real node keeps a terminating pod's network until it is gone: a new pod's container
#: waits for the one still on its IP, instead of failing to bind.
STOPPING: dict[str, threading.Thread] = {}


def private_loopback(pod_ip: str) -> str:
    """127.0.1.7 -> 127.0.101.7: per-pod 'localhost', distinct from the pod IP."""
    octets = pod_ip.split(".")
    return f"127.0.{100 + int(octets[2])}.{octets[3]}"


def _is_ours(pod: client.V1Pod) -> bool:
    """Every pod the plugin makes (a session's, the operator's install), whatever image it names, and any of our image:
    a pod of another image kwok alone would call Running without running anything, and a test could pass by accident."""
    labels = pod.metadata.labels or {}
    made = labels.items() >= MANAGED_BY.items() or labels.get("app.kubernetes.io/name") == INSTALL_NAME
    return made or any(c.image.startswith(IMAGE_REPOSITORY) for c in pod.spec.containers)


def _env(pod: client.V1Pod, container: client.V1Container) -> dict[str, str]:
    fields = {"metadata.namespace": pod.metadata.namespace, "metadata.name": pod.metadata.name, "status.podIP": pod.status.pod_ip}
    env = {}
    for var in container.env or []:
        if var.value is not None:
            env[var.name] = var.value
        elif var.value_from and var.value_from.field_ref:
            env[var.name] = fields[var.value_from.field_ref.field_path]
    return env


def _bound_token(pod: client.V1Pod, core: client.CoreV1Api) -> str:
    """A real bound token of the pod's ServiceAccount, as kubelet would project."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(
            audiences=[],
            expiration_seconds=3600,
            bound_object_ref=client.V1BoundObjectReference(kind="Pod", api_version="v1", name=pod.metadata.name, uid=pod.metadata.uid),
        )
    )
    return core.create_namespaced_service_account_token(pod.spec.service_account_name, pod.metadata.namespace, request).status.token


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


def _args(container: client.V1Container, addresses: dict[str, str]) -> list[str]:
    """The container's args, with the pod's own addresses replaced by this host's (the container shares its network)."""
    args = list(container.args or [])
    for inside, outside in addresses.items():
        args = [arg.replace(inside, outside) for arg in args]
    return args


def _secret_volumes(pod: client.V1Pod, core: client.CoreV1Api) -> dict[str, tuple[str, str]]:
    """Write each mounted Secret's keys as kubelet does (volumes.py); {mountPath: (local directory, Secret name)}."""
    secrets = {volume.name: volume.secret.secret_name for volume in pod.spec.volumes or [] if volume.secret}
    mounted = {}
    for mount in pod.spec.containers[0].volume_mounts or []:
        if mount.name not in secrets:
            continue
        directory = STATE / "pods" / f"{pod.metadata.namespace}-{pod.metadata.name}" / mount.name
        _sync_secret(directory, secrets[mount.name], pod.metadata.namespace, core)
        mounted[mount.mount_path] = (str(directory), secrets[mount.name])
    return mounted


def _sync_secret(directory: Path, secret: str, namespace: str, core: client.CoreV1Api) -> bool:
    """The Secret's keys in `directory`, switched atomically when they changed; True when they did.

    The container's non-root user reads them, as with a Secret's defaultMode; the kubelet syncs a
    changed Secret within about a minute, this runner at its next watch window (5 s).
    """
    data = {key: base64.b64decode(value) for key, value in (core.read_namespaced_secret(secret, namespace).data or {}).items()}
    if volumes.holds(directory) == data:
        return False
    volumes.write_atomically(directory, data)
    return True


def _start(pod: client.V1Pod, core: client.CoreV1Api) -> Started:
    container = pod.spec.containers[0]
    loopback = private_loopback(pod.status.pod_ip)
    # Inside a pod, 127.0.0.1 is the pod's own loopback and 0.0.0.0 includes the pod IP, which
    # Services route to; port-forward reaches whichever the process listens on.
    serves_pod_ip = any(f"{ALL_INTERFACES}:" in arg for arg in container.args or [])
    forward_to = pod.status.pod_ip if serves_pod_ip else loopback
    ports = tuple(p.container_port for p in container.ports or [])
    apply(CONTEXT, [port_forward(pod.metadata.name, pod.metadata.namespace, forward_to, ports, pod.metadata.uid)])
    name = f"pod-{pod.metadata.namespace}-{pod.metadata.name}"
    deadline = None
    if pod.spec.active_deadline_seconds and pod.status.start_time:
        deadline = pod.status.start_time + datetime.timedelta(seconds=pod.spec.active_deadline_seconds)
    # The container of a deleted pod still on this IP goes first, whether or not this pod's own can start: a pod
    # whose image cannot be pulled must not be answered by the last one's.
    if (lingering := STOPPING.pop(pod.status.pod_ip, None)) is not None:
        lingering.join(DEFAULT_GRACE_SECONDS + 5)
    pull_error = containers.pull(container.image, container.image_pull_policy)
    if pull_error:
        _report_container(core, pod, {"waiting": {"reason": "ErrImagePull", "message": pull_error}})
        log(f"pod runner: {pod.metadata.namespace}/{pod.metadata.name}: {pull_error}")
        return Started(name, deadline, pull_error)
    host, _, port = cluster(CONTEXT).server.removeprefix("https://").rpartition(":")
    env = {**_env(pod, container), "KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}
    pod_files = STATE / "pods" / f"{pod.metadata.namespace}-{pod.metadata.name}"
    ca = yaml.safe_load(KUBECONFIG.read_text())["clusters"][0]["cluster"]["certificate-authority"]
    token = containers.projected_token(pod_files / "serviceaccount", _bound_token(pod, core), ca, pod.metadata.namespace)
    secrets = _secret_volumes(pod, core)
    mounts = {containers.TOKEN_DIRECTORY: str(token), **{inside: directory for inside, (directory, _) in secrets.items()}}
    addresses = {f"{POD_LOOPBACK}:": f"{loopback}:", f"{ALL_INTERFACES}:": f"{pod.status.pod_ip}:"}
    containers.stop(name)  # a container of a pod of the same name that a killed runner left
    containers.run(name, pod, container, _args(container, addresses), env, mounts, LOGS / f"{name}.log")
    log(f"pod runner: started {pod.metadata.namespace}/{pod.metadata.name} from {container.image} on {forward_to}")
    prober = ReadinessProber(pod, core)
    if ReadinessProber.wanted(pod):
        prober.start()
    else:
        prober.report(True)  # no probe: Ready once its container runs, as a kubelet says it (kwok held it until now)
        prober = None
    return Started(name, deadline, secrets=tuple(secrets.values()), pod_ip=pod.status.pod_ip, prober=prober)


def _report_container(core: client.CoreV1Api, pod: client.V1Pod, state: dict) -> None:
    """What kubelet reports of a container that is not running: not ready, and its state (waiting or terminated)."""
    container = pod.spec.containers[0]
    body = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
                {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"},
            ],
            "containerStatuses": [
                {
                    "name": container.name,
                    "image": container.image,
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {"running": None, "waiting": None, "terminated": None, **state},
                }
            ],
        }
    }
    try:
        core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, body)
    except client.ApiException as error:
        log(f"pod runner: could not report on {pod.metadata.namespace}/{pod.metadata.name}: {error.reason}")


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
                    _halt(started.pop(key))
                    log(f"pod runner: stopped {key[0]}/{key[1]}, gone while the watch was down")
            except client.ApiException as error:
                log(f"pod runner: watch failed: {error.reason}")
                stop.wait(1)
            except Exception as error:
                log(f"pod runner: {type(error).__name__}: {error}")
                stop.wait(1)
            now = datetime.datetime.now(datetime.timezone.utc)
            for key, entry in list(started.items()):
                try:
                    if entry.deadline and now >= entry.deadline:
                        _halt(entry)
                        _fail_past_deadline(key, core)
                        started[key] = Started(entry.container, None)
                    else:
                        started[key] = _follow(key, entry, core)
                except Exception as error:  # an API server's 429 or 500, a pod deleted meanwhile: the next window tries again
                    log(f"pod runner: {key[0]}/{key[1]}: {type(error).__name__}: {error}")
    for entry in started.values():
        _halt(entry)


def _halt(entry: Started) -> None:
    if entry.prober:
        entry.prober.stop()
    containers.stop(entry.container)


def _follow(key: tuple[str, str], entry: Started, core: client.CoreV1Api) -> Started:
    """A failed pull turns into ImagePullBackOff; a container that exited is reported; a changed Secret is mounted anew."""
    for directory, secret in entry.secrets:
        try:
            if _sync_secret(Path(directory), secret, key[0], core):
                log(f"pod runner: {key[0]}/{key[1]}: Secret {secret} changed, its volume updated")
        except client.ApiException as error:
            log(f"pod runner: {key[0]}/{key[1]}: cannot read Secret {secret}: {error.status} {error.reason}")
    if entry.settled:
        return entry
    if entry.pull_error:
        state = {"waiting": {"reason": "ImagePullBackOff", "message": f"Back-off pulling image: {entry.pull_error}"}}
    elif (code := containers.exit_code(entry.container)) is not None:
        if entry.prober:
            entry.prober.stop()
        state = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}}
        log(f"pod runner: {key[0]}/{key[1]} exited with {code}")
    else:
        return entry
    try:
        _report_container(core, core.read_namespaced_pod(key[1], key[0]), state)
    except client.ApiException as error:
        if error.status != 404:
            raise
        # Deleted since the last event: nothing to report; its DELETED event removes the container.
    return dataclasses.replace(entry, settled=True)


def _handle(kind: str, pod: client.V1Pod, started: dict[tuple[str, str], Started], core: client.CoreV1Api) -> None:
    if not _is_ours(pod):
        return
    key = (pod.metadata.namespace, pod.metadata.name)
    gone = kind == "DELETED" or pod.metadata.deletion_timestamp is not None or pod.status.phase in ("Failed", "Succeeded")
    if gone:
        entry = started.pop(key, None)
        if entry:
            if entry.prober:
                entry.prober.stop()
            # The delete's own grace period wins over the pod's, as with a kubelet (pod mode deletes with 0).
            grace = pod.metadata.deletion_grace_period_seconds
            grace = pod.spec.termination_grace_period_seconds if grace is None else grace
            STOPPING[entry.pod_ip] = containers.stop_soon(entry.container, DEFAULT_GRACE_SECONDS if grace is None else grace)
            log(f"pod runner: stopping {key[0]}/{key[1]} (grace {grace} s)")
        return
    if key not in started and pod.status.phase == "Running" and pod.status.pod_ip:
        started[key] = _start(pod, core)


def main() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log(f"pod runner: running the plugin's pods and those of image {IMAGE_REPOSITORY}")
    run(stop)
    sys.exit(0)


if __name__ == "__main__":
    main()
