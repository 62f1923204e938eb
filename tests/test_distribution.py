"""What a user installs: the frozen krew archive through the real krew and kubectl, krew.yaml
through krew's own validator, and shell completion through kubectl's plugin-completion protocol.

krew, its validator and kubectl are the sandbox's builds (`python -m tests.sandbox build`); no
cluster is needed. The archive is built here with PyInstaller, for this machine's platform.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomllib
import yaml

from kubectl_istio_remote import __version__
from kubectl_istio_remote.aggregator.client import Connection, ask
from kubectl_istio_remote.deploy.workload import RUN_AS_USER
from tests.doubles.istiod import FakeIstiod
from tests.doubles.mesh import proxy_ids, syncz
from tests.doubles.serving import serving
from tests.sandbox import build
from tests.test_serve_command import start_serve

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugin-manifest"))
from build_archive import sha256  # noqa: E402 - plugin-manifest is a script directory

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: t}}]
contexts:
- {name: prod-external, context: {cluster: c, user: u}}
- {name: prod-mesh, context: {cluster: c, user: u}}
- {name: staging, context: {cluster: c, user: u}}
current-context: staging
"""


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kubectl and krew on a PATH of their own, as a user who installed them has."""
    directory = tmp_path_factory.mktemp("tools")
    for name in ("kubectl", "kubectl-krew", "validate-krew-manifest"):
        (directory / name).symlink_to(build.binary(name))
    return directory


def manifest_for(archive: Path, uri: str) -> dict:
    """The repository's krew.yaml with every platform pointed at `archive`: krew checks the sha256 of what it installs."""
    manifest = yaml.safe_load((ROOT / "krew.yaml").read_text())
    for platform in manifest["spec"]["platforms"]:
        platform["uri"], platform["sha256"] = uri, sha256(archive)
    return manifest


@pytest.fixture
def krew_root(tmp_path: Path, tools: Path) -> dict[str, str]:
    root = tmp_path / "krew"
    return {
        "HOME": str(tmp_path),
        "KREW_ROOT": str(root),
        "KUBECONFIG": str(tmp_path / "kubeconfig"),
        "PATH": f"{root / 'bin'}:{tools}:/usr/bin:/bin",
    }


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def krew_install(archive: Path, env: dict[str, str], tmp_path: Path) -> None:
    manifest = tmp_path / "istio-remote.yaml"
    manifest.write_text(yaml.safe_dump(manifest_for(archive, f"https://example.invalid/{archive.name}")))
    result = run(["kubectl", "krew", "install", f"--manifest={manifest}", f"--archive={archive}"], env)
    assert result.returncode == 0, result.stderr


def test_the_archive_is_the_one_krew_yaml_names_for_this_platform(archive: Path) -> None:
    """krew downloads the uri of the platform whose selector matches the machine: the built archive must be that file."""
    import platform as machine

    this_os = {"linux": "linux", "darwin": "darwin"}[sys.platform]
    this_arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[machine.machine().lower()]
    platforms = yaml.safe_load((ROOT / "krew.yaml").read_text())["spec"]["platforms"]
    matching = [p["uri"] for p in platforms if p["selector"]["matchLabels"] == {"os": this_os, "arch": this_arch}]
    assert len(matching) == 1, platforms
    assert matching[0].rsplit("/", 1)[-1] == archive.name


def test_krew_yaml_keeps_the_index_conventions() -> None:
    spec = yaml.safe_load((ROOT / "krew.yaml").read_text())["spec"]
    assert yaml.safe_load((ROOT / "krew.yaml").read_text())["metadata"]["name"] == "istio-remote"
    assert spec["version"] == f"v{__version__}"
    assert len(spec["shortDescription"]) <= 50
    assert "kubectl istio-remote " not in spec["description"], "krew-index reviewers reject usage examples in the description"
    assert "istioctl" in spec["caveats"] and "external" in spec["caveats"]
    assert {(p["selector"]["matchLabels"]["os"], p["selector"]["matchLabels"]["arch"]) for p in spec["platforms"]} == {
        ("linux", "amd64"), ("linux", "arm64"), ("darwin", "amd64"), ("darwin", "arm64")
    }  # fmt: skip
    assert all(p["bin"] == "kubectl-istio_remote" for p in spec["platforms"])


def test_krew_installs_the_archive_and_kubectl_runs_the_plugin(archive: Path, krew_root: dict[str, str], tmp_path: Path) -> None:
    krew_install(archive, krew_root, tmp_path)
    help_text = run(["kubectl", "istio-remote", "--help"], krew_root)
    assert help_text.returncode == 0, help_text.stderr
    assert "Usage: kubectl istio-remote" in help_text.stdout
    version = run(["kubectl", "istio-remote", "version"], krew_root)
    assert f"kubectl-istio-remote {__version__}" in version.stdout, version.stderr
    assert "LICENSE" in os.listdir(Path(krew_root["KREW_ROOT"]) / "store" / "istio-remote" / f"v{__version__}")


def test_the_image_runs_the_plugin_as_the_uid_the_pod_specs_declare() -> None:
    """runAsNonRoot is only checkable by the kubelet with a numeric USER, and it must match runAsUser."""
    lines = [line.split() for line in (ROOT / "Dockerfile").read_text().splitlines() if line and not line.startswith("#")]
    stages = [index for index, words in enumerate(lines) if words[0] == "FROM"]
    final = lines[stages[-1] :]
    assert len(stages) >= 2, "multi-stage: build tools stay out of the image"
    assert ["USER", f"{RUN_AS_USER}:{RUN_AS_USER}"] in final
    assert ["ENTRYPOINT", '["kubectl-istio_remote"]'] in final


