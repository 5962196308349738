"""Does the metric behave? Train a model family here and watch Diff-eRank by size and by step.

    python scripts/train_family.py --out family_run --figures docs/family   # the README's study (~20 min on 2 shared CPU cores)
    python scripts/train_family.py --tiny --out /tmp/family                  # the whole pipeline at smoke size (< 1 min)
    python scripts/train_family.py --hf-dataset wikitext --hf-config wikitext-2-raw-v1 \\
        --sizes 128x2,256x4,384x6,512x8 --steps 3000 --threads 8            # bigger, on the hub data set

1. Text: WikiText-2 in its word-level format, one document per top-level heading (`` = Title = ``).
   ``--data DIR`` (default ``../shared/data/wikitext-2``) trains on ``DIR/train.txt`` (else
   ``DIR/valid.txt``: the local copy has no train split) and holds out ``DIR/test.txt``;
   ``--hf-dataset NAME --hf-config CONFIG`` takes the ``train`` and ``test`` splits of a hub data
   set with a ``text`` column (``wikitext``, ``wikitext-2-raw-v1``) through ``datasets``. Every
   text, trained on or evaluated, is lm-eval's ``wikitext_detokenizer`` of it (the text
   ``erank_wikitext`` feeds), so training and evaluation see the same format.
2. One byte-level BPE tokenizer (``--vocab``) trained on the training documents; one
   GPT-2-shaped (``--arch llama``: Llama-shaped) causal LM per ``--sizes`` entry ``DxL`` (width D,
   L blocks, context ``--block`` tokens), each trained ``--steps`` AdamW steps (cosine schedule)
   with ``transformers.Trainer`` on the same token blocks in the same order.
3. During training, ``DiffErankCallback`` logs Diff-eRank, eRank(M1) and the reduced loss on
   ``--callback-texts`` held-out paragraphs every ``--callback-every`` steps (M0's side once per
   model, ``m0_twins=--twins``). The ``--sweep`` model (default: the largest) also saves
   checkpoints at ``--checkpoints`` (default: step 0 and steps / 2^k).
4. After training, the harness (``lm_eval.simple_evaluate`` with ``model="hf-erank"``, results
   written by lm-eval's ``EvaluationTracker`` as the CLI writes them) evaluates every final model
   and every checkpoint on the group ``family_erank_lm``: local copies of the shipped
   ``erank_wikitext`` (the held-out documents, rolling text cut at the context length) and
   ``erank_openwebtext2`` (``--paragraphs`` held-out paragraphs as its ``text``), with
   ``m0_twins=--twins`` and one M0 cache for the run (``OUT/m0_cache``): the checkpoints of the
   sweep model share an architecture, so its twins are computed once.
5. Figures (``lm_eval_erank.compare``): Diff-eRank, eRank(M1) and the reduced loss against the
   parameter count and against the training step, with stderr bars (texts and twins), and the
   callback's curves; ``table.md`` (``lm-eval-erank compare``'s table); ``summary.md`` /
   ``summary.json``: the table, Spearman rank
   correlations (Diff-eRank vs reduced loss, vs size, vs step) with exact permutation p-values,
   the verdict, the command, the data, the machine, the load and the wall times.

Models, checkpoints, results and the cache stay under ``--out`` (git-ignored); ``--figures`` (default
``OUT/plots``) receives only the PNGs, ``table.md``, ``summary.md`` and ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (the offline set-up, the data beside the checkout)

common.go_offline()

import numpy as np  # noqa: E402

from lm_eval_erank.compare import figures as compare_figures, report as compare_report  # noqa: E402
from lm_eval_erank.compare.runs import load_run  # noqa: E402
from lm_eval_erank.core.statistics import rank_correlation, ranks, spearman  # noqa: E402,F401  (ranks: for the tests)

DEFAULT_DATA = common.SHARED_DATA / "wikitext-2"
PREFIX = "family"
GROUP = f"{PREFIX}_erank_lm"
TASKS = {"wikitext": f"{PREFIX}_erank_wikitext", "openwebtext2": f"{PREFIX}_erank_openwebtext2"}
PANELS = (("diff_erank", "Diff-eRank"), ("erank_m1", "eRank(M1)"), ("reduced_loss", "reduced loss (nats)"))
TOP_HEADING = re.compile(r"^ = [^=].* = $")

DEFAULTS = dict(sizes="64x2,128x2,192x3,256x4", steps=360, batch_size=16, block=128, lr=2e-3, vocab=4096,
                twins=5, paragraphs=300, heldout_docs=0, train_docs=0, callback_texts=32, callback_every=40,
                eval_batch_size=32)
TINY = dict(sizes="16x1,24x1,32x2,48x2", steps=6, batch_size=4, block=32, lr=3e-3, vocab=300, twins=2,
            paragraphs=6, heldout_docs=3, train_docs=4, callback_texts=3, callback_every=2, eval_batch_size=8)


# ---- statistics: the package's one module -----------------------------------------------------------

def permutation_p(x, y) -> float | None:
    """Exact two-sided permutation p-value of Spearman's rho over all n! orderings (n <= 9; None
    beyond, or when rho is undefined): ``core.statistics.rank_correlation``."""
    result = rank_correlation(x, y, "spearman")
    return result.p_value if result.exact else None


# ---- data -------------------------------------------------------------------------------------------

def split_documents(text: str) -> list[str]:
    """WikiText word-level text -> one string per article (a top-level `` = Title = `` line
    and the lines up to the next one), as ``EleutherAI/wikitext_document_level`` groups them."""
    docs, current = [], []
    for line in text.splitlines(keepends=True):
        if TOP_HEADING.match(line.rstrip("\n")) and any(x.strip() for x in current):
            docs.append("".join(current))
            current = []
        current.append(line)
    if any(x.strip() for x in current):
        docs.append("".join(current))
    return docs


def load_corpus(args) -> tuple[list[str], list[str], str]:
    """(training documents, held-out documents, a description of the source)."""
    if args.hf_dataset:
        import datasets

        data = datasets.load_dataset(args.hf_dataset, args.hf_config)
        train = "".join(row["text"] for row in data["train"])
        test = "".join(row["text"] for row in data["test"])
        source = f"hub data set {args.hf_dataset} ({args.hf_config}): train split for training, test split held out"
    else:
        directory = Path(args.data)
        train_file = directory / "train.txt" if (directory / "train.txt").is_file() else directory / "valid.txt"
        test_file = directory / "test.txt"
        for path in (train_file, test_file):
            if not path.is_file():
                raise SystemExit(f"train_family: {path} not found (--data names a WikiText directory with "
                                 "train.txt or valid.txt, and test.txt; or use --hf-dataset)")
        train, test = train_file.read_text(encoding="utf-8"), test_file.read_text(encoding="utf-8")
        source = f"{directory}: {train_file.name} for training, {test_file.name} held out"
    train_docs, heldout = split_documents(train), split_documents(test)
    if args.train_docs:
        train_docs = train_docs[:args.train_docs]
    if args.heldout_docs:
        heldout = heldout[:args.heldout_docs]
    if not train_docs or not heldout:
        raise SystemExit("train_family: no documents (no `` = Title = `` heading lines?)")
    return train_docs, heldout, source


def detokenize(text: str) -> str:
    """lm-eval's wikitext detokenizer (the text ``erank_wikitext`` feeds for a page)."""
    from lm_eval_erank.task_utils import wikitext_text

    return wikitext_text({"page": text})


