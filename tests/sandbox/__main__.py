"""`python -m tests.sandbox build|up|env|down`: the real two-cluster sandbox on loopback."""

from __future__ import annotations

import argparse
import sys
import time

from tests.sandbox.paths import log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="build and cache every Go component and the image, or only those named")
    build_parser.add_argument("components", nargs="*", metavar="COMPONENT", help="e.g. kubernetes (kubectl, the API server), image")
    up = commands.add_parser("up", help="start the sandbox (idempotent)")
    up.add_argument("--istiods", type=int, default=3)
    up.add_argument("--proxies", type=int, default=6)
    status = commands.add_parser("status", help="exit 0 if a sandbox of this shape is running, 1 if not")
    status.add_argument("--istiods", type=int, default=3)
    status.add_argument("--proxies", type=int, default=6)
    commands.add_parser("env", help="print shell exports for the sandbox")
    latency = commands.add_parser("latency", help="toxiproxy in front of both API servers: set the round trip, print its kubeconfig")
    latency.add_argument("--rtt-ms", type=int, required=True)
    latency.add_argument("--also", action="append", default=[], metavar="NAME=HOST:PORT", help="another server behind the same round trip")
    commands.add_parser("down", help="stop every sandbox process and remove its state")
    demo = commands.add_parser("demo", help="show istioctl seeing a third of the mesh, and the plugin seeing all of it")
    demo.add_argument("--keep", action="store_true", help="leave the sandbox running afterwards")
    args = parser.parse_args(argv)

    from tests.sandbox import build, procs

    try:
        if args.command == "build":
            build.build_all(args.components or None)
        elif args.command == "up":
            from tests.sandbox import sandbox

            started = time.monotonic()
            sandbox.up(args.istiods, args.proxies)
            log(f"up in {time.monotonic() - started:.0f} s; run `eval $(python -m tests.sandbox env)`")
        elif args.command == "status":
            from tests.sandbox import sandbox

            running = sandbox.is_running(args.istiods, args.proxies)
            print("running" if running else "not running")
            return 0 if running else 1
        elif args.command == "latency":
            from tests.sandbox import latency

            latency.print_round_trip(args.rtt_ms, args.also)
        elif args.command == "env":
            from tests.sandbox import sandbox

            exports = sandbox.exports()
            print(f'export KUBECONFIG="{exports["KUBECONFIG"]}"')
            print(f'export PATH="{exports["PATH"]}:$PATH"')
        elif args.command == "demo":
            from tests.sandbox import demo

            return demo.run(args.keep)
        elif args.command == "down":
            from tests.sandbox import sandbox

            sandbox.down()
    except (build.BuildError, procs.SandboxError) as error:
        print(f"sandbox: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
