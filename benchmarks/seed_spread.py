"""Scores over seeds: mean and half the range, and whether a method's gain over a baseline exceeds that spread
(shared by the label-efficiency and active-learning benchmarks)."""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np


def spread(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and half the range."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float((arr.max() - arr.min()) / 2)


def compare(method: Sequence[float], baseline: Sequence[float], label: str) -> str:
    """One line: the mean gain of `method` over `baseline` (scores in [0, 1], same seeds in order) in points, the
    gain of each seed, and whether the mean gain exceeds the larger of the two spreads (half ranges)."""
    gain = 100 * (np.mean(method) - np.mean(baseline))
    per_seed = " ".join(f"{100 * (a - b):+.1f}" for a, b in zip(method, baseline))
    largest = 100 * max(spread(method)[1], spread(baseline)[1])
    verdict = ("one seed: no spread to compare with" if len(method) < 2 else
               "beyond the seed spread" if gain > largest else "NOT beyond the seed spread")
    return f"{label}: {gain:+.1f} mIoU points (per seed {per_seed}); largest seed spread {largest:.1f}: {verdict}"
