"""The figures and table of lm-eval-erank results: now ``lm-eval-erank compare``; this script calls it.

    python scripts/plot_results.py RESULTS_JSON_OR_DIR... --out DIR [--tasks t1,t2] [--labels a,b]

is ``lm-eval-erank compare RESULTS_JSON_OR_DIR... --out DIR ...`` (every option of the command
works): per task, Diff-eRank, the eRank ratio, the reduced loss and accuracy against the model size,
Diff-eRank against accuracy, per-layer curves for runs with ``layers=``, and ``comparison.md``
(the table), ``comparison.csv`` and ``comparison.json`` (README "Comparing models").
"""

from __future__ import annotations

import sys

from lm_eval_erank.compare.cli import main

if __name__ == "__main__":
    sys.exit(main())
