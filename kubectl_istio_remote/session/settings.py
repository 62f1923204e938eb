"""What a session is asked to do (the flags) and what it will do (settled once, before anything is created).

Kept light at import: the CLI's options name the enums and defaults here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from kubectl_istio_remote import IMAGE
from kubectl_istio_remote.istio import (
    ISTIOD_TIMEOUT_SECONDS,
    POD_TTL_SECONDS,
    SESSION_TIMEOUT_SECONDS,
    istiod_selector,
)
from kubectl_istio_remote.kube.overrides import ConnectionFlags

if TYPE_CHECKING:
    from kubectl_istio_remote.deploy.advertisement import Advertisement
    from kubectl_istio_remote.kube.cluster import Cluster
    from kubectl_istio_remote.session.warm_start import WarmStart


class Mode(str, enum.Enum):
    #: shared when the mesh cluster advertises an aggregator (or --aggregator is given), else pod.
    auto = "auto"
    pod = "pod"
    local = "local"
    #: the operator's permanent aggregator, reached directly: nothing is created anywhere.
    shared = "shared"


class PullPolicy(str, enum.Enum):
    IfNotPresent = "IfNotPresent"
    Always = "Always"
    Never = "Never"


@dataclass(frozen=True)
class SessionFlags:
    """The user's choices, as parsed, each default stated here once; `from_params` takes them from a command's parsed parameters."""

    external_context: str | None = None
    istio_namespace: str | None = None
    revision: str = ""
    cluster_id: str = ""
    mode: Mode = Mode.auto
    aggregator: str | None = None
    aggregator_ca: str | None = None
    timeout: float = SESSION_TIMEOUT_SECONDS
    ttl: int = POD_TTL_SECONDS
    image: str = IMAGE
    image_pull_secret: tuple[str, ...] = ()
    pull_policy: PullPolicy = PullPolicy.IfNotPresent
    verbose: bool = False
    #: kubectl's connection flags (--kubeconfig, --context, --as, --server, --token, ...).
    connection: ConnectionFlags = field(default_factory=ConnectionFlags)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> SessionFlags:
        """The fields a command declared; the others keep their defaults (cleanup has no --image).

        `params` are click's parsed values: enums arrive as their values (cli/options.values_of).
        """
        chosen: dict[str, Any] = {item.name: params[item.name] for item in fields(cls) if item.name in params}
        if "mode" in chosen:
            chosen["mode"] = Mode(chosen["mode"])
        if "pull_policy" in chosen:
            chosen["pull_policy"] = PullPolicy(chosen["pull_policy"])
        if "image_pull_secret" in chosen:
            chosen["image_pull_secret"] = tuple(chosen["image_pull_secret"] or ())
        return cls(**chosen, connection=ConnectionFlags.from_params(params))


@dataclass(frozen=True)
class SessionSettings:
    """What a session needs to know, resolved once at start."""

    mesh: Cluster
    external: Cluster
    istio_namespace: str
    revision: str = ""
    #: The mesh cluster's Istio cluster ID, sent with every token ("": istiod's config cluster; pod and local mode
    #: look for it in the mesh cluster's injection webhook before anything is created).
    cluster_id: str = ""
    #: pod, local or shared: `auto` is settled by `resolve_settings`.
    mode: Mode = Mode.pod
    #: Where the shared aggregator is, and how its certificate is verified (shared mode only).
    shared: Advertisement | None = None
    timeout: float = SESSION_TIMEOUT_SECONDS
    ttl_seconds: int = POD_TTL_SECONDS
    image: str = IMAGE
    image_pull_secrets: tuple[str, ...] = field(default_factory=tuple)
    pull_policy: PullPolicy = PullPolicy.IfNotPresent
    istiod_timeout: float = ISTIOD_TIMEOUT_SECONDS
    verbose: bool = False
    #: A native command's start on the remembered shared aggregator, already checked against the fresh advertisement.
    warm_start: WarmStart | None = None

    @property
    def istiod_selector(self) -> str:
        return istiod_selector(self.revision)
