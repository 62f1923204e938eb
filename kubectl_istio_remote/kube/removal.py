"""Deleting what we made, waiting out an API server that is restarting instead of leaving litter."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kubectl_istio_remote.concurrency import outcomes_of
from kubectl_istio_remote.console import Console
from kubectl_istio_remote.errors import UnavailableError
from kubectl_istio_remote.kube.api_errors import ApiError, UnreachableError
from kubectl_istio_remote.kube.cluster import Cluster
from kubectl_istio_remote.kube.kinds import Kind

#: Answers of an API server that is starting, stopping or overloaded: worth another try, unlike a refusal.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
FIRST_PAUSE_SECONDS, LONGEST_PAUSE_SECONDS = 0.5, 4.0
REQUEST_CEILING_SECONDS = 5.0


@dataclass(frozen=True)
class ObjectRef:
    kind: Kind
    name: str

    def __str__(self) -> str:
        return f"{self.kind.name}/{self.name}"


def delete_objects(
    cluster: Cluster,
    namespace: str,
    refs: Sequence[ObjectRef],
    deadline: float,
    console: Console,
    *,
    hint: str,
    stop_waiting: Callable[[], bool] = lambda: False,
) -> list[str]:
    """Delete `refs` before `deadline` (monotonic), retrying with bounded backoff while the API server does not answer.

    An API server restart (an upgrade, a failover) takes seconds: waiting for it leaves nothing
    behind where giving up at the first refused connection would. The user is told once that we
    wait, and `stop_waiting()` (a signal during teardown) ends the wait at once; every object still
    gets one attempt. Each attempt deletes every object left at once (one round trip, not one per
    object); the pod owns the rest, so their order does not matter. Returns "Kind/name" of what was removed (404s are not reported); if anything
    is left, raises one error naming it, the API server, and `hint`, the command that removes it.
    """
    removed: list[str] = []
    pending = list(refs)
    cause = ""
    pause = FIRST_PAUSE_SECONDS
    warned = False
    while pending and time.monotonic() < deadline:
        timeout = max(0.5, min(REQUEST_CEILING_SECONDS, deadline - time.monotonic()))
        deletes = [functools.partial(cluster.delete, ref.kind, namespace, ref.name, timeout=timeout) for ref in pending]
        left = []
        for ref, outcome in zip(pending, outcomes_of(deletes), strict=True):
            if outcome is None:
                removed.append(str(ref))
            elif isinstance(outcome, ApiError) and outcome.status == 404:
                pass  # already gone, or never created: nothing to report
            elif isinstance(outcome, ApiError) and outcome.status in TRANSIENT_STATUSES:
                cause = f"{outcome.status} {outcome.server_message}"
                left.append(ref)
            elif isinstance(outcome, UnreachableError):
                cause = outcome.cause
                left.append(ref)
            else:
                raise outcome
        if len(left) < len(pending):
            pause = FIRST_PAUSE_SECONDS
        pending = left
        if not pending or stop_waiting():
            break
        if not warned:
            warned = True
            console.warning(
                f"the API server of context {cluster.context} ({cluster.host}) does not answer ({cause}): "
                f"retrying to remove {_names(pending)} for up to {max(0, deadline - time.monotonic()):.0f} s; Ctrl-C stops waiting"
            )
        wake = min(deadline, time.monotonic() + pause)
        while time.monotonic() < wake and not stop_waiting():
            time.sleep(0.1)
        pause = min(LONGEST_PAUSE_SECONDS, pause * 2)
    if pending:
        raise UnavailableError(
            f"the API server of context {cluster.context} ({cluster.host}) did not answer ({cause}): "
            f"left {_names(pending)} in namespace {namespace}",
            hint,
        )
    return removed


def _names(refs: Sequence[ObjectRef]) -> str:
    return ", ".join(map(str, refs))
