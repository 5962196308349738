"""``lm-eval-erank compare``: many lm-eval runs -> one leaderboard with the statistics to read it.

Reads results and samples JSON only (never lm-eval, torch or transformers). From Python::

    from lm_eval_erank.compare import compare
    result = compare(["results/"], out="comparison/", labels=None, tasks=None, x="parameters")
    result.rows, result.correlations, result.pairs, result.warnings

Importing this package is cheap; ``compare`` loads numpy on first use.
"""

from importlib import import_module

_LAZY = {"compare": "report", "Comparison": "report", "CompareError": "runs"}
__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
