"""What a study records about where it ran: the machine and the versions of the packages."""

from __future__ import annotations

import os
import platform

PACKAGES = ("torch", "transformers", "lm_eval", "lm-eval-erank", "gguf", "datasets")


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Python's version and each installed distribution's (None: not installed).

    >>> found = versions(("surely-not-installed-x",))
    >>> sorted(found), found["surely-not-installed-x"]
    (['python', 'surely-not-installed-x'], None)
    """
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def machine() -> dict:
    """The platform, the processor, the CPU count, torch's thread count and the load averages now.

    >>> sorted(machine())
    ['cpu_count', 'load_average', 'platform', 'processor', 'torch_threads']
    """
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()}


def machine_summary() -> str:
    """One line: CPU cores and processor, torch and its threads, transformers, Python."""
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    return (f"{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__} with {torch.get_num_threads()} "
            f"thread(s), transformers {transformers.__version__}, Python {platform.python_version()}")
