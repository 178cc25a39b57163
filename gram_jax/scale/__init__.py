"""Scale: batched candidates, many seeds, device meshes, many hosts.

DESIGN.md decision 10; user guide in docs/scale.md. Sweeps, which run
searches, are a workflow above the search: `gram_jax.sweep`.
"""
