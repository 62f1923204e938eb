"""What a session will do, settled once: the contexts pinned, and the mode, where `auto` takes the shared aggregator when the mesh cluster advertises one.

The mesh user this serves has no rights in the control-plane cluster, so nothing here needs one
in shared mode; in auto mode the advertisement is read while the istio namespace is looked for
in the control-plane cluster, so pod mode pays no extra round trip for the question.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from kubectl_istio_remote.concurrency import outcomes_of
from kubectl_istio_remote.deploy import advertisement
from kubectl_istio_remote.deploy.advertisement import Advertisement
from kubectl_istio_remote.errors import UserError
from kubectl_istio_remote.istio import DEFAULT_NAMESPACE, istiod_selector
from kubectl_istio_remote.kube.api_errors import ApiError
from kubectl_istio_remote.kube.cluster import Cluster, pin_clusters
from kubectl_istio_remote.kube.kinds import CONFIG_MAP, POD
from kubectl_istio_remote.kube.records import Meta, items
from kubectl_istio_remote.session import warm_start
from kubectl_istio_remote.session.settings import Mode, SessionFlags, SessionSettings

if TYPE_CHECKING:
    from kubectl_istio_remote.console import Console

ADVERTISED_NAMESPACES = (DEFAULT_NAMESPACE, "external-istiod")
NOT_ADVERTISED_HINT = (
    "ask the mesh operator to apply `kubectl istio-remote manifest --mesh`, pass --aggregator HOST:PORT, "
    "or use --mode pod with rights in the control-plane cluster"
)


def resolve_settings(flags: SessionFlags, console: Console, *, warm: bool = False) -> SessionSettings:
    """Pin both contexts, settle the mode and the istio namespace once, before anything is created.

    `warm` (a native command's session): what the last run learnt of the shared aggregator is started on at once.
    """
    mesh, external = pin_clusters(flags.connection, flags.external_context)
    places = advertised_places(flags)
    # Only an advertisement is remembered: --aggregator is known at once, and pod and local mode need none.
    remembering = warm and flags.mode in (Mode.auto, Mode.shared) and not flags.aggregator
    started = warm_start.begin(mesh, places) if remembering else None
    try:
        mode, shared, namespace = choose_mode(flags, mesh, external, console)
    except BaseException:
        if started is not None:
            started.close()
        raise
    if remembering:
        started = warm_start.settle(started, mesh, places, shared)
        if started is not None:
            console.detail(
                f"the shared aggregator at {started.remembered.address} is the one of the last run: its connection was opened ahead"
            )
    return SessionSettings(
        mesh=mesh,
        external=external,
        istio_namespace=namespace,
        revision=flags.revision,
        cluster_id=flags.cluster_id or (shared.cluster_id if shared is not None else ""),
        mode=mode,
        shared=shared,
        timeout=flags.timeout,
        ttl_seconds=flags.ttl,
        image=flags.image,
        image_pull_secrets=flags.image_pull_secret,
        pull_policy=flags.pull_policy,
        verbose=flags.verbose,
        warm_start=started,
    )


def advertised_places(flags: SessionFlags) -> list[str]:
    """Where the advertisement is looked for: -i, else where the mesh user's istio namespace usually is (Istio's default,
    and the namespace of Istio's external-control-plane guide)."""
    return [flags.istio_namespace] if flags.istio_namespace else list(ADVERTISED_NAMESPACES)


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
    # A mesh user may not list namespaces, so each place is asked at once.
    places = advertised_places(flags)
    calls: list[Callable[[], object]] = [functools.partial(read_advertisement, mesh, place) for place in places]
    # Pod mode's namespace is looked for at the same time in a control-plane cluster named apart; with one context,
    # the mesh user's usual case, only once pod mode is chosen: they may not list pods, and need not be refused.
    if flags.mode is Mode.auto and not namespace and external is not mesh:
        calls.append(functools.partial(discover_istio_namespace, external, flags.revision, console))
    outcomes = outcomes_of(calls)
    advertised, discovered = outcomes[: len(places)], outcomes[len(places) :]
    found = next((item for item in advertised if isinstance(item, Advertisement)), None)
    searched = f"ConfigMap {advertisement.CONFIGMAP_NAME} in namespace {' or '.join(places)} of context {mesh.context}"
    if found is not None:
        if flags.mode is Mode.auto:
            console.progress(f"using the shared aggregator at {found.address}, advertised by {found.source} (--mode shared)")
        return Mode.shared, found, found.namespace or places[0]
    refusals = [item for item in advertised if isinstance(item, BaseException)]
    for refusal in refusals:
        # A malformed advertisement, or no answer: the mesh cluster is needed in every mode.
        if not (isinstance(refusal, ApiError) and refusal.status == 403):
            raise refusal
    if flags.mode is Mode.shared:
        if len(refusals) == len(places):
            raise refusals[0]
        raise UserError(f"no shared aggregator is advertised: {searched} not found", NOT_ADVERTISED_HINT)
    why = "not readable" if len(refusals) == len(places) else "not found"
    console.progress(f"no shared aggregator advertised ({searched} {why}): running the aggregator in a pod (--mode pod)")
    if discovered and isinstance(discovered[0], BaseException):
        raise discovered[0]
    if discovered:
        return Mode.pod, None, str(discovered[0])
    return Mode.pod, None, namespace or discover_istio_namespace(external, flags.revision, console)


def read_advertisement(mesh: Cluster, namespace: str) -> Advertisement | None:
    """The operator's advertisement in the mesh cluster; None when there is none."""
    try:
        configmap = mesh.read(CONFIG_MAP, namespace, advertisement.CONFIGMAP_NAME)
    except ApiError as error:
        if error.status == 404:
            return None
        raise
    return advertisement.parse(configmap, f"ConfigMap {namespace}/{advertisement.CONFIGMAP_NAME} of context {mesh.context}")


def discover_istio_namespace(external: Cluster, revision: str, console: Console) -> str:
    """Where istiod pods run in the external cluster; istio-system when that cannot be told."""
    try:
        listed = external.list_objects(POD, labels=istiod_selector(revision))
    except ApiError:
        return DEFAULT_NAMESPACE  # no cluster-wide list right: the user can say -i
    namespaces = sorted({Meta.of(pod).namespace for pod in items(listed)})
    if DEFAULT_NAMESPACE in namespaces or not namespaces:
        return DEFAULT_NAMESPACE
    if len(namespaces) > 1:
        console.warning(f"istiod pods in several namespaces ({', '.join(namespaces)}): using {namespaces[0]}; choose with -i")
    return namespaces[0]
