"""Options shared by several commands, defined once (after pip-tools' options module)."""

from __future__ import annotations

import enum
import functools
import inspect
import logging
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from kubectl_istio_remote import IMAGE
from kubectl_istio_remote.completion import complete_context, complete_file, complete_istio_namespace

Verbose = Annotated[bool, typer.Option("-v", "--verbose", help="Log progress and details on stderr.")]
Kubeconfig = Annotated[
    Optional[str], typer.Option(
        "--kubeconfig", envvar="KUBECONFIG", help="Path to the kubeconfig file.", show_envvar=False, shell_complete=complete_file
    ),
]
Context = Annotated[
    Optional[str], typer.Option("--context", help="Kubeconfig context (default: the current one).", shell_complete=complete_context)
]
Revision = Annotated[str, typer.Option("--revision", "-r", help="Istio revision of the istiods (adds istio.io/rev=REV).")]


def setup_logging(verbose: bool) -> None:
    """Logs go to stderr so stdout stays data."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    # The Kubernetes client's connection retries are noise: the error that follows says it all.
    logging.getLogger("urllib3").setLevel(logging.DEBUG if verbose else logging.ERROR)


#: Air-gapped clusters mirror the image; the variable saves repeating --image on every command.
ImageOption = Annotated[
    str, typer.Option("--image", envvar="KUBECTL_ISTIO_REMOTE_IMAGE", help="Aggregator image for pod mode.", show_envvar=True)
]


class Mode(str, enum.Enum):
    pod = "pod"
    local = "local"


class PullPolicy(str, enum.Enum):
    IfNotPresent = "IfNotPresent"
    Always = "Always"
    Never = "Never"


ModeOption = Annotated[
    Mode,
    typer.Option(
        "--mode", help="pod: run the aggregator in a short-lived pod next to istiod; local: run it here, port-forwarding to each istiod."
    ),
]


@dataclass(frozen=True)
class SessionFlags:
    """The flags every command that opens a session takes, parsed by us since kubectl passes none to plugins."""

    kubeconfig: Optional[str]
    context: Optional[str]
    external_context: Optional[str]
    istio_namespace: Optional[str]
    revision: str
    mode: Mode
    timeout: float
    ttl: int
    image: str
    image_pull_secret: list[str]
    pull_policy: PullPolicy
    verbose: bool


SESSION_FLAG_TYPES: dict[str, tuple[object, object]] = {
    "kubeconfig": (Kubeconfig, None),
    "context": (Annotated[Optional[str], typer.Option("--context", help="Mesh cluster context (default: the current one).", shell_complete=complete_context)], None),
    "external_context": (
        Annotated[
            Optional[str],
            typer.Option(
                "--external-context",
                help="Control-plane cluster context (default: the same as --context).",
                shell_complete=complete_context,
            ),
        ],
        None,
    ),
    "istio_namespace": (
        Annotated[
            Optional[str],
            typer.Option(
                "--istio-namespace",
                "-i",
                envvar="ISTIOCTL_ISTIONAMESPACE",
                help="Namespace of istiod (default: where istiod pods are found in the external cluster, else istio-system).",
                shell_complete=complete_istio_namespace,
            ),
        ],
        None,
    ),
    "revision": (Revision, ""),
    "mode": (ModeOption, Mode.pod),
    "timeout": (
        Annotated[
            float,
            typer.Option("--timeout", help="Seconds to get ready (pod start, tunnels), and to retry removal while the API server does not answer."),
        ],
        120.0,
    ),
    "ttl": (Annotated[int, typer.Option("--ttl", help="Seconds after which the pod ends itself, even if we are killed.")], 900),
    "image": (ImageOption, IMAGE),
    "image_pull_secret": (
        Annotated[list[str], typer.Option("--image-pull-secret", help="Pull secret for --image; repeatable.")],
        [],
    ),
    "pull_policy": (
        Annotated[
            PullPolicy,
            typer.Option("--pull-policy", help="Image pull policy."),
        ],
        PullPolicy.IfNotPresent,
    ),
    "verbose": (Verbose, False),
}


#: The flags that only matter when a session is opened (cleanup and doctor do without them).
CLUSTER_FLAGS = ("kubeconfig", "context", "external_context", "istio_namespace", "revision", "verbose")


def with_session_flags(command: Callable[..., object], names: tuple[str, ...] = tuple(SESSION_FLAG_TYPES)) -> Callable[..., object]:
    """Add the session flags `names` to a command's signature and hand them over as one `flags` argument."""
    signature = inspect.signature(command)
    hints = typing.get_type_hints(command, include_extras=True)
    own = [parameter.replace(annotation=hints[name]) for name, parameter in signature.parameters.items() if name != "flags"]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=SESSION_FLAG_TYPES[name][1], annotation=SESSION_FLAG_TYPES[name][0])
        for name in names
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: object) -> object:
        values = {name: default for name, (_, default) in SESSION_FLAG_TYPES.items()}
        values.update({name: kwargs.pop(name) for name in names})
        flags = SessionFlags(**values)
        setup_logging(flags.verbose)
        return command(flags=flags, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        **{parameter.name: parameter.annotation for parameter in own},
        **{name: SESSION_FLAG_TYPES[name][0] for name in names},
    }
    return wrapper


def with_cluster_flags(command: Callable[..., object]) -> Callable[..., object]:
    return with_session_flags(command, CLUSTER_FLAGS)


_passthrough: list[str] = []


def split_passthrough(args: list[str]) -> list[str]:
    """Keep what follows the first `--` for the program we run (istioctl, the shell command)."""
    if "--" not in args:
        return args
    index = args.index("--")
    _passthrough[:] = args[index + 1 :]
    return args[:index]


def passthrough_args() -> list[str]:
    return list(_passthrough)
