"""On-disk cache of the random twin's per-text results (JSON, no pickle; no lm-eval).

M0's per-text entropies and losses depend only on the architecture and initialisation fields of
the config, the seed (for an M0 loaded with ``m0_pretrained``: the checksum of its weights
instead), the dtype, the device type, the token ids, the requested layers and the library
versions; the key (:func:`model_key`) holds exactly these.
Fields that only name the checkpoint or steer a forward we do not make (``_name_or_path``,
``use_cache``, which ``transformers.Trainer`` turns off in every checkpoint it saves, the output
flags, ``architectures``, the GGUF ``quantization_config``, ...) are left out. A sweep over
checkpoints of one architecture (a pretrained model and its fine-tuned checkpoints) therefore
pays for M0 once: the first run computes and stores them, later runs read them (and need not
even build M0).

Layout: ``<directory>/<model key>.json`` = {"key": {...what the key hashes...},
"m0_checksum": str | null, "texts": {sha256(token ids): {"loss": float | null,
"entropy": {layer (or "layer/skipK"): float | null}}}}; null = undefined, a missing "loss" = not computed (a run
with ``losses=False``). Files are replaced atomically.

The directory is checked when the cache is opened (created if missing, a probe file written
and removed), so a cache that cannot be written fails before any forward runs, naming the path
and ``m0_cache=off``; a write that still fails later (e.g. a full disk) is a warning, and the
run's results are kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
import transformers

from .._version import __version__
from .cache_root import cache_root
from .errors import ErankError

# Config fields that do not decide M0's weights or its outputs under our forward: they name or
# describe the checkpoint (the dtype and the versions are keyed on their own), steer generation
# or outputs we do not request, or serve task heads a causal LM has not.
RUNTIME_ONLY_FIELDS = frozenset({
    "_name_or_path", "_commit_hash", "transformers_version", "dtype", "torch_dtype", "architectures",
    "use_cache", "output_attentions", "output_hidden_states", "return_dict", "torchscript",
    "quantization_config", "id2label", "label2id", "problem_type", "finetuning_task", "tokenizer_class",
    "prefix", "task_specific_params",
})
# Bump when what the key holds changes: files of older keys are then never opened (recomputed).
KEY_VERSION = 2
_FLOAT_NONE = float("nan")
_AVOID = ("choose a writable directory with m0_cache=DIR (or $LM_EVAL_ERANK_CACHE), or turn the cache off "
          "with m0_cache=off")

logger = logging.getLogger("lm_eval.erank.m0_cache")
M0_FOLDER = "m0"  # under the cache root
_LEGACY_NAME = re.compile(r"[0-9a-f]{64}\.json")


class M0CacheError(ErankError, OSError):
    """M0's results cache cannot be used (directory not writable, file unreadable)."""


def check_writable(directory: str | os.PathLike) -> Path:
    """Create ``directory`` if needed and write and remove a probe file in it; M0CacheError
    naming the path and the way around it otherwise."""
    directory = Path(directory).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise M0CacheError(f"M0's results cache directory {directory} cannot be written "
                           f"({type(err).__name__}: {err.strerror or err}); {_AVOID}") from err
    return directory


def default_directory() -> Path:
    """``cache_root() / "m0"``: ``$LM_EVAL_ERANK_CACHE/m0``, else ``$XDG_CACHE_HOME/lm_eval_erank/m0``,
    else ``~/.cache/lm_eval_erank/m0``."""
    return cache_root() / M0_FOLDER


def move_legacy_entries(root: Path, directory: Path) -> int:
    """Move M0 results files (``<sha256>.json``) that an earlier version wrote directly in
    ``$LM_EVAL_ERANK_CACHE`` (then the M0 directory itself, now the cache root) into
    ``directory``, saying so once; a file ``directory`` already has stays where it is. Returns
    how many moved.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as root:
    ...     _ = (Path(root) / f"{'ab' * 32}.json").write_text("{}")
    ...     moved = move_legacy_entries(Path(root), Path(root) / "m0")
    ...     moved, sorted(p.name[:4] for p in (Path(root) / "m0").iterdir())
    (1, ['abab'])
    """
    try:
        legacy = [p for p in root.iterdir() if _LEGACY_NAME.fullmatch(p.name) and p.is_file()]
    except OSError:
        return 0
    moved = 0
    for path in legacy:
        target = directory / path.name
        try:
            if not target.exists():
                directory.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
                moved += 1
        except OSError:  # another process moved it first, or the folder is read-only: found next time
            continue
    if moved:
        logger.warning("erank: moved %d M0 results-cache file(s) from %s to %s: $LM_EVAL_ERANK_CACHE now names "
                       "the cache root, and M0's results live in its %s/ folder", moved, root, directory, M0_FOLDER)
    return moved


# ``m0_cache`` when none is given: :func:`default_directory`.
DEFAULT_CACHE = "default"
_CACHE_OFF = {"off", "none", "false", "0", ""}


def resolve_cache(m0_cache) -> Path | None:
    """The cache directory for an ``m0_cache`` option: ``"default"`` -> :func:`default_directory`
    (files an earlier version left in the cache root moved into it), None / ``off`` -> None, else
    the given path (the M0 directory itself)."""
    if m0_cache is None or (isinstance(m0_cache, str) and m0_cache.strip().lower() in _CACHE_OFF):
        return None
    if isinstance(m0_cache, str) and m0_cache == DEFAULT_CACHE:
        move_legacy_entries(cache_root(), default_directory())
        return default_directory()
    if not isinstance(m0_cache, (str, Path)):
        raise TypeError(f"m0_cache must be a directory, 'off' or None, got {type(m0_cache).__name__}")
    return Path(m0_cache).expanduser()


