"""The frozen executable's entry point: the same `launch.main` as the pip console script."""

from kubectl_istio_remote.launch import main

main()
