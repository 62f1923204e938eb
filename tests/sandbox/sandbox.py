"""Bring the whole sandbox up or down; `up` is idempotent (a running sandbox of the same shape is kept)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from tests.sandbox import build, clusters, mesh, procs
from tests.sandbox.paths import STATE, log

SHAPE = STATE / "shape.json"
REPOSITORY = Path(__file__).resolve().parents[2]


def is_running(istiods: int, proxies: int) -> bool:
    """A sandbox of this shape is up, every process it started still alive."""
    shape = {"istiods": istiods, "proxies": proxies}
    try:
        recorded = json.loads(SHAPE.read_text())
    except FileNotFoundError:
        return False
    names = recorded.get("processes", [])
    return recorded.get("shape") == shape and bool(names) and all(procs.is_running(name) for name in names)


def up(istiods: int, proxies: int) -> None:
    if is_running(istiods, proxies):
        log("sandbox already running")
        return
    down()
    build.build_all()
    clusters.up()
    _registry()
    procs.start("pod-runner", [sys.executable, "-m", "tests.sandbox.podrunner"], cwd=REPOSITORY)
    mesh.up(istiods, proxies)
    names = sorted(path.stem for path in procs.PIDS.glob("*.pid"))
    SHAPE.write_text(json.dumps({"shape": {"istiods": istiods, "proxies": proxies}, "processes": names}))


def _registry() -> None:
    """The registry serving the built image on a free port, and pulls of ghcr.io/kubectl-istio-remote going to it."""
    import portpicker

    from tests.sandbox import image

    address = f"127.0.0.1:{portpicker.pick_unused_port()}"
    procs.start("registry", ["docker-registry", "serve", str(image.registry_config(address))])
    host, _, port = address.rpartition(":")
    procs.wait_until("registry", lambda: procs.port_open(host, int(port)), 30, process="registry")
    image.mirror(address)


def down() -> None:
    from tests.sandbox import containers

    left = containers.remove_all() if shutil.which("podman") else []
    if left:
        log(f"removed {len(left)} containers a stopped pod runner left: {', '.join(left)}")
    stopped = procs.stop_all()
    if stopped:
        log(f"stopped {len(stopped)} processes")
    shutil.rmtree(STATE, ignore_errors=True)


def _bin_dir() -> Path:
    """A directory of symlinks putting istioctl, kubectl, krew and the plugin on PATH."""
    directory = STATE / "bin"
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("istioctl", "kubectl", "kubectl-krew", "validate-krew-manifest"):
        link = directory / name
        link.unlink(missing_ok=True)
        link.symlink_to(build.binary(name))
    plugin = shutil.which("kubectl-istio_remote", path=str(Path(sys.executable).parent))
    if plugin:
        link = directory / "kubectl-istio_remote"
        link.unlink(missing_ok=True)
        link.symlink_to(plugin)
    return directory


def exports() -> dict[str, str]:
    """KUBECONFIG, and the directories to put before PATH (istioctl, kubectl, krew, the plugin)."""
    return {"KUBECONFIG": str(clusters.KUBECONFIG), "PATH": f"{_bin_dir()}:{Path(sys.executable).parent}"}


def process_environment() -> dict[str, str]:
    """This process's environment as a sandbox user's shell would have it after `env`; a plugin that crashes in C code
    prints every thread's Python stack (PYTHONFAULTHANDLER), which a bare `double free` line does not say."""
    values = exports()
    return {
        **os.environ,
        "KUBECONFIG": values["KUBECONFIG"],
        "PATH": f"{values['PATH']}:{os.environ['PATH']}",
        "PYTHONFAULTHANDLER": "1",
    }
