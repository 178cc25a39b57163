"""Search strategies: the ask/tell contract (`base.Strategy`,
docs/strategies.md), GRAM's per-candidate triple, and the loop.

  from gram_jax.search.gram import ask_tell, gram, random_search
"""

from gram_jax.search.base import SearchStrategy, Strategy

__all__ = ["SearchStrategy", "Strategy"]
