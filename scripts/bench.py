"""Side-by-side benchmark of lm-eval-erank: our pipeline, the paper's reference, the harness.

One process, one model, one set of texts; every requirement is a ratio of two timings taken
here, on this machine:

(a) our pipeline (``text_statistics`` for M1 and M0 at the harness batch size) split into
    forward, spectra (``matrix_entropy``) and losses (``token_losses``, or ``head_losses`` on the
    fast path, which includes the LM head at real positions): spectra share <= 5%;
(b) the paper's reference pipeline re-implemented from its definitions (per text: base-model
    forward in float32 at batch 1, d x d covariance of the centred, row-normalised states,
    float32 ``torch.svd``, for M1 and M0) on the same texts: spectra >= 100x faster, whole
    per-text cost >= 3x lower; entropies must agree with ours;
(c) harness time of each standard local task (``hf``) vs its erank counterpart
    (``hf-erank``), same model, batch size and docs, model loading excluded: <= 2.2x;
(d) building the random twin M0 vs loading M1 from local disk: build <= load;
(e) ``batch_size=auto`` serves erank requests (the chosen size and the agreement with a
    fixed batch size are reported);
(f) M0's results cache: M1 + M0 over all texts with the cache off, empty and full (the
    saving a sweep over checkpoints of one architecture gets from the second checkpoint on);
(g) memory: M1 + M0 over all texts with both resident (default) and with ``m0_swap=true``
    (one model resident at a time): time, and on CUDA the peak device memory of each against
    the weights of M1 + M0;
(h) with ``--twins K``: the ``erank_piqa`` / ``piqa`` harness time ratio with one random twin
    and with K twins (``m0_twins=K``, run one after another), best of ``--repeats``
    (``--twins-only`` runs just the setup and (h)).
(i) ``erank_<name>`` of a user's own tasks (no erank YAML written): harness time of a
    generation task (PIQA prompts, greedy, ``--gen-toks`` tokens) and of a group of the three
    standard tasks under ``hf``, vs ``erank_<name>`` under ``hf-erank``; their own metrics
    must come out identical.

Models are built from configs (no downloads), saved to a temporary directory and loaded with
``pretrained=<dir>`` as a user would. Texts are the gold texts of the erank tasks on real
PIQA / OpenBookQA / WinoGrande docs when ../shared/data/hf_schema holds them (else the example's docs).

    python scripts/bench.py [--shape small|gpt2-small|opt-1.3b] [--docs N] [--batch-size B]
                            [--device cpu|cuda] [--out bench.json]

Times are wall-clock by default; ``--clock cpu`` measures this process's CPU time instead,
which other processes sharing the cores disturb far less (use it with ``--threads 1``).

Instrumentation note: the library exposes no timing hooks, so stages are timed by wrapping
``lm_eval_erank.core.representations.matrix_entropy`` / ``token_losses`` and the LM instances'
``loglikelihood`` / ``erank`` methods for the duration of a measurement (restored after).

The sections live in ``scripts/bench_sections/`` (one module per group, one shared clock); the
shapes, the data location and the offline set-up in ``scripts/studies/``. This file reads the
options, runs the sections in order, prints the table and writes the JSON report.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from studies import environment, shapes

environment.go_offline()

import torch  # noqa: E402

from bench_sections import clock  # noqa: E402
from bench_sections.harness import (check_auto_batch, time_harness, time_twins, time_wrapped,  # noqa: E402
                                    write_wrapped_bases)
from bench_sections.m0 import time_m0_cache, time_m0_swap, time_twin_build  # noqa: E402
from bench_sections.models import (TASK_PREFIX, TASKS, build_model_dir, evenly_spaced, gold_token_ids,  # noqa: E402
                                   load_rows, make_lm, without_entropies)
from bench_sections.pipeline import compare_with_reference, time_pipeline, time_reference  # noqa: E402
from bench_sections.report import TARGETS, cpu_load, machine_info, print_table, twins_line, verdicts  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; device-dependent defaults (dtype, batch size) are filled in."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="small", choices=sorted(shapes.SHAPES))
    parser.add_argument("--docs", type=int, default=200, help="docs per task (first N of each data file)")
    parser.add_argument("--batch-size", type=int, default=None, help="harness batch size (default 16 cpu, 32 cuda)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                        help="model dtype in the harness (default float32 cpu, bfloat16 cuda)")
    parser.add_argument("--ref-texts", type=int, default=None,
                        help="texts for the reference pipeline, evenly spaced over all texts (default: all on "
                             "cpu, 48 on cuda, where its d x d SVD takes ~0.6 s per text and model at opt-1.3b)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="repeats of the harness and M0-build/load timings (the best is reported)")
    parser.add_argument("--auto-docs", type=int, default=8, help="docs for the batch_size=auto check")
    parser.add_argument("--auto-max-batch", type=int, default=64,
                        help="max_batch_size of the batch_size=auto check (lm-eval's default 64)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own choice); 1 is steadier on a shared machine")
    parser.add_argument("--clock", default="wall", choices=sorted(clock.CLOCKS),
                        help="wall: elapsed time; cpu: this process's CPU time (user + sys, all threads), "
                             "steadier when other processes share the cores (CPU runs only)")
    parser.add_argument("--twins", type=int, default=None,
                        help="(h): also time erank_piqa with m0_twins=K against piqa, beside K = 1")
    parser.add_argument("--twins-only", action="store_true", help="run only the setup and (h) (needs --twins)")
    parser.add_argument("--gen-toks", type=int, default=32, help="max_gen_toks of the generation task of (i)")
    parser.add_argument("--out", default="bench.json")
    args = parser.parse_args(argv)
    if args.twins_only and not args.twins:
        parser.error("--twins-only needs --twins K")
    args.batch_size = args.batch_size or (32 if args.device == "cuda" else 16)
    args.dtype = args.dtype or ("bfloat16" if args.device == "cuda" else "float32")
    if args.ref_texts is None and args.device == "cuda":
        args.ref_texts = 48
    if args.clock == "cpu" and args.device == "cuda":
        parser.error("--clock cpu does not see GPU work; use --clock wall with --device cuda")
    return args


class Bench:
    """One run: the options, the report being filled, and what the set-up built."""

    def __init__(self, args: argparse.Namespace, started: float):
        self.args, self.started = args, started
        self.report: dict = {"shape": args.shape, "docs": args.docs, "batch_size": args.batch_size,
                             "repeats": args.repeats, "clock": args.clock, "gen_toks": args.gen_toks,
                             "machine": machine_info(args), "cpu_load": {}}

    def stage(self, name: str, message: str) -> None:
        """Record the CPU load at the start of a stage and print its progress line."""
        self.report["cpu_load"][name] = cpu_load()
        print(f"[bench {time.perf_counter() - self.started:6.1f}s] {message}", flush=True)

    def set_up(self, tmp: Path) -> None:
        """The local tasks (with the wrapped bases of (i)), the model directory, both LM instances."""
        from lm_eval.tasks import TaskManager

        from lm_eval_erank.testing import tiny

        args, report = self.args, self.report
        self.stage("setup", "building the tokenizer, the model and the local tasks")
        rows = load_rows(args.docs)
        report["docs_source"] = "hf_schema files" if rows else "example docs"
        tiny.write_local_tasks(tmp / "tasks", prefix=TASK_PREFIX, rows_override=rows)
        write_wrapped_bases(tmp / "tasks", args.gen_toks)
        self.task_manager = TaskManager(include_path=str(tmp / "tasks"))
        report["model"] = build_model_dir(args.shape, tmp, getattr(torch, args.dtype))
        self.model_dir = tmp / "model"
        self.hf_lm = make_lm("hf", self.model_dir, args, args.batch_size)
        self.erank_lm = make_lm("hf-erank", self.model_dir, args, args.batch_size)

    def texts(self) -> None:
        """The gold texts' token ids and their lengths per task."""
        token_ids, owners = gold_token_ids(self.erank_lm, self.task_manager)
        self.token_ids = token_ids
        self.report["mean_tokens"] = statistics.mean(len(t) for t in token_ids)
        self.report["texts_per_task"] = {t: owners.count(t) for t in TASKS}
        self.report["mean_tokens_per_task"] = {
            t: statistics.mean(len(ids) for ids, owner in zip(token_ids, owners) if owner == t) for t in TASKS}

    def pipelines(self) -> None:
        """(a) our pipeline on every text, (b) the reference on an evenly spaced subset."""
        args, report, lm, token_ids = self.args, self.report, self.erank_lm, self.token_ids
        self.stage("ours", f"(a) our pipeline on {len(token_ids)} texts")
        ours = time_pipeline(lm, token_ids, args.batch_size)
        report["ours_all_texts"] = without_entropies(ours)
        indices = evenly_spaced(len(token_ids), args.ref_texts)
        subset = [token_ids[i] for i in indices]
        self.stage("reference", f"(b) the reference pipeline on {len(subset)} texts")
        reference = time_reference(lm, subset)
        ours_same = ours if len(subset) == len(token_ids) else time_pipeline(lm, subset, args.batch_size)
        ours_lean = time_pipeline(lm, subset, args.batch_size, losses=False)
        report["reference"] = {
            **without_entropies(reference), "ours_same_texts": without_entropies(ours_same),
            "ours_same_texts_without_losses": without_entropies(ours_lean),
            "spectra_speedup": reference["spectra_s"] / ours_same["spectra_s"],
            "per_text_speedup": reference["total_s"] / ours_same["total_s"],
            "per_text_speedup_without_losses": reference["total_s"] / ours_lean["total_s"],
            "lean_entropies_equal": ours_lean["entropy_m1"] == ours_same["entropy_m1"]
            and ours_lean["entropy_m0"] == ours_same["entropy_m0"],
            "agreement": compare_with_reference(ours, reference, indices),
        }

    def twins(self) -> None:
        """(h) erank_piqa / piqa with one and with ``--twins`` twins."""
        args = self.args
        self.stage("twins", f"(h) erank_piqa / piqa with 1 and {args.twins} twins, best of {args.repeats}")
        self.report["twins"] = time_twins(self.hf_lm, self.erank_lm, self.model_dir, args, self.task_manager)

    def sections(self, tmp: Path) -> None:
        """(a) to (h) after the set-up, in order."""
        args, report, repeats = self.args, self.report, self.args.repeats
        self.texts()
        self.pipelines()
        self.stage("harness", f"(c) the harness, standard vs erank tasks, best of {repeats}")
        report["harness"] = time_harness(self.hf_lm, self.erank_lm, self.task_manager, repeats)
        self.stage("wrapped", f"(i) erank_<name> of a generation task and a group, best of {repeats}")
        report["wrapped"] = time_wrapped(self.hf_lm, self.erank_lm, self.task_manager, repeats)
        self.stage("twin", f"(d) building M0 vs loading M1, best of {repeats}")
        report["twin"] = time_twin_build(self.erank_lm, self.model_dir, args)
        self.stage("auto_batch", "(e) batch_size=auto")
        report["auto_batch"] = check_auto_batch(self.model_dir, args, self.erank_lm, self.task_manager)
        self.stage("m0_cache", "(f) M0's results cache: off, empty, full")
        report["m0_cache"] = time_m0_cache(self.erank_lm, self.token_ids, args.batch_size, tmp / "m0_cache")
        self.stage("m0_swap", "(g) memory: both models resident vs m0_swap=true")
        report["m0_swap"] = time_m0_swap(self.erank_lm, self.model_dir, args, self.token_ids)
        if args.twins:
            self.twins()

    def write(self) -> None:
        """The JSON report to ``--out``."""
        Path(self.args.out).write_text(json.dumps(self.report, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {self.args.out}")


def main(argv: list[str] | None = None) -> int:
    """Build everything, run (a)-(i), print the table and write the JSON report."""
    started = time.perf_counter()
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device available")
    if args.threads:
        torch.set_num_threads(args.threads)
    clock.use_clock(args.clock)
    from lm_eval_erank.harness.activation import register

    register()
    bench = Bench(args, started)
    with tempfile.TemporaryDirectory(prefix="erank-bench-") as tmp:
        bench.set_up(Path(tmp))
        if args.twins_only:
            bench.twins()
            bench.stage("end", "done")
            print(twins_line(bench.report["twins"]))
            bench.write()
            return 0
        bench.sections(Path(tmp))
    bench.stage("end", "done")
    report = bench.report
    report["verdicts"] = verdicts(report)
    report["targets"] = TARGETS
    report["script_wall_s"] = time.perf_counter() - started
    print()
    print_table(report)
    bench.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
