"""Aggregator benchmarks (issue 3), measured in one run and printed as a Markdown table.

1. Fan-out: 5 istiods each answering syncz after 200 ms. `serve` vs a sequential client that
   asks each replica in turn (what istioctl's own fan-out and the 2022 sample do) vs one
   replica asked directly (the floor).
2. Volume: 5 istiods x 10 000 proxies. `serve` vs a pass-through relay that forwards the same
   number of bytes from one upstream without decoding them; and the aggregator's peak RSS
   growth vs the merged payload size.

Run: `python -m bench.aggregator` (the istiods are the stand-ins of tests/doubles, each its own process).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.processes import listening, memory_kib, serve, stand_in_istiods
from kubectl_istio_remote.aggregator.client import Connection, ask
from kubectl_istio_remote.aggregator.queries import syncz_request

ROUNDS = 7
RELAY = Path(__file__).with_name("passthrough_relay.py")


async def timed(call: Callable[[], Awaitable[object]], rounds: int = ROUNDS) -> float:
    """Median wall time in seconds over `rounds` calls, after one warm-up call."""
    await call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


#: The request istioctl's proxy-status sends (our native client's copy of it).
SYNCZ = syncz_request("istio-system")


async def sequential(istiods: list[str]) -> None:
    """Ask each replica in turn, like a fan-out loop without port-forwards."""
    for address in istiods:
        await ask(Connection(address, tls=False), [SYNCZ])


async def fan_out_rows() -> list[tuple[str, str, str]]:
    async with stand_in_istiods(5, 100, delay=0.2) as istiods, serve(istiods) as (_, address):
        through_serve = await timed(lambda: ask(Connection(address, tls=False), [SYNCZ]))
        one_replica = await timed(lambda: ask(Connection(istiods[0], tls=False), [SYNCZ]))
        in_turn = await timed(lambda: sequential(istiods))
    limit = 1.15 * one_replica + 0.050
    return [
        ("slowest single istiod (floor)", f"{one_replica * 1000:.0f} ms", ""),
        ("sequential, each istiod in turn", f"{in_turn * 1000:.0f} ms", ""),
        (
            "through `serve` (parallel)",
            f"{through_serve * 1000:.0f} ms",
            f"{through_serve / one_replica:.2f}x floor (target <= 1.15x + 50 ms = {limit * 1000:.0f} ms: "
            f"{'met' if through_serve <= limit else 'NOT met'})",
        ),
        (
            "speed-up vs sequential",
            f"{in_turn / through_serve:.1f}x",
            f"target >= 4x: {'met' if in_turn / through_serve >= 4 else 'NOT met'}",
        ),
    ]


async def volume_rows() -> list[tuple[str, str, str]]:
    proxies = 10_000
    whole_mesh = ["--name", "whole", "--groups", "0", "1", "2", "3", "4", "--proxies", str(proxies)]
    async with contextlib.AsyncExitStack() as stack:
        istiods = await stack.enter_async_context(stand_in_istiods(5, proxies))
        _, whole = await stack.enter_async_context(listening(sys.executable, "-m", "tests.doubles.istiod", *whole_mesh))
        server, serve_address = await stack.enter_async_context(serve(istiods))
        relay, relay_address = await stack.enter_async_context(listening(sys.executable, str(RELAY), whole))
        idle_rss, idle_relay_rss = memory_kib(server.pid, "VmHWM") * 1024, memory_kib(relay.pid, "VmHWM") * 1024
        reply = await ask(Connection(serve_address, tls=False), [SYNCZ])
        payload = reply.responses[0].ByteSize()
        through_serve = await timed(lambda: ask(Connection(serve_address, tls=False), [SYNCZ]))
        through_relay = await timed(lambda: ask(Connection(relay_address, tls=False), [SYNCZ]))
        rss_growth = memory_kib(server.pid, "VmHWM") * 1024 - idle_rss
        relay_rss_growth = memory_kib(relay.pid, "VmHWM") * 1024 - idle_relay_rss
    ratio = through_serve / through_relay
    return [
        ("merged syncz payload (5 x 10 000 proxies)", f"{payload / 1e6:.1f} MB", ""),
        ("pass-through relay of the same bytes", f"{through_relay * 1000:.0f} ms", ""),
        (
            "through `serve` (decode, merge, encode)",
            f"{through_serve * 1000:.0f} ms",
            f"{ratio:.2f}x relay (target <= 1.5x: {'met' if ratio <= 1.5 else 'NOT met'})",
        ),
        (
            "`serve` peak RSS growth over 8 requests",
            f"{rss_growth / 1e6:.1f} MB",
            f"{rss_growth / payload:.2f}x payload (target <= 3x: {'met' if rss_growth <= 3 * payload else 'NOT met'})",
        ),
        (
            "pass-through relay peak RSS growth (reference)",
            f"{relay_rss_growth / 1e6:.1f} MB",
            f"{relay_rss_growth / payload:.2f}x payload",
        ),
    ]


def table(title: str, rows: list[tuple[str, str, str]]) -> str:
    lines = [f"### {title}", "", "| measure | value | against target |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {note} |" for name, value, note in rows]
    return "\n".join(lines)


async def main() -> None:
    print(table("Fan-out: 5 istiods, each answering syncz after 200 ms (median of 7)", await fan_out_rows()))
    print()
    print(table("Volume: 5 istiods x 10 000 proxies of syncz (median of 7)", await volume_rows()))


if __name__ == "__main__":
    asyncio.run(main())
