"""Search strategies (optax-like triples of pure functions) and the loop.

  from gram_jax.search.gram import gram, random_search
"""
from gram_jax.search.base import SearchStrategy

__all__ = ["SearchStrategy"]
