"""Diff-eRank (Wei et al., NeurIPS 2024) for EleutherAI's lm-evaluation-harness.

Importing this package does not import lm-eval (``diff_erank`` works without it);
``lm_eval_erank.plugin.register()``
(called by the ``lm-eval-erank`` command) registers the ``hf-erank`` model, the metrics and
the ``erank_*`` tasks with lm-eval.
"""

__version__ = "0.1.0"

from .api import DiffErankResult, diff_erank  # noqa: E402
from .spectral import dataset_erank, effective_rank, matrix_entropy, mean_erank  # noqa: E402

__all__ = [
    "__version__", "DiffErankResult", "diff_erank", "dataset_erank", "effective_rank", "matrix_entropy", "mean_erank",
]
