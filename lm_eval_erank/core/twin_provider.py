"""M0's side of a measurement: the K random twins of one M1, built on first use (or given), or
one M0 loaded from a checkpoint (``pretrained``), their per-text statistics read from and
written to M0's results cache (no lm-eval).

Twin k has seed ``m0_seed + k``; with K > 1 twins (or ``swap``, or ``keep_statistics``) each is
freed after its pass, so at most one twin is resident beside M1. ``keep_statistics`` (the
training callback, whose M0 never changes) keeps each twin's per-text statistics in memory, so a
later pass over the same texts runs no M0 at all.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from .checks import MAX_SEED, check_bool, check_int, check_m0_pretrained, check_seed
from .errors import ErankValueError
from .m0_cache import M0Cache, check_writable, model_key
from .pretrained_m0 import PretrainedM0, check_same_architecture, load_pretrained_m0
from .progress import Progress
from .representations import TextStatistics, num_layers, text_statistics
from .twin import (build_random_twin, model_device, off_device, parameter_checksum, spans_devices, twin_config,
                   warn_if_gguf_init_unknown)

logger = logging.getLogger("lm_eval.erank.twins")


class TwinProvider:
    """M0 for one M1, built on first use (or given), with an optional on-disk results cache.

    ``pretrained`` (a :class:`~lm_eval_erank.core.pretrained_m0.PretrainedM0`, with ``seed`` None):
    M0 is loaded from that checkpoint instead of drawn, on first use; its cache entry is keyed by
    its config and the checksum of its weights, so it is opened once M0 has been loaded.

    ``swap=True``: M1 and M0 take turns on M1's device. :meth:`statistics` moves M1 to the CPU,
    builds M0 where M1 was, runs it, frees it and moves M1 back (peak: one model resident).

    ``keep_statistics=True``: the per-text statistics of the last pass stay in memory (M0 itself is
    freed after it); a later pass over the same token ids, layers and options returns them without
    building M0 or reading the cache.
    """

    def __init__(self, m1, seed: int | None, device=None, m0=None, cache_dir: str | Path | None = None,
                 swap: bool = False, initializer_range: float | None = None, pretrained: PretrainedM0 | None = None,
                 keep_statistics: bool = False):
        if swap and device is not None:
            raise ErankValueError("m0_swap=true runs M0 on M1's device; it cannot be combined with m0_device")
        if swap and spans_devices(m1):
            raise ErankValueError("m0_swap=true needs M1 on one device; it cannot be combined with parallelize=True")
        if pretrained is not None:
            check_m0_pretrained(pretrained.name, pretrained.revision, m0_seed=seed,
                                m0_initializer_range=initializer_range, m0=m0)
        else:
            seed = check_seed(seed)
        self.m1, self.seed, self.swap, self.initializer_range = m1, seed, swap, initializer_range
        self.pretrained = pretrained
        self.keep_statistics = keep_statistics
        self._kept: tuple[tuple, TextStatistics] | None = None  # (what the pass was over, its statistics)
        self.device = model_device(m1) if swap else device  # captured now: M1 is on the CPU during M0's turn
        self._m0 = m0
        self._checksum = None
        self.cache = None
        self.cache_hits = 0  # texts of the last pass read from the cache
        self._cache_dir = None  # a loaded M0's cache directory, until its entry is opened (its key needs M0's weights)
        if cache_dir is not None:
            self._device_type = torch.device(device).type if device is not None else next(m1.parameters()).device.type
            if pretrained is not None:
                self._cache_dir = check_writable(cache_dir)
            else:
                config = twin_config(m1, initializer_range)
                self.cache = M0Cache(cache_dir, model_key(config, self.seed, m1.dtype, self._device_type))

    @property
    def label(self) -> str:
        """How progress bars and log lines name this M0: ``M0 seed 1234`` or ``M0 NAME@REVISION``."""
        return f"M0 seed {self.seed}" if self.pretrained is None else f"M0 {self.pretrained.describe()}"

    @property
    def built(self) -> bool:
        return self._m0 is not None

    @property
    def model(self):
        if self._m0 is None:
            if self.pretrained is not None:
                self._m0 = load_pretrained_m0(self.m1, self.pretrained, device=self.device)
            else:
                self._m0 = build_random_twin(self.m1, self.seed, device=self.device,
                                             initializer_range=self.initializer_range)
        return self._m0

    def _open_cache(self) -> M0Cache | None:
        """The cache entry, opened for a loaded M0 on first need (loading M0 for its checksum)."""
        if self.cache is None and self._cache_dir is not None:
            key = model_key(self.model.config, None, self.m1.dtype, self._device_type, weights=self.checksum)
            self.cache = M0Cache(self._cache_dir, key)
        return self.cache

    @property
    def checksum(self) -> str:
        """SHA-256 of M0's weights (from the cache when M0 was never needed)."""
        if self.known_checksum is None:
            self._checksum = parameter_checksum(self.model)
        return self._checksum

    @property
    def known_checksum(self) -> str | None:
        """The checksum if it is known without building M0, else None."""
        if self._checksum is None:
            if self.built:
                self._checksum = parameter_checksum(self._m0)
            elif self.cache is not None and self.cache.m0_checksum:
                self._checksum = self.cache.m0_checksum
        return self._checksum

    def release(self) -> None:
        """Free M0 (its checksum is kept); the next use builds it again, identically."""
        if self._m0 is not None:
            self.known_checksum  # noqa: B018
            self._m0 = None

    @staticmethod
    def _pass_key(token_ids, layers: Sequence[int], losses: bool, skip_first_tokens: int) -> tuple:
        return tuple(map(tuple, token_ids)), tuple(sorted(set(layers))), bool(losses), skip_first_tokens

    def kept_statistics(self, token_ids, layers: Sequence[int], losses: bool = True,
                        skip_first_tokens: int = 0) -> TextStatistics | None:
        """The statistics ``keep_statistics`` kept, if the last pass was over exactly these token
        ids, layers and options; else None."""
        if self._kept is None or self._kept[0] != self._pass_key(token_ids, layers, losses, skip_first_tokens):
            return None
        return self._kept[1]

    def statistics(self, token_ids, batch_size: int, pad_id: int, layers: Sequence[int],
                   progress: Callable[[int], None] | None = None, losses: bool = True,
                   skip_first_tokens: int = 0) -> TextStatistics:
        """M0's per-text statistics, computed only for texts the cache does not hold (with
        ``swap``, during M0's turn on the device; its checksum is taken before it is freed)."""
        return twins_statistics([self], token_ids, batch_size, pad_id, layers,
                                None if progress is None else lambda label: progress, losses,
                                skip_first_tokens=skip_first_tokens)[0]

    def _statistics(self, token_ids, batch_size: int, pad_id: int, layers: Sequence[int],
                    update: Callable[[int], None] | None, losses: bool, skip_first_tokens: int) -> TextStatistics:
        stats = self._computed_statistics(token_ids, batch_size, pad_id, layers, update, losses, skip_first_tokens)
        if self.keep_statistics:
            self._kept = (self._pass_key(token_ids, layers, losses, skip_first_tokens), stats)
        return stats

    def _computed_statistics(self, token_ids, batch_size: int, pad_id: int, layers: Sequence[int],
                             update: Callable[[int], None] | None, losses: bool,
                             skip_first_tokens: int) -> TextStatistics:
        last = num_layers(self.m1)
        wanted = sorted(set(layers) | {last})
        if self._open_cache() is None:
            return text_statistics(self.model, token_ids, batch_size, pad_id, "M0", update, wanted, losses,
                                   skip_first_tokens)
        loss, entropy, hit = self.cache.lookup(token_ids, wanted, losses, skip_first_tokens)
        self.cache_hits = int(hit.sum())
        logger.info("erank: %s: %d of %d texts' results from the M0 cache (%s)", self.label, int(hit.sum()),
                    len(token_ids), self.cache.path)
        if update is not None:
            update(int(hit.sum()))
        missing = [i for i in range(len(token_ids)) if not hit[i]]
        if missing:
            fresh = text_statistics(self.model, [token_ids[i] for i in missing], batch_size, pad_id, "M0", update,
                                    wanted, losses, skip_first_tokens)
            index = torch.as_tensor(missing)
            if losses:
                loss[index] = fresh.loss
            for layer in wanted:
                entropy[layer][index] = fresh.layer_entropy[layer]
            self.cache.store([token_ids[i] for i in missing], fresh.loss, fresh.layer_entropy, self.checksum,
                             skip_first_tokens)
        return TextStatistics(layer_entropy=entropy, loss=loss, last_layer=last)