def heldout_paragraphs(docs: list[str], count: int, min_words: int = 20) -> list[str]:
    """``count`` body paragraphs (no headings, >= ``min_words`` words) spread evenly over the
    held-out documents, detokenised; all of them when there are fewer."""
    lines = [line for doc in docs for line in doc.splitlines()
             if line.strip() and not line.strip().startswith("=") and len(line.split()) >= min_words]
    if count and len(lines) > count:
        lines = [lines[round(i * (len(lines) - 1) / (count - 1))] for i in range(count)] if count > 1 else lines[:1]
    return [detokenize(line).strip() for line in lines]


def token_blocks(tokenizer, texts: list[str], block: int):
    """Token ids of the texts joined by EOS, cut into (n, block) rows (the tail dropped)."""
    import torch

    ids: list[int] = []
    for encoded in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids.extend(encoded)
        ids.append(tokenizer.eos_token_id)
    n = len(ids) // block
    if n == 0:
        raise SystemExit(f"train_family: {len(ids)} training tokens, fewer than one block of {block}")
    return torch.tensor(ids[:n * block]).view(n, block)


class Blocks:
    """A map-style data set of next-token examples over fixed token blocks."""

    def __init__(self, blocks):
        self.blocks = blocks

    def __len__(self):
        return len(self.blocks)

    def __getitem__(self, i):
        return {"input_ids": self.blocks[i], "labels": self.blocks[i]}


