"""The package's one statistics module (numpy only; never torch, transformers or lm-eval): rank
correlations with permutation p-values, the exact McNemar test and the paired bootstrap over
documents. ``lm-eval-erank compare`` and the study scripts share it.

Edge-case rules, the same for every rank correlation here:

- ``x`` and ``y`` must be 1-D sequences of real numbers of one length: otherwise ``ValueError``;
- a non-finite value (NaN, infinity) is an error (``ValueError``), never a silent NaN;
- fewer than 3 pairs, or a constant ``x`` or ``y``, leave the correlation undefined: the
  coefficient is ``None`` and :func:`rank_correlation` says why (``reason``).

Ties take average ranks (Spearman) and the tau-b correction (Kendall). Permutation p-values are
two-sided and conditional on the ties: the share of the orderings of ``y`` whose statistic is at
least as far from 0 as the observed one, over all n! orderings for n <= 9 (exact), else over a
seeded random sample of orderings, (1 + hits) / (1 + resamples) (Phipson & Smyth 2010).
Comparisons are made on integer numerators, so ties in the statistic are never lost to round-off.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

EXACT_MAX_N = 9
DEFAULT_SEED = 1234
METHODS = ("spearman", "kendall")


# ---- inputs ------------------------------------------------------------------------------------

def _vector(values, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of real numbers ({exc})") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds a non-finite value (NaN or infinity): {values!r}")
    return array


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = _vector(x, "x"), _vector(y, "y")
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} and {len(y)}")
    return x, y


def undefined_reason(x, y) -> str | None:
    """Why the rank correlation of ``x`` and ``y`` is undefined (None: it is defined).

    >>> undefined_reason([1, 2, 3], [4, 4, 4])
    'y is constant'
    >>> undefined_reason([1, 2], [1, 2])
    'fewer than 3 pairs (n = 2)'
    """
    x, y = _pair(x, y)
    if len(x) < 3:
        return f"fewer than 3 pairs (n = {len(x)})"
    for name, values in (("x", x), ("y", y)):
        if (values == values[0]).all():
            return f"{name} is constant"
    return None


# ---- ranks and the two coefficients ----------------------------------------------------------

def ranks(values) -> np.ndarray:
    """Ranks 1..n of ``values``, ties given the average of the ranks they span.

    >>> ranks([3.0, 1.0, 3.0, 2.0]).tolist()
    [3.5, 1.0, 3.5, 2.0]
    """
    values = _vector(values, "values")
    order = np.argsort(values, kind="mergesort")
    result = np.empty(len(values))
    sorted_values = values[order]
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_values[end] != sorted_values[start]:
            result[order[start:end]] = (start + end + 1) / 2  # mean of ranks start+1 .. end
            start = end
    return result


def _doubled_centred_ranks(values: np.ndarray) -> np.ndarray:
    """2 rank - (n + 1): integers (average ranks are halves), summing to 0."""
    return np.rint(2 * ranks(values) - (len(values) + 1)).astype(np.int64)


def spearman(x, y) -> float | None:
    """Spearman's rho: the Pearson correlation of the average ranks,
    rho = sum_i a_i b_i / sqrt(sum_i a_i^2 sum_i b_i^2), a = rank(x) - mean, b = rank(y) - mean;
    None when undefined (fewer than 3 pairs, a constant side).

    >>> spearman([1, 2, 3, 4], [10, 20, 40, 30])
    0.8
    >>> spearman([1, 2, 3], [5, 5, 5]) is None
    True
    """
    if undefined_reason(x, y):
        return None
    a, b = _doubled_centred_ranks(_vector(x, "x")), _doubled_centred_ranks(_vector(y, "y"))
    return float(int(a @ b) / math.sqrt(int(a @ a) * int(b @ b)))


def _signs(values: np.ndarray) -> np.ndarray:
    """sign(v_i - v_j) over the pairs i < j (n (n - 1) / 2 entries, in itertools.combinations order)."""
    i, j = np.triu_indices(len(values), k=1)
    return np.sign(values[i] - values[j]).astype(np.int8)


def kendall_tau_b(x, y) -> float | None:
    """Kendall's tau-b, tau_b = (C - D) / sqrt((n0 - n1)(n0 - n2)): C, D the concordant and
    discordant pairs, n0 = n (n - 1) / 2, n1 and n2 the pairs tied in x and in y; None when
    undefined (fewer than 3 pairs, a constant side).

    >>> kendall_tau_b([1, 2, 3, 4], [10, 20, 40, 30])
    0.6666666666666666
    >>> round(kendall_tau_b([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]), 6)
    -0.471405
    """
    if undefined_reason(x, y):
        return None
    sx, sy = _signs(_vector(x, "x")), _signs(_vector(y, "y"))
    untied_x, untied_y = int(np.abs(sx).sum()), int(np.abs(sy).sum())
    return float(int(sx.astype(np.int64) @ sy) / math.sqrt(untied_x * untied_y))


# ---- permutation p-values ----------------------------------------------------------------------

@functools.lru_cache(maxsize=EXACT_MAX_N + 1)
def _all_orderings(n: int) -> np.ndarray:
    """Every permutation of range(n), (n!, n)."""
    return np.array(list(itertools.permutations(range(n))), dtype=np.int64).reshape(-1, n)


def _numerators(method: str, x: np.ndarray, y: np.ndarray, orderings: np.ndarray) -> tuple[int, np.ndarray]:
    """(the observed integer numerator of the statistic, the numerators with y reordered by each row
    of ``orderings``): Spearman sum_i a_i b_i in doubled ranks, Kendall C - D. The denominators do
    not change under reordering."""
    if method == "spearman":
        a, b = _doubled_centred_ranks(x), _doubled_centred_ranks(y)
        return int(a @ b), b[orderings] @ a
    sx = _signs(x).astype(np.int64)
    i, j = np.triu_indices(len(y), k=1)
    observed = int(sx @ _signs(y))
    permuted = []
    for chunk in range(0, len(orderings), 20_000):
        reordered = y[orderings[chunk:chunk + 20_000]]
        permuted.append(np.sign(reordered[:, i] - reordered[:, j]).astype(np.int64) @ sx)
    return observed, np.concatenate(permuted) if permuted else np.zeros(0, np.int64)


@dataclass(frozen=True)
class RankCorrelation:
    """A rank correlation and its two-sided permutation p-value.

    ``statistic`` is None when undefined (``reason`` says why, and ``p_value`` is None too);
    ``exact``: the p-value counts all n! orderings (n <= 9), else a seeded sample of ``resamples``
    orderings; ``min_p``: the smallest p-value these data could reach at all (exact only: with
    n = 4 and no ties it is 2/24 = 1/12, so no ordering reaches p < 0.05)."""

    method: str
    n: int
    statistic: float | None
    p_value: float | None
    exact: bool
    min_p: float | None
    reason: str | None = None
    resamples: int | None = None


def rank_correlation(x, y, method: str = "spearman", *, exact_max_n: int = EXACT_MAX_N,
                     resamples: int = 10_000, seed: int = DEFAULT_SEED) -> RankCorrelation:
    """Spearman's rho or Kendall's tau-b (``method``) of ``x`` and ``y`` with its two-sided
    permutation p-value, p = #{orderings of y: |T| >= |T_observed|} / n! over all orderings for
    n <= ``exact_max_n`` (at most 9), else (1 + hits) / (1 + resamples) over ``resamples`` seeded
    random orderings.

    >>> r = rank_correlation([1, 2, 3, 4], [1, 2, 3, 4])
    >>> r.statistic, r.p_value, r.min_p
    (1.0, 0.08333333333333333, 0.08333333333333333)
    >>> rank_correlation([1, 2, 3], [2, 2, 2], "kendall").reason
    'y is constant'
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(exact_max_n, int) or not 0 <= exact_max_n <= EXACT_MAX_N:
        raise ValueError(f"exact_max_n must be an integer in [0, {EXACT_MAX_N}], got {exact_max_n!r}")
    if not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples!r}")
    x, y = _pair(x, y)
    n = len(x)
    reason = undefined_reason(x, y)
    if reason:
        return RankCorrelation(method, n, None, None, n <= exact_max_n, None, reason)
    statistic = spearman(x, y) if method == "spearman" else kendall_tau_b(x, y)
    if n <= exact_max_n:
        observed, permuted = _numerators(method, x, y, _all_orderings(n))
        extreme = np.abs(permuted)
        top = int(extreme.max())
        return RankCorrelation(method, n, statistic, float((extreme >= abs(observed)).mean()), True,
                               float((extreme == top).mean()))
    rng = np.random.default_rng(seed)
    orderings = rng.permuted(np.tile(np.arange(n), (resamples, 1)), axis=1)
    observed, permuted = _numerators(method, x, y, orderings)
    hits = int((np.abs(permuted) >= abs(observed)).sum())
    return RankCorrelation(method, n, statistic, (1 + hits) / (1 + resamples), False, None, resamples=resamples)


