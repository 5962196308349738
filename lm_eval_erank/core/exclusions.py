"""Explicit, counted exclusions: why a text has no value, and one warning per task (no lm-eval).

A text without a defined eRank (fewer than 2 tokens, or every centred hidden state zero) is
left out of the eRank metrics and counted in ``erank_excluded``; a text cut at ``max_length``
is counted in ``erank_truncated``. The models warn once per task with the counts and the reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

logger = logging.getLogger("lm_eval.erank.exclusions")

def excluded_reason(row: dict, skip_first_tokens: int = 0) -> str | None:
    """Why a text (a row of ``DiffErankResult.per_text``, an ``erank`` response) has no eRank;
    None if it has one. ``skip_first_tokens``: the positions the run left out of the eRanks."""
    m0 = row["entropy_m0"] if isinstance(row["entropy_m0"], list) else [row["entropy_m0"]]  # one per twin
    if row["entropy_m1"] is not None and all(h is not None for h in m0):
        return None
    if row["n_tokens"] - skip_first_tokens < 2:
        if not skip_first_tokens:
            return "have fewer than 2 tokens"
        return f"have fewer than {skip_first_tokens + 2} tokens (skip_first_tokens={skip_first_tokens})"
    return "have no spread (every token's centred hidden state is zero)"


def warn_excluded(task_names: Sequence[str], reasons: Sequence[str | None], counter: str = "erank_excluded") -> None:
    """One warning per task that has excluded texts: how many of its texts, and why.

    ``reasons[i]`` is None for a measured text, else why text i has no value; ``counter`` is
    the metric that counts them. When every text of a task is excluded, its metrics are None.
    """
    per_task: dict[str, list] = {}
    for task, reason in zip(task_names, reasons):
        entry = per_task.setdefault(str(task), [0, Counter()])
        entry[0] += 1
        if reason is not None:
            entry[1][reason] += 1
    for task, (n_all, why) in per_task.items():
        n_out = sum(why.values())
        if not n_out:
            continue
        every = "; every text was excluded, so its eRank metrics are None" if n_out == n_all else ""
        logger.warning(
            "erank: %s: %d of %d texts have no eRank and are left out of the eRank metrics (counted in %s): %s%s",
            task, n_out, n_all, counter, ", ".join(f"{k} {r}" for r, k in why.most_common()), every,
        )


def warn_truncated(task_names: Sequence[str], truncated: Sequence[bool], max_length: int) -> None:
    """One warning per task with texts longer than ``max_length`` (their first tokens are used)."""
    per_task: dict[str, list[int]] = {}
    for task, cut in zip(task_names, truncated):
        counts = per_task.setdefault(str(task), [0, 0])
        counts[0] += bool(cut)
        counts[1] += 1
    for task, (n_cut, n_all) in per_task.items():
        if n_cut:
            logger.warning(
                "erank: %s: %d of %d texts were longer than max_length=%d and were truncated "
                "(their first %d tokens are used)", task, n_cut, n_all, max_length, max_length,
            )
