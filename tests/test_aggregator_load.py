"""The aggregator under load, against stand-in replicas: calls shared, lines per replica, the memory budget, metrics.

What an operator and a mesh user notice: a burst of identical calls reaches istiod once; no
replica is ever asked more than --istiod-max-in-flight calls at a time; a call that cannot be
served now is RESOURCE_EXHAUSTED ("busy, retry") before its deadline, never an answer that silently
lacks a replica; and /metrics says all of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubectl_istio_remote.aggregator.client import Replies
from kubectl_istio_remote.aggregator.load import FIRST_ESTIMATE_BYTES, OVERHEAD, Budget, Overloaded, ReplicaQueue, parse_size
from tests.doubles.mesh import TOKEN, Mesh, proxy_ids, replicas, syncz

#: Every call has a deadline: a hang fails the test as DEADLINE_EXCEEDED instead of blocking it.
CALL_TIMEOUT = 30.0


async def call(mesh: Mesh, token: str = TOKEN, timeout: float = CALL_TIMEOUT) -> Replies | grpc.StatusCode:
    """One syncz as istioctl asks it: the replies, or the status code it ended with."""
    from kubectl_istio_remote.aggregator.client import ask

    assert mesh.connection is not None
    try:
        return await ask(dataclasses.replace(mesh.connection, token=token), [syncz()], timeout=timeout)
    except grpc.aio.AioRpcError as error:
        return error.code()


def whole(mesh: Mesh, outcome: Replies | grpc.StatusCode) -> bool:
    every = sorted(proxy for istiod in mesh.istiods for proxy in istiod.proxies)
    return isinstance(outcome, Replies) and not outcome.failed and sorted(proxy_ids(outcome)) == every


def scraped(mesh: Mesh) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics, read and parsed as Prometheus reads it: {(sample name, labels): value}."""
    assert mesh.aggregator is not None and mesh.aggregator.metrics_address
    with urllib.request.urlopen(f"http://{mesh.aggregator.metrics_address}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_identical_calls_in_flight_share_one_fan_out(mesh_factory) -> None:
    gate = asyncio.Event()
    mesh = await mesh_factory(replicas(3, gate=gate), metrics_listen="127.0.0.1:0")
    calls = [asyncio.ensure_future(call(mesh)) for _ in range(50)]
    await asyncio.sleep(0.5)
    gate.set()
    outcomes = await asyncio.gather(*calls)
    assert all(whole(mesh, outcome) for outcome in outcomes)
    assert [len(istiod.seen_requests) for istiod in mesh.istiods] == [1, 1, 1]
    assert scraped(mesh)[("istio_remote_coalesced_requests_total", ())] == 49


async def test_calls_of_different_tokens_never_share_and_istiod_sees_each_token(mesh_factory) -> None:
    gate = asyncio.Event()
    mesh = await mesh_factory(replicas(2, gate=gate))
    calls = [asyncio.ensure_future(call(mesh, token=f"token-{n % 2}")) for n in range(10)]
    await asyncio.sleep(0.5)
    gate.set()
    assert all(whole(mesh, outcome) for outcome in await asyncio.gather(*calls))
    for istiod in mesh.istiods:
        assert sorted(seen["authorization"] for seen in istiod.seen_metadata) == ["Bearer token-0", "Bearer token-1"]


async def test_calls_of_one_token_for_different_clusters_never_share(mesh_factory) -> None:
    """istiod reviews the same token in each named cluster, and may answer one and refuse the other."""
    gate = asyncio.Event()
    mesh = await mesh_factory(replicas(2, gate=gate))
    calls = [asyncio.ensure_future(mesh.ask(syncz(), cluster_id=f"remote-{n % 2}")) for n in range(6)]
    await asyncio.sleep(0.5)
    gate.set()
    await asyncio.gather(*calls)
    for istiod in mesh.istiods:
        assert sorted(seen["clusterid"] for seen in istiod.seen_metadata) == ["remote-0", "remote-1"]


async def test_a_replica_silent_past_the_callers_deadline_is_named_and_the_others_answer(mesh_factory) -> None:
    """A deleted istiod pod whose connection hangs: the caller's deadline (here 2 s) comes before --istiod-timeout
    (30 s); the caller gets the others' proxies with that replica named, not its own DEADLINE_EXCEEDED."""
    mesh = await mesh_factory(replicas(3), istiod_timeout=30)
    mesh.istiods[1].delay = 10
    replies = await mesh.ask(syncz(), timeout=2)
    assert sorted(proxy_ids(replies)) == sorted(p for i in (0, 2) for p in mesh.istiods[i].proxies)
    assert [failure.split(":")[0] for failure in replies.failed] == ["istiod-1"]


async def test_no_replica_gets_more_than_its_bound_and_the_line_is_not_its_timeout(mesh_factory) -> None:
    # 12 callers, 2 at a time, 0.3 s each: the last waits ~1.5 s in line, three times --istiod-timeout, and is answered.
    mesh = await mesh_factory(replicas(3, delay=0.3), istiod_max_in_flight=2, istiod_timeout=0.5)
    outcomes = await asyncio.gather(*(call(mesh, token=f"user-{n}") for n in range(12)))
    assert all(whole(mesh, outcome) for outcome in outcomes)
    assert [istiod.most_in_flight for istiod in mesh.istiods] == [2, 2, 2]


async def test_a_call_whose_turn_would_outlast_its_deadline_is_busy_never_partial(mesh_factory) -> None:
    # One replica is slow and takes one call at a time: the callers behind the first cannot be served in time.
    slow, *fast = replicas(3)
    slow.delay = 1.0
    mesh = await mesh_factory([slow, *fast], istiod_max_in_flight=1, metrics_listen="127.0.0.1:0")
    outcomes = await asyncio.gather(*(call(mesh, token=f"user-{n}", timeout=1.6) for n in range(4)))
    assert sum(whole(mesh, outcome) for outcome in outcomes) == 1
    assert outcomes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 3, outcomes
    assert slow.most_in_flight == 1
    metrics = scraped(mesh)
    assert metrics[("istio_remote_shed_requests_total", (("cause", "queue"),))] == 3
    assert metrics[("istio_remote_requests_total", (("code", "RESOURCE_EXHAUSTED"), ("page_class", "syncz")))] == 3


async def test_the_busy_message_says_why_and_to_retry(mesh_factory) -> None:
    slow = replicas(1, delay=2.0)
    mesh = await mesh_factory(slow, istiod_max_in_flight=1)
    first = asyncio.ensure_future(call(mesh, token="first"))
    await asyncio.sleep(0.2)
    from kubectl_istio_remote.aggregator.client import ask

    assert mesh.connection is not None
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ask(dataclasses.replace(mesh.connection, token="second"), [syncz()], timeout=1.0)
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.details() == (
        "istiod istiod-0 stayed busy with 1 of our requests (--istiod-max-in-flight) for the 0.8 s this call could wait; "
        "the aggregator is busy: retry in a few seconds"
    )
    assert whole(mesh, await first)


async def test_past_the_memory_budget_new_calls_are_busy_until_answers_are_sent(mesh_factory) -> None:
    gate = asyncio.Event()
    budget = OVERHEAD * FIRST_ESTIMATE_BYTES  # less than one call's first estimates (its fan-out and its answer)
    mesh = await mesh_factory(replicas(3, gate=gate), max_memory=budget, metrics_listen="127.0.0.1:0")
    held = asyncio.ensure_future(call(mesh, token="first"))
    await asyncio.sleep(0.3)
    assert await call(mesh, token="second") is grpc.StatusCode.RESOURCE_EXHAUSTED
    gate.set()
    assert whole(mesh, await held)
    assert whole(mesh, await call(mesh, token="third")), "sent answers free the budget"
    metrics = scraped(mesh)
    assert metrics[("istio_remote_shed_requests_total", (("cause", "memory"),))] == 1
    assert metrics[("istio_remote_memory_budget_bytes", ())] == budget // OVERHEAD
    assert metrics[("istio_remote_memory_budget_used_bytes", ())] == 0


def test_a_budget_smaller_than_one_answer_serves_calls_one_after_another() -> None:
    budget = Budget(limit=10)
    first = budget.hold("syncz fan-out")
    first.reserve()
    first.holding(1000)
    first.release()
    assert budget.used == 0 and budget.estimates["syncz fan-out"] == 1000
    again = budget.hold("syncz fan-out")
    again.reserve()  # nothing held: let in, though its estimate is over the limit
    with pytest.raises(Overloaded, match="budget"):
        budget.hold("syncz fan-out").reserve()
    again.release()
    assert budget.used == 0


async def test_a_call_waiting_in_a_replicas_line_holds_nothing_of_the_budget() -> None:
    """Only calls istiod is working on reserve: a burst waiting in line is not refused for memory it does not hold."""
    budget = Budget(limit=10)
    waiting = [budget.hold("syncz fan-out") for _ in range(100)]
    assert budget.used == 0 and all(budget.fits(hold.estimate) for hold in waiting[:1])
    waiting[0].reserve()
    assert budget.used == waiting[0].estimate


@pytest.mark.parametrize(("text", "size"), [("384Mi", 384 << 20), ("1Gi", 1 << 30), ("500M", 500_000_000), ("1048576", 1 << 20)])
def test_sizes_read_as_kubernetes_quantities(text: str, size: int) -> None:
    assert parse_size(text) == size


async def test_metrics_name_each_replica_its_outcomes_and_forget_replicas_that_leave(mesh_factory) -> None:
    mesh = await mesh_factory(replicas(3), dead=1, metrics_listen="127.0.0.1:0")
    assert isinstance(await call(mesh), Replies)
    metrics = scraped(mesh)
    assert metrics[("istio_remote_replicas", ())] == 4
    for name in ("istiod-0", "istiod-1", "istiod-2"):
        assert metrics[("istio_remote_replica_requests_total", (("outcome", "ok"), ("replica", name)))] == 1
        assert metrics[("istio_remote_replica_request_duration_seconds_count", (("replica", name),))] == 1
    assert metrics[("istio_remote_replica_requests_total", (("outcome", "UNAVAILABLE"), ("replica", "dead-0")))] == 1
    assert metrics[("istio_remote_requests_total", (("code", "OK"), ("page_class", "syncz")))] == 1
    assert metrics[("istio_remote_merged_bytes_total", ())] > 0
    assert metrics[("istio_remote_requests_in_flight", ())] == 0
    assert metrics[("process_resident_memory_bytes", ())] > 0
    assert mesh.aggregator is not None
    await mesh.aggregator._replace([link.target for link in mesh.aggregator._pool.links() if link.target.name != "dead-0"])
    assert not [key for key in scraped(mesh) if ("replica", "dead-0") in key[1]]


async def test_callers_sharing_a_fan_out_are_sent_their_copies_as_room_frees_up(mesh_factory) -> None:
    """gRPC copies what it sends: callers of one fan-out each need room for their own copy; past the budget they
    wait for the copies before them to be sent (moments), instead of being refused or holding a thousand at once."""
    gate = asyncio.Event()
    gate.set()
    mesh = await mesh_factory(replicas(3, proxies_each=50, gate=gate))
    assert whole(mesh, await call(mesh)), "learns what a syncz fan-out and its answer take"
    assert mesh.aggregator is not None
    budget = mesh.aggregator.budget
    budget.limit = budget.estimates["syncz fan-out"] + 3 * budget.estimates["syncz answer"]
    peaks: list[int] = []
    budget.observer = lambda used, limit: peaks.append(used)
    gate.clear()
    calls = [asyncio.ensure_future(call(mesh)) for _ in range(10)]
    await asyncio.sleep(0.5)
    gate.set()
    outcomes = await asyncio.gather(*calls)
    assert all(whole(mesh, outcome) for outcome in outcomes), outcomes
    assert max(peaks) <= budget.limit, "never more copies at once than the budget holds"
    assert budget.used == 0


async def test_a_place_in_line_that_would_come_too_late_is_refused_at_once_not_after_the_wait() -> None:
    """A burst longer than the line can serve in time is told to retry now, not after --max-queue-seconds of waiting."""
    queue = ReplicaQueue(limit=2)
    queue.answered_in(1.0)
    await queue.enter("istiod-0", 10)
    await queue.enter("istiod-0", 10)  # both places taken
    waiting = [asyncio.ensure_future(queue.enter("istiod-0", 10)) for _ in range(4)]
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    with pytest.raises(Overloaded, match="has 4 of our requests waiting for it .* after the 1.5 s it could wait"):
        await queue.enter("istiod-0", 1.5)  # 4 ahead, 2 at a time, 1 s each: its turn in ~3 s
    assert asyncio.get_running_loop().time() - started < 0.1, "refused at once"
    for _ in range(6):
        queue.leave()
    await asyncio.gather(*waiting)
