"""How the plugin's own errors end a command: one or two lines instead of a traceback.

When an :class:`~lm_eval_erank.core.errors.ErankError` ends an ``lm_eval`` / ``lm-eval`` /
``python -m lm_eval`` / ``lm-eval-erank`` process (its traceback passes through lm-eval's
command line or ours), the process prints :func:`~lm_eval_erank.core.errors.short_report` and
exits with status 1, as with any uncaught exception. ``LM_EVAL_ERANK_TRACEBACK=1``, or lm-eval's
logger at DEBUG (``LMEVAL_LOG_LEVEL=DEBUG``, ``--verbosity DEBUG``), shows the traceback instead;
every other exception keeps its traceback, and a Python program (``simple_evaluate``, the API)
receives every exception as always: only the interpreter's last word (``sys.excepthook``) changes.
"""

from __future__ import annotations

import logging
import sys

from ..core.errors import ErankError, short_report, traceback_requested
from . import lm_eval_internals as internals

ENTRY_MODULES = ("lm_eval_erank.harness.cli",)  # lm-eval-erank, python -m lm_eval_erank
_previous_hook = None


def shown_briefly(error: BaseException, traceback) -> bool:
    """Whether ``error``, ending the process, is shown as its short report."""
    return (isinstance(error, ErankError) and internals.raised_through_cli(traceback, ENTRY_MODULES)
            and not traceback_requested() and not logging.getLogger("lm_eval").isEnabledFor(logging.DEBUG))


def show_uncaught(kind, error, traceback) -> None:
    """``sys.excepthook``: our errors from a command as their short report, the rest as before."""
    if shown_briefly(error, traceback):
        print(short_report(error), file=sys.stderr)
    else:
        _previous_hook(kind, error, traceback)


def install() -> None:
    """Make :func:`show_uncaught` the interpreter's excepthook (once per process; the hook it
    replaces shows everything else)."""
    global _previous_hook
    if _previous_hook is None:
        _previous_hook = sys.excepthook
        sys.excepthook = show_uncaught
