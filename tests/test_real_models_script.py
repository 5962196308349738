"""scripts/real_models.py end to end at smoke size: a tiny model from a config, local data written
here in the layout of ../shared/data (so neither the GGUF wheel nor ../shared is needed)."""

from __future__ import annotations

import gzip
import json
import math

import pytest

from lm_eval_erank import example

from .test_scripts import PNG_MAGIC, load_script

TWINS, INIT = 2, 0.05
COST = ["--cost-docs", 4, "--cost-small", 2, "--cost-repeats", 1]
HH_RLHF = [{"chosen": f"\n\nHuman: {q}\n\nAssistant: {a}", "rejected": f"\n\nHuman: {q}\n\nAssistant: no."}
           for q, a, _, _ in example.PIQA_DOCS]
DOLLY = [{"prompt": f"### Instruction:\n{q}\n\n### Response:\n", "response": a} for q, a, _, _ in example.PIQA_DOCS]


def write_data(root):
    """The files real_models.py looks for under --data, in the hub schemas, from the example's docs."""
    example.write_jsonl(root / "hf_schema" / "piqa_validation.jsonl", example.piqa_rows())
    example.write_jsonl(root / "hf_schema" / "openbookqa_test.jsonl", example.openbookqa_rows())
    example.write_jsonl(root / "hf_schema" / "winogrande_validation.jsonl", example.winogrande_rows())
    for subset, rows in (("harmless-base", HH_RLHF[:6]), ("helpful-base", HH_RLHF[6:])):
        (root / "hh-rlhf" / subset).mkdir(parents=True)
        with gzip.open(root / "hh-rlhf" / subset / "test.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    example.write_jsonl(root / "dolly" / "dolly_hhrlhf_train_small.jsonl", DOLLY)
    return root


@pytest.fixture(scope="module")
def study(tiny_models, tmp_path_factory):
    """One run of the script in this process: every data set, 2 twins, all layers, the cost at 4 docs."""
    root = tmp_path_factory.mktemp("real_models")
    data, out, figures = write_data(root / "data"), root / "out", root / "figures"
    script = load_script("real_models")
    # an hf-erank option among the model arguments: the cost's `hf` run must not receive it
    common = ["--model", f"tiny=pretrained={tiny_models['llama']},m0_initializer_range={INIT}", "--data", data,
              "--twins", TWINS,
              "--batch-size", 4, "--bootstrap-iters", 200, "--out", out, "--figures", figures]
    assert script.main([str(a) for a in [*common, *COST]]) == 0
    summary = json.loads((figures / "summary.json").read_text())
    return script, common, summary, figures


def test_every_data_set_is_run_on_its_local_files_with_all_layers_and_twins(study):
    _, _, summary, _ = study
    docs = {"piqa": len(example.PIQA_DOCS), "openbookqa": len(example.OBQA_DOCS),
            "winogrande": len(example.WINOGRANDE_DOCS), "hh_rlhf": len(HH_RLHF), "dolly": len(DOLLY)}
    assert summary["tasks"] == {"piqa": "real_erank_piqa", "openbookqa": "real_erank_openbookqa",
                                "winogrande": "real_erank_winogrande", "hh_rlhf": "real_erank_hh_rlhf",
                                "dolly": "real_erank_dolly_hhrlhf_sample"}
    by_task = {run["task"]: run for run in summary["runs"]}
    for key, task in summary["tasks"].items():
        run = by_task[task]
        assert run["docs"] == docs[key], key
        assert run["config"]["erank_m0_twins"] == TWINS and run["config"]["erank_layers"] == list(range(3))
        assert run["config"]["erank_m0_initializer_range"] == INIT
        assert math.isfinite(run["metrics"]["diff_erank,none"]) and run["wall_s"] > 0
    assert by_task["real_erank_piqa"]["metrics"]["acc,none"] is not None
    assert "acc,none" not in by_task["real_erank_hh_rlhf"]["metrics"]


def test_the_layer_curves_are_the_harness_values_split_by_twin(study):
    """At every layer the twins' mean is the harness's erank_m0 (layer L: the unsuffixed metrics)."""
    _, _, summary, _ = study
    for run in summary["runs"]:
        curves, metrics = run["layers"], run["metrics"]
        last = run["config"]["erank_last_layer"]
        assert curves["layer"] == list(range(last + 1)) and len(curves["m0"]) == TWINS
        for i, layer in enumerate(curves["layer"]):
            suffix = "" if layer == last else f"_layer{layer}"
            assert curves["m1"][i] == pytest.approx(metrics[f"erank_m1{suffix},none"], rel=1e-9)
            twin_mean = sum(twin[i] for twin in curves["m0"]) / TWINS
            assert twin_mean == pytest.approx(metrics[f"erank_m0{suffix},none"], rel=1e-9)
        assert curves["m0"][0] != curves["m0"][1]  # two different draws


def test_table_figure_and_summary_are_written(study):
    _, _, summary, figures = study
    table = (figures / "table.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| tiny |")]
    assert len(rows) == 5 and all("±" in row for row in rows)
    assert "| OPT-125m (paper) | PIQA (validation) | | 1 | 0.619 | - | 4.647 |" in table
    assert "OPT-125m (paper) | dolly" not in table  # the local dolly sample is other text than the paper's
    assert (figures / "tiny_layers.png").read_bytes().startswith(PNG_MAGIC)
    assert summary["command"].startswith("python ") and summary["versions"]["lm_eval"]
    assert summary["machine"]["cpu_count"] and summary["this_invocation_wall_s"] > 0
    assert summary["runs_and_cost_wall_s"] >= sum(run["wall_s"] for run in summary["runs"])
    cost = summary["cost"]["tiny"]
    # the structure only: at 4 docs the request times are timing noise (a difference can even be negative)
    assert cost["docs"] == 4 and math.isfinite(cost["ratio_wall"]) and math.isfinite(cost["ratio_cpu"])
    assert {side: len(runs) for side, runs in cost["runs"].items()} == {"standard": 1, "erank": 1}


