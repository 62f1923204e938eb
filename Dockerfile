# The aggregator image pod mode deploys (ghcr.io/kubectl-istio-remote/proxy:<version>) and the
# permanent install runs: `kubectl-istio_remote serve`, as the numeric non-root user 65532
# (kubectl_istio_remote/workload.py RUN_AS_USER), with no shell and no Python installation.
#
# It holds the same PyInstaller one-directory build as the krew archives (plugin-manifest/),
# which bundles only the modules the plugin imports: ~85 MB on distroless/cc, against ~225 MB
# for the installed packages on distroless/python3.

# Build stage: Debian 12 like the runtime stage, so the bundled libraries fit its glibc.
FROM python:3.11-slim-bookworm AS build
# PyInstaller reads the shared libraries' headers with objdump.
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY kubectl_istio_remote ./kubectl_istio_remote
COPY plugin-manifest ./plugin-manifest
RUN pip install --no-cache-dir '.[release]' \
 && python plugin-manifest/build_archive.py --out /dist --work /tmp/pyinstaller \
 && mkdir /app \
 && tar -xzf /dist/kubectl-istio_remote_linux_*.tar.gz -C /app

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /app /app
ENV PATH=/app
USER 65532:65532
EXPOSE 15012
ENTRYPOINT ["kubectl-istio_remote"]
CMD ["serve", "--discover"]
