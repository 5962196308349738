"""Every touch of lm-eval's internals, for each supported release (0.4.10 to 0.4.13).

The rest of the package reaches lm-eval's non-public parts only through this module. Where the
releases differ, the difference is found by testing for the feature (a module, a function, an
attribute), never by comparing version strings; the version is compared once, in
:func:`check_supported`, to refuse releases no test has proven.

=================================  ==========================================================
What we touch                      How it differs across the supported releases
=================================  ==========================================================
``TaskManager``                    0.4.12+: ``lm_eval.tasks.manager`` with an ``Entry`` index
                                   (``_entry``); 0.4.10/0.4.11: ``lm_eval.tasks`` with a dict
                                   index (``_load_individual_task_or_group``). Both are
                                   importable as ``lm_eval.tasks.TaskManager``.
task index (``erank_<name>``)      ``{name: Entry}`` vs ``{name: {"type", "yaml_path", "task"}}``:
                                   :func:`task_index` gives both one interface.
YAML loader                        0.4.12+: ``lm_eval.tasks._yaml_loader.load_yaml``;
                                   0.4.10/0.4.11: ``lm_eval.utils.load_yaml_config``, whose
                                   ``!function`` finds only files next to the YAML (patched to
                                   import a module by name as 0.4.12+ does).
``stderr_for_metric``              bound by name in ``lm_eval.api.metrics`` and
                                   ``lm_eval.evaluator_utils`` in all: both bindings replaced.
``aggregate_subtask_metrics``      0.4.12+: looked up in ``lm_eval.api.metrics`` at call time
                                   (``api/group.py``); 0.4.10/0.4.11: bound by name in
                                   ``lm_eval.evaluator_utils``: every binding replaced.
``EvaluationTracker`` writers      ``save_results_aggregated`` / ``save_results_samples``,
                                   ``__init__(output_path=...)`` and the files they name
                                   (``date_id``, the sanitised model name): the same in all.
registries                         ``Registry._objs`` and lazy ``register(name, target=...)``:
                                   the same in all (``lm_eval.api.registry``).
CLI                                ``lm_eval._cli.HarnessCLI`` (``_parser``, ``_subparsers``),
                                   its package ``lm_eval._cli`` (every command's code) and
                                   ``lm_eval.utils.setup_logging``: the same in all.
``LM`` request methods             a method per request type on ``lm_eval.api.model.LM``: the same.
``ConfigurableTask`` internals     ``_metric_fn_list`` / ``_metric_fn_kwargs``, ``_instances``,
                                   ``_filters``, ``Instance.filtered_resps``: the same in all.
HFLM data-parallel ranks           ``_rank``, ``_world_size``, ``_device``: the same in all.
``apply_template``, wikitext       ``lm_eval.utils.apply_template``; the detokenizer of lm-eval's
                                   own ``wikitext`` task (``tasks.wikitext.preprocess_wikitext``).
``simple_evaluate``                ``lm_eval.evaluator.simple_evaluate``, looked up there at call
                                   time by the CLI and ``lm_eval.simple_evaluate``: the same in all.
``print_writeout`` (--write_out)   bound by name in ``lm_eval.evaluator``; 0.4.10/0.4.11 print
                                   every request of document 0, 0.4.12+ the first.
sample loggers                     ``WandbLogger._generate_dataset`` in all; Trackio's
                                   ``_sample_to_trace``: 0.4.12+.
TaskManager ``metadata``           0.4.10/0.4.11 merge it into YAML tasks' configs only (exposed
                                   while loading); 0.4.12+ into every task's (nothing to do).
=================================  ==========================================================

Nothing else in the package imports a private lm-eval module or writes to an lm-eval object
(``tests/test_layers.py`` checks it over every module).
"""

from __future__ import annotations

import contextvars
import copy
import functools
import importlib
import importlib.metadata as md
import importlib.util
import inspect
import json
import re
import weakref
from pathlib import Path
from typing import Any, Callable

