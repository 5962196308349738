"""core/statistics.py against definitions written here (brute force), published values with ties,
and a coverage simulation of the paired bootstrap; the resampled aggregations against the metric
table's own. Pure numpy: no model, no lm-eval."""

from __future__ import annotations

import doctest
import itertools
import math
import subprocess
import sys

import numpy as np
import pytest

from lm_eval_erank.core import aggregation, metrics, statistics

# ---- definitions, written out (no numpy tricks, no shared code with the module) -------------------


def brute_ranks(values):
    """rank_i = 1 + #{j: v_j < v_i} + (#{j: v_j == v_i} - 1) / 2 (average ranks)."""
    return [1 + sum(w < v for w in values) + (sum(w == v for w in values) - 1) / 2 for v in values]


def brute_spearman(x, y):
    rx, ry = brute_ranks(x), brute_ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    return sxy / math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))


def sign(v):
    return (v > 0) - (v < 0)


def brute_kendall_tau_b(x, y):
    pairs = list(itertools.combinations(range(len(x)), 2))
    concordant = sum(sign(x[i] - x[j]) * sign(y[i] - y[j]) == 1 for i, j in pairs)
    discordant = sum(sign(x[i] - x[j]) * sign(y[i] - y[j]) == -1 for i, j in pairs)
    untied_x = sum(x[i] != x[j] for i, j in pairs)
    untied_y = sum(y[i] != y[j] for i, j in pairs)
    return (concordant - discordant) / math.sqrt(untied_x * untied_y)


def brute_p(x, y, statistic):
    """Two-sided permutation p over all orderings of y (float statistics; 1e-9 absorbs round-off)."""
    observed = abs(statistic(x, y))
    values = [abs(statistic(x, list(p))) for p in itertools.permutations(y)]
    return sum(v >= observed - 1e-9 for v in values) / len(values), sum(v >= max(values) - 1e-9 for v in values) / len(values)


def random_with_ties(rng, n):
    return [int(v) for v in rng.integers(0, max(2, n - 2), size=n)]


BRUTE = {"spearman": brute_spearman, "kendall": brute_kendall_tau_b}


# ---- rank correlations -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", statistics.METHODS)
def test_coefficients_and_exact_p_equal_the_brute_force_definitions(method):
    rng = np.random.default_rng(7)
    checked = 0
    for n in range(3, 8):
        for _ in range(6 if n < 7 else 2):
            x, y = random_with_ties(rng, n), random_with_ties(rng, n)
            result = statistics.rank_correlation(x, y, method)
            if result.statistic is None:  # a constant side: undefined, and said so
                assert result.reason.endswith("is constant") and result.p_value is None
                continue
            assert result.statistic == pytest.approx(BRUTE[method](x, y), abs=1e-12)
            p, min_p = brute_p(x, y, BRUTE[method])
            assert result.exact and result.p_value == pytest.approx(p, abs=1e-12)
            assert result.min_p == pytest.approx(min_p, abs=1e-12)
            checked += 1
    assert checked >= 18


def test_published_values_with_ties():
    # SciPy reference guide, scipy.stats.spearmanr example: rho = 0.8207826816681233 (a tie in y).
    assert statistics.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233, abs=1e-12)
    # SciPy reference guide, scipy.stats.kendalltau example (tau-b, ties on both sides): -0.47140452079103173.
    assert statistics.kendall_tau_b([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]) == pytest.approx(-0.47140452079103173, abs=1e-12)
    # SPSS's Kendall tau-b of 15 ordinal pairs (exercise 0-2 vs optimism 0-2), quoted in
    # stats.stackexchange.com question 653196: about 0.617.
    exercise = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    optimism = [0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 1, 2, 1]
    assert round(statistics.kendall_tau_b(exercise, optimism), 3) == 0.617
    # Exact null distribution of Spearman's rho, n = 6 (Zar, Biostatistical Analysis, table of critical
    # values: two-sided alpha 0.05 needs |rho| >= 0.886): rho = 0.829 gives p = 7/120 = 0.0583.
    r = statistics.rank_correlation([1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5])
    assert r.statistic == pytest.approx(29 / 35) and r.p_value == pytest.approx(7 / 120)


def test_exact_kendall_p_equals_scipys_exact_test_without_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for n in (5, 7, 9):
        x, y = list(range(n)), [int(v) for v in rng.permutation(n)]
        ours = statistics.rank_correlation(x, y, "kendall")
        theirs = stats.kendalltau(x, y, method="exact")
        assert ours.exact and ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)
        assert ours.p_value == pytest.approx(theirs.pvalue, abs=1e-12)