def model_key(config, seed: int | None, dtype: torch.dtype, device_type: str, weights: str | None = None) -> dict:
    """What decides M0's outputs apart from the texts: the config's architecture and
    initialisation fields (every field but :data:`RUNTIME_ONLY_FIELDS`), the seed of a random
    twin or, for an M0 loaded from a checkpoint (``seed`` None), ``weights``, the checksum of its
    weights, then the dtype, device type and library versions. (The attention implementation is
    not keyed: eager and SDPA differ by float round-off, as batch compositions do.)"""
    if (seed is None) == (weights is None):
        raise ValueError("model_key needs either a twin's seed or a loaded M0's weights checksum, not both")
    return {
        "key_version": KEY_VERSION,
        "architecture": _architecture(config.to_dict()),
        **({"seed": int(seed)} if weights is None else {"weights": weights}),
        "dtype": str(dtype),
        "device_type": device_type,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "lm_eval_erank": __version__},
    }


def _architecture(fields: dict) -> dict:
    """``fields`` without the runtime-only ones, also inside nested configs (``text_config``, ...)."""
    return {k: _architecture(v) if isinstance(v, dict) else v for k, v in sorted(fields.items())
            if k not in RUNTIME_ONLY_FIELDS}


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def entropy_key(layer: int, skip_first_tokens: int = 0) -> str:
    """An entry's key for the entropy of ``layer`` (``"12"``; ``"12/skip1"`` with the first
    position left out), so runs with and without ``skip_first_tokens`` share a file."""
    return str(layer) if not skip_first_tokens else f"{layer}/skip{skip_first_tokens}"


def text_key(token_ids: Sequence[int]) -> str:
    return hashlib.sha256(json.dumps(list(token_ids)).encode()).hexdigest()


class M0Cache:
    """Per-text M0 results for one model key, read once and written back atomically."""

    def __init__(self, directory: str | os.PathLike, key: dict):
        self.path = check_writable(directory) / f"{_digest(key)}.json"
        self.key = key
        self.m0_checksum: str | None = None
        self._texts: dict[str, dict] = {}
        if self.path.exists():
            try:
                stored = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise M0CacheError(f"M0's results cache file {self.path} cannot be read ({err}); delete it, "
                                   f"or {_AVOID}") from err
            if stored.get("key") == json.loads(json.dumps(key, sort_keys=True, default=str)):
                self._texts = stored.get("texts", {})
                self.m0_checksum = stored.get("m0_checksum")

    def lookup(self, token_ids: Sequence[Sequence[int]], layers: Sequence[int], losses: bool = True,
               skip_first_tokens: int = 0):
        """(loss (n,) or None when ``losses`` is False, {layer: entropy (n,)}, hit mask (n,)),
        NaN where missing/undefined. A hit holds every layer (and the loss, when asked for), with
        the first ``skip_first_tokens`` positions left out of the entropies."""
        n = len(token_ids)
        loss = torch.full((n,), _FLOAT_NONE, dtype=torch.float64) if losses else None
        entropy = {layer: torch.full((n,), _FLOAT_NONE, dtype=torch.float64) for layer in layers}
        hit = torch.zeros(n, dtype=torch.bool)
        keys = {layer: entropy_key(layer, skip_first_tokens) for layer in layers}
        for i, ids in enumerate(token_ids):
            entry = self._texts.get(text_key(ids))
            if entry is None or not all(key in entry["entropy"] for key in keys.values()):
                continue
            if losses and "loss" not in entry:
                continue
            hit[i] = True
            if losses:
                loss[i] = _from_json(entry["loss"])
            for layer, key in keys.items():
                entropy[layer][i] = _from_json(entry["entropy"][key])
        return loss, entropy, hit

    def store(self, token_ids: Sequence[Sequence[int]], loss: torch.Tensor | None, entropy: dict[int, torch.Tensor],
              m0_checksum: str | None, skip_first_tokens: int = 0) -> None:
        """Add or extend the entries of ``token_ids`` (``loss`` None: not computed, left as stored)."""
        for i, ids in enumerate(token_ids):
            entry = self._texts.setdefault(text_key(ids), {"entropy": {}})
            if loss is not None:
                entry["loss"] = _to_json(loss[i])
            entry["entropy"].update({entropy_key(layer, skip_first_tokens): _to_json(values[i])
                                     for layer, values in entropy.items()})
        if m0_checksum is not None:
            self.m0_checksum = m0_checksum
        payload = json.dumps({"key": self.key, "m0_checksum": self.m0_checksum, "texts": self._texts},
                             sort_keys=True, default=str, allow_nan=False)
        tmp = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(payload)
            os.replace(tmp, self.path)
        except OSError as err:  # the results are computed: losing the cache must not lose the run
            logger.warning("erank: could not write M0's results cache %s (%s); this run's results are "
                           "unaffected, later runs recompute M0", self.path, err)
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)


def _to_json(value: torch.Tensor) -> float | None:
    value = float(value)
    return value if value == value else None  # NaN (undefined) -> null


def _from_json(value) -> float:
    return _FLOAT_NONE if value is None else float(value)
