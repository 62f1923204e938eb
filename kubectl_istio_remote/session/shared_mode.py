"""Shared mode: the operator's permanent aggregator, reached directly; nothing is created in either cluster.

Unlike a session's own aggregator, this one is reached over networks we do not control, so its
certificate is verified: against the CA the mesh cluster advertises, else the system's roots.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from kubectl_istio_remote.aggregator.loop import LoopThread
from kubectl_istio_remote.deploy.advertisement import Advertisement
from kubectl_istio_remote.errors import UnavailableError
from kubectl_istio_remote.relay import Relay, TcpDialer, verified_tls
from kubectl_istio_remote.session.health import CHECK_SECONDS, left

if TYPE_CHECKING:
    from kubectl_istio_remote.aggregator.client import Connection
    from kubectl_istio_remote.session.cluster_naming import ClusterNamingProxy
    from kubectl_istio_remote.session.warm_start import WarmStart

RELAY_SECONDS = 5.0
OPERATOR_HINT = (
    "tell the mesh operator (`kubectl istio-remote doctor` shows what is wrong), or use --mode pod with rights in the control-plane cluster"
)
UNREACHABLE_FIX = "the operator's fix: the ConfigMap's address must reach the aggregator's Service (manifest --expose)"
CERTIFICATE_FIX = (
    "the operator's fix: the ConfigMap's ca.crt must be the CA that signs the serving certificate, and the certificate "
    "must name the address's host or the ConfigMap's server-name (manifest --mesh --ca-file, --host)"
)


def connection_to(shared: Advertisement) -> Connection:
    from kubectl_istio_remote.aggregator.client import Connection

    root = shared.ca_pem.encode() if shared.ca_pem else None
    return Connection(shared.address, root_certificates=root, server_name=shared.verified_name, verify=True)


class SharedMode:
    def __init__(
        self,
        shared: Advertisement,
        io: LoopThread,
        *,
        checked: bool = True,
        warm: WarmStart | None = None,
        relayed: bool = False,
        cluster_id: str = "",
    ) -> None:
        self._shared = shared
        self._io = io
        self._checked = checked
        self._warm = warm
        #: For istioctl, which does not verify the aggregator: TLS to it verified by us, istioctl's own TLS ending here.
        self._relay = (
            Relay(shared.target, TcpDialer(), verified_tls(shared.ca_pem), keep_spare=True) if relayed and not cluster_id else None
        )
        #: For istioctl too, when the mesh cluster must be named to istiod: its gRPC ends here, passed on with the name.
        self._naming = _naming_proxy(shared, cluster_id) if relayed and cluster_id else None

    def open(self, deadline: float) -> Connection:
        """Nothing to start and nothing to wait for: the aggregator answers now, or the user is told why not. Unchecked,
        the caller's own first call is the check (three round trips fewer; `explain_failure` when it fails)."""
        connection = self._connection()
        if self._checked:
            check_serving(self._io, self._shared, min(CHECK_SECONDS, left(deadline)), through=connection)
        return connection

    def _connection(self) -> Connection:
        from kubectl_istio_remote.aggregator.client import Connection

        # TLS, unverified as a session's own aggregator's: the certificate is made for this run.
        if self._relay is not None:  # its first stream dialled now, beside the check or istioctl's own start
            return Connection(self._io.run(self._relay.start(dial_ahead=True, serve_tls=local_tls()), RELAY_SECONDS))
        if self._naming is not None:
            return Connection(self._io.run(self._naming.start(), RELAY_SECONDS))
        return connection_to(self._shared) if self._warm is None else self._warm.connection()

    def close(self, deadline: float, stop_waiting: Callable[[], bool]) -> list[str]:
        for started in (self._relay, self._naming):
            if started is not None:
                with contextlib.suppress(Exception):
                    self._io.run(started.close(), RELAY_SECONDS)
        if self._warm is not None:
            self._warm.close()
        return []


def _naming_proxy(shared: Advertisement, cluster_id: str) -> ClusterNamingProxy:
    from kubectl_istio_remote.session.cluster_naming import ClusterNamingProxy

    return ClusterNamingProxy(connection_to(shared), cluster_id)


