"""A session: what must exist for istioctl to reach every istiod, and its guaranteed removal.

Pod mode creates, in the external cluster's istio namespace, a ServiceAccount, a Role and a
RoleBinding owned by a Pod that runs the aggregator, then tunnels to that pod. Local mode creates
nothing: it runs the aggregator here and reaches each istiod pod through its own port-forward.
Either way the caller gets a local address, and leaving the `with` block removes what was made.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import secrets
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from kubectl_istio_remote import IMAGE, permissions
from kubectl_istio_remote.errors import DeadlineError, UnavailableError, UserError
from kubectl_istio_remote.kube import (
    DELETE_ORDER,
    EXPIRES_ANNOTATION,
    MANAGED_BY,
    SESSION_LABEL,
    USER_LABEL,
    Cluster,
    ObjectRef,
    PortForwardDialer,
    api_message,
    delete_objects,
    explain,
    label_value,
)
from kubectl_istio_remote.signals import Interrupted, signals_deferred
from kubectl_istio_remote.workload import (
    AGGREGATOR_PORT,
    ISTIOD_PORT,
    NOT_MESHED,
    POD_SECURITY_CONTEXT,
    aggregator_container,
    identity_objects,
)

if TYPE_CHECKING:
    from kubectl_istio_remote.cli.options import SessionFlags
    from kubectl_istio_remote.istioctl import Istioctl

log = logging.getLogger(__name__)
T = TypeVar("T")

ISTIOD_LABEL = "app=istiod"
#: Container states that will not become Ready by waiting: fail at once with the server's reason.
HOPELESS_WAITING = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "CrashLoopBackOff"}
)


class LoopThread:
    """An asyncio loop in a daemon thread: tunnels and the local aggregator live there while the main thread waits on istioctl."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="istio-remote-io", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(2)


@dataclass
class SessionSettings:
    """What a session needs to know, resolved once at start."""

    mesh: Cluster
    external: Cluster
    istio_namespace: str
    revision: str = ""
    timeout: float = 120.0
    ttl_seconds: int = 900
    image: str = IMAGE
    image_pull_secrets: list[str] = field(default_factory=list)
    pull_policy: str = "IfNotPresent"
    istiod_timeout: float = 10.0
    verbose: bool = False

    @property
    def istiod_selector(self) -> str:
        return f"{ISTIOD_LABEL},istio.io/rev={self.revision}" if self.revision else ISTIOD_LABEL


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def find_istiods(settings: SessionSettings) -> list[client.V1Pod]:
    """Running istiod pods in the external cluster; a clear error naming label, namespace and context if none."""
    try:
        pods = settings.external.core.list_namespaced_pod(
            settings.istio_namespace, label_selector=settings.istiod_selector, field_selector="status.phase=Running"
        ).items
    except Exception as error:  # noqa: BLE001 - explain() sorts API refusals from unreachable servers
        raise explain(error, settings.external, "list", "pods", settings.istio_namespace) from None
    if not pods:
        _require_namespace(settings.external, settings.istio_namespace)
        raise UserError(
            f"no istiod found: no running pods with label {settings.istiod_selector} in namespace "
            f"{settings.istio_namespace} of context {settings.external.context}",
            "set -i/--istio-namespace, --revision or --external-context",
        )
    return pods


def _require_namespace(cluster: Cluster, namespace: str) -> None:
    """A mistyped -i is the usual reason for finding no istiod: say so when the namespace is missing."""
    try:
        cluster.core.read_namespace(namespace)
    except ApiException as error:
        if error.status == 404:
            raise UserError(
                f"namespace {namespace} does not exist in context {cluster.context}", "set -i/--istio-namespace to istiod's namespace"
            ) from None
        # Not allowed to read namespaces: the "no istiod found" message that follows still applies.


def proxy_pod_objects(settings: SessionSettings, session_id: str, user: str, args: list[str]) -> dict[str, Any]:
    """The four objects of pod mode, as API dicts. Pure, so the security settings are tested directly."""
    name = f"istio-remote-{session_id}"
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=settings.ttl_seconds)
    metadata = {
        "name": name,
        "namespace": settings.istio_namespace,
        "labels": {**MANAGED_BY, SESSION_LABEL: session_id, USER_LABEL: label_value(user)},
        "annotations": {EXPIRES_ANNOTATION: expires.strftime("%Y-%m-%dT%H:%M:%SZ")},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**metadata, "annotations": {**metadata["annotations"], **NOT_MESHED}},
        "spec": {
            "serviceAccountName": name,
            "restartPolicy": "Never",
            "activeDeadlineSeconds": settings.ttl_seconds,
            "terminationGracePeriodSeconds": 5,
            "enableServiceLinks": False,
            "imagePullSecrets": [{"name": secret} for secret in settings.image_pull_secrets],
            "securityContext": POD_SECURITY_CONTEXT,
            "containers": [aggregator_container(settings.image, settings.pull_policy, args)],
        },
    }
    return {**identity_objects(metadata), "Pod": pod}


