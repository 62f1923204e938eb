"""Aggregator benchmarks (issue 3), measured in one run and printed as a Markdown table.

1. Fan-out: 5 istiods each answering syncz after 200 ms. `serve` vs a sequential client that
   asks each replica in turn (what istioctl's own fan-out and the 2022 sample do) vs one
   replica asked directly (the floor).
2. Volume: 5 istiods x 10 000 proxies. `serve` vs a pass-through relay that forwards the same
   number of bytes from one upstream without decoding them; and the aggregator's peak RSS
   growth vs the merged payload size.

Run: `python -m bench.aggregator` (the istiods are the in-process stand-ins of tests/doubles).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from kubectl_istio_remote.aggregator.client import Connection, ask
from tests.doubles.istiod import FakeIstiod
from tests.doubles.mesh import syncz

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


async def start_process(*argv: str) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().split()
    return process, line[-1]


async def stop_process(process: asyncio.subprocess.Process) -> None:
    process.terminate()
    await asyncio.wait_for(process.wait(), 15)


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


async def serve_process(istiods: list[FakeIstiod]) -> tuple[asyncio.subprocess.Process, str]:
    addresses = [arg for istiod in istiods for arg in ("--istiod-address", istiod.address)]
    return await start_process(sys.executable, "-m", "kubectl_istio_remote", "serve", "--plaintext", "--istiod-plaintext", *addresses)


async def sequential(istiods: list[FakeIstiod]) -> None:
    """Ask each replica in turn over one kept channel, like a fan-out loop without port-forwards."""
    for istiod in istiods:
        await ask(Connection(istiod.address, tls=False), [syncz()])


async def fan_out_rows() -> list[tuple[str, str, str]]:
    istiods = [FakeIstiod(f"istiod-{i}", [f"app-{i}-{p}.sample" for p in range(100)], delay=0.2) for i in range(5)]
    for istiod in istiods:
        await istiod.start()
    process, address = await serve_process(istiods)
    try:
        through_serve = await timed(lambda: ask(Connection(address, tls=False), [syncz()]))
        one_replica = await timed(lambda: ask(Connection(istiods[0].address, tls=False), [syncz()]))
        in_turn = await timed(lambda: sequential(istiods))
    finally:
        await stop_process(process)
        for istiod in istiods:
            await istiod.stop()
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
    istiods = [FakeIstiod(f"istiod-{i}", [f"app-{i}-{p}.sample" for p in range(proxies)]) for i in range(5)]
    whole = FakeIstiod("whole", [f"app-{i}-{p}.sample" for i in range(5) for p in range(proxies)])
    for istiod in [*istiods, whole]:
        await istiod.start()
    serve, serve_address = await serve_process(istiods)
    relay, relay_address = await start_process(sys.executable, str(RELAY), whole.address)
    try:
        idle_rss, idle_relay_rss = peak_rss_bytes(serve.pid), peak_rss_bytes(relay.pid)
        reply = await ask(Connection(serve_address, tls=False), [syncz()])
        payload = reply.responses[0].ByteSize()
        through_serve = await timed(lambda: ask(Connection(serve_address, tls=False), [syncz()]))
        through_relay = await timed(lambda: ask(Connection(relay_address, tls=False), [syncz()]))
        rss_growth = peak_rss_bytes(serve.pid) - idle_rss
        relay_rss_growth = peak_rss_bytes(relay.pid) - idle_relay_rss
    finally:
        for process in (serve, relay):
            await stop_process(process)
        for istiod in [*istiods, whole]:
            await istiod.stop()
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