def test_resume_reuses_finished_runs(study, capsys):
    script, common, summary, figures = study
    capsys.readouterr()
    elsewhere = figures.parent / "figures_again"
    assert script.main([str(a) for a in [*common, *COST, "--data-sets", "piqa,dolly", "--resume",
                                         "--figures", elsewhere]]) == 0
    printed = capsys.readouterr().out
    assert printed.count("reused") == 3  # two runs and the cost
    again = json.loads((elsewhere / "summary.json").read_text())
    assert again["cost"] == summary["cost"]
    assert [r["metrics"] for r in again["runs"]] == [r["metrics"] for r in summary["runs"] if r["task"] in
                                                    ("real_erank_piqa", "real_erank_dolly_hhrlhf_sample")]


def test_a_sample_option_that_names_no_data_set_is_refused(study):
    script = study[0]
    with pytest.raises(SystemExit, match="--sample 'nope=3'"):
        script.parse_args(["--sample", "nope=3"])


def test_the_cost_is_measured_once_per_trained_model(study, tiny_models, capsys):
    """Two labels of one M1 that differ only in the twins' init: two runs, one cost (M1's)."""
    script, common, summary, figures = study
    other = ["--model", f"tiny-other-init=pretrained={tiny_models['llama']},m0_initializer_range=0.03"]
    elsewhere = figures.parent / "figures_two_inits"
    assert script.main([str(a) for a in [*common, *other, *COST, "--data-sets", "piqa", "--resume",
                                         "--figures", elsewhere]]) == 0
    again = json.loads((elsewhere / "summary.json").read_text())
    assert list(again["cost"]) == ["tiny"] and again["cost"]["tiny"] == summary["cost"]["tiny"]
    runs = {run["label"]: run for run in again["runs"]}
    assert runs["tiny-other-init"]["config"]["erank_m0_initializer_range"] == 0.03
    assert runs["tiny-other-init"]["metrics"]["erank_m1,none"] == runs["tiny"]["metrics"]["erank_m1,none"]
    assert runs["tiny-other-init"]["metrics"]["erank_m0,none"] != runs["tiny"]["metrics"]["erank_m0,none"]
    assert (elsewhere / "tiny-other-init_layers.png").read_bytes().startswith(PNG_MAGIC)


def test_hh_rlhf_is_sampled_by_default_and_all_on_request(study):
    script = study[0]
    assert script.parse_args([]).sample == {"hh_rlhf": 400}
    assert script.parse_args(["--sample", "hh_rlhf=all"]).sample == {}
    assert script.parse_args(["--sample", "dolly=10"]).sample == {"hh_rlhf": 400, "dolly": 10}


def test_the_readme_shows_the_committed_real_model_table():
    """README "Real models" is docs/real_smollm2/table.md as scripts/real_models.py wrote it, and the cost row
    is summary.json's."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Real models", 1)[1].split("\n## ", 1)[0]
    assert (root / "docs" / "real" / "table.md").read_text(encoding="utf-8").strip() in section
    cost = json.loads((root / "docs" / "real" / "summary.json").read_text())["cost"]["SmolLM2-135M-Instruct"]
    assert f"{cost['ratio_wall']:.2f}x wall, {cost['ratio_cpu']:.2f}x CPU" in readme
