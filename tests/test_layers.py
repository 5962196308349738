"""The package's shape, read from its imports (ast over every module, function-level imports
included), and the paths users rely on.

Layers, from the bottom: ``_version`` and the task YAML package (leaves); ``core/`` (the maths:
never imports lm-eval); ``compare/`` (``lm-eval-erank compare``: reads results JSON, imports
``core``'s numpy-only modules and never lm-eval, torch or transformers); ``harness/`` (everything
that touches lm-eval); ``testing/`` (tiny models, fixture data and real-model downloads for the
tests and studies); the public fronts at the package root (``api``, ``callback``, ``cli``,
``tasks``, ...); the start-up hook ``lm_eval_erank_autoload``. A module imports only from its own
layer or lower ones (fronts only from lower ones), no product module imports ``testing/`` (only
the offline demo ``example`` does), no import circle exists, nothing imports the package
``__init__``, an import inside a function defers something heavy, and only
``harness/lm_eval_internals.py`` reaches past lm-eval's public API or writes to lm-eval's objects.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lm_eval_erank"
INTERNALS = "lm_eval_erank.harness.lm_eval_internals"
HOOK = "lm_eval_erank_autoload"
LAYERS = {"leaf": 0, "core": 1, "compare": 2, "harness": 3, "testing": 4, "front": 5, "hook": 6}
# The one module outside ``testing/`` allowed to import it: the demo builds its data and model with it.
TESTING_USERS = {"lm_eval_erank.example"}
# Third-party modules whose import costs (torch alone is seconds on a cold CPU machine).
HEAVY = {"torch", "transformers", "lm_eval", "accelerate", "datasets", "tokenizers", "PIL", "matplotlib",
         "huggingface_hub", "numpy", "tqdm", "filelock"}
# lm-eval's public extension API: what a plugin may import from lm-eval outside the internals module.
PUBLIC_LM_EVAL = {"lm_eval", "lm_eval.api.instance", "lm_eval.api.task", "lm_eval.api.registry", "lm_eval.api.metrics",
                  "lm_eval.models", "lm_eval.models.huggingface", "lm_eval.models.hf_vlms"}
# The lm-eval modules defining the classes we subclass or hand objects of: their attribute names.
LM_EVAL_CLASS_MODULES = ("lm_eval.api.model", "lm_eval.api.task", "lm_eval.api.instance", "lm_eval.api.registry",
                         "lm_eval.models.huggingface", "lm_eval.models.hf_vlms", "lm_eval.loggers.evaluation_tracker",
                         "lm_eval.tasks")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "task_configs" not in p.parts}
MODULES[HOOK] = ROOT / f"{HOOK}.py"


def layer(module: str) -> str:
    if module == HOOK:
        return "hook"
    parts = module.split(".")
    if module in ("lm_eval_erank._version", "lm_eval_erank.task_configs"):
        return "leaf"
    if len(parts) >= 2 and parts[1] == "compare":
        return "compare"
    return parts[1] if len(parts) > 2 and parts[1] in ("core", "harness", "testing") else "front"


def _resolve(node: ast.ImportFrom, module: str) -> str:
    if not node.level:
        return node.module
    package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


@functools.cache
def _is_module(name: str) -> bool:
    """Whether ``name`` (``lm_eval.api.registry``) is a module of an installed package."""
    if name.split(".")[0] in ("lm_eval_erank", HOOK):
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def imports(module: str):
    """(imported module, line, inside a function?) for every import statement of ``module``;
    ``from pkg import name`` names the submodule when ``name`` is one."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    functions = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for n in ast.walk(f) if n is not f}
    for node in ast.walk(tree):
        inside = id(node) in functions
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, inside
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in MODULES or _is_module(sub) else target), node.lineno, inside


def ours(name: str) -> bool:
    return name in MODULES


GRAPH = {m: sorted({t for t, _, _ in imports(m) if ours(t) and t != m}) for m in MODULES}


