"""One call asked of every replica at once, each in its line and under its own deadline, and the answers merged.

A replica that is really down (refused, reset, no answer in time) is named in the answer; a
replica we could not ask because our own line to it was too long makes the whole call
RESOURCE_EXHAUSTED instead (load.Overloaded): the caller retries and gets the whole mesh,
rather than an answer that silently lacks that replica's proxies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest

from kubectl_istio_remote.aggregator.debug_pages import Page
from kubectl_istio_remote.aggregator.discovery import TargetSource
from kubectl_istio_remote.aggregator.load import Hold, Overloaded
from kubectl_istio_remote.aggregator.merge import Answer, in_merge_order, merge
from kubectl_istio_remote.aggregator.metrics import Metrics
from kubectl_istio_remote.aggregator.serving import Settings
from kubectl_istio_remote.aggregator.upstream import IstiodLink, IstiodPool, UpstreamFailure
from kubectl_istio_remote.istio import DEBUG_TYPE

log = logging.getLogger(__name__)

#: istiod refusing the caller is the caller's problem to fix, so keep istiod's own code for it.
CALLER_CODES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT})


class AggregationError(Exception):
    """No answer can be given; carries the status the client should see."""

    def __init__(self, code: grpc.StatusCode, message: str, failures: Sequence[UpstreamFailure] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.failures = list(failures)


@dataclass(frozen=True)
class Merged:
    """The serialized answer, the replicas that failed, and (name, resource count) of those that answered."""

    raw: bytes
    failures: list[UpstreamFailure]
    sources: list[tuple[str, int]]
    disagreement: str = ""
    #: (istiod, its control-plane identifier) of the replicas that sent one.
    identities: list[tuple[str, str]] = field(default_factory=list)


class FanOut:
    """Asks every replica at once and merges what comes back in time."""

    def __init__(self, pool: IstiodPool, source: TargetSource, settings: Settings, metrics: Metrics) -> None:
        self._pool = pool
        self._source = source
        self._settings = settings
        self._metrics = metrics

    def links(self, request: DiscoveryRequest) -> list[IstiodLink]:
        """The replicas to ask now; raises when there are none, or when the page is one this aggregator does not pass on."""
        links = self._pool.links()
        if not links:
            raise AggregationError(grpc.StatusCode.UNAVAILABLE, f"no istiod found: no {self._source.description}")
        self._check_change(request, len(links))
        return links

    async def answer(
        self,
        request: DiscoveryRequest,
        metadata: Sequence[tuple[str, str]],
        links: list[IstiodLink],
        hold: Hold,
        wait: float,
        deadline: float | None,
    ) -> Merged:
        """The merged answer of `links`; `wait` is how long a place in a replica's line may take, `deadline` (loop time)
        when the caller stops waiting, `hold` what the answers count against the budget."""
        asks = [asyncio.ensure_future(self._ask(link, request, metadata, wait, deadline, hold)) for link in links]

        def held(_: object) -> None:
            """The answers received so far count against the budget while the others are awaited (the estimate until then)."""
            received = sum(len(ask.result().raw) for ask in asks if ask.done() and not ask.cancelled() and ask.exception() is None)
            if hold.reserved:
                hold.holding(max(received, hold.counted))

        for ask in asks:
            ask.add_done_callback(held)
        try:
            await _first_overload(asks)
        finally:
            for ask in asks:
                ask.cancel()
        answers: list[Answer] = []
        failures: list[UpstreamFailure] = []
        for link, ask in zip(links, asks, strict=True):
            result = ask.exception() or ask.result()
            if isinstance(result, Answer):
                answers.append(result)
            elif isinstance(result, UpstreamFailure):
                failures.append(result)
            elif isinstance(result, Exception):
                failures.append(UpstreamFailure(link.target.name, f"{type(result).__name__}: {result}"))
            else:
                raise result
        return self._merged(request, answers, failures, len(links), hold)

    async def _ask(
        self,
        link: IstiodLink,
        request: DiscoveryRequest,
        metadata: Sequence[tuple[str, str]],
        wait: float,
        deadline: float | None,
        hold: Hold,
    ) -> Answer:
        """One replica, once it has room for us and the call's answers fit the budget; its time counted from then
        (the line is ours, not istiod's)."""
        name = link.target.name
        await link.queue.enter(name, wait, deadline)
        try:
            hold.reserve()
        except Overloaded:
            link.queue.leave()
            raise
        started = time.monotonic()
        # No later than the caller's own deadline: a replica that has not answered by then is named, and the caller
        # gets the others' answer rather than its deadline.
        limit = (
            self._settings.istiod_timeout
            if deadline is None
            else min(self._settings.istiod_timeout, deadline - asyncio.get_running_loop().time())
        )
        try:
            answer = await link.ask(request, metadata, max(limit, 0.0))
        except UpstreamFailure as failure:
            self._metrics.replica(name, failure.code.name, time.monotonic() - started)
            raise
        finally:
            link.queue.leave()
        took = time.monotonic() - started
        link.queue.answered_in(took)
        self._metrics.replica(name, "ok", took)
        return answer

    def _merged(self, request: DiscoveryRequest, answers: list[Answer], failures: list[UpstreamFailure], asked: int, hold: Hold) -> Merged:
        for failure in failures:
            log.warning("istiod %s failed %s: %s", failure.istiod, request.type_url, failure.reason)
        if not answers:
            codes = {failure.code for failure in failures}
            code = codes.pop() if len(codes) == 1 and codes <= CALLER_CODES else grpc.StatusCode.UNAVAILABLE
            raise AggregationError(code, "no istiod answered: " + "; ".join(map(str, failures)), failures)
        if failures and self._settings.require_all:
            raise AggregationError(
                grpc.StatusCode.UNAVAILABLE,
                f"{len(failures)} of {asked} istiods failed (--require-all): " + "; ".join(map(str, failures)),
                failures,
            )
        sources = [(answer.istiod, answer.resource_count) for answer in in_merge_order(answers)]
        combined = merge(request, answers, self._settings.control_plane_id)
        raw = combined.raw
        hold.holding(len(raw))
        if combined.disagreement:
            log.warning(combined.disagreement)
        if len(raw) > self._settings.max_message_bytes:
            # Each answer fits, their sum may not: refused here, gRPC would fail the send with a
            # traceback in our log and a bare "Sent message larger than max" for the user.
            raise AggregationError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the merged answer is {len(raw)} bytes, over --max-message-bytes {self._settings.max_message_bytes}: "
                "raise it, or ask for one proxy",
                failures,
            )
        self._metrics.merged(len(raw))
        identities = [
            (answer.istiod, answer.head.control_plane.identifier)
            for answer in in_merge_order(answers)
            if answer.head.control_plane.identifier
        ]
        return Merged(raw, failures, sources, combined.disagreement, identities)

    def _check_change(self, request: DiscoveryRequest, replicas: int) -> None:
        """A debug page that changes istiod (a push to every proxy, a cleared cache) is passed on only where allowed, and logged."""
        if request.type_url != DEBUG_TYPE or not request.resource_names or not Page.of(request.resource_names[0]).changes_istiod:
            return
        page = request.resource_names[0]
        if not self._settings.allow_debug_changes:
            raise AggregationError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"debug page {page} changes istiod, and this aggregator does not pass such pages on: "
                "its operator can allow them with `serve --allow-debug-changes`",
            )
        log.warning("passing %s, which changes istiod, to %d replicas", page, replicas)


async def _first_overload(asks: Sequence[asyncio.Future[Answer]]) -> None:
    """Wait for every ask; the first that could not get a place in line ends the call (the others are then cancelled)."""
    pending = set(asks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for ask in done:
            if isinstance(ask.exception(), Overloaded):
                raise ask.exception()  # type: ignore[misc]
