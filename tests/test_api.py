"""The Python API, layers, the eRank ratio and M0's results cache."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_eval_erank import api, diff_erank
from lm_eval_erank.core import measure, twin_provider
from lm_eval_erank.core.m0_cache import M0Cache, model_key
from lm_eval_erank.harness.model import ErankHFLM
from lm_eval_erank.harness.activation import register
from lm_eval_erank.core.checks import parse_layers
from lm_eval_erank.core.spectral import matrix_entropy
from lm_eval_erank.core.twin import build_random_twin
from lm_eval_erank.testing import tiny

from .conftest import ARCHS, LOCAL_ERANK_TASKS, model_args, run_cli

TEXTS = tiny.gold_texts()


@pytest.fixture(scope="module")
def loaded(tiny_models):
    return {
        arch: (AutoModelForCausalLM.from_pretrained(tiny_models[arch], dtype=torch.float32).eval(),
               AutoTokenizer.from_pretrained(tiny_models[arch]))
        for arch in ARCHS
    }


def test_api_equals_harness_per_text_values(loaded, tiny_models):
    model, tok = loaded["llama"]
    result = diff_erank(model, tok, TEXTS, m0_seed=9, batch_size=5)
    register()
    lm = ErankHFLM(pretrained=str(tiny_models["llama"]), dtype="float32", device="cpu", m0_seed=9, m0_cache="off",
                   batch_size=5)
    from lm_eval.api.instance import Instance

    harness = lm.erank([Instance("erank", {}, (t,), 0, metadata=("t", i, 1)) for i, t in enumerate(TEXTS)])
    api_rows = result.per_text()
    for a, h in zip(api_rows, harness):
        for key in ("entropy_m1", "entropy_m0", "loss_m1", "loss_m0", "n_tokens", "truncated"):
            assert a[key] == pytest.approx(h[key], abs=1e-9), key
    assert result.m0_checksum == lm.m0_checksum


def test_dataset_values_follow_the_definitions(loaded):
    model, tok = loaded["gpt2"]
    result = diff_erank(model, tok, ["", "a"] + TEXTS, m0_seed=1)
    h1 = result.entropy_m1[result.last_layer][2:]
    h0 = result.entropy_m0[result.last_layer][2:]
    assert result.excluded == 2
    assert result.erank_m1() == pytest.approx(math.exp(float(h1.mean())), rel=1e-12)
    assert result.diff_erank() == pytest.approx(math.exp(float(h0.mean())) - math.exp(float(h1.mean())), rel=1e-12)
    assert result.diff_erank_b() == pytest.approx(float((h0.exp() - h1.exp()).mean()), rel=1e-12)
    assert result.erank_ratio() == pytest.approx(result.erank_m1() / result.erank_m0(), rel=1e-12)
    reduced = (result.loss_m0 - result.loss_m1)[1:]  # "a" has 1 token: no loss; "" neither
    assert result.reduced_loss() == pytest.approx(float(reduced[~torch.isnan(reduced)].mean()), rel=1e-12)
    summary = result.summary()
    assert summary["texts"] == len(TEXTS) + 2 and summary["erank_excluded"] == 2
    assert result.per_text()[0]["entropy_m1"] is None


def test_api_reuses_a_given_twin_and_restores_training_mode(loaded):
    model, tok = loaded["opt"]
    twin = build_random_twin(model, 3)
    model.train()
    a = diff_erank(model, tok, TEXTS[:5], m0=twin)
    assert model.training
    model.eval()
    b = diff_erank(model, tok, TEXTS[:5], m0_seed=3)
    assert torch.equal(a.entropy_m0[a.last_layer], b.entropy_m0[b.last_layer])


@pytest.mark.parametrize("arch", ARCHS)
def test_layers_come_from_one_forward_and_match_hidden_states(loaded, arch):
    model, tok = loaded[arch]
    result = diff_erank(model, tok, TEXTS[:6], layers="all", m0_seed=2)
    n_layers = model.config.num_hidden_layers
    assert result.layers == tuple(range(n_layers + 1)) and result.last_layer == n_layers
    for i, text in enumerate(TEXTS[:6]):
        ids = torch.tensor([tok(text)["input_ids"]])
        with torch.no_grad():
            hidden = model(ids, output_hidden_states=True).hidden_states
        for layer in range(n_layers + 1):
            expected = float(matrix_entropy(hidden[layer][0]))
            assert float(result.entropy_m1[layer][i]) == pytest.approx(expected, abs=1e-6), layer


def test_parse_layers():
    assert parse_layers("last", 24) == (24,)
    assert parse_layers("paper", 24) == (1, 12, 24)
    assert parse_layers("all", 2) == (0, 1, 2)
    assert parse_layers("12:0:24:12", 24) == (0, 12, 24)
    for bad in ("first", "1,2", "25", "-1:3", ""):
        with pytest.raises(ValueError, match="layer"):
            parse_layers(bad, 24)


def _count_text_statistics(monkeypatch) -> list[tuple[str, int]]:
    """Record (model name, number of texts) of every ``text_statistics`` call the API makes."""
    calls = []
    real = measure.text_statistics

    def counting(model_, token_ids, *args, **kwargs):
        calls.append((args[2] if len(args) > 2 else kwargs.get("model_name"), len(token_ids)))
        return real(model_, token_ids, *args, **kwargs)

    for module in (measure, twin_provider):  # M1's pass, the twins' passes
        monkeypatch.setattr(module, "text_statistics", counting)
    return calls


def test_m0_cache_serves_repeat_runs_and_only_computes_missing_texts(loaded, tmp_path, monkeypatch):
    model, tok = loaded["gpt2"]
    first = diff_erank(model, tok, TEXTS[:8], m0_seed=5, m0_cache=tmp_path, layers="paper")
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    stored = json.loads(files[0].read_text())  # plain JSON, safe to read
    assert stored["key"]["seed"] == 5 and len(stored["texts"]) == 8

    calls = _count_text_statistics(monkeypatch)
    again = diff_erank(model, tok, TEXTS[:10], m0_seed=5, m0_cache=tmp_path, layers="paper")
    assert calls == [("M1", 10), ("M0", 2)]  # M0 only for the 2 new texts
    for layer in first.layers:
        assert torch.allclose(again.entropy_m0[layer][:8], first.entropy_m0[layer], atol=0, rtol=0)
    assert again.m0_checksum == first.m0_checksum
    diff_erank(model, tok, TEXTS[:2], m0_seed=6, m0_cache=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 2  # another seed, another key


def test_cache_key_covers_what_m0_depends_on(loaded):
    model, _ = loaded["llama"]
    base = model_key(model.config, 1, torch.float32, "cpu")
    assert model_key(model.config, 2, torch.float32, "cpu") != base
    assert model_key(model.config, 1, torch.bfloat16, "cpu") != base
    assert model_key(model.config, 1, torch.float32, "cuda") != base
    other = model.config.__class__(**{**model.config.to_dict(), "hidden_size": 64})
    assert model_key(other, 1, torch.float32, "cpu") != base
    renamed = model.config.__class__(**{**model.config.to_dict(), "_name_or_path": "/elsewhere/checkpoint-200"})
    assert model_key(renamed, 1, torch.float32, "cpu") == base
    assert set(base["versions"]) == {"torch", "transformers", "lm_eval_erank"}


def test_a_cache_file_with_another_key_is_ignored(tmp_path, loaded):
    model, _ = loaded["gpt2"]
    key = model_key(model.config, 1, torch.float32, "cpu")
    cache = M0Cache(tmp_path, key)
    cache.store([[1, 2, 3]], torch.tensor([1.0], dtype=torch.float64), {2: torch.tensor([0.5], dtype=torch.float64)}, "x")
    data = json.loads(cache.path.read_text())
    data["key"]["seed"] = 2
    cache.path.write_text(json.dumps(data))
    _, _, hit = M0Cache(tmp_path, key).lookup([[1, 2, 3]], [2])
    assert not hit.any()


def test_harness_layers_ratio_and_cache(tiny_models, local_tasks, tmp_path):
    cache = tmp_path / "cache"
    args = ["--model", "hf-erank", "--device", "cpu", "--include_path", str(local_tasks),
            "--tasks", "local_erank", "--batch_size", "4", "--log_samples",
            "--model_args", model_args(tiny_models["opt"], layers="paper", m0_cache=cache)]
    _, first, samples = run_cli(args, tmp_path / "a")
    _, second, _ = run_cli(args, tmp_path / "b")
    for task in LOCAL_ERANK_TASKS:
        row = first["results"][task]
        # "paper" on 2 blocks: first block (1), middle (2 // 2 = 1), last (2 = unsuffixed).
        for metric in ("diff_erank_layer1", "erank_m1_layer1", "erank_m0_layer1"):
            assert math.isfinite(row[f"{metric},none"]) and math.isfinite(row[f"{metric}_stderr,none"])
        assert "diff_erank_layer2,none" not in row  # the last layer is the unsuffixed metric
        assert row["erank_ratio,none"] == pytest.approx(row["erank_m1,none"] / row["erank_m0,none"], rel=1e-12)
        assert second["results"][task] == row  # from M0's cache, identical
    assert first["config"]["erank_layers"] == [1, 2] and first["config"]["erank_last_layer"] == 2
    assert first["config"]["erank_m0_cache"].startswith(str(cache))
    assert first["higher_is_better"]["local_erank_piqa"]["erank_ratio"] is False
    sample = samples["local_erank_piqa"][0]
    assert len(sample["diff_erank_layer1"]) == 2 and isinstance(sample["erank_m1_layer1"], float)


def test_importing_the_package_does_not_import_lm_eval():
    import subprocess
    import sys

    code = "import sys, lm_eval_erank; assert 'lm_eval' not in sys.modules, 'lm_eval imported'; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


def test_losses_off_skips_the_lm_head_and_leaves_erank_values_unchanged(loaded, monkeypatch):
    from lm_eval_erank.core import representations

    model, tok = loaded["gpt2"]
    full = diff_erank(model, tok, TEXTS, m0_seed=4, layers="paper")
    head_calls = []
    real = representations.head_losses
    monkeypatch.setattr(representations, "head_losses", lambda *a, **k: head_calls.append(1) or real(*a, **k))
    lean = diff_erank(model, tok, TEXTS, m0_seed=4, layers="paper", losses=False)
    assert head_calls == []
    assert lean.loss_m1 is None and lean.loss_m0 is None and not lean.has_losses
    for layer in full.layers:
        assert torch.equal(lean.entropy_m1[layer], full.entropy_m1[layer])
        assert torch.equal(lean.entropy_m0[layer], full.entropy_m0[layer])
    summary = lean.summary()
    assert not {"reduced_loss", "loss_m1", "loss_m0"} & set(summary)
    assert summary["diff_erank"] == full.summary()["diff_erank"]
    assert "loss_m1" not in lean.per_text()[0] and "loss_m1" in full.per_text()[0]
    with pytest.raises(ValueError, match="losses=False"):
        lean.reduced_loss()


def test_m0_cache_without_losses_does_not_serve_a_run_that_needs_them(loaded, tmp_path, monkeypatch):
    model, tok = loaded["llama"]
    lean = diff_erank(model, tok, TEXTS[:6], m0_seed=5, m0_cache=tmp_path, losses=False)
    calls = _count_text_statistics(monkeypatch)
    full = diff_erank(model, tok, TEXTS[:6], m0_seed=5, m0_cache=tmp_path)
    assert calls == [("M1", 6), ("M0", 6)]  # the stored entries have no loss: recomputed
    assert torch.equal(full.entropy_m0[full.last_layer], lean.entropy_m0[lean.last_layer])
    calls.clear()
    again_lean = diff_erank(model, tok, TEXTS[:6], m0_seed=5, m0_cache=tmp_path, losses=False)
    again_full = diff_erank(model, tok, TEXTS[:6], m0_seed=5, m0_cache=tmp_path)
    assert calls == [("M1", 6), ("M1", 6)]  # both served by the cache now
    assert torch.equal(again_full.loss_m0, full.loss_m0) and again_lean.loss_m0 is None


def test_harness_with_losses_off_reports_erank_metrics_without_loss_metrics(tiny_models, local_tasks, tmp_path):
    common = ["--model", "hf-erank", "--device", "cpu", "--include_path", str(local_tasks),
              "--tasks", "local_erank", "--batch_size", "4", "--log_samples"]
    _, full, _ = run_cli(common + ["--model_args", model_args(tiny_models["gpt2"], m0_seed=3)], tmp_path / "a")
    _, lean, samples = run_cli(common + ["--model_args", model_args(tiny_models["gpt2"], m0_seed=3, losses="false")],
                               tmp_path / "b")
    assert lean["config"]["erank_losses"] is False and full["config"]["erank_losses"] is True
    loss_keys = {"reduced_loss,none", "loss_m1,none", "loss_m0,none"}
    for task in [*LOCAL_ERANK_TASKS, "local_erank"]:
        assert loss_keys <= set(full["results"][task])
        assert not loss_keys & set(lean["results"][task]), task
        for metric in ("diff_erank,none", "erank_m1,none", "erank_m0,none", "acc,none"):
            assert lean["results"][task][metric] == full["results"][task][metric], (task, metric)
    assert "reduced_loss" not in samples["local_erank_piqa"][0]


def test_losses_argument_must_be_a_boolean(tiny_models):
    register()
    with pytest.raises(ValueError, match="losses must be true or false"):
        ErankHFLM(pretrained=str(tiny_models["gpt2"]), device="cpu", m0_cache="off", losses="sometimes")


def test_harness_with_m0_swap_equals_the_default_run(tiny_models, local_tasks, tmp_path):
    common = ["--model", "hf-erank", "--device", "cpu", "--include_path", str(local_tasks),
              "--tasks", "local_erank_piqa", "--batch_size", "4", "--limit", "6"]
    _, both, _ = run_cli(common + ["--model_args", model_args(tiny_models["llama"], m0_seed=8)], tmp_path / "a")
    _, swap, _ = run_cli(common + ["--model_args", model_args(tiny_models["llama"], m0_seed=8, m0_swap="true")],
                         tmp_path / "b")
    assert swap["config"]["erank_m0_swap"] is True
    assert swap["config"]["erank_m0_checksum"] == both["config"]["erank_m0_checksum"]
    assert swap["results"]["local_erank_piqa"] == both["results"]["local_erank_piqa"]


def test_swapping_twin_needs_m1_on_one_device(loaded):
    model, _ = loaded["gpt2"]
    model.hf_device_map = {"transformer.h.0": 0, "transformer.h.1": 1}
    try:
        with pytest.raises(ValueError, match="parallelize=True"):
            api.TwinProvider(model, 1, swap=True)
    finally:
        del model.hf_device_map
    with pytest.raises(ValueError, match="m0_device"):
        api.TwinProvider(model, 1, device="cpu", swap=True)
