"""scripts/reproduce_paper.py and scripts/plot_results.py, end to end and offline; the shape of scripts/.

Two tiny local models stand in for opt-125m and opt-1.3b; the paper's tasks are pointed at the
local fixture copies with --task-map. The per-layer figure is checked on a hand-written results
JSON (it does not depend on the model supporting ``layers=``). Last, every file in scripts/ is at
most 500 lines and none defines a statistic or a batching of its own (the package's are shared).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
REPRODUCE = SCRIPTS / "reproduce_paper.py"
PLOT = SCRIPTS / "plot_results.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STAND_INS = {"opt-125m": "opt", "opt-1.3b": "gpt2"}  # paper name -> tiny fixture model (the smaller first)
TASK_MAP = {"erank_piqa": "local_erank_piqa", "erank_openbookqa": "local_erank_openbookqa"}
PAPER_VALUES = {  # (task, model) -> (Diff-eRank, acc) as published
    ("erank_piqa", "opt-125m"): ("4.647", "0.619"),
    ("erank_piqa", "opt-1.3b"): ("6.294", "0.714"),
    ("erank_openbookqa", "opt-125m"): ("1.410", "0.276"),
    ("erank_openbookqa", "opt-1.3b"): ("2.140", "0.332"),
}


def load_script(name: str):
    """Import scripts/<name>.py as a module (registered, as dataclasses need)."""
    module_name = f"_scripts_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


def study_module(name: str):
    """Import ``studies.<name>`` (scripts/studies/), with scripts/ on sys.path as the scripts put it."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    return importlib.import_module(f"studies.{name}")


