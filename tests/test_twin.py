"""The random twin M0: architecture, seeding, dtype, placement, RNG isolation, refusals."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2Model, T5Config, T5ForConditionalGeneration

from lm_eval_erank.core.checks import check_seed as validate_seed
from lm_eval_erank.core.twin import build_random_twin

from .conftest import ARCHS


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def models(tiny_models):
    return {a: AutoModelForCausalLM.from_pretrained(tiny_models[a], dtype=torch.float32).eval() for a in ARCHS}


@pytest.mark.parametrize("arch", ARCHS)
def test_same_architecture_and_config(models, arch):
    m1 = models[arch]
    m0 = build_random_twin(m1, 5)
    assert type(m0) is type(m1)
    assert m0.config.to_dict() == m1.config.to_dict()
    assert {k: v.shape for k, v in m0.state_dict().items()} == {k: v.shape for k, v in m1.state_dict().items()}
    assert not m0.training and not any(p.requires_grad for p in m0.parameters())
    # Random, not a copy of the trained weights.
    assert any(not torch.equal(a, b) for a, b in zip(_weights(m0).values(), _weights(m1).values()))


@pytest.mark.parametrize("arch", ARCHS)
def test_same_seed_same_weights_other_seed_other_weights(models, arch):
    a, b, c = (_weights(build_random_twin(models[arch], s)) for s in (11, 11, 12))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_twin_does_not_disturb_global_rng(models):
    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)
    build_random_twin(models["gpt2"], 3)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_dtype_and_device_follow_m1(tiny_models, dtype):
    m1 = AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=dtype)
    m0 = build_random_twin(m1, 0)
    assert m0.dtype == dtype and all(p.dtype == dtype for p in m0.parameters())
    assert {p.device for p in m0.parameters()} == {next(m1.parameters()).device}


def test_encoder_decoder_refused():
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=32, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2))
    with pytest.raises(ValueError, match="decoder-only"):
        build_random_twin(t5, 0)


def test_model_without_lm_head_refused():
    base = GPT2Model(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=32, n_positions=16))
    with pytest.raises(ValueError, match="LM head"):
        build_random_twin(base, 0)


@pytest.mark.parametrize("seed", [0, "17", 2**64 - 1])
def test_valid_seeds(seed):
    assert validate_seed(seed) == int(seed)


@pytest.mark.parametrize("seed", [-1, 2**64, "abc", "1.5", 1.5, True, None])
def test_impossible_seeds_rejected(seed):
    with pytest.raises(ValueError, match="m0_seed"):
        validate_seed(seed)


def test_spans_devices_reads_the_device_map():
    from lm_eval_erank.core.twin import spans_devices

    model = torch.nn.Linear(2, 2)
    assert not spans_devices(model)
    model.hf_device_map = {"a": 0, "b": "0"}
    assert not spans_devices(model)
    model.hf_device_map = {"a": 0, "b": 1}
    assert spans_devices(model)
