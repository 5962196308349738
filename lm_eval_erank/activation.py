"""What the start-up hook (``lm_eval_erank_autoload``) and lm-eval's plugin entry points call.

The two cheap steps import neither torch nor our model code, so ``lm_eval ls tasks`` and
``lm_eval validate`` stay as fast as without the plugin; ``register`` is the full registration
(``plugin.register``), run when an evaluation starts or one of our tasks is loaded.
"""

from __future__ import annotations

import importlib.metadata as md

from . import plugin

# Every model name we register -> "module:class" (lm-eval's lazy placeholder form; the class's
# @register_model upgrades the placeholder when lm-eval first asks for the name).
MODELS = {
    "hf-erank": "lm_eval_erank.model:ErankHFLM",
    "erank": "lm_eval_erank.model:ErankHFLM",
    "hf-multimodal-erank": "lm_eval_erank.multimodal_model:ErankMultimodalLM",
}


def add_model_names() -> None:
    """Make ``--model hf-erank`` resolvable without importing torch (lazy placeholders).

    lm-eval's built-in names are registered first: its registry loads them only while empty."""
    import lm_eval.models  # noqa: F401
    from lm_eval.api.registry import model_registry

    for name, target in MODELS.items():
        if name not in model_registry:
            model_registry.register(name, target=target)


def patch_task_manager() -> None:
    """Every TaskManager also indexes the shipped ``erank_*`` task directory and resolves
    ``erank_<name>`` for any task, group or tag it knows (``wrapping.install``)."""
    from lm_eval.tasks.manager import TaskManager

    from . import wrapping

    if not getattr(TaskManager.__init__, "_erank_tasks", False):
        TaskManager.__init__ = plugin._with_erank_tasks(TaskManager.__init__)
    wrapping.install(TaskManager)


def register() -> None:
    plugin.register()


def release_entry_point_placeholders() -> None:
    """Drop lazy entry-point placeholders of our own names from lm-eval's registries.

    lm-eval's entry-point loader (upstream, after 0.4.13) registers each advertised name as an
    unloaded ``EntryPoint``; ``plugin.register`` then registers the real objects (with their
    aggregations and higher-is-better flags) under the same names, which would otherwise count
    as already taken. Only placeholders whose target lies in this package are touched.
    """
    from lm_eval.api import registry

    registries = {id(r): r for r in vars(registry).values() if isinstance(r, registry.Registry)}
    for each in registries.values():
        objs = getattr(each, "_objs", None)
        if not isinstance(objs, dict):
            continue
        for alias, target in list(objs.items()):
            if isinstance(target, md.EntryPoint) and target.value.startswith("lm_eval_erank."):
                del objs[alias]
