"""Scale: batched candidates, many seeds, device meshes, many hosts, sweeps.

DESIGN.md decision 10; user guide in docs/scale.md.
"""
