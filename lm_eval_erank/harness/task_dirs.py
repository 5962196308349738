"""Where the shipped ``erank_*`` task YAMLs are, and a TaskManager's ``include_path`` with them.

Light on purpose (no lm-eval, no torch): the start-up hook's cheap step uses it.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def task_dir() -> Path:
    """Directory of the shipped ``erank_*`` task YAMLs."""
    return Path(str(files("lm_eval_erank.task_configs")))


def with_erank_task_dir(include_path) -> list:
    """A TaskManager's ``include_path`` with the shipped task directory first (user paths come
    later and win on name clashes)."""
    paths = [] if include_path is None else list(include_path) if isinstance(include_path, (list, tuple)) else [include_path]
    ours = task_dir()
    if all(Path(p).resolve() != ours.resolve() for p in paths):
        paths.insert(0, ours)
    return paths
