"""The command lines of `gram-jax` that are only a command line.

Each module defines ``add_arguments(parser)`` and ``run(args, rest)`` over
library calls, and `gram_jax.cli` registers it by name:

  search       ``gram-jax search``: `gram_jax.search.loop.run_search`
  quickstart   ``gram-jax quickstart``: the quickstart search, then training
  report       ``gram-jax report``: drawing, Pareto plot and summary of a run
  lut          ``gram-jax lut build|validate|predict``: `gram_jax.cost.lut`
  single_path  ``gram-jax single-path search|table|export``
  export       ``gram-jax export``: an architecture to TFLite
  latency      ``gram-jax latency``: time a .tflite model

This is the top layer (docs/architecture.md): these modules may import any
other, and no module imports them. Workflow modules whose library function
is the command (`gram_jax.fulltrain`, `gram_jax.derive`, ...) carry their
own ``add_arguments`` and ``run``.
"""
