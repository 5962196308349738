"""``m0_pretrained=`` (+ ``m0_revision=``): M0 loaded from a checkpoint, the model's true initial
state, instead of a random twin (issue 29, item 5).

M1 is the shared tiny Llama (``tiny.build_tiny_model`` with seed 0, then 40 training steps);
its true initial state is the same call without training, saved as a "step 0" directory. A fake
hub cache (a repository with a ``main`` and a ``step0`` revision, read offline) stands in for
Pythia's ``revision=step0``. Two ``hf-erank`` runs are shared by the tests (module-scoped): the
second (``m0_swap=true``) reads the first's M0 results from the cache.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_eval_erank import diff_erank
from lm_eval_erank.callback import DiffErankCallback
from lm_eval_erank.core import pretrained_m0, twin_provider
from lm_eval_erank.core.pretrained_m0 import M0ArchitectureError, PretrainedM0, load_pretrained_m0
from lm_eval_erank.core.twin import build_random_twin, parameter_checksum
from lm_eval_erank.harness.activation import register
from lm_eval_erank.testing import tiny

from .conftest import FakeTrainer, FakeTrainerState
from . import docs_text
from .real_model_checks import Reference

TASK, DOCS, LAYERS = "local_erank_piqa", 8, 2
TEXTS = tiny.gold_texts()[:6]
TOLERANCE = 1e-5
HUB_NAME = "erank-test/tiny-llama"  # the fake hub repository: main = M1, step0 = its initial state


# ---- the checkpoints ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def m1_dir(tiny_models) -> Path:
    return tiny_models["llama"]


@pytest.fixture(scope="module")
def step0(make_tokenizer, tmp_path_factory) -> Path:
    """M1's untrained initialisation: the shared fixture's build (arch, tokenizer, seed 0) without training."""
    directory = tmp_path_factory.mktemp("step0")
    tiny.build_tiny_model("llama", make_tokenizer(add_bos=True), directory, seed=0)
    return directory


@pytest.fixture(scope="module")
def loaded(m1_dir, step0):
    """(M1, its tokenizer, the step-0 model as a user loads it) in float32."""
    return (AutoModelForCausalLM.from_pretrained(m1_dir, dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(m1_dir),
            AutoModelForCausalLM.from_pretrained(step0, dtype=torch.float32).eval())


@pytest.fixture(scope="module")
def mismatched(make_tokenizer, step0, tmp_path_factory) -> dict[str, Path]:
    """Checkpoints M0 must be refused from: another width, another model type, a parameter missing."""
    root = tmp_path_factory.mktemp("mismatched")
    tok = make_tokenizer(add_bos=True)
    tiny.build_tiny_model("llama", tok, root / "wider", seed=0, hidden=64)
    tiny.build_tiny_model("gpt2", tok, root / "gpt2", seed=0)
    shutil.copytree(step0, root / "incomplete")
    weights = load_file(root / "incomplete" / "model.safetensors")
    del weights["model.layers.1.mlp.up_proj.weight"]
    save_file(weights, root / "incomplete" / "model.safetensors", metadata={"format": "pt"})
    return {name: root / name for name in ("wider", "gpt2", "incomplete")}


@pytest.fixture
def fake_hub(m1_dir, step0, tmp_path, monkeypatch) -> str:
    """A hub cache holding HUB_NAME with revisions main (M1) and step0 (its initial state), as the
    hub client leaves one (refs/<revision> -> snapshots/<commit>/), read offline."""
    import huggingface_hub.constants

    repository = tmp_path / "hub" / f"models--{HUB_NAME.replace('/', '--')}"
    for revision, source, commit in (("main", m1_dir, "1" * 40), ("step0", step0, "0" * 40)):
        shutil.copytree(source, repository / "snapshots" / commit)
        (repository / "refs").mkdir(exist_ok=True)
        (repository / "refs" / revision).write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    import transformers.utils.hub

    if hasattr(transformers.utils.hub, "TRANSFORMERS_CACHE"):  # transformers 4.x reads its own copy
        monkeypatch.setattr(transformers.utils.hub, "TRANSFORMERS_CACHE", str(tmp_path / "hub"))
    return HUB_NAME


# ---- the float64 reference ---------------------------------------------------------------------


def reference(model, tokenizer, text: str) -> dict:
    """{"entropy": {layer: H} for every hidden state, "loss": mean token loss} of ``text`` under ``model``, float64."""
    return Reference(model, tokenizer, range(model.config.num_hidden_layers + 1))(text)


# ---- two harness runs --------------------------------------------------------------------------


def make_lm(model_args: str):
    import lm_eval.api.registry

    register()
    return lm_eval.api.registry.get_model("hf-erank").create_from_arg_string(model_args, {"device": "cpu", "batch_size": 4})


def evaluate(lm, local_tasks) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    tasks = TaskManager(include_path=str(local_tasks), include_defaults=False)
    return lm_eval.simple_evaluate(model=lm, tasks=[TASK], task_manager=tasks, limit=DOCS, log_samples=True,
                                   bootstrap_iters=100)


def erank_samples(run: dict) -> list[tuple[str, dict]]:
    """(text fed, erank response) per doc, in doc order (the erank request is the last)."""
    docs = sorted(run["samples"][TASK], key=lambda sample: sample["doc_id"])
    return [(sample["arguments"][-1][0], sample["filtered_resps"][-1]) for sample in docs]


@pytest.fixture(scope="module")
def runs(m1_dir, step0, local_tasks, tmp_path_factory):
    """(first run, second run, their hf-erank models, whether the second had loaded M0 before its
    erank pass, the M0 cache): the second adds m0_swap=true and shares the first's cache."""
    cache = tmp_path_factory.mktemp("pretrained_m0_cache")
    args = f"pretrained={m1_dir},dtype=float32,layers=all,m0_pretrained={step0},m0_cache={cache}"
    first_lm = make_lm(args)
    first = evaluate(first_lm, local_tasks)
    second_lm = make_lm(f"{args},m0_swap=true")
    loaded_before_its_turn = second_lm.twin.built
    second = evaluate(second_lm, local_tasks)
    return first, second, (first_lm, second_lm), loaded_before_its_turn, cache


