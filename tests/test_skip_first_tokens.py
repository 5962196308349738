"""``skip_first_tokens=k``: the first k positions of every text left out of the eRank statistics
(default 0, the paper's), the same in the core, the API, the M0 cache and ``hf-erank``."""

from __future__ import annotations

import math

import pytest
import torch
from lm_eval.api.instance import Instance
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_eval_erank import diff_erank
from lm_eval_erank.core.representations import text_statistics
from lm_eval_erank.core.spectral import matrix_entropy
from lm_eval_erank.harness.activation import register
from lm_eval_erank.harness.model import ErankHFLM
from lm_eval_erank.testing import tiny

TEXTS = tiny.gold_texts()[:10]


@pytest.fixture(scope="module")
def llama(tiny_models):
    tok = AutoTokenizer.from_pretrained(tiny_models["llama"])  # prepends BOS: the first position is BOS
    return AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=torch.float32).eval(), tok


def test_the_entropies_leave_the_first_positions_out_and_the_losses_keep_them(llama):
    model, tok = llama
    ids = [tok(t)["input_ids"] for t in TEXTS]
    full = text_statistics(model, ids, 4, tok.pad_token_id, layers=[0, 1])
    for k in (1, 3):
        skipped = text_statistics(model, ids, 4, tok.pad_token_id, layers=[0, 1], skip_first_tokens=k)
        assert torch.equal(skipped.loss, full.loss)
        for i, seq in enumerate(ids):
            with torch.no_grad():
                hidden = model(torch.tensor([seq]), output_hidden_states=True).hidden_states
            for layer in (0, 1, 2):
                reference = float(matrix_entropy(hidden[layer][0, k:]))  # the rows after the first k
                assert float(skipped.layer_entropy[layer][i]) == pytest.approx(reference, abs=1e-6), (k, i, layer)
        assert not torch.allclose(skipped.entropy, full.entropy)


def test_the_api_counts_texts_too_short_and_keeps_both_in_one_cache(llama, tmp_path):
    model, tok = llama
    texts = [*TEXTS, "a"]  # BOS + one token: an eRank only without skipping
    plain = diff_erank(model, tok, texts, m0_seed=3, m0_cache=tmp_path, progress=False)
    skipped = diff_erank(model, tok, texts, m0_seed=3, m0_cache=tmp_path, progress=False, skip_first_tokens=1)
    assert plain.excluded == 0 and skipped.excluded == 1 and skipped.per_text()[-1]["entropy_m1"] is None
    assert len(list(tmp_path.glob("*.json"))) == 1  # one twin, one file: entries for both settings
    again = diff_erank(model, tok, texts, m0_seed=3, m0_cache=tmp_path, progress=False, skip_first_tokens=1)
    fresh = diff_erank(model, tok, texts, m0_seed=3, m0_cache=None, progress=False, skip_first_tokens=1)
    assert again.summary() == pytest.approx(fresh.summary(), rel=1e-6, nan_ok=True)
    assert again.erank_m0() != plain.erank_m0()
    with pytest.raises(ValueError, match="skip_first_tokens must be an integer >= 0"):
        diff_erank(model, tok, texts, m0_cache=None, skip_first_tokens=-1)


def test_hf_erank_takes_it_as_a_model_argument(tiny_models, llama):
    register()
    model, tok = llama
    lm = ErankHFLM(pretrained=str(tiny_models["llama"]), dtype="float32", device="cpu", batch_size=4, m0_seed=3,
                   m0_cache="off", skip_first_tokens="1")
    requests = [Instance("erank", {}, (t,), 0, metadata=("t", i, 1)) for i, t in enumerate(TEXTS)]
    rows = lm.erank(requests)
    api = diff_erank(model, tok, TEXTS, m0_seed=3, m0_cache=None, progress=False, skip_first_tokens=1).per_text()
    for row, expected in zip(rows, api):
        assert row["entropy_m1"] == pytest.approx(expected["entropy_m1"], abs=1e-6)
        assert row["entropy_m0"] == pytest.approx(expected["entropy_m0"], abs=1e-6)
    assert lm.get_model_info()["erank_skip_first_tokens"] == 1
    assert all(math.isfinite(r["entropy_m1"]) for r in rows)
    with pytest.raises(ValueError, match="skip_first_tokens must be an integer >= 0"):
        ErankHFLM(pretrained=str(tiny_models["llama"]), device="cpu", m0_cache="off", skip_first_tokens="first")
