from kubectl_istio_remote.cli import main

main()
