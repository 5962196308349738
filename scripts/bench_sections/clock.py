"""The clock of every measurement (``--clock``) and the instruments that time with it."""

from __future__ import annotations

import contextlib
import time

import torch

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = CLOCKS["wall"]


def use_clock(name: str) -> None:
    """Time every later measurement on ``CLOCKS[name]``."""
    global _clock
    _clock = CLOCKS[name]


def now() -> float:
    """The chosen clock's reading, in seconds."""
    return _clock()


def sync(device: torch.device) -> None:
    """Wait for queued accelerator work so timings are complete."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def timed_attributes(owner, names: tuple[str, ...], device: torch.device):
    """Temporarily wrap ``owner.<name>`` callables to accumulate their time (seconds, on the chosen clock) into
    the yielded dict; module globals and instance methods both work. Restored on exit."""
    spent = {name: 0.0 for name in names}
    originals = {name: getattr(owner, name) for name in names}
    in_instance = {name: name in vars(owner) for name in names}  # else a class attribute: delete ours

    def wrap(name, fn):
        def timed(*a, **k):
            sync(device)
            start = now()
            try:
                return fn(*a, **k)
            finally:
                sync(device)
                spent[name] += now() - start
        return timed

    for name, fn in originals.items():
        setattr(owner, name, wrap(name, fn))
    try:
        yield spent
    finally:
        for name, fn in originals.items():
            if in_instance[name]:
                setattr(owner, name, fn)
            else:
                delattr(owner, name)
