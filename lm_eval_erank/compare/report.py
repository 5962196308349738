"""``compare()``: many lm-eval runs -> one leaderboard with the statistics to read it, written as
``comparison.md``, ``comparison.csv``, ``comparison.json`` and figures (docs/comparing.md)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._version import __version__
from ..core import statistics
from . import analysis
from .caveats import comparison_caveats
from .figures import write_figures
from .runs import CompareError, Run, load_runs
from .samples import TaskSamples, read_task_samples

# (metric, column title) of the table, in order
TABLE_METRICS = (("acc", "acc"), ("acc_norm", "acc_norm"), ("diff_erank", "Diff-eRank"), ("erank_m1", "eRank(M1)"),
                 ("erank_m0", "eRank(M0)"), ("erank_ratio", "ratio M1/M0"), ("reduced_loss", "reduced loss"))
TABLE_TITLES = dict(TABLE_METRICS)
DEFAULT_RESAMPLES = 2000
DEFAULT_PERMUTATIONS = 10_000


@dataclass
class Comparison:
    """What ``compare()`` found: the runs (one per model, labelled), the size axis, the task keys,
    the table's rows, the correlations, the paired tests, the warnings (what makes the comparison
    misleading), the notes, and the files written."""

    runs: list[Run]
    axis: analysis.SizeAxis
    tasks: list[str]
    rows: list[dict]
    correlations: list[dict]
    pairs: list[dict]
    warnings: list[str]
    notes: list[str]
    settings: dict
    files: list[Path] = field(default_factory=list)
    samples: dict[tuple[str, str], TaskSamples | None] = field(default_factory=dict, repr=False)

    def task_samples(self, run: Run, key: str) -> TaskSamples | None:
        """The run's samples of task ``key`` (None: no samples file), read and checked against its
        results once per comparison (the pairs, the figures and a study's report share them)."""
        if (run.label, key) not in self.samples:
            self.samples[(run.label, key)] = read_task_samples(run, run.tasks[key])
        return self.samples[(run.label, key)]

    def model_entry(self, run: Run) -> dict:
        return {"label": run.label, "path": str(run.path), "num_parameters": run.num_parameters,
                "x": self.axis.values.get(run.label), "model": run.model, "model_class": run.source,
                "model_args": run.model_args, "erank": run.erank, "twins": run.twins, "dtype": run.dtype,
                "init_std": run.init_std, "model_type": run.model_type,
                "m0_checksums": list(run.m0_checksums) if run.m0_checksums else None,
                "lm_eval_version": run.data.get("lm_eval_version"),
                "lm_eval_erank_version": run.config.get("lm_eval_erank_version"), "limit": run.config.get("limit")}

    def to_json(self) -> dict:
        return {"models": [self.model_entry(r) for r in self.runs], "x_axis": self.axis.name, "tasks": self.tasks,
                "rows": self.rows, "correlations": self.correlations, "pairs": self.pairs,
                "warnings": self.warnings, "notes": self.notes, "settings": self.settings}

    def run(self, label: str) -> Run:
        return next(r for r in self.runs if r.label == label)


# ---- the rows ------------------------------------------------------------------------------------

def table_rows(runs: Sequence[Run], tasks: Sequence[str]) -> list[dict]:
    """One row per (task, model that ran it): the twins' record, then every metric of the task
    (as lm-eval names it, without the filter) as {"value", "stderr"}."""
    rows = []
    for task in tasks:
        for run in runs:
            result = run.tasks.get(task)
            if result is None:
                continue
            row = {"label": run.label, "task": task, "run_task": result.name, "group": result.is_group,
                   "filter": result.filter, "n_docs": result.n_docs, "twins": run.twins, "dtype": run.dtype,
                   "init_std": run.init_std, "m0_checksum": run.m0_checksums[0] if run.m0_checksums else None}
            for metric, (value, stderr) in result.metrics.items():
                row.setdefault(metric, {"value": value, "stderr": stderr})
            rows.append(row)
    return rows


def _ordered(runs: list[Run], axis: analysis.SizeAxis) -> list[Run]:
    """The runs along the size axis (runs without a value after, in their order)."""
    return sorted(runs, key=lambda r: (r.label not in axis.values, axis.values.get(r.label, 0.0), runs.index(r)))


def select_tasks(runs: Sequence[Run], wanted: Sequence[str] | None, notes: list[str]) -> list[str]:
    """Every task key in the runs (first appearance), or those of ``wanted`` (a key or a run's own
    task name): a wanted task in no run is noted and skipped, none found at all is an error."""
    keys = list(dict.fromkeys(k for r in runs for k in r.tasks))
    if not wanted:
        return keys
    selected = []
    for name in wanted:
        matches = [k for k in keys if k == name or any(r.tasks.get(k) and r.tasks[k].name == name for r in runs)]
        if not matches:
            notes.append(f"task {name} is in none of the runs; skipped")
        selected.extend(m for m in matches if m not in selected)
    if not selected:
        raise CompareError(f"--tasks: {', '.join(wanted)}: in none of the runs (they have: {', '.join(keys)})")
    return selected


def null_notes(runs: Sequence[Run], tasks: Sequence[str]) -> list[str]:
    """A note per (model, task) whose metrics are null: every text was excluded (fewer than 2 tokens)."""
    notes = []
    for task in tasks:
        for run in runs:
            result = run.tasks.get(task)
            null = [m for m, (value, _) in result.metrics.items() if value is None] if result else []
            if null:
                notes.append(f"{run.label} / {task}: {', '.join(null)} null (every text of the task was excluded); "
                             "n/a in the table, left out of the figures")
    return notes


# ---- compare ---------------------------------------------------------------------------------------

def compare(paths: Sequence[str | Path], out: str | Path | None = None, *, labels: Sequence[str] | None = None,
            tasks: Sequence[str] | None = None, x: str | None = "parameters",
            x_values: Mapping[str, float] | None = None,
            pairs: str = "auto", seed: int = statistics.DEFAULT_SEED, resamples: int = DEFAULT_RESAMPLES,
            permutations: int = DEFAULT_PERMUTATIONS, figures: bool = True) -> Comparison:
    """Compare the models of lm-eval runs: ``paths`` are ``--output_path`` directories or results
    JSONs (one model per results file; of several files of one model the newest). ``labels``: one per
    model in order (default: the model's name); ``tasks``: a subset (standard or run task names);
    ``x``: the size axis, ``parameters`` (``config.model_num_parameters``; None too) or a name of your own;
    ``x_values``: {label: number}, filling in or overriding (a named axis takes all its values from
    here); ``pairs``: ``auto`` (every pair up to 6 models, else consecutive along the axis), ``all``,
    ``consecutive`` or ``none``; ``seed``/``resamples``: the paired bootstrap's; ``permutations``:
    orderings sampled for permutation p-values above 9 models. With ``out``, writes
    ``comparison.md/.csv/.json`` and (``figures``) the figures there. Bad input raises
    :class:`CompareError` with one line saying what and where.

    >>> compare([])
    Traceback (most recent call last):
    ...
    lm_eval_erank.compare.runs.CompareError: no results given: name an --output_path directory or a results JSON
    """
    if not paths:
        raise CompareError("no results given: name an --output_path directory or a results JSON")
    if pairs not in analysis.PAIR_MODES:
        raise CompareError(f"pairs must be one of {', '.join(analysis.PAIR_MODES)}, got {pairs!r}")
    for name, value in (("resamples", resamples), ("permutations", permutations), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "seed" else 2):
            raise CompareError(f"{name} must be an integer{' >= 0' if name == 'seed' else ' >= 2'}, got {value!r}")
    runs, notes = load_runs(paths, list(labels) if labels is not None else None)
    unknown = sorted(set(x_values or {}) - {r.label for r in runs})
    if unknown:
        raise CompareError(f"--x-values names no model: {', '.join(unknown)} (the labels: "
                           f"{', '.join(r.label for r in runs)})")
    axis = analysis.size_axis(runs, x or "parameters", x_values)
    missing_x = [r.label for r in runs if r.label not in axis.values]
    runs = _ordered(runs, axis)
    keys = select_tasks(runs, tasks, notes)
    notes += null_notes(runs, keys)
    warnings = comparison_caveats(runs, keys)
    if missing_x:
        notes.append(f"no {axis.name} value for {', '.join(missing_x)}: left out of the {axis.name} correlations and "
                     f"figures (give --x-values {missing_x[0]}=NUMBER)")
    if len(runs) == 1:
        warnings.append("one model: the table only; correlations need at least 3 models and paired tests 2")
    elif len(runs) < 3:
        warnings.append(f"{len(runs)} models: no correlations (they need at least 3 models)")
    correlations = (analysis.correlations(runs, keys, axis, resamples=permutations, seed=seed)
                    if len(runs) >= 3 else [])
    small = sorted({c["n"] for c in correlations if c.get("note")})
    if small:
        notes.append(f"correlations over n = {', '.join(map(str, small))} models cannot reach p < 0.05 whatever the "
                     "data (with n = 4 and no ties the smallest two-sided p is 2/24 = 1/12)")
    settings = {"seed": seed, "resamples": resamples, "permutations": permutations, "pairs": pairs,
                "interval": "95% percentile interval of the paired bootstrap over documents",
                "lm_eval_erank_version": __version__}
    comparison = Comparison(runs, axis, keys, table_rows(runs, keys), correlations, [], warnings, notes, settings)
    comparison.pairs = _pairs(comparison, pairs, seed, resamples)
    if out is not None:
        write(comparison, Path(out), figures=figures)
    return comparison


def _pairs(comparison: Comparison, mode, seed, resamples) -> list[dict]:
    """The paired tests of ``mode``'s plan on every task (notes and warnings added to the comparison's)."""
    runs, keys, warnings, notes = comparison.runs, comparison.tasks, comparison.warnings, comparison.notes
    plan = analysis.pair_plan(runs, comparison.axis, mode)
    samples = comparison.task_samples
    if not plan:
        return []
    # every samples file is read (and checked against its results) before any test
    for run in runs:
        for key in keys:
            if key in run.tasks and not run.tasks[key].is_group:
                samples(run, key)
    entries = []
    for key in keys:
        for a, b in plan:
            if key not in a.tasks or key not in b.tasks or a.tasks[key].is_group:
                continue
            entries.append(analysis.paired_comparison(key, a, b, samples(a, key), samples(b, key),
                                                      resamples=resamples, seed=seed))
    without = list(dict.fromkeys(label for (label, _), s in comparison.samples.items() if s is None))
    if plan and without:
        notes.append(f"no samples file for {', '.join(without)}: paired tests need runs with --log_samples")
    different = sorted({e["task"] for e in entries if str(e.get("reason", "")).startswith("different documents")})
    for task in different:
        warnings.append(f"task {task}: runs evaluated different documents (doc_id / doc_hash differ), so they are "
                        "not paired there: " + "; ".join(f"{e['a']} vs {e['b']}: {e['reason']}" for e in entries
                                                        if e["task"] == task and e.get("reason")))
    return entries


# ---- writing ------------------------------------------------------------------------------------------

def fmt(value: float | None, stderr: float | None = None, with_stderr: bool = True, digits: int = 4) -> str:
    """``0.6431 ± 0.0112`` (``-``: not reported; ``N/A``: no stderr)."""
    if value is None:
        return "-"
    text = f"{value:.{digits}f}"
    if with_stderr:
        text += f" ± {stderr:.{digits}f}" if stderr is not None else " ± N/A"
    return text


def _cell(row: dict, metric: str) -> str:
    entry = row.get(metric)
    if entry is None:
        return "-"
    if entry["value"] is None:
        return "n/a"
    return fmt(entry["value"], entry["stderr"])


def table_markdown(comparison: Comparison) -> str:
    """The leaderboard: one row per (task, model), each metric ``value ± stderr``, in the style of
    lm-eval's own table; ``-``: not reported, ``n/a``: null (every text excluded)."""
    metrics = [(m, t) for m, t in TABLE_METRICS if any(m in row for row in comparison.rows)]
    axis = comparison.axis
    header = ["Task", "Model", axis.name, "n", *[t for _, t in metrics], "twins", "dtype", "init std", "M0"]
    lines = ["|" + "|".join(header) + "|", "|" + "|".join(["---", "---", "--:", "--:"] + ["--:"] * len(metrics)
                                                             + ["--:", "---", "--:", "---"]) + "|"]
    for row in comparison.rows:
        task = row["task"] + (f" ({row['run_task']})" if row["run_task"] != row["task"] else "")
        x = axis.values.get(row["label"])
        cells = [task, row["label"], "-" if x is None else f"{x:,.0f}" if float(x).is_integer() else f"{x:g}",
                 str(row["n_docs"]) if row["n_docs"] is not None else "-",
                 *[_cell(row, m) for m, _ in metrics], str(row["twins"] or "-"), row["dtype"] or "-",
                 f"{row['init_std']:.4g}" if row["init_std"] is not None else "-",
                 row["m0_checksum"][:8] if row["m0_checksum"] else "-"]
        lines.append("|" + "|".join(cells) + "|")
    return "\n".join(lines) + "\n"


def table_legend(comparison: Comparison) -> str:
    text = ("Value ± stderr as the runs report them (`-`: not reported; `n/a`: every text of the task was excluded, "
            "so it has no eRank). twins: m0_twins (K > 1: twin means, ± over texts and twins); init std: the twins'; "
            "M0: the first twin's checksum.")
    if any(r.twins == 1 for r in comparison.runs):
        text += (" twins 1: one random twin M0; its ± covers the texts only, not the twin draw, which cannot be "
                 "estimated from one twin (m0_twins=3 or more to compare across architectures).")
    return text


def _rho(value, p) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" + (f" (p = {p:.3g})" if p is not None else "")


def correlations_markdown(comparison: Comparison) -> str:
    lines = ["|Task|x|y|n|Spearman (p)|Kendall tau-b (p)|note|", "|---|---|---|--:|--:|--:|---|"]
    for c in comparison.correlations:
        note = c.get("reason") or (f"no p < 0.05 possible (smallest p {c['min_p']:.3g})" if c.get("note") else "")
        lines.append(f"|{c['task']}|{c['x']}|{c['y']}|{c['n']}|{_rho(c['spearman'], c['spearman_p'])}|"
                     f"{_rho(c['kendall'], c['kendall_p'])}|{note}|")
    return "\n".join(lines) + "\n"


def _difference(value, interval, digits=4) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f} [{interval[0]:+.{digits}f}, {interval[1]:+.{digits}f}]"


