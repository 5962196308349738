"""The hf-erank model in process: construction, seeding, erank responses, invariances."""

from __future__ import annotations

import math

import pytest
import torch
from lm_eval.api.instance import Instance

from lm_eval_erank.harness.model import ErankHFLM
from lm_eval_erank.harness.activation import register
from lm_eval_erank.testing import tiny


def _requests(texts):
    return [Instance("erank", {}, (t,), 0, metadata=("t", i, 1)) for i, t in enumerate(texts)]


def _model(path, **kwargs):
    register()
    kwargs.setdefault("m0_cache", "off")  # compute M0 for real in every test here
    return ErankHFLM(pretrained=str(path), dtype="float32", device="cpu", **kwargs)


@pytest.fixture(scope="module")
def gpt2(tiny_models):
    return _model(tiny_models["gpt2"], batch_size=4, m0_seed=1234)


def test_default_m0_seed_is_torch_seed(tiny_models):
    torch.manual_seed(77)
    lm = _model(tiny_models["gpt2"])
    assert lm.m0_seed == 77
    assert lm.get_model_info()["erank_m0_seed"] == 77


def test_same_seed_same_results_other_seed_other_m0(tiny_models, gpt2):
    texts = tiny.gold_texts()[:6]
    again = _model(tiny_models["gpt2"], batch_size=4, m0_seed=1234)
    assert gpt2.erank(_requests(texts)) == again.erank(_requests(texts))
    other = _model(tiny_models["gpt2"], batch_size=4, m0_seed=1235)
    a, b = gpt2.erank(_requests(texts)), other.erank(_requests(texts))
    assert [r["entropy_m1"] for r in a] == [r["entropy_m1"] for r in b]
    assert all(x["entropy_m0"] != y["entropy_m0"] for x, y in zip(a, b))


@pytest.mark.parametrize("batch_size", [1, 3, 16, "auto"])
def test_results_independent_of_batch_size(tiny_models, gpt2, batch_size):
    texts = tiny.gold_texts()
    reference = gpt2.erank(_requests(texts))
    lm = _model(tiny_models["gpt2"], batch_size=batch_size, m0_seed=1234)
    other = lm.erank(_requests(texts))
    if batch_size == "auto":  # the chosen size is kept and reported (CPU: max_batch_size fits)
        assert lm.erank_auto_batch_size == lm.max_batch_size == lm.get_model_info()["erank_auto_batch_size"]
    for r, o in zip(reference, other):
        for key in ("entropy_m1", "entropy_m0", "loss_m1", "loss_m0"):
            assert o[key] == pytest.approx(r[key], abs=1e-6)
        assert o["n_tokens"] == r["n_tokens"]


def test_response_fields_and_exclusions(tiny_models):
    lm = _model(tiny_models["llama"], batch_size=4)
    bos = lm.tokenizer.bos_token_id
    results = lm.erank(_requests(["", "a", "The sun is a source of light"]))
    assert results[0]["n_tokens"] == 1  # just BOS: no eRank, no loss
    assert results[0]["entropy_m1"] is None and results[0]["loss_m0"] is None
    assert results[1]["n_tokens"] >= 2 and math.isfinite(results[1]["entropy_m1"])
    assert all(set(r) == {"entropy_m1", "entropy_m0", "loss_m1", "loss_m0", "n_tokens", "truncated"} for r in results)
    assert lm.erank_token_ids("light")[0][0] == bos


def test_long_texts_are_truncated_and_flagged(tiny_models):
    lm = _model(tiny_models["opt"], batch_size=2, max_length=16)
    long_text = " ".join(tiny.gold_texts())
    results = lm.erank(_requests([long_text, "Rain falls from clouds"]))
    assert results[0]["truncated"] and results[0]["n_tokens"] == 16
    assert not results[1]["truncated"]
    assert lm.erank_token_ids(long_text)[0] == lm.tokenizer(long_text)["input_ids"][:16]


