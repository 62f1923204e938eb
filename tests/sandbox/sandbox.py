"""Bring the whole sandbox up or down; `up` is idempotent (a running sandbox of the same shape is kept)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from tests.sandbox import build, clusters, mesh, procs
from tests.sandbox.paths import STATE, log

SHAPE = STATE / "shape.json"
REPOSITORY = Path(__file__).resolve().parents[2]


def is_running(istiods: int, proxies: int) -> bool:
    return _running({"istiods": istiods, "proxies": proxies})


def _running(shape: dict) -> bool:
    try:
        recorded = json.loads(SHAPE.read_text())
    except FileNotFoundError:
        return False
    names = recorded.get("processes", [])
    return recorded.get("shape") == shape and bool(names) and all(procs.is_running(name) for name in names)


def up(istiods: int, proxies: int) -> None:
    shape = {"istiods": istiods, "proxies": proxies}
    if _running(shape):
        log("sandbox already running")
        return
    down()
    build.build_all()
    clusters.up()
    procs.start("pod-runner", [sys.executable, "-m", "tests.sandbox.podrunner"], cwd=REPOSITORY)
    mesh.up(istiods, proxies)
    names = sorted(path.stem for path in procs.PIDS.glob("*.pid"))
    SHAPE.write_text(json.dumps({"shape": shape, "processes": names}))


def down() -> None:
    stopped = procs.stop_all()
    if stopped:
        log(f"stopped {len(stopped)} processes")
    shutil.rmtree(STATE, ignore_errors=True)
