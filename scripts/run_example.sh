#!/usr/bin/env bash
# Set everything up, then run the offline example: a tiny model trained briefly on local text,
# evaluated with `lm-eval-erank --model hf-erank` on erank_piqa/openbookqa/winogrande-shaped data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python -m lm_eval_erank.example --out "${1:-example_run}"
