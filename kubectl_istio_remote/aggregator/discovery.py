"""Finds istiod replicas as running pods and keeps the pool current with a watch.

A watch, not a list per request: requests then cost no API-server round trip, and a replica that
starts or stops during a rollout joins or leaves the fan-out within a second.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Protocol

from kubectl_istio_remote.errors import ForbiddenError, UnavailableError
from kubectl_istio_remote.kube.api_errors import ApiError, UnreachableError
from kubectl_istio_remote.kube.cluster import Cluster
from kubectl_istio_remote.kube.kinds import POD
from kubectl_istio_remote.kube.records import Pod, items
from kubectl_istio_remote.relay import Target

Replace = Callable[[Iterable[Target]], Coroutine[Any, Any, None]]

log = logging.getLogger(__name__)

WATCH_WINDOW_SECONDS = 30
RETRY_PAUSE_SECONDS = 2.0


def target_of(pod: Pod, port: int, authority: str) -> Target | None:
    """The replica a pod stands for, or None while it is not running with an IP or is going away."""
    if pod.meta.deleting or pod.phase != "Running" or not pod.pod_ip:
        return None
    return Target(pod.name, pod.pod_ip, port, authority, pod.meta.namespace)


class TargetSource(Protocol):
    """Where the replicas come from; `start` publishes the first set before returning."""

    description: str

    async def start(self, replace: Replace) -> None: ...

    def stop(self) -> None: ...


class StaticTargets:
    """Fixed addresses given with --istiod-address, for istiods that are not pods."""

    def __init__(self, targets: Iterable[Target]) -> None:
        self._targets = list(targets)
        self.description = "the --istiod-address list"

    async def start(self, replace: Replace) -> None:
        await replace(self._targets)

    def stop(self) -> None:
        pass


class PodDiscovery:
    """Lists istiod pods once, then follows a watch in a thread and replaces the pool on every change."""

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        selector: str,
        port: int,
        authority: str,
        known: tuple[list[Pod], str] | None = None,
    ) -> None:
        self._cluster = cluster
        #: Pods and the resourceVersion of a list the caller just made: start watching from there instead of listing again.
        self._known = known
        self._namespace = namespace
        self._selector = selector
        self._port = port
        self._authority = authority
        self.description = f"running pods with label {selector} in namespace {namespace}"
        self._targets: dict[str, Target] = {}
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    async def start(self, replace: Replace) -> None:
        """Publish the replicas of a first list, then keep following changes in the background."""
        loop = asyncio.get_running_loop()
        resource_version = await asyncio.to_thread(self._list) if self._known is None else self._take_known(*self._known)
        await replace(list(self._targets.values()))

        def publish() -> None:
            asyncio.run_coroutine_threadsafe(replace(list(self._targets.values())), loop).result()

        self._thread = threading.Thread(target=self._follow, args=(resource_version, publish), name="istiod-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _take_known(self, pods: list[Pod], resource_version: str) -> str:
        self._targets = {pod.name: target for pod in pods if (target := target_of(pod, self._port, self._authority))}
        return resource_version

    def _list(self) -> str:
        """The first list decides whether serving makes sense: a refusal ends `serve` with one line, not a traceback."""
        try:
            listed = self._cluster.list_objects(POD, self._namespace, labels=self._selector)
        except ApiError as error:
            failure = ForbiddenError if error.status == 403 else UnavailableError
            raise failure(
                f"cannot list istiod pods in namespace {self._namespace}: {error.status} {error.server_message}",
                "grant list and watch on pods there to the aggregator's identity (`kubectl istio-remote manifest` shows the Role)",
            ) from None
        except UnreachableError as error:
            raise UnavailableError(f"cannot reach the API server to list istiod pods: {error.cause}", "check the pod's network") from None
        return self._take_known([Pod.of(pod) for pod in items(listed)], str((listed.get("metadata") or {}).get("resourceVersion", "")))

    def _follow(self, resource_version: str, publish: Callable[[], None]) -> None:
        while not self._stopped.is_set():
            try:
                resource_version = self._watch_window(resource_version, publish)
            except ApiError as error:
                if error.status == 410:  # the watch fell too far behind: start again from a list
                    resource_version = self._list()
                    publish()
                    continue
                log.warning("watching istiod pods failed: %s %s", error.status, error.server_message)
                self._stopped.wait(RETRY_PAUSE_SECONDS)
            except Exception as error:  # noqa: BLE001 - a broken watch (or a failed list after 410) must not end discovery
                log.warning("watching istiod pods failed: %s", error)
                self._stopped.wait(RETRY_PAUSE_SECONDS)

    def _watch_window(self, resource_version: str, publish: Callable[[], None]) -> str:
        events = self._cluster.watch(
            POD, self._namespace, labels=self._selector, resource_version=resource_version, seconds=WATCH_WINDOW_SECONDS
        )
        for kind, obj in events:
            pod = Pod.of(obj)
            resource_version = pod.meta.resource_version
            target = None if kind == "DELETED" else target_of(pod, self._port, self._authority)
            before = self._targets.get(pod.name)
            if target is None:
                self._targets.pop(pod.name, None)
            else:
                self._targets[pod.name] = target
            if before != target:
                publish()
            if self._stopped.is_set():
                break
        return resource_version
