"""The console entry point, kept free of imports so it runs before anything slow.

Ctrl-C while the CLI is still loading must end the process the way a shell command ends (exit
130), not with a KeyboardInterrupt traceback: nothing exists yet to tear down. Commands install
their own handlers (`signals.signals_interrupt`) before they create anything.
"""

import signal
import sys


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from kubectl_istio_remote.startup import defer_collection

    defer_collection()
    from kubectl_istio_remote.cli import main as cli_main

    sys.exit(cli_main())
