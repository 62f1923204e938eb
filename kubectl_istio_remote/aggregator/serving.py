"""How an aggregator is set up: where it listens, how it reaches istiod, and the bounds it keeps under load.

Everything here is plain data, shared by the server, its fan-out and `serve`'s command line.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubectl_istio_remote.istio import CONTROL_PLANE_ID, ISTIOD_TIMEOUT_SECONDS, MAX_MESSAGE_BYTES

#: istiod's debug generators build every answer from its whole proxy table: a few at once keeps a replica
#: serving its proxies while a burst of calls waits in our line instead of in its CPU.
ISTIOD_MAX_IN_FLIGHT = 4
#: istioctl sends its calls without a deadline: a place in line is given up after this long.
MAX_QUEUE_SECONDS = 30.0


@dataclass(frozen=True)
class Settings:
    """Everything that shapes the server, apart from where the istiods are."""

    listen: str = "127.0.0.1:0"
    #: (key PEM, certificate PEM) for TLS towards clients, made in memory; None (and no files) serves plaintext.
    serving_pair: tuple[bytes, bytes] | None = None
    #: (certificate file, key file) for TLS towards clients, read again whenever they change (a renewed Secret).
    serving_files: tuple[str, str] | None = None
    istiod_ca_file: str | None = None
    istiod_plaintext: bool = False
    istiod_timeout: float = ISTIOD_TIMEOUT_SECONDS
    require_all: bool = False
    control_plane_id: str = CONTROL_PLANE_ID
    max_message_bytes: int = MAX_MESSAGE_BYTES
    #: Pass on debug pages that change istiod (`adsz?push=true`, `cachez?clear=true`, `force_disconnect`):
    #: a user's own session may; a shared aggregator refuses unless its operator allows it.
    allow_debug_changes: bool = False
    #: Connect to each replica when it is found rather than at the first request: worth it where a
    #: connection costs round trips (local mode's port-forwards from a laptop).
    connect_ahead: bool = False
    #: Our requests at one replica at a time; more wait in line (None: no bound).
    istiod_max_in_flight: int | None = ISTIOD_MAX_IN_FLIGHT
    #: The longest a call waits in a replica's line when its caller gives no sooner deadline.
    max_queue_seconds: float = MAX_QUEUE_SECONDS
    #: Bytes the answers in flight may hold (`--max-memory`); None: unbounded.
    max_memory: int | None = None
    #: HOST:PORT of Prometheus' /metrics; None: no metrics.
    metrics_listen: str | None = None
    #: The Istio cluster ID sent to istiod for a caller that sends none (`--cluster-id`: the mesh cluster of a
    #: session's tokens); "": istiod takes such callers for its config cluster's.
    cluster_id: str = ""

    @property
    def channel_options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
        ]
