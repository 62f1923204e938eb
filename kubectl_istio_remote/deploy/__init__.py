"""What the plugin writes into clusters: the aggregator as a workload, the operator's install, the mesh-side advertisement.

`workload` is what pod mode's short-lived pod and the permanent install share (container,
security context, identity); `install` is everything `manifest` prints for the control-plane
cluster; `advertisement` is the ConfigMap (and its read-only Role) that tells mesh users where
the shared aggregator is. Pure: objects are built as dicts, never sent from here.
"""
