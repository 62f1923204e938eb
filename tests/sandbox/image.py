"""The production image, built from the repository's Dockerfile unchanged, and a registry on 127.0.0.1 serving it.

The Dockerfile's bases cannot be pulled here, so stand-ins are built from Debian packages with
mmdebstrap and tagged with the Dockerfile's FROM names (`--pull=never` then takes them): a
distroless/cc-like root with the nonroot user 65532, and a python:3.11-slim-like root whose pip
installs from a wheelhouse downloaded on the host, since TLS from inside a build is intercepted
here. The build runs with no network. The image is pushed to a registry whose storage is cached;
`up` serves that storage on a free port and points pulls of ghcr.io/kubectl-istio-remote at it
(registries.conf), so the default `--image` is what the sandbox's pods run.

podman runs rootful with the sandbox's own storage and containers.conf (runc, cgroupfs, the
host's open-file limit, host network unless told), never touching the machine's defaults.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from kubectl_istio_remote import IMAGE, IMAGE_REPOSITORY
from tests.sandbox.paths import CACHE, STATE, log

REPOSITORY = Path(__file__).resolve().parents[2]
HERE = CACHE / "image"
#: Debian packages the image half needs; installed by `build` when missing (CI runs as root on Debian 12).
PACKAGES = ("podman", "runc", "slirp4netns", "mmdebstrap", "docker-registry")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
#: The Dockerfile's FROM names, stood in by roots made of these packages (variant, packages), plus an overlay and steps.
BASES = {
    # No shell in it, as in distroless: the overlay adds the nonroot user 65532, its home and /tmp.
    "gcr.io/distroless/cc-debian12:nonroot": ("extract", "libc6,libgcc-s1,libstdc++6,libssl3,zlib1g,netbase,tzdata", ""),
    # pip installs from the wheelhouse only; apt-get finds binutils installed and no source to update from.
    "python:3.11-slim-bookworm": (
        "minbase",
        "python3,python3-venv,python3-pip,python-is-python3,libpython3.11,binutils",
        "RUN rm -f /usr/lib/python3*/EXTERNALLY-MANAGED /etc/apt/sources.list /etc/apt/sources.list.d/*\n",
    ),
}
PASSWD = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
GROUP = "root:x:0:\nnonroot:x:65532:\n"
PIP_CONF = "[global]\nno-index = true\nfind-links = /wheels\n"


def _overlay(name: str, overlay: Path) -> None:
    if name.startswith("gcr.io/distroless"):
        (overlay / "etc").mkdir(parents=True)
        (overlay / "etc" / "passwd").write_text(PASSWD)
        (overlay / "etc" / "group").write_text(GROUP)
        (overlay / "home" / "nonroot").mkdir(parents=True)
        os.chown(overlay / "home" / "nonroot", 65532, 65532)
        (overlay / "tmp").mkdir()
        (overlay / "tmp").chmod(0o1777)
    else:
        (overlay / "etc").mkdir(parents=True)
        (overlay / "etc" / "pip.conf").write_text(PIP_CONF)
        _wheelhouse(overlay / "wheels")


def environment() -> dict[str, str]:
    """podman's environment: the sandbox's containers.conf, storage and registries, nothing of the machine's."""
    HERE.mkdir(parents=True, exist_ok=True)
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
    (HERE / "containers.conf").write_text(
        "[containers]\n"
        'netns = "host"\n'
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
    )
    (HERE / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{HERE / "storage"}"\nrunroot = "{STATE / "podman-run"}"\n'
    )
    registries = STATE / "registries.conf"
    if not registries.exists():
        registries.parent.mkdir(parents=True, exist_ok=True)
        registries.write_text("")
    return {
        **os.environ,
        "CONTAINERS_CONF": str(HERE / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(HERE / "storage.conf"),
        "CONTAINERS_REGISTRIES_CONF": str(registries),
    }


def podman(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], env=environment(), capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise ImageError(f"podman {' '.join(args[:3])} ... failed: {result.stderr.strip()[-800:]}")
    return result


class ImageError(RuntimeError):
    pass


def install_packages() -> None:
    """The Debian packages, when one is missing: CI installs what it needs itself, loudly failing when it cannot."""
    missing = [package for package in PACKAGES if not _installed(package)]
    if not missing:
        return
    log(f"installing Debian packages {', '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
        if result.returncode != 0:
            raise ImageError(f"`{' '.join(argv)}` failed (run as root on Debian 12): {result.stderr.strip()[-500:]}")


def _installed(package: str) -> bool:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False)
    return result.stdout.endswith("installed")


def _wheelhouse(directory: Path) -> None:
    """Every wheel the Dockerfile's `pip install '.[release]'` needs, with its build backend, downloaded on the host."""
    directory.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "-q", "-d", str(directory), f"{REPOSITORY}[release]", "setuptools>=69", "wheel"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        raise ImageError(f"downloading the image's wheels failed: {result.stderr.strip()[-500:]}")
    for built in directory.glob("kubectl_istio_remote-*"):
        built.unlink()  # the project itself is built inside, from the sources the Dockerfile copies


def _base(name: str, variant: str, packages: str, steps: str) -> None:
    """One stand-in base, cached by its recipe."""
    # The wheelhouse holds the package's dependencies: a new one in pyproject.toml needs it downloaded again.
    wheels = (REPOSITORY / "pyproject.toml").read_text() if not name.startswith("gcr.io/distroless") else ""
    recipe = hashlib.sha256(f"{SUITE}{variant}{packages}{steps}{PASSWD}{PIP_CONF}{wheels}".encode()).hexdigest()[:12]
    if _label(name, "sandbox.recipe") == recipe:
        return
    started = time.monotonic()
    work = HERE / "bases" / name.replace("/", "_").replace(":", "_")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    root = work / "root.tar"
    argv = ["mmdebstrap", "--quiet", f"--variant={variant}", f"--include={packages}", "--mode=root"]
    argv += ["--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*", SUITE, str(root), DEBIAN_MIRROR]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        raise ImageError(f"mmdebstrap for {name} failed: {result.stderr.strip()[-500:]}")
    raw = f"localhost/sandbox-root-{recipe}"
    podman("import", str(root), raw)
    root.unlink()
    _overlay(name, work / "overlay")
    (work / "Containerfile").write_text(f'FROM {raw}\nCOPY overlay/ /\n{steps}LABEL sandbox.recipe="{recipe}"\n')
    podman("build", "--pull=never", "--network=none", "-t", name, str(work))
    podman("rmi", raw, check=False)
    log(f"image base {name}: built from Debian packages in {time.monotonic() - started:.0f} s")


#: A pod of it runs and never answers (its entrypoint ignores the aggregator's arguments), as a wrong --image would.
SILENT_IMAGE = "localhost/never-answers:1"
SILENT_RECIPE = 'FROM python:3.11-slim-bookworm\nENTRYPOINT ["python3", "-c", "import time; time.sleep(86400)"]\n'


def _silent_image() -> None:
    recipe = hashlib.sha256(SILENT_RECIPE.encode()).hexdigest()[:12]
    if _label(SILENT_IMAGE, "sandbox.recipe") == recipe:
        return
    work = HERE / "silent"
    work.mkdir(parents=True, exist_ok=True)
    (work / "Containerfile").write_text(f'{SILENT_RECIPE}LABEL sandbox.recipe="{recipe}"\n')
    podman("build", "--pull=never", "--network=none", "-t", SILENT_IMAGE, str(work))
    log(f"image {SILENT_IMAGE}: built")


def _label(name: str, key: str) -> str:
    """A label of a local image ("" when the image or the label is missing)."""
    result = podman("image", "inspect", "--format", f'{{{{index .Labels "{key}"}}}}', name, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


#: What the Dockerfile copies into the build: the image is rebuilt when any of it changes.
SOURCES = ("Dockerfile", "pyproject.toml", "README.md", "LICENSE", "kubectl_istio_remote", "plugin-manifest")


def source_digest() -> str:
    digest = hashlib.sha256()
    for top in SOURCES:
        path = REPOSITORY / top
        for file in sorted([path] if path.is_file() else (p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)):
            digest.update(str(file.relative_to(REPOSITORY)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


def build_image() -> float:
    """The bases, then the Dockerfile, unchanged; the image pushed to the cached registry storage. Seconds spent (0: cached)."""
    install_packages()
    digest = source_digest()
    pushed = HERE / "registry" / "pushed"
    if _label(IMAGE, "sandbox.source") == digest and pushed.exists() and pushed.read_text() == digest:
        _silent_image()
        return 0.0
    started = time.monotonic()
    for name, (variant, packages, steps) in BASES.items():
        _base(name, variant, packages, steps)
    _silent_image()
    built = time.monotonic()
    dockerfile = str(REPOSITORY / "Dockerfile")
    podman(
        "build",
        "--pull=never",
        "--network=none",
        "--label",
        f"sandbox.source={digest}",
        "-t",
        IMAGE,
        "-f",
        dockerfile,
        str(REPOSITORY),
        timeout=1800,
    )
    log(f"image {IMAGE}: built from the Dockerfile in {time.monotonic() - built:.0f} s")
    with Registry() as address:
        podman("push", "--tls-verify=false", IMAGE, f"docker://{address}/{IMAGE.removeprefix('ghcr.io/')}")
    pushed.write_text(digest)
    return time.monotonic() - started


def registry_config(address: str) -> Path:
    """docker-registry's configuration: the cached storage, served on `address` only."""
    config = HERE / f"registry-{address.rpartition(':')[2]}.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {HERE / 'registry'}\nhttp:\n  addr: {address}\nlog:\n  level: warn\n"
    )
    return config


class Registry:
    """The registry on a free 127.0.0.1 port while a block runs (`build` pushes through it)."""

    def __init__(self) -> None:
        import portpicker

        self.address = f"127.0.0.1:{portpicker.pick_unused_port()}"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        from tests.sandbox.procs import port_open

        argv = ["docker-registry", "serve", str(registry_config(self.address))]
        self._process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        host, _, port = self.address.rpartition(":")
        for _ in range(100):
            if port_open(host, int(port)):
                return self.address
            time.sleep(0.1)
        self.__exit__()
        raise ImageError(f"the registry did not listen on {self.address}")

    def __exit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
        registry_config(self.address).unlink(missing_ok=True)


def mirror(address: str) -> None:
    """Pulls of ghcr.io/kubectl-istio-remote/... go to the sandbox's registry at `address`."""
    prefix = IMAGE_REPOSITORY.rsplit("/", 1)[0]
    (STATE / "registries.conf").write_text(
        f'[[registry]]\nprefix = "{prefix}"\nlocation = "{address}/{prefix.removeprefix("ghcr.io/")}"\ninsecure = true\n'
    )


def mirror_off() -> str:
    """Pulls go where their names say again (nowhere, here); returns the configuration to restore."""
    registries = STATE / "registries.conf"
    before = registries.read_text() if registries.exists() else ""
    registries.write_text("")
    return before


def mirror_restore(before: str) -> None:
    (STATE / "registries.conf").write_text(before)


def publish(tag: str) -> str:
    """The built image under another tag in the running sandbox's registry (a new release to roll to); its reference."""
    import re

    reference = f"{IMAGE_REPOSITORY}:{tag}"
    found = re.search(r'location = "([^/"]+)/', (STATE / "registries.conf").read_text())
    if not found:
        raise ImageError("no sandbox registry is mirrored: run `python -m tests.sandbox up`")
    podman("tag", IMAGE, reference)
    podman("push", "--tls-verify=false", reference, f"docker://{found[1]}/{reference.removeprefix('ghcr.io/')}")
    podman("rmi", reference, check=False)  # pulled again by the pod, as a new release would be
    return reference
