"""Pure routing and merging rules: how many istiod answers become the one answer istioctl reads.

istioctl takes exactly one DiscoveryResponse per stream, so the aggregator must merge; the rules
follow istioctl/pkg/multixds/gather.go and istiod's status and debug generators.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse

DEBUG_TYPE = "istio.io/debug"
PROXY_NOT_CONNECTED = b"Proxy not connected to this Pilot instance"
DEFAULT_CONTROL_PLANE_ID = "<external>"


class Route(enum.Enum):
    """BROADCAST: every istiod's resources concatenated. ONE_PROXY: the answer of the istiod holding the proxy."""

    BROADCAST = "broadcast"
    ONE_PROXY = "one-proxy"


def route_for(request: DiscoveryRequest) -> Route:
    """Decide how to combine answers for this request.

    `istio.io/debug/*` with a resource name (config_dump, syncz of one proxy) and
    `istio.io/debug` with a `proxyID=` query concern one proxy, which is connected to exactly one
    replica. Everything else (syncz, connections, `istio.io/debug` global pages) is per-replica
    data that the user wants from all replicas.
    """
    names = list(request.resource_names)
    if request.type_url == DEBUG_TYPE:
        return Route.ONE_PROXY if any("proxyID=" in name for name in names) else Route.BROADCAST
    return Route.ONE_PROXY if names else Route.BROADCAST


@dataclass(frozen=True)
class Answer:
    """One istiod's response, named by the replica that gave it."""

    istiod: str
    response: DiscoveryResponse


def knows_proxy(response: DiscoveryResponse) -> bool:
    """True unless the istiod said, one way or another, that the proxy is not connected to it.

    istiod's status generator answers an unknown proxy with no resources; its debug pages answer
    with a single resource carrying the "Proxy not connected" text.
    """
    if not response.resources:
        return False
    return not any(PROXY_NOT_CONNECTED in resource.value for resource in response.resources)


def merge(request: DiscoveryRequest, answers: Sequence[Answer], control_plane_id: str) -> DiscoveryResponse:
    """Build the single response for `request` from the healthy istiods' answers (at least one)."""
    ordered = sorted(answers, key=lambda answer: answer.istiod)
    if route_for(request) is Route.ONE_PROXY:
        holders = [answer for answer in ordered if knows_proxy(answer.response)]
        return _copy(holders[0].response if holders else _most_telling_refusal(ordered))
    merged = DiscoveryResponse(type_url=request.type_url, nonce=uuid.uuid4().hex)
    merged.version_info = ordered[0].response.version_info
    for answer in ordered:
        merged.resources.extend(answer.response.resources)
    identity = merged_identifier([a.response.control_plane.identifier for a in ordered], control_plane_id)
    if identity:
        merged.control_plane.identifier = identity
    return merged


def _most_telling_refusal(answers: Sequence[Answer]) -> DiscoveryResponse:
    """When no istiod holds the proxy, prefer istiod's own "not connected" text over an empty answer."""
    for answer in answers:
        if answer.response.resources:
            return answer.response
    return answers[0].response


def _copy(response: DiscoveryResponse) -> DiscoveryResponse:
    copy = DiscoveryResponse()
    copy.CopyFrom(response)
    return copy


def merged_identifier(identifiers: Sequence[str], control_plane_id: str) -> str:
    """istiod's `{"Component","ID","Info"}` JSON for the whole set of replicas.

    ID becomes `control_plane_id`; every Info field on which the replicas disagree (a rollout
    in progress, mixed revisions) lists all values, comma separated, instead of showing one.
    Returns "" when no replica sent an identifier (istiod ≥ 1.25 sends it on syncz only).
    """
    parsed = [parsed for parsed in map(_parse_identifier, identifiers) if parsed is not None]
    if not parsed:
        return ""
    component = next((p["Component"] for p in parsed if p.get("Component")), "istiod")
    infos = [p["Info"] for p in parsed if isinstance(p.get("Info"), dict)]
    info: dict[str, object] = {}
    for key in dict.fromkeys(key for each in infos for key in each):
        values = sorted({str(each[key]) for each in infos if key in each})
        if len(values) == 1:
            info[key] = next(each[key] for each in infos if key in each)
        else:
            info[key] = ",".join(values)
    return json.dumps({"Component": component, "ID": control_plane_id, "Info": info}, separators=(",", ":"))


def _parse_identifier(identifier: str) -> dict | None:
    if not identifier:
        return None
    try:
        parsed = json.loads(identifier)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
