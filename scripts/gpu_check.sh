#!/usr/bin/env bash
# Run ON the GPU machine (device tool), after scripts/gpu_prepare.sh here:
#   run(command="bash scripts/gpu_check.sh", carry=[".whl", ".gpu_data"], timeout_s=540)
# Every GPU-only figure of the speed issue in one run (a few minutes on an H200): scripts/bench.py
# at the opt-1.3b shape in bfloat16 (per-text speed-up vs the reference, M0 build vs load on
# the GPU, batch_size=auto, m0_swap cost and peak device memory) and scripts/dtype_drift.py on
# CUDA (bf16/fp16 vs fp32 entropies). Logs and JSON land in $OUT (the device tool's folder).
# SHAPE, DEVICE, DOCS, PYTHON override the defaults (DEVICE=cpu SHAPE=small DOCS=5 rehearses it on a CPU);
# BENCH_ARGS adds options to bench.py (the test suite's rehearsal shrinks its repeats with it).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
SHAPE=${SHAPE:-opt-1.3b} DEVICE=${DEVICE:-cuda} DOCS=${DOCS:-200}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
site=$(mktemp -d)
WHEELS=${WHEELS-.whl}  # WHEELS= (empty) uses the interpreter's own packages only
if [ -n "$WHEELS" ] && [ -d "$WHEELS" ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$WHEELS"/*.whl
fi
"$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$site" .
export PYTHONPATH="$site" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
[ -d .gpu_data ] && export LM_EVAL_ERANK_BENCH_DATA="$PWD/.gpu_data"
{
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$PYTHON" -c "import torch, transformers, lm_eval, datasets, lm_eval_erank as e; print('torch', torch.__version__, \
'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'lm_eval', lm_eval.__version__, \
'datasets', datasets.__version__, 'lm_eval_erank', e.__version__)"
} 2>&1 | tee "$OUT/machine.txt"
# The progress bars go to the log only; the table is printed.
"$PYTHON" scripts/bench.py --device "$DEVICE" --shape "$SHAPE" --docs "$DOCS" --out "$OUT/bench.json" ${BENCH_ARGS:-} \
    > "$OUT/bench.log" 2>&1 || { tail -c 6000 "$OUT/bench.log"; exit 1; }
sed -n '/^machine:/,$p' "$OUT/bench.log"
drift_shape=(--arch opt --hidden 2048 --layers 24 --texts 200)
[ "$SHAPE" = "opt-1.3b" ] || drift_shape=(--arch opt --hidden 64 --layers 2 --texts 24)
"$PYTHON" scripts/dtype_drift.py --device "$DEVICE" "${drift_shape[@]}" 2>&1 | tee "$OUT/dtype_drift.log" | grep -v "it/s"
