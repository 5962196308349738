"""K random twins (m0_twins=K): API, harness, samples, config, cache, progress (issue 12; issue 14
items 4, 6, 7)."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_eval_erank.core import aggregation as agg
from lm_eval_erank import api, diff_erank
from lm_eval_erank.core import twin_provider
from lm_eval_erank.core.metrics import MAX_BOOTSTRAP_ITERS, METRIC_NAMES, TWIN_METRICS, per_document_values
from lm_eval_erank.harness.activation import register
from lm_eval_erank.testing import tiny

from .conftest import FakeTrainer, FakeTrainerState, model_args, run_cli

TEXTS = ["", "a"] + tiny.gold_texts()[:10]


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-equal tensors, NaN (undefined) where both are NaN."""
    return torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(a.nan_to_num(), b.nan_to_num())


@pytest.fixture(scope="module")
def llama(tiny_models):
    return (AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(tiny_models["llama"]))


def test_api_twins_are_single_twin_runs_averaged(llama):
    model, tok = llama
    result = diff_erank(model, tok, TEXTS, m0_seed=7, m0_twins=3, layers="paper")
    singles = [diff_erank(model, tok, TEXTS, m0_seed=7 + k, layers="paper") for k in range(3)]
    assert result.n_twins == 3 and result.m0_seeds == (7, 8, 9) and result.m0_seed == 7
    assert list(result.m0_checksums) == [s.m0_checksum for s in singles] and len(set(result.m0_checksums)) == 3
    for k, single in enumerate(singles):  # each twin is exactly the single-twin run of its seed
        for layer in result.layers:
            assert same(result.entropy_m0[layer][k], single.entropy_m0[layer])
        assert same(result.loss_m0[k], single.loss_m0)
    for name in ("diff_erank", "erank_m0", "erank_ratio", "diff_erank_b", "erank_m0_b", "reduced_loss"):
        expected = np.mean([getattr(s, name)() for s in singles])
        assert getattr(result, name)() == pytest.approx(expected, rel=1e-12), name
    assert result.erank_m1() == singles[0].erank_m1()  # M1 is not averaged
    assert result.erank_m0_twin_sd() == pytest.approx(np.std([s.erank_m0() for s in singles], ddof=1), rel=1e-12)
    summary = result.summary()
    assert summary["erank_m0_twin_sd"] == result.erank_m0_twin_sd() and summary["erank_excluded"] == 1
    assert summary["diff_erank_layer1"] == pytest.approx(np.mean([s.diff_erank(1) for s in singles]), rel=1e-12)
    row = result.per_text()[2]
    assert len(row["entropy_m0"]) == 3 and len(row["loss_m0"]) == 3 and len(row["layers"][1]["entropy_m0"]) == 3
    assert row["entropy_m0"][1] == float(singles[1].entropy_m0[result.last_layer][2])
    assert "erank_m0_twin_sd" not in singles[0].summary() and singles[0].erank_m0_twin_sd() is None


def test_api_twin_arguments_are_checked(llama):
    model, tok = llama
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="m0_twins"):
            diff_erank(model, tok, TEXTS[2:4], m0_twins=bad)
    with pytest.raises(ValueError, match="m0_twins"):
        diff_erank(model, tok, TEXTS[2:4], m0=model, m0_twins=2)
    with pytest.raises(ValueError, match="2\\*\\*64"):
        diff_erank(model, tok, TEXTS[2:4], m0_seed=2**64 - 1, m0_twins=2)


def test_each_twin_has_its_own_cache_entry_and_a_rerun_builds_no_twin(llama, tmp_path, monkeypatch):
    model, tok = llama
    first = diff_erank(model, tok, TEXTS, m0_seed=3, m0_twins=3, m0_cache=tmp_path)
    assert sorted(json.loads(f.read_text())["key"]["seed"] for f in tmp_path.glob("*.json")) == [3, 4, 5]
    built = []
    real = twin_provider.build_random_twin
    monkeypatch.setattr(twin_provider, "build_random_twin", lambda *a, **k: built.append(a[1]) or real(*a, **k))
    again = diff_erank(model, tok, TEXTS, m0_seed=3, m0_twins=3, m0_cache=tmp_path)
    assert built == [] and again.m0_checksums == first.m0_checksums
    assert same(again.entropy_m0[again.last_layer], first.entropy_m0[first.last_layer])
    diff_erank(model, tok, TEXTS, m0_seed=4, m0_twins=3, m0_cache=tmp_path)  # seeds 4, 5 cached, 6 new
    assert built == [6]


