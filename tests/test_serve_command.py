"""`kubectl-istio_remote serve` as a process: its stdout contract, its flags and its shutdown."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator

import grpc
import pytest

from kubectl_istio_remote.aggregator.client import Connection, ask, check_health
from kubectl_istio_remote.status import ExitStatus
from tests.cli_runner import run_cli
from tests.doubles.istiod import FakeIstiod
from tests.doubles.mesh import proxy_ids, syncz

SERVE = [sys.executable, "-m", "kubectl_istio_remote", "serve"]


@pytest.fixture
async def istiods() -> AsyncIterator[list[FakeIstiod]]:
    fakes = [FakeIstiod(f"istiod-{i}", [f"app-{i}.sample"], delay=1.5) for i in range(3)]
    for fake in fakes:
        await fake.start()
    yield fakes
    for fake in fakes:
        await fake.stop()


async def start_serve(*args: str, command: list[str] = SERVE, env: dict[str, str] | None = None) -> tuple[asyncio.subprocess.Process, str]:
    """`serve` (or another command that runs it) started, and the address from its one stdout line."""
    process = await asyncio.create_subprocess_exec(*command, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    assert line.startswith("listening on 127.0.0.1:"), line
    return process, line.split()[-1]


async def test_sigterm_lets_the_request_in_flight_finish_then_exits_zero(istiods) -> None:
    args = [arg for fake in istiods for arg in ("--istiod-address", fake.address)]
    process, address = await start_serve("--plaintext", "--istiod-plaintext", *args)
    try:
        request = asyncio.create_task(ask(Connection(address, tls=False), [syncz()]))
        await asyncio.sleep(0.5)  # the istiods take 1.5 s: the request is now in flight
        process.send_signal(signal.SIGTERM)
        replies = await asyncio.wait_for(request, 10)
        assert sorted(proxy_ids(replies)) == ["app-0.sample", "app-1.sample", "app-2.sample"]
        assert await asyncio.wait_for(process.wait(), 10) == 0
        assert (await process.stdout.read()) == b"", "stdout carries exactly one line"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_after_sigterm_new_calls_are_still_answered_while_health_says_not_serving(istiods) -> None:
    """A Service takes a moment to stop sending connections to a terminating pod: those calls are answered, not refused."""
    args = [arg for fake in istiods for arg in ("--istiod-address", fake.address)]
    process, address = await start_serve("--plaintext", "--istiod-plaintext", *args)
    try:
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert not await check_health(Connection(address, tls=False), timeout=3), "health checks see it going"
        replies = await asyncio.wait_for(ask(Connection(address, tls=False), [syncz()]), 10)
        assert sorted(proxy_ids(replies)) == ["app-0.sample", "app-1.sample", "app-2.sample"]
        process.send_signal(signal.SIGTERM)  # a second signal ends the drain at once
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_tls_is_the_default_towards_clients(istiods) -> None:
    args = [arg for fake in istiods for arg in ("--istiod-address", fake.address)]
    process, address = await start_serve("--istiod-plaintext", *args)
    try:
        with pytest.raises(grpc.aio.AioRpcError):
            await ask(Connection(address, tls=False), [syncz()], timeout=3)
        replies = await ask(Connection(address, tls=True), [syncz()])  # unverified, as istioctl and --native
        assert len(proxy_ids(replies)) == 3
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either --istiod-address or --discover"),
        (["--discover", "--istiod-address", "1.2.3.4:15012"], "give either --istiod-address or --discover"),
        (["--istiod-address", "nonsense"], "is not HOST:PORT"),
        (["--istiod-address", "127.0.0.1:1", "--tls-cert", "/nonexistent"], "--tls-cert and --tls-key go together"),
        (["--istiod-address", "127.0.0.1:1", "--tls-cert", "/nonexistent", "--tls-key", "/nonexistent"], "cannot read /nonexistent"),
    ],
)
def test_bad_flags_give_one_line_and_usage_exit_code(args: list[str], message: str) -> None:
    result = run_cli("serve", *args)
    assert result.exit_code == ExitStatus.USAGE
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
