"""kubectl istio-remote: istioctl's proxy view of every istiod replica of an external control plane."""

__version__ = "0.1.0"

#: Where the aggregator image for this version is published; the plugin deploys ``IMAGE``.
IMAGE_REPOSITORY = "ghcr.io/kubectl-istio-remote/proxy"
IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"
