"""Plot lm-eval-erank results JSONs as the paper's figures, and tabulate them.

    python scripts/plot_results.py RESULTS_JSON_OR_DIR... --out DIR [--tasks t1,t2] [--labels a,b]

Each argument is a results JSON written by ``lm-eval-erank ... --output_path P``
(``P/<model>/results_<date>.json``) or a directory searched recursively for them; each file
is one model (one point per file). Writes, and prints the paths of:

- ``DIR/<task>.png`` per task: Diff-eRank, reduced loss and accuracy (``acc``) against the
  model size (``config.model_num_parameters``, log scale), one labelled point per results
  file, with standard-error bars (the paper's Figure-1-style scaling plots);
- ``DIR/diff_erank_vs_size.png``: Diff-eRank against size, one line per task;
- ``DIR/<task>_layers.png`` for tasks whose results carry per-layer metrics (model argument
  ``layers=``): ``diff_erank_layer{i}`` (and, at i = L, the unsuffixed ``diff_erank``) against the hidden-state index i (0 = embeddings,
  i = output of block i, L = the LM head's input), one line per model, and the two eRanks
  ``erank_m1_layer{i}`` / ``erank_m0_layer{i}`` beside it when present;
- ``DIR/table.md``: one row per (model, task) with size, the number of random twins, acc,
  Diff-eRank +- stderr, the two eRanks, the reduced loss and ``erank_ratio`` when present.

Random twins (``config.erank_m0_twins``, model argument ``m0_twins``): with K > 1 twins the
values are twin means and their stderr covers the texts and the twin draw (the combined error
bar); a single-twin result's stderr covers the texts only (the twin draw cannot be estimated from
one twin). Single-twin points of the eRank / loss panels are drawn with open markers, and the
table's ``twins`` column says 1.

A metric that is ``null`` (every text of the task was excluded, e.g. all shorter than two
tokens) is left out of the plots with a note on stderr and shown as ``n/a`` in the table;
a metric a task does not report at all is shown as ``-``.

Needs matplotlib (drawn with the non-interactive Agg backend).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

NULL = object()  # the metric is present but null (every text excluded)

# Metrics of the table and of the size plots: (key, column title)
TABLE_METRICS = (
    ("acc", "acc"),
    ("diff_erank", "Diff-eRank"),
    ("erank_m1", "eRank M1"),
    ("erank_m0", "eRank M0"),
    ("reduced_loss", "reduced loss"),
    ("erank_ratio", "eRank ratio M1/M0"),
)
WITH_STDERR = {"acc", "diff_erank"}
SIZE_PANELS = (
    ("diff_erank", "Diff-eRank"),
    ("reduced_loss", "reduced loss (nats)"),
    ("acc", "accuracy (acc)"),
)
LAYER_RE = re.compile(r"^(diff_erank|erank_m1|erank_m0)_layer(\d+)$")


@dataclass
class Run:
    """One results file: one model evaluated on some tasks."""

    path: Path
    label: str
    model: str
    size: int | None
    # task -> metric -> (value or NULL, stderr or None)
    tasks: dict[str, dict[str, tuple[object, float | None]]] = field(default_factory=dict)
    n_docs: dict[str, int] = field(default_factory=dict)
    # L, the LM head's input: its values are the unsuffixed metrics (config.erank_last_layer).
    last_layer: int | None = None
    # K random twins (config.erank_m0_twins; 1 for results written before m0_twins existed;
    # None when the results carry no eRank configuration).
    twins: int | None = None

    def value(self, task: str, metric: str):
        """(value, stderr); value is None when absent, NULL when null."""
        return self.tasks.get(task, {}).get(metric, (None, None))


def _number(x) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def model_identity(results: dict) -> str:
    """The model's ``pretrained=`` value (dict or string model_args), else ``model_name``."""
    margs = results.get("config", {}).get("model_args")
    if isinstance(margs, dict) and margs.get("pretrained"):
        return str(margs["pretrained"])
    if isinstance(margs, str):
        for part in margs.split(","):
            key, _, value = part.partition("=")
            if key.strip() == "pretrained" and value.strip():
                return value.strip()
    return str(results.get("model_name") or "")


