"""Fixtures shared by the test modules."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from kubectl_istio_remote.aggregator.serving import Settings
from tests.doubles.istiod import FakeIstiod
from tests.doubles.mesh import Mesh, free_dead_address


@pytest.fixture
async def mesh_factory() -> AsyncIterator[Callable[..., Awaitable[Mesh]]]:
    """Starts meshes (plaintext towards istiod unless told) and stops every one of them after the test."""
    started: list[Mesh] = []

    async def make(istiods: Sequence[FakeIstiod], dead: int = 0, **settings) -> Mesh:
        settings.setdefault("istiod_plaintext", True)
        mesh = Mesh(istiods, Settings(**settings), [free_dead_address() for _ in range(dead)])
        started.append(mesh)
        await mesh.start()
        return mesh

    yield make
    for mesh in started:
        await mesh.stop()


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This platform's krew archive, which is also the image's content, frozen once per run from the working tree."""
    out = tmp_path_factory.mktemp("dist")
    work = tmp_path_factory.mktemp("pyinstaller")
    script = Path(__file__).resolve().parents[1] / "plugin-manifest" / "build_archive.py"
    result = subprocess.run(
        [sys.executable, str(script), "--out", str(out), "--work", str(work)], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(result.stdout.strip().splitlines()[-1])
