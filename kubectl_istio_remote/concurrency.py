"""Work that does not depend on other work, done at once: on a 100 ms network each round trip saved is felt.

The Kubernetes transport is thread-safe and each thread takes a kept-alive connection of its
own (a new one when all are busy), so N independent requests cost about one round trip, not N.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from kubectl_istio_remote.signals import signals_held

T = TypeVar("T")
MOST_AT_ONCE = 24


def all_of(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Every call's result, in order. If any raised, the first failure in order is raised once all have ended."""
    outcomes = outcomes_of(calls)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes  # type: ignore[return-value]


def outcomes_of(calls: Sequence[Callable[[], T]]) -> list[T | BaseException]:
    """Each call's result or the exception it raised, in order; none is lost to another's failure."""
    if len(calls) <= 1:
        return [_outcome(call) for call in calls]
    pool = ThreadPoolExecutor(max_workers=min(MOST_AT_ONCE, len(calls)), thread_name_prefix="kube-request")
    try:
        with signals_held():  # each submit may start a thread
            futures = [pool.submit(_outcome, call) for call in calls]
        return [future.result() for future in futures]
    finally:
        # A signal (Interrupted) while waiting: calls not started are dropped, those in flight end
        # first (within their request timeout). Teardown then sees every object a create made; one
        # that landed after teardown's delete would be left behind (the signal campaign found one).
        pool.shutdown(wait=True, cancel_futures=True)


def in_background(call: Callable[[], T]) -> Callable[[], T]:
    """Start `call` in a thread now; calling the result waits for it and returns its value (or raises its error)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="background")
    with signals_held():
        future = pool.submit(call)
    pool.shutdown(wait=False)
    return future.result


def _outcome(call: Callable[[], T]) -> T | BaseException:
    try:
        return call()
    except Exception as error:  # noqa: BLE001 - handed to the caller, who decides
        return error
