"""Issue 14: inputs checked at every entry point, writes checked before the first forward,
eRank bounds at round-off, one default M0, one exclusion warning per task, and README/help
that agree with the code. All in-process (no CLI run): tiny models from conftest."""

from __future__ import annotations

import ast
import doctest
import inspect
import json
import logging
import math
import re
import sys
import types
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_eval_erank import api, callback, cli, diff_erank
from lm_eval_erank.core import checks, measure, representations, spectral, twin_provider
from lm_eval_erank.callback import DiffErankCallback
from lm_eval_erank.core.m0_cache import M0Cache, M0CacheError, model_key
from lm_eval_erank.harness.activation import register
from lm_eval_erank.harness.task_dirs import task_dir
from lm_eval_erank.harness.writers import check_output_path
from lm_eval_erank.testing import tiny

from . import docs_text

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
TEXTS = tiny.gold_texts()[:6]


@pytest.fixture(scope="module")
def gpt2(tiny_models):
    model = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"], dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_models["gpt2"])


@pytest.fixture
def no_forward(monkeypatch):
    """Fail the test if the API runs any model forward (``text_statistics``)."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a forward ran before the argument was checked")

    for module in (measure, twin_provider):  # M1's pass, the twins' passes
        monkeypatch.setattr(module, "text_statistics", forbidden)


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if hf-erank gets as far as HFLM's (slow) model load."""
    register()
    from lm_eval.models.huggingface import HFLM

    def forbidden(self, *args, **kwargs):
        raise AssertionError("the model was loaded before the argument was checked")

    monkeypatch.setattr(HFLM, "__init__", forbidden)


# ---- item 1: every public entry point checks its arguments --------------------------------


@pytest.mark.parametrize("texts, error, message", [
    ("one string", TypeError, "sequence of strings.*single str"),
    ([], ValueError, "texts is empty"),
    (["fine", 3], TypeError, r"texts\[1\] is a int"),
    (None, TypeError, "sequence of strings"),
])
def test_diff_erank_rejects_bad_texts_before_any_forward(gpt2, no_forward, texts, error, message):
    model, tok = gpt2
    with pytest.raises(error, match=message):
        diff_erank(model, tok, texts, m0_cache=None)


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"max_length": "64"}, "max_length must be an integer"),
    ({"layers": 2.5}, "layers must be"),
    ({"layers": [0, 99]}, r"layer indices must lie in \[0, 2\]"),
    ({"m0_seed": -1}, r"m0_seed must be an integer in \[0, 2\*\*64 - 1\]"),
    ({"losses": "no"}, "losses must be True or False"),
    ({"m0_cache": 3}, "m0_cache must be a directory"),
])
def test_diff_erank_rejects_bad_options_before_any_forward(gpt2, no_forward, kwargs, message):
    model, tok = gpt2
    with pytest.raises((TypeError, ValueError), match=message):
        diff_erank(model, tok, TEXTS, **{"m0_cache": None, **kwargs})


def test_diff_erank_rejects_names_where_loaded_objects_are_expected(gpt2, no_forward):
    model, tok = gpt2
    with pytest.raises(TypeError, match="model must be a loaded transformers causal LM"):
        diff_erank("gpt2", tok, TEXTS)
    with pytest.raises(TypeError, match="tokenizer must be a loaded tokenizer"):
        diff_erank(model, "gpt2", TEXTS)
    with pytest.raises(ValueError, match="m0_cache cannot be used with m0="):
        diff_erank(model, tok, TEXTS, m0=model, m0_cache="/tmp/somewhere")


def test_layers_as_an_int_and_a_layer_not_measured(gpt2):
    model, tok = gpt2
    one = diff_erank(model, tok, TEXTS, m0_seed=3, layers=1, m0_cache=None)
    listed = diff_erank(model, tok, TEXTS, m0_seed=3, layers=[1], m0_cache=None)
    assert one.layers == listed.layers == (1, 2)
    assert one.diff_erank(layer=1) == listed.diff_erank(layer=1)
    for accessor in (one.diff_erank, one.erank_m1, one.erank_m0, one.erank_ratio, one.diff_erank_b):
        with pytest.raises(ValueError, match=r"layer 0 was not measured; this result holds layers \[1, 2\]"):
            accessor(layer=0)