def test_smallest_p_and_small_n():
    # n = 4: only the two perfect orderings reach |rho| = 1, so p >= 2/24 = 1/12 whatever the data
    for method in statistics.METHODS:
        r = statistics.rank_correlation([1, 2, 3, 4], [5, 6, 7, 8], method)
        assert r.p_value == pytest.approx(1 / 12) and r.min_p == pytest.approx(1 / 12)
    # a tie widens the smallest p
    assert statistics.rank_correlation([1, 2, 3, 4], [5, 6, 7, 7]).min_p > 1 / 12
    # n = 5 can reach p < 0.05 (2/120)
    assert statistics.rank_correlation([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]).min_p == pytest.approx(2 / 120)


def test_permutation_estimate_above_nine_is_seeded_and_close_to_exact():
    x, y = [1, 2, 3, 4, 5, 6, 7, 8], [2, 1, 3, 5, 4, 8, 6, 7]
    exact = statistics.rank_correlation(x, y)
    estimate = statistics.rank_correlation(x, y, exact_max_n=0, resamples=20_000, seed=11)
    assert not estimate.exact and estimate.resamples == 20_000 and estimate.min_p is None
    assert estimate.statistic == exact.statistic
    sd = math.sqrt(exact.p_value * (1 - exact.p_value) / 20_000)
    assert abs(estimate.p_value - exact.p_value) < 4 * sd
    assert estimate == statistics.rank_correlation(x, y, exact_max_n=0, resamples=20_000, seed=11)
    big = statistics.rank_correlation(list(range(12)), [1, 0, 2, 3, 5, 4, 6, 8, 7, 9, 11, 10])
    assert not big.exact and 1 / 10_001 <= big.p_value < 0.01  # (1 + hits) / (1 + 10,000 orderings)