# ---- training ---------------------------------------------------------------------------------------

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


def train_model(name: str, width: int, layers: int, tokenizer, blocks, callback_texts, args, out: Path,
                checkpoint_steps: list[int]) -> dict:
    """Train one model with the Trainer and DiffErankCallback; save it (and checkpoints)."""
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from lm_eval_erank.callback import DiffErankCallback
    from lm_eval_erank.testing import tiny

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


# ---- evaluation through the harness ----------------------------------------------------------------

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


# ---- analysis ---------------------------------------------------------------------------------------

def metric(run, task: str, name: str) -> float:
    value, _ = run.value(task, name)
    if not isinstance(value, float) or not math.isfinite(value):
        raise SystemExit(f"train_family: {run.label} has no finite {name} for {task}")
    return value


def correlations(runs, xs, tasks) -> dict:
    """Per task, over the runs (x = size or step): Spearman rho (exact p where n <= 9) of
    Diff-eRank against the reduced loss and against x, of the reduced loss, eRank(M1) and the
    eRank ratio against x; and the same two for Diff-eRank from its maximum on (``from_peak``)."""
    result = {}
    for task in tasks:
        diff = [metric(r, task, "diff_erank") for r in runs]
        reduced = [metric(r, task, "reduced_loss") for r in runs]
        peak = int(np.argmax(diff))
        result[task] = {
            "n": len(runs),
            "diff_erank_vs_reduced_loss": spearman(diff, reduced),
            "diff_erank_vs_reduced_loss_p": permutation_p(diff, reduced),
            "diff_erank_vs_x": spearman(xs, diff), "diff_erank_vs_x_p": permutation_p(xs, diff),
            "reduced_loss_vs_x": spearman(xs, reduced),
            "erank_m1_vs_x": spearman(xs, [metric(r, task, "erank_m1") for r in runs]),
            "erank_ratio_vs_x": spearman(xs, [metric(r, task, "erank_ratio") for r in runs]),
            "peak_x": xs[peak], "from_peak_n": len(runs) - peak,
            "from_peak_diff_erank_vs_reduced_loss": spearman(diff[peak:], reduced[peak:]),
            "from_peak_diff_erank_vs_reduced_loss_p": permutation_p(diff[peak:], reduced[peak:]),
        }
    return result


def callback_correlations(trained: list[dict]) -> dict:
    """Per model, over the callback's evaluations after step 0: Spearman rho of Diff-eRank against
    the reduced loss, and the same from Diff-eRank's maximum on (no p: n is too large to enumerate)."""
    result = {}
    for info in trained:
        entries = [e for e in info["callback"] if e["step"] > 0 and e.get("reduced_loss") is not None]
        diff = [e["diff_erank"] for e in entries]
        reduced = [e["reduced_loss"] for e in entries]
        peak = int(np.argmax(diff)) if diff else 0
        result[info["name"]] = {
            "n": len(entries), "peak_step": entries[peak]["step"] if entries else None,
            "diff_erank_vs_reduced_loss": spearman(diff, reduced) if entries else None,
            "from_peak_n": len(entries) - peak,
            "from_peak_diff_erank_vs_reduced_loss": spearman(diff[peak:], reduced[peak:]) if entries else None,
        }
    return result


