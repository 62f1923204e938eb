"""Everything a session must know before it creates anything, asked in one concurrent round per cluster.

istiod's pods, every RBAC right the mode needs, who we are (pod mode labels its objects with it),
the mesh cluster's Istio cluster ID, and whether earlier sessions left expired objects: none
depends on another, so on a slow network they cost one round trip together instead of one each.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from kubectl_istio_remote.concurrency import outcomes_of
from kubectl_istio_remote.console import Console
from kubectl_istio_remote.session import permissions
from kubectl_istio_remote.session.istiods import Istiods, find_istiods
from kubectl_istio_remote.session.leftovers import Leftover, find, leftover_warning
from kubectl_istio_remote.session.mesh_cluster import injected_cluster_id
from kubectl_istio_remote.session.settings import Mode, SessionSettings

if TYPE_CHECKING:
    from kubectl_istio_remote.istioctl import Istioctl


@dataclass(frozen=True)
class Preflight:
    #: istiod's pods (None in shared mode: the control-plane cluster is not asked).
    istiods: Istiods | None
    #: Who the API server says we are (pod mode only; "" otherwise).
    user: str
    #: The mesh cluster's Istio cluster ID: --cluster-id or the advertisement's, else what its injection webhook names
    #: ("": none).
    cluster_id: str = ""


def check_before_creating(settings: SessionSettings, console: Console, istioctl: Istioctl | None) -> Preflight:
    """Raise, naming what is wrong, unless istiod is found and every right is granted; warn about leftovers."""
    needs = permissions.needs(settings.mode, settings.mesh, settings.external, settings.istio_namespace, istioctl=istioctl)
    if settings.mode is Mode.shared:
        # The only right is the token's: a native command asks for the token itself, and a refusal says the same
        # (which verb, on what, for whom) a round trip sooner. istioctl's own refusal would not be as clear.
        if istioctl is not None:
            permissions.refuse_missing(needs, permissions.check(needs))
        return Preflight(None, "", settings.cluster_id)
    external, namespace = settings.external, settings.istio_namespace
    calls: list[Callable[[], Any]] = [
        lambda: find_istiods(settings),
        lambda: find(external, namespace),
        (external.username if settings.mode is Mode.pod else lambda: ""),
        (lambda: settings.cluster_id) if settings.cluster_id else functools.partial(injected_cluster_id, settings.mesh, settings.revision),
        *(functools.partial(permissions.allowed, need) for need in needs),
    ]
    istiods, leftovers, user, cluster_id, *granted = outcomes_of(calls)
    if isinstance(leftovers, list):
        warning = leftover_warning(_expired(leftovers), external, namespace)
        if warning:
            console.warning(warning)
    else:
        console.detail(f"cannot look for leftovers: {leftovers}")
    if isinstance(cluster_id, BaseException):
        console.detail(f"cannot read the mesh cluster's injection webhooks for its Istio cluster ID (--cluster-id): {cluster_id}")
        cluster_id = ""
    elif cluster_id:
        console.detail(f"the mesh cluster is Istio cluster {cluster_id} to istiod")
    # In the order a user fixes them: where istiod is, then the rights, then the rest.
    for outcome in (istiods, *granted, user):
        if isinstance(outcome, BaseException):
            raise outcome
    permissions.refuse_missing(needs, cast(list[bool], granted))
    return Preflight(cast(Istiods, istiods), cast(str, user), cast(str, cluster_id))


def _expired(leftovers: list[Leftover]) -> list[Leftover]:
    return [leftover for leftover in leftovers if leftover.expired]
