"""How lm-eval's result and sample files get written with the plugin loaded.

- The writers finish their file before a Ctrl-C takes effect, so an interrupted run leaves no
  truncated output file.
- Each logged sample of an erank task gets the ``erank`` (or ``erank_multimodal``) response as
  JSON (``erank_response``): lm-eval writes every raw response as its Python repr string.
- ``--output_path`` is checked when lm-eval's ``EvaluationTracker`` is created, before any task
  or model loads, by creating and removing a file there (permission bits lie to root: ``/proc``
  passes ``os.access``): lm-eval itself finds an unwritable path only after the whole
  evaluation, and then merely logs a warning, writes nothing and exits 0.
- A result or sample file that lm-eval still fails to write at the end (it catches the error and
  logs "Could not save ...") is written to a fallback directory under the cache root, and the
  run ends with :class:`ResultsNotSavedError` naming it (exit status 1): nothing is lost.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path

from ..core.cache_root import cache_root
from ..core.errors import ErankError, ErankValueError
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


class OutputPathError(ErankValueError):
    """``--output_path`` cannot be written: refused before any task or model loads."""


class ResultsNotSavedError(ErankError, OSError):
    """lm-eval could not write the results or samples; they were saved elsewhere (the message says where)."""


def check_output_path(output_path) -> None:
    """OutputPathError unless a file can be created in ``output_path``'s directory (the path
    itself, or its parent for a ``.json`` file name): the missing folders are created, a probe
    file is written and removed, and the folders created for it are removed again.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     check_output_path(os.path.join(folder, "new", "results.json"))
    ...     os.listdir(folder)
    []
    >>> check_output_path("/proc/erank_results")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lm_eval_erank.harness.writers.OutputPathError: --output_path /proc/erank_results: no file can be created in /proc/erank_results (...
    """
    if not output_path:
        return
    path = Path(output_path).expanduser()
    directory = (path.parent if path.suffix == ".json" else path).absolute()
    missing = []
    existing = directory
    while not existing.exists():
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"--output_path {output_path}: {existing} is not a directory, so the results (and "
                              "--log_samples) could not be saved after the evaluation; give another --output_path")
    created = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".erank-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputPathError(
            f"--output_path {output_path}: no file can be created in {directory} ({err.strerror or err}), so the "
            "results (and --log_samples) could not be saved after the evaluation; give an --output_path in a "
            "writable directory"
        ) from err
    finally:
        for folder in reversed(created):
            with suppress(OSError):  # another process wrote there meanwhile: its folder, then
                folder.rmdir()


FALLBACK_FOLDER = "unsaved_results"  # under the cache root


def fallback_bases() -> list[Path]:
    """Where results lm-eval could not write go: ``<cache root>/unsaved_results``, else the temp directory's."""
    return [cache_root() / FALLBACK_FOLDER, Path(tempfile.gettempdir()) / f"lm_eval_erank_{FALLBACK_FOLDER}"]


def save_elsewhere(what: str, output_path, results: dict | None, samples: dict[str, list[dict]] | None) -> None:
    """lm-eval could not write ``what`` under ``output_path``: write ``results`` (``results.json``)
    and ``samples`` (``samples_<task>.jsonl``) to a new folder under the first fallback base that
    takes them, then raise ResultsNotSavedError naming it."""
    failures = []
    for base in fallback_bases():
        try:
            base.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix=time.strftime("%Y-%m-%dT%H-%M-%S-"), dir=base))
            if results is not None:
                (folder / "results.json").write_text(internals.results_json(results), encoding="utf-8")
            for task, task_samples in (samples or {}).items():
                copy_erank_responses(task_samples)
                lines = "".join(internals.results_json(sample, indent=None) + "\n" for sample in task_samples)
                (folder / f"samples_{task}.jsonl").write_text(lines, encoding="utf-8")
        except OSError as err:
            failures.append(f"{base}: {err.strerror or err}")
            continue
        raise ResultsNotSavedError(
            f"lm-eval could not write {what} to --output_path {output_path} (it logged 'Could not save ...'); "
            f"the run's {'results and samples' if samples else 'results'} were written to {folder} instead. "
            "Take them from there; the next run needs an --output_path that can be written"
        )
    raise ResultsNotSavedError(f"lm-eval could not write {what} to --output_path {output_path}, and no fallback "
                               f"folder could be written either ({'; '.join(failures)})")


def install() -> None:
    """Everything above, on lm-eval's ``EvaluationTracker`` (idempotent)."""
    internals.patch_evaluation_tracker(check_output_path, copy_erank_responses, interrupts_deferred, save_elsewhere)
