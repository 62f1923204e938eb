"""The external API server restarting under a pod-mode session (issue 6).

The session's command runs until the test closes its stdin, so the API server is down exactly
when teardown starts. Back within --timeout: teardown waited for it and nothing is left. Back
only after the command ended: one error line names what is left and the exact `cleanup` command,
which then removes it. Every test starts the API server again and checks the sandbox survived.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from kubectl_istio_remote.status import ExitStatus
from tests.e2e.conftest import ISTIODS, PROXIES, Sandbox
from tests.e2e.test_plugin import leftovers
from tests.e2e.test_teardown import shell_session, wait_for_line, wait_ready
from tests.sandbox import clusters, procs
from tests.sandbox import sandbox as sandbox_control

RETRYING = "retrying to remove"


@contextmanager
def external_api_server_restored() -> Iterator[None]:
    """Whatever the test stopped, the external API server runs again at the end, and so does the rest of the sandbox."""
    try:
        yield
    finally:
        if not procs.is_running("external-apiserver"):
            clusters.start_apiserver("external")
    assert sandbox_control.is_running(ISTIODS, PROXIES), "a sandbox process did not survive the API server restart"


@contextmanager
def scheduler_paused() -> Iterator[None]:
    """New pods stay Pending, so a session is certainly still waiting for its pod (start_apiserver resumes it too)."""
    os.killpg(procs.recorded_pid("external-scheduler"), signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(procs.recorded_pid("external-scheduler"), signal.SIGCONT)


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    """The exit code and the rest of stderr."""
    return process.wait(timeout=120), process.stderr.read()


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("ending", ["timeout-spent", "ctrl-c"])
def test_api_server_back_after_the_command_names_what_is_left_and_cleanup_removes_it(sandbox: Sandbox, ending: str) -> None:
    # --timeout is also teardown's budget; this test runs first so that the sandbox's own watchers,
    # whose client-go backoff grows with each restart, place the pod well within 15 s.
    timeout = ["--timeout", "15"] if ending == "timeout-spent" else []
    with external_api_server_restored(), shell_session(sandbox, *timeout) as process:
        wait_ready(process)
        clusters.stop_apiserver("external")
        process.stdin.close()
        wait_for_line(process.stderr, RETRYING)
        if ending == "ctrl-c":
            os.killpg(process.pid, signal.SIGINT)  # stops the wait at once
        status, stderr = finish(process)
    assert status == (ExitStatus.UNAVAILABLE if ending == "timeout-spent" else 128 + signal.SIGINT), stderr
    [error] = errors(stderr)
    assert "the API server of context external" in error and "did not answer" in error, error
    assert all(f"{kind}/istio-remote-" in error for kind in ("Pod", "RoleBinding", "Role", "ServiceAccount")), error
    command = re.search(r"`(kubectl istio-remote cleanup [^`]*)`", error)
    assert command, error
    assert len(leftovers(sandbox)) == 4

    cleanup = sandbox.run(*shlex.split(command.group(1)))
    assert cleanup.returncode == 0, cleanup.stderr
    assert "deleted Pod/istio-remote-" in cleanup.stdout, cleanup.stdout  # the rest may go with it (owner references)
    assert leftovers(sandbox) == []


def test_api_server_back_while_teardown_waits_leaves_nothing(sandbox: Sandbox) -> None:
    with external_api_server_restored(), shell_session(sandbox) as process:
        wait_ready(process)
        clusters.stop_apiserver("external")
        process.stdin.close()  # the command ends while the API server is away
        notice = wait_for_line(process.stderr, RETRYING)
        clusters.start_apiserver("external")
        status, stderr = finish(process)
    assert "the API server of context external" in notice and "Ctrl-C stops waiting" in notice, notice
    assert status == 0, stderr  # the command's own exit code: in the end nothing went wrong
    assert errors(stderr) == [] and "cleanup" not in stderr, stderr
    assert leftovers(sandbox) == []


def test_api_server_gone_while_waiting_for_the_pod_is_one_clear_error_and_leaves_nothing(sandbox: Sandbox) -> None:
    with external_api_server_restored(), scheduler_paused(), shell_session(sandbox) as process:
        wait_for_line(process.stderr, "waiting for pod")
        clusters.stop_apiserver("external")
        wait_for_line(process.stderr, RETRYING)
        clusters.start_apiserver("external")
        status, stderr = finish(process)
    assert status == ExitStatus.UNAVAILABLE, stderr
    assert len(errors(stderr)) == 1 and "cannot reach the API server of context external" in errors(stderr)[0], stderr
    assert leftovers(sandbox) == []
