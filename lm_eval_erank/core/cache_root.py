"""The one directory the package writes its caches under (no lm-eval, no torch).

    cache_root() = $LM_EVAL_ERANK_CACHE, else $XDG_CACHE_HOME/lm_eval_erank, else ~/.cache/lm_eval_erank

Below it, one folder per kind of entry (``m0``: M0's per-text results; ``models``: GGUF files the
tests and studies fetch from the package registry; ``compat``: the test environments of older
lm-eval releases).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENVIRONMENT_VARIABLE = "LM_EVAL_ERANK_CACHE"


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """``$LM_EVAL_ERANK_CACHE``, else ``$XDG_CACHE_HOME/lm_eval_erank``, else ``~/.cache/lm_eval_erank``
    (the variables read from ``environ``, default ``os.environ``).

    >>> str(cache_root({"LM_EVAL_ERANK_CACHE": "/tmp/erank-cache"}))
    '/tmp/erank-cache'
    >>> str(cache_root({"XDG_CACHE_HOME": "/var/cache"}))
    '/var/cache/lm_eval_erank'
    """
    environ = os.environ if environ is None else environ
    if environ.get(ENVIRONMENT_VARIABLE):
        return Path(environ[ENVIRONMENT_VARIABLE]).expanduser()
    base = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "lm_eval_erank"
