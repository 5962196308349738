"""The statistics of a comparison: rank correlations across models and paired tests between two
models on the same documents, all through ``core.statistics`` (and ``core.metrics`` for dataset
values recomputed on resampled documents)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..core import metrics, statistics
from .runs import Run
from .samples import TaskSamples

X_METRICS = ("diff_erank", "erank_ratio")
Y_METRICS = ("acc", "acc_norm", "reduced_loss")
PAIRED_METRICS = ("diff_erank", "erank_m1", "erank_ratio", "reduced_loss")
PAIR_MODES = ("auto", "all", "consecutive", "none")
ALL_PAIRS_UP_TO = 6  # "auto": every pair up to this many models, consecutive by the size axis above


@dataclass(frozen=True)
class SizeAxis:
    """The scaling axis: ``name`` (``parameters``: ``config.model_num_parameters``) and the value of
    each model {label: x}; ``log``: every value is positive (drawn on a log scale)."""

    name: str
    values: Mapping[str, float]

    @property
    def log(self) -> bool:
        return bool(self.values) and all(v > 0 for v in self.values.values())


def size_axis(runs: Sequence[Run], name: str = "parameters", values: Mapping[str, float] | None = None) -> SizeAxis:
    """``parameters``: each run's ``model_num_parameters``, ``values`` filling in or overriding;
    another name: ``values`` alone (a user's axis, e.g. the training step)."""
    values = dict(values or {})
    axis = {}
    for run in runs:
        if run.label in values:
            axis[run.label] = float(values[run.label])
        elif name == "parameters" and run.num_parameters is not None:
            axis[run.label] = float(run.num_parameters)
    return SizeAxis(name, axis)


def correlation_entry(task: str, x: str, y: str, labels: list[str], xs: list[float], ys: list[float], *,
                      resamples: int, seed: int) -> dict:
    """One correlation of ``comparison.json``: Spearman and Kendall tau-b with two-sided permutation
    p-values (exact for n <= 9), the smallest p the data could reach, and why it is undefined."""
    spearman = statistics.rank_correlation(xs, ys, "spearman", resamples=resamples, seed=seed)
    kendall = statistics.rank_correlation(xs, ys, "kendall", resamples=resamples, seed=seed)
    entry = {"task": task, "x": x, "y": y, "n": len(xs), "models": labels,
             "spearman": spearman.statistic, "spearman_p": spearman.p_value,
             "kendall": kendall.statistic, "kendall_p": kendall.p_value,
             "p_exact": spearman.exact, "min_p": spearman.min_p, "reason": spearman.reason or kendall.reason}
    if spearman.min_p is not None and spearman.min_p >= 0.05:
        entry["note"] = (f"n = {len(xs)}: the smallest two-sided p any ordering reaches is {spearman.min_p:.3g}, "
                         "so no correlation here can reach p < 0.05")
    return entry


def correlations(runs: Sequence[Run], tasks: Sequence[str], axis: SizeAxis, *, resamples: int = 10_000,
                 seed: int = statistics.DEFAULT_SEED) -> list[dict]:
    """Per task, across the models that report both: Diff-eRank and the eRank ratio against acc,
    acc_norm, the reduced loss and the size axis (entries whose y no model reports are left out)."""
    entries = []
    for task in tasks:
        for x_metric in X_METRICS:
            for y_metric in (*Y_METRICS, axis.name):
                labels, xs, ys = [], [], []
                reported_y = False
                for run in runs:
                    result = run.tasks.get(task)
                    if result is None:
                        continue
                    x_value = result.value(x_metric)
                    y_value = axis.values.get(run.label) if y_metric == axis.name else result.value(y_metric)
                    reported_y |= y_value is not None
                    if x_value is not None and y_value is not None:
                        labels.append(run.label)
                        xs.append(x_value)
                        ys.append(y_value)
                if not labels or not reported_y:
                    continue
                entries.append(correlation_entry(task, x_metric, y_metric, labels, xs, ys,
                                                 resamples=resamples, seed=seed))
    return entries


def pair_plan(runs: Sequence[Run], axis: SizeAxis, mode: str = "auto") -> list[tuple[Run, Run]]:
    """The pairs to test: ``all`` (every pair, in the runs' order), ``consecutive`` (neighbours along
    the size axis; runs without a value last, in their order), ``none``; ``auto``: all up to 6
    models, else consecutive."""
    if mode not in PAIR_MODES:
        raise ValueError(f"pairs must be one of {PAIR_MODES}, got {mode!r}")
    if mode == "auto":
        mode = "all" if len(runs) <= ALL_PAIRS_UP_TO else "consecutive"
    if mode == "none":
        return []
    if mode == "all":
        return list(itertools.combinations(runs, 2))
    order = sorted(runs, key=lambda r: (r.label not in axis.values, axis.values.get(r.label, 0.0), runs.index(r)))
    return list(zip(order, order[1:]))


def difference_interval(a: TaskSamples, b: TaskSamples, metric: str, resamples: int = 2000,
                        seed: int = statistics.DEFAULT_SEED, metric_b: str | None = None):
    """A's dataset value of ``metric`` minus B's of ``metric_b`` (default the same; e.g. the same
    relative depth of two models: ``diff_erank_layer6`` and ``diff_erank_layer7``) on the same documents,
    with its seeded paired bootstrap interval (``statistics.paired_bootstrap``); None where a run
    does not report the metric."""
    metric_b = metric_b or metric
    items_a, items_b = a.items(metric), b.items(metric_b)
    if items_a is None or items_b is None:
        return None
    if a.hashes != b.hashes:
        raise ValueError("the runs evaluated different documents: no paired interval")

    def statistic(rows):
        return metrics.resampled_aggregate(metric, items_a, rows) - metrics.resampled_aggregate(metric_b, items_b, rows)

    return statistics.paired_bootstrap(statistic, len(items_a), resamples=resamples, seed=seed)


def paired_comparison(task: str, a: Run, b: Run, samples_a: TaskSamples | None, samples_b: TaskSamples | None, *,
                      resamples: int = 2000, seed: int = statistics.DEFAULT_SEED) -> dict:
    """A - B on the same documents of ``task``: the accuracy difference with the exact McNemar
    p-value, and the Diff-eRank, eRank(M1), eRank-ratio and reduced-loss differences with seeded paired bootstrap
    95% intervals (the documents resampled once per replicate, both runs' dataset values recomputed
    on it). ``reason``: why nothing was computed (no samples, different documents)."""
    entry = {"task": task, "a": a.label, "b": b.label, "n_docs": None, "acc_diff": None, "mcnemar_p": None,
             "mcnemar_b": None, "mcnemar_c": None}
    for metric in PAIRED_METRICS:
        entry[f"{metric}_diff"] = entry[f"{metric}_ci"] = None
    entry["same_m0"] = bool(a.m0_checksums and a.m0_checksums == b.m0_checksums)
    missing = [r.label for r, s in ((a, samples_a), (b, samples_b)) if s is None]
    if missing:
        entry["reason"] = f"no samples file for {', '.join(missing)} (run with --log_samples)"
        return entry
    if samples_a.hashes != samples_b.hashes:
        shared = sum(samples_b.hashes.get(i) == h for i, h in samples_a.hashes.items())
        entry["reason"] = (f"different documents ({a.label}: {len(samples_a.doc_ids)}, {b.label}: "
                           f"{len(samples_b.doc_ids)}, {shared} with the same doc_id and doc_hash)")
        return entry
    entry["n_docs"] = len(samples_a.doc_ids)
    if "acc" in samples_a.outcomes and "acc" in samples_b.outcomes:
        test = statistics.mcnemar(samples_a.outcomes["acc"], samples_b.outcomes["acc"])
        entry.update(acc_diff=(test.b - test.c) / test.n, mcnemar_p=test.p_value, mcnemar_b=test.b, mcnemar_c=test.c)
    if entry["n_docs"] >= 2:
        for metric in PAIRED_METRICS:
            try:
                interval = difference_interval(samples_a, samples_b, metric, resamples, seed)
            except ValueError as exc:  # every document of one run excluded, or a resample without one
                entry.setdefault("excluded", []).append(f"{metric}: {exc}")
                continue
            if interval is not None:
                entry[f"{metric}_diff"] = interval.estimate
                entry[f"{metric}_ci"] = [interval.low, interval.high]
    if entry["same_m0"] and entry["diff_erank_diff"] is not None:
        entry["note"] = ("the two runs share M0 (equal erank_m0_checksums): the Diff-eRank difference is the "
                         "eRank(M1) difference with the sign reversed")
    return entry