from ..core.errors import ErankError

SUPPORTED_LM_EVAL = ("0.4.10", "0.4.13")  # oldest, newest: the releases CI proves (both ends)


class UnsupportedLmEvalError(ErankError, RuntimeError):
    """The installed lm-eval is outside the releases this plugin supports."""


def _release(version: str) -> tuple[int, int, int]:
    """``"0.4.13"`` -> (0, 4, 13); pre/dev/post/local parts are dropped (``0.4.14.dev0`` -> (0, 4, 14))."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if match is None:
        raise UnsupportedLmEvalError(f"cannot read lm-eval's version {version!r}")
    return tuple(int(part or 0) for part in match.groups())


@functools.cache
def lm_eval_version() -> str:
    """The installed lm-eval's version string (``lm-eval`` distribution metadata; read once: the
    start-up hook's steps and ``register`` each check it)."""
    return md.version("lm-eval")


def check_supported(version: str | None = None) -> None:
    """UnsupportedLmEvalError naming the supported range unless ``version`` (default: the
    installed lm-eval) lies in it.

    >>> check_supported("0.4.13")
    >>> check_supported("0.4.9")
    Traceback (most recent call last):
    ...
    lm_eval_erank.harness.lm_eval_internals.UnsupportedLmEvalError: lm-eval-erank supports lm-eval 0.4.10 to 0.4.13; this environment has lm-eval 0.4.9. Install a supported release: pip install 'lm-eval>=0.4.10,<=0.4.13'
    """
    version = lm_eval_version() if version is None else version
    oldest, newest = SUPPORTED_LM_EVAL
    if not _release(oldest) <= _release(version) <= _release(newest):
        raise UnsupportedLmEvalError(
            f"lm-eval-erank supports lm-eval {oldest} to {newest}; this environment has lm-eval {version}. "
            f"Install a supported release: pip install 'lm-eval>={oldest},<={newest}'"
        )


# ---- patching helpers ---------------------------------------------------------------------------

def _marker(make_wrapper: Callable) -> str:
    return f"_erank_patched_by_{make_wrapper.__name__}"


def patch_method(cls, name: str, make_wrapper: Callable[[Callable], Callable]) -> None:
    """``cls.name = make_wrapper(cls.name)`` unless ``make_wrapper`` already wrapped it (its
    mark survives further wrapping by ``functools.wraps``, which copies ``__dict__``)."""
    original, marker = getattr(cls, name), _marker(make_wrapper)
    if not getattr(original, marker, False):
        wrapper = make_wrapper(original)
        setattr(wrapper, marker, True)
        setattr(cls, name, wrapper)


def patch_function_everywhere(name: str, make_wrapper: Callable[[Callable], Callable]) -> None:
    """Replace the function ``lm_eval.api.metrics.<name>`` in every lm-eval module that binds it
    by name (the binding differs across releases), with one wrapper."""
    modules = [importlib.import_module(m) for m in ("lm_eval.api.metrics", "lm_eval.evaluator_utils", "lm_eval.api.group")
               if importlib.util.find_spec(m) is not None]
    original, marker = getattr(modules[0], name), _marker(make_wrapper)
    if getattr(original, marker, False):
        return
    wrapper = make_wrapper(original)
    setattr(wrapper, marker, True)
    for module in modules:
        if getattr(module, name, None) is original:
            setattr(module, name, wrapper)


def route_stderr_for_metric(stderr_of: Callable[[Callable, int], Any]) -> None:
    """lm-eval's ``stderr_for_metric(metric, bootstrap_iters)`` asks ``stderr_of(metric,
    bootstrap_iters)`` first and takes its answer (a stderr function, or None for no stderr)
    unless it is ``NotImplemented``, in which case lm-eval answers as before."""

    def asking_erank_first(original):
        def stderr_for_metric(metric, bootstrap_iters):
            ours = stderr_of(metric, bootstrap_iters)
            return original(metric=metric, bootstrap_iters=bootstrap_iters) if ours is NotImplemented else ours

        return stderr_for_metric

    patch_function_everywhere("stderr_for_metric", asking_erank_first)


