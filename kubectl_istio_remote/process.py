"""Running a child program (istioctl, the user's shell) in the foreground, with signals handled like a shell does."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time

from kubectl_istio_remote.signals import HANDLED

KILL_AFTER_SECONDS = 5.0


def run_foreground(argv: list[str], env: dict[str, str]) -> int:
    """Run `argv` with our stdio and return its exit status (128+N if a signal N ended it).

    Ctrl-C reaches the child from the terminal; we pass on any signal sent to us alone, and wait
    for the child to finish rather than dying first, so the caller's teardown always runs after it.
    A child that ignores SIGTERM or SIGHUP is killed after 5 s.
    """
    try:
        child = subprocess.Popen(argv, env=env)
    except OSError as error:
        from kubectl_istio_remote.errors import UserError

        raise UserError(f"cannot run {argv[0]}: {error.strerror}", "check the program's path") from None
    kill_at: list[float] = []

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)
        if signum != signal.SIGINT and not kill_at:
            kill_at.append(time.monotonic() + KILL_AFTER_SECONDS)

    previous = {signum: signal.signal(signum, forward) for signum in HANDLED}
    try:
        while True:
            try:
                code = child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if kill_at and time.monotonic() > kill_at[0]:
                    child.kill()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code
