"""One batched forward: per-text entropy of the LM head's input and mean token loss."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_eval_erank.core.representations import (
    NonFiniteModelOutputError,
    base_model_gives_lm_head_input,
    head_losses,
    length_sorted_batches,
    pad_right,
    text_statistics,
    token_losses,
)
from lm_eval_erank.core.spectral import matrix_entropy
from lm_eval_erank.testing import tiny

from .conftest import ARCHS


@pytest.fixture(scope="module")
def loaded(tiny_models):
    out = {}
    for arch in ARCHS:
        tok = AutoTokenizer.from_pretrained(tiny_models[arch])
        model = AutoModelForCausalLM.from_pretrained(tiny_models[arch], dtype=torch.float32).eval()
        ids = [tok(t)["input_ids"] for t in tiny.gold_texts()]
        out[arch] = (model, ids, tok.pad_token_id)
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_matches_unbatched_hidden_states_and_hf_loss(loaded, arch):
    model, ids, pad = loaded[arch]
    stats = text_statistics(model, ids, batch_size=8, pad_id=pad)
    for i in range(0, len(ids), 5):
        x = torch.tensor([ids[i]])
        with torch.no_grad():
            out = model(x, labels=x, output_hidden_states=True)
        assert float(stats.entropy[i]) == pytest.approx(float(matrix_entropy(out.hidden_states[-1][0])), abs=1e-6)
        assert float(stats.loss[i]) == pytest.approx(float(out.loss), abs=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_independent_of_batch_size_and_batch_companions(loaded, arch):
    model, ids, pad = loaded[arch]
    reference = text_statistics(model, ids, batch_size=1, pad_id=pad)
    order = list(range(len(ids)))
    random.Random(0).shuffle(order)
    for batch_size in (3, 16):
        shuffled = text_statistics(model, [ids[i] for i in order], batch_size=batch_size, pad_id=pad)
        back = torch.empty_like(shuffled.entropy)
        back[torch.tensor(order)] = shuffled.entropy
        assert torch.allclose(back, reference.entropy, atol=1e-6, rtol=0)
        back[torch.tensor(order)] = shuffled.loss
        assert torch.allclose(back, reference.loss, atol=1e-6, rtol=0)


def test_pad_id_does_not_matter(loaded):
    model, ids, _ = loaded["gpt2"]
    a = text_statistics(model, ids, batch_size=8, pad_id=0)
    b = text_statistics(model, ids, batch_size=8, pad_id=5)
    assert torch.allclose(a.entropy, b.entropy, atol=1e-6) and torch.allclose(a.loss, b.loss, atol=1e-6)


def test_short_texts_are_undefined_not_errors(loaded):
    model, ids, pad = loaded["gpt2"]
    stats = text_statistics(model, [ids[0], [], ids[0][:1], ids[0][:2]], batch_size=4, pad_id=pad)
    assert torch.isnan(stats.entropy[1:3]).all() and torch.isnan(stats.loss[1:3]).all()
    assert float(torch.exp(stats.entropy[3])) == pytest.approx(1.0, abs=1e-12)
    assert torch.isfinite(stats.loss[3]) and torch.isfinite(stats.entropy[0])


def test_non_finite_states_name_text_and_model(loaded):
    model, ids, pad = loaded["llama"]
    bad_text = 3
    batches = length_sorted_batches([len(t) for t in ids[:6]], 6)
    target_batch = next(b for b, batch in enumerate(batches) if bad_text in batch)
    base_model_gives_lm_head_input(model)  # the one-off probe forward happens before the hook
    calls = []

    def poison(_module, _args, output):
        calls.append(1)
        if len(calls) - 1 != target_batch:
            return output
        output = output.clone()
        output[batches[target_batch].index(bad_text), 0, 0] = float("inf")
        return output

    handle = model.model.norm.register_forward_hook(poison)
    try:
        with pytest.raises(NonFiniteModelOutputError, match=r"M0 produced non-finite hidden states for text 3 .*dtype=bfloat16"):
            text_statistics(model, ids[:6], batch_size=6, pad_id=pad, model_name="M0")
    finally:
        handle.remove()


def test_token_losses_chunking_matches_direct():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 7, 11, generator=g)
    ids = torch.randint(0, 11, (5, 7), generator=g)
    mask = torch.ones(5, 7, dtype=torch.bool)
    mask[2, 4:] = False
    mask[4, 1:] = False
    got = token_losses(logits, ids, mask)
    for row in range(4):
        n = int(mask[row].sum())
        want = torch.nn.functional.cross_entropy(logits[row, : n - 1], ids[row, 1:n])
        assert float(got[row]) == pytest.approx(float(want), abs=1e-6)
    assert torch.isnan(got[4])


def test_length_sorted_batches_cover_every_index_once():
    lengths = [3, 9, 1, 9, 4, 7, 2, 2, 2, 2, 40]
    batches = length_sorted_batches(lengths, 4)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    budget = 4 * sorted(lengths)[len(lengths) // 2]
    for b in batches:
        assert len(b) <= 4 and (len(b) == 1 or len(b) * lengths[b[0]] <= budget)
    assert batches[0] == [10]  # the long outlier does not pad three others to 40 tokens
    assert length_sorted_batches([], 4) == []
    with pytest.raises(ValueError):
        length_sorted_batches(lengths, 0)


@pytest.mark.parametrize("arch", ARCHS)
def test_fast_path_is_detected_and_equals_the_full_forward(loaded, arch):
    model, ids, pad = loaded[arch]
    assert base_model_gives_lm_head_input(model)
    input_ids, mask = pad_right(ids[:8], pad, "cpu")
    with torch.no_grad():
        full = model(input_ids=input_ids, attention_mask=mask.long())
        hidden = model.base_model(input_ids=input_ids, attention_mask=mask.long()).last_hidden_state
    expected = token_losses(full.logits, input_ids, mask)
    got = head_losses(model.get_output_embeddings(), hidden, input_ids, mask)
    assert torch.allclose(got, expected, atol=1e-6, rtol=0)


def test_models_that_post_process_logits_take_the_full_path(tiny_models, loaded):
    from transformers import GPT2LMHeadModel

    class ScaledLogits(GPT2LMHeadModel):
        def forward(self, *args, **kwargs):
            out = super().forward(*args, **kwargs)
            out.logits = out.logits * 0.5
            return out

    model = ScaledLogits.from_pretrained(tiny_models["gpt2"]).eval()
    _, ids, pad = loaded["gpt2"]
    assert not base_model_gives_lm_head_input(model)
    stats = text_statistics(model, ids[:4], batch_size=4, pad_id=pad)
    for i in range(4):
        x = torch.tensor([ids[i]])
        with torch.no_grad():
            logits = model(x).logits
        want = torch.nn.functional.cross_entropy(logits[0, :-1], x[0, 1:])
        assert float(stats.loss[i]) == pytest.approx(float(want), abs=1e-5)
    lean = text_statistics(model, ids[:4], batch_size=4, pad_id=pad, losses=False)
    assert lean.loss is None and torch.equal(lean.entropy, stats.entropy)