# ---- the tests ---------------------------------------------------------------------------------


def test_erank_m0_equals_a_float64_computation_on_the_step0_directory(runs, loaded):
    first, *_ = runs
    _, tokenizer, step0_model = loaded
    samples = erank_samples(first)
    assert len(samples) == DOCS
    entropies = []
    for text, response in samples:
        expected = reference(step0_model, tokenizer, text)
        assert response["entropy_m0"] == pytest.approx(expected["entropy"][LAYERS], abs=TOLERANCE), text
        assert response["loss_m0"] == pytest.approx(expected["loss"], abs=TOLERANCE), text
        for layer in range(LAYERS):  # the last layer is the unsuffixed entropy_m0
            assert response["layers"][layer]["entropy_m0"] == pytest.approx(expected["entropy"][layer], abs=TOLERANCE)
        entropies.append(expected["entropy"][LAYERS])
    row = first["results"][TASK]
    assert row["erank_m0,none"] == pytest.approx(math.exp(sum(entropies) / len(entropies)), rel=TOLERANCE)
    assert row["diff_erank,none"] == pytest.approx(row["erank_m0,none"] - row["erank_m1,none"], rel=1e-12)


def test_the_results_config_records_the_checkpoint_and_its_weights(runs, step0, loaded):
    first, second, *_ = runs
    model, _, step0_model = loaded
    config = first["config"]
    assert config["erank_m0_pretrained"] == str(step0) and config["erank_m0_revision"] is None
    assert config["erank_m0_checksum"] == parameter_checksum(step0_model)  # the directory's weights
    assert config["erank_m0_checksums"] == [config["erank_m0_checksum"]]
    assert config["erank_m0_seed"] is None and config["erank_m0_seeds"] == [None] and config["erank_m0_twins"] == 1
    assert config["erank_m0_initializer_range"] is None
    assert config["erank_m0_checksum"] != parameter_checksum(build_random_twin(model, 1234))  # not a twin draw
    assert second["config"]["erank_m0_checksum"] == config["erank_m0_checksum"]


