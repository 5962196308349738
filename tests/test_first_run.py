"""Issue 30: what a new user hit on a first run, each case run as the user ran it.

Mistakes visible on the command line are refused before any model loads (an erank task under a
model without ``erank`` requests, an unknown ``erank_<name>``, ``pretrained=<file>.gguf``, an
``--output_path`` where no file can be created: ``/proc`` as root, where permission bits lie);
results lm-eval fails to write at the end are saved elsewhere and the run fails; our errors end
a command in two lines; one cache root; the documented local-files YAML runs as written. (The
GGUF init warning: ``test_twin_init.py``; a real ``lm_eval`` process ending in our error:
``test_cli_end_to_end.py``.) lm-eval's command line runs in this process, its task index built
once for the module.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import json
import logging
import math
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_eval_erank import cli, diff_erank
from lm_eval_erank.core.cache_root import cache_root
from lm_eval_erank.core.errors import ErankError, short_report
from lm_eval_erank.harness import error_display
from lm_eval_erank.harness.activation import register
from lm_eval_erank.harness.request_types import RequestNotServedError
from lm_eval_erank.harness.task_dirs import task_dir
from lm_eval_erank.harness.wrapping import UnknownTaskError
from lm_eval_erank.harness.writers import OutputPathError, ResultsNotSavedError
from lm_eval_erank.testing import tiny

from . import docs_text
from .conftest import lm_eval_logging_restored, model_args, share_task_index

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lm_eval():
    """``run(argv)``: ``lm_eval <argv>`` in this process; ``run(argv, command=cli.main)`` for
    ``lm-eval-erank <argv>``."""
    register()
    from lm_eval.__main__ import cli_evaluate

    with pytest.MonkeyPatch.context() as mp, lm_eval_logging_restored():
        share_task_index(mp)

        def run(argv: list[str], command=cli_evaluate):
            mp.setattr(sys, "argv", ["lm_eval", *map(str, argv)])
            command()

        yield run


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if lm-eval gets as far as loading the model (HFLM's ``__init__``)."""
    from lm_eval.models.huggingface import HFLM

    def forbidden(self, *args, **kwargs):
        raise AssertionError("the model was being loaded")

    monkeypatch.setattr(HFLM, "__init__", forbidden)


def shown(error: BaseException, capsys) -> str:
    """What the process would print, ending with ``error`` (the interpreter's excepthook)."""
    capsys.readouterr()
    error_display.show_uncaught(type(error), error, error.__traceback__)
    return capsys.readouterr().err


def assert_two_lines(error: BaseException, capsys) -> list[str]:
    lines = shown(error, capsys).splitlines()
    assert lines == short_report(error).splitlines() and len(lines) == 2, lines
    assert lines[0].startswith(f"{type(error).__name__}: ") and "LM_EVAL_ERANK_TRACEBACK=1" in lines[1]
    return lines


# ---- 1. an erank task under a model that does not serve erank requests --------------------------


@pytest.mark.parametrize("tasks, named", [
    ("erank_piqa", "erank_piqa"),  # a shipped task
    ("erank", "erank_openbookqa, erank_piqa, erank_winogrande"),  # the shipped group: its tasks
    ("arc_easy,erank_arc_easy", "erank_arc_easy"),  # a wrapped task beside a standard one
])
def test_an_erank_task_under_a_model_without_erank_is_refused_before_it_loads(lm_eval, no_model_load, tmp_path,
                                                                              capsys, tasks, named):
    with pytest.raises(RequestNotServedError) as caught:
        lm_eval(["--model", "hf", "--model_args", f"pretrained={tmp_path / 'absent'}", "--tasks", tasks])
    assert str(caught.value) == (f"the tasks {named} send 'erank' requests, which HFLM does not serve. "
                                 "Run them with --model hf-erank (it accepts every --model hf argument).")
    assert_two_lines(caught.value, capsys)


def test_an_image_text_task_under_a_text_model_is_refused_before_it_loads(lm_eval, no_model_load, tmp_path):
    with pytest.raises(RequestNotServedError) as caught:
        lm_eval(["--model", "hf-erank", "--model_args", f"pretrained={tmp_path / 'absent'}", "--tasks",
                 "erank_mm_detail_23k"])
    assert str(caught.value) == ("the tasks erank_mm_detail_23k send 'erank_multimodal' requests, which ErankHFLM does "
                                 "not serve. Run them with --model hf-multimodal-erank (it accepts every --model "
                                 "hf-multimodal argument).")


def test_models_that_serve_the_tasks_go_on_to_load(lm_eval, no_model_load, tmp_path):
    """No false refusal: hf on a standard task, hf-erank on an erank task reach the model load."""
    for model, task in (("hf", "arc_easy"), ("hf-erank", "erank_piqa")):
        with pytest.raises(AssertionError, match="the model was being loaded"):
            lm_eval(["--model", model, "--model_args", f"pretrained={tmp_path / 'absent'}", "--tasks", task])


