"""Activate lm-eval-erank wherever lm-eval runs (``lm_eval``, ``python -m lm_eval``, ``torchrun``,
``simple_evaluate``...): imported at interpreter start-up by ``lm_eval_erank_autoload.pth``.

lm-eval 0.4.13 discovers no plugins, so this module installs a post-import hook (a
``sys.meta_path`` finder that wraps the loader of a few lm-eval modules) and does nothing else:
it imports only ``os`` and ``sys``, and never imports lm-eval, torch or this package itself.
When one of the watched modules has finished executing, it calls into
``lm_eval_erank.harness.activation``:

- ``lm_eval.api.registry``  -> the ``hf-erank`` / ``hf-multimodal-erank`` models as lazy names;
- ``lm_eval.tasks`` -> every TaskManager indexes the ``erank_*`` task directory and resolves
  ``erank_<name>``;
- ``lm_eval.evaluator`` or ``lm_eval_erank.harness.tasks`` (a task YAML naming ``ErankTask``) ->
  ``register()`` (metrics, models, errors, Ctrl-C-safe writers; imports torch, as any evaluation does).

``LM_EVAL_ERANK_AUTOLOAD=0`` (or false/no/off) turns all of it off. A failure inside a callback is
reported as a warning and never raised into the importing program.
"""

import os
import sys

ENV_VAR = "LM_EVAL_ERANK_AUTOLOAD"
# module -> name of the lm_eval_erank.harness.activation function to call once it has executed
HOOKS = {
    "lm_eval.api.registry": "add_model_names",
    "lm_eval.tasks": "patch_task_manager",  # defines or re-exports TaskManager in every release
    "lm_eval.evaluator": "register",
    "lm_eval_erank.harness.tasks": "register",
}
# True while the hook imports lm_eval_erank.harness.activation: lm_eval_erank/__init__ then skips its
# own full registration (that import must stay light).
LIGHT_IMPORT = False


def enabled() -> bool:
    return os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


def _call(function_name, module_name):
    global LIGHT_IMPORT
    try:
        LIGHT_IMPORT = True
        try:
            from lm_eval_erank.harness import activation
        finally:
            LIGHT_IMPORT = False
        getattr(activation, function_name)()
    except Exception as error:  # never break the user's program because of the plugin
        import warnings

        warnings.warn(
            f"lm-eval-erank could not activate after importing {module_name} ({type(error).__name__}: {error}); "
            f"lm-eval runs without the plugin. Set {ENV_VAR}=0 to silence this.",
            RuntimeWarning,
            stacklevel=2,
        )


class _Loader:
    """Wraps a module's loader: executes the module, restores the real loader, runs the callback."""

    def __init__(self, loader, function_name):
        self._loader = loader
        self._function_name = function_name

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _call(self._function_name, module.__name__)


class PostImportFinder:
    """A ``sys.meta_path`` finder that hooks the modules in ``HOOKS`` and finds nothing itself."""

    def __init__(self):
        self.pending = dict(HOOKS)

    def find_spec(self, fullname, path=None, target=None):
        function_name = self.pending.get(fullname)
        if function_name is None:
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None) if finder is not self else None
            spec = find_spec(fullname, path, target) if find_spec is not None else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        del self.pending[fullname]
        if not self.pending and self in sys.meta_path:
            sys.meta_path.remove(self)
        spec.loader = _Loader(spec.loader, function_name)
        return spec


def install():
    """Put the finder first on ``sys.meta_path`` (once), unless the environment turns it off."""
    if not enabled() or any(isinstance(f, PostImportFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, PostImportFinder())


install()
