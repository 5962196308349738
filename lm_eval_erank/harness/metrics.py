"""The metric tables (``core.metrics.TABLE``, ``core.alignment.MULTIMODAL_METRICS``) registered
with lm-eval: each metric under its name, its aggregation as ``erank_agg_<name>``, and its
standard error through lm-eval's ``stderr_for_metric``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lm_eval.api import registry

from ..core.alignment import MULTIMODAL_METRICS
from ..core.metrics import AGGREGATION_PREFIX, MAX_BOOTSTRAP_ITERS, TABLE, MetricSpec
from . import lm_eval_internals as internals

ALL_METRICS: tuple[MetricSpec, ...] = (*TABLE, *MULTIMODAL_METRICS)


def register() -> None:
    """Register every metric and aggregation with lm-eval and teach it their stderrs; groups
    average over the subtasks that have a value (idempotent)."""
    register_specs(ALL_METRICS)
    internals.route_stderr_for_metric(erank_stderr)
    internals.group_means_skip_missing()


def register_specs(specs: Sequence[MetricSpec]) -> None:
    """Register each metric and its aggregation (idempotent); their stderrs reach lm-eval through
    the ``erank_stderr`` attribute that :func:`erank_stderr` reads."""
    for spec in specs:
        agg_name = AGGREGATION_PREFIX + spec.name
        if agg_name not in registry.aggregation_registry:
            registry.register_aggregation(agg_name)(_named(spec, agg_name))
        if spec.name not in registry.metric_registry:
            registry.register_metric(
                metric=spec.name, higher_is_better=spec.higher_is_better, aggregation=agg_name
            )(_passthrough)


def erank_stderr(aggregation: Callable, bootstrap_iters: int):
    """The stderr function of one of our aggregations (None when lm-eval's ``--bootstrap_iters``
    is 0; the bootstrap draws are capped at ``MAX_BOOTSTRAP_ITERS``); ``NotImplemented`` for
    lm-eval's own aggregations."""
    stderr = getattr(aggregation, "erank_stderr", None)
    if stderr is None:
        return NotImplemented
    if bootstrap_iters <= 0:
        return None
    return lambda items: stderr(items, min(bootstrap_iters, MAX_BOOTSTRAP_ITERS))


def _passthrough(items):
    return items


def _named(spec: MetricSpec, name: str) -> Callable:
    def aggregate(items):
        return spec.aggregation(items)  # None when every text is excluded (the model warned per task)

    aggregate.__name__ = name
    aggregate.__doc__ = spec.aggregation.__doc__
    aggregate.erank_stderr = spec.stderr
    return aggregate