def test_a_second_run_reads_m0_from_the_cache_and_m0_swap_loads_it_during_its_turn(runs):
    first, second, (first_lm, second_lm), loaded_before_its_turn, cache = runs
    assert first_lm.twin.cache_hits == 0 and second_lm.twin.cache_hits == DOCS
    assert len(list(cache.glob("*.json"))) == 1
    assert not loaded_before_its_turn and not second_lm.twin.built  # loaded for its turn, freed after it
    assert second["config"]["erank_m0_swap"] is True
    assert erank_samples(second) == erank_samples(first)
    numbers = {k: v for k, v in first["results"][TASK].items() if k not in ("name", "alias")}
    assert {k: v for k, v in second["results"][TASK].items() if k not in ("name", "alias")} == numbers


def test_the_cache_entry_is_keyed_by_the_weights_not_by_the_name(loaded, step0, tmp_path, monkeypatch):
    """The same weights under another name share the entry; a changed weight, or the random twin
    of the same config, opens its own."""
    model, tokenizer, _ = loaded
    computed = []
    real = twin_provider.text_statistics
    monkeypatch.setattr(twin_provider, "text_statistics",
                        lambda m, ids, *a, **k: computed.append(len(ids)) or real(m, ids, *a, **k))
    cache = tmp_path / "cache"
    copy = shutil.copytree(step0, tmp_path / "same_weights_elsewhere")
    changed = shutil.copytree(step0, tmp_path / "one_weight_changed")
    weights = load_file(changed / "model.safetensors")
    weights["model.norm.weight"] = weights["model.norm.weight"] * 1.5
    save_file(weights, changed / "model.safetensors", metadata={"format": "pt"})

    def run(**m0):
        return diff_erank(model, tokenizer, TEXTS, m0_cache=cache, progress=False, **m0)

    first = run(m0_pretrained=step0)
    assert computed == [len(TEXTS)] and len(list(cache.glob("*.json"))) == 1
    again = run(m0_pretrained=str(copy))
    assert computed == [len(TEXTS)] and len(list(cache.glob("*.json"))) == 1  # served from the cache
    assert again.m0_checksum == first.m0_checksum and again.erank_m0() == pytest.approx(first.erank_m0(), rel=1e-9)
    other = run(m0_pretrained=changed)
    assert computed == [len(TEXTS)] * 2 and len(list(cache.glob("*.json"))) == 2
    assert other.m0_checksum != first.m0_checksum
    twin = run()  # the random twin (seed 1234) of the same config
    assert computed == [len(TEXTS)] * 3 and len(list(cache.glob("*.json"))) == 3
    assert twin.m0_checksum != first.m0_checksum


def test_the_api_and_the_callback_take_the_same_options(runs, loaded, step0, fake_hub):
    model, tokenizer, step0_model = loaded
    result = diff_erank(model, tokenizer, TEXTS, m0_pretrained=step0, m0_cache=None, progress=False, layers="all")
    assert result.m0_seed is None and result.m0_checksum == parameter_checksum(step0_model)
    for i, text in enumerate(TEXTS):
        expected = reference(step0_model, tokenizer, text)
        assert float(result.entropy_m0[LAYERS][i]) == pytest.approx(expected["entropy"][LAYERS], abs=TOLERANCE)
        assert float(result.loss_m0[i]) == pytest.approx(expected["loss"], abs=TOLERANCE)
    # A hub name and a revision, as for Pythia (revision=step0): the fake hub's step0 is the same weights.
    by_revision = diff_erank(model, tokenizer, TEXTS, m0_pretrained=fake_hub, m0_revision="step0", m0_cache=None,
                             progress=False, layers="all")
    assert by_revision.m0_checksum == result.m0_checksum and by_revision.summary() == pytest.approx(result.summary())
    trainer = FakeTrainer(tokenizer)
    callback = DiffErankCallback(trainer, TEXTS, every_n_steps=1, m0_pretrained=fake_hub, m0_revision="step0",
                                 m0_cache=None, progress=False)
    callback.on_train_begin(None, FakeTrainerState(), None, model=model)
    assert trainer.logged[0]["erank/erank_m0"] == pytest.approx(result.erank_m0(), rel=1e-9)
    assert trainer.logged[0]["erank/diff_erank"] == pytest.approx(result.diff_erank(), rel=1e-9)


