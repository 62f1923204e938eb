"""What istioctl is handed of kubectl's connection flags: it must act as the plugin acts, or not run at all.

istioctl (istioctl/pkg/cli/option.go) takes --kubeconfig, --context, --as, --as-group, --as-uid and,
since 1.27, --kubeclient-timeout; a flag it lacks would have it talk to the cluster as someone else
or elsewhere, so proxy-status then prints the answer itself.
"""

from __future__ import annotations

import pytest

from kubectl_istio_remote import istioctl
from kubectl_istio_remote.kube.overrides import ConnectionFlags

IMPERSONATING = ConnectionFlags(impersonate="limited-user", impersonate_groups=("mesh-readers", "ops"), impersonate_uid="42")


def test_istioctl_impersonates_whom_the_plugin_impersonates() -> None:
    argv = istioctl.cluster_flags(istioctl.Istioctl("istioctl", "1.26.0"), "/k/config", "remote", IMPERSONATING)
    assert argv == [
        *("--kubeconfig", "/k/config", "--context", "remote", "--as", "limited-user"),
        *("--as-group", "mesh-readers", "--as-group", "ops", "--as-uid", "42"),
    ]


@pytest.mark.parametrize(("version", "handed"), [("1.27.0", ["--kubeclient-timeout", "90s"]), ("1.26.3", [])])
def test_request_timeout_becomes_kubeclient_timeout_where_istioctl_has_it(version: str, handed: list[str]) -> None:
    argv = istioctl.cluster_flags(istioctl.Istioctl("istioctl", version), None, "remote", ConnectionFlags(request_timeout="1m30s"))
    assert argv == ["--context", "remote", *handed]


def test_flags_istioctl_lacks_are_named() -> None:
    given = ConnectionFlags(server="https://127.0.0.1:6443", token="t", insecure_skip_tls_verify=True, impersonate="u")
    assert istioctl.flags_not_taken(given) == ["--server", "--token", "--insecure-skip-tls-verify"]
    assert istioctl.flags_not_taken(IMPERSONATING) == []
