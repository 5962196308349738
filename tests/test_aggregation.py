"""Tests of lm_eval_erank.core.aggregation against direct NumPy formulas and the delta method."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lm_eval_erank.core import aggregation as agg


def positive_values(seed: int, n: int, log_mean: float = 2.0, log_std: float = 0.4) -> list[float]:
    return np.exp(np.random.default_rng(seed).normal(log_mean, log_std, size=n)).tolist()


def correlated_pairs(seed: int, n: int, rho: float = 0.9) -> list[tuple[float, float]]:
    """(a_i, b_i) with log a ~ N(log 30, 0.3), log b ~ N(log 20, 0.25), corr(log a, log b) = rho."""
    rng = np.random.default_rng(seed)
    u, v = rng.standard_normal((2, n))
    la = math.log(30.0) + 0.3 * u
    lb = math.log(20.0) + 0.25 * (rho * u + math.sqrt(1 - rho**2) * v)
    return list(zip(np.exp(la).tolist(), np.exp(lb).tolist()))


def with_nones(items: list, seed: int, k: int) -> list:
    """items with k Nones inserted at random positions (order of the items preserved)."""
    out = list(items)
    rng = np.random.default_rng(seed)
    for _ in range(k):
        out.insert(int(rng.integers(0, len(out) + 1)), None)
    return out


# ------------------------------------------------------------------ point estimates


@pytest.mark.parametrize("seed,n", [(0, 1), (1, 2), (2, 7), (3, 100)])
def test_geometric_mean_matches_numpy(seed, n):
    x = positive_values(seed, n)
    expected = float(np.exp(np.mean(np.log(x))))
    assert agg.geometric_mean(x) == pytest.approx(expected, rel=1e-12)
    assert agg.geometric_mean(with_nones(x, seed, 5)) == pytest.approx(expected, rel=1e-12)
    assert isinstance(agg.geometric_mean(x), float)


def test_geometric_mean_hand_values():
    assert agg.geometric_mean([1.0, 4.0]) == pytest.approx(2.0, rel=1e-15)
    assert agg.geometric_mean([2.0, None, 8.0, 4.0]) == pytest.approx(4.0, rel=1e-15)
    assert agg.geometric_mean([5.0]) == pytest.approx(5.0, rel=1e-15)


@pytest.mark.parametrize("seed,n", [(0, 1), (1, 2), (2, 7), (3, 100)])
def test_arithmetic_mean_matches_numpy(seed, n):
    x = np.random.default_rng(seed).normal(3.0, 2.0, size=n).tolist()
    expected = float(np.mean(x))
    assert agg.arithmetic_mean(x) == pytest.approx(expected, rel=1e-12)
    assert agg.arithmetic_mean(with_nones(x, seed, 4)) == pytest.approx(expected, rel=1e-12)


def test_arithmetic_mean_hand_values():
    assert agg.arithmetic_mean([1.0, None, 2.0, 6.0]) == pytest.approx(3.0, rel=1e-15)
    assert agg.arithmetic_mean([-1.5]) == pytest.approx(-1.5, rel=1e-15)


@pytest.mark.parametrize("seed,n", [(0, 1), (1, 3), (2, 50)])
def test_difference_of_geometric_means_matches_numpy(seed, n):
    pairs = correlated_pairs(seed, n)
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    expected = float(np.exp(np.log(a).mean()) - np.exp(np.log(b).mean()))
    assert agg.difference_of_geometric_means(pairs) == pytest.approx(expected, rel=1e-12)
    assert agg.difference_of_geometric_means(with_nones(pairs, seed, 3)) == pytest.approx(expected, rel=1e-12)
    # lists (as JSON round-trips them) work as well as tuples
    assert agg.difference_of_geometric_means([list(p) for p in pairs]) == pytest.approx(expected, rel=1e-12)


def test_difference_of_geometric_means_hand_values():
    # gm(1, 4) - gm(1, 1) = 2 - 1; order within the pair matters (a minus b)
    assert agg.difference_of_geometric_means([(1.0, 1.0), (4.0, 1.0)]) == pytest.approx(1.0, rel=1e-15)
    assert agg.difference_of_geometric_means([(1.0, 1.0), (1.0, 4.0)]) == pytest.approx(-1.0, rel=1e-15)
    # pairing is by position of the pair, not a difference of per-item differences
    assert agg.difference_of_geometric_means([(2.0, 1.0), None, (8.0, 9.0)]) == pytest.approx(4.0 - 3.0, rel=1e-15)


@pytest.mark.parametrize("fn", [agg.geometric_mean, agg.arithmetic_mean, agg.difference_of_geometric_means])
@pytest.mark.parametrize("items", [[], [None], [None, None, None]])
def test_all_excluded_returns_none(fn, items):
    assert fn(items) is None


def test_count():
    assert agg.count([1, 0, 1, None, 1, 0]) == 3.0
    assert agg.count([None, None]) == 0.0
    assert agg.count([]) == 0.0
    assert agg.count([0, 0, 0]) == 0.0
    assert agg.count([True, False, True]) == 2.0
    assert isinstance(agg.count([1, 1]), float)
    assert agg.count_stderr([1, 0, 1]) == 0.0


def test_present():
    assert agg.present([1.0, None, 0.0, None, (2.0, 3.0)]) == [1.0, 0.0, (2.0, 3.0)]


# ------------------------------------------------------------------ closed-form stderr


@pytest.mark.parametrize("seed,n", [(0, 2), (1, 3), (2, 40), (3, 500)])
def test_arithmetic_mean_stderr_matches_numpy(seed, n):
    x = np.random.default_rng(seed).normal(0.0, 3.0, size=n)
    expected = float(np.std(x, ddof=1) / np.sqrt(n))
    assert agg.arithmetic_mean_stderr(x.tolist()) == pytest.approx(expected, rel=1e-12)
    assert agg.arithmetic_mean_stderr(with_nones(x.tolist(), seed, 6)) == pytest.approx(expected, rel=1e-12)
    # iters is accepted (lm-eval passes it) and ignored for the closed form
    assert agg.arithmetic_mean_stderr(x.tolist(), iters=100) == pytest.approx(expected, rel=1e-12)


def test_arithmetic_mean_stderr_hand_value():
    # [1, 3]: sample std sqrt(2), n = 2 -> 1
    assert agg.arithmetic_mean_stderr([1.0, None, 3.0]) == pytest.approx(1.0, rel=1e-15)


@pytest.mark.parametrize("items", [[], [None], [2.0], [2.0, None, None]])
def test_arithmetic_mean_stderr_na_with_fewer_than_two(items):
    assert agg.arithmetic_mean_stderr(items) == "N/A"


# ------------------------------------------------------------------ bootstrap stderr

N_SAMPLES = 500
ITERS = 2000


def delta_se_geometric_mean(x) -> float:
    logs = np.log(np.asarray(x, dtype=np.float64))
    g = np.exp(logs.mean())
    return float(g * logs.std(ddof=1) / np.sqrt(len(logs)))


def delta_se_difference(pairs, paired: bool = True) -> float:
    logs = np.log(np.asarray(pairs, dtype=np.float64))
    ga, gb = np.exp(logs.mean(axis=0))
    cov = np.cov(logs[:, 0], logs[:, 1], ddof=1)
    var = ga**2 * cov[0, 0] + gb**2 * cov[1, 1]
    if paired:
        var -= 2 * ga * gb * cov[0, 1]
    return float(np.sqrt(var / len(logs)))


@pytest.fixture(scope="module")
def gm_sample():
    return positive_values(42, N_SAMPLES, log_mean=2.0, log_std=0.4)


@pytest.fixture(scope="module")
def pair_sample():
    return correlated_pairs(43, N_SAMPLES, rho=0.9)


def test_geometric_mean_stderr_deterministic_positive_and_near_delta_method(gm_sample):
    first = agg.geometric_mean_stderr(gm_sample, iters=ITERS)
    second = agg.geometric_mean_stderr(list(gm_sample), iters=ITERS)
    assert isinstance(first, float)
    assert first == second
    assert first > 0
    delta = delta_se_geometric_mean(gm_sample)
    assert first == pytest.approx(delta, rel=0.10)


def test_geometric_mean_stderr_skips_none(gm_sample):
    small = gm_sample[:60]
    assert agg.geometric_mean_stderr(with_nones(small, 1, 10), iters=300) == agg.geometric_mean_stderr(
        small, iters=300
    )


def test_geometric_mean_stderr_scales_with_data():
    # the geometric mean is homogeneous of degree 1, so is its bootstrap stderr (same resamples)
    x = positive_values(7, 80)
    base = agg.geometric_mean_stderr(x, iters=500)
    scaled = agg.geometric_mean_stderr([3.0 * v for v in x], iters=500)
    assert scaled == pytest.approx(3.0 * base, rel=1e-10)


def test_difference_stderr_deterministic_positive_and_near_delta_method(pair_sample):
    first = agg.difference_of_geometric_means_stderr(pair_sample, iters=ITERS)
    second = agg.difference_of_geometric_means_stderr(list(pair_sample), iters=ITERS)
    assert isinstance(first, float)
    assert first == second
    assert first > 0
    paired = delta_se_difference(pair_sample, paired=True)
    assert first == pytest.approx(paired, rel=0.10)
    # the data are strongly correlated, so an unpaired bootstrap would be far off: this
    # makes the comparison above a real check of the pairing
    unpaired = delta_se_difference(pair_sample, paired=False)
    assert unpaired > 1.5 * paired
    assert abs(first - unpaired) > 0.3 * unpaired


def test_difference_stderr_skips_none(pair_sample):
    small = pair_sample[:60]
    assert agg.difference_of_geometric_means_stderr(
        with_nones(small, 2, 10), iters=300
    ) == agg.difference_of_geometric_means_stderr(small, iters=300)


def test_difference_stderr_of_identical_pairs_is_zero():
    # a_i == b_i for every i: every resample has difference 0
    x = positive_values(8, 50)
    assert agg.difference_of_geometric_means_stderr([(v, v) for v in x], iters=200) == pytest.approx(0.0, abs=1e-12)


def test_bootstrap_chunking_consistent_near_chunk_boundary(gm_sample):
    # iters not a multiple of the internal chunk size still gives a sensible estimate
    delta = delta_se_geometric_mean(gm_sample)
    for iters in (999, 1001, 2500):
        se = agg.geometric_mean_stderr(gm_sample, iters=iters)
        assert se == pytest.approx(delta, rel=0.15)


@pytest.mark.parametrize("items", [[], [None], [3.0], [None, 3.0, None]])
def test_geometric_mean_stderr_na_with_fewer_than_two(items):
    assert agg.geometric_mean_stderr(items, iters=100) == "N/A"


@pytest.mark.parametrize("items", [[], [None], [(3.0, 2.0)], [None, (3.0, 2.0), None]])
def test_difference_stderr_na_with_fewer_than_two(items):
    assert agg.difference_of_geometric_means_stderr(items, iters=100) == "N/A"


@pytest.mark.parametrize("iters", [0, -1, -1000])
def test_bootstrap_na_without_iterations(iters):
    assert agg.geometric_mean_stderr([1.0, 2.0, 3.0], iters=iters) == "N/A"
    assert agg.difference_of_geometric_means_stderr([(1.0, 2.0), (2.0, 3.0)], iters=iters) == "N/A"


def test_bootstrap_with_one_resample_is_not_available():
    assert agg.geometric_mean_stderr([1.0, 2.0, 3.0], iters=1) == "N/A"
    assert agg.difference_of_geometric_means_stderr([(2.0, 1.0), (3.0, 1.5)], iters=1) == "N/A"


def test_bootstrap_does_not_depend_on_item_order():
    rng = np.random.default_rng(5)
    pairs = [tuple(p) for p in rng.uniform(1.0, 5.0, size=(60, 2))]
    shuffled = [pairs[i] for i in rng.permutation(len(pairs))]
    assert agg.difference_of_geometric_means_stderr(pairs, iters=300) == agg.difference_of_geometric_means_stderr(shuffled, iters=300)
    singles = [p[0] for p in pairs]
    assert agg.geometric_mean_stderr(singles, iters=300) == agg.geometric_mean_stderr(singles[::-1], iters=300)


def test_ratio_of_geometric_means_and_its_bootstrap_stderr():
    rng = np.random.default_rng(11)
    a = rng.uniform(10.0, 20.0, size=500)
    b = a * rng.uniform(0.7, 0.9, size=500)
    pairs = list(zip(a, b))
    ratio = agg.ratio_of_geometric_means(pairs + [None])
    assert ratio == pytest.approx(math.exp(np.log(b).mean() - np.log(a).mean()), rel=1e-12)
    delta = ratio * np.std(np.log(b) - np.log(a), ddof=1) / math.sqrt(len(a))
    se = agg.ratio_of_geometric_means_stderr(pairs, iters=2000)
    assert se == pytest.approx(delta, rel=0.1)
    assert agg.ratio_of_geometric_means([None]) is None and agg.ratio_of_geometric_means_stderr([None]) == "N/A"


# ------------------------------------------------------------------ K random twins


def twin_items(seed: int, n: int, k: int, paired: bool) -> list[list[float]]:
    """Per-doc rows [x_1..x_K] (or [a_1..a_K, b]) of positive values with a per-twin offset."""
    rng = np.random.default_rng(seed)
    h0 = 3.0 + rng.normal(0, 0.05, (1, k)) + rng.normal(0, 0.3, (n, 1)) + rng.normal(0, 0.05, (n, k))
    rows = np.exp(h0)
    if paired:
        rows = np.concatenate([rows, np.exp(2.5 + rng.normal(0, 0.3, (n, 1)))], axis=1)
    return rows.tolist()


@pytest.mark.parametrize("kind", ["mean", "geometric_mean", "difference", "ratio"])
def test_one_twin_is_exactly_the_single_twin_aggregation(kind):
    single = {"mean": (agg.arithmetic_mean, agg.arithmetic_mean_stderr),
              "geometric_mean": (agg.geometric_mean, agg.geometric_mean_stderr),
              "difference": (agg.difference_of_geometric_means, agg.difference_of_geometric_means_stderr),
              "ratio": (agg.ratio_of_geometric_means, agg.ratio_of_geometric_means_stderr)}[kind]
    paired = kind in ("difference", "ratio")
    items = with_nones([row if paired else row[0] for row in twin_items(0, 40, 1, paired)], 1, 3)
    assert agg.twin_aggregate(items, kind) == single[0](items)  # bit for bit
    assert agg.twin_stderr(items, kind, 500) == single[1](items, 500)
    assert agg.twin_sd(items if not paired else [r[:1] for r in items if r]) is None


@pytest.mark.parametrize("kind", ["mean", "geometric_mean", "difference", "ratio"])
def test_k_twins_value_is_the_mean_of_single_twin_values(kind):
    paired = kind in ("difference", "ratio")
    items = with_nones(twin_items(2, 30, 4, paired), 3, 2)
    present = [r for r in items if r is not None]
    singles = []
    for k in range(4):
        column = [[r[k], r[-1]] for r in present] if paired else [r[k] for r in present]
        singles.append(agg.twin_aggregate(column, kind))
    assert agg.twin_aggregate(items, kind) == pytest.approx(np.mean(singles), rel=1e-12)
    assert agg.twin_values(items, kind) == pytest.approx(singles, rel=1e-12)
    if not paired:
        assert agg.twin_sd(items, kind) == pytest.approx(np.std(singles, ddof=1), rel=1e-12)
    text_var, twin_var = agg.twin_variance_parts(items, kind, 500)
    assert agg.twin_stderr(items, kind, 500) == pytest.approx(math.sqrt(text_var + twin_var), rel=1e-12)
    assert twin_var <= np.var(singles, ddof=1) / 4


def _simulate(kind: str, seed: int, reps: int, n: int, k: int, sd_twin: float, sd_text: float,
              sd_inter: float, iters: int = 200):
    """Coverage of the K-twin interval and of a texts-only interval, and mean(stderr^2) / MSE,
    over ``reps`` data sets drawn from a model whose true value is known.

    Per text i and twin k (log scale for the eRank kinds): x_ik = m0 + u_k + t_i + e_ik with a
    twin offset u_k ~ N(0, sd_twin), a text effect t_i ~ N(0, sd_text) shared by the twins and
    M1 (M1: m1 + 0.8 t_i + d_i), and text x twin noise e_ik, d_i ~ N(0, sd_inter). The target
    is the population value averaged over twin draws: for ``mean`` m0, for ``difference``
    E exp(m0 + u) - exp(m1) = exp(m0 + sd_twin^2 / 2) - exp(m1).
    """
    rng = np.random.default_rng(seed)
    m0, m1 = 3.0, 2.6
    x0 = m0 + rng.normal(0, sd_twin, (reps, 1, k)) + (t := rng.normal(0, sd_text, (reps, n, 1))) \
        + rng.normal(0, sd_inter, (reps, n, k))
    x1 = m1 + 0.8 * t + rng.normal(0, sd_inter, (reps, n, 1))
    if kind == "mean":
        data, truth = x0, m0
    else:
        data, truth = np.exp(np.concatenate([x0, x1], axis=2)), math.exp(m0 + sd_twin**2 / 2) - math.exp(m1)
    covered = covered_texts_only = 0
    squared_se, squared_error = [], []
    for rows in data:
        items = rows.tolist()
        value = agg.twin_aggregate(items, kind)
        text_var, twin_var = agg.twin_variance_parts(items, kind, iters)
        covered += abs(value - truth) <= agg.twin_interval_halfwidth(text_var, twin_var, k)
        covered_texts_only += abs(value - truth) <= 1.96 * math.sqrt(text_var)
        squared_se.append(text_var + twin_var)
        squared_error.append((value - truth) ** 2)
    return covered / reps, covered_texts_only / reps, float(np.mean(squared_se) / np.mean(squared_error))


@pytest.mark.parametrize("kind,k,sd_twin,sd_text", [
    ("difference", 3, 0.05, 0.1),   # the twin draw dominates (as at large N in the real data)
    ("difference", 5, 0.04, 0.2),   # both sources matter
    ("mean", 3, 0.3, 0.5),          # linear statistic, twin-dominated
])
def test_k_twin_stderr_covers_texts_and_twins_at_the_nominal_rate(kind, k, sd_twin, sd_text):
    reps = 1000
    coverage, texts_only, variance_ratio = _simulate(kind, seed=k, reps=reps, n=80, k=k, sd_twin=sd_twin,
                                                     sd_text=sd_text, sd_inter=0.05)
    mc_error = math.sqrt(0.95 * 0.05 / reps)
    assert abs(coverage - 0.95) <= 3.5 * mc_error, coverage
    assert 0.85 <= variance_ratio <= 1.2, variance_ratio  # stderr^2 estimates the sampling variance
    assert texts_only < 0.85, texts_only  # a texts-only stderr misses the twin draw


def test_twin_interval_needs_two_twins_and_uses_t_quantiles():
    with pytest.raises(ValueError, match="one twin"):
        agg.twin_interval_halfwidth(1.0, 0.0, 1)
    assert agg.twin_interval_halfwidth(0.0, 1.0, 3) == pytest.approx(4.303)
    assert agg.twin_interval_halfwidth(1.0, 0.0, 3) == pytest.approx(1.96)
    assert agg.t975(100) == pytest.approx(1.984, abs=1e-3)
