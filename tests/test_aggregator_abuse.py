"""Abuse of the aggregator (issue 6): fuzzed and malformed requests, messages over the size limit,
clients that vanish mid-request, 200 concurrent streams with `serve`'s peak RSS, and a bearer
token that must never reach a log.

The figures of serve's memory under concurrent streams come from `python -m bench.memory`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import portpicker
import pytest
from envoy.admin.v3 import config_dump_shared_pb2
from envoy.config.core.v3.base_pb2 import Node
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kubectl_istio_remote.aggregator.client import Connection, ask
from kubectl_istio_remote.aggregator.upstream import ADS_METHOD
from tests.doubles.istiod import CONFIG_DUMP, DEBUG, SYNCZ, XDS_TYPES, FakeIstiod
from tests.doubles.mesh import TOKEN, Mesh, config_dump, proxy_ids, replicas, syncz

#: --max-message-bytes in these tests: small, so messages over it are cheap to make.
LIMIT = 1 << 20
#: Every call has a deadline: a hang fails the test as DEADLINE_EXCEEDED instead of blocking it.
CALL_TIMEOUT = 30.0
METADATA = (("authorization", f"Bearer {TOKEN}"),)
SERVE = [sys.executable, "-m", "kubectl_istio_remote", "serve"]


def every_proxy(istiods: Sequence[FakeIstiod]) -> list[str]:
    return sorted(proxy for istiod in istiods for proxy in istiod.proxies)


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """ERROR records: how gRPC reports an exception escaping a handler, traceback included."""
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


async def until(condition: Callable[[], bool], what: str, within: float = 15.0) -> None:
    """Wait, bounded, for a state the server reaches on its own (streams opened or closed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, f"not within {within} s: {what}"
        await asyncio.sleep(0.02)


# --- Fuzzed DiscoveryRequests -------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(message: type[Message], name: str, payload: bytes) -> bytes:
    """One length-delimited field, encoded by hand: protobuf refuses to encode invalid UTF-8."""
    number = message.DESCRIPTOR.fields_by_name[name].number
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _decodes(raw: bytes) -> bool:
    try:
        DiscoveryRequest.FromString(raw)
    except DecodeError:
        return False
    return True


@dataclass(frozen=True)
class Fuzzed:
    """A request as wire bytes, and whether protobuf can decode it as a DiscoveryRequest."""

    raw: bytes
    decodable: bool


TEXT = st.text(max_size=64)
#: 0xFF never occurs in UTF-8, so any bytes ending with it are invalid.
INVALID_UTF8 = st.binary(max_size=16).map(lambda raw: raw + b"\xff")
#: 100 to 2000 names of 10 to 2000 characters: a third of the draws are over LIMIT, some just under.
HUGE_NAMES = st.builds(
    lambda count, length: [f"{i}.{'n' * length}" for i in range(count)],
    st.sampled_from([100, 1000, 2000]),
    st.sampled_from([10, 1000, 2000]),
)
CORRUPTIBLE = ("type_url", "version_info", "response_nonce", "resource_names", "node.id")


@st.composite
def built_requests(draw: st.DrawFn) -> Fuzzed:
    """A random type URL, few or huge resource names, a node or none, maybe invalid UTF-8 in one string field."""
    fields: list[tuple[str, bytes]] = [
        ("type_url", draw(st.sampled_from([SYNCZ, CONFIG_DUMP, DEBUG, *XDS_TYPES]) | TEXT).encode()),
        ("version_info", draw(TEXT).encode()),
        ("response_nonce", draw(TEXT).encode()),
        *(("resource_names", name.encode()) for name in draw(st.lists(TEXT, max_size=8) | HUGE_NAMES)),
    ]
    node = draw(st.none() | st.tuples(TEXT, TEXT))
    node_fields = [("id", node[0].encode()), ("cluster", node[1].encode())] if node else []
    corrupt = draw(st.sampled_from(CORRUPTIBLE)) if draw(st.integers(0, 3)) == 3 else None  # one in four
    if corrupt == "node.id":
        node_fields = [("id", draw(INVALID_UTF8)), *node_fields[1:]]
    elif corrupt == "resource_names":
        fields.append(("resource_names", draw(INVALID_UTF8)))
    elif corrupt is not None:
        fields = [(name, draw(INVALID_UTF8) if name == corrupt else value) for name, value in fields]
    if node_fields:
        fields.append(("node", b"".join(_field(Node, name, value) for name, value in node_fields)))
    fields = draw(st.permutations(fields))
    return Fuzzed(b"".join(_field(DiscoveryRequest, name, value) for name, value in fields), corrupt is None)


#: Three built requests for one of random bytes (which protobuf mostly refuses).
FUZZED = st.sampled_from([built_requests()] * 3 + [st.binary(max_size=512).map(lambda raw: Fuzzed(raw, _decodes(raw)))]).flatmap(
    lambda strategy: strategy
)


def expected_end(stream: Sequence[Fuzzed]) -> tuple[int, grpc.StatusCode]:
    """How many answers a stream gets and its status: each request is answered in turn until the
    first one over LIMIT (RESOURCE_EXHAUSTED) or not a DiscoveryRequest (INVALID_ARGUMENT)."""
    for answered, request in enumerate(stream):
        if len(request.raw) > LIMIT:
            return answered, grpc.StatusCode.RESOURCE_EXHAUSTED
        if not request.decodable:
            return answered, grpc.StatusCode.INVALID_ARGUMENT
    return len(stream), grpc.StatusCode.OK


async def send_raw(connection: Connection, stream: Sequence[Fuzzed]) -> tuple[list[DiscoveryResponse], grpc.StatusCode]:
    """Send wire bytes as they are, as istioctl does: a request, then its answer; return the answers
    and the final status. Nothing is written after the first request the server must refuse: a
    write on a call the server has ended fails inside grpcio's client, which then reports its own
    INTERNAL status and hides the server's."""
    answered, _ = expected_end(stream)
    responses: list[DiscoveryResponse] = []
    async with connection.channel() as channel:
        call = channel.stream_stream(ADS_METHOD, request_serializer=bytes, response_deserializer=DiscoveryResponse.FromString)(
            metadata=METADATA, timeout=CALL_TIMEOUT
        )
        with contextlib.suppress(grpc.aio.AioRpcError):  # the call ended with an error: its code says which
            for request in stream[: answered + 1]:
                await call.write(request.raw)
                if len(responses) < answered and (response := await call.read()) is not grpc.aio.EOF:
                    responses.append(response)
            if answered == len(stream):
                await call.done_writing()
            while (response := await call.read()) is not grpc.aio.EOF:
                responses.append(response)
        return responses, await call.code()


@pytest.fixture
async def three_replicas(mesh_factory) -> Mesh:
    return await mesh_factory(replicas(3), max_message_bytes=LIMIT)


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    # One aggregator for every example on purpose: it must survive all of them.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(stream=st.lists(FUZZED, min_size=1, max_size=3))
async def test_fuzzed_requests_end_cleanly_and_the_server_keeps_answering(
    three_replicas: Mesh, caplog: pytest.LogCaptureFixture, stream: list[Fuzzed]
) -> None:
    mesh = three_replicas
    responses, code = await send_raw(mesh.connection, stream)
    answered, expected_code = expected_end(stream)
    event(f"stream ends {expected_code.name}")  # the mix of outcomes, in --hypothesis-show-statistics
    assert (len(responses), code) == (answered, expected_code)
    sent_types = [DiscoveryRequest.FromString(request.raw).type_url for request in stream[:answered]]
    assert [response.type_url for response in responses] == sent_types, "each answer is for its own request"
    assert sorted(proxy_ids(await mesh.ask(syncz()))) == every_proxy(mesh.istiods)
    assert not errors_logged(caplog), "a bad request is the client's error, not one of ours"


# --- Messages over the limit --------------------------------------------------------------------


async def test_an_answer_over_the_limit_fails_only_its_replica(mesh_factory) -> None:
    big = FakeIstiod("istiod-big", [f"big-{p}.sample" for p in range(LIMIT // 100)])
    assert len(big.respond(syncz()).SerializeToString()) > LIMIT
    healthy = replicas(2)
    mesh = await mesh_factory([*healthy, big], max_message_bytes=LIMIT)
    replies = await mesh.ask(syncz())
    assert sorted(proxy_ids(replies)) == every_proxy(healthy)
    assert len(replies.failed) == 1 and replies.failed[0].startswith("istiod-big: RESOURCE_EXHAUSTED")


async def test_a_merged_answer_over_the_limit_names_the_flag_and_one_proxy_still_works(
    mesh_factory, caplog: pytest.LogCaptureFixture
) -> None:
    istiods = replicas(3, proxies_each=LIMIT // 3 // 200)  # a proxy's entry is 200-300 bytes
    sizes = [len(istiod.respond(syncz()).SerializeToString()) for istiod in istiods]
    assert max(sizes) < LIMIT < sum(sizes), "each answer fits, the merged one does not"
    mesh = await mesh_factory(istiods, max_message_bytes=LIMIT)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.ask(syncz())
    assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-message-bytes" in raised.value.details()
    one = istiods[2].proxies[-1]  # istioctl's question about one proxy: its config dump, from the replica holding it
    (dump,) = (await mesh.ask(config_dump(one))).responses[0].resources
    assert config_dump_shared_pb2.ClustersConfigDump.FromString(dump.value).version_info == f"istiod-2/{one}"
    assert not errors_logged(caplog)


async def test_a_request_over_the_limit_is_refused_while_others_are_served(mesh_factory, caplog: pytest.LogCaptureFixture) -> None:
    mesh = await mesh_factory(replicas(3), max_message_bytes=LIMIT)
    huge = syncz(*(f"{i}.{'n' * 1000}" for i in range(LIMIT // 1000)))
    assert huge.ByteSize() > LIMIT
    refused, served = await asyncio.gather(mesh.ask(huge), mesh.ask(syncz()), return_exceptions=True)
    assert isinstance(refused, grpc.aio.AioRpcError) and refused.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert sorted(proxy_ids(served)) == every_proxy(mesh.istiods)
    assert all(not request.resource_names for istiod in mesh.istiods for request in istiod.seen_requests)
    assert not errors_logged(caplog)


# --- Clients that vanish mid-request ------------------------------------------------------------


async def test_clients_vanishing_mid_request_close_every_upstream_stream(mesh_factory, caplog: pytest.LogCaptureFixture) -> None:
    vanishing = 20
    gate = asyncio.Event()  # replicas hold their answers: every fan-out stays in flight
    # Unbounded, and callers of tokens of their own (identical calls would share one fan-out): one stream each.
    mesh = await mesh_factory(replicas(3, gate=gate), istiod_max_in_flight=None)
    async with contextlib.AsyncExitStack() as channels:
        calls = []
        for n in range(vanishing):
            channel = await channels.enter_async_context(mesh.connection.channel())
            own = (("authorization", f"Bearer {TOKEN}-{n}"),)
            call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(metadata=own)
            await call.write(syncz())
            calls.append((channel, call))
        await until(lambda: all(i.open_streams == vanishing for i in mesh.istiods), "every request fanned out")
        for n, (channel, call) in enumerate(calls):
            if n % 2:
                call.cancel()
            else:
                await channel.close()  # the connection goes too, as when the client process dies
        await until(lambda: all(i.open_streams == 0 for i in mesh.istiods), "every upstream stream closed")
    gate.set()
    assert sorted(proxy_ids(await mesh.ask(syncz()))) == every_proxy(mesh.istiods)
    assert not errors_logged(caplog)


# --- `serve` as a process: 200 concurrent streams, peak RSS, logs -------------------------------


@contextlib.asynccontextmanager
async def serve_process(
    istiods: Sequence[FakeIstiod], log: Path, *flags: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """The real `serve` command over `istiods`, plaintext both ways, stderr appended to `log`;
    stopped with SIGTERM (killed if it does not end) on the way out."""
    addresses = [arg for istiod in istiods for arg in ("--istiod-address", istiod.address)]
    argv = [*SERVE, "--plaintext", "--listen", "127.0.0.1:0", "--istiod-plaintext", *addresses, *flags]
    with log.open("ab") as stderr:
        process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=stderr, env=env)
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert line.startswith("listening on 127.0.0.1:"), line or log.read_text()
        yield process, line.split()[-1]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 15)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


def memory_kib(pid: int, field: str) -> int:
    """A /proc/<pid>/status figure: VmRSS (now) or VmHWM (peak resident set since start)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


@dataclass(frozen=True)
class Load:
    """What rounds of `streams` concurrent syncz requests against `serve` cost it."""

    streams: int
    rounds: int
    proxies: int
    #: Size of the merged syncz answer each stream receives.
    payload_bytes: int
    #: Answers, over every round, that listed every proxy of every replica and no failure.
    complete: int
    #: serve's resident set once ready and warmed by one request.
    ready_kib: int
    #: serve's peak resident set after the first round and after the last.
    first_peak_kib: int
    peak_kib: int

    def growth(self, peak_kib: int) -> float:
        """Peak growth over the ready process, in merged answers in flight (streams x payload)."""
        return (peak_kib - self.ready_kib) * 1024 / (self.streams * self.payload_bytes)


async def concurrent_streams(streams: int, proxies_each: int, rounds: int, log: Path) -> Load:
    """Rounds of `streams` syncz requests at once to `serve` over 3 replicas. In each round the
    answers are held until every fan-out is in flight, then released together, the worst moment
    for memory; later rounds show whether memory keeps growing with the requests served."""
    gate = asyncio.Event()
    istiods = replicas(3, proxies_each=proxies_each, gate=gate)
    for istiod in istiods:
        await istiod.start()
    try:
        # Every stream in flight at once: no bound per replica, and a token per caller (identical calls would share).
        async with serve_process(istiods, log, "--istiod-max-in-flight", "0") as (process, address):
            connection = Connection(address, tls=False, token=TOKEN)
            expected = every_proxy(istiods)

            async def complete(caller: int) -> bool:
                replies = await ask(dataclasses.replace(connection, token=f"{TOKEN}-{caller}"), [syncz()], timeout=4 * CALL_TIMEOUT)
                return sorted(proxy_ids(replies)) == expected and not replies.failed

            async def round_of(count: int) -> int:
                gate.clear()
                asks = [asyncio.create_task(complete(caller)) for caller in range(count)]
                in_flight = f"{count} fan-outs in flight"
                await until(lambda: all(i.open_streams == count for i in istiods), in_flight, 4 * CALL_TIMEOUT)
                gate.set()
                answered = sum(await asyncio.gather(*asks))
                await until(lambda: all(i.open_streams == 0 for i in istiods), "every upstream stream closed after the answers")
                return answered

            gate.set()
            payload = (await ask(connection, [syncz()], timeout=CALL_TIMEOUT)).responses[0].ByteSize()
            await until(lambda: all(i.open_streams == 0 for i in istiods), "the warm-up request's streams closed")
            ready = memory_kib(process.pid, "VmRSS")
            answered = await round_of(streams)
            first_peak = memory_kib(process.pid, "VmHWM")
            for _ in range(rounds - 1):
                answered += await round_of(streams)
            peak = memory_kib(process.pid, "VmHWM")
        assert process.returncode == 0, log.read_text()
    finally:
        for istiod in istiods:
            await istiod.stop()
    return Load(streams, rounds, 3 * proxies_each, payload, answered, ready, first_peak, peak)


#: 3 replicas x 500 proxies: a merged syncz of ~0.4 MB, so 200 streams hold ~80 MB of answers at once.
PROXIES_EACH = 500
ROUNDS = 5


async def test_200_concurrent_streams_each_get_the_whole_mesh_in_bounded_memory(tmp_path: Path) -> None:
    load = await concurrent_streams(200, PROXIES_EACH, ROUNDS, tmp_path / "serve.log")
    assert load.complete == load.streams * load.rounds
    # Each stream in flight holds by design its replicas' answers and the merged copy (2 payloads);
    # gRPC's receive and send buffers may hold one more each (4), plus one for allocator
    # fragmentation: 5 payloads per stream over the ready process. Measured: 1.8-2.9 (RELIABILITY.md).
    # Answers kept after they were sent would add a payload per request: 5 rounds pass the ceiling.
    assert load.growth(load.peak_kib) < 5, load


async def test_the_token_never_reaches_a_log_even_on_failure_paths(tmp_path: Path) -> None:
    healthy = FakeIstiod("istiod-ok", ["app-0.sample", "app-1.sample"])
    hanging = FakeIstiod("istiod-hang", behaviour="hang")
    faulty = [
        FakeIstiod("istiod-refuse", behaviour="refuse"),
        FakeIstiod("istiod-garbage", behaviour="garbage"),
        FakeIstiod("istiod-big", [f"big-{p}.sample" for p in range(LIMIT // 100)]),
        hanging,
    ]
    istiods = [healthy, *faulty]
    for istiod in istiods:
        await istiod.start()
    log = tmp_path / "serve.log"
    dead = ["--istiod-address", f"127.0.0.1:{portpicker.pick_unused_port()}"]
    flags = ["--verbose", "--max-message-bytes", str(LIMIT), "--istiod-timeout", "2", *dead]
    try:
        async with serve_process(istiods, log, *flags, env={**os.environ, "GRPC_VERBOSITY": "debug"}) as (process, address):
            connection = Connection(address, tls=False, token=TOKEN)
            replies = await ask(connection, [syncz(), config_dump("app-1.sample")], timeout=CALL_TIMEOUT)
            assert proxy_ids(replies) == healthy.proxies
            assert len(replies.responses[1].resources) == 1
            # --istiod-address targets are named by their address
            assert {entry.split(": ")[0] for entry in replies.failed} == {i.address for i in faulty} | {dead[1]}
            malformed = [Fuzzed(_field(DiscoveryRequest, "type_url", b"\xff"), False)]
            assert (await send_raw(connection, malformed))[1] is grpc.StatusCode.INVALID_ARGUMENT
            too_big = [Fuzzed(syncz(*(f"{i}.{'n' * 1000}" for i in range(LIMIT // 1000))).SerializeToString(), True)]
            assert (await send_raw(connection, too_big))[1] is grpc.StatusCode.RESOURCE_EXHAUSTED
            async with connection.channel() as channel:
                call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(metadata=METADATA)
                await call.write(syncz())
                await until(lambda: hanging.open_streams == 1, "the vanishing client's request fanned out")
                call.cancel()
        output = log.read_text(errors="replace") + (await process.stdout.read()).decode(errors="replace")
    finally:
        for istiod in istiods:
            await istiod.stop()
    assert process.returncode == 0
    for address in [i.address for i in faulty] + [dead[1]]:
        assert address in output, "each failure is logged, so the log read below is the real one"
    assert TOKEN not in output and TOKEN.split(".")[1] not in output
    assert "Traceback" not in output
