"""gram_jax: hardware-aware neural architecture search for edge devices.

Modules by role:
  space       search-space config (`SearchSpace`)
  metagraph   the GRAM meta-graph pytree and its pure functions
  arch        `ArchSpec`, the exact description of a derived network
  models      `Supernet` (runtime masks) and `ExactNet` (live nodes only)
  cost        analytic MACs and parameters, latency tables
  data        embedded digits and TFDS datasets, proxy splits
  train       training steps and proxy training of candidates
  config      checked settings from config files and overrides
  commands    the `gram-jax` command lines

The modules form layers (docs/architecture.md): each imports only its own
layer or lower ones, which tests/test_layering.py checks.
"""

__version__ = "0.1.0"
