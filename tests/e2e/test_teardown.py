"""Teardown as a user meets it: Ctrl-C, SIGTERM, SIGHUP, a killed laptop, and `cleanup` afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from kubernetes import client

from tests.e2e.conftest import Sandbox
from tests.e2e.test_plugin import CLUSTERS, leftovers
from tests.sandbox.clusters import api

READY_COMMAND = ["--", "sh", "-c", "echo ready; exec sleep 60"]
#: Prints "ready ADDRESS" (what istioctl is pointed at), then runs until the test closes its stdin, and exits 0.
UNTIL_STDIN_CLOSES = ["--", "sh", "-c", 'echo "ready $ISTIOCTL_XDS_ADDRESS"; exec cat >/dev/null']


def start_shell(sandbox: Sandbox, *flags: str, command: list[str] = READY_COMMAND) -> subprocess.Popen[str]:
    """`shell -- CMD` in its own process group, as a terminal runs a foreground job."""
    return subprocess.Popen(
        ["kubectl-istio_remote", "shell", *CLUSTERS, *flags, *command],
        env=sandbox.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@contextmanager
def shell_session(sandbox: Sandbox, *flags: str) -> Iterator[subprocess.Popen[str]]:
    """`shell -- CMD` running until the test closes its stdin; ended (SIGTERM, then SIGKILL) if the test fails first."""
    process = start_shell(sandbox, *flags, command=UNTIL_STDIN_CLOSES)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_ready(process: subprocess.Popen[str]) -> str:
    """The address the command was given, once the session is open; the command's errors if it never opened."""
    line = process.stdout.readline()
    if not line.startswith("ready "):
        process.wait(timeout=30)
        raise AssertionError(f"the session did not open: {line!r} {process.stderr.read()}")
    return line.split()[1]


def wait_for_line(stream, text: str, timeout: float = 60) -> str:
    """The first line of `stream` containing `text`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            raise AssertionError(f"stream ended before {text!r}")
        if text in line:
            return line
    raise AssertionError(f"no {text!r} within {timeout} s")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
@pytest.mark.parametrize("phase", ["waiting-for-pod", "command-running"])
def test_a_signal_at_any_phase_removes_everything_and_exits_128_plus_n(sandbox: Sandbox, signum: signal.Signals, phase: str) -> None:
    process = start_shell(sandbox)
    try:
        if phase == "waiting-for-pod":
            wait_for_line(process.stderr, "waiting for pod")
        else:
            wait_for_line(process.stdout, "ready")
        os.killpg(process.pid, signum)
        status = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert status == 128 + signum
    assert leftovers(sandbox) == []


def _pod_phase(sandbox: Sandbox, name: str) -> tuple[str, str]:
    with api("external") as api_client:
        pod = client.CoreV1Api(api_client).read_namespaced_pod(name, sandbox.istio_namespace)
    return pod.status.phase, pod.status.reason or ""


def test_a_killed_session_stops_at_its_ttl_and_cleanup_removes_it(sandbox: Sandbox) -> None:
    # Long enough to get ready on a loaded 2-core machine (serve starts in ~1 s), short enough to wait for.
    process = start_shell(sandbox, "--ttl", "5")
    wait_for_line(process.stdout, "ready")
    os.killpg(process.pid, signal.SIGKILL)  # the laptop dies: no teardown runs
    process.wait()
    left = leftovers(sandbox)
    assert len(left) == 4, left  # pod, service account, role, role binding
    pod = next(item.rsplit("/", 1)[1] for item in left if "/pod/" in item)

    deadline = time.monotonic() + 30
    while _pod_phase(sandbox, pod) != ("Failed", "DeadlineExceeded") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _pod_phase(sandbox, pod) == ("Failed", "DeadlineExceeded")  # nothing runs past --ttl

    warned = sandbox.run("kubectl-istio_remote", "proxy-status", *CLUSTERS, "--native")
    assert warned.returncode == 0, warned.stderr
    assert "warning: 4 expired object(s)" in warned.stderr and "cleanup" in warned.stderr, warned.stderr

    listed = sandbox.run("kubectl-istio_remote", "cleanup", *CLUSTERS, "--dry-run")
    assert listed.returncode == 0 and pod in listed.stdout, listed.stdout + listed.stderr
    assert len(leftovers(sandbox)) == 4  # a dry run removes nothing

    removed = sandbox.run("kubectl-istio_remote", "cleanup", *CLUSTERS)
    assert removed.returncode == 0, removed.stderr
    assert leftovers(sandbox) == []
