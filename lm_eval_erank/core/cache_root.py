"""The one directory the package writes its caches under (no lm-eval, no torch).

    cache_root() = $LM_EVAL_ERANK_CACHE, else $XDG_CACHE_HOME/lm_eval_erank, else ~/.cache/lm_eval_erank

Below it, one folder per kind of entry (``m0``: M0's per-text results; ``models``: GGUF files the
tests and studies fetch from the package registry; ``compat``: the test environments of older
lm-eval releases).
"""

from __future__ import annotations

import os
from pathlib import Path

ENVIRONMENT_VARIABLE = "LM_EVAL_ERANK_CACHE"


def cache_root() -> Path:
    """``$LM_EVAL_ERANK_CACHE``, else ``$XDG_CACHE_HOME/lm_eval_erank``, else ``~/.cache/lm_eval_erank``.

    >>> import os
    >>> os.environ["LM_EVAL_ERANK_CACHE"] = "/tmp/erank-cache"
    >>> str(cache_root())
    '/tmp/erank-cache'
    >>> del os.environ["LM_EVAL_ERANK_CACHE"]
    """
    if os.environ.get(ENVIRONMENT_VARIABLE):
        return Path(os.environ[ENVIRONMENT_VARIABLE]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "lm_eval_erank"