def test_simple_evaluate_without_a_task_manager_refuses_the_shipped_tasks(no_model_load, tmp_path):
    """A Python call has no task index yet (lm-eval builds one after the model): the shipped
    tasks are known without one."""
    register()
    import lm_eval

    with pytest.raises(RequestNotServedError, match="the tasks erank_piqa send 'erank' requests"):
        lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={tmp_path / 'absent'}", tasks=["erank_piqa"])


# ---- 2. an unknown erank_<name> ---------------------------------------------------------------


def test_an_unknown_erank_name_says_what_erank_wraps_and_suggests_names(lm_eval, no_model_load, tmp_path, capsys):
    absent = f"pretrained={tmp_path / 'absent'}"
    with pytest.raises(UnknownTaskError) as caught:
        lm_eval(["--model", "hf-erank", "--model_args", absent, "--tasks", "erank_piqq"])
    message = str(caught.value)
    assert message.startswith("Tasks not found: erank_piqq. erank_<name> runs any task, group or tag lm-eval knows")
    assert re.search(r"Closest names: erank_piqa\b", message), message
    assert_two_lines(caught.value, capsys)
    with pytest.raises(UnknownTaskError, match="'nosuchtask' is none of them"):
        lm_eval(["--model", "hf-erank", "--model_args", absent, "--tasks", "erank_nosuchtask"])


# ---- 3. pretrained=<file>.gguf ------------------------------------------------------------------


@pytest.mark.parametrize("model", ["hf-erank", "hf"])
def test_pretrained_naming_a_gguf_file_is_refused_with_the_arguments_to_use(lm_eval, no_model_load, tmp_path,
                                                                           capsys, model):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")  # only its name and that it is a file matter: nothing reads it
    with pytest.raises(ErankError) as caught:
        lm_eval(["--model", model, "--model_args", f"pretrained={gguf}", "--tasks", "erank_piqa" if model == "hf-erank"
                 else "arc_easy"])
    assert f"--model_args pretrained={tmp_path},gguf_file=model.gguf" in str(caught.value)
    assert_two_lines(caught.value, capsys)


# ---- 4. --output_path checked by writing there; results that still cannot be written ------------


def test_an_output_path_in_proc_is_refused_before_any_model_loads(lm_eval, no_model_load, tmp_path, capsys):
    """As root, ``os.access`` says ``/proc`` is writable (the old check passed it and the run lost
    its results at the end); creating a file there is what fails."""
    if os.geteuid() == 0:
        assert os.access("/proc", os.W_OK | os.X_OK)  # the permission bits lie to root
    with pytest.raises(OutputPathError) as caught:
        lm_eval(["--model", "hf-erank", "--model_args", f"pretrained={tmp_path / 'absent'}", "--tasks", "erank_piqa",
                 "--output_path", "/proc/erank_results"])
    assert "--output_path /proc/erank_results: no file can be created in /proc/erank_results" in str(caught.value)
    assert not Path("/proc/erank_results").exists()
    assert_two_lines(caught.value, capsys)


def test_results_lm_eval_cannot_write_at_the_end_are_saved_elsewhere_and_the_run_fails(
        lm_eval, tiny_models, local_tasks, tmp_path, monkeypatch, capsys):
    """The output folder becomes a file while the model runs (a write that fails for a reason
    other than permissions): lm-eval alone logs "Could not save results aggregated" and exits 0."""
    import lm_eval.evaluator as evaluator

    out = tmp_path / "out"
    evaluate = evaluator.simple_evaluate

    def folder_replaced_by_a_file(*args, **kwargs):
        results = evaluate(*args, **kwargs)
        shutil.rmtree(out, ignore_errors=True)
        out.write_text("a file where the results folder was")
        return results

    monkeypatch.setattr(evaluator, "simple_evaluate", folder_replaced_by_a_file)
    with pytest.raises(ResultsNotSavedError) as caught:
        lm_eval(["--model", "hf-erank", "--model_args", model_args(tiny_models["gpt2"]), "--device", "cpu",
                 "--include_path", local_tasks, "--tasks", "local_erank_piqa", "--limit", "4", "--batch_size", "4",
                 "--log_samples", "--output_path", out])
    folder = Path(re.search(r"were written to (\S+) instead", str(caught.value)).group(1))
    assert folder.parent == cache_root() / "unsaved_results" and f"--output_path {out}" in str(caught.value)
    row = json.loads((folder / "results.json").read_text())["results"]["local_erank_piqa"]
    assert math.isfinite(row["diff_erank,none"]) and 0 <= row["acc,none"] <= 1
    samples = [json.loads(line) for line in (folder / "samples_local_erank_piqa.jsonl").read_text().splitlines()]
    assert [s["doc_id"] for s in samples] == [0, 1, 2, 3] and all("erank_response" in s for s in samples)
    assert out.read_text() == "a file where the results folder was"
    assert_two_lines(caught.value, capsys)


