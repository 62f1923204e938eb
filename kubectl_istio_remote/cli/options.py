"""Flags that several commands take, declared once, in groups a command attaches in one line (istioctl's AddRootFlags).

A group is a function whose parameters are its flags, read by Typer as it reads a command's; every
default is SessionFlags' own. `@takes(*SESSION)` above a command attaches the groups it names;
`attach` adds their parsed flags to the command built from it, and keeps them out of its call: a
command reads them, resolved, through `invocation.session_settings` (the values stay in
`ctx.params`, where completers and SessionFlags.from_params find them). Adding a flag to every
command of a group is one parameter here and one field in SessionFlags (or ConnectionFlags).

Defaults come from `istio` and `session.settings`, which import nothing heavy: `--help` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Optional, TypeVar

import click
import typer

from kubectl_istio_remote.cli.shell_completion import complete_context, complete_istio_namespace
from kubectl_istio_remote.kube.overrides import ConnectionFlags
from kubectl_istio_remote.session.settings import Mode, PullPolicy, SessionFlags

Group = Callable[..., None]
Command = TypeVar("Command", bound=Callable[..., Any])
GROUPS_ATTRIBUTE = "flag_groups"
DEFAULTS = SessionFlags()
CONNECTION_DEFAULTS = ConnectionFlags()


def connection(
    kubeconfig: Annotated[
        Optional[str],
        typer.Option(
            "--kubeconfig",
            help="Path to the kubeconfig file (default: KUBECONFIG's files, merged, else ~/.kube/config).",
            click_type=click.Path(),
        ),
    ] = CONNECTION_DEFAULTS.kubeconfig,
    context: Annotated[
        Optional[str],
        typer.Option("--context", help="Kubeconfig context: the mesh cluster (default: the current one).", autocompletion=complete_context),
    ] = CONNECTION_DEFAULTS.context,
    user: Annotated[
        Optional[str], typer.Option("--user", help="The kubeconfig user to use (as kubectl's --user).")
    ] = CONNECTION_DEFAULTS.user,
    cluster: Annotated[
        Optional[str], typer.Option("--cluster", help="The kubeconfig cluster to use (as kubectl's --cluster).")
    ] = CONNECTION_DEFAULTS.cluster,
    server: Annotated[
        Optional[str], typer.Option("--server", "-s", help="The address and port of the Kubernetes API server.")
    ] = CONNECTION_DEFAULTS.server,
    token: Annotated[
        Optional[str], typer.Option("--token", help="Bearer token for authentication to the API server.")
    ] = CONNECTION_DEFAULTS.token,
    certificate_authority: Annotated[
        Optional[str],
        typer.Option("--certificate-authority", help="Path to a cert file for the certificate authority.", click_type=click.Path()),
    ] = CONNECTION_DEFAULTS.certificate_authority,
    client_certificate: Annotated[
        Optional[str], typer.Option("--client-certificate", help="Path to a client certificate file for TLS.", click_type=click.Path())
    ] = CONNECTION_DEFAULTS.client_certificate,
    client_key: Annotated[
        Optional[str], typer.Option("--client-key", help="Path to a client key file for TLS.", click_type=click.Path())
    ] = CONNECTION_DEFAULTS.client_key,
    tls_server_name: Annotated[
        Optional[str], typer.Option("--tls-server-name", help="Server name to use for the API server's certificate validation.")
    ] = CONNECTION_DEFAULTS.tls_server_name,
    impersonate: Annotated[
        Optional[str], typer.Option("--as", help="Username to impersonate for the operation (a regular user or a service account).")
    ] = CONNECTION_DEFAULTS.impersonate,
    impersonate_group: Annotated[
        Optional[list[str]], typer.Option("--as-group", help="Group to impersonate for the operation; repeatable.")
    ] = None,
    impersonate_uid: Annotated[
        Optional[str], typer.Option("--as-uid", help="UID to impersonate for the operation.")
    ] = CONNECTION_DEFAULTS.impersonate_uid,
    request_timeout: Annotated[
        str,
        typer.Option("--request-timeout", help="How long to wait for one API server request (1s, 2m, 3h; 0: the plugin's own limits)."),
    ] = CONNECTION_DEFAULTS.request_timeout,
    insecure_skip_tls_verify: Annotated[
        bool,
        typer.Option(
            "--insecure-skip-tls-verify", help="Do not check the API server's certificate (this will make your HTTPS connections insecure)."
        ),
    ] = CONNECTION_DEFAULTS.insecure_skip_tls_verify,
) -> None:
    """kubectl's connection flags (cli-runtime's ConfigFlags), for every command that talks to a cluster."""


def target(
    external_context: Annotated[
        Optional[str],
        typer.Option(
            "--external-context", help="Control-plane cluster context (default: the same as --context).", autocompletion=complete_context
        ),
    ] = DEFAULTS.external_context,
    istio_namespace: Annotated[
        Optional[str],
        typer.Option(
            "--istio-namespace",
            "-i",
            envvar="ISTIOCTL_ISTIONAMESPACE",
            help="Namespace of istiod (default: where istiod pods are found in the external cluster, else istio-system).",
            autocompletion=complete_istio_namespace,
        ),
    ] = DEFAULTS.istio_namespace,
    revision: Annotated[
        str, typer.Option("--revision", "-r", help="Istio revision of the istiods (adds istio.io/rev=REV).")
    ] = DEFAULTS.revision,
) -> None:
    """Where istiod runs."""


def mode(
    mode: Annotated[
        Mode,
        typer.Option(
            "--mode",
            help="auto: shared when the mesh cluster advertises an aggregator, else pod; pod: run the aggregator in a short-lived "
            "pod next to istiod; local: run it here, port-forwarding to each istiod; shared: the operator's aggregator, nothing created.",
        ),
    ] = DEFAULTS.mode,
    aggregator: Annotated[
        Optional[str],
        typer.Option("--aggregator", help="HOST:PORT of a shared aggregator, instead of the one the mesh cluster advertises."),
    ] = DEFAULTS.aggregator,
    aggregator_ca: Annotated[
        Optional[str],
        typer.Option(
            "--aggregator-ca",
            help="With --aggregator: the CA (PEM) of its certificate (default: the system's roots).",
            click_type=click.Path(),
        ),
    ] = DEFAULTS.aggregator_ca,
) -> None:
    """How istiod is reached: which aggregator."""


def limits(
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", help="Seconds to get ready (pod start, tunnels), and to retry removal while the API server does not answer."
        ),
    ] = DEFAULTS.timeout,
    ttl: Annotated[int, typer.Option("--ttl", help="Seconds after which the pod ends itself, even if we are killed.")] = DEFAULTS.ttl,
) -> None:
    """How long a session may take to get ready, and how long pod mode's pod may live."""


