"""The eRank metrics: per-document values, registration with lm-eval, standard errors.

Per document (one gold text), from the ``erank`` response of the model:

| metric          | per-doc value                     | aggregation                        |
|-----------------|-----------------------------------|------------------------------------|
| diff_erank      | [eRank_M0, eRank_M1]              | exp(mean H_M0) - exp(mean H_M1)    |
| erank_m1        | eRank_M1 = exp(H_M1)              | exp(mean H_M1)                     |
| erank_m0        | eRank_M0                          | exp(mean H_M0)                     |
| erank_ratio     | [eRank_M0, eRank_M1]              | exp(mean H_M1) / exp(mean H_M0)    |
| diff_erank_b    | eRank_M0 - eRank_M1               | mean (algorithm (b))               |
| erank_m1_b      | eRank_M1                          | mean                               |
| erank_m0_b      | eRank_M0                          | mean                               |
| reduced_loss    | L_M0 - L_M1                       | mean                               |
| loss_m1, loss_m0| mean token cross-entropy (nats)   | mean                               |
| erank_excluded  | 1 if the text has no eRank        | sum (a count)                      |
| erank_truncated | 1 if the text was cut at max_length | sum (a count)                    |
| erank_tokens    | tokens fed (after truncation)     | mean                               |
| erank_m0_twin_sd| [eRank_M0 per twin] (K > 1 only)  | sd over twins of exp(mean H_M0)    |

With ``m0_twins=K`` (K > 1) every per-doc value that involves M0 carries one entry per twin
(diff_erank, erank_ratio: [eRank_M0 twin 1..K, eRank_M1]; erank_m0, erank_m0_b, diff_erank_b,
reduced_loss, loss_m0: one value per twin), the aggregation is the mean over twins of the
single-twin aggregation, and the stderr covers texts and twins (aggregation.twin_stderr).
K = 1 gives exactly the single-twin values above.

With the model argument ``layers=``, each extra hidden-state index i adds
``diff_erank_layer{i}``, ``erank_m1_layer{i}`` and ``erank_m0_layer{i}`` (aggregated like the
unsuffixed metrics; the unsuffixed ones are the LM head's input).

A document whose text has no defined eRank (fewer than 2 tokens) contributes ``None`` to
the eRank metrics and 1 to ``erank_excluded``; aggregations skip ``None``.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from . import aggregation as agg

logger = logging.getLogger("lm_eval.erank.metrics")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    aggregation: Callable
    stderr: Callable
    higher_is_better: bool | None


_MEAN = (agg.arithmetic_mean, agg.arithmetic_mean_stderr)
_GEOMEAN = (agg.geometric_mean, agg.geometric_mean_stderr)


def _over_twins(kind: str) -> tuple[Callable, Callable]:
    """(aggregation, stderr) of a metric that involves M0: the mean over twins (K = 1: the
    single-twin functions, exactly)."""

    def aggregate(items):
        return agg.twin_aggregate(items, kind)

    def stderr(items, iters=1000):
        return agg.twin_stderr(items, kind, iters)

    aggregate.__doc__ = f"mean over twins of the single-twin {kind} (aggregation.twin_aggregate)"
    return aggregate, stderr


def _twin_sd(items):
    return agg.twin_sd(items)


def _no_stderr(items, iters=0):
    """A spread estimated from K values: no stderr is reported."""
    return "N/A"


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("diff_erank", *_over_twins("difference"), True),
    MetricSpec("erank_m1", *_GEOMEAN, False),
    MetricSpec("erank_m0", *_over_twins("geometric_mean"), None),
    MetricSpec("erank_ratio", *_over_twins("ratio"), False),
    MetricSpec("diff_erank_b", *_over_twins("mean"), True),
    MetricSpec("erank_m1_b", *_MEAN, False),
    MetricSpec("erank_m0_b", *_over_twins("mean"), None),
    MetricSpec("reduced_loss", *_over_twins("mean"), True),
    MetricSpec("loss_m1", *_MEAN, False),
    MetricSpec("loss_m0", *_over_twins("mean"), None),
    MetricSpec("erank_excluded", agg.count, agg.count_stderr, False),
    MetricSpec("erank_truncated", agg.count, agg.count_stderr, False),
    MetricSpec("erank_tokens", *_MEAN, None),
)
METRIC_NAMES = tuple(m.name for m in METRICS)
# Reported only with m0_twins=K > 1 (METRIC_NAMES are the metrics of every run).
TWIN_METRICS: tuple[MetricSpec, ...] = (MetricSpec("erank_m0_twin_sd", _twin_sd, _no_stderr, None),)
AGGREGATION_PREFIX = "erank_agg_"
# lm-eval's default --bootstrap_iters is 100,000; 10,000 draws already estimate a standard
# error to about 0.7% (relative) at a tenth of the cost (lm-eval caps bleu/chrf/ter at 100).
MAX_BOOTSTRAP_ITERS = 10_000


def _finite_or_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _erank_pair(h0, h1) -> tuple[float, float] | None:
    h0, h1 = _finite_or_none(h0), _finite_or_none(h1)
    return None if h0 is None or h1 is None else (math.exp(h0), math.exp(h1))


def _erank_twins(h0, h1) -> tuple[list[float], float] | None:
    """([eRank_M0 per twin], eRank_M1) from entropies, h0 a list over K > 1 twins; None unless
    every one is defined."""
    values = [_finite_or_none(h) for h in [*h0, h1]]
    if any(v is None for v in values):
        return None
    eranks = [math.exp(v) for v in values]
    return eranks[:-1], eranks[-1]


def per_document_values(response: Mapping[str, object]) -> dict[str, object]:
    """Map one ``erank`` response (entropy_m1/m0 in nats, loss_m1/m0, n_tokens, truncated,
    optional layers {i: {entropy_m1, entropy_m0}}) to the per-doc metric values.

    With K > 1 twins the response's M0 values are lists over twins (see the table above).
    Undefined quantities arrive as None (or NaN from the pure layers) and leave as None.
    Without loss keys (``losses=false``) the loss metrics are left out, so lm-eval does not
    report them.
    """
    if isinstance(response["entropy_m0"], (list, tuple)):
        return _per_document_values_twins(response)
    pair = _erank_pair(response["entropy_m0"], response["entropy_m1"])
    e0, e1 = pair if pair else (None, None)
    values = {
        "diff_erank": list(pair) if pair else None,
        "erank_m1": e1,
        "erank_m0": e0,
        "erank_ratio": list(pair) if pair else None,
        "diff_erank_b": e0 - e1 if pair else None,
        "erank_m1_b": e1,
        "erank_m0_b": e0,
    }
    if "loss_m1" in response:  # absent when the model ran with losses=false
        l1, l0 = _finite_or_none(response["loss_m1"]), _finite_or_none(response["loss_m0"])
        values["reduced_loss"] = l0 - l1 if l1 is not None and l0 is not None else None
        values["loss_m1"], values["loss_m0"] = l1, l0
    values["erank_excluded"] = 0 if pair else 1
    values["erank_truncated"] = int(bool(response["truncated"]))
    values["erank_tokens"] = int(response["n_tokens"])
    for layer, entropies in (response.get("layers") or {}).items():
        layer_pair = _erank_pair(entropies["entropy_m0"], entropies["entropy_m1"])
        values[f"diff_erank_layer{layer}"] = list(layer_pair) if layer_pair else None
        values[f"erank_m1_layer{layer}"] = layer_pair[1] if layer_pair else None
        values[f"erank_m0_layer{layer}"] = layer_pair[0] if layer_pair else None
    return values


def _per_document_values_twins(response: Mapping[str, object]) -> dict[str, object]:
    """:func:`per_document_values` for K > 1 twins: a text counts only where M1 and every twin
    define its eRank (and, for the M0 loss metrics, every twin its loss)."""
    twins = _erank_twins(response["entropy_m0"], response["entropy_m1"])
    e0, e1 = twins if twins else (None, None)
    values = {
        "diff_erank": [*e0, e1] if twins else None,
        "erank_m1": e1,
        "erank_m0": e0,
        "erank_ratio": [*e0, e1] if twins else None,
        "diff_erank_b": [x - e1 for x in e0] if twins else None,
        "erank_m1_b": e1,
        "erank_m0_b": e0,
        "erank_m0_twin_sd": e0,
    }
    if "loss_m1" in response:
        l1 = _finite_or_none(response["loss_m1"])
        l0 = [_finite_or_none(x) for x in response["loss_m0"]]
        l0 = None if any(x is None for x in l0) else l0
        values["reduced_loss"] = [x - l1 for x in l0] if l1 is not None and l0 is not None else None
        values["loss_m1"], values["loss_m0"] = l1, l0
    values["erank_excluded"] = 0 if twins else 1
    values["erank_truncated"] = int(bool(response["truncated"]))
    values["erank_tokens"] = int(response["n_tokens"])
    for layer, entropies in (response.get("layers") or {}).items():
        layer_twins = _erank_twins(entropies["entropy_m0"], entropies["entropy_m1"])
        values[f"diff_erank_layer{layer}"] = [*layer_twins[0], layer_twins[1]] if layer_twins else None
        values[f"erank_m1_layer{layer}"] = layer_twins[1] if layer_twins else None
        values[f"erank_m0_layer{layer}"] = layer_twins[0] if layer_twins else None
    return values


LAYER_METRIC = re.compile(r"^(diff_erank|erank_m1|erank_m0)_layer\d+$")


def layer_metric_base(name: str) -> str | None:
    """``diff_erank`` for ``diff_erank_layer12`` etc.; None for other names."""
    match = LAYER_METRIC.match(name)
    return match.group(1) if match else None


def metric_list_entries(specs: tuple[MetricSpec, ...] = METRICS + TWIN_METRICS) -> list[dict]:
    """``metric_list`` entries (as in a task YAML) for ``specs`` (default: every eRank metric)."""
    return [
        {"metric": m.name, "aggregation": AGGREGATION_PREFIX + m.name, "higher_is_better": m.higher_is_better}
        for m in specs
    ]


def _passthrough(items):
    return items


def register() -> None:
    """Register the metrics and aggregations with lm-eval and teach it their stderrs (idempotent)."""
    import lm_eval.api.metrics  # noqa: F401  (loads the built-ins first)

    from .lm_eval_internals import patch_function_everywhere

    register_specs(METRICS + TWIN_METRICS)
    patch_function_everywhere("stderr_for_metric", _erank_aware_stderr)
    patch_function_everywhere("aggregate_subtask_metrics", _none_skipping)


def register_specs(specs: tuple[MetricSpec, ...]) -> None:
    """Register each metric and its aggregation (idempotent); their stderrs reach lm-eval through
    the ``erank_stderr`` attribute that :func:`register`'s ``stderr_for_metric`` hook reads."""
    from lm_eval.api import registry

    for spec in specs:
        agg_name = AGGREGATION_PREFIX + spec.name
        if agg_name not in registry.aggregation_registry:
            registry.register_aggregation(agg_name)(_named(spec, agg_name))
        if spec.name not in registry.metric_registry:
            registry.register_metric(
                metric=spec.name, higher_is_better=spec.higher_is_better, aggregation=agg_name
            )(_passthrough)