def aggregator_args(settings: SessionSettings) -> list[str]:
    args = ["serve", "--discover", "--listen", f"127.0.0.1:{AGGREGATOR_PORT}", "--istiod-timeout", str(settings.istiod_timeout)]
    if settings.revision:
        args += ["--revision", settings.revision]
    return args + (["--verbose"] if settings.verbose else [])


class ProxyPodMode:
    """Pod mode: the aggregator runs next to istiod; we reach it through one port-forward."""

    def __init__(self, settings: SessionSettings, io: LoopThread, user: str) -> None:
        self._settings = settings
        self._io = io
        self._user = user
        self.session_id = secrets.token_hex(4)
        self.name = f"istio-remote-{self.session_id}"
        self._created: list[str] = []
        self._tunnel = None

    def open(self, deadline: float) -> str:
        from kubectl_istio_remote.relay import Relay, Target

        self._create()
        self._wait_ready(deadline)
        target = Target(self.name, self.name, AGGREGATOR_PORT, namespace=self._settings.istio_namespace)
        self._tunnel = Relay(target, PortForwardDialer(self._settings.external), port=_free_port())
        return self._io.run(self._tunnel.start(), 10)

    def tunnel_error(self) -> str:
        return self._tunnel.last_error if self._tunnel is not None else ""

    def close(self, deadline: float, stop_waiting: Callable[[], bool]) -> list[str]:
        """Delete what was created; if the API server does not come back in time, name the command that finishes the job."""
        if self._tunnel is not None:
            with contextlib.suppress(Exception):
                self._io.run(self._tunnel.close(), 2)
        refs = [ObjectRef(kind, self.name) for kind in DELETE_ORDER if kind in self._created]
        external, namespace = self._settings.external, self._settings.istio_namespace
        cleanup = f"kubectl istio-remote cleanup --context {external.context} -i {namespace} --session {self.session_id}"
        hint = f"run `{cleanup}` once it answers (the pod also stops itself at its --ttl)"
        return delete_objects(external, namespace, refs, deadline, hint=hint, stop_waiting=stop_waiting)

    def _create(self) -> None:
        settings, external = self._settings, self._settings.external
        objects = proxy_pod_objects(settings, self.session_id, self._user, aggregator_args(settings))
        namespace = settings.istio_namespace
        steps = [
            ("ServiceAccount", "serviceaccounts", lambda body: external.core.create_namespaced_service_account(namespace, body)),
            ("Role", "roles", lambda body: external.rbac.create_namespaced_role(namespace, body)),
            ("RoleBinding", "rolebindings", lambda body: external.rbac.create_namespaced_role_binding(namespace, body)),
            ("Pod", "pods", lambda body: external.core.create_namespaced_pod(namespace, body)),
        ]
        progress(f"creating pod {namespace}/{self.name} in context {external.context}")
        created = {}
        for kind, resource, create in steps:
            # Recorded before the request: a signal can land after the server created the object
            # and before we hear back; teardown deletes it either way (a 404 is fine).
            self._created.append(kind)
            try:
                created[kind] = create(objects[kind])
            except Exception as error:  # noqa: BLE001 - explained, then the caller tears down what exists
                raise _admission_or(error, external, resource, namespace) from None
        owner = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": self.name,
            "uid": created["Pod"].metadata.uid,
            "blockOwnerDeletion": False,
        }
        patch = {"metadata": {"ownerReferences": [owner]}}
        # Owned by the pod, the rest goes with it, even if this process is killed before teardown.
        with contextlib.suppress(ApiException):
            external.core.patch_namespaced_service_account(self.name, namespace, patch)
            external.rbac.patch_namespaced_role(self.name, namespace, patch)
            external.rbac.patch_namespaced_role_binding(self.name, namespace, patch)

    def _wait_ready(self, deadline: float) -> None:
        external, namespace = self._settings.external, self._settings.istio_namespace
        progress(f"waiting for pod {self.name} to be ready")
        watcher = watch.Watch()
        # A watch the server closes early (an API server shutting down closes them cleanly) is opened
        # again: if the server is gone, that attempt fails and says so, instead of a false timeout.
        while (remaining := int(deadline - time.monotonic())) > 0:
            try:
                for event in watcher.stream(
                    external.core.list_namespaced_pod,
                    namespace,
                    field_selector=f"metadata.name={self.name}",
                    timeout_seconds=remaining,
                ):
                    if _pod_ready(event["object"]):
                        watcher.stop()
                        return
                    if time.monotonic() > deadline:
                        break
            except UserError:
                raise  # the pod's own failure, already explained
            except Exception as error:  # noqa: BLE001 - a refusal or an API server gone mid-watch, explained either way
                raise explain(error, external, "watch", "pods", namespace) from None
        raise DeadlineError(
            f"pod {namespace}/{self.name} was not ready within --timeout", "raise --timeout, or look at `kubectl describe pod`"
        )


