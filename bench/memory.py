"""Peak RSS of `serve` under concurrent streams (tests/RELIABILITY.md's table), measured in one run.

Rounds of N syncz requests sent at once to `serve` over 3 stand-in replicas that hold each answer
2 s, so every fan-out of a round is in flight together (the worst moment for memory); later rounds
show whether memory keeps growing with the requests served. Growth is the peak over the ready
process divided by streams x merged answer. The fixed bound is asserted by
tests/test_aggregator_abuse.py with the replicas gated exactly; this is the figure.

Run: `python -m bench.memory`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bench.processes import memory_kib, serve, stand_in_istiods
from kubectl_istio_remote.aggregator.client import Connection, ask
from kubectl_istio_remote.aggregator.queries import syncz_request

ROUNDS = 5
HOLD_SECONDS = 2.0
CALL_SECONDS = 120.0
SYNCZ = syncz_request("istio-system")


@dataclass(frozen=True)
class Load:
    streams: int
    proxies: int
    payload_bytes: int
    complete: int
    ready_kib: int
    first_peak_kib: int
    peak_kib: int

    def growth(self, peak_kib: int) -> float:
        return (peak_kib - self.ready_kib) * 1024 / (self.streams * self.payload_bytes)


async def concurrent_streams(streams: int, proxies_each: int) -> Load:
    async with stand_in_istiods(3, proxies_each, delay=HOLD_SECONDS) as istiods, serve(istiods) as (process, address):
        connection = Connection(address, tls=False, token="bench")

        async def complete() -> bool:
            replies = await ask(connection, [SYNCZ], timeout=CALL_SECONDS)
            return len(replies.responses[0].resources) == 3 * proxies_each and not replies.failed

        async def round_of() -> int:
            return sum(await asyncio.gather(*(complete() for _ in range(streams))))

        payload = (await ask(connection, [SYNCZ], timeout=CALL_SECONDS)).responses[0].ByteSize()
        ready = memory_kib(process.pid, "VmRSS")
        answered = await round_of()
        first_peak = memory_kib(process.pid, "VmHWM")
        for _ in range(ROUNDS - 1):
            answered += await round_of()
        peak = memory_kib(process.pid, "VmHWM")
    return Load(streams, 3 * proxies_each, payload, answered, ready, first_peak, peak)


async def main() -> None:
    print(f"### `serve` peak RSS under concurrent streams ({ROUNDS} rounds per row, 3 replicas holding each answer {HOLD_SECONDS:.0f} s)\n")
    print(
        "| streams | proxies | merged syncz | complete answers | RSS ready | peak, round 1 | peak, last round | growth, round 1 | growth, last round |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for streams, proxies_each in ((1, 500), (50, 500), (200, 500), (200, 2000)):
        load = await concurrent_streams(streams, proxies_each)
        print(
            f"| {load.streams} | {load.proxies} | {load.payload_bytes / 1e6:.2f} MB | {load.complete}/{load.streams * ROUNDS}"
            f" | {load.ready_kib / 1024:.0f} MiB | {load.first_peak_kib / 1024:.0f} MiB | {load.peak_kib / 1024:.0f} MiB"
            f" | {load.growth(load.first_peak_kib):.2f} | {load.growth(load.peak_kib):.2f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
