"""Every argument check, in one place: the Python API, the callback, the ``hf-erank`` model
arguments and multimodal use these (no lm-eval).

Python callers get ``TypeError``/``ValueError`` (as ``ErankTypeError``/``ErankValueError``) naming
the argument and what was expected, before any forward. Model arguments arrive from
``--model_args`` as text: ``from_text=True`` accepts digits (``"3"``) and
``true``/``false``/``on``/``off``/``yes``/``no``/``1``/``0``.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from .errors import ErankTypeError, ErankValueError

# torch.manual_seed accepts [-2**63, 2**64); lm-eval seeds are non-negative ints.
MAX_SEED = 2**64 - 1
_BOOLEANS = {"true": True, "on": True, "yes": True, "1": True, "false": False, "off": False, "no": False, "0": False}
_LAYERS_EXPECTED = "last, paper, all, indices joined by ':' (e.g. 0:6:12), an int or a sequence of ints"


def check_texts(texts, name: str = "texts") -> list[str]:
    """``texts`` as a list of strings; TypeError/ValueError naming ``name`` for a single string,
    a non-sequence, an empty sequence or a non-string item.

    >>> check_texts(("a text", "another"))
    ['a text', 'another']
    """
    if isinstance(texts, (str, bytes)):
        raise ErankTypeError(f"{name} must be a sequence of strings (one per text), got a single {type(texts).__name__}; "
                        f"wrap it in a list: [{texts[:30]!r}{'...' if len(texts) > 30 else ''}]")
    try:
        items = list(texts)
    except TypeError:
        raise ErankTypeError(f"{name} must be a sequence of strings (one per text), got {type(texts).__name__}") from None
    if not items:
        raise ErankValueError(f"{name} is empty: Diff-eRank needs at least one text")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ErankTypeError(f"{name}[{i}] is a {type(item).__name__}, expected a string")
    return items


def _readable(bound: int) -> str:
    return "2**64 - 1" if bound == MAX_SEED else str(bound)


def check_int(name: str, value, minimum: int = 1, *, maximum: int | None = None, allow_none: bool = False,
              from_text: bool = False) -> int | None:
    """``value`` as an int in [``minimum``, ``maximum``] (None passes when ``allow_none``; digits
    as text when ``from_text``); ValueError naming ``name`` otherwise.

    >>> check_int("m0_twins", "3", from_text=True), check_int("batch_size", 16)
    (3, 16)
    """
    if value is None and allow_none:
        return None
    number = value if isinstance(value, int) and not isinstance(value, bool) else None
    if from_text and isinstance(value, str) and value.strip().isdecimal():
        number = int(value.strip())
    if number is None or number < minimum or (maximum is not None and number > maximum):
        expected = f">= {minimum}" if maximum is None else f"in [{minimum}, {_readable(maximum)}]"
        raise ErankValueError(f"{name} must be an integer {expected}{' or None' if allow_none else ''}, got {value!r}")
    return number


def check_positive_float(name: str, value, *, allow_none: bool = False, from_text: bool = False) -> float | None:
    """``value`` as a finite float > 0 (None passes when ``allow_none``; a number as text when
    ``from_text``); ValueError naming ``name`` otherwise.

    >>> check_positive_float("m0_initializer_range", "0.0416667", from_text=True)
    0.0416667
    """
    if value is None and allow_none:
        return None
    number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if from_text and isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number <= 0:
        raise ErankValueError(f"{name} must be a number > 0{' or None' if allow_none else ''}, got {value!r}")
    return number


def check_seed(seed) -> int:
    """M0's seed: an int in [0, 2**64 - 1] (digits as text accepted, as ``--model_args`` passes them)."""
    return check_int("m0_seed", seed, 0, maximum=MAX_SEED, from_text=True)


def check_m0_pretrained(m0_pretrained=None, m0_revision=None, *, m0_seed=None, m0_twins=1,
                        m0_initializer_range=None, m0=None) -> tuple[str, str | None] | None:
    """(name, revision) of an M0 to load (``m0_pretrained``: a hub name or a directory; ``m0_revision``:
    a branch, tag or commit of it), or None when M0 is the random twin. A loaded M0 is not drawn,
    so the random twin's options are refused beside it (ValueError naming them): an explicit
    ``m0_seed``, ``m0_twins`` > 1, ``m0_initializer_range``, and an already-built ``m0``.

    >>> check_m0_pretrained("EleutherAI/pythia-160m", "step0"), check_m0_pretrained()
    (('EleutherAI/pythia-160m', 'step0'), None)
    """
    if m0_pretrained is None:
        if m0_revision is not None:
            raise ErankValueError("m0_revision is a revision of m0_pretrained (the checkpoint M0 is loaded from); "
                             "give m0_pretrained too")
        return None
    if not isinstance(m0_pretrained, (str, os.PathLike)) or not str(m0_pretrained).strip():
        raise ErankValueError(f"m0_pretrained must be a hub name or a directory, got {m0_pretrained!r}")
    if m0_revision is not None and (not isinstance(m0_revision, str) or not m0_revision.strip()):
        raise ErankValueError(f"m0_revision must be a branch, tag or commit (e.g. step0), got {m0_revision!r}")
    refused = {"m0_seed (seeds the random twin)": m0_seed is not None,
               "m0_twins > 1 (draws several random twins)": m0_twins != 1,
               "m0_initializer_range (the random twin's init std)": m0_initializer_range is not None,
               "m0 (an M0 already built)": m0 is not None}
    given = [name for name, present in refused.items() if present]
    if given:
        raise ErankValueError(f"m0_pretrained loads M0 ({m0_pretrained}) instead of drawing a random twin, so it "
                         f"cannot be combined with {', '.join(given)}")
    return str(m0_pretrained), m0_revision


