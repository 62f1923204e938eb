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

from kubectl_istio_remote.aggregator.debug_pages import Page, merge_page, proxy_id
from kubectl_istio_remote.istio import DEBUG_TYPE, SYNCZ_TYPE

PROXY_NOT_CONNECTED = b"Proxy not connected to this Pilot instance"


class Route(enum.Enum):
    """BROADCAST: every istiod's resources concatenated. ONE_PROXY: the answer of the istiod holding the proxy."""

    BROADCAST = "broadcast"
    ONE_PROXY = "one-proxy"


def route_for(request: DiscoveryRequest) -> Route:
    """Decide how to combine answers for this request.

    `istio.io/debug/config_dump` of a proxy and `istio.io/debug` with a `proxyID=` query concern
    one proxy, which is connected to exactly one replica. Everything else (syncz, connections,
    `istio.io/debug` global pages) is per-replica data that the user wants from all replicas;
    syncz too when it names a proxy, since istiod ignores the names (statusgen's debugSyncz) and
    answers with every proxy it holds.
    """
    names = list(request.resource_names)
    if request.type_url == DEBUG_TYPE:
        return Route.ONE_PROXY if any("proxyID=" in name for name in names) else Route.BROADCAST
    return Route.ONE_PROXY if names and request.type_url != SYNCZ_TYPE else Route.BROADCAST


@dataclass(frozen=True)
class Answer:
    """One istiod's response: its bytes as received, and the few fields merging needs."""

    istiod: str
    raw: bytes
    #: The response without its resources, which stay only in `raw`.
    head: DiscoveryResponse
    resource_count: int
    holds_proxy: bool
    #: A debug page's body (its one resource's bytes): what debug pages merge by; b"" for other types.
    page_body: bytes = b""

    @classmethod
    def of(cls, istiod: str, raw: bytes, response: DiscoveryResponse) -> Answer:
        count, holds_proxy = len(response.resources), knows_proxy(response)
        body = response.resources[0].value if response.type_url == DEBUG_TYPE and response.resources else b""
        response.ClearField("resources")
        return cls(istiod, raw, response, count, holds_proxy, body)


def knows_proxy(response: DiscoveryResponse) -> bool:
    """True unless the istiod said, one way or another, that the proxy is not connected to it.

    istiod's status generator answers an unknown proxy with no resources; its debug pages answer
    with a single resource carrying the "Proxy not connected" text. Only that one resource is read:
    scanning every resource of a 10 000-proxy syncz cost more than the rest of the merge.
    """
    resources = response.resources
    if len(resources) != 1:
        return bool(resources)
    return PROXY_NOT_CONNECTED not in resources[0].value


@dataclass(frozen=True)
class Combined:
    raw: bytes
    #: The replicas disagreed on a global debug page: said to the user ("" when they agreed).
    disagreement: str = ""


def merge(request: DiscoveryRequest, answers: Sequence[Answer], control_plane_id: str) -> Combined:
    """The serialized single response for `request`, from the healthy istiods' answers (at least one).

    Resources are mostly never decoded: serialized protobuf messages concatenate into one message
    whose repeated fields are joined and whose scalar fields take the last value, so the merged
    answer is the replicas' bytes in a stable order followed by the fields that must be ours. Debug
    pages (`istio.io/debug`) are one body each, merged by what the page means (debug_pages).
    """
    ordered = in_merge_order(answers)
    debug_page = request.type_url == DEBUG_TYPE
    identity = merged_identifier([answer.head.control_plane.identifier for answer in ordered], control_plane_id, always=debug_page)
    tail = DiscoveryResponse(type_url=request.type_url, nonce=uuid.uuid4().hex, version_info=ordered[0].head.version_info)
    if identity:
        tail.control_plane.identifier = identity
    if route_for(request) is Route.ONE_PROXY:
        holders = [answer for answer in ordered if answer.holds_proxy]
        chosen = (holders[0] if holders else _most_telling_refusal(ordered)).raw
        return Combined(chosen + tail.SerializeToString() if debug_page else chosen)
    if debug_page and request.resource_names:
        page = Page.of(request.resource_names[0])
        merged = merge_page(page, {answer.istiod: answer.page_body for answer in ordered}, proxy_id(request.node.id))
        tail.resources.add(type_url=DEBUG_TYPE, value=merged.body)
        return Combined(tail.SerializeToString(), merged.disagreement)
    return Combined(b"".join([*(answer.raw for answer in ordered), tail.SerializeToString()]))


def in_merge_order(answers: Sequence[Answer]) -> list[Answer]:
    """Replicas by name, so the merged answer is the same whichever replica was fastest."""
    return sorted(answers, key=lambda answer: answer.istiod)


def _most_telling_refusal(answers: Sequence[Answer]) -> Answer:
    """When no istiod holds the proxy, prefer istiod's own "not connected" text over an empty answer."""
    for answer in answers:
        if answer.resource_count:
            return answer
    return answers[0]


def merged_identifier(identifiers: Sequence[str], control_plane_id: str, always: bool = False) -> str:
    """istiod's `{"Component","ID","Info"}` JSON for the whole set of replicas.

    ID becomes `control_plane_id`; every Info field on which the replicas disagree (a rollout
    in progress, mixed revisions) lists all values, comma separated, instead of showing one.
    When no replica sent one (istiod ≥ 1.25 sends it on syncz only), returns "", or with `always`
    (debug pages, which `x internal-debug --all` keys by this ID) ours with no build information.
    """
    parsed = [parsed for parsed in map(_parse_identifier, identifiers) if parsed is not None]
    if not parsed:
        return json.dumps({"Component": "istiod", "ID": control_plane_id, "Info": {}}, separators=(",", ":")) if always else ""
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