def test_gpt2_style_tokenizer_gets_bos_only_when_asked(tiny_models):
    plain = _model(tiny_models["gpt2"])
    text = "Rain falls from clouds"
    assert plain.erank_token_ids(text)[0] == plain.tokenizer(text)["input_ids"]
    with_bos = _model(tiny_models["gpt2"], add_bos_token=True)
    ids = with_bos.erank_token_ids(text)[0]
    assert ids[0] == with_bos.tokenizer.bos_token_id and ids.count(with_bos.tokenizer.bos_token_id) == 1


def test_loglikelihood_path_is_hflm(tiny_models, gpt2):
    from lm_eval.models.huggingface import HFLM

    hf = HFLM(pretrained=str(tiny_models["gpt2"]), dtype="float32", device="cpu", batch_size=4)
    reqs = [Instance("loglikelihood", {}, ("Question: How?\nAnswer:", " Stir in ice."), 0, metadata=("t", 0, 1))]
    assert gpt2.loglikelihood(reqs) == hf.loglikelihood(reqs)


def test_impossible_m0_seed_fails_before_loading(tiny_models):
    with pytest.raises(ValueError, match="m0_seed"):
        _model(tiny_models["gpt2"], m0_seed="-3")


def test_m0_swap_gives_the_same_results_with_m0_resident_only_during_its_turn(tiny_models, gpt2):
    texts = tiny.gold_texts()
    swap = _model(tiny_models["gpt2"], batch_size=4, m0_seed=1234, m0_swap="true")
    assert not swap.twin.built  # not built at construction
    info = swap.get_model_info()
    assert info["erank_m0_swap"] is True and info["erank_m0_checksum"] is None  # unknown yet, not built for it
    assert not swap.twin.built
    assert swap.erank(_requests(texts)) == gpt2.erank(_requests(texts))
    assert not swap.twin.built  # freed after its turn
    assert swap.get_model_info()["erank_m0_checksum"] == gpt2.m0_checksum


def test_m0_swap_moves_m1_off_the_device_while_m0_runs(tiny_models, monkeypatch):
    """The choreography on an accelerator, simulated on the CPU: M1 leaves the device before M0
    is built, M0 is freed and M1 returns even when M0's pass fails."""
    import lm_eval_erank.core.twin as twin_module

    swap = _model(tiny_models["llama"], batch_size=4, m0_seed=5, m0_swap=True)
    events = []
    monkeypatch.setattr(twin_module, "model_device", lambda model: torch.device("cuda", 0))
    monkeypatch.setattr(twin_module, "empty_device_cache", lambda device: events.append(("empty", str(device))))
    monkeypatch.setattr(swap.model, "to", lambda device: events.append(("M1 to", str(device))) or swap.model)
    real_statistics = swap.twin._statistics

    def m0_statistics(*args, **kwargs):
        events.append(("M0 runs", swap.twin.built))
        result = real_statistics(*args, **kwargs)
        events.append(("M0 ran", swap.twin.built))
        return result

    monkeypatch.setattr(swap.twin, "_statistics", m0_statistics)
    swap.erank(_requests(tiny.gold_texts()[:4]))
    assert events == [("M1 to", "cpu"), ("empty", "cuda:0"), ("M0 runs", False), ("M0 ran", True),
                      ("empty", "cuda:0"), ("M1 to", "cuda:0")]
    assert not swap.twin.built

    events.clear()
    monkeypatch.setattr(swap.twin, "_statistics", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        swap.erank(_requests(tiny.gold_texts()[:4]))
    assert events[-1] == ("M1 to", "cuda:0")
    assert not swap.twin.built


def test_m0_swap_excludes_m0_device_and_auto_batch_probes_one_model(tiny_models):
    with pytest.raises(ValueError, match="m0_swap=true .* m0_device"):
        _model(tiny_models["gpt2"], m0_swap=True, m0_device="cpu")
    swap = _model(tiny_models["gpt2"], batch_size="auto", m0_swap=True, m0_seed=3)
    rows = swap.erank(_requests(tiny.gold_texts()[:5]))
    assert swap.erank_auto_batch_size == swap.max_batch_size and all(r["entropy_m0"] is not None for r in rows)
    assert not swap.twin.built
