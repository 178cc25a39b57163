"""Network builders: the masked supernet and the exact network."""
from gram_jax.models.exact import ExactNet
from gram_jax.models.supernet import Supernet, init_candidate, static_ops, to_exact_variables