def test_callback_checks_its_arguments_when_created(gpt2):
    model, tok = gpt2
    trainer = types.SimpleNamespace(model=model, processing_class=tok)
    with pytest.raises(TypeError, match="sequence of strings"):
        DiffErankCallback(trainer, "one held-out string")
    with pytest.raises(ValueError, match=r"layer indices must lie in \[0, 2\]"):
        DiffErankCallback(trainer, TEXTS, layers="0:7")
    with pytest.raises(ValueError, match="batch_size"):
        DiffErankCallback(trainer, TEXTS, batch_size=0)
    with pytest.raises(TypeError, match="tokenizer must be a loaded tokenizer"):
        DiffErankCallback(trainer, TEXTS, tokenizer="gpt2")


# ---- runnable examples: the public functions' doctests run -----------------------------


def test_public_functions_have_runnable_examples(gpt2):
    model, tok = gpt2
    globs = {"model": model, "tokenizer": tok, "torch": torch,
             "trainer": types.SimpleNamespace(model=model, processing_class=tok)}
    required = {"matrix_entropy", "effective_rank", "parse_layers", "check_texts", "diff_erank", "__init__"}
    ran = set()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for module in (spectral, representations, checks, measure, callback):
        for test in doctest.DocTestFinder().find(module, globs=dict(vars(module), **globs)):
            if test.examples:
                result = runner.run(test, out=lambda text: None)
                assert result.failed == 0, f"doctest of {test.name} failed"
                ran.add(test.name.rsplit(".", 1)[-1])
    assert required <= ran, required - ran


# ---- item 2: what a run writes is checked before the first forward ------------------------


def test_unwritable_m0_cache_fails_before_the_model_loads(tiny_models, tmp_path, no_model_load):
    from lm_eval_erank.harness.model import ErankHFLM

    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(M0CacheError, match=re.escape(str(blocker / "cache")) + ".*m0_cache=off"):
        ErankHFLM(pretrained=str(tiny_models["gpt2"]), device="cpu", m0_cache=str(blocker / "cache"))


def test_unwritable_m0_cache_fails_before_any_forward_in_the_api(gpt2, tmp_path, no_forward):
    model, tok = gpt2
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(M0CacheError, match="cannot be written.*m0_cache=off"):
        diff_erank(model, tok, TEXTS, m0_cache=blocker / "cache")
    broken = tmp_path / "cache"
    broken.mkdir()
    key = model_key(model.config, api.DEFAULT_M0_SEED, model.dtype, "cpu")
    M0Cache(broken, key).path.write_text("{ truncated")
    with pytest.raises(M0CacheError, match="cache file .* cannot be read"):
        diff_erank(model, tok, TEXTS, m0_cache=broken)


def test_a_cache_write_failing_at_the_end_keeps_the_results(gpt2, tmp_path, caplog):
    model, tok = gpt2
    directory = tmp_path / "cache"
    cache = M0Cache(directory, model_key(model.config, 5, model.dtype, "cpu"))
    directory.rmdir()
    directory.write_text("the directory vanished and a file took its place")
    with caplog.at_level(logging.WARNING, logger="lm_eval.erank.m0_cache"):
        cache.store([[1, 2, 3]], torch.tensor([1.0]), {2: torch.tensor([0.5])}, None)
    assert "could not write M0's results cache" in caplog.text


def test_unwritable_output_path_fails_when_the_tracker_is_created(tmp_path):
    register()
    from lm_eval.loggers import EvaluationTracker

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for path in (blocker / "results", blocker / "deeper" / "results.json"):
        with pytest.raises(ValueError, match=re.escape(f"--output_path {path}") + ".*not a directory"):
            EvaluationTracker(output_path=str(path))
    check_output_path(tmp_path / "new" / "dir")  # creatable: fine, and nothing is created
    assert not (tmp_path / "new").exists()
    EvaluationTracker(output_path=str(tmp_path / "out"))


# ---- item 5: one default M0 for the harness, the API and the callback ------------------------


@pytest.fixture(scope="module")
def default_lm(tiny_models):
    """hf-erank with default m0_seed, built after lm-eval's default torch seed as its CLI sets it."""
    register()
    from lm_eval.models.huggingface import HFLM  # noqa: F401

    from lm_eval_erank.harness.model import ErankHFLM

    torch.manual_seed(1234)  # lm-eval's default --seed for torch
    return ErankHFLM(pretrained=str(tiny_models["gpt2"]), dtype="float32", device="cpu", m0_cache="off", batch_size=4)


def test_api_and_callback_default_to_the_harness_m0(default_lm, gpt2, tmp_path, monkeypatch):
    model, tok = gpt2
    monkeypatch.setenv("LM_EVAL_ERANK_CACHE", str(tmp_path))
    result = diff_erank(model, tok, TEXTS)
    assert result.m0_seed == default_lm.m0_seed == 1234
    assert result.m0_checksum == default_lm.m0_checksum
    assert len(list((tmp_path / "m0").glob("*.json"))) == 1  # the harness's default cache directory
    trainer = types.SimpleNamespace(model=model, processing_class=tok)
    assert DiffErankCallback(trainer, TEXTS).m0_seed == 1234