def pairs_markdown(comparison: Comparison) -> str:
    lines = ["|Task|A|B|n|acc A-B (McNemar p)|Diff-eRank A-B [95%]|eRank(M1) A-B [95%]|ratio M1/M0 A-B [95%]|"
             "reduced loss A-B [95%]|note|",
             "|---|---|---|--:|--:|--:|--:|--:|--:|---|"]
    for p in comparison.pairs:
        acc = "-" if p["acc_diff"] is None else f"{p['acc_diff']:+.4f} (p = {p['mcnemar_p']:.3g})"
        lines.append(f"|{p['task']}|{p['a']}|{p['b']}|{p['n_docs'] if p['n_docs'] is not None else '-'}|{acc}|"
                     f"{_difference(p['diff_erank_diff'], p['diff_erank_ci'])}|"
                     f"{_difference(p['erank_m1_diff'], p['erank_m1_ci'])}|"
                     f"{_difference(p['erank_ratio_diff'], p['erank_ratio_ci'])}|"
                     f"{_difference(p['reduced_loss_diff'], p['reduced_loss_ci'])}|"
                     f"{p.get('reason') or '; '.join([p.get('note') or '', *p.get('excluded', [])]).strip('; ')}|")
    return "\n".join(lines) + "\n"


def report_markdown(comparison: Comparison) -> str:
    """``comparison.md``: the models, the table, the warnings, the correlations, the paired tests."""
    axis = comparison.axis
    parts = ["# Model comparison (lm-eval-erank compare)", "",
             *[f"- {r.label}: `{r.path}`" + (f", {axis.name} {axis.values[r.label]:,.6g}" if r.label in axis.values
                                              else "") for r in comparison.runs], "",
             table_markdown(comparison), table_legend(comparison), ""]
    parts += ["## Warnings", ""] + ([f"- {w}" for w in comparison.warnings] or ["None."]) + [""]
    if comparison.notes:
        parts += ["## Notes", "", *[f"- {n}" for n in comparison.notes], ""]
    if comparison.correlations:
        parts += ["## Correlations across models", "",
                  "Two-sided permutation p-values: exact (every ordering) up to 9 models, else "
                  f"{comparison.settings['permutations']:,} seeded orderings.", "", correlations_markdown(comparison)]
    if comparison.pairs:
        parts += ["## Paired comparisons (same documents)", "",
                  "acc: exact McNemar test; the others: 95% intervals of a seeded paired bootstrap over documents "
                  f"({comparison.settings['resamples']:,} resamples, seed {comparison.settings['seed']}).", "",
                  pairs_markdown(comparison)]
    return "\n".join(parts)