def check_bool(name: str, value, from_text: bool = False) -> bool:
    """``value`` as a bool. Python callers must pass True/False (TypeError otherwise); with
    ``from_text`` (model arguments) true/false, on/off, yes/no, 1/0 are accepted (ValueError otherwise).

    >>> check_bool("losses", "off", from_text=True)
    False
    """
    if isinstance(value, bool):
        return value
    if not from_text:
        raise ErankTypeError(f"{name} must be True or False, got {value!r}")
    text = str(value).strip().lower()
    if text not in _BOOLEANS:
        raise ErankValueError(f"{name} must be true or false, got {value!r}")
    return _BOOLEANS[text]


def check_model(model, name: str = "model") -> None:
    """``model`` is a loaded transformers model (a torch module with a ``config``), not a name."""
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "config"):
        raise ErankTypeError(f"{name} must be a loaded transformers causal LM (e.g. AutoModelForCausalLM.from_pretrained(...)), "
                        f"got {type(model).__name__}")


def check_tokenizer(tokenizer) -> None:
    """``tokenizer`` is a loaded (callable) tokenizer, not a name."""
    if isinstance(tokenizer, (str, Path)) or not callable(tokenizer):
        raise ErankTypeError(f"tokenizer must be a loaded tokenizer (e.g. AutoTokenizer.from_pretrained(...)), "
                        f"got {type(tokenizer).__name__}")


def _is_index(value) -> bool:
    """An integer (Python, numpy or 0-dim integer tensor), not a bool."""
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def parse_layers(spec, n_layers: int) -> tuple[int, ...]:
    """Hidden-state indices from ``last`` | ``paper`` (1, L//2, L: first block, middle, last)
    | ``all`` (0..L) | indices joined by ':' (e.g. ``0:12:24``) | an int | a sequence of ints.

    >>> parse_layers("paper", 24), parse_layers(2, 24), parse_layers([0, 24], 24)
    ((1, 12, 24), (2,), (0, 24))
    """
    if isinstance(spec, str):
        named = {"last": (n_layers,), "paper": (1, n_layers // 2, n_layers), "all": tuple(range(n_layers + 1))}
        if spec in named:
            return tuple(sorted(set(named[spec])))
        try:
            spec = [int(part) for part in spec.split(":")]
        except ValueError:
            raise ErankValueError(f"layers must be {_LAYERS_EXPECTED}; got {spec!r}") from None
    elif _is_index(spec):
        spec = [spec]
    elif not isinstance(spec, Sequence) or not all(_is_index(i) for i in spec):
        raise ErankValueError(f"layers must be {_LAYERS_EXPECTED}; got {spec!r}")
    layers = tuple(sorted(set(operator.index(i) for i in spec)))
    if not layers or layers[0] < 0 or layers[-1] > n_layers:
        raise ErankValueError(f"layer indices must lie in [0, {n_layers}] (0 = embeddings, {n_layers} = LM head input), got {spec!r}")
    return layers


def check_rotation(degrees) -> int:
    """``degrees`` (an int, or digits as text) reduced to 0, 90, 180 or 270; ValueError otherwise.

    >>> check_rotation("-90")
    270
    """
    if isinstance(degrees, bool):
        value = None
    elif isinstance(degrees, int):
        value = degrees
    else:
        text = str(degrees).strip()
        value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value % 90:
        raise ErankValueError(f"rotate must be a multiple of 90 degrees (clockwise); got {degrees!r}")
    return value % 360


def check_samples(images, texts) -> tuple[list, list[str]]:
    """(images, texts) as lists of equal, non-zero length; TypeError/ValueError saying what was expected."""
    texts = check_texts(texts)
    if isinstance(images, (str, bytes, dict, os.PathLike)) or hasattr(images, "convert"):
        raise ErankTypeError(f"images must be a sequence (one image per text), got a single {type(images).__name__}; "
                        "wrap it in a list")
    try:
        images = list(images)
    except TypeError:
        raise ErankTypeError(f"images must be a sequence (one image per text), got {type(images).__name__}") from None
    if len(images) != len(texts):
        raise ErankValueError(f"{len(images)} images but {len(texts)} texts: one image per text")
    return images, texts


def check_pretrained_path(pretrained) -> None:
    """``pretrained=`` names a folder or a hub repository; an existing file is refused, saying
    how to pass it (a GGUF file: its folder as ``pretrained`` and its name as ``gguf_file``).

    >>> check_pretrained_path("HuggingFaceTB/SmolLM2-135M")
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     open(os.path.join(folder, "model.gguf"), "w").close()
    ...     check_pretrained_path(os.path.join(folder, "model.gguf"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lm_eval_erank.core.errors.ErankValueError: pretrained=.../model.gguf is a GGUF file; transformers loads one from its folder: --model_args pretrained=...,gguf_file=model.gguf (docs/model-options.md, "GGUF files")
    """
    if not isinstance(pretrained, (str, os.PathLike)):
        return  # None, or an already-loaded model object: HFLM accepts those
    path = Path(pretrained).expanduser()
    if not path.is_file():
        return
    if path.suffix.lower() == ".gguf":
        raise ErankValueError(f"pretrained={pretrained} is a GGUF file; transformers loads one from its folder: "
                              f"--model_args pretrained={path.parent},gguf_file={path.name} (docs/model-options.md, \"GGUF files\")")
    raise ErankValueError(f"pretrained={pretrained} is a file; give the folder holding the model's config.json "
                          f"and weights (pretrained={path.parent}) or a hub repository name")
