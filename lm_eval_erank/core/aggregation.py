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
from collections.abc import Callable, Sequence

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
    replicates = _bootstrap_replicates(statistic, values, iters)
    return "N/A" if replicates is None else float(replicates.std(ddof=1))


def _bootstrap_replicates(statistic, values: np.ndarray, iters: int) -> np.ndarray | None:
    """``statistic`` of ``iters`` seeded paired resamples of the rows of ``values``, concatenated
    along the first axis (None with fewer than 2 rows or 2 resamples)."""
    n = len(values)
    if n < 2 or iters < 2:
        return None
    # Resample a canonical (sorted) order, so the estimate depends only on the multiset of
    # values, not on the order documents arrive in (which differs under data parallelism).
    values = values[np.lexsort(values.T[::-1])]
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    replicates = []
    for start in range(0, iters, _BOOTSTRAP_CHUNK):
        size = min(_BOOTSTRAP_CHUNK, iters - start)
        rows = rng.integers(0, n, size=(size, n))
        replicates.append(statistic(values[rows]))
    return np.concatenate(replicates)


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


# ---- K random twins ------------------------------------------------------------------------
#
# With K twins M0_1..M0_K (m0_twins=K), a per-doc value of a metric that involves M0 carries one
# column per twin, and the paired metrics M1's value last:
#     erank_m0, erank_m0_b, loss_m0, diff_erank_b, reduced_loss:  [x_1, ..., x_K]
#     diff_erank, erank_ratio:                                     [eRank0_1, ..., eRank0_K, eRank1]
# A scalar (or [eRank0, eRank1]) is K = 1. Each metric's dataset value is the mean over twins of
# its single-twin value T_k; K = 1 is exactly the single-twin function above.
#
# Standard error over both sources of randomness, the texts and the twin draw: with T-bar the
# twin mean, v = the text-bootstrap (or closed-form) variance of T-bar over the texts, s2 the
# sample variance (ddof 1) of the K point values T_k, and w = sum_k Var_text(T_k - T-bar)/(K-1)
# the part of s2 that text sampling alone produces (text x twin interaction),
#     stderr^2 = v + max(s2 - w, 0) / K.
# s2 - w estimates the between-twin variance of the population value; the estimate of the total
# is unbiased for the mean-type metrics (two-way random-effects ANOVA) and to first order for the
# geometric-mean ones. Its twin part has K - 1 degrees of freedom: a 95% interval is
# sqrt(1.96^2 v + t_{0.975, K-1}^2 (s2 - w)/K) (:func:`twin_interval_halfwidth`).
# K = 1: the twin variance cannot be estimated; the stderr is the text part alone.


def n_twins(items: Sequence, paired: bool) -> int:
    """K, the number of twin columns of per-doc ``items`` (``paired``: M1's column last)."""
    values = _matrix(items)
    if values is None:
        return 1
    return values.shape[1] - (1 if paired else 0)


def _twin_geometric(kind: str) -> Callable[[np.ndarray], np.ndarray]:
    """Per-twin statistics T (..., K) from per-column geometric means g (..., c)."""
    if kind == "geometric_mean":
        return lambda g: g
    if kind == "difference":
        return lambda g: g[..., :-1] - g[..., -1:]
    if kind == "ratio":
        return lambda g: g[..., -1:] / g[..., :-1]
    raise ValueError(kind)


_SINGLE_GEOMETRIC = {"geometric_mean": (geometric_mean, geometric_mean_stderr),
                     "difference": (difference_of_geometric_means, difference_of_geometric_means_stderr),
                     "ratio": (ratio_of_geometric_means, ratio_of_geometric_means_stderr)}


def twin_values(items: Sequence, kind: str) -> np.ndarray | None:
    """The K single-twin values T_k of a twin-aware metric (``kind``: ``mean``,
    ``geometric_mean``, ``difference`` or ``ratio``); None if every item is excluded."""
    values = _matrix(items)
    if values is None:
        return None
    if kind == "mean":
        return np.array([values[:, k].mean() for k in range(values.shape[1])])
    return _twin_geometric(kind)(np.exp(np.log(values).mean(axis=0)))


def twin_aggregate(items: Sequence, kind: str) -> float | None:
    """mean_k T_k (K = 1: exactly the single-twin aggregation)."""
    if n_twins(items, kind in ("difference", "ratio")) == 1:
        return arithmetic_mean(items) if kind == "mean" else _SINGLE_GEOMETRIC[kind][0](items)
    t = twin_values(items, kind)
    return None if t is None else float(t.mean())


def twin_sd(items: Sequence, kind: str = "geometric_mean") -> float | None:
    """Sample standard deviation (ddof 1) over twins of T_k; None for K = 1 (not estimable)."""
    t = twin_values(items, kind)
    return None if t is None or len(t) < 2 else float(t.std(ddof=1))


