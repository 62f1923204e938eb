"""The CLI run in-process, as a user would run it, with its output captured (after httpie's test `http()`)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from kubectl_istio_remote.cli import main
from kubectl_istio_remote.console import Console


@dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> Result:
    """`kubectl istio-remote ARGS` in this process: environment and PATH as the test set them (monkeypatch)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(list(args), Console(stdout, stderr), argv0="kubectl-istio_remote")
    return Result(code, stdout.getvalue(), stderr.getvalue())
