"""Diff-eRank outside the harness, and the one implementation the harness uses too (no lm-eval).

    from lm_eval_erank import diff_erank
    result = diff_erank(model, tokenizer, texts, layers="paper", batch_size=16)
    result.diff_erank(), result.reduced_loss(), result.per_text()[0]

``model`` is an already-loaded transformers causal LM (M1); M0 is its random twin (built
from its config, or passed in). Per text: the entropy of chosen hidden states and the mean
token loss under both models; over the texts: both eRank aggregations, Diff-eRank, the
ratio, the reduced loss and the counts (see README "Reported metrics").
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import aggregation as agg
from .m0_cache import M0Cache, default_directory, model_key
from .representations import TextStatistics, num_layers, parse_layers, text_statistics
from .twin import MAX_SEED, build_random_twin, model_device, off_device, parameter_checksum, spans_devices, validate_seed

logger = logging.getLogger("lm_eval.erank.api")

# progress(label) -> a callback receiving the number of texts just done (or None): one pass per
# model, labelled "M1" or "M0 seed s (twin k/K)".
Progress = Callable[[str], Callable[[int], None] | None]


# M0's seed when none is given: lm-eval's default torch seed (``--seed``), which is what the
# harness's ``m0_seed`` defaults to (the torch seed lm-eval set), so both give the same M0.
DEFAULT_M0_SEED = 1234
# ``m0_cache`` when none is given: the harness's directory (see m0_cache.default_directory).
DEFAULT_CACHE = "default"
_CACHE_OFF = {"off", "none", "false", "0", ""}


def check_texts(texts, name: str = "texts") -> list[str]:
    """``texts`` as a list of strings; TypeError/ValueError naming ``name`` for a single string,
    a non-sequence, an empty sequence or a non-string item.

    >>> check_texts(("a text", "another"))
    ['a text', 'another']
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of strings (one per text), got a single {type(texts).__name__}; "
                        f"wrap it in a list: [{texts[:30]!r}{'...' if len(texts) > 30 else ''}]")
    try:
        items = list(texts)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of strings (one per text), got {type(texts).__name__}") from None
    if not items:
        raise ValueError(f"{name} is empty: Diff-eRank needs at least one text")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{i}] is a {type(item).__name__}, expected a string")
    return items


def check_int(name: str, value, minimum: int = 1, allow_none: bool = False) -> int | None:
    """``value`` as an int >= ``minimum`` (None passes when ``allow_none``); ValueError otherwise."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{' or None' if allow_none else ''}, got {value!r}")
    return value


def check_model(model, name: str = "model") -> None:
    """``model`` is a loaded transformers model (a torch module with a ``config``), not a name."""
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "config"):
        raise TypeError(f"{name} must be a loaded transformers causal LM (e.g. AutoModelForCausalLM.from_pretrained(...)), "
                        f"got {type(model).__name__}")


def check_tokenizer(tokenizer) -> None:
    """``tokenizer`` is a loaded (callable) tokenizer, not a name."""
    if isinstance(tokenizer, (str, Path)) or not callable(tokenizer):
        raise TypeError(f"tokenizer must be a loaded tokenizer (e.g. AutoTokenizer.from_pretrained(...)), "
                        f"got {type(tokenizer).__name__}")


def resolve_cache(m0_cache) -> Path | None:
    """The cache directory for an ``m0_cache`` option: ``"default"`` -> the default directory,
    None / ``off`` -> None, else the given path."""
    if m0_cache is None or (isinstance(m0_cache, str) and m0_cache.strip().lower() in _CACHE_OFF):
        return None
    if isinstance(m0_cache, str) and m0_cache == DEFAULT_CACHE:
        return default_directory()
    if not isinstance(m0_cache, (str, Path)):
        raise TypeError(f"m0_cache must be a directory, 'off' or None, got {type(m0_cache).__name__}")
    return Path(m0_cache).expanduser()


def encode_texts(tokenizer, texts: Sequence[str], max_length: int, add_bos_token: bool = False):
    """Token ids per text with the tokenizer's default special tokens, cut to ``max_length``
    (the first tokens are kept). ``add_bos_token`` prepends BOS where the tokenizer does not.

    Returns (ids: list[list[int]], truncated: list[bool]).
    """
    encoded = tokenizer(list(texts))["input_ids"] if texts else []
    bos = tokenizer.bos_token_id
    ids, truncated = [], []
    for seq in encoded:
        seq = list(seq)
        if add_bos_token and bos is not None and (not seq or seq[0] != bos):
            seq = [bos] + seq
        truncated.append(len(seq) > max_length)
        ids.append(seq[:max_length])
    return ids, truncated


def default_max_length(model) -> int:
    """The config's context length (``max_position_embeddings`` / ``n_positions``), else 2048."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 2048


