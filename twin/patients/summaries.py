"""Streaming summaries of a positive quantity: bounded memory, exactly mergeable.

Values go into 32,768 fixed log-spaced bins over 1e-30…1e30 (plus under/overflow bins):
a quantile read from the histogram (log-interpolated within its bin) is within one bin
width — 0.42 % relative — of the exact sample quantile. A quantile that falls in the
underflow (overflow) bin is reported as 1e-30 (1e30) clamped to the exact minimum
(maximum): a bound, not an estimate — in practice a trough that has washed out. Counts, minimum and maximum are
exact; the mean is exact up to rounding because block sums are kept as ``math.fsum``
partials and added with ``fsum`` at the end. Every part merges by addition or min/max, so
the result does not depend on how patients were split into chunks or in which order the
chunks came back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

LOG10_LOW, LOG10_HIGH, BINS = -30.0, 30.0, 32_768
_WIDTH = (LOG10_HIGH - LOG10_LOW) / BINS
RELATIVE_RESOLUTION = 10**_WIDTH - 1.0


@dataclass
class StreamingSummary:
    counts: np.ndarray = field(default_factory=lambda: np.zeros(BINS + 2, dtype=np.int64))  # [under, bins…, over]
    partial_sums: list[float] = field(default_factory=list)
    minimum: float = math.inf
    maximum: float = -math.inf

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=float).ravel()
        if values.size == 0:
            return
        with np.errstate(divide="ignore"):
            position = (np.log10(values) - LOG10_LOW) / _WIDTH
        index = np.clip(np.floor(np.nan_to_num(position, nan=-1.0, neginf=-1.0)), -1, BINS).astype(np.int64) + 1
        self.counts += np.bincount(index, minlength=BINS + 2)
        self.partial_sums.append(math.fsum(values.tolist()))
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))

    def merge(self, other: "StreamingSummary") -> None:
        self.counts += other.counts
        self.partial_sums.extend(other.partial_sums)
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    @property
    def mean(self) -> float:
        return math.fsum(self.partial_sums) / self.n if self.n else math.nan

    def quantile(self, q: float) -> float:
        """The q-quantile (0 ≤ q ≤ 1) read from the histogram, clamped to the exact min/max."""
        n = self.n
        if n == 0:
            return math.nan
        rank = q * n
        cumulative = np.cumsum(self.counts)
        index = int(np.searchsorted(cumulative, max(rank, 1e-12)))
        if index == 0:
            return max(10**LOG10_LOW, self.minimum)
        if index == BINS + 1:
            return min(10**LOG10_HIGH, self.maximum)
        below = cumulative[index - 1]
        fraction = (rank - below) / self.counts[index]
        value = 10 ** (LOG10_LOW + (index - 1 + fraction) * _WIDTH)
        return float(min(max(value, self.minimum), self.maximum))

    def describe(self, quantiles=(0.05, 0.5, 0.95)) -> dict[str, float]:
        described = {"mean": self.mean, "min": self.minimum, "max": self.maximum}
        described.update({f"p{round(q * 100):d}": self.quantile(q) for q in quantiles})
        return described
