"""Network builders: the masked supernet, the exact network, baselines."""

from gram_jax.models.exact import ExactNet
from gram_jax.models.mobilenet_v2 import MobileNetV2, mobilenet_v2_cost
from gram_jax.models.supernet import Supernet, init_candidate, static_ops, to_exact_variables

__all__ = [
    "ExactNet",
    "MobileNetV2",
    "mobilenet_v2_cost",
    "Supernet",
    "init_candidate",
    "static_ops",
    "to_exact_variables",
]