# ---- item 8: one warning per task, with count and reason ---------------------------------


def test_one_exclusion_warning_per_task_with_count_and_reason(default_lm, caplog):
    from lm_eval.api.instance import Instance

    texts = {"some": ["", "a"] + TEXTS[:3], "every": ["", "a", "b"]}
    requests = [Instance("erank", {}, (t,), 0, metadata=(task, i, 1))
                for task, group in texts.items() for i, t in enumerate(group)]
    with caplog.at_level(logging.WARNING, logger="lm_eval.erank"):
        default_lm.erank(requests)
    lines = [r.getMessage() for r in caplog.records if "have no eRank" in r.getMessage()]
    assert len(lines) == 2, lines
    assert "some: 2 of 5 texts have no eRank" in lines[0] and "2 have fewer than 2 tokens" in lines[0]
    assert "every text was excluded" not in lines[0]
    assert "every: 3 of 3 texts" in lines[1] and "every text was excluded" in lines[1]


# ---- items 9-11: commands and README agree with the code ---------------------------------


def _run_main(monkeypatch, capsys, *argv):
    monkeypatch.setattr(sys, "argv", ["lm-eval-erank", *argv])
    try:
        cli.main()
    except SystemExit as stop:
        assert stop.code in (0, None)
    return capsys.readouterr().out


def test_task_dir_flag_prints_the_task_directory(monkeypatch, capsys):
    printed = Path(_run_main(monkeypatch, capsys, "--task-dir").strip())
    assert printed == task_dir() and (printed / "erank_piqa.yaml").is_file()
    assert "lm-eval-erank --task-dir" in README and "/path/to/site-packages" not in README


def test_help_lists_hf_erank_model_arguments(monkeypatch, capsys):
    from lm_eval_erank.harness.model import ErankHFLM

    for argv in (["--help"], ["run", "--help"]):
        out = _run_main(monkeypatch, capsys, *argv)
        assert "hf-erank" in out and "--task-dir" in out
        for name in ErankHFLM.OWN_ARGUMENTS:
            assert f"    {name}:" in out, (argv, name)


def test_misspelt_model_argument_gets_a_suggestion_before_the_model_loads(tiny_models, no_model_load):
    from lm_eval_erank.harness.model import ErankHFLM

    for wrong, right in (("m0seed", "m0_seed"), ("layer", "layers"), ("m0_cach", "m0_cache")):
        with pytest.raises(ValueError, match=f"unknown model argument '{wrong}'; did you mean {right}\\?"):
            ErankHFLM(pretrained=str(tiny_models["gpt2"]), device="cpu", m0_cache="off", **{wrong: "1"})


def _python_calls(text: str):
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.Call):
                yield node


def test_readme_python_examples_use_real_arguments():
    """Every keyword the README passes to diff_erank / DiffErankCallback / alignment_eranks exists."""
    from lm_eval_erank.multimodal import alignment_eranks

    functions = {"diff_erank": diff_erank, "DiffErankCallback": DiffErankCallback, "alignment_eranks": alignment_eranks}
    seen = set()
    for call in _python_calls("".join(docs_text.page(p.name) for p in docs_text.PAGES)):
        name = getattr(call.func, "id", None)  # calls of the functions, not of result methods
        if name in functions:
            accepted = inspect.signature(functions[name]).parameters
            seen.add(name)
            for keyword in call.keywords:
                assert keyword.arg in accepted, (name, keyword.arg)
    assert seen == set(functions)
    assert "tokenizer=" in docs_text.page("python-api.md").split("## During training", 1)[1]


def test_readme_describes_the_m0_cache_key_the_code_uses(gpt2):
    model, _ = gpt2
    key = model_key(model.config, 1, model.dtype, "cpu")
    section = docs_text.section("M0 results cache")
    phrases = {"architecture": "architecture config", "seed": "the seed", "dtype": "the dtype",
               "device_type": "the device type", "versions": "versions of", "key_version": "key_version"}
    assert set(key) == set(phrases)  # a new key field needs a README line
    for field, phrase in phrases.items():
        assert phrase in section, field
    assert "one file per model key" in section  # layers and texts live inside the file


# Item 3 (eRank bounds) is tested in test_spectral.py; item 1's multimodal API in test_multimodal.py.
