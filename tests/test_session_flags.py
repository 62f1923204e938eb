"""The session flags as a command receives them: parsed once, enums and lists in the types the session reads."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from kubectl_istio_remote.cli import options
from kubectl_istio_remote.session.settings import Mode, PullPolicy, SessionFlags


def parsed(*args: str) -> SessionFlags:
    """The flags the way proxy-status and shell build them: from the click context of a command that declares them."""
    app = typer.Typer()
    seen: list[SessionFlags] = []

    @app.command()
    def command(
        ctx: typer.Context,
        mode: options.ModeOption = Mode.pod,
        pull_policy: options.PullPolicyOption = PullPolicy.IfNotPresent,
        image_pull_secret: options.ImagePullSecret = None,
        context: options.Context = None,
    ) -> None:
        seen.append(SessionFlags.from_params(ctx.params))

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return seen[0]


def test_enums_arrive_as_enums_and_repeated_flags_as_a_tuple() -> None:
    flags = parsed("--mode", "local", "--pull-policy", "Always", "--image-pull-secret", "a", "--image-pull-secret", "b")
    assert flags.mode is Mode.local
    assert flags.pull_policy is PullPolicy.Always
    assert flags.image_pull_secret == ("a", "b")


def test_flags_a_command_does_not_declare_keep_their_defaults() -> None:
    flags = parsed("--context", "remote")
    assert flags.context == "remote" and flags.mode is Mode.pod and flags.image_pull_secret == ()
    assert flags.external_context is None and flags.ttl == 900
