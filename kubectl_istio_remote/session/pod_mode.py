"""Pod mode: the aggregator runs in a short-lived pod next to istiod; we reach it through one port-forward.

The pod owns its ServiceAccount, Role and RoleBinding, so one delete (or the pod's end at its
--ttl, should this process be killed) removes all four.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from kubectl_istio_remote.aggregator.loop import LoopThread
from kubectl_istio_remote.concurrency import outcomes_of
from kubectl_istio_remote.console import Console
from kubectl_istio_remote.deploy.workload import AGGREGATOR_PORT, SessionPod, session_pod_objects, session_serve_args
from kubectl_istio_remote.errors import DeadlineError
from kubectl_istio_remote.kube.api_errors import ApiError, UnreachableError
from kubectl_istio_remote.kube.cluster import Object
from kubectl_istio_remote.kube.kinds import BY_NAME, POD, SESSION_KINDS
from kubectl_istio_remote.kube.portforward import PortForwardDialer
from kubectl_istio_remote.kube.records import Pod
from kubectl_istio_remote.kube.removal import ObjectRef, delete_objects
from kubectl_istio_remote.relay import Relay, Target, free_port
from kubectl_istio_remote.session.health import wait_healthy
from kubectl_istio_remote.session.readiness import pod_ready
from kubectl_istio_remote.session.settings import SessionSettings
from kubectl_istio_remote.signals import raise_pending, signals_held

if TYPE_CHECKING:
    from kubectl_istio_remote.aggregator.client import Connection

#: The pod's identity, which the pod will own.
IDENTITY_KINDS = ("ServiceAccount", "Role", "RoleBinding")
#: Two rounds of creates sent at once: admission refuses a pod whose ServiceAccount does not exist
#: yet, and RBAC checks a RoleBinding against its Role (a user without `bind` is refused while the
#: Role is missing). The pod's RoleBinding lands long before the pod's process asks for anything.
CREATE_ROUNDS = (("ServiceAccount", "Role"), ("RoleBinding", "Pod"))
ADOPTION_JOIN_SECONDS = 5.0
TUNNEL_START_SECONDS = 10.0
TUNNEL_CLOSE_SECONDS = 2.0


class ProxyPodMode:
    def __init__(self, settings: SessionSettings, io: LoopThread, user: str, console: Console) -> None:
        self._settings = settings
        self._io = io
        self._console = console
        self.pod = SessionPod(
            namespace=settings.istio_namespace,
            session_id=secrets.token_hex(4),
            user=user,
            ttl_seconds=settings.ttl_seconds,
            image=settings.image,
            pull_policy=settings.pull_policy.value,
            pull_secrets=settings.image_pull_secrets,
            args=session_serve_args(settings.istiod_timeout, settings.revision, settings.cluster_id, settings.verbose),
        )
        self._created: list[str] = []
        self._tunnel: Relay | None = None
        self._adoption: threading.Thread | None = None

    def open(self, deadline: float) -> Connection:
        self._create()
        self._wait_ready(deadline)
        target = Target(self.pod.name, self.pod.name, AGGREGATOR_PORT, namespace=self.pod.namespace)
        # A spare stream is opened after each one that worked: istioctl's connection does not wait for a websocket.
        self._tunnel = Relay(target, PortForwardDialer(self._settings.external), port=free_port(), keep_spare=True)
        from kubectl_istio_remote.aggregator.client import Connection

        address = self._io.run(self._tunnel.start(), TUNNEL_START_SECONDS)
        return wait_healthy(self._io, Connection(address), deadline, self._tunnel_error)

    def _tunnel_error(self) -> str:
        """Why the last stream failed: a forbidden port-forward, say, which gRPC only sees as a closed connection.

        A pod that went bad after it was ready (its container exited, or a runtime that reported Ready
        before the image was there) ends the wait at once with its status's reason.
        """
        with contextlib.suppress(ApiError, UnreachableError):
            pod_ready(Pod.of(self._settings.external.read(POD, self.pod.namespace, self.pod.name)))
        return self._tunnel.last_error if self._tunnel is not None else ""

    def close(self, deadline: float, stop_waiting: Callable[[], bool]) -> list[str]:
        """Delete what was created; if the API server does not come back in time, name the command that finishes the job."""
        if self._tunnel is not None:
            with contextlib.suppress(Exception):
                self._io.run(self._tunnel.close(), TUNNEL_CLOSE_SECONDS)
        if self._adoption is not None:
            self._adoption.join(ADOPTION_JOIN_SECONDS)
        refs = [ObjectRef(kind, self.pod.name) for kind in SESSION_KINDS if kind.name in self._created]
        external, namespace = self._settings.external, self.pod.namespace
        cleanup = f"kubectl istio-remote cleanup --context {external.context} -i {namespace} --session {self.pod.session_id}"
        hint = f"run `{cleanup}` once it answers (the pod also stops itself at its --ttl)"
        return delete_objects(external, namespace, refs, deadline, self._console, hint=hint, stop_waiting=stop_waiting)

    def _create(self) -> None:
        """The four objects in two concurrent rounds; owner references set while the pod starts."""
        external = self._settings.external
        objects = session_pod_objects(self.pod)
        self._console.progress(f"creating pod {self.pod.namespace}/{self.pod.name} in context {external.context}")
        self._create_all(CREATE_ROUNDS[0], objects)
        _, created = self._create_all(CREATE_ROUNDS[1], objects)
        # Owned by the pod, the rest goes with it, even if this process is killed before teardown;
        # set while the pod starts, since nothing waits on it.
        self._adoption = threading.Thread(target=self._adopt, args=(Pod.of(created).meta.uid,), name="adopt", daemon=True)
        with signals_held():  # cut by a signal, start() leaves a thread that join() refuses
            self._adoption.start()

    def _create_all(self, kinds: tuple[str, ...], objects: dict[str, Object]) -> list[Object]:
        # Recorded before the requests: a signal can land after the server created an object and
        # before we hear back; teardown deletes it either way (a 404 is fine).
        self._created.extend(kinds)
        external, namespace = self._settings.external, self.pod.namespace
        outcomes = outcomes_of([functools.partial(external.create, BY_NAME[kind], namespace, objects[kind]) for kind in kinds])
        for outcome in outcomes:
            if isinstance(outcome, ApiError) and outcome.refused_by_admission:
                raise outcome.as_admission_refusal() from None
            if isinstance(outcome, BaseException):
                raise outcome
        return cast(list[Object], outcomes)

    def _adopt(self, uid: str) -> None:
        owner = {"apiVersion": "v1", "kind": "Pod", "name": self.pod.name, "uid": uid, "blockOwnerDeletion": False}
        external, namespace = self._settings.external, self.pod.namespace
        patch = {"metadata": {"ownerReferences": [owner]}}
        outcomes_of([functools.partial(external.patch, BY_NAME[kind], namespace, self.pod.name, patch) for kind in IDENTITY_KINDS])

    def _wait_ready(self, deadline: float) -> None:
        external, namespace = self._settings.external, self.pod.namespace
        self._console.progress(f"waiting for pod {self.pod.name} to be ready")
        # A watch the server closes early (an API server shutting down closes them cleanly) is opened
        # again: if the server is gone, that attempt fails and says so, instead of a false timeout.
        while (remaining := int(deadline - time.monotonic())) > 0:
            raise_pending()
            for _, obj in external.watch(POD, namespace, fields=f"metadata.name={self.pod.name}", seconds=remaining):
                raise_pending()
                if pod_ready(Pod.of(obj)):
                    return
                if time.monotonic() > deadline:
                    break
        raise DeadlineError(
            f"pod {namespace}/{self.pod.name} was not ready within --timeout", "raise --timeout, or look at `kubectl describe pod`"
        )
