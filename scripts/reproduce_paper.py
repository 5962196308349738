"""Reproduce the Diff-eRank paper's OPT scaling results with the plugin, and compare.

Runs the paper's OPT family (facebook/opt-125m, -1.3b, -2.7b, -6.7b, -13b) through
lm-evaluation-harness with the plugin's CLI, one process per model::

    python -m lm_eval_erank --model hf-erank --model_args pretrained=<model>,dtype=float32 \\
        --tasks erank_openbookqa,erank_piqa[,erank_dolly] --batch_size 16 \\
        --output_path OUT/results/<name>

then reads each model's results JSON and prints, per task and model, our Diff-eRank and
accuracy beside the paper's (Wei et al., NeurIPS 2024, last layer), with our reduced loss and
the two eRanks. The table is also written to ``OUT/comparison.md`` (and the numbers to
``OUT/comparison.json``); with matplotlib installed, ``lm-eval-erank compare`` draws the
figures into ``OUT/plots/``. ``erank_dolly`` is included when the installed task list (the
plugin's task directory or ``--include_path``) has it.

Running it for real (needs the hub, or the checkpoints in the local HF cache)::

    python scripts/reproduce_paper.py --out paper_run --device cuda:0
    # a subset, bfloat16 forwards (not the paper's float32), M0 on a second GPU:
    python scripts/reproduce_paper.py --models opt-125m,opt-1.3b --tasks erank_piqa \\
        --dtype bfloat16 --extra_model_args m0_device=cuda:1 --out paper_run
    python scripts/reproduce_paper.py --dry-run        # print the commands only

Memory: the plugin holds M1 and its random twin M0 at once, so opt-13b in float32 needs
about 2 x 52 GB (fits one 141 GB H200; on an 80 GB GPU use ``--extra_model_args
m0_swap=true`` to hold one model at a time, ``m0_device=cuda:1``, or ``--dtype bfloat16``). The paper evaluates the full sets (OpenBookQA
test, 500 docs; PIQA validation, 1,838 docs); ``--limit`` makes the numbers incomparable.
``--skip-existing`` reuses a model's results JSON from an earlier run of the same ``--out``
(e.g. after one model failed). Options this script does not know are passed on to the
harness (e.g. ``--log_samples``, ``--seed 0,1234,1234,1234``).

Tests and offline use: ``--models NAME=PATH,...`` stands local models in for the family
(NAME is the paper's name it stands for, e.g. ``opt-125m=/tmp/tiny``), ``--include_path``
and ``--task-map erank_piqa=local_erank_piqa`` point the paper's tasks at local task copies.
Numbers from such stand-ins show the plumbing only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from lm_eval_erank.core.statistics import spearman

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))  # scripts/studies, also when imported by path
from studies.formatting import cell  # noqa: E402

PAPER_MODELS = ("opt-125m", "opt-1.3b", "opt-2.7b", "opt-6.7b", "opt-13b")
HUB_PREFIX = "facebook/"

# The paper's numbers (last layer), in the order of PAPER_MODELS, as published (the string keeps
# the published precision). Source: /work/shared/notes/anchors.md ("Paper values").
PAPER = {
    "openbookqa": {
        "diff_erank": ("1.410", "2.140", "2.338", "2.280", "3.032"),
        "acc": ("0.276", "0.332", "0.370", "0.360", "0.366"),
    },
    "piqa": {
        "diff_erank": ("4.647", "6.294", "6.774", "6.950", "7.267"),
        "acc": ("0.619", "0.714", "0.733", "0.756", "0.767"),
    },
    "dolly": {
        "diff_erank": ("54.35", "76.39", "83.02", "89.60", "89.81"),
    },
}
PAPER_TASKS = ("erank_openbookqa", "erank_piqa", "erank_dolly")
METRIC_TITLES = {"diff_erank": "Diff-eRank", "acc": "acc"}
OURS_ONLY = (("reduced_loss", "reduced loss"), ("erank_m1", "eRank M1"), ("erank_m0", "eRank M0"))


# ---- arguments ----------------------------------------------------------------------------------

def parse_models(spec: str | None) -> list[tuple[str, str]]:
    """``name=source,...`` -> [(name, source)]. A bare item is a paper name (``opt-125m``, run
    as ``facebook/opt-125m``) or a hub id / path (named after its last part)."""
    if not spec:
        return [(name, HUB_PREFIX + name) for name in PAPER_MODELS]
    models = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, sep, source = item.partition("=")
        if sep:
            name, source = name.strip(), source.strip()
        elif item in PAPER_MODELS:
            name, source = item, HUB_PREFIX + item
        else:
            name, source = item.rstrip("/").split("/")[-1], item
        if not name or not source:
            raise SystemExit(f"reproduce_paper: bad --models item {item!r} (want name=path_or_hub_id)")
        models.append((name.removeprefix(HUB_PREFIX), source))
    names = [n for n, _ in models]
    if len(set(names)) != len(names):
        raise SystemExit(f"reproduce_paper: duplicate model names in --models: {names}")
    return models


def parse_task_map(items: list[str] | None) -> dict[str, str]:
    mapping = {}
    for item in items or []:
        for pair in (p.strip() for p in item.split(",")):
            if not pair:
                continue
            paper_task, sep, run_task = pair.partition("=")
            if not sep or not paper_task.strip() or not run_task.strip():
                raise SystemExit(f"reproduce_paper: bad --task-map item {pair!r} (want erank_piqa=my_task)")
            mapping[paper_task.strip()] = run_task.strip()
    return mapping


def paper_key(task: str) -> str:
    """The paper's data set of a task name: ``erank_piqa`` -> ``piqa``."""
    return task.split("erank_")[-1]


