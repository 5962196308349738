"""The one table of the eRank metrics (no lm-eval): each metric is declared once, in
:data:`TABLE`, and that declaration feeds the per-document values (:func:`per_document_values`),
``DiffErankResult.summary()``, the callback's logged keys, the harness's registration and the
entry points in ``pyproject.toml`` (``tests/test_activation.py`` checks them against the table).

Per document (one text), from the ``erank`` response (entropies H in nats, mean token losses L):

| metric          | per-doc value                     | aggregation                        |
|-----------------|-----------------------------------|------------------------------------|
| diff_erank      | [eRank_M0, eRank_M1]              | exp(mean H_M0) - exp(mean H_M1)    |
| erank_m1        | eRank_M1 = exp(H_M1)              | exp(mean H_M1)                     |
| erank_m0        | eRank_M0                          | exp(mean H_M0)                     |
| erank_ratio     | [eRank_M0, eRank_M1]              | exp(mean H_M1) / exp(mean H_M0)    |
| diff_erank_b    | eRank_M0 - eRank_M1               | mean (algorithm (b))               |
| erank_m1_b      | eRank_M1                          | mean                               |
| erank_m0_b      | eRank_M0                          | mean                               |
| reduced_loss    | L_M0 - L_M1                       | mean                               |
| loss_m1, loss_m0| mean token cross-entropy (nats)   | mean                               |
| erank_excluded  | 1 if the text has no eRank        | sum (a count)                      |
| erank_truncated | 1 if the text was cut at max_length | sum (a count)                    |
| erank_tokens    | tokens fed (after truncation)     | mean                               |
| erank_m0_twin_sd| [eRank_M0 per twin] (K > 1 only)  | sd over twins of exp(mean H_M0)    |

With ``m0_twins=K`` every per-doc value that involves M0 carries one entry per twin
(diff_erank, erank_ratio: [eRank_M0 twin 1..K, eRank_M1]; erank_m0, erank_m0_b, diff_erank_b,
reduced_loss, loss_m0: one value per twin); K = 1 writes them as above (scalars and pairs). Their
aggregation is the mean over twins of the single-twin aggregation (K = 1: exactly it), and the
stderr covers texts and twins (``aggregation.twin_stderr``).

With ``layers=``, each extra hidden-state index i adds ``diff_erank_layer{i}``,
``erank_m1_layer{i}`` and ``erank_m0_layer{i}`` (the metrics marked ``per_layer``), aggregated
like the unsuffixed ones (which are the LM head's input).

A text whose eRank is undefined under M1 or any twin (fewer than 2 tokens, or no spread) has
``None`` for every eRank metric and 1 in ``erank_excluded``; aggregations skip ``None``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import aggregation as agg

AGGREGATION_PREFIX = "erank_agg_"
# lm-eval's default --bootstrap_iters is 100,000; 10,000 draws already estimate a standard
# error to about 0.7% (relative) at a tenth of the cost (lm-eval caps bleu/chrf/ter at 100).
MAX_BOOTSTRAP_ITERS = 10_000


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its name, how per-doc values aggregate (and their stderr), whether higher is
    better, and where it is reported.

    ``value`` maps a :class:`Document` (or, for the multimodal table, a row of eRanks) to the
    per-doc value; ``twins_only``: reported only with K > 1 twins; ``losses``: needs the token
    losses (absent with ``losses=false``); ``per_layer``: also reported as ``{name}_layer{i}``;
    ``logged``: logged by ``DiffErankCallback``; ``doc``: the dataset value, in one line;
    ``kind``: the aggregation as :func:`aggregation.resampled_twin_aggregate` names it (``mean``,
    ``geometric_mean``, ``difference``, ``ratio``; None for counts and spreads), which recomputes
    the dataset value on resampled documents (:func:`resampled_aggregate`).
    """

    name: str
    aggregation: Callable
    stderr: Callable
    higher_is_better: bool | None
    value: Callable[[Any], object] | None = None
    twins_only: bool = False
    losses: bool = False
    per_layer: bool = False
    logged: bool = False
    doc: str = ""
    kind: str | None = None


@dataclass(frozen=True)
class Document:
    """One text's values as the metrics read them. ``erank_m0`` / ``loss_m0`` are lists over the
    K twins; an eRank is None unless M1 and every twin define it, a loss list None unless every
    twin's loss is defined. ``twins``: K > 1 (M0 values stay lists; K = 1 writes scalars);
    ``losses``: the losses were computed (False with ``losses=false``)."""

    erank_m1: float | None
    erank_m0: list[float] | None
    loss_m1: float | None
    loss_m0: list[float] | None
    n_tokens: int
    truncated: bool
    twins: bool
    losses: bool

    @property
    def measured(self) -> bool:
        return self.erank_m0 is not None

    def m0(self, values: list | None):
        """A per-twin list as the metrics write it: the list for K > 1, its one entry for K = 1."""
        return values if values is None or self.twins else values[0]