def _admission_or(error: Exception, cluster: Cluster, resource: str, namespace: str) -> UserError:
    """Admission refusals (PodSecurity, quotas, policies) come back as 400/403/422 with the server's own words."""
    if isinstance(error, ApiException) and error.status in (400, 422) or (
        isinstance(error, ApiException) and error.status == 403 and "violates PodSecurity" in (error.body or "")
    ):
        return UserError(f"the API server refused the {resource[:-1]}: {api_message(error)}", "see the message above")
    return explain(error, cluster, "create", resource, namespace)


def _pod_ready(pod: client.V1Pod) -> bool:
    """True once ready; raises at once on states that waiting will not fix."""
    status = pod.status
    if status is None:
        return False
    name = f"{pod.metadata.namespace}/{pod.metadata.name}"
    for condition in status.conditions or []:
        if condition.type == "PodScheduled" and condition.status == "False" and condition.reason == "Unschedulable":
            raise UnavailableError(f"pod {name} cannot be scheduled: {condition.message}", "check node capacity and taints")
        if condition.type == "Ready" and condition.status == "True":
            return True
    for container in status.container_statuses or []:
        waiting = container.state.waiting if container.state else None
        if waiting is not None and waiting.reason in HOPELESS_WAITING:
            raise UnavailableError(
                f"pod {name}: {waiting.reason}: {waiting.message or 'no message'}",
                "check --image, --image-pull-secret and --pull-policy",
            )
        terminated = container.state.terminated if container.state else None
        if terminated is not None:
            raise UnavailableError(
                f"pod {name} exited ({terminated.reason}, code {terminated.exit_code}): {terminated.message or ''}".rstrip(": "),
                "run with -v, or look at `kubectl logs` before the pod is removed",
            )
    if status.phase in ("Failed", "Succeeded"):
        raise UnavailableError(f"pod {name} ended: {status.reason or status.phase}: {status.message or ''}".rstrip(": "))
    return False


def _left(deadline: float) -> float:
    return max(0.5, deadline - time.monotonic())


def _free_port() -> int:
    import portpicker

    return portpicker.pick_unused_port()


class LocalMode:
    """Local mode: no pod and no image; the aggregator runs here and port-forwards to each istiod pod."""

    def __init__(self, settings: SessionSettings, io: LoopThread) -> None:
        self._settings = settings
        self._io = io
        self._aggregator = None

    def open(self, deadline: float) -> str:
        from kubectl_istio_remote.aggregator.discovery import PodDiscovery
        from kubectl_istio_remote.aggregator.server import Aggregator, Settings
        from kubectl_istio_remote.aggregator.tls import self_signed_pair
        from kubectl_istio_remote.aggregator.upstream import istiod_authority

        settings = self._settings
        authority = istiod_authority(settings.istio_namespace, settings.revision)
        source = PodDiscovery(settings.external.core, settings.istio_namespace, settings.istiod_selector, ISTIOD_PORT, authority)
        self._aggregator = Aggregator(
            Settings(
                listen=f"127.0.0.1:{_free_port()}",
                serving_pair=self_signed_pair(["localhost", authority], ["127.0.0.1"]),
                istiod_timeout=settings.istiod_timeout,
            ),
            source,
            PortForwardDialer(settings.external),
        )
        progress(f"port-forwarding to the istiods in {settings.istio_namespace} of context {settings.external.context}")
        return self._io.run(self._aggregator.start(), _left(deadline))

    def close(self, deadline: float, stop_waiting: Callable[[], bool]) -> list[str]:
        """Nothing was created in a cluster: stopping the aggregator is all, and nothing waits on an API server."""
        if self._aggregator is not None:
            self._io.run(self._aggregator.stop(0), _left(deadline))
        return []

    def tunnel_error(self) -> str:
        """Tunnels to each istiod fail per replica; the aggregator reports those in its answers."""
        return ""


