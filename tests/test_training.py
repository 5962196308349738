"""A real training workflow: M0's cache serves every Trainer checkpoint of an architecture, the
callback uses the cache, and long evaluations show their progress."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

from lm_eval_erank import diff_erank
from lm_eval_erank.callback import DiffErankCallback
from lm_eval_erank.core import twin_provider
from lm_eval_erank.core.m0_cache import KEY_VERSION, RUNTIME_ONLY_FIELDS, model_key
from lm_eval_erank.testing import tiny

from .conftest import FakeTrainer, FakeTrainerState
from .test_callback import _collate, _Texts

TEXTS = tiny.gold_texts()[:8]


def _count_builds(monkeypatch) -> list[int]:
    built = []
    real = twin_provider.build_random_twin
    monkeypatch.setattr(twin_provider, "build_random_twin", lambda *a, **k: built.append(a[1]) or real(*a, **k))
    return built


@pytest.fixture(scope="module")
def checkpoint(tiny_models, tmp_path_factory):
    """(the parent model's directory, a checkpoint ``transformers.Trainer`` saved from it, the tokenizer)."""
    tok = AutoTokenizer.from_pretrained(tiny_models["llama"])
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=torch.float32)
    out = tmp_path_factory.mktemp("trainer")
    args = TrainingArguments(output_dir=str(out), max_steps=2, per_device_train_batch_size=4, learning_rate=1e-3,
                             report_to=[], save_strategy="steps", save_steps=2, use_cpu=True, disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=_Texts(tok, tiny.gold_texts()),
            data_collator=_collate(tok.pad_token_id), processing_class=tok).train()
    return tiny_models["llama"], out / "checkpoint-2", tok


