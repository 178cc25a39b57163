"""Quickstart: a small GRAM search on the embedded digits data (no network).

Command:
  gram-jax search --config experiments/configs/quickstart.py --workdir runs/qs
  (or `make demo`, which also trains and evaluates the found network)

The config itself ships inside the package (`gram_jax/configs/quickstart.py`,
where `gram-jax quickstart` finds it when installed from a wheel); this file
is the same config under the repository's experiments/configs, for the
commands and the other configs that build on it.
"""

from gram_jax.configs.quickstart import get_config  # noqa: F401
