from kubectl_istio_remote.launch import main

main()