def fmt_rho(rho, p=None) -> str:
    if rho is None:
        return "undefined"
    return f"{rho:+.2f}" + (f" (p = {p:.3f})" if p is not None else "")


def trend_words(values: list[float]) -> str:
    steps = np.diff(values)
    if (steps > 0).all():
        return "increases at every step"
    if (steps < 0).all():
        return "decreases at every step"
    if (steps >= 0).all():
        return f"never decreases ({int((steps == 0).sum())} ties)"
    if (steps <= 0).all():
        return f"never increases ({int((steps == 0).sum())} ties)"
    return f"is not monotone ({int((steps > 0).sum())} rises, {int((steps < 0).sum())} falls)"


def held(rho, p=None) -> str:
    """The word for a claimed positive association: "held" when rho >= 0.8 and the exact p (if
    any) <= 0.1, "did not hold" when rho <= 0, "held only partly" between."""
    if rho is None:
        return "undecided (rho undefined)"
    if rho <= 0:
        return "did not hold"
    return "held" if rho >= 0.8 and (p is None or p <= 0.1) else "held only partly"


def spearman_table(family_corr, sweep_corr, tasks, sweep_name) -> str:
    def cells(corr, key, p_key=None):
        return [fmt_rho(corr[t][key], corr[t].get(p_key) if p_key else None) for t in tasks]

    rows = [
        ("family: Diff-eRank vs parameters", family_corr, "diff_erank_vs_x", "diff_erank_vs_x_p"),
        ("family: Diff-eRank vs reduced loss", family_corr, "diff_erank_vs_reduced_loss",
         "diff_erank_vs_reduced_loss_p"),
        ("family: reduced loss vs parameters", family_corr, "reduced_loss_vs_x", None),
        ("family: eRank(M1) vs parameters", family_corr, "erank_m1_vs_x", None),
        ("family: eRank ratio M1/M0 vs parameters", family_corr, "erank_ratio_vs_x", None),
        (f"checkpoints of {sweep_name}: Diff-eRank vs step", sweep_corr, "diff_erank_vs_x", "diff_erank_vs_x_p"),
        (f"checkpoints of {sweep_name}: Diff-eRank vs reduced loss", sweep_corr, "diff_erank_vs_reduced_loss",
         "diff_erank_vs_reduced_loss_p"),
    ]
    n_family, n_sweep = family_corr[tasks[0]]["n"], sweep_corr[tasks[0]]["n"]
    lines = ["| Spearman rho (exact two-sided permutation p) | n | " + " | ".join(f"`{t}`" for t in tasks) + " |",
             "|---|---:|" + "---:|" * len(tasks)]
    for title, corr, key, p_key in rows:
        n = n_family if corr is family_corr else n_sweep
        lines.append(f"| {title} | {n} | " + " | ".join(cells(corr, key, p_key)) + " |")
    peak = [f"{fmt_rho(sweep_corr[t]['from_peak_diff_erank_vs_reduced_loss'], sweep_corr[t]['from_peak_diff_erank_vs_reduced_loss_p'])}"
            f", from step {sweep_corr[t]['peak_x']} (n = {sweep_corr[t]['from_peak_n']})" for t in tasks]
    lines.append(f"| checkpoints from Diff-eRank's maximum on: Diff-eRank vs reduced loss | | " + " | ".join(peak) + " |")
    return "\n".join(lines) + "\n"


