"""The family study's models: each trained with the Trainer and ``DiffErankCallback``, the sweep
model's checkpoints saved, then every model evaluated through the harness (``hf-erank`` on local
copies of ``erank_wikitext`` and ``erank_openwebtext2``), results saved as lm-eval's CLI saves them."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

from .corpus import Blocks, Corpus

PREFIX = "family"

GROUP = f"{PREFIX}_erank_lm"

TASKS = {"wikitext": f"{PREFIX}_erank_wikitext", "openwebtext2": f"{PREFIX}_erank_openwebtext2"}



def parse_sizes(spec: str) -> list[tuple[int, int]]:
    sizes = []
    for part in spec.split(","):
        match = re.fullmatch(r"\s*(\d+)x(\d+)\s*", part)
        if not match:
            raise SystemExit(f"train_family: --sizes entries are WIDTHxLAYERS (e.g. 128x2), got {part!r}")
        sizes.append((int(match.group(1)), int(match.group(2))))
    if len(sizes) < 2:
        raise SystemExit("train_family: --sizes needs at least two models")
    return sizes


def default_checkpoints(steps: int, count: int = 6) -> list[int]:
    """Step 0 and steps / 2^k, k = count-1 .. 0 (rounded, distinct, ascending)."""
    return sorted({0, *(max(1, round(steps / 2 ** k)) for k in range(count))})


def checkpoint_plan(args, sizes: list[tuple[int, int]]) -> tuple[int, list[int]]:
    """(index of the sweep model, its checkpoint steps), checked against ``--steps``."""
    sweep = range(len(sizes))[args.sweep]
    checkpoints = ([int(s) for s in args.checkpoints.split(",")] if args.checkpoints
                   else default_checkpoints(args.steps))
    if any(s < 0 or s > args.steps for s in checkpoints) or args.steps not in checkpoints:
        raise SystemExit(f"train_family: --checkpoints must lie in 0..{args.steps} and include {args.steps}")
    return sweep, checkpoints


def train_model(name: str, width: int, layers: int, tokenizer, blocks, callback_texts, args, out: Path,
                checkpoint_steps: list[int]) -> dict:
    """Train one model with the Trainer and DiffErankCallback; save it (and checkpoints)."""
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from lm_eval_erank.testing import tiny
    from lm_eval_erank.callback import DiffErankCallback

    class SaveCheckpoints(TrainerCallback):
        def __init__(self, steps, directory):
            self.steps, self.directory = set(steps), directory

        def save(self, model, step):
            if step in self.steps:
                model.save_pretrained(self.directory / f"step_{step}")
                tokenizer.save_pretrained(self.directory / f"step_{step}")

        def on_train_begin(self, targs, state, control, model=None, **kwargs):
            self.save(model, 0)

        def on_step_end(self, targs, state, control, model=None, **kwargs):
            self.save(model, state.global_step)

    model = tiny.build_tiny_model(args.arch, tokenizer, None, seed=args.seed, dtype=torch.float32, hidden=width,
                                     layers=layers, max_positions=args.block)
    n_params = sum(p.numel() for p in model.parameters())
    targs = TrainingArguments(
        output_dir=str(out / "trainer" / name), max_steps=args.steps, per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr, lr_scheduler_type="cosine", warmup_steps=max(1, args.steps // 20), weight_decay=0.01,
        logging_steps=max(1, args.callback_every), report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
        seed=args.seed, data_seed=args.seed, dataloader_num_workers=0)
    trainer = Trainer(model=model, args=targs, train_dataset=Blocks(blocks), processing_class=tokenizer)
    callback = DiffErankCallback(trainer, callback_texts, every_n_steps=args.callback_every, tokenizer=tokenizer,
                                 m0_twins=args.twins, batch_size=args.eval_batch_size)
    trainer.add_callback(callback)
    if checkpoint_steps:
        trainer.add_callback(SaveCheckpoints(checkpoint_steps, out / "models" / name))
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    final = out / "models" / name / "final"
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    losses = [(e["step"], e["loss"]) for e in trainer.state.log_history if "loss" in e]
    print(f"  {name}: {n_params:,} parameters, {args.steps} steps in {seconds:.0f} s, "
          f"last training loss {losses[-1][1] if losses else float('nan'):.3f}", flush=True)
    return {"name": name, "width": width, "layers": layers, "params": n_params, "train_seconds": seconds,
            "final": str(final), "train_loss": losses,
            "callback": [{"step": step, **{k.removeprefix("erank/"): v for k, v in logs.items()}}
                         for step, logs in callback.history]}


def train_all(args, sizes, sweep: int, checkpoints: list[int], corpus: Corpus, out: Path, loads: list) -> list[dict]:
    """Train every model of ``--sizes`` (checkpoints for the sweep model only)."""
    trained = []
    for index, (width, layers) in enumerate(sizes):
        name = f"{args.arch}-d{width}-L{layers}"
        print(f"training {name} ...", flush=True)
        trained.append(train_model(name, width, layers, corpus.tokenizer, corpus.blocks, corpus.callback_texts, args,
                                   out, checkpoints if index == sweep else []))
        loads.append(os.getloadavg()[0])
    params = [t["params"] for t in trained]
    if params != sorted(params) or len(set(params)) != len(params):
        print(f"warning: --sizes do not give strictly increasing parameter counts: {params}", file=sys.stderr)
    return trained


def write_tasks(out: Path, heldout_docs: list[str], paragraphs: list[str]) -> Path:
    """Local copies of erank_wikitext (held-out documents) and erank_openwebtext2 (held-out
    paragraphs as its ``text``) and their group ``family_erank_lm``."""
    from lm_eval_erank.testing import tiny

    directory = out / "tasks"
    tiny.write_local_lm_tasks(directory, {
        "wikitext": ([{"page": doc} for doc in heldout_docs], "test"),
        "openwebtext2": ([{"text": p} for p in paragraphs], "validation"),
    }, prefix=PREFIX)
    return directory


def evaluate(model_dir: str, label: str, task_manager, args, out: Path) -> tuple[Path, float]:
    """One harness run of the group on a saved model; (results JSON, wall seconds)."""
    import lm_eval
    from lm_eval.loggers import EvaluationTracker

    started = time.perf_counter()
    model_args = (f"pretrained={model_dir},dtype=float32,m0_twins={args.twins},m0_cache={out / 'm0_cache'}")
    results = lm_eval.simple_evaluate(model="hf-erank", model_args=model_args, tasks=[GROUP], device="cpu",
                                      batch_size=args.eval_batch_size, task_manager=task_manager, log_samples=False,
                                      bootstrap_iters=args.bootstrap_iters)
    target = out / "results" / label
    shutil.rmtree(target, ignore_errors=True)
    EvaluationTracker(output_path=str(target)).save_results_aggregated(results=results, samples=None)
    seconds = time.perf_counter() - started
    files = sorted(target.rglob("results_*.json"))
    if not files:
        raise SystemExit(f"train_family: the harness wrote no results for {label}")
    print(f"  harness {label}: {seconds:.0f} s", flush=True)
    return files[-1], seconds


def evaluate_all(args, trained: list[dict], sweep: int, checkpoints: list[int], corpus: Corpus, out: Path,
                 loads: list) -> tuple[dict, list[Path], dict[int, Path], int]:
    """The harness over every final model and the sweep's checkpoints: (seconds per run,
    family results files, {step: results file}, M0 cache entries at the start)."""
    from lm_eval.tasks import TaskManager

    print("harness ...", flush=True)
    cached = len(list((out / "m0_cache").glob("*.json")))  # a rerun into the same --out reuses M0's results
    task_manager = TaskManager(include_path=str(write_tasks(out, corpus.heldout_docs, corpus.paragraphs)))
    harness_seconds, family_files, sweep_files = {}, [], {}
    for info in trained:
        path, harness_seconds[info["name"]] = evaluate(info["final"], info["name"], task_manager, args, out)
        family_files.append(path)
        loads.append(os.getloadavg()[0])
    sweep_info = trained[sweep]
    for step in checkpoints:
        if step == args.steps:
            sweep_files[step] = family_files[sweep]  # the final model is the last checkpoint
            continue
        label = f"{sweep_info['name']}@{step}"
        sweep_files[step], harness_seconds[label] = evaluate(
            str(out / "models" / sweep_info["name"] / f"step_{step}"), label, task_manager, args, out)
        loads.append(os.getloadavg()[0])
    return harness_seconds, family_files, sweep_files, cached
