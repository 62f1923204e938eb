"""How the plugin gets Kubernetes API clients: in-cluster when it runs in a pod, else from a kubeconfig."""

from __future__ import annotations

from kubernetes import client, config

from kubectl_istio_remote.errors import UserError


def api_client(kubeconfig: str | None = None, context: str | None = None, *, in_cluster_first: bool = False) -> client.ApiClient:
    """A client for one pinned context; `in_cluster_first` suits the aggregator pod."""
    if in_cluster_first:
        try:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        except config.ConfigException:
            pass
    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    except (config.ConfigException, FileNotFoundError) as error:
        raise UserError(f"cannot load kubeconfig: {error}", "check --kubeconfig, KUBECONFIG and --context") from None
    return client.ApiClient(configuration)