def verdict(family_runs, sweep_runs, family_corr, sweep_corr, callback_corr, sweep_name, steps) -> list[str]:
    """Plain sentences on the paper's trends, from the group's values (all held-out texts)."""
    task = GROUP
    diffs = [metric(r, task, "diff_erank") for r in family_runs]
    reduced = [metric(r, task, "reduced_loss") for r in family_runs]
    ratios = [metric(r, task, "erank_ratio") for r in family_runs]
    m0 = [metric(r, task, "erank_m0") for r in family_runs]
    fc, sc = family_corr[task], sweep_corr[task]
    sweep_diffs = [metric(r, task, "diff_erank") for r in sweep_runs]
    sweep_reduced = [metric(r, task, "reduced_loss") for r in sweep_runs]
    join = lambda values, d=2: ", ".join(f"{v:.{d}f}" for v in values)  # noqa: E731
    cb = "; ".join(f"{name} {fmt_rho(c['diff_erank_vs_reduced_loss'])} (n = {c['n']}, maximum at step {c['peak_step']}, "
                   f"from there {fmt_rho(c['from_peak_diff_erank_vs_reduced_loss'])})" for name, c in callback_corr.items())
    return [
        f"- Diff-eRank grows with model size: {held(fc['diff_erank_vs_x'], fc['diff_erank_vs_x_p'])}. On `{task}` it {trend_words(diffs)} "
        f"({join(diffs)}; Spearman vs parameters {fmt_rho(fc['diff_erank_vs_x'], fc['diff_erank_vs_x_p'])}, n = {fc['n']}). "
        f"eRank(M0) grows with the width too ({join(m0)}): the size-normalised eRank ratio M1/M0 {trend_words(ratios)} "
        f"({join(ratios, 3)}; Spearman vs parameters {fmt_rho(fc['erank_ratio_vs_x'])}).",
        f"- Diff-eRank tracks the reduced loss across the family: {held(fc['diff_erank_vs_reduced_loss'], fc['diff_erank_vs_reduced_loss_p'])}. The reduced "
        f"loss {trend_words(reduced)} ({join(reduced, 3)} nats); Spearman Diff-eRank vs reduced loss "
        f"{fmt_rho(fc['diff_erank_vs_reduced_loss'], fc['diff_erank_vs_reduced_loss_p'])}, n = {fc['n']} "
        "(with 4 models the smallest possible two-sided p is 2/24 = 0.083).",
        f"- Diff-eRank grows during training as the loss falls: {held(sc['diff_erank_vs_reduced_loss'], sc['diff_erank_vs_reduced_loss_p'])}. Over the "
        f"checkpoints of {sweep_name} (steps {', '.join(map(str, steps))}) Diff-eRank {trend_words(sweep_diffs)} "
        f"({join(sweep_diffs)}) while the reduced loss {trend_words(sweep_reduced)} ({join(sweep_reduced, 3)}); "
        f"Spearman Diff-eRank vs reduced loss {fmt_rho(sc['diff_erank_vs_reduced_loss'], sc['diff_erank_vs_reduced_loss_p'])}, "
        f"from Diff-eRank's maximum (step {sc['peak_x']}) on "
        f"{fmt_rho(sc['from_peak_diff_erank_vs_reduced_loss'], sc['from_peak_diff_erank_vs_reduced_loss_p'])} "
        f"(n = {sc['from_peak_n']}).",
        f"- The callback (every logged step after 0, held-out paragraphs), Spearman Diff-eRank vs reduced loss per model: {cb}.",
    ]


# ---- figures -----------------------------------------------------------------------------------------

def callback_overlay(info: dict):
    """``extra`` of plot_metrics: the model's DiffErankCallback curve, dashed, on each panel."""
    def draw(ax, key):
        points = [(e["step"], e[key]) for e in info["callback"] if e.get(key) is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], "--", color="gray", lw=1,
                    label="DiffErankCallback (held-out paragraphs)")
    return draw


