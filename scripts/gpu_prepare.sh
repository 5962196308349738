#!/usr/bin/env bash
# Run HERE (not on the GPU machine) before a device run of scripts/gpu_check.sh. Fetches into
# .whl/ the wheels the GPU machine's image lacks (Python 3.12, x86-64), pinned to the versions
# this project's tests run with (from .venv), and copies the benchmark data into .gpu_data/
# (../shared does not travel). Both folders are git-ignored and must be carried:
#   run(command="bash scripts/gpu_check.sh", carry=[".whl", ".gpu_data"], timeout_s=540)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup_env.sh
# Missing on the image (KINDS.md lists what it holds), plus the versions we test with of
# transformers and huggingface_hub (the image has older ones), and their pure-Python needs.
names="lm_eval datasets evaluate transformers huggingface_hub httpx2 httpcore2 fsspec click dill multiprocess
       pytablewriter dataproperty mbstrdecoder pathvalidate tabledata tcolorpy typepy chardet rouge_score nltk
       sqlitedict word2number more_itertools pydantic pydantic_core annotated_types typing_inspection pytz
       defusedxml truststore"
pins=$(.venv/bin/python -m pip freeze 2>/dev/null | python3 -c "
import sys
want = {n.lower().replace('-', '_') for n in sys.argv[1].split()}
for line in sys.stdin:
    name = line.split('==')[0].strip()
    if '==' in line and name.lower().replace('-', '_') in want:
        print(line.strip())
" "$names")
rm -rf .whl && mkdir -p .whl
platforms=""
for n in 28 27 17; do platforms="$platforms --platform manylinux_2_${n}_x86_64"; done
for pin in $pins; do
    # shellcheck disable=SC2086
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        $platforms --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "$pin" \
        2>/dev/null || .venv/bin/python -m pip wheel -q --no-deps -w .whl "$pin"  # sdist-only, pure Python
done
rm -rf .gpu_data && mkdir -p .gpu_data/hf_schema .gpu_data/tinyshakespeare
data=../shared/data
for f in piqa_validation openbookqa_test winogrande_validation; do cp "$data/hf_schema/$f.jsonl" .gpu_data/hf_schema/; done
cp "$data/tinyshakespeare/input.txt" .gpu_data/tinyshakespeare/
echo "wheels: $(ls .whl | wc -l) files, $(du -sh .whl | cut -f1); data: $(du -sh .gpu_data | cut -f1)"