def image(
    # Air-gapped clusters mirror the image; the variable saves repeating --image on every command.
    image: Annotated[
        str, typer.Option("--image", envvar="KUBECTL_ISTIO_REMOTE_IMAGE", help="The aggregator's image.", show_envvar=True)
    ] = DEFAULTS.image,
    image_pull_secret: Annotated[
        Optional[list[str]], typer.Option("--image-pull-secret", help="Pull secret for --image; repeatable.")
    ] = None,
    pull_policy: Annotated[PullPolicy, typer.Option("--pull-policy", help="Image pull policy.")] = DEFAULTS.pull_policy,
) -> None:
    """The aggregator's image, where it runs in a pod (pod mode's, the operator's install)."""


def verbose(
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Log progress and details on stderr.")] = DEFAULTS.verbose,
) -> None:
    """Progress and details on stderr."""


#: A session: proxy-status, shell, version --remote, remote-clusters.
SESSION = (connection, target, mode, limits, image, verbose)

#: The -o values that print a document (json, yaml) rather than a table: the same words in every command that has -o.
STRUCTURED = ("json", "yaml")

IstioctlPath = Annotated[Optional[str], typer.Option("--istioctl", help="istioctl to use (default: from PATH).")]
Revision = Annotated[str, typer.Option("--revision", "-r", help="Istio revision of the istiods (adds istio.io/rev=REV).")]


def takes(*groups: Group) -> Callable[[Command], Command]:
    """Mark a command as taking these flag groups; its signature is left as written."""

    def mark(command: Command) -> Command:
        setattr(command, GROUPS_ATTRIBUTE, groups)
        return command

    return mark


def attach(command: click.Command, function: Callable[..., Any]) -> None:
    """Add the flags of the groups `function` takes to `command`, built from it; they reach `ctx.params`, not its call."""
    params = [param for group in getattr(function, GROUPS_ATTRIBUTE, ()) for param in _parameters(group)]
    if not params or command.callback is None:
        return
    names = {param.name for param in params}
    inner = command.callback
    command.params.extend(params)
    command.callback = lambda **values: inner(**{name: value for name, value in values.items() if name not in names})


def _parameters(group: Group) -> list[click.Parameter]:
    """The group's flags as Typer builds them from its signature (a command of its own, taken apart)."""
    app = typer.Typer(add_completion=False)
    app.command()(group)
    return list(typer.main.get_command(app).params)
