"""The plugin's adapter to Kubernetes: pinned contexts, API clients, port-forward streams, and errors a user can act on."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward

from kubectl_istio_remote.errors import UnavailableError, UsageError, UserError
from kubectl_istio_remote.relay import Target
from kubectl_istio_remote.status import ExitStatus

#: Every object the plugin creates carries these, so `cleanup` finds exactly ours.
MANAGED_BY = {"app.kubernetes.io/managed-by": "kubectl-istio-remote"}
SESSION_LABEL = "kubectl-istio-remote/session"
USER_LABEL = "kubectl-istio-remote/user"
EXPIRES_ANNOTATION = "kubectl-istio-remote/expires-at"


class ForbiddenError(UserError):
    exit_status = ExitStatus.FORBIDDEN


def api_client(kubeconfig: str | None = None, context: str | None = None, *, in_cluster_first: bool = False) -> client.ApiClient:
    """A client for one pinned context; `in_cluster_first` suits the aggregator pod."""
    configuration = client.Configuration()
    if in_cluster_first:
        try:
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        except config.ConfigException:
            pass
    try:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    except (config.ConfigException, FileNotFoundError) as error:
        raise UserError(f"cannot load kubeconfig: {error}", "check --kubeconfig, KUBECONFIG and --context") from None
    return client.ApiClient(configuration)


@dataclass(frozen=True)
class Cluster:
    """One pinned kubeconfig context: a later `kubectl config use-context` cannot redirect us, or our teardown."""

    context: str
    kubeconfig: str | None
    api: client.ApiClient

    @cached_property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @cached_property
    def rbac(self) -> client.RbacAuthorizationV1Api:
        return client.RbacAuthorizationV1Api(self.api)

    @cached_property
    def authorization(self) -> client.AuthorizationV1Api:
        return client.AuthorizationV1Api(self.api)

    def username(self) -> str:
        """Who the API server says we are (SelfSubjectReview), else the kubeconfig's user entry."""
        try:
            review = client.AuthenticationV1Api(self.api).create_self_subject_review(client.V1SelfSubjectReview())
            return review.status.user_info.username or ""
        except ApiException:
            contexts, _ = config.list_kube_config_contexts(self.kubeconfig)
            entry = next(entry for entry in contexts if entry["name"] == self.context)
            return entry["context"].get("user", "")


def pin_clusters(kubeconfig: str | None, context: str | None, external_context: str | None) -> tuple[Cluster, Cluster]:
    """Resolve the mesh context (default: current) and the external one (default: the same) once, at start."""
    try:
        contexts, current = config.list_kube_config_contexts(kubeconfig)
    except (config.ConfigException, FileNotFoundError) as error:
        raise UserError(f"cannot load kubeconfig: {error}", "check --kubeconfig and KUBECONFIG") from None
    names = [entry["name"] for entry in contexts]
    mesh = context or (current or {}).get("name")
    if not mesh:
        raise UserError("no current context in the kubeconfig", "pass --context")
    external = external_context or mesh
    for flag, name in (("--context", mesh), ("--external-context", external)):
        if name not in names:
            raise UsageError(f"unknown context {name!r} ({flag})", f"choose one of: {', '.join(names)}")
    mesh_cluster = Cluster(mesh, kubeconfig, api_client(kubeconfig, mesh))
    external_cluster = mesh_cluster if external == mesh else Cluster(external, kubeconfig, api_client(kubeconfig, external))
    return mesh_cluster, external_cluster


def explain(error: Exception, cluster: Cluster, verb: str, resource: str, namespace: str = "") -> UserError:
    """Turn an API failure into one line that names the verb, resource, namespace and context, and what to do."""
    where = f"in namespace {namespace} " if namespace else ""
    if isinstance(error, ApiException):
        reason = api_message(error)
        if error.status == 403:
            return ForbiddenError(
                f"forbidden: cannot {verb} {resource} {where}of context {cluster.context}: {reason}",
                f"ask for RBAC '{verb}' on '{resource}', or run `kubectl istio-remote doctor`",
            )
        if error.status == 404 and namespace:
            return UserError(f"namespace {namespace} not found in context {cluster.context}", "check -i/--istio-namespace")
        return UserError(f"cannot {verb} {resource} {where}of context {cluster.context}: {reason}")
    host = cluster.api.configuration.host
    return UnavailableError(
        f"cannot reach the API server of context {cluster.context} ({host}): {_root_cause(error)}",
        "check the network, VPN or --context",
    )