def known_task_names(include_path: str | None) -> set[str]:
    """Task and group names defined by the plugin's task YAMLs and by ``--include_path``
    (a quick scan of ``task:`` / ``group:`` lines, without indexing all of lm-eval's tasks)."""
    directories = []
    try:
        from lm_eval_erank.harness.task_dirs import task_dir

        directories.append(task_dir())
    except ImportError:  # pragma: no cover - plugin not installed
        pass
    if include_path:
        directories.append(Path(include_path))
    names = set()
    pattern = re.compile(r"^(?:task|group):\s*['\"]?([^\s'\"#]+)['\"]?\s*(?:#.*)?$")
    for directory in directories:
        for path in Path(directory).rglob("*.y*ml"):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            for line in text.splitlines():
                match = pattern.match(line)
                if match:
                    names.add(match.group(1))
    return names


def choose_tasks(requested: str | None, task_map: dict[str, str], include_path: str | None):
    """[(paper task, task name run)], and notes."""
    known = known_task_names(include_path)
    notes = []
    if requested:
        tasks = [t.strip() for t in requested.split(",") if t.strip()]
        for task in tasks:
            run = task_map.get(task, task)
            if run not in known:
                notes.append(f"{run} is not among the plugin's tasks or --include_path; passed to the harness as is")
    else:
        tasks = []
        for task in PAPER_TASKS:
            run = task_map.get(task, task)
            if run in known:
                tasks.append(task)
            elif task == "erank_dolly":
                notes.append(f"{run} is not in the installed task list; the dolly comparison is skipped")
            else:
                tasks.append(task)
                notes.append(f"{run} is not among the plugin's tasks or --include_path; passed to the harness as is")
    return [(t, task_map.get(t, t)) for t in tasks], notes


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


def build_command(args, source: str, run_tasks: list[str], output: Path, passthrough: list[str]) -> list[str]:
    model_args = f"pretrained={source},dtype={args.dtype}"
    if args.m0_twins != 1:
        model_args += f",m0_twins={args.m0_twins}"
    if args.extra_model_args:
        model_args += "," + args.extra_model_args.strip(",")
    command = [args.python, "-m", "lm_eval_erank", "--model", "hf-erank", "--model_args", model_args,
               "--tasks", ",".join(run_tasks), "--batch_size", str(args.batch_size),
               "--output_path", str(output)]
    if args.device:
        command += ["--device", args.device]
    if args.include_path:
        command += ["--include_path", str(args.include_path)]
    if args.limit is not None:
        command += ["--limit", str(args.limit)]
    return command + passthrough


# ---- results ------------------------------------------------------------------------------------

def newest_results(directory: Path) -> Path | None:
    files = list(Path(directory).rglob("results_*.json")) if Path(directory).is_dir() else []
    return max(files, key=lambda p: (p.stat().st_mtime, p.name)) if files else None


def metric(row: dict, name: str):
    """(value, stderr, state): state is 'ok', 'null' (every text excluded) or 'absent'."""
    if f"{name},none" not in row:
        return None, None, "absent"
    value = row[f"{name},none"]
    if value is None:
        return None, None, "null"
    stderr = row.get(f"{name}_stderr,none")
    stderr = float(stderr) if isinstance(stderr, (int, float)) and math.isfinite(stderr) else None
    return float(value), stderr, "ok"


def paper_value(task: str, metric_name: str, model: str) -> str | None:
    values = PAPER.get(paper_key(task), {}).get(metric_name)
    if values is None or model not in PAPER_MODELS:
        return None
    return values[PAPER_MODELS.index(model)]


