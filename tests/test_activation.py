"""The plugin activates itself wherever lm-eval runs, costs nothing where it does not, can be
turned off, never breaks a program, and answers lm-eval's (future) entry-point discovery."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

import lm_eval_erank_autoload

from .conftest import console_script, model_args

ROOT = Path(__file__).resolve().parents[1]
OFF = {lm_eval_erank_autoload.ENV_VAR: "0"}


def _python(code: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def test_a_bare_interpreter_imports_only_the_hook():
    """The test environment (``pip install -e .``) put the .pth in site-packages; at start-up it
    installs the finder and imports nothing else of lm-eval, torch or ours."""
    pth = Path(sysconfig.get_paths()["purelib"]) / "lm_eval_erank_autoload.pth"
    assert pth.is_file() and "import lm_eval_erank_autoload" in pth.read_text()
    done = _python("""
        import sys
        print(sorted(m for m in sys.modules if m.split('.')[0] in
                     ('torch', 'transformers', 'lm_eval', 'lm_eval_erank', 'numpy', 'datasets', 'importlib.metadata')))
        print(type(sys.meta_path[0]).__name__)
    """)
    assert done.returncode == 0, done.stderr
    imported, first_finder = done.stdout.split("\n")[:2]
    assert imported == "[]" and first_finder == "PostImportFinder"


def test_validate_finds_the_tasks():
    tasks = "erank_piqa,erank_winogrande,erank_lm,erank,erank_mm_detail_23k"
    done = subprocess.run([console_script("lm_eval"), "validate", "--tasks", tasks], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and "All tasks found and valid" in done.stdout, done.stdout + done.stderr[-2000:]


def test_the_off_switch_leaves_lm_eval_as_it_is():
    done = _python("""
        import sys
        assert not any(type(f).__name__ == "PostImportFinder" for f in sys.meta_path)
        import lm_eval.evaluator, lm_eval.models
        from lm_eval.api.registry import model_registry, metric_registry
        from lm_eval.tasks import TaskManager
        assert "hf-erank" not in model_registry and "diff_erank" not in metric_registry and "hf" in model_registry
        assert not [t for t in TaskManager(include_defaults=False).all_tasks if "erank" in t]
        assert not [m for m in sys.modules if m.split(".")[0] in ("lm_eval_erank", "torch")]
        print("ok")
    """, env=OFF)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-4000:]


def _fake_lm_eval(root: Path) -> None:
    """An lm_eval package under ``root`` whose registry imports but whose models package is missing."""
    (root / "lm_eval" / "api").mkdir(parents=True)
    (root / "lm_eval" / "__init__.py").write_text("")
    (root / "lm_eval" / "api" / "__init__.py").write_text("")
    (root / "lm_eval" / "api" / "registry.py").write_text("VALUE = 42\n")


def test_a_broken_lm_eval_gets_a_warning_not_an_error(tmp_path):
    """An lm_eval whose registry imports but whose models package is missing: the hook's call fails."""
    _fake_lm_eval(tmp_path)
    done = _python("import lm_eval.api.registry as r; print('still running', r.VALUE)",
                   env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "still running 42" in done.stdout
    assert "lm-eval-erank could not activate after importing lm_eval.api.registry" in done.stderr


@pytest.mark.parametrize("release", ["0.4.9", "0.4.14"])
def test_an_unsupported_lm_eval_gets_a_warning_naming_the_range(tmp_path, release):
    """An lm_eval (with its distribution metadata) of a release outside the supported range: the
    hook's first step refuses it with the range and the pip command; the program runs on."""
    _fake_lm_eval(tmp_path)
    (tmp_path / f"lm_eval-{release}.dist-info").mkdir()
    (tmp_path / f"lm_eval-{release}.dist-info" / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: lm_eval\nVersion: {release}\n")
    done = _python("import lm_eval.api.registry as r; print('still running', r.VALUE)",
                   env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "still running 42" in done.stdout
    assert (f"lm-eval-erank supports lm-eval 0.4.10 to 0.4.13; this environment has lm-eval {release}. "
            "Install a supported release: pip install 'lm-eval>=0.4.10,<=0.4.13'") in done.stderr
    assert "Traceback" not in done.stderr


def test_python_api_without_importing_the_plugin(tiny_models, local_tasks):
    """``lm_eval.simple_evaluate`` and ``lm_eval.evaluator.evaluate`` with a TaskManager, nothing of ours imported."""
    done = _python(f"""
        import sys
        import lm_eval
        from lm_eval.tasks import TaskManager, get_task_dict
        assert "lm_eval_erank.harness.model" not in sys.modules and "torch" not in sys.modules  # only the cheap hooks ran
        args = "{model_args(tiny_models['llama'])}"
        tm = TaskManager(include_path="{local_tasks}")
        out = lm_eval.simple_evaluate(model="hf-erank", model_args=args, tasks=["local_erank_piqa"], device="cpu",
                                      batch_size=4, limit=6, task_manager=tm)
        lm = lm_eval.api.registry.get_model("hf-erank").create_from_arg_string(args, {{"batch_size": 4, "device": "cpu"}})
        again = lm_eval.evaluator.evaluate(lm=lm, task_dict=get_task_dict(["local_erank_piqa"], TaskManager(include_path="{local_tasks}")), limit=6)
        for name in ("diff_erank,none", "reduced_loss,none", "acc,none"):
            a, b = out["results"]["local_erank_piqa"][name], again["results"]["local_erank_piqa"][name]
            assert a == b, (name, a, b)
        assert out["results"]["local_erank_piqa"]["diff_erank,none"] > 0
        print("ok")
    """)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-4000:]


def test_entry_points_loaded_as_upstream_does_register_everything():
    """Upstream's ``load_plugins`` registers every advertised name as an unloaded EntryPoint and
    loads one when it is first asked for; loading any one must register the whole plugin."""
    done = _python("""
        import importlib.metadata as md, sys
        import lm_eval.models, lm_eval.api.metrics
        from lm_eval.api import registry as r
        groups = {"lm_eval.models": r.model_registry, "lm_eval.metrics": r.metric_registry,
                  "lm_eval.aggregations": r.aggregation_registry}
        declared = {}
        for group, reg in groups.items():
            declared[group] = sorted(ep.name for ep in md.entry_points(group=group) if ep.value.startswith("lm_eval_erank."))
            for ep in md.entry_points(group=group):
                if ep.name not in reg:
                    reg.register(ep.name, target=ep)
        assert "lm_eval_erank" not in sys.modules
        r.metric_registry.get("erank_m1")  # the first name lm-eval asks for
        from lm_eval_erank import multimodal_tasks
        from lm_eval_erank.core import metrics
        from lm_eval_erank.harness import activation
        from lm_eval_erank.harness.model import ErankHFLM
        specs = (*metrics.METRICS, *metrics.TWIN_METRICS, *multimodal_tasks.MULTIMODAL_METRICS)
        names = [s.name for s in specs]
        assert declared["lm_eval.metrics"] == sorted(names), declared["lm_eval.metrics"]
        assert declared["lm_eval.aggregations"] == sorted(metrics.AGGREGATION_PREFIX + n for n in names)
        assert declared["lm_eval.models"] == sorted(activation.MODELS)
        for spec in specs:  # registered in full, as activation.register() does without entry points
            agg = r.aggregation_registry.get(metrics.AGGREGATION_PREFIX + spec.name)
            assert r.metric_agg_registry.get(spec.name) is agg and callable(agg)
            assert r.higher_is_better_registry.get(spec.name, None) == spec.higher_is_better, spec.name
        for group, reg in groups.items():
            for ep in md.entry_points(group=group):
                if ep.name in declared[group]:
                    assert ep.load() is reg.get(ep.name), (group, ep.name)
        for name, target in activation.MODELS.items():
            cls = r.model_registry.get(name)
            assert f"{cls.__module__}:{cls.__name__}" == target
        assert r.model_registry.get("hf-erank") is ErankHFLM and r.model_registry.get("hf") is not None
        (ep,) = md.entry_points(group="lm_eval.tasks", name="erank")
        from importlib.util import find_spec
        task_dir = find_spec(ep.value).submodule_search_locations[0]  # PR #4015's resolution
        from lm_eval_erank.harness.task_dirs import task_dir as ours
        assert str(ours()) == task_dir
        print("ok")
    """, env=OFF)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-4000:]


def test_plugins_flag_form_registers_everything():
    """``--plugins lm_eval_erank`` / ``LM_EVAL_PLUGINS=lm_eval_erank`` import the package after lm-eval."""
    done = _python("""
        import importlib
        import lm_eval.api.registry as r
        from lm_eval.tasks import TaskManager
        assert "erank_piqa" not in TaskManager(include_defaults=False).all_tasks
        importlib.import_module("lm_eval_erank")
        assert "erank_piqa" in TaskManager(include_defaults=False).all_tasks
        assert r.model_registry.get("hf-erank").__name__ == "ErankHFLM" and "diff_erank" in r.metric_registry
        print("ok")
    """, env=OFF)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-4000:]