def find_results_files(arguments: list[str]) -> list[Path]:
    files = []
    for arg in arguments:
        path = Path(arg)
        if path.is_dir():
            found = sorted(path.rglob("results_*.json"))
            if not found:
                raise SystemExit(f"plot_results: no results_*.json under {path}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise SystemExit(f"plot_results: {path} does not exist")
    return files


def parse_run(path: Path, label: str | None = None) -> Run:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if "results" not in data:
        raise SystemExit(f"plot_results: {path} is not an lm-eval results JSON (no 'results' key)")
    model = model_identity(data) or Path(path).stem
    size = data.get("config", {}).get("model_num_parameters")
    size = int(size) if isinstance(size, (int, float)) and not isinstance(size, bool) and size > 0 else None
    last = data.get("config", {}).get("erank_last_layer")
    config = data.get("config", {})
    twins = config.get("erank_m0_twins", 1 if "erank_m0_seed" in config else None)
    run = Run(path=Path(path), label=label or "", model=model, size=size,
              last_layer=last if isinstance(last, int) and not isinstance(last, bool) else None,
              twins=twins if isinstance(twins, int) and not isinstance(twins, bool) else None)
    for task, row in data["results"].items():
        metrics = {}
        for key, raw in row.items():
            name, sep, filt = key.partition(",")
            if not sep or name.endswith("_stderr"):
                continue
            if filt != "none" and name in metrics:
                continue  # prefer the unfiltered value
            stderr = _number(row.get(f"{name}_stderr,{filt}"))
            value = NULL if raw is None else _number(raw)
            if value is None:
                continue  # a non-numeric entry (e.g. a string)
            metrics[name] = (value, stderr)
        run.tasks[task] = metrics
        n = data.get("n-samples", {}).get(task, {})
        if isinstance(n, dict) and isinstance(n.get("effective"), int):
            run.n_docs[task] = n["effective"]
    for group, subtasks in (data.get("group_subtasks") or {}).items():
        if group in run.tasks and group not in run.n_docs and subtasks and all(t in run.n_docs for t in subtasks):
            run.n_docs[group] = sum(run.n_docs[t] for t in subtasks)
    return run


def short_name(model: str) -> str:
    parts = [p for p in re.split(r"[/\\]", model.rstrip("/\\")) if p]
    return parts[-1] if parts else model


def assign_labels(runs: list[Run], labels: list[str] | None) -> None:
    if labels:
        if len(labels) != len(runs):
            raise SystemExit(f"plot_results: {len(labels)} labels for {len(runs)} results files")
        for run, label in zip(runs, labels):
            run.label = label
        return
    for run in runs:
        run.label = short_name(run.model) or run.path.stem
    # disambiguate equal labels: more of the path, then a counter
    for depth in (2, 3):
        counts = {}
        for run in runs:
            counts[run.label] = counts.get(run.label, 0) + 1
        for run in runs:
            if counts[run.label] > 1:
                parts = [p for p in re.split(r"[/\\]", run.model.rstrip("/\\")) if p]
                run.label = "/".join(parts[-depth:]) or run.label
    seen = {}
    for run in runs:
        if run.label in seen:
            seen[run.label] += 1
            run.label = f"{run.label}#{seen[run.label]}"
        else:
            seen[run.label] = 1


def load_runs(arguments: list[str], labels: list[str] | None = None) -> list[Run]:
    runs = [parse_run(p) for p in find_results_files(arguments)]
    assign_labels(runs, labels)
    return runs


def select_tasks(runs: list[Run], wanted: list[str] | None) -> list[str]:
    known = {m for m, _ in TABLE_METRICS + SIZE_PANELS}
    present = []
    for run in runs:
        for task, metrics in run.tasks.items():
            if task not in present and any(m in known or LAYER_RE.match(m) for m in metrics):
                present.append(task)
    if not wanted:
        return present
    missing = [t for t in wanted if t not in present]
    for task in missing:
        print(f"note: task {task} is in none of the results files; skipped", file=sys.stderr)
    return [t for t in wanted if t in present]


# ---- table ------------------------------------------------------------------------------------

def fmt(value, stderr=None, with_stderr=False, digits=4) -> str:
    if value is None:
        return "-"
    if value is NULL:
        return "n/a"
    text = f"{value:.{digits}f}"
    if with_stderr:
        text += f" ± {stderr:.{digits}f}" if stderr is not None else " ± N/A"
    return text


def fmt_size(size: int | None) -> str:
    return f"{size:,}" if size else "-"


def table_markdown(runs: list[Run], tasks: list[str], with_stderr=WITH_STDERR, sort_by_size: bool = True) -> str:
    """One row per (run, task); ``with_stderr``: the metrics shown as value ± stderr; rows by
    size (then file order), or in the order of ``runs`` with ``sort_by_size=False``."""
    optional = ("acc", "erank_ratio")  # columns only when some run reports them (erank_lm tasks have no acc)
    metrics = [(m, title) for m, title in TABLE_METRICS
               if m not in optional or any(m in r.tasks.get(t, {}) for r in runs for t in tasks)]
    header = ["model", "task", "params", "n", "twins"] + [
        f"{title} ± stderr" if m in with_stderr else title for m, title in metrics
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    any_null = False
    order = {id(r): i for i, r in enumerate(runs)}
    for run in sorted(runs, key=lambda r: (r.size or 0, order[id(r)])) if sort_by_size else runs:
        for task in tasks:
            if task not in run.tasks:
                continue
            cells = [run.label, task, fmt_size(run.size), str(run.n_docs.get(task, "-")),
                     str(run.twins) if run.twins else "-"]
            for m, _ in metrics:
                value, stderr = run.value(task, m)
                any_null |= value is NULL
                cells.append(fmt(value, stderr, with_stderr=m in with_stderr))
            lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    if any_null:
        text += "\nn/a: every text of the task was excluded (fewer than 2 tokens), so it has no eRank.\n"
    text += "\n-: not reported for this task.\n"
    if any(r.twins == 1 for r in runs):
        text += ("\ntwins 1: one random twin M0; its ± covers the texts only, not the twin draw, which cannot be "
                 "estimated from one twin (use the model argument m0_twins=3 or more to compare across "
                 "architectures). twins K > 1: twin means, ± over texts and twins.\n")
    return text


# ---- figures ------------------------------------------------------------------------------------

def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit("plot_results needs matplotlib: pip install matplotlib") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _points(runs: list[Run], task: str, metric: str, notes: list[str], x=None):
    """Sorted (x, value, stderr, label, twins) of the runs with a numeric value and an x;
    ``x``: {id(run): x value} (default: the size, ``config.model_num_parameters``)."""
    points = []
    for run in runs:
        value, stderr = run.value(task, metric)
        if value is None:
            continue
        if value is NULL:
            notes.append(f"{run.label} / {task}: {metric} is null (every text excluded); left out of the plot")
            continue
        position = run.size if x is None else x.get(id(run))
        if position is None:
            notes.append(f"{run.label} / {task}: no config.model_num_parameters; left out of the size plot" if x is None
                         else f"{run.label} / {task}: no x value; left out of the plot")
            continue
        points.append((position, value, stderr, run.label, run.twins))
    return sorted(points, key=lambda p: p[0])


def mark_single_twin(ax, points, color, metric: str) -> None:
    """Open markers on single-twin points of a metric that involves M0 (their bar covers the texts only)."""
    if "acc" in metric:
        return
    single = [p for p in points if p[4] == 1]
    if single:
        ax.plot([p[0] for p in single], [p[1] for p in single], "o", mfc="white", mec=color, ms=6, zorder=3,
                label="one twin: bar = texts only")


def _draw_size_panel(ax, points, color, ylabel):
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    errs = [p[2] if p[2] is not None else 0.0 for p in points]
    ax.errorbar(xs, ys, yerr=errs, fmt="o-", color=color, ecolor=color, capsize=4, lw=1.5, ms=6)
    mark_single_twin(ax, points, color, ylabel)
    for x, y, _, label, _ in points:
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 6), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("model parameters (log scale)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    if len(xs) >= 1:
        lo, hi = min(xs), max(xs)
        ax.set_xlim(lo / 1.6, hi * 1.6)


def plot_task_vs_size(plt, runs, task, out: Path, notes) -> Path | None:
    panels = []
    for metric, title in SIZE_PANELS:
        points = _points(runs, task, metric, notes)
        null = any(run.value(task, metric)[0] is NULL for run in runs)
        if points or null:  # a metric that is null everywhere gets an empty panel saying so
            panels.append((metric, title, points))
    if not any(points for _, _, points in panels):
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    colors = {"diff_erank": "tab:blue", "reduced_loss": "tab:orange", "acc": "tab:green"}
    for ax, (metric, title, points) in zip(axes[0], panels):
        if points:
            _draw_size_panel(ax, points, colors[metric], title)
        else:
            ax.text(0.5, 0.5, "n/a: every text of the task\nwas excluded (< 2 tokens)", ha="center", va="center",
                    transform=ax.transAxes, color="gray")
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title(f"{title}")
    fig.suptitle(f"{task}: metrics against model size (error bars: stderr over texts and twins; "
                 "open markers: one twin, texts only)")
    fig.tight_layout()
    path = out / f"{_safe(task)}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_diff_erank_overview(plt, runs, tasks, out: Path, notes) -> Path | None:
    series = [(t, _points(runs, t, "diff_erank", [])) for t in tasks]
    series = [(t, p) for t, p in series if p]
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for task, points in series:
        ax.errorbar([p[0] for p in points], [p[1] for p in points],
                    yerr=[p[2] if p[2] is not None else 0.0 for p in points],
                    fmt="o-", capsize=4, label=task)
        mark_single_twin(ax, points, ax.lines[-1].get_color(), "diff_erank")
    labelled = {}
    for _, points in series:
        for x, y, _, label, _ in points:
            if x not in labelled or y > labelled[x][0]:
                labelled[x] = (y, label)
    for x, (y, label) in labelled.items():
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 6), fontsize=8)
    xs = [p[0] for _, pts in series for p in pts]
    ax.set_xscale("log")
    ax.set_xlim(min(xs) / 1.6, max(xs) * 1.6)
    ax.set_xlabel("model parameters (log scale)")
    ax.set_ylabel("Diff-eRank")
    ax.set_title("Diff-eRank against model size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "diff_erank_vs_size.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def human_count(x: float) -> str:
    """4240896 -> '4.2M', 370432 -> '370k', 1.3e9 -> '1.3B'."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.2g}{suffix}" if x / scale < 100 else f"{x / scale:.0f}{suffix}"
    return f"{x:g}"


def plot_metrics(plt, runs: list[Run], tasks: list[str], panels, path: Path, *, x=None, xlabel: str,
                 title: str, xscale: str = "log", notes: list[str] | None = None, extra=None) -> Path | None:
    """One panel per (metric, title) of ``panels``, one line per task, stderr bars, against
    ``x`` ({id(run): x}; default the size). ``xscale``: "log", "linear" or "symlog" (step 0
    allowed). ``extra(ax, metric)`` may draw more on a panel (e.g. a dense training curve).
    Single-twin points get open markers (their bar covers the texts only)."""
    notes = [] if notes is None else notes
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4), squeeze=False)
    drawn = False
    for ax, (metric, ylabel) in zip(axes[0], panels):
        for task in tasks:
            points = _points(runs, task, metric, notes, x)
            if not points:
                continue
            drawn = True
            ax.errorbar([p[0] for p in points], [p[1] for p in points],
                        yerr=[p[2] if p[2] is not None else 0.0 for p in points],
                        fmt="o-", capsize=3, ms=5, lw=1.3, label=task)
            mark_single_twin(ax, points, ax.lines[-1].get_color(), metric)
        if extra is not None:
            extra(ax, metric)
        xs = [p[0] for t in tasks for p in _points(runs, t, metric, [], x)]
        if xscale == "symlog":
            positive = [v for v in xs if v > 0]
            ax.set_xscale("symlog", linthresh=min(positive) if positive else 1)
        else:
            ax.set_xscale(xscale)
        if xscale == "log" and xs:
            ax.set_xlim(min(xs) / 1.6, max(xs) * 1.6)
            ticks = sorted(set(xs))  # one labelled tick per model size (log-axis minor labels overlap)
            ax.set_xticks(ticks, [human_count(t) for t in ticks], fontsize=8)
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    if not drawn:
        plt.close(fig)
        return None
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def layer_series(run: Run, task: str, kind: str, notes: list[str]):
    """Sorted (layer index, value, stderr) of ``{kind}_layer{i}`` for one run and task."""
    series = []
    for metric, (value, stderr) in run.tasks.get(task, {}).items():
        match = LAYER_RE.match(metric)
        if not match or match.group(1) != kind:
            continue
        if value is NULL:
            notes.append(f"{run.label} / {task}: {metric} is null (every text excluded); left out of the plot")
            continue
        series.append((int(match.group(2)), value, stderr))
    # The last layer is reported under the unsuffixed name (diff_erank, erank_m1, erank_m0).
    if series and run.last_layer is not None and all(layer != run.last_layer for layer, _, _ in series):
        value, stderr = run.value(task, kind)
        if isinstance(value, float):
            series.append((run.last_layer, value, stderr))
    return sorted(series, key=lambda s: s[0])


def plot_layers(plt, runs, task, out: Path, notes) -> Path | None:
    diff = [(run, layer_series(run, task, "diff_erank", notes)) for run in runs]
    diff = [(run, s) for run, s in diff if s]
    if not diff:
        return None
    twins = [(run, layer_series(run, task, "erank_m1", []), layer_series(run, task, "erank_m0", []))
             for run, _ in diff]
    has_twins = any(s1 or s0 for _, s1, s0 in twins)
    fig, axes = plt.subplots(1, 2 if has_twins else 1, figsize=(11 if has_twins else 6, 4.2), squeeze=False)
    ax = axes[0][0]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (run, series) in enumerate(sorted(diff, key=lambda rs: (rs[0].size or 0, runs.index(rs[0])))):
        color = colors[k % len(colors)]
        ax.errorbar([s[0] for s in series], [s[1] for s in series],
                    yerr=[s[2] if s[2] is not None else 0.0 for s in series],
                    fmt="o-", capsize=3, color=color, mfc="white" if run.twins == 1 else color,
                    label=run.label + (" (one twin: bars = texts only)" if run.twins == 1 else ""))
    ax.set_xlabel("hidden-state index (0 = embeddings, L = LM-head input)")
    ax.set_ylabel("Diff-eRank")
    ax.set_title(f"{task}: Diff-eRank per layer")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if has_twins:
        ax2 = axes[0][1]
        for k, (run, s1, s0) in enumerate(sorted(twins, key=lambda t: (t[0].size or 0, runs.index(t[0])))):
            color = colors[k % len(colors)]
            if s1:
                ax2.plot([s[0] for s in s1], [s[1] for s in s1], "o-", color=color, label=f"{run.label} M1")
            if s0:
                ax2.plot([s[0] for s in s0], [s[1] for s in s0], "s--", color=color, alpha=0.7,
                         label=f"{run.label} M0")
        ax2.set_xlabel("hidden-state index (0 = embeddings, L = LM-head input)")
        ax2.set_ylabel("eRank")
        ax2.set_title("eRank per layer: trained M1 (solid), random twin M0 (dashed)")
        ax2.grid(True, alpha=0.3)
        ax2.legend(fontsize=7)
        ax2.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    path = out / f"{_safe(task)}_layers.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---- main ---------------------------------------------------------------------------------------

def plot_all(runs: list[Run], out: Path, tasks: list[str] | None = None) -> list[Path]:
    """Write the figures and ``table.md`` to ``out``; return the written paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    selected = select_tasks(runs, tasks)
    if not selected:
        raise SystemExit("plot_results: no task with eRank or accuracy metrics in the given files")
    plt = _pyplot()
    notes: list[str] = []
    written = []
    for task in selected:
        for plot in (plot_task_vs_size, plot_layers):
            path = plot(plt, runs, task, out, notes)
            if path:
                written.append(path)
    overview = plot_diff_erank_overview(plt, runs, selected, out, notes)
    if overview:
        written.append(overview)
    table = out / "table.md"
    table.write_text(table_markdown(runs, selected), encoding="utf-8")
    written.append(table)
    for note in dict.fromkeys(notes):
        print(f"note: {note}", file=sys.stderr)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("results", nargs="+", help="results JSON files, or directories holding them")
    parser.add_argument("--out", required=True, help="output directory for the PNGs and table.md")
    parser.add_argument("--tasks", help="comma-separated tasks (default: every task in the files)")
    parser.add_argument("--labels", help="comma-separated model labels, one per results file, in order "
                                         "(default: the last part of pretrained=)")
    args = parser.parse_args(argv)
    runs = load_runs(args.results, args.labels.split(",") if args.labels else None)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    for path in plot_all(runs, Path(args.out), tasks):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
