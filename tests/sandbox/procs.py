"""Background processes of the sandbox, tracked by pid files so `down` can stop what `up` started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tests.sandbox.paths import STATE

PIDS = STATE / "pids"
LOGS = STATE / "logs"


class SandboxError(RuntimeError):
    """The sandbox could not start; the message says which part and where its log is."""


def log_path(name: str) -> Path:
    return LOGS / f"{name}.log"


def is_running(name: str) -> bool:
    pid = recorded_pid(name)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def recorded_pid(name: str) -> int | None:
    """The pid recorded for a sandbox process, or None."""
    try:
        return int((PIDS / f"{name}.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None


def start(name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start a detached process (own session, so it survives `up` and dies with `down`)."""
    if is_running(name):
        return recorded_pid(name) or 0
    PIDS.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    with log_path(name).open("ab") as out:
        process = subprocess.Popen(
            list(map(str, argv)),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    (PIDS / f"{name}.pid").write_text(str(process.pid))
    return process.pid


def stop(name: str, grace: float = 5.0) -> None:
    pid = recorded_pid(name)
    (PIDS / f"{name}.pid").unlink(missing_ok=True)
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        _reap(pid)
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_all(prefix: str = "") -> list[str]:
    if not PIDS.exists():
        return []
    # Stop in reverse start order so dependants go before what they depend on.
    files = sorted(PIDS.glob(f"{prefix}*.pid"), key=lambda p: p.stat().st_mtime, reverse=True)
    names = [path.stem for path in files]
    for name in names:
        stop(name)
    return names


def wait_until(what: str, ready: Callable[[], bool], timeout: float, *, process: str | None = None) -> None:
    """Poll `ready` until it holds; fail with the process's log tail when it dies or time runs out.

    A timeout also names every sandbox process that is no longer running, with its log's tail:
    the component that died (a controller manager, say) is usually why the wait failed.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if process is not None and not is_running(process):
            raise SandboxError(f"{process} exited while waiting for {what}:\n{tail(process)}")
        time.sleep(0.2)
    dead = [path.stem for path in sorted(PIDS.glob("*.pid")) if not is_running(path.stem)]
    details = [f"{process}:\n{tail(process)}"] if process else []
    details += [f"{name} is not running:\n{tail(name)}" for name in dead if name != process]
    raise SandboxError(f"timed out after {timeout:.0f} s waiting for {what}" + "".join(f"\n{detail}" for detail in details))


def tail(name: str, lines: int = 25) -> str:
    try:
        return "\n".join(log_path(name).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
