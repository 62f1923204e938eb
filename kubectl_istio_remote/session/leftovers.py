"""Leftovers: objects of ours whose session is over (a killed laptop, a lost network) and their removal."""

from __future__ import annotations

import datetime
import functools
import time
from dataclasses import dataclass

from kubectl_istio_remote.concurrency import all_of
from kubectl_istio_remote.console import Console
from kubectl_istio_remote.kube.cluster import Cluster
from kubectl_istio_remote.kube.kinds import POD, SESSION_KINDS
from kubectl_istio_remote.kube.labels import EXPIRES_ANNOTATION, EXPIRES_FORMAT, SELECTOR, SESSION_LABEL, USER_LABEL, label_value
from kubectl_istio_remote.kube.records import Meta, Pod, items
from kubectl_istio_remote.kube.removal import ObjectRef, delete_objects

REMOVAL_SECONDS = 30.0


@dataclass(frozen=True)
class Leftover:
    ref: ObjectRef
    session: str
    user: str
    expired: bool


def find(cluster: Cluster, namespace: str, now: datetime.datetime | None = None) -> list[Leftover]:
    """Every object with our label in `namespace`, marked expired once its session's deadline has passed (or its pod ended)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    found = []
    listed = all_of([functools.partial(cluster.list_objects, kind, namespace, labels=SELECTOR) for kind in SESSION_KINDS])
    for kind, objects in zip(SESSION_KINDS, listed, strict=True):
        for obj in items(objects):
            meta = Meta.of(obj)
            expires = meta.annotations.get(EXPIRES_ANNOTATION, "")
            expired = (kind is POD and Pod.of(obj).ended) or not expires or _parse(expires) <= now
            labels = meta.labels
            found.append(Leftover(ObjectRef(kind, meta.name), labels.get(SESSION_LABEL, ""), labels.get(USER_LABEL, ""), expired))
    return found


def _parse(stamp: str) -> datetime.datetime:
    try:
        return datetime.datetime.strptime(stamp, EXPIRES_FORMAT).replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)


def select(leftovers: list[Leftover], user: str, everything: bool, session: str = "") -> list[Leftover]:
    """--all: every object of ours; --session: one session's, expired or not (a teardown that could not finish names it); otherwise this user's expired ones."""
    if everything:
        return leftovers
    if session:
        return [leftover for leftover in leftovers if leftover.session == session]
    return [leftover for leftover in leftovers if leftover.expired and leftover.user == label_value(user)]


def remove(cluster: Cluster, namespace: str, leftovers: list[Leftover], console: Console) -> list[str]:
    refs = [leftover.ref for leftover in leftovers]
    deadline = time.monotonic() + REMOVAL_SECONDS
    return delete_objects(cluster, namespace, refs, deadline, console, hint="run the same cleanup again once it answers")


def leftover_warning(expired: list[Leftover], cluster: Cluster, namespace: str) -> str:
    """One line when earlier sessions left expired objects ("" when none did)."""
    if not expired:
        return ""
    sessions = sorted({leftover.session for leftover in expired})
    return (
        f"{len(expired)} expired object(s) of earlier sessions ({', '.join(sessions)}) in {namespace} "
        f"of context {cluster.context}: run `kubectl istio-remote cleanup`"
    )
