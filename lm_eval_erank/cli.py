"""The console script's path (``lm-eval-erank = lm_eval_erank.cli:main``): ``lm-eval-erank compare ...``
runs the comparison (``compare.cli``: JSON only, lm-eval and torch never load), every other form
lm-eval's own CLI with the plugin loaded (``harness.cli``, which loads lm-eval when it runs)."""

import sys

from .compare.cli import run_if_compare
from .harness.cli import main as harness_main


def main() -> None:
    code = run_if_compare(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    harness_main()


__all__ = ["main"]
