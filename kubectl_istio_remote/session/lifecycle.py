"""Opening a session and its guaranteed, bounded, signal-safe teardown."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from kubectl_istio_remote.aggregator.loop import LoopThread
from kubectl_istio_remote.console import Console
from kubectl_istio_remote.errors import UserError
from kubectl_istio_remote.session.modes import SessionMode
from kubectl_istio_remote.session.preflight import Preflight, check_before_creating
from kubectl_istio_remote.session.settings import Mode, SessionSettings
from kubectl_istio_remote.signals import Interrupted, arrived, signals_deferred
from kubectl_istio_remote.startup import settle_start_up

if TYPE_CHECKING:
    from kubectl_istio_remote.aggregator.client import Connection
    from kubectl_istio_remote.istioctl import Istioctl


def make_mode(
    settings: SessionSettings, io: LoopThread, console: Console, preflight: Preflight, *, checked: bool = True, relayed: bool = False
) -> SessionMode:
    """`checked`: the shared aggregator's health is checked before the session is handed out (a shell's user hears at
    once); otherwise the first call is the check, explained if it fails. `relayed`: istioctl will call it, through a
    relay on 127.0.0.1 that verifies the aggregator's certificate (istioctl would not), and names the mesh cluster."""
    if settings.shared is not None:
        from kubectl_istio_remote.session.shared_mode import SharedMode

        return SharedMode(settings.shared, io, checked=checked, warm=settings.warm_start, relayed=relayed, cluster_id=settings.cluster_id)
    if settings.mode is Mode.local:
        from kubectl_istio_remote.session.local_mode import LocalMode

        assert preflight.istiods is not None
        return LocalMode(settings, io, console, preflight.istiods)
    from kubectl_istio_remote.session.pod_mode import ProxyPodMode

    return ProxyPodMode(settings, io, preflight.user, console)


@contextlib.contextmanager
def open_session(
    settings: SessionSettings, console: Console, *, istioctl: Istioctl | None, check_first: bool | None = None
) -> Iterator[Connection]:
    """Yield how to reach an aggregator that reaches every istiod; remove everything on the way out.

    Nothing is created before every right is known (`preflight`). Teardown runs whatever happened (error,
    Ctrl-C, SIGTERM, SIGHUP) and is bounded: while the API server does not answer it retries for
    up to --timeout, since a restarting API server is back within seconds. A signal arriving during
    teardown ends only that wait, and is honoured after it. If objects are left, the error names
    them and the cleanup command; it keeps the exit code unless another error or a signal is on its
    way out, which then keeps it.
    """
    deadline = time.monotonic() + settings.timeout
    preflight = check_before_creating(settings, console, istioctl)
    settings = dataclasses.replace(settings, cluster_id=preflight.cluster_id)
    io = LoopThread()
    in_flight: BaseException | None = None
    checked = istioctl is not None if check_first is None else check_first
    session = make_mode(settings, io, console, preflight, checked=checked, relayed=istioctl is not None)
    try:
        # Sent by the native commands themselves: a shared aggregator serves users of every mesh cluster.
        connection = dataclasses.replace(session.open(deadline), cluster_id=settings.cluster_id)
        console.detail(f"aggregator reachable at {connection.address}")
        settle_start_up()  # everything is loaded: what runs from here (a shell for hours) is collected as usual
        yield connection
    except BaseException as error:
        arrived(error)
        in_flight = error
        raise
    finally:
        with signals_deferred() as received:
            try:
                for item in session.close(time.monotonic() + settings.timeout, lambda: bool(received)):
                    console.detail(f"removed {item}")
            except UserError as error:
                if in_flight is None and not received:
                    raise
                console.error(error.one_line())
        if received and in_flight is None:
            raise Interrupted(received[0])
