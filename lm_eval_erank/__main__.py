"""``python -m lm_eval_erank``: as the ``lm-eval-erank`` console script (``compare ...`` without lm-eval)."""

import sys

from lm_eval_erank.compare.cli import run_if_compare
from lm_eval_erank.harness.cli import main

if __name__ == "__main__":
    code = run_if_compare(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    main()
