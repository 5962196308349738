"""The console script's path (``lm-eval-erank = lm_eval_erank.cli:main``; defined in ``harness.cli``)."""

from .harness.cli import main

__all__ = ["main"]
