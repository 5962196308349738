"""lm-eval's results files, read as the runs of a comparison (JSON only: no lm-eval, no torch).

lm-eval writes ``OUTPUT/<model_name_sanitized>/results_<date>.json`` and, with ``--log_samples``,
``samples_<task>_<date>.jsonl`` beside it. A :class:`Run` is one results file: one model on some
tasks. Tasks are matched across runs by the standard task's name, so a plain ``--model hf`` run
of ``piqa`` sits beside ``erank_piqa`` runs: ``erank_<name>`` (and ``<prefix>_erank_<name>``, the
local copies) is ``<name>`` (``<prefix>_<name>``), or the ``erank_wraps`` its config records.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

RESULTS_GLOB = "results_*.json"


class CompareError(Exception):
    """Bad input to a comparison: one line saying what and where (the command exits non-zero)."""


@dataclass
class TaskResult:
    """One task (or group) of a run: ``name`` as the run wrote it, ``key`` the name runs are matched
    by, ``metrics`` {metric: (value, stderr)} without the filter (value None: null, every text
    excluded; stderr None: N/A), ``n_docs`` the documents evaluated (lm-eval's ``n-samples``)."""

    name: str
    key: str
    is_group: bool
    filter: str | None
    metrics: dict[str, tuple[float | None, float | None]]
    n_docs: int | None
    n_original: int | None
    path: Path | None = None  # the results file it comes from (a model's tasks may come from several)

    def value(self, metric: str) -> float | None:
        return self.metrics.get(metric, (None, None))[0]

    def stderr(self, metric: str) -> float | None:
        return self.metrics.get(metric, (None, None))[1]


@dataclass
class Run:
    """One results file: one model's evaluation. ``erank``: the run used ``hf-erank`` (its config
    carries the twins' record); ``date_id``: the ``<date>`` of its file names."""

    path: Path
    data: dict
    label: str = ""
    tasks: dict[str, TaskResult] = field(default_factory=dict)

    @property
    def config(self) -> dict:
        return self.data.get("config") or {}

    @property
    def model_args(self) -> dict:
        return parse_model_args(self.config.get("model_args"))

    @property
    def source(self) -> str:
        return str(self.config.get("model") or self.data.get("model_source") or "")

    @property
    def model(self) -> str:
        """The model as the user named it: ``pretrained=`` (else lm-eval's ``model_name``)."""
        return str(self.model_args.get("pretrained") or self.data.get("model_name") or self.path.parent.name)

    @property
    def erank(self) -> bool:
        return "erank_m0_seed" in self.config or "erank_m0_checksums" in self.config

    @property
    def num_parameters(self) -> int | None:
        value = self.config.get("model_num_parameters")
        return int(value) if _is_number(value) and value > 0 else None

    @property
    def twins(self) -> int | None:
        if not self.erank:
            return None
        value = self.config.get("erank_m0_twins", 1)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def dtype(self) -> str | None:
        value = self.config.get("erank_dtype") or self.config.get("model_dtype") or self.model_args.get("dtype")
        return None if value is None else str(value).replace("torch.", "")

    @property
    def init_std(self) -> float | None:
        """The twins' init std: ``erank_m0_init_std`` (recorded since issue 28), else an explicit
        ``m0_initializer_range``; None when unknown (or no twin)."""
        for key in ("erank_m0_init_std", "erank_m0_initializer_range"):
            if _is_number(self.config.get(key)):
                return float(self.config[key])
        return None

    @property
    def model_type(self) -> str | None:
        value = self.config.get("erank_model_type")
        return str(value) if value else None

    @property
    def m0_checksums(self) -> tuple[str, ...] | None:
        values = self.config.get("erank_m0_checksums")
        if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
            return tuple(values)
        single = self.config.get("erank_m0_checksum")
        return (single,) if isinstance(single, str) else None

    @property
    def date_id(self) -> str:
        return self.path.stem[len("results_"):]

    @property
    def identity(self) -> tuple:
        """What makes two results files the same model: the model class, the model and its arguments."""
        return self.source, self.model, tuple(sorted((k, str(v)) for k, v in self.model_args.items()))

    def task(self, name: str) -> TaskResult | None:
        """A task by its key (the standard name) or by the name the run gave it."""
        return self.tasks.get(name) or next((t for t in self.tasks.values() if t.name == name), None)

    def value(self, task: str, metric: str) -> tuple[float | None, float | None]:
        """(value, stderr) of ``metric`` on ``task`` (either name); (None, None) when not reported."""
        result = self.task(task)
        return result.metrics.get(metric, (None, None)) if result else (None, None)

    def samples_path(self, task: str) -> Path | None:
        """``samples_<task>_<date>.jsonl`` beside the results file the task comes from."""
        result = self.task(task)
        results_file = result.path if result is not None and result.path is not None else self.path
        path = results_file.parent / f"samples_{task}_{results_file.stem[len('results_'):]}.jsonl"
        return path if path.is_file() else None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_model_args(model_args) -> dict:
    """lm-eval's ``config.model_args``: a dict (0.4.12+) or ``"k=v,k=v"`` (older) -> dict.

    >>> parse_model_args("pretrained=/m/a,dtype=float32")
    {'pretrained': '/m/a', 'dtype': 'float32'}
    """
    if isinstance(model_args, dict):
        return dict(model_args)
    parsed = {}
    if isinstance(model_args, str):
        for part in model_args.split(","):
            key, sep, value = part.partition("=")
            if sep and key.strip():
                parsed[key.strip()] = value.strip()
    return parsed


def standard_task_name(task: str, task_config: dict | None = None) -> str:
    """The name a task is matched by across runs: the standard task an erank task measures.

    >>> standard_task_name("erank_piqa"), standard_task_name("local_erank_piqa"), standard_task_name("piqa")
    ('piqa', 'local_piqa', 'piqa')
    """
    wraps = ((task_config or {}).get("metadata") or {}).get("erank_wraps")
    if isinstance(wraps, str) and wraps:
        return wraps
    if task.startswith("erank_") and len(task) > len("erank_"):
        return task[len("erank_"):]
    if "_erank_" in task:
        return task.replace("_erank_", "_", 1)
    return task


def find_results_files(paths) -> list[Path]:
    """The results files named by ``paths``: a results JSON, or a directory searched recursively for
    ``results_*.json`` (sorted). A path that does not exist, or a directory without one, is an error."""
    files = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(path.rglob(RESULTS_GLOB))
            if not found:
                raise CompareError(f"{path}: no lm-eval results file (results_*.json) in this directory")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise CompareError(f"{path}: no such file or directory")
    return list(dict.fromkeys(p.resolve() for p in files))


def read_results(path: Path) -> dict:
    """The parsed results file; an error unless it is lm-eval's (a ``results`` and a ``config`` object)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CompareError(f"{path}: not a readable JSON file ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or not isinstance(data.get("config"), dict):
        raise CompareError(f"{path}: not an lm-eval results file (it has no 'results' and 'config' objects)")
    return data


def _number_or_none(value) -> float | None:
    return float(value) if _is_number(value) else None


def task_results(data: dict, path: Path | None = None) -> dict[str, TaskResult]:
    """{key: TaskResult} of a results file (read from ``path``); a metric without a filter suffix is
    skipped, the ``none`` filter preferred, else the first."""
    groups = set(data.get("group_subtasks") or {}) | set(data.get("groups") or {})
    configs = data.get("configs") or {}
    n_samples = data.get("n-samples") or {}
    tasks = {}
    for task, row in data["results"].items():
        if not isinstance(row, dict):
            raise CompareError(f"results.{task} is not an object")
        filters = [k.partition(",")[2] for k in row if "," in k and not k.partition(",")[0].endswith("_stderr")]
        chosen = "none" if "none" in filters else (filters[0] if filters else None)
        metrics = {}
        for key, raw in row.items():
            name, sep, filt = key.partition(",")
            if not sep or filt != chosen or name.endswith("_stderr"):
                continue
            if raw is not None and not _is_number(raw):
                continue  # lm-eval writes some strings (e.g. an alias); not a metric value
            metrics[name] = (_number_or_none(raw), _number_or_none(row.get(f"{name}_stderr,{filt}")))
        counts = n_samples.get(task) if isinstance(n_samples.get(task), dict) else {}
        effective, original = counts.get("effective"), counts.get("original")
        is_group = task in groups
        key = task if is_group else standard_task_name(task, configs.get(task))
        tasks[key] = TaskResult(task, key, is_group, chosen, metrics,
                                effective if isinstance(effective, int) else None,
                                original if isinstance(original, int) else None, path)
    return tasks


def default_label(run: Run) -> str:
    """The model's name: the GGUF file's (without ``.gguf``) where ``gguf_file=`` is given, else the
    last path component of ``pretrained=`` (else lm-eval's ``model_name``)."""
    gguf = run.model_args.get("gguf_file")
    if gguf:
        name = re.split(r"[/\\]", str(gguf).rstrip("/\\"))[-1]
        return name[:-len(".gguf")] if name.lower().endswith(".gguf") else name
    parts = [p for p in re.split(r"[/\\]", run.model.rstrip("/\\")) if p]
    return parts[-1] if parts else run.path.parent.name


def assign_labels(runs: list[Run], labels: list[str] | None) -> None:
    """``labels`` in the runs' order, else :func:`default_label`, made unique: the model class, then
    more of the path, then ``#2``, ``#3``."""
    if labels is not None:
        if len(labels) != len(runs):
            listing = ", ".join(f"{default_label(r)} ({r.path})" for r in runs)
            raise CompareError(f"--labels gives {len(labels)} labels for {len(runs)} models (in order: {listing})")
        if len(set(labels)) != len(labels) or not all(label.strip() for label in labels):
            raise CompareError(f"--labels must be distinct and non-empty: {labels}")
        for run, label in zip(runs, labels):
            run.label = label.strip()
        return
    for run in runs:
        run.label = default_label(run)

    def clashes():
        counts = {}
        for run in runs:
            counts[run.label] = counts.get(run.label, 0) + 1
        return [r for r in runs if counts[r.label] > 1]

    for run in clashes():
        if len({r.source for r in runs if r.label == run.label}) > 1:
            run.label = f"{run.label} ({run.source})"
    for run in clashes():
        parts = [p for p in re.split(r"[/\\]", run.model.rstrip("/\\")) if p]
        if len(parts) > 1:
            run.label = "/".join(parts[-2:])
    seen = {}
    for run in runs:
        seen[run.label] = seen.get(run.label, 0) + 1
        if seen[run.label] > 1:
            run.label = f"{run.label}#{seen[run.label]}"


def load_run(path, label: str | None = None) -> Run:
    """One results file as a :class:`Run` (``label``: else the model's name)."""
    run = Run(path=Path(path).resolve(), data=read_results(Path(path)))
    run.tasks = task_results(run.data, run.path)
    run.label = label or default_label(run)
    return run


# What must agree between results files merged into one model's run (else they are not one evaluation setup).
MERGE_KEYS = ("erank_m0_checksums", "erank_m0_checksum", "erank_m0_twins", "erank_dtype", "erank_m0_init_std",
              "erank_m0_initializer_range", "erank_layers", "model_num_parameters")


def merge_runs(same: list[Run]) -> tuple[Run, list[str]]:
    """One model's results files as one run: per task the newest file that has it (the run's own
    config: the newest file's); notes saying which file gave which task and what differs between them."""
    ordered = sorted(same, key=lambda r: (_number_or_none(r.data.get("date")) or 0.0, r.date_id))
    newest = ordered[-1]
    if len(ordered) == 1:
        return newest, []
    tasks: dict[str, TaskResult] = {}
    for run in ordered:
        tasks.update(run.tasks)
    merged = Run(path=newest.path, data=newest.data, label=newest.label, tasks=tasks)
    used = {t.path for t in tasks.values()}
    sources = "; ".join(f"{p.name}: {', '.join(t.name for t in tasks.values() if t.path == p)}"
                        for p in dict.fromkeys(r.path for r in ordered) if p in used)
    unused = [str(r.path) for r in ordered if r.path not in used]
    notes = [f"{default_label(newest)}: {len(same)} results files of this model; per task the newest ({sources})"
             + (f"; not used (newer files have their tasks): {', '.join(unused)}" if unused else "")]
    differing = [k for k in MERGE_KEYS if len({json.dumps(r.config.get(k), sort_keys=True) for r in ordered
                                              if r.path in used}) > 1]
    if differing:
        notes.append(f"{default_label(newest)}: the files merged differ in {', '.join(differing)}; the table reports "
                     "each task as its own file says, the model's columns as the newest file says")
    return merged, notes


def load_runs(paths, labels: list[str] | None = None) -> tuple[list[Run], list[str]]:
    """(runs, notes): one run per model, in the order of ``paths`` (files sorted within a directory);
    several results files of one model (same model class and arguments): per task the newest file that
    has it (lm-eval writes one file per invocation, so tasks run one at a time land in several), and a note."""
    by_identity: dict[tuple, list[Run]] = {}
    for path in find_results_files(paths):
        run = load_run(path)
        by_identity.setdefault(run.identity, []).append(run)
    runs, notes = [], []
    for same in by_identity.values():
        run, said = merge_runs(same)
        runs.append(run)
        notes += said
    assign_labels(runs, labels)
    return runs, notes
