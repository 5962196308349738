#!/usr/bin/env bash
# The end-to-end subset at the oldest supported releases (scripts/oldest-constraints.txt): builds
# (or reuses) its environment outside the repository (ERANK_OLDEST_VENV, else the cache root's
# compat/0.4.10: $LM_EVAL_ERANK_CACHE/compat/0.4.10, else ~/.cache/lm_eval_erank/compat/0.4.10) and
# runs the subset in it. This is scripts/compat_matrix.py for the oldest release;
# arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
oldest=$(sed -n 's/^lm-eval==//p' scripts/oldest-constraints.txt)
exec "${PYTHON:-python3}" scripts/compat_matrix.py --releases "$oldest" \
    ${ERANK_OLDEST_VENV:+--venv "$oldest=$ERANK_OLDEST_VENV"} -- "$@"