def local_tls() -> ssl.SSLContext:
    """A serving context for 127.0.0.1 with a certificate made in memory for this run (the standard library loads
    one only from files: written to a private directory, read, removed)."""
    import tempfile

    from kubectl_istio_remote.aggregator.tls import self_signed_pair

    key, certificate = self_signed_pair(["localhost"], ["127.0.0.1"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_alpn_protocols(["h2"])
    with tempfile.TemporaryDirectory(prefix="istio-remote-") as private:
        pair = os.path.join(private, "pair.pem")
        with open(os.open(pair, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            out.write(key + certificate)
        context.load_cert_chain(pair)
    return context


def check_serving(io: LoopThread, shared: Advertisement, timeout: float, *, through: Connection | None = None) -> None:
    """One health check (`through` a relay to it, or directly); its failure is explained in the words of TLS and TCP,
    which gRPC's error hides."""
    from kubectl_istio_remote.aggregator.client import check_health

    where = f"the shared aggregator at {shared.address} ({shared.source})"
    try:
        serving = io.run(check_health(through or connection_to(shared), timeout=timeout), timeout + 1)
    except Exception as error:  # noqa: BLE001 - every failure is explained below, in one line
        problem, fix = connection_problem(shared, timeout)
        message = f"{where} {problem or f'failed its health check: {error}'}"
        raise UnavailableError(f"{message}; {fix}" if fix else message, OPERATOR_HINT) from None
    if not serving:
        raise UnavailableError(f"{where} is not serving: it has not found istiod yet, or is shutting down", OPERATOR_HINT)


def explain_failure(shared: Advertisement, timeout: float) -> None:
    """After a call to the aggregator failed: raise why, in the words of TLS and TCP, when a health check finds it."""
    check_serving(LoopThread(), shared, timeout)


def connection_problem(shared: Advertisement, timeout: float) -> tuple[str, str]:
    """Why a TLS connection to the aggregator fails, and the operator's fix (("", "") when it does not fail)."""
    target, context = shared.target, verified_tls(shared.ca_pem)
    try:
        with (
            socket.create_connection((target.host, target.port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=shared.verified_name),
        ):
            return "", ""
    except ssl.SSLCertVerificationError as error:
        problem = (
            f"presented a certificate that does not verify against {shared.trusted} for {shared.verified_name!r}: {error.verify_message}"
        )
        return problem, CERTIFICATE_FIX
    except ssl.SSLError as error:
        return f"failed the TLS handshake: {error.reason or error}", CERTIFICATE_FIX
    except OSError as error:
        return f"is unreachable: {error.strerror or error or type(error).__name__}", UNREACHABLE_FIX


def shared_checks(
    shared: Advertisement, token: Callable[[], str], istio_namespace: str, timeout: float, cluster_id: str = ""
) -> list[tuple[bool, str]]:
    """doctor's checklist for the shared path: reachable, healthy, its certificate valid, every replica answering the
    token as a caller of the mesh cluster `cluster_id` ("": istiod's config cluster)."""
    from kubectl_istio_remote.aggregator.queries import fetch
    from kubectl_istio_remote.errors import UserError

    checks = [(True, f"shared aggregator advertised: {shared.address} ({shared.source})")]
    try:
        check_serving(LoopThread(), shared, timeout)
    except UserError as error:
        return [*checks, (False, str(error))]
    checks.append((True, f"it answers healthy, its certificate verified for {shared.verified_name!r} against {shared.trusted}"))
    try:
        syncz = fetch(dataclasses.replace(connection_to(shared), cluster_id=cluster_id), token(), istio_namespace, None, timeout)
    except UserError as error:
        return [*checks, (False, f"it does not answer a proxy-status request: {error.one_line()}")]
    if cluster_id:
        checks.append((True, f"the mesh cluster is named to istiod as Istio cluster {cluster_id}"))
    answering = ", ".join(name for name, _ in syncz.sources) or "none"
    checks.append((not syncz.failed and bool(syncz.sources), f"istiod replicas answering: {answering} ({len(syncz.statuses)} proxies)"))
    checks += [
        (False, f"istiod {failure}; the operator's fix: the aggregator's logs (kubectl logs deployment/istio-remote-proxy) say why")
        for failure in syncz.failed
    ]
    return checks
