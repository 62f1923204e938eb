"""How long `kubectl istio-remote --help` takes (issue 5, target <= 0.3 s), printed as a Markdown table.

Measured for the pip/pipx console script and, when `dist/` holds this platform's krew archive
(`python plugin-manifest/build_archive.py`), for the frozen executable krew installs; with
`python -c pass` beside them, the floor any Python program pays. Timing a completion request too
(`__complete proxy-status ""`), which runs on every Tab press.

Run: `python -m bench.startup`.
"""

from __future__ import annotations

import statistics
import sys
import tarfile
import tempfile
from pathlib import Path

ROUNDS = 21
TARGET_SECONDS = 0.3
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugin-manifest"))
from build_archive import archive_name, host_platform  # noqa: E402 - plugin-manifest is a script directory

from bench.timing import as_installed, run_samples  # noqa: E402


def timed(argv: list[str]) -> tuple[float, float]:
    """(median, slowest) wall time in seconds over ROUNDS runs after one warm-up."""
    samples = run_samples(argv, rounds=ROUNDS)
    return statistics.median(samples), max(samples)


def main() -> None:
    as_installed()
    console_script = str(Path(sys.executable).parent / "kubectl-istio_remote")
    rows = [
        ("`python -c pass` (floor)", [sys.executable, "-c", "pass"]),
        ("console script `--help` (pipx)", [console_script, "--help"]),
        ("console script, one Tab press", [console_script, "__complete", "proxy-status", ""]),
    ]
    archive = ROOT / "dist" / archive_name(*host_platform())
    with tempfile.TemporaryDirectory() as unpacked:
        if archive.exists():
            with tarfile.open(archive) as tar:
                tar.extractall(unpacked, filter="tar")
            frozen = str(Path(unpacked) / "kubectl-istio_remote")
            rows += [
                ("frozen krew archive `--help`", [frozen, "--help"]),
                ("frozen, one Tab press", [frozen, "__complete", "proxy-status", ""]),
            ]
        print(f"### `--help` start-up (median and slowest of {ROUNDS}, after one warm-up)\n")
        print("| command | median | slowest | target <= 0.3 s |")
        print("|---|---|---|---|")
        for label, argv in rows:
            median, slowest = timed(argv)
            verdict = ("met" if median <= TARGET_SECONDS else "NOT met") if "--help" in label else ""
            print(f"| {label} | {median * 1000:.0f} ms | {slowest * 1000:.0f} ms | {verdict} |")
    if not archive.exists():
        print(f"\n(no {archive.relative_to(ROOT)}: build it with plugin-manifest/build_archive.py to time the frozen plugin)")


if __name__ == "__main__":
    main()