def test_edge_case_rules():
    assert statistics.spearman([1, 2], [2, 1]) is None
    r = statistics.rank_correlation([1, 2], [2, 1], "kendall")
    assert r.statistic is None and r.p_value is None and r.reason == "fewer than 3 pairs (n = 2)"
    assert statistics.rank_correlation([3, 3, 3], [1, 2, 3]).reason == "x is constant"
    with pytest.raises(ValueError, match="non-finite"):
        statistics.spearman([1, 2, float("nan")], [1, 2, 3])
    with pytest.raises(ValueError, match="non-finite"):
        statistics.kendall_tau_b([1, 2, 3], [1, float("inf"), 3])
    with pytest.raises(ValueError, match="differ in length"):
        statistics.spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="1-D"):
        statistics.spearman([[1, 2], [3, 4]], [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="real numbers"):
        statistics.spearman(["a", "b", "c"], [1, 2, 3])
    with pytest.raises(ValueError, match="method"):
        statistics.rank_correlation([1, 2, 3], [1, 2, 3], "pearson")
    with pytest.raises(ValueError, match="exact_max_n"):
        statistics.rank_correlation([1, 2, 3], [1, 2, 3], exact_max_n=10)


# ---- McNemar -----------------------------------------------------------------------------------------


def test_mcnemar_exact_against_the_binomial_definition_and_a_published_example():
    # Fagerland, Lydersen & Laake (2013), BMC Med Res Methodol 13:91: b = 1, c = 7, exact conditional p = 0.070
    assert round(statistics.mcnemar_p(1, 7), 3) == 0.070
    for b in range(0, 12):
        for c in range(0, 12):
            m = b + c
            tail = sum(math.comb(m, k) * 0.5**m for k in range(min(b, c) + 1))
            assert statistics.mcnemar_p(b, c) == pytest.approx(min(1.0, 2 * tail) if m else 1.0, abs=1e-15)
    assert statistics.mcnemar_p(1000, 1200) == pytest.approx(
        pytest.importorskip("scipy.stats").binomtest(1000, 2200, 0.5).pvalue, rel=1e-9)
    result = statistics.mcnemar([1, 1, 1, 0, 0, 1], [0, 0, 1, 0, 1, 1])
    assert (result.b, result.c, result.n) == (2, 1, 6) and result.p_value == 1.0
    with pytest.raises(ValueError, match="0/1"):
        statistics.mcnemar([1, 0.5], [1, 0])
    with pytest.raises(ValueError, match="non-negative integer"):
        statistics.mcnemar_p(-1, 2)


# ---- the paired bootstrap ------------------------------------------------------------------------------


def test_bootstrap_estimate_reproducibility_and_checks():
    values = np.arange(10.0)
    stat = lambda rows: values[rows].mean(axis=1)  # noqa: E731
    a = statistics.paired_bootstrap(stat, 10, resamples=300, seed=5)
    assert a.estimate == 4.5 and a.low < 4.5 < a.high and a.stderr > 0
    assert a == statistics.paired_bootstrap(stat, 10, resamples=300, seed=5)
    assert a != statistics.paired_bootstrap(stat, 10, resamples=300, seed=6)
    with pytest.raises(ValueError, match="at least 2 documents"):
        statistics.paired_bootstrap(stat, 1)
    with pytest.raises(ValueError, match="one value per row"):
        statistics.paired_bootstrap(lambda rows: rows.astype(float), 10, resamples=50)
    with pytest.raises(ValueError, match="not finite"):
        statistics.paired_bootstrap(lambda rows: np.full(len(rows), np.nan), 10, resamples=50)


def _simulated_runs(rng, n_docs, twins):
    """Per-doc Diff-eRank values [eRank(M0) twin 1..K, eRank(M1)] of models A and B on the same
    documents: log eRank = model mean + a document effect shared by every model (strong, so that
    pairing matters) + noise. Population Diff-eRank = exp(m0) - exp(m1) per model."""
    doc = rng.normal(0, 0.5, n_docs)
    def model(m0, m1):
        h0 = m0 + doc[:, None] + rng.normal(0, 0.05, (n_docs, twins))
        h1 = m1 + doc + rng.normal(0, 0.05, n_docs)
        return [[*np.exp(h0[i]), math.exp(h1[i])] for i in range(n_docs)]
    return model(3.0, 2.0), model(3.0, 2.1)


def test_paired_bootstrap_of_a_diff_erank_difference_covers_at_the_nominal_rate():
    """Coverage of the 95% interval of Diff-eRank(A) - Diff-eRank(B) (twin means, K = 2) over 300
    simulated data sets of 60 documents; the true value is the same statistic on 400,000 documents
    (the population value to about 1e-3). Monte-Carlo error of the coverage: +-2.5% at 2 sd. An
    unpaired bootstrap (A and B resampled apart) ignores the shared document effect and covers far
    too often, so the test tells the two apart."""
    rng = np.random.default_rng(2026)
    big_a, big_b = _simulated_runs(rng, 400_000, 2)
    truth = (aggregation.twin_aggregate(big_a, "difference") - aggregation.twin_aggregate(big_b, "difference"))
    paired = unpaired = 0
    trials = 300
    for _ in range(trials):
        a, b = _simulated_runs(rng, 60, 2)
        stat = lambda rows: (aggregation.resampled_twin_aggregate(a, "difference", rows)  # noqa: E731
                             - aggregation.resampled_twin_aggregate(b, "difference", rows))
        ci = statistics.paired_bootstrap(stat, 60, resamples=400, seed=int(rng.integers(1 << 30)))
        paired += ci.low <= truth <= ci.high
        rows_b = statistics.resample_rows(60, 400, seed=int(rng.integers(1 << 30)))
        rows_a = statistics.resample_rows(60, 400, seed=int(rng.integers(1 << 30)))
        reps = (aggregation.resampled_twin_aggregate(a, "difference", rows_a)
                - aggregation.resampled_twin_aggregate(b, "difference", rows_b))
        low, high = np.quantile(reps, [0.025, 0.975])
        unpaired += low <= truth <= high
    assert 0.91 <= paired / trials <= 0.98, paired / trials
    assert unpaired / trials >= 0.995, unpaired / trials


# ---- the metric table's aggregations, recomputed on resamples ---------------------------------------------


@pytest.mark.parametrize("twins", [1, 3])
def test_resampled_aggregate_on_all_documents_is_the_tables_aggregation(twins):
    rng = np.random.default_rng(twins)
    docs = []
    for i in range(40):
        m0 = [float(rng.normal(3, 0.3)) for _ in range(twins)]
        response = {"entropy_m1": None if i in (3, 17) else float(rng.normal(2, 0.3)),
                    "entropy_m0": m0 if twins > 1 else m0[0], "n_tokens": int(rng.integers(5, 30)), "truncated": False,
                    "loss_m1": float(rng.random()), "loss_m0": [5 + float(rng.random()) for _ in m0] if twins > 1
                    else 5 + float(rng.random())}
        docs.append(metrics.per_document_values(response))
    checked = set()
    for name in docs[0]:
        spec = metrics.spec_of(name)
        items = [d[name] for d in docs]
        if spec.kind is None:
            with pytest.raises(ValueError, match="not recomputed"):
                metrics.resampled_aggregate(name, items, [list(range(40))])
            continue
        value = metrics.resampled_aggregate(name, items, np.arange(40)[None])
        assert value[0] == pytest.approx(spec.aggregation(items), rel=1e-12), name
        # one resample, by hand: the aggregation of the drawn documents (duplicates kept)
        rows = rng.integers(0, 40, size=40)
        expected = spec.aggregation([items[i] for i in rows])
        assert metrics.resampled_aggregate(name, items, rows[None])[0] == pytest.approx(expected, rel=1e-12), name
        checked.add(name)
    assert {"diff_erank", "erank_m1", "erank_m0", "erank_ratio", "reduced_loss"} <= checked
    with pytest.raises(ValueError, match="outside"):
        aggregation.resampled_twin_aggregate([1.0, 2.0], "mean", [[0, 2]])


def test_doctests_run():
    for module in (statistics, aggregation, metrics):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
    assert doctest.testmod(statistics).attempted >= 10


def test_the_module_imports_numpy_only():
    code = ("import sys, lm_eval_erank.core.statistics\n"
            "print(sorted(m for m in ('torch', 'transformers', 'lm_eval', 'scipy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
