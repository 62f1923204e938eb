"""A session: what must exist for istioctl to reach every istiod, and its guaranteed removal.

`settings` resolves what the user asked for; `modes` writes down what a mode does; `pod_mode`
and `local_mode` are the two; `lifecycle.open_session` runs one and always tears it down.
"""
