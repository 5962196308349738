"""The request types this plugin adds to lm-eval: which tasks send them, which model serves them,
and the error every other model gives (instead of lm-eval's ``AttributeError``).

:func:`requests_sent` and :func:`serves` find that error before any model loads
(``flags.check_model_serves_tasks``, from the task index); :func:`missing_request_method` still
raises it where the tasks could not be known in advance (a Python ``simple_evaluate`` call
without a ``task_manager``, for tasks other than the shipped ones).
"""

from __future__ import annotations

from ..core.errors import ErankError
from . import lm_eval_internals as internals

ERANK_REQUEST = "erank"
MULTIMODAL_REQUEST = "erank_multimodal"

# request type -> (the tasks that send it, the model that serves it, the model that one extends)
REQUEST_SERVERS = {
    ERANK_REQUEST: ("erank_*", "hf-erank", "hf"),
    MULTIMODAL_REQUEST: ("erank_mm_*", "hf-multimodal-erank", "hf-multimodal"),
}


class RequestNotServedError(ErankError, NotImplementedError):
    """A task sends a request type the model does not serve; the message names the model that does."""


def not_served_message(request_type: str, model_name: str, tasks: str | None = None) -> str:
    """What to say when ``model_name`` meets tasks (``tasks``, default the usual names) sending ``request_type``.

    >>> not_served_message("erank", "HFLM", "erank_piqa")
    "the tasks erank_piqa send 'erank' requests, which HFLM does not serve. Run them with --model hf-erank (it accepts every --model hf argument)."
    """
    usual, model, base = REQUEST_SERVERS[request_type]
    return (f"the tasks {tasks or usual} send '{request_type}' requests, which {model_name} does not serve. "
            f"Run them with --model {model} (it accepts every --model {base} argument).")


def missing_request_method(request_type: str):
    """An LM method for ``request_type`` on models that do not serve it: a clear error naming the fix."""

    def missing(self, requests, *args, **kwargs):
        raise RequestNotServedError(not_served_message(request_type, type(self).__name__))

    return missing


_MISSING = {request_type: missing_request_method(request_type) for request_type in REQUEST_SERVERS}


def serves(model_class: type, request_type: str) -> bool:
    """Whether ``model_class`` answers ``request_type`` requests (rather than raising the error above)."""
    method = getattr(model_class, request_type, None)
    return callable(method) and method is not _MISSING[request_type]


def request_type_of(task_class) -> str | None:
    """The request type of ours a task class sends (its ``ERANK_REQUEST_TYPE``), or None."""
    return getattr(task_class, "ERANK_REQUEST_TYPE", None) if isinstance(task_class, type) else None


def requests_sent(index, spec) -> dict[str, set[str]]:
    """{request type of ours: names of the tasks sending it} for a ``--tasks`` item: a name in
    ``index`` (a :class:`~lm_eval_erank.harness.lm_eval_internals.TaskIndex`; groups and tags
    followed to their tasks), an inline config (dict) or a Task object. Names the index lacks and
    configs that do not load add nothing: lm-eval reports them itself when it loads the tasks."""
    found: dict[str, set[str]] = {}
    seen: set[str] = set()

    def add(request_type, name):
        if request_type is not None:
            found.setdefault(request_type, set()).add(str(name))

    def visit(item):
        if isinstance(item, dict):
            if "class" in item:  # a config with its task class (e.g. loaded from a YAML file)
                add(request_type_of(item["class"]), item.get("task"))
            elif "group" in item:  # an inline group, or a reference to one
                members = item.get("task")
                for member in _as_list(members) if members is not None else [item["group"]]:
                    visit(member)
            elif isinstance(item.get("task"), str):  # a reference to a task, with overrides
                visit(item["task"])
            return
        if not isinstance(item, str):  # a Task object
            add(request_type_of(type(item)), getattr(getattr(item, "config", None), "task", type(item).__name__))
            return
        if item in seen or item not in index:
            return
        seen.add(item)
        kind = index.kind(item)
        if kind == "task":  # a YAML task without a class of its own (lm-eval's index says so): not ours, nothing to load
            return
        if kind == "tag":
            for member in index.members(item):
                visit(member)
            return
        try:
            config = index.config(item) or {}
        except Exception:  # noqa: BLE001  (e.g. a !function needing a package not installed: lm-eval says so when it loads the task)
            return
        if kind == "group":
            for member in _as_list(config.get("task")):
                visit(member)
        else:
            add(request_type_of(config.get("class")), item)

    visit(spec)
    return found


def _as_list(value) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def install() -> None:
    """Every model lm-eval knows answers our request types: ours serve them, the others say which does."""
    for request_type, method in _MISSING.items():
        internals.add_request_method(request_type, method)
