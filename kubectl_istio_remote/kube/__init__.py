"""The plugin's adapter to Kubernetes: pinned contexts, one declaration per kind, generic verbs, errors a user can act on.

Requests go through the official client's transport (kubeconfig, credential plugins, TLS,
proxies, the websocket port-forward) without its generated API classes and models, whose
import alone cost more than the rest of a command; answers are JSON read into small records.
"""
