# The aggregator image pod mode deploys (ghcr.io/kubectl-istio-remote/proxy:<version>) and the
# permanent install runs: `kubectl-istio_remote serve`, as the numeric non-root user 65532
# (kubectl_istio_remote/workload.py RUN_AS_USER), on distroless Python without a shell.

# Build stage: the same Debian and CPython minor version as the runtime stage, so the wheels fit.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY kubectl_istio_remote ./kubectl_istio_remote
# kubernetes/aio (68 MB, the asyncio client) is never imported by the plugin.
RUN pip install --no-cache-dir --target /app . \
 && rm -rf /app/bin /app/kubernetes/aio \
 && printf '#!/usr/bin/python3\nfrom kubectl_istio_remote.launch import main\nmain()\n' > /app/kubectl-istio_remote \
 && chmod 0555 /app/kubectl-istio_remote \
 && python -m compileall -q /app

FROM gcr.io/distroless/python3-debian12:nonroot
COPY --from=build /app /app
ENV PYTHONPATH=/app \
    PATH=/app:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 15012
ENTRYPOINT ["kubectl-istio_remote"]
CMD ["serve", "--discover"]