def make_twins(m1, seed, n_twins: int = 1, device=None, m0=None, cache_dir: str | Path | None = None,
               swap: bool = False, initializer_range: float | None = None,
               pretrained: PretrainedM0 | None = None, keep_statistics: bool = False) -> list[TwinProvider]:
    """K = ``n_twins`` twin providers with seeds seed, seed + 1, ..., seed + K - 1 (each with its
    own M0-cache entry; ``m0``, an already-built twin, only for K = 1; ``initializer_range``: the
    twins' init std instead of the config's; ``keep_statistics``: see :class:`TwinProvider`). With
    ``pretrained`` (``seed`` None, K = 1): one provider loading M0 from that checkpoint, whose
    architecture is checked against M1's here, before any forward (M0ArchitectureError)."""
    n_twins = check_int("m0_twins", n_twins)
    keep_statistics = check_bool("keep_statistics", keep_statistics)
    if pretrained is not None:
        check_m0_pretrained(pretrained.name, pretrained.revision, m0_seed=seed, m0_twins=n_twins,
                            m0_initializer_range=initializer_range, m0=m0)
        check_same_architecture(m1, pretrained)
        return [TwinProvider(m1, None, device=device, cache_dir=cache_dir, swap=swap, pretrained=pretrained,
                             keep_statistics=keep_statistics)]
    if m0 is not None and n_twins > 1:
        raise ValueError("m0= gives one already-built twin; it cannot be combined with m0_twins > 1")
    first = check_seed(seed)
    if first + n_twins - 1 > MAX_SEED:
        raise ValueError(f"m0_seed + m0_twins - 1 must be at most 2**64 - 1, got {first} + {n_twins} - 1")
    if m0 is None:
        warn_if_gguf_init_unknown(m1, initializer_range)
    return [TwinProvider(m1, first + k, device=device, m0=m0, cache_dir=cache_dir, swap=swap,
                         initializer_range=initializer_range, keep_statistics=keep_statistics)
            for k in range(n_twins)]


