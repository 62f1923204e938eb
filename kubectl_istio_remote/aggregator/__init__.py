"""Fan-out and merge of istioctl's debug XDS requests over every istiod replica."""
