"""The request types this plugin adds to lm-eval: which tasks send them, which model serves
them, and the error every other model gives (instead of lm-eval's ``AttributeError``)."""

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


def missing_request_method(request_type: str):
    """An LM method for ``request_type`` on models that do not serve it: a clear error naming the fix."""
    tasks, model, base = REQUEST_SERVERS[request_type]

    def missing(self, requests, *args, **kwargs):
        raise RequestNotServedError(
            f"the {tasks} tasks send '{request_type}' requests, which {type(self).__name__} does not serve. "
            f"Run them with --model {model} (it accepts every --model {base} argument)."
        )

    return missing


def install() -> None:
    """Every model lm-eval knows answers our request types: ours serve them, the others say which does."""
    for request_type in REQUEST_SERVERS:
        internals.add_request_method(request_type, missing_request_method(request_type))