def api_message(error: ApiException) -> str:
    import json

    try:
        return json.loads(error.body).get("message") or error.reason
    except (TypeError, ValueError):
        return error.reason or str(error.status)


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    text = str(error)
    return re.sub(r"\s+", " ", text)[:200]


#: Kinds the plugin creates, in the order that removes dependents first.
DELETE_ORDER = ("Pod", "RoleBinding", "Role", "ServiceAccount")


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    name: str


#: Answers of an API server that is starting, stopping or overloaded: worth another try, unlike a refusal.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
FIRST_PAUSE_SECONDS, LONGEST_PAUSE_SECONDS = 0.5, 4.0


def delete_objects(
    cluster: Cluster,
    namespace: str,
    refs: list[ObjectRef],
    deadline: float,
    *,
    hint: str,
    stop_waiting: Callable[[], bool] = lambda: False,
) -> list[str]:
    """Delete `refs` before `deadline` (monotonic), retrying with bounded backoff while the API server does not answer.

    An API server restart (an upgrade, a failover) takes seconds: waiting for it leaves nothing
    behind where giving up at the first refused connection would. The user is told once that we
    wait, and `stop_waiting()` (a signal during teardown) ends the wait at once; every object still
    gets one attempt. Returns "Kind/name" of what was removed (404s are not reported); if anything
    is left, raises one error naming it, the API server, and `hint`, the command that removes it.
    """
    deleters = {
        "Pod": lambda name, timeout: cluster.core.delete_namespaced_pod(
            name, namespace, grace_period_seconds=0, _request_timeout=timeout
        ),
        "RoleBinding": lambda name, timeout: cluster.rbac.delete_namespaced_role_binding(name, namespace, _request_timeout=timeout),
        "Role": lambda name, timeout: cluster.rbac.delete_namespaced_role(name, namespace, _request_timeout=timeout),
        "ServiceAccount": lambda name, timeout: cluster.core.delete_namespaced_service_account(
            name, namespace, _request_timeout=timeout
        ),
    }
    removed: list[str] = []
    pending = list(refs)
    cause = ""
    pause = FIRST_PAUSE_SECONDS
    warned = False
    while pending and time.monotonic() < deadline:
        ref = pending[0]
        try:
            deleters[ref.kind](ref.name, max(0.5, min(5.0, deadline - time.monotonic())))
        except ApiException as error:
            if error.status in TRANSIENT_STATUSES:
                cause = f"{error.status} {api_message(error)}"
            elif error.status == 404:  # already gone, or never created: nothing to report
                pending.pop(0)
                continue
            else:
                raise explain(error, cluster, "delete", ref.kind.lower() + "s", namespace) from None
        except Exception as error:  # noqa: BLE001 - unreachable for now: retried below
            cause = _root_cause(error)
        else:
            removed.append(f"{ref.kind}/{ref.name}")
            pending.pop(0)
            pause = FIRST_PAUSE_SECONDS
            continue
        if stop_waiting():
            break
        if not warned:
            warned = True
            print(
                f"warning: the API server of context {cluster.context} ({cluster.api.configuration.host}) does not answer ({cause}): "
                f"retrying to remove {_names(pending)} for up to {max(0, deadline - time.monotonic()):.0f} s; Ctrl-C stops waiting",
                file=sys.stderr,
                flush=True,
            )
        wake = min(deadline, time.monotonic() + pause)
        while time.monotonic() < wake and not stop_waiting():
            time.sleep(0.1)
        pause = min(LONGEST_PAUSE_SECONDS, pause * 2)
    if pending:
        raise UnavailableError(
            f"the API server of context {cluster.context} ({cluster.api.configuration.host}) did not answer ({cause}): "
            f"left {_names(pending)} in namespace {namespace}",
            hint,
        )
    return removed


def _names(refs: list[ObjectRef]) -> str:
    return ", ".join(f"{ref.kind}/{ref.name}" for ref in refs)


def label_value(text: str) -> str:
    """`text` made into a valid label value (users are often e-mail addresses or system:… names)."""
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63].strip("-_.")
    return value or "unknown"


class PortForwardDialer:
    """Opens a Kubernetes port-forward stream to a pod per connection (one stream per accepted connection)."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    async def open(self, target: Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        forward = await asyncio.to_thread(
            portforward,
            self._cluster.core.connect_get_namespaced_pod_portforward,
            target.name,
            target.namespace,
            ports=str(target.port),
        )
        # The client joins a socketpair to the websocket; its other end is an ordinary socket.
        return await asyncio.open_connection(sock=forward.socket(target.port)._socket)