def top_level_closure(module: str) -> set[str]:
    """Every module (ours and third-party) that importing ``module`` loads through module-level imports."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        for target, _, inside in imports(current):
            if not inside and target not in seen:
                seen.add(target)
                if ours(target):
                    todo.append(target)
    return seen


def heavy(names) -> set[str]:
    return {n for n in names if n.split(".")[0] in HEAVY}


def test_every_import_runs_down_the_layers():
    wrong = []
    for module, targets in GRAPH.items():
        for target in targets:
            same_front = layer(module) == layer(target) == "front"
            if LAYERS[layer(target)] > LAYERS[layer(module)] or same_front:
                wrong.append(f"{module} ({layer(module)}) -> {target} ({layer(target)})")
    assert not wrong, wrong


def test_only_the_demo_imports_the_testing_package():
    """``testing/`` is for the tests and the studies: the plugin's own modules never load it."""
    assert {layer(m) for m in MODULES if m.startswith("lm_eval_erank.testing.")} == {"testing"}
    wrong = [f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets
             if layer(t) == "testing" and layer(m) != "testing" and m not in TESTING_USERS]
    assert not wrong, wrong
    assert all(any(layer(t) == "testing" for t in GRAPH[m]) for m in TESTING_USERS)


def test_no_import_circle():
    state, stack, circles = {}, [], []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in GRAPH[module]:
            if state.get(target) == "open":
                circles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in GRAPH:
        if module not in state:
            visit(module)
    assert not circles, circles


def test_nothing_imports_the_package_init():
    offenders = [f"{m}:{line}" for m in MODULES for target, line, _ in imports(m) if target == "lm_eval_erank"]
    assert not offenders, offenders


def test_imports_inside_functions_only_defer_heavy_ones():
    """A function-level import must load something heavy that the module's top level does not
    (the start-up hook is exempt: it imports nothing at all until a watched module loads)."""
    wrong = []
    for module in MODULES:
        if module == HOOK:
            continue
        already = heavy(top_level_closure(module))
        for target, line, inside in imports(module):
            if not inside:
                continue
            loads = top_level_closure(target) | {target} if ours(target) else {target}
            if not heavy(loads) - already:
                wrong.append(f"{module}:{line} imports {target} inside a function, deferring nothing heavy")
    assert not wrong, wrong


def test_core_never_imports_lm_eval():
    wrong = [f"{m} loads {t}" for m in MODULES if layer(m) == "core"
             for t in top_level_closure(m) | {t for t, _, _ in imports(m)} if t.split(".")[0] == "lm_eval"]
    assert not wrong, wrong


def test_only_the_internals_module_imports_private_lm_eval_modules():
    wrong = [f"{m}:{line} imports {t}" for m in MODULES if m != INTERNALS for t, line, _ in imports(m)
             if t.split(".")[0] == "lm_eval" and (layer(m) != "harness" or t not in PUBLIC_LM_EVAL)]
    assert not wrong, wrong


def _lm_eval_attributes() -> tuple[set[str], set[str]]:
    """(attribute names lm-eval's classes define or assign, the private ones among those they use)."""
    assigned, private = set(), set()
    for name in LM_EVAL_CLASS_MODULES:
        spec = importlib.util.find_spec(name)
        paths = [Path(spec.origin)]
        if name == "lm_eval.tasks" and importlib.util.find_spec("lm_eval.tasks.manager"):
            paths.append(Path(importlib.util.find_spec("lm_eval.tasks.manager").origin))
        for path in paths:
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef):  # class attributes and dataclass fields
                    assigned |= {t.id for item in node.body if isinstance(item, (ast.Assign, ast.AnnAssign))
                                 for t in (item.targets if isinstance(item, ast.Assign) else [item.target])
                                 if isinstance(t, ast.Name)}
                if isinstance(node, ast.Attribute):
                    if isinstance(node.ctx, ast.Store):
                        assigned.add(node.attr)
                    if node.attr.startswith("_") and not node.attr.startswith("__"):
                        private.add(node.attr)
    return assigned, private


