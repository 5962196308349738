"""``m0_initializer_range``: the twins' init std instead of the config's (a GGUF file carries none),
and the warning for a model loaded from a GGUF file without it."""

from __future__ import annotations

import copy
import logging
import re

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_eval_erank import diff_erank
from lm_eval_erank.core.twin import build_random_twin, loaded_from_gguf, parameter_checksum, warn_if_gguf_init_unknown
from lm_eval_erank.harness.activation import register
from lm_eval_erank.harness.model import ErankHFLM
from lm_eval_erank.testing import tiny

TEXTS = tiny.gold_texts()[:8]


@pytest.fixture(scope="module")
def llama(tiny_models):
    return (AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(tiny_models["llama"]))


def test_the_twin_takes_the_given_init_std(llama):
    model, _ = llama
    twin = build_random_twin(model, 5, initializer_range=0.1)
    config = copy.deepcopy(model.config)
    config.initializer_range = 0.1
    with torch.random.fork_rng():
        torch.manual_seed(5)
        reference = type(model)._from_config(config, dtype=model.dtype, attn_implementation=model.config._attn_implementation)
    assert parameter_checksum(twin) == parameter_checksum(reference)
    assert twin.config.initializer_range == 0.1 and model.config.initializer_range != 0.1  # M1 untouched
    default = build_random_twin(model, 5)
    assert float(twin.model.embed_tokens.weight.std()) > 3 * float(default.model.embed_tokens.weight.std())


def test_the_api_and_hf_erank_measure_with_it_and_cache_it_apart(tiny_models, llama, tmp_path):
    model, tok = llama
    plain = diff_erank(model, tok, TEXTS, m0_seed=5, m0_cache=tmp_path, progress=False)
    wider = diff_erank(model, tok, TEXTS, m0_seed=5, m0_cache=tmp_path, progress=False, m0_initializer_range=0.1)
    assert wider.m0_checksum != plain.m0_checksum and wider.erank_m0() != plain.erank_m0()
    assert wider.erank_m1() == plain.erank_m1()
    assert len(list(tmp_path.glob("*.json"))) == 2  # the init std is part of the twin's key
    register()
    lm = ErankHFLM(pretrained=str(tiny_models["llama"]), dtype="float32", device="cpu", m0_seed=5, m0_cache="off",
                   m0_initializer_range="0.1")
    assert lm.m0_checksum == wider.m0_checksum and lm.get_model_info()["erank_m0_initializer_range"] == 0.1
    for bad in ("-1", "wide", "0"):
        with pytest.raises(ValueError, match="m0_initializer_range must be a number > 0"):
            ErankHFLM(pretrained=str(tiny_models["llama"]), device="cpu", m0_cache="off", m0_initializer_range=bad)


def test_a_gguf_loaded_model_gets_a_warning_unless_the_init_std_is_given(llama, caplog):
    model, _ = llama
    assert not loaded_from_gguf(model)
    gguf = copy.deepcopy(model)
    gguf.config.quantization_config = {"quant_method": "gguf", "gguf_file": "model.gguf"}
    assert loaded_from_gguf(gguf)
    with caplog.at_level(logging.WARNING, logger="lm_eval.erank"):
        warn_if_gguf_init_unknown(model, None)
        warn_if_gguf_init_unknown(gguf, 0.0417)
        assert not caplog.records
        warn_if_gguf_init_unknown(gguf, None)
    (record,) = caplog.records
    message = record.getMessage()
    assert "loaded from a GGUF file" in message
    # what the twin got, where the published value is, how to pass it; no other model's number
    assert "LlamaConfig's default, initializer_range=0.02" in message
    assert "published config.json" in message and "m0_initializer_range=<value>" in message
    assert re.findall(r"(?<![\w.])\d+(?:[./]\d+)?", message) == ["0.02"], message  # M0 is a name, not a number