class TwinProvider:
    """M0 for one M1, built on first use (or given), with an optional on-disk results cache.

    ``swap=True``: M1 and M0 take turns on M1's device. :meth:`statistics` moves M1 to the CPU,
    builds M0 where M1 was, runs it, frees it and moves M1 back (peak: one model resident).
    """

    def __init__(self, m1, seed: int, device=None, m0=None, cache_dir: str | Path | None = None,
                 swap: bool = False):
        if swap and device is not None:
            raise ValueError("m0_swap=true runs M0 on M1's device; it cannot be combined with m0_device")
        if swap and spans_devices(m1):
            raise ValueError("m0_swap=true needs M1 on one device; it cannot be combined with parallelize=True")
        self.m1, self.seed, self.swap = m1, validate_seed(seed), swap
        self.device = model_device(m1) if swap else device  # captured now: M1 is on the CPU during M0's turn
        self._m0 = m0
        self._checksum = None
        self.cache = None
        if cache_dir is not None:
            device_type = torch.device(device).type if device is not None else next(m1.parameters()).device.type
            self.cache = M0Cache(cache_dir, model_key(m1.config, self.seed, m1.dtype, device_type))

    @property
    def built(self) -> bool:
        return self._m0 is not None

    @property
    def model(self):
        if self._m0 is None:
            self._m0 = build_random_twin(self.m1, self.seed, device=self.device)
        return self._m0

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

    def statistics(self, token_ids, batch_size: int, pad_id: int, layers: Sequence[int],
                   progress: Callable[[int], None] | None = None, losses: bool = True) -> TextStatistics:
        """M0's per-text statistics, computed only for texts the cache does not hold (with
        ``swap``, during M0's turn on the device; its checksum is taken before it is freed)."""
        return twins_statistics([self], token_ids, batch_size, pad_id, layers,
                                None if progress is None else lambda label: progress, losses)[0]

    def _statistics(self, token_ids, batch_size: int, pad_id: int, layers: Sequence[int],
                    progress: Callable[[int], None] | None, losses: bool) -> TextStatistics:
        last = num_layers(self.m1)
        wanted = sorted(set(layers) | {last})
        if self.cache is None:
            return text_statistics(self.model, token_ids, batch_size, pad_id, "M0", progress, wanted, losses)
        loss, entropy, hit = self.cache.lookup(token_ids, wanted, losses)
        logger.info("erank: M0 seed %d: %d of %d texts' results from the M0 cache (%s)", self.seed, int(hit.sum()),
                    len(token_ids), self.cache.path)
        if progress is not None:
            progress(int(hit.sum()))
        missing = [i for i in range(len(token_ids)) if not hit[i]]
        if missing:
            fresh = text_statistics(self.model, [token_ids[i] for i in missing], batch_size, pad_id, "M0", progress,
                                    wanted, losses)
            index = torch.as_tensor(missing)
            if losses:
                loss[index] = fresh.loss
            for layer in wanted:
                entropy[layer][index] = fresh.layer_entropy[layer]
            self.cache.store([token_ids[i] for i in missing], fresh.loss, fresh.layer_entropy, self.checksum)
        return TextStatistics(layer_entropy=entropy, loss=loss, last_layer=last)


def make_twins(m1, seed, n_twins: int = 1, device=None, m0=None, cache_dir: str | Path | None = None,
               swap: bool = False) -> list[TwinProvider]:
    """K = ``n_twins`` twin providers with seeds seed, seed + 1, ..., seed + K - 1 (each with its
    own M0-cache entry; ``m0``, an already-built twin, only for K = 1)."""
    n_twins = check_int("m0_twins", n_twins)
    if m0 is not None and n_twins > 1:
        raise ValueError("m0= gives one already-built twin; it cannot be combined with m0_twins > 1")
    first = validate_seed(seed)
    if first + n_twins - 1 > MAX_SEED:
        raise ValueError(f"m0_seed + m0_twins - 1 must be at most 2**64 - 1, got {first} + {n_twins} - 1")
    return [TwinProvider(m1, first + k, device=device, m0=m0, cache_dir=cache_dir, swap=swap) for k in range(n_twins)]