def report_lines(comparison: Comparison) -> list[str]:
    """What the command prints on stdout: the table, the correlations and pairs in brief, the files
    (the notes and warnings go to stderr)."""
    lines = [table_markdown(comparison)]
    defined = [c for c in comparison.correlations if c["spearman"] is not None]
    if defined:
        lines += ["", f"correlations across models ({len(defined)} defined; all in comparison.md):",
                  correlations_markdown(Comparison(**{**vars(comparison), "correlations": defined}))]
    tested = [p for p in comparison.pairs if p["n_docs"] is not None]
    if tested:
        lines += ["", f"paired comparisons ({len(tested)}):",
                  pairs_markdown(Comparison(**{**vars(comparison), "pairs": tested}))]
    if comparison.files:
        lines += ["", "written:", *[f"  {p}" for p in comparison.files]]
    return lines


def report_csv(comparison: Comparison) -> str:
    """``comparison.csv``: one line per row, a value and a stderr column per metric."""
    fixed = ["label", "task", "run_task", "group", "filter", "n_docs", "num_parameters", "x", "twins", "dtype",
             "init_std", "m0_checksum"]
    seen = [m for m, _ in TABLE_METRICS if any(m in row for row in comparison.rows)]
    seen += sorted({k for row in comparison.rows for k, v in row.items() if isinstance(v, dict)} - set(seen))
    handle = io.StringIO()
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(fixed + [c for m in seen for c in (m, f"{m}_stderr")])
    for row in comparison.rows:
        run = comparison.run(row["label"])
        base = {**row, "num_parameters": run.num_parameters, "x": comparison.axis.values.get(row["label"])}
        values = [base.get(k) for k in fixed]
        for metric in seen:
            entry = row.get(metric) or {}
            values += [entry.get("value"), entry.get("stderr")]
        writer.writerow(["" if v is None else v for v in values])
    return handle.getvalue()


def write(comparison: Comparison, out: Path, figures: bool = True) -> list[Path]:
    """Write ``comparison.md``, ``.csv``, ``.json`` and (``figures``) the figures into ``out``."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CompareError(f"--out {out}: cannot create the directory ({exc.strerror})") from None
    written = []
    if figures:
        written += write_figures(comparison, out)
    comparison.files = [out / "comparison.md", out / "comparison.csv", out / "comparison.json", *written]
    comparison.files[0].write_text(report_markdown(comparison), encoding="utf-8")
    comparison.files[1].write_text(report_csv(comparison), encoding="utf-8")
    comparison.files[2].write_text(json.dumps({**comparison.to_json(), "files": [str(p) for p in comparison.files]},
                                              indent=1), encoding="utf-8")
    return comparison.files
