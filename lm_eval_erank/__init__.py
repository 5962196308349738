"""Diff-eRank (Wei et al., NeurIPS 2024) for EleutherAI's lm-evaluation-harness.

Importing this package imports neither lm-eval nor torch; ``diff_erank`` and the spectral
functions load on first use (and work without lm-eval). In a process that has already imported
lm-eval (``--plugins lm_eval_erank``, ``LM_EVAL_PLUGINS=lm_eval_erank``, an entry point, or a
plain ``import lm_eval_erank``), importing it also runs ``plugin.register()``: the ``hf-erank``
model, the metrics and the ``erank_*`` tasks. Installed, the package activates itself wherever
lm-eval runs (see ``lm_eval_erank_autoload``).
"""

import sys

__version__ = "0.1.0"

_LAZY = {
    "DiffErankResult": "api", "diff_erank": "api",
    "dataset_erank": "spectral", "effective_rank": "spectral", "matrix_entropy": "spectral", "mean_erank": "spectral",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY})


if "lm_eval" in sys.modules and not getattr(sys.modules.get("lm_eval_erank_autoload"), "LIGHT_IMPORT", False):
    from . import plugin as _plugin

    _plugin.register()
