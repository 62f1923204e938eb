"""Which mesh cluster a session is, and what a user is told when a proxy is in another one."""

from __future__ import annotations

import pytest

from kubectl_istio_remote.cli.proxy_status import other_cluster
from kubectl_istio_remote.istio import injection_cluster_id
from kubectl_istio_remote.native.render import ProxyStatus


@pytest.mark.parametrize(
    ("url", "cluster_id"),
    [
        ("https://istiod.external-istiod.svc:15017/inject/cluster/remote-2/net/network1", "remote-2"),
        ("/inject/cluster/east/net/network1", "east"),  # istiodRemote.injectionPath, with a Service
        ("/inject/cluster/west", "west"),
        ("https://istiod.istio-system.svc:443/inject", ""),  # a primary's webhook names no cluster
        ("", ""),
    ],
)
def test_the_cluster_id_is_read_off_the_injection_url(url: str, cluster_id: str) -> None:
    assert injection_cluster_id(url) == cluster_id


def test_a_proxy_of_another_mesh_cluster_is_named_with_the_next_step() -> None:
    elsewhere = ProxyStatus("sleep-0.sample-2", "sample-2", "remote-2", "istiod-1", "1.31-dev")
    assert other_cluster(elsewhere, "remote", "prod") == (
        "sleep-0.sample-2 is a proxy of mesh cluster remote-2, not of context prod's (remote): pass --context with a context of remote-2"
    )
    assert other_cluster(elsewhere, "remote-2", "prod-2") == ""
    assert other_cluster(elsewhere, "", "prod") == "", "not knowing the context's cluster, nothing is claimed"