def test_progress_counts_documents_per_model_and_the_log_counts_cache_hits(tiny_models, tmp_path, caplog):
    register()
    from lm_eval.api.instance import Instance

    from lm_eval_erank.core import progress as progress_module
    from lm_eval_erank.harness import model as model_module

    bars = []
    real_tqdm = progress_module.tqdm

    class RecordingBar(real_tqdm):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.passes = []
            bars.append(self)

        def set_description(self, desc=None, refresh=True):
            self.passes.append([desc, 0, self.total])
            super().set_description(desc, refresh)

        def update(self, n=1):
            if self.passes:
                self.passes[-1][1] += n
            return super().update(n)

    lm = model_module.ErankHFLM(pretrained=str(tiny_models["gpt2"]), dtype="float32", device="cpu", batch_size=4,
                                m0_seed=1, m0_twins=2, m0_cache=str(tmp_path))
    requests = [Instance("erank", {}, (t,), 0, metadata=("t", i, 1)) for i, t in enumerate(TEXTS[2:9])]
    with pytest.MonkeyPatch.context() as mp, caplog.at_level(logging.INFO, logger="lm_eval.erank"):
        mp.setattr(progress_module, "tqdm", RecordingBar)
        lm.erank(requests)
        lm.erank(requests[:5])
    assert [p[0] for p in bars[0].passes] == ["Running erank requests, M1", "Running erank requests, M0 seed 1 (twin 1/2)",
                                             "Running erank requests, M0 seed 2 (twin 2/2)"]
    assert all(done == total == 7 for _, done, total in bars[0].passes)  # documents, not passes x documents
    assert all(done == total == 5 for _, done, total in bars[1].passes)
    hits = [r.getMessage() for r in caplog.records if "from the M0 cache" in r.getMessage()]
    assert [m.split(": ")[2].split(" texts")[0] for m in hits] == ["0 of 7", "0 of 7", "5 of 5", "5 of 5"]
    info = lm.get_model_info()
    assert info["erank_m0_twins"] == 2 and info["erank_m0_seeds"] == [1, 2]
    assert info["erank_m0_checksums"][0] == info["erank_m0_checksum"] and None not in info["erank_m0_checksums"]


def test_harness_with_three_twins(tiny_models, local_tasks, tmp_path):
    """One CLI run with m0_twins=3 and --log_samples: twin-mean values, a stderr over texts and
    twins, erank_m0_twin_sd, the config, JSON numbers in the samples, and the API's summary()
    holding exactly the reported values."""
    args = ["--model", "hf-erank", "--device", "cpu", "--include_path", str(local_tasks),
            "--tasks", "local_erank_piqa", "--batch_size", "4", "--log_samples",
            "--model_args", model_args(tiny_models["opt"], m0_seed=5, m0_twins=3, layers="1:2")]
    _, results, samples = run_cli(args, tmp_path / "out")
    row = results["results"]["local_erank_piqa"]
    config = results["config"]
    assert config["erank_m0_twins"] == 3 and config["erank_m0_seeds"] == [5, 6, 7]
    assert config["erank_m0_checksums"][0] == config["erank_m0_checksum"] and len(set(config["erank_m0_checksums"])) == 3

    # The table holds the metrics and their stderrs, nothing else of ours.
    reported = {key.split(",")[0] for key in row if key not in ("alias", "name", "sample_len")}
    ours = {name.removesuffix("_stderr") for name in reported} - {"acc", "acc_norm"}
    assert ours == set(METRIC_NAMES) | {m.name for m in TWIN_METRICS} | {"diff_erank_layer1", "erank_m1_layer1",
                                                                        "erank_m0_layer1"}
    assert row["erank_m0_twin_sd_stderr,none"] == "N/A"

    # Samples: the response as JSON numbers, every twin's entropies and losses.
    docs = samples["local_erank_piqa"]
    responses = [s["erank_response"] for s in docs]
    assert all(len(r["entropy_m0"]) == 3 and len(r["loss_m0"]) == 3 and len(r["layers"]["1"]["entropy_m0"]) == 3
               for r in responses)
    assert all(isinstance(r["entropy_m1"], float) and isinstance(r["n_tokens"], int) for r in responses)
    assert docs[0]["diff_erank"] == per_document_values(
        {**responses[0], "layers": {int(k): v for k, v in responses[0]["layers"].items()}})["diff_erank"]

    # Values: the twin mean, recomputed from the samples; the stderr covers the twin draw.
    e0 = np.exp(np.array([r["entropy_m0"] for r in responses]))
    e1 = np.exp(np.array([r["entropy_m1"] for r in responses]))
    g0, g1 = np.exp(np.log(e0).mean(axis=0)), math.exp(np.log(e1).mean())
    assert row["diff_erank,none"] == pytest.approx(float(np.mean(g0 - g1)), rel=1e-9)
    assert row["erank_m0_twin_sd,none"] == pytest.approx(float(np.std(g0, ddof=1)), rel=1e-9)
    paired = [[*a, b] for a, b in zip(e0.tolist(), e1.tolist())]
    text_var, twin_var = agg.twin_variance_parts(paired, "difference", MAX_BOOTSTRAP_ITERS)
    assert row["diff_erank_stderr,none"] == pytest.approx(math.sqrt(text_var + twin_var), rel=1e-9)
    assert row["diff_erank_stderr,none"] > math.sqrt(text_var) or twin_var == 0

    # summary() of the Python API on the same texts: exactly the harness's dataset values.
    texts = [list(s["arguments"].values())[-1]["arg_0"] for s in docs]  # the erank request comes last
    model = AutoModelForCausalLM.from_pretrained(tiny_models["opt"], dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_models["opt"])
    summary = diff_erank(model, tok, texts, m0_seed=5, m0_twins=3, layers="1:2", batch_size=4).summary()
    assert set(summary) - {"texts"} == ours
    for name, value in summary.items():
        if name != "texts":
            assert value == pytest.approx(row[f"{name},none"], rel=1e-6, abs=1e-9), name


