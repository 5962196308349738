"""scripts/train_family.py end to end at its smoke size (--tiny), offline, on a small
WikiText-format corpus written here (headings `` = Title = ``, word-level spacing)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from lm_eval_erank.testing import tiny

from lm_eval_erank.core.statistics import ranks, spearman

from .test_scripts import PNG_MAGIC, SCRIPTS, markdown_tables, study_module

TASKS = ("family_erank_lm", "family_erank_wikitext", "family_erank_openwebtext2")


def wikitext_file(path: Path, titles: list[str], paragraphs_per_doc: int, offset: int) -> Path:
    """Articles in WikiText-2's format: a top-level heading, a sub-heading, paragraphs of
    20+ words (fixture sentences, word-level spacing as in the real files)."""
    texts = tiny.gold_texts()
    lines = []
    for d, title in enumerate(titles):
        lines += [f" = {title} = ", " "]
        for p in range(paragraphs_per_doc):
            if p == 1:
                lines += [f" = = Part {p} = = ", " "]
            start = (offset + 3 * (d * paragraphs_per_doc + p)) % len(texts)
            words = " ".join(texts[(start + k) % len(texts)].replace("\n", " ") for k in range(4))
            lines.append(" " + words.replace(".", " .").replace(",", " ,") + " ")
        lines.append(" ")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    root = tmp_path_factory.mktemp("family")
    data = root / "wikitext"
    data.mkdir()
    wikitext_file(data / "valid.txt", [f"Training Article {i}" for i in range(5)], 5, offset=0)
    wikitext_file(data / "test.txt", [f"Held Out Article {i}" for i in range(4)], 3, offset=1)
    out, figures = root / "run", root / "figures"
    env = dict(os.environ, PYTHONHASHSEED="0", MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, str(SCRIPTS / "train_family.py"), "--tiny", "--data", str(data),
                           "--out", str(out), "--figures", str(figures)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return out, figures, json.loads((figures / "summary.json").read_text())


def test_pipeline_writes_figures_table_and_summary(family):
    out, figures, summary = family
    for name in ("family_by_size.png", "checkpoints_by_step.png", "callback_by_step.png"):
        assert (figures / name).read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in figures.iterdir()) == sorted(
        ["family_by_size.png", "checkpoints_by_step.png", "callback_by_step.png", "table.md", "summary.json",
         "summary.md"])
    assert not list(figures.rglob("*.safetensors"))  # models stay under --out
    assert list((out / "models").rglob("model.safetensors"))
    # the held-out data: 3 documents (--tiny), 6 paragraphs, none of them from the training file
    assert (summary["train_documents"], summary["heldout_documents"], summary["heldout_paragraphs"]) == (4, 3, 6)
    md = (figures / "summary.md").read_text()
    assert summary["command"] in md and "Verdict" in md and "CPU cores" in md
    assert summary["m0_cache_entries_at_start"] == 0  # a fresh --out: every twin computed once, below


def test_family_grows_and_every_value_is_finite(family):
    _, figures, summary = family
    models = summary["models"]
    assert len(models) == 4
    params = [m["params"] for m in models]
    assert params == sorted(params) and len(set(params)) == 4
    widths = [m["width"] for m in models]
    assert widths == sorted(widths)
    steps = summary["settings"]["steps"]
    checkpoints = summary["checkpoints"]
    assert checkpoints[0] == 0 and checkpoints[-1] == steps and checkpoints == sorted(set(checkpoints))
    every = summary["settings"]["callback_every"]
    for model in models:  # the callback logged at step 0 and every `every` steps, finite values
        assert [e["step"] for e in model["callback"]] == list(range(0, steps + 1, every))
        for entry in model["callback"]:
            for key in ("diff_erank", "erank_m1", "erank_m0", "reduced_loss", "erank_m0_twin_sd"):
                assert math.isfinite(entry[key])
        assert model["train_loss"]  # the Trainer's own loss log survived the callback's logs
    rows = {**summary["family"], **{f"step {s}": r for s, r in summary["checkpoint_results"].items()}}
    assert len(rows) == 4 + len(checkpoints)
    for row in rows.values():
        for task in TASKS:
            for name in ("diff_erank", "erank_m1", "erank_m0", "reduced_loss"):
                value, stderr = row[task][name]
                assert math.isfinite(value) and math.isfinite(stderr) and stderr > 0, (task, name)
    # the table: one row per (final model or checkpoint before the last) and task
    table = markdown_tables((figures / "table.md").read_text())[""]
    assert len(table) == (4 + len(checkpoints) - 1) * len(TASKS)
    labels = list(dict.fromkeys(r["Model"] for r in table))  # lm-eval-erank compare's table
    sweep = summary["sweep_model"]
    assert labels == [m["name"] for m in models] + [f"{sweep}@{s}" for s in checkpoints[:-1]]
    assert all(r["twins"] == str(summary["settings"]["twins"]) for r in table)
    assert all(" ± " in r["Diff-eRank"] and " ± " in r["eRank(M1)"] and " ± " in r["reduced loss"] for r in table)


def test_results_are_the_harness_and_the_sweep_pays_each_twin_once(family):
    out, _, summary = family
    twins = summary["settings"]["twins"]
    results = {p.parent.parent.name: json.loads(p.read_text()) for p in (out / "results").rglob("results_*.json")}
    sweep = summary["sweep_model"]
    assert set(results) == {m["name"] for m in summary["models"]} | {
        f"{sweep}@{s}" for s in summary["checkpoints"][:-1]}
    for label, data in results.items():
        assert data["config"]["erank_m0_twins"] == twins
        assert data["n-samples"]["family_erank_wikitext"]["effective"] == 3
        assert data["n-samples"]["family_erank_openwebtext2"]["effective"] == 6
    checksums = {tuple(results[label]["config"]["erank_m0_checksums"]) for label in results if label.startswith(sweep)}
    assert len(checksums) == 1  # the checkpoints share their twins
    # one M0-cache entry per architecture and twin: the checkpoint sweep added none
    assert len(list((out / "m0_cache").glob("*.json"))) == len(summary["models"]) * twins


def test_reported_correlations_are_spearman_of_the_reported_values(family):
    _, _, summary = family
    rho = study_module("formatting").rho
    params = [m["params"] for m in summary["models"]]
    for task in TASKS:
        diff = [summary["family"][m["name"]][task]["diff_erank"][0] for m in summary["models"]]
        reduced = [summary["family"][m["name"]][task]["reduced_loss"][0] for m in summary["models"]]
        reported = summary["spearman_family"][task]
        assert reported["diff_erank_vs_reduced_loss"] == pytest.approx(scipy.stats.spearmanr(diff, reduced)[0])
        assert reported["diff_erank_vs_x"] == pytest.approx(scipy.stats.spearmanr(params, diff)[0])
        steps = summary["checkpoints"]
        diff_c = [summary["checkpoint_results"][str(s)][task]["diff_erank"][0] for s in steps]
        assert summary["spearman_checkpoints"][task]["diff_erank_vs_x"] == pytest.approx(
            spearman(steps, diff_c))
    group = summary["spearman_family"]["family_erank_lm"]
    assert rho(group["diff_erank_vs_reduced_loss"], group["diff_erank_vs_reduced_loss_p"]) in summary["verdict"][1]
    for name, corr in summary["spearman_callback"].items():  # the callback's rho, from its logged values
        entries = [e for e in next(m for m in summary["models"] if m["name"] == name)["callback"] if e["step"] > 0]
        assert corr["n"] == len(entries) >= 3
        assert corr["diff_erank_vs_reduced_loss"] == pytest.approx(
            scipy.stats.spearmanr([e["diff_erank"] for e in entries], [e["reduced_loss"] for e in entries])[0])


def test_spearman_and_its_exact_p_value():
    permutation_p = study_module("train_family.analysis").permutation_p
    rng = np.random.default_rng(0)
    for n in (3, 5, 8):
        x, y = rng.normal(size=n), rng.normal(size=n)
        y[1] = y[0]  # a tie: average ranks, as scipy
        assert spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y)[0])
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2], [1, 2]) is None and spearman([1, 2, 3], [5, 5, 5]) is None
    # of the 4! orderings only the identity and its reverse reach |rho| = 1
    assert permutation_p([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(2 / 24)
    with pytest.raises(ValueError, match="non-finite"):
        spearman([1, 2, float("nan")], [1, 2, 3])
    assert ranks([3.0, 1.0, 3.0, 2.0]).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_wikitext_documents_split_at_top_level_headings():
    corpus, training = study_module("train_family.corpus"), study_module("train_family.training")
    text = " \n = A = \n \n line one \n = = Sub = = \n more \n = B = \n body \n"
    docs = corpus.split_documents(text)
    assert len(docs) == 2 and docs[0].startswith(" \n = A = ") and " = = Sub = = " in docs[0]
    assert docs[1] == " = B = \n body \n"
    assert training.default_checkpoints(480) == [0, 15, 30, 60, 120, 240, 480]


def test_verdict_words_follow_rho_and_p():
    analysis = study_module("train_family.analysis")
    assert analysis.held(1.0, 0.083) == "held" and analysis.held(0.8, None) == "held"
    assert analysis.held(0.8, 0.333) == "held only partly" and analysis.held(0.14, 0.78) == "held only partly"
    assert analysis.held(0.0) == "did not hold" and analysis.held(-1.0, 0.083) == "did not hold"
    assert analysis.held(None).startswith("undecided")
    assert analysis.trend_words([1, 2, 3]) == "increases at every step"
    assert analysis.trend_words([1, 1, 2]) == "never decreases (1 ties)"
    assert analysis.trend_words([3, 1, 2]).startswith("is not monotone (1 rises, 1 falls)")