def dry_run(capsys, *args) -> tuple[str, str]:
    """reproduce_paper.py --dry-run in this process (no interpreter start-up): (stdout, stderr)."""
    capsys.readouterr()
    assert load_script("reproduce_paper").main(["--dry-run", *map(str, args)]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def run_script(script: Path, *args, timeout=300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONHASHSEED="0", MPLBACKEND="Agg")
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def markdown_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """{section heading ('' before any): [row dicts]} of the markdown tables in ``text``."""
    tables, section, header = {}, "", None
    for line in text.splitlines():
        if line.startswith("#"):
            section, header = line.lstrip("#").strip(), None
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = cells
            elif not all(set(c) <= set("-:") for c in cells):
                tables.setdefault(section, []).append(dict(zip(header, cells)))
        else:
            header = None
    return tables


def ours(row: dict, metric: str, with_stderr=True) -> str:
    value = row[f"{metric},none"]
    text = f"{value:.4f}"
    return text + f" ± {row[f'{metric}_stderr,none']:.4f}" if with_stderr else text


def check_png(path: Path, min_bytes=5000) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > min_bytes, (path, len(data))
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 300 and height >= 200, (path, width, height)
    return width, height


@pytest.fixture(scope="module")
def reproduced(tiny_models, local_tasks, tmp_path_factory):
    """One reproduce_paper.py run: 2 tiny models as opt-125m / opt-1.3b, 2 local tasks, --limit 4."""
    out = tmp_path_factory.mktemp("reproduce")
    models = ",".join(f"{name}={tiny_models[arch]}" for name, arch in STAND_INS.items())
    done = run_script(
        REPRODUCE, "--models", models, "--tasks", "erank_piqa,erank_openbookqa",
        "--task-map", ",".join(f"{k}={v}" for k, v in TASK_MAP.items()), "--include_path", local_tasks,
        "--limit", 4, "--batch_size", 4, "--device", "cpu", "--out", out, "--no-plot",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    results = {}
    for name in STAND_INS:
        files = sorted((out / "results" / name).rglob("results_*.json"))
        assert len(files) == 1, (name, files)
        results[name] = (files[0], json.loads(files[0].read_text()))
    return out, done.stdout, results


def test_dry_run_prints_one_harness_command_per_paper_model(tmp_path, capsys):
    stdout, _ = dry_run(capsys, "--tasks", "erank_piqa,erank_openbookqa", "--out", tmp_path)
    lines = stdout.strip().splitlines()
    assert len(lines) == 5
    for line, size in zip(lines, ("125m", "1.3b", "2.7b", "6.7b", "13b")):
        assert "-m lm_eval_erank --model hf-erank" in line
        assert f"--model_args pretrained=facebook/opt-{size},dtype=float32" in line
        assert "--tasks erank_piqa,erank_openbookqa" in line
        assert f"--output_path {tmp_path / 'results' / f'opt-{size}'}" in line
    assert not (tmp_path / "results").exists()  # nothing ran


def test_dolly_runs_only_when_its_task_is_installed(tmp_path, capsys):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "my_dolly.yaml").write_text("task: my_dolly\ndataset_path: json\n")
    common = ["--models", "opt-125m", "--include_path", tmp_path / "tasks", "--out", tmp_path]
    found, _ = dry_run(capsys, *common, "--task-map", "erank_dolly=my_dolly")
    assert "--tasks erank_openbookqa,erank_piqa,my_dolly " in found
    missing, notes = dry_run(capsys, *common, "--task-map", "erank_dolly=no_such_dolly")
    assert "--tasks erank_openbookqa,erank_piqa " in missing
    assert "no_such_dolly is not in the installed task list" in notes
    # options the script does not know pass through to the harness
    passed, _ = dry_run(capsys, *common, "--tasks", "erank_piqa", "--log_samples", "--limit", "0.5")
    assert passed.strip().endswith("--limit 0.5 --log_samples")


def test_argument_parsing_helpers():
    rp = load_script("reproduce_paper")
    assert rp.parse_models(None)[0] == ("opt-125m", "facebook/opt-125m")
    assert rp.parse_models("opt-1.3b,facebook/opt-13b,opt-125m=/m/tiny") == [
        ("opt-1.3b", "facebook/opt-1.3b"), ("opt-13b", "facebook/opt-13b"), ("opt-125m", "/m/tiny")]
    assert rp.parse_task_map(["erank_piqa=a,erank_openbookqa=b", "erank_dolly=c"]) == {
        "erank_piqa": "a", "erank_openbookqa": "b", "erank_dolly": "c"}
    assert rp.paper_value("erank_piqa", "diff_erank", "opt-13b") == "7.267"
    assert rp.paper_value("erank_dolly", "diff_erank", "opt-6.7b") == "89.60"
    assert rp.paper_value("erank_dolly", "acc", "opt-6.7b") is None
    assert rp.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rp.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    from lm_eval_erank.compare.runs import Run  # what lm-eval-erank compare (ex plot_results) names a model

    def model_identity(data):
        return Run(path=Path("/r/results_x.json"), data=data).model

    assert model_identity({"config": {"model_args": "pretrained=facebook/opt-125m,dtype=float32"}}) == \
        "facebook/opt-125m"
    assert model_identity({"config": {"model_args": {"pretrained": "/a/b"}}}) == "/a/b"
    assert model_identity({"config": {}, "model_name": "x/y"}) == "x/y"


def test_comparison_table_shows_paper_values_beside_ours(reproduced):
    out, stdout, results = reproduced
    printed = stdout[stdout.index("# Diff-eRank: ours vs the paper"):]
    assert (out / "comparison.md").read_text() in printed
    tables = markdown_tables(printed)
    for task, run_task in TASK_MAP.items():
        rows = {r["model"]: r for r in tables[f"{task} (run as {run_task})"]}
        assert list(rows) == list(STAND_INS)
        for name in STAND_INS:
            row, json_row = rows[name], results[name][1]["results"][run_task]
            diff_paper, acc_paper = PAPER_VALUES[(task, name)]
            assert row["Diff-eRank paper"] == diff_paper and row["acc paper"] == acc_paper
            assert row["Diff-eRank ours"] == ours(json_row, "diff_erank")
            assert row["acc ours"] == ours(json_row, "acc")
            assert row["reduced loss ours"] == ours(json_row, "reduced_loss")
            assert row["eRank M1 ours"] == ours(json_row, "erank_m1")
            assert row["eRank M0 ours"] == ours(json_row, "erank_m0")
            assert row["n"] == "4"
            assert row["params"] == f"{results[name][1]['config']['model_num_parameters']:,}"
    assert "--limit 4" in printed  # the subset is flagged as not comparable
    saved = json.loads((out / "comparison.json").read_text())
    assert {(r["task"], r["model"]) for r in saved["rows"]} == set(PAPER_VALUES)
    for r in saved["rows"]:
        json_row = results[r["model"]][1]["results"][TASK_MAP[r["task"]]]
        assert r["diff_erank"] == json_row["diff_erank,none"]
        assert r["diff_erank_paper"] == float(PAPER_VALUES[(r["task"], r["model"])][0])


def test_reproduce_reuses_results_and_survives_a_failing_model(reproduced, tmp_path, capsys):
    out, stdout, _ = reproduced
    rp = load_script("reproduce_paper")
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    models = ",".join(f"{name}=unused" for name in STAND_INS)
    common = ["--tasks", "erank_piqa,erank_openbookqa", "--task-map", ",".join(f"{k}={v}" for k, v in TASK_MAP.items()),
              "--limit", "4", "--no-plot", "--python", shutil.which("false") or "/bin/false"]
    piqa = "erank_piqa (run as local_erank_piqa)"
    # --skip-existing: both models' results are there, so the (failing) interpreter never runs
    capsys.readouterr()
    assert rp.main(["--models", models, "--out", str(copy), "--skip-existing", *common]) == 0
    reused = capsys.readouterr().out
    assert reused.count("reusing") == 2
    assert markdown_tables(reused[reused.index("# Diff-eRank"):])[piqa] == \
        markdown_tables(stdout[stdout.index("# Diff-eRank"):])[piqa]
    # a model whose harness run fails: reported, the comparison still printed, exit code 1
    assert rp.main(["--models", "opt-125m=unused", "--out", str(tmp_path / "fresh"), *common]) == 1
    failed = capsys.readouterr()
    assert "opt-125m failed" in failed.err
    rows = markdown_tables(failed.out[failed.out.index("# Diff-eRank"):])[piqa]
    assert rows[0]["Diff-eRank ours"] == "(not run)" and rows[0]["Diff-eRank paper"] == "4.647"


COMPARISON = "Model comparison (lm-eval-erank compare)"  # the section of comparison.md holding the table


def written_paths(stdout: str) -> list[Path]:
    """The files lm-eval-erank compare (and plot_results.py, which calls it) says it wrote."""
    return [Path(line.strip()) for line in stdout.split("written:", 1)[1].splitlines() if line.strip()]


def test_plot_results_on_reproduced_jsons(reproduced, tmp_path):
    """scripts/plot_results.py is lm-eval-erank compare: its table holds the results' values."""
    import matplotlib  # noqa: F401  (a test dependency: these tests must run)
    _, _, results = reproduced
    names = list(STAND_INS)
    plots = tmp_path / "plots"
    done = run_script(PLOT, *(results[n][0] for n in names), "--out", plots, "--labels", ",".join(names))
    assert done.returncode == 0, done.stderr
    keys = [t.replace("_erank_", "_", 1) for t in TASK_MAP.values()]
    expected = [plots / f"{k}{suffix}.png" for k in keys for suffix in ("", "_diff_erank_vs_acc")]
    expected += [plots / "diff_erank_vs_size.png"] + [plots / f"comparison.{e}" for e in ("md", "csv", "json")]
    assert sorted(written_paths(done.stdout)) == sorted(expected)
    for png in (p for p in expected if p.suffix == ".png"):
        check_png(png)
    rows = markdown_tables((plots / "comparison.md").read_text())[COMPARISON]
    assert len(rows) == len(names) * len(TASK_MAP)
    for row in rows:
        data = results[row["Model"]][1]
        json_row = data["results"][row["Task"].split("(")[1].rstrip(")")]
        assert row["parameters"] == f"{data['config']['model_num_parameters']:,}"
        assert row["n"] == "4"
        assert row["acc"] == ours(json_row, "acc")
        assert row["Diff-eRank"] == ours(json_row, "diff_erank")
        assert row["eRank(M1)"] == ours(json_row, "erank_m1")
        assert row["eRank(M0)"] == ours(json_row, "erank_m0")
        assert row["reduced loss"] == ours(json_row, "reduced_loss")
        if "erank_ratio,none" in json_row:
            assert row["ratio M1/M0"] == ours(json_row, "erank_ratio")
    assert "--limit 4" in done.stderr  # a subset of the documents, said


def test_plot_results_task_selection(reproduced, tmp_path, capsys):
    import matplotlib  # noqa: F401  (a test dependency: these tests must run)
    from lm_eval_erank.compare import cli

    _, _, results = reproduced
    # --tasks selects; an unknown task is noted, not fatal (in process: no interpreter start-up)
    capsys.readouterr()
    assert cli.main([str(results["opt-125m"][0]), "--out", str(tmp_path / "one"),
                     "--tasks", "local_erank_piqa,nope"]) == 0
    assert "task nope is in none of the runs" in capsys.readouterr().err
    rows = markdown_tables((tmp_path / "one" / "comparison.md").read_text())[COMPARISON]
    assert {r["Task"] for r in rows} == {"local_piqa (local_erank_piqa)"}


# ---- hand-made results with per-layer metrics and a task whose texts were all excluded ---------------

LAYERS = {  # model -> (params, diff_erank_layer0..L) ; L = 4 and 6
    "tiny-a": (1_000_000, [0.5, 1.5, 2.0, 1.2, 0.8]),
    "tiny-b": (30_000_000, [0.7, 2.5, 3.5, 3.0, 2.2, 1.9, 1.1]),
}


def handmade_results(model: str, params: int, layer_values: list[float]) -> dict:
    row = {"alias": "lay_task", "acc,none": 0.5, "acc_stderr,none": 0.05,
           "diff_erank,none": layer_values[-1], "diff_erank_stderr,none": 0.1,
           "erank_m1,none": 10.0, "erank_m1_stderr,none": 0.2, "erank_m0,none": 10.0 + layer_values[-1],
           "erank_m0_stderr,none": 0.2, "reduced_loss,none": 3.0, "reduced_loss_stderr,none": 0.01,
           "erank_ratio,none": 10.0 / (10.0 + layer_values[-1]), "erank_ratio_stderr,none": 0.01}
    for i, v in enumerate(layer_values):
        row[f"diff_erank_layer{i},none"] = v
        row[f"diff_erank_layer{i}_stderr,none"] = 0.05 * (i + 1)
        row[f"erank_m1_layer{i},none"] = 12.0 - v
        row[f"erank_m1_layer{i}_stderr,none"] = 0.1
        row[f"erank_m0_layer{i},none"] = 12.0
        row[f"erank_m0_layer{i}_stderr,none"] = 0.1
    empty = {"alias": "empty_task", "acc,none": 0.25, "acc_stderr,none": 0.1,
             "diff_erank,none": None, "diff_erank_stderr,none": "N/A", "erank_m1,none": None,
             "erank_m1_stderr,none": "N/A", "erank_m0,none": None, "erank_m0_stderr,none": "N/A",
             "reduced_loss,none": None, "reduced_loss_stderr,none": "N/A",
             "erank_excluded,none": 4.0, "erank_excluded_stderr,none": 0.0}
    return {
        "results": {"lay_task": row, "empty_task": empty},
        "n-samples": {"lay_task": {"original": 20, "effective": 20}, "empty_task": {"original": 4, "effective": 4}},
        "config": {"model": "hf-erank", "model_args": f"pretrained=/models/{model},dtype=float32,layers=all",
                   "model_num_parameters": params},
        "model_name": f"/models/{model}",
    }


@pytest.fixture()
def handmade(tmp_path):
    files = []
    for model, (params, values) in LAYERS.items():
        path = tmp_path / "in" / model / "results_2026-01-01T00-00-00.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(handmade_results(model, params, values)))
        files.append(path)
    return files


def test_layer_curves_and_null_metrics(handmade, tmp_path):
    import matplotlib  # noqa: F401  (a test dependency: these tests must run)
    out = tmp_path / "out"
    done = run_script(PLOT, handmade[0].parents[1], "--out", out)  # a directory argument
    assert done.returncode == 0, done.stderr
    written = {p.name for p in written_paths(done.stdout)}
    assert written == {"lay_task.png", "lay_task_layers.png", "lay_task_diff_erank_vs_acc.png", "empty_task.png",
                       "diff_erank_vs_size.png", "comparison.md", "comparison.csv", "comparison.json"}
    width, _ = check_png(out / "lay_task_layers.png")
    assert width > 1000  # two panels: Diff-eRank per layer, and the eRanks of M1 / M0
    for name in (n for n in written if n.endswith(".png")):
        check_png(out / name)
    assert "empty_task: diff_erank, erank_m1, erank_m0, reduced_loss null" in done.stderr
    rows = {(r["Model"], r["Task"]): r for r in markdown_tables((out / "comparison.md").read_text())[COMPARISON]}
    assert set(rows) == {(m, t) for m in LAYERS for t in ("lay_task", "empty_task")}
    for model, (params, values) in LAYERS.items():
        lay, empty = rows[(model, "lay_task")], rows[(model, "empty_task")]
        assert lay["parameters"] == f"{params:,}" and lay["n"] == "20"
        assert lay["Diff-eRank"] == f"{values[-1]:.4f} ± 0.1000"
        assert lay["ratio M1/M0"] == f"{10 / (10 + values[-1]):.4f} ± 0.0100"
        assert empty["Diff-eRank"] == "n/a" and empty["eRank(M1)"] == "n/a"
        assert empty["acc"] == "0.2500 ± 0.1000"
        assert empty["ratio M1/M0"] == "-"
    assert "`n/a`: every text of the task was excluded" in (out / "comparison.md").read_text()


def test_layer_curve_ends_at_the_lm_head_input_from_the_unsuffixed_metric(tmp_path):
    from lm_eval_erank.compare.figures import layer_series
    from lm_eval_erank.compare.runs import load_run

    results = {
        "results": {"t": {"diff_erank,none": 4.0, "diff_erank_stderr,none": 0.1,
                          "diff_erank_layer0,none": 1.0, "diff_erank_layer0_stderr,none": 0.2,
                          "diff_erank_layer1,none": 2.0, "diff_erank_layer1_stderr,none": 0.3}},
        "config": {"model_num_parameters": 1000, "erank_last_layer": 2, "model_args": "pretrained=m"},
    }
    path = tmp_path / "results_x.json"
    path.write_text(json.dumps(results))
    run = load_run(path, "m")
    assert layer_series(run, "t", "diff_erank") == [(0, 1.0, 0.2), (1, 2.0, 0.3), (2, 4.0, 0.1)]


# ---- the shape of scripts/ ----------------------------------------------------------------------------

MAX_SCRIPT_LINES = 500
# What the package owns: rank statistics (lm_eval_erank.core.statistics) and batching
# (lm_eval_erank.core.representations). A script defining one of these has a second copy.
PACKAGE_OWNED = re.compile(r"spearman|kendall|pearson|rank_?corr|^ranks?$|batches$|^pad_(right|left)$|^pad_batch",
                           re.IGNORECASE)


def script_files() -> list[Path]:
    return sorted(p for p in SCRIPTS.rglob("*") if p.suffix in (".py", ".sh") and "__pycache__" not in p.parts)


def test_no_file_in_scripts_is_over_the_size_limit():
    sizes = {str(p.relative_to(SCRIPTS)): len(p.read_text(encoding="utf-8").splitlines()) for p in script_files()}
    assert "twin_collapse.py" in sizes and "studies/formatting.py" in sizes  # the walk reaches the sub-packages
    assert {name: n for name, n in sizes.items() if n > MAX_SCRIPT_LINES} == {}


def test_no_script_defines_its_own_statistic_or_batching():
    """Spearman, Kendall, ranks and length-sorted batches are the package's; the scripts import them."""
    defined = {}
    for path in script_files():
        if path.suffix == ".py":
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    defined.setdefault(node.name, []).append(str(path.relative_to(SCRIPTS)))
    assert "permutation_p" in defined  # the walk sees the studies' functions
    assert {name: where for name, where in defined.items() if PACKAGE_OWNED.search(name)} == {}
    assert not PACKAGE_OWNED.search("permutation_p") and PACKAGE_OWNED.search("length_batches")
    assert PACKAGE_OWNED.search("spearman_rho") and PACKAGE_OWNED.search("pad_right")


def test_the_shared_study_modules_examples_run():
    import doctest

    ran = set()
    for name in ("formatting", "texts", "tasks", "records"):
        module = study_module(name)
        for test in doctest.DocTestFinder().find(module):
            if test.examples:
                assert doctest.DocTestRunner().run(test, out=lambda text: None).failed == 0, test.name
                ran.add(test.name.rsplit(".", 1)[-1])
    assert {"cell", "rho", "markdown_table", "dump_json", "copied_blocks", "fill_copied_blocks", "piqa_gold_texts", "write_local_copy", "versions",
            "machine"} <= ran, ran
