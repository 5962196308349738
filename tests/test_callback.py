"""DiffErankCallback: Diff-eRank logged through the Trainer every N steps, M0 computed once."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

from lm_eval_erank import diff_erank
from lm_eval_erank import callback as callback_module
from lm_eval_erank.callback import DiffErankCallback
from lm_eval_erank.core import twin_provider
from lm_eval_erank.testing import tiny

from .conftest import FakeTrainer, FakeTrainerState

HELD_OUT = tiny.gold_texts()[:8]


class _Texts(torch.utils.data.Dataset):
    def __init__(self, tokenizer, texts):
        self.rows = [tokenizer(t, truncation=True, max_length=64)["input_ids"] for t in texts]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return {"input_ids": self.rows[i]}


def _collate(pad_id):
    def collate(rows):
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), pad_id)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
            mask[i, : len(r["input_ids"])] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}

    return collate


def test_callback_logs_every_n_steps_and_computes_m0_once(tiny_models, tmp_path, monkeypatch):
    tok = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"]).config)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=4, learning_rate=3e-3,
                             logging_steps=3, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=_Texts(tok, tiny.gold_texts()),
                      data_collator=_collate(tok.pad_token_id), processing_class=tok)
    m0_builds = []
    real_make_twins = callback_module.make_twins

    def counting_make_twins(*a, **k):
        m0_builds.append(1)
        return real_make_twins(*a, **k)

    monkeypatch.setattr(callback_module, "make_twins", counting_make_twins)
    cb = DiffErankCallback(trainer, HELD_OUT, every_n_steps=3, m0_seed=11, layers="all")
    trainer.add_callback(cb)
    trainer.train()

    assert [step for step, _ in cb.history] == [0, 3, 6]
    assert len(m0_builds) == 1  # M0's side computed once per run
    logged = [h for h in trainer.state.log_history if "erank/diff_erank" in h]
    assert len(logged) == 3
    # The Trainer's own loss logs at the same steps survive the callback's log (logging_steps = 3)
    assert [h["step"] for h in trainer.state.log_history if "loss" in h] == [3, 6]
    for entry in logged:
        assert {"erank/erank_m1", "erank/erank_m0", "erank/erank_ratio", "erank/reduced_loss", "erank/diff_erank_layer0"} <= set(entry)
    assert len({h["erank/erank_m0"] for h in logged}) == 1  # M0 does not change
    assert logged[0]["erank/erank_m1"] != logged[-1]["erank/erank_m1"]  # M1 does
    # The last logged value equals a fresh computation on the trained model.
    fresh = diff_erank(model, tok, HELD_OUT, m0_seed=11, layers="all")
    assert logged[-1]["erank/diff_erank"] == pytest.approx(fresh.diff_erank(), rel=1e-6)


def test_callback_rejects_bad_arguments(tiny_models):
    trainer = FakeTrainer(AutoTokenizer.from_pretrained(tiny_models["gpt2"]))
    with pytest.raises(ValueError, match="every_n_steps"):
        DiffErankCallback(trainer, HELD_OUT, every_n_steps=0)
    with pytest.raises(ValueError, match="held-out"):
        DiffErankCallback(trainer, [], every_n_steps=5)


def test_callback_without_losses_logs_erank_values_only(tiny_models):
    tok = AutoTokenizer.from_pretrained(tiny_models["opt"])
    model = AutoModelForCausalLM.from_pretrained(tiny_models["opt"], dtype=torch.float32)
    trainer = FakeTrainer(tok)
    cb = DiffErankCallback(trainer, HELD_OUT, every_n_steps=1, m0_seed=2, losses=False)
    cb.on_train_begin(None, FakeTrainerState(), None, model=model)
    logged = trainer.logged
    assert set(logged[0]) == {"erank/diff_erank", "erank/erank_m1", "erank/erank_m0", "erank/erank_ratio"}
    assert logged[0]["erank/diff_erank"] == pytest.approx(diff_erank(model, tok, HELD_OUT, m0_seed=2).diff_erank(), rel=1e-9)


def test_the_callback_measures_exactly_what_diff_erank_measures(tiny_models, monkeypatch):
    """Same model, texts, seed and options: every logged value is ``diff_erank``'s, to the bit, at
    the first evaluation and at a later one after M1 changed, whose M0 statistics are the ones kept
    from the first (no twin built again)."""
    tok = AutoTokenizer.from_pretrained(tiny_models["llama"])
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=torch.float32)
    options = {"m0_seed": 3, "m0_twins": 2, "layers": "all", "skip_first_tokens": 1, "batch_size": 3}
    trainer, state = FakeTrainer(tok), FakeTrainerState()
    cb = DiffErankCallback(trainer, HELD_OUT, every_n_steps=1, m0_cache="off", progress=False, **options)
    built = []
    real_build = twin_provider.build_random_twin
    monkeypatch.setattr(twin_provider, "build_random_twin", lambda *a, **k: built.append(a[1]) or real_build(*a, **k))
    expected = []
    cb.on_train_begin(None, state, None, model=model)
    assert built == [3, 4]
    expected.append(diff_erank(model, tok, HELD_OUT, m0_cache=None, progress=False, **options).summary())
    with torch.no_grad():  # M1 moves on; M0 must not
        for parameter in model.parameters():
            parameter.mul_(0.9)
    state.global_step = 1
    cb.on_step_end(None, state, None, model=model)
    assert built == [3, 4, 3, 4]  # diff_erank's twins; the callback's second evaluation built none
    expected.append(diff_erank(model, tok, HELD_OUT, m0_cache=None, progress=False, **options).summary())
    assert len(trainer.logged) == len(expected) == 2
    for logged, summary in zip(trainer.logged, expected):
        assert {"erank/diff_erank", "erank/erank_m0", "erank/erank_m0_twin_sd", "erank/reduced_loss",
                "erank/loss_m1", "erank/diff_erank_layer0"} <= set(logged)
        assert logged == {key: summary[key.removeprefix("erank/")] for key in logged}
    first, later = trainer.logged
    assert first["erank/erank_m0"] == later["erank/erank_m0"] and first["erank/erank_m1"] != later["erank/erank_m1"]
