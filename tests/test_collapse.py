"""The collapse warning: one warning per run when a task's eRank(M0) lies below its eRank(M1)
beyond both standard errors, naming the tasks, both eRanks and the docs page; none otherwise."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from lm_eval_erank.core.collapse import DOCS_PAGE, collapsed, warn_if_collapsed

ROOT = Path(__file__).resolve().parents[1]


def _responses(erank_m0, erank_m1, n=40, spread=0.05, twins=1, seed=0):
    """``n`` erank responses whose eRanks scatter around the given values (log-normal, ``spread``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        h0 = [math.log(erank_m0) + spread * rng.standard_normal() for _ in range(twins)]
        rows.append({"entropy_m1": math.log(erank_m1) + spread * rng.standard_normal(),
                     "entropy_m0": h0[0] if twins == 1 else h0, "n_tokens": 20, "truncated": False})
    return rows


def test_a_collapsed_task_is_named_with_both_eranks(caplog):
    collapsing, healthy = _responses(5.0, 15.0), _responses(20.0, 10.0, seed=1)
    tasks = ["erank_piqa"] * len(collapsing) + ["erank_healthy"] * len(healthy)
    with caplog.at_level(logging.WARNING, logger="lm_eval.erank"):
        found = warn_if_collapsed(tasks, collapsing + healthy)
    assert [c.task for c in found] == ["erank_piqa"]
    assert abs(found[0].erank_m0 - 5.0) < 0.1 and abs(found[0].erank_m1 - 15.0) < 0.3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    expected = f"erank_piqa: eRank(M0) {found[0].erank_m0:.2f} +- {found[0].erank_m0_stderr:.2f} < eRank(M1) {found[0].erank_m1:.2f}"
    assert expected in warnings[0]
    assert DOCS_PAGE in warnings[0] and "erank_healthy" not in warnings[0]


def test_no_warning_where_the_twin_is_the_higher_or_within_the_errors(caplog):
    higher = _responses(20.0, 10.0)
    within = _responses(10.0, 10.05, spread=0.3, seed=2)  # M1 a hair above M0, well inside the stderrs
    tasks = ["a"] * len(higher) + ["b"] * len(within)
    with caplog.at_level(logging.WARNING, logger="lm_eval.erank"):
        assert warn_if_collapsed(tasks, higher + within) == []
    # the collapse logger only: another test of the worker may have set lm_eval.erank.twin to INFO
    assert not [r.getMessage() for r in caplog.records if r.name == "lm_eval.erank.collapse"]


def test_k_twins_and_excluded_texts():
    rows = _responses(5.0, 15.0, twins=3)
    rows.append({"entropy_m1": None, "entropy_m0": [None, None, None], "n_tokens": 1, "truncated": False})
    (found,) = collapsed(["t"] * len(rows), rows)
    assert found.task == "t" and found.erank_m0 < found.erank_m1
    assert collapsed(["t"], [rows[-1]]) == []  # every text excluded: nothing to compare


def test_the_docs_page_the_warning_names_exists():
    assert (ROOT / DOCS_PAGE).read_text(encoding="utf-8").startswith("# When Diff-eRank is negative\n")


def test_hf_erank_stays_silent_where_the_twin_is_the_higher(tiny_models, caplog):
    """The tiny models are trained on these texts: eRank(M0) > eRank(M1), so no warning."""
    from lm_eval.api.instance import Instance

    from lm_eval_erank.harness.activation import register
    from lm_eval_erank.harness.model import ErankHFLM
    from lm_eval_erank.testing import tiny

    register()
    lm = ErankHFLM(pretrained=str(tiny_models["gpt2"]), dtype="float32", device="cpu", batch_size=8, m0_cache="off")
    requests = [Instance("erank", {}, (t,), 0, metadata=("local_erank_piqa", i, 1))
                for i, t in enumerate(tiny.gold_texts())]
    with caplog.at_level(logging.WARNING, logger="lm_eval.erank"):
        rows = lm.erank(requests)
    e0 = math.exp(np.mean([r["entropy_m0"] for r in rows]))
    e1 = math.exp(np.mean([r["entropy_m1"] for r in rows]))
    assert e0 > e1  # the premise: the twin is the high-rank one here
    # the collapse logger only: another test of the worker may have set lm_eval.erank.twin to INFO
    assert not [r.getMessage() for r in caplog.records if r.name == "lm_eval.erank.collapse"]