def test_the_harness_loads_a_hub_revision_as_the_pythia_command_does(fake_hub, loaded, local_tasks):
    """``pretrained=NAME,m0_pretrained=NAME,m0_revision=step0`` (the README's Pythia command), offline."""
    _, _, step0_model = loaded
    run = evaluate(make_lm(f"pretrained={fake_hub},dtype=float32,m0_pretrained={fake_hub},m0_revision=step0,"
                           "m0_cache=off"), local_tasks)
    config = run["config"]
    assert (config["erank_m0_pretrained"], config["erank_m0_revision"]) == (fake_hub, "step0")
    assert config["erank_m0_checksum"] == parameter_checksum(step0_model)


@pytest.mark.parametrize("which, message", [
    ("wider", r"does not have M1's architecture \(LlamaForCausalLM\): .*\(400, 64\) in M0, \(400, 48\) in M1"
              r".*Config fields that differ: .*hidden_size 64 vs 48"),
    ("gpt2", r"is a 'gpt2' model, but M1 is 'llama'"),
    ("incomplete", r"does not hold M1's parameters: missing .*model\.layers\.1\.mlp\.up_proj\.weight"),
])
def test_another_architecture_fails_before_any_request(which, message, mismatched, m1_dir, loaded, monkeypatch):
    from lm_eval_erank.harness.model import ErankHFLM

    register()
    monkeypatch.setattr(ErankHFLM, "erank", lambda *a, **k: pytest.fail("an erank request ran"))
    path = mismatched[which]
    for swap in ("false", "true"):
        if which == "incomplete" and swap == "true":
            continue  # its names and shapes are M1's: what it lacks shows when M0 is loaded, during its turn
        with pytest.raises(M0ArchitectureError, match=message):
            make_lm(f"pretrained={m1_dir},dtype=float32,m0_pretrained={path},m0_cache=off,m0_swap={swap}")
    model, tokenizer, _ = loaded
    with pytest.raises(M0ArchitectureError, match=message):
        diff_erank(model, tokenizer, TEXTS, m0_pretrained=path, m0_cache=None, progress=False)
    if which != "incomplete":  # the callback checks names and shapes when created, against trainer.model
        with pytest.raises(M0ArchitectureError, match=message):
            DiffErankCallback(types.SimpleNamespace(model=model, processing_class=tokenizer), TEXTS,
                              m0_pretrained=path)


def test_a_config_that_differs_beyond_the_shapes_is_named_and_m0_runs_under_its_own(loaded, step0, tmp_path, caplog):
    model, tokenizer, _ = loaded
    other = shutil.copytree(step0, tmp_path / "other_eps")
    config = json.loads((other / "config.json").read_text())
    config["rms_norm_eps"] = 0.25
    (other / "config.json").write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING, logger="lm_eval.erank"):
        changed = diff_erank(model, tokenizer, TEXTS, m0_pretrained=other, m0_cache=None, progress=False)
    (record,) = [r for r in caplog.records if "m0_pretrained" in r.getMessage()]
    assert "rms_norm_eps 0.25 vs 1e-06" in record.getMessage() and "its own config" in record.getMessage()
    same = diff_erank(model, tokenizer, TEXTS, m0_pretrained=step0, m0_cache=None, progress=False)
    assert changed.m0_checksum == same.m0_checksum and changed.erank_m0() != same.erank_m0()