def twins_statistics(twins: Sequence[TwinProvider], token_ids, batch_size: int, pad_id: int, layers: Sequence[int],
                     progress: Progress | None = None, losses: bool = True) -> list[TextStatistics]:
    """Each twin's per-text statistics, one twin after another. With K > 1 twins (or ``swap``)
    each twin is freed after its pass (its checksum kept), so at most one is resident beside M1;
    with ``swap`` M1 leaves the device once for all twins' turns."""
    swap = twins[0].swap
    free_each = swap or len(twins) > 1
    out = []
    with off_device(twins[0].m1) if swap else contextlib.nullcontext():
        for k, twin in enumerate(twins):
            label = f"M0 seed {twin.seed}" + (f" (twin {k + 1}/{len(twins)})" if len(twins) > 1 else "")
            try:
                out.append(twin._statistics(token_ids, batch_size, pad_id, layers,
                                            None if progress is None else progress(label), losses))
                if free_each:
                    twin.checksum  # noqa: B018  (from the cache, or from M0 while it is resident)
            finally:
                if free_each:
                    twin.release()
    return out


@dataclass(frozen=True)
class DiffErankResult:
    """Per-text values (tensors over texts, float64, NaN = undefined) and their aggregations.

    ``layers`` are hidden-state indices (0 = embeddings, i = block i, L = LM head input);
    ``entropy_m1[layer]`` is (n_texts,) entropies in nats; ``entropy_m0[layer]`` is (n_texts,)
    for one twin and (K, n_texts) for K twins (seed order); ``loss_m1`` (n_texts,) and
    ``loss_m0`` ((n_texts,) or (K, n_texts)) are mean token losses, None when not computed
    (``losses=False``: then the loss metrics are left out of ``summary`` and ``per_text``).
    ``m0_seed`` / ``m0_checksum`` are the first twin's; ``m0_seeds`` / ``m0_checksums`` every twin's.

    With K twins every value that involves M0 is the mean over twins of the single-twin value
    (:meth:`twin`), over the texts defined under M1 and every twin; ``erank_m1`` is unchanged.
    """

    entropy_m1: dict[int, torch.Tensor]
    entropy_m0: dict[int, torch.Tensor]
    loss_m1: torch.Tensor | None
    loss_m0: torch.Tensor | None
    n_tokens: list[int]
    truncated: list[bool]
    last_layer: int
    m0_seed: int
    m0_checksum: str
    m0_seeds: tuple[int, ...] = field(default=())
    m0_checksums: tuple[str | None, ...] = field(default=())

    @property
    def has_losses(self) -> bool:
        return self.loss_m1 is not None and self.loss_m0 is not None

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(sorted(self.entropy_m1))

    @property
    def n_twins(self) -> int:
        """K, the number of random twins."""
        values = self.entropy_m0[self.last_layer]
        return 1 if values.dim() == 1 else values.shape[0]

    def twin(self, k: int) -> DiffErankResult:
        """The single-twin result of twin ``k`` (0-based, seed ``m0_seed + k``), over the texts
        defined under M1 and every twin; for K = 1, ``twin(0)`` is this result."""
        if not 0 <= k < self.n_twins:
            raise IndexError(f"twin {k} of {self.n_twins}")
        if self.n_twins == 1:
            return self
        entropy_m1, entropy_m0 = {}, {}
        for layer in self.layers:
            undefined = torch.isnan(self.entropy_m1[layer]) | torch.isnan(self.entropy_m0[layer]).any(dim=0)
            entropy_m1[layer] = self.entropy_m1[layer].masked_fill(undefined, math.nan)
            entropy_m0[layer] = self.entropy_m0[layer][k].masked_fill(undefined, math.nan)
        loss_m0 = None
        if self.has_losses:
            loss_m0 = self.loss_m0[k].masked_fill(torch.isnan(self.loss_m0).any(dim=0), math.nan)
        seeds = self.m0_seeds or (self.m0_seed,)
        checksums = self.m0_checksums or (self.m0_checksum,)
        return DiffErankResult(entropy_m1, entropy_m0, self.loss_m1, loss_m0, self.n_tokens, self.truncated,
                               self.last_layer, seeds[k], checksums[k], (seeds[k],), (checksums[k],))

    def _over_twins(self, single: Callable[[DiffErankResult], float | None]) -> float | None:
        """mean over twins of ``single(twin)`` (K = 1: ``single(self)``)."""
        if self.n_twins == 1:
            return single(self)
        values = [single(self.twin(k)) for k in range(self.n_twins)]
        return None if any(v is None for v in values) else float(np.mean(values))

    def _layer(self, layer: int | None) -> int:
        if layer is None:
            return self.last_layer
        if layer not in self.entropy_m1:
            raise ValueError(f"layer {layer!r} was not measured; this result holds layers {list(self.layers)} "
                             f"(pass layers=... to diff_erank to measure others)")
        return layer

    def _pairs(self, layer: int | None) -> list:
        layer = self._layer(layer)
        return [None if math.isnan(h0) or math.isnan(h1) else (math.exp(h0), math.exp(h1))
                for h0, h1 in zip(self.entropy_m0[layer].tolist(), self.entropy_m1[layer].tolist())]

    @property
    def excluded(self) -> int:
        """Texts without a defined eRank under M1 or any twin (fewer than 2 tokens, or no spread)."""
        return sum(p is None for p in self.twin(0)._pairs(None))

    def erank_m1(self, layer: int | None = None) -> float | None:
        """exp(mean H(M1)) (algorithm (a))."""
        return agg.geometric_mean([None if p is None else p[1] for p in self.twin(0)._pairs(layer)])

    def erank_m0(self, layer: int | None = None) -> float | None:
        """exp(mean H(M0)), averaged over twins."""
        return self._over_twins(lambda r: agg.geometric_mean([None if p is None else p[0] for p in r._pairs(layer)]))

    def erank_m0_twin_sd(self, layer: int | None = None) -> float | None:
        """Standard deviation (ddof 1) over twins of the single-twin eRank(M0); None for one twin."""
        if self.n_twins == 1:
            return None
        values = [self.twin(k).erank_m0(layer) for k in range(self.n_twins)]
        return None if any(v is None for v in values) else float(np.std(values, ddof=1))

    def diff_erank(self, layer: int | None = None) -> float | None:
        """exp(mean H(M0)) - exp(mean H(M1)) over texts with a defined eRank (twin mean)."""
        return self._over_twins(lambda r: agg.difference_of_geometric_means(r._pairs(layer)))

    def diff_erank_b(self, layer: int | None = None) -> float | None:
        """Algorithm (b): mean over texts of eRank(M0) - eRank(M1) (twin mean)."""
        return self._over_twins(
            lambda r: agg.arithmetic_mean([None if p is None else p[0] - p[1] for p in r._pairs(layer)]))

    def erank_m1_b(self, layer: int | None = None) -> float | None:
        """Algorithm (b) for M1: mean over texts of eRank(M1)."""
        return agg.arithmetic_mean([None if p is None else p[1] for p in self.twin(0)._pairs(layer)])

    def erank_m0_b(self, layer: int | None = None) -> float | None:
        """Algorithm (b) for M0: mean over texts of eRank(M0) (twin mean)."""
        return self._over_twins(lambda r: agg.arithmetic_mean([None if p is None else p[0] for p in r._pairs(layer)]))

    def erank_ratio(self, layer: int | None = None) -> float | None:
        """exp(mean H(M1)) / exp(mean H(M0)): the size-normalised companion of Diff-eRank (twin mean)."""
        return self._over_twins(lambda r: agg.ratio_of_geometric_means(r._pairs(layer)))

    def reduced_loss(self) -> float | None:
        """mean over texts of L(M0) - L(M1) (twin mean)."""
        if not self.has_losses:
            raise ValueError("the losses were not computed (losses=False)")
        return self._over_twins(lambda r: agg.arithmetic_mean([None if math.isnan(a) or math.isnan(b) else a - b
                                                              for a, b in zip(r.loss_m0.tolist(), r.loss_m1.tolist())]))

    def summary(self) -> dict:
        """Every dataset value the harness reports for these texts, under the harness's metric
        names (layer metrics suffixed ``_layer{i}``; ``erank_m0_twin_sd`` only for K > 1), plus
        ``texts``, the number of texts."""
        out = {
            "diff_erank": self.diff_erank(), "erank_m1": self.erank_m1(), "erank_m0": self.erank_m0(),
            "erank_ratio": self.erank_ratio(), "diff_erank_b": self.diff_erank_b(),
            "erank_m1_b": self.erank_m1_b(), "erank_m0_b": self.erank_m0_b(),
        }
        if self.has_losses:
            out["reduced_loss"] = self.reduced_loss()
            out["loss_m1"] = agg.arithmetic_mean([None if math.isnan(x) else x for x in self.loss_m1.tolist()])
            out["loss_m0"] = self._over_twins(
                lambda r: agg.arithmetic_mean([None if math.isnan(x) else x for x in r.loss_m0.tolist()]))
        out.update({"erank_excluded": self.excluded, "erank_truncated": sum(self.truncated),
                    "erank_tokens": agg.arithmetic_mean(self.n_tokens), "texts": len(self.n_tokens)})
        if self.n_twins > 1:
            out["erank_m0_twin_sd"] = self.erank_m0_twin_sd()
        for layer in self.layers:
            if layer != self.last_layer:
                out[f"diff_erank_layer{layer}"] = self.diff_erank(layer)
                out[f"erank_m1_layer{layer}"] = self.erank_m1(layer)
                out[f"erank_m0_layer{layer}"] = self.erank_m0(layer)
        return out

    def per_text(self) -> list[dict]:
        """One dict per text: entropies (nats, per layer), losses (when computed), token count,
        truncation; None = undefined. With K twins every M0 value is a list over twins (seed order)."""
        def value(x: float) -> float | None:
            return None if math.isnan(x) else x

        def m0(values: torch.Tensor, i: int):
            return value(float(values[i])) if values.dim() == 1 else [value(float(x)) for x in values[:, i]]

        rows = []
        for i, n in enumerate(self.n_tokens):
            losses = {"loss_m1": value(float(self.loss_m1[i])),
                      "loss_m0": m0(self.loss_m0, i)} if self.has_losses else {}
            rows.append({
                "entropy_m1": value(float(self.entropy_m1[self.last_layer][i])),
                "entropy_m0": m0(self.entropy_m0[self.last_layer], i),
                **losses,
                "n_tokens": n,
                "truncated": self.truncated[i],
                "layers": {layer: {"entropy_m1": value(float(self.entropy_m1[layer][i])),
                                   "entropy_m0": m0(self.entropy_m0[layer], i)}
                           for layer in self.layers if layer != self.last_layer},
            })
        return rows


