"""Deleting what we made, waiting out an API server that is restarting instead of leaving litter."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kubectl_istio_remote.console import Console
from kubectl_istio_remote.errors import UnavailableError
from kubectl_istio_remote.kube.cluster import Cluster
from kubectl_istio_remote.kube.errors import ApiError, UnreachableError
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
    gets one attempt. Returns "Kind/name" of what was removed (404s are not reported); if anything
    is left, raises one error naming it, the API server, and `hint`, the command that removes it.
    """
    removed: list[str] = []
    pending = list(refs)
    cause = ""
    pause = FIRST_PAUSE_SECONDS
    warned = False
    while pending and time.monotonic() < deadline:
        ref = pending[0]
        try:
            cluster.delete(ref.kind, namespace, ref.name, timeout=max(0.5, min(REQUEST_CEILING_SECONDS, deadline - time.monotonic())))
        except ApiError as error:
            if error.status == 404:  # already gone, or never created: nothing to report
                pending.pop(0)
                continue
            if error.status not in TRANSIENT_STATUSES:
                raise
            cause = f"{error.status} {error.server_message}"
        except UnreachableError as error:
            cause = error.cause
        else:
            removed.append(str(ref))
            pending.pop(0)
            pause = FIRST_PAUSE_SECONDS
            continue
        if stop_waiting():
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