@pytest.mark.parametrize("extra, refused", [
    ("m0_twins=2", "m0_twins > 1 (draws"), ("m0_initializer_range=0.1", "m0_initializer_range ("),
    ("m0_seed=3", "m0_seed (seeds"),
])
def test_the_random_twins_options_are_refused_before_the_model_loads(extra, refused, m1_dir, step0, loaded,
                                                                    monkeypatch):
    from lm_eval.models.huggingface import HFLM

    register()
    monkeypatch.setattr(HFLM, "__init__", lambda *a, **k: pytest.fail("the model was loaded before the check"))
    expected = "m0_pretrained loads M0 .* instead of drawing a random twin, so it cannot be combined with "
    with pytest.raises(ValueError, match=expected + re.escape(refused)):
        make_lm(f"pretrained={m1_dir},m0_pretrained={step0},{extra}")
    model, tokenizer, step0_model = loaded
    name, value = extra.split("=")
    python_value = float(value) if name == "m0_initializer_range" else int(value)
    with pytest.raises(ValueError, match=expected + re.escape(refused)):
        diff_erank(model, tokenizer, TEXTS, m0_pretrained=step0, **{name: python_value})
    with pytest.raises(ValueError, match=expected + re.escape(refused)):
        DiffErankCallback(FakeTrainer(tokenizer), TEXTS, m0_pretrained=step0, **{name: python_value})


def test_other_wrong_combinations_are_refused(m1_dir, step0, loaded, tmp_path, monkeypatch):
    from lm_eval.models.huggingface import HFLM

    register()
    monkeypatch.setattr(HFLM, "__init__", lambda *a, **k: pytest.fail("the model was loaded before the check"))
    with pytest.raises(ValueError, match="m0_revision is a revision of m0_pretrained"):
        make_lm(f"pretrained={m1_dir},m0_revision=step0")
    model, tokenizer, step0_model = loaded
    with pytest.raises(ValueError, match=r"cannot be combined with m0 \(an M0 already built\)"):
        diff_erank(model, tokenizer, TEXTS, m0=step0_model, m0_pretrained=step0, m0_cache=None)
    with pytest.raises(ValueError, match="m0_pretrained must be a hub name or a directory"):
        diff_erank(model, tokenizer, TEXTS, m0_pretrained="  ")
    with pytest.raises(ValueError, match="cannot read the config of m0_pretrained="):
        diff_erank(model, tokenizer, TEXTS, m0_pretrained=str(step0 / "no_such_directory"), m0_cache=None)
    inconsistent = shutil.copytree(step0, tmp_path / "a_tensor_unlike_its_config")
    weights = load_file(inconsistent / "model.safetensors")
    weights["model.layers.1.mlp.up_proj.weight"] = weights["model.layers.1.mlp.up_proj.weight"][:5]
    save_file(weights, inconsistent / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="cannot load M0 from m0_pretrained=.*ignore_mismatched_sizes"):
        diff_erank(model, tokenizer, TEXTS, m0_pretrained=inconsistent, m0_cache=None, progress=False)


def test_the_runnable_examples(loaded, step0):
    import doctest

    model, _, _ = loaded
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(pretrained_m0, globs=dict(vars(pretrained_m0), model=model,
                                                                       step0_dir=step0)):
        assert runner.run(test, out=lambda text: None).failed == 0, test.name
    assert runner.tries >= 2
    assert load_pretrained_m0(model, PretrainedM0(str(step0))).dtype == model.dtype


def test_the_readme_documents_the_options_the_code_takes(loaded):
    from lm_eval_erank.core.m0_cache import model_key
    from lm_eval_erank.harness.model import ErankHFLM

    section = docs_text.section("The true initial state as M0: `m0_pretrained`")
    (command_args,) = re.findall(r"--model_args (\S+)", section)
    options = dict(part.split("=", 1) for part in command_args.split(","))
    assert set(options) <= {"pretrained", *ErankHFLM.OWN_ARGUMENTS} and options["m0_revision"] == "step0"
    assert options["m0_pretrained"] == options["pretrained"]  # the Pythia command: M1's own step 0
    for name in ("m0_pretrained", "m0_revision"):
        assert f"| `{name}` |" in docs_text.page("model-options.md")
    model, _, _ = loaded
    key = model_key(model.config, None, model.dtype, "cpu", weights="0" * 64)
    assert "weights" in key and "seed" not in key
    assert "the checksum of its weights" in docs_text.section("M0 results cache")