def group_means_skip_missing() -> None:
    """Groups average over the subtasks that have a value (a task whose texts were all excluded
    reports None); None when no subtask has one (``aggregate_subtask_metrics``)."""

    def skipping_none(original):
        def aggregate_subtask_metrics(metrics, sizes, weight_by_size=True):
            kept = [(m, s) for m, s in zip(metrics, sizes) if m is not None]
            if not kept:
                return None
            return original([m for m, _ in kept], [s for _, s in kept], weight_by_size)

        return aggregate_subtask_metrics

    patch_function_everywhere("aggregate_subtask_metrics", skipping_none)


# ---- models and tasks: their private parts -------------------------------------------------------

def add_request_method(request_type: str, method: Callable) -> None:
    """Give lm-eval's ``LM`` base class ``method`` for ``request_type`` unless it has one (the
    evaluator calls ``getattr(lm, request_type)(instances)``)."""
    from lm_eval.api.model import LM

    if not hasattr(LM, request_type):
        setattr(LM, request_type, method)


def set_data_parallel_ranks(lm, rank: int, world_size: int, device) -> None:
    """Make an HFLM one of ``world_size`` data-parallel ranks (HFLM counts ranks only on GPUs)."""
    lm._rank, lm._world_size, lm._device = rank, world_size, device


def drop_metric_functions(task, names) -> None:
    """Remove ``names`` from a ConfigurableTask's metric functions (their values come from
    elsewhere; lm-eval would look them up by name for every document)."""
    for name in names:
        task._metric_fn_list.pop(name, None)
        task._metric_fn_kwargs.pop(name, None)


def apply_filters_passing_through(task, apply_filters: Callable[[], None], passes_through: Callable) -> None:
    """Run ``apply_filters()`` (the task's filters) on its instances except those
    ``passes_through(instance)`` selects, which get their raw response under every filter's name."""
    instances = task._instances
    try:
        task._instances = [i for i in instances if not passes_through(i)]
        if task._instances:
            apply_filters()
    finally:
        task._instances = instances
    for instance in instances:
        if passes_through(instance):
            for ensemble in task._filters:
                instance.filtered_resps[ensemble.name] = instance.resps[0]


def apply_template(template: str, doc: dict) -> str:
    """A Jinja ``doc_to_text``-style template filled from ``doc``, as lm-eval fills it."""
    from lm_eval import utils

    return utils.apply_template(template, doc)


def wikitext_detokenizer() -> Callable[[dict], str]:
    """lm-eval's own ``wikitext_detokenizer``: the text its ``wikitext`` task scores."""
    from lm_eval.tasks.wikitext.preprocess_wikitext import wikitext_detokenizer as detokenizer

    return detokenizer


# ---- registries, tracker, CLI -------------------------------------------------------------------

def registry_module():
    import lm_eval.api.registry as registry

    return registry


def add_lazy_model(name: str, target: str) -> None:
    """Register ``name`` as a lazy ``"module:Class"`` placeholder (no import until first use)."""
    import lm_eval.models  # noqa: F401  (built-ins first: the registry loads them only while empty)

    registry = registry_module()
    if name not in registry.model_registry:
        registry.model_registry.register(name, target=target)


def drop_registry_entries(keep: Callable[[Any], bool]) -> None:
    """Delete every entry of lm-eval's registries whose raw target ``keep`` rejects."""
    registry = registry_module()
    for each in {id(r): r for r in vars(registry).values() if isinstance(r, registry.Registry)}.values():
        objs = getattr(each, "_objs", None)
        if isinstance(objs, dict):
            for alias, target in list(objs.items()):
                if not keep(target):
                    del objs[alias]


def evaluation_tracker_class():
    from lm_eval.loggers.evaluation_tracker import EvaluationTracker

    return EvaluationTracker