def compare(models, tasks, results: dict[str, dict | None], sources: dict[str, str], limit) -> tuple[str, list]:
    """The comparison as markdown, and its rows as dicts."""
    lines = ["# Diff-eRank: ours vs the paper (Wei et al., NeurIPS 2024, OPT, last layer)", ""]
    lines += [f"- {name}: `{sources[name]}`" + ("" if results.get(name) else " (no results)")
              for name, _ in models]
    if limit is not None:
        lines += ["", f"Note: --limit {limit}: a subset of the documents; not comparable to the paper."]
    if any(name not in PAPER_MODELS for name, _ in models):
        lines += ["", "Models not named after the paper's (opt-125m ... opt-13b) have no paper values."]
    rows = []
    any_null = False
    for task, run_task in tasks:
        paper_metrics = [m for m in ("diff_erank", "acc") if m in PAPER.get(paper_key(task), {})] or ["diff_erank", "acc"]
        title = f"## {task}" + (f" (run as {run_task})" if run_task != task else "")
        lines += ["", title, ""]
        header = ["model", "params", "n"]
        for m in paper_metrics:
            header += [f"{METRIC_TITLES[m]} ours", f"{METRIC_TITLES[m]} paper"]
        header += [t + " ours" for _, t in OURS_ONLY]
        lines += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        trend = {"ours": [], "paper": []}
        for name, _ in models:
            data = results.get(name)
            row = (data or {}).get("results", {}).get(run_task)
            record = {"model": name, "source": sources[name], "task": task, "run_task": run_task}
            size = (data or {}).get("config", {}).get("model_num_parameters")
            record["m0_twins"] = (data or {}).get("config", {}).get("erank_m0_twins", 1 if data else None)
            if row is not None and isinstance(row.get("erank_m0_twin_sd,none"), (int, float)):
                record["erank_m0_twin_sd"] = row["erank_m0_twin_sd,none"]
            n = (data or {}).get("n-samples", {}).get(run_task, {}).get("effective")
            cells = [name, f"{size:,}" if isinstance(size, int) else "-", str(n) if n is not None else "-"]
            record.update(params=size, n=n)
            for m in [*paper_metrics, *(m for m, _ in OURS_ONLY)]:
                value, stderr, state = metric(row, m) if row is not None else (None, None, "absent")
                any_null |= state == "null"
                cells.append(cell(value, 4, spread=stderr, missing="n/a" if state == "null" else "-")
                             if row is not None else "(not run)")
                record[m] = value
                record[m + "_stderr"] = stderr
                if m in paper_metrics:
                    published = paper_value(task, m, name)
                    cells.append(published or "-")
                    record[m + "_paper"] = float(published) if published else None
                    if m == "diff_erank" and published and state == "ok":
                        trend["ours"].append(value)
                        trend["paper"].append(float(published))
            lines.append("| " + " | ".join(cells) + " |")
            rows.append(record)
        rho = spearman(trend["ours"], trend["paper"])
        if rho is not None:
            lines += ["", f"Diff-eRank rank agreement with the paper across {len(trend['ours'])} models: "
                          f"Spearman rho = {rho:.3f}"]
    if any_null:
        lines += ["", "n/a: every text of the task was excluded (fewer than 2 tokens), so it has no eRank."]
    lines += ["", "Ours: value ± stderr (lm-eval-erank); paper: as published; -: not reported."]
    twins = sorted({r["m0_twins"] for r in rows if r.get("m0_twins")})
    if twins == [1]:
        lines += ["One random twin per model (m0_twins=1): the ± covers the texts only, not the twin draw, "
                  "which moves Diff-eRank across architectures (README, 'The random twin's draw'); "
                  "use --m0-twins 3 or more to include it."]
    elif twins:
        lines += [f"m0_twins = {', '.join(map(str, twins))}: values are twin means; the ± covers texts and twins."]
    return "\n".join(lines) + "\n", rows