def test_a_trainer_checkpoint_reuses_its_parents_m0_cache_entries(checkpoint, tmp_path, monkeypatch):
    parent_dir, checkpoint_dir, tok = checkpoint
    saved = json.loads((checkpoint_dir / "config.json").read_text())
    parent_config = json.loads((parent_dir / "config.json").read_text())
    # What makes the test bite: the checkpoint's config differs in runtime-only fields.
    differing = {k for k in set(saved) | set(parent_config) if saved.get(k) != parent_config.get(k)}
    assert differing and differing <= RUNTIME_ONLY_FIELDS, differing
    parent = AutoModelForCausalLM.from_pretrained(parent_dir, dtype=torch.float32)
    first = diff_erank(parent, tok, TEXTS, m0_seed=9, m0_cache=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.json"))) == 1
    built = _count_builds(monkeypatch)
    trained = AutoModelForCausalLM.from_pretrained(checkpoint_dir, dtype=torch.float32)
    again = diff_erank(trained, tok, TEXTS, m0_seed=9, m0_cache=tmp_path, progress=False)
    assert built == [] and len(list(tmp_path.glob("*.json"))) == 1  # every M0 value came from the parent's entry
    assert again.m0_checksum == first.m0_checksum
    assert torch.equal(again.entropy_m0[again.last_layer], first.entropy_m0[first.last_layer])
    assert again.erank_m1() != first.erank_m1()  # the checkpoint itself did change


def test_a_field_that_changes_the_twin_opens_its_own_entry(checkpoint, tmp_path):
    parent_dir, _, tok = checkpoint
    parent = AutoModelForCausalLM.from_pretrained(parent_dir, dtype=torch.float32)
    config = copy.deepcopy(parent.config)
    config.initializer_range = 0.05
    torch.manual_seed(0)
    changed = AutoModelForCausalLM.from_config(config)
    a = diff_erank(parent, tok, TEXTS, m0_seed=9, m0_cache=tmp_path, progress=False)
    b = diff_erank(changed, tok, TEXTS, m0_seed=9, m0_cache=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.json"))) == 2
    assert a.m0_checksum != b.m0_checksum  # the field does change M0, so the entries must differ


def test_the_key_ignores_runtime_fields_and_keeps_architectural_ones(tiny_models):
    config = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"]).config
    key = model_key(config, 1, torch.float32, "cpu")
    assert key["key_version"] == KEY_VERSION
    runtime = copy.deepcopy(config)
    runtime.use_cache, runtime.output_hidden_states, runtime._name_or_path = False, True, "/elsewhere/checkpoint-9"
    runtime.architectures = None
    assert model_key(runtime, 1, torch.float32, "cpu") == key
    for field, value in (("n_layer", config.n_layer + 1), ("n_embd", 64), ("initializer_range", 0.1),
                         ("layer_norm_epsilon", 1e-3), ("vocab_size", config.vocab_size + 1)):
        changed = copy.deepcopy(config)
        setattr(changed, field, value)
        assert model_key(changed, 1, torch.float32, "cpu") != key, field
    assert model_key(config, 2, torch.float32, "cpu") != key and model_key(config, 1, torch.bfloat16, "cpu") != key


def test_cache_files_of_the_old_key_are_ignored_cleanly(tiny_models, tmp_path):
    """A cache written before the key's version 2 (its file name hashed the whole config) is never
    opened: the run computes M0 and writes a file of the new key beside it."""
    tok = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    model = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"], dtype=torch.float32)
    old = tmp_path / ("0" * 64 + ".json")
    stale = json.dumps({"key": {"architecture": {}, "seed": 3}, "m0_checksum": "x", "texts": {}})
    old.write_text(stale)
    result = diff_erank(model, tok, TEXTS, m0_seed=3, m0_cache=tmp_path, progress=False)
    fresh = diff_erank(model, tok, TEXTS, m0_seed=3, m0_cache=None, progress=False)
    assert result.summary() == fresh.summary()
    assert old.read_text() == stale and len(list(tmp_path.glob("*.json"))) == 2


def test_the_callback_uses_the_m0_cache_so_a_restarted_run_builds_no_twin(tiny_models, tmp_path, monkeypatch):
    tok = AutoTokenizer.from_pretrained(tiny_models["opt"])
    model = AutoModelForCausalLM.from_pretrained(tiny_models["opt"], dtype=torch.float32)
    first = DiffErankCallback(FakeTrainer(tok), TEXTS, every_n_steps=1, m0_seed=4, m0_twins=2, m0_cache=tmp_path,
                              progress=False)
    first.on_train_begin(None, FakeTrainerState(), None, model=model)
    assert len(list(tmp_path.glob("*.json"))) == 2  # one entry per twin
    built = _count_builds(monkeypatch)
    restarted = DiffErankCallback(FakeTrainer(tok), TEXTS, every_n_steps=1, m0_seed=4, m0_twins=2, m0_cache=tmp_path,
                                  progress=False)
    restarted.on_train_begin(None, FakeTrainerState(), None, model=model)
    assert built == [] and restarted.history == first.history
    off = DiffErankCallback(FakeTrainer(tok), TEXTS, every_n_steps=1, m0_seed=4, m0_twins=2, m0_cache="off",
                            progress=False)
    off.on_train_begin(None, FakeTrainerState(), None, model=model)
    assert built == [4, 5] and off.history == first.history  # computed again, identically


def test_long_evaluations_show_their_progress(tiny_models, capsys):
    tok = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    model = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"], dtype=torch.float32)
    diff_erank(model, tok, TEXTS, m0_seed=2, m0_cache=None, m0_twins=2)
    bar = capsys.readouterr().err
    assert "Diff-eRank, M1" in bar and "Diff-eRank, M0 seed 2 (twin 1/2)" in bar and "Diff-eRank, M0 seed 3 (twin 2/2)" in bar
    diff_erank(model, tok, TEXTS, m0_seed=2, m0_cache=None, progress=False)
    assert "Diff-eRank" not in capsys.readouterr().err
    trainer = FakeTrainer(tok)
    callback = DiffErankCallback(trainer, TEXTS, every_n_steps=1, m0_seed=2, m0_cache=None)
    state = FakeTrainerState()
    callback.on_train_begin(None, state, None, model=model)
    state.global_step = 1
    callback.on_step_end(None, state, None, model=model)
    out = capsys.readouterr()
    lines = [line for line in out.out.splitlines() if line.startswith("DiffErankCallback")]
    assert len(lines) == 2 and "step 0: diff_erank" in lines[0] and "M0 now: 1 twin(s)" in lines[0]
    assert "step 1: diff_erank" in lines[1] and "M0 kept from the first evaluation" in lines[1]
    assert repr(trainer.logged[0]["erank/diff_erank"]) in lines[0]  # full precision, as logged
    assert "Diff-eRank at step 0, M1" in out.err