def wait_healthy(io: LoopThread, address: str, deadline: float, tunnel_error: Callable[[], str]) -> None:
    """Ask the aggregator's health service through the tunnel until it says SERVING.

    A failure names the tunnel's own reason when it has one (a forbidden port-forward, say),
    since the gRPC error seen through it only says the connection closed.
    """
    import grpc

    from kubectl_istio_remote.aggregator.client import Connection, check_health

    last = "no answer"
    while time.monotonic() < deadline:
        try:
            if io.run(check_health(Connection(address), timeout=min(5.0, _left(deadline))), _left(deadline) + 1):
                return
            last = "not serving yet"
        except grpc.RpcError as error:
            last = tunnel_error() or f"{error.code().name}: {error.details()}"
        except Exception as error:  # noqa: BLE001 - keep trying until the deadline, report the last reason
            text = str(error).strip()
            last = tunnel_error() or (text.splitlines()[0] if text else type(error).__name__)
        time.sleep(0.3)
    raise DeadlineError(f"the aggregator at {address} was not healthy within --timeout: {last}", "raise --timeout, or retry with -v")


@contextlib.contextmanager
def open_session(settings: SessionSettings, mode: str, *, istioctl: Istioctl | None) -> Iterator[str]:
    """Yield the local address of an aggregator that reaches every istiod; remove everything on the way out.

    Teardown runs whatever happened (error, Ctrl-C, SIGTERM, SIGHUP) and is bounded: while the API
    server does not answer it retries for up to --timeout, since a restarting API server is back
    within seconds. A signal arriving during teardown ends only that wait, and is honoured after
    it. If objects are left, the error names them and the cleanup command; it keeps the exit code
    unless another error or a signal is on its way out, which then keeps it.
    """
    deadline = time.monotonic() + settings.timeout
    find_istiods(settings)
    permissions.require(permissions.needs(mode, settings.mesh, settings.external, settings.istio_namespace, istioctl=istioctl))
    io = LoopThread()
    session: ProxyPodMode | LocalMode
    session = ProxyPodMode(settings, io, settings.external.username()) if mode == "pod" else LocalMode(settings, io)
    in_flight: BaseException | None = None
    try:
        address = session.open(deadline)
        wait_healthy(io, address, deadline, session.tunnel_error)
        log.info("aggregator reachable at %s", address)
        yield address
    except BaseException as error:
        in_flight = error
        raise
    finally:
        with signals_deferred() as received:
            try:
                for item in session.close(time.monotonic() + settings.timeout, lambda: bool(received)):
                    log.info("removed %s", item)
            except UserError as error:
                if in_flight is None and not received:
                    raise
                progress(f"error: {error.one_line()}")
            finally:
                io.close()
        if received and in_flight is None:
            raise Interrupted(received[0])


DEFAULT_ISTIO_NAMESPACE = "istio-system"


def resolve_settings(flags: SessionFlags) -> SessionSettings:
    """Pin both contexts and settle the istio namespace once, before anything is created."""
    from kubectl_istio_remote.kube import pin_clusters

    mesh, external = pin_clusters(flags.kubeconfig, flags.context, flags.external_context)
    namespace = flags.istio_namespace or discover_istio_namespace(external, flags.revision)
    return SessionSettings(
        mesh=mesh,
        external=external,
        istio_namespace=namespace,
        revision=flags.revision,
        timeout=flags.timeout,
        ttl_seconds=flags.ttl,
        image=flags.image,
        image_pull_secrets=list(flags.image_pull_secret),
        pull_policy=flags.pull_policy.value,
        verbose=flags.verbose,
    )


def discover_istio_namespace(external: Cluster, revision: str) -> str:
    """Where istiod pods run in the external cluster; istio-system when that cannot be told."""
    selector = f"{ISTIOD_LABEL},istio.io/rev={revision}" if revision else ISTIOD_LABEL
    try:
        pods = external.core.list_pod_for_all_namespaces(label_selector=selector, _request_timeout=15).items
    except ApiException:
        return DEFAULT_ISTIO_NAMESPACE  # no cluster-wide list right: the user can say -i
    except Exception as error:  # noqa: BLE001 - unreachable API server: say so now, not later
        raise explain(error, external, "list", "pods") from None
    namespaces = sorted({pod.metadata.namespace for pod in pods})
    if DEFAULT_ISTIO_NAMESPACE in namespaces or not namespaces:
        return DEFAULT_ISTIO_NAMESPACE
    if len(namespaces) > 1:
        log.warning("istiod pods in several namespaces (%s): using %s; choose with -i", ", ".join(namespaces), namespaces[0])
    return namespaces[0]
