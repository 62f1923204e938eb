"""End-to-end tests run against the real sandbox, brought up once per pytest session.

A component that cannot be built or started fails every test here with the reason; nothing is
skipped. Set SANDBOX_KEEP=1 to leave the sandbox running after the session (for debugging).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.sandbox import mesh
from tests.sandbox import sandbox as sandbox_control
from tests.sandbox.mesh import ISTIO_NAMESPACE, Sidecar, istiod_addresses

ISTIODS = 3
PROXIES = 6


@dataclass(frozen=True)
class Sandbox:
    env: dict[str, str]
    istiods: list[str]  # pod IPs of the istiod replicas, in pod-name order
    sidecars: list[Sidecar]  # of both mesh clusters
    istio_namespace: str = ISTIO_NAMESPACE

    @property
    def proxies(self) -> list[str]:
        """ "pod.namespace" of every sidecar, of both mesh clusters."""
        return [sidecar.name for sidecar in self.sidecars]

    def run(self, *argv: str, extra_env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a command as a user of the sandbox would, with its KUBECONFIG and PATH."""
        return subprocess.run(
            argv,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def proxies_of(self, replica: int) -> list[str]:
        """The sidecars the sandbox connected to one replica."""
        return [sidecar.name for sidecar in self.sidecars if sidecar.replica == replica]

    def proxies_in(self, cluster: str) -> list[str]:
        return [sidecar.name for sidecar in self.sidecars if sidecar.cluster.name == cluster]


def connect() -> Sandbox:
    """The running sandbox, as seen by a user who ran `eval "$(python -m tests.sandbox env)"`."""
    return Sandbox(sandbox_control.process_environment(), istiod_addresses(), mesh.sidecars(PROXIES, ISTIODS))


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """The sandbox for the whole run; stopped afterwards, and also when it fails to come up."""
    try:
        sandbox_control.up(ISTIODS, PROXIES)
        yield connect()
    finally:
        if not os.environ.get("SANDBOX_KEEP"):
            sandbox_control.down()