def test_only_the_internals_module_touches_lm_eval_objects():
    """In the harness (the only layer holding lm-eval's objects), no module but the internals one
    writes an attribute lm-eval's classes assign (nor an item of one), reads one of their private
    attributes, or calls setattr/delattr."""
    assigned, private = _lm_eval_attributes()
    wrong = []
    for module in MODULES:
        if module == INTERNALS or layer(module) != "harness":
            continue
        for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
            target = node.value if isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)) else node
            if isinstance(target, ast.Attribute):
                writes = isinstance(node.ctx, (ast.Store, ast.Del))
                if (writes and target.attr in assigned) or target.attr in private:
                    wrong.append(f"{module}:{node.lineno} {'writes' if writes else 'reads'} .{target.attr}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
                wrong.append(f"{module}:{node.lineno} calls {node.func.id}")
    assert not wrong, wrong


def test_importing_every_core_module_leaves_lm_eval_out():
    core = sorted(m for m in MODULES if layer(m) == "core")
    code = f"import importlib, sys\nfor m in {core!r}: importlib.import_module(m)\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'lm_eval'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]", done.stdout


def test_compare_never_loads_lm_eval_torch_or_transformers():
    """``compare/`` reads JSON: nothing it imports, at any level and through any of our modules,
    is lm-eval, torch, transformers or the harness; matplotlib only inside functions (the figures)."""
    wrong = []
    for module in (m for m in MODULES if layer(m) == "compare"):
        seen, todo = set(), [module]
        while todo:
            for target, _, _ in imports(todo.pop()):
                if target not in seen:
                    seen.add(target)
                    todo += [target] if ours(target) else []
        wrong += [f"{module} loads {t}" for t in sorted(seen) if t.split(".")[0] in ("lm_eval", "torch", "transformers")
                  or (ours(t) and layer(t) == "harness")]
        wrong += [f"{module}:{line} imports matplotlib at its top" for t, line, inside in imports(module)
                  if t.split(".")[0] == "matplotlib" and not inside]
    assert not wrong, wrong


def test_importing_and_running_compare_leaves_lm_eval_and_torch_out(tmp_path):
    code = ("import sys\nfrom lm_eval_erank.compare import cli, report, figures, runs, samples, analysis, caveats\n"
            "print(sorted(m for m in ('lm_eval', 'torch', 'transformers', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]", done.stdout


PUBLIC_PATHS = [
    ("lm_eval_erank.tasks", "ErankTask"), ("lm_eval_erank.task_utils", "dolly_docs"),
    ("lm_eval_erank.task_utils", "paper_sample"), ("lm_eval_erank.task_utils", "wikitext_text"),
    ("lm_eval_erank.multimodal_tasks", "MultimodalErankTask"), ("lm_eval_erank.multimodal_tasks", "cc_sbu_image"),
    ("lm_eval_erank.multimodal_tasks", "cc_sbu_text"), ("lm_eval_erank.multimodal_tasks", "llava_instruct_text"),
    ("lm_eval_erank.multimodal", "alignment_eranks"), ("lm_eval_erank.callback", "DiffErankCallback"),
    ("lm_eval_erank", "diff_erank"), ("lm_eval_erank", "DiffErankResult"), ("lm_eval_erank", "matrix_entropy"),
    ("lm_eval_erank.api", "pair_statistics"), ("lm_eval_erank.api", "diff_erank"), ("lm_eval_erank.cli", "main"),
    ("lm_eval_erank.compare", "compare"), ("lm_eval_erank.compare.cli", "main"),
]


@pytest.mark.parametrize("module, name", PUBLIC_PATHS)
def test_paths_users_rely_on_keep_working(module, name):
    assert callable(getattr(importlib.import_module(module), name))


def test_task_yamls_name_existing_functions():
    """Every ``!function`` of the shipped YAMLs names an importable object (dotted paths only)."""
    import re

    named = set()
    for yaml_file in (ROOT / "task_configs").glob("*.yaml"):
        named |= set(re.findall(r"!function\s+([\w.]+)", yaml_file.read_text(encoding="utf-8")))
    assert named
    for dotted in named:
        module, _, name = dotted.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name)), dotted
