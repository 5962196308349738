"""The plugin's own errors: one base class, and how one reads when it ends a command (no lm-eval).

Every error whose message says what went wrong and what to do (bad model arguments, refused
run flags, task mistakes, unwritable paths, an M0 that does not fit, non-finite states, an
unsupported lm-eval) derives from :class:`ErankError`, mixed into the built-in class it always
had (``ValueError``, ``OSError``, ...), so ``except ValueError`` keeps working. When one ends
an ``lm_eval`` / ``lm-eval-erank`` process, it is shown as :func:`short_report` (one or two
lines) instead of a traceback, unless ``$LM_EVAL_ERANK_TRACEBACK`` asks for it
(``harness/error_display.py``). Python callers receive the exception as always.
"""

from __future__ import annotations

import os

TRACEBACK_VARIABLE = "LM_EVAL_ERANK_TRACEBACK"
_YES = ("1", "true", "yes", "on")


class ErankError(Exception):
    """Base of lm-eval-erank's own errors: the message says what went wrong and what to do."""


class ErankValueError(ErankError, ValueError):
    """A value (model argument, run flag, task, document, model) the plugin cannot work with."""


class ErankTypeError(ErankError, TypeError):
    """An argument of the wrong type."""


def short_report(error: BaseException) -> str:
    """How ``error`` ends a command: ``<class>: <message>``, then how to see the traceback.

    >>> print(short_report(ErankValueError("m0_seed must be an integer >= 0, got 'x'")))
    ErankValueError: m0_seed must be an integer >= 0, got 'x'
    (an lm-eval-erank error; LM_EVAL_ERANK_TRACEBACK=1 shows its traceback)
    """
    return f"{type(error).__name__}: {error}\n(an lm-eval-erank error; {TRACEBACK_VARIABLE}=1 shows its traceback)"


def traceback_requested() -> bool:
    """Whether ``$LM_EVAL_ERANK_TRACEBACK`` is 1 / true / yes / on.

    >>> os.environ[TRACEBACK_VARIABLE] = "1"; traceback_requested()
    True
    >>> del os.environ[TRACEBACK_VARIABLE]; traceback_requested()
    False
    """
    return os.environ.get(TRACEBACK_VARIABLE, "").strip().lower() in _YES
