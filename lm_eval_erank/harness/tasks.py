"""The ``erank_*`` tasks: a standard lm-eval task plus one ``erank`` request per document.

A task YAML names this class and the standard task it extends::

    task: erank_piqa
    class: !function lm_eval_erank.tasks.ErankTask
    erank_base: piqa/piqa.yaml          # relative to lm-eval's own tasks directory
    metadata: {version: 1.0}

The standard task's definition (data set, split, prompt, choices, metrics, filters) is loaded
from the installed lm-eval, so its metrics are computed exactly as the standard task computes
them; keys given in the YAML override it (e.g. ``dataset_path`` for local files). Any task
lm-eval knows also runs as ``erank_<name>`` without a YAML (``wrapping.py`` builds the config).

The extra request's text (:meth:`ErankTask.gold_text`) is the zero-shot gold sequence, by the
base task's output type (no description, few-shot examples or chat template):

- ``multiple_choice``: ``doc_to_text + target_delimiter + gold choice`` (for tasks whose
  choices are the contexts, like winogrande: ``gold context + target_delimiter + doc_to_target``);
- ``loglikelihood``: ``doc_to_text + doc_to_target``, the sequence the harness scores (lm-eval
  puts no delimiter between a loglikelihood context and its target);
- ``loglikelihood_rolling``: ``doc_to_target``, the scored document;
- ``generate_until``: ``doc_to_text + target_delimiter + first gold target``; the prompt alone
  when the task has no gold target (one warning per task).

A document without a usable gold text (no gold choice, an empty target or text) stops the run
while the requests are built, with an error naming the task and the document.

Representation-only tasks (``erank_only: true``) send just the ``erank`` request, whose text
comes from ``erank_text`` (a field name, a Jinja template or a ``!function``), and report
only the eRank metrics. They need no ``erank_base``; ``output_type`` only has to be a valid
lm-eval type (it sends no requests of that type).
"""

from __future__ import annotations

import logging
from typing import Any

from lm_eval.api import registry
from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask

from ..core.errors import ErankValueError
from ..core.metrics import TABLE, layer_metric_base, metric_list_entries, per_document_values
from . import lm_eval_internals as internals
from .request_types import ERANK_REQUEST

logger = logging.getLogger("lm_eval.erank.tasks")

LM_EVAL_TASKS_DIR = internals.lm_eval_tasks_dir()
OUR_METRICS = tuple(m.name for m in TABLE)
_OWN_KEYS = ("class", "erank_base", "erank_text", "erank_only")


def load_base_config(relative_yaml: str) -> dict[str, Any]:
    """The standard task's config as lm-eval loads it (``!function`` references resolved)."""
    path = LM_EVAL_TASKS_DIR / relative_yaml
    if not path.is_file():
        raise FileNotFoundError(f"erank_base {relative_yaml!r} is not a task YAML of lm-eval ({path})")
    config = internals.load_yaml(path, resolve_functions=True)
    for key in ("tag", "group", "task_list"):
        config.pop(key, None)
    return config


def merged_config(config: dict[str, Any]) -> dict[str, Any]:
    """Standard config < our YAML keys; eRank metrics appended to the standard metric list."""
    config = dict(config)
    base_yaml = config.get("erank_base")
    merged = {**load_base_config(base_yaml), **config} if base_yaml else config
    if merged.get("erank_only"):
        merged.setdefault("output_type", "loglikelihood_rolling")
        merged.setdefault("doc_to_text", "")
        merged.setdefault("doc_to_target", "")
        metric_list = []
    else:
        ours = set(OUR_METRICS)
        metric_list = merged.get("metric_list")
        if metric_list is None:  # lm-eval's defaults for the output type, written out
            metric_list = default_metric_list(merged.get("output_type", "generate_until"))
        metric_list = [m for m in metric_list if m["metric"] not in ours]
    merged["metric_list"] = metric_list + metric_list_entries()
    return merged


def default_metric_list(output_type: str) -> list[dict]:
    """The ``metric_list`` lm-eval uses for ``output_type`` when a task gives none, written out
    (metric, its default aggregation by name, higher_is_better), so eRank metrics can be added
    without losing them."""
    names = {fn: name for name, fn in registry.aggregation_registry.items()}
    return [
        {"metric": m, "aggregation": names[registry.get_metric_aggregation(m)],
         "higher_is_better": registry.is_higher_better(m)}
        for m in registry.DEFAULT_METRIC_REGISTRY[output_type]
    ]


class GoldTextError(ErankValueError):
    """A document has no usable gold text."""


