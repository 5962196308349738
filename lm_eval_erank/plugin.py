"""Wire the plugin into lm-eval 0.4.13, which has no plugin discovery of its own.

``register()`` (idempotent):
1. loads lm-eval's built-in models and metrics first (its registries fill lazily only while
   empty, so registering first would hide ``--model hf`` and the built-in aggregations);
2. registers the eRank metrics and the ``hf-erank`` model;
3. makes every TaskManager also index this package's task directory, so ``--tasks erank_piqa``
   works without ``--include_path`` (a user's ``--include_path`` still works beside it), and
   resolve ``erank_<name>`` for any task, group or tag it knows (``wrapping.py``);
4. gives models without an ``erank`` / ``erank_multimodal`` method a clear error naming the
   model that serves it;
5. makes lm-eval's result and sample writers finish their file before a Ctrl-C takes effect,
   so an interrupted run leaves no truncated output file;
6. gives each logged sample of an erank task the ``erank`` response as JSON
   (``erank_response``): lm-eval writes every raw response as its Python repr string.
7. checks ``--output_path`` when lm-eval's ``EvaluationTracker`` is created, before any task
   or model loads: lm-eval itself finds an unwritable path only after the whole evaluation,
   and then merely logs a warning and writes nothing.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

_registered = False


def task_dir() -> Path:
    """Directory of the shipped ``erank_*`` task YAMLs."""
    return Path(str(files("lm_eval_erank.task_configs")))


# Our request types -> (the tasks that send them, the model that serves them, what it extends).
REQUEST_SERVERS = {
    "erank": ("erank_*", "hf-erank", "hf"),
    "erank_multimodal": ("erank_mm_*", "hf-multimodal-erank", "hf-multimodal"),
}


def _missing_request(request_type: str):
    """An LM method for ``request_type`` on models that do not serve it: a clear error naming the fix."""
    tasks, model, base = REQUEST_SERVERS[request_type]

    def missing(self, requests, *args, **kwargs):
        raise NotImplementedError(
            f"the {tasks} tasks send '{request_type}' requests, which {type(self).__name__} does not serve. "
            f"Run them with --model {model} (it accepts every --model {base} argument)."
        )

    return missing


def with_erank_task_dir(include_path) -> list:
    """A TaskManager's ``include_path`` with the shipped task directory first (user paths come
    later and win on name clashes)."""
    paths = [] if include_path is None else list(include_path) if isinstance(include_path, (list, tuple)) else [include_path]
    ours = task_dir()
    if all(Path(p).resolve() != ours.resolve() for p in paths):
        paths.insert(0, ours)
    return paths


@contextmanager
def interrupts_deferred():
    """Hold SIGINT (Ctrl-C) until the block ends, then raise KeyboardInterrupt if one came."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


def _uninterruptible(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with interrupts_deferred():
            return method(*args, **kwargs)

    return wrapper


ERANK_RESPONSE_KEY = "erank_response"


def erank_response(sample: dict) -> dict | None:
    """The ``erank`` request's response among a logged sample's ``resps`` (None if it has none)."""
    for responses in sample.get("resps") or []:
        for response in responses if isinstance(responses, (list, tuple)) else [responses]:
            if isinstance(response, dict) and "entropy_m1" in response:
                return response
    return None


def _with_erank_responses(method):
    """Before lm-eval stringifies ``resps``, copy the erank response (plain numbers) to
    ``sample["erank_response"]``, so the sample file holds it as JSON."""

    @functools.wraps(method)
    def wrapper(self, task_name, samples, *args, **kwargs):
        for sample in samples:
            response = erank_response(sample)
            if response is not None:
                sample[ERANK_RESPONSE_KEY] = response
        return method(self, task_name, samples, *args, **kwargs)

    return wrapper


def check_output_path(output_path) -> None:
    """ValueError unless lm-eval can create and write ``output_path``'s directory (the path
    itself, or its parent for a ``.json`` file name); nothing is created here."""
    if not output_path:
        return
    path = Path(output_path).expanduser()
    directory = path.parent if path.suffix == ".json" else path
    existing = directory.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        what = "is not a directory" if not existing.is_dir() else "is not writable"
        raise ValueError(
            f"--output_path {output_path}: {existing} {what}, so the results (and --log_samples) could not "
            "be saved after the evaluation; give an --output_path in a writable directory"
        )


def _checks_output_path(init):
    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        check_output_path(kwargs.get("output_path", args[0] if args else None))
        init(self, *args, **kwargs)

    return __init__


def register() -> None:
    """Everything above (idempotent); UnsupportedLmEvalError first if the installed lm-eval is
    outside the supported releases."""
    global _registered
    if _registered:
        return
    from . import lm_eval_internals as internals

    internals.check_supported()
    import lm_eval.api.metrics  # noqa: F401
    import lm_eval.models  # noqa: F401
    from lm_eval.api.model import LM

    from . import metrics, multimodal_tasks
    from .activation import patch_task_manager, release_entry_point_placeholders

    release_entry_point_placeholders()  # names lm-eval's entry-point loader reserved for us
    metrics.register()
    multimodal_tasks.register_metrics()
    from . import model  # noqa: F401  (registers hf-erank)
    from . import multimodal_model  # noqa: F401  (registers hf-multimodal-erank)

    patch_task_manager()  # our task directory and the erank_<name> wrapping
    for request_type in REQUEST_SERVERS:
        if not hasattr(LM, request_type):
            setattr(LM, request_type, _missing_request(request_type))
    tracker = internals.evaluation_tracker_class()
    internals.patch_method(tracker, "save_results_samples", _with_erank_responses)
    internals.patch_method(tracker, "__init__", _checks_output_path)
    for name in internals.TRACKER_WRITERS:  # after the sample hook: it runs inside the deferral
        internals.patch_method(tracker, name, _uninterruptible)
    _registered = True
