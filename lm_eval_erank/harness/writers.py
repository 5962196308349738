"""How lm-eval's result and sample files get written with the plugin loaded.

- The writers finish their file before a Ctrl-C takes effect, so an interrupted run leaves no
  truncated output file.
- Each logged sample of an erank task gets the ``erank`` (or ``erank_multimodal``) response as
  JSON (``erank_response``): lm-eval writes every raw response as its Python repr string.
- ``--output_path`` is checked when lm-eval's ``EvaluationTracker`` is created, before any task
  or model loads: lm-eval itself finds an unwritable path only after the whole evaluation, and
  then merely logs a warning and writes nothing.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

from . import lm_eval_internals as internals

ERANK_RESPONSE_KEY = "erank_response"


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


# Keys only our responses have: ``erank`` (entropy_m1) and ``erank_multimodal`` (entropy1). A
# literal, not core.alignment's ENTROPY_KEYS: that module imports torch, this one must not.
RESPONSE_MARKERS = ("entropy_m1", "entropy1")


def erank_response(sample: dict) -> dict | None:
    """The ``erank`` or ``erank_multimodal`` request's response among a logged sample's ``resps``
    (None if it has none)."""
    for responses in sample.get("resps") or []:
        for response in responses if isinstance(responses, (list, tuple)) else [responses]:
            if isinstance(response, dict) and any(key in response for key in RESPONSE_MARKERS):
                return response
    return None


def copy_erank_responses(samples: list[dict]) -> None:
    """Before lm-eval stringifies ``resps``, copy each sample's erank response (plain numbers) to
    ``sample["erank_response"]``, so the sample file holds it as JSON."""
    for sample in samples:
        response = erank_response(sample)
        if response is not None:
            sample[ERANK_RESPONSE_KEY] = response


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


def install() -> None:
    """Everything above, on lm-eval's ``EvaluationTracker`` (idempotent)."""
    internals.patch_evaluation_tracker(check_output_path, copy_erank_responses, interrupts_deferred)
