"""The processes the benchmarks measure and feed: `serve`, the stand-in istiods, the pass-through relay.

Each prints one `listening on HOST:PORT` line when ready and stops on SIGTERM; the benchmarks
drive the stand-ins (tests/doubles) and the sandbox (tests/sandbox) as programs, never importing tests/.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

READY_SECONDS = 60
STOP_SECONDS = 15


@contextlib.asynccontextmanager
async def listening(
    *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """Start `argv`, yield it with the address of its `listening on` line, stop it (SIGTERM, then kill) afterwards."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, env=env, cwd=cwd
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), READY_SECONDS)).decode().split()
        if line[:2] != ["listening", "on"]:
            raise SystemExit(f"{' '.join(argv)} did not start: {line}")
        yield process, line[-1]
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.sleep(0.2)
            if process.returncode is None:
                process.terminate()  # a second signal: serve stops at once instead of draining
        try:
            await asyncio.wait_for(process.wait(), STOP_SECONDS)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def stand_in_istiods(count: int, proxies: int, delay: float = 0.0, concurrency: int | None = None) -> AsyncIterator[list[str]]:
    """`count` stand-in replicas (tests/doubles/istiod.py) of `proxies` proxies each, answering `concurrency` at a time
    (None: any number); yields their addresses."""
    async with contextlib.AsyncExitStack() as stack:
        addresses = []
        for index in range(count):
            argv = ["--name", f"istiod-{index}", "--groups", str(index), "--proxies", str(proxies), "--delay", str(delay)]
            argv += ["--concurrency", str(concurrency)] if concurrency else []
            _, address = await stack.enter_async_context(listening(sys.executable, "-m", "tests.doubles.istiod", *argv))
            addresses.append(address)
        yield addresses


def serve(
    istiods: Sequence[str], *flags: str, plaintext: bool = True, tree: Path | None = None
) -> contextlib.AbstractAsyncContextManager[tuple[asyncio.subprocess.Process, str]]:
    """The real `serve` command over `istiods` (plaintext to them), plaintext towards clients unless told;
    `tree` runs it from another checkout (its directory first on the path, as `python -m` puts the working directory)."""
    addresses = [arg for address in istiods for arg in ("--istiod-address", address)]
    towards = ["--plaintext"] if plaintext else []
    argv = [sys.executable, "-m", "kubectl_istio_remote", "serve", *towards, "--istiod-plaintext", *addresses, *flags]
    return listening(*argv, env={**os.environ, "PYTHONPATH": str(tree)} if tree else None, cwd=tree)


def memory_kib(pid: int, field: str) -> int:
    """A /proc/<pid>/status figure: VmRSS (now) or VmHWM (peak resident set since start)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)
