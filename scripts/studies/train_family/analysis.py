"""The family study's analysis: Spearman's rho (``core.statistics``) of Diff-eRank against the
reduced loss, the size and the step, and the verdict on the paper's trends in plain sentences."""

from __future__ import annotations

import math

import numpy as np

from lm_eval_erank.core.statistics import rank_correlation, spearman
from studies.formatting import rho

from .training import GROUP

def permutation_p(x, y) -> float | None:
    """Exact two-sided permutation p-value of Spearman's rho over all n! orderings (n <= 9; None
    beyond, or when rho is undefined): ``core.statistics.rank_correlation``."""
    result = rank_correlation(x, y, "spearman")
    return result.p_value if result.exact else None


def metric(run, task: str, name: str) -> float:
    value, _ = run.value(task, name)
    if not isinstance(value, float) or not math.isfinite(value):
        raise SystemExit(f"train_family: {run.label} has no finite {name} for {task}")
    return value


def correlations(runs, xs, tasks) -> dict:
    """Per task, over the runs (x = size or step): Spearman rho (exact p where n <= 9) of
    Diff-eRank against the reduced loss and against x, of the reduced loss, eRank(M1) and the
    eRank ratio against x; and the same two for Diff-eRank from its maximum on (``from_peak``)."""
    result = {}
    for task in tasks:
        diff = [metric(r, task, "diff_erank") for r in runs]
        reduced = [metric(r, task, "reduced_loss") for r in runs]
        peak = int(np.argmax(diff))
        result[task] = {
            "n": len(runs),
            "diff_erank_vs_reduced_loss": spearman(diff, reduced),
            "diff_erank_vs_reduced_loss_p": permutation_p(diff, reduced),
            "diff_erank_vs_x": spearman(xs, diff), "diff_erank_vs_x_p": permutation_p(xs, diff),
            "reduced_loss_vs_x": spearman(xs, reduced),
            "erank_m1_vs_x": spearman(xs, [metric(r, task, "erank_m1") for r in runs]),
            "erank_ratio_vs_x": spearman(xs, [metric(r, task, "erank_ratio") for r in runs]),
            "peak_x": xs[peak], "from_peak_n": len(runs) - peak,
            "from_peak_diff_erank_vs_reduced_loss": spearman(diff[peak:], reduced[peak:]),
            "from_peak_diff_erank_vs_reduced_loss_p": permutation_p(diff[peak:], reduced[peak:]),
        }
    return result


def callback_correlations(trained: list[dict]) -> dict:
    """Per model, over the callback's evaluations after step 0: Spearman rho of Diff-eRank against
    the reduced loss, and the same from Diff-eRank's maximum on (no p: n is too large to enumerate)."""
    result = {}
    for info in trained:
        entries = [e for e in info["callback"] if e["step"] > 0 and e.get("reduced_loss") is not None]
        diff = [e["diff_erank"] for e in entries]
        reduced = [e["reduced_loss"] for e in entries]
        peak = int(np.argmax(diff)) if diff else 0
        result[info["name"]] = {
            "n": len(entries), "peak_step": entries[peak]["step"] if entries else None,
            "diff_erank_vs_reduced_loss": spearman(diff, reduced) if entries else None,
            "from_peak_n": len(entries) - peak,
            "from_peak_diff_erank_vs_reduced_loss": spearman(diff[peak:], reduced[peak:]) if entries else None,
        }
    return result


def trend_words(values: list[float]) -> str:
    steps = np.diff(values)
    if (steps > 0).all():
        return "increases at every step"
    if (steps < 0).all():
        return "decreases at every step"
    if (steps >= 0).all():
        return f"never decreases ({int((steps == 0).sum())} ties)"
    if (steps <= 0).all():
        return f"never increases ({int((steps == 0).sum())} ties)"
    return f"is not monotone ({int((steps > 0).sum())} rises, {int((steps < 0).sum())} falls)"


