"""The console entry point, kept free of imports so it runs before anything slow.

Ctrl-C while the CLI is still loading must end the process the way a shell command ends (exit
130), not with a KeyboardInterrupt traceback: nothing exists yet to tear down. Commands install
their own handlers (`signals.signals_interrupt`) before they create anything.
"""

import os
import signal
import sys


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from kubectl_istio_remote.startup import defer_collection

    defer_collection()
    from kubectl_istio_remote.cli import main as cli_main

    code = cli_main()
    # The command is over, its objects removed and its output written: end without the interpreter's finalization.
    # There gRPC's C objects, still held by daemon threads (the asyncio loop, a token request), were freed while
    # those threads ran: `double free or corruption` or a segfault after the answer, about 1 run in 90 beside two busy
    # cores. Nothing of ours is left to run at exit.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: what could be said is said
            code = code or 1
    os._exit(code)