# ---- main ---------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None):
    """(options, the arguments passed on to the harness)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__,
                                     allow_abbrev=False)
    parser.add_argument("--models", help="comma-separated name=path_or_hub_id (or paper names); "
                                         f"default: {','.join(PAPER_MODELS)} from the hub")
    parser.add_argument("--tasks", help=f"comma-separated paper task names (default: {','.join(PAPER_TASKS)}, "
                                        "erank_dolly only when installed)")
    parser.add_argument("--task-map", "--task_map", action="append", metavar="PAPER_TASK=TASK",
                        help="run TASK in place of PAPER_TASK (repeatable or comma-separated)")
    parser.add_argument("--include_path", "--include-path", help="passed to the harness (extra task YAMLs)")
    parser.add_argument("--limit", type=float, help="documents per task (harness --limit); for smoke tests")
    parser.add_argument("--batch_size", "--batch-size", default="16", help="harness --batch_size (default 16)")
    parser.add_argument("--device", help="harness --device, e.g. cuda:0 or cpu (default: the harness's)")
    parser.add_argument("--dtype", default="float32", help="model dtype (default float32, as the paper)")
    parser.add_argument("--extra_model_args", "--extra-model-args", default="",
                        help="appended to --model_args, e.g. m0_device=cuda:1")
    parser.add_argument("--m0-twins", "--m0_twins", type=int, default=1,
                        help="random twins per model (model argument m0_twins; default 1): the values are twin "
                             "means and their stderr covers the twin draw (README, 'The random twin's draw')")
    parser.add_argument("--out", default="paper_run", help="output directory (default paper_run)")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the harness")
    parser.add_argument("--dry-run", "--dry_run", action="store_true", help="print the commands only")
    parser.add_argument("--skip-existing", "--skip_existing", action="store_true",
                        help="reuse a model's results JSON under --out when it has every task")
    parser.add_argument("--no-plot", "--no_plot", action="store_true", help="do not draw the figures")
    args, passthrough = parser.parse_known_args(argv)
    if args.limit is not None and args.limit.is_integer():
        args.limit = int(args.limit)
    return args, passthrough


def run_models(models, commands: dict[str, list[str]], out: Path, run_tasks: list[str], skip_existing: bool):
    """Run each model's harness command (or reuse its results with ``skip_existing``):
    ({name: results or None}, {name: results file}, [names that failed])."""
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    results: dict[str, dict | None] = {}
    files: dict[str, Path] = {}
    failed = []
    for name, _ in models:
        directory = out / "results" / slug(name)
        existing = newest_results(directory) if skip_existing else None
        if existing is not None:
            data = json.loads(existing.read_text(encoding="utf-8"))
            if all(t in data.get("results", {}) for t in run_tasks):
                print(f"== {name}: reusing {existing}", flush=True)
                results[name], files[name] = data, existing
                continue
        before = newest_results(directory)
        print(f"== {name}: {shlex.join(commands[name])}", flush=True)
        code = subprocess.call(commands[name], env=env)
        produced = newest_results(directory)
        if code != 0 or produced is None or produced == before:
            print(f"reproduce_paper: {name} failed (exit code {code}); continuing", file=sys.stderr, flush=True)
            failed.append(name)
            results[name] = None
            continue
        results[name] = json.loads(produced.read_text(encoding="utf-8"))
        files[name] = produced
    return results, files, failed


def draw_figures(files: dict[str, Path], out: Path, run_tasks: list[str]) -> None:
    """``lm-eval-erank compare``'s table and figures of the results into ``out/plots`` (needs matplotlib)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("note: matplotlib is not installed; no figures (pip install matplotlib)", file=sys.stderr)
        return
    from lm_eval_erank.compare import compare

    names = list(files)
    comparison = compare([files[n] for n in names], out / "plots", labels=names, tasks=run_tasks)
    for path in comparison.files:
        print(f"written: {path}")


def main(argv: list[str] | None = None) -> int:
    args, passthrough = parse_args(argv)
    models = parse_models(args.models)
    task_map = parse_task_map(args.task_map)
    tasks, notes = choose_tasks(args.tasks, task_map, args.include_path)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not tasks:
        raise SystemExit("reproduce_paper: no task to run")
    run_tasks = [run for _, run in tasks]
    out = Path(args.out).resolve()
    sources = dict(models)

    commands = {name: build_command(args, source, run_tasks, out / "results" / slug(name), passthrough)
                for name, source in models}
    if args.dry_run:
        for name, _ in models:
            print(shlex.join(commands[name]))
        return 0

    results, files, failed = run_models(models, commands, out, run_tasks, args.skip_existing)
    table, rows = compare(models, tasks, results, sources, args.limit)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.md").write_text(table, encoding="utf-8")
    (out / "comparison.json").write_text(json.dumps(
        {"paper_models": PAPER_MODELS, "rows": rows,
         "results_files": {k: str(v) for k, v in files.items()}}, indent=2) + "\n", encoding="utf-8")
    print()
    print(table, end="")
    print(f"\nwritten: {out / 'comparison.md'}\nwritten: {out / 'comparison.json'}")
    if files and not args.no_plot:
        draw_figures(files, out, run_tasks)
    if failed:
        print(f"reproduce_paper: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
