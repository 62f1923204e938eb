"""Options used by several commands, each defined once and named in every signature that takes it (after pip-tools).

Defaults come from `istio` and `session.settings`, which import nothing heavy: `--help` stays fast.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from kubectl_istio_remote.completion import complete_context, complete_file, complete_istio_namespace
from kubectl_istio_remote.session.settings import Mode, PullPolicy

Verbose = Annotated[bool, typer.Option("-v", "--verbose", help="Log progress and details on stderr.")]
Kubeconfig = Annotated[
    Optional[str],
    typer.Option("--kubeconfig", envvar="KUBECONFIG", help="Path to the kubeconfig file.", show_envvar=False, shell_complete=complete_file),
]
Context = Annotated[
    Optional[str],
    typer.Option("--context", help="Kubeconfig context: the mesh cluster (default: the current one).", shell_complete=complete_context),
]
ExternalContext = Annotated[
    Optional[str],
    typer.Option(
        "--external-context", help="Control-plane cluster context (default: the same as --context).", shell_complete=complete_context
    ),
]
IstioNamespace = Annotated[
    Optional[str],
    typer.Option(
        "--istio-namespace",
        "-i",
        envvar="ISTIOCTL_ISTIONAMESPACE",
        help="Namespace of istiod (default: where istiod pods are found in the external cluster, else istio-system).",
        shell_complete=complete_istio_namespace,
    ),
]
Revision = Annotated[str, typer.Option("--revision", "-r", help="Istio revision of the istiods (adds istio.io/rev=REV).")]
ModeOption = Annotated[
    Mode,
    typer.Option(
        "--mode",
        help="auto: shared when the mesh cluster advertises an aggregator, else pod; pod: run the aggregator in a short-lived "
        "pod next to istiod; local: run it here, port-forwarding to each istiod; shared: the operator's aggregator, nothing created.",
    ),
]
Aggregator = Annotated[
    Optional[str],
    typer.Option("--aggregator", help="HOST:PORT of a shared aggregator, instead of the one the mesh cluster advertises."),
]
AggregatorCa = Annotated[
    Optional[str],
    typer.Option(
        "--aggregator-ca",
        help="With --aggregator: the CA (PEM) of its certificate (default: the system's roots).",
        shell_complete=complete_file,
    ),
]
Timeout = Annotated[
    float,
    typer.Option("--timeout", help="Seconds to get ready (pod start, tunnels), and to retry removal while the API server does not answer."),
]
Ttl = Annotated[int, typer.Option("--ttl", help="Seconds after which the pod ends itself, even if we are killed.")]
#: Air-gapped clusters mirror the image; the variable saves repeating --image on every command.
Image = Annotated[
    str, typer.Option("--image", envvar="KUBECTL_ISTIO_REMOTE_IMAGE", help="Aggregator image for pod mode.", show_envvar=True)
]
ImagePullSecret = Annotated[Optional[list[str]], typer.Option("--image-pull-secret", help="Pull secret for --image; repeatable.")]
PullPolicyOption = Annotated[PullPolicy, typer.Option("--pull-policy", help="Image pull policy.")]
IstioctlPath = Annotated[Optional[str], typer.Option("--istioctl", help="istioctl to use (default: from PATH).")]
