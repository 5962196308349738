#!/usr/bin/env bash
# The end-to-end subset at the oldest supported releases (scripts/oldest-constraints.txt):
# builds (or reuses) a virtual environment outside the repository, keyed by the constraints,
# then runs the CLI end-to-end, erank_<name> wrapping and lm-eval-internals tests in it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
key=$(sha256sum scripts/oldest-constraints.txt | cut -c1-12)
venv="${ERANK_OLDEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/lm-eval-erank/oldest-$key}"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q torch==2.13.0
  "$venv/bin/python" -m pip install -q -c scripts/oldest-constraints.txt lm-eval transformers datasets accelerate \
    "pytest>=8" "hypothesis>=6.100" "tokenizers>=0.19"
  touch "$venv/.complete"
fi
"$venv/bin/python" -m pip install -q --no-deps -e .
"$venv/bin/python" -m pip check >/dev/null || "$venv/bin/python" -m pip check
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PATH="$venv/bin:$PATH"  # its console scripts (lm_eval, lm-eval-erank), as when activated
"$venv/bin/python" -c "import lm_eval, transformers, datasets, accelerate, torch; print('oldest:', *(f'{m.__name__} {m.__version__}' for m in (transformers, datasets, accelerate, torch)), 'lm-eval', __import__('importlib.metadata').metadata.version('lm-eval'))"
"$venv/bin/python" -m pytest -p no:cacheprovider tests/test_lm_eval_internals.py tests/test_cli_end_to_end.py tests/test_wrapping.py "$@"
