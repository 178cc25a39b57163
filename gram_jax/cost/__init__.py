"""Cost models: analytic MACs and parameters (`macs`, re-exported here) and
per-op latency tables (`lut`: `walk`, `table`, `predictor`, `timing`,
`validation`, `measure`)."""

from gram_jax.cost.macs import Cost, accuracy_density, count, layers

__all__ = ["Cost", "accuracy_density", "count", "layers"]