class ErankTask(ConfigurableTask):
    """A ConfigurableTask whose documents also yield an ``erank`` request (the gold text)."""

    ERANK_REQUEST_TYPE = ERANK_REQUEST

    def __init__(self, config: dict[str, Any] | None = None, **kwargs) -> None:
        merged = merged_config(internals.with_task_manager_metadata(config or {}))
        self._erank_text_fn = merged.get("erank_text")
        self.erank_only = bool(merged.get("erank_only", False))
        self._warned_no_target = False
        self.reports_erank_metrics = True
        super().__init__(config={k: v for k, v in merged.items() if k not in _OWN_KEYS}, **kwargs)
        if self._erank_text_fn is None and self.erank_only:
            raise ErankValueError(f"task {self.config.task}: erank_only needs erank_text (the text of each document)")
        # The eRank values come from the erank response (process_results), never from a
        # metric function: the base task's results processing sees only its own metrics.
        internals.drop_metric_functions(self, OUR_METRICS)

    def erank_text(self, doc: dict) -> str:
        """The text whose eRank is measured for ``doc``.

        ``erank_text`` in the config, if given: a callable, a document field name, or a Jinja
        template (as ``doc_to_text``). Otherwise :meth:`gold_text`.
        """
        source = self._erank_text_fn
        if callable(source):
            return str(source(doc))
        if isinstance(source, str):
            return str(doc[source]) if source in doc else internals.apply_template(source, doc)
        text = self.gold_text(doc)
        if not text.strip():
            raise GoldTextError(f"the gold text is empty ({text!r})")
        return text

    def gold_text(self, doc: dict) -> str:
        """The zero-shot gold sequence of ``doc`` for the base task's output type (module docstring)."""
        kind = self.OUTPUT_TYPE
        delimiter = self.config.target_delimiter
        if kind == "multiple_choice":
            choices = self.doc_to_choice(doc)
            if self.multiple_input:
                return choices[self._gold_index(self.doc_to_text(doc), choices)] + delimiter + str(self.doc_to_target(doc))
            return str(self.doc_to_text(doc)) + delimiter + choices[self._gold_index(self.doc_to_target(doc), choices)]
        if kind == "loglikelihood":
            target = self.doc_to_target(doc)
            if not isinstance(target, str) or not target:
                raise GoldTextError(f"no gold continuation (doc_to_target gave {target!r})")
            return str(self.doc_to_text(doc)) + target
        if kind == "loglikelihood_rolling":
            target = self.doc_to_target(doc)
            if not isinstance(target, str):
                raise GoldTextError(f"no document text (doc_to_target gave {target!r})")
            return target
        target = self._first_gold_target(doc)
        prompt = str(self.doc_to_text(doc))
        if target is None:
            if not self._warned_no_target:
                self._warned_no_target = True
                logger.warning(
                    "task %s has no gold target: its erank text is the prompt alone (doc_to_text)", self.config.task
                )
            return prompt
        return prompt + delimiter + target

    def _first_gold_target(self, doc: dict) -> str | None:
        """generate_until: the first gold target as the task's results processing reads it
        (an index into doc_to_choice, the first of a list, or the target itself); None when
        the task has none (an integer placeholder as ifeval's ``doc_to_target: 0``, or empty)."""
        if isinstance(self.config.doc_to_target, int) and self.config.doc_to_choice is None:
            return None
        target = self.doc_to_target(doc)
        if self.config.doc_to_choice is not None and isinstance(target, int):
            choices = self.doc_to_choice(doc)
            target = choices[self._gold_index(target, choices)]
        if isinstance(target, (list, tuple)):
            target = target[0] if target else None
        if target is None or (isinstance(target, str) and not target):
            return None
        return str(target)

    def _gold_index(self, gold, choices: list[str]) -> int:
        if isinstance(gold, list):
            if not gold:
                raise GoldTextError("no gold choice (empty target list)")
            gold = gold[0]
        if isinstance(gold, str):
            if gold not in choices:
                raise GoldTextError(f"the gold answer {gold!r} is not one of the choices {choices!r}")
            return choices.index(gold)
        index = int(gold)
        if not 0 <= index < len(choices):
            raise GoldTextError(f"gold index {gold!r} outside the {len(choices)} choices")
        return index

    def construct_requests(self, doc: dict, ctx, **kwargs) -> list[Instance]:
        if self.erank_only:
            standard = []
        else:
            standard = super().construct_requests(doc, ctx, **kwargs)
            standard = standard if isinstance(standard, list) else [standard]
        kwargs.pop("apply_chat_template", None)
        kwargs.pop("chat_template", None)
        metadata = kwargs.pop("metadata", None)
        doc_id = metadata[1] if metadata else None
        try:
            text = self.erank_text(doc)
        except GoldTextError as err:
            preview = repr(doc)
            preview = preview if len(preview) <= 300 else preview[:300] + "..."
            raise GoldTextError(f"task {self.config.task}, document {doc_id}: {err}; document: {preview}") from None
        # Listed first, so the evaluator runs `erank` requests first and a model without
        # them fails before the long loglikelihood pass; the last idx keeps it last per doc.
        # One repeat: a generation task's `repeats` samples do not change the gold text.
        erank = Instance(
            request_type=ERANK_REQUEST,
            doc=doc,
            arguments=(text,),
            idx=len(standard),
            metadata=(metadata[0], metadata[1], 1) if metadata else (None, None, 1),
            **kwargs,
        )
        return [erank, *standard]

    def apply_filters(self) -> None:
        """The base task's filters on its own requests only; every filter passes the ``erank``
        response through unchanged (a generation task's regex would not know what to do with it)."""
        internals.apply_filters_passing_through(self, super().apply_filters,
                                                lambda instance: instance.request_type == ERANK_REQUEST)

    def aggregation(self) -> dict:
        """The configured aggregations; per-layer metrics (``diff_erank_layer12`` ...) use
        their base metric's (they appear only when the model was given ``layers=``)."""
        return _LayerMetrics(super().aggregation())

    def higher_is_better(self) -> dict:
        return _LayerMetrics(super().higher_is_better())

    def override_metric(self, metric_name: str) -> None:
        """The task reports ``metric_name`` alone (lm-eval's ``--predict_only`` overrides with
        ``bypass``), exactly as the standard task then does: the eRank values become no per-doc
        metrics, and each logged sample keeps them in its ``erank_response``."""
        super().override_metric(metric_name)
        self.reports_erank_metrics = False

    def process_results(self, doc: dict, results: list) -> dict:
        metrics = super().process_results(doc, results[:-1]) if len(results) > 1 else {}
        if self.reports_erank_metrics:
            metrics.update(per_document_values(results[-1]))
        return metrics


class _LayerMetrics(dict):
    def __missing__(self, key: str):
        base = layer_metric_base(key)
        if base is None:
            raise KeyError(key)
        return self[base]

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default