def warn_excluded(task_names: Sequence[str], reasons: Sequence[str | None], counter: str = "erank_excluded") -> None:
    """One warning per task that has excluded texts: how many of its texts, and why.

    ``reasons[i]`` is None for a measured text, else why text i has no value; ``counter`` is
    the metric that counts them. When every text of a task is excluded, its metrics are None.
    """
    per_task: dict[str, list] = {}
    for task, reason in zip(task_names, reasons):
        entry = per_task.setdefault(str(task), [0, Counter()])
        entry[0] += 1
        if reason is not None:
            entry[1][reason] += 1
    for task, (n_all, why) in per_task.items():
        n_out = sum(why.values())
        if not n_out:
            continue
        every = "; every text was excluded, so its eRank metrics are None" if n_out == n_all else ""
        logger.warning(
            "erank: %s: %d of %d texts have no eRank and are left out of the eRank metrics (counted in %s): %s%s",
            task, n_out, n_all, counter, ", ".join(f"{k} {r}" for r, k in why.most_common()), every,
        )


def _named(spec: MetricSpec, name: str) -> Callable:
    def aggregate(items):
        return spec.aggregation(items)  # None when every text is excluded (the model warned per task)

    aggregate.__name__ = name
    aggregate.__doc__ = spec.aggregation.__doc__
    aggregate.erank_stderr = spec.stderr
    return aggregate


def _none_skipping(original: Callable) -> Callable:
    """Group means over the subtasks that have a value (a task whose texts were all excluded
    reports None); None when no subtask has one."""

    def aggregate_subtask_metrics(metrics, sizes, weight_by_size=True):
        kept = [(m, s) for m, s in zip(metrics, sizes) if m is not None]
        if not kept:
            return None
        return original([m for m, _ in kept], [s for _, s in kept], weight_by_size)

    return aggregate_subtask_metrics


def _erank_aware_stderr(original: Callable) -> Callable:
    """Wrap lm-eval's ``stderr_for_metric`` so our aggregations get their own stderr."""

    def stderr_for_metric(metric, bootstrap_iters):
        stderr = getattr(metric, "erank_stderr", None)
        if stderr is None:
            return original(metric=metric, bootstrap_iters=bootstrap_iters)
        if bootstrap_iters <= 0:
            return None
        return lambda items: stderr(items, min(bootstrap_iters, MAX_BOOTSTRAP_ITERS))

    return stderr_for_metric