def test_samples_lm_eval_cannot_write_are_saved_with_the_results(tmp_path):
    register()
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker(output_path=str(tmp_path / "out"))
    sample = {"doc_id": 0, "doc_hash": "d", "prompt_hash": "p", "target_hash": "t", "arguments": [["a", " b"]],
              "resps": [[[-1.0, True]]], "filtered_resps": [[-1.0, True]], "target": 0, "acc": 1.0}
    results = {"results": {"t": {"acc,none": 1.0}}, "configs": {"t": {}}, "config": {}}
    tracker.save_results_aggregated(results=results, samples={"t": [sample]})
    (written,) = (tmp_path / "out").rglob("results_*.json")
    shutil.rmtree(written.parent)
    written.parent.write_text("")  # the samples' folder is a file now
    with pytest.raises(ResultsNotSavedError, match="could not write the samples of t to --output_path") as caught:
        tracker.save_results_samples(task_name="t", samples=[sample])
    folder = Path(re.search(r"were written to (\S+) instead", str(caught.value)).group(1))
    assert json.loads((folder / "results.json").read_text())["results"] == results["results"]
    assert json.loads((folder / "samples_t.jsonl").read_text())["doc_id"] == 0


# ---- 5. our errors end a command in two lines; others keep their traceback ----------------------


def test_our_errors_end_a_command_in_two_lines_unless_the_traceback_is_asked_for(lm_eval, no_model_load, tmp_path,
                                                                                 capsys, monkeypatch):
    absent = tmp_path / "absent"
    with pytest.raises(AssertionError) as loading:  # not our error (here: the model load)
        lm_eval(["--model", "hf", "--model_args", f"pretrained={absent}", "--tasks", "arc_easy"])
    assert shown(loading.value, capsys).startswith("Traceback (most recent call last):")
    refused = ["--model", "hf-erank", "--model_args", f"pretrained={absent},m0seed=1", "--tasks", "erank_piqa"]
    for command in ({"command": cli.main}, {}):  # lm-eval-erank, then lm_eval
        with pytest.raises(ErankError, match="did you mean m0_seed") as caught:
            lm_eval(refused, **command)
        assert_two_lines(caught.value, capsys)
    error = caught.value
    monkeypatch.setenv("LM_EVAL_ERANK_TRACEBACK", "1")
    assert shown(error, capsys).startswith("Traceback (most recent call last):")
    monkeypatch.delenv("LM_EVAL_ERANK_TRACEBACK")
    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.DEBUG)  # lm-eval's verbosity (LMEVAL_LOG_LEVEL=DEBUG)
    try:
        assert shown(error, capsys).startswith("Traceback (most recent call last):")
    finally:
        logger.setLevel(level)
    assert len(shown(error, capsys).splitlines()) == 2
    try:  # ours, but raised in a program, not by a command: the traceback stays
        raise OutputPathError("in a program")
    except OutputPathError as err:
        printed = shown(err, capsys)
    assert printed.startswith("Traceback (most recent call last):") and "OutputPathError: in a program" in printed


# ---- 6. one cache root ------------------------------------------------------------------------


def test_one_cache_root_and_m0_files_of_an_earlier_version_are_moved_into_it(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_ERANK_CACHE", str(tmp_path))
    model = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"], dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    texts = tiny.gold_texts()[:6]
    first = diff_erank(model, tokenizer, texts, m0_seed=3, progress=False)
    (entry,) = (tmp_path / "m0").glob("*.json")
    os.replace(entry, tmp_path / entry.name)  # where an earlier version wrote it ($LM_EVAL_ERANK_CACHE itself)
    logged = logging.Handler()  # on our logger itself: lm-eval's CLI, run earlier here, stops its propagation
    logged.emit = lambda record: messages.append(record.getMessage())
    messages, logger = [], logging.getLogger("lm_eval.erank")
    level = logger.level
    logger.addHandler(logged)
    logger.setLevel(logging.INFO)
    try:
        again = diff_erank(model, tokenizer, texts, m0_seed=3, progress=False)
    finally:
        logger.removeHandler(logged)
        logger.setLevel(level)
    text = "\n".join(messages)
    assert text.count(f"moved 1 M0 results-cache file(s) from {tmp_path} to {tmp_path / 'm0'}") == 1
    assert (tmp_path / "m0" / entry.name).is_file() and not (tmp_path / entry.name).exists()
    assert "6 of 6 texts' results from the M0 cache" in text  # found: M0 did not run again
    assert again.erank_m0() == first.erank_m0()
    spec = importlib.util.spec_from_file_location("_compat_matrix", ROOT / "scripts" / "compat_matrix.py")
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    compat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compat)
    assert compat.parse_args([])[0].places["0.4.10"] == tmp_path / "compat" / "0.4.10"  # the test environments