def _finite_or_none(value) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def document(response: Mapping[str, Any]) -> Document:
    """The :class:`Document` of one ``erank`` response (entropy_m1/m0 in nats, loss_m1/m0,
    n_tokens, truncated; M0's values scalars for one twin, lists for K); None/NaN = undefined."""
    twins = isinstance(response["entropy_m0"], (list, tuple))
    h0 = list(response["entropy_m0"]) if twins else [response["entropy_m0"]]
    entropies = [_finite_or_none(h) for h in [*h0, response["entropy_m1"]]]
    measured = all(h is not None for h in entropies)
    eranks = [math.exp(h) for h in entropies] if measured else None
    loss_m1 = loss_m0 = None
    if "loss_m1" in response:
        loss_m1 = _finite_or_none(response["loss_m1"])
        l0 = [_finite_or_none(x) for x in (response["loss_m0"] if twins else [response["loss_m0"]])]
        loss_m0 = None if any(x is None for x in l0) else l0
    return Document(erank_m1=eranks[-1] if measured else None, erank_m0=eranks[:-1] if measured else None,
                    loss_m1=loss_m1, loss_m0=loss_m0, n_tokens=int(response["n_tokens"]),
                    truncated=bool(response["truncated"]), twins=twins, losses="loss_m1" in response)


# ---- per-doc values --------------------------------------------------------------------------

def _paired(d: Document):
    return [*d.erank_m0, d.erank_m1] if d.measured else None


def _m1(d: Document):
    return d.erank_m1


def _m0(d: Document):
    return d.m0(d.erank_m0)


def _difference_b(d: Document):
    return d.m0([e - d.erank_m1 for e in d.erank_m0]) if d.measured else None


def _reduced_loss(d: Document):
    return None if d.loss_m1 is None or d.loss_m0 is None else d.m0([x - d.loss_m1 for x in d.loss_m0])


def _loss_m1(d: Document):
    return d.loss_m1


def _loss_m0(d: Document):
    return d.m0(d.loss_m0)


def _excluded(d: Document):
    return 0 if d.measured else 1


def _truncated(d: Document):
    return int(d.truncated)


def _tokens(d: Document):
    return d.n_tokens


# ---- aggregations ----------------------------------------------------------------------------

def _over_twins(kind: str) -> tuple[Callable, Callable]:
    """(aggregation, stderr) of a metric that involves M0: the mean over twins (K = 1: the
    single-twin functions, exactly)."""

    def aggregate(items):
        return agg.twin_aggregate(items, kind)

    def stderr(items, iters=1000):
        return agg.twin_stderr(items, kind, iters)

    aggregate.__doc__ = f"mean over twins of the single-twin {kind} (aggregation.twin_aggregate)"
    return aggregate, stderr


def _twin_sd(items):
    return agg.twin_sd(items)


def _no_stderr(items, iters=0):
    """A spread estimated from K values: no stderr is reported."""
    return "N/A"


MEAN = (agg.arithmetic_mean, agg.arithmetic_mean_stderr)
GEOMETRIC_MEAN = (agg.geometric_mean, agg.geometric_mean_stderr)
COUNT = (agg.count, agg.count_stderr)

TABLE: tuple[MetricSpec, ...] = (
    MetricSpec("diff_erank", *_over_twins("difference"), True, _paired, per_layer=True, logged=True,
               kind="difference",
               doc="exp(mean H(M0)) - exp(mean H(M1)) over texts with a defined eRank (twin mean)."),
    MetricSpec("erank_m1", *GEOMETRIC_MEAN, False, _m1, per_layer=True, logged=True,
               kind="geometric_mean", doc="exp(mean H(M1)) (algorithm (a))."),
    MetricSpec("erank_m0", *_over_twins("geometric_mean"), None, _m0, per_layer=True, logged=True,
               kind="geometric_mean", doc="exp(mean H(M0)), averaged over twins."),
    MetricSpec("erank_ratio", *_over_twins("ratio"), False, _paired, logged=True, kind="ratio",
               doc="exp(mean H(M1)) / exp(mean H(M0)): the size-normalised companion of Diff-eRank (twin mean)."),
    MetricSpec("diff_erank_b", *_over_twins("mean"), True, _difference_b,
               kind="mean", doc="Algorithm (b): mean over texts of eRank(M0) - eRank(M1) (twin mean)."),
    MetricSpec("erank_m1_b", *MEAN, False, _m1, kind="mean",
               doc="Algorithm (b) for M1: mean over texts of eRank(M1)."),
    MetricSpec("erank_m0_b", *_over_twins("mean"), None, _m0,
               kind="mean", doc="Algorithm (b) for M0: mean over texts of eRank(M0) (twin mean)."),
    MetricSpec("erank_m0_twin_sd", _twin_sd, _no_stderr, None, _m0, twins_only=True, logged=True,
               doc="standard deviation (ddof 1) over twins of the single-twin eRank(M0); None for one twin."),
    MetricSpec("reduced_loss", *_over_twins("mean"), True, _reduced_loss, losses=True, logged=True, kind="mean",
               doc="mean over texts of L(M0) - L(M1), L the mean token cross-entropy in nats (twin mean)."),
    MetricSpec("loss_m1", *MEAN, False, _loss_m1, losses=True, logged=True, kind="mean",
               doc="mean over texts of L(M1)."),
    MetricSpec("loss_m0", *_over_twins("mean"), None, _loss_m0, losses=True,
               kind="mean", doc="mean over texts of L(M0) (twin mean)."),
    MetricSpec("erank_excluded", *COUNT, False, _excluded,
               doc="texts without a defined eRank under M1 or any twin (fewer than 2 tokens, or no spread)."),
    MetricSpec("erank_truncated", *COUNT, False, _truncated, doc="texts cut at max_length."),
    MetricSpec("erank_tokens", *MEAN, None, _tokens, kind="mean",
               doc="mean tokens fed per text (after truncation)."),
)
BY_NAME: dict[str, MetricSpec] = {m.name: m for m in TABLE}
METRICS = tuple(m for m in TABLE if not m.twins_only)  # reported by every run
TWIN_METRICS = tuple(m for m in TABLE if m.twins_only)  # only with m0_twins = K > 1
METRIC_NAMES = tuple(m.name for m in METRICS)
LAYER_METRIC = re.compile(rf"^({'|'.join(m.name for m in TABLE if m.per_layer)})_layer(\d+)$")