def combine(s1: TextStatistics, s0: TextStatistics | Sequence[TextStatistics], token_ids, truncated,
            m0_seed: int | Sequence[int], m0_checksum: str | Sequence[str | None]) -> DiffErankResult:
    """The result object from M1's and M0's per-text statistics over the same texts; ``s0``,
    ``m0_seed`` and ``m0_checksum`` are one twin's or sequences with one entry per twin."""
    if isinstance(s0, TextStatistics):
        s0, m0_seed, m0_checksum = [s0], [m0_seed], [m0_checksum]
    if len(s0) == 1:
        entropy_m0, loss_m0 = s0[0].layer_entropy, s0[0].loss
    else:
        entropy_m0 = {layer: torch.stack([s.layer_entropy[layer] for s in s0]) for layer in s0[0].layer_entropy}
        loss_m0 = None if s0[0].loss is None else torch.stack([s.loss for s in s0])
    return DiffErankResult(
        entropy_m1=s1.layer_entropy, entropy_m0=entropy_m0, loss_m1=s1.loss, loss_m0=loss_m0,
        n_tokens=[len(t) for t in token_ids], truncated=list(truncated), last_layer=s1.last_layer,
        m0_seed=m0_seed[0], m0_checksum=m0_checksum[0], m0_seeds=tuple(m0_seed), m0_checksums=tuple(m0_checksum),
    )


