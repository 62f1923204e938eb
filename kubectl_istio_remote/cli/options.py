"""Flags that several commands take, declared once, in groups a command attaches in one line (istioctl's AddRootFlags).

A group is a named set of click options (FlagGroup); every default is SessionFlags' own. `@takes(*SESSION)`
above a command adds the groups' flags to it and keeps them out of its call: a command reads them,
resolved, through `invocation.session_settings` (the values stay in `ctx.params`, where completers
and SessionFlags.from_params find them). Adding a flag to every command of a group is one option
here and one field in SessionFlags (or ConnectionFlags).

Defaults come from `istio` and `session.settings`, which import nothing heavy: `--help` stays fast.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass

import click

from kubectl_istio_remote.cli.shell_completion import complete_context, complete_istio_namespace
from kubectl_istio_remote.kube.overrides import ConnectionFlags
from kubectl_istio_remote.session.settings import Mode, PullPolicy, SessionFlags

DEFAULTS = SessionFlags()
CONNECTION_DEFAULTS = ConnectionFlags()


@dataclass(frozen=True)
class FlagGroup:
    name: str
    flags: tuple[click.Option, ...]


def values_of(choices: type[enum.Enum]) -> click.Choice:
    """An enum's values as click's choices; they arrive as values (SessionFlags.from_params, or the command, makes the enum)."""
    return click.Choice([choice.value for choice in choices])


def flag(*names: str, help: str, **settings: object) -> click.Option:
    """A flag; a bool default makes it a switch, without a --no- twin (kubectl's flags have none)."""
    if isinstance(settings.get("default"), bool):
        settings.setdefault("is_flag", True)
    return click.Option(list(names), help=help, **settings)  # type: ignore[arg-type]


#: kubectl's connection flags (cli-runtime's ConfigFlags), for every command that talks to a cluster.
CONNECTION = FlagGroup(
    "connection",
    (
        flag(
            "--kubeconfig",
            help="Path to the kubeconfig file (default: KUBECONFIG's files, merged, else ~/.kube/config).",
            type=click.Path(),
        ),
        flag("--context", help="Kubeconfig context: the mesh cluster (default: the current one).", shell_complete=complete_context),
        flag("--user", help="The kubeconfig user to use (as kubectl's --user)."),
        flag("--cluster", help="The kubeconfig cluster to use (as kubectl's --cluster)."),
        flag("--server", "-s", help="The address and port of the Kubernetes API server."),
        flag("--token", help="Bearer token for authentication to the API server."),
        flag("--certificate-authority", help="Path to a cert file for the certificate authority.", type=click.Path()),
        flag("--client-certificate", help="Path to a client certificate file for TLS.", type=click.Path()),
        flag("--client-key", help="Path to a client key file for TLS.", type=click.Path()),
        flag("--tls-server-name", help="Server name to use for the API server's certificate validation."),
        flag("--as", "impersonate", help="Username to impersonate for the operation (a regular user or a service account)."),
        flag("--as-group", "impersonate_group", help="Group to impersonate for the operation; repeatable.", multiple=True),
        flag("--as-uid", "impersonate_uid", help="UID to impersonate for the operation."),
        flag(
            "--request-timeout",
            help="How long to wait for one API server request (1s, 2m, 3h; 0: the plugin's own limits).",
            default=CONNECTION_DEFAULTS.request_timeout,
        ),
        flag(
            "--insecure-skip-tls-verify",
            help="Do not check the API server's certificate (this will make your HTTPS connections insecure).",
            default=CONNECTION_DEFAULTS.insecure_skip_tls_verify,
        ),
    ),
)

REVISION = flag(
    "--revision", "-r", help="Istio revision of the istiods (adds istio.io/rev=REV).", default=DEFAULTS.revision, show_default=False
)

#: Where istiod runs.
TARGET = FlagGroup(
    "target",
    (
        flag("--external-context", help="Control-plane cluster context (default: the same as --context).", shell_complete=complete_context),
        flag(
            "--istio-namespace",
            "-i",
            envvar="ISTIOCTL_ISTIONAMESPACE",
            show_envvar=True,
            help="Namespace of istiod (default: where istiod pods are found in the external cluster, else istio-system).",
            shell_complete=complete_istio_namespace,
        ),
        REVISION,
        flag(
            "--cluster-id",
            help="The mesh cluster's Istio cluster ID, which istiod reviews its tokens in (default: the one its injection "
            "webhook or the shared aggregator's advertisement names, else istiod's config cluster).",
            default=DEFAULTS.cluster_id,
            show_default=False,
        ),
    ),
)

#: How istiod is reached: which aggregator.
MODE = FlagGroup(
    "mode",
    (
        flag(
            "--mode",
            help="auto: shared when the mesh cluster advertises an aggregator, else pod; pod: run the aggregator in a short-lived "
            "pod next to istiod; local: run it here, port-forwarding to each istiod; shared: the operator's aggregator, nothing created.",
            type=values_of(Mode),
            default=DEFAULTS.mode.value,
        ),
        flag("--aggregator", help="HOST:PORT of a shared aggregator, instead of the one the mesh cluster advertises."),
        flag(
            "--aggregator-ca", help="With --aggregator: the CA (PEM) of its certificate (default: the system's roots).", type=click.Path()
        ),
    ),
)

#: How long a session may take to get ready, and how long pod mode's pod may live.
LIMITS = FlagGroup(
    "limits",
    (
        flag(
            "--timeout",
            help="Seconds to get ready (pod start, tunnels), and to retry removal while the API server does not answer.",
            default=DEFAULTS.timeout,
        ),
        flag("--ttl", help="Seconds after which the pod ends itself, even if we are killed.", default=DEFAULTS.ttl),
    ),
)

#: The aggregator's image, where it runs in a pod (pod mode's, the operator's install).
IMAGE = FlagGroup(
    "image",
    (
        # Air-gapped clusters mirror the image; the variable saves repeating --image on every command.
        flag("--image", envvar="KUBECTL_ISTIO_REMOTE_IMAGE", help="The aggregator's image.", show_envvar=True, default=DEFAULTS.image),
        flag("--image-pull-secret", help="Pull secret for --image; repeatable.", multiple=True),
        flag("--pull-policy", help="Image pull policy.", type=values_of(PullPolicy), default=DEFAULTS.pull_policy.value),
    ),
)

#: Progress and details on stderr.
VERBOSE = FlagGroup("verbose", (flag("-v", "--verbose", help="Log progress and details on stderr.", default=DEFAULTS.verbose),))

#: A session: proxy-status, shell, version --remote, remote-clusters.
SESSION = (CONNECTION, TARGET, MODE, LIMITS, IMAGE, VERBOSE)

#: The -o values that print a document (json, yaml) rather than a table: the same words in every command that has -o.
STRUCTURED = ("json", "yaml")

ISTIOCTL = flag("--istioctl", "istioctl_path", help="istioctl to use (default: from PATH).")


def output(*choices: str, help: str) -> click.Option:
    """-o, the first choice its default."""
    return flag("--output", "-o", help=help, type=click.Choice(choices), default=choices[0])


def takes(*groups: FlagGroup) -> Callable[[click.Command], click.Command]:
    """Add the groups' flags to a command; they reach `ctx.params`, not its call (its signature names what its body uses)."""

    def attach(command: click.Command) -> click.Command:
        flags = [option for group in groups for option in group.flags]
        names = {option.name for option in flags}
        inner = command.callback
        assert inner is not None
        command.params.extend(flags)

        @functools.wraps(inner)
        def own_parameters_only(**values: object) -> object:
            return inner(**{name: value for name, value in values.items() if name not in names})

        command.callback = own_parameters_only
        return command

    return attach
