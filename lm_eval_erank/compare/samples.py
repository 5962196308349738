"""A run's samples file (``--log_samples``), read per document, and checked against its results.

Per document: ``doc_id``, ``doc_hash``, the accuracy outcomes (``acc``, ``acc_norm``: 0/1) and,
for an erank task, the per-doc values of every eRank metric, computed from the sample's
``erank_response`` by the metric table (``core.metrics.per_document_values``) exactly as the
harness computes them. Recomputing the dataset values from them (``core.metrics``'s aggregations)
must give the results file's values: a samples file that does not is refused.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..core import metrics
from .runs import CompareError, Run, TaskResult

OUTCOMES = ("acc", "acc_norm")
# the values compared with the results file: relative tolerance for float round-off in another summation order
MATCH_RTOL = 1e-9


@dataclass
class TaskSamples:
    """One run's documents of one task, ordered by ``doc_id``: ``hashes`` {doc_id: doc_hash},
    ``outcomes`` {acc/acc_norm: [0/1 per document]}, ``erank`` [{metric: per-doc value}] (None for a
    task without erank responses)."""

    path: Path
    doc_ids: list[int]
    hashes: dict[int, str]
    outcomes: dict[str, list[float]]
    erank: list[dict] | None

    def items(self, metric: str) -> list | None:
        """The per-doc values of an eRank metric in document order (None: not reported)."""
        if self.erank is None or any(metric not in d for d in self.erank):
            return None
        return [d[metric] for d in self.erank]


def _read_lines(path: Path) -> list[dict]:
    records = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    record = json.loads(line)
                    if not isinstance(record, dict) or "doc_id" not in record:
                        raise CompareError(f"{path}:{number}: not an lm-eval sample (no doc_id)")
                    records.append(record)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CompareError(f"{path}: not a readable samples file ({type(exc).__name__}: {exc})") from None
    return records


def read_task_samples(run: Run, task: TaskResult) -> TaskSamples | None:
    """The run's samples of ``task`` (None when it has no samples file), checked against its results."""
    path = run.samples_path(task.name)
    if path is None:
        return None
    records = [r for r in _read_lines(path) if task.filter is None or r.get("filter", task.filter) == task.filter]
    by_id = {}
    for record in records:
        doc_id = record["doc_id"]
        if not isinstance(doc_id, int) or doc_id in by_id:
            raise CompareError(f"{path}: doc_id {doc_id!r} is not a unique integer")
        by_id[doc_id] = record
    doc_ids = sorted(by_id)
    outcomes = {}
    for name in OUTCOMES:
        values = [by_id[i].get(name) for i in doc_ids]
        if doc_ids and all(v in (0, 1, 0.0, 1.0, True, False) for v in values):
            outcomes[name] = [float(v) for v in values]
    responses = [by_id[i].get("erank_response") for i in doc_ids]
    erank = None
    if doc_ids and all(isinstance(r, dict) for r in responses):
        try:
            erank = [metrics.per_document_values(r) for r in responses]
        except (KeyError, TypeError, ValueError) as exc:
            raise CompareError(f"{path}: an erank_response cannot be read ({type(exc).__name__}: {exc})") from None
    samples = TaskSamples(path, doc_ids, {i: str(by_id[i].get("doc_hash")) for i in doc_ids}, outcomes, erank)
    check_against_results(run, task, samples)
    return samples


def _differs(a: float, b: float) -> bool:
    return not math.isclose(a, b, rel_tol=MATCH_RTOL, abs_tol=1e-12)


def check_against_results(run: Run, task: TaskResult, samples: TaskSamples) -> None:
    """Refuse samples that do not reproduce their results: the number of documents, the mean of
    each accuracy outcome, and every eRank metric the table aggregates (recomputed by
    ``core.metrics``) must equal the results file's values."""
    where = f"{samples.path.name} does not match {(task.path or run.path).name} ({task.name})"
    if task.n_docs is not None and len(samples.doc_ids) != task.n_docs:
        raise CompareError(f"{where}: {len(samples.doc_ids)} documents in the samples, {task.n_docs} in the results")
    recomputed = {name: sum(v) / len(v) for name, v in samples.outcomes.items()}
    for name in samples.erank[0] if samples.erank else ():
        spec = metrics.spec_of(name)
        if spec.kind is not None:
            recomputed[name] = spec.aggregation(samples.items(name))
    for name, value in recomputed.items():
        reported = task.value(name)
        if name not in task.metrics:
            continue  # a value the results do not report (e.g. erank_tokens of an older release)
        if (value is None) != (reported is None) or (value is not None and _differs(value, reported)):
            raise CompareError(f"{where}: {name} is {value} from the samples, {reported} in the results")
