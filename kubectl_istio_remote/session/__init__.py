"""A session: what must exist for istioctl to reach every istiod, and its guaranteed removal.

`settings` holds what the user asked for and what a session will do; `choice` settles it once
(contexts pinned, the mode and the istio namespace chosen); `preflight` asks, in one round per
cluster, everything that must be known before anything is created (`permissions`: the RBAC rights
each mode needs; `leftovers`: what killed sessions left; `istiods`: istiod's pods); `modes` writes
down what a mode does, and `pod_mode`, `local_mode` and `shared_mode` are the three;
`lifecycle.open_session` runs one and always tears it down. `token` is the token istioctl
authenticates with; `health` and `readiness` wait for the aggregator and its pod.
"""
