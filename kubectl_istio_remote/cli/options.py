"""Options shared by several commands, defined once (after pip-tools' options module)."""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Optional

import typer

Verbose = Annotated[bool, typer.Option("-v", "--verbose", help="Log progress and details on stderr.")]
Kubeconfig = Annotated[
    Optional[str], typer.Option("--kubeconfig", envvar="KUBECONFIG", help="Path to the kubeconfig file.", show_envvar=False)
]
Context = Annotated[Optional[str], typer.Option("--context", help="Kubeconfig context (default: the current one).")]
Revision = Annotated[str, typer.Option("--revision", "-r", help="Istio revision of the istiods (adds istio.io/rev=REV).")]


def setup_logging(verbose: bool) -> None:
    """Logs go to stderr so stdout stays data."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
