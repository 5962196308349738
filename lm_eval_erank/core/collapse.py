"""The random twin's collapse: when eRank(M0) lies below eRank(M1), Diff-eRank is negative (no lm-eval).

Diff-eRank reads eRank(M0) as the noisy, high-rank baseline that training reduces. For some
architectures and initialisations (Llama- and Qwen-style: see docs/negative-diff-erank.md) the random twin's representations collapse with depth instead, eRank(M0) falls below
eRank(M1), and Diff-eRank is negative. The values are still the paper's definition; this module
only says so, once per run, for the texts of each task where the two eRanks are apart beyond
their standard errors.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from . import metrics

logger = logging.getLogger("lm_eval.erank.collapse")

DOCS_PAGE = "docs/negative-diff-erank.md"  # "When Diff-eRank is negative", in the project's repository
# Bootstrap draws for the two stderrs the check compares (the reported stderrs use lm-eval's setting).
CHECK_BOOTSTRAP_ITERS = 1000


@dataclass(frozen=True)
class Collapse:
    """One task's eRanks (LM head input) where eRank(M0) + se(M0) < eRank(M1) - se(M1)."""

    task: str
    erank_m0: float
    erank_m0_stderr: float
    erank_m1: float
    erank_m1_stderr: float

    def describe(self) -> str:
        return (f"{self.task}: eRank(M0) {self.erank_m0:.2f} +- {self.erank_m0_stderr:.2f} < "
                f"eRank(M1) {self.erank_m1:.2f} +- {self.erank_m1_stderr:.2f}")


def collapsed(task_names: Sequence[str], responses: Sequence[dict]) -> list[Collapse]:
    """The tasks whose texts (``erank`` responses, one per text, in ``task_names``' order) have
    eRank(M0) below eRank(M1) beyond both standard errors; in first-seen task order."""
    per_task: dict[str, list[dict]] = {}
    for task, response in zip(task_names, responses):
        per_task.setdefault(str(task), []).append(metrics.per_document_values(response))
    found = []
    for task, documents in per_task.items():
        values = {}
        for name in ("erank_m0", "erank_m1"):
            items = [d[name] for d in documents]
            spec = metrics.BY_NAME[name]
            values[name] = (spec.aggregation(items), spec.stderr(items, CHECK_BOOTSTRAP_ITERS))
        (e0, s0), (e1, s1) = values["erank_m0"], values["erank_m1"]
        if None in (e0, e1) or not all(isinstance(s, float) for s in (s0, s1)):
            continue  # every text excluded, or too few texts for a standard error
        if e0 + s0 < e1 - s1:
            found.append(Collapse(task, e0, s0, e1, s1))
    return found


def warn_if_collapsed(task_names: Sequence[str], responses: Sequence[dict]) -> list[Collapse]:
    """One warning naming every task of :func:`collapsed`, both eRanks and the docs page;
    nothing when there is none. Returns what it found."""
    found = collapsed(task_names, responses)
    if found:
        logger.warning(
            "erank: M0 has a lower effective rank than the trained model M1, so Diff-eRank is negative (%s). "
            "The values keep the paper's definition; the sign comes from M0's initialisation, not from the "
            "model: see %s (\"When Diff-eRank is negative\") for what it means and how to compare such "
            "models (eRank(M1) and erank_ratio within one architecture).",
            "; ".join(c.describe() for c in found), DOCS_PAGE,
        )
    return found
