"""Targets of this package's ``lm_eval.models`` / ``lm_eval.metrics`` / ``lm_eval.aggregations``
entry points, for lm-eval releases that discover plugins. Importing this module registers
everything (``activation.register``), so loading any one entry point activates the whole plugin;
each name then resolves to the object lm-eval's registry holds for it."""

from __future__ import annotations

from lm_eval.api import registry

from .activation import register

register()

from .model import ErankHFLM  # noqa: E402
from .multimodal_model import ErankMultimodalLM  # noqa: E402

__all__ = ["ErankHFLM", "ErankMultimodalLM"]


def __getattr__(name: str):
    """A metric or aggregation function by its registered name (``diff_erank``, ``erank_agg_diff_erank``)."""
    for each in (registry.metric_registry, registry.aggregation_registry):
        if name in each:
            return each.get(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
