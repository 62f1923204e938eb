"""A mesh user's native command starts on what the last run learnt: the shared aggregator's TLS connection and istioctl's
token are on their way while the mesh cluster is asked for its advertisement, instead of after it answers.

The remembered advertisement is a guess, never trusted: the warm connection carries nothing (no token, no request)
unless the advertisement the API server gives now is the same (address, CA, server name, namespace); otherwise it is
dropped and the run goes on as it would without it, remembering the new one. The connection is verified against the
remembered CA for the remembered name, the same checks the fresh advertisement would ask for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from kubectl_istio_remote import machine
from kubectl_istio_remote.aggregator.loop import LoopThread
from kubectl_istio_remote.deploy.advertisement import Advertisement
from kubectl_istio_remote.kube.cluster import Cluster
from kubectl_istio_remote.relay import Relay, TcpDialer, verified_tls
from kubectl_istio_remote.session.token import istioctl_token_soon

if TYPE_CHECKING:
    from kubectl_istio_remote.aggregator.client import Connection

CACHE_NAME = "shared-aggregators.json"
CACHE_ENTRIES = 32
START_SECONDS = 5.0
CLOSE_SECONDS = 2.0
#: What must be the same for the warm connection to be used.
COMPARED = ("namespace", "address", "ca_pem", "server_name", "cluster_id")


class WarmStart:
    """A TLS connection to the remembered aggregator, dialled at once through a local relay, and istioctl's token asked at once."""

    def __init__(self, remembered: Advertisement, mesh: Cluster) -> None:
        self.remembered = remembered
        self._io = LoopThread()
        self._relay = Relay(remembered.target, TcpDialer(), verified_tls(remembered.ca_pem))
        self._address = self._io.run(self._relay.start(dial_ahead=True), START_SECONDS)
        self.token: Callable[[], str] = istioctl_token_soon(mesh, remembered.namespace)

    def fits(self, fresh: Advertisement) -> bool:
        return all(getattr(fresh, name) == getattr(self.remembered, name) for name in COMPARED)

    def connection(self) -> Connection:
        """The aggregator through the relay: plaintext on 127.0.0.1, verified TLS beyond it."""
        from kubectl_istio_remote.aggregator.client import Connection

        return Connection(self._address, tls=False)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._io.run(self._relay.close(), CLOSE_SECONDS)


def begin(mesh: Cluster, places: list[str]) -> WarmStart | None:
    """Start on what was remembered for this mesh cluster, if anything."""
    remembered = recall(mesh, places)
    try:
        return None if remembered is None else WarmStart(remembered, mesh)
    except (OSError, ValueError, TimeoutError):
        return None  # a bad remembered address: the fresh advertisement is read anyway


def settle(started: WarmStart | None, mesh: Cluster, places: list[str], fresh: Advertisement | None) -> WarmStart | None:
    """The warm start if the advertisement read now is the one it started on; remember what was read for the next run."""
    if started is not None and fresh is not None and started.fits(fresh):
        return started
    if started is not None:
        started.close()
    remember(mesh, places, fresh)
    return None


def recall(mesh: Cluster, places: list[str]) -> Advertisement | None:
    """The advertisement this mesh cluster gave last time, asked in these namespaces; None when there is none."""
    entry = machine.recalled(CACHE_NAME).get(_key(mesh, places))
    if not isinstance(entry, dict):
        return None
    try:
        return Advertisement(**{field.name: str(entry[field.name]) for field in dataclasses.fields(Advertisement)})
    except (KeyError, TypeError):
        return None


def remember(mesh: Cluster, places: list[str], found: Advertisement | None) -> None:
    """Keep `found` for the next run (None forgets); the file is written only when that changes it."""
    entries = machine.recalled(CACHE_NAME)
    key, kept = _key(mesh, places), None if found is None else dataclasses.asdict(found)
    if entries.get(key) == kept:
        return
    entries.pop(key, None)
    if kept is not None:
        entries[key] = kept
    machine.keep(CACHE_NAME, entries, CACHE_ENTRIES)


def _key(mesh: Cluster, places: list[str]) -> str:
    return hashlib.sha256(f"{mesh.host}\n{','.join(places)}".encode()).hexdigest()
