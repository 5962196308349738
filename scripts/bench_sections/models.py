"""Set-up of the benchmark: data rows, the tokenizer and model, the LM instances, the texts."""

from __future__ import annotations

import argparse
import gc
import json
from pathlib import Path

import torch

from studies.environment import DATA, HF_SCHEMA_FILES
from studies.shapes import SHAPES, build_shape

TASKS = ("piqa", "openbookqa", "winogrande")
TASK_PREFIX = "bench"
M1_SEED, M0_SEED = 0, 1234


def load_rows(docs: int) -> dict[str, list[dict]] | None:
    """First ``docs`` rows of each real data file (hub schemas), or None if any file is missing."""
    paths = {name: DATA / "hf_schema" / file for name, file in HF_SCHEMA_FILES.items()}
    if not all(p.is_file() for p in paths.values()):
        return None
    rows = {}
    for name, path in paths.items():
        with path.open(encoding="utf-8") as handle:
            rows[name] = [json.loads(line) for _, line in zip(range(docs), handle)]
    return rows


def build_model_dir(shape: str, directory: Path, dtype: torch.dtype) -> dict:
    """Train a tokenizer, build an untrained model of ``shape`` from its config (seeded) and save
    both to ``directory``. Returns a description (parameters, vocab, corpus)."""
    model, tokenizer, config_kwargs, source = build_shape(shape, directory, M1_SEED, dtype,
                                                          save_to=directory / "model")
    info = {"arch": SHAPES[shape][0], "config": config_kwargs,
            "parameters": sum(p.numel() for p in model.parameters()),
            "tokenizer_vocab": len(tokenizer), "tokenizer_corpus": source}
    del model
    gc.collect()
    return info


def make_lm(kind: str, model_dir: Path, args: argparse.Namespace, batch_size: int | str, **erank_args):
    """An ``hf`` (HFLM) or ``hf-erank`` (ErankHFLM) instance loaded from ``model_dir``.

    The erank model runs with its M0 results cache off: every measurement pays for M0's
    forwards, as a first evaluation does (and nothing is written to the user's cache)."""
    from lm_eval.models.huggingface import HFLM

    from lm_eval_erank.harness.model import ErankHFLM

    common = {"pretrained": str(model_dir), "device": args.device, "dtype": args.dtype, "batch_size": batch_size,
              "max_batch_size": args.auto_max_batch}
    return HFLM(**common) if kind == "hf" else ErankHFLM(**common, m0_seed=M0_SEED, m0_cache="off", **erank_args)


def pad_id(lm) -> int:
    """The LM's padding token id (0 when its tokenizer has none)."""
    return lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0


def gold_token_ids(lm, task_manager) -> tuple[list[list[int]], list[str]]:
    """Token ids of every erank request the three local erank tasks send, as the model tokenises
    them, and the task of each text (piqa texts first, then openbookqa, then winogrande)."""
    names = [f"{TASK_PREFIX}_erank_{t}" for t in TASKS]
    tasks = task_manager.load(names)["tasks"]
    token_ids, owners = [], []
    for name, task in zip(TASKS, (tasks[n] for n in names)):
        for doc in task.eval_docs:
            token_ids.append(lm.erank_token_ids(task.erank_text(doc))[0])
            owners.append(name)
    return token_ids, owners


def without_entropies(timing: dict) -> dict:
    """A timing dict without its per-text entropy lists (kept out of the report)."""
    return {k: v for k, v in timing.items() if not k.startswith("entropy_")}


def evenly_spaced(n: int, k: int | None) -> list[int]:
    """``k`` indices spread evenly over range(n) (all of them when k is None or >= n)."""
    if k is None or k >= n:
        return list(range(n))
    return [i * n // k for i in range(k)]