def twin_variance_parts(items: Sequence, kind: str, iters: int = 1000) -> tuple[float, float] | None:
    """(v, max(s2 - w, 0) / K): the text part and the twin part of the squared standard error of
    :func:`twin_aggregate` for K >= 2 twins (see the comment above); None with fewer than 2
    texts or 2 resamples."""
    values = _matrix(items)
    if values is None or len(values) < 2:
        return None
    n = len(values)
    if kind == "mean":
        k = values.shape[1]
        row_mean = values.mean(axis=1)
        text_var = float(row_mean.var(ddof=1)) / n
        interaction_var = float((values - row_mean[:, None]).var(axis=0, ddof=1).sum()) / (n * (k - 1))
    else:
        statistic = _twin_geometric(kind)
        replicates = _bootstrap_replicates(lambda s: statistic(np.exp(s.mean(axis=1))), np.log(values), iters)
        if replicates is None:
            return None
        k = replicates.shape[1]
        twin_mean = replicates.mean(axis=1)
        text_var = float(twin_mean.var(ddof=1))
        interaction_var = float((replicates - twin_mean[:, None]).var(axis=0, ddof=1).sum()) / (k - 1)
    between = max(float(twin_values(items, kind).var(ddof=1)) - interaction_var, 0.0)
    return text_var, between / k


def twin_stderr(items: Sequence, kind: str, iters: int = 1000) -> float | str:
    """Standard error of :func:`twin_aggregate` over texts and twins, sqrt(v + max(s2 - w, 0) / K)
    ("N/A" with fewer than 2 texts); K = 1: exactly the single-twin (texts-only) stderr."""
    if n_twins(items, kind in ("difference", "ratio")) == 1:
        return arithmetic_mean_stderr(items) if kind == "mean" else _SINGLE_GEOMETRIC[kind][1](items, iters)
    parts = twin_variance_parts(items, kind, iters)
    return "N/A" if parts is None else math.sqrt(sum(parts))


# t_{0.975, df} for df = 1..30; beyond, 1.96 + 2.37 / df (Cornish-Fisher, within 1e-3).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.37 / df


def twin_interval_halfwidth(text_var: float, twin_var: float, k: int) -> float:
    """Half-width of the 95% interval of a K-twin value: sqrt(1.96^2 v + t_{0.975, K-1}^2 a),
    v the text part and a the twin part of its squared stderr (the twin part is estimated from
    K values: K - 1 degrees of freedom). Covers at about the nominal rate whichever part
    dominates (tests/test_aggregation.py simulates it)."""
    if k < 2:
        raise ValueError("one twin: the twin variance cannot be estimated (use m0_twins >= 2)")
    return math.sqrt(1.96**2 * text_var + t975(k - 1) ** 2 * twin_var)


# ---- the same aggregations on resamples of the documents -------------------------------------

TWIN_KINDS = ("mean", "geometric_mean", "difference", "ratio")


def resampled_twin_aggregate(items: Sequence, kind: str, rows: np.ndarray) -> np.ndarray:
    """:func:`twin_aggregate` of ``items`` on R resamples of the documents at once.

    ``items``: one per-doc value per document (None = excluded), as the harness collects them;
    ``rows``: (R, n) indices into ``items``. Replicate r is the twin mean of the single-twin values
    T_k over the present documents among ``items[rows[r]]`` (a document drawn twice counts twice),
    so ``rows = arange(n)[None]`` gives ``[twin_aggregate(items)]`` (to round-off). A replicate
    without a present document is NaN. Used by the paired bootstrap of two runs over the same
    documents (``lm-eval-erank compare``).
    """
    if kind not in TWIN_KINDS:
        raise ValueError(f"kind must be one of {TWIN_KINDS}, got {kind!r}")
    rows = np.asarray(rows)
    if rows.ndim != 2 or not np.issubdtype(rows.dtype, np.integer):
        raise ValueError(f"rows must be an (R, n) integer array, got {rows.dtype} {rows.shape}")
    n = len(items)
    if n and (rows.min(initial=0) < 0 or rows.max(initial=0) >= n):
        raise ValueError(f"rows index outside the {n} documents")
    values = _matrix(items)
    if values is None:
        return np.full(len(rows), np.nan)
    present_mask = np.array([x is not None for x in items], dtype=np.float64)
    full = np.zeros((n, values.shape[1]))
    full[present_mask == 1] = values if kind == "mean" else np.log(values)
    # counts[r, i]: how often document i is drawn in replicate r
    counts = np.bincount((rows + n * np.arange(len(rows))[:, None]).ravel(), minlength=n * len(rows))
    counts = counts.reshape(len(rows), n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        column_means = (counts @ full) / (counts @ present_mask)[:, None]
    if kind == "mean":
        return column_means.mean(axis=1)
    return _twin_geometric(kind)(np.exp(column_means)).mean(axis=1)
