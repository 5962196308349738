"""What the start-up hook (``lm_eval_erank_autoload``) and lm-eval's plugin entry points call.

The two cheap steps import neither torch nor our model code, so ``lm_eval ls tasks`` and
``lm_eval validate`` stay as fast as without the plugin; ``register`` is the full registration
(``plugin.register``), run when an evaluation starts or one of our tasks is loaded.
"""

from __future__ import annotations

import importlib.metadata as md

from . import lm_eval_internals as internals
from . import plugin

# Every model name we register -> "module:class" (lm-eval's lazy placeholder form; the class's
# @register_model upgrades the placeholder when lm-eval first asks for the name).
MODELS = {
    "hf-erank": "lm_eval_erank.model:ErankHFLM",
    "erank": "lm_eval_erank.model:ErankHFLM",
    "hf-multimodal-erank": "lm_eval_erank.multimodal_model:ErankMultimodalLM",
}


def add_model_names() -> None:
    """Make ``--model hf-erank`` resolvable without importing torch (lazy placeholders)."""
    internals.check_supported()
    for name, target in MODELS.items():
        internals.add_lazy_model(name, target)


def patch_task_manager() -> None:
    """Every TaskManager also indexes the shipped ``erank_*`` task directory and resolves
    ``erank_<name>`` for any task, group or tag it knows (``wrapping``)."""
    from . import wrapping

    internals.check_supported()
    internals.patch_task_manager(
        internals.task_manager_class(), add_paths=plugin.with_erank_task_dir, resolve=wrapping.resolve,
        expand=wrapping.expand,
    )


def register() -> None:
    plugin.register()


def release_entry_point_placeholders() -> None:
    """Drop lazy entry-point placeholders of our own names from lm-eval's registries.

    lm-eval's entry-point loader (upstream, after 0.4.13) registers each advertised name as an
    unloaded ``EntryPoint``; ``plugin.register`` then registers the real objects (with their
    aggregations and higher-is-better flags) under the same names, which would otherwise count
    as already taken. Only placeholders whose target lies in this package are touched.
    """
    internals.drop_registry_entries(
        keep=lambda target: not (isinstance(target, md.EntryPoint) and target.value.startswith("lm_eval_erank."))
    )
