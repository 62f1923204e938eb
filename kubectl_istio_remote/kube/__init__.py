"""The plugin's adapter to Kubernetes: pinned contexts, one declaration per kind, generic verbs, errors a user can act on.

The kubeconfig is read as kubectl reads it (kubeconfig.py: merged files, TLS, proxy-url;
overrides.py: kubectl's connection flags; credentials.py: tokens, token files, exec credential
plugins), requests go over the standard library's HTTP with kept-alive connections
(transport.py), port-forwards over websocket-client (portforward.py); answers are JSON read into
small records (records.py), failures into one line each (api_errors.py). The official client,
whose import alone cost more CPU than the rest of a command, is loaded only for the legacy auth
providers.
"""
