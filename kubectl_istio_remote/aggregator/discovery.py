"""Finds istiod replicas as running pods and keeps the pool current with a watch.

A watch, not a list per request: requests then cost no API-server round trip, and a replica that
starts or stops during a rollout joins or leaves the fan-out within a second.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from kubectl_istio_remote.errors import UnavailableError
from kubectl_istio_remote.kube import ForbiddenError, api_message
from kubectl_istio_remote.relay import Target

Replace = Callable[[Iterable[Target]], Awaitable[None]]

log = logging.getLogger(__name__)

WATCH_WINDOW_SECONDS = 30
RETRY_PAUSE_SECONDS = 2.0


def istiod_selector(label: str, revision: str) -> str:
    """The label selector istioctl uses for istiod pods (`app=istiod`, plus the revision when given)."""
    return f"{label},istio.io/rev={revision}" if revision else label


def target_of(pod: client.V1Pod, port: int, authority: str) -> Target | None:
    """The replica a pod stands for, or None while it is not running with an IP or is going away."""
    if pod.metadata.deletion_timestamp or not pod.status or pod.status.phase != "Running" or not pod.status.pod_ip:
        return None
    return Target(pod.metadata.name, pod.status.pod_ip, port, authority, pod.metadata.namespace)


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
        api: client.CoreV1Api,
        namespace: str,
        selector: str,
        port: int,
        authority: str,
    ) -> None:
        self._api = api
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
        resource_version = await asyncio.to_thread(self._list)
        await replace(list(self._targets.values()))
        publish: Callable[[], None] = lambda: asyncio.run_coroutine_threadsafe(
            replace(list(self._targets.values())), loop
        ).result()
        self._thread = threading.Thread(
            target=self._follow, args=(resource_version, publish), name="istiod-watch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _list(self) -> str:
        """The first list decides whether serving makes sense: a refusal ends `serve` with one line, not a traceback."""
        try:
            pods = self._api.list_namespaced_pod(self._namespace, label_selector=self._selector)
        except ApiException as error:
            failure = ForbiddenError if error.status == 403 else UnavailableError
            raise failure(
                f"cannot list istiod pods in namespace {self._namespace}: {error.status} {api_message(error)}",
                "grant list and watch on pods there to the aggregator's identity (`kubectl istio-remote manifest` shows the Role)",
            ) from None
        except Exception as error:  # noqa: BLE001 - urllib3's connection errors have no common base worth naming
            raise UnavailableError(f"cannot reach the API server to list istiod pods: {error}", "check the pod's network") from None
        self._targets = {
            pod.metadata.name: target for pod in pods.items if (target := target_of(pod, self._port, self._authority))
        }
        return pods.metadata.resource_version

    def _follow(self, resource_version: str, publish: Callable[[], None]) -> None:
        while not self._stopped.is_set():
            try:
                resource_version = self._watch_window(resource_version, publish)
            except ApiException as error:
                if error.status == 410:  # the watch fell too far behind: start again from a list
                    resource_version = self._list()
                    publish()
                    continue
                log.warning("watching istiod pods failed: %s %s", error.status, error.reason)
                self._stopped.wait(RETRY_PAUSE_SECONDS)
            except Exception as error:  # noqa: BLE001 - a broken watch must not end discovery
                log.warning("watching istiod pods failed: %s", error)
                self._stopped.wait(RETRY_PAUSE_SECONDS)

    def _watch_window(self, resource_version: str, publish: Callable[[], None]) -> str:
        watcher = watch.Watch()
        for event in watcher.stream(
            self._api.list_namespaced_pod,
            self._namespace,
            label_selector=self._selector,
            resource_version=resource_version,
            timeout_seconds=WATCH_WINDOW_SECONDS,
        ):
            pod: client.V1Pod = event["object"]
            resource_version = pod.metadata.resource_version
            target = None if event["type"] == "DELETED" else target_of(pod, self._port, self._authority)
            before = self._targets.get(pod.metadata.name)
            if target is None:
                self._targets.pop(pod.metadata.name, None)
            else:
                self._targets[pod.metadata.name] = target
            if before != target:
                publish()
            if self._stopped.is_set():
                watcher.stop()
        return resource_version
