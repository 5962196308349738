"""``lm_eval_internals``: the one module that touches lm-eval's internals (runs on every supported release)."""

from __future__ import annotations

import importlib
import types

import pytest
import yaml

from lm_eval_erank.harness import activation
from lm_eval_erank.harness import lm_eval_internals as internals
from lm_eval_erank.harness.lm_eval_internals import UnsupportedLmEvalError, check_supported


@pytest.mark.parametrize("version", ["0.4.10", "0.4.11", "0.4.12", "0.4.13", "0.4.13rc1", "0.4.13+local"])
def test_supported_releases_pass(version):
    check_supported(version)


@pytest.mark.parametrize("version", ["0.4.9", "0.4.14", "0.4.14.dev0", "0.5.0", "1.0"])
def test_other_releases_are_refused_naming_the_range(version):
    with pytest.raises(UnsupportedLmEvalError, match=rf"supports lm-eval 0.4.10 to 0.4.13; this environment has lm-eval {version}"):
        check_supported(version)


def test_installed_release_is_supported():
    check_supported()


def test_register_refuses_an_unsupported_lm_eval_before_touching_it(monkeypatch):
    monkeypatch.setattr(activation, "_registered", False)
    monkeypatch.setattr(internals, "lm_eval_version", lambda: "0.4.9")
    with pytest.raises(UnsupportedLmEvalError, match="pip install 'lm-eval>=0.4.10,<=0.4.13'"):
        activation.register()


def test_every_binding_of_the_patched_functions_is_ours():
    activation.register()
    for name in ("stderr_for_metric", "aggregate_subtask_metrics"):
        bound = [getattr(importlib.import_module(m), name, None)
                 for m in ("lm_eval.api.metrics", "lm_eval.evaluator_utils", "lm_eval.api.group")]
        bound = [f for f in bound if f is not None]
        assert bound and all(getattr(f, internals._marker(f_make), False) for f in bound
                             for f_make in [_maker(name)]), name


def _maker(name):
    """A stand-in named as the wrapper maker that lm_eval_internals patches ``name`` with (its mark)."""
    maker = {"stderr_for_metric": "asking_erank_first", "aggregate_subtask_metrics": "skipping_none"}[name]
    return types.SimpleNamespace(__name__=maker)


def test_load_yaml_resolves_a_function_named_by_module(tmp_path):
    from lm_eval_erank.tasks import ErankTask

    path = tmp_path / "t.yaml"
    path.write_text("task: t\nclass: !function lm_eval_erank.tasks.ErankTask\n", encoding="utf-8")
    assert internals.load_yaml(path)["class"] is ErankTask


def test_task_index_kinds_configs_and_generated_entries(tmp_path):
    activation.register()
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"task": "a", "tag": "t", "dataset_path": "json",
                                                     "output_type": "multiple_choice"}), encoding="utf-8")
    (tmp_path / "g.yaml").write_text(yaml.safe_dump({"group": "g", "task": ["a"]}), encoding="utf-8")
    manager = internals.task_manager_class()(include_path=[str(tmp_path)], include_defaults=False)
    index = internals.task_index(manager)
    assert (index.kind("a"), index.kind("g"), index.kind("t"), index.kind("zzz")) == ("task", "group", "tag", None)
    assert index.config("a")["dataset_path"] == "json" and index.members("t") == ["a"]
    assert index.yaml_path("a") == tmp_path / "a.yaml"
    index.add_task("new", {"task": "new", "output_type": "multiple_choice"})
    assert "new" in index and index.config("new")["task"] == "new" and index.yaml_path("new") is None
    assert "new" not in manager.all_tasks  # generated names are never listed


def test_model_arguments_as_lm_eval_parses_them():
    assert internals.model_arguments("pretrained=/m/model.gguf,dtype=float32") == {
        "pretrained": "/m/model.gguf", "dtype": "float32"}
    assert internals.model_arguments({"pretrained": "x"}) == {"pretrained": "x"}
    assert internals.model_arguments(None) == internals.model_arguments("") == {}


def test_a_traceback_through_lm_evals_command_line_is_recognised():
    from lm_eval._cli import HarnessCLI

    def fail(args):
        raise ValueError("in a command")

    with pytest.raises(ValueError) as through_cli:
        HarnessCLI().execute(types.SimpleNamespace(func=fail))
    assert internals.raised_through_cli(through_cli.value.__traceback__)
    with pytest.raises(ValueError) as directly:
        fail(None)
    assert not internals.raised_through_cli(directly.value.__traceback__)
    assert internals.raised_through_cli(directly.value.__traceback__, entry_modules=(__name__,))


def test_tracker_writers_report_the_files_they_did_not_write(tmp_path):
    """Both of lm-eval's output forms (a folder; a ``.json`` name): a written file is not
    reported; a writer that failed (its folder is a file) is, with the results and samples."""
    activation.register()
    from lm_eval.loggers import EvaluationTracker

    from lm_eval_erank.harness.writers import ResultsNotSavedError

    results = {"results": {"t": {"acc,none": 1.0}}, "configs": {"t": {}}, "config": {}}
    for output in (tmp_path / "folder", tmp_path / "named" / "run.json"):
        tracker = EvaluationTracker(output_path=str(output))
        tracker.save_results_aggregated(results=dict(results))
        tracker.save_results_samples(task_name="t", samples=[])
        written = sorted(p.name.split("_")[0] for p in (tmp_path / output.relative_to(tmp_path).parts[0]).rglob("*_*"))
        assert written == (["results", "samples"] if output.suffix != ".json" else ["run", "samples"]), written
    tracker = EvaluationTracker(output_path=str(tmp_path / "becomes_a_file"))
    (tmp_path / "becomes_a_file").write_text("")
    with pytest.raises(ResultsNotSavedError, match="could not write the results to --output_path"):
        tracker.save_results_aggregated(results=dict(results))