def plot_callback(plt, trained: list[dict], path: Path) -> Path:
    """The callback's Diff-eRank, eRank(M1) and reduced loss against the step, one line per model."""
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.6 * len(PANELS), 4), squeeze=False)
    for ax, (key, title) in zip(axes[0], PANELS):
        for info in trained:
            points = [(e["step"], e[key]) for e in info["callback"] if e.get(key) is not None]
            ax.plot([p[0] for p in points], [p[1] for p in points], "-", marker=".",
                    label=f"{info['name']} ({info['params'] / 1e6:.2f}M)")
        ax.set_xlabel("training step")
        ax.set_ylabel(title)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("DiffErankCallback during training (held-out paragraphs; M0 values are twin means; no error bars)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---- main -------------------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--out", default="family_run", help="working directory (models, results, cache)")
    parser.add_argument("--figures", help="where the PNGs, table.md and summary go (default OUT/plots)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="local WikiText directory (test.txt + train/valid.txt)")
    parser.add_argument("--hf-dataset", help="hub data set name instead of --data (e.g. wikitext)")
    parser.add_argument("--hf-config", help="its configuration (e.g. wikitext-2-raw-v1)")
    parser.add_argument("--tiny", action="store_true", help="smoke size: the whole pipeline in well under a minute")
    parser.add_argument("--sizes", help=f"WIDTHxLAYERS per model, small to large (default {DEFAULTS['sizes']})")
    parser.add_argument("--arch", default="gpt2", choices=["gpt2", "llama"])
    parser.add_argument("--steps", type=int, help=f"training steps per model (default {DEFAULTS['steps']})")
    parser.add_argument("--batch-size", type=int, help=f"training blocks per step (default {DEFAULTS['batch_size']})")
    parser.add_argument("--block", type=int, help=f"context length in tokens (default {DEFAULTS['block']})")
    parser.add_argument("--lr", type=float, help=f"peak learning rate (default {DEFAULTS['lr']})")
    parser.add_argument("--vocab", type=int, help=f"BPE vocabulary size (default {DEFAULTS['vocab']})")
    parser.add_argument("--twins", type=int, help=f"m0_twins for the harness and the callback (default {DEFAULTS['twins']})")
    parser.add_argument("--paragraphs", type=int, help=f"held-out paragraphs evaluated (default {DEFAULTS['paragraphs']})")
    parser.add_argument("--heldout-docs", type=int, help="held-out documents evaluated (default 0: all)")
    parser.add_argument("--train-docs", type=int, help="training documents used (default 0: all)")
    parser.add_argument("--callback-texts", type=int, help=f"held-out paragraphs of the callback (default {DEFAULTS['callback_texts']})")
    parser.add_argument("--callback-every", type=int, help=f"callback interval in steps (default {DEFAULTS['callback_every']})")
    parser.add_argument("--eval-batch-size", type=int, help=f"batch size of the evaluations (default {DEFAULTS['eval_batch_size']})")
    parser.add_argument("--sweep", type=int, default=-1, help="index in --sizes of the model whose checkpoints are swept (default -1: the largest)")
    parser.add_argument("--checkpoints", help="steps of the sweep's checkpoints (default: 0 and steps/2^k)")
    parser.add_argument("--bootstrap-iters", type=int, default=10000, help="bootstrap draws of the stderrs")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared machine, OpenMP threads waiting for a busy core cost more than they give)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisations and the data order")
    args = parser.parse_args(argv)
    preset = TINY if args.tiny else DEFAULTS
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("steps", "batch_size", "block", "vocab", "twins", "callback_texts", "callback_every",
                "eval_batch_size", "threads", "bootstrap_iters"):
        if getattr(args, key) < 1:
            raise SystemExit(f"train_family: --{key.replace('_', '-')} must be >= 1")
    if args.hf_dataset and not args.hf_config:
        raise SystemExit("train_family: --hf-dataset needs --hf-config (e.g. wikitext-2-raw-v1)")
    return args


@dataclass
class Corpus:
    """The text of a run: documents, held-out paragraphs, the tokenizer and the training blocks."""

    source: str
    train_docs: list[str]
    heldout_docs: list[str]
    paragraphs: list[str]
    callback_texts: list[str]
    tokenizer: object
    blocks: object  # torch.Tensor (n, block)


def checkpoint_plan(args, sizes: list[tuple[int, int]]) -> tuple[int, list[int]]:
    """(index of the sweep model, its checkpoint steps), checked against ``--steps``."""
    sweep = range(len(sizes))[args.sweep]
    checkpoints = ([int(s) for s in args.checkpoints.split(",")] if args.checkpoints
                   else default_checkpoints(args.steps))
    if any(s < 0 or s > args.steps for s in checkpoints) or args.steps not in checkpoints:
        raise SystemExit(f"train_family: --checkpoints must lie in 0..{args.steps} and include {args.steps}")
    return sweep, checkpoints