def pair_statistics(m1, twin: TwinProvider | Sequence[TwinProvider], token_ids, truncated, batch_size: int,
                    pad_id: int, layers: Sequence[int] = (), progress: Progress | None = None,
                    losses: bool = True) -> DiffErankResult:
    """Run M1, then each twin (one after another), over pre-tokenised texts: the shared core of
    the harness and the API. ``progress(label)`` is called at the start of each model's pass."""
    twins = [twin] if isinstance(twin, TwinProvider) else list(twin)
    s1 = text_statistics(m1, token_ids, batch_size, pad_id, "M1", None if progress is None else progress("M1"),
                         layers, losses)
    s0 = twins_statistics(twins, token_ids, batch_size, pad_id, layers, progress, losses)
    return combine(s1, s0, token_ids, truncated, [t.seed for t in twins], [t.checksum for t in twins])


def diff_erank(
    model,
    tokenizer,
    texts: Sequence[str],
    *,
    m0_seed: int = DEFAULT_M0_SEED,
    m0=None,
    m0_device=None,
    layers="last",
    batch_size: int = 16,
    max_length: int | None = None,
    add_bos_token: bool = False,
    m0_cache: str | Path | None = DEFAULT_CACHE,
    losses: bool = True,
    m0_twins: int = 1,
) -> DiffErankResult:
    """Diff-eRank of an already-loaded causal LM on ``texts``.

    Args:
        model: M1, a transformers causal LM (in eval mode; its dtype and device are used).
        tokenizer: its tokenizer (default special tokens are added, as the paper does).
        texts: a sequence of strings (not one string); each is cut to ``max_length`` tokens
            (default: the config's ``max_position_embeddings``/``n_positions``).
        m0_seed: seed of the random twin M0 (ignored when ``m0`` is given); default 1234,
            the harness's default (lm-eval's ``--seed``), so both give the same M0; with
            ``m0_twins=K`` the twins' seeds are m0_seed, ..., m0_seed + K - 1.
        m0: an already-built twin to reuse (e.g. across calls); default: built from the config.
        m0_device: where to build M0 (default: M1's device).
        layers: ``last`` | ``paper`` | ``all`` | ``"0:6:12"`` | an int | a sequence of hidden-state indices.
        batch_size: texts per forward.
        add_bos_token: prepend BOS where the tokenizer does not add it.
        m0_cache: a directory for M0's per-text results (see m0_cache.py); default: the
            harness's (``$LM_EVAL_ERANK_CACHE``, else ``~/.cache/lm_eval_erank/m0``); None or
            ``"off"``: no cache. Not used with ``m0`` (the cache is keyed by the seed).
        losses: also compute the token losses (reduced loss); False skips the LM head.
        m0_twins: K, the number of random twins (run one after another): every value that
            involves M0 is the mean over twins, and ``erank_m0_twin_sd()`` their spread.

    Raises TypeError/ValueError naming the argument for input it cannot use (e.g. a single
    string as ``texts``, an empty list, a layer outside [0, L]), before any forward.

    >>> result = diff_erank(model, tokenizer, ["The cat sat on the mat.", "A second text."], m0_cache=None)
    >>> result.excluded, len(result.per_text()), result.erank_m1() >= 1.0
    (0, 2, True)
    """
    check_model(model)
    check_tokenizer(tokenizer)
    texts = check_texts(texts)
    batch_size = check_int("batch_size", batch_size)
    m0_twins = check_int("m0_twins", m0_twins)
    max_length = check_int("max_length", max_length, allow_none=True)
    for name, flag in (("add_bos_token", add_bos_token), ("losses", losses)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    if m0 is not None:
        check_model(m0, "m0")
        if m0_cache is not DEFAULT_CACHE and resolve_cache(m0_cache) is not None:
            raise ValueError("m0_cache cannot be used with m0=: the cache is keyed by m0_seed, which a given "
                             "twin need not match; pass m0_seed instead of m0, or m0_cache=None")
    cache_dir = None if m0 is not None else resolve_cache(m0_cache)
    was_training = model.training
    model.eval()
    try:
        max_length = max_length or default_max_length(model)
        wanted = parse_layers(layers, num_layers(model))
        twins = make_twins(model, m0_seed, m0_twins, device=m0_device, m0=m0, cache_dir=cache_dir)
        ids, truncated = encode_texts(tokenizer, texts, max_length, add_bos_token)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return pair_statistics(model, twins, ids, truncated, batch_size, pad_id, wanted, losses=losses)
    finally:
        model.train(was_training)