TRACKER_WRITERS = ("save_results_aggregated", "save_results_samples")


def patch_evaluation_tracker(check_output_path: Callable, before_samples_saved: Callable,
                             while_writing: Callable, when_not_written: Callable) -> None:
    """Teach lm-eval's ``EvaluationTracker`` (idempotent): ``check_output_path(output_path)`` runs
    when one is created; ``before_samples_saved(samples)`` sees a task's sample dicts before they
    are stringified and written; each writer runs inside the context ``while_writing()``; a
    writer that returns without having written its file (lm-eval catches every error of its
    writers and only logs "Could not save ...") calls ``when_not_written(what, output_path,
    results, samples)`` with the run's results and every task's samples it has seen."""
    tracker = evaluation_tracker_class()

    def checks_results_written(save):
        @functools.wraps(save)
        def save_results_aggregated(self, results, samples=None, *args, **kwargs):
            before = getattr(self, "date_id", None)
            outcome = save(self, results, samples, *args, **kwargs)
            _SEEN_RESULTS[self] = (results, samples)
            written = _results_file(self)
            if self.output_path and (getattr(self, "date_id", None) == before or not written.is_file()):
                when_not_written("the results", self.output_path, results, samples)
            return outcome

        return save_results_aggregated

    def sees_samples(save):
        @functools.wraps(save)
        def save_results_samples(self, task_name, samples, *args, **kwargs):
            before_samples_saved(samples)
            outcome = save(self, task_name, samples, *args, **kwargs)
            if self.output_path and not _samples_file(self, task_name).is_file():
                results, seen = _SEEN_RESULTS.get(self, (None, None))
                when_not_written(f"the samples of {task_name}", self.output_path, results,
                                 {**(seen or {}), task_name: samples})
            return outcome

        return save_results_samples

    def checks_output_path(init):
        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            check_output_path(kwargs.get("output_path", args[0] if args else None))
            init(self, *args, **kwargs)

        return __init__

    def guarded(write):
        @functools.wraps(write)
        def wrapper(*args, **kwargs):
            with while_writing():
                return write(*args, **kwargs)

        return wrapper

    patch_method(tracker, "save_results_aggregated", checks_results_written)
    patch_method(tracker, "save_results_samples", sees_samples)
    patch_method(tracker, "__init__", checks_output_path)
    for name in TRACKER_WRITERS:  # after the hooks above: they run inside the guard
        patch_method(tracker, name, guarded)


# tracker -> (results, {task: samples}) of its last save_results_aggregated
_SEEN_RESULTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _output_folder(tracker) -> Path:
    """Where lm-eval's writers put a run's files: ``output_path``'s folder for a ``.json`` name,
    else ``output_path/<sanitised model name>``."""
    path = Path(tracker.output_path)
    return path.parent if path.suffix == ".json" else path / str(tracker.general_config_tracker.model_name_sanitized)


def _results_file(tracker) -> Path:
    """The results file ``save_results_aggregated`` writes (named after ``date_id``, which it sets)."""
    path, date_id = Path(tracker.output_path), getattr(tracker, "date_id", None)
    if path.suffix == ".json":
        return path.with_name(f"{path.stem}_{date_id}.json")
    return _output_folder(tracker) / f"results_{date_id}.json"


def _samples_file(tracker, task_name: str) -> Path:
    return _output_folder(tracker) / f"samples_{task_name}_{getattr(tracker, 'date_id', None)}.jsonl"


def results_json(value, indent: int | None = 2) -> str:
    """``value`` as JSON, what lm-eval cannot serialise converted as its result writers convert it."""
    from lm_eval.utils import handle_non_serializable

    return json.dumps(value, indent=indent, default=handle_non_serializable, ensure_ascii=False)


