"""scripts/real_models.py end to end at smoke size: three tiny models from configs standing in for the
real ones, local data written here in the layout of ../shared/data (neither the real models nor
../shared are needed), the same seeded documents for every model, the report through compare."""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import pytest

from lm_eval_erank.testing import tiny

from . import docs_text
from .test_scripts import load_script

TWINS = 2
HH_RLHF = [{"chosen": f"\n\nHuman: {q}\n\nAssistant: {a}", "rejected": f"\n\nHuman: {q}\n\nAssistant: no."}
           for q, a, _, _ in tiny.PIQA_DOCS]
SAMPLE = {"piqa": 6, "openbookqa": 5, "winogrande": 5, "hh_rlhf": 4}


def write_data(root):
    """The files real_models.py looks for under --data, in the hub schemas, from the example's docs."""
    tiny.write_jsonl(root / "hf_schema" / "piqa_validation.jsonl", tiny.piqa_rows())
    tiny.write_jsonl(root / "hf_schema" / "openbookqa_test.jsonl", tiny.openbookqa_rows())
    tiny.write_jsonl(root / "hf_schema" / "winogrande_validation.jsonl", tiny.winogrande_rows())
    for subset, rows in (("harmless-base", HH_RLHF[:6]), ("helpful-base", HH_RLHF[6:])):
        (root / "hh-rlhf" / subset).mkdir(parents=True)
        with gzip.open(root / "hh-rlhf" / subset / "test.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    return root


@pytest.fixture(scope="module")
def study(tiny_models, tmp_path_factory):
    """One run of the script in this process: three models, four data sets, 2 twins, all layers."""
    root = tmp_path_factory.mktemp("real_models")
    data, out, report = write_data(root / "data"), root / "out", root / "report"
    script = load_script("real_models")
    family = {"gpt2": "@tiny", "llama": "@tiny", "opt": ""}  # two models of one "family": the verdict compares them
    models = [arg for arch in ("gpt2", "llama", "opt")
              for arg in ("--model", f"{arch}=pretrained={tiny_models[arch]}{family[arch]}")]
    common = [*models, "--data", data, "--twins", TWINS, "--batch-size", 4, "--bootstrap-iters", 100, "--out", out,
              *[a for key, n in SAMPLE.items() for a in ("--sample", f"{key}={n}")]]
    assert script.main([str(a) for a in [*common, "--report", report]]) == 0
    return script, [str(a) for a in common], out, report


def test_every_model_runs_the_same_seeded_documents_with_twins_and_all_layers(study):
    _, _, out, report = study
    study_record = json.loads((report / "study.json").read_text())
    assert {key: d["sampled"] for key, d in study_record["documents"].items()} == SAMPLE
    for key, chosen in study_record["documents"].items():
        assert chosen["indices"] == sorted(chosen["indices"]) and len(set(chosen["indices"])) == chosen["sampled"]
        assert chosen["of"] > chosen["sampled"] and chosen["seed"] == 123
    for label in ("gpt2", "llama", "opt"):
        for key, task in study_record["tasks"].items():
            samples = [json.loads(line) for path in (out / "runs" / label).rglob(f"samples_{task}_*.jsonl")
                       for line in path.read_text().splitlines()]
            assert sorted(s["doc_id"] for s in samples) == study_record["documents"][key]["indices"], (label, key)
            assert all(len(s["erank_response"]["entropy_m0"]) == TWINS for s in samples)
            (results_file,) = [p for p in (out / "runs" / label).rglob("results_*.json")
                               if task in json.loads(p.read_text())["results"]]
            config = json.loads(results_file.read_text())["config"]
            assert config["erank_m0_twins"] == TWINS and config["erank_layers"] == list(range(config["erank_last_layer"] + 1))
    runs = study_record["runs"]
    assert len(runs) == 12 and all(r["wall_s"] > 0 and r["cpu_s"] > 0 for r in runs)
    assert study_record["runs_wall_s"] == pytest.approx(sum(r["wall_s"] for r in runs))
    written = (report / "study.md").read_text()  # study.json as markdown, for the docs to include
    assert written == study[0].study_markdown(study_record)
    assert f"Runs: {study_record['runs_wall_s'] / 60:.0f} min wall" in written and "Every (model, data set) run is done." in written
    assert sum(1 for line in written.splitlines() if line.startswith(("| gpt2 |", "| llama |", "| opt |"))) == 12


def test_the_report_is_the_compare_commands_over_the_runs(study):
    from lm_eval_erank.compare import compare

    _, _, out, report = study
    written = json.loads((report / "comparison.json").read_text())
    again = compare([out / "runs" / label for label in ("gpt2", "llama", "opt")], labels=["gpt2", "llama", "opt"])
    assert json.loads(json.dumps(again.to_json()))["rows"] == written["rows"]
    assert sorted(m["label"] for m in written["models"]) == ["gpt2", "llama", "opt"]  # ordered by size
    assert {row["task"] for row in written["rows"]} == {f"real_{key}" for key in SAMPLE}
    assert len(written["rows"]) == 12
    piqa = [p for p in written["pairs"] if p["task"] == "real_piqa"]
    assert len(piqa) == 3 and all(p["n_docs"] == SAMPLE["piqa"] and math.isfinite(p["diff_erank_diff"]) for p in piqa)
    assert {c["n"] for c in written["correlations"]} == {3}
    assert (report / "comparison.md").is_file() and list(report.glob("*.png"))


def test_the_verdict_is_the_larger_minus_the_smaller_model_of_a_family(study):
    """verdict.md: per task, the larger of the family's two models minus the smaller (values from the
    runs' results), the interval's verdict, and whether Diff-eRank and acc order all models alike."""
    _, _, out, report = study
    written = json.loads((report / "comparison.json").read_text())
    params = {m["label"]: m["num_parameters"] for m in written["models"]}
    small, large = sorted(("gpt2", "llama"), key=params.get)
    verdict = (report / "verdict.md").read_text()
    assert f"**{large} minus {small}**" in verdict and "opt minus" not in verdict and "minus opt" not in verdict
    rows = {(r["label"], r["task"]): r for r in written["rows"]}
    lines = {line.split(" | ")[0].strip("| "): line for line in verdict.splitlines()
             if line.startswith("| real_") and " < " not in line and "/" not in line}  # the pair table's rows
    for key in SAMPLE:
        task = f"real_{key}"
        expected = rows[(large, task)]["diff_erank"]["value"] - rows[(small, task)]["diff_erank"]["value"]
        cells = lines[task].split(" | ")
        assert cells[1] == str(SAMPLE[key]) and cells[2].startswith(f"{expected:+.3f} [")
        low, high = (float(x) for x in cells[2].split("[")[1].split("]")[0].split(", "))
        assert cells[2].endswith("larger" if low > 0 else "smaller" if high < 0 else "not separated")
    words = dict(line[2:].split(": ", 1) for line in verdict.splitlines() if line.startswith("- "))
    for key in SAMPLE:  # "In words" reads the pair table out: each task under its cell's verdict
        cells = lines[f"real_{key}"].split(" | ")
        for column, title in ((2, "Diff-eRank"), (3, "ratio M1/M0"), (4, "eRank(M1)"), (5, "reduced loss")):
            word = "not separated" if cells[column].endswith("not separated") else cells[column].rsplit(" ", 1)[1]
            assert [f"real_{key}"] == [task for group in words[title].split("; ") if group.startswith(f"{word} on ")
                                       for task in group.split(" on ", 1)[1].split(", ") if task == f"real_{key}"]
    layer_rows = [line.split(" | ") for line in verdict.splitlines() if line.startswith("| real_") and "/" in line]
    at_head = {cells[0].strip("| "): cells for cells in layer_rows if cells[1] == "1.00"}
    assert set(at_head) == {f"real_{key}" for key in SAMPLE}  # every task reaches the LM head's input
    for task, cells in at_head.items():  # there the per-layer table shows the dataset values
        for column, label in ((3, small), (4, large)):
            row = rows[(label, task)]["diff_erank"]
            assert cells[column] == f"{row['value']:.2f} ± {row['stderr']:.2f}"
        pair_cells = lines[task].split(" | ")  # and the paired differences of the pair table
        assert (cells[5], cells[8].rstrip(" |")) == (pair_cells[2], pair_cells[4]), task
    for cells in layer_rows:  # each difference is the larger's value minus the smaller's, with its interval
        for value, (a, b) in ((cells[5], (3, 4)), (cells[8].rstrip(" |"), (6, 7))):
            low, high = (float(x) for x in value.split("[")[1].split("]")[0].split(", "))
            estimate = float(value.split(" [")[0])
            assert low <= estimate <= high
            assert abs(estimate - (float(cells[b].split(" ±")[0]) - float(cells[a].split(" ±")[0]))) <= 0.011
    assert len({cells[2] for cells in layer_rows if cells[0] == "| real_piqa"}) == sum(
        1 for cells in layer_rows if cells[0] == "| real_piqa")  # no index pair twice
    summary = (report / "verdict_summary.md").read_text()  # what the README shows: no per-layer table
    per_layer = verdict[verdict.index("**Per layer"):verdict.index("**Do Diff-eRank")]
    assert summary == verdict.replace(per_layer, "")
    order_rows = [line for line in verdict.splitlines() if line.startswith("| real_") and " < " in line]
    assert len(order_rows) == 3  # the three benchmarks have acc; hh-rlhf has none
    for line in order_rows:
        cells = line.split(" | ")
        assert cells[3] == ("yes" if cells[1] == cells[2] else "no")
        min_p = cells[-1].strip(" |")  # n = 3: at least 1/3 (more with ties), or undefined (a constant acc)
        assert min_p == "-" or float(min_p) >= 0.333


def test_report_only_reports_the_runs_done_and_lists_the_missing_ones(study, tiny_models, capsys):
    """--report-only runs nothing: a model with no run is left out of the comparison, a data set not run
    yet is named in verdict.md and study.json (``complete`` false), and the rows are those of the runs."""
    script, common, out, report = study
    partial = Path(str(report) + "_partial")
    new_model = ["--model", f"gpt2-unrun=pretrained={tiny_models['gpt2']}"]
    capsys.readouterr()
    assert script.main([*common, *new_model, "--report", str(partial), "--report-only"]) == 0
    assert "docs," not in capsys.readouterr().out  # nothing ran
    record = json.loads((partial / "study.json").read_text())
    assert not record["complete"]
    assert record["missing"] == [{"label": "gpt2-unrun", "task": f"real_erank_{key}"} for key in SAMPLE]
    verdict = (partial / "verdict.md").read_text()
    assert verdict.startswith("**Not run yet**") and "gpt2-unrun / real_erank_piqa" in verdict
    written = json.loads((partial / "comparison.json").read_text())
    assert written["rows"] == json.loads((report / "comparison.json").read_text())["rows"]
    assert json.loads((report / "study.json").read_text())["complete"]


def test_a_rerun_reuses_every_finished_run_and_changed_settings_run_again(study, tmp_path, capsys):
    """On a copy of the study's runs (the other tests read the originals, in any order)."""
    script, common, out, report = study
    shutil.copytree(out, tmp_path / "out")
    common = [str(tmp_path / "out") if a == str(out) else a for a in common]
    capsys.readouterr()
    again = Path(str(report) + "_again")
    assert script.main([*common, "--report", str(again), "--data-sets", "piqa,hh_rlhf"]) == 0
    assert capsys.readouterr().out.count("done before, reused") == 6
    assert json.loads((again / "study.json").read_text())["runs"] == [
        r for r in json.loads((report / "study.json").read_text())["runs"] if r["task"] in ("real_erank_piqa",
                                                                                           "real_erank_hh_rlhf")]
    fewer = [a if a != f"piqa={SAMPLE['piqa']}" else "piqa=3" for a in common]
    assert script.main([*fewer, "--no-report", "--data-sets", "piqa", "--model",
                        f"gpt2-again={common[common.index('--model') + 1].split('=', 1)[1]}"]) == 0
    printed = capsys.readouterr().out
    assert "reused" not in printed and printed.count("3 docs") == 4  # the three models and the new label


def test_an_interrupted_study_loses_only_the_run_it_was_on(study, tiny_models, tmp_path, monkeypatch, capsys):
    import lm_eval

    script, common, _, _ = study
    out = tmp_path / "out"
    args = [*common[:common.index("--out")], "--out", str(out), "--data-sets", "piqa,openbookqa", "--no-report",
            "--sample", "piqa=3", "--sample", "openbookqa=3"]
    evaluate, calls = lm_eval.simple_evaluate, []

    def interrupted(*a, **k):
        calls.append(k["tasks"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(*a, **k)

    monkeypatch.setattr(lm_eval, "simple_evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        script.main(args)
    assert sorted(p.name for p in (out / "runs" / "gpt2").glob("done_*.json")) == ["done_real_erank_piqa.json"]
    monkeypatch.setattr(lm_eval, "simple_evaluate", evaluate)
    capsys.readouterr()
    assert script.main(args) == 0
    assert capsys.readouterr().out.count("done before, reused") == 1


def test_sample_options(study):
    script = study[0]
    assert script.parse_args([]).sample == {"piqa": 300, "openbookqa": 300, "winogrande": 300, "hh_rlhf": 200}
    assert script.parse_args(["--sample", "hh_rlhf=all"]).sample["hh_rlhf"] == 0
    with pytest.raises(SystemExit, match="--sample 'nope=3'"):
        script.parse_args(["--sample", "nope=3"])


def test_the_docs_show_the_committed_smollm2_table():
    """docs/real-models.md includes docs/real_smollm2/table.md as scripts/real_models.py wrote it (as of
    f249816: SmolLM2 with both twin inits on the full benchmarks), and the cost row is its summary.json's."""
    root = Path(__file__).resolve().parents[1]
    assert (root / "docs" / "real_smollm2" / "table.md").read_text(encoding="utf-8").strip() in docs_text.page(
        "real-models.md")
    cost = json.loads((root / "docs" / "real_smollm2" / "summary.json").read_text())["cost"]["SmolLM2-135M-Instruct"]
    assert f"{cost['ratio_wall']:.2f}x wall, {cost['ratio_cpu']:.2f}x CPU" in docs_text.page("performance.md")
