"""Progress of a measurement: one bar over the texts, one pass per model (no lm-eval).

A :data:`Progress` is called with a label at the start of each model's pass ("M1",
"M0 seed 1234 (twin 2/3)", "M0 seed 1234: 30 of 32 texts from the M0 cache") and returns the
callback that receives the number of texts just done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm

Progress = Callable[[str], Callable[[int], None] | None]


@contextmanager
def text_progress(total: int, description: str, enabled: bool = True, leave: bool = True,
                  unit: str = "text") -> Iterator[Progress | None]:
    """A tqdm bar over ``total`` texts, relabelled and reset at each model's pass; yields the
    :data:`Progress` to hand to ``pair_statistics`` (None when not ``enabled``). ``leave=False``
    clears the bar when done (inside another bar, e.g. a Trainer's)."""
    if not enabled:
        yield None
        return
    with tqdm(total=total, desc=description, unit=unit, leave=leave) as bar:

        def progress(label: str):
            bar.reset(total=total)
            bar.set_description(f"{description}, {label}")
            return bar.update

        yield progress
