"""Timing whole commands, shared by the end-to-end and start-up benchmarks."""

from __future__ import annotations

import compileall
import subprocess
import time
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "kubectl_istio_remote"


def as_installed() -> None:
    """Bytecode for the package, as pip and pipx write it at install: an editable checkout run with
    PYTHONDONTWRITEBYTECODE (as this machine's shells are) would compile every module on every start."""
    compileall.compile_dir(str(PACKAGE), quiet=1)


def run_samples(argv: list[str], env: dict[str, str] | None = None, rounds: int = 7) -> list[float]:
    """Wall times in seconds of `rounds` runs after one warm-up; every run must succeed."""
    samples = []
    for round_index in range(rounds + 1):
        started = time.perf_counter()
        result = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.strip()}")
        if round_index:
            samples.append(elapsed)
    return samples
