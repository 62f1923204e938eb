"""Leftovers: objects of ours whose session is over (a killed laptop, a lost network) and their removal."""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass

from kubectl_istio_remote.kube import (
    DELETE_ORDER,
    EXPIRES_ANNOTATION,
    MANAGED_BY,
    SESSION_LABEL,
    USER_LABEL,
    Cluster,
    ObjectRef,
    delete_objects,
    explain,
    label_value,
)

log = logging.getLogger(__name__)
SELECTOR = ",".join(f"{key}={value}" for key, value in MANAGED_BY.items())


@dataclass(frozen=True)
class Leftover:
    ref: ObjectRef
    session: str
    user: str
    expired: bool


def find(cluster: Cluster, namespace: str) -> list[Leftover]:
    """Every object with our label in `namespace`, marked expired once its session's deadline has passed."""
    listers = {
        "Pod": cluster.core.list_namespaced_pod,
        "RoleBinding": cluster.rbac.list_namespaced_role_binding,
        "Role": cluster.rbac.list_namespaced_role,
        "ServiceAccount": cluster.core.list_namespaced_service_account,
    }
    now = datetime.datetime.now(datetime.timezone.utc)
    found = []
    for kind in DELETE_ORDER:
        try:
            items = listers[kind](namespace, label_selector=SELECTOR, _request_timeout=15).items
        except Exception as error:  # noqa: BLE001 - explained with verb and resource
            raise explain(error, cluster, "list", kind.lower() + "s", namespace) from None
        for item in items:
            labels = item.metadata.labels or {}
            expires = (item.metadata.annotations or {}).get(EXPIRES_ANNOTATION, "")
            ended = kind == "Pod" and item.status is not None and item.status.phase in ("Failed", "Succeeded")
            expired = ended or not expires or _parse(expires) <= now
            found.append(Leftover(ObjectRef(kind, item.metadata.name), labels.get(SESSION_LABEL, ""), labels.get(USER_LABEL, ""), expired))
    return found


def _parse(stamp: str) -> datetime.datetime:
    try:
        return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)


def select(leftovers: list[Leftover], user: str, everything: bool, session: str = "") -> list[Leftover]:
    """--all: every object of ours; --session: one session's, expired or not (a teardown that could not finish names it); otherwise this user's expired ones."""
    if everything:
        return leftovers
    if session:
        return [leftover for leftover in leftovers if leftover.session == session]
    return [leftover for leftover in leftovers if leftover.expired and leftover.user == label_value(user)]


def remove(cluster: Cluster, namespace: str, leftovers: list[Leftover], seconds: float = 30.0) -> list[str]:
    refs = [leftover.ref for leftover in leftovers]
    return delete_objects(cluster, namespace, refs, time.monotonic() + seconds, hint="run the same cleanup again once it answers")


def warn_about_leftovers(cluster: Cluster, namespace: str) -> None:
    """One line on stderr when earlier sessions left expired objects; silent if we may not list them."""
    import sys

    try:
        expired = [leftover for leftover in find(cluster, namespace) if leftover.expired]
    except Exception as error:  # noqa: BLE001 - a warning must never stop the command
        log.debug("cannot look for leftovers: %s", error)
        return
    if expired:
        sessions = sorted({leftover.session for leftover in expired})
        print(
            f"warning: {len(expired)} expired object(s) of earlier sessions ({', '.join(sessions)}) in {namespace} "
            f"of context {cluster.context}: run `kubectl istio-remote cleanup`",
            file=sys.stderr,
        )