def layer_metric_base(name: str) -> str | None:
    """``diff_erank`` for ``diff_erank_layer12`` etc.; None for other names."""
    match = LAYER_METRIC.match(name)
    return match.group(1) if match else None


def layer_metric(name: str, layer: int, last_layer: int | None) -> str:
    """The metric name of ``name`` at hidden-state index ``layer``: the unsuffixed name at the LM
    head's input (``last_layer``, the run's ``erank_last_layer``), else ``{name}_layer{layer}``.

    >>> layer_metric("diff_erank", 3, 24), layer_metric("diff_erank", 24, 24)
    ('diff_erank_layer3', 'diff_erank')
    """
    return name if layer == last_layer else f"{name}_layer{layer}"


def spec_of(name: str) -> MetricSpec:
    """The table entry of a metric name (``{name}_layer{i}`` -> its base metric's)."""
    return BY_NAME[layer_metric_base(name) or name]


def per_document_values(response: Mapping[str, Any]) -> dict[str, object]:
    """One ``erank`` response -> {metric name: per-doc value} for every metric it reports (the
    table's order): the loss metrics only when it carries losses, the twin metrics only for K > 1,
    the ``per_layer`` metrics again for each entry of its ``layers`` ({i: {entropy_m1, entropy_m0}}).
    """
    values = _values(document(response))
    for layer, entropies in (response.get("layers") or {}).items():
        layer_doc = document({**entropies, "n_tokens": response["n_tokens"], "truncated": response["truncated"]})
        values.update({f"{m.name}_layer{layer}": m.value(layer_doc) for m in TABLE if m.per_layer})
    return values


def _values(d: Document) -> dict[str, object]:
    return {m.name: m.value(d) for m in TABLE if (d.twins or not m.twins_only) and (d.losses or not m.losses)}


def aggregate(documents: Sequence[Mapping[str, object]]) -> dict[str, object]:
    """{name: the table's aggregation of the documents' values} for every metric they report
    (the per-doc dicts of :func:`per_document_values`, all from one run)."""
    names = list(documents[0]) if documents else []
    return {name: spec_of(name).aggregation([doc[name] for doc in documents]) for name in names}


def resampled_aggregate(name: str, items: Sequence, rows) -> np.ndarray:
    """The dataset value of metric ``name`` (``{name}_layer{i}`` too) from per-doc ``items`` (one per
    document, None = excluded) on R resamples of the documents, ``rows`` (R, n) indices: the
    table's aggregation recomputed per resample (``aggregation.resampled_twin_aggregate``);
    ``rows = [range(n)]`` gives the aggregation itself.

    >>> resampled_aggregate("loss_m1", [1.0, 2.0, None], [[0, 1, 2], [1, 1, 2]]).tolist()
    [1.5, 2.0]
    """
    spec = spec_of(name)
    if spec.kind is None:
        raise ValueError(f"{name} is a {spec.aggregation.__name__}, not recomputed on resamples")
    return agg.resampled_twin_aggregate(items, spec.kind, rows)


def metric_list_entries(specs: Sequence[MetricSpec] = METRICS + TWIN_METRICS) -> list[dict]:
    """``metric_list`` entries (as in a task YAML) for ``specs`` (default: every eRank metric, the
    twin-only ones last)."""
    return [{"metric": m.name, "aggregation": AGGREGATION_PREFIX + m.name, "higher_is_better": m.higher_is_better}
            for m in specs]
