"""The result of one measurement: per-text values of M1 and its twins, aggregated by the metric
table (no lm-eval). ``diff_erank()`` returns it; the harness's per-doc values are its rows.

Every dataset value is the table's aggregation (``core.metrics``) of the per-text values, the
same functions over the same per-doc values as the harness, so the API, the callback and
``lm_eval`` report the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from . import metrics
from .representations import TextStatistics


@dataclass(frozen=True)
class DiffErankResult:
    """Per-text values (tensors over texts, float64, NaN = undefined) and their aggregations.

    ``layers`` are hidden-state indices (0 = embeddings, i = block i, L = LM head input);
    ``entropy_m1[layer]`` is (n_texts,) entropies in nats; ``entropy_m0[layer]`` is (n_texts,)
    for one twin and (K, n_texts) for K twins (seed order); ``loss_m1`` (n_texts,) and
    ``loss_m0`` ((n_texts,) or (K, n_texts)) are mean token losses, None when not computed
    (``losses=False``: then the loss metrics are left out of ``summary`` and ``per_text``).
    ``m0_seed`` / ``m0_checksum`` are the first twin's; ``m0_seeds`` / ``m0_checksums`` every twin's
    (the seed is None for an M0 loaded with ``m0_pretrained``; the checksum is of M0's weights).

    With K twins every value that involves M0 is the mean over twins of the single-twin value
    (:meth:`twin`), over the texts defined under M1 and every twin; ``erank_m1`` is unchanged.

    Dataset values: :meth:`value` (any metric of ``core.metrics.TABLE`` at any measured layer),
    :meth:`summary` (all of them), and one method per metric, made from the table below the class
    (``diff_erank(layer=None)``, ``erank_m1(...)``, ..., ``reduced_loss()``).
    """

    entropy_m1: dict[int, torch.Tensor]
    entropy_m0: dict[int, torch.Tensor]
    loss_m1: torch.Tensor | None
    loss_m0: torch.Tensor | None
    n_tokens: list[int]
    truncated: list[bool]
    last_layer: int
    m0_seed: int | None
    m0_checksum: str
    m0_seeds: tuple[int | None, ...] = field(default=())
    m0_checksums: tuple[str | None, ...] = field(default=())

    def __post_init__(self):
        object.__setattr__(self, "_documents_by_layer", {})  # per-doc metric values, computed once per layer

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

    # ---- per text ----------------------------------------------------------------------

    def _layer(self, layer: int | None) -> int:
        if layer is None:
            return self.last_layer
        if layer not in self.entropy_m1:
            raise ValueError(f"layer {layer!r} was not measured; this result holds layers {list(self.layers)} "
                             f"(pass layers=... to diff_erank to measure others)")
        return layer

    def _text(self, i: int, layer: int) -> dict:
        """Text ``i``'s values at ``layer`` as an ``erank`` response holds them (None = undefined;
        M0's a list over twins for K > 1)."""
        def value(x) -> float | None:
            x = float(x)
            return None if math.isnan(x) else x

        def m0(values: torch.Tensor):
            return value(values[i]) if values.dim() == 1 else [value(x) for x in values[:, i]]

        row = {"entropy_m1": value(self.entropy_m1[layer][i]), "entropy_m0": m0(self.entropy_m0[layer])}
        if self.has_losses:
            row.update({"loss_m1": value(self.loss_m1[i]), "loss_m0": m0(self.loss_m0)})
        row.update({"n_tokens": self.n_tokens[i], "truncated": self.truncated[i]})
        return row

    def per_text(self) -> list[dict]:
        """One dict per text: entropies (nats, per layer), losses (when computed), token count,
        truncation; None = undefined. With K twins every M0 value is a list over twins (seed order).
        These are the ``erank`` responses the harness turns into per-doc metric values."""
        extra = [layer for layer in self.layers if layer != self.last_layer]
        rows = []
        for i in range(len(self.n_tokens)):
            row = self._text(i, self.last_layer)
            row["layers"] = {layer: {key: self._text(i, layer)[key] for key in ("entropy_m1", "entropy_m0")}
                             for layer in extra}
            rows.append(row)
        return rows

    def documents(self, layer: int | None = None) -> list[dict]:
        """The per-doc metric values of every text at ``layer`` (default: the LM head's input),
        as the harness computes them (``core.metrics.per_document_values``)."""
        layer = self._layer(layer)
        cache = self._documents_by_layer
        if layer not in cache:
            cache[layer] = [metrics.per_document_values(self._text(i, layer)) for i in range(len(self.n_tokens))]
        return cache[layer]

    # ---- dataset values ------------------------------------------------------------------

    def value(self, name: str, layer: int | None = None) -> float | None:
        """The dataset value of metric ``name`` (a name of the metric table) at ``layer``;
        None where it is undefined (every text excluded; a twin spread with one twin)."""
        spec = metrics.BY_NAME[name]
        if spec.losses and not self.has_losses:
            raise ValueError("the losses were not computed (losses=False)")
        documents = self.documents(layer)
        if spec.twins_only and self.n_twins == 1:
            return None
        return spec.aggregation([doc[name] for doc in documents])

    @property
    def excluded(self) -> int:
        """Texts without a defined eRank under M1 or any twin (fewer than 2 tokens, or no spread)."""
        return int(self.value("erank_excluded"))

    def summary(self) -> dict:
        """Every dataset value the harness reports for these texts, under the harness's metric
        names (layer metrics suffixed ``_layer{i}``; ``erank_m0_twin_sd`` only for K > 1), plus
        ``texts``, the number of texts."""
        out = metrics.aggregate(self.documents())
        out["texts"] = len(self.n_tokens)
        for layer in self.layers:
            if layer != self.last_layer:
                out.update({f"{m.name}_layer{layer}": self.value(m.name, layer) for m in metrics.TABLE if m.per_layer})
        return out


def _accessor(spec: metrics.MetricSpec):
    """``result.<name>(layer=None)`` (for the loss metrics ``result.<name>()``): :meth:`DiffErankResult.value`."""
    if spec.losses:
        def method(self):
            return self.value(spec.name)
    else:
        def method(self, layer: int | None = None):
            return self.value(spec.name, layer)
    method.__name__ = method.__qualname__ = spec.name
    method.__doc__ = spec.doc
    return method


# One method per dataset value of the metric table: diff_erank(), erank_m1(), erank_m0(), erank_ratio(),
# diff_erank_b(), erank_m1_b(), erank_m0_b(), erank_m0_twin_sd() (each with layer=), reduced_loss(),
# loss_m1(), loss_m0(); the counts are in summary() and excluded.
for _spec in metrics.TABLE:
    if _spec.aggregation is not metrics.COUNT[0] and _spec.name != "erank_tokens":
        setattr(DiffErankResult, _spec.name, _accessor(_spec))


def combine(s1: TextStatistics, s0: TextStatistics | Sequence[TextStatistics], token_ids, truncated,
            m0_seed: int | None | Sequence[int | None], m0_checksum: str | Sequence[str | None]) -> DiffErankResult:
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
