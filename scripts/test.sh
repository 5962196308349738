#!/usr/bin/env bash
# Set everything up, then run the tests (offline): the full suite in .venv at the newest releases
# (two pytest workers, one test file each at a time, slowest files first: tests/conftest.py). With
# ERANK_OLDEST=1, beside it, the end-to-end subset at the oldest supported releases in its own environment
# (scripts/test_oldest.sh): building that environment and running the subset beside the suite took CI past
# 25 minutes on 2 cores, so CI leaves it out. Arguments go to the full suite's pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
oldest_pid=
if [ "${ERANK_OLDEST:-0}" != 0 ]; then
  oldest_log=$(mktemp)
  bash scripts/test_oldest.sh > "$oldest_log" 2>&1 &
  oldest_pid=$!
fi
start=$SECONDS
status=0
python -m pytest -n 2 --dist loadfile --no-loadscope-reorder "$@" || status=$?
echo "full suite: $((SECONDS - start)) s"
if [ -n "$oldest_pid" ]; then
  oldest_status=0
  wait "$oldest_pid" || oldest_status=$?
  echo "--- the oldest supported releases (scripts/test_oldest.sh): exit $oldest_status, $((SECONDS - start)) s from the start"
  if [ "$oldest_status" = 0 ]; then tail -n 8 "$oldest_log"; else tail -c 20000 "$oldest_log"; fi
  rm -f "$oldest_log"
  [ "$status" != 0 ] || status=$oldest_status
fi
exit "$status"