@pytest.mark.parametrize("workflow", ["release.yml", "ci.yml"])
def test_the_workflows_pass_actionlint(workflow: str) -> None:
    """They run only on GitHub; actionlint checks their syntax, expressions, runner labels and action inputs."""
    result = subprocess.run(
        [str(build.binary("actionlint")), "-no-color", f".github/workflows/{workflow}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_tests_every_python_the_package_claims() -> None:
    """The unit suite's matrix is the classifiers' Python versions, the oldest of them requires-python's floor."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    claimed = [c.rsplit(" :: ", 1)[1] for c in project["classifiers"] if c.startswith("Programming Language :: Python :: 3.")]
    matrix = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())["jobs"]["unit"]["strategy"]["matrix"]["python"]
    assert matrix == claimed, "ci.yml's unit matrix and pyproject.toml's classifiers name the same Pythons"
    assert project["requires-python"] == f">={claimed[0]}"


def test_pipx_install_gives_kubectl_istio_remote(tools: Path, tmp_path: Path) -> None:
    """The README's install command, into a private pipx home, then the plugin through kubectl."""
    env = {
        **os.environ,
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
    }
    installed = subprocess.run(
        [sys.executable, "-m", "pipx", "install", "--python", sys.executable, str(ROOT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    user = {"HOME": str(tmp_path), "PATH": f"{tmp_path / 'bin'}:{tools}:/usr/bin:/bin"}
    help_text = run(["kubectl", "istio-remote", "--help"], user)
    assert help_text.returncode == 0 and "Usage: kubectl istio-remote" in help_text.stdout, help_text.stderr
    plugins = run(["kubectl", "plugin", "list"], user)
    assert f"{tmp_path / 'bin' / 'kubectl-istio_remote'}" in plugins.stdout, plugins.stderr


async def test_the_frozen_plugin_aggregates_over_tls(archive: Path, krew_root: dict[str, str], tmp_path: Path) -> None:
    """grpc, the Envoy protos and cryptography made it into the archive: `serve` through kubectl answers syncz."""
    krew_install(archive, krew_root, tmp_path)
    fakes = [FakeIstiod(f"istiod-{i}", [f"app-{i}.sample"]) for i in range(2)]
    for fake in fakes:
        await fake.start()
    args = [arg for fake in fakes for arg in ("--istiod-address", fake.address)]
    process, address = await start_serve("--istiod-plaintext", *args, command=["kubectl", "istio-remote", "serve"], env=krew_root)
    try:
        replies = await ask(Connection(address, tls=True), [syncz()])
        assert sorted(proxy_ids(replies)) == ["app-0.sample", "app-1.sample"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        for fake in fakes:
            await fake.stop()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def archive_server(archive: Path) -> Iterator[str]:
    """The archive over HTTP on loopback, where the validator downloads every platform from."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(archive.parent)))
    with serving(server):
        yield f"http://127.0.0.1:{server.server_address[1]}/{archive.name}"


def test_krews_validator_accepts_krew_yaml(archive: Path, archive_server: str, krew_root: dict[str, str], tmp_path: Path) -> None:
    """Validates the repository's manifest as krew-index CI does; every platform downloads this
    machine's archive, since the others are built on their own release runners."""
    manifest = tmp_path / "istio-remote.yaml"
    manifest.write_text(yaml.safe_dump(manifest_for(archive, archive_server)))
    result = run(["validate-krew-manifest", "-manifest", str(manifest)], krew_root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "spec.platforms installed fine" in result.stderr


def test_kubectl_completes_subcommands_flags_and_contexts_through_the_helper(
    archive: Path, krew_root: dict[str, str], tmp_path: Path
) -> None:
    krew_install(archive, krew_root, tmp_path)
    Path(krew_root["KUBECONFIG"]).write_text(KUBECONFIG)
    installed = run(["kubectl", "istio-remote", "completion", "install"], krew_root)
    assert installed.returncode == 0, installed.stderr
    assert (Path(krew_root["KREW_ROOT"]) / "bin" / "kubectl_complete-istio_remote").exists()

    def complete(*words: str) -> list[str]:
        result = run(["kubectl", "__complete", "istio-remote", *words], krew_root)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    subcommands = complete("pro")
    assert subcommands[0].startswith("proxy-status\t") and subcommands[-1] == ":4"
    assert [line.split("\t")[0] for line in complete("proxy-status", "--ext")] == ["--external-context", ":4"]
    assert [line.split("\t")[0] for line in complete("proxy-status", "--context", "prod-")] == ["prod-external", "prod-mesh", ":4"]
    assert complete("proxy-status", "-o", "")[:-1] == ["table", "wide", "json", "yaml"]
    assert complete("proxy-status", "--kubeconfig", "")[-1] == ":0", "a path completes as a file name"


def test_bash_completes_the_plugin_typed_directly() -> None:
    """pipx users type `kubectl-istio_remote`; the bash script must reach this plugin's completer."""
    bash = shutil.which("bash")
    assert bash, "bash is needed to test its completion script"
    plugin_directory = Path(sys.executable).parent
    script = (
        "source <(kubectl-istio_remote completion bash)\n"
        "COMP_WORDS=(kubectl-istio_remote proxy-status --ou); COMP_CWORD=2\n"
        "_kubectl_istio_remote_completion kubectl-istio_remote\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{plugin_directory}:{os.environ['PATH']}"}
    result = subprocess.run([bash, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert result.stdout.split() == ["--output"], result.stderr
