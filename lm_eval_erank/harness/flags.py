"""lm-eval's run flags with erank tasks, where lm-eval alone would fail them late or show the
erank request as the task's own (:func:`install`, through ``lm_eval_internals``):

- :func:`check_run_arguments`: a flag that cannot work with erank tasks is refused before any
  model loads (it sees ``simple_evaluate``'s arguments, which the CLI's flags become, first);
- ``--write_out``: each task's own first prompt, as the standard task prints it, then its
  erank request;
- ``--wandb_args`` / ``--trackio_args``: the per-sample tables and traces are built from each
  sample's own requests (its erank request left out; the samples artifacts keep it) and list
  the eRank metrics the samples carry.

README "lm-eval's run flags": every flag, what it does with erank tasks, and the test that shows it.
"""

from __future__ import annotations

from lm_eval.api import registry

from ..core.errors import ErankValueError
from ..core.metrics import TABLE
from . import lm_eval_internals as internals
from .model import ErankHFLM
from .multimodal_model import ErankMultimodalLM
from .request_types import ERANK_REQUEST, MULTIMODAL_REQUEST
from .writers import erank_response

OUR_REQUESTS = (ERANK_REQUEST, MULTIMODAL_REQUEST)
REQUEST_KEYS = ("arguments", "resps", "filtered_resps")  # one entry per request in a logged sample


class UnsupportedFlagError(ErankValueError):
    """A run flag that cannot work with an erank model, refused before the model loads."""


def erank_model_class(model) -> type | None:
    """The class of ``simple_evaluate``'s ``model`` (a registered name or an LM) if it is ours."""
    if isinstance(model, str):
        try:
            model = registry.get_model(model)
        except Exception:  # noqa: BLE001  (an unknown name, a backend not installed: lm-eval says so itself)
            return None
    cls = model if isinstance(model, type) else type(model)
    return cls if issubclass(cls, (ErankHFLM, ErankMultimodalLM)) else None


def check_run_arguments(arguments: dict) -> None:
    """UnsupportedFlagError naming the flag for a run of an erank model that cannot succeed."""
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