# ---- 8. the documented local-files task, as written --------------------------------------------


def test_the_documented_local_files_task_runs_as_written(lm_eval, tiny_models, tmp_path):
    section = docs_text.section("Local data files")
    task_yaml = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    command = re.search(r"```\n(lm-eval-erank .*?)\n```", section, re.S).group(1).split()
    config = yaml.safe_load(task_yaml)
    assert {key: config[key] for key in ("dataset_path", "dataset_name", "training_split")} == {
        "dataset_path": "json", "dataset_name": None, "training_split": None}
    data = tiny.write_jsonl(tmp_path / "piqa_validation.jsonl", tiny.piqa_rows()[:4])
    tasks = tmp_path / "my_tasks"
    tasks.mkdir()
    (tasks / "my_erank_piqa.yaml").write_text(
        task_yaml.replace("/printed/task/dir", str(task_dir())).replace("/data/piqa_validation.jsonl", str(data)))
    argv = [word.replace("DIR", f"{tiny_models['llama']},dtype=float32").replace("my_tasks/", str(tasks))
            for word in command[1:]]
    lm_eval([*argv, "--device", "cpu", "--output_path", tmp_path / "out"], command=cli.main)
    (results,) = (tmp_path / "out").rglob("results_*.json")
    row = json.loads(results.read_text())["results"]["my_erank_piqa"]
    assert math.isfinite(row["diff_erank,none"]) and 0 <= row["acc,none"] <= 1
    # the section's other claims: openbookqa also nulls its validation split; lm-eval's own YAML
    # pointed the same way runs as erank_<name>
    from lm_eval_erank.harness.lm_eval_internals import lm_eval_tasks_dir, task_manager_class

    data_lines = task_yaml[task_yaml.index("dataset_path"):]
    rows = tiny.write_jsonl(tmp_path / "openbookqa_test.jsonl", tiny.openbookqa_rows()[:3])
    obqa = data_lines.replace("validation: /data/piqa_validation.jsonl", f"test: {rows}")
    for name, text in (("my_obqa", f"include: {task_dir() / 'erank_openbookqa.yaml'}\ntask: my_obqa\n{obqa}"),
                       ("my_obqa_nulled", f"include: {task_dir() / 'erank_openbookqa.yaml'}\ntask: my_obqa_nulled\n"
                                          f"{obqa}validation_split: null\n"),
                       ("my_piqa", f"include: {lm_eval_tasks_dir() / 'piqa' / 'piqa.yaml'}\ntask: my_piqa\n"
                                   + data_lines.replace("/data/piqa_validation.jsonl", str(data)))):
        (tmp_path / "more_tasks").mkdir(exist_ok=True)  # a new folder: this module's task index memo knows my_tasks
        (tmp_path / "more_tasks" / f"{name}.yaml").write_text(text)
    manager = task_manager_class()(include_path=str(tmp_path / "more_tasks"), include_defaults=False)
    with pytest.raises(KeyError, match="validation"):
        manager.load_task_or_group(["my_obqa"])
    for name, n_docs in (("my_obqa_nulled", 3), ("erank_my_piqa", 4)):
        (task,) = manager.load_task_or_group([name]).values()
        assert len(list(task.eval_docs)) == n_docs and type(task).__name__ == "ErankTask", name
    for linking in (docs_text.page("real-models.md"), docs_text.section("GGUF files"),
                    docs_text.section("Evaluating a real model")):
        assert "tasks.md#local-data-files)" in linking
    assert "shared/data" not in docs_text.page("real-models.md") + docs_text.section("Evaluating a real model")


def test_the_examples_of_what_this_issue_added_run():
    """The ``>>>`` examples of the modules this issue touched (the others run in test_rough_edges)."""
    register()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    ran = set()
    for name in ("core.errors", "core.m0_cache", "core.checks", "harness.wrapping", "harness.request_types",
                 "harness.writers", "harness.lm_eval_internals"):
        module = importlib.import_module(f"lm_eval_erank.{name}")
        for test in doctest.DocTestFinder().find(module):
            if test.examples:
                assert runner.run(test, out=lambda text: None).failed == 0, test.name
                ran.add(test.name.rsplit(".", 1)[-1])
    assert {"short_report", "traceback_requested", "move_legacy_entries", "check_pretrained_path",
            "unknown_task_message", "not_served_message", "check_output_path", "model_arguments"} <= ran, ran
