"""The aggregator: istioctl's debug XDS requests fanned out to every istiod replica, and the answers merged into one.

`server` is the ADS server istioctl talks to; `upstream` the links to each replica, opened by
a dialer (`relay`); `discovery` finds the replicas (a pod watch, or fixed addresses);
`merge` and `debug_pages` are the pure merging rules; `assembly` puts a server together;
`trailers` names what the server says beside its answer; `client` and `queries` are our own
istioctl-like client, for health checks and the native commands.
"""
