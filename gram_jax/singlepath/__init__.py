"""Single-Path NAS (Stamoulis et al. 2019): superkernel supernet, indicator
thresholds, differentiable per-layer runtime model, decoding to an exact
network. See docs/singlepath.md; the command is ``gram-jax single-path``."""
