"""Fixtures shared by the fast test modules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest

from kubectl_istio_remote.aggregator.server import Settings
from tests.doubles.istiod import FakeIstiod
from tests.fake_mesh import Mesh, free_dead_address


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