def held(rho, p=None) -> str:
    """The word for a claimed positive association: "held" when rho >= 0.8 and the exact p (if
    any) <= 0.1, "did not hold" when rho <= 0, "held only partly" between."""
    if rho is None:
        return "undecided (rho undefined)"
    if rho <= 0:
        return "did not hold"
    return "held" if rho >= 0.8 and (p is None or p <= 0.1) else "held only partly"


def verdict(family_runs, sweep_runs, family_corr, sweep_corr, callback_corr, sweep_name, steps) -> list[str]:
    """Plain sentences on the paper's trends, from the group's values (all held-out texts)."""
    task = GROUP
    diffs = [metric(r, task, "diff_erank") for r in family_runs]
    reduced = [metric(r, task, "reduced_loss") for r in family_runs]
    ratios = [metric(r, task, "erank_ratio") for r in family_runs]
    m0 = [metric(r, task, "erank_m0") for r in family_runs]
    fc, sc = family_corr[task], sweep_corr[task]
    sweep_diffs = [metric(r, task, "diff_erank") for r in sweep_runs]
    sweep_reduced = [metric(r, task, "reduced_loss") for r in sweep_runs]
    join = lambda values, d=2: ", ".join(f"{v:.{d}f}" for v in values)  # noqa: E731
    cb = "; ".join(f"{name} {rho(c['diff_erank_vs_reduced_loss'])} (n = {c['n']}, maximum at step {c['peak_step']}, "
                   f"from there {rho(c['from_peak_diff_erank_vs_reduced_loss'])})" for name, c in callback_corr.items())
    return [
        f"- Diff-eRank grows with model size: {held(fc['diff_erank_vs_x'], fc['diff_erank_vs_x_p'])}. On `{task}` it {trend_words(diffs)} "
        f"({join(diffs)}; Spearman vs parameters {rho(fc['diff_erank_vs_x'], fc['diff_erank_vs_x_p'])}, n = {fc['n']}). "
        f"eRank(M0) grows with the width too ({join(m0)}): the size-normalised eRank ratio M1/M0 {trend_words(ratios)} "
        f"({join(ratios, 3)}; Spearman vs parameters {rho(fc['erank_ratio_vs_x'])}).",
        f"- Diff-eRank tracks the reduced loss across the family: {held(fc['diff_erank_vs_reduced_loss'], fc['diff_erank_vs_reduced_loss_p'])}. The reduced "
        f"loss {trend_words(reduced)} ({join(reduced, 3)} nats); Spearman Diff-eRank vs reduced loss "
        f"{rho(fc['diff_erank_vs_reduced_loss'], fc['diff_erank_vs_reduced_loss_p'])}, n = {fc['n']} "
        "(with 4 models the smallest possible two-sided p is 2/24 = 0.083).",
        f"- Diff-eRank grows during training as the loss falls: {held(sc['diff_erank_vs_reduced_loss'], sc['diff_erank_vs_reduced_loss_p'])}. Over the "
        f"checkpoints of {sweep_name} (steps {', '.join(map(str, steps))}) Diff-eRank {trend_words(sweep_diffs)} "
        f"({join(sweep_diffs)}) while the reduced loss {trend_words(sweep_reduced)} ({join(sweep_reduced, 3)}); "
        f"Spearman Diff-eRank vs reduced loss {rho(sc['diff_erank_vs_reduced_loss'], sc['diff_erank_vs_reduced_loss_p'])}, "
        f"from Diff-eRank's maximum (step {sc['peak_x']}) on "
        f"{rho(sc['from_peak_diff_erank_vs_reduced_loss'], sc['from_peak_diff_erank_vs_reduced_loss_p'])} "
        f"(n = {sc['from_peak_n']}).",
        f"- The callback (every logged step after 0, held-out paragraphs), Spearman Diff-eRank vs reduced loss per model: {cb}.",
    ]
