"""The renderer: istioctl's output (tables, JSON, YAML) printed from the aggregator's merged answers, without istioctl.

`syncz` is the record a proxy-status answer becomes, `render` istioctl's proxy-status table,
`builds` version --remote's two tables, `clusterz` remote-clusters'. Nothing here talks to a
cluster or an aggregator: each module turns answers into text.
"""
