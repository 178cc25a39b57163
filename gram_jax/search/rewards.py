"""Rewards: accuracy penalised by cost (DESIGN.md decision 5).

GRAM [SN Eq. 1-3]: ``eta' = eta - gamma * tau``. The cost `tau` is

  * ``"macs"``: ``log10(MACs) - 6``, AutoShrink's analytic stand-in for
    latency (ALGORITHMS.md 1.3 #6); with gamma = 0.1 this is exactly
    AutoShrink's score ``acc - 0.1 * (log10 MACs - 6)``;
  * ``"lut"``: milliseconds per image predicted by a per-op latency table,
    computed inside the search program from the masks (no compilation per
    candidate); ``"measured"``: milliseconds per image of the candidate
    exported to TFLite and timed with LiteRT on this machine. The paper uses
    gamma = 1 per ms [SN §4.1].
"""

from __future__ import annotations

import math

COSTS = ("macs", "lut", "measured")


def macs_cost(macs: int) -> float:
  """``log10(MACs) - 6``: 0 at 1M MACs, +1 per 10x more."""
  return math.log10(max(int(macs), 1)) - 6.0


def reward(accuracy: float, cost: float, gamma: float) -> float:
  return float(accuracy) - float(gamma) * float(cost)