def prepare_corpus(args, out: Path) -> Corpus:
    """Documents, held-out paragraphs (and the callback's share of them), tokenizer, blocks."""
    from lm_eval_erank.testing import tiny

    print("data ...", flush=True)
    train_docs, heldout_docs, source = load_corpus(args)
    train_texts = [detokenize(doc) for doc in train_docs]
    paragraphs = heldout_paragraphs(heldout_docs, args.paragraphs)
    if len(paragraphs) < args.callback_texts:
        raise SystemExit(f"train_family: {len(paragraphs)} held-out paragraphs, fewer than --callback-texts")
    callback_texts = paragraphs[:: max(1, len(paragraphs) // args.callback_texts)][:args.callback_texts]
    tokenizer = tiny.train_tokenizer(train_texts, out / "tokenizer", add_bos=args.arch != "gpt2",
                                     vocab_size=args.vocab)
    blocks = token_blocks(tokenizer, train_texts, args.block)
    print(f"  {len(train_docs)} training documents ({blocks.numel():,} tokens in {len(blocks)} blocks of "
          f"{args.block}); held out: {len(heldout_docs)} documents, {len(paragraphs)} paragraphs", flush=True)
    return Corpus(source, train_docs, heldout_docs, paragraphs, callback_texts, tokenizer, blocks)


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


def write_figures(args, figures: Path, family_runs, sweep_runs, tasks, checkpoints, trained, sweep_info) -> tuple[list, str]:
    """The three figures and ``table.md`` (``lm-eval-erank compare``'s table of the final models and the
    checkpoints before the last): (paths written, the table)."""
    plt = compare_figures.pyplot()
    written = [
        compare_figures.plot_metrics(
            family_runs, tasks, PANELS, figures / "family_by_size.png", x={r.label: r.num_parameters for r in family_runs},
            xlabel="parameters (count, log scale)",
            title=f"Final models of the family ({args.steps} steps each), held-out text; bars: stderr over texts "
                  f"and {args.twins} twins"),
        compare_figures.plot_metrics(
            sweep_runs, tasks, PANELS, figures / "checkpoints_by_step.png",
            x={r.label: s for r, s in zip(sweep_runs, checkpoints)}, xscale="symlog", extra=callback_overlay(sweep_info),
            xlabel="training step (symlog)", title=f"Checkpoints of {sweep_info['name']}; bars: stderr over texts "
                                                   f"and {args.twins} twins (shared by the checkpoints)"),
        plot_callback(plt, trained, figures / "callback_by_step.png"),
    ]
    runs = family_runs + sweep_runs[:-1]
    comparison = compare_report.compare([r.path for r in runs], labels=[r.label for r in runs], tasks=tasks,
                                        pairs="none", figures=False)
    table = compare_report.table_markdown(comparison) + "\n" + compare_report.table_legend(comparison) + "\n"
    (figures / "table.md").write_text(table, encoding="utf-8")
    written.append(figures / "table.md")
    return written, table


def run_values(run, tasks, metrics) -> dict:
    """{task: {metric: (value, stderr)}} of one run."""
    return {t: {m: run.value(t, m) for m in metrics} for t in tasks}


def summary_markdown(summary: dict, table: str, rho_table: str) -> str:
    """``summary.md``: the command, the data, the machine and the times, the tables, the verdict."""
    machine, loads = summary["machine"], summary["machine"]["loadavg_1min_samples"]
    train_minutes = sum(t["train_seconds"] for t in summary["models"]) / 60
    md = [f"Command: `{summary['command']}`", "",
          f"Data: {summary['data']}; {summary['train_documents']} training documents ({summary['train_tokens']:,} tokens), "
          f"{summary['heldout_documents']} held-out documents, {summary['heldout_paragraphs']} held-out paragraphs.", "",
          f"Machine: {machine['cpus']} CPU cores, torch {machine['torch']}, {machine['torch_threads']} thread(s); "
          f"1-minute load average {min(loads):.1f}-{max(loads):.1f} (mean {sum(loads) / len(loads):.1f}) over "
          f"{len(loads)} samples (start, after each training and harness run), 15-minute "
          f"{machine['loadavg_end'][2]:.1f} at the end; "
          f"wall time {summary['wall_seconds'] / 60:.1f} min (training {train_minutes:.1f} min, "
          f"harness {sum(summary['harness_seconds'].values()) / 60:.1f} min; the M0 cache held "
          f"{summary['m0_cache_entries_at_start']} entries at the start of the harness runs: "
          f"{len(summary['models']) * summary['settings']['twins']} cover every twin of the family).", "",
          table, rho_table, "Verdict (the paper's trends at this scale):", "", *summary["verdict"], ""]
    return "\n".join(md)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load_start = os.getloadavg()
    loads = [load_start[0]]  # 1-minute load average after each model's training and each harness run
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out).resolve()
    figures = Path(args.figures).resolve() if args.figures else out / "plots"
    out.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    sizes = parse_sizes(args.sizes)
    sweep, checkpoints = checkpoint_plan(args, sizes)
    corpus = prepare_corpus(args, out)
    trained = train_all(args, sizes, sweep, checkpoints, corpus, out, loads)
    harness_seconds, family_files, sweep_files, cached = evaluate_all(args, trained, sweep, checkpoints, corpus, out,
                                                                      loads)
    sweep_info = trained[sweep]
    family_runs = [load_run(p, label=t["name"]) for p, t in zip(family_files, trained)]
    sweep_runs = [load_run(sweep_files[s], label=f"{sweep_info['name']}@{s}") for s in checkpoints]
    tasks = [GROUP, *TASKS.values()]
    family_corr = correlations(family_runs, [t["params"] for t in trained], tasks)
    sweep_corr = correlations(sweep_runs, checkpoints, tasks)
    written, table = write_figures(args, figures, family_runs, sweep_runs, tasks, checkpoints, trained, sweep_info)

    wall = time.perf_counter() - started
    load_end = os.getloadavg()
    callback_corr = callback_correlations(trained)
    lines = verdict(family_runs, sweep_runs, family_corr, sweep_corr, callback_corr, sweep_info["name"], checkpoints)
    summary = {
        "command": "python scripts/train_family.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "data": corpus.source, "train_documents": len(corpus.train_docs), "train_tokens": int(corpus.blocks.numel()),
        "heldout_documents": len(corpus.heldout_docs), "heldout_paragraphs": len(corpus.paragraphs),
        "machine": {"cpus": os.cpu_count(), "torch_threads": args.threads, "platform": platform.platform(),
                    "torch": torch.__version__, "loadavg_start": load_start, "loadavg_end": load_end,
                    "loadavg_1min_samples": loads},
        "settings": {k: getattr(args, k) for k in [*DEFAULTS, "arch", "seed", "bootstrap_iters"]},
        "checkpoints": checkpoints, "sweep_model": sweep_info["name"],
        "models": [{k: v for k, v in t.items() if k != "final"} for t in trained],
        "harness_seconds": harness_seconds, "wall_seconds": wall, "m0_cache_entries_at_start": cached,
        "family": {r.label: run_values(r, tasks, ("diff_erank", "erank_m1", "erank_m0", "reduced_loss", "loss_m1",
                                                  "erank_ratio")) for r in family_runs},
        "checkpoint_results": {str(s): run_values(r, tasks, ("diff_erank", "erank_m1", "erank_m0", "reduced_loss",
                                                             "loss_m1")) for s, r in zip(checkpoints, sweep_runs)},
        "spearman_family": family_corr, "spearman_checkpoints": sweep_corr, "spearman_callback": callback_corr,
        "verdict": lines,
    }
    (figures / "summary.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    rho_table = spearman_table(family_corr, sweep_corr, tasks, sweep_info["name"])
    (figures / "summary.md").write_text(summary_markdown(summary, table, rho_table), encoding="utf-8")
    for path in [*written, figures / "summary.json", figures / "summary.md"]:
        print(path)
    print(f"wall time {wall:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
