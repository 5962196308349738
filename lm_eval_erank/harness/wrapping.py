"""``erank_<name>``: any task, group or tag lm-eval knows, with Diff-eRank beside its metrics.

lm-eval's ``TaskManager`` resolves names through its index, built once from the YAML
directories. ``lm_eval_internals.patch_task_manager`` (where the releases' index and lookup
differ) calls two functions of this module, which see the index only through
``lm_eval_internals.TaskIndex``:

- :func:`resolve` for a name the index lacks (before lm-eval looks it up): a name that reads
  ``erank_<X>``, with X in the index, gets entries for ``erank_X`` (and, for a group or tag,
  for its whole tree) added to that manager's index;
- :func:`expand` for a ``--tasks`` pattern that matches nothing: ``erank_<P>`` matches
  ``erank_<X>`` for every X that P matches.

The listings (``all_tasks``, ``lm_eval ls tasks``) are computed when the manager is built and
stay as they were: generated names are never listed.

What an entry becomes:

- task X (YAML, no ``class``): ``{**X's config, task: erank_X, class: ErankTask}`` minus its
  tags; :class:`~lm_eval_erank.tasks.ErankTask` keeps X's prompt, few-shot, filters and
  metrics and adds the ``erank`` request (gold text by output type, see ``tasks.py``);
- group X: the same group config named ``erank_X`` whose ``task:`` list names the wrapped
  members (tasks, subgroups, tags, and inline definitions, recursively), its own
  ``aggregate_metric_list`` plus the eRank metrics' document-weighted means (those of the
  shipped ``erank_lm`` group), and its group-level overrides kept;
- tag X: a tag ``erank_X`` over the wrapped tasks.

Names already in the index win: the shipped ``erank_*`` YAMLs and a user's own task named
``erank_...`` are used as they are, also as members of a wrapped group. Wrapping a task that
already measures eRank (a class of this package, e.g. ``erank_erank_piqa``) and Python task
classes other than ``ConfigurableTask`` (whose requests the wrapper cannot see) are errors.
"""

from __future__ import annotations

import copy
import difflib
import functools
from pathlib import Path
from typing import Any

from lm_eval.api.task import ConfigurableTask

from ..core.errors import ErankValueError
from . import lm_eval_internals as internals
from .lm_eval_internals import TaskIndex, task_index
from .task_dirs import task_dir

PREFIX = "erank_"
_STRUCTURAL_KEYS = ("tag", "group", "task_list")


class WrapError(ErankValueError):
    """``erank_<name>`` cannot be built for this name."""


class UnknownTaskError(WrapError):
    """``erank_<name>`` names no task, group or tag lm-eval knows."""


def resolve(index: TaskIndex, name: str) -> None:
    """Add ``name``'s entries to ``index`` when it reads ``erank_<X>`` with X in the index."""
    if name.startswith(PREFIX) and name not in index and name[len(PREFIX):] in index:
        wrap(index, name[len(PREFIX):])


def expand(index: TaskIndex, pattern: str, names: list[str]) -> list[str]:
    """The wrapped names a ``--tasks`` pattern ``erank_<P>`` stands for: ``erank_<X>`` for every
    X of ``names`` that P matches (added to ``index``); UnknownTaskError, with the closest names,
    when P matches none (and no folder has the pattern's name: lm-eval's CLI loads a folder's YAMLs)."""
    if not pattern.startswith(PREFIX):
        return []
    wrapped = [wrap(index, base) for base in internals.pattern_match([pattern[len(PREFIX):]], names)]
    if not wrapped and not Path(pattern).is_dir():
        raise UnknownTaskError(unknown_task_message(pattern, names))
    return wrapped


def unknown_task_message(pattern: str, names: list[str]) -> str:
    """What to say about ``erank_<P>`` when P is no task, group or tag of ``names``: what
    ``erank_<name>`` wraps, and the closest names it would accept (difflib's ratio >= 0.6).

    >>> print(unknown_task_message("erank_piqq", ["piqa", "erank_piqa", "arc_easy"]))  # doctest: +NORMALIZE_WHITESPACE
    Tasks not found: erank_piqq. erank_<name> runs any task, group or tag lm-eval knows (built in or from
    --include_path) with Diff-eRank added, and 'piqq' is none of them. Closest names: erank_piqa
    (lm-eval ls tasks lists them all)
    """
    candidates = sorted({name if name.startswith(PREFIX) else PREFIX + name for name in names})
    close = difflib.get_close_matches(pattern, candidates, n=5, cutoff=0.6)
    return (f"Tasks not found: {pattern}. {PREFIX}<name> runs any task, group or tag lm-eval knows (built in or "
            f"from --include_path) with Diff-eRank added, and {pattern[len(PREFIX):]!r} is none of them. "
            + (f"Closest names: {', '.join(close)}" if close else "No name is close to it")
            + " (lm-eval ls tasks lists them all)")


