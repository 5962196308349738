"""Diff-eRank (Wei et al., NeurIPS 2024) for EleutherAI's lm-evaluation-harness.

Layout: ``core/`` computes (spectra, aggregation, representations, the random twin, M0's cache,
argument checks, results, the metric table; it never imports lm-eval), ``harness/`` is
everything that touches lm-eval, and the modules here are the public fronts and the paths task
YAMLs name (``tasks``, ``task_utils``, ``multimodal_tasks``).

Importing this package imports neither lm-eval nor torch; ``diff_erank`` and the spectral
functions load on first use (and work without lm-eval). In a process that has already imported
lm-eval (``--plugins lm_eval_erank``, ``LM_EVAL_PLUGINS=lm_eval_erank``, an entry point, or a
plain ``import lm_eval_erank``), importing it also runs the full registration
(``harness.activation.register``): the ``hf-erank`` model, the metrics and the ``erank_*`` tasks.
Installed, the package activates itself wherever lm-eval runs (see ``lm_eval_erank_autoload``).
"""

import sys
from importlib import import_module

from ._version import __version__

# public name -> its defining module (imported on first use: torch)
_LAZY = {
    "DiffErankResult": "core.result", "diff_erank": "core.measure",
    "dataset_erank": "core.spectral", "effective_rank": "core.spectral", "matrix_entropy": "core.spectral",
    "mean_erank": "core.spectral",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY})


if "lm_eval" in sys.modules and not getattr(sys.modules.get("lm_eval_erank_autoload"), "LIGHT_IMPORT", False):
    from .harness import activation as _activation

    _activation.register()
