"""lm-eval's run flags with erank tasks, where lm-eval alone would fail them late or show the
erank request as the task's own (:func:`install`, through ``lm_eval_internals``):

- :func:`check_run_arguments`: a flag that cannot work with erank tasks is refused before any
  model loads (it sees ``simple_evaluate``'s arguments, which the CLI's flags become, first);
- ``--write_out``: each task's own first prompt, as the standard task prints it, then its
  erank request;
- ``--wandb_args`` / ``--trackio_args``: the per-sample tables and traces are built from each
  sample's own requests (its erank request left out; the samples artifacts keep it) and list
  the eRank metrics the samples carry.

docs/flags.md: every flag, what it does with erank tasks, and the test that shows it.
"""

from __future__ import annotations

import functools

from lm_eval.api import registry
from lm_eval.models.huggingface import HFLM

from ..core.checks import check_pretrained_path
from ..core.errors import ErankValueError
from ..core.metrics import TABLE
from . import lm_eval_internals as internals
from . import wrapping
from .model import ErankHFLM
from .multimodal_model import ErankMultimodalLM
from .request_types import (ERANK_REQUEST, MULTIMODAL_REQUEST, REQUEST_SERVERS, RequestNotServedError,
                            not_served_message, requests_sent, serves)
from .writers import erank_response

OUR_REQUESTS = (ERANK_REQUEST, MULTIMODAL_REQUEST)
REQUEST_KEYS = ("arguments", "resps", "filtered_resps")  # one entry per request in a logged sample


class UnsupportedFlagError(ErankValueError):
    """A run flag that cannot work with an erank model, refused before the model loads."""


def model_class(model) -> type | None:
    """The class of ``simple_evaluate``'s ``model`` (a registered name or an LM; None for a name
    lm-eval cannot resolve: it says so itself)."""
    if isinstance(model, str):
        try:
            model = registry.get_model(model)
        except Exception:  # noqa: BLE001  (an unknown name, a backend not installed: lm-eval says so itself)
            return None
    return model if isinstance(model, type) else type(model)


def erank_model_class(model) -> type | None:
    """The class of ``simple_evaluate``'s ``model`` if it is ours."""
    cls = model_class(model)
    return cls if cls is not None and issubclass(cls, (ErankHFLM, ErankMultimodalLM)) else None


def check_run_arguments(arguments: dict) -> None:
    """An error for a run that cannot succeed, before the model loads: a task sending requests
    the model does not serve (:func:`check_model_serves_tasks`), ``pretrained=`` naming a file
    (:func:`check_pretrained`), or a flag an erank model cannot honour (UnsupportedFlagError)."""
    check_model_serves_tasks(arguments)
    check_pretrained(arguments)
    model = erank_model_class(arguments.get("model"))
    if model is None:
        return
    if arguments.get("check_integrity"):
        raise UnsupportedFlagError(
            "--check_integrity cannot work with erank tasks (nor, in lm-eval 0.4.x, with any task): lm-eval "
            "runs its source tree's tests/test_version_stable.py for it, removed before 0.4.0, so under "
            "--model hf it fails with FileNotFoundError once the model has loaded. Drop --check_integrity."
        )
    if issubclass(model, ErankMultimodalLM) and str(arguments.get("batch_size")).startswith("auto"):
        raise UnsupportedFlagError(
            f"--batch_size {arguments['batch_size']}: hf-multimodal-erank needs an integer batch size (samples "
            "per forward, 3 rows each); lm-eval's hf-multimodal refuses 'auto' too, after loading the model"
        )


def check_model_serves_tasks(arguments: dict) -> None:
    """RequestNotServedError when a task sends a request type of ours that the model does not
    serve (``--model hf --tasks erank_piqa``): found in the task manager's index (the CLI passes
    one; without one, only inline configs, Task objects and the shipped task names are known)."""
    cls = model_class(arguments.get("model"))
    tasks = arguments.get("tasks")
    if cls is None or not tasks or all(serves(cls, request_type) for request_type in REQUEST_SERVERS):
        return
    manager = arguments.get("task_manager")
    index = internals.task_index(manager) if manager is not None else shipped_task_index()
    for spec in tasks if isinstance(tasks, (list, tuple)) else [tasks]:
        if isinstance(spec, str):
            try:
                wrapping.resolve(index, spec)  # erank_<name> gets its entry, as lm-eval's lookup would add it
            except Exception:  # noqa: BLE001  (lm-eval's own lookup raises it again, where it always did)
                continue
        for request_type, senders in requests_sent(index, spec).items():
            if not serves(cls, request_type):
                named = sorted(senders)
                listed = ", ".join(named[:3]) + (f" and {len(named) - 3} more" if len(named) > 3 else "")
                raise RequestNotServedError(not_served_message(request_type, cls.__name__, listed))


@functools.cache
def shipped_task_index():
    """The index of the shipped ``erank_*`` tasks alone (a TaskManager without lm-eval's own
    tasks: a fraction of a second, where indexing lm-eval's takes seconds)."""
    return internals.task_index(internals.task_manager_class()(include_defaults=False))


def check_pretrained(arguments: dict) -> None:
    """``pretrained=`` of an ``hf``-family model must be a folder or a hub name: a file (a
    ``.gguf`` most often) is refused before the model loads, saying how to pass it."""
    cls = model_class(arguments.get("model"))
    if cls is not None and issubclass(cls, HFLM):
        check_pretrained_path(internals.model_arguments(arguments.get("model_args")).get("pretrained"))


def is_our_request(instance) -> bool:
    return instance.request_type in OUR_REQUESTS


def own_requests(sample: dict) -> dict:
    """A logged sample as the standard task logs it: without its erank request (the last one),
    unless that is its only request (representation-only and multimodal tasks)."""
    if len(sample.get("resps") or ()) < 2 or erank_response(sample) is None:
        return sample
    return {**sample, **{key: sample[key][:-1] for key in REQUEST_KEYS}}


def carried_metrics(metric_list: list[dict], samples: list[dict]) -> list[dict]:
    """``metric_list`` without the eRank metrics no sample carries (the twin metrics appear only
    with ``m0_twins`` > 1, the loss metrics only with ``losses=true``)."""
    carried = set().union(*samples) if samples else set()
    ours = {m.name for m in TABLE}
    return [m for m in metric_list if m.get("metric") not in ours or m["metric"] in carried]


def install() -> None:
    """Everything above, on lm-eval's evaluator and sample loggers (idempotent)."""
    internals.check_evaluation_arguments(check_run_arguments)
    internals.writeout_requests_apart(is_our_request)
    internals.sample_loggers_read(own_requests, carried_metrics)