# ---- McNemar -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class McNemar:
    """The exact McNemar test of two paired 0/1 outcomes: ``b`` documents right under A only,
    ``c`` right under B only, ``n`` documents in all, ``p_value`` two-sided."""

    b: int
    c: int
    n: int
    p_value: float


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts: with m = b + c,
    p = min(1, 2 P(X <= min(b, c))), X ~ Binomial(m, 1/2); p = 1 when m = 0.

    >>> round(mcnemar_p(1, 7), 4)   # Fagerland et al. 2013's example: 0.070
    0.0703
    >>> mcnemar_p(0, 0)
    1.0
    """
    for name, value in (("b", b), ("c", c)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer count, got {value!r}")
    m, k = int(b) + int(c), min(int(b), int(c))
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**m)  # exact integers, one correctly rounded division


def mcnemar(correct_a: Sequence, correct_b: Sequence) -> McNemar:
    """The exact McNemar test of per-document correctness (0/1 or booleans, one per document,
    in the same document order) of models A and B: b = #(A right, B wrong), c = #(A wrong, B right).

    >>> mcnemar([1, 1, 0, 1, 0], [0, 1, 0, 0, 1])
    McNemar(b=2, c=1, n=5, p_value=1.0)
    """
    a, b = _pair(correct_a, correct_b)
    for name, values in (("correct_a", a), ("correct_b", b)):
        if not np.isin(values, (0.0, 1.0)).all():
            raise ValueError(f"{name} must hold 0/1 outcomes, got {sorted(set(values.tolist()))}")
    if len(a) == 0:
        raise ValueError("no documents")
    only_a, only_b = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    return McNemar(only_a, only_b, len(a), mcnemar_p(only_a, only_b))


# ---- paired bootstrap --------------------------------------------------------------------------

@dataclass(frozen=True)
class BootstrapInterval:
    """A statistic on all documents (``estimate``), its percentile interval [low, high] at
    ``level`` and the standard deviation of its replicates (``stderr``)."""

    estimate: float
    low: float
    high: float
    stderr: float
    level: float
    resamples: int
    seed: int


def resample_rows(n: int, resamples: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(resamples, n) document indices drawn with replacement, seeded.

    >>> resample_rows(3, 2, seed=0).shape
    (2, 3)
    """
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"the bootstrap needs at least 2 documents, got {n!r}")
    if not isinstance(resamples, int) or resamples < 2:
        raise ValueError(f"resamples must be an integer >= 2, got {resamples!r}")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def paired_bootstrap(statistic: Callable[[np.ndarray], np.ndarray], n: int, *, resamples: int = 2000,
                     seed: int = DEFAULT_SEED, level: float = 0.95) -> BootstrapInterval:
    """Seeded paired bootstrap over documents: ``statistic`` maps (R, n) document indices to R
    values (e.g. model A's dataset value minus model B's, both recomputed on the same resampled
    documents); the estimate is the statistic on all documents (indices 0..n-1), the interval the
    (1 - level)/2 and (1 + level)/2 quantiles of ``resamples`` replicates.

    >>> values = np.array([1.0, 2.0, 3.0, 4.0])
    >>> r = paired_bootstrap(lambda rows: values[rows].mean(axis=1), 4, resamples=500, seed=0)
    >>> r.estimate, r.low <= 2.5 <= r.high
    (2.5, True)
    """
    if not callable(statistic):
        raise TypeError("statistic must be callable: (R, n) document indices -> R values")
    if not isinstance(level, float) or not 0 < level < 1:
        raise ValueError(f"level must be a float in (0, 1), got {level!r}")
    rows = resample_rows(n, resamples, seed)
    estimate = np.asarray(statistic(np.arange(n)[None, :]), dtype=np.float64).reshape(-1)
    replicates = np.asarray(statistic(rows), dtype=np.float64).reshape(-1)
    if estimate.shape != (1,) or replicates.shape != (resamples,):
        raise ValueError(f"statistic must return one value per row, got {estimate.shape} and {replicates.shape}")
    if not np.isfinite(estimate).all() or not np.isfinite(replicates).all():
        raise ValueError("the statistic is not finite on every resample (a resample without any defined document?)")
    low, high = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return BootstrapInterval(float(estimate[0]), float(low), float(high), float(replicates.std(ddof=1)), level,
                             resamples, seed)
