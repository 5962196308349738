"""The offline environment and the data beside the checkout. Imports neither torch nor lm-eval."""

from __future__ import annotations

import os
from pathlib import Path

# No hub or data set downloads, no tokenizer-parallelism warnings after a fork.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}


def go_offline() -> None:
    """Make this process offline by default (variables already set win). Call it before the
    first import of torch, transformers or datasets: they read these at import."""
    for name, value in OFFLINE_ENV.items():
        os.environ.setdefault(name, value)


def offline_env(**extra: str) -> dict[str, str]:
    """This process's environment with the offline variables set (and ``extra``), for a child."""
    return dict(os.environ, **OFFLINE_ENV, **extra)


SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"  # ../shared/data beside the checkout
# The benchmark data: ../shared/data, or $LM_EVAL_ERANK_BENCH_DATA (a copy with the same layout, e.g. on a GPU machine)
DATA = Path(os.environ.get("LM_EVAL_ERANK_BENCH_DATA") or SHARED_DATA)
HF_SCHEMA_FILES = {
    "piqa": "piqa_validation.jsonl",
    "openbookqa": "openbookqa_test.jsonl",
    "winogrande": "winogrande_validation.jsonl",
}
