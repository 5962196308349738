"""Start-up, in order: what the start-up hook (``lm_eval_erank_autoload``), lm-eval's plugin
entry points, ``import lm_eval_erank`` and the ``lm-eval-erank`` command call.

1. :func:`add_model_names` (after ``lm_eval.api.registry`` imports): ``hf-erank``,
   ``erank`` and ``hf-multimodal-erank`` become lazy names (no torch, no model code), and our
   errors that end a command show as one or two lines (``error_display``);
2. :func:`patch_task_manager` (after ``lm_eval.tasks``): every TaskManager also indexes the
   shipped task directory and resolves ``erank_<name>`` for any task, group or tag it knows;
3. :func:`register` (after ``lm_eval.evaluator`` or our task module; idempotent): lm-eval's
   built-in models and metrics first (its registries fill lazily only while empty, so
   registering first would hide ``--model hf`` and the built-in aggregations), then the metric
   table, the models, steps 1-2 again, the error for models without our request types, the
   result writers and the run flags' checks (``flags``).

Steps 1 and 2 import neither torch nor our model code, so ``lm_eval ls tasks`` and ``lm_eval
validate`` stay as fast as without the plugin.
"""

from __future__ import annotations

import importlib.metadata as md

from . import lm_eval_internals as internals
from . import error_display, request_types, writers
from .task_dirs import with_erank_task_dir

# Every model name we register -> "module:class" (lm-eval's lazy placeholder form; the class's
# @register_model upgrades the placeholder when lm-eval first asks for the name, only when this
# names the defining module).
MODELS = {
    "hf-erank": "lm_eval_erank.harness.model:ErankHFLM",
    "erank": "lm_eval_erank.harness.model:ErankHFLM",
    "hf-multimodal-erank": "lm_eval_erank.harness.multimodal_model:ErankMultimodalLM",
}
_registered = False


def add_model_names() -> None:
    """Make ``--model hf-erank`` resolvable without importing torch (lazy placeholders); our
    errors that end a command show as one or two lines from here on (``error_display``)."""
    error_display.install()
    internals.check_supported()
    for name, target in MODELS.items():
        internals.add_lazy_model(name, target)


def patch_task_manager() -> None:
    """Every TaskManager also indexes the shipped ``erank_*`` task directory and resolves
    ``erank_<name>`` for any task, group or tag it knows (``wrapping``)."""
    from . import wrapping  # imports lm-eval's task module: deferred to when a TaskManager is needed

    internals.check_supported()
    internals.patch_task_manager(internals.task_manager_class(), add_paths=with_erank_task_dir,
                                 resolve=wrapping.resolve, expand=wrapping.expand)
    internals.expose_task_manager_metadata()  # 0.4.10/0.4.11: --metadata for class-based tasks too


def release_entry_point_placeholders() -> None:
    """Drop lazy entry-point placeholders of our own names from lm-eval's registries.

    lm-eval's entry-point loader (upstream, after 0.4.13) registers each advertised name as an
    unloaded ``EntryPoint``; :func:`register` then registers the real objects (with their
    aggregations and higher-is-better flags) under the same names, which would otherwise count
    as already taken. Only placeholders whose target lies in this package are touched.
    """
    internals.drop_registry_entries(
        keep=lambda target: not (isinstance(target, md.EntryPoint) and target.value.startswith("lm_eval_erank."))
    )


def register() -> None:
    """The full registration (idempotent); UnsupportedLmEvalError first if the installed lm-eval
    is outside the supported releases."""
    global _registered
    if _registered:
        return
    error_display.install()
    internals.check_supported()
    import lm_eval.api.metrics  # noqa: F401  (lm-eval's built-ins first)
    import lm_eval.models  # noqa: F401

    from . import metrics  # lm-eval's registry and the maths (torch): deferred to the full registration

    release_entry_point_placeholders()  # names lm-eval's entry-point loader reserved for us
    metrics.register()
    from . import model, multimodal_model  # noqa: F401  (importing registers hf-erank, hf-multimodal-erank)
    from . import flags  # the run flags' checks and views (it needs the model classes)

    patch_task_manager()
    request_types.install()
    writers.install()
    flags.install()
    _registered = True
