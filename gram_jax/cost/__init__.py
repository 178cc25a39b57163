"""Cost models: analytic MACs and parameters (latency tables come later)."""
from gram_jax.cost.macs import Cost, accuracy_density, count, layers

__all__ = ["Cost", "accuracy_density", "count", "layers"]