def test_callback_with_twins_logs_the_twin_mean_and_spread(tiny_models):
    from lm_eval_erank.callback import DiffErankCallback

    tok = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    model = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"], dtype=torch.float32)
    trainer = FakeTrainer(tok)
    DiffErankCallback(trainer, TEXTS[2:], every_n_steps=1, m0_seed=2, m0_twins=2).on_train_begin(
        None, FakeTrainerState(), None, model=model)
    logged = trainer.logged
    expected = diff_erank(model, tok, TEXTS[2:], m0_seed=2, m0_twins=2)
    assert logged[0]["erank/diff_erank"] == pytest.approx(expected.diff_erank(), rel=1e-9)
    assert logged[0]["erank/erank_m0_twin_sd"] == pytest.approx(expected.erank_m0_twin_sd(), rel=1e-9)
    with pytest.raises(ValueError, match="m0_twins"):
        DiffErankCallback(trainer, TEXTS[2:], m0_twins=0)


def test_scripts_pass_twins_on_and_mark_single_twin_results(tmp_path, capsys):
    from .test_scripts import dry_run, markdown_tables

    out, _ = dry_run(capsys, "--models", "opt-125m=/m/a", "--tasks", "erank_piqa", "--m0-twins", "3")
    assert "m0_twins=3" in out
    out, _ = dry_run(capsys, "--models", "opt-125m=/m/a", "--tasks", "erank_piqa")
    assert "m0_twins" not in out  # one twin: the command is today's
    from lm_eval_erank.compare import report  # lm-eval-erank compare (ex plot_results.py)

    row = {"diff_erank,none": 2.0, "diff_erank_stderr,none": 0.3}
    paths = []
    for name, config in (("one", {"erank_m0_seed": 1}), ("three", {"erank_m0_seed": 1, "erank_m0_twins": 3})):
        path = tmp_path / name / "results_2026-01-01T00-00-00.json"
        path.parent.mkdir()
        path.write_text(json.dumps({"results": {"t": row}, "config": {"model_num_parameters": 10, **config},
                                    "model_name": name}))
        paths.append(path)
    comparison = report.compare(paths, labels=["one", "three"])
    assert [r.twins for r in comparison.runs] == [1, 3]
    table = report.table_markdown(comparison) + report.table_legend(comparison)
    assert [r["twins"] for r in markdown_tables(table)[""]] == ["1", "3"]
    assert "twins 1: one random twin" in table


def test_sample_writer_adds_the_erank_response_as_json(tmp_path):
    register()
    from lm_eval.loggers.evaluation_tracker import EvaluationTracker

    response = {"entropy_m1": 2.5, "entropy_m0": 2.75, "loss_m1": 4.0, "loss_m0": 6.0, "n_tokens": 9,
                "truncated": False, "layers": {1: {"entropy_m1": 2.0, "entropy_m0": 2.25}}}
    sample = {"doc_id": 0, "doc": {}, "target": 0, "arguments": [("ctx", " a"), ("text",)],
              "resps": [[(-1.0, False)], [response]], "filtered_resps": [(-1.0, False), response]}
    tracker = EvaluationTracker(output_path=str(tmp_path))
    tracker.date_id = "2026-01-01T00-00-00"  # set by save_results_aggregated in a run
    tracker.general_config_tracker.model_name_sanitized = "m"
    tracker.save_results_samples("t", [sample])
    written = json.loads(next(tmp_path.rglob("samples_t_*.jsonl")).read_text())
    assert isinstance(written["resps"][1][0], str)  # lm-eval's repr string
    assert written["erank_response"] == {**response, "layers": {"1": {"entropy_m1": 2.0, "entropy_m0": 2.25}}}


def test_twin_spread_script_runs(tmp_path):
    from .conftest import SHARED_DATA
    from .test_scripts import load_script

    if not (SHARED_DATA / "hf_schema" / "piqa_validation.jsonl").is_file():
        pytest.skip("needs the real PIQA data in ../shared/data")
    script = load_script("twin_spread")
    out = tmp_path / "spread.json"
    assert script.main(["--shapes", "small", "--twins", "2", "--texts", "6,12", "--bootstrap-iters", "200",
                        "--cache", str(tmp_path / "cache"), "--out", str(out)]) == 0
    shape = json.loads(out.read_text())["shapes"][0]
    assert [r["texts"] for r in shape["rows"]] == [6, 12] and shape["seeds"] == [0, 1]
    row = shape["rows"][1]
    assert row["twin_sd"] == pytest.approx(np.std(row["erank_m0_per_twin"], ddof=1), abs=1e-3)
    assert row["k_twin_stderr"] ** 2 == pytest.approx(row["k_twin_stderr_text_part"] ** 2
                                                      + row["k_twin_stderr_twin_part"] ** 2, rel=1e-9)