def wrap(index, base: str) -> str:
    """The name of ``erank_<base>`` in ``index``, adding its entry (and its tree) when absent.

    ``index``: a :class:`~lm_eval_erank.harness.lm_eval_internals.TaskIndex`, a TaskManager, or a
    0.4.12+ ``{name: Entry}``; ``base`` must be in it.
    """
    index = task_index(index)
    name = PREFIX + base
    if name in index:
        return name
    kind = index.kind(base)
    if kind == "tag":
        index.add_tag(name, [wrap(index, m) for m in index.members(base) if m in index])
    elif kind == "group":
        index.add_group(name, _group_config(index, name, _config(index, base), base))
    else:
        index.add_task(name, _task_config(name, _config(index, base), base))
    return name


def _config(index: TaskIndex, base: str) -> dict[str, Any]:
    """The entry's full config, ``!function`` references resolved (as lm-eval's factory loads it)."""
    config = index.config(base)
    if config is None:
        raise WrapError(f"{PREFIX}{base}: '{base}' has no config to wrap")
    return config


def _task_config(name: str, config: dict[str, Any], base: str) -> dict[str, Any]:
    """``erank_<base>``'s task config: ``base``'s own, built by ErankTask."""
    from .tasks import ErankTask  # the start-up hook registers everything (torch) once it loads: only when needed

    cls = config.get("class")
    if cls is not None and cls is not ConfigurableTask:
        if getattr(cls, "__module__", "").split(".")[0] == __name__.split(".")[0]:
            raise WrapError(
                f"{name}: '{base}' already reports Diff-eRank ({cls.__name__}); run --tasks {base} "
                f"(the {PREFIX} prefix is added once)"
            )
        raise WrapError(
            f"{name}: '{base}' is a Python task class ({getattr(cls, '__name__', cls)}), whose requests and "
            "results the erank wrapper cannot derive a gold text from; write a task YAML with "
            "class: !function lm_eval_erank.tasks.ErankTask and an erank_text for it"
        )
    config = {k: v for k, v in config.items() if k not in _STRUCTURAL_KEYS}
    metadata = config.get("metadata")
    metadata = dict(metadata) if isinstance(metadata, dict) else {} if metadata is None else {"_metadata": metadata}
    return {**config, "task": name, "class": ErankTask, "metadata": {**metadata, "erank_wraps": base}}


@functools.cache
def erank_group_aggregates() -> tuple[dict[str, Any], ...]:
    """The eRank metrics a group aggregates (document-weighted means): those of the shipped
    ``erank_lm`` group, so every group reports the same ones."""
    return tuple(internals.load_yaml(task_dir() / "erank_lm.yaml", resolve_functions=False)["aggregate_metric_list"])


def _group_config(index: TaskIndex, name: str, config: dict[str, Any], base: str) -> dict[str, Any]:
    """``erank_<base>``'s group config: ``base``'s own with every member wrapped and the eRank
    metrics added to its aggregates (group-level task overrides kept)."""
    config = _with_erank_aggregates(config)
    config["group"] = name
    config["task"] = [_member(index, item, name, base) for item in _as_list(config.get("task"))]
    metadata = config.get("metadata")
    config["metadata"] = {**(metadata if isinstance(metadata, dict) else {}), "erank_wraps": base}
    return config


def _with_erank_aggregates(config: dict[str, Any]) -> dict[str, Any]:
    own = [dict(a) for a in _as_list(config.get("aggregate_metric_list"))]
    have = {a.get("metric") for a in own}
    return {**config, "aggregate_metric_list": own + [dict(a) for a in erank_group_aggregates() if a["metric"] not in have]}


def _as_list(value) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def _member(index: TaskIndex, item, group: str, base_group: str):
    """One ``task:`` item of a wrapped group, as lm-eval's factory reads it (name, ``{task:}``
    or ``{group:}`` reference with overrides, or an inline definition)."""
    if isinstance(item, str):
        if item not in index:
            raise WrapError(f"{group}: group '{base_group}' lists '{item}', which lm-eval does not know")
        return wrap(index, item)
    if not isinstance(item, dict):
        raise WrapError(f"{group}: unsupported member {item!r} of group '{base_group}'")
    if "group" in item:
        if item["group"] in index:
            return {**item, "group": wrap(index, item["group"])}
        inline = _with_erank_aggregates(item)  # an inline subgroup: lm-eval names it '<group>::<name>'
        inline["task"] = [_member(index, m, f"{group}::{item['group']}", item["group"]) for m in _as_list(item.get("task"))]
        return inline
    if "task" not in item:
        return item  # lm-eval's factory reports it
    if item["task"] in index:
        return {**item, "task": wrap(index, item["task"])}
    # An inline task (lm-eval names it '<group>::<task>'): registered under that name, so it is
    # built as an ErankTask; the item's own keys still override the group's, as for the base.
    name = f"{group}::{item['task']}"
    index.add_task(name, _task_config(name, copy.deepcopy(item), f"{base_group}::{item['task']}"))
    return {**item, "task": name}