def harness_cli(extra_help: str = ""):
    """lm-eval's CLI object (``HarnessCLI``), logging set up as ``lm_eval``'s entry point does,
    with ``extra_help`` appended to the help of the top-level and ``run`` commands."""
    from lm_eval._cli import HarnessCLI
    from lm_eval.utils import setup_logging

    setup_logging()
    cli = HarnessCLI()
    for parser in (cli._parser, cli._subparsers.choices["run"]):
        parser.epilog = f"{parser.epilog or ''}\n{extra_help}"
    return cli


CLI_PACKAGE = "lm_eval._cli"  # lm-eval's command line (HarnessCLI and its subcommands): the same in all


def raised_through_cli(traceback, entry_modules: tuple[str, ...] = ()) -> bool:
    """Whether an exception's ``traceback`` passes through lm-eval's command line (the code of
    ``lm_eval`` / ``lm-eval`` / ``python -m lm_eval``) or a module of ``entry_modules``."""
    while traceback is not None:
        module = traceback.tb_frame.f_globals.get("__name__", "")
        if module == CLI_PACKAGE or module.startswith(CLI_PACKAGE + ".") or module in entry_modules:
            return True
        traceback = traceback.tb_next
    return False


def model_arguments(model_args) -> dict[str, Any]:
    """``simple_evaluate``'s ``model_args`` (a ``key=value,...`` string or a dict) as the dict
    lm-eval makes of it.

    >>> model_arguments("pretrained=/models/smollm2,gguf_file=model.gguf")
    {'pretrained': '/models/smollm2', 'gguf_file': 'model.gguf'}
    """
    if isinstance(model_args, dict):
        return model_args
    if not model_args:
        return {}
    from lm_eval.utils import simple_parse_args_string

    return simple_parse_args_string(model_args)


# ---- the evaluator's entry and write-out, the sample loggers ---------------------------------

