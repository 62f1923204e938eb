"""The shared aggregator under load (issue 19): calls at once against busy replicas, this tree beside another.

Three stand-in replicas (processes, tests/doubles/istiod.py) of N proxies each answer syncz in
400 ms, 8 at a time, like a busy istiod; `serve` is in front of them with TLS (a certificate from
files, verified by the callers' native gRPC TLS). K syncz calls start at once, each on a
connection of its own (as K istioctl processes), from one caller (one token: identical calls) or
from K callers (a token each). Each call has a 60 s deadline. Counted: complete answers (the whole
mesh, no replica named as failed), partial ones (fewer proxies, failed replicas named or not),
shed (RESOURCE_EXHAUSTED), other failures, calls coalesced (from /metrics, where serve has them),
serve's peak RSS, and p50/p99 latency.

Run: `python -m bench.load [--tree PATH] [--max-memory 384Mi]` (PATH: another checkout, such as a
worktree of main before the change, run with this interpreter; without --max-memory no budget).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
import portpicker
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest

from bench.processes import memory_kib, serve, stand_in_istiods
from kubectl_istio_remote.aggregator.queries import syncz_request
from kubectl_istio_remote.aggregator.trailers import FAILED_METADATA_KEY

ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
CALL_SECONDS = 60.0
ANSWER_SECONDS, REPLICA_CONCURRENCY = 0.4, 8
CALLS = (1, 50, 300, 1000)
PROXIES = (3000, 10000)
SERVER_NAME = "aggregator.bench"


@dataclass(frozen=True)
class Outcome:
    kind: str  # complete, partial, shed, failed
    seconds: float


@dataclass(frozen=True)
class Row:
    calls: int
    proxies: int
    callers: str
    outcomes: list[Outcome]
    coalesced: str
    peak_mib: float

    def count(self, kind: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.kind == kind)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(outcome.seconds for outcome in self.outcomes)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def certificate(directory: Path) -> tuple[Path, Path, bytes]:
    """A CA and a serving pair for SERVER_NAME: (certificate file, key file, CA PEM)."""
    from tests.sandbox.pki import Authority

    authority = Authority(directory)
    cert, key = authority.issue("aggregator", SERVER_NAME, server=True, dns_names=(SERVER_NAME,))
    return cert, key, authority.cert_path.read_bytes()


async def one_call(channel: grpc.aio.Channel, request: DiscoveryRequest, token: str, expected: int) -> Outcome:
    """One syncz read as raw bytes: complete answers of the same mesh have the same length."""
    started = time.perf_counter()
    stream = channel.stream_stream(ADS, request_serializer=DiscoveryRequest.SerializeToString, response_deserializer=bytes)
    call = stream(metadata=(("authorization", f"Bearer {token}"),), timeout=CALL_SECONDS)
    try:
        await call.write(request)
        await call.done_writing()
        raw = await call.read()
        while await call.read() is not grpc.aio.EOF:
            pass
        failed = [value for key, value in await call.trailing_metadata() or () if key == FAILED_METADATA_KEY]
        kind = "complete" if raw is not grpc.aio.EOF and len(raw) == expected and not failed else "partial"
    except grpc.aio.AioRpcError as error:
        kind = "shed" if error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED else "failed"
    return Outcome(kind, time.perf_counter() - started)


async def burst(address: str, ca: bytes, calls: int, one_caller: bool, expected: int) -> list[Outcome]:
    """`calls` calls at once, each on its own connection, made before the burst so it starts together."""
    credentials = grpc.ssl_channel_credentials(root_certificates=ca)
    options = [("grpc.ssl_target_name_override", SERVER_NAME), ("grpc.max_receive_message_length", -1)]
    channels = [grpc.aio.secure_channel(address, credentials, options=options) for _ in range(calls)]
    try:
        await asyncio.gather(*(asyncio.wait_for(channel.channel_ready(), 60) for channel in channels))
        request = syncz_request("istio-system")
        tokens = ["bench-caller" if one_caller else f"bench-caller-{index}" for index in range(calls)]
        return list(
            await asyncio.gather(*(one_call(channel, request, token, expected) for channel, token in zip(channels, tokens, strict=True)))
        )
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))


def coalesced(metrics: str | None) -> str:
    if metrics is None:
        return "-"
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("istio_remote_coalesced_requests_total "):
                return str(int(float(line.split()[1])))
    return "0"


async def measure(
    tree: Path | None, max_memory: str | None, calls: int, proxies: int, one_caller: bool, pair: tuple[Path, Path, bytes]
) -> Row:
    cert, key, ca = pair
    metrics = None if tree else f"127.0.0.1:{portpicker.pick_unused_port()}"
    flags = ["--tls-cert", str(cert), "--tls-key", str(key), "--listen", "127.0.0.1:0"]
    flags += ["--metrics-listen", metrics] if metrics else []
    flags += ["--max-memory", max_memory] if max_memory and not tree else []
    async with (
        stand_in_istiods(3, proxies, delay=ANSWER_SECONDS, concurrency=REPLICA_CONCURRENCY) as istiods,
        serve(istiods, *flags, plaintext=False, tree=tree) as (process, address),
    ):
        expected = await answer_length(address, ca)  # also has each replica build its answer once
        outcomes = await burst(address, ca, calls, one_caller, expected)
        peak = memory_kib(process.pid, "VmHWM") / 1024
        shared = coalesced(metrics)
    return Row(calls, 3 * proxies, "one" if one_caller else "a token each", outcomes, shared, peak)


async def answer_length(address: str, ca: bytes) -> int:
    """The length of a complete answer: every complete answer of the same mesh has it (the nonce is of fixed length)."""
    credentials = grpc.ssl_channel_credentials(root_certificates=ca)
    options = [("grpc.ssl_target_name_override", SERVER_NAME), ("grpc.max_receive_message_length", -1)]
    async with grpc.aio.secure_channel(address, credentials, options=options) as channel:
        stream = channel.stream_stream(ADS, request_serializer=DiscoveryRequest.SerializeToString, response_deserializer=bytes)
        call = stream(metadata=(("authorization", "Bearer bench-warm-up"),), timeout=CALL_SECONDS)
        await call.write(syncz_request("istio-system"))
        await call.done_writing()
        raw = await call.read()
        return len(raw)


def table(rows: list[Row], label: str, max_memory: str | None) -> str:
    lines = [
        f"#### {label}{f', --max-memory {max_memory}' if max_memory else ''}\n",
        "| calls at once | proxies | callers | complete | partial | shed | failed | coalesced | peak RSS | p50 | p99 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [str(row.calls), str(row.proxies), row.callers]
        cells += [str(row.count(kind)) for kind in ("complete", "partial", "shed", "failed")]
        cells += [row.coalesced, f"{row.peak_mib:.0f} MiB", f"{row.percentile(0.5):.2f} s", f"{row.percentile(0.99):.2f} s"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--tree", type=Path, help="run serve from this checkout instead of this one")
    parser.add_argument("--max-memory", help="serve's --max-memory (this tree only)")
    parser.add_argument("--label", default="this tree")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        pair = certificate(Path(directory))
        for proxies in PROXIES:
            for calls in CALLS:
                for one_caller in (True, False) if calls > 1 else (True,):
                    row = await measure(args.tree, args.max_memory, calls, proxies, one_caller, pair)
                    print(
                        f"{calls} calls, {row.proxies} proxies, {row.callers}: {row.count('complete')} complete",
                        file=sys.stderr,
                        flush=True,
                    )
                    rows.append(row)
    print(table(rows, args.label, args.max_memory))


if __name__ == "__main__":
    asyncio.run(main())
