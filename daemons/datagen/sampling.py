"""Seeded random draws shared by the generator's modules: the Generator type and weighted choice.

What is drawn, and in which order, belongs to the modules that draw; the order is part of the
output, since one Generator makes every choice of a data set (see daemons.datagen.dataset).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Rng = np.random.Generator


def weighted_choice(rng: Rng, weights: Sequence[float] | np.ndarray) -> int:
    weights = np.asarray(weights, dtype=float)
    return int(rng.choice(len(weights), p=weights / weights.sum()))
