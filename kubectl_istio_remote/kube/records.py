"""The few fields the plugin reads from API objects, as small typed records over their JSON."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kubectl_istio_remote.errors import UserError
from kubectl_istio_remote.kube.cluster import Object

Parsed = TypeVar("Parsed")


def _kubernetes_shaped(parse: Callable[..., Parsed]) -> Callable[..., Parsed]:
    """An object whose fields are not of Kubernetes' types (a list for a mapping, a number for a list) is one line,
    as client-go's decoder refuses it, not a traceback."""

    @functools.wraps(parse)
    def checked(*args: Any) -> Parsed:
        try:
            return parse(*args)
        except (AttributeError, TypeError, ValueError) as error:
            raise UserError(
                f"the API server answered with an object Kubernetes does not make ({type(error).__name__}: {error})",
                "is the server address right? something else than the API server answers there",
            ) from None

    return checked


@dataclass(frozen=True)
class Meta:
    name: str
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    deleting: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    @_kubernetes_shaped
    def of(cls, obj: Object) -> Meta:
        meta = obj.get("metadata") or {}
        return cls(
            name=meta.get("name", ""),
            namespace=meta.get("namespace", ""),
            uid=meta.get("uid", ""),
            resource_version=meta.get("resourceVersion", ""),
            deleting=bool(meta.get("deletionTimestamp")),
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
        )


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class ContainerState:
    """One container's state: `waiting` or `terminated` with their reason, or neither while running."""

    waiting_reason: str = ""
    waiting_message: str = ""
    terminated: bool = False
    terminated_reason: str = ""
    exit_code: int = 0
    terminated_message: str = ""

    @classmethod
    @_kubernetes_shaped
    def of(cls, status: dict[str, Any]) -> ContainerState:
        state = status.get("state") or {}
        waiting, terminated = state.get("waiting") or {}, state.get("terminated")
        return cls(
            waiting_reason=waiting.get("reason", ""),
            waiting_message=waiting.get("message", ""),
            terminated=terminated is not None,
            terminated_reason=(terminated or {}).get("reason", ""),
            exit_code=int((terminated or {}).get("exitCode", 0)),
            terminated_message=(terminated or {}).get("message", ""),
        )


@dataclass(frozen=True)
class Pod:
    meta: Meta
    phase: str = ""
    pod_ip: str = ""
    reason: str = ""
    message: str = ""
    conditions: tuple[Condition, ...] = ()
    containers: tuple[ContainerState, ...] = ()

    @classmethod
    @_kubernetes_shaped
    def of(cls, obj: Object) -> Pod:
        status = obj.get("status") or {}
        return cls(
            meta=Meta.of(obj),
            phase=status.get("phase", ""),
            pod_ip=status.get("podIP", ""),
            reason=status.get("reason", ""),
            message=status.get("message", ""),
            conditions=tuple(
                Condition(c.get("type", ""), c.get("status", ""), c.get("reason", ""), c.get("message", ""))
                for c in status.get("conditions") or []
            ),
            containers=tuple(ContainerState.of(c) for c in status.get("containerStatuses") or []),
        )

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def full_name(self) -> str:
        return f"{self.meta.namespace}/{self.meta.name}"

    @property
    def ended(self) -> bool:
        return self.phase in ("Failed", "Succeeded")


@_kubernetes_shaped
def items(listed: Object) -> list[Object]:
    listed_items = list(listed.get("items") or [])
    if not all(isinstance(item, dict) for item in listed_items):
        raise TypeError("a list's items are not objects")
    return listed_items
