"""The ``erank_*`` tasks: a standard lm-eval task plus one ``erank`` request per document.

A task YAML names this class and the standard task it extends::

    task: erank_piqa
    class: !function lm_eval_erank.tasks.ErankTask
    erank_base: piqa/piqa.yaml          # relative to lm-eval's own tasks directory
    metadata: {version: 1.0}

The standard task's definition (data set, split, prompt, choices, metrics) is loaded from
the installed lm-eval, so accuracy is computed exactly as the standard task computes it;
keys given in the YAML override it (e.g. ``dataset_path`` for local files).
The extra request's text is the zero-shot gold sequence the harness scores:
``doc_to_text(doc) + target_delimiter + gold choice`` (for tasks whose choices are the
contexts, like winogrande: ``gold context + target_delimiter + doc_to_target(doc)``).

Representation-only tasks (``erank_only: true``) send just the ``erank`` request, whose text
comes from ``erank_text`` (a field name, a Jinja template or a ``!function``), and report
only the eRank metrics. They need no ``erank_base``; ``output_type`` only has to be a valid
lm-eval type (it sends no requests of that type).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lm_eval.tasks
from lm_eval import utils
from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask
from lm_eval.tasks._yaml_loader import load_yaml

from .metrics import METRIC_NAMES, TWIN_METRICS, layer_metric_base, metric_list_entries, per_document_values

ERANK_REQUEST = "erank"
LM_EVAL_TASKS_DIR = Path(lm_eval.tasks.__file__).parent
_OWN_KEYS = ("class", "erank_base", "erank_text", "erank_only")


def load_base_config(relative_yaml: str) -> dict[str, Any]:
    """The standard task's config as lm-eval loads it (``!function`` references resolved)."""
    path = LM_EVAL_TASKS_DIR / relative_yaml
    if not path.is_file():
        raise FileNotFoundError(f"erank_base {relative_yaml!r} is not a task YAML of lm-eval ({path})")
    config = load_yaml(path, resolve_func=True)
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
        ours = set(METRIC_NAMES) | {m.name for m in TWIN_METRICS}
        metric_list = [m for m in (merged.get("metric_list") or []) if m["metric"] not in ours]
    merged["metric_list"] = metric_list + metric_list_entries()
    return merged


class ErankTask(ConfigurableTask):
    """A ConfigurableTask whose documents also yield an ``erank`` request (the gold text)."""

    def __init__(self, config: dict[str, Any] | None = None, **kwargs) -> None:
        merged = merged_config(config or {})
        self._erank_text_fn = merged.get("erank_text")
        self.erank_only = bool(merged.get("erank_only", False))
        super().__init__(config={k: v for k, v in merged.items() if k not in _OWN_KEYS}, **kwargs)
        if self._erank_text_fn is None and (self.erank_only or self.OUTPUT_TYPE != "multiple_choice"):
            raise ValueError(
                f"task {self.config.task}: set erank_text (the base task is not multiple_choice, or erank_only is set)"
            )

    def erank_text(self, doc: dict) -> str:
        """The text whose eRank is measured for ``doc``.

        ``erank_text`` in the config, if given: a callable, a document field name, or a Jinja
        template (as ``doc_to_text``). Otherwise the zero-shot gold sequence of a
        multiple-choice task (independent of few-shot and chat templates).
        """
        source = self._erank_text_fn
        if callable(source):
            return str(source(doc))
        if isinstance(source, str):
            return str(doc[source]) if source in doc else utils.apply_template(source, doc)
        choices = self.doc_to_choice(doc)
        delimiter = self.config.target_delimiter
        if self.multiple_input:
            return choices[self._gold_index(self.doc_to_text(doc), choices)] + delimiter + str(self.doc_to_target(doc))
        return str(self.doc_to_text(doc)) + delimiter + choices[self._gold_index(self.doc_to_target(doc), choices)]

    def _gold_index(self, gold, choices: list[str]) -> int:
        if isinstance(gold, list):
            gold = gold[0]
        index = choices.index(gold) if isinstance(gold, str) else int(gold)
        if not 0 <= index < len(choices):
            raise ValueError(f"task {self.config.task}: gold index {gold!r} outside the {len(choices)} choices")
        return index

    def construct_requests(self, doc: dict, ctx, **kwargs) -> list[Instance]:
        if self.erank_only:
            standard = []
        else:
            standard = super().construct_requests(doc, ctx, **kwargs)
            standard = standard if isinstance(standard, list) else [standard]
        kwargs.pop("apply_chat_template", None)
        kwargs.pop("chat_template", None)
        # Listed first, so the evaluator runs `erank` requests first and a model without
        # them fails before the long loglikelihood pass; the last idx keeps it last per doc.
        erank = Instance(
            request_type=ERANK_REQUEST,
            doc=doc,
            arguments=(self.erank_text(doc),),
            idx=len(standard),
            **kwargs,
        )
        return [erank, *standard]

    def aggregation(self) -> dict:
        """The configured aggregations; per-layer metrics (``diff_erank_layer12`` ...) use
        their base metric's (they appear only when the model was given ``layers=``)."""
        return _LayerMetrics(super().aggregation())

    def higher_is_better(self) -> dict:
        return _LayerMetrics(super().higher_is_better())

    def process_results(self, doc: dict, results: list) -> dict:
        metrics = super().process_results(doc, results[:-1]) if len(results) > 1 else {}
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
