"""Which session mode a command runs in: `auto` takes the shared aggregator when the mesh cluster advertises one.

The mesh user this serves has no rights in the control-plane cluster, so nothing here needs one
in shared mode; in auto mode the advertisement is read while the istio namespace is looked for
in the control-plane cluster, so pod mode pays no extra round trip for the question.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from kubectl_istio_remote import advertisement
from kubectl_istio_remote.advertisement import Advertisement
from kubectl_istio_remote.errors import UserError
from kubectl_istio_remote.istio import DEFAULT_NAMESPACE
from kubectl_istio_remote.kube.concurrent import outcomes_of
from kubectl_istio_remote.kube.errors import ApiError
from kubectl_istio_remote.session.settings import Mode, SessionFlags, discover_istio_namespace

if TYPE_CHECKING:
    from kubectl_istio_remote.console import Console
    from kubectl_istio_remote.kube.cluster import Cluster

NOT_ADVERTISED_HINT = (
    "ask the mesh operator to apply `kubectl istio-remote manifest --mesh`, pass --aggregator HOST:PORT, "
    "or use --mode pod with rights in the control-plane cluster"
)


def choose_mode(flags: SessionFlags, mesh: Cluster, external: Cluster, console: Console) -> tuple[Mode, Advertisement | None, str]:
    """(mode, the shared aggregator in shared mode, istio namespace); auto mode says on one progress line which and why."""
    namespace = flags.istio_namespace
    if flags.mode in (Mode.pod, Mode.local):
        return flags.mode, None, namespace or discover_istio_namespace(external, flags.revision, console)
    if flags.aggregator:
        given = Advertisement(
            namespace or DEFAULT_NAMESPACE,
            advertisement.checked_address(flags.aggregator, "--aggregator"),
            advertisement.read_ca(flags.aggregator_ca, "--aggregator-ca"),
            source="--aggregator",
        )
        if flags.mode is Mode.auto:
            console.progress(f"using the shared aggregator at {given.address} (--aggregator)")
        return Mode.shared, given, given.namespace
    where = namespace or DEFAULT_NAMESPACE
    looking_for_namespace = flags.mode is Mode.auto and not namespace
    calls: list[Callable[[], object]] = [functools.partial(read_advertisement, mesh, where)]
    if looking_for_namespace:
        calls.append(functools.partial(discover_istio_namespace, external, flags.revision, console))
    advertised, *discovered = outcomes_of(calls)
    source = advertisement_source(mesh, where)
    if isinstance(advertised, Advertisement):
        if flags.mode is Mode.auto:
            console.progress(f"using the shared aggregator at {advertised.address}, advertised by {source} (--mode shared)")
        return Mode.shared, advertised, where
    if flags.mode is Mode.shared:
        if isinstance(advertised, BaseException):
            raise advertised
        raise UserError(f"no shared aggregator is advertised: {source} not found", NOT_ADVERTISED_HINT)
    if isinstance(advertised, BaseException) and not (isinstance(advertised, ApiError) and advertised.status == 403):
        raise advertised  # a malformed advertisement, or no answer: the mesh cluster is needed in every mode
    why = "not found" if advertised is None else "not readable"
    console.progress(f"no shared aggregator advertised ({source} {why}): running the aggregator in a pod (--mode pod)")
    if discovered and isinstance(discovered[0], BaseException):
        raise discovered[0]
    return Mode.pod, None, str(discovered[0]) if discovered else where


def advertisement_source(mesh: Cluster, namespace: str) -> str:
    return f"ConfigMap {namespace}/{advertisement.CONFIGMAP_NAME} of context {mesh.context}"


def read_advertisement(mesh: Cluster, namespace: str) -> Advertisement | None:
    """The operator's advertisement in the mesh cluster; None when there is none."""
    from kubectl_istio_remote.kube.kinds import CONFIG_MAP

    try:
        configmap = mesh.read(CONFIG_MAP, namespace, advertisement.CONFIGMAP_NAME)
    except ApiError as error:
        if error.status == 404:
            return None
        raise
    return advertisement.parse(configmap, advertisement_source(mesh, namespace))