def check_evaluation_arguments(check: Callable[[dict], None]) -> None:
    """``check(arguments)`` runs first in every ``lm_eval.evaluator.simple_evaluate`` call
    (``arguments``: every parameter by name, defaults filled in). lm-eval's CLI (``run``) calls
    it with its flags after it has matched the task names and before the model is created; the
    package namespace's ``lm_eval.simple_evaluate`` looks it up there at call time."""
    import lm_eval.evaluator as evaluator

    def checking_first(simple_evaluate):
        signature = inspect.signature(simple_evaluate)

        @functools.wraps(simple_evaluate)
        def checked(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            check(dict(bound.arguments))
            return simple_evaluate(*args, **kwargs)

        return checked

    patch_method(evaluator, "simple_evaluate", checking_first)


def writeout_requests_apart(is_extra: Callable[[Any], bool]) -> None:
    """``--write_out`` (``evaluator.print_writeout(task)``, bound by name) prints a task's first
    request of document 0: for a task that also sends requests ``is_extra`` selects, it prints
    the first of the task's own (what the standard task prints), then the first extra one."""
    import lm_eval.evaluator as evaluator

    def own_first(print_writeout):
        @functools.wraps(print_writeout)
        def print_own_then_extra(task):
            instances = task._instances or []
            extra = [i for i in instances if is_extra(i)]
            if not extra:
                return print_writeout(task)
            try:
                for part in ([i for i in instances if not is_extra(i)], extra):
                    task._instances = part
                    print_writeout(task)
            finally:
                task._instances = instances

        return print_own_then_extra

    patch_method(evaluator, "print_writeout", own_first)


def sample_loggers_read(sample_view: Callable[[dict], dict],
                        metric_list_view: Callable[[list[dict], list[dict]], list[dict]]) -> None:
    """lm-eval's W&B logger builds a task's sample table (``WandbLogger._generate_dataset(samples,
    task_config)``) from ``sample_view(sample)`` of each sample and the columns
    ``metric_list_view(metric_list, samples)``; Trackio's (0.4.12+: ``_sample_to_trace``, per
    sample) from ``sample_view(sample)``. Their samples artifacts keep the samples whole."""
    from lm_eval.loggers import wandb_logger

    def viewing_table(generate_dataset):
        @functools.wraps(generate_dataset)
        def _generate_dataset(self, data, config):
            if "metric_list" in config:
                config = {**config, "metric_list": metric_list_view(config["metric_list"], data)}
            return generate_dataset(self, [sample_view(sample) for sample in data], config)

        return _generate_dataset

    def viewing_trace(sample_to_trace):
        @functools.wraps(sample_to_trace)
        def _sample_to_trace(trackio_module, sample, *args, **kwargs):
            return sample_to_trace(trackio_module, sample_view(sample), *args, **kwargs)

        return _sample_to_trace

    patch_method(wandb_logger.WandbLogger, "_generate_dataset", viewing_table)
    if importlib.util.find_spec("lm_eval.loggers.trackio_logger") is not None:
        patch_method(importlib.import_module("lm_eval.loggers.trackio_logger"), "_sample_to_trace", viewing_trace)


# ---- tasks ------------------------------------------------------------------------------------

def task_manager_class():
    from lm_eval.tasks import TaskManager

    return TaskManager


def lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def _new_yaml_loader():
    try:
        from lm_eval.tasks._yaml_loader import load_yaml
    except ImportError:
        return None
    return load_yaml


def load_yaml(path, resolve_functions: bool = True) -> dict[str, Any]:
    """A task YAML as lm-eval loads it (``include`` merged; ``!function`` resolved or not)."""
    new = _new_yaml_loader()
    if new is not None:
        return new(path, resolve_func=resolve_functions)
    from lm_eval import utils

    install_function_import_fallback()
    return utils.load_yaml_config(yaml_path=str(path), mode="full" if resolve_functions else "simple")


def install_function_import_fallback() -> None:
    """lm-eval 0.4.10/0.4.11 resolve ``!function a.b.f`` only from a file ``a.b.py`` next to the
    YAML; fall back to importing module ``a.b`` by name, as 0.4.12+ do (our YAMLs and the
    README name ``!function lm_eval_erank.tasks.ErankTask``). No-op where the new loader exists."""
    if _new_yaml_loader() is not None:
        return
    from lm_eval import utils

    def importing_by_name(original):
        def import_function(loader, node, yaml_path):
            qualified = loader.construct_scalar(node)
            module_name, _, function_name = qualified.rpartition(".")
            if module_name and not (Path(yaml_path).parent / f"{module_name}.py").is_file():
                try:
                    return getattr(importlib.import_module(module_name), function_name)
                except (ImportError, AttributeError):
                    pass  # lm-eval's own error below
            return original(loader, node, yaml_path)

        return import_function

    if not getattr(utils.import_function, _marker(importing_by_name), False):
        utils.import_function = importing_by_name(utils.import_function)
        setattr(utils.import_function, _marker(importing_by_name), True)


class TaskIndex:
    """One interface over a TaskManager's task index, whatever its release's representation.

    ``kind(name)``: "task" (YAML task), "python_task" (a config naming a ``class``), "group",
    "tag" or None; ``config(name)``: the full config, ``!function`` resolved; ``members(tag)``;
    ``yaml_path(name)``: the file it comes from (None if generated); ``add_task`` /
    ``add_group`` / ``add_tag`` insert generated entries.
    """

    def __contains__(self, name) -> bool:  # pragma: no cover - interface
        raise NotImplementedError


class EntryIndex(TaskIndex):
    """0.4.12+: ``{name: Entry(name, kind, yaml_path, cfg, tags)}``."""

    def __init__(self, entries: dict):
        from lm_eval.tasks._index import Entry, Kind

        self.entries, self._entry, self._kind = entries, Entry, Kind

    def __contains__(self, name):
        return name in self.entries

    def kind(self, name):
        entry = self.entries.get(name)
        if entry is None:
            return None
        return {self._kind.TAG: "tag", self._kind.GROUP: "group", self._kind.PY_TASK: "python_task"}.get(entry.kind, "task")

    def config(self, name):
        entry = self.entries[name]
        if entry.yaml_path is not None:
            return load_yaml(entry.yaml_path)
        return None if entry.cfg is None else copy.deepcopy(entry.cfg)

    def members(self, name):
        return sorted(self.entries[name].tags)

    def yaml_path(self, name):
        path = self.entries[name].yaml_path
        return None if path is None else Path(path)

    def add_task(self, name, config):
        self.entries[name] = self._entry(name=name, kind=self._kind.PY_TASK, yaml_path=None, cfg=config)

    def add_group(self, name, config):
        self.entries[name] = self._entry(name=name, kind=self._kind.GROUP, yaml_path=None, cfg=config)

    def add_tag(self, name, members):
        self.entries[name] = self._entry(name=name, kind=self._kind.TAG, yaml_path=None, tags=set(members))


class DictIndex(TaskIndex):
    """0.4.10/0.4.11: ``manager._task_index = {name: {"type", "yaml_path", "task"}}``; generated
    configs are kept under ``"erank_config"``, served by the patched ``_get_config`` and
    ``_name_is_registered``; like 0.4.12+, generated names are never listed."""

    def __init__(self, manager):
        self.manager, self.entries = manager, manager._task_index

    def __contains__(self, name):
        return name in self.entries

    def kind(self, name):
        entry = self.entries.get(name)
        return None if entry is None else entry["type"]

    def config(self, name):
        entry = self.entries[name]
        if "erank_config" in entry:
            return copy.deepcopy(entry["erank_config"])
        if entry["yaml_path"] == -1:
            return None
        return load_yaml(entry["yaml_path"])

    def members(self, name):
        return list(self.entries[name]["task"])

    def yaml_path(self, name):
        entry = self.entries[name]
        return None if entry["yaml_path"] == -1 or "erank_config" in entry else Path(entry["yaml_path"])

    def _add(self, name, entry):
        self.entries[name] = entry  # not listed: the patched _name_is_registered finds it

    def add_task(self, name, config):
        # lm-eval 0.4.10's run log prints every task's yaml_path as a path: show the base's file
        base = config.get("metadata", {}).get("erank_wraps", "")
        source = self.yaml_path(base) if base in self.entries else None
        self._add(name, {"type": "python_task", "yaml_path": str(source or f"erank_ wrapper of {base}"),
                         "erank_config": config})

    def add_group(self, name, config):
        self._add(name, {"type": "group", "task": -1, "yaml_path": -1, "erank_config": config})

    def add_tag(self, name, members):
        self._add(name, {"type": "tag", "task": list(members), "yaml_path": -1})


def task_index(manager_or_entries) -> TaskIndex:
    """The :class:`TaskIndex` of a TaskManager (or of a 0.4.12+ ``{name: Entry}`` dict)."""
    if isinstance(manager_or_entries, TaskIndex):
        return manager_or_entries
    if isinstance(manager_or_entries, dict):
        return EntryIndex(manager_or_entries)
    if hasattr(manager_or_entries, "_entry"):
        return EntryIndex(manager_or_entries._index)
    return DictIndex(manager_or_entries)


def patch_task_manager(manager_cls, add_paths: Callable, resolve: Callable, expand: Callable) -> None:
    """Teach ``manager_cls`` (idempotent):

    - ``add_paths(include_path) -> include_path`` runs on every ``__init__``'s ``include_path``;
    - ``resolve(index, name)`` is asked about every name the index lacks before it is looked
      up, and may add entries for it to ``index`` (a :class:`TaskIndex`);
    - ``expand(index, pattern, all_names) -> names`` for a ``--tasks`` pattern that matches nothing.
    """

    def make_init(init):
        @functools.wraps(init)
        def __init__(self, *args, include_path=None, **kwargs):
            init(self, *args, include_path=add_paths(include_path), **kwargs)

        return __init__

    def make_match(match):
        @functools.wraps(match)
        def match_tasks(self, task_list):
            index, matched = task_index(self), set(match(self, task_list))
            for pattern in [task_list] if isinstance(task_list, str) else task_list:  # 0.4.10 passes one str
                if isinstance(pattern, str) and not match(self, [pattern]):
                    matched.update(expand(index, pattern, list(self.all_tasks)))
            return sorted(matched)

        return match_tasks

    patch_method(manager_cls, "__init__", make_init)
    patch_method(manager_cls, "match_tasks", make_match)
    if hasattr(manager_cls, "_entry"):  # 0.4.12+: every lookup goes through _entry(name)
        def make_entry(lookup):
            @functools.wraps(lookup)
            def _entry(self, name):
                entry = lookup(self, name)
                if entry is None and isinstance(name, str):
                    resolve(task_index(self), name)
                    entry = lookup(self, name)
                return entry

            return _entry

        patch_method(manager_cls, "_entry", make_entry)
        return

    # 0.4.10/0.4.11: names reach _load_individual_task_or_group (loading), _get_config, and
    # _name_is_registered (which reads the listed names, where generated ones stay out)
    def make_load(load):
        @functools.wraps(load)
        def _load_individual_task_or_group(self, name_or_config=None, *args, **kwargs):
            name = name_or_config.get("task", name_or_config.get("group")) if isinstance(name_or_config, dict) else name_or_config
            if isinstance(name, str) and name not in self._task_index:
                resolve(task_index(self), name)
            return load(self, name_or_config, *args, **kwargs)

        return _load_individual_task_or_group

    def make_get_config(get_config):
        @functools.wraps(get_config)
        def _get_config(self, name):
            entry = self._task_index.get(name)
            if entry is not None and "erank_config" in entry:
                return copy.deepcopy(entry["erank_config"])
            return get_config(self, name)

        return _get_config

    def make_registered(registered):
        @functools.wraps(registered)
        def _name_is_registered(self, name):
            return registered(self, name) or "erank_config" in self._task_index.get(name, {})

        return _name_is_registered

    patch_method(manager_cls, "_load_individual_task_or_group", make_load)
    patch_method(manager_cls, "_get_config", make_get_config)
    patch_method(manager_cls, "_name_is_registered", make_registered)
    install_function_import_fallback()


_MANAGER_METADATA: contextvars.ContextVar[dict | None] = contextvars.ContextVar("erank_manager_metadata", default=None)


def expose_task_manager_metadata() -> None:
    """0.4.10/0.4.11: a TaskManager merges its ``metadata`` (``--metadata`` and the model
    arguments) into YAML tasks' configs only, not into class-based tasks' (every erank task);
    while it loads tasks, :func:`with_task_manager_metadata` has it. 0.4.12+ merge it into every
    task's config themselves: nothing to do."""
    manager_cls = task_manager_class()
    if hasattr(manager_cls, "_entry"):
        return

    def exposing(load):
        @functools.wraps(load)
        def _load_individual_task_or_group(self, *args, **kwargs):
            token = _MANAGER_METADATA.set(self.metadata)
            try:
                return load(self, *args, **kwargs)
            finally:
                _MANAGER_METADATA.reset(token)

        return _load_individual_task_or_group

    patch_method(manager_cls, "_load_individual_task_or_group", exposing)


def with_task_manager_metadata(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the loading TaskManager's metadata merged in as lm-eval merges it into a
    YAML task's (the manager's keys win); ``config`` itself when there is none to merge."""
    metadata = _MANAGER_METADATA.get()
    if not metadata:
        return config
    own = config.get("metadata")
    own = own if isinstance(own, dict) else {} if own is None else {"_metadata": own}
    return {**config, "metadata": own | metadata}


def pattern_match(patterns: list[str], names: list[str]) -> list[str]:
    """lm-eval's ``--tasks`` glob matching."""
    from lm_eval import utils

    return utils.pattern_match(patterns, names)