def twins_statistics(twins: Sequence[TwinProvider], token_ids, batch_size: int, pad_id: int, layers: Sequence[int],
                     progress: Progress | None = None, losses: bool = True,
                     skip_first_tokens: int = 0) -> list[TextStatistics]:
    """Each twin's per-text statistics, one twin after another. With K > 1 twins (or ``swap``, or
    ``keep_statistics``) each twin is freed after its pass (its checksum kept), so at most one is
    resident beside M1; with ``swap`` M1 leaves the device once for all twins' turns. Twins that
    kept the statistics of a pass over these texts (``keep_statistics``) run nothing."""
    kept = [twin.kept_statistics(token_ids, layers, losses, skip_first_tokens) for twin in twins]
    if all(stats is not None for stats in kept):
        return kept
    swap = twins[0].swap
    free_each = swap or len(twins) > 1 or any(twin.keep_statistics for twin in twins)
    out = []
    with off_device(twins[0].m1) if swap else contextlib.nullcontext():
        for k, twin in enumerate(twins):
            label = twin.label + (f" (twin {k + 1}/{len(twins)})" if len(twins) > 1 else "")
            try:
                out.append(twin._statistics(token_ids, batch_size, pad_id, layers,
                                            None if progress is None else progress(label), losses, skip_first_tokens))
                if free_each:
                    twin.checksum  # noqa: B018  (from the cache, or from M0 while it is resident)
            finally:
                if free_each:
                    twin.release()
    return out
