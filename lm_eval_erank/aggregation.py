"""Dataset-level aggregation of per-text values and their standard errors (pure, no lm-eval).

Per-text values arrive as the harness collects them: a list with one entry per document,
``None`` for a document excluded from that metric (e.g. a text with fewer than 2 tokens).

    geometric_mean(x)      = exp(mean_i log x_i)    eRank algorithm (a): x_i = exp(H_i)
    arithmetic_mean(x)     = mean_i x_i             algorithm (b), losses, reduced loss
    difference_of_geometric_means([(a_i, b_i)]) = exp(mean log a) - exp(mean log b)
                                                    Diff-eRank (a): a = eRank(M0), b = eRank(M1)
    ratio_of_geometric_means([(a_i, b_i)])      = exp(mean log b) / exp(mean log a)
                                                    eRank ratio M1 / M0

Standard errors: closed form for the arithmetic mean (sample std / sqrt(n)); a paired,
seeded, vectorised bootstrap for the nonlinear aggregations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

BOOTSTRAP_SEED = 1234
_BOOTSTRAP_CHUNK = 1000


def present(items: Sequence) -> list:
    """The entries that are not None (excluded documents dropped)."""
    return [x for x in items if x is not None]


def _matrix(items: Sequence) -> np.ndarray | None:
    values = present(items)
    if not values:
        return None
    return np.asarray(values, dtype=np.float64).reshape(len(values), -1)


def arithmetic_mean(items: Sequence) -> float | None:
    """mean_i x_i over present items; None when every item is excluded."""
    values = _matrix(items)
    return None if values is None else float(values[:, 0].mean())


def geometric_means(items: Sequence) -> np.ndarray | None:
    """Per column exp(mean_i log x_i) of items (positive values or tuples of them); None if all excluded."""
    values = _matrix(items)
    return None if values is None else np.exp(np.log(values).mean(axis=0))


def geometric_mean(items: Sequence) -> float | None:
    """exp(mean_i log x_i) over present items (x_i > 0); None when every item is excluded."""
    g = geometric_means(items)
    return None if g is None else float(g[0])


def difference_of_geometric_means(items: Sequence) -> float | None:
    """exp(mean_i log a_i) - exp(mean_i log b_i) for items (a_i, b_i); None if all excluded."""
    g = geometric_means(items)
    return None if g is None else float(g[0] - g[1])


def ratio_of_geometric_means(items: Sequence) -> float | None:
    """exp(mean_i log b_i) / exp(mean_i log a_i) for items (a_i, b_i); None if all excluded."""
    g = geometric_means(items)
    return None if g is None else float(g[1] / g[0])


def count(items: Sequence) -> float:
    """sum_i x_i (None counts as 0): the number of flagged documents."""
    return float(sum(x for x in items if x is not None))


def arithmetic_mean_stderr(items: Sequence, iters: int = 0) -> float | str:
    """Sample standard deviation / sqrt(n); "N/A" with fewer than 2 present items."""
    values = _matrix(items)
    if values is None or len(values) < 2:
        return "N/A"
    return float(values[:, 0].std(ddof=1) / math.sqrt(len(values)))


def count_stderr(items: Sequence, iters: int = 0) -> float:
    """A count of flagged documents is exact: 0."""
    return 0.0


def _bootstrap(statistic, values: np.ndarray, iters: int) -> float | str:
    """Std of ``statistic`` over ``iters`` paired resamples of the rows of ``values``
    ("N/A" with fewer than 2 rows or 2 resamples).

    ``statistic`` maps (R, n, k) resampled rows to (R,) replicate values.
    """
    n = len(values)
    if n < 2 or iters < 2:
        return "N/A"
    # Resample a canonical (sorted) order, so the estimate depends only on the multiset of
    # values, not on the order documents arrive in (which differs under data parallelism).
    values = values[np.lexsort(values.T[::-1])]
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    replicates = []
    for start in range(0, iters, _BOOTSTRAP_CHUNK):
        size = min(_BOOTSTRAP_CHUNK, iters - start)
        rows = rng.integers(0, n, size=(size, n))
        replicates.append(statistic(values[rows]))
    return float(np.concatenate(replicates).std(ddof=1))


def geometric_means_stderr(items: Sequence, combine, iters: int) -> float | str:
    """Paired bootstrap stderr of ``combine(g)``, g the (R, k) per-column geometric means of each
    resample of the rows of ``items``."""
    values = _matrix(items)
    if values is None:
        return "N/A"
    return _bootstrap(lambda sample: combine(np.exp(sample.mean(axis=1))), np.log(values), iters)


def geometric_mean_stderr(items: Sequence, iters: int = 1000) -> float | str:
    """Bootstrap standard error of :func:`geometric_mean`."""
    return geometric_means_stderr(items, lambda g: g[:, 0], iters)


def difference_of_geometric_means_stderr(items: Sequence, iters: int = 1000) -> float | str:
    """Paired bootstrap standard error of :func:`difference_of_geometric_means`."""
    return geometric_means_stderr(items, lambda g: g[:, 0] - g[:, 1], iters)


def ratio_of_geometric_means_stderr(items: Sequence, iters: int = 1000) -> float | str:
    """Paired bootstrap standard error of :func:`ratio_of_geometric_means`."""
    return geometric_means_stderr(items, lambda g: g[:, 1] / g[:, 0], iters)
