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

The parts live in ``studies/train_family/``: ``corpus.py`` (1-2), ``training.py`` (2-4),
``analysis.py`` (the correlations and the verdict), ``report.py`` (5).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from studies import environment, records  # noqa: E402  (scripts/studies/)

environment.go_offline()

from lm_eval_erank.compare.runs import load_run  # noqa: E402
from studies.train_family.analysis import callback_correlations, correlations, verdict  # noqa: E402
from studies.train_family.corpus import prepare_corpus  # noqa: E402
from studies.train_family.report import correlation_table, run_values, summary_markdown, write_figures  # noqa: E402
from studies.train_family.training import (GROUP, TASKS, checkpoint_plan, evaluate_all, parse_sizes,  # noqa: E402
                                           train_all)

DEFAULT_DATA = environment.SHARED_DATA / "wikitext-2"
DEFAULTS = dict(sizes="64x2,128x2,192x3,256x4", steps=360, batch_size=16, block=128, lr=2e-3, vocab=4096,
                twins=5, paragraphs=300, heldout_docs=0, train_docs=0, callback_texts=32, callback_every=40,
                eval_batch_size=32)
TINY = dict(sizes="16x1,24x1,32x2,48x2", steps=6, batch_size=4, block=32, lr=3e-3, vocab=300, twins=2,
            paragraphs=6, heldout_docs=3, train_docs=4, callback_texts=3, callback_every=2, eval_batch_size=8)



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
    machine = records.machine()
    load_end = machine["load_average"]
    callback_corr = callback_correlations(trained)
    lines = verdict(family_runs, sweep_runs, family_corr, sweep_corr, callback_corr, sweep_info["name"], checkpoints)
    summary = {
        "command": "python scripts/train_family.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "data": corpus.source, "train_documents": len(corpus.train_docs), "train_tokens": int(corpus.blocks.numel()),
        "heldout_documents": len(corpus.heldout_docs), "heldout_paragraphs": len(corpus.paragraphs),
        "machine": {"cpus": machine["cpu_count"], "torch_threads": args.threads, "platform": machine["platform"],
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
    rho_table = correlation_table(family_corr, sweep_corr, tasks, sweep_info["name"])
    (figures / "summary.md").write_text(summary_markdown(summary, table, rho_table), encoding="utf-8")
    for path in [*written, figures / "summary.json", figures / "summary.md"]:
        print(path)
    print(f"wall time {wall:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
