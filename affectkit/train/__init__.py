"""Training through Ray Train: the per-worker loop, fitting, the drivers of ``affectkit run``
and ``affectkit cv``, the cluster, run logs."""
