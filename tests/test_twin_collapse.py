"""scripts/twin_collapse.py at smoke size: tiny configs of every family, fixture texts, byte tokens.

One subprocess run (no model file, no ../shared/data); the assertions read its summary.json.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import scipy.stats

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "twin_collapse.py"
FAMILIES = {"gpt2-tiny", "opt-tiny", "pythia-tiny", "llama-tiny", "qwen2-tiny", "gemma3-tiny"}
TEXTS = {
    "piqa": ["Question: How do I dry a wet phone?\nAnswer: Put it in a bag of rice overnight.",
             "Question: How can I keep bread fresh?\nAnswer: Store it in a paper bag at room temperature.",
             "Question: What cleans a cast iron pan?\nAnswer: Scrub it with coarse salt and a little oil."],
    "prose": ["It was a bright cold day in April, and the clocks were striking thirteen; the wind blew dust.",
              "Call me Ishmael. Some years ago, having little or no money in my purse, I thought I would sail."],
}
MAX_TOKENS = 48


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(summary, output directory) of one smoke run."""
    tmp = tmp_path_factory.mktemp("twin_collapse")
    texts = tmp / "texts.json"
    texts.write_text(json.dumps(TEXTS), encoding="utf-8")
    out = tmp / "out"
    env = dict(os.environ, MPLBACKEND="Agg", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--tokenizer", "bytes", "--texts-file", str(texts),
         "--prose-tokens", str(MAX_TOKENS), "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "summary.json").read_text(encoding="utf-8")), out


def every_row(summary):
    return {**summary["architectures"], **summary["ablations"]}


def test_every_family_and_layer_with_eranks_in_bounds(run):
    summary, _ = run
    assert set(summary["architectures"]) == FAMILIES
    for name, row in every_row(summary).items():
        bound = min(MAX_TOKENS - 1, row["hidden_size"])
        for ds in TEXTS:
            stats = row["datasets"][ds]
            for key in ("erank", "erank_skip1"):
                values = stats[key]["mean"]
                assert len(values) == row["layers"] + 1, (name, ds, key)
                assert all(1.0 - 1e-9 <= v <= bound + 1e-9 for v in values), (name, ds, key, values)
            assert len(stats["erank"]["per_seed"]) == len(row["seeds"]) == 2
            assert all(sd is not None and sd >= 0 for sd in stats["erank"]["sd"])


def test_block_contributions_add_up_to_the_residual_step(run):
    """h_l - h_(l-1) = what attention adds + what the MLP adds, for every block before the final norm."""
    summary, _ = run
    for name, row in every_row(summary).items():
        errors = row["datasets"]["piqa"]["decomposition_error"]["mean"]
        measured = [e for e in errors[1:-1] if e is not None]
        assert len(measured) == row["layers"] - 1, name
        assert max(measured, default=0.0) < 1e-4, (name, errors)


def test_one_property_changes_take_effect(run):
    summary, _ = run
    base, rows = summary["architectures"], summary["ablations"]
    assert {row["base"] for row in rows.values()} == {"llama-tiny", "gpt2-tiny", "pythia-tiny", "qwen2-tiny"}
    assert all(row["change"] for row in rows.values())
    scaled, llama = rows["llama: embeddings x sqrt(d)"], base["llama-tiny"]
    ratio = scaled["datasets"]["piqa"]["token_norm"]["mean"][0] / llama["datasets"]["piqa"]["token_norm"]["mean"][0]
    assert ratio == pytest.approx(math.sqrt(llama["hidden_size"]), rel=1e-6)
    assert rows["llama: 12 layers"]["layers"] == 12 and rows["gpt2: 30 layers"]["layers"] == 30
    no_positions, gpt2 = rows["gpt2: no learned positions"], base["gpt2-tiny"]
    assert no_positions["datasets"]["piqa"]["token_norm"]["mean"][0] < gpt2["datasets"]["piqa"]["token_norm"]["mean"][0]
    qwen = rows["qwen: init std 1/24"]
    assert qwen["base"] == "qwen2-tiny" and qwen["initializer_range"] == pytest.approx(1 / 24)
    for name in ("llama: init std 0.01", "llama: no rotary", "gpt2: no residual scaling", "qwen: init std 1/24",
                 "qwen: q, k std 1/24"):
        assert rows[name]["datasets"]["piqa"]["erank"]["mean"][-1] != base[rows[name]["base"]]["datasets"]["piqa"]["erank"]["mean"][-1]


def test_first_positions_left_out(run):
    summary, _ = run
    for name, row in summary["architectures"].items():
        stats = row["datasets"]["piqa"]
        for key in ("erank_skip2", "erank_skip4", "erank_skip_first_and_delims", "first_norm_ratio"):
            assert len(stats[key]["mean"]) == row["layers"] + 1, (name, key)
        assert all(r > 0 for r in stats["first_norm_ratio"]["mean"]), name


def test_checks_and_outputs(run):
    summary, out = run
    for ds in TEXTS:
        crosscheck = summary["checks"]["product_crosscheck"][ds]
        assert crosscheck["max_abs_diff_m0"] < 1e-4 and crosscheck["max_abs_diff_m1"] < 1e-4, crosscheck
        assert len(summary["checks"]["tokenizer_remap"][ds]["remapped_erank"]) == \
            summary["architectures"]["gpt2-tiny"]["layers"] + 1
    assert all(row["vocabulary"]["max_token_id"] < row["vocabulary"]["vocab_size"] for row in every_row(summary).values())
    assert summary["m1"] is None and summary["wall_seconds"] > 0
    for name in ("erank_by_depth.png", "ablations.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "table.md").read_text(encoding="utf-8")
    assert all(f"| {name} |" in table for name in FAMILIES)
    # the study writes tables, figures and summary.json, no prose for the docs (its README generator went)
    assert sorted(p.name for p in out.iterdir()) == ["ablations.png", "erank_by_depth.png", "summary.json", "table.md"]
    for ds in TEXTS:
        assert f"## What each change does to the twin's eRank L, {ds}" in table
        assert f"## Which block-1 measurement orders the collapse, {ds}" in table


def test_findings_follow_from_the_measurements(run):
    """summary.json's findings, recomputed here from the measurements it stores (scipy for Spearman)."""
    summary, _ = run
    rows, ablation_rows = summary["architectures"], summary["ablations"]
    every = every_row(summary)
    last = lambda row, ds: row["datasets"][ds]["erank"]["mean"][-1]  # noqa: E731
    collapses = lambda row, ds: last(row, ds) / row["datasets"][ds]["erank"]["mean"][0] < 0.5  # noqa: E731
    for ds in TEXTS:
        found = summary["findings"]["by_dataset"][ds]
        lowest = min(rows, key=lambda name: last(rows[name], ds))
        assert found["twins_erank_last"]["lowest"] == {"twin": lowest, "erank": last(rows[lowest], ds)}
        effects = {e["ablation"]: e for e in found["ablation_effects"]}
        assert set(effects) == set(ablation_rows)
        for name, effect in effects.items():
            base, changed = rows[ablation_rows[name]["base"]], ablation_rows[name]
            before, after = last(base, ds), last(changed, ds)
            assert (effect["erank_last_base"], effect["erank_last"]) == (before, after)
            expected = ("crosses" if collapses(base, ds) != collapses(changed, ds)
                        else "moves" if abs(after - before) >= 0.2 * before else "does_not")
            assert effect["effect"] == expected, (ds, name)
        # every text is cut to MAX_TOKENS <= --detail-max-tokens: block 1's additions are measured on both
        predictors = {p["measured_at_block_1"]: p for p in found["collapse_predictors"]}
        depth = predictors["depth L"]
        ratios = [last(r, ds) / r["datasets"][ds]["erank"]["mean"][0] for r in every.values()]
        assert depth["twins"] == len(every)
        assert depth["rho"] == pytest.approx(scipy.stats.spearmanr([r["layers"] for r in every.values()], ratios)[0],
                                             abs=1e-6)
    logits = summary["findings"]["attention_logit_scale_d_init_std_squared"]
    assert logits["llama-tiny"] == pytest.approx(32 * 0.02 ** 2, abs=1e-6)
